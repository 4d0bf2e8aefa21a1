// convkit/models/model_options.h — ModelOptions, what every model builder takes, and the small
// pieces the builders share.
//
// A builder takes the number of classes, the input channels and the input size. Sizes that
// depend on the input (a classifier's fan-in) are derived with output_shape(), never written
// down, and the builder checks that an input of that size flows through the whole network.
// Size 0 (the default) means the family's native size: 224×224, or 227×227 for the original
// AlexNet.
#pragma once

#include <memory>
#include <string>

#include "convkit/containers/sequential.h"
#include "convkit/core/error.h"
#include "convkit/core/rng.h"
#include "convkit/init/initializers.h"
#include "convkit/layers/conv2d.h"
#include "convkit/layers/dropout.h"
#include "convkit/layers/fully_connected.h"

namespace convkit::models {

/// ModelOptions().num_classes(10).in_channels(1).input_size(64).batch_norm(true).
class ModelOptions {
 public:
  ModelOptions& num_classes(Index n) { classes_ = n, classes_set_ = true; return *this; }
  ModelOptions& in_channels(Index c) { channels_ = c, channels_set_ = true; return *this; }
  ModelOptions& input_size(Index s) { return input_size(s, s); }
  ModelOptions& input_size(Index h, Index w) { h_ = h, w_ = w; return *this; }
  /// VGG: batch normalisation after every convolution (torchvision's vgg*_bn).
  ModelOptions& batch_norm(bool on) { batch_norm_ = on; return *this; }
  /// GoogLeNet: the two auxiliary classifiers (training mode only, loss weight 0.3).
  ModelOptions& aux_logits(bool on) { aux_logits_ = on; return *this; }

  /// The values set, or ImageNet's 1000 classes and 3 channels.
  Index num_classes() const { return classes_set_ ? classes_ : 1000; }
  Index in_channels() const { return channels_set_ ? channels_ : 3; }
  bool has_num_classes() const { return classes_set_; }
  bool has_in_channels() const { return channels_set_; }
  bool batch_norm() const { return batch_norm_; }
  bool aux_logits() const { return aux_logits_; }
  /// The input shape (batch, C, H, W), with 0 sizes replaced by `native`.
  Shape input_shape(Index native, Index batch = 1) const {
    return Shape{batch, in_channels(), h_ ? h_ : native, w_ ? w_ : native};
  }

 private:
  Index classes_ = 0, channels_ = 0, h_ = 0, w_ = 0;
  bool classes_set_ = false, channels_set_ = false, batch_norm_ = false, aux_logits_ = false;
};

namespace detail {

/// @throws ValueError for num_classes or in_channels < 1, or a negative input size (0 is the
/// model's native size).
inline void check_options(const char* model, const ModelOptions& o, Index native_size) {
  const Shape s = o.input_shape(native_size);
  CONVKIT_CHECK(o.num_classes() >= 1 && o.in_channels() >= 1 && s[2] >= 1 && s[3] >= 1, ValueError,
                model << ": expected num_classes >= 1, in_channels >= 1 and input sizes >= 1, got "
                      << o.num_classes() << " classes, " << o.in_channels() << " channels, input "
                      << s[2] << "x" << s[3]);
}

/// Checks that `input` flows through `net`.
/// @throws ShapeError "<model>: input (1, 3, 32, 32) does not fit: <the failing layer's error>".
template <typename T>
void check_input_fits(const char* model, const Layer<T>& net, const Shape& input) {
  try {
    net.output_shape(input);
  } catch (const ShapeError& e) {
    throw ShapeError(std::string(model) + ": input " + input.to_string() + " does not fit: " + e.what());
  }
}

/// The number of features `net` produces per sample for `input` (C·H·W of its output).
template <typename T>
Index features_per_sample(const char* model, const Layer<T>& net, const Shape& input) {
  check_input_fits(model, net, input);
  const Shape out = net.output_shape(input);
  return out.numel() / out[0];
}

template <typename T>
std::unique_ptr<Conv2d<T>> conv(Rng& rng, Index in, Index out, Index k, Index stride = 1, Index pad = 0,
                                bool bias = true, Index groups = 1) {
  return std::make_unique<Conv2d<T>>(Conv2dOptions(in, out, k).stride(stride).padding(pad).bias(bias).groups(groups),
                                     rng);
}

template <typename T>
std::unique_ptr<FullyConnected<T>> linear(Rng& rng, Index in, Index out) {
  return std::make_unique<FullyConnected<T>>(FullyConnectedOptions(in, out), rng);
}

/// Dropout with its own seed drawn from rng, so one model seed fixes every mask sequence.
template <typename T>
std::unique_ptr<Dropout<T>> dropout(Rng& rng, double p) {
  return std::make_unique<Dropout<T>>(DropoutOptions(p).seed(rng.next_u64()));
}

}  // namespace detail
}  // namespace convkit::models
