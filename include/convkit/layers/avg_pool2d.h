// convkit/layers/avg_pool2d.h — AvgPool2d: the mean of each window.
//
//   input (N, C, H, W) -> (N, C, OH, OW);  y = Σ window / divisor,  dx = dy / divisor on the window
// By default padded positions count in the divisor (PyTorch's count_include_pad=True, and
// Caffe's AVE pooling); Pool2dOptions::count_include_pad(false) counts real pixels only.
// Math in ops/pool2d.h.
#pragma once

#include "convkit/layers/pool2d_options.h"

namespace convkit {

template <typename T>
class AvgPool2d : public detail::Pool2dLayer<T> {
 public:
  explicit AvgPool2d(const Pool2dOptions& options) : detail::Pool2dLayer<T>("AvgPool2d", options) {}
  explicit AvgPool2d(Index kernel) : AvgPool2d(Pool2dOptions(kernel)) {}

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    this->input_shape_ = input.shape();
    return ops::avg_pool2d_forward(input, this->o_.params());
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    return ops::avg_pool2d_backward(grad_output, this->input_shape_, this->o_.params());
  }
};

}  // namespace convkit
