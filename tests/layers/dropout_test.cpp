// Dropout: statistics of the inverted mask, evaluation mode as the identity, seeding,
// gradient checks, describe() and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>

#include <convkit/layers/dropout.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::Dropout;
using convkit::DropoutOptions;
using convkit::Index;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

template <typename T>
Tensor<T> random_tensor(const Shape& s, Rng& rng) {
  Tensor<T> t(s);
  for (T& v : t) v = static_cast<T>(rng.normal());
  return t;
}

template <typename T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.numel()) * sizeof(T)) == 0;
}

template <typename T>
Index count_differences(const Tensor<T>& a, const Tensor<T>& b) {
  Index d = 0;
  for (Index i = 0; i < a.numel(); ++i) d += a[i] != b[i];
  return d;
}

template <typename T>
class DropoutTyped : public ::testing::Test {};
TYPED_TEST_SUITE(DropoutTyped, convkit::testing::Scalars);

TYPED_TEST(DropoutTyped, TrainingStatisticsMatchP) {
  using T = TypeParam;
  // n = 2^18 ones. Each output is 0 (probability p) or 1/(1 − p), so the mean has
  // expectation 1 and standard deviation √(p / ((1 − p)·n)); the fraction of zeros has
  // expectation p and standard deviation √(p(1 − p) / n). Allow 5 standard deviations.
  const Index n = Index{1} << 18;
  for (double p : {0.5, 0.2, 0.8}) {
    Dropout<T> d(DropoutOptions(p).seed(2024));
    ASSERT_TRUE(d.is_training());  // layers start in training mode
    const Tensor<T> y = d.forward(Tensor<T>(Shape{n / 64, 4, 4, 4}, T(1)));
    const T scale = static_cast<T>(1.0 / (1.0 - p));
    double sum = 0;
    Index zeros = 0, others = 0;
    for (T v : y) {
      sum += static_cast<double>(v);
      if (v == T(0)) ++zeros;
      else if (v != scale) ++others;
    }
    const double mean = sum / static_cast<double>(n);
    const double frac = static_cast<double>(zeros) / static_cast<double>(n);
    const double mean_tol = 5 * std::sqrt(p / ((1 - p) * static_cast<double>(n)));
    const double frac_tol = 5 * std::sqrt(p * (1 - p) / static_cast<double>(n));
    EXPECT_NEAR(mean, 1.0, mean_tol) << "p = " << p;
    EXPECT_NEAR(frac, p, frac_tol) << "p = " << p;
    EXPECT_EQ(others, 0) << "every kept element is scaled by exactly 1/(1 − p); p = " << p;
    // The mask is what multiplied the input.
    ASSERT_EQ(d.mask().shape(), y.shape());
    EXPECT_TRUE(bitwise_equal(d.mask(), y));
  }
}

TYPED_TEST(DropoutTyped, TrainingOutputAndGradientAreInputTimesMask) {
  using T = TypeParam;
  Rng rng = seeded_rng(3);
  Dropout<T> d(DropoutOptions(0.25).seed(9));
  const Tensor<T> x = random_tensor<T>(Shape{4, 3, 5, 5}, rng);
  const Tensor<T> y = d.forward(x);
  const Tensor<T> g = random_tensor<T>(y.shape(), rng);
  const Tensor<T> dx = d.backward(g);
  const Tensor<T>& m = d.mask();
  Index dropped = 0;
  for (Index i = 0; i < x.numel(); ++i) {
    ASSERT_TRUE(m[i] == T(0) || m[i] == static_cast<T>(1.0 / 0.75)) << m[i];
    EXPECT_EQ(y[i], x[i] * m[i]);
    EXPECT_EQ(dx[i], g[i] * m[i]);
    dropped += m[i] == T(0);
  }
  EXPECT_GT(dropped, 0);
  EXPECT_LT(dropped, x.numel());
}

TYPED_TEST(DropoutTyped, EvalIsBitwiseIdentityAndPassesGradient) {
  using T = TypeParam;
  Rng rng = seeded_rng(4);
  Dropout<T> d(DropoutOptions(0.5).seed(1));
  d.eval();
  EXPECT_FALSE(d.is_training());
  const Tensor<T> x = random_tensor<T>(Shape{3, 4, 2, 5}, rng);
  const Tensor<T> y = d.forward(x);
  EXPECT_TRUE(bitwise_equal(x, y));
  const Tensor<T> g = random_tensor<T>(y.shape(), rng);
  EXPECT_TRUE(bitwise_equal(d.backward(g), g));
  // An evaluation forward draws nothing: back in training, the first mask equals that of a
  // fresh layer with the same seed.
  d.train();
  EXPECT_TRUE(d.is_training());
  Dropout<T> fresh(DropoutOptions(0.5).seed(1));
  const Tensor<T> yt = d.forward(x);
  EXPECT_FALSE(bitwise_equal(x, yt));
  EXPECT_TRUE(bitwise_equal(yt, fresh.forward(x)));
  d.set_training(false);
  EXPECT_TRUE(bitwise_equal(d.forward(x), x));
}

TYPED_TEST(DropoutTyped, ZeroProbabilityIsIdentityInTraining) {
  using T = TypeParam;
  Rng rng = seeded_rng(5);
  Dropout<T> d(0.0);
  const Tensor<T> x = random_tensor<T>(Shape{2, 10}, rng);
  EXPECT_TRUE(bitwise_equal(d.forward(x), x));
  EXPECT_TRUE(bitwise_equal(d.backward(x), x));
}

TYPED_TEST(DropoutTyped, SeedsDetermineMasks) {
  using T = TypeParam;
  const Tensor<T> ones(Shape{8, 256}, T(1));
  Dropout<T> a(DropoutOptions(0.5).seed(42)), b(DropoutOptions(0.5).seed(42)), c(DropoutOptions(0.5).seed(43));
  const Tensor<T> ya = a.forward(ones), yb = b.forward(ones), yc = c.forward(ones);
  EXPECT_TRUE(bitwise_equal(ya, yb));
  // Independent masks at p = 1/2 differ in about half of the 2048 places.
  EXPECT_GT(count_differences(ya, yc), 800);
  // The layer's Rng moves on: the next mask is another one ...
  const Tensor<T> ya2 = a.forward(ones);
  EXPECT_GT(count_differences(ya, ya2), 800);
  // ... and re-seeding it repeats the first.
  a.rng().seed(42);
  EXPECT_TRUE(bitwise_equal(a.forward(ones), ya));
  // The default seed is fixed too.
  Dropout<T> d1, d2;
  EXPECT_TRUE(bitwise_equal(d1.forward(ones), d2.forward(ones)));
}

TYPED_TEST(DropoutTyped, DescribeAndShape) {
  using T = TypeParam;
  EXPECT_EQ(Dropout<T>().describe(), "Dropout(p=0.5)");
  EXPECT_EQ(Dropout<T>(0.25).describe(), "Dropout(p=0.25)");
  EXPECT_EQ(Dropout<T>(DropoutOptions(0.1).seed(3)).describe(), "Dropout(p=0.1)");
  Dropout<T> d(0.3);
  EXPECT_EQ(d.output_shape(Shape{8, 4096}), (Shape{8, 4096}));
  EXPECT_EQ(d.output_shape(Shape{2, 3, 4, 5}), (Shape{2, 3, 4, 5}));
  EXPECT_TRUE(d.parameters().empty());
}

TEST(DropoutErrors, ProbabilityOutsideZeroToOneIsValueErrorNamingIt) {
  EXPECT_EQ(message_of<ValueError>([] { Dropout<float> d(-0.1); }), "Dropout: expected probability p in [0, 1), got -0.1");
  EXPECT_EQ(message_of<ValueError>([] { Dropout<float> d(1.0); }), "Dropout: expected probability p in [0, 1), got 1");
  EXPECT_EQ(message_of<ValueError>([] { Dropout<double> d(DropoutOptions(1.5)); }),
            "Dropout: expected probability p in [0, 1), got 1.5");
  EXPECT_THROW(Dropout<double>(std::nan("")), ValueError);
  EXPECT_NO_THROW(Dropout<double>(0.999));
}

TEST(DropoutErrors, BackwardBeforeForwardAndWrongGradShape) {
  Dropout<double> d(0.5);
  EXPECT_EQ(message_of<StateError>([&] { d.backward(Tensor<double>(Shape{2, 3})); }),
            "Dropout(p=0.5): backward called before forward");
  d.forward(Tensor<double>(Shape{2, 3}, 1.0));
  EXPECT_EQ(message_of<ShapeError>([&] { d.backward(Tensor<double>(Shape{2, 4})); }),
            "Dropout(p=0.5): expected grad_output (2, 3) (the last forward's output), got (2, 4)");
}

TEST(DropoutGradcheck, TrainingWithFixedMask) {
  Rng rng = seeded_rng(71);
  Dropout<double> d(DropoutOptions(0.4).seed(17));
  EXPECT_TRUE(gradcheck_layer(d, random_normal(Shape{2, 3, 4, 4}, rng), rng,
                              {1e-5, 1e-6, 1e-9, [&] { d.rng().seed(17); }}));
  // The check really ran with some elements dropped and some kept.
  Index zeros = 0;
  for (double m : d.mask()) zeros += m == 0.0;
  EXPECT_GT(zeros, 0);
  EXPECT_LT(zeros, d.mask().numel());
}

TEST(DropoutGradcheck, TrainingOnTwoDimensionalInput) {
  Rng rng = seeded_rng(72);
  Dropout<double> d(DropoutOptions(0.5).seed(5));
  EXPECT_TRUE(gradcheck_layer(d, random_normal(Shape{4, 9}, rng), rng, {1e-5, 1e-6, 1e-9, [&] { d.rng().seed(5); }}));
}

TEST(DropoutGradcheck, EvalMode) {
  Rng rng = seeded_rng(73);
  Dropout<double> d(0.5);
  d.eval();
  EXPECT_TRUE(gradcheck_layer(d, random_normal(Shape{2, 2, 3, 3}, rng), rng));
}

}  // namespace
