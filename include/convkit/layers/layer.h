// convkit/layers/layer.h — Layer<T>, the interface every layer and container implements.
//
// The public forward/backward are non-virtual: they validate shapes and state, then call the
// protected do_forward/do_backward that compute. backward returns the gradient with respect
// to the input and adds (+=) the gradients of the parameters, which accumulate until
// zero_grad(). Layers start in training mode.
#pragma once

#include <string>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/parameter.h"
#include "convkit/core/tensor.h"

namespace convkit {

template <typename T>
class Layer {
  static_assert(detail::IsSupportedScalar<T>::value,
                "convkit::Layer<T> supports T = float or T = double only.");

 public:
  Layer() = default;
  Layer(const Layer&) = default;
  Layer& operator=(const Layer&) = default;
  Layer(Layer&&) noexcept = default;
  Layer& operator=(Layer&&) noexcept = default;
  virtual ~Layer() = default;

  /// Computes the output for `input`.
  /// @throws ShapeError if `input` does not fit this layer (the message names the layer).
  Tensor<T> forward(const Tensor<T>& input) {
    const Shape out = output_shape(input.shape());
    Tensor<T> y = do_forward(input);
    CONVKIT_ASSERT(y.shape() == out);
    last_output_shape_ = out;
    has_forward_ = true;
    return y;
  }

  /// Gradient with respect to the last forward's input; adds the parameter gradients.
  /// Returns an empty tensor when set_needs_input_grad(false) was called.
  /// @throws StateError before any forward; ShapeError if grad_output's shape differs from
  /// the last output's.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    CONVKIT_CHECK(has_forward_, StateError, describe() << ": backward called before forward");
    CONVKIT_CHECK(grad_output.shape() == last_output_shape_, ShapeError,
                  describe() << ": expected grad_output " << last_output_shape_
                             << " (the last forward's output), got " << grad_output.shape());
    Tensor<T> grad_input = do_backward(grad_output);
    if (!needs_input_grad_) return Tensor<T>();
    return grad_input;
  }

  /// Whether backward computes the input gradient (default true). A model's first layer
  /// does not need it: its input is data. Conv2d and FullyConnected then skip that work.
  virtual void set_needs_input_grad(bool on) { needs_input_grad_ = on; }
  bool needs_input_grad() const { return needs_input_grad_; }

  /// The output shape for an input shape, without computing anything.
  /// @throws ShapeError naming this layer, what it expected and what it got.
  virtual Shape output_shape(const Shape& input) const = 0;

  /// One line such as "Conv2d(3->64, k=3x3, s=1, p=1)".
  virtual std::string describe() const = 0;

  /// Appends this layer's parameters, each named `prefix + its local name`.
  virtual void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) {
    (void)out;
    (void)prefix;
  }

  /// All parameters (trainable and buffers) with their dotted paths ("features.0.weight").
  std::vector<NamedParameter<T>> named_parameters() {
    std::vector<NamedParameter<T>> out;
    collect_parameters(out, "");
    return out;
  }

  /// All parameters (trainable and buffers), in the order of named_parameters().
  std::vector<Parameter<T>*> parameters() {
    std::vector<Parameter<T>*> out;
    for (const NamedParameter<T>& p : named_parameters()) out.push_back(p.param);
    return out;
  }

  /// Number of scalars in all parameters, buffers included.
  Index parameter_count() const {
    Index n = 0;
    // Collecting only reads; the const_cast lets a const model be counted.
    for (const NamedParameter<T>& p : const_cast<Layer*>(this)->named_parameters()) n += p.param->value.numel();
    return n;
  }

  /// Multiply-adds of one forward pass on an input of this shape (0 where negligible).
  virtual Index multiply_adds(const Shape& input) const {
    (void)input;
    return 0;
  }

  /// Sets every parameter gradient to zero.
  void zero_grad() {
    for (Parameter<T>* p : parameters()) p->grad.fill(T(0));
  }

  /// Training mode (Dropout drops, BatchNorm uses batch statistics) or evaluation mode.
  virtual void set_training(bool on) { training_ = on; }
  void train() { set_training(true); }
  void eval() { set_training(false); }
  bool is_training() const { return training_; }

 protected:
  virtual Tensor<T> do_forward(const Tensor<T>& input) = 0;
  virtual Tensor<T> do_backward(const Tensor<T>& grad_output) = 0;

  /// Helper for collect_parameters: appends `p` under `prefix + p.name`.
  static void add_parameter(std::vector<NamedParameter<T>>& out, const std::string& prefix, Parameter<T>& p) {
    out.push_back(NamedParameter<T>{prefix + p.name, &p});
  }

 private:
  bool training_ = true;
  bool needs_input_grad_ = true;
  bool has_forward_ = false;
  Shape last_output_shape_;
};

}  // namespace convkit
