// BatchNorm2d: training forward (batch statistics) and evaluation forward (running statistics)
// against direct loops, PyTorch's running-statistics rule by hand, gradient checks in both
// modes and without affine parameters, parameters versus buffers, describe() and the errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include <convkit/containers/sequential.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/ops/batch_norm.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;
using convkit::testing::starts_with;

using convkit::BatchNorm2d;
using convkit::BatchNorm2dOptions;
using convkit::Index;
using convkit::NamedParameter;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// Per-channel mean and biased variance over (N, H, W), in double.
template <typename T>
void channel_stats(const Tensor<T>& x, std::vector<double>& mean, std::vector<double>& var) {
  const Index n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const double m = static_cast<double>(n * h * w);
  mean.assign(static_cast<std::size_t>(c), 0.0);
  var.assign(static_cast<std::size_t>(c), 0.0);
  for (Index ch = 0; ch < c; ++ch) {
    double s = 0.0;
    for (Index i = 0; i < n; ++i)
      for (Index r = 0; r < h; ++r)
        for (Index q = 0; q < w; ++q) s += static_cast<double>(x(i, ch, r, q));
    const double mu = s / m;
    double sq = 0.0;
    for (Index i = 0; i < n; ++i)
      for (Index r = 0; r < h; ++r)
        for (Index q = 0; q < w; ++q) {
          const double d = static_cast<double>(x(i, ch, r, q)) - mu;
          sq += d * d;
        }
    mean[static_cast<std::size_t>(ch)] = mu;
    var[static_cast<std::size_t>(ch)] = sq / m;
  }
}

/// y = γ (x − μ) / √(σ² + ε) + β per channel, in double.
template <typename T>
Tensor<double> reference_bn(const Tensor<T>& x, const std::vector<double>& mean, const std::vector<double>& var,
                            const std::vector<double>& gamma, const std::vector<double>& beta, double eps) {
  Tensor<double> y(x.shape());
  for (Index i = 0; i < x.dim(0); ++i)
    for (Index ch = 0; ch < x.dim(1); ++ch) {
      const auto c = static_cast<std::size_t>(ch);
      for (Index r = 0; r < x.dim(2); ++r)
        for (Index q = 0; q < x.dim(3); ++q)
          y(i, ch, r, q) = gamma[c] * (static_cast<double>(x(i, ch, r, q)) - mean[c]) / std::sqrt(var[c] + eps) + beta[c];
    }
  return y;
}

/// x with channel c drawn from N(offset_c, scale_c²), so channels differ in mean and spread.
template <typename T>
Tensor<T> shifted_input(const Shape& s, Rng& rng) {
  Tensor<T> x(s);
  for (Index i = 0; i < s[0]; ++i)
    for (Index ch = 0; ch < s[1]; ++ch)
      for (Index r = 0; r < s[2]; ++r)
        for (Index q = 0; q < s[3]; ++q)
          x(i, ch, r, q) = static_cast<T>(1.5 * static_cast<double>(ch) - 2.0 + (0.5 + static_cast<double>(ch)) * rng.normal());
  return x;
}

template <typename T>
std::vector<double> values_of(const Tensor<T>& t) {
  std::vector<double> v;
  for (T e : t) v.push_back(static_cast<double>(e));
  return v;
}

template <typename T>
class BatchNorm2dTyped : public ::testing::Test {};
TYPED_TEST_SUITE(BatchNorm2dTyped, convkit::testing::Scalars);

TYPED_TEST(BatchNorm2dTyped, TrainingForwardNormalisesEachChannel) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 2e-5 : 1e-12;
  Rng rng = seeded_rng(301);
  BatchNorm2d<T> bn(3);
  const Tensor<T> x = shifted_input<T>(Shape{4, 3, 3, 5}, rng);
  const Tensor<T> y = bn.forward(x);
  std::vector<double> mx, vx, my, vy;
  channel_stats(x, mx, vx);
  channel_stats(y, my, vy);
  for (std::size_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(my[c], 0.0, tol) << "channel " << c;
    // the biased variance of y is σ² / (σ² + ε): 1 up to the effect of ε
    EXPECT_NEAR(vy[c], vx[c] / (vx[c] + 1e-5), tol) << "channel " << c;
    EXPECT_LT(vy[c], 1.0) << "channel " << c;
  }
}

TYPED_TEST(BatchNorm2dTyped, TrainingForwardMatchesReferenceWithGammaAndBeta) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 2e-5 : 1e-12;
  Rng rng = seeded_rng(302);
  BatchNorm2d<T> bn(BatchNorm2dOptions(4).eps(1e-3));
  for (Index c = 0; c < 4; ++c) {
    bn.weight().value[c] = static_cast<T>(0.5 + 0.7 * static_cast<double>(c));
    bn.bias().value[c] = static_cast<T>(-1.0 + 0.6 * static_cast<double>(c));
  }
  const Tensor<T> x = shifted_input<T>(Shape{3, 4, 2, 3}, rng);
  const Tensor<T> y = bn.forward(x);
  std::vector<double> mean, var;
  channel_stats(x, mean, var);
  const Tensor<double> ref =
      reference_bn(x, mean, var, values_of(bn.weight().value), values_of(bn.bias().value), 1e-3);
  ASSERT_EQ(y.shape(), x.shape());
  for (Index i = 0; i < y.numel(); ++i)
    EXPECT_NEAR(static_cast<double>(y[i]), ref[i], tol * (1 + std::abs(ref[i]))) << "at " << i;
}

TYPED_TEST(BatchNorm2dTyped, EvalForwardUsesRunningStatistics) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  Rng rng = seeded_rng(303);
  BatchNorm2d<T> bn(3);
  const std::vector<double> rm = {0.5, -1.0, 2.0}, rv = {0.25, 4.0, 1.5}, g = {1.5, -0.5, 2.0}, b = {0.1, 0.2, -0.3};
  for (Index c = 0; c < 3; ++c) {
    const auto k = static_cast<std::size_t>(c);
    bn.running_mean().value[c] = static_cast<T>(rm[k]);
    bn.running_var().value[c] = static_cast<T>(rv[k]);
    bn.weight().value[c] = static_cast<T>(g[k]);
    bn.bias().value[c] = static_cast<T>(b[k]);
  }
  bn.eval();
  const Tensor<T> x = shifted_input<T>(Shape{2, 3, 3, 2}, rng);
  const Tensor<T> y = bn.forward(x);
  const Tensor<double> ref = reference_bn(x, rm, rv, g, b, 1e-5);
  for (Index i = 0; i < y.numel(); ++i)
    EXPECT_NEAR(static_cast<double>(y[i]), ref[i], tol * (1 + std::abs(ref[i]))) << "at " << i;
  // evaluation leaves the running statistics alone
  for (Index c = 0; c < 3; ++c) {
    EXPECT_EQ(bn.running_mean().value[c], static_cast<T>(rm[static_cast<std::size_t>(c)]));
    EXPECT_EQ(bn.running_var().value[c], static_cast<T>(rv[static_cast<std::size_t>(c)]));
  }
  // and one value per channel is fine in evaluation
  Tensor<T> one(Shape{1, 3, 1, 1});
  one[0] = T(1), one[1] = T(2), one[2] = T(3);
  const Tensor<T> y1 = bn.forward(one);
  EXPECT_NEAR(static_cast<double>(y1[1]), -0.5 * (2.0 + 1.0) / std::sqrt(4.0 + 1e-5) + 0.2, tol);
}

TEST(BatchNorm2d, RunningStatisticsFollowPyTorchsRuleByHand) {
  // One channel, M = 4 values per batch, momentum 0.1, start (0, 1).
  BatchNorm2d<double> bn(1);
  Tensor<double> x1(Shape{2, 1, 1, 2});
  x1[0] = 1, x1[1] = 2, x1[2] = 3, x1[3] = 4;  // mean 2.5, unbiased variance 5/3 (biased 1.25)
  bn.forward(x1);
  EXPECT_NEAR(bn.running_mean().value[0], 0.25, 1e-15);
  EXPECT_NEAR(bn.running_var().value[0], 0.9 + 0.1 * 5.0 / 3.0, 1e-15);
  Tensor<double> x2(Shape{2, 1, 1, 2});
  x2[0] = 0, x2[1] = 0, x2[2] = 2, x2[3] = 6;  // mean 2, unbiased variance 24/3 = 8
  bn.forward(x2);
  EXPECT_NEAR(bn.running_mean().value[0], 0.9 * 0.25 + 0.1 * 2.0, 1e-15);   // 0.425
  EXPECT_NEAR(bn.running_var().value[0], 0.9 * (0.9 + 0.5 / 3.0) + 0.8, 1e-14);  // 1.76
  EXPECT_NEAR(bn.running_var().value[0], 1.76, 1e-14);
  EXPECT_NEAR(bn.running_mean().value[0], 0.425, 1e-15);
}

TEST(BatchNorm2d, RunningStatisticsPerChannelWithOtherMomenta) {
  Rng rng = seeded_rng(304);
  for (double m : {0.0, 0.3, 1.0}) {
    BatchNorm2d<double> bn(BatchNorm2dOptions(3).momentum(m));
    const Tensor<double> x1 = shifted_input<double>(Shape{2, 3, 2, 3}, rng);
    const Tensor<double> x2 = shifted_input<double>(Shape{5, 3, 1, 1}, rng);
    std::vector<double> m1, v1, m2, v2;
    channel_stats(x1, m1, v1);
    channel_stats(x2, m2, v2);
    bn.forward(x1);
    bn.forward(x2);
    for (std::size_t c = 0; c < 3; ++c) {
      const double rm = (1 - m) * ((1 - m) * 0.0 + m * m1[c]) + m * m2[c];
      const double rv = (1 - m) * ((1 - m) * 1.0 + m * v1[c] * 12.0 / 11.0) + m * v2[c] * 5.0 / 4.0;
      const Index ci = static_cast<Index>(c);
      EXPECT_NEAR(bn.running_mean().value[ci], rm, 1e-13) << "momentum " << m << " channel " << c;
      EXPECT_NEAR(bn.running_var().value[ci], rv, 1e-13) << "momentum " << m << " channel " << c;
    }
  }
}

TEST(BatchNorm2d, GradcheckInTrainingMode) {
  Rng rng = seeded_rng(305);
  BatchNorm2d<double> bn(3);
  for (Index c = 0; c < 3; ++c) {
    bn.weight().value[c] = rng.uniform(0.5, 2.0);
    bn.bias().value[c] = rng.normal();
  }
  EXPECT_TRUE(gradcheck_layer(bn, shifted_input<double>(Shape{2, 3, 3, 2}, rng), rng));
  // N = 1 with a plane, and N > 1 with a single pixel
  BatchNorm2d<double> plane(2), pixel(2);
  EXPECT_TRUE(gradcheck_layer(plane, random_normal(Shape{1, 2, 2, 3}, rng), rng));
  EXPECT_TRUE(gradcheck_layer(pixel, random_normal(Shape{4, 2, 1, 1}, rng), rng));
}

TEST(BatchNorm2d, GradcheckInEvalMode) {
  Rng rng = seeded_rng(306);
  BatchNorm2d<double> bn(3);
  for (Index c = 0; c < 3; ++c) {
    bn.weight().value[c] = rng.uniform(0.5, 2.0);
    bn.bias().value[c] = rng.normal();
    bn.running_mean().value[c] = rng.normal();
    bn.running_var().value[c] = rng.uniform(0.2, 3.0);
  }
  bn.eval();
  const Tensor<double> x = shifted_input<double>(Shape{2, 3, 2, 2}, rng);
  EXPECT_TRUE(gradcheck_layer(bn, x, rng));
  // In evaluation the input gradient is γ / √(running_var + ε) · dy exactly (statistics are constants).
  bn.forward(x);
  const Tensor<double> g = random_normal(x.shape(), rng);
  const Tensor<double> dx = bn.backward(g);
  for (Index i = 0; i < 2; ++i)
    for (Index c = 0; c < 3; ++c)
      for (Index r = 0; r < 2; ++r)
        for (Index q = 0; q < 2; ++q)
          EXPECT_NEAR(dx(i, c, r, q),
                      bn.weight().value[c] / std::sqrt(bn.running_var().value[c] + 1e-5) * g(i, c, r, q), 1e-13);
}

TEST(BatchNorm2d, WithoutAffineHasOnlyBuffersAndStillGradchecks) {
  Rng rng = seeded_rng(307);
  BatchNorm2d<double> bn(BatchNorm2dOptions(2).affine(false));
  const std::vector<NamedParameter<double>> named = bn.named_parameters();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].name, "running_mean");
  EXPECT_EQ(named[1].name, "running_var");
  EXPECT_FALSE(named[0].param->trainable);
  EXPECT_FALSE(named[1].param->trainable);
  EXPECT_EQ(bn.parameter_count(), 0);
  EXPECT_EQ(bn.buffer_count(), 4);
  const std::string w = message_of<StateError>([&] { bn.weight(); });
  EXPECT_TRUE(contains(w, "BatchNorm2d(2, eps=1e-05, momentum=0.1, affine=false): has no weight (built with affine(false))"))
      << w;
  EXPECT_TRUE(contains(message_of<StateError>([&] { bn.bias(); }), "has no bias")) << "bias";

  // Without γ and β the output is x̂ itself.
  const Tensor<double> x = shifted_input<double>(Shape{3, 2, 2, 2}, rng);
  const Tensor<double> y = bn.forward(x);
  std::vector<double> mean, var;
  channel_stats(x, mean, var);
  const Tensor<double> ref = reference_bn(x, mean, var, {1.0, 1.0}, {0.0, 0.0}, 1e-5);
  for (Index i = 0; i < y.numel(); ++i) EXPECT_NEAR(y[i], ref[i], 1e-12);

  EXPECT_TRUE(gradcheck_layer(bn, x, rng));
  bn.eval();
  EXPECT_TRUE(gradcheck_layer(bn, x, rng));
  for (const NamedParameter<double>& p : bn.named_parameters()) EXPECT_FALSE(p.param->has_grad()) << p.name;
}

TEST(BatchNorm2d, ParameterNamesTrainableFlagsAndCounts) {
  BatchNorm2d<float> bn(5);
  const std::vector<NamedParameter<float>> named = bn.named_parameters();
  const std::vector<std::string> names = {"weight", "bias", "running_mean", "running_var"};
  const std::vector<bool> trainable = {true, true, false, false};
  ASSERT_EQ(named.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(named[i].name, names[i]);
    EXPECT_EQ(named[i].param->trainable, trainable[i]) << names[i];
    EXPECT_EQ(named[i].param->value.shape(), Shape{5}) << names[i];
  }
  EXPECT_EQ(named[0].param, &bn.weight());
  EXPECT_EQ(named[1].param, &bn.bias());
  EXPECT_EQ(named[2].param, &bn.running_mean());
  EXPECT_EQ(named[3].param, &bn.running_var());
  // PyTorch's defaults
  for (Index c = 0; c < 5; ++c) {
    EXPECT_EQ(bn.weight().value[c], 1.0f);
    EXPECT_EQ(bn.bias().value[c], 0.0f);
    EXPECT_EQ(bn.running_mean().value[c], 0.0f);
    EXPECT_EQ(bn.running_var().value[c], 1.0f);
  }
  EXPECT_EQ(bn.parameter_count(), 10);
  EXPECT_EQ(bn.buffer_count(), 10);

  // Inside a container the buffers get dotted paths too, and the counts add up.
  Sequential<float> net;
  net.add("bn1", std::make_unique<BatchNorm2d<float>>(3));
  net.add("bn2", std::make_unique<BatchNorm2d<float>>(BatchNorm2dOptions(2).affine(false)));
  std::vector<std::string> paths;
  for (const auto& p : net.named_parameters()) paths.push_back(p.name);
  EXPECT_EQ(paths, (std::vector<std::string>{"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                                             "bn2.running_mean", "bn2.running_var"}));
  EXPECT_EQ(net.parameter_count(), 6);
  EXPECT_EQ(net.buffer_count(), 6 + 4);
}

TEST(BatchNorm2d, GradientsAreAllocatedByBackwardOnlyForTrainableParameters) {
  Rng rng = seeded_rng(308);
  BatchNorm2d<double> bn(2);
  EXPECT_FALSE(bn.weight().has_grad());
  EXPECT_FALSE(bn.bias().has_grad());
  const Tensor<double> x = shifted_input<double>(Shape{2, 2, 2, 2}, rng);
  const Tensor<double> y = bn.forward(x);
  EXPECT_FALSE(bn.weight().has_grad());  // a forward allocates nothing
  Tensor<double> g(y.shape(), 1.0);
  bn.backward(g);
  ASSERT_TRUE(bn.weight().has_grad());
  ASSERT_TRUE(bn.bias().has_grad());
  EXPECT_FALSE(bn.running_mean().has_grad());
  EXPECT_FALSE(bn.running_var().has_grad());
  // dβ = Σ dy = 8 per channel; dγ = Σ x̂ = 0
  EXPECT_NEAR(bn.bias().grad[0], 8.0, 1e-12);
  EXPECT_NEAR(bn.bias().grad[1], 8.0, 1e-12);
  EXPECT_NEAR(bn.weight().grad[0], 0.0, 1e-12);
  // a second backward adds
  bn.forward(x);
  bn.backward(g);
  EXPECT_NEAR(bn.bias().grad[1], 16.0, 1e-12);
  bn.zero_grad();
  EXPECT_EQ(bn.bias().grad[1], 0.0);
  EXPECT_FALSE(bn.running_var().has_grad());
}

TEST(BatchNorm2d, Describe) {
  EXPECT_EQ(BatchNorm2d<float>(64).describe(), "BatchNorm2d(64, eps=1e-05, momentum=0.1)");
  EXPECT_EQ(BatchNorm2d<double>(BatchNorm2dOptions(8).eps(1e-3).momentum(0.01).affine(false)).describe(),
            "BatchNorm2d(8, eps=0.001, momentum=0.01, affine=false)");
  const BatchNorm2d<float> bn(BatchNorm2dOptions(3).eps(2e-5).momentum(0.2));
  EXPECT_EQ(bn.options().num_features(), 3);
  EXPECT_EQ(bn.options().eps(), 2e-5);
  EXPECT_EQ(bn.options().momentum(), 0.2);
  EXPECT_TRUE(bn.options().affine());
  EXPECT_EQ(bn.output_shape(Shape{7, 3, 4, 1}), (Shape{7, 3, 4, 1}));
}

TEST(BatchNorm2d, ShapeErrors) {
  BatchNorm2d<float> bn(3);
  const std::string channels = message_of<ShapeError>([&] { bn.forward(Tensor<float>(Shape{2, 4, 2, 2})); });
  EXPECT_TRUE(starts_with(channels, "BatchNorm2d(3, eps=1e-05, momentum=0.1): expected input (N, 3, H, W)")) << channels;
  EXPECT_TRUE(contains(channels, "got (2, 4, 2, 2)")) << channels;
  const std::string rank2 = message_of<ShapeError>([&] { bn.forward(Tensor<float>(Shape{2, 3})); });
  EXPECT_TRUE(contains(rank2, "expected input (N, 3, H, W), got (2, 3)")) << rank2;

  // Training needs at least two values per channel; the running statistics stay untouched.
  const std::string single = message_of<ShapeError>([&] { bn.forward(Tensor<float>(Shape{1, 3, 1, 1}, 2.0f)); });
  EXPECT_TRUE(contains(single, "more than one value per channel")) << single;
  EXPECT_TRUE(contains(single, "(1, 3, 1, 1)")) << single;
  EXPECT_EQ(bn.running_mean().value[0], 0.0f);
  EXPECT_EQ(bn.running_var().value[0], 1.0f);
  // two values (N = 2 or a 1x2 plane) are enough
  EXPECT_NO_THROW(bn.forward(Tensor<float>(Shape{2, 3, 1, 1}, 2.0f)));
  EXPECT_NO_THROW(bn.forward(Tensor<float>(Shape{1, 3, 1, 2}, 2.0f)));

  // A forward that throws leaves the last forward's input and statistics for backward.
  BatchNorm2d<float> kept(3);
  Tensor<float> x(Shape{2, 3, 1, 2}), g(Shape{2, 3, 1, 2});
  for (Index i = 0; i < x.numel(); ++i) {
    x[i] = 0.25f * static_cast<float>(i * i) - static_cast<float>(i);
    g[i] = 0.5f - 0.1f * static_cast<float>(i);
  }
  kept.forward(x);
  const Tensor<float> want = kept.backward(g);
  const Tensor<float> one_value(Shape{1, 3, 1, 1}, 2.0f);
  EXPECT_THROW(kept.forward(one_value), ShapeError);                 // kept by copy
  EXPECT_THROW(kept.forward(Tensor<float>(one_value)), ShapeError);  // taken over
  const Tensor<float> got = kept.backward(g);
  for (Index i = 0; i < want.numel(); ++i) EXPECT_EQ(got[i], want[i]) << "element " << i;

  BatchNorm2d<float> fresh(2);
  EXPECT_TRUE(contains(message_of<StateError>([&] { fresh.backward(Tensor<float>(Shape{1, 2, 2, 2})); }),
                       "backward called before forward"));
}

TEST(BatchNorm2d, OptionErrors) {
  const std::string eps0 = message_of<ValueError>([] { BatchNorm2d<float> b(BatchNorm2dOptions(3).eps(0)); });
  EXPECT_TRUE(starts_with(eps0, "BatchNorm2d: expected eps > 0, got 0")) << eps0;
  const std::string epsn = message_of<ValueError>([] { BatchNorm2d<float> b(BatchNorm2dOptions(3).eps(-1e-5)); });
  EXPECT_TRUE(contains(epsn, "expected eps > 0, got -1e-05")) << epsn;
  const std::string mom = message_of<ValueError>([] { BatchNorm2d<float> b(BatchNorm2dOptions(3).momentum(1.5)); });
  EXPECT_TRUE(starts_with(mom, "BatchNorm2d: expected momentum in [0, 1], got 1.5")) << mom;
  const std::string momn = message_of<ValueError>([] { BatchNorm2d<float> b(BatchNorm2dOptions(3).momentum(-0.1)); });
  EXPECT_TRUE(contains(momn, "got -0.1")) << momn;
  const std::string zero = message_of<ValueError>([] { BatchNorm2d<double> b(0); });
  EXPECT_TRUE(starts_with(zero, "BatchNorm2d: expected num_features >= 1, got 0")) << zero;
  EXPECT_NO_THROW(BatchNorm2d<float>(BatchNorm2dOptions(1).momentum(0)));
  EXPECT_NO_THROW(BatchNorm2d<float>(BatchNorm2dOptions(1).momentum(1)));
}

}  // namespace

namespace {

// The interleaved partial sums behind every channel sum: terms split over add() calls of any
// length (partial rows of 32 carried between calls) sum to the exact total. Integers keep
// every partial sum exact, so a lost or doubled term shows as a wrong total.
TEST(BatchNormSums, SplitsOverCallsOfAnyLengthSumEveryTermOnce) {
  for (const std::vector<Index>& lengths : std::vector<std::vector<Index>>{
           {0}, {1}, {31}, {32}, {33}, {5, 27, 1, 64, 3}, {49, 49, 49}, {7, 0, 100, 31, 32, 33}}) {
    convkit::ops::detail::DoubleSums sums;
    double expected = 0.0, next = 1.0;
    for (const Index n : lengths) {
      const double first = next;
      sums.add(n, [first](Index i) { return (first + static_cast<double>(i)) * (first + static_cast<double>(i)); });
      for (Index i = 0; i < n; ++i, next += 1.0) expected += next * next;
    }
    EXPECT_EQ(sums.total(), expected) << "lengths " << ::testing::PrintToString(lengths);
  }
}

}  // namespace
