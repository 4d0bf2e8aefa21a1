// convkit/losses/sigmoid_cross_entropy.h — binary cross-entropy on logits, elementwise.
//
// logits and targets have the same shape (any rank), targets in [0, 1]. Over all M elements:
//   L = (1/M) Σ [ max(x, 0) − x·t + log(1 + e^−|x|) ]      (= −t·log σ(x) − (1−t)·log(1−σ(x)))
//   ∂L/∂x = (σ(x) − t) / M
// The form above never exponentiates a positive number, so it is finite for any finite x.
// The mean is over every element, as PyTorch's BCEWithLogitsLoss (Caffe divides by N only).
#pragma once

#include <algorithm>
#include <cmath>

#include "convkit/core/error.h"
#include "convkit/core/anomaly.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/activation.h"

namespace convkit {

template <typename T>
class SigmoidCrossEntropy {
 public:
  /// @throws ShapeError if the shapes differ; ValueError naming the first target outside [0, 1].
  T forward(const Tensor<T>& logits, const Tensor<T>& targets) {
    CONVKIT_CHECK(logits.shape() == targets.shape() && logits.numel() > 0, ShapeError,
                  "SigmoidCrossEntropy: expected non-empty targets of the logits' shape "
                      << logits.shape() << ", got " << targets.shape());
    double total = 0.0;
    for (Index i = 0; i < logits.numel(); ++i) {
      const T x = logits[i], t = targets[i];
      CONVKIT_CHECK(t >= T(0) && t <= T(1), ValueError,
                    "SigmoidCrossEntropy: target " << t << " at index " << i << " is outside [0, 1]");
      total += static_cast<double>(std::max(x, T(0)) - x * t + std::log1p(std::exp(-std::abs(x))));
    }
    logits_ = logits;
    targets_ = targets;
    const T value = static_cast<T>(total / static_cast<double>(logits.numel()));
    if (detect_anomaly()) detail::check_finite_loss(value, "SigmoidCrossEntropy", logits, "logits");
    return value;
  }

  /// ∂L/∂logits for the last forward.
  /// @throws StateError before any forward.
  Tensor<T> backward() const {
    CONVKIT_CHECK(logits_.numel() > 0, StateError, "SigmoidCrossEntropy: backward called before forward");
    Tensor<T> grad(logits_.shape());
    const T inv_m = T(1) / static_cast<T>(logits_.numel());
    for (Index i = 0; i < grad.numel(); ++i)
      grad[i] = (ops::detail::sigmoid(logits_[i]) - targets_[i]) * inv_m;
    if (detect_anomaly()) detail::check_finite(grad, "SigmoidCrossEntropy", "backward", "the gradient", logits_, "logits");
    return grad;
  }

 private:
  Tensor<T> logits_;
  Tensor<T> targets_;
};

}  // namespace convkit
