// Elementwise activations, dropout and log-softmax against scalar formulas, with saturation
// and stability at large magnitudes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include <convkit/ops/activation.h>
#include <convkit/ops/softmax.h>

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

using testing::ref::all_close;

template <typename T>
class Activation : public ::testing::Test {
 protected:
  static double tol() { return std::is_same_v<T, float> ? 2e-6 : 1e-14; }

  /// Values over [-6, 6], plus the edge cases 0, ±1e-3 and ±20.
  static Tensor<T> inputs(std::uint64_t seed) {
    Rng rng = testing::seeded_rng(seed);
    Tensor<T> x = testing::ref::uniform<T>(Shape{3, 4, 5, 6}, rng, -6.0, 6.0);
    const double edges[] = {0.0, 1e-3, -1e-3, 20.0, -20.0};
    for (Index i = 0; i < 5; ++i) x[i] = static_cast<T>(edges[i]);
    return x;
  }

  /// y[i] = f(x[i]) in long double.
  template <typename F>
  static Tensor<T> map(const Tensor<T>& x, F f) {
    Tensor<T> y(x.shape());
    for (Index i = 0; i < x.numel(); ++i)
      y[i] = static_cast<T>(f(static_cast<long double>(x[i])));
    return y;
  }
};
TYPED_TEST_SUITE(Activation, testing::Scalars);

TYPED_TEST(Activation, ReLU) {
  using T = TypeParam;
  const Tensor<T> x = TestFixture::inputs(51);
  const Tensor<T> y = ops::relu_forward(x);
  EXPECT_TRUE(all_close(y, TestFixture::map(x, [](long double v) { return v > 0 ? v : 0; }), 0.0));
  Rng rng = testing::seeded_rng(52);
  const Tensor<T> dy = testing::ref::uniform<T>(x.shape(), rng);
  const Tensor<T> dx = ops::relu_backward(dy, y);
  for (Index i = 0; i < x.numel(); ++i)
    EXPECT_EQ(dx[i], x[i] > T(0) ? dy[i] : T(0)) << "x = " << x[i];
  EXPECT_EQ(dx[0], T(0)) << "the gradient at x = 0 is 0";
}

// A NaN must not vanish into a 0 (PyTorch's relu keeps it), or a diverged run looks healthy.
TYPED_TEST(Activation, ReLUPropagatesNaN) {
  using T = TypeParam;
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Tensor<T> x(Shape{3});
  x[0] = nan;
  x[1] = T(-1);
  x[2] = T(2);
  const Tensor<T> y = ops::relu_forward(x);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], T(0));
  EXPECT_EQ(y[2], T(2));
}

TYPED_TEST(Activation, Sigmoid) {
  using T = TypeParam;
  const Tensor<T> x = TestFixture::inputs(53);
  const Tensor<T> y = ops::sigmoid_forward(x);
  auto s = [](long double v) { return 1.0L / (1.0L + std::exp(-v)); };
  EXPECT_TRUE(all_close(y, TestFixture::map(x, s), TestFixture::tol()));
  Rng rng = testing::seeded_rng(54);
  const Tensor<T> dy = testing::ref::uniform<T>(x.shape(), rng);
  Tensor<T> expected(x.shape());
  for (Index i = 0; i < x.numel(); ++i) {
    const long double sv = s(x[i]);
    expected[i] = static_cast<T>(dy[i] * sv * (1 - sv));
  }
  EXPECT_TRUE(all_close(ops::sigmoid_backward(dy, y), expected, TestFixture::tol()));
}

TYPED_TEST(Activation, SigmoidSaturatesExactlyAndStaysFinite) {
  using T = TypeParam;
  Tensor<T> x(Shape{6});
  const double values[] = {1e4, -1e4, 50.0, -50.0};
  for (Index i = 0; i < 4; ++i) x[i] = static_cast<T>(values[i]);
  x[4] = std::numeric_limits<T>::max();
  x[5] = -std::numeric_limits<T>::max();
  const Tensor<T> y = ops::sigmoid_forward(x);
  for (Index i = 0; i < 6; ++i) EXPECT_TRUE(std::isfinite(y[i])) << x[i];
  EXPECT_EQ(y[0], T(1));
  EXPECT_EQ(y[1], T(0));
  EXPECT_EQ(y[4], T(1));
  EXPECT_EQ(y[5], T(0));
  // At -50 the value is e^-50 to full relative precision, not a rounded 0 or 1 - 1.
  const double tiny = std::exp(-50.0) / (1.0 + std::exp(-50.0));
  EXPECT_NEAR(static_cast<double>(y[3]), tiny, tiny * TestFixture::tol());
  EXPECT_GT(y[3], T(0));
  EXPECT_EQ(y[2], T(1));
  // The saturated gradient is exactly 0, not NaN.
  const Tensor<T> dx = ops::sigmoid_backward(Tensor<T>(x.shape(), T(1)), y);
  EXPECT_EQ(dx[0], T(0));
  EXPECT_EQ(dx[1], T(0));
}

TYPED_TEST(Activation, Tanh) {
  using T = TypeParam;
  const Tensor<T> x = TestFixture::inputs(55);
  const Tensor<T> y = ops::tanh_forward(x);
  EXPECT_TRUE(
      all_close(y, TestFixture::map(x, [](long double v) { return std::tanh(v); }), TestFixture::tol()));
  Rng rng = testing::seeded_rng(56);
  const Tensor<T> dy = testing::ref::uniform<T>(x.shape(), rng);
  Tensor<T> expected(x.shape());
  for (Index i = 0; i < x.numel(); ++i) {
    const long double c = std::cosh(static_cast<long double>(x[i]));
    expected[i] = static_cast<T>(dy[i] / (c * c));
  }
  EXPECT_TRUE(all_close(ops::tanh_backward(dy, y), expected, TestFixture::tol()));
  Tensor<T> big(Shape{2});
  big[0] = T(1e4), big[1] = T(-1e4);
  const Tensor<T> yb = ops::tanh_forward(big);
  EXPECT_EQ(yb[0], T(1));
  EXPECT_EQ(yb[1], T(-1));
}

TYPED_TEST(Activation, SoftSign) {
  using T = TypeParam;
  const Tensor<T> x = TestFixture::inputs(57);
  const Tensor<T> y = ops::softsign_forward(x);
  EXPECT_TRUE(all_close(y, TestFixture::map(x, [](long double v) { return v / (1 + std::fabs(v)); }),
                        TestFixture::tol()));
  Rng rng = testing::seeded_rng(58);
  const Tensor<T> dy = testing::ref::uniform<T>(x.shape(), rng);
  Tensor<T> expected(x.shape());
  for (Index i = 0; i < x.numel(); ++i) {
    const long double d = 1 + std::fabs(static_cast<long double>(x[i]));
    expected[i] = static_cast<T>(dy[i] / (d * d));
  }
  EXPECT_TRUE(all_close(ops::softsign_backward(dy, x), expected, TestFixture::tol()));
  EXPECT_EQ(y[0], T(0));
  EXPECT_NEAR(static_cast<double>(y[3]), 20.0 / 21.0, 1e-6);
  EXPECT_NEAR(static_cast<double>(y[4]), -20.0 / 21.0, 1e-6);
}

// The backward of each smooth activation matches central differences of its forward.
TEST(ActivationGradient, MatchesCentralDifferences) {
  Rng rng = testing::seeded_rng(59);
  Tensor<double> x = testing::ref::uniform<double>(Shape{40}, rng, -4.0, 4.0);
  const Tensor<double> ones(x.shape(), 1.0);
  const double eps = 1e-6;
  auto check = [&](const char* what, auto forward, const Tensor<double>& analytic) {
    for (Index i = 0; i < x.numel(); ++i) {
      Tensor<double> xp = x, xm = x;
      xp[i] += eps;
      xm[i] -= eps;
      const double numeric = (forward(xp)[i] - forward(xm)[i]) / (2 * eps);
      EXPECT_NEAR(analytic[i], numeric, 1e-8) << what << " at x = " << x[i];
    }
  };
  auto sig = [](const Tensor<double>& v) { return ops::sigmoid_forward(v); };
  auto th = [](const Tensor<double>& v) { return ops::tanh_forward(v); };
  auto ss = [](const Tensor<double>& v) { return ops::softsign_forward(v); };
  auto re = [](const Tensor<double>& v) { return ops::relu_forward(v); };
  check("sigmoid", sig, ops::sigmoid_backward(ones, sig(x)));
  check("tanh", th, ops::tanh_backward(ones, th(x)));
  check("softsign", ss, ops::softsign_backward(ones, x));
  for (double& v : x)
    if (std::abs(v) < 0.01) v = 0.5;  // keep ReLU away from its kink
  check("relu", re, ops::relu_backward(ones, re(x)));
}

TEST(ActivationErrors, BackwardShapeMismatchNamesTheOp) {
  const Tensor<float> a(Shape{2, 3}), b(Shape{3, 2});
  try {
    ops::tanh_backward(a, b);
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("tanh_backward: expected grad_output (3, 2), got (2, 3)"));
  }
}

// -------------------------------------------------------------------------------------------
// Dropout

TEST(Dropout, ForwardAndBackwardApplyTheMask) {
  Rng rng = testing::seeded_rng(61);
  const double p = 0.3;
  const Tensor<double> x = testing::ref::uniform<double>(Shape{4, 50}, rng);
  const Tensor<double> dy = testing::ref::uniform<double>(x.shape(), rng);
  Tensor<double> mask(x.shape());
  Index kept = 0;
  for (double& m : mask) {
    m = rng.bernoulli(p) ? 0.0 : 1.0 / (1.0 - p);
    kept += m != 0.0;
  }
  ASSERT_GT(kept, 0);
  ASSERT_LT(kept, mask.numel());
  const Tensor<double> y = ops::dropout_forward(x, mask);
  const Tensor<double> dx = ops::dropout_backward(dy, mask);
  for (Index i = 0; i < x.numel(); ++i) {
    if (mask[i] == 0.0) {
      EXPECT_EQ(y[i], 0.0);
      EXPECT_EQ(dx[i], 0.0);
    } else {
      EXPECT_DOUBLE_EQ(y[i], x[i] / (1.0 - p));
      EXPECT_DOUBLE_EQ(dx[i], dy[i] / (1.0 - p));
    }
  }
}

// -------------------------------------------------------------------------------------------
// log_softmax

template <typename T>
class LogSoftmax : public ::testing::Test {};
TYPED_TEST_SUITE(LogSoftmax, testing::Scalars);

TYPED_TEST(LogSoftmax, MatchesFormulaOverChannelsForRankTwoAndFour) {
  using T = TypeParam;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  Rng rng = testing::seeded_rng(71);
  for (const Shape& s : {Shape{5, 7}, Shape{2, 4, 3, 5}}) {
    const Tensor<T> x = testing::ref::uniform<T>(s, rng, -5.0, 5.0);
    const Tensor<T> y = ops::log_softmax(x);
    ASSERT_EQ(y.shape(), s);
    const Index n = s[0], c = s[1], plane = x.numel() / (n * c);
    Tensor<T> expected(s);
    for (Index i = 0; i < n; ++i)
      for (Index q = 0; q < plane; ++q) {
        long double sum = 0;
        for (Index k = 0; k < c; ++k) sum += std::exp(static_cast<long double>(x[(i * c + k) * plane + q]));
        for (Index k = 0; k < c; ++k) {
          const Index at = (i * c + k) * plane + q;
          expected[at] = static_cast<T>(x[at] - std::log(sum));
        }
      }
    EXPECT_TRUE(all_close(y, expected, tol)) << s;
  }
}

TYPED_TEST(LogSoftmax, StableForHugeLogitsAndExpSumsToOne) {
  using T = TypeParam;
  Tensor<T> x(Shape{3, 4});
  const double rows[3][4] = {{1e4, -1e4, 0.0, 1e4 - 1.0},
                             {-1e4, -1e4 + 2.0, -1e4 + 1.0, -1e4},
                             {1e4, 1e4, 1e4, 1e4}};
  for (Index i = 0; i < 3; ++i)
    for (Index k = 0; k < 4; ++k) x[i * 4 + k] = static_cast<T>(rows[i][k]);
  // x − lse subtracts two numbers near 1e4, whose spacing is ~1e-3 in float.
  const double tol = std::is_same_v<T, float> ? 2e-3 : 1e-9;
  const Tensor<T> y = ops::log_softmax(x);
  for (Index i = 0; i < y.numel(); ++i) EXPECT_TRUE(std::isfinite(y[i])) << i;
  for (Index i = 0; i < 3; ++i) {
    double sum = 0.0;
    for (Index k = 0; k < 4; ++k) sum += std::exp(static_cast<double>(y[i * 4 + k]));
    EXPECT_NEAR(sum, 1.0, tol) << "row " << i;
  }
  const double lse0 = std::log1p(std::exp(-1.0));  // log(e^0 + e^-1) relative to 1e4
  EXPECT_NEAR(static_cast<double>(y[0]), -lse0, tol);
  EXPECT_NEAR(static_cast<double>(y[3]), -1.0 - lse0, tol);
  EXPECT_NEAR(static_cast<double>(y[1]), -2e4 - lse0, 1e-2);
  EXPECT_NEAR(static_cast<double>(y[2]), -1e4 - lse0, tol);
  EXPECT_NEAR(static_cast<double>(y[11]), -std::log(4.0), tol);
  // Row 1 is shifted by -1e4, so it equals log_softmax(0, 2, 1, 0).
  const double lse1 = std::log(2.0 + std::exp(2.0) + std::exp(1.0));
  EXPECT_NEAR(static_cast<double>(y[4]), -lse1, tol);
  EXPECT_NEAR(static_cast<double>(y[5]), 2.0 - lse1, tol);
  EXPECT_NEAR(static_cast<double>(y[6]), 1.0 - lse1, tol);
}

TEST(LogSoftmaxErrors, RejectsRankThree) {
  try {
    ops::log_softmax(Tensor<float>(Shape{2, 3, 4}));
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("log_softmax: expected (N, C) or (N, C, H, W)"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("got (2, 3, 4)"));
  }
}

}  // namespace
}  // namespace convkit
