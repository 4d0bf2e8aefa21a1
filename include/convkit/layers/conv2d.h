// convkit/layers/conv2d.h — Conv2d, the 2-D convolution layer.
//
//   input (N, C, H, W) -> output (N, OC, OH, OW),  OH = ⌊(H + 2p − d·(K − 1) − 1) / s⌋ + 1
//   y = W ⋆ x + b        weight (OC, C/groups, KH, KW), bias (OC)
// Forward and both gradients are in ops/conv2d.h (im2col + GEMM; the data gradient by col2im,
// or as a convolution with the flipped filters). Weights and bias start as PyTorch's default,
// U(−1/√fan_in, 1/√fan_in) with fan_in = C/groups·KH·KW.
#pragma once

#include <sstream>
#include <string>

#include "convkit/core/rng.h"
#include "convkit/init/initializers.h"
#include "convkit/layers/layer.h"
#include "convkit/ops/conv2d.h"

namespace convkit {

/// Hyperparameters of Conv2d; setters chain: Conv2dOptions(3, 64, 3).stride(2).padding(1).
class Conv2dOptions {
 public:
  Conv2dOptions(Index in_channels, Index out_channels, Index kernel)
      : in_(in_channels), out_(out_channels), kh_(kernel), kw_(kernel) {}
  Conv2dOptions(Index in_channels, Index out_channels, Index kernel_h, Index kernel_w)
      : in_(in_channels), out_(out_channels), kh_(kernel_h), kw_(kernel_w) {}

  Conv2dOptions& stride(Index s) { return stride(s, s); }
  Conv2dOptions& stride(Index sh, Index sw) { p_.stride_h = sh, p_.stride_w = sw; return *this; }
  Conv2dOptions& padding(Index p) { return padding(p, p); }
  Conv2dOptions& padding(Index ph, Index pw) { p_.pad_h = ph, p_.pad_w = pw; return *this; }
  Conv2dOptions& dilation(Index d) { return dilation(d, d); }
  Conv2dOptions& dilation(Index dh, Index dw) { p_.dilation_h = dh, p_.dilation_w = dw; return *this; }
  Conv2dOptions& groups(Index g) { p_.groups = g; return *this; }
  Conv2dOptions& bias(bool on) { bias_ = on; return *this; }

  Index in_channels() const { return in_; }
  Index out_channels() const { return out_; }
  Index kernel_h() const { return kh_; }
  Index kernel_w() const { return kw_; }
  bool bias() const { return bias_; }
  const ops::Conv2dParams& params() const { return p_; }

 private:
  Index in_, out_, kh_, kw_;
  ops::Conv2dParams p_;
  bool bias_ = true;
};

template <typename T>
class Conv2d : public Layer<T> {
 public:
  /// Seed used by the constructor without an Rng.
  static constexpr std::uint64_t kDefaultInitSeed = 0x5eed;

  /// @throws ValueError for channels, kernel, stride or dilation < 1, padding < 0, or groups
  /// that do not divide both channel counts.
  Conv2d(const Conv2dOptions& options, Rng& rng) : o_(options) {
    validate();
    weight_ = Parameter<T>("weight", Shape{o_.out_channels(), o_.in_channels() / o_.params().groups,
                                           o_.kernel_h(), o_.kernel_w()});
    if (o_.bias()) bias_ = Parameter<T>("bias", Shape{o_.out_channels()});
    reset_parameters(rng);
  }
  /// As above, drawing from a temporary Rng.
  Conv2d(const Conv2dOptions& options, Rng&& rng) : Conv2d(options, rng) {}
  /// As above, initialised from Rng(kDefaultInitSeed): every such layer of one shape starts
  /// with the same weights. Pass an Rng to draw different ones.
  explicit Conv2d(const Conv2dOptions& options) : Conv2d(options, Rng(kDefaultInitSeed)) {}

  /// Draws new weights and biases from U(−1/√fan_in, 1/√fan_in).
  void reset_parameters(Rng& rng) {
    const Index fan_in = weight_.value.dim(1) * o_.kernel_h() * o_.kernel_w();
    init::default_uniform(weight_.value, fan_in, rng);
    if (o_.bias()) init::default_uniform(bias_.value, fan_in, rng);
  }

  Shape output_shape(const Shape& in) const override {
    const auto& p = o_.params();
    const Index keh = p.dilation_h * (o_.kernel_h() - 1) + 1, kew = p.dilation_w * (o_.kernel_w() - 1) + 1;
    const Index min_h = std::max<Index>(1, keh - 2 * p.pad_h), min_w = std::max<Index>(1, kew - 2 * p.pad_w);
    CONVKIT_CHECK(in.rank() == 4 && in[1] == o_.in_channels() && in[2] >= min_h && in[3] >= min_w,
                  ShapeError,
                  describe() << ": expected input (N, " << o_.in_channels() << ", H, W) with "
                             << (min_h == min_w ? "H, W >= " + std::to_string(min_h)
                                                : "H >= " + std::to_string(min_h) +
                                                      ", W >= " + std::to_string(min_w))
                             << ", got " << in);
    return Shape{in[0], o_.out_channels(),
                 ops::conv2d_output_size(in[2], o_.kernel_h(), p.stride_h, p.pad_h, p.dilation_h),
                 ops::conv2d_output_size(in[3], o_.kernel_w(), p.stride_w, p.pad_w, p.dilation_w)};
  }

  /// N·OC·OH·OW·(C/groups)·KH·KW.
  Index multiply_adds(const Shape& input) const override {
    const Shape out = output_shape(input);
    return out.numel() * (o_.in_channels() / o_.params().groups) * o_.kernel_h() * o_.kernel_w();
  }

  std::string describe() const override {
    const auto& p = o_.params();
    std::ostringstream os;
    auto pair = [&os](Index a, Index b) -> std::ostream& {
      if (a == b) return os << a;
      return os << a << 'x' << b;
    };
    os << "Conv2d(" << o_.in_channels() << "->" << o_.out_channels() << ", k=" << o_.kernel_h()
       << 'x' << o_.kernel_w() << ", s=";
    pair(p.stride_h, p.stride_w) << ", p=";
    pair(p.pad_h, p.pad_w);
    if (p.dilation_h != 1 || p.dilation_w != 1) {
      os << ", d=";
      pair(p.dilation_h, p.dilation_w);
    }
    if (p.groups != 1) os << ", groups=" << p.groups;
    if (!o_.bias()) os << ", bias=false";
    os << ')';
    return os.str();
  }

  void collect_parameters(std::vector<NamedParameter<T>>& out, const std::string& prefix) override {
    this->add_parameter(out, prefix, weight_);
    if (o_.bias()) this->add_parameter(out, prefix, bias_);
  }

  const Conv2dOptions& options() const { return o_; }
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
    ops::conv2d_backward_weight(input_, grad_output, o_.params(), weight_.ensure_grad(),
                                o_.bias() ? &bias_.ensure_grad() : nullptr, ws_);
    if (!this->needs_input_grad()) return Tensor<T>();
    return ops::conv2d_backward_data(grad_output, weight_.value, input_.shape(), o_.params(), ws_);
  }

 private:
  Tensor<T> compute(const Tensor<T>& x) {
    return ops::conv2d_forward(x, weight_.value, o_.bias() ? &bias_.value : nullptr, o_.params(), ws_);
  }

  void validate() const {
    const auto& p = o_.params();
    CONVKIT_CHECK(o_.in_channels() >= 1 && o_.out_channels() >= 1, ValueError,
                  "Conv2d: expected in_channels >= 1 and out_channels >= 1, got "
                      << o_.in_channels() << " and " << o_.out_channels());
    CONVKIT_CHECK(o_.kernel_h() >= 1 && o_.kernel_w() >= 1, ValueError,
                  "Conv2d: expected kernel >= 1, got " << o_.kernel_h() << "x" << o_.kernel_w());
    CONVKIT_CHECK(p.stride_h >= 1 && p.stride_w >= 1, ValueError,
                  "Conv2d: expected stride >= 1, got " << p.stride_h << "x" << p.stride_w);
    CONVKIT_CHECK(p.pad_h >= 0 && p.pad_w >= 0, ValueError,
                  "Conv2d: expected padding >= 0, got " << p.pad_h << "x" << p.pad_w);
    CONVKIT_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1, ValueError,
                  "Conv2d: expected dilation >= 1, got " << p.dilation_h << "x" << p.dilation_w);
    CONVKIT_CHECK(p.groups >= 1 && o_.in_channels() % p.groups == 0 && o_.out_channels() % p.groups == 0,
                  ValueError,
                  "Conv2d: expected groups >= 1 dividing in_channels " << o_.in_channels()
                      << " and out_channels " << o_.out_channels() << ", got " << p.groups);
  }

  Conv2dOptions o_;
  Parameter<T> weight_;
  Parameter<T> bias_;
  Tensor<T> input_;
  ops::Workspace<T> ws_;
};

}  // namespace convkit
