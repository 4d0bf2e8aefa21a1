// convkit/losses/softmax_cross_entropy.h — softmax and negative log-likelihood, fused.
//
// logits (N, C) with N labels, or (N, C, H, W) with N·H·W labels (pixel-wise, as for
// semantic segmentation; label order n, h, w). With M the number of labels:
//   L = −(1/M) Σ_i log softmax(x_i)[y_i]
//   ∂L/∂x_i = (softmax(x_i) − onehot(y_i)) / M
// log softmax subtracts the maximum logit first, so any finite logits (±1e4 included) give
// a finite loss and gradient.
#pragma once

#include <cmath>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/anomaly.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/softmax.h"

namespace convkit {

template <typename T>
class SoftmaxCrossEntropy {
 public:
  /// The mean loss over all labels.
  /// @throws ShapeError if logits are not (N, C) or (N, C, H, W) or the label count differs
  /// from N (or N·H·W); ValueError naming the first label outside [0, C).
  T forward(const Tensor<T>& logits, const std::vector<Index>& labels) {
    CONVKIT_CHECK((logits.rank() == 2 || logits.rank() == 4) && logits.dim(1) >= 1, ShapeError,
                  "SoftmaxCrossEntropy: expected logits (N, C) or (N, C, H, W) with C >= 1, got "
                      << logits.shape());
    const Index n = logits.dim(0), c = logits.dim(1), s = logits.numel() / std::max<Index>(1, n * c);
    CONVKIT_CHECK(n * s >= 1, ShapeError,
                  "SoftmaxCrossEntropy: expected at least one label, got logits " << logits.shape());
    CONVKIT_CHECK(static_cast<Index>(labels.size()) == n * s, ShapeError,
                  "SoftmaxCrossEntropy: expected " << n * s << " labels for logits " << logits.shape()
                                                   << ", got " << labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i)
      CONVKIT_CHECK(labels[i] >= 0 && labels[i] < c, ValueError,
                    "SoftmaxCrossEntropy: label " << labels[i] << " at index " << i
                                                  << " is out of range [0, " << c << ")");
    log_prob_ = ops::log_softmax(logits);
    labels_ = labels;
    double total = 0.0;
    for (Index i = 0; i < n; ++i)
      for (Index p = 0; p < s; ++p)
        total -= static_cast<double>(
            log_prob_[(i * c + labels[static_cast<std::size_t>(i * s + p)]) * s + p]);
    const T value = static_cast<T>(total / static_cast<double>(std::max<Index>(1, n * s)));
    if (detect_anomaly()) detail::check_finite_loss(value, "SoftmaxCrossEntropy", logits, "logits");
    return value;
  }

  /// ∂L/∂logits for the last forward.
  /// @throws StateError before any forward.
  Tensor<T> backward() const {
    CONVKIT_CHECK(log_prob_.numel() > 0, StateError, "SoftmaxCrossEntropy: backward called before forward");
    const Index n = log_prob_.dim(0), c = log_prob_.dim(1), s = log_prob_.numel() / (n * c);
    const T inv_m = T(1) / static_cast<T>(n * s);
    Tensor<T> grad(log_prob_.shape());
    for (Index i = 0; i < log_prob_.numel(); ++i) grad[i] = std::exp(log_prob_[i]) * inv_m;
    for (Index i = 0; i < n; ++i)
      for (Index p = 0; p < s; ++p)
        grad[(i * c + labels_[static_cast<std::size_t>(i * s + p)]) * s + p] -= inv_m;
    if (detect_anomaly()) detail::check_finite(grad, "SoftmaxCrossEntropy", "backward", "the gradient", log_prob_, "its log-probabilities");
    return grad;
  }

  /// log softmax of the last forward's logits (same shape).
  const Tensor<T>& log_probabilities() const { return log_prob_; }

 private:
  Tensor<T> log_prob_;
  std::vector<Index> labels_;
};

}  // namespace convkit
