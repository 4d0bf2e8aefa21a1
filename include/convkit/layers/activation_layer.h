// convkit/layers/activation_layer.h — the shared body of the elementwise activation layers.
//
// An activation keeps what its backward formula needs (the output y or the input x) and
// calls the forward/backward pair of ops/activation.h. One that keeps x takes over an input
// its caller gives up (Layer::forward(Tensor&&)) rather than copying it; one that keeps y
// copies it (the caller gets y too). ReLU, Sigmoid, Tanh and SoftSign
// are this class with their own ops and name.
#pragma once

#include <string>

#include "convkit/layers/layer.h"
#include "convkit/ops/activation.h"

namespace convkit::detail {

enum class Keep { kOutput, kInput };

template <typename T, Tensor<T> (*Forward)(const Tensor<T>&),
          Tensor<T> (*Backward)(const Tensor<T>&, const Tensor<T>&), Keep kKeep>
class ActivationLayer : public Layer<T> {
 public:
  Shape output_shape(const Shape& input) const override { return input; }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    if (kKeep == Keep::kInput) return Forward(this->keep_input(saved_, input));
    if (!grad_enabled()) {  // inference: keep nothing (core/grad_mode.h)
      saved_ = Tensor<T>();
      return Forward(input);
    }
    saved_ = Forward(input);
    return saved_;
  }
  Tensor<T> do_forward_owned(Tensor<T>&& input) override {
    if (kKeep == Keep::kOutput) return do_forward(input);
    return Forward(this->keep_input(saved_, std::move(input)));
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override { return Backward(grad_output, saved_); }

 private:
  Tensor<T> saved_;  // y or x, whichever Backward takes
};

}  // namespace convkit::detail
