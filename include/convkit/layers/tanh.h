// convkit/layers/tanh.h — Tanh, elementwise on any shape:
//   y = tanh x,  dx = dy·(1 − y²)
// Math in ops/activation.h.
#pragma once

#include <string>

#include "convkit/layers/activation_layer.h"

namespace convkit {

template <typename T>
class Tanh : public detail::ActivationLayer<T, ops::tanh_forward<T>, ops::tanh_backward<T>, detail::Keep::kOutput> {
 public:
  std::string describe() const override { return "Tanh"; }
};

}  // namespace convkit
