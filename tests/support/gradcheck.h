// tests/support/gradcheck.h — the double-precision finite-difference gradient checker that
// every layer and loss test uses (DESIGN.md §8).
//
// For a layer f and a random projection g, L(x, θ) = <f(x; θ), g>. The analytic gradients
// come from one backward(g); the numerical ones from central differences
//   ∂L/∂v ≈ (L(v + ε) − L(v − ε)) / 2ε
// for every input element and every trainable parameter element. Parameter gradients are pre-filled
// with random values before backward, so a backward that overwrites instead of adding fails.
// An element passes when |analytic − numerical| <= max(abs_tol, rel_tol · max(|a|, |n|)).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/core/rng.h>
#include <convkit/core/tensor.h>
#include <convkit/layers/layer.h>

namespace convkit::testing {

struct GradcheckOptions {
  double eps = 1e-5;
  double rel_tol = 1e-6;
  double abs_tol = 1e-9;
  /// Called before every forward (for example to reset a Dropout mask's Rng).
  std::function<void()> before_forward;
};

/// Compares one analytic value against its numerical estimate; records the worst miss.
class GradcheckReport {
 public:
  explicit GradcheckReport(const GradcheckOptions& o) : o_(o) {}

  void compare(const std::string& what, Index i, double analytic, double numerical) {
    ++checked_;
    const double diff = std::abs(analytic - numerical);
    const double scale = std::max(std::abs(analytic), std::abs(numerical));
    const double allowed = std::max(o_.abs_tol, o_.rel_tol * scale);
    const double ratio = diff / allowed;
    if (ratio > worst_ratio_) {
      worst_ratio_ = ratio;
      std::ostringstream os;
      os.precision(12);
      os << what << "[" << i << "]: analytic " << analytic << ", numerical " << numerical
         << ", |diff| " << diff << " (allowed " << allowed << ")";
      worst_ = os.str();
    }
  }

  ::testing::AssertionResult result() const {
    if (checked_ == 0) return ::testing::AssertionFailure() << "gradcheck compared no element";
    if (worst_ratio_ <= 1.0)
      return ::testing::AssertionSuccess() << checked_ << " elements within tolerance";
    return ::testing::AssertionFailure() << "gradcheck failed on " << checked_
                                         << " elements; worst: " << worst_;
  }

  Index checked() const { return checked_; }

 private:
  GradcheckOptions o_;
  Index checked_ = 0;
  double worst_ratio_ = 0.0;
  std::string worst_;
};

/// Checks `analytic` = ∂loss/∂x at x by central differences on every element of x.
inline ::testing::AssertionResult gradcheck_function(
    const std::function<double(const Tensor<double>&)>& loss, Tensor<double> x,
    const Tensor<double>& analytic, const GradcheckOptions& o = {}) {
  if (analytic.shape() != x.shape())
    return ::testing::AssertionFailure() << "analytic gradient " << analytic.shape()
                                         << " differs from input " << x.shape();
  GradcheckReport report(o);
  for (Index i = 0; i < x.numel(); ++i) {
    const double v = x[i];
    x[i] = v + o.eps;
    const double lp = loss(x);
    x[i] = v - o.eps;
    const double lm = loss(x);
    x[i] = v;
    report.compare("input", i, analytic[i], (lp - lm) / (2 * o.eps));
  }
  return report.result();
}

/// <a, b> accumulated in long double, so the sum adds little rounding to the differences.
inline double dot(const Tensor<double>& a, const Tensor<double>& b) {
  long double s = 0;
  for (Index i = 0; i < a.numel(); ++i) s += static_cast<long double>(a[i]) * b[i];
  return static_cast<double>(s);
}

/// Gradient check of a layer at input x: every input element and every parameter element.
inline ::testing::AssertionResult gradcheck_layer(Layer<double>& layer, Tensor<double> x, Rng& rng,
                                                  const GradcheckOptions& o = {}) {
  auto run_forward = [&](const Tensor<double>& in) {
    if (o.before_forward) o.before_forward();
    return layer.forward(in);
  };
  const Tensor<double> y = run_forward(x);
  Tensor<double> g(y.shape());
  for (double& v : g) v = rng.normal();

  // Trainable parameters only: buffers (batch-norm running statistics) have no gradient.
  std::vector<Parameter<double>*> params;
  for (Parameter<double>* p : layer.parameters())
    if (p->trainable) params.push_back(p);
  std::vector<Tensor<double>> prefill;
  for (Parameter<double>* p : params) {
    for (double& v : p->ensure_grad()) v = rng.normal();
    prefill.push_back(p->grad);
  }
  const Tensor<double> dx = layer.backward(g);

  GradcheckReport report(o);
  auto loss = [&](const Tensor<double>& in) { return dot(run_forward(in), g); };
  if (dx.shape() != x.shape())
    return ::testing::AssertionFailure() << "input gradient " << dx.shape() << " differs from input "
                                         << x.shape();
  for (Index i = 0; i < x.numel(); ++i) {
    const double v = x[i];
    x[i] = v + o.eps;
    const double lp = loss(x);
    x[i] = v - o.eps;
    const double lm = loss(x);
    x[i] = v;
    report.compare("input", i, dx[i], (lp - lm) / (2 * o.eps));
  }
  for (std::size_t k = 0; k < params.size(); ++k) {
    Parameter<double>& p = *params[k];
    for (Index i = 0; i < p.value.numel(); ++i) {
      const double v = p.value[i];
      p.value[i] = v + o.eps;
      const double lp = loss(x);
      p.value[i] = v - o.eps;
      const double lm = loss(x);
      p.value[i] = v;
      report.compare(p.name, i, p.grad[i] - prefill[k][i], (lp - lm) / (2 * o.eps));
    }
  }
  return report.result();
}

/// A tensor of the given shape with elements drawn from N(0, 1).
inline Tensor<double> random_normal(const Shape& s, Rng& rng) {
  Tensor<double> t(s);
  for (double& v : t) v = rng.normal();
  return t;
}

/// Elements whose magnitude is at least `margin`, so no element sits on a kink at 0.
inline Tensor<double> random_away_from_zero(const Shape& s, Rng& rng, double margin = 0.05) {
  Tensor<double> t(s);
  for (double& v : t) {
    const double m = margin + rng.uniform();
    v = rng.bernoulli(0.5) ? m : -m;
  }
  return t;
}

/// Distinct values spaced at least `gap` apart, in random order (no max-pool ties).
inline Tensor<double> random_distinct(const Shape& s, Rng& rng, double gap = 0.01) {
  Tensor<double> t(s);
  const Index n = t.numel();
  for (Index i = 0; i < n; ++i) t[i] = (static_cast<double>(i) - n / 2.0) * gap;
  for (Index i = n - 1; i > 0; --i) std::swap(t[i], t[static_cast<Index>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  return t;
}

}  // namespace convkit::testing
