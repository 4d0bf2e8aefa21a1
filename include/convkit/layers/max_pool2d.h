// convkit/layers/max_pool2d.h — MaxPool2d: the maximum of each window.
//
//   input (N, C, H, W) -> (N, C, OH, OW);  y = max over the window,  dx[argmax] += dy
// The position of each maximum is kept from forward for backward. Math in ops/pool2d.h.
#pragma once

#include <vector>

#include "convkit/layers/pool2d_options.h"

namespace convkit {

template <typename T>
class MaxPool2d : public detail::Pool2dLayer<T> {
 public:
  explicit MaxPool2d(const Pool2dOptions& options) : detail::Pool2dLayer<T>("MaxPool2d", options) {}
  explicit MaxPool2d(Index kernel) : MaxPool2d(Pool2dOptions(kernel)) {}

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    this->input_shape_ = input.shape();
    return ops::max_pool2d_forward(input, this->o_.params(), argmax_);
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    return ops::max_pool2d_backward(grad_output, argmax_, this->input_shape_);
  }

 private:
  std::vector<Index> argmax_;
};

}  // namespace convkit
