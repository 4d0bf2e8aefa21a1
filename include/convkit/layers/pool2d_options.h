// convkit/layers/pool2d_options.h — Pool2dOptions, shared by MaxPool2d and AvgPool2d, and
// the part of a pooling layer that both share (validation, shape, description).
#pragma once

#include <sstream>
#include <string>

#include "convkit/layers/layer.h"
#include "convkit/ops/pool2d.h"

namespace convkit {

/// Pooling window; the stride defaults to the kernel: Pool2dOptions(3).stride(2).ceil_mode(true).
class Pool2dOptions {
 public:
  explicit Pool2dOptions(Index kernel) : Pool2dOptions(kernel, kernel) {}
  Pool2dOptions(Index kernel_h, Index kernel_w) {
    p_.kernel_h = kernel_h, p_.kernel_w = kernel_w;
    p_.stride_h = kernel_h, p_.stride_w = kernel_w;
  }
  Pool2dOptions& stride(Index s) { return stride(s, s); }
  Pool2dOptions& stride(Index sh, Index sw) { p_.stride_h = sh, p_.stride_w = sw; return *this; }
  Pool2dOptions& padding(Index p) { return padding(p, p); }
  Pool2dOptions& padding(Index ph, Index pw) { p_.pad_h = ph, p_.pad_w = pw; return *this; }
  /// Round the output size up instead of down (a partial last window is kept).
  Pool2dOptions& ceil_mode(bool on) { p_.ceil_mode = on; return *this; }
  /// Average pooling only: whether padded positions count in the divisor (default true).
  Pool2dOptions& count_include_pad(bool on) { p_.count_include_pad = on; return *this; }

  const ops::Pool2dParams& params() const { return p_; }

 private:
  ops::Pool2dParams p_;
};

namespace detail {

template <typename T>
class Pool2dLayer : public Layer<T> {
 public:
  Shape output_shape(const Shape& input) const override {
    try {
      return ops::pool2d_output_shape(input, o_.params());
    } catch (const ShapeError& e) {
      throw ShapeError(describe() + ": " + strip_op_name(e.what()));
    }
  }

  std::string describe() const override {
    const auto& p = o_.params();
    std::ostringstream os;
    os << name_ << "(k=" << p.kernel_h << 'x' << p.kernel_w << ", s=" << p.stride_h;
    if (p.stride_w != p.stride_h) os << 'x' << p.stride_w;
    os << ", p=" << p.pad_h;
    if (p.pad_w != p.pad_h) os << 'x' << p.pad_w;
    if (p.ceil_mode) os << ", ceil";
    if (!p.count_include_pad && std::string(name_) == "AvgPool2d") os << ", exclude_pad";
    os << ')';
    return os.str();
  }

  const Pool2dOptions& options() const { return o_; }

 protected:
  /// @throws ValueError for kernel or stride < 1, or padding outside [0, kernel / 2].
  Pool2dLayer(const char* name, const Pool2dOptions& options) : name_(name), o_(options) {
    try {
      ops::pool2d_check_params(o_.params());
    } catch (const ValueError& e) {
      throw ValueError(std::string(name_) + ": " + strip_op_name(e.what()));
    }
  }

  const char* name_;
  Pool2dOptions o_;
  Shape input_shape_;

 private:
  /// "pool2d: expected ..." -> "expected ...", so the layer's name stands in for the op's.
  static std::string strip_op_name(const std::string& message) {
    const std::string op = "pool2d: ";
    return message.compare(0, op.size(), op) == 0 ? message.substr(op.size()) : message;
  }
};

}  // namespace detail
}  // namespace convkit
