// Model zoo in training: one forward and backward pass through resnet18 and googlenet (with
// auxiliary heads) at a small input gives finite outputs and gradients for every parameter;
// a tiny ResNet and a tiny inception net fit a fixed batch within a few SGD steps; the
// trainer adds GoogLeNet's auxiliary losses.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include <convkit/containers/auxiliary_head.h>
#include <convkit/containers/concat.h>
#include <convkit/containers/residual.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/layers/global_avg_pool2d.h>
#include <convkit/losses/softmax_cross_entropy.h>
#include <convkit/models/zoo.h>
#include <convkit/optim/sgd.h>
#include <convkit/train/trainer.h>

#include "support/seed.h"

namespace {

using convkit::BatchNorm2d;
using convkit::Concat;
using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::FullyConnected;
using convkit::Index;
using convkit::Layer;
using convkit::ReLU;
using convkit::Residual;
using convkit::Rng;
using convkit::Sequential;
using convkit::SGD;
using convkit::SgdOptions;
using convkit::Shape;
using convkit::SoftmaxCrossEntropy;
using convkit::Tensor;
using convkit::models::ModelOptions;

Tensor<float> random_images(const Shape& s, Rng& rng) {
  Tensor<float> t(s);
  for (float& v : t) v = static_cast<float>(rng.normal());
  return t;
}

std::vector<Index> random_labels(Index n, Index classes, Rng& rng) {
  std::vector<Index> y;
  for (Index i = 0; i < n; ++i) y.push_back(static_cast<Index>(rng.below(static_cast<std::uint64_t>(classes))));
  return y;
}

/// One training step's loss and gradients; every trainable parameter must get a finite,
/// not all-zero gradient.
void expect_finite_step(Sequential<float>& net, const Shape& input, Index classes, Rng& rng) {
  const Tensor<float> x = random_images(input, rng);
  const std::vector<Index> y = random_labels(input[0], classes, rng);
  net.train();
  const Tensor<float> logits = net.forward(x);
  ASSERT_EQ(logits.shape(), (Shape{input[0], classes}));
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  SoftmaxCrossEntropy<float> loss;
  const float l = loss.forward(logits, y);
  EXPECT_TRUE(std::isfinite(l));
  EXPECT_GT(l, 0.0f);
  for (auto* head : convkit::find_layers<convkit::AuxiliaryHead<float>>(net)) {
    ASSERT_NE(head->output(), nullptr);
    SoftmaxCrossEntropy<float> aux;
    aux.forward(*head->output(), y);
    head->set_output_grad(aux.backward());
  }
  const Tensor<float> dx = net.backward(loss.backward());
  ASSERT_EQ(dx.shape(), input);
  for (float v : dx) ASSERT_TRUE(std::isfinite(v));
  for (const auto& p : net.named_parameters()) {
    if (!p.param->trainable) continue;
    ASSERT_TRUE(p.param->has_grad()) << p.name << " got no gradient";
    double norm = 0.0;
    for (float g : p.param->grad) {
      ASSERT_TRUE(std::isfinite(g)) << p.name;
      norm += static_cast<double>(g) * g;
    }
    EXPECT_GT(norm, 0.0) << p.name;
  }
}

TEST(ZooTraining, ResNet18ForwardAndBackwardAt32) {
  Rng rng = convkit::testing::seeded_rng(601);
  Sequential<float> net = convkit::models::resnet18<float>(rng, ModelOptions().num_classes(10).input_size(32));
  expect_finite_step(net, Shape{2, 3, 32, 32}, 10, rng);
}

TEST(ZooTraining, GoogLeNetWithAuxiliaryHeadsForwardAndBackwardAt32) {
  Rng rng = convkit::testing::seeded_rng(602);
  Sequential<float> net =
      convkit::models::googlenet<float>(rng, ModelOptions().num_classes(10).input_size(32).aux_logits(true));
  expect_finite_step(net, Shape{2, 3, 32, 32}, 10, rng);
  // In evaluation mode the heads do not run.
  net.eval();
  net.forward(random_images(Shape{1, 3, 32, 32}, rng));
  for (auto* head : convkit::find_layers<convkit::AuxiliaryHead<float>>(net)) EXPECT_EQ(head->output(), nullptr);
}

// ---------------------------------------------------------------------------------------------
// Tiny networks learn

std::unique_ptr<Sequential<float>> conv_bn_relu(Rng& rng, Index in, Index out, Index k, Index stride = 1) {
  auto s = std::make_unique<Sequential<float>>();
  s->add("conv", std::make_unique<Conv2d<float>>(Conv2dOptions(in, out, k).stride(stride).padding(k / 2).bias(false), rng));
  s->add("bn", std::make_unique<BatchNorm2d<float>>(out));
  s->add("relu", std::make_unique<ReLU<float>>());
  return s;
}

Sequential<float> tiny_resnet(Rng& rng) {
  Sequential<float> net;
  net.add("stem", conv_bn_relu(rng, 3, 8, 3));
  auto identity = std::make_unique<Residual<float>>();
  identity->add("conv1", std::make_unique<Conv2d<float>>(Conv2dOptions(8, 8, 3).padding(1).bias(false), rng));
  identity->add("bn1", std::make_unique<BatchNorm2d<float>>(8));
  identity->add("relu", std::make_unique<ReLU<float>>());
  identity->add("conv2", std::make_unique<Conv2d<float>>(Conv2dOptions(8, 8, 3).padding(1).bias(false), rng));
  identity->add("bn2", std::make_unique<BatchNorm2d<float>>(8));
  identity->set_activation(std::make_unique<ReLU<float>>());
  net.add("block1", std::move(identity));
  auto down = std::make_unique<Residual<float>>();
  down->add("conv1", std::make_unique<Conv2d<float>>(Conv2dOptions(8, 16, 3).stride(2).padding(1).bias(false), rng));
  down->add("bn1", std::make_unique<BatchNorm2d<float>>(16));
  auto proj = std::make_unique<Sequential<float>>();
  proj->add(std::make_unique<Conv2d<float>>(Conv2dOptions(8, 16, 1).stride(2).bias(false), rng));
  proj->add(std::make_unique<BatchNorm2d<float>>(16));
  down->set_shortcut("downsample", std::move(proj));
  down->set_activation(std::make_unique<ReLU<float>>());
  net.add("block2", std::move(down));
  net.add("pool", std::make_unique<convkit::GlobalAvgPool2d<float>>());
  net.add("flatten", std::make_unique<convkit::Flatten<float>>());
  net.add("fc", std::make_unique<FullyConnected<float>>(convkit::FullyConnectedOptions(16, 4), rng));
  return net;
}

Sequential<float> tiny_inception(Rng& rng) {
  Sequential<float> net;
  net.add("stem", conv_bn_relu(rng, 3, 8, 3));
  auto m = std::make_unique<Concat<float>>();
  m->add("branch1", conv_bn_relu(rng, 8, 4, 1));
  auto b2 = std::make_unique<Sequential<float>>();
  b2->add(conv_bn_relu(rng, 8, 4, 1));
  b2->add(conv_bn_relu(rng, 4, 6, 3));
  m->add("branch2", std::move(b2));
  auto b4 = std::make_unique<Sequential<float>>();
  b4->add(std::make_unique<convkit::MaxPool2d<float>>(convkit::Pool2dOptions(3).stride(1).padding(1)));
  b4->add(conv_bn_relu(rng, 8, 2, 1));
  m->add("branch4", std::move(b4));
  net.add("inception", std::move(m));
  net.add("pool", std::make_unique<convkit::GlobalAvgPool2d<float>>());
  net.add("flatten", std::make_unique<convkit::Flatten<float>>());
  net.add("fc", std::make_unique<FullyConnected<float>>(convkit::FullyConnectedOptions(12, 4), rng));
  return net;
}

/// Loss of the fixed batch before and after `steps` SGD steps on it.
std::pair<double, double> fit(Sequential<float>& net, int steps, Rng& rng) {
  const Tensor<float> x = random_images(Shape{16, 3, 8, 8}, rng);
  const std::vector<Index> y = random_labels(16, 4, rng);
  SGD<float> opt(net.named_parameters(), SgdOptions(0.05).momentum(0.9));
  SoftmaxCrossEntropy<float> loss;
  double first = 0.0, last = 0.0;
  for (int s = 0; s < steps; ++s) {
    opt.zero_grad();
    last = loss.forward(net.forward(x), y);
    if (s == 0) first = last;
    net.backward(loss.backward());
    opt.step();
  }
  return {first, last};
}

TEST(ZooTraining, TinyResNetFitsABatch) {
  Rng rng = convkit::testing::seeded_rng(603);
  Sequential<float> net = tiny_resnet(rng);
  const auto [first, last] = fit(net, 30, rng);
  EXPECT_LT(last, 0.75 * first) << "loss " << first << " -> " << last;
}

TEST(ZooTraining, TinyInceptionNetFitsABatch) {
  Rng rng = convkit::testing::seeded_rng(604);
  Sequential<float> net = tiny_inception(rng);
  const auto [first, last] = fit(net, 30, rng);
  EXPECT_LT(last, 0.75 * first) << "loss " << first << " -> " << last;
}

// ---------------------------------------------------------------------------------------------
// The trainer and auxiliary heads

TEST(ZooTraining, TrainEpochAddsWeightedAuxiliaryLosses) {
  // A linear model with one auxiliary head: one step on one batch reports main + 0.3·aux as
  // its loss, and the head's parameters move (their gradient reached the optimiser).
  Rng rng = convkit::testing::seeded_rng(605);
  auto make = [](Rng& r) {
    Sequential<float> net;
    net.add("flatten", std::make_unique<convkit::Flatten<float>>());
    net.add("fc1", std::make_unique<FullyConnected<float>>(convkit::FullyConnectedOptions(4, 6), r));
    auto head = std::make_unique<Sequential<float>>();
    head->add("fc", std::make_unique<FullyConnected<float>>(convkit::FullyConnectedOptions(6, 3), r));
    net.add("aux", std::make_unique<convkit::AuxiliaryHead<float>>(std::move(head), 0.3));
    net.add("fc2", std::make_unique<FullyConnected<float>>(convkit::FullyConnectedOptions(6, 3), r));
    return net;
  };
  convkit::data::Dataset<float> data;
  data.images = random_images(Shape{8, 1, 2, 2}, rng);
  data.labels = random_labels(8, 3, rng);
  data.num_classes = 3;

  Rng init(7);
  Sequential<float> net = make(init);
  // The expected loss, computed by hand on the same (unshuffled, single) batch.
  Rng init2(7);
  Sequential<float> ref = make(init2);
  const Tensor<float> logits = ref.forward(data.images);
  auto& head = dynamic_cast<convkit::AuxiliaryHead<float>&>(ref.child("aux"));
  SoftmaxCrossEntropy<float> ce, ce_aux;
  const double expected = ce.forward(logits, data.labels) + 0.3 * ce_aux.forward(*head.output(), data.labels);

  SGD<float> opt(net.named_parameters(), SgdOptions(0.1));
  convkit::data::Batcher batcher(8, 8, /*shuffle=*/false);
  Rng shuffle(0);
  const Tensor<float> head_w = dynamic_cast<convkit::AuxiliaryHead<float>&>(net.child("aux")).head().parameters()[0]->value;
  const convkit::EpochStats stats = convkit::train_epoch(net, opt, data, batcher, shuffle);
  EXPECT_NEAR(stats.loss, expected, 1e-5);
  const Tensor<float>& after = dynamic_cast<convkit::AuxiliaryHead<float>&>(net.child("aux")).head().parameters()[0]->value;
  double moved = 0.0;
  for (Index i = 0; i < after.numel(); ++i) moved += std::abs(after[i] - head_w[i]);
  EXPECT_GT(moved, 0.0);
}

}  // namespace
