// conv2d forward, data gradient and weight gradient against the naive references of
// tests/support/reference_ops.h, over a named sweep of geometries (stride, padding, dilation,
// groups, kernel sizes, non-square shapes, batch, bias).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <convkit/ops/conv2d.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

using testing::ref::all_close;

// The library's bias and grad_bias parameters are deduced pointers: a bare nullptr does not
// deduce, so the tests pass a typed one.
const Tensor<double>* const kNoBias = nullptr;
Tensor<double>* const kNoGradBias = nullptr;

struct ConvCase {
  const char* name;
  Index n, c, h, w, oc, kh, kw;
  Index sh, sw, ph, pw, dh, dw, groups;
  bool bias;

  Shape x_shape() const { return Shape{n, c, h, w}; }
  Shape w_shape() const { return Shape{oc, c / groups, kh, kw}; }
  ops::Conv2dParams params() const {
    ops::Conv2dParams p;
    p.stride_h = sh, p.stride_w = sw, p.pad_h = ph, p.pad_w = pw;
    p.dilation_h = dh, p.dilation_w = dw, p.groups = groups;
    return p;
  }
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) {
  return os << c.name << ": x (" << c.n << ", " << c.c << ", " << c.h << ", " << c.w << "), w ("
            << c.oc << ", " << c.c / c.groups << ", " << c.kh << ", " << c.kw << "), s " << c.sh
            << "x" << c.sw << ", p " << c.ph << "x" << c.pw << ", d " << c.dh << "x" << c.dw
            << ", g " << c.groups << (c.bias ? ", bias" : ", no bias");
}

// clang-format off
//  name                              n   c   h   w  oc kh kw  sh sw ph pw dh dw  g  bias
const ConvCase kCases[] = {
  {"k1_plain",                        1,  3,  5,  5,  4, 1, 1,  1, 1, 0, 0, 1, 1, 1, true},
  {"k1_stride2_odd",                  2,  4,  8,  7,  3, 1, 1,  2, 2, 0, 0, 1, 1, 1, false},
  {"k1_pad1",                         1,  2,  4,  5,  3, 1, 1,  1, 1, 1, 1, 1, 1, 1, true},
  {"k1_stride2_pad2",                 2,  3,  5,  6,  2, 1, 1,  2, 2, 2, 2, 1, 1, 1, false},
  {"k1_groups2",                      2,  6,  4,  4,  4, 1, 1,  1, 1, 0, 0, 1, 1, 2, true},
  {"k3_pad1",                         1,  3,  5,  5,  4, 3, 3,  1, 1, 1, 1, 1, 1, 1, true},
  {"k3_pad0_nonsquare_input",         2,  2,  7,  6,  3, 3, 3,  1, 1, 0, 0, 1, 1, 1, false},
  {"k3_stride2_pad1_even",            2,  3,  8,  8,  4, 3, 3,  2, 2, 1, 1, 1, 1, 1, true},
  {"k3_stride2_pad1_odd",             1,  3,  9,  7,  2, 3, 3,  2, 2, 1, 1, 1, 1, 1, false},
  {"k3_stride3_pad2",                 2,  2, 10, 11,  3, 3, 3,  3, 3, 2, 2, 1, 1, 1, true},
  {"k3_stride3_remainder2",           1,  2, 11, 13,  2, 3, 3,  3, 3, 0, 0, 1, 1, 1, false},
  {"k3_pad2_full",                    1,  2,  4,  5,  3, 3, 3,  1, 1, 2, 2, 1, 1, 1, true},
  {"k3_pad3_beyond_kernel",           1,  2,  5,  5,  3, 3, 3,  1, 1, 3, 3, 1, 1, 1, false},
  {"k3_dil2_same",                    2,  3,  9,  9,  4, 3, 3,  1, 1, 2, 2, 2, 2, 1, true},
  {"k3_dil2_stride2_pad1",            1,  2, 11, 10,  3, 3, 3,  2, 2, 1, 1, 2, 2, 1, false},
  {"k3_dil2_pad0",                    2,  2,  7,  8,  2, 3, 3,  1, 1, 0, 0, 2, 2, 1, true},
  {"k3_groups2",                      2,  4,  6,  6,  6, 3, 3,  1, 1, 1, 1, 1, 1, 2, true},
  {"k3_groups2_stride2",              1,  6,  9,  8,  4, 3, 3,  2, 2, 1, 1, 1, 1, 2, false},
  {"k3_groups3_nonsquare",            2,  6,  7, 10,  9, 3, 2,  2, 1, 1, 0, 1, 1, 3, true},
  {"k3_depthwise",                    2,  4,  7,  7,  4, 3, 3,  1, 1, 1, 1, 1, 1, 4, true},
  {"k3_depthwise_mult2_stride2",      1,  3,  8,  9,  6, 3, 3,  2, 2, 1, 1, 1, 1, 3, false},
  {"k3_depthwise_dil2",               1,  5,  9,  9,  5, 3, 3,  1, 1, 2, 2, 2, 2, 5, true},
  {"k5_pad2",                         1,  2,  9,  9,  3, 5, 5,  1, 1, 2, 2, 1, 1, 1, true},
  {"k5_stride2_pad0",                 2,  3, 12, 11,  2, 5, 5,  2, 2, 0, 0, 1, 1, 1, false},
  {"k5_stride3_pad1_dil2",            1,  2, 15, 14,  2, 5, 5,  3, 3, 1, 1, 2, 2, 1, true},
  {"k7_stride2_pad3_stem",            1,  3, 15, 16,  4, 7, 7,  2, 2, 3, 3, 1, 1, 1, true},
  {"k7_equals_input",                 2,  2,  7,  7,  3, 7, 7,  1, 1, 0, 0, 1, 1, 1, false},
  {"k7_groups2_pad1",                 1,  4, 10,  9,  4, 7, 7,  1, 1, 1, 1, 1, 1, 2, true},
  {"k1x3_row",                        1,  2,  5,  8,  3, 1, 3,  1, 1, 0, 1, 1, 1, 1, true},
  {"k3x1_stride2x1",                  2,  3,  9,  6,  2, 3, 1,  2, 1, 1, 0, 1, 1, 1, false},
  {"k2x5_all_nonsquare",              1,  2,  7, 12,  3, 2, 5,  1, 2, 1, 2, 2, 1, 1, true},
  {"k5x3_groups2_all_nonsquare",      2,  4, 11,  9,  4, 5, 3,  2, 3, 2, 1, 1, 2, 2, true},
  {"k2_stride2_even_kernel",          1,  3,  6,  7,  2, 2, 2,  2, 2, 0, 0, 1, 1, 1, false},
  {"k4_stride2_pad1",                 1,  2,  8,  8,  3, 4, 4,  2, 2, 1, 1, 1, 1, 1, true},
  {"k2_stride3_skips_pixels",         1,  2, 10, 10,  2, 2, 2,  3, 3, 0, 0, 1, 1, 1, true},
  {"tall_input",                      1,  1, 17,  3,  2, 3, 3,  1, 1, 1, 1, 1, 1, 1, true},
  {"single_row_input",                1,  2,  1, 13,  2, 1, 3,  1, 2, 0, 0, 1, 1, 1, false},
  {"single_pixel_input",              3,  4,  1,  1,  5, 3, 3,  1, 1, 1, 1, 1, 1, 1, true},
  {"batch4",                          4,  3,  6,  5,  2, 3, 3,  1, 1, 1, 1, 1, 1, 1, true},
  // per-sample columns of 64·9·52·52 elements: the batch of 3 is unfolded in two chunks
  {"batch_split_across_chunks",       3, 64, 52, 52,  4, 3, 3,  1, 1, 1, 1, 1, 1, 1, true},
  // col2im data gradient (strided) with 16·9·40·40 elements per sample: chunks of 2 and 1
  {"strided_batch_split_in_chunks",   3, 16, 80, 80,  8, 3, 3,  2, 2, 1, 1, 1, 1, 1, true},
  // stride 1, C/g >= OC/g and over 784 output positions: the flipped-filter data gradient
  {"flipped_k3_dil2_groups2",         2,  4, 24, 24,  4, 3, 3,  1, 1, 2, 2, 2, 2, 2, true},
  {"flipped_k5x3_crop_nonsquare",     1,  6, 30, 33,  3, 5, 3,  1, 1, 1, 0, 1, 1, 1, false},
  // 784 output positions but 1440·784 column elements (over two column budgets): flipped
  // filters; in float a forward of two 2-sample chunks sharing one packing of the weights
  {"flipped_small_planes_deep_columns", 4, 160, 14, 14, 16, 3, 3,  1, 1, 1, 1, 1, 1, 1, true},
  // pointwise, 784 output positions and 1400·784 column elements: col2im all the same
  {"k1_pointwise_deep_columns",       1, 1400, 28, 28, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, false},
  // 144·100·100 elements for one sample: unfolded in tiles of 36, 36 and 28 output rows
  {"strided_sample_split_in_row_tiles", 1, 16, 200, 200, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, true},
};
// clang-format on

/// The tensors of one case, drawn from a seed derived from the case's position.
struct ConvData {
  Tensor<double> x, w, b, dy;
};

ConvData make_data(const ConvCase& c, std::uint64_t seed) {
  Rng rng = testing::seeded_rng(seed);
  ConvData d;
  d.x = testing::ref::uniform<double>(c.x_shape(), rng);
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.c / c.groups * c.kh * c.kw));
  d.w = testing::ref::uniform<double>(c.w_shape(), rng, -scale, scale);
  d.b = testing::ref::uniform<double>(Shape{c.oc}, rng);
  const Index oh = testing::ref::conv_out_size(c.h, c.kh, c.sh, c.ph, c.dh);
  const Index ow = testing::ref::conv_out_size(c.w, c.kw, c.sw, c.pw, c.dw);
  d.dy = testing::ref::uniform<double>(Shape{c.n, c.oc, oh, ow}, rng);
  return d;
}

class Conv2dSweep : public ::testing::TestWithParam<ConvCase> {
 protected:
  /// 1000 + the case's position in kCases (GetParam() is a copy, so it is found by name).
  std::uint64_t seed() const {
    std::uint64_t i = 0;
    while (std::string(kCases[i].name) != GetParam().name) ++i;
    return 1000 + i;
  }

  template <typename T>
  void check_forward(double tol) {
    const ConvCase& c = GetParam();
    const ConvData d = make_data(c, seed());
    const Tensor<T> x = testing::ref::cast<T>(d.x), w = testing::ref::cast<T>(d.w),
                    b = testing::ref::cast<T>(d.b);
    const Tensor<T>* bias = c.bias ? &b : nullptr;
    ops::Workspace<T> ws;
    const Tensor<T> y = ops::conv2d_forward(x, w, bias, c.params(), ws);
    const Tensor<T> expected = testing::ref::conv2d_forward(x, w, bias, c.params());
    EXPECT_EQ(y.shape(), expected.shape());
    EXPECT_TRUE(all_close(y, expected, tol)) << c;
  }

  template <typename T>
  void check_backward_data(double tol) {
    const ConvCase& c = GetParam();
    const ConvData d = make_data(c, seed());
    const Tensor<T> w = testing::ref::cast<T>(d.w), dy = testing::ref::cast<T>(d.dy);
    ops::Workspace<T> ws;
    const Tensor<T> dx = ops::conv2d_backward_data(dy, w, c.x_shape(), c.params(), ws);
    const Tensor<T> expected = testing::ref::conv2d_backward_data(dy, w, c.x_shape(), c.params());
    EXPECT_TRUE(all_close(dx, expected, tol)) << c;
  }

  template <typename T>
  void check_backward_weight(double tol) {
    const ConvCase& c = GetParam();
    const ConvData d = make_data(c, seed());
    const Tensor<T> x = testing::ref::cast<T>(d.x), dy = testing::ref::cast<T>(d.dy);
    // Pre-filled gradients: the op must add to them, not overwrite them.
    Rng rng = testing::seeded_rng(seed() + 500);
    const Tensor<T> w0 = testing::ref::uniform<T>(c.w_shape(), rng, -2.0, 2.0);
    const Tensor<T> b0 = testing::ref::uniform<T>(Shape{c.oc}, rng, -2.0, 2.0);
    Tensor<T> gw = w0, gb = b0;
    ops::Workspace<T> ws;
    ops::conv2d_backward_weight(x, dy, c.params(), gw, c.bias ? &gb : nullptr, ws);

    const auto fresh = testing::ref::conv2d_backward_weight(x, dy, c.w_shape(), c.params());
    Tensor<T> expected_w(c.w_shape()), expected_b(Shape{c.oc});
    for (Index i = 0; i < expected_w.numel(); ++i)
      expected_w[i] = static_cast<T>(static_cast<double>(w0[i]) + fresh.weight[i]);
    for (Index i = 0; i < c.oc; ++i)
      expected_b[i] = static_cast<T>(static_cast<double>(b0[i]) + fresh.bias[i]);
    EXPECT_TRUE(all_close(gw, expected_w, tol)) << "grad_weight, " << c;
    if (c.bias) {
      EXPECT_TRUE(all_close(gb, expected_b, tol)) << "grad_bias, " << c;
    } else {
      EXPECT_TRUE(all_close(gb, b0, 0.0)) << "grad_bias passed as null must stay untouched";
    }
  }
};

TEST_P(Conv2dSweep, ForwardFloat) { check_forward<float>(1e-4); }
TEST_P(Conv2dSweep, ForwardDouble) { check_forward<double>(1e-12); }
TEST_P(Conv2dSweep, BackwardDataFloat) { check_backward_data<float>(1e-4); }
TEST_P(Conv2dSweep, BackwardDataDouble) { check_backward_data<double>(1e-12); }
TEST_P(Conv2dSweep, BackwardWeightAccumulatesFloat) { check_backward_weight<float>(1e-4); }
TEST_P(Conv2dSweep, BackwardWeightAccumulatesDouble) { check_backward_weight<double>(1e-12); }

// The oracles are consistent with the forward reference: for the linear map y = conv(x; W),
// <conv(x; W), dY> = <x, dX(dY)> = <W, dW(x, dY)>.
TEST_P(Conv2dSweep, ReferenceOraclesAreAdjointsOfReferenceForward) {
  const ConvCase& c = GetParam();
  const ConvData d = make_data(c, seed());
  const ops::Conv2dParams p = c.params();
  const Tensor<double> y = testing::ref::conv2d_forward(d.x, d.w, nullptr, p);
  ASSERT_EQ(y.shape(), d.dy.shape());
  const double lhs = testing::ref::dot(y, d.dy);
  const Tensor<double> dx = testing::ref::conv2d_backward_data(d.dy, d.w, c.x_shape(), p);
  const auto grads = testing::ref::conv2d_backward_weight(d.x, d.dy, c.w_shape(), p);
  const double tol = 1e-12 * std::max(1.0, std::abs(lhs));
  EXPECT_NEAR(testing::ref::dot(d.x, dx), lhs, tol);
  EXPECT_NEAR(testing::ref::dot(d.w, grads.weight), lhs, tol);
  double dy_sum = 0.0;
  for (double v : d.dy) dy_sum += v;
  double db_sum = 0.0;
  for (double v : grads.bias) db_sum += v;
  EXPECT_NEAR(db_sum, dy_sum, 1e-12 * std::max(1.0, std::abs(dy_sum)));
}

// The data gradient's route for the cases named for it: the four ways a stride-1 layer with
// at least as many input as output channels per group can go.
TEST(Conv2dDataGradientRoute, FlippedOnlyWhereColumnsOverflowOrPlanesAreLarge) {
  const auto by_col2im = [](const std::string& name) {
    const auto it = std::find_if(std::begin(kCases), std::end(kCases), [&name](const ConvCase& k) { return k.name == name; });
    if (it == std::end(kCases)) throw std::logic_error("no case " + name);
    return ops::detail::backward_data_by_col2im(ops::conv2d_geometry(it->x_shape(), it->w_shape(), it->params()));
  };
  EXPECT_TRUE(by_col2im("k3_dil2_pad0"));                          // few positions, small columns
  EXPECT_FALSE(by_col2im("flipped_small_planes_deep_columns"));    // 784 positions, over two budgets
  EXPECT_TRUE(by_col2im("k1_pointwise_deep_columns"));             // the same, pointwise
  EXPECT_FALSE(by_col2im("flipped_k3_dil2_groups2"));              // over 784 positions
}

// The geometry the op reports matches the reference output size (the window count).
TEST_P(Conv2dSweep, GeometryMatchesWindowCount) {
  const ConvCase& c = GetParam();
  const ops::ConvGeometry g = ops::conv2d_geometry(c.x_shape(), c.w_shape(), c.params());
  EXPECT_EQ(g.oh, testing::ref::conv_out_size(c.h, c.kh, c.sh, c.ph, c.dh));
  EXPECT_EQ(g.ow, testing::ref::conv_out_size(c.w, c.kw, c.sw, c.pw, c.dw));
  EXPECT_EQ(g.oh, ops::conv2d_output_size(c.h, c.kh, c.sh, c.ph, c.dh));
}

INSTANTIATE_TEST_SUITE_P(Sweep, Conv2dSweep, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<ConvCase>& info) {
                           return std::string(info.param.name);
                         });

// One Workspace carried through every case, big and small, in both directions: results do
// not depend on what an earlier call left in the scratch buffers.
TEST(Conv2dWorkspace, ReusedAcrossShapes) {
  ops::Workspace<double> ws;
  std::uint64_t seed = 1000;
  for (const ConvCase& c : kCases) {
    const ConvData d = make_data(c, seed++);
    const ops::Conv2dParams p = c.params();
    const Tensor<double>* bias = c.bias ? &d.b : nullptr;
    EXPECT_TRUE(all_close(ops::conv2d_forward(d.x, d.w, bias, p, ws),
                          testing::ref::conv2d_forward(d.x, d.w, bias, p), 1e-12))
        << c;
    EXPECT_TRUE(all_close(ops::conv2d_backward_data(d.dy, d.w, c.x_shape(), p, ws),
                          testing::ref::conv2d_backward_data(d.dy, d.w, c.x_shape(), p), 1e-12))
        << c;
    Tensor<double> gw(c.w_shape());
    ops::conv2d_backward_weight(d.x, d.dy, p, gw, kNoGradBias, ws);
    EXPECT_TRUE(all_close(gw, testing::ref::conv2d_backward_weight(d.x, d.dy, c.w_shape(), p).weight,
                          1e-12))
        << c;
  }
  EXPECT_GT(ws.bytes(), 0u);
}

// Hand-computed values, so the reference itself is pinned to the definition.
//   x = [1 2 3; 4 5 6; 7 8 9], w = [1 2; 3 4]
TEST(Conv2dHandComputed, StrideOneAndStrideTwoWithPadding) {
  Tensor<double> x(Shape{1, 1, 3, 3}), w(Shape{1, 1, 2, 2});
  for (Index i = 0; i < 9; ++i) x[i] = static_cast<double>(i + 1);
  for (Index i = 0; i < 4; ++i) w[i] = static_cast<double>(i + 1);
  ops::Workspace<double> ws;

  ops::Conv2dParams p;
  const Tensor<double> y = ops::conv2d_forward(x, w, kNoBias, p, ws);
  const Tensor<double> y_ref = testing::ref::conv2d_forward(x, w, nullptr, p);
  const double expected[] = {37, 47, 67, 77};
  ASSERT_EQ(y.shape(), Shape({1, 1, 2, 2}));
  for (Index i = 0; i < 4; ++i) {
    EXPECT_EQ(y[i], expected[i]) << i;
    EXPECT_EQ(y_ref[i], expected[i]) << i;
  }

  // Windows start at -1 and 1: the corners see 1, 2-3, 4-7 and the bottom-right block.
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  const Tensor<double> y2 = ops::conv2d_forward(x, w, kNoBias, p, ws);
  const Tensor<double> y2_ref = testing::ref::conv2d_forward(x, w, nullptr, p);
  const double expected2[] = {4, 18, 36, 77};
  ASSERT_EQ(y2.shape(), Shape({1, 1, 2, 2}));
  for (Index i = 0; i < 4; ++i) {
    EXPECT_EQ(y2[i], expected2[i]) << i;
    EXPECT_EQ(y2_ref[i], expected2[i]) << i;
  }

  // dX for dY = 1 everywhere at stride 2, pad 1: each input pixel gets the weight it met.
  const Tensor<double> ones(Shape{1, 1, 2, 2}, 1.0);
  const Tensor<double> dx = ops::conv2d_backward_data(ones, w, x.shape(), p, ws);
  const double expected_dx[] = {4, 3, 4, 2, 1, 2, 4, 3, 4};
  for (Index i = 0; i < 9; ++i) EXPECT_EQ(dx[i], expected_dx[i]) << i;
}

// Stride 3 with a 2x2 kernel never reads row/column 2, 5, 8 of the input: their gradient
// must be exactly zero.
TEST(Conv2dHandComputed, UnreadPixelsGetZeroGradient) {
  Rng rng = testing::seeded_rng(77);
  const Tensor<double> w = testing::ref::uniform<double>(Shape{2, 2, 2, 2}, rng);
  const Tensor<double> dy = testing::ref::uniform<double>(Shape{1, 2, 3, 3}, rng);
  ops::Conv2dParams p;
  p.stride_h = p.stride_w = 3;
  ops::Workspace<double> ws;
  const Tensor<double> dx = ops::conv2d_backward_data(dy, w, Shape{1, 2, 9, 9}, p, ws);
  for (Index c = 0; c < 2; ++c)
    for (Index r = 0; r < 9; ++r)
      for (Index col = 0; col < 9; ++col) {
        const double v = dx.at(0, c, r, col);
        if (r % 3 == 2 || col % 3 == 2)
          EXPECT_EQ(v, 0.0) << c << "," << r << "," << col;
        else
          EXPECT_NE(v, 0.0) << c << "," << r << "," << col;
      }
}

// Layers too small for split GEMMs but above kMinChunkThreadsWork give their threads whole
// chunks of samples: the unfolding forward pass, the col2im data gradient and the chunked
// weight gradient (partial sums per fixed chunk, added in chunk order). Batches that do not
// divide evenly; the same bits on one and two threads in float (close values in double), and
// the reference's values; the weight and bias gradients accumulate onto what was there.
template <typename T>
void expect_small_layers_same_on_two_threads(double tol) {
#ifdef _OPENMP
  struct Small {
    const char* name;
    Index n, c, hw, oc, k, stride, pad, groups;
  };
  const Small cases[] = {
      // The two LeNet-like layers take the direct kernels (ops/direct_conv.h) in float with
      // AVX2, except for their col2im data gradients; double (and float without AVX2) unfolds.
      {"lenet_c1_like", 11, 1, 32, 6, 5, 1, 0, 1},   // 25-row column matrix: unfolds
      {"lenet_c3_like", 13, 6, 14, 16, 5, 1, 0, 1},  // C/g < OC/g: data gradient by col2im
      {"strided_groups", 9, 8, 40, 16, 3, 2, 1, 2},  // stride 2, two groups
      {"three_outputs", 10, 8, 27, 3, 3, 1, 1, 1},   // OC < 4: float GEMMs on Eigen, fixed chunks
      // A sample's column matrix (147 x 3,600) over the budget: chunks of one sample, unfolded
      // in two tiles of rows (59 and 1).
      {"row_tiles", 3, 3, 120, 8, 7, 2, 3, 1},
  };
  static_assert(ops::detail::kMinChunkThreadsWork <= 1e6, "the cases above must reach the threaded paths");
  Rng rng = testing::seeded_rng(4242);
  for (const Small& c : cases) {
    ops::Conv2dParams p;
    p.stride_h = p.stride_w = c.stride, p.pad_h = p.pad_w = c.pad, p.groups = c.groups;
    const Shape xs{c.n, c.c, c.hw, c.hw}, ws_shape{c.oc, c.c / c.groups, c.k, c.k};
    const Tensor<T> x = testing::ref::uniform<T>(xs, rng);
    const Tensor<T> w = testing::ref::uniform<T>(ws_shape, rng);
    const Tensor<T> b = testing::ref::uniform<T>(Shape{c.oc}, rng);
    const ops::ConvGeometry g = ops::conv2d_geometry(xs, ws_shape, p);
    ASSERT_TRUE(ops::detail::weight_grad_by_chunks(g)) << c.name;
    EXPECT_EQ(ops::detail::conv_tile_rows(g) < g.oh, std::string(c.name) == "row_tiles") << c.name;
    const Tensor<T> dy = testing::ref::uniform<T>(Shape{c.n, c.oc, g.oh, g.ow}, rng);
    const Tensor<T> gw0 = testing::ref::uniform<T>(ws_shape, rng), gb0 = testing::ref::uniform<T>(Shape{c.oc}, rng);
    std::vector<Tensor<T>> ys, dxs, gws, gbs;
    const int saved = omp_get_max_threads();
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      ops::Workspace<T> ws;
      ys.push_back(ops::conv2d_forward(x, w, &b, p, ws));
      dxs.push_back(ops::conv2d_backward_data(dy, w, xs, p, ws));
      Tensor<T> gw = gw0, gb = gb0;
      ops::conv2d_backward_weight(x, dy, p, gw, &gb, ws);
      gws.push_back(gw), gbs.push_back(gb);
    }
    omp_set_num_threads(saved);
    // Float: the same bits (convkit's own GEMM never splits k). Double runs on Eigen, whose
    // blocking depends on its thread count (docs/design.md, Determinism): close, not equal.
    for (const auto* pair : {&ys, &dxs, &gws, &gbs}) {
      if constexpr (std::is_same_v<T, float>)
        EXPECT_TRUE(std::equal((*pair)[0].begin(), (*pair)[0].end(), (*pair)[1].begin())) << c.name;
      else
        EXPECT_TRUE(all_close((*pair)[0], (*pair)[1], tol)) << c.name;
    }
    EXPECT_TRUE(all_close(ys[1], testing::ref::conv2d_forward(x, w, &b, p), tol)) << c.name;
    EXPECT_TRUE(all_close(dxs[1], testing::ref::conv2d_backward_data(dy, w, xs, p), tol)) << c.name;
    const auto ref = testing::ref::conv2d_backward_weight(x, dy, ws_shape, p);
    Tensor<T> want_w = gw0, want_b = gb0;
    for (Index i = 0; i < want_w.numel(); ++i) want_w[i] += ref.weight[i];
    for (Index i = 0; i < want_b.numel(); ++i) want_b[i] += ref.bias[i];
    EXPECT_TRUE(all_close(gws[1], want_w, tol)) << c.name;
    EXPECT_TRUE(all_close(gbs[1], want_b, tol)) << c.name;
  }
#else
  (void)tol;
  GTEST_SKIP() << "built without OpenMP";
#endif
}

TEST(Conv2dThreads, SmallLayersTakeWholeChunksWithTheSameBitsFloat) { expect_small_layers_same_on_two_threads<float>(1e-4); }
TEST(Conv2dThreads, SmallLayersTakeWholeChunksWithTheSameBitsDouble) {
  expect_small_layers_same_on_two_threads<double>(1e-12);
}

// An empty batch through the chunked paths: empty gradients, the weight and bias gradients
// left as they were (no division by a chunk count of zero).
TEST(Conv2dThreads, EmptyBatchThroughTheChunkedPaths) {
  ops::Conv2dParams strided;
  strided.stride_h = strided.stride_w = 2, strided.pad_h = strided.pad_w = 1;
  Rng rng = testing::seeded_rng(4243);
  const Shape xs{0, 6, 14, 14}, wshape{16, 6, 3, 3};
  const Tensor<float> x(xs), w = testing::ref::uniform<float>(wshape, rng);
  const ops::ConvGeometry g = ops::conv2d_geometry(xs, wshape, strided);
  ASSERT_TRUE(ops::detail::backward_data_by_col2im(g));
  const Tensor<float> dy(Shape{0, 16, g.oh, g.ow});
  ops::Workspace<float> ws;
  EXPECT_EQ(ops::conv2d_forward(x, w, static_cast<const Tensor<float>*>(nullptr), strided, ws).shape(),
            Shape({0, 16, g.oh, g.ow}));
  EXPECT_EQ(ops::conv2d_backward_data(dy, w, xs, strided, ws).shape(), xs);
  const Tensor<float> gw0 = testing::ref::uniform<float>(wshape, rng), gb0 = testing::ref::uniform<float>(Shape{16}, rng);
  Tensor<float> gw = gw0, gb = gb0;
  ops::conv2d_backward_weight(x, dy, strided, gw, &gb, ws);
  EXPECT_TRUE(std::equal(gw.begin(), gw.end(), gw0.begin()));
  EXPECT_TRUE(std::equal(gb.begin(), gb.end(), gb0.begin()));
}

}  // namespace
}  // namespace convkit
