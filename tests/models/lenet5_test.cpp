// LeNet-5 builder: parameter count and names, the output shape of every child, one
// forward/backward step, the 28x28 error at f5, seeded initialisation, other class counts.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <convkit/losses/softmax_cross_entropy.h>
#include <convkit/models/lenet5.h>

#include "support/expect.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::Index;
using convkit::Parameter;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::Tensor;
using convkit::models::lenet5;

template <typename T>
class LeNet5 : public ::testing::Test {};
TYPED_TEST_SUITE(LeNet5, convkit::testing::Scalars);

TYPED_TEST(LeNet5, ParameterCountAndNames) {
  Rng rng = convkit::testing::seeded_rng(401);
  Sequential<TypeParam> net = lenet5<TypeParam>(rng);
  EXPECT_EQ(net.parameter_count(), 61706);
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  for (const auto& p : net.named_parameters()) {
    names.push_back(p.name);
    shapes.push_back(p.param->value.shape());
    EXPECT_TRUE(p.param->trainable) << p.name;
    EXPECT_FALSE(p.param->has_grad()) << p.name;  // allocated by the first backward
  }
  EXPECT_EQ(names, (std::vector<std::string>{"c1.weight", "c1.bias", "c3.weight", "c3.bias", "f5.weight", "f5.bias",
                                             "f6.weight", "f6.bias", "output.weight", "output.bias"}));
  EXPECT_EQ(shapes, (std::vector<Shape>{Shape{6, 1, 5, 5}, Shape{6}, Shape{16, 6, 5, 5}, Shape{16}, Shape{120, 400},
                                        Shape{120}, Shape{84, 120}, Shape{84}, Shape{10, 84}, Shape{10}}));
}

TYPED_TEST(LeNet5, OutputShapeOfEveryChild) {
  Rng rng = convkit::testing::seeded_rng(402);
  Sequential<TypeParam> net = lenet5<TypeParam>(rng);
  const std::vector<std::pair<std::string, Shape>> expected = {
      {"c1", Shape{2, 6, 28, 28}},  {"relu1", Shape{2, 6, 28, 28}}, {"s2", Shape{2, 6, 14, 14}},
      {"c3", Shape{2, 16, 10, 10}}, {"relu3", Shape{2, 16, 10, 10}}, {"s4", Shape{2, 16, 5, 5}},
      {"flatten", Shape{2, 400}},   {"f5", Shape{2, 120}},           {"relu5", Shape{2, 120}},
      {"f6", Shape{2, 84}},         {"relu6", Shape{2, 84}},         {"output", Shape{2, 10}},
  };
  ASSERT_EQ(net.size(), static_cast<Index>(expected.size()));
  Shape s{2, 1, 32, 32};
  for (Index i = 0; i < net.size(); ++i) {
    EXPECT_EQ(net.name(i), expected[static_cast<std::size_t>(i)].first);
    s = net[i].output_shape(s);
    EXPECT_EQ(s, expected[static_cast<std::size_t>(i)].second) << net.name(i);
  }
  EXPECT_EQ(net.output_shape(Shape{2, 1, 32, 32}), (Shape{2, 10}));
  EXPECT_EQ(net.child("c1").describe(), "Conv2d(1->6, k=5x5, s=1, p=0)");
  EXPECT_EQ(net.child("s2").describe(), "MaxPool2d(k=2x2, s=2, p=0)");
  EXPECT_EQ(net.child("output").describe(), "FullyConnected(84->10)");

  // the real forward gives the same shape
  Tensor<TypeParam> x(Shape{2, 1, 32, 32});
  for (TypeParam& v : x) v = static_cast<TypeParam>(rng.uniform());
  EXPECT_EQ(net.forward(x).shape(), (Shape{2, 10}));
}

TYPED_TEST(LeNet5, ForwardBackwardStep) {
  using T = TypeParam;
  Rng rng = convkit::testing::seeded_rng(403);
  Sequential<T> net = lenet5<T>(rng);
  Tensor<T> x(Shape{4, 1, 32, 32});
  for (T& v : x) v = static_cast<T>(rng.uniform());
  const std::vector<Index> labels = {0, 3, 9, 3};
  convkit::SoftmaxCrossEntropy<T> loss;
  net.zero_grad();
  const Tensor<T> logits = net.forward(x);
  const double l = static_cast<double>(loss.forward(logits, labels));
  EXPECT_TRUE(std::isfinite(l));
  // freshly initialised: near ln(10), the loss of a uniform guess
  EXPECT_GT(l, 1.5);
  EXPECT_LT(l, 3.5);
  const Tensor<T> dx = net.backward(loss.backward());
  EXPECT_EQ(dx.shape(), x.shape());
  for (const auto& p : net.named_parameters()) {
    double norm = 0.0;
    for (T g : p.param->grad) {
      ASSERT_TRUE(std::isfinite(static_cast<double>(g))) << p.name;
      norm += std::abs(static_cast<double>(g));
    }
    EXPECT_GT(norm, 0.0) << p.name << " received no gradient";
  }
  // The output bias gradient is the mean over the batch of softmax − onehot: it sums to 0.
  auto& out = dynamic_cast<convkit::FullyConnected<T>&>(net.child("output"));
  double sum = 0.0;
  for (T g : out.bias().grad) sum += static_cast<double>(g);
  EXPECT_NEAR(sum, 0.0, 1e-5);
}

TEST(LeNet5Builder, Input28x28IsShapeErrorAtF5) {
  Rng rng = convkit::testing::seeded_rng(404);
  Sequential<float> net = lenet5<float>(rng);
  const std::string msg = message_of<ShapeError>([&] { net.output_shape(Shape{2, 1, 28, 28}); });
  EXPECT_EQ(msg.rfind("f5: FullyConnected(400->120): expected input (N, 400)", 0), 0u) << msg;
  EXPECT_NE(msg.find("got (2, 256)"), std::string::npos) << msg;
  Tensor<float> x(Shape{2, 1, 28, 28});
  const std::string fmsg = message_of<ShapeError>([&] { net.forward(x); });
  EXPECT_EQ(fmsg.rfind("f5: FullyConnected(400->120)", 0), 0u) << fmsg;
  // three channels fail at c1
  const std::string cmsg = message_of<ShapeError>([&] { net.output_shape(Shape{1, 3, 32, 32}); });
  EXPECT_EQ(cmsg.rfind("c1: Conv2d(1->6, k=5x5, s=1, p=0): expected input (N, 1, H, W)", 0), 0u) << cmsg;
}

TEST(LeNet5Builder, SameSeedSameWeightsOtherSeedOtherWeights) {
  Rng a(7), b(7), c(8);
  Sequential<float> na = lenet5<float>(a), nb = lenet5<float>(b), nc = lenet5<float>(c);
  const auto pa = na.parameters(), pb = nb.parameters(), pc = nc.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (std::size_t k = 0; k < pa.size(); ++k)
    for (Index i = 0; i < pa[k]->value.numel(); ++i) {
      ASSERT_EQ(pa[k]->value[i], pb[k]->value[i]) << pa[k]->name << "[" << i << "]";
      any_differs = any_differs || pa[k]->value[i] != pc[k]->value[i];
    }
  EXPECT_TRUE(any_differs);
  // PyTorch's default initialisation: |w| <= 1/sqrt(fan_in), here fan_in(c1) = 25
  for (float v : pa[0]->value) EXPECT_LE(std::abs(v), 0.2f);
  for (float v : pa[4]->value) EXPECT_LE(std::abs(v), 0.05f);  // f5: fan_in 400
}

TEST(LeNet5Builder, ClassesAndChannels) {
  Rng rng = convkit::testing::seeded_rng(405);
  Sequential<double> net = lenet5<double>(rng, 4, 3);
  EXPECT_EQ(net.output_shape(Shape{5, 3, 32, 32}), (Shape{5, 4}));
  EXPECT_EQ(net.parameter_count(), 61706 - 156 + (3 * 25 * 6 + 6) - 850 + (84 * 4 + 4));
  EXPECT_THROW(lenet5<float>(rng, 0), convkit::ValueError);
}

}  // namespace
