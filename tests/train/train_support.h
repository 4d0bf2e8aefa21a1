// tests/train/train_support.h — a small separable problem and a small conv net for the
// trainer tests: 1×8×8 images, class 0 bright on the left, class 1 on the right.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>

#include <convkit/containers/sequential.h>
#include <convkit/data/dataset.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/dropout.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/max_pool2d.h>
#include <convkit/layers/relu.h>

namespace convkit::testing::train_support {

using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::FullyConnected;
using convkit::FullyConnectedOptions;
using convkit::Index;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::Tensor;
using convkit::data::Dataset;

template <typename T>
Dataset<T> make_data(Index n, std::uint64_t seed) {
  Rng rng(seed);
  Dataset<T> d;
  d.num_classes = 2;
  d.images = Tensor<T>(Shape{n, 1, 8, 8});
  for (Index i = 0; i < n; ++i) {
    const Index label = i % 2;
    d.labels.push_back(label);
    for (Index y = 0; y < 8; ++y)
      for (Index x = 0; x < 8; ++x) {
        const bool bright = (x < 4) == (label == 0);
        d.images(i, 0, y, x) = static_cast<T>((bright ? 0.8 : 0.0) + 0.2 * rng.normal());
      }
  }
  return d;
}

/// Conv2d(1->4, k3) -> ReLU -> MaxPool2d(2) -> Flatten -> FC(36 -> classes).
template <typename T>
Sequential<T> small_model(std::uint64_t seed, Index classes = 2, bool dropout = false) {
  Rng rng(seed);
  Sequential<T> net;
  net.add(std::make_unique<Conv2d<T>>(Conv2dOptions(1, 4, 3), rng));
  net.add(std::make_unique<convkit::ReLU<T>>());
  net.add(std::make_unique<convkit::MaxPool2d<T>>(2));
  net.add(std::make_unique<convkit::Flatten<T>>());
  net.add(std::make_unique<FullyConnected<T>>(FullyConnectedOptions(36, classes), rng));
  if (dropout) net.add(std::make_unique<convkit::Dropout<T>>(0.5));
  return net;
}

template <typename T>
::testing::AssertionResult same_parameters(Sequential<T>& a, Sequential<T>& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  if (pa.size() != pb.size()) return ::testing::AssertionFailure() << "parameter counts differ";
  for (std::size_t k = 0; k < pa.size(); ++k) {
    const Tensor<T>& x = pa[k].param->value;
    const Tensor<T>& y = pb[k].param->value;
    if (x.shape() != y.shape()) return ::testing::AssertionFailure() << pa[k].name << " shapes differ";
    for (Index i = 0; i < x.numel(); ++i)
      if (std::memcmp(&x[i], &y[i], sizeof(T)) != 0)
        return ::testing::AssertionFailure() << pa[k].name << "[" << i << "]: " << x[i] << " vs " << y[i];
  }
  return ::testing::AssertionSuccess();
}

}  // namespace convkit::testing::train_support
