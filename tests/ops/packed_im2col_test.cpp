// ops/packed_im2col.h: the B panels Im2colB (and, for pointwise layers, PointwiseB) packs
// straight from x must be, bit for bit, the panels pack_b makes from im2col's column matrix,
// for every slice of rows and columns the packed GEMM asks for; and the float convolutions
// that take this path must match the naive reference (blocks of several samples, groups,
// strides 1 and 2, dilation, padding and crops, pointwise layers).
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <convkit/ops/conv2d.h>

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

#ifdef CONVKIT_PACKED_GEMM

using ops::ConvGeometry;
namespace packed = ops::detail::packed;

struct PackCase {
  const char* name;
  Index n, c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, groups;
};

// clang-format off
//  name                     n   c   h   w kh kw sh sw  pt  pl dh dw  oh  ow  g
const PackCase kPackCases[] = {
  {"k3_pad1",                1,  5, 20, 23, 3, 3, 1, 1,  1,  1, 1, 1, 20, 23, 1},
  {"k3_narrow_rows",         3,  4,  5,  3, 3, 3, 1, 1,  1,  1, 1, 1,  5,  3, 1},
  {"k3_stride2_pad1",        2,  6, 17, 19, 3, 3, 2, 2,  1,  1, 1, 1,  9, 10, 1},
  {"k7_stride2_pad3",        1,  3, 30, 29, 7, 7, 2, 2,  3,  3, 1, 1, 15, 15, 1},
  {"k1_stride2",             2, 40,  9, 11, 1, 1, 2, 2,  0,  0, 1, 1,  5,  6, 1},
  {"k3_dil2_pad3",           2,  3, 12, 40, 3, 3, 1, 1,  3,  3, 2, 2, 12, 40, 1},
  {"k5x3_crop",              1,  4, 21, 26, 5, 3, 1, 1, -1, -2, 1, 1, 15, 20, 1},
  {"k3_pad_beyond_kernel",   2,  2,  4,  5, 3, 3, 1, 1,  3,  3, 1, 1,  8,  9, 1},
  {"k3_groups2_deep",        2, 96,  8,  8, 3, 3, 1, 1,  1,  1, 1, 1,  8,  8, 2},  // 432 rows, more than one kKC slice
  {"k2_stride2_odd_row",     3,  3, 15, 33, 2, 2, 2, 2,  0,  0, 1, 1,  7, 16, 1},
};
// clang-format on

/// im2col's column matrix of samples [0, n) and group grp of x.
std::vector<float> column_matrix(const ConvGeometry& g, const Tensor<float>& x, Index grp) {
  std::vector<float> col(static_cast<std::size_t>(g.col_rows() * g.n * g.out_plane()));
  ops::detail::im2col_block(x.data(), g, 0, g.n, 0, g.oh, grp, col.data());
  return col;
}

/// pack_b's panels of the column matrix col (cols columns), rows [p0, p0 + kc) and columns
/// [j0, j0 + nc), against `pack`'s (Im2colB or PointwiseB), bit for bit.
template <typename Packer>
::testing::AssertionResult same_panels(const std::vector<float>& col, Index cols, const Packer& pack,
                                       Index p0, Index kc, Index j0, Index nc) {
  const Index padded = (nc + packed::kNR - 1) / packed::kNR * packed::kNR;
  std::vector<float> want(static_cast<std::size_t>(kc * padded), -7.0f), got(want.size(), -9.0f);
  packed::MatrixB{false, col.data(), cols}(p0, kc, j0, nc, want.data());
  pack(p0, kc, j0, nc, got.data());
  const auto bad = std::mismatch(want.begin(), want.end(), got.begin());
  if (bad.first == want.end()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "rows [" << p0 << ", " << p0 + kc << ") columns [" << j0 << ", "
                                       << j0 + nc << "): first difference at " << (bad.first - want.begin())
                                       << ", " << *bad.first << " vs " << *bad.second;
}

/// pack_b's panels of im2col's column matrix of samples [0, n) and group grp, columns
/// [j0, j0 + nc) and rows [p0, p0 + kc), and Im2colB's, side by side.
void expect_same_panels(const PackCase& pc, const ConvGeometry& g, const Tensor<float>& x, Index grp,
                        Index p0, Index kc, Index j0, Index nc) {
  const packed::Im2colB b{x.data() + grp * g.cg() * g.in_plane(), &g, g.c * g.in_plane(), g.out_plane(), 0};
  EXPECT_TRUE(same_panels(column_matrix(g, x, grp), g.n * g.out_plane(), b, p0, kc, j0, nc))
      << pc.name << " group " << grp;
}

TEST(PackedIm2col, PanelsEqualPackedColumnMatrix) {
  Rng rng = testing::seeded_rng(731);
  for (const PackCase& pc : kPackCases) {
    ConvGeometry g;
    g.n = pc.n, g.c = pc.c, g.h = pc.h, g.w = pc.w, g.oc = 4 * pc.groups, g.kh = pc.kh, g.kw = pc.kw;
    g.sh = pc.sh, g.sw = pc.sw, g.pt = pc.pt, g.pl = pc.pl, g.dh = pc.dh, g.dw = pc.dw;
    g.oh = pc.oh, g.ow = pc.ow, g.groups = pc.groups;
    ASSERT_TRUE(packed::im2col_packs(g)) << pc.name;  // strides 1 and 2, AVX2 and AVX-512 alike
    const Tensor<float> x = testing::ref::uniform<float>(Shape{g.n, g.c, g.h, g.w}, rng);
    const Index k = g.col_rows(), cols = g.n * g.out_plane();
    for (Index grp = 0; grp < g.groups; ++grp) {
      // The whole matrix; a slice of rows that starts inside a kernel position's channels and
      // one of columns that starts mid-row and ends in a partial panel; and, where there are
      // enough columns, a span wider than kNC (the packer cuts it).
      expect_same_panels(pc, g, x, grp, 0, k, 0, cols);
      expect_same_panels(pc, g, x, grp, k / 3, k - k / 3 - 1 > 0 ? k - k / 3 - 1 : 1, cols / 5 + 1,
                         std::max<Index>(1, cols - cols / 5 - 3));
      if (cols > packed::kNC + 7) expect_same_panels(pc, g, x, grp, 1, k - 1, 3, cols - 3);
    }
  }
}

// PointwiseB: the input of a pointwise convolution as B, samples side by side, must give the
// panels pack_b makes from the same columns gathered into a matrix: planes smaller than a
// panel (one panel over several samples), planes that end inside a panel, and one over kNC
// (400 columns: AVX2's 256 and AVX-512's 384); two groups; slices that start inside the rows
// and columns.
TEST(PackedIm2col, PointwisePanelsEqualPackedInput) {
  Rng rng = testing::seeded_rng(733);
  for (const Index hw : {Index{2}, Index{7}, Index{20}}) {
    ConvGeometry g;
    g.n = 5, g.c = 2 * 37, g.h = hw, g.w = hw, g.oc = 8, g.kh = g.kw = 1, g.oh = g.ow = hw, g.groups = 2;
    ASSERT_TRUE(g.is_pointwise());
    const Tensor<float> x = testing::ref::uniform<float>(Shape{g.n, g.c, g.h, g.w}, rng);
    const Index k = g.col_rows(), plane = g.out_plane(), cols = g.n * plane, in_sample = g.c * g.in_plane();
    for (Index grp = 0; grp < g.groups; ++grp) {
      const std::vector<float> col = column_matrix(g, x, grp);
      const packed::PointwiseB b{x.data() + grp * g.cg() * g.in_plane(), in_sample, plane};
      const auto check = [&](Index p0, Index kc, Index j0, Index nc) {
        EXPECT_TRUE(same_panels(col, cols, b, p0, kc, j0, nc)) << "plane " << plane << " group " << grp;
      };
      check(0, k, 0, cols);
      check(5, k - 7, 3, cols - 4);
      check(1, 9, plane + 1, std::min<Index>(cols - plane - 1, 2 * packed::kNR + 3));
    }
  }
}

/// The float forward against the naive reference, and the data gradient (whose flipped path
/// is a forward convolution too) against its reference.
void expect_conv_matches_reference(Index n, Index c, Index h, Index w, Index oc, Index kh, Index kw,
                                   const ops::Conv2dParams& p, std::uint64_t seed) {
  Rng rng = testing::seeded_rng(seed);
  const Tensor<float> x = testing::ref::uniform<float>(Shape{n, c, h, w}, rng);
  const Tensor<float> weight = testing::ref::uniform<float>(Shape{oc, c / p.groups, kh, kw}, rng);
  const Tensor<float> bias = testing::ref::uniform<float>(Shape{oc}, rng);
  ops::Workspace<float> ws;
  const Tensor<float> y = ops::conv2d_forward(x, weight, &bias, p, ws);
  EXPECT_TRUE(testing::ref::all_close(y, testing::ref::conv2d_forward(x, weight, &bias, p), 1e-4))
      << "forward, x " << x.shape() << " w " << weight.shape();
  const Tensor<float> dy = testing::ref::uniform<float>(y.shape(), rng);
  EXPECT_TRUE(testing::ref::all_close(ops::conv2d_backward_data(dy, weight, x.shape(), p, ws),
                                      testing::ref::conv2d_backward_data(dy, weight, x.shape(), p), 1e-4))
      << "data gradient, x " << x.shape() << " w " << weight.shape();
}

TEST(PackedIm2col, ConvolutionsMatchReference) {
  ops::Conv2dParams same;
  same.pad_h = same.pad_w = 1;
  // Every case but the pointwise one has at least kMinIm2colPackedRows rows of the column
  // matrix (8 channels of 3x3 per group: 72), so the forward packs with Im2colB where the CPU
  // allows; the pointwise one packs with PointwiseB.
  // And more output channels than the direct kernels take (ops/direct_conv.h: 16), or groups
  // or column strides they do not take.
  static_assert(packed::kMinIm2colPackedRows <= 72, "the cases below must reach Im2colB");
#ifdef CONVKIT_DIRECT_CONV
  static_assert(ops::detail::direct::kMaxChannels < 18, "the cases below must not take the direct kernels");
#endif
  // 7x7 planes: chunks of samples share a GEMM (AVX-512: 20 = 7 + 7 + 6 after spreading).
  expect_conv_matches_reference(20, 8, 7, 7, 18, 3, 3, same, 1);
  // Groups of 8 input and 8 output channels; the data gradient is the flipped convolution.
  ops::Conv2dParams grouped = same;
  grouped.groups = 2;
  expect_conv_matches_reference(2, 16, 24, 21, 16, 3, 3, grouped, 2);
  // Stride 2 with dilation 2 and padding 2.
  ops::Conv2dParams strided;
  strided.stride_h = strided.stride_w = 2, strided.pad_h = strided.pad_w = 2;
  strided.dilation_h = strided.dilation_w = 2;
  expect_conv_matches_reference(3, 8, 19, 17, 8, 3, 3, strided, 3);
  // Pointwise with 7x7 planes: chunks of samples share a GEMM, B packed by PointwiseB.
  ASSERT_TRUE(ops::detail::pointwise_forward_packed(
      ops::conv2d_geometry(Shape{20, 24, 7, 7}, Shape{18, 24, 1, 1}, ops::Conv2dParams{})));
  expect_conv_matches_reference(20, 24, 7, 7, 18, 1, 1, ops::Conv2dParams{}, 5);
  // A plane of 1,600 columns: several column blocks of one sample's GEMM, written into y.
  expect_conv_matches_reference(2, 3, 40, 40, 18, 5, 5, [] {
    ops::Conv2dParams q;
    q.pad_h = q.pad_w = 2;
    return q;
  }(), 4);
}

// Above the threading threshold with several chunks, two threads take whole chunks each in
// the forward pass (per-thread product buffers for chunks of several 7x7 samples) and in the
// col2im data gradient: the same bits as one thread.
TEST(PackedIm2col, ThreadsTakingWholeChunksGiveTheSameBits) {
#ifdef _OPENMP
  struct Case {
    Index n, c, hw, oc, k = 3;
  };
  ops::Conv2dParams pad1;
  pad1.pad_h = pad1.pad_w = 1;
  Rng rng = testing::seeded_rng(9);
  // The last case is pointwise (PointwiseB)
  for (const Case cs :
       {Case{4, 32, 32, 32}, Case{32, 64, 7, 64}, Case{8, 64, 28, 64}, Case{32, 64, 7, 64, 1}}) {
    const Tensor<float> x = testing::ref::uniform<float>(Shape{cs.n, cs.c, cs.hw, cs.hw}, rng);
    const Tensor<float> weight = testing::ref::uniform<float>(Shape{cs.oc, cs.c, cs.k, cs.k}, rng);
    const ops::Conv2dParams same = cs.k == 3 ? pad1 : ops::Conv2dParams{};
    ops::Conv2dParams strided = same;
    strided.stride_h = strided.stride_w = 2;
    const int saved = omp_get_max_threads();
    const Shape y_strided{cs.n, cs.oc, (cs.hw - 1) / 2 + 1, (cs.hw - 1) / 2 + 1};
    const Tensor<float> dy = testing::ref::uniform<float>(y_strided, rng);
    std::vector<Tensor<float>> ys, dxs;
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      ops::Workspace<float> ws;
      ys.push_back(ops::conv2d_forward(x, weight, static_cast<const Tensor<float>*>(nullptr), same, ws));
      // Strided, so by col2im, whose chunks the threads take whole too.
      dxs.push_back(ops::conv2d_backward_data(dy, weight, x.shape(), strided, ws));
    }
    omp_set_num_threads(saved);
    EXPECT_TRUE(std::equal(ys[0].begin(), ys[0].end(), ys[1].begin())) << "x " << x.shape();
    EXPECT_TRUE(std::equal(dxs[0].begin(), dxs[0].end(), dxs[1].begin())) << "x " << x.shape();
    EXPECT_TRUE(testing::ref::all_close(dxs[1], testing::ref::conv2d_backward_data(dy, weight, x.shape(), strided), 1e-4))
        << "x " << x.shape();
    EXPECT_TRUE(testing::ref::all_close(ys[1], testing::ref::conv2d_forward(x, weight, nullptr, same), 1e-4))
        << "x " << x.shape();
  }
#else
  GTEST_SKIP() << "built without OpenMP";
#endif
}

/// W' (C, OC/g, KH, KW) of weight (OC, C/g, KH, KW): the filters rotated by 180 degrees,
/// input and output channels swapped per group (ops/conv2d.h's header).
std::vector<float> flipped_filters(const Tensor<float>& weight, Index groups) {
  const Index oc = weight.shape()[0], cg = weight.shape()[1], kk = weight.shape()[2] * weight.shape()[3];
  const Index ocg = oc / groups;
  std::vector<float> wf(static_cast<std::size_t>(weight.numel()));
  for (Index grp = 0; grp < groups; ++grp)
    for (Index o = 0; o < ocg; ++o)
      for (Index c = 0; c < cg; ++c)
        for (Index t = 0; t < kk; ++t)
          wf[static_cast<std::size_t>(((grp * cg + c) * ocg + o) * kk + kk - 1 - t)] =
              weight.data()[((grp * ocg + o) * cg + c) * kk + t];
  return wf;
}

// FlippedFiltersA packs the data gradient's A from W: bit for bit the panels pack_a_panel
// makes from a copy of W', for every panel (partial ones too: 25 and 7 rows) and for slices
// that start inside a filter's taps, 3x3, 5x5, 2x3 and pointwise filters, two groups. The
// buffers hold exactly kc·kMR floats, so a whole-vector store past the last row would show
// in the sanitized build.
TEST(PackedIm2col, FlippedFilterPanelsEqualPackedCopy) {
  struct Case {
    Index oc, cg, kh, kw, groups;
  };
  Rng rng = testing::seeded_rng(77);
  for (const Case cs :
       {Case{6, 25, 3, 3, 1}, Case{10, 7, 5, 5, 2}, Case{9, 16, 2, 3, 1}, Case{40, 25, 1, 1, 1}}) {
    const Tensor<float> weight = testing::ref::uniform<float>(Shape{cs.oc, cs.cg, cs.kh, cs.kw}, rng);
    const std::vector<float> wf = flipped_filters(weight, cs.groups);
    const Index ocg = cs.oc / cs.groups, kk = cs.kh * cs.kw, k = ocg * kk;
    for (Index grp = 0; grp < cs.groups; ++grp) {
      const packed::FlippedFiltersA from_w{weight.data() + grp * ocg * cs.cg * kk, cs.cg, kk};
      const packed::MatrixA from_copy{false, cs.cg, 1.0f, wf.data() + grp * cs.cg * k, k};
      for (Index r = 0; r < packed::panels_of(cs.cg); ++r)
        for (const auto& [p0, kc] :
             {std::pair<Index, Index>{0, k}, {1, k - 1}, {k / 2 + 1, k - k / 2 - 1}, {k - 1, 1}}) {
          std::vector<float> want(static_cast<std::size_t>(kc * packed::kMR), -7.0f), got(want.size(), -9.0f);
          from_copy(r, p0, kc, want.data());
          from_w(r, p0, kc, got.data());
          const auto bad = std::mismatch(want.begin(), want.end(), got.begin());
          EXPECT_TRUE(bad.first == want.end())
              << "oc " << cs.oc << " cg " << cs.cg << " " << cs.kh << "x" << cs.kw << " group " << grp
              << " panel " << r << " slice [" << p0 << ", " << p0 + kc << "): first difference at "
              << (bad.first - want.begin());
        }
    }
  }
}

// The data gradient packs its flipped filters from W where its convolution takes the packed
// GEMM: the same bits as that convolution of dY with a copy of W' (the route for the other
// layers), for chunks of 7x7 samples that share W' packed once, a plane of several column
// blocks, two groups, a pointwise layer, on one and two threads.
TEST(PackedIm2col, FlippedDataGradientGivesTheBitsOfCopiedFilters) {
  struct Case {
    Index n, c, hw, oc, k, groups;
  };
  Rng rng = testing::seeded_rng(78);
  for (const Case cs : {Case{20, 30, 7, 16, 3, 1}, Case{2, 24, 40, 20, 3, 1}, Case{3, 32, 20, 16, 3, 2},
                        Case{20, 40, 7, 24, 1, 1}, Case{17, 96, 7, 96, 3, 1}}) {
    ops::Conv2dParams p;
    p.pad_h = p.pad_w = cs.k / 2;
    p.groups = cs.groups;
    const Shape in{cs.n, cs.c, cs.hw, cs.hw};
    const Tensor<float> weight =
        testing::ref::uniform<float>(Shape{cs.oc, cs.c / cs.groups, cs.k, cs.k}, rng);
    const ConvGeometry g = ops::conv2d_geometry(in, weight.shape(), p);
    const ConvGeometry back = ops::detail::flipped_geometry(g);
    ASSERT_FALSE(ops::detail::backward_data_by_col2im(g)) << in;
    ASSERT_TRUE(ops::detail::forward_packed_applies(back)) << in;
#ifdef CONVKIT_DIRECT_CONV
    ASSERT_FALSE(ops::detail::direct::forward_applies(back)) << in;
#endif
    const Tensor<float> dy = testing::ref::uniform<float>(Shape{g.n, g.oc, g.oh, g.ow}, rng);
    const std::vector<float> wf = flipped_filters(weight, cs.groups);
    ops::Workspace<float> ws;
    Tensor<float> want(in);
    ops::detail::conv2d_forward_raw(dy.data(), back, wf.data(), static_cast<const float*>(nullptr),
                                    want.data(), ws);
#ifdef _OPENMP
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
#else
    for (int threads : {1}) {
#endif
      const Tensor<float> got = ops::conv2d_backward_data(dy, weight, in, p, ws);
      EXPECT_TRUE(std::equal(want.begin(), want.end(), got.begin())) << in << " threads " << threads;
      EXPECT_TRUE(testing::ref::all_close(got, testing::ref::conv2d_backward_data(dy, weight, in, p), 1e-4))
          << in;
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
  }
}

#endif

// Empty products: no input channels (y is the bias alone), and a data gradient whose flipped
// convolution has an empty output plane (an input with no rows).
TEST(PackedIm2col, EmptyProductsNeitherCrashNorLeaveGarbage) {
  Rng rng = testing::seeded_rng(12);
  ops::Workspace<float> ws;
  ops::Conv2dParams same;
  same.pad_h = same.pad_w = 1;
  const Tensor<float> x(Shape{2, 0, 5, 5});
  const Tensor<float> weight(Shape{8, 0, 3, 3});
  const Tensor<float> bias = testing::ref::uniform<float>(Shape{8}, rng);
  const Tensor<float> y = ops::conv2d_forward(x, weight, &bias, same, ws);
  ASSERT_EQ(y.shape(), Shape({2, 8, 5, 5}));
  for (Index i = 0; i < y.numel(); ++i) ASSERT_EQ(y.data()[i], bias.data()[(i / 25) % 8]) << i;
  ops::Conv2dParams wide;
  wide.pad_h = wide.pad_w = 20;
  const Tensor<float> w2 = testing::ref::uniform<float>(Shape{8, 8, 3, 3}, rng);
  const Shape in{2, 8, 0, 30};
  const ops::ConvGeometry g = ops::conv2d_geometry(in, w2.shape(), wide);
  const Tensor<float> dy = testing::ref::uniform<float>(Shape{2, 8, g.oh, g.ow}, rng);
  EXPECT_EQ(ops::conv2d_backward_data(dy, w2, in, wide, ws).shape(), in);
}

#ifndef CONVKIT_PACKED_GEMM

TEST(PackedIm2col, NotCompiledIn) { GTEST_SKIP() << "no AVX2/AVX-512 packed GEMM in this build"; }

#endif

}  // namespace
}  // namespace convkit
