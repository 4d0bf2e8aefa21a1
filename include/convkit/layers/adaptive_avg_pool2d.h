// convkit/layers/adaptive_avg_pool2d.h — AdaptiveAvgPool2d: average pooling to a fixed output size.
//
//   input (N, C, H, W) -> (N, C, OH, OW)
//   y(i, j) = mean of x over rows [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉) and columns [⌊j·W/OW⌋, ⌈(j+1)·W/OW⌉)
//   dx = dy / window size, spread over each window (windows overlap when sizes do not divide)
// PyTorch's AdaptiveAvgPool2d: torchvision's AlexNet and VGG pool to 6×6 and 7×7 with it, so
// their classifiers take any input size. Math in ops/pool2d.h.
#pragma once

#include <sstream>
#include <string>

#include "convkit/layers/layer.h"
#include "convkit/ops/pool2d.h"

namespace convkit {

template <typename T>
class AdaptiveAvgPool2d : public Layer<T> {
 public:
  /// @throws ValueError for an output size < 1.
  explicit AdaptiveAvgPool2d(Index output_size) : AdaptiveAvgPool2d(output_size, output_size) {}
  AdaptiveAvgPool2d(Index output_h, Index output_w) : oh_(output_h), ow_(output_w) {
    CONVKIT_CHECK(oh_ >= 1 && ow_ >= 1, ValueError,
                  "AdaptiveAvgPool2d: expected an output size >= 1, got " << oh_ << "x" << ow_);
  }

  Shape output_shape(const Shape& in) const override {
    CONVKIT_CHECK(in.rank() == 4 && in[2] >= 1 && in[3] >= 1, ShapeError,
                  describe() << ": expected input (N, C, H, W) with H, W >= 1, got " << in);
    return Shape{in[0], in[1], oh_, ow_};
  }

  std::string describe() const override {
    std::ostringstream os;
    os << "AdaptiveAvgPool2d(" << oh_ << 'x' << ow_ << ')';
    return os.str();
  }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    input_shape_ = input.shape();
    return ops::adaptive_avg_pool2d_forward(input, oh_, ow_);
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    return ops::adaptive_avg_pool2d_backward(grad_output, input_shape_);
  }

 private:
  Index oh_, ow_;
  Shape input_shape_;
};

}  // namespace convkit
