// convkit/containers/residual.h — Residual: a body plus a shortcut, then an optional activation
// (the ResNet block).
//
//   forward:  h = body(x) + shortcut(x)        shortcut = identity unless one is set
//             y = activation(h)                activation = identity unless one is set
//   backward: g = activation.backward(grad_output)
//             dx = body.backward(g) + shortcut.backward(g)     (+ g itself for the identity)
// The body is a chain of named layers (add(), as Sequential); body(x) and shortcut(x) must
// have one shape, and output_shape() names both when they differ. Parameter paths: the body's
// layers directly under the block ("layer1.0.conv1.weight"), the shortcut under its name
// ("layer1.0.downsample.0.weight"), as torchvision names them.
#pragma once

#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "convkit/containers/sequential.h"
#include "convkit/containers/summary.h"
#include "convkit/core/parallel.h"
#include "convkit/layers/layer.h"

namespace convkit {

template <typename T>
class Residual : public Layer<T> {
 public:
  Residual() = default;

  /// Appends a layer to the body, named by its index. @throws ValueError for a null layer.
  Residual& add(std::unique_ptr<Layer<T>> layer) { return add(std::to_string(body_.size()), std::move(layer)); }

  /// Appends a named layer to the body.
  /// @throws ValueError for a null layer, an empty, dotted or repeated name, or the shortcut's name.
  Residual& add(const std::string& name, std::unique_ptr<Layer<T>> layer) {
    CONVKIT_CHECK(layer != nullptr, ValueError, "Residual::add: expected a layer, got nullptr for '" << name << "'");
    CONVKIT_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError,
                  "Residual::add: expected a non-empty name without '.', got '" << name << "'");
    CONVKIT_CHECK(!shortcut_ || name != shortcut_name_, ValueError,
                  "Residual::add: the shortcut is already named '" << name << "'");
    for (Index i = 0; i < body_.size(); ++i)
      CONVKIT_CHECK(body_.name(i) != name, ValueError, "Residual::add: a body layer is already named '" << name << "'");
    body_.add(name, std::move(layer));
    return *this;
  }

  /// Replaces the identity shortcut by `layer` (a projection), named `name` in parameter paths.
  /// @throws ValueError for a null layer, or an empty, dotted or body layer's name.
  Residual& set_shortcut(const std::string& name, std::unique_ptr<Layer<T>> layer) {
    CONVKIT_CHECK(layer != nullptr, ValueError, "Residual::set_shortcut: expected a layer, got nullptr");
    CONVKIT_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError,
                  "Residual::set_shortcut: expected a non-empty name without '.', got '" << name << "'");
    for (Index i = 0; i < body_.size(); ++i)
      CONVKIT_CHECK(body_.name(i) != name, ValueError,
                    "Residual::set_shortcut: a body layer is already named '" << name << "'");
    layer->set_training(this->is_training());
    layer->set_needs_input_grad(this->needs_input_grad());
    shortcut_ = std::move(layer);
    shortcut_name_ = name;
    return *this;
  }

  /// Applies `layer` (typically ReLU; it must keep the shape) after the sum.
  /// @throws ValueError for a null layer.
  Residual& set_activation(std::unique_ptr<Layer<T>> layer) {
    CONVKIT_CHECK(layer != nullptr, ValueError, "Residual::set_activation: expected a layer, got nullptr");
    layer->set_training(this->is_training());
    activation_ = std::move(layer);
    return *this;
  }

  Sequential<T>& body() { return body_; }
  bool has_projection() const { return shortcut_ != nullptr; }
  /// @throws StateError for an identity shortcut.
  Layer<T>& shortcut() {
    CONVKIT_CHECK(shortcut_ != nullptr, StateError, describe() << ": the shortcut is the identity");
    return *shortcut_;
  }

  /// @throws ShapeError if a body layer or the shortcut rejects the input, or their outputs differ.
  Shape output_shape(const Shape& input) const override {
    const Shape b = body_.output_shape(input);
    const Shape s = shortcut_ ? detail::with_child_path(shortcut_name_, [&] { return shortcut_->output_shape(input); })
                              : input;
    const Shape h = after_sum(b, s);
    return activation_ ? detail::with_child_path("activation", [&] { return activation_->output_shape(h); }) : h;
  }

  std::string describe() const override {
    std::ostringstream os;
    os << "Residual(" << body_.size() << " layers + " << (shortcut_ ? shortcut_name_ : std::string("identity"));
    if (activation_) os << ", then " << activation_->describe();
    os << ')';
    return os.str();
  }

  void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) override {
    body_.collect_parameters(out, prefix);
    if (shortcut_) shortcut_->collect_parameters(out, prefix + shortcut_name_ + ".");
    if (activation_) activation_->collect_parameters(out, prefix + "activation.");
  }

  void set_needs_input_grad(bool on) override {
    Layer<T>::set_needs_input_grad(on);
    body_.set_needs_input_grad(on);
    if (shortcut_) shortcut_->set_needs_input_grad(on);
  }

  void set_training(bool on) override {
    Layer<T>::set_training(on);
    body_.set_training(on);
    if (shortcut_) shortcut_->set_training(on);
    if (activation_) activation_->set_training(on);
  }

  Index multiply_adds(const Shape& input) const override {
    Index total = body_.multiply_adds(input);
    if (shortcut_) total += detail::with_child_path(shortcut_name_, [&] { return shortcut_->multiply_adds(input); });
    return total;
  }

  Shape summarize(const Shape& input, const std::string& path, int depth, int max_depth,
                  std::vector<SummaryRow>& rows) const override {
    return detail::summarize_container(*this, path, depth, max_depth, rows, [&](auto&& child) {
      Shape b = input;
      for (Index i = 0; i < body_.size(); ++i) b = child(body_.name(i), body_[i], b);
      const Shape s = shortcut_ ? child(shortcut_name_, *shortcut_, input) : input;
      const Shape h = after_sum(b, s);
      return activation_ ? child("activation", *activation_, h) : h;
    });
  }

  void visit_children(const std::function<void(const std::string&, Layer<T>&)>& fn) override {
    for (Index i = 0; i < body_.size(); ++i) fn(body_.name(i), body_[i]);
    if (shortcut_) fn(shortcut_name_, *shortcut_);
    if (activation_) fn("activation", *activation_);
  }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    Tensor<T> h = body_.forward(input);
    if (shortcut_) {
      const Tensor<T> s = detail::with_child_path(shortcut_name_, [&] { return shortcut_->forward(input); });
      add_to(h, s);
    } else {
      add_to(h, input);
    }
    return activate(std::move(h));
  }
  // With a projection the input is read by the shortcut first, then given to the body.
  Tensor<T> do_forward_owned(Tensor<T>&& input) override {
    if (!shortcut_) return do_forward(input);
    const Tensor<T> s = detail::with_child_path(shortcut_name_, [&] { return shortcut_->forward(input); });
    Tensor<T> h = body_.forward(std::move(input));
    add_to(h, s);
    return activate(std::move(h));
  }

  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    const Tensor<T> g =
        activation_ ? detail::with_child_path("activation", [&] { return activation_->backward(grad_output); })
                    : grad_output;
    Tensor<T> grad_input = body_.backward(g);
    const Tensor<T> gs =
        shortcut_ ? detail::with_child_path(shortcut_name_, [&] { return shortcut_->backward(g); }) : Tensor<T>();
    if (!this->needs_input_grad()) return Tensor<T>();
    add_to(grad_input, shortcut_ ? gs : g);
    return grad_input;
  }

 private:
  Tensor<T> activate(Tensor<T>&& h) {
    if (!activation_) return std::move(h);
    return detail::with_child_path("activation", [&] { return activation_->forward(std::move(h)); });
  }

  /// dst += src, elementwise (same number of elements).
  static void add_to(Tensor<T>& dst, const Tensor<T>& src) {
    T* d = dst.data();
    const T* a = src.data();
    detail::parallel_ranges(dst.numel(), [&](Index b, Index e) {
      for (Index i = b; i < e; ++i) d[i] += a[i];
    });
  }

  Shape after_sum(const Shape& body, const Shape& shortcut) const {
    CONVKIT_CHECK(body == shortcut, ShapeError,
                  describe() << ": expected the body and the shortcut to give one shape, got body " << body << " and "
                             << (shortcut_ ? shortcut_name_ : std::string("identity shortcut")) << " " << shortcut);
    return body;
  }

  Sequential<T> body_;
  std::unique_ptr<Layer<T>> shortcut_;
  std::unique_ptr<Layer<T>> activation_;
  std::string shortcut_name_;
};

}  // namespace convkit
