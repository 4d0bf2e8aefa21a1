// Euclidean: 1/(2N) Σ (ŷ − y)² by hand, gradient (ŷ − y)/N, gradient check and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <convkit/losses/euclidean.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::Euclidean;
using convkit::Index;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tensor;
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
class EuclideanTyped : public ::testing::Test {};
TYPED_TEST_SUITE(EuclideanTyped, convkit::testing::Scalars);

TYPED_TEST(EuclideanTyped, HandComputed) {
  using T = TypeParam;
  // N = 2; differences 0, 1, 2, 3, 4, 5; Σ squares = 55; L = 55 / (2·2) = 13.75.
  Euclidean<T> loss;
  const T value = loss.forward(from_values<T>(Shape{2, 3}, {1, 2, 3, 4, 5, 6}), Tensor<T>(Shape{2, 3}, T(1)));
  EXPECT_EQ(static_cast<double>(value), 13.75);
  const Tensor<T> g = loss.backward();
  ASSERT_EQ(g.shape(), (Shape{2, 3}));
  const double expected[] = {0, 0.5, 1, 1.5, 2, 2.5};  // (ŷ − y) / N
  for (Index i = 0; i < 6; ++i) EXPECT_EQ(static_cast<double>(g[i]), expected[i]) << i;
}

TYPED_TEST(EuclideanTyped, DividesByBatchNotElementCount) {
  using T = TypeParam;
  // N = 4 samples of (2, 1, 1), every difference −0.5: Σ squares = 8 · 0.25 = 2, L = 2 / 8.
  Euclidean<T> loss;
  const T value = loss.forward(Tensor<T>(Shape{4, 2, 1, 1}, T(1)), Tensor<T>(Shape{4, 2, 1, 1}, T(1.5)));
  EXPECT_EQ(static_cast<double>(value), 0.25);
  const Tensor<T> g = loss.backward();
  ASSERT_EQ(g.shape(), (Shape{4, 2, 1, 1}));
  for (T v : g) EXPECT_EQ(static_cast<double>(v), -0.125);
  // Equal prediction and target: zero loss and gradient.
  EXPECT_EQ(static_cast<double>(loss.forward(Tensor<T>(Shape{3}, T(7)), Tensor<T>(Shape{3}, T(7)))), 0.0);
  for (T v : loss.backward()) EXPECT_EQ(static_cast<double>(v), 0.0);
}

TEST(Euclidean, RandomMatchesDefinitionAndFloatMatchesDouble) {
  Rng rng = seeded_rng(1);
  const Tensor<double> p = random_normal(Shape{3, 2, 2, 2}, rng), t = random_normal(Shape{3, 2, 2, 2}, rng);
  long double s = 0;
  for (Index i = 0; i < p.numel(); ++i) s += static_cast<long double>(p[i] - t[i]) * (p[i] - t[i]);
  Euclidean<double> ld;
  EXPECT_NEAR(ld.forward(p, t), static_cast<double>(s / 6), 1e-14);
  Tensor<float> pf(p.shape()), tf(t.shape());
  for (Index i = 0; i < p.numel(); ++i) pf[i] = static_cast<float>(p[i]), tf[i] = static_cast<float>(t[i]);
  Euclidean<float> lf;
  EXPECT_NEAR(static_cast<double>(lf.forward(pf, tf)), static_cast<double>(s / 6), 1e-5);
}

TEST(EuclideanGradcheck, FourDimensional) {
  Rng rng = seeded_rng(11);
  const Tensor<double> p = random_normal(Shape{2, 3, 2, 2}, rng), t = random_normal(Shape{2, 3, 2, 2}, rng);
  Euclidean<double> loss;
  loss.forward(p, t);
  const Tensor<double> analytic = loss.backward();
  EXPECT_TRUE(gradcheck_function(
      [&](const Tensor<double>& in) {
        Euclidean<double> l;
        return l.forward(in, t);
      },
      p, analytic));
}

TEST(EuclideanGradcheck, TwoDimensional) {
  Rng rng = seeded_rng(12);
  const Tensor<double> p = random_normal(Shape{5, 2}, rng), t = random_normal(Shape{5, 2}, rng);
  Euclidean<double> loss;
  loss.forward(p, t);
  const Tensor<double> analytic = loss.backward();
  EXPECT_TRUE(gradcheck_function(
      [&](const Tensor<double>& in) {
        Euclidean<double> l;
        return l.forward(in, t);
      },
      p, analytic));
}

TEST(EuclideanErrors, ShapeMismatchOrEmptyBatch) {
  Euclidean<double> loss;
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{2, 3}), Tensor<double>(Shape{2, 4})); }),
            "Euclidean: expected a target of the prediction's shape (2, 3) with at least one element, got (2, 4)");
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{0, 3}), Tensor<double>(Shape{0, 3})); }),
            "Euclidean: expected a target of the prediction's shape (0, 3) with at least one element, got (0, 3)");
  EXPECT_THROW(loss.forward(Tensor<double>(Shape{}), Tensor<double>(Shape{})), ShapeError);
}

TEST(EuclideanErrors, BackwardBeforeForward) {
  Euclidean<float> lf;
  Euclidean<double> ld;
  EXPECT_EQ(message_of<StateError>([&] { lf.backward(); }), "Euclidean: backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { ld.backward(); }), "Euclidean: backward called before forward");
}

}  // namespace
