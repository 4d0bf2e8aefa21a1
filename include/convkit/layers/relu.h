// convkit/layers/relu.h — ReLU, elementwise on any shape:
//   y = max(x, 0),  dx = dy·[x > 0]
// Math in ops/activation.h. Backward needs only where x > 0, which x and y tell alike: ReLU
// keeps x, so a container's intermediate result is kept without a copy.
#pragma once

#include <string>

#include "convkit/layers/activation_layer.h"

namespace convkit {

template <typename T>
class ReLU : public detail::ActivationLayer<T, ops::relu_forward<T>, ops::relu_backward<T>, detail::Keep::kInput> {
 public:
  std::string describe() const override { return "ReLU"; }
};

}  // namespace convkit
