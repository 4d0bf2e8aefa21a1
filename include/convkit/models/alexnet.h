// convkit/models/alexnet.h — AlexNet (Krizhevsky, Sutskever, Hinton 2012), two layouts.
//
// alexnet(): the single-tower network of torchvision (input 224×224, 61,100,840 parameters at
// 1000 classes), its parameter names (features.0.weight, classifier.1.weight, ...):
//   features   conv 11×11/4 p2 64, ReLU, max 3/2, conv 5×5 p2 192, ReLU, max 3/2,
//              conv 3×3 p1 384, ReLU, conv 3×3 p1 256, ReLU, conv 3×3 p1 256, ReLU, max 3/2
//   avgpool    AdaptiveAvgPool2d(6×6)            (any input that survives the features)
//   classifier Dropout, FC 9216→4096, ReLU, Dropout, FC 4096→4096, ReLU, FC 4096→classes
//
// alexnet_original(): the paper's network with its two-GPU split as grouped convolutions
// (groups = 2 on conv2, conv4 and conv5) and local response normalisation after conv1 and
// conv2 (size 5, α = 1e-4, β = 0.75, k = 2); input 227×227, as the paper's arithmetic needs
// (60,965,224 parameters at 1000 classes, Caffe's count):
//   conv 11×11/4 96, ReLU, LRN, max 3/2, conv 5×5 p2 256 g2, ReLU, LRN, max 3/2,
//   conv 3×3 p1 384, ReLU, conv 3×3 p1 384 g2, ReLU, conv 3×3 p1 256 g2, ReLU, max 3/2,
//   Dropout, FC (256·6·6 at 227)→4096, ReLU, Dropout, FC 4096→4096, ReLU, FC 4096→classes
// The first classifier layer's fan-in comes from the features' output_shape at the input size.
// Both start from PyTorch's default initialisation (torchvision's choice for AlexNet).
#pragma once

#include <memory>

#include "convkit/containers/sequential.h"
#include "convkit/layers/adaptive_avg_pool2d.h"
#include "convkit/layers/flatten.h"
#include "convkit/layers/lrn.h"
#include "convkit/layers/max_pool2d.h"
#include "convkit/layers/relu.h"
#include "convkit/models/model_options.h"

namespace convkit::models {

namespace detail {

/// Dropout, FC in→4096, ReLU, Dropout, FC 4096→4096, ReLU, FC 4096→classes.
template <typename T>
std::unique_ptr<Sequential<T>> alexnet_classifier(Rng& rng, Index in, Index classes) {
  auto c = std::make_unique<Sequential<T>>();
  c->add(dropout<T>(rng, 0.5));
  c->add(linear<T>(rng, in, 4096));
  c->add(std::make_unique<ReLU<T>>());
  c->add(dropout<T>(rng, 0.5));
  c->add(linear<T>(rng, 4096, 4096));
  c->add(std::make_unique<ReLU<T>>());
  c->add(linear<T>(rng, 4096, classes));
  return c;
}

}  // namespace detail

/// torchvision's AlexNet (see top).
/// @throws ValueError for bad options; ShapeError if the input size is too small (under 63).
template <typename T>
Sequential<T> alexnet(Rng& rng, const ModelOptions& o = ModelOptions()) {
  detail::check_options("alexnet", o, 224);
  using detail::conv;
  auto f = std::make_unique<Sequential<T>>();
  f->add(conv<T>(rng, o.in_channels(), 64, 11, 4, 2));
  f->add(std::make_unique<ReLU<T>>());
  f->add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(2)));
  f->add(conv<T>(rng, 64, 192, 5, 1, 2));
  f->add(std::make_unique<ReLU<T>>());
  f->add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(2)));
  f->add(conv<T>(rng, 192, 384, 3, 1, 1));
  f->add(std::make_unique<ReLU<T>>());
  f->add(conv<T>(rng, 384, 256, 3, 1, 1));
  f->add(std::make_unique<ReLU<T>>());
  f->add(conv<T>(rng, 256, 256, 3, 1, 1));
  f->add(std::make_unique<ReLU<T>>());
  f->add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(2)));
  Sequential<T> net;
  net.add("features", std::move(f));
  detail::check_input_fits("alexnet", net, o.input_shape(224));  // before the 58M classifier weights
  net.add("avgpool", std::make_unique<AdaptiveAvgPool2d<T>>(6));
  net.add("flatten", std::make_unique<Flatten<T>>());
  net.add("classifier", detail::alexnet_classifier<T>(rng, 256 * 6 * 6, o.num_classes()));
  detail::check_input_fits("alexnet", net, o.input_shape(224));
  return net;
}

/// The paper's AlexNet with grouped convolutions and LRN (see top); native input 227×227.
/// @throws ValueError for bad options; ShapeError if the input size is too small (under 67).
template <typename T>
Sequential<T> alexnet_original(Rng& rng, const ModelOptions& o = ModelOptions()) {
  detail::check_options("alexnet_original", o, 227);
  using detail::conv;
  const LRNOptions lrn = LRNOptions(5).alpha(1e-4).beta(0.75).k(2.0);
  auto f = std::make_unique<Sequential<T>>();
  f->add(conv<T>(rng, o.in_channels(), 96, 11, 4, 0));
  f->add(std::make_unique<ReLU<T>>());
  f->add(std::make_unique<LRN<T>>(lrn));
  f->add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(2)));
  f->add(conv<T>(rng, 96, 256, 5, 1, 2, true, 2));
  f->add(std::make_unique<ReLU<T>>());
  f->add(std::make_unique<LRN<T>>(lrn));
  f->add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(2)));
  f->add(conv<T>(rng, 256, 384, 3, 1, 1));
  f->add(std::make_unique<ReLU<T>>());
  f->add(conv<T>(rng, 384, 384, 3, 1, 1, true, 2));
  f->add(std::make_unique<ReLU<T>>());
  f->add(conv<T>(rng, 384, 256, 3, 1, 1, true, 2));
  f->add(std::make_unique<ReLU<T>>());
  f->add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(2)));
  const Index fan_in = detail::features_per_sample("alexnet_original", *f, o.input_shape(227));
  Sequential<T> net;
  net.add("features", std::move(f));
  net.add("flatten", std::make_unique<Flatten<T>>());
  net.add("classifier", detail::alexnet_classifier<T>(rng, fan_in, o.num_classes()));
  return net;
}

}  // namespace convkit::models
