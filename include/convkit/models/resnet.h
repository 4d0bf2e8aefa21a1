// convkit/models/resnet.h — ResNet (He et al. 2015) of depth 18, 34, 50, 101 or 152, with
// torchvision's layout and parameter names.
//
//   conv1 7×7/2 p3 64 (no bias), bn1, relu, maxpool 3×3/2 p1
//   layer1 … layer4: blocks with 64, 128, 256, 512 base channels; the first block of layers
//   2–4 has stride 2 (on its 3×3 convolution), and a block whose input and output differ in
//   shape has a projection shortcut "downsample" = 1×1 conv with the stride (no bias) + BN
//   avgpool (global), flatten, fc (512·expansion → classes)
// Blocks are Residual layers with a ReLU after the sum:
//   basic (18, 34; expansion 1):     conv1 3×3/s, bn1, relu, conv2 3×3, bn2
//   bottleneck (50+; expansion 4):   conv1 1×1, bn1, relu, conv2 3×3/s, bn2, relu, conv3 1×1 (×4), bn3
// Blocks per layer: 18 [2,2,2,2], 34 [3,4,6,3], 50 [3,4,6,3], 101 [3,4,23,3], 152 [3,8,36,3].
// Parameters at 1000 classes: 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 / 60,192,808.
// Initialisation is torchvision's: convolutions N(0, 2/fan_out), BN γ = 1, β = 0, fc
// PyTorch's default.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "convkit/containers/residual.h"
#include "convkit/containers/sequential.h"
#include "convkit/layers/adaptive_avg_pool2d.h"
#include "convkit/layers/batch_norm2d.h"
#include "convkit/layers/flatten.h"
#include "convkit/layers/max_pool2d.h"
#include "convkit/layers/relu.h"
#include "convkit/models/model_options.h"

namespace convkit::models {

namespace detail {

template <typename T>
std::unique_ptr<Conv2d<T>> resnet_conv(Rng& rng, Index in, Index out, Index k, Index stride) {
  auto c = conv<T>(rng, in, out, k, stride, k / 2, /*bias=*/false);
  init::he_normal_fan_out(c->weight().value, rng);
  return c;
}

/// One residual block; `bottleneck` selects the 1×1–3×3–1×1 form (expansion 4).
template <typename T>
std::unique_ptr<Residual<T>> resnet_block(Rng& rng, Index in, Index planes, Index stride, bool bottleneck) {
  auto b = std::make_unique<Residual<T>>();
  const Index out = bottleneck ? 4 * planes : planes;
  if (bottleneck) {
    b->add("conv1", resnet_conv<T>(rng, in, planes, 1, 1));
    b->add("bn1", std::make_unique<BatchNorm2d<T>>(planes));
    b->add("relu1", std::make_unique<ReLU<T>>());
    b->add("conv2", resnet_conv<T>(rng, planes, planes, 3, stride));
    b->add("bn2", std::make_unique<BatchNorm2d<T>>(planes));
    b->add("relu2", std::make_unique<ReLU<T>>());
    b->add("conv3", resnet_conv<T>(rng, planes, out, 1, 1));
    b->add("bn3", std::make_unique<BatchNorm2d<T>>(out));
  } else {
    b->add("conv1", resnet_conv<T>(rng, in, planes, 3, stride));
    b->add("bn1", std::make_unique<BatchNorm2d<T>>(planes));
    b->add("relu1", std::make_unique<ReLU<T>>());
    b->add("conv2", resnet_conv<T>(rng, planes, planes, 3, 1));
    b->add("bn2", std::make_unique<BatchNorm2d<T>>(planes));
  }
  if (stride != 1 || in != out) {
    auto d = std::make_unique<Sequential<T>>();
    d->add(resnet_conv<T>(rng, in, out, 1, stride));
    d->add(std::make_unique<BatchNorm2d<T>>(out));
    b->set_shortcut("downsample", std::move(d));
  }
  b->set_activation(std::make_unique<ReLU<T>>());
  return b;
}

}  // namespace detail

/// The depths resnet() builds.
inline const std::vector<int>& resnet_depths() {
  static const std::vector<int> depths = {18, 34, 50, 101, 152};
  return depths;
}

/// ResNet of the given depth (see top).
/// Every input size flows through (the global pooling absorbs it).
/// @throws ValueError for a depth other than 18, 34, 50, 101, 152 or bad options.
template <typename T>
Sequential<T> resnet(int depth, Rng& rng, const ModelOptions& o = ModelOptions()) {
  std::vector<Index> blocks;
  switch (depth) {
    case 18: blocks = {2, 2, 2, 2}; break;
    case 34: blocks = {3, 4, 6, 3}; break;
    case 50: blocks = {3, 4, 6, 3}; break;
    case 101: blocks = {3, 4, 23, 3}; break;
    case 152: blocks = {3, 8, 36, 3}; break;
    default:
      CONVKIT_CHECK(false, ValueError, "resnet: expected depth 18, 34, 50, 101 or 152, got " << depth);
  }
  const std::string name = "resnet" + std::to_string(depth);
  detail::check_options(name.c_str(), o, 224);
  const bool bottleneck = depth >= 50;
  const Index expansion = bottleneck ? 4 : 1;
  Sequential<T> net;
  net.add("conv1", detail::resnet_conv<T>(rng, o.in_channels(), 64, 7, 2));
  net.add("bn1", std::make_unique<BatchNorm2d<T>>(64));
  net.add("relu", std::make_unique<ReLU<T>>());
  net.add("maxpool", std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(2).padding(1)));
  Index in = 64;
  for (std::size_t stage = 0; stage < blocks.size(); ++stage) {
    const Index planes = Index{64} << stage;
    auto layer = std::make_unique<Sequential<T>>();
    for (Index b = 0; b < blocks[stage]; ++b) {
      const Index stride = (stage > 0 && b == 0) ? 2 : 1;
      layer->add(detail::resnet_block<T>(rng, in, planes, stride, bottleneck));
      in = planes * expansion;
    }
    net.add("layer" + std::to_string(stage + 1), std::move(layer));
  }
  net.add("avgpool", std::make_unique<AdaptiveAvgPool2d<T>>(1));
  net.add("flatten", std::make_unique<Flatten<T>>());
  net.add("fc", detail::linear<T>(rng, 512 * expansion, o.num_classes()));
  detail::check_input_fits(name.c_str(), net, o.input_shape(224));
  return net;
}

template <typename T>
Sequential<T> resnet18(Rng& rng, const ModelOptions& o = ModelOptions()) { return resnet<T>(18, rng, o); }
template <typename T>
Sequential<T> resnet34(Rng& rng, const ModelOptions& o = ModelOptions()) { return resnet<T>(34, rng, o); }
template <typename T>
Sequential<T> resnet50(Rng& rng, const ModelOptions& o = ModelOptions()) { return resnet<T>(50, rng, o); }
template <typename T>
Sequential<T> resnet101(Rng& rng, const ModelOptions& o = ModelOptions()) { return resnet<T>(101, rng, o); }
template <typename T>
Sequential<T> resnet152(Rng& rng, const ModelOptions& o = ModelOptions()) { return resnet<T>(152, rng, o); }

}  // namespace convkit::models
