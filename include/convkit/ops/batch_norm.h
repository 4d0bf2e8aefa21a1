// convkit/ops/batch_norm.h — batch normalisation over (N, H, W) per channel, forward and backward.
//
// Shapes: x (N, C, H, W) -> y (N, C, H, W); gamma, beta, mean, var, invstd (C). With
// M = N·H·W values per channel:
//   training:    μ_c = (1/M) Σ x,   σ²_c = (1/M) Σ (x − μ_c)²   (the biased batch variance)
//   evaluation:  μ_c, σ²_c are the running statistics
//   x̂ = (x − μ_c) / √(σ²_c + ε),   y = γ_c · x̂ + β_c
// Gradients (γ, β accumulate):
//   dβ_c += Σ dy,   dγ_c += Σ dy · x̂
//   training:    dx = (γ_c / √(σ²_c + ε)) · (dy − (1/M) Σ dy − x̂ · (1/M) Σ dy · x̂)
//   evaluation:  dx = (γ_c / √(σ²_c + ε)) · dy          (the statistics are constants)
// The backward pass recomputes x̂ from x, μ and invstd (x̂ = (x − μ_c) · invstd_c in T, the
// forward's own expression, detail::normalised), so the forward writes only y: the layer
// keeps its input, which it takes over without a copy from a caller that gives it up (and
// copies otherwise). The training forward works channel by
// channel: both statistics passes and the normalisation run over one channel's N planes while
// they are in cache. (Before, a third pass over the whole batch also wrote x̂: ResNet-18's
// training step at batch 8, two threads, spent 3.1% of its time in the forward, x read from
// memory twice and two tensors written.)
// Sums over a channel are accumulated in double, so float statistics of large planes stay exact
// to float precision, in 32 interleaved partial sums (DoubleSums): a single running double sum
// cannot be vectorised (its order is fixed) and ran at one add per 4-cycle latency, about 8%
// of a ResNet-18 training step. The order depends only on the shape, never on the threads.
#pragma once

#include <cmath>

#include "convkit/core/error.h"
#include "convkit/core/parallel.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/sums.h"

namespace convkit::ops {

namespace detail {

template <typename T>
void check_batch_norm_shapes(const char* op, const Shape& x, const Tensor<T>& gamma, const Tensor<T>& beta) {
  CONVKIT_CHECK(x.rank() == 4, ShapeError, op << ": expected input (N, C, H, W), got " << x);
  CONVKIT_CHECK(gamma.shape() == Shape{x[1]} && beta.shape() == Shape{x[1]}, ShapeError,
                op << ": expected gamma and beta (" << x[1] << ") for input " << x << ", got "
                   << gamma.shape() << " and " << beta.shape());
}

/// 1/√(σ² + ε), in double.
inline double inverse_std(double var, double eps) { return 1.0 / std::sqrt(var + eps); }

/// x̂ = (x − μ) · invstd, in T: the one expression the forward normalises with and the
/// backward recomputes, so both see the same bits.
template <typename T>
inline T normalised(T x, T mean, T invstd) {
  return (x - mean) * invstd;
}

/// y = γ_c · x̂ + β_c over the N planes of channel ch.
template <typename T>
void batch_norm_apply_channel(const Tensor<T>& x, Index ch, T mean, T invstd, T gamma, T beta, Tensor<T>& y) {
  const Index n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3);
  for (Index s = 0; s < n; ++s) {
    const Index off = (s * c + ch) * plane;
    const T* xp = x.data() + off;
    T* yp = y.data() + off;
    for (Index i = 0; i < plane; ++i) yp[i] = gamma * normalised(xp[i], mean, invstd) + beta;
  }
}

}  // namespace detail

/// Training-mode forward: normalises with the batch statistics. Writes the batch mean and
/// biased variance, and invstd = 1/√(σ² + ε), each (C) (batch_norm_backward takes x, mean and
/// invstd).
/// @throws ShapeError on mismatched shapes or fewer than 2 values per channel; ValueError for eps <= 0.
template <typename T>
Tensor<T> batch_norm_forward_train(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                   double eps, Tensor<T>& mean, Tensor<T>& var, Tensor<T>& invstd) {
  detail::check_batch_norm_shapes("batch_norm", x.shape(), gamma, beta);
  CONVKIT_CHECK(std::isfinite(eps) && eps > 0, ValueError, "batch_norm: expected eps > 0, got " << eps);
  const Index n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3), m = n * plane;
  CONVKIT_CHECK(m >= 2, ShapeError,
                "batch_norm: expected more than one value per channel in training mode, got input " << x.shape());
  mean = Tensor<T>(Shape{c});
  var = Tensor<T>(Shape{c});
  invstd = Tensor<T>(Shape{c});
  auto y = Tensor<T>::uninitialized(x.shape());
  convkit::detail::parallel_for(c, 3.0 * static_cast<double>(x.numel()), [&](Index ch) {
    detail::DoubleSums sum;
    for (Index s = 0; s < n; ++s) {
      const T* xp = x.data() + (s * c + ch) * plane;
      sum.add(plane, [xp](Index i) { return static_cast<double>(xp[i]); });
    }
    const double mc = sum.total() / static_cast<double>(m);
    detail::DoubleSums sq;
    for (Index s = 0; s < n; ++s) {
      const T* xp = x.data() + (s * c + ch) * plane;
      sq.add(plane, [xp, mc](Index i) {
        const double d = static_cast<double>(xp[i]) - mc;
        return d * d;
      });
    }
    const double vc = sq.total() / static_cast<double>(m);
    mean[ch] = static_cast<T>(mc);
    var[ch] = static_cast<T>(vc);
    invstd[ch] = static_cast<T>(detail::inverse_std(vc, eps));
    detail::batch_norm_apply_channel(x, ch, mean[ch], invstd[ch], gamma[ch], beta[ch], y);
  });
  return y;
}

/// Evaluation-mode forward with the running statistics (C each): y = x · s_c + (β_c − μ_c · s_c),
/// s_c = γ_c / √(σ²_c + ε).
/// @throws ShapeError on mismatched shapes; ValueError for eps <= 0.
template <typename T>
Tensor<T> batch_norm_forward_eval(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                  const Tensor<T>& running_mean, const Tensor<T>& running_var, double eps) {
  detail::check_batch_norm_shapes("batch_norm", x.shape(), gamma, beta);
  CONVKIT_CHECK(running_mean.shape() == gamma.shape() && running_var.shape() == gamma.shape(), ShapeError,
                "batch_norm: expected running mean and variance (" << x.dim(1) << "), got "
                                                                   << running_mean.shape() << " and "
                                                                   << running_var.shape());
  CONVKIT_CHECK(std::isfinite(eps) && eps > 0, ValueError, "batch_norm: expected eps > 0, got " << eps);
  const Index n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3);
  auto y = Tensor<T>::uninitialized(x.shape());
  convkit::detail::parallel_for(n * c, static_cast<double>(x.numel()), [&](Index sc) {
    const Index ch = sc % c, off = sc * plane;
    const T is = static_cast<T>(detail::inverse_std(static_cast<double>(running_var[ch]), eps));
    const T scale = gamma[ch] * is, shift = beta[ch] - running_mean[ch] * gamma[ch] * is;
    const T* xp = x.data() + off;
    T* yp = y.data() + off;
    for (Index i = 0; i < plane; ++i) yp[i] = xp[i] * scale + shift;
  });
  return y;
}

/// dX from dY and the forward's input x, mean and invstd (C; the running statistics' for
/// an evaluation-mode forward); adds dγ and dβ (either may be null). `training` selects the
/// formula: batch statistics (they depend on x) or fixed ones.
/// @throws ShapeError on mismatched shapes.
template <typename T>
Tensor<T> batch_norm_backward(const Tensor<T>& grad_output, const Tensor<T>& x, const Tensor<T>& mean,
                              const Tensor<T>& invstd, const Tensor<T>& gamma, bool training,
                              Tensor<T>* grad_gamma, Tensor<T>* grad_beta) {
  CONVKIT_CHECK(grad_output.shape() == x.shape() && x.rank() == 4 && gamma.shape() == Shape{x.dim(1)} &&
                    mean.shape() == gamma.shape() && invstd.shape() == gamma.shape(),
                ShapeError,
                "batch_norm_backward: expected grad_output and x (N, C, H, W) of one shape with mean, invstd "
                "and gamma (C), got "
                    << grad_output.shape() << ", " << x.shape() << ", " << mean.shape() << ", "
                    << invstd.shape() << ", " << gamma.shape());
  const Index n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3);
  const double m = static_cast<double>(n * plane);
  auto grad_input = Tensor<T>::uninitialized(x.shape());
  convkit::detail::parallel_for(c, 3.0 * static_cast<double>(x.numel()), [&](Index ch) {
    const T mu = mean[ch], is = invstd[ch];
    detail::DoubleSums dy_sums, dy_xhat_sums;
    for (Index s = 0; s < n; ++s) {
      const Index off = (s * c + ch) * plane;
      const T* dy = grad_output.data() + off;
      const T* xp = x.data() + off;
      dy_sums.add(plane, [dy](Index i) { return static_cast<double>(dy[i]); });
      dy_xhat_sums.add(plane, [dy, xp, mu, is](Index i) {
        return static_cast<double>(dy[i]) * static_cast<double>(detail::normalised(xp[i], mu, is));
      });
    }
    const double sum_dy = dy_sums.total(), sum_dy_xhat = dy_xhat_sums.total();
    if (grad_beta != nullptr) (*grad_beta)[ch] += static_cast<T>(sum_dy);
    if (grad_gamma != nullptr) (*grad_gamma)[ch] += static_cast<T>(sum_dy_xhat);
    const T scale = gamma[ch] * is;
    if (!training) {
      for (Index s = 0; s < n; ++s) {
        const Index off = (s * c + ch) * plane;
        const T* dy = grad_output.data() + off;
        T* dx = grad_input.data() + off;
        for (Index i = 0; i < plane; ++i) dx[i] = scale * dy[i];
      }
      return;
    }
    const T mean_dy = static_cast<T>(sum_dy / m), mean_dy_xhat = static_cast<T>(sum_dy_xhat / m);
    for (Index s = 0; s < n; ++s) {
      const Index off = (s * c + ch) * plane;
      const T* dy = grad_output.data() + off;
      const T* xp = x.data() + off;
      T* dx = grad_input.data() + off;
      for (Index i = 0; i < plane; ++i)
        dx[i] = scale * (dy[i] - mean_dy - detail::normalised(xp[i], mu, is) * mean_dy_xhat);
    }
  });
  return grad_input;
}

}  // namespace convkit::ops
