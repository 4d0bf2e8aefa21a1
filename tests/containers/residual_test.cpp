// Residual: y = activation(body(x) + shortcut(x)) against its parts, gradient checks for the
// identity and projection shortcuts and with an activation, torchvision's parameter paths,
// the shape-mismatch error naming both shapes, add()/set_shortcut() errors, training-mode
// propagation to BatchNorm2d, set_needs_input_grad(false) and describe().
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <convkit/containers/residual.h>
#include <convkit/containers/sequential.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/relu.h>
#include <convkit/layers/tanh.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;
using convkit::testing::starts_with;

using convkit::BatchNorm2d;
using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Index;
using convkit::Layer;
using convkit::ReLU;
using convkit::Residual;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tanh;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_away_from_zero;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// Body conv1 (c->c, k3, p1) -> Tanh -> conv2 (c->c, k3, p1): keeps the shape.
template <typename T>
Residual<T> identity_block(Index c, Rng& rng) {
  Residual<T> r;
  r.add("conv1", std::make_unique<Conv2d<T>>(Conv2dOptions(c, c, 3).padding(1), rng));
  r.add("act", std::make_unique<Tanh<T>>());
  r.add("conv2", std::make_unique<Conv2d<T>>(Conv2dOptions(c, c, 3).padding(1), rng));
  return r;
}

/// Body conv1 (2->4, k3, s2, p1) -> bn1 -> Tanh -> conv2 (4->4, k3, p1); shortcut
/// "downsample" = conv (2->4, k1, s2) -> BatchNorm2d(4), as a torchvision BasicBlock.
template <typename T>
Residual<T> projection_block(Rng& rng) {
  Residual<T> r;
  r.add("conv1", std::make_unique<Conv2d<T>>(Conv2dOptions(2, 4, 3).stride(2).padding(1), rng));
  r.add("bn1", std::make_unique<BatchNorm2d<T>>(4));
  r.add("act", std::make_unique<Tanh<T>>());
  r.add("conv2", std::make_unique<Conv2d<T>>(Conv2dOptions(4, 4, 3).padding(1), rng));
  auto down = std::make_unique<Sequential<T>>();
  down->add(std::make_unique<Conv2d<T>>(Conv2dOptions(2, 4, 1).stride(2), rng));
  down->add(std::make_unique<BatchNorm2d<T>>(4));
  r.set_shortcut("downsample", std::move(down));
  return r;
}

TEST(Residual, IdentityShortcutAddsTheInputExactly) {
  Rng rng = seeded_rng(601);
  Residual<double> r = identity_block<double>(3, rng);
  EXPECT_FALSE(r.has_projection());
  const Tensor<double> x = random_normal(Shape{2, 3, 4, 5}, rng);
  const Tensor<double> y = r.forward(x);
  const Tensor<double> b = r.body().forward(x);
  ASSERT_EQ(y.shape(), x.shape());
  for (Index i = 0; i < y.numel(); ++i) ASSERT_EQ(y[i], b[i] + x[i]) << "at " << i;
  EXPECT_EQ(r.output_shape(x.shape()), x.shape());
}

TEST(Residual, ProjectionShortcutAddsItsOutput) {
  Rng rng = seeded_rng(602);
  Residual<double> r = projection_block<double>(rng);
  EXPECT_TRUE(r.has_projection());
  const Tensor<double> x = random_normal(Shape{2, 2, 6, 5}, rng);
  EXPECT_EQ(r.output_shape(x.shape()), (Shape{2, 4, 3, 3}));
  const Tensor<double> y = r.forward(x);
  // In training the batch-norm outputs depend on the batch only, so re-running gives the same.
  const Tensor<double> b = r.body().forward(x);
  const Tensor<double> s = r.shortcut().forward(x);
  ASSERT_EQ(y.shape(), (Shape{2, 4, 3, 3}));
  for (Index i = 0; i < y.numel(); ++i) ASSERT_EQ(y[i], b[i] + s[i]) << "at " << i;
}

TEST(Residual, ActivationAppliesAfterTheSum) {
  Rng rng = seeded_rng(603);
  Residual<double> r = identity_block<double>(2, rng);
  r.set_activation(std::make_unique<ReLU<double>>());
  const Tensor<double> x = random_normal(Shape{2, 2, 3, 3}, rng);
  const Tensor<double> y = r.forward(x);
  const Tensor<double> b = r.body().forward(x);
  Index zeros = 0, positive = 0;
  for (Index i = 0; i < y.numel(); ++i) {
    ASSERT_EQ(y[i], std::max(0.0, b[i] + x[i])) << "at " << i;
    (y[i] == 0.0 ? zeros : positive) += 1;
  }
  EXPECT_GT(zeros, 0);  // the ReLU clipped something: the sum, not just the body, went through it
  EXPECT_GT(positive, 0);
}

TEST(Residual, GradcheckIdentityShortcut) {
  Rng rng = seeded_rng(604);
  Residual<double> r = identity_block<double>(2, rng);
  EXPECT_TRUE(gradcheck_layer(r, random_normal(Shape{2, 2, 3, 4}, rng), rng));
}

TEST(Residual, GradcheckProjectionShortcut) {
  Rng rng = seeded_rng(605);
  Residual<double> r = projection_block<double>(rng);
  EXPECT_TRUE(gradcheck_layer(r, random_normal(Shape{2, 2, 4, 4}, rng), rng));
}

TEST(Residual, GradcheckWithTanhAndWithReluAfterTheSum) {
  Rng rng = seeded_rng(606);
  Residual<double> with_tanh = projection_block<double>(rng);
  with_tanh.set_activation(std::make_unique<Tanh<double>>());
  EXPECT_TRUE(gradcheck_layer(with_tanh, random_normal(Shape{2, 2, 4, 4}, rng), rng));

  // ReLU's kink is at body(x) + x = 0: check that no sum is near it before the gradient check.
  Residual<double> with_relu = identity_block<double>(2, rng);
  with_relu.set_activation(std::make_unique<ReLU<double>>());
  const Tensor<double> x = random_away_from_zero(Shape{2, 2, 3, 3}, rng, 0.1);
  const Tensor<double> b = with_relu.body().forward(x);
  double closest = 1e9;
  Index clipped = 0;
  for (Index i = 0; i < x.numel(); ++i) {
    closest = std::min(closest, std::abs(b[i] + x[i]));
    if (b[i] + x[i] < 0) ++clipped;
  }
  ASSERT_GT(closest, 1e-3) << "choose another seed: a sum sits near the ReLU kink";
  EXPECT_GT(clipped, 0);
  EXPECT_TRUE(gradcheck_layer(with_relu, x, rng));
}

TEST(Residual, ParameterPathsFollowTorchvision) {
  Rng rng = seeded_rng(607);
  auto layer1 = std::make_unique<Sequential<float>>();
  layer1->add(std::make_unique<Residual<float>>(projection_block<float>(rng)));
  Sequential<float> net;
  net.add("layer1", std::move(layer1));
  std::vector<std::string> names;
  for (const auto& p : net.named_parameters()) names.push_back(p.name);
  const std::vector<std::string> expected = {
      "layer1.0.conv1.weight",           "layer1.0.conv1.bias",          "layer1.0.bn1.weight",
      "layer1.0.bn1.bias",               "layer1.0.bn1.running_mean",    "layer1.0.bn1.running_var",
      "layer1.0.conv2.weight",           "layer1.0.conv2.bias",          "layer1.0.downsample.0.weight",
      "layer1.0.downsample.0.bias",      "layer1.0.downsample.1.weight", "layer1.0.downsample.1.bias",
      "layer1.0.downsample.1.running_mean", "layer1.0.downsample.1.running_var"};
  EXPECT_EQ(names, expected);
  Residual<float> r = projection_block<float>(rng);
  std::vector<std::string> own;
  for (const auto& p : r.named_parameters()) own.push_back(p.name);
  EXPECT_EQ(own.front(), "conv1.weight");
  EXPECT_EQ(own[8], "downsample.0.weight");
  auto& conv1 = dynamic_cast<Conv2d<float>&>(r.body().child("conv1"));
  EXPECT_EQ(r.parameters()[0], &conv1.weight());
  // conv1 2·4·9 + 4, bn1 8, conv2 4·4·9 + 4, downsample conv 2·4 + 4 and bn 8
  EXPECT_EQ(r.parameter_count(), 76 + 8 + 148 + 12 + 8);
  EXPECT_EQ(r.buffer_count(), 16);
  // an activation's parameters (none for ReLU) would sit under "activation."
  r.set_activation(std::make_unique<ReLU<float>>());
  EXPECT_EQ(r.named_parameters().size(), own.size());
}

TEST(Residual, ShapeMismatchNamesBothShapes) {
  Residual<float> r;
  r.add("conv1", std::make_unique<Conv2d<float>>(Conv2dOptions(2, 4, 3).padding(1)));
  const std::string msg = message_of<ShapeError>([&] { r.output_shape(Shape{1, 2, 5, 5}); });
  EXPECT_TRUE(starts_with(msg, "Residual(1 layers + identity): expected the body and the shortcut to give one shape"))
      << msg;
  EXPECT_TRUE(contains(msg, "got body (1, 4, 5, 5) and identity shortcut (1, 2, 5, 5)")) << msg;
  EXPECT_EQ(message_of<ShapeError>([&] { r.forward(Tensor<float>(Shape{1, 2, 5, 5})); }), msg);

  r.set_shortcut("proj", std::make_unique<Conv2d<float>>(Conv2dOptions(2, 4, 1).stride(2)));
  const std::string pmsg = message_of<ShapeError>([&] { r.output_shape(Shape{1, 2, 5, 5}); });
  EXPECT_TRUE(contains(pmsg, "got body (1, 4, 5, 5) and proj (1, 4, 3, 3)")) << pmsg;

  // a body layer or the shortcut rejecting the input is named
  const std::string body = message_of<ShapeError>([&] { r.output_shape(Shape{1, 3, 5, 5}); });
  EXPECT_TRUE(starts_with(body, "conv1: Conv2d(2->4, k=3x3, s=1, p=1): expected input (N, 2, H, W)")) << body;
}

TEST(Residual, AddAndSetShortcutErrors) {
  Residual<float> r;
  const std::string null_body = message_of<ValueError>([&] { r.add("conv1", nullptr); });
  EXPECT_TRUE(contains(null_body, "expected a layer, got nullptr for 'conv1'")) << null_body;
  r.add("conv1", std::make_unique<ReLU<float>>());
  EXPECT_TRUE(contains(message_of<ValueError>([&] { r.add("conv1", std::make_unique<ReLU<float>>()); }),
                       "already named 'conv1'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { r.set_shortcut("s", nullptr); }),
                       "Residual::set_shortcut: expected a layer, got nullptr"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { r.set_shortcut("conv1", std::make_unique<ReLU<float>>()); }),
                       "Residual::set_shortcut: a body layer is already named 'conv1'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { r.set_shortcut("a.b", std::make_unique<ReLU<float>>()); }),
                       "Residual::set_shortcut: expected a non-empty name without '.', got 'a.b'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { r.set_shortcut("", std::make_unique<ReLU<float>>()); }),
                       "got ''"));
  EXPECT_FALSE(r.has_projection());  // failed calls change nothing
  EXPECT_TRUE(contains(message_of<StateError>([&] { r.shortcut(); }), "the shortcut is the identity"));

  r.set_shortcut("downsample", std::make_unique<ReLU<float>>());
  EXPECT_TRUE(contains(message_of<ValueError>([&] { r.add("downsample", std::make_unique<ReLU<float>>()); }),
                       "Residual::add: the shortcut is already named 'downsample'"));
  EXPECT_EQ(r.body().size(), 1);
  EXPECT_TRUE(contains(message_of<ValueError>([&] { r.set_activation(nullptr); }),
                       "Residual::set_activation: expected a layer, got nullptr"));
}

TEST(Residual, SetTrainingPropagatesToBatchNormInBodyAndShortcut) {
  Rng rng = seeded_rng(608);
  Residual<double> r = projection_block<double>(rng);
  r.set_activation(std::make_unique<ReLU<double>>());
  auto& bn1 = dynamic_cast<BatchNorm2d<double>&>(r.body().child("bn1"));
  auto& down = dynamic_cast<Sequential<double>&>(r.shortcut());
  auto& bn_down = dynamic_cast<BatchNorm2d<double>&>(down[1]);
  const Tensor<double> x = random_normal(Shape{2, 2, 4, 4}, rng);

  r.forward(x);  // training: both update their running statistics
  EXPECT_NE(bn1.running_mean().value[0], 0.0);
  EXPECT_NE(bn_down.running_mean().value[0], 0.0);

  r.eval();
  EXPECT_FALSE(r.is_training());
  EXPECT_FALSE(bn1.is_training());
  EXPECT_FALSE(bn_down.is_training());
  EXPECT_FALSE(down.is_training());
  const Tensor<double> m1 = bn1.running_mean().value, m2 = bn_down.running_var().value;
  const Tensor<double> y1 = r.forward(x);
  const Tensor<double> y2 = r.forward(x);
  for (Index c = 0; c < 4; ++c) {
    EXPECT_EQ(bn1.running_mean().value[c], m1[c]);  // evaluation leaves them alone
    EXPECT_EQ(bn_down.running_var().value[c], m2[c]);
  }
  for (Index i = 0; i < y1.numel(); ++i) EXPECT_EQ(y1[i], y2[i]);

  r.train();
  EXPECT_TRUE(bn1.is_training());
  EXPECT_TRUE(bn_down.is_training());
  r.forward(x);
  EXPECT_NE(bn1.running_mean().value[0], m1[0]);

  // A shortcut, activation or body layer added to an evaluating block evaluates too.
  Residual<double> late;
  late.eval();
  late.add("bn", std::make_unique<BatchNorm2d<double>>(2));
  late.set_shortcut("proj", std::make_unique<BatchNorm2d<double>>(2));
  late.set_activation(std::make_unique<ReLU<double>>());
  EXPECT_FALSE(late.body().child("bn").is_training());
  EXPECT_FALSE(late.shortcut().is_training());
}

TEST(Residual, NoInputGradientStillGivesTheSameParameterGradients) {
  Rng rng_a = seeded_rng(609), rng_b(609);
  Residual<double> with = projection_block<double>(rng_a);
  Residual<double> without = projection_block<double>(rng_b);
  without.set_needs_input_grad(false);
  EXPECT_FALSE(without.body()[0].needs_input_grad());
  EXPECT_FALSE(without.shortcut().needs_input_grad());
  Rng data = seeded_rng(610);
  const Tensor<double> x = random_normal(Shape{2, 2, 4, 4}, data);
  const Tensor<double> g = random_normal(Shape{2, 4, 2, 2}, data);
  with.forward(x);
  without.forward(x);
  EXPECT_EQ(with.backward(g).shape(), x.shape());
  EXPECT_EQ(without.backward(g).numel(), 0);
  const auto pa = with.parameters(), pb = without.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t k = 0; k < pa.size(); ++k) {
    if (!pa[k]->trainable) continue;
    ASSERT_TRUE(pb[k]->has_grad()) << pb[k]->name;
    for (Index i = 0; i < pa[k]->grad.numel(); ++i) EXPECT_EQ(pa[k]->grad[i], pb[k]->grad[i]) << pa[k]->name;
  }
}

TEST(Residual, IdentityBackwardAddsTheGradientItself) {
  // body = one 1x1 convolution with weight w and no bias: y = (w + 1) x, dx = (w + 1) g.
  Residual<double> r;
  auto& conv = dynamic_cast<Conv2d<double>&>(
      r.add(std::make_unique<Conv2d<double>>(Conv2dOptions(1, 1, 1).bias(false))).body()[0]);
  conv.weight().value[0] = 0.25;
  Tensor<double> x(Shape{1, 1, 1, 3});
  x[0] = 1, x[1] = -2, x[2] = 4;
  const Tensor<double> y = r.forward(x);
  EXPECT_DOUBLE_EQ(y[1], -2.5);
  Tensor<double> g(Shape{1, 1, 1, 3}, 2.0);
  const Tensor<double> dx = r.backward(g);
  for (Index i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(dx[i], 2.5);
  EXPECT_DOUBLE_EQ(conv.weight().grad[0], 2.0 * (1 - 2 + 4));
}

TEST(Residual, Describe) {
  Rng rng = seeded_rng(611);
  Residual<float> r = projection_block<float>(rng);
  EXPECT_EQ(r.describe(), "Residual(4 layers + downsample)");
  r.set_activation(std::make_unique<ReLU<float>>());
  EXPECT_EQ(r.describe(), "Residual(4 layers + downsample, then ReLU)");
  EXPECT_EQ(identity_block<float>(2, rng).describe(), "Residual(3 layers + identity)");
}

}  // namespace
