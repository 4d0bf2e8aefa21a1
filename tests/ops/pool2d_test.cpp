// Max, average and global average pooling against the naive references of
// tests/support/reference_ops.h, swept over kernel, stride, padding, ceil mode and
// count_include_pad, plus output sizes and divisors PyTorch gives.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <convkit/ops/pool2d.h>

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

using testing::ref::all_close;

// -------------------------------------------------------------------------------------------
// Output size

TEST(Pool2dOutputSize, PyTorchCases) {
  // GoogLeNet's pools: 112 -> 56 with k3 s2 only in ceil mode (floor gives 55).
  EXPECT_EQ(ops::pool2d_output_size(112, 3, 2, 0, true), 56);
  EXPECT_EQ(ops::pool2d_output_size(112, 3, 2, 0, false), 55);
  EXPECT_EQ(ops::pool2d_output_size(56, 3, 2, 0, true), 28);
  EXPECT_EQ(ops::pool2d_output_size(28, 3, 2, 0, true), 14);
  EXPECT_EQ(ops::pool2d_output_size(14, 3, 2, 0, true), 7);
  EXPECT_EQ(ops::pool2d_output_size(114, 3, 2, 0, true), 57);  // pool/shapes_googlenet_v1
  EXPECT_EQ(ops::pool2d_output_size(57, 3, 2, 0, true), 28);
  // H = 5, k = 2, s = 2: the ceil mode adds the partial window over the last row.
  EXPECT_EQ(ops::pool2d_output_size(5, 2, 2, 0, true), 3);
  EXPECT_EQ(ops::pool2d_output_size(5, 2, 2, 0, false), 2);
  // Stride divides the span: ceil mode adds nothing.
  EXPECT_EQ(ops::pool2d_output_size(5, 3, 1, 0, true), 3);
  EXPECT_EQ(ops::pool2d_output_size(6, 2, 2, 0, true), 3);
  // H = 4, k = 3, s = 2, p = 1: windows start at -1, 1 and 3; the third starts on the real
  // row 3 and is kept (PyTorch: MaxPool2d(3, 2, 1, ceil_mode=True) maps 4 -> 3).
  EXPECT_EQ(ops::pool2d_output_size(4, 3, 2, 1, true), 3);
  EXPECT_EQ(ops::pool2d_output_size(4, 3, 2, 1, false), 2);
  // The third window would start at row 5 = H, in the bottom padding: dropped, 3 -> 2.
  EXPECT_EQ(ops::pool2d_output_size(5, 3, 3, 1, true), 2);
  EXPECT_EQ(ops::pool2d_output_size(5, 3, 3, 1, false), 2);
  // H = 6, k = 4, s = 4, p = 2: the window at 6 starts in the padding and is dropped.
  EXPECT_EQ(ops::pool2d_output_size(6, 4, 4, 2, true), 2);
  // No padding, stride > kernel: the window at 6 would start past the input (H = 5).
  EXPECT_EQ(ops::pool2d_output_size(5, 1, 3, 0, true), 2);
  EXPECT_EQ(ops::pool2d_output_size(5, 1, 3, 0, false), 2);
  // AlexNet / VGG / ResNet pools.
  EXPECT_EQ(ops::pool2d_output_size(55, 3, 2, 0, false), 27);
  EXPECT_EQ(ops::pool2d_output_size(224, 2, 2, 0, false), 112);
  EXPECT_EQ(ops::pool2d_output_size(112, 3, 2, 1, false), 56);
}

TEST(Pool2dOutputSize, MatchesWindowCountOfReference) {
  for (Index h = 1; h <= 12; ++h)
    for (Index k = 1; k <= 4; ++k)
      for (Index s = 1; s <= 4; ++s)
        for (Index p = 0; 2 * p <= k; ++p) {
          if (h + 2 * p < k) continue;
          for (bool ceil_mode : {false, true})
            EXPECT_EQ(ops::pool2d_output_size(h, k, s, p, ceil_mode),
                      testing::ref::pool_out_size(h, k, s, p, ceil_mode))
                << "H " << h << " k " << k << " s " << s << " p " << p << " ceil " << ceil_mode;
        }
}

// -------------------------------------------------------------------------------------------
// Hand-computed values on x = 0..15 as a 4x4 plane, k3 s2 p1, ceil mode (windows at -1, 1, 3).

Tensor<double> arange_4x4() {
  Tensor<double> x(Shape{1, 1, 4, 4});
  for (Index i = 0; i < 16; ++i) x[i] = static_cast<double>(i);
  return x;
}

ops::Pool2dParams k3s2p1_ceil(bool count_include_pad) {
  ops::Pool2dParams p;
  p.kernel_h = p.kernel_w = 3;
  p.stride_h = p.stride_w = 2;
  p.pad_h = p.pad_w = 1;
  p.ceil_mode = true;
  p.count_include_pad = count_include_pad;
  return p;
}

TEST(Pool2dHandComputed, AverageDivisorWithAndWithoutPadding) {
  const Tensor<double> x = arange_4x4();
  // Window (0, 0) covers rows/cols -1..1: pixels 0 1 4 5, all 9 positions inside the padded
  // input. Window (2, 2) covers 3..5: pixel 15 only; rows 3, 4 lie in [-1, 5), 5 beyond it.
  const Tensor<double> with_pad = ops::avg_pool2d_forward(x, k3s2p1_ceil(true));
  ASSERT_EQ(with_pad.shape(), Shape({1, 1, 3, 3}));
  EXPECT_DOUBLE_EQ(with_pad[0], 10.0 / 9.0);
  EXPECT_DOUBLE_EQ(with_pad[1], (1 + 2 + 3 + 5 + 6 + 7) / 9.0);
  EXPECT_DOUBLE_EQ(with_pad[2], (3 + 7) / 6.0);
  EXPECT_DOUBLE_EQ(with_pad[8], 15.0 / 4.0);
  const Tensor<double> without = ops::avg_pool2d_forward(x, k3s2p1_ceil(false));
  EXPECT_DOUBLE_EQ(without[0], 10.0 / 4.0);
  EXPECT_DOUBLE_EQ(without[1], (1 + 2 + 3 + 5 + 6 + 7) / 6.0);
  EXPECT_DOUBLE_EQ(without[2], (3 + 7) / 2.0);
  EXPECT_DOUBLE_EQ(without[8], 15.0);
  // The references agree with the hand values.
  EXPECT_TRUE(all_close(testing::ref::avg_pool2d_forward(x, k3s2p1_ceil(true)), with_pad, 1e-15));
  EXPECT_TRUE(all_close(testing::ref::avg_pool2d_forward(x, k3s2p1_ceil(false)), without, 1e-15));
}

TEST(Pool2dHandComputed, MaxAndArgmax) {
  const Tensor<double> x = arange_4x4();
  std::vector<Index> argmax;
  const Tensor<double> y = ops::max_pool2d_forward(x, k3s2p1_ceil(true), argmax);
  const double expected[] = {5, 7, 7, 13, 15, 15, 13, 15, 15};
  ASSERT_EQ(y.numel(), 9);
  for (Index i = 0; i < 9; ++i) {
    EXPECT_EQ(y[i], expected[i]) << i;
    EXPECT_EQ(argmax[static_cast<std::size_t>(i)], static_cast<Index>(expected[i])) << i;
  }
  // 15 is the maximum of four windows: its gradient is the sum of theirs.
  Tensor<double> dy(y.shape());
  for (Index i = 0; i < 9; ++i) dy[i] = static_cast<double>(i + 1);
  const Tensor<double> dx = ops::max_pool2d_backward(dy, argmax, x.shape());
  EXPECT_EQ(dx[15], 5.0 + 6 + 8 + 9);
  EXPECT_EQ(dx[13], 4.0 + 7);
  EXPECT_EQ(dx[7], 2.0 + 3);
  EXPECT_EQ(dx[5], 1.0);
  EXPECT_EQ(dx[0], 0.0);
}

TEST(Pool2dHandComputed, MaxPropagatesNaN) {
  Tensor<double> x = arange_4x4();
  x[5] = std::numeric_limits<double>::quiet_NaN();
  std::vector<Index> argmax;
  ops::Pool2dParams p;  // k2 s2
  const Tensor<double> y = ops::max_pool2d_forward(x, p, argmax);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(argmax[0], 5);
  EXPECT_EQ(y[1], 7.0);
}

TEST(Pool2dHandComputed, MaxTiesNaNsAndMinusInfinityTakeTheFirstPixelInRowMajorOrder) {
  // All ties: every window's maximum is its first (top-left) pixel inside the input.
  const Tensor<double> zeros(Shape{1, 1, 4, 4});
  std::vector<Index> argmax;
  ops::Pool2dParams p3;
  p3.kernel_h = p3.kernel_w = 3, p3.stride_h = p3.stride_w = 1, p3.pad_h = p3.pad_w = 1;
  ops::max_pool2d_forward(zeros, p3, argmax);
  ASSERT_EQ(argmax.size(), 16u);
  for (Index oy = 0; oy < 4; ++oy)
    for (Index ox = 0; ox < 4; ++ox)
      EXPECT_EQ(argmax[static_cast<std::size_t>(oy * 4 + ox)], std::max<Index>(oy - 1, 0) * 4 + std::max<Index>(ox - 1, 0))
          << oy << "," << ox;
  // k2 s2: window 0 holds pixels 0, 1, 4, 5; NaN at 1 and 4: the row-major first (1) wins.
  Tensor<double> x = arange_4x4();
  x[1] = x[4] = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  x[8] = x[9] = x[12] = x[13] = -inf;  // window 2: nothing beats −∞, so its first pixel
  x[3] = 7.0;                          // window 1 (2, 3, 6, 7): 7 at 3 and at 7, first is 3
  const Tensor<double> y = ops::max_pool2d_forward(x, ops::Pool2dParams{}, argmax);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(argmax[0], 1);
  EXPECT_EQ(y[1], 7.0);
  EXPECT_EQ(argmax[1], 3);
  EXPECT_EQ(y[2], -inf);
  EXPECT_EQ(argmax[2], 8);
  EXPECT_EQ(y[3], 15.0);
  EXPECT_EQ(argmax[3], 15);
}

// Rows wide enough for the vector lanes of max_pool2d_forward (8 and 4 outputs, stride 1 and
// 2, with edge columns in the padding on either side), on float data full of ties, NaNs and
// −∞: the same values and first-in-row-major-order indices as a plain scan of each window.
TEST(Pool2dHandComputed, MaxVectorLanesMatchAPlainScanWithTiesNaNsAndMinusInfinity) {
  struct Geometry {
    Index h, w, k, s, pad;
  };
  const Geometry geometries[] = {{9, 37, 2, 2, 0}, {10, 10, 2, 2, 0}, {11, 35, 3, 2, 1}, {12, 9, 3, 2, 1},
                                 {7, 30, 3, 1, 1}, {6, 13, 2, 1, 0},  {8, 21, 3, 2, 0}, {5, 11, 3, 1, 0}};
  Rng rng = testing::seeded_rng(4100);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const Geometry& g : geometries) {
    Tensor<float> x(Shape{2, 3, g.h, g.w});
    for (Index i = 0; i < x.numel(); ++i) {
      const std::uint64_t r = rng.below(40);
      x[i] = r == 0 ? nan : r == 1 ? -inf : static_cast<float>(r % 3);  // many ties
    }
    ops::Pool2dParams p;
    p.kernel_h = p.kernel_w = g.k, p.stride_h = p.stride_w = g.s, p.pad_h = p.pad_w = g.pad;
    std::vector<Index> argmax;
    const Tensor<float> y = ops::max_pool2d_forward(x, p, argmax);
    const Index oh = y.dim(2), ow = y.dim(3), plane = g.h * g.w;
    for (Index pl = 0; pl < 6; ++pl)
      for (Index oy = 0; oy < oh; ++oy)
        for (Index ox = 0; ox < ow; ++ox) {
          const Index y0 = std::max<Index>(oy * g.s - g.pad, 0), y1 = std::min(oy * g.s - g.pad + g.k, g.h);
          const Index x0 = std::max<Index>(ox * g.s - g.pad, 0), x1 = std::min(ox * g.s - g.pad + g.k, g.w);
          float best = x[pl * plane + y0 * g.w + x0];
          Index at = pl * plane + y0 * g.w + x0;
          for (Index r = y0; r < y1; ++r)
            for (Index c = x0; c < x1; ++c) {
              const float v = x[pl * plane + r * g.w + c];
              if (v > best || (std::isnan(v) && !std::isnan(best))) best = v, at = pl * plane + r * g.w + c;
            }
          const Index o = (pl * oh + oy) * ow + ox;
          const std::string where = "h " + std::to_string(g.h) + " w " + std::to_string(g.w) + " k " +
                                    std::to_string(g.k) + " s " + std::to_string(g.s) + " output " + std::to_string(o);
          EXPECT_EQ(argmax[static_cast<std::size_t>(o)], at) << where;
          if (std::isnan(best))
            EXPECT_TRUE(std::isnan(y[o])) << where;
          else
            EXPECT_EQ(y[o], best) << where;
        }
  }
}

// An input with no rows (or no columns) leaves a window of only padding, which has no
// maximum and no average: a ShapeError, as in PyTorch, rather than a read past the input.
TEST(Pool2dHandComputed, InputWithoutRowsOrColumnsIsAShapeError) {
  ops::Pool2dParams p;
  p.kernel_h = p.kernel_w = 2, p.pad_h = p.pad_w = 1;
  std::vector<Index> argmax;
  for (const Shape& s : {Shape{1, 2, 0, 4}, Shape{1, 2, 4, 0}}) {
    const Tensor<float> x(s);
    try {
      ops::max_pool2d_forward(x, p, argmax);
      ADD_FAILURE() << "no error for " << s;
    } catch (const ShapeError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("with H, W >= 1")) << e.what();
    }
    EXPECT_THROW(ops::avg_pool2d_forward(x, p), ShapeError);
  }
}

// -------------------------------------------------------------------------------------------
// Sweep

struct PoolCase {
  std::string name;
  Index n, c, h, w;
  ops::Pool2dParams p;
};

std::ostream& operator<<(std::ostream& os, const PoolCase& c) {
  return os << c.name << ": x (" << c.n << ", " << c.c << ", " << c.h << ", " << c.w << "), k "
            << c.p.kernel_h << "x" << c.p.kernel_w << ", s " << c.p.stride_h << "x" << c.p.stride_w
            << ", p " << c.p.pad_h << "x" << c.p.pad_w << (c.p.ceil_mode ? ", ceil" : ", floor")
            << (c.p.count_include_pad ? ", include pad" : ", exclude pad");
}

/// Kernel 2 and 3, stride 1, 2 and 3, padding 0 and 1, ceil and floor, with and without
/// count_include_pad, on odd/even and non-square inputs, plus a few non-square kernels.
std::vector<PoolCase> pool_cases() {
  std::vector<PoolCase> cases;
  const Index sizes[][2] = {{7, 7}, {8, 6}, {5, 9}};
  int size_i = 0;
  for (Index k : {2, 3})
    for (Index s : {1, 2, 3})
      for (Index pad : {0, 1})
        for (bool ceil_mode : {false, true})
          for (bool include_pad : {true, false}) {
            if (pad == 0 && !include_pad) continue;  // identical to include_pad without padding
            PoolCase c;
            const Index* hw = sizes[size_i++ % 3];
            c.n = 2, c.c = 3, c.h = hw[0], c.w = hw[1];
            c.p.kernel_h = c.p.kernel_w = k;
            c.p.stride_h = c.p.stride_w = s;
            c.p.pad_h = c.p.pad_w = pad;
            c.p.ceil_mode = ceil_mode;
            c.p.count_include_pad = include_pad;
            std::ostringstream name;
            name << "k" << k << "_s" << s << "_p" << pad << (ceil_mode ? "_ceil" : "_floor")
                 << (include_pad ? "_incl" : "_excl") << "_" << c.h << "x" << c.w;
            c.name = name.str();
            cases.push_back(c);
          }
  auto add = [&](const char* name, Index h, Index w, Index kh, Index kw, Index sh, Index sw,
                 Index ph, Index pw, bool ceil_mode, bool include_pad) {
    PoolCase c;
    c.name = name;
    c.n = 1, c.c = 2, c.h = h, c.w = w;
    c.p.kernel_h = kh, c.p.kernel_w = kw, c.p.stride_h = sh, c.p.stride_w = sw;
    c.p.pad_h = ph, c.p.pad_w = pw, c.p.ceil_mode = ceil_mode, c.p.count_include_pad = include_pad;
    cases.push_back(c);
  };
  add("k2x3_s1x2_p1x1_ceil_excl", 6, 9, 2, 3, 1, 2, 1, 1, true, false);
  add("k3x2_s2x1_p1x0_ceil_incl", 9, 5, 3, 2, 2, 1, 1, 0, true, true);
  add("k3x1_s3x1_p1x0_floor_excl", 10, 4, 3, 1, 3, 1, 1, 0, false, false);
  add("k4x4_s4_p2_ceil_drops_window", 6, 6, 4, 4, 4, 4, 2, 2, true, true);
  add("k3_s3_p1_ceil_drops_window", 5, 5, 3, 3, 3, 3, 1, 1, true, false);
  add("k1_s3_ceil_stride_beyond_kernel", 5, 7, 1, 1, 3, 3, 0, 0, true, true);
  add("k3_s2_ceil_googlenet_like", 13, 13, 3, 3, 2, 2, 0, 0, true, true);
  add("kernel_equals_input", 4, 5, 4, 5, 1, 1, 0, 0, false, true);
  return cases;
}

class Pool2dSweep : public ::testing::TestWithParam<PoolCase> {
 protected:
  std::uint64_t seed() const {
    const std::vector<PoolCase> all = pool_cases();
    std::uint64_t i = 0;
    while (all[i].name != GetParam().name) ++i;
    return 3000 + i;
  }
  Shape x_shape() const {
    const PoolCase& c = GetParam();
    return Shape{c.n, c.c, c.h, c.w};
  }

  template <typename T>
  void check_max(double tol) {
    const PoolCase& c = GetParam();
    Rng rng = testing::seeded_rng(seed());
    const Tensor<T> x = testing::ref::distinct<T>(x_shape(), rng);  // no ties
    std::vector<Index> argmax, ref_argmax;
    const Tensor<T> y = ops::max_pool2d_forward(x, c.p, argmax);
    EXPECT_TRUE(all_close(y, testing::ref::max_pool2d_forward(x, c.p, &ref_argmax), 0.0)) << c;
    EXPECT_EQ(argmax, ref_argmax) << c;
    const Tensor<T> dy = testing::ref::uniform<T>(y.shape(), rng);
    EXPECT_TRUE(all_close(ops::max_pool2d_backward(dy, argmax, x.shape()),
                          testing::ref::max_pool2d_backward(x, dy, c.p), tol))
        << c;
  }

  template <typename T>
  void check_avg(double tol) {
    const PoolCase& c = GetParam();
    Rng rng = testing::seeded_rng(seed());
    const Tensor<T> x = testing::ref::uniform<T>(x_shape(), rng);
    const Tensor<T> y = ops::avg_pool2d_forward(x, c.p);
    EXPECT_TRUE(all_close(y, testing::ref::avg_pool2d_forward(x, c.p), tol)) << c;
    const Tensor<T> dy = testing::ref::uniform<T>(y.shape(), rng);
    EXPECT_TRUE(all_close(ops::avg_pool2d_backward(dy, x.shape(), c.p),
                          testing::ref::avg_pool2d_backward(dy, x.shape(), c.p), tol))
        << c;
  }
};

TEST_P(Pool2dSweep, OutputShape) {
  const PoolCase& c = GetParam();
  EXPECT_EQ(ops::pool2d_output_shape(x_shape(), c.p), testing::ref::pool_out_shape(x_shape(), c.p))
      << c;
}
TEST_P(Pool2dSweep, MaxFloat) { check_max<float>(1e-6); }
TEST_P(Pool2dSweep, MaxDouble) { check_max<double>(1e-14); }
TEST_P(Pool2dSweep, AvgFloat) { check_avg<float>(1e-6); }
TEST_P(Pool2dSweep, AvgDouble) { check_avg<double>(1e-14); }

// The average backward is the adjoint of the forward: <avg(x), dy> = <x, avg_backward(dy)>.
TEST_P(Pool2dSweep, AvgBackwardIsAdjointOfForward) {
  const PoolCase& c = GetParam();
  Rng rng = testing::seeded_rng(seed() + 500);
  const Tensor<double> x = testing::ref::uniform<double>(x_shape(), rng);
  const Tensor<double> y = ops::avg_pool2d_forward(x, c.p);
  const Tensor<double> dy = testing::ref::uniform<double>(y.shape(), rng);
  const Tensor<double> dx = ops::avg_pool2d_backward(dy, x.shape(), c.p);
  EXPECT_NEAR(testing::ref::dot(y, dy), testing::ref::dot(x, dx), 1e-12) << c;
}

INSTANTIATE_TEST_SUITE_P(Sweep, Pool2dSweep, ::testing::ValuesIn(pool_cases()),
                         [](const ::testing::TestParamInfo<PoolCase>& info) { return info.param.name; });

// -------------------------------------------------------------------------------------------
// Global average pooling

template <typename T>
class GlobalAvgPool2d : public ::testing::Test {};
TYPED_TEST_SUITE(GlobalAvgPool2d, testing::Scalars);

TYPED_TEST(GlobalAvgPool2d, ForwardIsPlaneMeanAndBackwardSpreadsEvenly) {
  using T = TypeParam;
  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-14;
  Rng rng = testing::seeded_rng(41);
  const Shape xs{3, 4, 5, 7};
  const Tensor<T> x = testing::ref::uniform<T>(xs, rng);
  const Tensor<T> y = ops::global_avg_pool2d_forward(x);
  ASSERT_EQ(y.shape(), Shape({3, 4, 1, 1}));
  // The same as average pooling with a kernel covering the whole plane.
  ops::Pool2dParams whole;
  whole.kernel_h = 5, whole.kernel_w = 7, whole.stride_h = whole.stride_w = 1;
  EXPECT_TRUE(all_close(y, testing::ref::avg_pool2d_forward(x, whole), tol));
  for (Index i = 0; i < 12; ++i) {
    double s = 0.0;
    for (Index j = 0; j < 35; ++j) s += static_cast<double>(x[i * 35 + j]);
    EXPECT_NEAR(static_cast<double>(y[i]), s / 35.0, tol) << i;
  }
  const Tensor<T> dy = testing::ref::uniform<T>(y.shape(), rng);
  const Tensor<T> dx = ops::global_avg_pool2d_backward(dy, xs);
  ASSERT_EQ(dx.shape(), xs);
  EXPECT_TRUE(all_close(dx, testing::ref::avg_pool2d_backward(dy, xs, whole), tol));
  EXPECT_NEAR(static_cast<double>(dx.at(2, 3, 4, 6)), static_cast<double>(dy[11]) / 35.0, tol);
}

TEST(GlobalAvgPool2dErrors, RejectsRankThree) {
  try {
    ops::global_avg_pool2d_forward(Tensor<float>(Shape{2, 3, 4}));
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("expected input (N, C, H, W)"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("got (2, 3, 4)"));
  }
}

}  // namespace
}  // namespace convkit
