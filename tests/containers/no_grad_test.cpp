// Inference without keeping anything for backward (core/grad_mode.h): under a NoGradGuard a
// model computes the same output bit for bit, its layers drop what they kept, backward then
// throws StateError, and the guard restores the previous setting, per thread.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include <convkit/containers/residual.h>
#include <convkit/containers/sequential.h>
#include <convkit/core/grad_mode.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/lrn.h>
#include <convkit/layers/relu.h>
#include <convkit/layers/tanh.h>

#include "support/expect.h"
#include "support/gradcheck.h"

namespace {

using convkit::BatchNorm2d;
using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Flatten;
using convkit::FullyConnected;
using convkit::FullyConnectedOptions;
using convkit::grad_enabled;
using convkit::LRN;
using convkit::NoGradGuard;
using convkit::ReLU;
using convkit::Residual;
using convkit::Rng;
using convkit::Sequential;
using convkit::set_grad_enabled;
using convkit::Shape;
using convkit::StateError;
using convkit::Tanh;
using convkit::Tensor;
using convkit::testing::contains;
using convkit::testing::message_of;

/// Layer kinds that keep something for backward: Conv2d, FullyConnected and ReLU (input),
/// BatchNorm2d (input), Tanh (output), LRN (input, output, scale), in a residual block.
Sequential<double> small_net(Rng& rng) {
  Sequential<double> net;
  net.add("conv", std::make_unique<Conv2d<double>>(Conv2dOptions(2, 4, 3).padding(1), rng));
  net.add("bn", std::make_unique<BatchNorm2d<double>>(4));
  net.add("relu", std::make_unique<ReLU<double>>());
  auto block = std::make_unique<Residual<double>>();
  block->add("conv", std::make_unique<Conv2d<double>>(Conv2dOptions(4, 4, 3).padding(1), rng));
  block->add("tanh", std::make_unique<Tanh<double>>());
  block->set_activation(std::make_unique<ReLU<double>>());
  net.add("block", std::move(block));
  net.add("lrn", std::make_unique<LRN<double>>(convkit::LRNOptions(3)));
  net.add("flatten", std::make_unique<Flatten<double>>());
  net.add("fc", std::make_unique<FullyConnected<double>>(FullyConnectedOptions(4 * 5 * 5, 3), rng));
  return net;
}

void expect_same(const Tensor<double>& a, const Tensor<double>& b) {
  ASSERT_EQ(a.shape(), b.shape());
  for (convkit::Index i = 0; i < a.numel(); ++i) ASSERT_EQ(a[i], b[i]) << "element " << i;
}

TEST(NoGrad, GuardNestsAndRestoresPerThread) {
  EXPECT_TRUE(grad_enabled());
  {
    const NoGradGuard outer;
    EXPECT_FALSE(grad_enabled());
    bool other_thread = false;
    std::thread([&] { other_thread = grad_enabled(); }).join();
    EXPECT_TRUE(other_thread);  // the switch is this thread's only
    {
      const NoGradGuard inner;
      EXPECT_FALSE(grad_enabled());
    }
    EXPECT_FALSE(grad_enabled());  // the inner guard restores the outer's setting
  }
  EXPECT_TRUE(grad_enabled());
  try {
    const NoGradGuard guard;
    throw std::runtime_error("leaves the scope");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(grad_enabled());
  set_grad_enabled(false);
  EXPECT_FALSE(grad_enabled());
  set_grad_enabled(true);
  EXPECT_TRUE(grad_enabled());
}

TEST(NoGrad, SameOutputsAndBackwardRefused) {
  for (const bool training : {false, true}) {
    SCOPED_TRACE(training ? "training mode" : "evaluation mode");
    Rng rng_a(3), rng_b(3), data(4);
    Sequential<double> a = small_net(rng_a), b = small_net(rng_b);
    a.set_training(training);
    b.set_training(training);
    const Tensor<double> x = convkit::testing::random_normal(Shape{2, 2, 5, 5}, data);
    const Tensor<double> expected = a.forward(x);
    Tensor<double> got;
    {
      const NoGradGuard no_grad;
      got = b.forward(x);
    }
    expect_same(got, expected);
    // BatchNorm2d in training mode updates its running statistics under the guard too.
    const auto pa = a.named_parameters(), pb = b.named_parameters();
    for (std::size_t i = 0; i < pa.size(); ++i) expect_same(pb[i].param->value, pa[i].param->value);

    const Tensor<double> g = convkit::testing::random_normal(expected.shape(), data);
    const std::string message = message_of<StateError>([&] { b.backward(g); });
    EXPECT_TRUE(contains(message, "NoGradGuard")) << message;

    // A forward with gradients on afterwards works as if the guarded one never happened.
    const Tensor<double> ga = a.backward(g);
    const Tensor<double> x2 = convkit::testing::random_normal(x.shape(), data);
    Rng rng_c(3);
    Sequential<double> c = small_net(rng_c);
    c.set_training(training);
    {
      const NoGradGuard no_grad;
      c.forward(x);  // the same statistics update as b's (training mode)
    }
    expect_same(b.forward(x2), c.forward(x2));
    expect_same(b.backward(g), c.backward(g));
    const auto pc = c.named_parameters();
    for (std::size_t i = 0; i < pb.size(); ++i)
      if (pc[i].param->has_grad()) expect_same(pb[i].param->grad, pc[i].param->grad);
    EXPECT_EQ(ga.shape(), x.shape());
  }
}

TEST(NoGrad, ALayerAloneRefusesBackward) {
  Rng rng(5);
  Conv2d<double> conv(Conv2dOptions(1, 2, 3), rng);
  const Tensor<double> x = convkit::testing::random_normal(Shape{1, 1, 4, 4}, rng);
  const Tensor<double> y = conv.forward(x);
  EXPECT_EQ(conv.backward(y).shape(), x.shape());  // kept
  {
    const NoGradGuard no_grad;
    conv.forward(x);
  }
  const std::string message = message_of<StateError>([&] { conv.backward(y); });
  EXPECT_TRUE(contains(message, "Conv2d")) << message;
  EXPECT_TRUE(contains(message, "NoGradGuard")) << message;
}

}  // namespace
