// convkit/optim/adam.h — Adam with bias correction; L2 or decoupled (AdamW) weight decay.
//
// Per parameter p with gradient g, at step t (Kingma & Ba, as PyTorch computes it):
//   g ← g + λ·p                  (L2 weight decay; or, decoupled: p ← p − η·λ·p first)
//   m ← β₁·m + (1 − β₁)·g
//   v ← β₂·v + (1 − β₂)·g²
//   p ← p − η · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "convkit/optim/optimizer.h"

namespace convkit {

class AdamOptions {
 public:
  explicit AdamOptions(double learning_rate = 1e-3) : lr_(learning_rate) {}
  AdamOptions& betas(double b1, double b2) { beta1_ = b1, beta2_ = b2; return *this; }
  AdamOptions& eps(double e) { eps_ = e; return *this; }
  AdamOptions& weight_decay(double wd) { weight_decay_ = wd; return *this; }
  /// Decay the weights directly (AdamW) instead of adding λ·p to the gradient.
  AdamOptions& decoupled_weight_decay(bool on) { decoupled_ = on; return *this; }
  double learning_rate() const { return lr_; }
  double beta1() const { return beta1_; }
  double beta2() const { return beta2_; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }
  bool decoupled_weight_decay() const { return decoupled_; }

 private:
  double lr_, beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8, weight_decay_ = 0.0;
  bool decoupled_ = false;
};

template <typename T>
class Adam : public Optimizer<T> {
 public:
  /// @throws ValueError for betas outside [0, 1), eps <= 0 or negative weight decay.
  Adam(const std::vector<NamedParameter<T>>& params, const AdamOptions& o = AdamOptions())
      : Optimizer<T>(params, o.learning_rate()), o_(o) {
    CONVKIT_CHECK(o.beta1() >= 0.0 && o.beta1() < 1.0 && o.beta2() >= 0.0 && o.beta2() < 1.0, ValueError,
                  "Adam: expected betas in [0, 1), got " << o.beta1() << " and " << o.beta2());
    CONVKIT_CHECK(std::isfinite(o.eps()) && o.eps() > 0.0, ValueError, "Adam: expected a finite eps > 0, got " << o.eps());
    CONVKIT_CHECK(std::isfinite(o.weight_decay()) && o.weight_decay() >= 0.0, ValueError,
                  "Adam: expected a finite weight_decay >= 0, got " << o.weight_decay());
    m_ = this->zeros_like_parameters();
    v_ = this->zeros_like_parameters();
  }

 protected:
  void update(std::size_t i, Parameter<T>& p) override {
    const double t = static_cast<double>(this->steps());
    const double lr = this->learning_rate();
    const T b1 = static_cast<T>(o_.beta1()), b2 = static_cast<T>(o_.beta2());
    const T step = static_cast<T>(lr / (1.0 - std::pow(o_.beta1(), t)));
    const T inv_sqrt_c2 = static_cast<T>(1.0 / std::sqrt(1.0 - std::pow(o_.beta2(), t)));
    const T eps = static_cast<T>(o_.eps()), wd = static_cast<T>(o_.weight_decay());
    const T decay = o_.decoupled_weight_decay() ? T(1) - static_cast<T>(lr) * wd : T(1);
    const T l2 = o_.decoupled_weight_decay() ? T(0) : wd;
    T* w = p.value.data();
    const T* g = p.grad.data();
    T* m = m_[i].data();
    T* v = v_[i].data();
    // Threads take ranges of the elements, as in SGD.
    convkit::detail::parallel_ranges(p.value.numel(), [=](Index k0, Index k1) {
      for (Index k = k0; k < k1; ++k) {
        const T d = g[k] + l2 * w[k];
        m[k] = b1 * m[k] + (T(1) - b1) * d;
        v[k] = b2 * v[k] + (T(1) - b2) * d * d;
        w[k] = decay * w[k] - step * m[k] / (std::sqrt(v[k]) * inv_sqrt_c2 + eps);
      }
    });
  }

  std::vector<std::pair<std::string, Tensor<T>*>> state_of(std::size_t i) override {
    return {{"exp_avg", &m_[i]}, {"exp_avg_sq", &v_[i]}};
  }

 private:
  AdamOptions o_;
  std::vector<Tensor<T>> m_, v_;
};

}  // namespace convkit
