// Tests of Rng (reproducibility, distributions, state round trip) and the initialisers.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <convkit/core/rng.h>
#include <convkit/init/initializers.h>

namespace convkit {
namespace {

TEST(Rng, SameSeedSameSequenceOtherSeedOtherSequence) {
  Rng a(7), b(7), c(8);
  bool differs = false;
  for (int i = 0; i < 100; ++i) {
    const double x = a.uniform();
    EXPECT_EQ(x, b.uniform());
    differs = differs || x != c.uniform();
  }
  EXPECT_TRUE(differs);
}

TEST(Rng, FirstOutputIsTheStandardMt19937_64) {
  // The C++ standard fixes the 10000th output of mt19937_64 seeded with 5489.
  Rng r(5489);
  std::uint64_t v = 0;
  for (int i = 0; i < 10000; ++i) v = r.next_u64();
  EXPECT_EQ(v, 9981545732273789042ull);
}

TEST(Rng, UniformAndNormalMoments) {
  Rng r(1);
  const int n = 200000;
  double su = 0, su2 = 0, sn = 0, sn2 = 0;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    su += u, su2 += u * u;
    const double z = r.normal(2.0, 3.0);
    sn += z, sn2 += z * z;
  }
  // Tolerances are about 5 standard errors of the estimates.
  EXPECT_NEAR(su / n, 0.5, 5 * std::sqrt(1.0 / 12 / n));
  EXPECT_NEAR(su2 / n - (su / n) * (su / n), 1.0 / 12, 0.002);
  EXPECT_NEAR(sn / n, 2.0, 5 * 3.0 / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(sn2 / n - (sn / n) * (sn / n)), 3.0, 0.05);
}

TEST(Rng, BelowIsInRangeAndCoversIt) {
  Rng r(3);
  std::vector<int> counts(7, 0);
  for (int i = 0; i < 7000; ++i) {
    const auto k = r.below(7);
    ASSERT_LT(k, 7u);
    ++counts[k];
  }
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
  EXPECT_THROW(r.below(0), ValueError);
}

TEST(Rng, StateRoundTripContinuesExactly) {
  Rng a(11);
  for (int i = 0; i < 5; ++i) a.normal();  // leaves a spare normal pending
  const std::string s = a.state();
  Rng b(0);
  b.set_state(s);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.normal(), b.normal());
  EXPECT_THROW(b.set_state("not a state"), FormatError);
}

TEST(Init, FansAndBoundsFollowTheFormulas) {
  const init::Fans f = init::fans_of(Shape{16, 6, 5, 5});
  EXPECT_EQ(f.fan_in, 150);
  EXPECT_EQ(f.fan_out, 400);
  EXPECT_THROW(init::fans_of(Shape{3}), ShapeError);

  Rng r(5);
  Tensor<double> w(Shape{64, 32, 3, 3});
  init::he_uniform(w, r);
  const double bound = std::sqrt(6.0 / (32 * 9));
  double max_abs = 0, s2 = 0;
  for (double v : w) {
    max_abs = std::max(max_abs, std::abs(v));
    s2 += v * v;
  }
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.95 * bound);
  // Variance of U(-b, b) is b²/3 = 2 / fan_in.
  EXPECT_NEAR(s2 / w.numel(), 2.0 / (32 * 9), 0.05 * 2.0 / (32 * 9));

  Tensor<double> x(Shape{200, 300});
  init::xavier_normal(x, r);
  double sx = 0;
  for (double v : x) sx += v * v;
  EXPECT_NEAR(sx / x.numel(), 2.0 / 500, 0.05 * 2.0 / 500);
  EXPECT_THROW(init::uniform(x, 1.0, 0.0, r), ValueError);
}

}  // namespace
}  // namespace convkit
