// convkit/layers/global_avg_pool2d.h — GlobalAvgPool2d: the mean of each channel plane.
//
//   input (N, C, H, W) -> (N, C, 1, 1);  y = Σ_{h,w} x / (H·W),  dx = dy / (H·W)
#pragma once

#include <string>

#include "convkit/layers/layer.h"
#include "convkit/ops/pool2d.h"

namespace convkit {

template <typename T>
class GlobalAvgPool2d : public Layer<T> {
 public:
  Shape output_shape(const Shape& in) const override {
    CONVKIT_CHECK(in.rank() == 4 && in[2] >= 1 && in[3] >= 1, ShapeError,
                  describe() << ": expected input (N, C, H, W) with H, W >= 1, got " << in);
    return Shape{in[0], in[1], 1, 1};
  }
  std::string describe() const override { return "GlobalAvgPool2d"; }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    input_shape_ = input.shape();
    return ops::global_avg_pool2d_forward(input);
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    return ops::global_avg_pool2d_backward(grad_output, input_shape_);
  }

 private:
  Shape input_shape_;
};

}  // namespace convkit
