// ops/shifted_conv.h: the float weight gradient of stride-1 convolutions as one product per
// filter tap over the transposed padded input must match the naive reference (and add onto
// what dW holds) on the edges of its layout: channels that fill part of the last panel and
// of the last transposed block, output rows split over several k-slices of uneven length,
// padding wider than the filter reaches (rows and columns of zeros only), no padding,
// dilation (equal and unequal), filters of one row or one column, planes narrower than a
// transposed block (every block staged), one sample; it must keep a non-finite input value in
// exactly the taps that read it, and give the same bits on one and two threads. The cases
// call shifted::weight_grad itself: conv2d_backward_weight sends layers with 4-16 output
// channels to the direct kernels first (ops/direct_conv.h), and some cases lie outside the
// shapes weight_grad_applies admits (narrow planes, many padded channels), which it still
// computes exactly; one case checks that conv2d_backward_weight takes the route.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <convkit/ops/conv2d.h>

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

#ifdef CONVKIT_SHIFTED_CONV

namespace shifted = ops::detail::shifted;

struct ShiftedCase {
  const char* name;
  Index n, c, h, w, oc, kh, kw, ph, pw, dh, dw;
};

// clang-format off
//  name                    n   c   h   w  oc kh kw ph pw dh dw
const ShiftedCase kCases[] = {
  {"resnet_like",           3, 32, 16, 16, 13, 3, 3, 1, 1, 1, 1},
  {"part_panel",            2, 30, 15, 17,  8, 3, 3, 1, 1, 1, 1},  // 30 channels: part of a panel
  {"part_block",            2, 60, 14, 20, 24, 3, 3, 1, 1, 1, 1},  // and of a transposed block
  {"few_channels",          2, 14, 16, 18, 20, 3, 3, 1, 1, 1, 1},
  {"many_slices",           2, 32, 43, 37,  5, 3, 3, 1, 1, 1, 1},  // 1,591 positions
  {"no_padding",            2, 32, 18, 20,  6, 3, 3, 0, 0, 1, 1},
  {"wide_padding",          2, 32, 15, 14,  7, 3, 3, 3, 2, 1, 1},  // rows and columns of zeros
  {"dilated",               2, 64, 20, 22, 16, 3, 3, 2, 2, 2, 2},
  {"dilated_unequal",       2, 32, 19, 21, 18, 3, 3, 2, 3, 2, 3},
  {"one_row_filter",        3, 32, 14, 18, 12, 1, 5, 0, 2, 1, 1},
  {"one_column_filter",     2, 32, 17, 14,  9, 5, 1, 2, 0, 1, 1},  // wp = 14: every block staged
  {"narrow_plane",          2, 40,  7,  7, 21, 3, 3, 1, 1, 1, 1},
  {"one_sample",            1, 64, 28, 28, 40, 3, 3, 1, 1, 1, 1},
  {"chunks_of_two",         6, 32, 14, 15, 10, 3, 3, 1, 1, 1, 1},  // 3 chunks of 2 samples
  {"unchunked",             3,256, 14, 14,128, 3, 3, 1, 1, 1, 1},  // sums over kMaxChunkSums: one chunk
};
// clang-format on

ops::Conv2dParams params_of(const ShiftedCase& c) {
  ops::Conv2dParams p;
  p.pad_h = c.ph, p.pad_w = c.pw, p.dilation_h = c.dh, p.dilation_w = c.dw;
  return p;
}

Shape input_of(const ShiftedCase& c) { return Shape{c.n, c.c, c.h, c.w}; }
Shape weight_of(const ShiftedCase& c) { return Shape{c.oc, c.c, c.kh, c.kw}; }

/// dW (zero before) by shifted::weight_grad on `threads` threads.
Tensor<float> shifted_grad(const Tensor<float>& x, const Tensor<float>& dy, const ShiftedCase& c,
                           int threads) {
  const ops::ConvGeometry g = ops::conv2d_geometry(input_of(c), weight_of(c), params_of(c));
  Tensor<float> gw(weight_of(c));
  ops::Workspace<float> ws;
  shifted::weight_grad(x.data(), dy.data(), g, gw.data(), threads, ws);
  return gw;
}

TEST(ShiftedConv, WhichLayersTakeTheShiftedRoute) {
  // The cases within the route's shapes (the others are computed by weight_grad all the same).
  for (const ShiftedCase& c : kCases) {
    const ops::ConvGeometry g = ops::conv2d_geometry(input_of(c), weight_of(c), params_of(c));
    const std::string name = c.name;
    const bool wide_enough = name != "narrow_plane";
    const bool channels_fill_panels = name != "few_channels" || ops::detail::packed::kNR == 16;
    EXPECT_EQ(shifted::weight_grad_applies(g), wide_enough && channels_fill_panels) << c.name;
  }
  // "many_slices" has k-slices of several output rows, the last one shorter.
  const ShiftedCase& many = *std::find_if(std::begin(kCases), std::end(kCases), [](const ShiftedCase& c) {
    return std::string(c.name) == "many_slices";
  });
  const shifted::Layout l =
      shifted::layout(ops::conv2d_geometry(input_of(many), weight_of(many), params_of(many)));
  EXPECT_GT(many.h, l.slice);
  EXPECT_NE(many.h % l.slice, 0);
  const auto applies = [](Shape x, Shape w, ops::Conv2dParams p = {}) {
    return shifted::weight_grad_applies(ops::conv2d_geometry(x, w, p));
  };
  ops::Conv2dParams padded, stride_w, stride_h, grouped;
  padded.pad_h = padded.pad_w = 1;
  stride_w.stride_w = 2;
  stride_h.stride_h = 2;
  grouped.groups = 2;
  EXPECT_TRUE(applies(Shape{2, 64, 14, 14}, Shape{64, 64, 3, 3}, padded));
  EXPECT_FALSE(applies(Shape{2, 64, 13, 13}, Shape{64, 64, 3, 3}, padded));  // 13 columns
  EXPECT_FALSE(applies(Shape{2, 64, 16, 16}, Shape{64, 64, 3, 3}, stride_w));
  EXPECT_FALSE(applies(Shape{2, 64, 16, 16}, Shape{64, 64, 3, 3}, stride_h));
  EXPECT_FALSE(applies(Shape{2, 64, 16, 16}, Shape{64, 32, 3, 3}, grouped));
  EXPECT_FALSE(applies(Shape{2, 64, 16, 16}, Shape{64, 64, 1, 1}));  // one tap
  EXPECT_FALSE(applies(Shape{2, 64, 16, 16}, Shape{3, 64, 3, 3}));   // fewer rows than the GEMM's least
  EXPECT_FALSE(applies(Shape{2, 3, 20, 20}, Shape{64, 3, 3, 3}));    // 3 of kNR channels
  EXPECT_FALSE(applies(Shape{0, 64, 16, 16}, Shape{64, 64, 3, 3}));  // no samples
  const Index np = ops::detail::packed::kNR;
  EXPECT_TRUE(applies(Shape{2, np - np / 8, 20, 20}, Shape{8, np - np / 8, 3, 3}));
  EXPECT_FALSE(applies(Shape{2, np - np / 8 - 1, 20, 20}, Shape{8, np - np / 8 - 1, 3, 3}));
}

TEST(ShiftedConv, MatchesReference) {
  Rng rng = testing::seeded_rng(41);
  for (const ShiftedCase& c : kCases) {
    const ops::Conv2dParams p = params_of(c);
    const Tensor<float> x = testing::ref::uniform<float>(input_of(c), rng);
    const ops::ConvGeometry g = ops::conv2d_geometry(input_of(c), weight_of(c), p);
    const Tensor<float> dy = testing::ref::uniform<float>(Shape{c.n, c.oc, g.oh, g.ow}, rng);
    // The weight gradient adds onto what is there.
    const Tensor<float> gw0 = testing::ref::uniform<float>(weight_of(c), rng);
    Tensor<float> gw = gw0;
    ops::Workspace<float> ws;
    shifted::weight_grad(x.data(), dy.data(), g, gw.data(), 1, ws);
    const auto ref = testing::ref::conv2d_backward_weight(x, dy, weight_of(c), p);
    Tensor<float> want = gw0;
    for (Index i = 0; i < want.numel(); ++i) want[i] += ref.weight[i];
    EXPECT_TRUE(testing::ref::all_close(gw, want, 1e-4)) << c.name;
  }
}

// conv2d_backward_weight takes the route for a layer it admits with more output channels than
// the direct kernels take: the same bits as weight_grad called alone, added onto dW.
TEST(ShiftedConv, Conv2dBackwardWeightTakesTheRoute) {
  Rng rng = testing::seeded_rng(44);
  const ShiftedCase c{"layer", 2, 32, 14, 15, 24, 3, 3, 1, 1, 1, 1};
  const ops::Conv2dParams p = params_of(c);
  const ops::ConvGeometry g = ops::conv2d_geometry(input_of(c), weight_of(c), p);
  ASSERT_TRUE(shifted::weight_grad_applies(g));
  ASSERT_FALSE(ops::detail::direct::weight_grad_applies(g));
  const Tensor<float> x = testing::ref::uniform<float>(input_of(c), rng);
  const Tensor<float> dy = testing::ref::uniform<float>(Shape{c.n, c.oc, g.oh, g.ow}, rng);
  const Tensor<float> gw0 = testing::ref::uniform<float>(weight_of(c), rng);
  Tensor<float> gw = gw0;
  ops::Workspace<float> ws;
  ops::conv2d_backward_weight(x, dy, p, gw, static_cast<Tensor<float>*>(nullptr), ws);
  Tensor<float> want = gw0;
  shifted::weight_grad(x.data(), dy.data(), g, want.data(), 1, ws);
  EXPECT_TRUE(std::equal(gw.begin(), gw.end(), want.begin()));
}

// An infinite input value reaches exactly the filter taps whose sums read it: no product of
// a tap reads a padded pixel that belongs to another position, and the zeros a staged block
// of the transpose spills past its row are overwritten. The value sits in the last column of
// the top row, next to the padding, in a staged block.
TEST(ShiftedConv, NonFiniteInputsStayWhereTheyBelong) {
  Rng rng = testing::seeded_rng(42);
  const ShiftedCase c{"inf", 2, 32, 14, 17, 8, 3, 3, 1, 1, 1, 1};
  const ops::Conv2dParams p = params_of(c);
  ASSERT_TRUE(shifted::weight_grad_applies(ops::conv2d_geometry(input_of(c), weight_of(c), p)));
  Tensor<float> x = testing::ref::uniform<float>(input_of(c), rng);
  x.at(1, 5, 0, c.w - 1) = std::numeric_limits<float>::infinity();
  const Tensor<float> dy = testing::ref::uniform<float>(Shape{c.n, c.oc, c.h, c.w}, rng);
  const Tensor<float> gw = shifted_grad(x, dy, c, 1);
  // Tap (i, j) of channel 5 reads x[., 5, oy + i − 1, ox + j − 1]: the corner (0, W − 1) for
  // some output exactly when i <= 1 and j >= 1.
  for (Index o = 0; o < c.oc; ++o)
    for (Index ch = 0; ch < c.c; ++ch)
      for (Index i = 0; i < 3; ++i)
        for (Index j = 0; j < 3; ++j)
          EXPECT_EQ(std::isfinite(gw.at(o, ch, i, j)), !(ch == 5 && i <= 1 && j >= 1))
              << o << "," << ch << "," << i << "," << j;
}

TEST(ShiftedConv, TwoThreadsGiveTheSameBits) {
#ifdef _OPENMP
  Rng rng = testing::seeded_rng(43);
  // Threads taking whole chunks (8 samples: 4 chunks of 2); one sample, whose products the
  // threads share by (row panel, tap), 13 output channels (AVX-512: panels of 6 and 7 rows):
  // all 9 taps of the first panel and 1 of the second to one thread (61 rows), the second's
  // other 8 taps to the other (56); 60 channels, one sample: a part block, transposed on the
  // second thread; sums too large for chunks, so the threads share each of two samples'
  // products.
  for (const ShiftedCase& c : {ShiftedCase{"threads_chunks", 8, 32, 28, 28, 13, 3, 3, 1, 1, 1, 1},
                               ShiftedCase{"threads_shares", 1, 32, 28, 28, 13, 3, 3, 1, 1, 1, 1},
                               ShiftedCase{"threads_part_block", 1, 60, 20, 20, 24, 3, 3, 1, 1, 1, 1},
                               ShiftedCase{"threads_unchunked", 2, 256, 14, 14, 128, 3, 3, 1, 1, 1, 1}}) {
    const ops::Conv2dParams p = params_of(c);
    const ops::ConvGeometry g = ops::conv2d_geometry(input_of(c), weight_of(c), p);
    const Tensor<float> x = testing::ref::uniform<float>(input_of(c), rng);
    const Tensor<float> dy = testing::ref::uniform<float>(Shape{c.n, c.oc, g.oh, g.ow}, rng);
    std::vector<Tensor<float>> out;
    for (int threads : {1, 2}) out.push_back(shifted_grad(x, dy, c, threads));
    EXPECT_TRUE(std::equal(out[0].begin(), out[0].end(), out[1].begin())) << c.name;
    EXPECT_TRUE(testing::ref::all_close(
        out[1], testing::ref::conv2d_backward_weight(x, dy, weight_of(c), p).weight, 1e-4))
        << c.name;
  }
#else
  GTEST_SKIP() << "built without OpenMP";
#endif
}

#else

TEST(ShiftedConv, NotCompiledIn) { GTEST_SKIP() << "no packed GEMM in this build"; }

#endif

}  // namespace
}  // namespace convkit
