// convkit/layers/soft_sign.h — SoftSign, elementwise on any shape:
//   y = x / (1 + |x|),  dx = dy / (1 + |x|)²
// Math in ops/activation.h.
#pragma once

#include <string>

#include "convkit/layers/activation_layer.h"

namespace convkit {

template <typename T>
class SoftSign : public detail::ActivationLayer<T, ops::softsign_forward<T>, ops::softsign_backward<T>, detail::Keep::kInput> {
 public:
  std::string describe() const override { return "SoftSign"; }
};

}  // namespace convkit
