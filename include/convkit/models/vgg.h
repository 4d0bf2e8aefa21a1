// convkit/models/vgg.h — VGG (Simonyan and Zisserman 2014), configurations A to E of the
// paper's Table 1, with torchvision's layout and parameter names.
//
//   A      64 M 128 M 256 256 M 512 512 M 512 512 M                       (VGG-11)
//   A-LRN  as A with LRN after the first convolution
//   B      64 64 M 128 128 M 256 256 M 512 512 M 512 512 M                 (VGG-13)
//   C      as B with a 1×1 convolution closing each of the last three blocks
//   D      64 64 M 128 128 M 256 ×3 M 512 ×3 M 512 ×3 M                    (VGG-16)
//   E      64 64 M 128 128 M 256 ×4 M 512 ×4 M 512 ×4 M                    (VGG-19)
// every number a 3×3 (or 1×1) convolution with padding 1 (0 for 1×1) and ReLU, M a 2×2/2 max
// pooling; then AdaptiveAvgPool2d(7×7) and the classifier FC 25088→4096, ReLU, Dropout,
// FC 4096→4096, ReLU, Dropout, FC 4096→classes. Parameters at 1000 classes:
// A 132,863,336, B 133,047,848, C 133,638,184, D 138,357,544, E 143,667,240 (the paper's 133,
// 133, 134, 138, 144 million). ModelOptions::batch_norm adds BatchNorm2d after each
// convolution (torchvision's vgg*_bn). Initialisation is torchvision's: convolutions
// N(0, 2/fan_out) with zero bias, FC N(0, 0.01²) with zero bias.
#pragma once

#include <memory>
#include <vector>

#include "convkit/containers/sequential.h"
#include "convkit/layers/adaptive_avg_pool2d.h"
#include "convkit/layers/batch_norm2d.h"
#include "convkit/layers/flatten.h"
#include "convkit/layers/lrn.h"
#include "convkit/layers/max_pool2d.h"
#include "convkit/layers/relu.h"
#include "convkit/models/model_options.h"

namespace convkit::models {

enum class VggConfig { kA, kALrn, kB, kC, kD, kE };

namespace detail {

// Layer codes of a configuration: > 0 a 3×3 convolution with that many channels, < 0 a 1×1
// convolution with −code channels, kPool a max pooling, kLrn an LRN.
inline constexpr int kPool = 0;
inline constexpr int kLrn = 1;

inline std::vector<int> vgg_layers(VggConfig c) {
  switch (c) {
    case VggConfig::kA:
      return {64, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool};
    case VggConfig::kALrn:
      return {64, kLrn, kPool, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool};
    case VggConfig::kB:
      return {64, 64, kPool, 128, 128, kPool, 256, 256, kPool, 512, 512, kPool, 512, 512, kPool};
    case VggConfig::kC:
      return {64, 64, kPool, 128, 128, kPool, 256, 256, -256, kPool, 512, 512, -512, kPool, 512, 512, -512, kPool};
    case VggConfig::kD:
      return {64, 64, kPool, 128, 128, kPool, 256, 256, 256, kPool, 512, 512, 512, kPool, 512, 512, 512, kPool};
    case VggConfig::kE:
      break;
  }
  return {64, 64, kPool, 128, 128, kPool, 256, 256, 256, 256, kPool, 512, 512, 512, 512, kPool,
          512, 512, 512, 512, kPool};
}

inline const char* vgg_name(VggConfig c) {
  switch (c) {
    case VggConfig::kA: return "vgg (A)";
    case VggConfig::kALrn: return "vgg (A-LRN)";
    case VggConfig::kB: return "vgg (B)";
    case VggConfig::kC: return "vgg (C)";
    case VggConfig::kD: return "vgg (D)";
    case VggConfig::kE: break;
  }
  return "vgg (E)";
}

}  // namespace detail

/// VGG of configuration `config` (see top).
/// @throws ValueError for bad options; ShapeError for an input under 32×32.
template <typename T>
Sequential<T> vgg(VggConfig config, Rng& rng, const ModelOptions& o = ModelOptions()) {
  const char* name = detail::vgg_name(config);
  detail::check_options(name, o, 224);
  auto f = std::make_unique<Sequential<T>>();
  Index channels = o.in_channels();
  for (int code : detail::vgg_layers(config)) {
    if (code == detail::kPool) {
      f->add(std::make_unique<MaxPool2d<T>>(2));
    } else if (code == detail::kLrn) {
      f->add(std::make_unique<LRN<T>>(LRNOptions(5).alpha(1e-4).beta(0.75).k(2.0)));
    } else {
      const Index out = code > 0 ? code : -code, k = code > 0 ? 3 : 1;
      auto c = detail::conv<T>(rng, channels, out, k, 1, k / 2);
      init::he_normal_fan_out(c->weight().value, rng);
      c->bias().value.fill(T(0));
      f->add(std::move(c));
      if (o.batch_norm()) f->add(std::make_unique<BatchNorm2d<T>>(out));
      f->add(std::make_unique<ReLU<T>>());
      channels = out;
    }
  }
  Sequential<T> net;
  net.add("features", std::move(f));
  detail::check_input_fits(name, net, o.input_shape(224));  // before the classifier's 120M weights
  auto classifier = std::make_unique<Sequential<T>>();
  for (Index in : {Index{512 * 7 * 7}, Index{4096}}) {
    auto fc = detail::linear<T>(rng, in, 4096);
    classifier->add(std::move(fc));
    classifier->add(std::make_unique<ReLU<T>>());
    classifier->add(detail::dropout<T>(rng, 0.5));
  }
  classifier->add(detail::linear<T>(rng, 4096, o.num_classes()));
  for (Index i = 0; i < classifier->size(); ++i)
    if (auto* fc = dynamic_cast<FullyConnected<T>*>(&(*classifier)[i])) {
      init::normal(fc->weight().value, 0.0, 0.01, rng);
      fc->bias().value.fill(T(0));
    }
  net.add("avgpool", std::make_unique<AdaptiveAvgPool2d<T>>(7));
  net.add("flatten", std::make_unique<Flatten<T>>());
  net.add("classifier", std::move(classifier));
  detail::check_input_fits(name, net, o.input_shape(224));
  return net;
}

/// VGG-11 (A), VGG-13 (B), VGG-16 (D) and VGG-19 (E), as torchvision's vgg11 ... vgg19
/// (ModelOptions::batch_norm for vgg11_bn ... vgg19_bn).
template <typename T>
Sequential<T> vgg11(Rng& rng, const ModelOptions& o = ModelOptions()) { return vgg<T>(VggConfig::kA, rng, o); }
template <typename T>
Sequential<T> vgg13(Rng& rng, const ModelOptions& o = ModelOptions()) { return vgg<T>(VggConfig::kB, rng, o); }
template <typename T>
Sequential<T> vgg16(Rng& rng, const ModelOptions& o = ModelOptions()) { return vgg<T>(VggConfig::kD, rng, o); }
template <typename T>
Sequential<T> vgg19(Rng& rng, const ModelOptions& o = ModelOptions()) { return vgg<T>(VggConfig::kE, rng, o); }

}  // namespace convkit::models
