// convkit/layers/dropout.h — Dropout, inverted: active in training mode only.
//
// Training: each element is kept with probability 1 − p and scaled by 1 / (1 − p), so the
// expected output equals the input:  y = x · m,  m ∈ {0, 1/(1 − p)},  dx = dy · m.
// Evaluation: y = x. The mask comes from the layer's own Rng, seeded by DropoutOptions, so
// the same seed gives the same masks; rng() exposes it for checkpoints.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>

#include "convkit/core/rng.h"
#include "convkit/layers/layer.h"
#include "convkit/ops/activation.h"

namespace convkit {

class DropoutOptions {
 public:
  explicit DropoutOptions(double p = 0.5) : p_(p) {}
  DropoutOptions& seed(std::uint64_t s) { seed_ = s; return *this; }
  double p() const { return p_; }
  std::uint64_t seed() const { return seed_; }

 private:
  double p_;
  std::uint64_t seed_ = 0;
};

template <typename T>
class Dropout : public Layer<T> {
 public:
  /// @throws ValueError unless 0 <= p < 1.
  explicit Dropout(const DropoutOptions& options = DropoutOptions()) : o_(options), rng_(options.seed()) {
    CONVKIT_CHECK(o_.p() >= 0.0 && o_.p() < 1.0, ValueError,
                  "Dropout: expected probability p in [0, 1), got " << o_.p());
  }
  explicit Dropout(double p) : Dropout(DropoutOptions(p)) {}

  Shape output_shape(const Shape& input) const override { return input; }
  std::string describe() const override {
    std::ostringstream os;
    os << "Dropout(p=" << o_.p() << ')';
    return os.str();
  }

  Rng& rng() { return rng_; }
  Rng* own_rng() override { return &rng_; }
  /// The mask of the last training-mode forward (0 or 1 / (1 − p) per element).
  const Tensor<T>& mask() const { return mask_; }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    active_ = this->is_training() && o_.p() > 0.0;
    if (!active_) return input;
    mask_ = Tensor<T>(input.shape());
    const T scale = static_cast<T>(1.0 / (1.0 - o_.p()));
    for (T& m : mask_) m = rng_.bernoulli(o_.p()) ? T(0) : scale;
    return ops::dropout_forward(input, mask_);
  }
  Tensor<T> do_forward_owned(Tensor<T>&& input) override {
    if (this->is_training() && o_.p() > 0.0) return do_forward(input);
    active_ = false;
    return std::move(input);  // the identity, without a copy
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    if (!active_) return grad_output;
    return ops::dropout_backward(grad_output, mask_);
  }

 private:
  DropoutOptions o_;
  Rng rng_;
  Tensor<T> mask_;
  bool active_ = false;
};

}  // namespace convkit
