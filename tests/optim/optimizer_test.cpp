// SGD (plain, momentum, Nesterov, weight decay) and Adam (bias correction, L2 and decoupled
// weight decay) against update sequences computed here from the formulas, the learning rate
// between steps, skipped buffers, state names, option errors, and the LR schedules.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <convkit/optim/adam.h>
#include <convkit/optim/lr_schedule.h>
#include <convkit/optim/optimizer.h>
#include <convkit/optim/sgd.h>

#include "support/expect.h"
#include "support/seed.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;

using convkit::Adam;
using convkit::AdamOptions;
using convkit::CosineAnnealing;
using convkit::Index;
using convkit::NamedParameter;
using convkit::Parameter;
using convkit::SGD;
using convkit::SgdOptions;
using convkit::Shape;
using convkit::StepDecay;
using convkit::Tensor;
using convkit::ValueError;

const std::vector<double> kInit = {0.5, -1.25, 2.0};
/// The gradient of step s (1-based) for element k: varies with both so a wrong buffer shows.
double grad_at(int s, std::size_t k) { return 0.3 * s - 0.7 * static_cast<double>(k) + 0.1 * s * s; }

template <typename T>
struct Fixture {
  Parameter<T> p{"w", Shape{3}};
  std::vector<NamedParameter<T>> named() { return {{"layer.w", &p}}; }
  Fixture() {
    for (std::size_t k = 0; k < kInit.size(); ++k) p.value[static_cast<Index>(k)] = static_cast<T>(kInit[k]);
  }
  void set_grad(int s) {
    for (std::size_t k = 0; k < kInit.size(); ++k) p.ensure_grad()[static_cast<Index>(k)] = static_cast<T>(grad_at(s, k));
  }
};

/// PyTorch's SGD, written out per element in double.
std::vector<std::vector<double>> sgd_reference(double lr, double mu, bool nesterov, double wd, int steps) {
  std::vector<double> p = kInit, b(p.size(), 0.0);
  std::vector<std::vector<double>> out;
  for (int s = 1; s <= steps; ++s) {
    for (std::size_t k = 0; k < p.size(); ++k) {
      double g = grad_at(s, k) + wd * p[k];
      if (mu != 0.0) {
        b[k] = s == 1 ? g : mu * b[k] + g;
        g = nesterov ? g + mu * b[k] : b[k];
      }
      p[k] -= lr * g;
    }
    out.push_back(p);
  }
  return out;
}

/// Adam (Kingma & Ba) with PyTorch's bias correction; L2 or decoupled weight decay.
std::vector<std::vector<double>> adam_reference(double lr, double b1, double b2, double eps, double wd, bool decoupled,
                                                int steps) {
  std::vector<double> p = kInit, m(p.size(), 0.0), v(p.size(), 0.0);
  std::vector<std::vector<double>> out;
  for (int t = 1; t <= steps; ++t) {
    for (std::size_t k = 0; k < p.size(); ++k) {
      double g = grad_at(t, k);
      if (decoupled)
        p[k] = p[k] - lr * wd * p[k];
      else
        g += wd * p[k];
      m[k] = b1 * m[k] + (1 - b1) * g;
      v[k] = b2 * v[k] + (1 - b2) * g * g;
      const double m_hat = m[k] / (1 - std::pow(b1, t));
      const double v_hat = v[k] / (1 - std::pow(b2, t));
      p[k] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
    out.push_back(p);
  }
  return out;
}

template <typename T>
void run_and_compare(convkit::Optimizer<T>& opt, Fixture<T>& f, const std::vector<std::vector<double>>& expected,
                     double tol) {
  for (int s = 1; s <= static_cast<int>(expected.size()); ++s) {
    f.set_grad(s);
    opt.step();
    EXPECT_EQ(opt.steps(), s);
    for (std::size_t k = 0; k < kInit.size(); ++k)
      EXPECT_NEAR(static_cast<double>(f.p.value[static_cast<Index>(k)]), expected[static_cast<std::size_t>(s - 1)][k],
                  tol * std::max(1.0, std::abs(expected[static_cast<std::size_t>(s - 1)][k])))
          << "step " << s << " element " << k;
  }
}

template <typename T>
class OptimizerTyped : public ::testing::Test {};
TYPED_TEST_SUITE(OptimizerTyped, convkit::testing::Scalars);

template <typename T>
double tol() {
  return std::is_same<T, double>::value ? 1e-12 : 1e-6;
}

TYPED_TEST(OptimizerTyped, SgdPlain) {
  Fixture<TypeParam> f;
  SGD<TypeParam> opt(f.named(), SgdOptions(0.1));
  EXPECT_TRUE(opt.state().empty());
  run_and_compare(opt, f, sgd_reference(0.1, 0.0, false, 0.0, 3), tol<TypeParam>());
  // step 1 by hand: 0.5 - 0.1·(0.3 + 0.1)
  EXPECT_NEAR(sgd_reference(0.1, 0.0, false, 0.0, 1)[0][0], 0.46, 1e-15);
}

TYPED_TEST(OptimizerTyped, SgdMomentum) {
  Fixture<TypeParam> f;
  SGD<TypeParam> opt(f.named(), SgdOptions(0.05).momentum(0.9));
  run_and_compare(opt, f, sgd_reference(0.05, 0.9, false, 0.0, 3), tol<TypeParam>());
  // element 0 by hand: g = 0.4, 1.0, 1.8; b = 0.4, 1.36, 3.024; p = 0.5 − 0.05·Σb
  EXPECT_NEAR(static_cast<double>(f.p.value[0]), 0.5 - 0.05 * (0.4 + 1.36 + 3.024), tol<TypeParam>());
  const auto state = opt.state();
  ASSERT_EQ(state.size(), 1u);
  EXPECT_EQ(state[0].first, "layer.w.momentum");
  EXPECT_NEAR(static_cast<double>((*state[0].second)[0]), 3.024, tol<TypeParam>());
}

TYPED_TEST(OptimizerTyped, SgdNesterov) {
  Fixture<TypeParam> f;
  SGD<TypeParam> opt(f.named(), SgdOptions(0.05).momentum(0.9).nesterov(true));
  run_and_compare(opt, f, sgd_reference(0.05, 0.9, true, 0.0, 3), tol<TypeParam>());
  // element 0 by hand: steps use g + 0.9·b = 0.76, 2.224, 4.5216
  EXPECT_NEAR(static_cast<double>(f.p.value[0]), 0.5 - 0.05 * (0.76 + 2.224 + 4.5216), tol<TypeParam>());
}

TYPED_TEST(OptimizerTyped, SgdWeightDecay) {
  Fixture<TypeParam> f;
  SGD<TypeParam> opt(f.named(), SgdOptions(0.1).weight_decay(0.01));
  run_and_compare(opt, f, sgd_reference(0.1, 0.0, false, 0.01, 3), tol<TypeParam>());
  Fixture<TypeParam> g;
  SGD<TypeParam> both(g.named(), SgdOptions(0.1).momentum(0.5).nesterov(true).weight_decay(0.02));
  run_and_compare(both, g, sgd_reference(0.1, 0.5, true, 0.02, 3), tol<TypeParam>());
}

TYPED_TEST(OptimizerTyped, AdamBiasCorrected) {
  Fixture<TypeParam> f;
  Adam<TypeParam> opt(f.named(), AdamOptions(0.01));
  run_and_compare(opt, f, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.0, false, 3), tol<TypeParam>());
  // First step by hand: m̂ = g, v̂ = g², so every element moves by lr·g/(|g| + eps) ≈ ±lr.
  Fixture<TypeParam> one;
  Adam<TypeParam> first(one.named(), AdamOptions(0.01));
  one.set_grad(1);
  first.step();
  for (std::size_t k = 0; k < kInit.size(); ++k) {
    const double g = grad_at(1, k);
    EXPECT_NEAR(static_cast<double>(one.p.value[static_cast<Index>(k)]),
                kInit[k] - 0.01 * g / (std::abs(g) + 1e-8), tol<TypeParam>());
  }
  const auto state = opt.state();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "layer.w.exp_avg");
  EXPECT_EQ(state[1].first, "layer.w.exp_avg_sq");
  // m after 3 steps of element 0 (g = 0.4, 1.0, 1.8): 0.1·(0.81·0.4 + 0.9·1.0 + 1.8)
  EXPECT_NEAR(static_cast<double>((*state[0].second)[0]), 0.1 * (0.81 * 0.4 + 0.9 + 1.8), tol<TypeParam>());
  EXPECT_NEAR(static_cast<double>((*state[1].second)[0]),
              0.001 * (0.999 * 0.999 * 0.16 + 0.999 * 1.0 + 3.24), tol<TypeParam>());
}

TYPED_TEST(OptimizerTyped, AdamOtherBetasAndEps) {
  Fixture<TypeParam> f;
  Adam<TypeParam> opt(f.named(), AdamOptions(0.2).betas(0.5, 0.75).eps(0.1));
  run_and_compare(opt, f, adam_reference(0.2, 0.5, 0.75, 0.1, 0.0, false, 3), tol<TypeParam>());
}

TYPED_TEST(OptimizerTyped, AdamL2WeightDecay) {
  Fixture<TypeParam> f;
  Adam<TypeParam> opt(f.named(), AdamOptions(0.01).weight_decay(0.5));
  run_and_compare(opt, f, adam_reference(0.01, 0.9, 0.999, 1e-8, 0.5, false, 3), tol<TypeParam>());
}

TYPED_TEST(OptimizerTyped, AdamDecoupledWeightDecay) {
  Fixture<TypeParam> f;
  Adam<TypeParam> opt(f.named(), AdamOptions(0.01).weight_decay(0.5).decoupled_weight_decay(true));
  const auto expected = adam_reference(0.01, 0.9, 0.999, 1e-8, 0.5, true, 3);
  run_and_compare(opt, f, expected, tol<TypeParam>());
  // AdamW and L2 differ: the check above would not pass with the other rule.
  const auto l2 = adam_reference(0.01, 0.9, 0.999, 1e-8, 0.5, false, 3);
  EXPECT_GT(std::abs(l2[2][2] - expected[2][2]), 1e-4);
}

TYPED_TEST(OptimizerTyped, LearningRateChangesTheNextStep) {
  Fixture<TypeParam> f;
  SGD<TypeParam> opt(f.named(), SgdOptions(0.1));
  f.set_grad(1);
  opt.step();
  opt.set_learning_rate(0.01);
  EXPECT_EQ(opt.learning_rate(), 0.01);
  f.set_grad(2);
  opt.step();
  for (std::size_t k = 0; k < kInit.size(); ++k)
    EXPECT_NEAR(static_cast<double>(f.p.value[static_cast<Index>(k)]),
                kInit[k] - 0.1 * grad_at(1, k) - 0.01 * grad_at(2, k), tol<TypeParam>());

  // Adam: the rate of each step is the one set before it.
  Fixture<TypeParam> a;
  Adam<TypeParam> adam(a.named(), AdamOptions(0.5));
  adam.set_learning_rate(0.01);
  a.set_grad(1);
  adam.step();
  const auto expected = adam_reference(0.01, 0.9, 0.999, 1e-8, 0.0, false, 1);
  EXPECT_NEAR(static_cast<double>(a.p.value[1]), expected[0][1], tol<TypeParam>());

  // A zero rate leaves the parameter alone.
  opt.set_learning_rate(0.0);
  const Tensor<TypeParam> before = f.p.value;
  f.set_grad(3);
  opt.step();
  for (Index k = 0; k < 3; ++k) EXPECT_EQ(f.p.value[k], before[k]);
}

TYPED_TEST(OptimizerTyped, ParametersWithoutAGradientAreLeftAlone) {
  // As PyTorch skips a None gradient: no update, no weight decay, no state change.
  Parameter<TypeParam> used("w", Shape{2}), unused("v", Shape{2});
  used.value.fill(TypeParam(1));
  unused.value.fill(TypeParam(1));
  used.ensure_grad().fill(TypeParam(1));
  const std::vector<NamedParameter<TypeParam>> named = {{"a.w", &used}, {"a.v", &unused}};
  SGD<TypeParam> sgd(named, SgdOptions(0.5).momentum(0.9).weight_decay(0.1));
  sgd.step();
  EXPECT_EQ(used.value[0], TypeParam(1) - TypeParam(0.5) * (TypeParam(1) + TypeParam(0.1)));
  EXPECT_EQ(unused.value[0], TypeParam(1));
  EXPECT_FALSE(unused.has_grad());
  sgd.zero_grad();
  EXPECT_FALSE(unused.has_grad());  // zero_grad allocates nothing
  EXPECT_EQ(used.grad[0], TypeParam(0));
  Adam<TypeParam> adam(named, AdamOptions(0.1).weight_decay(0.1));
  adam.step();
  EXPECT_EQ(unused.value[0], TypeParam(1));
  EXPECT_NE(used.value[0], TypeParam(1) - TypeParam(0.5) * (TypeParam(1) + TypeParam(0.1)));
}

TYPED_TEST(OptimizerTyped, NonTrainableParametersAreSkipped) {
  Parameter<TypeParam> w("weight", Shape{2}), buf("running_mean", Shape{2}, /*trainable=*/false);
  w.value.fill(TypeParam(1));
  buf.value.fill(TypeParam(1));
  w.ensure_grad().fill(TypeParam(1));
  buf.ensure_grad().fill(TypeParam(1));
  const std::vector<NamedParameter<TypeParam>> named = {{"bn.weight", &w}, {"bn.running_mean", &buf}};
  SGD<TypeParam> sgd(named, SgdOptions(0.5).momentum(0.9));
  ASSERT_EQ(sgd.parameters().size(), 1u);
  EXPECT_EQ(sgd.parameters()[0].name, "bn.weight");
  sgd.step();
  EXPECT_EQ(w.value[0], TypeParam(0.5));
  EXPECT_EQ(buf.value[0], TypeParam(1));
  ASSERT_EQ(sgd.state().size(), 1u);
  EXPECT_EQ(sgd.state()[0].first, "bn.weight.momentum");
  sgd.zero_grad();
  EXPECT_EQ(w.grad[0], TypeParam(0));
  EXPECT_EQ(buf.grad[0], TypeParam(1));  // not the optimiser's

  Adam<TypeParam> adam(named);
  adam.step();
  EXPECT_EQ(buf.value[1], TypeParam(1));
  const auto state = adam.state();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "bn.weight.exp_avg");
  EXPECT_EQ(state[1].first, "bn.weight.exp_avg_sq");
}

TEST(Optimizer, StateNamesForSeveralParameters) {
  Parameter<float> a("weight", Shape{2, 2}), b("bias", Shape{2});
  const std::vector<NamedParameter<float>> named = {{"c1.weight", &a}, {"c1.bias", &b}};
  SGD<float> sgd(named, SgdOptions(0.1).momentum(0.5));
  const auto s = sgd.state();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].first, "c1.weight.momentum");
  EXPECT_EQ(s[0].second->shape(), (Shape{2, 2}));
  EXPECT_EQ(s[1].first, "c1.bias.momentum");
  EXPECT_EQ(s[1].second->shape(), (Shape{2}));
  Adam<float> adam(named);
  std::vector<std::string> names;
  for (const auto& e : adam.state()) names.push_back(e.first);
  EXPECT_EQ(names, (std::vector<std::string>{"c1.weight.exp_avg", "c1.weight.exp_avg_sq", "c1.bias.exp_avg",
                                             "c1.bias.exp_avg_sq"}));
}

// Parameters large enough for threads (ranges of elements): the same values on one and two
// threads, each element as the formula gives it for its own gradient, and zero_grad clears
// every element.
TEST(Optimizer, LargeParametersTheSameOnTwoThreads) {
#ifdef _OPENMP
  constexpr Index n = 100003;  // ranges that do not divide evenly
  const auto run = [](int threads, bool adam) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    Parameter<float> p("w", Shape{n});
    for (Index k = 0; k < n; ++k) p.value[k] = 0.001f * static_cast<float>(k % 1000) - 0.5f;
    const std::vector<NamedParameter<float>> named = {{"w", &p}};
    SGD<float> sgd(named, SgdOptions(0.1).momentum(0.9).weight_decay(0.01));
    Adam<float> adam_opt(named);
    for (int s = 1; s <= 3; ++s) {
      (adam ? static_cast<convkit::Optimizer<float>&>(adam_opt) : sgd).zero_grad();
      const Tensor<float>& grad = p.ensure_grad();
      EXPECT_TRUE(std::all_of(grad.begin(), grad.end(), [](float v) { return v == 0.0f; })) << "step " << s;
      for (Index k = 0; k < n; ++k)
        p.grad[k] = static_cast<float>(grad_at(s, static_cast<std::size_t>(k % 5)));
      if (adam)
        adam_opt.step();
      else
        sgd.step();
    }
    omp_set_num_threads(saved);
    return p.value;
  };
  for (const bool adam : {false, true}) {
    const Tensor<float> one = run(1, adam), two = run(2, adam);
    EXPECT_TRUE(std::equal(one.begin(), one.end(), two.begin())) << (adam ? "Adam" : "SGD");
    // SGD: element k against the formula in double (its gradient is grad_at(s, k mod 5)).
    if (!adam)
      for (const Index k : {Index{0}, Index{1}, n / 2, n - 1}) {
        double w = 0.001 * static_cast<double>(k % 1000) - 0.5, b = 0.0;
        for (int s = 1; s <= 3; ++s) {
          const double g = grad_at(s, static_cast<std::size_t>(k % 5)) + 0.01 * w;
          b = s == 1 ? g : 0.9 * b + g;
          w -= 0.1 * b;
        }
        EXPECT_NEAR(two[k], w, 1e-5) << k;
      }
  }
#else
  GTEST_SKIP() << "built without OpenMP";
#endif
}

TEST(Optimizer, SetStepsRestoresMomentumBehaviour) {
  // After set_steps(1) the momentum buffer is used, not overwritten (resuming a run).
  Fixture<double> f;
  SGD<double> opt(f.named(), SgdOptions(0.1).momentum(0.9));
  (*opt.state()[0].second).fill(1.0);
  opt.set_steps(1);
  f.set_grad(2);
  opt.step();
  EXPECT_EQ(opt.steps(), 2);
  EXPECT_NEAR(f.p.value[0], 0.5 - 0.1 * (0.9 * 1.0 + grad_at(2, 0)), 1e-15);
  EXPECT_TRUE(contains(message_of<ValueError>([&] { opt.set_steps(-2); }), "expected steps >= 0, got -2"));
}

TEST(Optimizer, BadOptionsAreValueErrorsWithTheValues) {
  Parameter<float> w("w", Shape{1});
  const std::vector<NamedParameter<float>> named = {{"w", &w}};
  EXPECT_TRUE(contains(message_of<ValueError>([&] { SGD<float>(named, SgdOptions(-0.5)); }),
                       "expected a finite learning rate >= 0, got -0.5"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { SGD<float>(named, SgdOptions(0.1).momentum(1.0)); }),
                       "SGD: expected momentum in [0, 1), got 1"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { SGD<float>(named, SgdOptions(0.1).momentum(-0.25)); }),
                       "got -0.25"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { SGD<float>(named, SgdOptions(0.1).weight_decay(-0.01)); }),
                       "SGD: expected a finite weight_decay >= 0, got -0.01"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { SGD<float>(named, SgdOptions(0.1).nesterov(true)); }),
                       "Nesterov needs momentum > 0"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { Adam<float>(named, AdamOptions(0.1).betas(0.9, 1.0)); }),
                       "Adam: expected betas in [0, 1), got 0.9 and 1"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { Adam<float>(named, AdamOptions(0.1).betas(-0.1, 0.9)); }),
                       "got -0.1 and 0.9"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { Adam<float>(named, AdamOptions(0.1).eps(0.0)); }),
                       "Adam: expected a finite eps > 0, got 0"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { Adam<float>(named, AdamOptions(0.1).weight_decay(-2)); }),
                       "Adam: expected a finite weight_decay >= 0, got -2"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { Adam<float>(named, AdamOptions(std::nan(""))); }),
                       "expected a finite learning rate >= 0, got nan"));
  SGD<float> ok(named, SgdOptions(0.1));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { ok.set_learning_rate(-1.0); }), "got -1"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { ok.set_learning_rate(INFINITY); }), "got inf"));
  EXPECT_EQ(ok.learning_rate(), 0.1);  // unchanged by the failed sets
}

TEST(LrSchedule, StepDecay) {
  const StepDecay s(0.1, 3, 0.5);
  const double expected[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
  for (int t = 0; t < 10; ++t) EXPECT_NEAR(s(t), expected[t], 1e-15) << "t = " << t;
  EXPECT_NEAR(s(30), 0.1 / 1024, 1e-18);
  const StepDecay constant(0.2, 1, 1.0);
  EXPECT_EQ(constant(1000), 0.2);
  EXPECT_TRUE(contains(message_of<ValueError>([] { StepDecay(0.1, 0, 0.5); }), "got 0.1, 0, 0.5"));
  EXPECT_TRUE(contains(message_of<ValueError>([] { StepDecay(0.1, 2, 1.5); }), "gamma in (0, 1], got 0.1, 2, 1.5"));
  EXPECT_TRUE(contains(message_of<ValueError>([] { StepDecay(-1.0, 2, 0.5); }), "got -1, 2, 0.5"));
}

TEST(LrSchedule, CosineAnnealing) {
  const CosineAnnealing c(0.1, 10, 0.001);
  EXPECT_NEAR(c(0), 0.1, 1e-15);
  EXPECT_NEAR(c(5), 0.001 + 0.099 * 0.5, 1e-15);  // halfway: the mean of the two
  EXPECT_NEAR(c(10), 0.001, 1e-15);
  EXPECT_NEAR(c(20), 0.001, 1e-15);  // stays at the minimum after T
  EXPECT_NEAR(c(-3), 0.1, 1e-15);
  const double pi = std::acos(-1.0);
  for (int t = 0; t <= 10; ++t)
    EXPECT_NEAR(c(t), 0.001 + 0.099 * (1 + std::cos(pi * t / 10.0)) / 2, 1e-15) << "t = " << t;
  EXPECT_NEAR(c(2), 0.001 + 0.099 * (1 + std::cos(pi / 5)) / 2, 1e-15);
  EXPECT_NEAR(c(2), 0.0905463, 1e-7);
  for (int t = 1; t <= 10; ++t) EXPECT_LT(c(t), c(t - 1));
  EXPECT_TRUE(contains(message_of<ValueError>([] { CosineAnnealing(0.1, 0); }), "got total 0"));
  EXPECT_TRUE(contains(message_of<ValueError>([] { CosineAnnealing(0.1, 5, 0.2); }),
                       "got total 5, base_lr 0.1, min_lr 0.2"));
}

}  // namespace
