// convkit/optim/optimizer.h — Optimizer<T>, the base of SGD and Adam.
//
// An optimiser holds the trainable parameters of a model (buffers are skipped), a learning
// rate that may change between steps, a step count, and per-parameter state tensors named
// "<parameter path>.<state>" so a checkpoint can save and restore them.
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/parallel.h"
#include "convkit/core/parameter.h"

namespace convkit {

template <typename T>
class Optimizer {
 public:
  /// @throws ValueError for a negative or non-finite learning rate.
  Optimizer(const std::vector<NamedParameter<T>>& params, double learning_rate) {
    for (const NamedParameter<T>& p : params)
      if (p.param->trainable) params_.push_back(p);
    set_learning_rate(learning_rate);
  }
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  virtual ~Optimizer() = default;

  /// Updates every parameter from its gradient; a parameter that no backward pass has
  /// reached yet (no gradient allocated) is left alone, as PyTorch skips a None gradient.
  void step() {
    ++steps_;
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].param->has_grad()) update(i, *params_[i].param);
  }

  /// Sets every allocated parameter gradient to zero.
  void zero_grad() {
    for (const NamedParameter<T>& p : params_)
      if (p.param->has_grad())
        convkit::detail::parallel_fill(p.param->grad.data(), p.param->grad.numel(), T(0));
  }

  double learning_rate() const { return lr_; }
  void set_learning_rate(double lr) {
    CONVKIT_CHECK(std::isfinite(lr) && lr >= 0.0, ValueError,
                  "Optimizer: expected a finite learning rate >= 0, got " << lr);
    lr_ = lr;
  }

  /// Steps taken so far (Adam's bias correction uses it).
  long long steps() const { return steps_; }
  void set_steps(long long steps) {
    CONVKIT_CHECK(steps >= 0, ValueError, "Optimizer: expected steps >= 0, got " << steps);
    steps_ = steps;
  }

  const std::vector<NamedParameter<T>>& parameters() const { return params_; }

  /// The state tensors with their names, for checkpoints (empty for plain SGD).
  std::vector<std::pair<std::string, Tensor<T>*>> state() {
    std::vector<std::pair<std::string, Tensor<T>*>> out;
    for (std::size_t i = 0; i < params_.size(); ++i)
      for (auto& [suffix, tensor] : state_of(i)) out.emplace_back(params_[i].name + "." + suffix, tensor);
    return out;
  }

 protected:
  virtual void update(std::size_t index, Parameter<T>& p) = 0;
  /// State tensors of parameter `index`, each with its suffix ("momentum").
  virtual std::vector<std::pair<std::string, Tensor<T>*>> state_of(std::size_t index) = 0;

  /// One zero tensor per parameter, shaped like it.
  std::vector<Tensor<T>> zeros_like_parameters() const {
    std::vector<Tensor<T>> out;
    for (const NamedParameter<T>& p : params_) out.emplace_back(p.param->value.shape());
    return out;
  }

 private:
  std::vector<NamedParameter<T>> params_;
  double lr_ = 0.0;
  long long steps_ = 0;
};

}  // namespace convkit
