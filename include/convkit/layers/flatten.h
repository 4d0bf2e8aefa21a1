// convkit/layers/flatten.h — Flatten: (N, C, H, W) -> (N, C·H·W); the gradient is reshaped back.
#pragma once

#include <string>

#include "convkit/layers/layer.h"

namespace convkit {

template <typename T>
class Flatten : public Layer<T> {
 public:
  Shape output_shape(const Shape& in) const override {
    CONVKIT_CHECK(in.rank() >= 1, ShapeError,
                  describe() << ": expected input (N, ...) of rank >= 1, got " << in);
    const Index n = in[0];
    return Shape{n, n == 0 ? 0 : in.numel() / n};
  }
  std::string describe() const override { return "Flatten"; }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    input_shape_ = input.shape();
    return input.reshaped(output_shape(input.shape()));
  }
  Tensor<T> do_forward_owned(Tensor<T>&& input) override {
    input_shape_ = input.shape();
    return std::move(input).reshaped(output_shape(input_shape_));  // no copy
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    return grad_output.reshaped(input_shape_);
  }

 private:
  Shape input_shape_;
};

}  // namespace convkit
