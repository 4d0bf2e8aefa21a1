// convkit/optim/sgd.h — stochastic gradient descent with momentum, Nesterov and weight decay.
//
// PyTorch's formulation, per parameter p with gradient g:
//   g ← g + λ·p                         (weight decay λ)
//   b ← μ·b + g   (b = g on the first step)                    (momentum μ)
//   g ← g + μ·b if Nesterov, else g ← b   (only when μ > 0)
//   p ← p − η·g                         (learning rate η)
#pragma once

#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "convkit/optim/optimizer.h"

namespace convkit {

class SgdOptions {
 public:
  explicit SgdOptions(double learning_rate) : lr_(learning_rate) {}
  SgdOptions& momentum(double m) { momentum_ = m; return *this; }
  SgdOptions& nesterov(bool on) { nesterov_ = on; return *this; }
  SgdOptions& weight_decay(double wd) { weight_decay_ = wd; return *this; }
  double learning_rate() const { return lr_; }
  double momentum() const { return momentum_; }
  bool nesterov() const { return nesterov_; }
  double weight_decay() const { return weight_decay_; }

 private:
  double lr_, momentum_ = 0.0, weight_decay_ = 0.0;
  bool nesterov_ = false;
};

template <typename T>
class SGD : public Optimizer<T> {
 public:
  /// @throws ValueError for momentum outside [0, 1), negative weight decay, or Nesterov
  /// without momentum.
  SGD(const std::vector<NamedParameter<T>>& params, const SgdOptions& o)
      : Optimizer<T>(params, o.learning_rate()), o_(o) {
    CONVKIT_CHECK(o.momentum() >= 0.0 && o.momentum() < 1.0, ValueError,
                  "SGD: expected momentum in [0, 1), got " << o.momentum());
    CONVKIT_CHECK(std::isfinite(o.weight_decay()) && o.weight_decay() >= 0.0, ValueError,
                  "SGD: expected a finite weight_decay >= 0, got " << o.weight_decay());
    CONVKIT_CHECK(!o.nesterov() || o.momentum() > 0.0, ValueError, "SGD: Nesterov needs momentum > 0, got 0");
    if (o.momentum() > 0.0) momentum_ = this->zeros_like_parameters();
  }

 protected:
  void update(std::size_t i, Parameter<T>& p) override {
    const T lr = static_cast<T>(this->learning_rate()), mu = static_cast<T>(o_.momentum());
    const T wd = static_cast<T>(o_.weight_decay());
    const bool first = this->steps() == 1;
    T* w = p.value.data();
    const T* g = p.grad.data();
    T* b = momentum_.empty() ? nullptr : momentum_[i].data();
    const Index n = p.value.numel();
    // The choices as compile-time constants, one loop each, so that every loop vectorises
    // (with them as branches or selects inside, GCC would not: the step of a 138M-parameter
    // VGG-16 ran scalar).
    // Threads take ranges of the elements (each element's update is its own: the same values
    // on any number of threads). The scalars by value: stores through w could alias them.
    if (b == nullptr) {
      convkit::detail::parallel_ranges(n, [=](Index k0, Index k1) {
        for (Index k = k0; k < k1; ++k) w[k] -= lr * (g[k] + wd * w[k]);
      });
      return;
    }
    const auto run = [&](auto first_step, auto nesterov) {
      convkit::detail::parallel_ranges(n, [=](Index k0, Index k1) {
        for (Index k = k0; k < k1; ++k) {
          const T d = g[k] + wd * w[k];
          T bk = d;
          if constexpr (!decltype(first_step)::value) bk = mu * b[k] + d;
          b[k] = bk;
          if constexpr (decltype(nesterov)::value)
            w[k] -= lr * (d + mu * bk);
          else
            w[k] -= lr * bk;
        }
      });
    };
    using Yes = std::true_type;
    using No = std::false_type;
    if (first)
      o_.nesterov() ? run(Yes{}, Yes{}) : run(Yes{}, No{});
    else
      o_.nesterov() ? run(No{}, Yes{}) : run(No{}, No{});
  }

  std::vector<std::pair<std::string, Tensor<T>*>> state_of(std::size_t i) override {
    if (momentum_.empty()) return {};
    return {{"momentum", &momentum_[i]}};
  }

 private:
  SgdOptions o_;
  std::vector<Tensor<T>> momentum_;
};

}  // namespace convkit
