// convkit/ops/linear.h — the fully connected (inner product) op.
//
// Shapes: x (N, F), weight (O, F), bias (O), y (N, O).
//   y  = x · Wᵀ + b
//   dX = dY · W                (N, F)
//   dW += dYᵀ · x              (O, F)
//   db += Σ_n dY[n]            (O)
#pragma once

#include "convkit/core/error.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/gemm.h"

namespace convkit::ops {

/// `x` is read as (N, F) whatever its rank: N = its first dimension.
template <typename T>
Tensor<T> linear_forward(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<convkit::detail::NoDeduce<T>>* bias) {
  const Index n = x.dim(0), f = weight.dim(1), o = weight.dim(0);
  CONVKIT_CHECK(x.numel() == n * f, ShapeError,
                "linear: expected input (N, " << f << "), got " << x.shape());
  auto y = Tensor<T>::uninitialized(Shape{n, o});
  if (bias != nullptr) {
    for (Index i = 0; i < n; ++i) std::copy(bias->data(), bias->data() + o, y.data() + i * o);
  }
  gemm(Trans::kNo, Trans::kYes, n, o, f, T(1), x.data(), f, weight.data(), f,
       bias != nullptr ? T(1) : T(0), y.data(), o);
  return y;
}

/// dX with the shape `input_shape` (N·F elements).
template <typename T>
Tensor<T> linear_backward_data(const Tensor<T>& grad_output, const Tensor<T>& weight,
                               const Shape& input_shape) {
  const Index n = grad_output.dim(0), o = weight.dim(0), f = weight.dim(1);
  auto grad_input = Tensor<T>::uninitialized(input_shape);
  gemm(Trans::kNo, Trans::kNo, n, f, o, T(1), grad_output.data(), o, weight.data(), f, T(0),
       grad_input.data(), f);
  return grad_input;
}

/// grad_weight += dYᵀ · x; grad_bias += Σ_n dY[n] (grad_bias may be null).
template <typename T>
void linear_backward_weight(const Tensor<T>& x, const Tensor<T>& grad_output, Tensor<T>& grad_weight,
                            Tensor<convkit::detail::NoDeduce<T>>* grad_bias) {
  const Index n = grad_output.dim(0), o = grad_weight.dim(0), f = grad_weight.dim(1);
  gemm(Trans::kYes, Trans::kNo, o, f, n, T(1), grad_output.data(), o, x.data(), f, T(1),
       grad_weight.data(), f);
  if (grad_bias != nullptr) {
    T* db = grad_bias->data();
    for (Index i = 0; i < n; ++i)
      for (Index j = 0; j < o; ++j) db[j] += grad_output[i * o + j];
  }
}

}  // namespace convkit::ops
