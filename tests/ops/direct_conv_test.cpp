// ops/direct_conv.h: the float convolutions with few output channels that run on the direct
// kernels (the forward pass and the weight gradient; the data gradient gathered where col2im
// would run, or as a flipped convolution with few input channels) must
// match the naive reference, on every edge of their tiling: one and two vectors of channels,
// odd numbers of output rows (the last row tile moved back), a single output row, rows not a
// multiple of the tile, padding (the padded copy), crops, row stride and dilation, a single
// filter row and filters wider than a tile (the weight gradient's exact partition); and give
// the same bits on one and two threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <convkit/ops/conv2d.h>

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

#ifdef CONVKIT_DIRECT_CONV

namespace direct = ops::detail::direct;

struct DirectCase {
  const char* name;
  Index n, c, h, w, oc, kh, kw, sh, ph, pw, dh, dw;
};

// clang-format off
//  name                     n   c   h   w  oc kh kw sh ph pw dh dw
const DirectCase kCases[] = {
  {"lenet_c1",               5,  1, 32, 32,  6, 5, 5, 1, 0, 0, 1, 1},
  {"lenet_c3",               7,  6, 14, 14, 16, 5, 5, 1, 0, 0, 1, 1},
  {"odd_rows_pad",           3,  5,  9, 13,  4, 3, 3, 1, 1, 1, 1, 1},
  {"two_vectors_pad2",       2,  7, 11,  8, 13, 3, 3, 1, 2, 2, 1, 1},
  {"one_output_row",         3,  4,  5, 17,  8, 5, 3, 1, 0, 1, 1, 1},
  {"narrow_output",          2,  3,  6,  4,  9, 3, 3, 1, 0, 0, 1, 1},
  {"row_stride_2",           2,  4, 15, 12,  7, 3, 3, 2, 1, 1, 1, 1},
  {"row_dilation",           2,  3, 16, 14, 10, 3, 3, 1, 2, 1, 2, 1},
  {"column_dilation",        2,  3, 12, 16,  5, 3, 3, 1, 1, 2, 1, 2},
  {"wide_filter_one_row",    3,  2,  6, 20, 11, 1, 7, 1, 0, 3, 1, 1},
  {"tall_filter",            2,  2, 17,  9,  6, 7, 2, 1, 3, 0, 1, 1},
  {"one_sample",             1,  9,  8,  8, 16, 3, 3, 1, 1, 1, 1, 1},
  {"row_dilation_pairs",     2,  3, 16, 14,  6, 3, 3, 1, 2, 1, 2, 1},
  {"filter_3x1",             2,  4, 10,  9,  5, 3, 1, 1, 1, 0, 1, 1},
  {"crop_asymmetric",        3,  8, 16, 16,  8, 3, 3, 1, 3, 0, 1, 1},
  {"flipped_data_gradient",  4, 12, 16, 16,  8, 3, 3, 1, 1, 1, 1, 1},
  {"crop_flipped",           2,  8, 16, 16,  8, 3, 3, 1, 3, 3, 1, 1},
  // Data gradients gathered by direct::data_grad (as are seven above): an overlapping last column tile, one vector
  // of columns (full and partial), three channel tiles (5, 5, 3), dilation in both axes with
  // padding, and input rows that no output reads (their gradient is 0).
  {"dgrad_overlap",          2,  5,  7, 26, 12, 3, 3, 1, 1, 1, 1, 1},
  {"dgrad_one_vector",       3,  9,  6,  8, 16, 3, 3, 1, 1, 1, 1, 1},
  {"dgrad_partial_vector",   2,  7,  5,  6,  8, 3, 3, 1, 1, 1, 1, 1},
  {"dgrad_channel_tiles",    2, 13,  6, 16, 16, 3, 3, 1, 1, 1, 1, 1},
  {"dgrad_dilated",          2,  6, 12, 16,  8, 3, 3, 1, 2, 2, 2, 2},
  {"dgrad_unread_rows",      2,  6,  5, 16,  8, 2, 3, 1, 0, 1, 4, 1},
  // Forward passes and weight gradients by columns on AVX-512 (lenet_c1 too): strided rows
  // with padding and two channel tiles (4, 4); rows of two overlapping column tiles, dilated
  // columns, with padding (forward only); dilated rows, three whole vectors of columns,
  // filter columns in tiles of 3 and 2, channel tiles of 4 and 3.
  {"columns_pad_stride",     2,  3, 30, 30,  8, 3, 3, 2, 1, 1, 1, 1},
  {"columns_overlap_dilated",2,  2, 12, 48,  5, 3, 3, 1, 2, 2, 1, 2},
  {"columns_dilated_rows",   3,  3, 20, 48,  7, 3, 5, 1, 2, 2, 2, 1},
  {"columns_in_place",       2,  2, 10, 50,  6, 3, 3, 1, 0, 0, 1, 1},  // x read in place: ow 48
};
// The cases whose data gradient direct::data_grad takes.
const char* const kDataGradCases[] = {"lenet_c3", "odd_rows_pad", "two_vectors_pad2", "row_dilation",
                                      "column_dilation", "one_sample", "row_dilation_pairs",
                                      "dgrad_overlap", "dgrad_one_vector", "dgrad_partial_vector",
                                      "dgrad_channel_tiles", "dgrad_dilated", "dgrad_unread_rows",
                                      "columns_dilated_rows"};
// clang-format on

ops::Conv2dParams params_of(const DirectCase& c) {
  ops::Conv2dParams p;
  p.stride_h = c.sh, p.pad_h = c.ph, p.pad_w = c.pw, p.dilation_h = c.dh, p.dilation_w = c.dw;
  return p;
}

TEST(DirectConv, CasesReachTheDirectKernels) {
  for (const DirectCase& c : kCases) {
    const ops::ConvGeometry g = ops::conv2d_geometry(Shape{c.n, c.c, c.h, c.w}, Shape{c.oc, c.c, c.kh, c.kw}, params_of(c));
    EXPECT_TRUE(direct::forward_applies(g)) << c.name;
    EXPECT_EQ(direct::weight_grad_applies(g), c.dw == 1) << c.name;
  }
  // Three cases' data gradients are flipped convolutions on the direct kernels too, two of
  // them cropping dY (padding 3 > K − 1).
  for (const char* name : {"crop_asymmetric", "flipped_data_gradient", "crop_flipped"}) {
    const DirectCase& f = *std::find_if(std::begin(kCases), std::end(kCases),
                                        [name](const DirectCase& c) { return std::string(c.name) == name; });
    const ops::ConvGeometry fg =
        ops::conv2d_geometry(Shape{f.n, f.c, f.h, f.w}, Shape{f.oc, f.c, f.kh, f.kw}, params_of(f));
    EXPECT_FALSE(ops::detail::backward_data_by_col2im(fg)) << f.name;
    EXPECT_TRUE(direct::forward_applies(ops::detail::flipped_geometry(fg))) << f.name;
    EXPECT_EQ(ops::detail::flipped_geometry(fg).pt < 0, f.ph == 3) << f.name;
  }
  // Exactly the listed cases' data gradients are gathered (the others go by col2im, whose
  // choice they share, or a flipped convolution, or are strided or too narrow for the tiles).
  for (const DirectCase& c : kCases) {
    const ops::ConvGeometry g = ops::conv2d_geometry(Shape{c.n, c.c, c.h, c.w}, Shape{c.oc, c.c, c.kh, c.kw}, params_of(c));
    const bool listed = std::any_of(std::begin(kDataGradCases), std::end(kDataGradCases),
                                    [&c](const char* name) { return std::string(c.name) == name; });
    EXPECT_EQ(direct::data_grad_applies(g) && ops::detail::backward_data_by_col2im(g), listed) << c.name;
  }
#if defined(__AVX512F__)
  // The forward by columns: one vector of channels and rows that fill 3/4 of their tiles.
  for (const DirectCase& c : kCases) {
    const ops::ConvGeometry g =
        ops::conv2d_geometry(Shape{c.n, c.c, c.h, c.w}, Shape{c.oc, c.c, c.kh, c.kw}, params_of(c));
    const std::string name = c.name;
    EXPECT_EQ(direct::columns_forward_applies(g), name == "lenet_c1" || name.rfind("columns_", 0) == 0)
        << c.name;
  }
  EXPECT_FALSE(
      direct::columns_forward_applies(ops::conv2d_geometry(Shape{1, 1, 36, 36}, Shape{9, 1, 3, 3}, {})));
  EXPECT_FALSE(
      direct::columns_forward_applies(ops::conv2d_geometry(Shape{1, 1, 25, 25}, Shape{8, 1, 3, 3}, {})));
  EXPECT_TRUE(
      direct::columns_forward_applies(ops::conv2d_geometry(Shape{1, 1, 26, 26}, Shape{8, 1, 3, 3}, {})));
  EXPECT_FALSE(
      direct::columns_forward_applies(ops::conv2d_geometry(Shape{1, 1, 35, 35}, Shape{8, 1, 1, 3}, {})));
#endif
  // At most kMaxTaps taps and kMaxSampleFloats of buffers per sample.
  EXPECT_TRUE(direct::forward_applies(ops::conv2d_geometry(Shape{2, 64, 8, 8}, Shape{8, 64, 4, 4}, {})));
  EXPECT_FALSE(direct::forward_applies(ops::conv2d_geometry(Shape{2, 41, 8, 8}, Shape{8, 41, 5, 5}, {})));
  EXPECT_FALSE(direct::forward_applies(ops::conv2d_geometry(Shape{1, 3, 128, 128}, Shape{8, 3, 3, 3}, {})));
  // Two vectors of channels at most, at least half of one; one group; unit column stride.
  const ops::ConvGeometry lenet = ops::conv2d_geometry(Shape{2, 6, 14, 14}, Shape{16, 6, 5, 5}, {});
  EXPECT_TRUE(direct::forward_applies(lenet));
  EXPECT_FALSE(direct::forward_applies(ops::conv2d_geometry(Shape{2, 6, 14, 14}, Shape{17, 6, 5, 5}, {})));
  EXPECT_FALSE(direct::forward_applies(ops::conv2d_geometry(Shape{2, 6, 14, 14}, Shape{3, 6, 5, 5}, {})));
  ops::Conv2dParams strided;
  strided.stride_w = 2;
  EXPECT_FALSE(direct::forward_applies(ops::conv2d_geometry(Shape{2, 6, 14, 14}, Shape{8, 6, 5, 5}, strided)));
  ops::Conv2dParams grouped;
  grouped.groups = 2;
  EXPECT_FALSE(direct::forward_applies(ops::conv2d_geometry(Shape{2, 6, 14, 14}, Shape{8, 3, 5, 5}, grouped)));
  // The data gradient: 4 to 16 output channels, unit strides, one group, tiles of at least 6
  // accumulators with at least 3/4 of their lanes on input columns, OC·KH·KW <= kMaxTaps,
  // dY copies within kMaxSampleFloats.
  const auto dgrad = [](Shape x, Shape w, ops::Conv2dParams p = {}) {
    return direct::data_grad_applies(ops::conv2d_geometry(x, w, p));
  };
  EXPECT_TRUE(dgrad(Shape{2, 6, 14, 14}, Shape{16, 6, 5, 5}));
  EXPECT_FALSE(dgrad(Shape{2, 6, 14, 14}, Shape{17, 6, 5, 5}));
  EXPECT_FALSE(dgrad(Shape{2, 6, 14, 14}, Shape{3, 6, 5, 5}));
  EXPECT_FALSE(dgrad(Shape{2, 6, 14, 14}, Shape{8, 6, 5, 5}, strided));
  ops::Conv2dParams strided_rows;
  strided_rows.stride_h = 2;
  EXPECT_FALSE(dgrad(Shape{2, 6, 14, 14}, Shape{8, 6, 5, 5}, strided_rows));
  EXPECT_FALSE(dgrad(Shape{2, 6, 14, 14}, Shape{8, 3, 5, 5}, grouped));
  EXPECT_FALSE(dgrad(Shape{2, 6, 14, 14}, Shape{16, 6, 1, 1}));   // 1x1
  EXPECT_TRUE(dgrad(Shape{2, 3, 32, 32}, Shape{16, 3, 3, 3}));    // 3 channels x 2 vectors
  EXPECT_FALSE(dgrad(Shape{2, 2, 32, 32}, Shape{16, 2, 3, 3}));   // 2 x 2: 4 accumulators
  EXPECT_FALSE(dgrad(Shape{2, 5, 8, 8}, Shape{16, 5, 3, 3}));     // 5 x 1
  EXPECT_TRUE(dgrad(Shape{2, 6, 8, 8}, Shape{16, 6, 3, 3}));      // 6 x 1
  EXPECT_TRUE(dgrad(Shape{2, 6, 12, 12}, Shape{16, 6, 1, 3}));    // 12 of 16 lanes
  EXPECT_FALSE(dgrad(Shape{2, 6, 11, 11}, Shape{16, 6, 1, 3}));   // 11 of 16
  EXPECT_FALSE(dgrad(Shape{2, 6, 21, 21}, Shape{16, 6, 1, 3}));   // 21 of 32
  EXPECT_TRUE(dgrad(Shape{2, 6, 24, 24}, Shape{16, 6, 1, 3}));    // 24 of 32
  EXPECT_TRUE(dgrad(Shape{2, 6, 12, 12}, Shape{16, 6, 8, 8}));    // 1,024 taps
  EXPECT_FALSE(dgrad(Shape{2, 6, 12, 12}, Shape{16, 6, 9, 8}));   // 1,152
  EXPECT_TRUE(dgrad(Shape{1, 6, 128, 128}, Shape{4, 6, 3, 3}));   // 4 x 126 x 130 floats
  EXPECT_FALSE(dgrad(Shape{1, 6, 128, 128}, Shape{8, 6, 3, 3}));  // 8 x 126 x 130
}

TEST(DirectConv, MatchesReference) {
  Rng rng = testing::seeded_rng(31);
  for (const DirectCase& c : kCases) {
    const ops::Conv2dParams p = params_of(c);
    const Shape xs{c.n, c.c, c.h, c.w}, wshape{c.oc, c.c, c.kh, c.kw};
    const Tensor<float> x = testing::ref::uniform<float>(xs, rng);
    const Tensor<float> w = testing::ref::uniform<float>(wshape, rng);
    const Tensor<float> b = testing::ref::uniform<float>(Shape{c.oc}, rng);
    ops::Workspace<float> ws;
    const Tensor<float> y = ops::conv2d_forward(x, w, &b, p, ws);
    EXPECT_TRUE(testing::ref::all_close(y, testing::ref::conv2d_forward(x, w, &b, p), 1e-4)) << c.name << " forward";
    const Tensor<float> dy = testing::ref::uniform<float>(y.shape(), rng);
    EXPECT_TRUE(testing::ref::all_close(ops::conv2d_backward_data(dy, w, xs, p, ws),
                                        testing::ref::conv2d_backward_data(dy, w, xs, p), 1e-4))
        << c.name << " data gradient";
    // The weight gradient adds onto what is there.
    const Tensor<float> gw0 = testing::ref::uniform<float>(wshape, rng);
    Tensor<float> gw = gw0;
    ops::conv2d_backward_weight(x, dy, p, gw, static_cast<Tensor<float>*>(nullptr), ws);
    const auto ref = testing::ref::conv2d_backward_weight(x, dy, wshape, p);
    Tensor<float> want = gw0;
    for (Index i = 0; i < want.numel(); ++i) want[i] += ref.weight[i];
    EXPECT_TRUE(testing::ref::all_close(gw, want, 1e-4)) << c.name << " weight gradient";
  }
}

// A non-finite input value reaches exactly the outputs and filter taps whose sums read it:
// no tile multiplies an input value it should not read into a sum (0 · inf would turn
// the sum into NaN). The value sits in the last column, next to the padding. The wider plane
// goes by columns on AVX-512: 27 outputs a row, the last vector 11 lanes.
TEST(DirectConv, NonFiniteInputsStayWhereTheyBelong) {
  Rng rng = testing::seeded_rng(32);
  for (const Index width : {11, 27}) {
    const DirectCase c{"inf", 2, 3, 9, width, 6, 3, 3, 1, 1, 1, 1, 1};
    const ops::Conv2dParams p = params_of(c);
    const Shape xs{c.n, c.c, c.h, c.w}, wshape{c.oc, c.c, c.kh, c.kw};
    Tensor<float> x = testing::ref::uniform<float>(xs, rng);
    x.at(1, 2, 0, width - 1) = std::numeric_limits<float>::infinity();  // a corner: top row, last column
    const Tensor<float> w = testing::ref::uniform<float>(wshape, rng);
    ops::Workspace<float> ws;
    const Tensor<float> y = ops::conv2d_forward(x, w, static_cast<const Tensor<float>*>(nullptr), p, ws);
    for (Index n = 0; n < c.n; ++n)
      for (Index o = 0; o < c.oc; ++o)
        for (Index r = 0; r < c.h; ++r)
          for (Index q = 0; q < c.w; ++q)
            EXPECT_EQ(std::isfinite(y.at(n, o, r, q)), !(n == 1 && r <= 1 && q >= width - 2))
                << width << ": " << n << "," << o << "," << r << "," << q;
    Tensor<float> dy = testing::ref::uniform<float>(y.shape(), rng);
    Tensor<float> gw(wshape);
    ops::conv2d_backward_weight(x, dy, p, gw, static_cast<Tensor<float>*>(nullptr), ws);
    // Tap (i, j) of channel 2 reads x[., 2, oy + i − 1, ox + j − 1]: the corner (0, W − 1) for
    // some output of the plane exactly when i <= 1 and j >= 1.
    for (Index o = 0; o < c.oc; ++o)
      for (Index ch = 0; ch < c.c; ++ch)
        for (Index i = 0; i < 3; ++i)
          for (Index j = 0; j < 3; ++j)
            EXPECT_EQ(std::isfinite(gw.at(o, ch, i, j)), !(ch == 2 && i <= 1 && j >= 1))
                << width << ": " << o << "," << ch << "," << i << "," << j;
  }
}

// The data gradient's gather: an infinite dY value reaches exactly the input pixels whose
// sums read it; the zero columns around each dY row never meet it (3 of 6 channels: one tile
// of 2 vectors whose columns 12-15 lie past the input and are not stored).
TEST(DirectConv, NonFiniteGradientsStayWhereTheyBelong) {
  Rng rng = testing::seeded_rng(35);
  const DirectCase c{"inf_dy", 2, 3, 9, 12, 6, 3, 3, 1, 1, 1, 1, 1};
  const ops::Conv2dParams p = params_of(c);
  const Shape xs{c.n, c.c, c.h, c.w}, wshape{c.oc, c.c, c.kh, c.kw};
  const ops::ConvGeometry g = ops::conv2d_geometry(xs, wshape, p);
  ASSERT_TRUE(direct::data_grad_applies(g) && ops::detail::backward_data_by_col2im(g));
  const Tensor<float> w = testing::ref::uniform<float>(wshape, rng);
  Tensor<float> dy = testing::ref::uniform<float>(Shape{c.n, c.oc, g.oh, g.ow}, rng);
  dy.at(1, 4, 0, 11) = std::numeric_limits<float>::infinity();  // top row, last column
  ops::Workspace<float> ws;
  const Tensor<float> dx = ops::conv2d_backward_data(dy, w, xs, p, ws);
  // dX[n, c, y, x] sums dY[n, o, y + 1 − i, x + 1 − j]: the corner (0, 11) for y <= 1, x >= 10.
  for (Index n = 0; n < c.n; ++n)
    for (Index ch = 0; ch < c.c; ++ch)
      for (Index r = 0; r < c.h; ++r)
        for (Index q = 0; q < c.w; ++q)
          EXPECT_EQ(std::isfinite(dx.at(n, ch, r, q)), !(n == 1 && r <= 1 && q >= 10)) << n << "," << ch << "," << r << "," << q;
}

TEST(DirectConv, TwoThreadsGiveTheSameBits) {
#ifdef _OPENMP
  Rng rng = testing::seeded_rng(33);
  // LeNet-5's layers, a padded one with two vectors, one whose data gradient is a flipped
  // convolution on the direct kernels, and one by columns on AVX-512 (forward and weight
  // gradient) with a gathered data gradient.
  const auto named = [](const char* name) {
    return *std::find_if(std::begin(kCases), std::end(kCases),
                         [name](const DirectCase& c) { return std::string(c.name) == name; });
  };
  for (const DirectCase& c : {named("lenet_c1"), named("lenet_c3"), named("two_vectors_pad2"),
                              named("crop_flipped"), named("columns_dilated_rows")}) {
    const ops::Conv2dParams p = params_of(c);
    // Enough samples for the threaded paths (and several chunks of the weight gradient).
    const Shape wshape{c.oc, c.c, c.kh, c.kw};
    const ops::ConvGeometry one = ops::conv2d_geometry(Shape{1, c.c, c.h, c.w}, wshape, p);
    const Index n = std::max<Index>(4 * c.n + 1, static_cast<Index>(1.2e6 / ops::detail::conv_multiply_adds(one)) + 1);
    const Shape xs{n, c.c, c.h, c.w};
    const ops::ConvGeometry g = ops::conv2d_geometry(xs, wshape, p);
    ASSERT_GE(ops::detail::conv_multiply_adds(g), ops::detail::kMinChunkThreadsWork) << c.name;
    const Tensor<float> x = testing::ref::uniform<float>(xs, rng);
    const Tensor<float> w = testing::ref::uniform<float>(wshape, rng);
    const Tensor<float> dy = testing::ref::uniform<float>(Shape{xs[0], c.oc, g.oh, g.ow}, rng);
    std::vector<Tensor<float>> out[3];
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      ops::Workspace<float> ws;
      out[0].push_back(ops::conv2d_forward(x, w, static_cast<const Tensor<float>*>(nullptr), p, ws));
      out[1].push_back(ops::conv2d_backward_data(dy, w, xs, p, ws));
      Tensor<float> gw(wshape);
      ops::conv2d_backward_weight(x, dy, p, gw, static_cast<Tensor<float>*>(nullptr), ws);
      out[2].push_back(gw);
    }
    omp_set_num_threads(saved);
    for (const auto& pair : out) EXPECT_TRUE(std::equal(pair[0].begin(), pair[0].end(), pair[1].begin())) << c.name;
    const auto ref = testing::ref::conv2d_backward_weight(x, dy, wshape, p);
    EXPECT_TRUE(testing::ref::all_close(out[2][1], ref.weight, 1e-4)) << c.name;
  }
#else
  GTEST_SKIP() << "built without OpenMP";
#endif
}

// An empty batch: empty outputs and gradients, the weight gradient left as it was.
TEST(DirectConv, EmptyBatch) {
  Rng rng = testing::seeded_rng(34);
  const Shape xs{0, 6, 14, 14}, wshape{16, 6, 5, 5};
  ASSERT_TRUE(direct::forward_applies(ops::conv2d_geometry(xs, wshape, {})));
  const Tensor<float> x(xs), w = testing::ref::uniform<float>(wshape, rng);
  ops::Workspace<float> ws;
  EXPECT_EQ(ops::conv2d_forward(x, w, static_cast<const Tensor<float>*>(nullptr), {}, ws).shape(), Shape({0, 16, 10, 10}));
  const Tensor<float> dy(Shape{0, 16, 10, 10});
  const Tensor<float> gw0 = testing::ref::uniform<float>(wshape, rng);
  Tensor<float> gw = gw0;
  ops::conv2d_backward_weight(x, dy, {}, gw, static_cast<Tensor<float>*>(nullptr), ws);
  EXPECT_TRUE(std::equal(gw.begin(), gw.end(), gw0.begin()));
  EXPECT_EQ(ops::conv2d_backward_data(dy, w, xs, {}, ws).shape(), xs);
}

#else

TEST(DirectConv, NotCompiledIn) { GTEST_SKIP() << "no AVX2 direct convolution in this build"; }

#endif

}  // namespace
}  // namespace convkit
