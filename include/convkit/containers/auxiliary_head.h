// convkit/containers/auxiliary_head.h — AuxiliaryHead: a side classifier on an inner
// activation (GoogLeNet's auxiliary classifiers), the identity on the main path.
//
//   forward:  y = x;  in training mode also a = head(x), kept as output()
//   backward: dx = grad_output + head.backward(da)     da from set_output_grad(), if given
// The training loop adds weight · loss(a, labels) to the main loss and hands weight · ∂loss/∂a
// to set_output_grad() before the model's backward (train/trainer.h does this for every head
// that find_layers finds). In evaluation mode the head does not run, as in GoogLeNet.
// Parameter paths, error paths and summary rows are the head's own under the layer's name
// ("aux1.fc1.weight"), as if the head stood in its place.
#pragma once

#include <cmath>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "convkit/layers/layer.h"

namespace convkit {

template <typename T>
class AuxiliaryHead : public Layer<T> {
 public:
  /// @throws ValueError for a null head or a loss weight that is negative or not finite.
  explicit AuxiliaryHead(std::unique_ptr<Layer<T>> head, double loss_weight = 0.3)
      : head_(std::move(head)), loss_weight_(loss_weight) {
    CONVKIT_CHECK(head_ != nullptr, ValueError, "AuxiliaryHead: expected a head layer, got nullptr");
    CONVKIT_CHECK(std::isfinite(loss_weight) && loss_weight >= 0, ValueError,
                  "AuxiliaryHead: expected a finite loss weight >= 0, got " << loss_weight);
  }

  Layer<T>& head() { return *head_; }
  double loss_weight() const { return loss_weight_; }

  /// The head's output of the last forward, or nullptr if it did not run (evaluation mode).
  const Tensor<T>* output() const { return has_output_ ? &output_ : nullptr; }

  /// The gradient of the (weighted) auxiliary loss with respect to output(), used by the
  /// next backward only.
  /// @throws StateError if the head did not run; ShapeError if the shape differs from output().
  void set_output_grad(Tensor<T> grad) {
    CONVKIT_CHECK(has_output_, StateError, describe() << ": set_output_grad without a training-mode forward");
    CONVKIT_CHECK(grad.shape() == output_.shape(), ShapeError,
                  describe() << ": expected an output gradient " << output_.shape() << ", got " << grad.shape());
    output_grad_ = std::move(grad);
    has_output_grad_ = true;
  }

  /// The input's shape; the head is validated on it too.
  /// @throws ShapeError if the head rejects the input.
  Shape output_shape(const Shape& input) const override {
    head_->output_shape(input);
    return input;
  }

  std::string describe() const override {
    std::ostringstream os;
    os << "AuxiliaryHead(loss weight " << loss_weight_ << ')';
    return os.str();
  }

  void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) override {
    head_->collect_parameters(out, prefix);
  }

  /// The head's input gradient reaches the trunk only through this layer's.
  void set_needs_input_grad(bool on) override {
    Layer<T>::set_needs_input_grad(on);
    head_->set_needs_input_grad(on);
  }

  void set_training(bool on) override {
    Layer<T>::set_training(on);
    head_->set_training(on);
  }

  /// The head's, which runs in training mode (the main path itself costs nothing).
  Index multiply_adds(const Shape& input) const override {
    return head_->multiply_adds(input);
  }

  /// The head's rows under this layer's path (as its parameters are named), this layer's row
  /// showing the main path's shape and the head's output.
  Shape summarize(const Shape& input, const std::string& path, int depth, int max_depth,
                  std::vector<SummaryRow>& rows) const override {
    const std::size_t own = rows.size();
    const Shape head_out = head_->summarize(input, path, depth, max_depth, rows);
    rows[own].layer = describe() + " -> " + head_out.to_string();
    rows[own].output = input;
    return input;
  }

  void visit_children(const std::function<void(const std::string&, Layer<T>&)>& fn) override { fn("head", *head_); }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    run_head(input);
    return input;
  }
  Tensor<T> do_forward_owned(Tensor<T>&& input) override {
    run_head(input);
    return std::move(input);  // passed on without a copy
  }

  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    if (!has_output_grad_) return grad_output;
    has_output_grad_ = false;
    Tensor<T> grad_input = head_->backward(output_grad_);
    if (!this->needs_input_grad()) return Tensor<T>();
    T* dst = grad_input.data();
    const T* g = grad_output.data();
    for (Index i = 0; i < grad_input.numel(); ++i) dst[i] += g[i];
    return grad_input;
  }

 private:
  void run_head(const Tensor<T>& input) {
    has_output_ = this->is_training();
    has_output_grad_ = false;
    if (has_output_) output_ = head_->forward(input);
  }

  std::unique_ptr<Layer<T>> head_;
  double loss_weight_;
  Tensor<T> output_;
  Tensor<T> output_grad_;
  bool has_output_ = false;
  bool has_output_grad_ = false;
};

}  // namespace convkit
