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

  /// The local name within its layer ("weight"); Layer::named_parameters() gives the
  /// dotted path within a model ("features.0.weight").
  std::string name;
  Tensor<T> value;
  /// Same shape as value; backward passes add to it until zero_grad().
  Tensor<T> grad;
  bool trainable = true;
};

/// A parameter with its dotted path in a model, as Layer::named_parameters() returns it.
template <typename T>
struct NamedParameter {
  std::string name;
  Parameter<T>* param = nullptr;
};

}  // namespace convkit
