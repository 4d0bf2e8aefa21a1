// convkit/ops/activation.h — elementwise activations, each forward beside its backward.
//
//   ReLU      y = max(x, 0)          dx = dy · [x > 0]        (gradient 0 at x = 0; NaN in, NaN out: as PyTorch)
//   Sigmoid   y = 1 / (1 + e^−x)     dx = dy · y · (1 − y)
//   Tanh      y = tanh x             dx = dy · (1 − y²)
//   SoftSign  y = x / (1 + |x|)      dx = dy / (1 + |x|)²
//
// All tensors have the same shape, any rank. Backward takes what the formula needs: the
// output y for ReLU, Sigmoid and Tanh, the input x for SoftSign.
#pragma once

#include <cmath>

#include "convkit/core/error.h"
#include "convkit/core/parallel.h"
#include "convkit/core/tensor.h"

namespace convkit::ops {

namespace detail {

template <typename T, typename Fn>
Tensor<T> map_unary(const Tensor<T>& x, Fn fn) {
  auto y = Tensor<T>::uninitialized(x.shape());
  const T* xd = x.data();
  T* yd = y.data();
  convkit::detail::parallel_ranges(x.numel(), [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) yd[i] = fn(xd[i]);
  });
  return y;
}

template <typename T, typename Fn>
Tensor<T> map_binary(const char* op, const Tensor<T>& grad_output, const Tensor<T>& saved, Fn fn) {
  CONVKIT_CHECK(grad_output.shape() == saved.shape(), ShapeError,
                op << ": expected grad_output " << saved.shape() << ", got " << grad_output.shape());
  auto gx = Tensor<T>::uninitialized(saved.shape());
  const T* gy = grad_output.data();
  const T* s = saved.data();
  T* g = gx.data();
  convkit::detail::parallel_ranges(saved.numel(), [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) g[i] = fn(gy[i], s[i]);
  });
  return gx;
}

/// Logistic function, computed without overflow for any sign of x.
template <typename T>
T sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

}  // namespace detail

template <typename T>
Tensor<T> relu_forward(const Tensor<T>& x) {
  // Written so that it vectorises, branch-free (a branch on the sign mispredicts on half of
  // real activations: 25x slower measured): v <= 0 is false for NaN, so NaN stays NaN, as in
  // PyTorch, and true for -0, which becomes +0. (GCC 12 would not vectorise the same select
  // followed by "+ 0": ReLU ran as a branchy scalar loop with AVX2, 8% of a LeNet-5 step.)
  return detail::map_unary(x, [](T v) { return v <= T(0) ? T(0) : v; });
}
/// `kept` is the forward's y or its x: y > 0 exactly where x > 0 (both false for NaN).
template <typename T>
Tensor<T> relu_backward(const Tensor<T>& grad_output, const Tensor<T>& kept) {
  return detail::map_binary("relu_backward", grad_output, kept,
                            [](T g, T y) { return y <= T(0) ? T(0) : g; });
}

template <typename T>
Tensor<T> sigmoid_forward(const Tensor<T>& x) {
  return detail::map_unary(x, [](T v) { return detail::sigmoid(v); });
}
template <typename T>
Tensor<T> sigmoid_backward(const Tensor<T>& grad_output, const Tensor<T>& output) {
  return detail::map_binary("sigmoid_backward", grad_output, output,
                            [](T g, T y) { return g * y * (T(1) - y); });
}

template <typename T>
Tensor<T> tanh_forward(const Tensor<T>& x) {
  return detail::map_unary(x, [](T v) { return std::tanh(v); });
}
template <typename T>
Tensor<T> tanh_backward(const Tensor<T>& grad_output, const Tensor<T>& output) {
  return detail::map_binary("tanh_backward", grad_output, output,
                            [](T g, T y) { return g * (T(1) - y * y); });
}

template <typename T>
Tensor<T> softsign_forward(const Tensor<T>& x) {
  return detail::map_unary(x, [](T v) { return v / (T(1) + std::abs(v)); });
}
/// `input` is the forward's x.
template <typename T>
Tensor<T> softsign_backward(const Tensor<T>& grad_output, const Tensor<T>& input) {
  return detail::map_binary("softsign_backward", grad_output, input, [](T g, T x) {
    const T d = T(1) + std::abs(x);
    return g / (d * d);
  });
}

/// Inverted dropout: y = x · mask, where mask holds 0 or 1 / (1 − p) per element.
template <typename T>
Tensor<T> dropout_forward(const Tensor<T>& x, const Tensor<T>& mask) {
  return detail::map_binary("dropout_forward", x, mask, [](T v, T m) { return v * m; });
}
/// dx = dy · mask.
template <typename T>
Tensor<T> dropout_backward(const Tensor<T>& grad_output, const Tensor<T>& mask) {
  return detail::map_binary("dropout_backward", grad_output, mask, [](T g, T m) { return g * m; });
}

}  // namespace convkit::ops
