// convkit/layers/fully_connected.h — FullyConnected (Caffe's InnerProduct, PyTorch's Linear).
//
//   input (N, F) -> output (N, O);   y = x · Wᵀ + b,   weight (O, F), bias (O)
// An input (N, C, H, W) with C·H·W = F is read as (N, F), as Caffe does; the input gradient
// keeps the input's shape. Math in ops/linear.h. Weights and bias start as PyTorch's
// default, U(−1/√F, 1/√F).
#pragma once

#include <sstream>
#include <string>

#include "convkit/core/rng.h"
#include "convkit/init/initializers.h"
#include "convkit/layers/layer.h"
#include "convkit/ops/linear.h"

namespace convkit {

class FullyConnectedOptions {
 public:
  FullyConnectedOptions(Index in_features, Index out_features) : in_(in_features), out_(out_features) {}
  FullyConnectedOptions& bias(bool on) { bias_ = on; return *this; }

  Index in_features() const { return in_; }
  Index out_features() const { return out_; }
  bool bias() const { return bias_; }

 private:
  Index in_, out_;
  bool bias_ = true;
};

template <typename T>
class FullyConnected : public Layer<T> {
 public:
  static constexpr std::uint64_t kDefaultInitSeed = 0x5eed;

  /// @throws ValueError if in_features or out_features < 1.
  FullyConnected(const FullyConnectedOptions& options, Rng& rng) : o_(options) {
    CONVKIT_CHECK(o_.in_features() >= 1 && o_.out_features() >= 1, ValueError,
                  "FullyConnected: expected in_features >= 1 and out_features >= 1, got "
                      << o_.in_features() << " and " << o_.out_features());
    weight_ = Parameter<T>("weight", Shape{o_.out_features(), o_.in_features()});
    if (o_.bias()) bias_ = Parameter<T>("bias", Shape{o_.out_features()});
    reset_parameters(rng);
  }
  FullyConnected(const FullyConnectedOptions& options, Rng&& rng) : FullyConnected(options, rng) {}
  /// Initialised from Rng(kDefaultInitSeed).
  explicit FullyConnected(const FullyConnectedOptions& options)
      : FullyConnected(options, Rng(kDefaultInitSeed)) {}
  FullyConnected(Index in_features, Index out_features)
      : FullyConnected(FullyConnectedOptions(in_features, out_features)) {}

  void reset_parameters(Rng& rng) {
    init::default_uniform(weight_.value, o_.in_features(), rng);
    if (o_.bias()) init::default_uniform(bias_.value, o_.in_features(), rng);
  }

  Shape output_shape(const Shape& in) const override {
    CONVKIT_CHECK((in.rank() == 2 || in.rank() == 4) && in.numel() == in[0] * o_.in_features() &&
                      (in[0] > 0 || in.numel() == 0),
                  ShapeError,
                  describe() << ": expected input (N, " << o_.in_features()
                             << ") or (N, C, H, W) with C·H·W = " << o_.in_features() << ", got " << in);
    return Shape{in[0], o_.out_features()};
  }

  /// N·O·F.
  Index multiply_adds(const Shape& input) const override {
    return output_shape(input).numel() * o_.in_features();
  }

  std::string describe() const override {
    std::ostringstream os;
    os << "FullyConnected(" << o_.in_features() << "->" << o_.out_features()
       << (o_.bias() ? "" : ", bias=false") << ')';
    return os.str();
  }

  void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) override {
    this->add_parameter(out, prefix, weight_);
    if (o_.bias()) this->add_parameter(out, prefix, bias_);
  }

  const FullyConnectedOptions& options() const { return o_; }
  Parameter<T>& weight() { return weight_; }
  /// @throws StateError if the layer was built with bias(false).
  Parameter<T>& bias() {
    CONVKIT_CHECK(o_.bias(), StateError, describe() << ": has no bias (built with bias(false))");
    return bias_;
  }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override { return compute(this->keep_input(input_, input)); }
  Tensor<T> do_forward_owned(Tensor<T>&& input) override {
    return compute(this->keep_input(input_, std::move(input)));
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    ops::linear_backward_weight(input_, grad_output, weight_.ensure_grad(), o_.bias() ? &bias_.ensure_grad() : nullptr);
    if (!this->needs_input_grad()) return Tensor<T>();
    return ops::linear_backward_data(grad_output, weight_.value, input_.shape());
  }

 private:
  Tensor<T> compute(const Tensor<T>& x) {
    return ops::linear_forward(x, weight_.value, o_.bias() ? &bias_.value : nullptr);
  }

  FullyConnectedOptions o_;
  Parameter<T> weight_;
  Parameter<T> bias_;
  Tensor<T> input_;
};

}  // namespace convkit
