// tests/support/gradcheck.h — the library's gradient checker (convkit/testing/gradcheck.h) as
// GoogleTest assertions, and random inputs that keep away from kinks (DESIGN.md §8).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <utility>

#include <convkit/core/rng.h>
#include <convkit/core/tensor.h>
#include <convkit/layers/layer.h>
#include <convkit/testing/gradcheck.h>

namespace convkit::testing {

using detail::dot;  // <a, b> in long double

inline ::testing::AssertionResult as_assertion(const GradcheckResult& r) {
  if (r.ok()) return ::testing::AssertionSuccess() << r.message();
  return ::testing::AssertionFailure() << r.message();
}

/// Checks `analytic` = ∂loss/∂x at x by central differences on every element of x.
inline ::testing::AssertionResult gradcheck_function(
    const std::function<double(const Tensor<double>&)>& loss, Tensor<double> x,
    const Tensor<double>& analytic, const GradcheckOptions& o = {}) {
  return as_assertion(gradcheck(loss, std::move(x), analytic, o));
}

/// Gradient check of a layer at input x: every input element and every trainable parameter.
inline ::testing::AssertionResult gradcheck_layer(Layer<double>& layer, Tensor<double> x, Rng& rng,
                                                  const GradcheckOptions& o = {}) {
  return as_assertion(gradcheck(layer, std::move(x), rng, o));
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
