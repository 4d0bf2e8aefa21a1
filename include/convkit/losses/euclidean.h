// convkit/losses/euclidean.h — Euclidean (sum of squares) loss, Caffe's convention.
//
// prediction and target have the same shape (N, ...):
//   L = 1/(2N) Σ_n ‖ŷ_n − y_n‖²        (divided by the batch size N, not the element count,
//                                       and halved, as Caffe's EuclideanLoss)
//   ∂L/∂ŷ = (ŷ − y) / N
#pragma once

#include "convkit/core/error.h"
#include "convkit/core/anomaly.h"
#include "convkit/core/tensor.h"

namespace convkit {

template <typename T>
class Euclidean {
 public:
  /// @throws ShapeError if the shapes differ or the batch is empty.
  T forward(const Tensor<T>& prediction, const Tensor<T>& target) {
    CONVKIT_CHECK(prediction.shape() == target.shape() && prediction.rank() >= 1 && prediction.numel() >= 1,
                  ShapeError,
                  "Euclidean: expected a target of the prediction's shape " << prediction.shape()
                      << " with at least one element, got " << target.shape());
    diff_ = Tensor<T>(prediction.shape());
    double total = 0.0;
    for (Index i = 0; i < prediction.numel(); ++i) {
      diff_[i] = prediction[i] - target[i];
      total += static_cast<double>(diff_[i]) * static_cast<double>(diff_[i]);
    }
    const T value = static_cast<T>(total / (2.0 * static_cast<double>(prediction.dim(0))));
    if (detect_anomaly()) detail::check_finite_loss(value, "Euclidean", diff_, "prediction - target");
    return value;
  }

  /// ∂L/∂prediction for the last forward.
  /// @throws StateError before any forward.
  Tensor<T> backward() const {
    CONVKIT_CHECK(diff_.numel() > 0, StateError, "Euclidean: backward called before forward");
    Tensor<T> grad(diff_);
    const T inv_n = T(1) / static_cast<T>(diff_.dim(0));
    for (T& g : grad) g *= inv_n;
    if (detect_anomaly()) detail::check_finite(grad, "Euclidean", "backward", "the gradient", diff_, "prediction - target");
    return grad;
  }

 private:
  Tensor<T> diff_;
};

}  // namespace convkit
