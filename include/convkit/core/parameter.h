// convkit/core/parameter.h — Parameter<T>: a named value with its gradient.
//
// Weights and biases are trainable Parameters. Non-trainable buffers (batch-norm running
// statistics) are Parameters too, so a checkpoint holds them; optimisers skip them.
#pragma once

#include <string>
#include <utility>

#include "convkit/core/tensor.h"

namespace convkit {

template <typename T>
struct Parameter {
  Parameter() = default;
  Parameter(std::string name_, const Shape& shape, bool trainable_ = true)
      : name(std::move(name_)), value(shape), trainable(trainable_) {}

  /// The local name within its layer ("weight"); Layer::named_parameters() gives the
  /// dotted path within a model ("features.0.weight").
  std::string name;
  Tensor<T> value;
  /// Same shape as value once a backward pass has touched the parameter (allocated then,
  /// zero-filled, as PyTorch's .grad); empty before, so a model used only for inference
  /// holds no gradient memory. Backward passes add to it until zero_grad().
  Tensor<T> grad;
  bool trainable = true;

  /// Whether grad has been allocated.
  bool has_grad() const { return grad.shape() == value.shape(); }
  /// grad, allocated and zero-filled first if it is not yet.
  Tensor<T>& ensure_grad() {
    if (!has_grad()) grad = Tensor<T>(value.shape());
    return grad;
  }
};

/// A parameter with its dotted path in a model, as Layer::named_parameters() returns it.
template <typename T>
struct NamedParameter {
  std::string name;
  Parameter<T>* param = nullptr;
};

}  // namespace convkit
