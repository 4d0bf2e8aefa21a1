// convkit/ops/lrn.h — cross-channel local response normalisation, forward and backward.
//
// Shapes: x (N, C, H, W) -> y (N, C, H, W). For every sample and pixel, channel c is divided
// by a power of the sum of squares over a window of `size` neighbouring channels:
//   s_c = k + (α / size) · Σ_{j ∈ W(c)} x_j²,     W(c) = [c − ⌊size/2⌋, c + ⌊(size−1)/2⌋] ∩ [0, C)
//   y_c = x_c · s_c^(−β)
// (PyTorch's LocalResponseNorm and Caffe's ACROSS_CHANNELS LRN; AlexNet uses size 5,
// α = 1e-4, β = 0.75, k = 2. The AlexNet paper writes α without the division by size.)
//
// Gradient: channel i appears in the window of every j with i ∈ W(j), i.e. j ∈ [i − ⌊(size−1)/2⌋, i + ⌊size/2⌋]:
//   dx_i = dy_i · s_i^(−β) − (2αβ / size) · x_i · Σ_{j : i ∈ W(j)} dy_j · y_j / s_j
#pragma once

#include <algorithm>
#include <cmath>

#include "convkit/core/error.h"
#include "convkit/core/tensor.h"

namespace convkit::ops {

struct LrnParams {
  Index size = 5;
  double alpha = 1e-4;
  double beta = 0.75;
  double k = 2.0;
};

/// @throws ValueError (its message starting with `who`) for size < 1, or alpha, beta, k not
/// finite, alpha or beta < 0, or k <= 0.
inline void lrn_check_params(const LrnParams& p, const char* who = "lrn") {
  CONVKIT_CHECK(p.size >= 1, ValueError, who << ": expected size >= 1, got " << p.size);
  CONVKIT_CHECK(std::isfinite(p.alpha) && std::isfinite(p.beta) && std::isfinite(p.k) && p.alpha >= 0 &&
                    p.beta >= 0 && p.k > 0,
                ValueError,
                who << ": expected finite alpha >= 0, beta >= 0 and k > 0, got alpha " << p.alpha << ", beta "
                                                                                  << p.beta << ", k " << p.k);
}

namespace detail {

/// s^(−β), with the AlexNet case β = 3/4 as two square roots (vectorisable; pow is not).
template <typename T>
inline T pow_neg_beta(T s, T beta) {
  if (beta == T(0.75)) {
    const T r = std::sqrt(s);
    return T(1) / (r * std::sqrt(r));
  }
  return std::pow(s, -beta);
}

}  // namespace detail

/// y = LRN(x); `scale` receives s (same shape as x) for the backward pass.
/// @throws ValueError for bad params; ShapeError unless x is (N, C, H, W).
template <typename T>
Tensor<T> lrn_forward(const Tensor<T>& x, const LrnParams& p, Tensor<T>& scale) {
  lrn_check_params(p);
  CONVKIT_CHECK(x.rank() == 4, ShapeError, "lrn: expected input (N, C, H, W), got " << x.shape());
  const Index n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3);
  const Index before = p.size / 2, after = (p.size - 1) / 2;
  const T a = static_cast<T>(p.alpha / static_cast<double>(p.size)), k = static_cast<T>(p.k),
          beta = static_cast<T>(p.beta);
  auto y = Tensor<T>::uninitialized(x.shape());
  scale = Tensor<T>::uninitialized(x.shape());
  for (Index s = 0; s < n; ++s) {
    const T* xs = x.data() + s * c * plane;
    T* ss = scale.data() + s * c * plane;
    T* ys = y.data() + s * c * plane;
    for (Index ch = 0; ch < c; ++ch) {
      T* sc = ss + ch * plane;
      std::fill(sc, sc + plane, T(0));
      for (Index j = std::max<Index>(0, ch - before); j <= std::min(c - 1, ch + after); ++j) {
        const T* xj = xs + j * plane;
        for (Index i = 0; i < plane; ++i) sc[i] += xj[i] * xj[i];
      }
      const T* xc = xs + ch * plane;
      T* yc = ys + ch * plane;
      for (Index i = 0; i < plane; ++i) {
        sc[i] = k + a * sc[i];
        yc[i] = xc[i] * detail::pow_neg_beta(sc[i], beta);
      }
    }
  }
  return y;
}

/// dX from dY, the forward's input x, output y and scale s (all (N, C, H, W)).
/// @throws ShapeError if the four shapes differ.
template <typename T>
Tensor<T> lrn_backward(const Tensor<T>& grad_output, const Tensor<T>& x, const Tensor<T>& y,
                       const Tensor<T>& scale, const LrnParams& p) {
  CONVKIT_CHECK(grad_output.shape() == x.shape() && y.shape() == x.shape() && scale.shape() == x.shape() &&
                    x.rank() == 4,
                ShapeError,
                "lrn_backward: expected grad_output, input, output and scale of one shape (N, C, H, W), got "
                    << grad_output.shape() << ", " << x.shape() << ", " << y.shape() << ", " << scale.shape());
  const Index n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3);
  const Index before = p.size / 2, after = (p.size - 1) / 2;
  const T coef = static_cast<T>(2.0 * p.alpha * p.beta / static_cast<double>(p.size)),
          beta = static_cast<T>(p.beta);
  auto grad_input = Tensor<T>::uninitialized(x.shape());
  // ratio_j = dy_j · y_j / s_j, one sample at a time.
  auto ratio = Tensor<T>::uninitialized(Shape{c, plane});
  for (Index s = 0; s < n; ++s) {
    const Index off = s * c * plane;
    const T* dy = grad_output.data() + off;
    const T* xs = x.data() + off;
    const T* ys = y.data() + off;
    const T* ss = scale.data() + off;
    T* dx = grad_input.data() + off;
    T* r = ratio.data();
    for (Index i = 0; i < c * plane; ++i) r[i] = dy[i] * ys[i] / ss[i];
    for (Index ch = 0; ch < c; ++ch) {
      T* dxc = dx + ch * plane;
      std::fill(dxc, dxc + plane, T(0));
      for (Index j = std::max<Index>(0, ch - after); j <= std::min(c - 1, ch + before); ++j) {
        const T* rj = r + j * plane;
        for (Index i = 0; i < plane; ++i) dxc[i] += rj[i];
      }
      const T* xc = xs + ch * plane;
      const T* dyc = dy + ch * plane;
      const T* sc = ss + ch * plane;
      for (Index i = 0; i < plane; ++i) dxc[i] = dyc[i] * detail::pow_neg_beta(sc[i], beta) - coef * xc[i] * dxc[i];
    }
  }
  return grad_input;
}

}  // namespace convkit::ops
