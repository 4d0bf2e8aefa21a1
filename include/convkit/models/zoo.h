// convkit/models/zoo.h — every model builder by name, for programs that pick one at run time.
//
//   lenet5, alexnet, alexnet-original, vgg11 vgg13 vgg16 vgg19 (+ "-bn"), vgg-a, vgg-a-lrn,
//   vgg-b, vgg-c, vgg-d, vgg-e (+ "-bn"), googlenet, googlenet-original, resnet18 resnet34
//   resnet50 resnet101 resnet152
#pragma once

#include <string>
#include <vector>

#include "convkit/models/alexnet.h"
#include "convkit/models/googlenet.h"
#include "convkit/models/lenet5.h"
#include "convkit/models/resnet.h"
#include "convkit/models/vgg.h"

namespace convkit::models {

/// The names build() accepts.
inline std::vector<std::string> model_names() {
  std::vector<std::string> names = {"lenet5", "alexnet", "alexnet-original"};
  for (const char* v : {"vgg11", "vgg13", "vgg16", "vgg19", "vgg-a", "vgg-a-lrn", "vgg-b", "vgg-c", "vgg-d", "vgg-e"}) {
    names.emplace_back(v);
    names.push_back(std::string(v) + "-bn");
  }
  for (const char* v : {"googlenet", "googlenet-original"}) names.emplace_back(v);
  for (int d : resnet_depths()) names.push_back("resnet" + std::to_string(d));
  return names;
}

/// The native input size (height = width) of a model: 32 for lenet5, 227 for
/// alexnet-original, else 224.
inline Index native_input_size(const std::string& name) {
  if (name == "lenet5") return 32;
  if (name == "alexnet-original") return 227;
  return 224;
}

/// The model called `name` (see model_names()). A "-bn" suffix turns on
/// ModelOptions::batch_norm for VGG; lenet5 takes only num_classes and in_channels (10 and 1
/// unless set).
/// @throws ValueError for an unknown name (listing the known ones) or bad options.
template <typename T>
Sequential<T> build(const std::string& name, Rng& rng, ModelOptions o = ModelOptions()) {
  std::string base = name;
  const std::string bn = "-bn";
  if (base.size() > bn.size() && base.compare(base.size() - bn.size(), bn.size(), bn) == 0 &&
      base.compare(0, 3, "vgg") == 0) {
    base.resize(base.size() - bn.size());
    o.batch_norm(true);
  }
  if (base == "lenet5")
    return lenet5<T>(rng, o.has_num_classes() ? o.num_classes() : 10, o.has_in_channels() ? o.in_channels() : 1);
  if (base == "alexnet") return alexnet<T>(rng, o);
  if (base == "alexnet-original") return alexnet_original<T>(rng, o);
  if (base == "googlenet") return googlenet<T>(rng, o);
  if (base == "googlenet-original") return googlenet_original<T>(rng, o);
  const std::vector<std::pair<std::string, VggConfig>> vggs = {
      {"vgg11", VggConfig::kA}, {"vgg13", VggConfig::kB},    {"vgg16", VggConfig::kD}, {"vgg19", VggConfig::kE},
      {"vgg-a", VggConfig::kA}, {"vgg-a-lrn", VggConfig::kALrn}, {"vgg-b", VggConfig::kB}, {"vgg-c", VggConfig::kC},
      {"vgg-d", VggConfig::kD}, {"vgg-e", VggConfig::kE}};
  for (const auto& [n, config] : vggs)
    if (base == n) return vgg<T>(config, rng, o);
  for (int d : resnet_depths())
    if (base == "resnet" + std::to_string(d)) return resnet<T>(d, rng, o);
  std::string known;
  for (const std::string& n : model_names()) known += (known.empty() ? "" : ", ") + n;
  CONVKIT_CHECK(false, ValueError, "models::build: unknown model '" << name << "'; known: " << known);
  return Sequential<T>();  // unreachable
}

}  // namespace convkit::models
