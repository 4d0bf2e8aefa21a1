// SigmoidCrossEntropy: values by hand, stability for |x| = 1e4, gradient checks and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <convkit/losses/sigmoid_cross_entropy.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::Index;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::SigmoidCrossEntropy;
using convkit::StateError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_function;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

template <typename T>
Tensor<T> from_values(const Shape& s, const std::vector<double>& v) {
  Tensor<T> t(s);
  EXPECT_EQ(static_cast<Index>(v.size()), t.numel());
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(v[static_cast<std::size_t>(i)]);
  return t;
}

template <typename T>
class SigmoidCrossEntropyTyped : public ::testing::Test {
 protected:
  static double tol() { return std::is_same<T, float>::value ? 1e-6 : 1e-14; }
};
TYPED_TEST_SUITE(SigmoidCrossEntropyTyped, convkit::testing::Scalars);

TYPED_TEST(SigmoidCrossEntropyTyped, HandComputed) {
  using T = TypeParam;
  // σ(log 3) = 3/4. Elements:
  //   x = 0,     t = 1    → log 2
  //   x = log 3, t = 1    → −log 3/4
  //   x = log 3, t = 0    → −log 1/4
  //   x = log 3, t = 1/2  → ½(−log 3/4) + ½(−log 1/4)
  const double l3 = std::log(3.0);
  SigmoidCrossEntropy<T> loss;
  const T value = loss.forward(from_values<T>(Shape{2, 2}, {0, l3, l3, l3}), from_values<T>(Shape{2, 2}, {1, 1, 0, 0.5}));
  const double a = std::log(2.0), b = std::log(4.0 / 3.0), c = std::log(4.0);
  EXPECT_NEAR(static_cast<double>(value), (a + b + c + 0.5 * (b + c)) / 4, 2 * this->tol());
  const Tensor<T> g = loss.backward();
  ASSERT_EQ(g.shape(), (Shape{2, 2}));
  // (σ(x) − t) / M with M = 4 elements
  EXPECT_NEAR(static_cast<double>(g[0]), (0.5 - 1) / 4, this->tol());
  EXPECT_NEAR(static_cast<double>(g[1]), (0.75 - 1) / 4, this->tol());
  EXPECT_NEAR(static_cast<double>(g[2]), (0.75 - 0) / 4, this->tol());
  EXPECT_NEAR(static_cast<double>(g[3]), (0.75 - 0.5) / 4, this->tol());
}

TYPED_TEST(SigmoidCrossEntropyTyped, HugeLogitsGiveFiniteExactValues) {
  using T = TypeParam;
  // Confident and right → 0; confident and wrong → |x| = 1e4; t = 1/2 → 1e4 / 2.
  SigmoidCrossEntropy<T> loss;
  const Tensor<T> x = from_values<T>(Shape{6}, {1e4, -1e4, 1e4, -1e4, 1e4, -1e4});
  const Tensor<T> t = from_values<T>(Shape{6}, {1, 0, 0, 1, 0.5, 0.5});
  const T value = loss.forward(x, t);
  ASSERT_TRUE(std::isfinite(static_cast<double>(value)));
  // (0 + 0 + 1e4 + 1e4 + 5e3 + 5e3) / 6 = 3e4 / 6 = 5e3
  EXPECT_EQ(static_cast<double>(value), 5e3);
  const Tensor<T> g = loss.backward();
  const double expected[] = {0, 0, 1.0 / 6, -1.0 / 6, 0.5 / 6, -0.5 / 6};
  for (Index i = 0; i < 6; ++i) {
    ASSERT_TRUE(std::isfinite(static_cast<double>(g[i]))) << i;
    EXPECT_NEAR(static_cast<double>(g[i]), expected[i], this->tol()) << i;
  }
}

TYPED_TEST(SigmoidCrossEntropyTyped, ModerateLogitsMatchTheNaiveFormula) {
  using T = TypeParam;
  // For |x| <= 10 the textbook −t·log σ − (1 − t)·log(1 − σ) is accurate enough to compare.
  Rng rng = seeded_rng(5);
  const Index m = 40;
  Tensor<T> x(Shape{4, m / 4}), t(Shape{4, m / 4});
  long double expected = 0;
  for (Index i = 0; i < m; ++i) {
    x[i] = static_cast<T>(rng.uniform(-10, 10));
    t[i] = static_cast<T>(rng.uniform());
    const long double xi = x[i], ti = t[i];
    const long double s = 1 / (1 + std::exp(-xi));
    expected += -ti * std::log(s) - (1 - ti) * std::log(1 - s);
  }
  SigmoidCrossEntropy<T> loss;
  EXPECT_NEAR(static_cast<double>(loss.forward(x, t)), static_cast<double>(expected / m),
              (std::is_same<T, float>::value ? 1e-5 : 1e-12));
}

TEST(SigmoidCrossEntropyGradcheck, FourDimensionalSoftTargets) {
  Rng rng = seeded_rng(21);
  Tensor<double> x = random_normal(Shape{2, 3, 2, 2}, rng);
  for (double& v : x) v *= 3;
  Tensor<double> t(x.shape());
  for (double& v : t) v = rng.uniform();
  SigmoidCrossEntropy<double> loss;
  loss.forward(x, t);
  const Tensor<double> analytic = loss.backward();
  EXPECT_TRUE(gradcheck_function(
      [&](const Tensor<double>& in) {
        SigmoidCrossEntropy<double> l;
        return l.forward(in, t);
      },
      x, analytic));
}

TEST(SigmoidCrossEntropyGradcheck, HardTargets) {
  Rng rng = seeded_rng(22);
  const Tensor<double> x = random_normal(Shape{5, 3}, rng);
  Tensor<double> t(x.shape());
  for (double& v : t) v = rng.bernoulli(0.5) ? 1.0 : 0.0;
  SigmoidCrossEntropy<double> loss;
  loss.forward(x, t);
  const Tensor<double> analytic = loss.backward();
  EXPECT_TRUE(gradcheck_function(
      [&](const Tensor<double>& in) {
        SigmoidCrossEntropy<double> l;
        return l.forward(in, t);
      },
      x, analytic));
}

TEST(SigmoidCrossEntropyErrors, TargetOutsideZeroToOneIsValueErrorNamingIt) {
  SigmoidCrossEntropy<float> loss;
  const Tensor<float> x(Shape{2, 2});
  EXPECT_EQ(message_of<ValueError>([&] { loss.forward(x, from_values<float>(Shape{2, 2}, {0, 1, -0.5, 0})); }),
            "SigmoidCrossEntropy: target -0.5 at index 2 is outside [0, 1]");
  EXPECT_EQ(message_of<ValueError>([&] { loss.forward(x, from_values<float>(Shape{2, 2}, {1.5, 1, 0, 0})); }),
            "SigmoidCrossEntropy: target 1.5 at index 0 is outside [0, 1]");
  SigmoidCrossEntropy<double> ld;
  Tensor<double> t(Shape{3}, 0.5);
  t[1] = std::numeric_limits<double>::quiet_NaN();
  const std::string msg = message_of<ValueError>([&] { ld.forward(Tensor<double>(Shape{3}), t); });
  EXPECT_NE(msg.find("at index 1 is outside [0, 1]"), std::string::npos) << msg;
  // The bounds themselves are valid.
  EXPECT_NO_THROW(ld.forward(Tensor<double>(Shape{2}), from_values<double>(Shape{2}, {0, 1})));
}

TEST(SigmoidCrossEntropyErrors, ShapeMismatch) {
  SigmoidCrossEntropy<double> loss;
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{2, 3}), Tensor<double>(Shape{3, 2})); }),
            "SigmoidCrossEntropy: expected non-empty targets of the logits' shape (2, 3), got (3, 2)");
  EXPECT_THROW(loss.forward(Tensor<double>(Shape{0, 3}), Tensor<double>(Shape{0, 3})), ShapeError);
}

TEST(SigmoidCrossEntropyErrors, BackwardBeforeForward) {
  SigmoidCrossEntropy<float> lf;
  SigmoidCrossEntropy<double> ld;
  EXPECT_EQ(message_of<StateError>([&] { lf.backward(); }), "SigmoidCrossEntropy: backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { ld.backward(); }), "SigmoidCrossEntropy: backward called before forward");
}

}  // namespace
