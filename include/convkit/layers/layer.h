// convkit/layers/layer.h — Layer<T>, the interface every layer and container implements.
//
// The public forward/backward are non-virtual: they validate shapes and state, then call the
// protected do_forward/do_backward that compute. backward returns the gradient with respect
// to the input and adds (+=) the gradients of the parameters, which accumulate until
// zero_grad(). Layers start in training mode.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "convkit/core/anomaly.h"
#include "convkit/core/error.h"
#include "convkit/core/grad_mode.h"
#include "convkit/core/parameter.h"
#include "convkit/core/rng.h"
#include "convkit/core/tensor.h"

namespace convkit {

/// One row of a model summary (Layer::summarize): the layer's dotted path, its depth in the
/// tree (1 for a model's direct children), describe(), output shape, trainable parameters
/// and multiply-adds of one forward pass, both including the layer's children.
struct SummaryRow {
  std::string path;
  int depth = 0;
  std::string layer;
  Shape output;
  Index parameters = 0;
  Index multiply_adds = 0;
};

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
    if (!grad_enabled()) forward_kept_ = false;  // layers drop what they kept, even if this throws
    Tensor<T> y = do_forward(input);
    CONVKIT_ASSERT(y.shape() == out);
    if (detect_anomaly()) detail::check_finite(y, describe(), "forward", "its output", input, "input");
    return finish_forward(std::move(y), out);
  }

  /// The same for an input the caller gives up (a temporary, or std::move(x); x is then
  /// empty or unspecified): a layer that keeps its input for backward (Conv2d,
  /// FullyConnected, ReLU, BatchNorm2d) takes it over instead of copying it, and containers pass each
  /// intermediate result on this way.
  Tensor<T> forward(Tensor<T>&& input) {
    if (detect_anomaly()) return forward(static_cast<const Tensor<T>&>(input));  // its message shows the input
    const Shape out = output_shape(input.shape());
    if (!grad_enabled()) forward_kept_ = false;
    Tensor<T> y = do_forward_owned(std::move(input));
    CONVKIT_ASSERT(y.shape() == out);
    return finish_forward(std::move(y), out);
  }

  /// Gradient with respect to the last forward's input; adds the parameter gradients.
  /// Returns an empty tensor when set_needs_input_grad(false) was called.
  /// @throws StateError before any forward or after one under NoGradGuard; ShapeError if grad_output's shape differs from
  /// the last output's.
  Tensor<T> backward(const Tensor<T>& grad_output) {
    CONVKIT_CHECK(has_forward_, StateError, describe() << ": backward called before forward");
    CONVKIT_CHECK(forward_kept_, StateError,
                  describe() << ": backward called after a forward under NoGradGuard, which keeps nothing for backward");
    CONVKIT_CHECK(grad_output.shape() == last_output_shape_, ShapeError,
                  describe() << ": expected grad_output " << last_output_shape_
                             << " (the last forward's output), got " << grad_output.shape());
    Tensor<T> grad_input = do_backward(grad_output);
    if (detect_anomaly()) check_backward(grad_input, grad_output);
    if (backward_hook_.fn) backward_hook_.fn(*this);
    if (!needs_input_grad_) return Tensor<T>();
    return grad_input;
  }

  /// Sets the function called at the end of each backward of this layer, when the gradients
  /// of its parameters for this pass are complete (an empty function removes it). One hook
  /// per layer; copies of a layer do not inherit it. DataParallel (distributed/mpi.h) uses
  /// it to start reducing gradients while the rest of the backward pass runs.
  void set_backward_hook(std::function<void(Layer&)> hook) { backward_hook_.fn = std::move(hook); }

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

  /// Number of scalars in the trainable parameters (PyTorch's sum of parameters().numel()).
  Index parameter_count() const { return count_scalars(/*trainable=*/true); }
  /// Number of scalars in the non-trainable buffers (batch-norm running statistics).
  Index buffer_count() const { return count_scalars(/*trainable=*/false); }

  /// Multiply-adds of one forward pass on an input of this shape (0 where negligible).
  virtual Index multiply_adds(const Shape& input) const {
    (void)input;
    return 0;
  }

  /// The layer's own random number generator if it draws numbers (Dropout's masks), else
  /// nullptr. save_training_state stores its state so that a resumed run draws the same.
  virtual Rng* own_rng() { return nullptr; }

  /// Calls fn(name, child) for each direct child of a container (nothing for a plain layer).
  virtual void visit_children(const std::function<void(const std::string&, Layer&)>& fn) { (void)fn; }

  /// Appends this layer's row of a model summary for `input` under `path`, and for a
  /// container, while depth < max_depth, its children's rows; returns the output shape.
  /// @throws ShapeError (with the path inside a container) if the input does not flow through.
  virtual Shape summarize(const Shape& input, const std::string& path, int depth, int max_depth,
                          std::vector<SummaryRow>& rows) const {
    (void)max_depth;
    const Shape out = output_shape(input);
    rows.push_back(SummaryRow{path, depth, describe(), out, parameter_count(), multiply_adds(input)});
    return out;
  }

  /// Sets every allocated parameter gradient to zero.
  void zero_grad() {
    for (Parameter<T>* p : parameters())
      if (p->has_grad()) p->grad.fill(T(0));
  }

  /// Training mode (Dropout drops, BatchNorm uses batch statistics) or evaluation mode.
  virtual void set_training(bool on) { training_ = on; }
  void train() { set_training(true); }
  void eval() { set_training(false); }
  bool is_training() const { return training_; }

 protected:
  virtual Tensor<T> do_forward(const Tensor<T>& input) = 0;
  /// do_forward for an input this layer may keep or overwrite; do_forward(input) unless a
  /// layer saves a copy by taking it over. A class derived from a built-in layer that
  /// overrides do_forward must override this too (or call do_forward from it): containers
  /// call it for every child after the first.
  virtual Tensor<T> do_forward_owned(Tensor<T>&& input) { return do_forward(input); }
  virtual Tensor<T> do_backward(const Tensor<T>& grad_output) = 0;

  /// For a layer that keeps its input for backward: `kept` becomes a copy of `input` (its own
  /// storage reused when the size is unchanged), or empty under NoGradGuard; returns the
  /// tensor to compute from.
  static const Tensor<T>& keep_input(Tensor<T>& kept, const Tensor<T>& input) {
    if (grad_enabled())
      kept = input;
    else
      kept = Tensor<T>();
    return input;
  }
  /// The same for an input the caller gives up (do_forward_owned): `kept` takes it over.
  static const Tensor<T>& keep_input(Tensor<T>& kept, Tensor<T>&& input) {
    if (!grad_enabled()) return keep_input(kept, static_cast<const Tensor<T>&>(input));
    kept = std::move(input);
    return kept;
  }

  /// Helper for collect_parameters: appends `p` under `prefix + p.name`.
  static void add_parameter(std::vector<NamedParameter<T>>& out, const std::string& prefix, Parameter<T>& p) {
    out.push_back(NamedParameter<T>{prefix + p.name, &p});
  }

 private:
  Tensor<T> finish_forward(Tensor<T>&& y, const Shape& out) {
    last_output_shape_ = out;
    has_forward_ = true;
    forward_kept_ = grad_enabled();
    return std::move(y);
  }

  /// Anomaly detection after backward: the input gradient, then each parameter gradient.
  void check_backward(const Tensor<T>& grad_input, const Tensor<T>& grad_output) {
    if (needs_input_grad_ && grad_input.numel() > 0)
      detail::check_finite(grad_input, describe(), "backward", "the input gradient", grad_output, "grad_output");
    for (const NamedParameter<T>& p : named_parameters())
      if (p.param->has_grad()) {
        const std::string what = "the gradient of " + p.name;
        detail::check_finite(p.param->grad, describe(), "backward", what.c_str(), grad_output, "grad_output");
      }
  }

  Index count_scalars(bool trainable) const {
    Index n = 0;
    // Collecting only reads; the const_cast lets a const model be counted.
    for (const NamedParameter<T>& p : const_cast<Layer*>(this)->named_parameters())
      if (p.param->trainable == trainable) n += p.param->value.numel();
    return n;
  }

  /// A hook that copies and moves as empty: a copied layer is a new layer.
  struct BackwardHook {
    BackwardHook() = default;
    BackwardHook(const BackwardHook&) noexcept {}
    BackwardHook& operator=(const BackwardHook&) noexcept { return *this; }
    std::function<void(Layer&)> fn;
  };

  BackwardHook backward_hook_;
  bool training_ = true;
  bool needs_input_grad_ = true;
  bool has_forward_ = false;
  bool forward_kept_ = false;  // the last forward ran with grad_enabled()
  Shape last_output_shape_;
};

/// Calls fn(path, layer) for `root` (path "") and every layer in the tree under it, depth
/// first; a path is the children's names joined with dots ("features.3").
template <typename T, typename Fn>
void for_each_layer(Layer<T>& root, Fn&& fn) {
  std::function<void(Layer<T>&, const std::string&)> walk = [&](Layer<T>& layer, const std::string& path) {
    fn(path, layer);
    layer.visit_children(
        [&](const std::string& name, Layer<T>& child) { walk(child, path.empty() ? name : path + "." + name); });
  };
  walk(root, "");
}

/// Every layer of type L in the tree under `root` (root included), depth first.
template <typename L, typename T>
std::vector<L*> find_layers(Layer<T>& root) {
  std::vector<L*> found;
  for_each_layer(root, [&](const std::string&, Layer<T>& layer) {
    if (auto* hit = dynamic_cast<L*>(&layer)) found.push_back(hit);
  });
  return found;
}

}  // namespace convkit
