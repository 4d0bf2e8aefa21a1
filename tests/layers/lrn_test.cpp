// LRN: forward against a direct-loop reference over window sizes and channel counts, values by
// hand (the window's asymmetry for even sizes), gradient checks on the pow and the β = 3/4
// paths, describe(), output_shape() and the errors with their messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <convkit/layers/lrn.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;
using convkit::testing::starts_with;

using convkit::Index;
using convkit::LRN;
using convkit::LRNOptions;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// Direct loops in double, from PyTorch's LocalResponseNorm: the window of channel c is
/// [c − ⌊size/2⌋, c + ⌊(size−1)/2⌋] clipped to the channels, α divided by size everywhere.
template <typename T>
Tensor<double> reference_lrn(const Tensor<T>& x, Index size, double alpha, double beta, double k) {
  const Index n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  Tensor<double> y(x.shape());
  for (Index i = 0; i < n; ++i)
    for (Index ch = 0; ch < c; ++ch)
      for (Index r = 0; r < h; ++r)
        for (Index q = 0; q < w; ++q) {
          double sq = 0.0;
          for (Index j = ch - size / 2; j <= ch + (size - 1) / 2; ++j) {
            if (j < 0 || j >= c) continue;
            const double v = static_cast<double>(x(i, j, r, q));
            sq += v * v;
          }
          const double s = k + alpha / static_cast<double>(size) * sq;
          y(i, ch, r, q) = static_cast<double>(x(i, ch, r, q)) * std::pow(s, -beta);
        }
  return y;
}

template <typename T>
class LRNTyped : public ::testing::Test {};
TYPED_TEST_SUITE(LRNTyped, convkit::testing::Scalars);

TYPED_TEST(LRNTyped, ForwardMatchesDirectLoopsOverSizesAndChannelCounts) {
  using T = TypeParam;
  const double rel = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  Rng rng = seeded_rng(201);
  struct Coefs {
    double alpha, beta, k;
  };
  // β = 0.75 takes the square-root path, the others std::pow; α large enough that the
  // normalisation changes the values by much more than the tolerance.
  const Coefs coefs[] = {{1e-4, 0.75, 2.0}, {1.5, 0.75, 1.0}, {0.8, 0.6, 0.5}, {2.0, 1.3, 1.0}};
  for (Index size : {1, 2, 3, 5, 7})
    for (Index c : {1, 2, 4, 6, 9})
      for (const Coefs& cf : coefs) {
        Tensor<T> x(Shape{2, c, 3, 2});
        for (T& v : x) v = static_cast<T>(2.0 * rng.normal());
        LRN<T> lrn(LRNOptions(size).alpha(cf.alpha).beta(cf.beta).k(cf.k));
        const Tensor<T> y = lrn.forward(x);
        const Tensor<double> ref = reference_lrn(x, size, cf.alpha, cf.beta, cf.k);
        ASSERT_EQ(y.shape(), x.shape());
        const std::string where = lrn.describe() + " on " + x.shape().to_string();
        for (Index i = 0; i < y.numel(); ++i)
          ASSERT_NEAR(static_cast<double>(y[i]), ref[i], rel * std::max(std::abs(ref[i]), 1e-3)) << where << " at " << i;
      }
}

TYPED_TEST(LRNTyped, ValuesByHandForOddAndEvenWindows) {
  using T = TypeParam;
  // One pixel, channels x = (1, 2, 2).
  Tensor<T> x(Shape{1, 3, 1, 1});
  x[0] = T(1), x[1] = T(2), x[2] = T(2);
  // size 3, α = 3 (α/size = 1), β = 0.5, k = 1: s = (1 + 1 + 4, 1 + 1 + 4 + 4, 1 + 4 + 4) = (6, 10, 9).
  LRN<T> odd(LRNOptions(3).alpha(3).beta(0.5).k(1));
  const Tensor<T> yo = odd.forward(x);
  const double tol = std::is_same<T, float>::value ? 1e-6 : 1e-15;
  EXPECT_NEAR(static_cast<double>(yo[0]), 1.0 / std::sqrt(6.0), tol);
  EXPECT_NEAR(static_cast<double>(yo[1]), 2.0 / std::sqrt(10.0), tol);
  EXPECT_NEAR(static_cast<double>(yo[2]), 2.0 / 3.0, tol);
  // size 2, α = 2 (α/size = 1), β = 1, k = 1: window [c − 1, c], so
  // s = (1 + 1, 1 + 1 + 4, 1 + 4 + 4) = (2, 6, 9) and y = (1/2, 1/3, 2/9).
  // (A window [c, c + 1] would give s = (6, 9, 5).)
  LRN<T> even(LRNOptions(2).alpha(2).beta(1).k(1));
  const Tensor<T> ye = even.forward(x);
  EXPECT_NEAR(static_cast<double>(ye[0]), 0.5, tol);
  EXPECT_NEAR(static_cast<double>(ye[1]), 1.0 / 3.0, tol);
  EXPECT_NEAR(static_cast<double>(ye[2]), 2.0 / 9.0, tol);
  // AlexNet's defaults, β = 0.75: y = x · (2 + 1e-4/5 · Σ x²)^(−3/4) over the 3 clipped channels.
  LRN<T> alex;
  const Tensor<T> ya = alex.forward(x);
  EXPECT_NEAR(static_cast<double>(ya[0]), 1.0 * std::pow(2.0 + 2e-5 * 9.0, -0.75), tol);
  EXPECT_NEAR(static_cast<double>(ya[2]), 2.0 * std::pow(2.0 + 2e-5 * 9.0, -0.75), tol);
}

TEST(LRN, ForwardKeepsPixelsAndSamplesApart) {
  // The window runs over channels only: a change in one pixel of one sample leaves every
  // other pixel and sample unchanged.
  Rng rng = seeded_rng(202);
  LRN<double> lrn(LRNOptions(3).alpha(1.0).beta(0.75).k(1.0));
  Tensor<double> x = random_normal(Shape{2, 4, 2, 3}, rng);
  const Tensor<double> y0 = lrn.forward(x);
  x(1, 2, 1, 0) += 3.0;
  const Tensor<double> y1 = lrn.forward(x);
  for (Index n = 0; n < 2; ++n)
    for (Index c = 0; c < 4; ++c)
      for (Index r = 0; r < 2; ++r)
        for (Index q = 0; q < 3; ++q) {
          const bool touched = n == 1 && r == 1 && q == 0 && c >= 1 && c <= 3;
          if (touched)
            EXPECT_NE(y0(n, c, r, q), y1(n, c, r, q)) << n << c << r << q;
          else
            EXPECT_EQ(y0(n, c, r, q), y1(n, c, r, q)) << n << c << r << q;
        }
}

TEST(LRN, GradcheckOverSizesAlphaBetaAndK) {
  Rng rng = seeded_rng(203);
  struct Case {
    Index size, channels;
    double alpha, beta, k;
  };
  const Case cases[] = {
      {1, 3, 0.7, 0.6, 1.0},    // window of one channel
      {2, 5, 1.5, 0.75, 1.0},   // even window, β = 3/4 (square roots)
      {3, 4, 2.0, 1.3, 0.5},    // pow path, β > 1, small k
      {5, 8, 1e-4, 0.75, 2.0},  // AlexNet
      {5, 6, 3.0, 0.75, 1.0},   // β = 3/4, strong normalisation
      {4, 7, 1.2, 0.4, 2.0},    // even window, pow path
      {7, 3, 1.0, 0.9, 1.5},    // window wider than the channels
      {6, 2, 0.5, 0.0, 1.0},    // β = 0: the identity
  };
  for (const Case& cs : cases) {
    LRN<double> lrn(LRNOptions(cs.size).alpha(cs.alpha).beta(cs.beta).k(cs.k));
    const Tensor<double> x = random_normal(Shape{2, cs.channels, 2, 3}, rng);
    EXPECT_TRUE(gradcheck_layer(lrn, x, rng)) << lrn.describe();
  }
}

TEST(LRN, BetaZeroIsTheIdentityAndItsGradient) {
  Rng rng = seeded_rng(204);
  LRN<double> lrn(LRNOptions(3).alpha(5.0).beta(0.0).k(1.0));
  const Tensor<double> x = random_normal(Shape{1, 4, 2, 2}, rng);
  const Tensor<double> y = lrn.forward(x);
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(y[i], x[i]);
  const Tensor<double> g = random_normal(x.shape(), rng);
  const Tensor<double> dx = lrn.backward(g);
  for (Index i = 0; i < x.numel(); ++i) EXPECT_NEAR(dx[i], g[i], 1e-15);
}

TEST(LRN, DescribeOptionsAndOutputShape) {
  EXPECT_EQ(LRN<float>().describe(), "LRN(size=5, alpha=0.0001, beta=0.75, k=2)");
  EXPECT_EQ(LRN<double>(LRNOptions(3).alpha(0.5).beta(1.25).k(1)).describe(),
            "LRN(size=3, alpha=0.5, beta=1.25, k=1)");
  const LRN<float> lrn(LRNOptions(4).alpha(0.2));
  EXPECT_EQ(lrn.options().params().size, 4);
  EXPECT_EQ(lrn.options().params().alpha, 0.2);
  EXPECT_EQ(lrn.options().params().beta, 0.75);
  EXPECT_EQ(lrn.options().params().k, 2.0);
  EXPECT_EQ(lrn.output_shape(Shape{3, 7, 5, 2}), (Shape{3, 7, 5, 2}));
  EXPECT_EQ(lrn.parameter_count(), 0);
}

TEST(LRN, ShapeErrors) {
  LRN<float> lrn;
  const std::string rank2 = message_of<ShapeError>([&] { lrn.forward(Tensor<float>(Shape{2, 3})); });
  EXPECT_TRUE(starts_with(rank2, "LRN(size=5, alpha=0.0001, beta=0.75, k=2): expected input (N, C, H, W)")) << rank2;
  EXPECT_TRUE(contains(rank2, "got (2, 3)"));
  const std::string rank3 = message_of<ShapeError>([&] { lrn.output_shape(Shape{2, 3, 4}); });
  EXPECT_TRUE(contains(rank3, "expected input (N, C, H, W), got (2, 3, 4)")) << rank3;
  // The op checks on its own too.
  Tensor<float> scale;
  const std::string op = message_of<ShapeError>(
      [&] { convkit::ops::lrn_forward(Tensor<float>(Shape{5}), convkit::ops::LrnParams{}, scale); });
  EXPECT_TRUE(starts_with(op, "lrn: expected input (N, C, H, W), got (5)")) << op;

  EXPECT_TRUE(contains(message_of<StateError>([&] { lrn.backward(Tensor<float>(Shape{1, 2, 2, 2})); }),
                       "backward called before forward"));
  lrn.forward(Tensor<float>(Shape{1, 2, 2, 2}, 1.0f));
  const std::string bw = message_of<ShapeError>([&] { lrn.backward(Tensor<float>(Shape{1, 3, 2, 2})); });
  EXPECT_TRUE(contains(bw, "expected grad_output (1, 2, 2, 2)")) << bw;
  EXPECT_TRUE(contains(bw, "got (1, 3, 2, 2)")) << bw;
}

TEST(LRN, ParameterErrors) {
  const std::string size0 = message_of<ValueError>([] { LRN<float> l(LRNOptions(0)); });
  EXPECT_TRUE(starts_with(size0, "LRN: expected size >= 1, got 0")) << size0;
  const std::string neg = message_of<ValueError>([] { LRN<float> l(LRNOptions(-2)); });
  EXPECT_TRUE(starts_with(neg, "LRN: expected size >= 1, got -2")) << neg;

  const std::string alpha = message_of<ValueError>([] { LRN<float> l(LRNOptions(5).alpha(-1e-4)); });
  EXPECT_TRUE(starts_with(alpha, "LRN: expected finite alpha >= 0, beta >= 0 and k > 0")) << alpha;
  EXPECT_TRUE(contains(alpha, "got alpha -0.0001, beta 0.75, k 2")) << alpha;

  const std::string k0 = message_of<ValueError>([] { LRN<double> l(LRNOptions(5).k(0)); });
  EXPECT_TRUE(starts_with(k0, "LRN: expected finite alpha >= 0, beta >= 0 and k > 0")) << k0;
  EXPECT_TRUE(contains(k0, "k 0")) << k0;
  const std::string kneg = message_of<ValueError>([] { LRN<double> l(LRNOptions(5).k(-1)); });
  EXPECT_TRUE(contains(kneg, "k -1")) << kneg;

  const std::string nan_beta =
      message_of<ValueError>([] { LRN<float> l(LRNOptions(5).beta(std::numeric_limits<double>::quiet_NaN())); });
  EXPECT_TRUE(starts_with(nan_beta, "LRN: expected finite alpha >= 0, beta >= 0 and k > 0")) << nan_beta;
  EXPECT_TRUE(contains(nan_beta, "beta nan")) << nan_beta;
  const std::string inf_alpha =
      message_of<ValueError>([] { LRN<float> l(LRNOptions(5).alpha(std::numeric_limits<double>::infinity())); });
  EXPECT_TRUE(contains(inf_alpha, "alpha inf")) << inf_alpha;
  const std::string neg_beta = message_of<ValueError>([] { LRN<float> l(LRNOptions(5).beta(-0.5)); });
  EXPECT_TRUE(contains(neg_beta, "beta -0.5")) << neg_beta;

  // α = 0 and β = 0 are allowed (the identity up to k^−β).
  EXPECT_NO_THROW(LRN<float>(LRNOptions(5).alpha(0).beta(0)));
}

}  // namespace
