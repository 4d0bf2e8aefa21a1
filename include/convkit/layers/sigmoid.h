// convkit/layers/sigmoid.h — Sigmoid, elementwise on any shape:
//   y = 1 / (1 + e^−x),  dx = dy·y·(1 − y)
// Math in ops/activation.h.
#pragma once

#include <string>

#include "convkit/layers/activation_layer.h"

namespace convkit {

template <typename T>
class Sigmoid : public detail::ActivationLayer<T, ops::sigmoid_forward<T>, ops::sigmoid_backward<T>, detail::Keep::kOutput> {
 public:
  std::string describe() const override { return "Sigmoid"; }
};

}  // namespace convkit
