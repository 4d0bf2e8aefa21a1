// ReLU, Sigmoid, Tanh, SoftSign: values by hand, stability for large |x|, gradient checks,
// shapes, names and the shared Layer errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <convkit/layers/relu.h>
#include <convkit/layers/sigmoid.h>
#include <convkit/layers/soft_sign.h>
#include <convkit/layers/tanh.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::Index;
using convkit::Layer;
using convkit::ReLU;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::Sigmoid;
using convkit::SoftSign;
using convkit::StateError;
using convkit::Tanh;
using convkit::Tensor;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_away_from_zero;
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
class ActivationTyped : public ::testing::Test {
 protected:
  static double tol() { return std::is_same<T, float>::value ? 1e-6 : 1e-15; }
};
TYPED_TEST_SUITE(ActivationTyped, convkit::testing::Scalars);

TYPED_TEST(ActivationTyped, ReLUValuesAndGradient) {
  using T = TypeParam;
  ReLU<T> relu;
  const Tensor<T> x = from_values<T>(Shape{1, 5}, {-2.0, -0.0, 0.0, 0.25, 3.0});
  const Tensor<T> y = relu.forward(x);
  const double expect_y[] = {0, 0, 0, 0.25, 3};
  for (Index i = 0; i < 5; ++i) EXPECT_EQ(static_cast<double>(y[i]), expect_y[i]) << i;
  const Tensor<T> dx = relu.backward(from_values<T>(Shape{1, 5}, {1, 2, 3, 4, 5}));
  // The gradient at 0 is 0, as in PyTorch.
  const double expect_dx[] = {0, 0, 0, 4, 5};
  for (Index i = 0; i < 5; ++i) EXPECT_EQ(static_cast<double>(dx[i]), expect_dx[i]) << i;
}

TYPED_TEST(ActivationTyped, SigmoidValuesAndGradient) {
  using T = TypeParam;
  Sigmoid<T> s;
  // σ(0) = 1/2, σ(log 3) = 3/4, σ(−log 3) = 1/4
  const Tensor<T> x = from_values<T>(Shape{3}, {0.0, std::log(3.0), -std::log(3.0)});
  const Tensor<T> y = s.forward(x);
  EXPECT_NEAR(static_cast<double>(y[0]), 0.5, this->tol());
  EXPECT_NEAR(static_cast<double>(y[1]), 0.75, this->tol());
  EXPECT_NEAR(static_cast<double>(y[2]), 0.25, this->tol());
  const Tensor<T> dx = s.backward(from_values<T>(Shape{3}, {1.0, 2.0, -4.0}));
  EXPECT_NEAR(static_cast<double>(dx[0]), 0.25, this->tol());                // 1 · ½ · ½
  EXPECT_NEAR(static_cast<double>(dx[1]), 2.0 * 0.75 * 0.25, this->tol());   // 0.375
  EXPECT_NEAR(static_cast<double>(dx[2]), -4.0 * 0.25 * 0.75, this->tol());  // −0.75
}

TYPED_TEST(ActivationTyped, SigmoidIsFiniteForLargeInputs) {
  using T = TypeParam;
  Sigmoid<T> s;
  const Tensor<T> y = s.forward(from_values<T>(Shape{4}, {1e4, -1e4, 80.0, -80.0}));
  EXPECT_EQ(static_cast<double>(y[0]), 1.0);
  EXPECT_EQ(static_cast<double>(y[1]), 0.0);
  EXPECT_EQ(static_cast<double>(y[2]), 1.0);
  EXPECT_TRUE(std::isfinite(static_cast<double>(y[3])));
  EXPECT_GE(static_cast<double>(y[3]), 0.0);
  EXPECT_LT(static_cast<double>(y[3]), 1e-30);
  const Tensor<T> dx = s.backward(Tensor<T>(Shape{4}, T(1)));
  for (Index i = 0; i < 4; ++i) {
    EXPECT_TRUE(std::isfinite(static_cast<double>(dx[i])));
    EXPECT_LT(std::abs(static_cast<double>(dx[i])), 1e-30);
  }
}

TYPED_TEST(ActivationTyped, TanhValuesAndGradient) {
  using T = TypeParam;
  Tanh<T> t;
  // tanh(log 2) = (4 − 1)/(4 + 1) = 0.6
  const Tensor<T> y = t.forward(from_values<T>(Shape{2, 2}, {0.0, std::log(2.0), -std::log(2.0), 1e4}));
  EXPECT_EQ(static_cast<double>(y[0]), 0.0);
  EXPECT_NEAR(static_cast<double>(y[1]), 0.6, this->tol());
  EXPECT_NEAR(static_cast<double>(y[2]), -0.6, this->tol());
  EXPECT_EQ(static_cast<double>(y[3]), 1.0);
  const Tensor<T> dx = t.backward(from_values<T>(Shape{2, 2}, {3.0, 1.0, 2.0, 5.0}));
  EXPECT_NEAR(static_cast<double>(dx[0]), 3.0, this->tol());
  EXPECT_NEAR(static_cast<double>(dx[1]), 0.64, 4 * this->tol());
  EXPECT_NEAR(static_cast<double>(dx[2]), 1.28, 4 * this->tol());
  EXPECT_EQ(static_cast<double>(dx[3]), 0.0);
}

TYPED_TEST(ActivationTyped, SoftSignValuesAndGradient) {
  using T = TypeParam;
  SoftSign<T> s;
  const Tensor<T> y = s.forward(from_values<T>(Shape{4}, {3.0, -1.0, 0.0, -0.25}));
  EXPECT_NEAR(static_cast<double>(y[0]), 0.75, this->tol());
  EXPECT_NEAR(static_cast<double>(y[1]), -0.5, this->tol());
  EXPECT_EQ(static_cast<double>(y[2]), 0.0);
  EXPECT_NEAR(static_cast<double>(y[3]), -0.2, this->tol());
  const Tensor<T> dx = s.backward(from_values<T>(Shape{4}, {1.0, 1.0, 2.0, 1.0}));
  EXPECT_NEAR(static_cast<double>(dx[0]), 1.0 / 16, this->tol());
  EXPECT_NEAR(static_cast<double>(dx[1]), 0.25, this->tol());
  EXPECT_NEAR(static_cast<double>(dx[2]), 2.0, this->tol());
  EXPECT_NEAR(static_cast<double>(dx[3]), 0.64, this->tol());
}

TYPED_TEST(ActivationTyped, ShapesAreKeptAndNamesAreRight) {
  using T = TypeParam;
  ReLU<T> r;
  Sigmoid<T> s;
  Tanh<T> t;
  SoftSign<T> ss;
  const std::vector<std::pair<Layer<T>*, const char*>> layers = {
      {&r, "ReLU"}, {&s, "Sigmoid"}, {&t, "Tanh"}, {&ss, "SoftSign"}};
  for (const auto& [layer, name] : layers) {
    EXPECT_EQ(layer->describe(), name);
    EXPECT_TRUE(layer->parameters().empty()) << name;
    for (const Shape& shape : {Shape{7}, Shape{2, 3}, Shape{2, 3, 4, 5}, Shape{0, 3}})
      EXPECT_EQ(layer->output_shape(shape), shape) << name;
    const Tensor<T> y = layer->forward(Tensor<T>(Shape{2, 3, 1, 2}, T(0.5)));
    EXPECT_EQ(y.shape(), (Shape{2, 3, 1, 2})) << name;
    EXPECT_EQ(layer->backward(Tensor<T>(y.shape(), T(1))).shape(), y.shape()) << name;
  }
}

TEST(ActivationForward, FloatMatchesDouble) {
  Rng rng = seeded_rng(55);
  const Tensor<double> xd = random_normal(Shape{2, 3, 4, 4}, rng);
  Tensor<float> xf(xd.shape());
  for (Index i = 0; i < xd.numel(); ++i) xf[i] = static_cast<float>(xd[i] * 3);
  Tensor<double> xd3(xd.shape());
  for (Index i = 0; i < xd.numel(); ++i) xd3[i] = static_cast<double>(xf[i]);
  ReLU<float> rf;
  ReLU<double> rd;
  Sigmoid<float> sf;
  Sigmoid<double> sd;
  Tanh<float> tf;
  Tanh<double> td;
  SoftSign<float> ssf;
  SoftSign<double> ssd;
  const std::vector<std::pair<Layer<float>*, Layer<double>*>> pairs = {{&rf, &rd}, {&sf, &sd}, {&tf, &td}, {&ssf, &ssd}};
  for (const auto& [f, d] : pairs) {
    const Tensor<float> yf = f->forward(xf);
    const Tensor<double> yd = d->forward(xd3);
    for (Index i = 0; i < yd.numel(); ++i) ASSERT_NEAR(static_cast<double>(yf[i]), yd[i], 1e-6 * std::max(1.0, std::abs(yd[i]))) << f->describe() << " " << i;
  }
}

// ---------------------------------------------------------------------------------------------
// Gradient checks (double, rel 1e-6)

TEST(ActivationGradcheck, ReLU) {
  Rng rng = seeded_rng(61);
  ReLU<double> relu;
  EXPECT_TRUE(gradcheck_layer(relu, random_away_from_zero(Shape{2, 3, 4, 4}, rng), rng));
}

TEST(ActivationGradcheck, ReLUOnTwoDimensionalInput) {
  Rng rng = seeded_rng(62);
  ReLU<double> relu;
  EXPECT_TRUE(gradcheck_layer(relu, random_away_from_zero(Shape{5, 7}, rng), rng));
}

TEST(ActivationGradcheck, Sigmoid) {
  Rng rng = seeded_rng(63);
  Sigmoid<double> s;
  Tensor<double> x = random_normal(Shape{2, 3, 4, 4}, rng);
  for (double& v : x) v *= 3;  // reach the flat tails too
  EXPECT_TRUE(gradcheck_layer(s, x, rng));
}

TEST(ActivationGradcheck, Tanh) {
  Rng rng = seeded_rng(64);
  Tanh<double> t;
  Tensor<double> x = random_normal(Shape{2, 3, 4, 4}, rng);
  for (double& v : x) v *= 2;
  EXPECT_TRUE(gradcheck_layer(t, x, rng));
}

TEST(ActivationGradcheck, SoftSign) {
  // y' = 1/(1 + |x|)² has a kink at 0, so keep x away from it.
  Rng rng = seeded_rng(65);
  SoftSign<double> s;
  Tensor<double> x = random_away_from_zero(Shape{2, 3, 4, 4}, rng);
  for (double& v : x) v *= 2;
  EXPECT_TRUE(gradcheck_layer(s, x, rng));
}

// ---------------------------------------------------------------------------------------------
// Errors shared through Layer<T>

TEST(ActivationErrors, BackwardBeforeForwardNamesTheLayer) {
  ReLU<float> r;
  Sigmoid<float> s;
  Tanh<double> t;
  SoftSign<double> ss;
  EXPECT_EQ(message_of<StateError>([&] { r.backward(Tensor<float>(Shape{1, 2})); }),
            "ReLU: backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { s.backward(Tensor<float>(Shape{1, 2})); }),
            "Sigmoid: backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { t.backward(Tensor<double>(Shape{1, 2})); }),
            "Tanh: backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { ss.backward(Tensor<double>(Shape{1, 2})); }),
            "SoftSign: backward called before forward");
}

TEST(ActivationErrors, GradOutputOfWrongShape) {
  Tanh<double> t;
  t.forward(Tensor<double>(Shape{2, 3}));
  EXPECT_EQ(message_of<ShapeError>([&] { t.backward(Tensor<double>(Shape{3, 2})); }),
            "Tanh: expected grad_output (2, 3) (the last forward's output), got (3, 2)");
  ReLU<float> r;
  r.forward(Tensor<float>(Shape{1, 2, 2, 2}));
  EXPECT_EQ(message_of<ShapeError>([&] { r.backward(Tensor<float>(Shape{1, 8})); }),
            "ReLU: expected grad_output (1, 2, 2, 2) (the last forward's output), got (1, 8)");
}

TEST(ActivationForward, BackwardUsesTheLastForward) {
  // Two forwards with different inputs: backward follows the second.
  SoftSign<double> s;
  s.forward(from_values<double>(Shape{2}, {0.0, 0.0}));
  s.forward(from_values<double>(Shape{2}, {1.0, -3.0}));
  const Tensor<double> dx = s.backward(from_values<double>(Shape{2}, {1.0, 1.0}));
  EXPECT_DOUBLE_EQ(dx[0], 0.25);
  EXPECT_DOUBLE_EQ(dx[1], 1.0 / 16);
  ReLU<double> r;
  r.forward(from_values<double>(Shape{2}, {1.0, -1.0}));
  r.forward(from_values<double>(Shape{2}, {-1.0, 1.0}));
  const Tensor<double> dr = r.backward(from_values<double>(Shape{2}, {5.0, 7.0}));
  EXPECT_EQ(dr[0], 0.0);
  EXPECT_EQ(dr[1], 7.0);
}

}  // namespace
