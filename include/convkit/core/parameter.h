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
      : name(std::move(name_)), value(shape), grad(shape), trainable(trainable_) {}

  /// The dotted path of the parameter in its model ("features.0.weight") once the model's
  /// parameters have been collected; the local name ("weight") before.
  std::string name;
  Tensor<T> value;
  /// Same shape as value; backward passes add to it until zero_grad().
  Tensor<T> grad;
  bool trainable = true;
};

}  // namespace convkit
