// convkit/testing/gradcheck.h — the finite-difference gradient checker, for anyone who writes
// a layer (convkit's own tests use it for every layer and loss).
//
// For a layer f in double precision and a random projection g, L(x, θ) = <f(x; θ), g>. The
// analytic gradients come from one backward(g); the numerical ones from central differences
//   ∂L/∂v ≈ (L(v + ε) − L(v − ε)) / 2ε
// for every input element and every trainable parameter element. Parameter gradients are
// pre-filled with random values before backward, so a backward that overwrites instead of
// adding fails. An element passes when
//   |analytic − numerical| <= max(abs_tol, rel_tol · max(|analytic|, |numerical|)).
// Keep inputs away from kinks (ReLU at 0, ties in a max pooling): there the derivative does
// not exist and the two sides disagree.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "convkit/core/rng.h"
#include "convkit/core/tensor.h"
#include "convkit/layers/layer.h"

namespace convkit::testing {

struct GradcheckOptions {
  double eps = 1e-5;
  double rel_tol = 1e-6;
  double abs_tol = 1e-9;
  /// Called before every forward (for example to reset a Dropout mask's Rng).
  std::function<void()> before_forward;
};

/// The outcome of a check: how many elements were compared and the worst of them.
class GradcheckResult {
 public:
  explicit GradcheckResult(const GradcheckOptions& o = GradcheckOptions()) : o_(o) {}

  /// Compares one analytic value with its numerical estimate.
  void compare(const std::string& what, Index i, double analytic, double numerical) {
    ++checked_;
    const double diff = std::abs(analytic - numerical);
    const double allowed = std::max(o_.abs_tol, o_.rel_tol * std::max(std::abs(analytic), std::abs(numerical)));
    const double ratio = diff / allowed;
    if (!(ratio <= worst_ratio_)) {  // NaN counts as the worst
      worst_ratio_ = ratio;
      std::ostringstream os;
      os.precision(12);
      os << what << "[" << i << "]: analytic " << analytic << ", numerical " << numerical << ", |diff| " << diff
         << " (allowed " << allowed << ")";
      worst_ = os.str();
    }
  }

  /// Records a failure that is not one element's (a gradient of the wrong shape).
  void fail(const std::string& why) { failure_ = why; }

  /// Some element was compared, every one is within tolerance, and nothing else failed.
  bool ok() const { return failure_.empty() && checked_ > 0 && worst_ratio_ <= 1.0; }
  Index checked() const { return checked_; }
  /// "N elements within tolerance", or what failed (the worst element's values).
  std::string message() const {
    std::ostringstream os;
    if (!failure_.empty()) os << "gradcheck failed: " << failure_;
    else if (checked_ == 0) os << "gradcheck compared no element";
    else if (ok()) os << checked_ << " elements within tolerance";
    else os << "gradcheck failed on " << checked_ << " elements; worst: " << worst_;
    return os.str();
  }

 private:
  GradcheckOptions o_;
  Index checked_ = 0;
  double worst_ratio_ = 0.0;
  std::string worst_;
  std::string failure_;
};

namespace detail {

/// (L(v + ε) − L(v − ε)) / 2ε, with v restored afterwards.
template <typename Loss>
double central_difference(double& v, double eps, Loss&& loss) {
  const double saved = v;
  v = saved + eps;
  const double lp = loss();
  v = saved - eps;
  const double lm = loss();
  v = saved;
  return (lp - lm) / (2 * eps);
}

/// <a, b> accumulated in long double, so the sum adds little rounding to the differences.
inline double dot(const Tensor<double>& a, const Tensor<double>& b) {
  long double s = 0;
  for (Index i = 0; i < a.numel(); ++i) s += static_cast<long double>(a[i]) * b[i];
  return static_cast<double>(s);
}

}  // namespace detail

/// Checks `analytic` = ∂loss/∂x at x by central differences on every element of x.
inline GradcheckResult gradcheck(const std::function<double(const Tensor<double>&)>& loss, Tensor<double> x,
                                 const Tensor<double>& analytic, const GradcheckOptions& o = {}) {
  GradcheckResult r(o);
  if (analytic.shape() != x.shape()) {
    r.fail("analytic gradient " + analytic.shape().to_string() + " differs from input " + x.shape().to_string());
    return r;
  }
  for (Index i = 0; i < x.numel(); ++i)
    r.compare("input", i, analytic[i], detail::central_difference(x[i], o.eps, [&] { return loss(x); }));
  return r;
}


/// Gradient check of `layer` at input x: every input element and every trainable parameter
/// element (see the top of this file). The layer is left with perturbed-and-restored values
/// and accumulated gradients.
inline GradcheckResult gradcheck(Layer<double>& layer, Tensor<double> x, Rng& rng, const GradcheckOptions& o = {}) {
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

  GradcheckResult r(o);
  if (dx.shape() != x.shape()) {
    r.fail("input gradient " + dx.shape().to_string() + " differs from input " + x.shape().to_string());
    return r;
  }
  auto loss = [&](const Tensor<double>& in) { return detail::dot(run_forward(in), g); };
  auto numerical = [&](double& v) { return detail::central_difference(v, o.eps, [&] { return loss(x); }); };
  for (Index i = 0; i < x.numel(); ++i) r.compare("input", i, dx[i], numerical(x[i]));
  for (std::size_t k = 0; k < params.size(); ++k) {
    Parameter<double>& p = *params[k];
    for (Index i = 0; i < p.value.numel(); ++i) r.compare(p.name, i, p.grad[i] - prefill[k][i], numerical(p.value[i]));
  }
  return r;
}

}  // namespace convkit::testing
