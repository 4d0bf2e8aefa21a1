// convkit/layers/batch_norm2d.h — BatchNorm2d: per-channel normalisation over (N, H, W).
//
//   input (N, C, H, W) -> same shape;   y = γ · (x − μ) / √(σ² + ε) + β
// Training mode normalises with the batch's mean and biased variance and updates the running
// statistics (PyTorch's rule, momentum m, unbiased variance):
//   running_mean ← (1 − m) · running_mean + m · μ
//   running_var  ← (1 − m) · running_var  + m · σ² · M / (M − 1),    M = N·H·W
// Evaluation mode normalises with the running statistics. Parameters: weight (γ) and bias (β),
// trainable; running_mean and running_var, non-trainable buffers saved in checkpoints. Defaults
// are PyTorch's: ε = 1e-5, m = 0.1, γ = 1, β = 0, running mean 0 and variance 1. For
// backward the layer keeps its input (taken over from a caller that gives it up, as Conv2d
// does) and the statistics it normalised with; ops/batch_norm.h recomputes x̂ from them. Math
// in ops/batch_norm.h.
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <utility>

#include "convkit/layers/layer.h"
#include "convkit/ops/batch_norm.h"

namespace convkit {

/// BatchNorm2dOptions(64).eps(1e-3).momentum(0.1).affine(true).
class BatchNorm2dOptions {
 public:
  explicit BatchNorm2dOptions(Index num_features) : c_(num_features) {}
  BatchNorm2dOptions& eps(double e) { eps_ = e; return *this; }
  BatchNorm2dOptions& momentum(double m) { momentum_ = m; return *this; }
  /// Whether γ and β exist and train (false: γ = 1, β = 0, no such parameters).
  BatchNorm2dOptions& affine(bool on) { affine_ = on; return *this; }

  Index num_features() const { return c_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }
  bool affine() const { return affine_; }

 private:
  Index c_;
  double eps_ = 1e-5;
  double momentum_ = 0.1;
  bool affine_ = true;
};

template <typename T>
class BatchNorm2d : public Layer<T> {
 public:
  /// @throws ValueError for num_features < 1, eps <= 0 or momentum outside [0, 1].
  explicit BatchNorm2d(const BatchNorm2dOptions& options) : o_(options) {
    CONVKIT_CHECK(o_.num_features() >= 1, ValueError,
                  "BatchNorm2d: expected num_features >= 1, got " << o_.num_features());
    CONVKIT_CHECK(std::isfinite(o_.eps()) && o_.eps() > 0, ValueError,
                  "BatchNorm2d: expected eps > 0, got " << o_.eps());
    CONVKIT_CHECK(o_.momentum() >= 0 && o_.momentum() <= 1, ValueError,
                  "BatchNorm2d: expected momentum in [0, 1], got " << o_.momentum());
    const Shape c{o_.num_features()};
    weight_ = Parameter<T>("weight", c, /*trainable=*/o_.affine());
    bias_ = Parameter<T>("bias", c, /*trainable=*/o_.affine());
    running_mean_ = Parameter<T>("running_mean", c, /*trainable=*/false);
    running_var_ = Parameter<T>("running_var", c, /*trainable=*/false);
    reset_parameters();
  }
  explicit BatchNorm2d(Index num_features) : BatchNorm2d(BatchNorm2dOptions(num_features)) {}

  /// γ = 1, β = 0, running mean 0, running variance 1.
  void reset_parameters() {
    weight_.value.fill(T(1));
    bias_.value.fill(T(0));
    running_mean_.value.fill(T(0));
    running_var_.value.fill(T(1));
  }

  Shape output_shape(const Shape& in) const override {
    CONVKIT_CHECK(in.rank() == 4 && in[1] == o_.num_features(), ShapeError,
                  describe() << ": expected input (N, " << o_.num_features() << ", H, W), got " << in);
    return in;
  }

  std::string describe() const override {
    std::ostringstream os;
    os << "BatchNorm2d(" << o_.num_features() << ", eps=" << o_.eps() << ", momentum=" << o_.momentum();
    if (!o_.affine()) os << ", affine=false";
    os << ')';
    return os.str();
  }

  void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) override {
    if (o_.affine()) {
      this->add_parameter(out, prefix, weight_);
      this->add_parameter(out, prefix, bias_);
    }
    this->add_parameter(out, prefix, running_mean_);
    this->add_parameter(out, prefix, running_var_);
  }

  const BatchNorm2dOptions& options() const { return o_; }
  /// γ and β. @throws StateError if the layer was built with affine(false).
  Parameter<T>& weight() { return affine_or_throw(weight_); }
  Parameter<T>& bias() { return affine_or_throw(bias_); }
  Parameter<T>& running_mean() { return running_mean_; }
  Parameter<T>& running_var() { return running_var_; }

 protected:
  // The input is checked before it replaces the kept one, and the statistics are kept only
  // once the forward has succeeded: a forward that throws leaves the previous forward's state
  // for backward (under NoGradGuard, nothing).
  Tensor<T> do_forward(const Tensor<T>& input) override {
    check_training_input(input.shape());
    return compute(this->keep_input(input_, input));
  }
  Tensor<T> do_forward_owned(Tensor<T>&& input) override {
    check_training_input(input.shape());
    return compute(this->keep_input(input_, std::move(input)));
  }

  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    const bool affine = o_.affine();
    return ops::batch_norm_backward(grad_output, input_, mean_, invstd_, weight_.value, forward_training_,
                                    affine ? &weight_.ensure_grad() : nullptr,
                                    affine ? &bias_.ensure_grad() : nullptr);
  }

 private:
  void check_training_input(const Shape& input) {
    if (!grad_enabled()) input_ = Tensor<T>();  // kept nothing, even if the check throws
    CONVKIT_CHECK(
        !this->is_training() || input.numel() >= 2 * o_.num_features(), ShapeError,
        describe() << ": expected more than one value per channel in training mode, got input " << input);
  }

  Tensor<T> compute(const Tensor<T>& input) {
    if (!this->is_training()) {
      Tensor<T> y = ops::batch_norm_forward_eval(input, weight_.value, bias_.value, running_mean_.value,
                                                 running_var_.value, o_.eps());
      forward_training_ = false;
      if (grad_enabled()) {
        mean_ = running_mean_.value;
        invstd_ = Tensor<T>::uninitialized(Shape{o_.num_features()});
        for (Index c = 0; c < o_.num_features(); ++c)
          invstd_[c] =
              static_cast<T>(ops::detail::inverse_std(static_cast<double>(running_var_.value[c]), o_.eps()));
      }
      return y;
    }
    Tensor<T> mean, var, invstd;
    Tensor<T> y =
        ops::batch_norm_forward_train(input, weight_.value, bias_.value, o_.eps(), mean, var, invstd);
    forward_training_ = true;
    mean_ = std::move(mean);
    invstd_ = std::move(invstd);
    const double m = o_.momentum();
    const double count = static_cast<double>(input.numel() / o_.num_features());
    const double unbias = count / (count - 1.0);
    for (Index c = 0; c < o_.num_features(); ++c) {
      running_mean_.value[c] = static_cast<T>((1 - m) * running_mean_.value[c] + m * mean_[c]);
      running_var_.value[c] = static_cast<T>((1 - m) * running_var_.value[c] + m * var[c] * unbias);
    }
    return y;
  }

  Parameter<T>& affine_or_throw(Parameter<T>& p) {
    CONVKIT_CHECK(o_.affine(), StateError, describe() << ": has no " << p.name << " (built with affine(false))");
    return p;
  }

  BatchNorm2dOptions o_;
  Parameter<T> weight_, bias_, running_mean_, running_var_;
  Tensor<T> input_;          // the last forward's x (kept for backward, see keep_input)
  Tensor<T> mean_, invstd_;  // the statistics it was normalised with
  bool forward_training_ = true;
};

}  // namespace convkit
