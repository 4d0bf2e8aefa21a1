// convkit/containers/sequential.h — Sequential: layers applied one after another.
//
//   forward:  h₀ = x,  h_{i+1} = layer_i(h_i)
//   backward: g_L = grad_output,  g_i = layer_i.backward(g_{i+1}), in reverse order
// Children have names (their index by default); parameter names are dotted paths
// ("features.0.weight"), and an error inside a child is rethrown with the child's path and
// description in front. summary(input_shape) validates the whole chain from a shape alone.
#pragma once

#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "convkit/containers/summary.h"
#include "convkit/layers/layer.h"

namespace convkit {

template <typename T>
class Sequential : public Layer<T> {
 public:
  Sequential() = default;

  /// Appends a layer named by its index. @throws ValueError for a null layer.
  Sequential& add(std::unique_ptr<Layer<T>> layer) { return add(std::to_string(children_.size()), std::move(layer)); }

  /// Appends a named layer. @throws ValueError for a null layer, an empty, dotted or repeated name.
  Sequential& add(const std::string& name, std::unique_ptr<Layer<T>> layer) {
    CONVKIT_CHECK(layer != nullptr, ValueError, "Sequential::add: expected a layer, got nullptr for '" << name << "'");
    CONVKIT_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError,
                  "Sequential::add: expected a non-empty name without '.', got '" << name << "'");
    for (const auto& c : children_)
      CONVKIT_CHECK(c.first != name, ValueError, "Sequential::add: a child is already named '" << name << "'");
    layer->set_training(this->is_training());
    if (children_.empty()) layer->set_needs_input_grad(this->needs_input_grad());
    children_.emplace_back(name, std::move(layer));
    return *this;
  }

  /// Constructs a layer of type L in place and appends it; returns a reference to it.
  template <typename L, typename... Args>
  L& emplace(Args&&... args) {
    auto layer = std::make_unique<L>(std::forward<Args>(args)...);
    L& ref = *layer;
    add(std::move(layer));
    return ref;
  }

  Index size() const { return static_cast<Index>(children_.size()); }
  /// @throws ValueError for an index out of range.
  Layer<T>& operator[](Index i) { return *children_.at(checked(i)).second; }
  const Layer<T>& operator[](Index i) const { return *children_.at(checked(i)).second; }
  const std::string& name(Index i) const { return children_.at(checked(i)).first; }
  /// @throws ValueError if no child has that name.
  Layer<T>& child(const std::string& name) {
    for (auto& c : children_)
      if (c.first == name) return *c.second;
    CONVKIT_CHECK(false, ValueError, "Sequential: no child named '" << name << "'");
    return *children_.front().second;  // unreachable
  }

  Shape output_shape(const Shape& input) const override {
    Shape s = input;
    for (const auto& c : children_)
      s = detail::with_child_path(c.first, [&] { return c.second->output_shape(s); });
    return s;
  }

  std::string describe() const override {
    std::ostringstream os;
    os << "Sequential(" << children_.size() << " layers)";
    return os.str();
  }

  void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) override {
    for (auto& c : children_) c.second->collect_parameters(out, prefix + c.first + ".");
  }

  /// Only the first child's input gradient is the container's; the others are always needed.
  void set_needs_input_grad(bool on) override {
    Layer<T>::set_needs_input_grad(on);
    if (!children_.empty()) children_.front().second->set_needs_input_grad(on);
  }

  void set_training(bool on) override {
    Layer<T>::set_training(on);
    for (auto& c : children_) c.second->set_training(on);
  }

  Index multiply_adds(const Shape& input) const override {
    Index total = 0;
    Shape s = input;
    for (const auto& c : children_) {
      total += detail::with_child_path(c.first, [&] { return c.second->multiply_adds(s); });
      s = c.second->output_shape(s);
    }
    return total;
  }

  /// A table of every child (and, for max_depth > 1, of their children): path, description,
  /// output shape, trainable parameters and multiply-adds per forward pass for `input`, with
  /// totals (containers/summary.h).
  /// @throws ShapeError (with the child's path) if the input does not flow through.
  std::string summary(const Shape& input, int max_depth = 1) const { return convkit::summary(*this, input, max_depth); }

  Shape summarize(const Shape& input, const std::string& path, int depth, int max_depth,
                  std::vector<SummaryRow>& rows) const override {
    return detail::summarize_container(*this, path, depth, max_depth, rows, [&](auto&& child) {
      Shape s = input;
      for (const auto& c : children_) s = child(c.first, *c.second, s);
      return s;
    });
  }

  void visit_children(const std::function<void(const std::string&, Layer<T>&)>& fn) override {
    for (auto& c : children_) fn(c.first, *c.second);
  }

 protected:
  // The first child reads the input; every later one takes over its predecessor's output
  // (Layer::forward(Tensor&&)), so a layer that keeps its input needs no copy of it.
  Tensor<T> do_forward(const Tensor<T>& input) override {
    if (children_.empty()) return input;
    Tensor<T> h = detail::with_child_path(children_[0].first, [&] { return children_[0].second->forward(input); });
    return forward_from(1, std::move(h));
  }
  Tensor<T> do_forward_owned(Tensor<T>&& input) override { return forward_from(0, std::move(input)); }

  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    if (children_.empty()) return grad_output;
    auto it = children_.rbegin();
    Tensor<T> g = detail::with_child_path(it->first, [&] { return it->second->backward(grad_output); });
    for (++it; it != children_.rend(); ++it)
      g = detail::with_child_path(it->first, [&] { return it->second->backward(g); });
    return g;
  }

 private:
  Tensor<T> forward_from(std::size_t first, Tensor<T>&& h) {
    for (std::size_t i = first; i < children_.size(); ++i)
      h = detail::with_child_path(children_[i].first, [&] { return children_[i].second->forward(std::move(h)); });
    return std::move(h);
  }

  std::size_t checked(Index i) const {
    CONVKIT_CHECK(i >= 0 && i < size(), ValueError,
                  "Sequential: index " << i << " is out of range for " << size() << " children");
    return static_cast<std::size_t>(i);
  }

  std::vector<std::pair<std::string, std::unique_ptr<Layer<T>>>> children_;
};

}  // namespace convkit
