// convkit/models/lenet5.h — LeNet-5 (LeCun et al. 1998) with ReLU and max pooling.
//
//   input (N, 1, 32, 32)
//   c1  Conv2d 1→6, 5×5      (N, 6, 28, 28)    156 parameters
//   s2  MaxPool2d 2×2, s 2   (N, 6, 14, 14)
//   c3  Conv2d 6→16, 5×5     (N, 16, 10, 10)   2,416
//   s4  MaxPool2d 2×2, s 2   (N, 16, 5, 5)
//   flatten                  (N, 400)
//   f5  FullyConnected 400→120                 48,120
//   f6  FullyConnected 120→84                  10,164
//   output FullyConnected 84→10                850
// with ReLU after c1, c3, f5 and f6: 61,706 parameters. Train it with SoftmaxCrossEntropy
// on the output logits. f5 takes 400 = 16·5·5 features, which only a 32×32 input gives;
// output_shape() reports any other size as a ShapeError at f5.
#pragma once

#include "convkit/containers/sequential.h"
#include "convkit/core/rng.h"
#include "convkit/layers/conv2d.h"
#include "convkit/layers/flatten.h"
#include "convkit/layers/fully_connected.h"
#include "convkit/layers/max_pool2d.h"
#include "convkit/layers/relu.h"

namespace convkit::models {

/// LeNet-5 as above, weights drawn from rng (PyTorch's default initialisation).
/// @throws ValueError for in_channels or num_classes < 1.
template <typename T>
Sequential<T> lenet5(Rng& rng, Index num_classes = 10, Index in_channels = 1) {
  CONVKIT_CHECK(num_classes >= 1 && in_channels >= 1, ValueError,
                "lenet5: expected num_classes >= 1 and in_channels >= 1, got " << num_classes << " and " << in_channels);
  Sequential<T> net;
  net.add("c1", std::make_unique<Conv2d<T>>(Conv2dOptions(in_channels, 6, 5), rng));
  net.add("relu1", std::make_unique<ReLU<T>>());
  net.add("s2", std::make_unique<MaxPool2d<T>>(2));
  net.add("c3", std::make_unique<Conv2d<T>>(Conv2dOptions(6, 16, 5), rng));
  net.add("relu3", std::make_unique<ReLU<T>>());
  net.add("s4", std::make_unique<MaxPool2d<T>>(2));
  net.add("flatten", std::make_unique<Flatten<T>>());
  net.add("f5", std::make_unique<FullyConnected<T>>(FullyConnectedOptions(400, 120), rng));
  net.add("relu5", std::make_unique<ReLU<T>>());
  net.add("f6", std::make_unique<FullyConnected<T>>(FullyConnectedOptions(120, 84), rng));
  net.add("relu6", std::make_unique<ReLU<T>>());
  net.add("output", std::make_unique<FullyConnected<T>>(FullyConnectedOptions(84, num_classes), rng));
  return net;
}

}  // namespace convkit::models
