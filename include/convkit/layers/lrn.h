// convkit/layers/lrn.h — LRN, cross-channel local response normalisation (AlexNet, GoogLeNet).
//
//   input (N, C, H, W) -> same shape
//   s_c = k + (α / size) · Σ_{j ∈ window(c)} x_j²,   y_c = x_c · s_c^(−β)
// with a window of `size` channels centred on c (PyTorch's LocalResponseNorm, Caffe's LRN).
// Defaults are AlexNet's: size 5, α = 1e-4, β = 0.75, k = 2. Math and gradient in ops/lrn.h.
#pragma once

#include <sstream>
#include <string>

#include "convkit/layers/layer.h"
#include "convkit/ops/lrn.h"

namespace convkit {

/// LRNOptions(5).alpha(1e-4).beta(0.75).k(2).
class LRNOptions {
 public:
  explicit LRNOptions(Index size = 5) { p_.size = size; }
  LRNOptions& alpha(double a) { p_.alpha = a; return *this; }
  LRNOptions& beta(double b) { p_.beta = b; return *this; }
  LRNOptions& k(double k) { p_.k = k; return *this; }
  const ops::LrnParams& params() const { return p_; }

 private:
  ops::LrnParams p_;
};

template <typename T>
class LRN : public Layer<T> {
 public:
  /// @throws ValueError for size < 1, alpha or beta < 0, k <= 0, or a non-finite value.
  explicit LRN(const LRNOptions& options = LRNOptions()) : o_(options) { ops::lrn_check_params(o_.params(), "LRN"); }

  Shape output_shape(const Shape& input) const override {
    CONVKIT_CHECK(input.rank() == 4, ShapeError, describe() << ": expected input (N, C, H, W), got " << input);
    return input;
  }

  std::string describe() const override {
    const auto& p = o_.params();
    std::ostringstream os;
    os << "LRN(size=" << p.size << ", alpha=" << p.alpha << ", beta=" << p.beta << ", k=" << p.k << ')';
    return os.str();
  }

  const LRNOptions& options() const { return o_; }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    if (!grad_enabled()) {  // inference: keep nothing (core/grad_mode.h)
      input_ = output_ = scale_ = Tensor<T>();
      Tensor<T> scale;
      return ops::lrn_forward(input, o_.params(), scale);
    }
    input_ = input;
    output_ = ops::lrn_forward(input, o_.params(), scale_);
    return output_;
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    return ops::lrn_backward(grad_output, input_, output_, scale_, o_.params());
  }

 private:
  LRNOptions o_;
  Tensor<T> input_, output_, scale_;
};

}  // namespace convkit
