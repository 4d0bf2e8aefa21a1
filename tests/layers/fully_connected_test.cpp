// FullyConnected: values by hand and against a loop reference, 2-D and 4-D inputs, gradient
// checks, parameters, accumulation, describe(), output_shape() and errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <convkit/layers/fully_connected.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::FullyConnected;
using convkit::FullyConnectedOptions;
using convkit::Index;
using convkit::Parameter;
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

/// y[n, o] = b[o] + Σ_f x[n, f] · W[o, f], x read flat per sample.
template <typename T>
Tensor<T> reference_linear(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b) {
  const Index n = x.dim(0), o = w.dim(0), f = w.dim(1);
  Tensor<T> y(Shape{n, o});
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < o; ++j) {
      double s = b ? static_cast<double>((*b)[j]) : 0.0;
      for (Index k = 0; k < f; ++k) s += static_cast<double>(x[i * f + k]) * static_cast<double>(w(j, k));
      y(i, j) = static_cast<T>(s);
    }
  return y;
}

TEST(FullyConnectedForward, HandComputed) {
  FullyConnected<double> fc(3, 2);
  // W = [[1, 2, 3], [-1, 0, 1]], b = [0.5, -2]
  const double w[] = {1, 2, 3, -1, 0, 1};
  for (Index i = 0; i < 6; ++i) fc.weight().value[i] = w[i];
  fc.bias().value[0] = 0.5;
  fc.bias().value[1] = -2;
  Tensor<double> x(Shape{2, 3});
  const double xs[] = {1, 1, 1, 2, -1, 4};
  for (Index i = 0; i < 6; ++i) x[i] = xs[i];
  const Tensor<double> y = fc.forward(x);
  ASSERT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_DOUBLE_EQ(y(0, 0), 6.5);               // 1 + 2 + 3 + 0.5
  EXPECT_DOUBLE_EQ(y(0, 1), -2.0);              // −1 + 0 + 1 − 2
  EXPECT_DOUBLE_EQ(y(1, 0), 2 - 2 + 12 + 0.5);  // 12.5
  EXPECT_DOUBLE_EQ(y(1, 1), -2 + 4 - 2);        // 0
  // Backward by hand: dx = dy · W, dW = dyᵀ · x, db = Σ_n dy.
  fc.zero_grad();
  Tensor<double> g(Shape{2, 2});
  g(0, 0) = 1, g(0, 1) = 2, g(1, 0) = -1, g(1, 1) = 0.5;
  const Tensor<double> dx = fc.backward(g);
  ASSERT_EQ(dx.shape(), (Shape{2, 3}));
  EXPECT_DOUBLE_EQ(dx(0, 0), 1 * 1 + 2 * -1);
  EXPECT_DOUBLE_EQ(dx(0, 1), 1 * 2 + 2 * 0);
  EXPECT_DOUBLE_EQ(dx(0, 2), 1 * 3 + 2 * 1);
  EXPECT_DOUBLE_EQ(dx(1, 0), -1 * 1 + 0.5 * -1);
  EXPECT_DOUBLE_EQ(dx(1, 1), -1 * 2 + 0.5 * 0);
  EXPECT_DOUBLE_EQ(dx(1, 2), -1 * 3 + 0.5 * 1);
  const Tensor<double>& dw = fc.weight().grad;
  EXPECT_DOUBLE_EQ(dw(0, 0), 1 * 1 + -1 * 2);
  EXPECT_DOUBLE_EQ(dw(0, 1), 1 * 1 + -1 * -1);
  EXPECT_DOUBLE_EQ(dw(0, 2), 1 * 1 + -1 * 4);
  EXPECT_DOUBLE_EQ(dw(1, 0), 2 * 1 + 0.5 * 2);
  EXPECT_DOUBLE_EQ(dw(1, 1), 2 * 1 + 0.5 * -1);
  EXPECT_DOUBLE_EQ(dw(1, 2), 2 * 1 + 0.5 * 4);
  EXPECT_DOUBLE_EQ(fc.bias().grad[0], 0.0);
  EXPECT_DOUBLE_EQ(fc.bias().grad[1], 2.5);
}

TEST(FullyConnectedForward, FourDimensionalInputIsReadFlatAndGradientKeepsItsShape) {
  Rng rng = seeded_rng(11);
  FullyConnected<double> fc(FullyConnectedOptions(2 * 3 * 2, 5), rng);
  const Tensor<double> x4 = random_tensor<double>(Shape{3, 2, 3, 2}, rng);
  const Tensor<double> x2 = x4.reshaped(Shape{3, 12});
  const Tensor<double> y4 = fc.forward(x4);
  ASSERT_EQ(y4.shape(), (Shape{3, 5}));
  const Tensor<double> ref = reference_linear(x2, fc.weight().value, &fc.bias().value);
  for (Index i = 0; i < ref.numel(); ++i) EXPECT_NEAR(y4[i], ref[i], 1e-12);
  const Tensor<double> g = random_tensor<double>(y4.shape(), rng);
  const Tensor<double> dx4 = fc.backward(g);
  EXPECT_EQ(dx4.shape(), (Shape{3, 2, 3, 2}));
  fc.forward(x2);
  const Tensor<double> dx2 = fc.backward(g);
  ASSERT_EQ(dx2.shape(), (Shape{3, 12}));
  for (Index i = 0; i < dx2.numel(); ++i) EXPECT_EQ(dx4[i], dx2[i]);
}

TEST(FullyConnectedGradcheck, TwoDimensionalWithBias) {
  Rng rng = seeded_rng(21);
  FullyConnected<double> fc(FullyConnectedOptions(7, 4), rng);
  EXPECT_TRUE(gradcheck_layer(fc, random_normal(Shape{3, 7}, rng), rng));
}

TEST(FullyConnectedGradcheck, TwoDimensionalWithoutBias) {
  Rng rng = seeded_rng(22);
  FullyConnected<double> fc(FullyConnectedOptions(5, 3).bias(false), rng);
  EXPECT_TRUE(gradcheck_layer(fc, random_normal(Shape{4, 5}, rng), rng));
}

TEST(FullyConnectedGradcheck, FourDimensionalWithBias) {
  Rng rng = seeded_rng(23);
  FullyConnected<double> fc(FullyConnectedOptions(2 * 3 * 3, 4), rng);
  EXPECT_TRUE(gradcheck_layer(fc, random_normal(Shape{2, 2, 3, 3}, rng), rng));
}

TEST(FullyConnectedGradcheck, FourDimensionalWithoutBias) {
  Rng rng = seeded_rng(24);
  FullyConnected<double> fc(FullyConnectedOptions(3 * 2 * 2, 3).bias(false), rng);
  EXPECT_TRUE(gradcheck_layer(fc, random_normal(Shape{3, 3, 2, 2}, rng), rng));
}

TEST(FullyConnectedGradcheck, SingleSampleSingleOutput) {
  Rng rng = seeded_rng(25);
  FullyConnected<double> fc(FullyConnectedOptions(6, 1), rng);
  EXPECT_TRUE(gradcheck_layer(fc, random_normal(Shape{1, 6}, rng), rng));
}

template <typename T>
class FullyConnectedTyped : public ::testing::Test {};
TYPED_TEST_SUITE(FullyConnectedTyped, convkit::testing::Scalars);

TYPED_TEST(FullyConnectedTyped, ForwardMatchesReferenceAndDoubleLayer) {
  using T = TypeParam;
  FullyConnected<T> fc(FullyConnectedOptions(40, 12), Rng(5));
  FullyConnected<double> fd(FullyConnectedOptions(40, 12), Rng(5));
  for (Index i = 0; i < fd.weight().value.numel(); ++i)
    ASSERT_EQ(fc.weight().value[i], static_cast<T>(fd.weight().value[i]));
  Rng rng = seeded_rng(31);
  const Tensor<double> xd = random_tensor<double>(Shape{6, 40}, rng);
  Tensor<T> xt(xd.shape());
  for (Index i = 0; i < xd.numel(); ++i) xt[i] = static_cast<T>(xd[i]);
  const Tensor<T> yt = fc.forward(xt);
  const Tensor<T> ref = reference_linear(xt, fc.weight().value, &fc.bias().value);
  const Tensor<double> yd = fd.forward(xd);
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  for (Index i = 0; i < yd.numel(); ++i) {
    EXPECT_NEAR(static_cast<double>(yt[i]), static_cast<double>(ref[i]), tol) << i;
    EXPECT_NEAR(static_cast<double>(yt[i]), yd[i], 1e-5) << i;
  }
}

TYPED_TEST(FullyConnectedTyped, OutputShapesAndDescribe) {
  using T = TypeParam;
  FullyConnected<T> fc(400, 120);
  EXPECT_EQ(fc.describe(), "FullyConnected(400->120)");
  EXPECT_EQ(fc.output_shape(Shape{8, 400}), (Shape{8, 120}));
  EXPECT_EQ(fc.output_shape(Shape{8, 16, 5, 5}), (Shape{8, 120}));
  EXPECT_EQ(fc.output_shape(Shape{1, 400, 1, 1}), (Shape{1, 120}));
  EXPECT_EQ(FullyConnected<T>(FullyConnectedOptions(4, 3).bias(false)).describe(),
            "FullyConnected(4->3, bias=false)");
}

TYPED_TEST(FullyConnectedTyped, ParametersNamesShapesAndInitialBounds) {
  using T = TypeParam;
  FullyConnected<T> fc(FullyConnectedOptions(25, 10), Rng(3));
  std::vector<Parameter<T>*> ps = fc.parameters();
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0]->name, "weight");
  EXPECT_EQ(ps[0]->value.shape(), (Shape{10, 25}));
  EXPECT_FALSE(ps[0]->has_grad());  // allocated by the first backward
  EXPECT_EQ(ps[0]->ensure_grad().shape(), (Shape{10, 25}));
  EXPECT_EQ(ps[1]->name, "bias");
  EXPECT_EQ(ps[1]->value.shape(), (Shape{10}));
  const double bound = 1.0 / std::sqrt(25.0);
  double max_abs = 0;
  for (T v : ps[0]->value) max_abs = std::max(max_abs, std::abs(static_cast<double>(v)));
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.5 * bound);
  for (T v : ps[1]->value) EXPECT_LE(std::abs(static_cast<double>(v)), bound);

  FullyConnected<T> nb(FullyConnectedOptions(25, 10).bias(false));
  ps = nb.parameters();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0]->name, "weight");
  EXPECT_EQ(message_of<StateError>([&] { nb.bias(); }),
            "FullyConnected(25->10, bias=false): has no bias (built with bias(false))");
  std::vector<convkit::NamedParameter<T>> prefixed;
  fc.collect_parameters(prefixed, "classifier.6.");
  ASSERT_EQ(prefixed.size(), 2u);
  EXPECT_EQ(prefixed[0].name, "classifier.6.weight");
  EXPECT_EQ(prefixed[0].param, &fc.weight());
  EXPECT_EQ(prefixed[1].name, "classifier.6.bias");
  EXPECT_EQ(prefixed[1].param, &fc.bias());
  EXPECT_EQ(fc.weight().name, "weight");
  EXPECT_EQ(fc.parameter_count(), 25 * 10 + 10);
  EXPECT_EQ(nb.parameter_count(), 25 * 10);
  EXPECT_EQ(fc.multiply_adds(Shape{8, 25}), 8 * 10 * 25);
  EXPECT_EQ(fc.multiply_adds(Shape{8, 1, 5, 5}), 8 * 10 * 25);
}

TEST(FullyConnectedParameters, GradientsAccumulateAndZeroGradClears) {
  Rng rng = seeded_rng(41);
  FullyConnected<double> fc(FullyConnectedOptions(6, 4), rng);
  const Tensor<double> x = random_tensor<double>(Shape{3, 6}, rng);
  const Tensor<double> g = random_tensor<double>(fc.forward(x).shape(), rng);
  fc.backward(g);
  const Tensor<double> w1 = fc.weight().grad, b1 = fc.bias().grad;
  for (Index j = 0; j < 4; ++j) EXPECT_NEAR(b1[j], g(0, j) + g(1, j) + g(2, j), 1e-14);
  fc.backward(g);
  for (Index i = 0; i < w1.numel(); ++i) EXPECT_NEAR(fc.weight().grad[i], 2 * w1[i], 1e-12);
  for (Index i = 0; i < b1.numel(); ++i) EXPECT_NEAR(fc.bias().grad[i], 2 * b1[i], 1e-12);
  fc.zero_grad();
  for (double v : fc.weight().grad) ASSERT_EQ(v, 0.0);
  for (double v : fc.bias().grad) ASSERT_EQ(v, 0.0);
}

TEST(FullyConnectedErrors, WrongFeatureCount) {
  FullyConnected<float> fc(400, 120);
  EXPECT_EQ(message_of<ShapeError>([&] { fc.forward(Tensor<float>(Shape{8, 300})); }),
            "FullyConnected(400->120): expected input (N, 400) or (N, C, H, W) with C·H·W = 400, got (8, 300)");
  const std::string msg = message_of<ShapeError>([&] { fc.forward(Tensor<float>(Shape{8, 16, 5, 4})); });
  EXPECT_EQ(msg.rfind("FullyConnected(400->120): expected input (N, 400)", 0), 0u) << msg;
  EXPECT_NE(msg.find("got (8, 16, 5, 4)"), std::string::npos) << msg;
}

TEST(FullyConnectedErrors, WrongRank) {
  FullyConnected<double> fc(12, 3);
  for (const Shape& s : {Shape{12}, Shape{2, 2, 6}, Shape{}}) {
    const std::string msg = message_of<ShapeError>([&] { fc.output_shape(s); });
    EXPECT_EQ(msg.rfind("FullyConnected(12->3): expected input (N, 12)", 0), 0u) << msg;
    EXPECT_NE(msg.find("got " + s.to_string()), std::string::npos) << msg;
  }
}

TEST(FullyConnectedErrors, BadFeatureCountsAreValueErrors) {
  EXPECT_EQ(message_of<ValueError>([] { FullyConnected<float> f(0, 3); }),
            "FullyConnected: expected in_features >= 1 and out_features >= 1, got 0 and 3");
  EXPECT_EQ(message_of<ValueError>([] { FullyConnected<float> f(4, -1); }),
            "FullyConnected: expected in_features >= 1 and out_features >= 1, got 4 and -1");
}

TEST(FullyConnectedErrors, BackwardBeforeForwardAndWrongGradShape) {
  FullyConnected<double> fc(400, 120);
  EXPECT_EQ(message_of<StateError>([&] { fc.backward(Tensor<double>(Shape{2, 120})); }),
            "FullyConnected(400->120): backward called before forward");
  fc.forward(Tensor<double>(Shape{2, 16, 5, 5}));
  EXPECT_EQ(message_of<ShapeError>([&] { fc.backward(Tensor<double>(Shape{2, 121})); }),
            "FullyConnected(400->120): expected grad_output (2, 120) (the last forward's output), got (2, 121)");
}

}  // namespace
