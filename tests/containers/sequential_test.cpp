// Sequential: gradient check through a small conv net, dotted parameter names and order,
// zero_grad, train/eval propagation, error prefixes with the child's path, summary() with
// the LeNet-5 totals, set_needs_input_grad(false), and add()'s errors with their messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/containers/sequential.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/dropout.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/max_pool2d.h>
#include <convkit/layers/relu.h>
#include <convkit/layers/tanh.h>
#include <convkit/models/lenet5.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;
using convkit::testing::starts_with;

using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Dropout;
using convkit::Flatten;
using convkit::FullyConnected;
using convkit::FullyConnectedOptions;
using convkit::Index;
using convkit::Layer;
using convkit::MaxPool2d;
using convkit::NamedParameter;
using convkit::Parameter;
using convkit::ReLU;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::Tanh;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// Conv2d(2->3, k3) -> Tanh -> MaxPool2d(2) -> Flatten -> FC(12 -> 4), for (N, 2, 6, 6) inputs.
template <typename T>
Sequential<T> small_net(Rng& rng) {
  Sequential<T> net;
  net.add(std::make_unique<Conv2d<T>>(Conv2dOptions(2, 3, 3), rng));
  net.add(std::make_unique<Tanh<T>>());
  net.add(std::make_unique<MaxPool2d<T>>(2));
  net.add(std::make_unique<Flatten<T>>());
  net.add(std::make_unique<FullyConnected<T>>(FullyConnectedOptions(12, 4), rng));
  return net;
}

TEST(Sequential, GradcheckThroughSmallConvNet) {
  Rng rng = seeded_rng(101);
  Sequential<double> net = small_net<double>(rng);
  const Tensor<double> x = random_normal(Shape{2, 2, 6, 6}, rng);
  EXPECT_EQ(net.output_shape(x.shape()), (Shape{2, 4}));
  EXPECT_TRUE(gradcheck_layer(net, x, rng));
}

TEST(Sequential, GradcheckWithReluAwayFromKinks) {
  // Conv2d -> MaxPool2d -> ReLU -> Flatten -> FC with a 1x1 convolution of positive weight
  // on distinct inputs: no pooling ties, and the inputs of the ReLU are away from 0.
  Rng rng = seeded_rng(102);
  Sequential<double> net;
  auto& conv = net.emplace<Conv2d<double>>(Conv2dOptions(1, 1, 1), rng);
  conv.weight().value[0] = 1.5;
  conv.bias().value[0] = 0.013;  // keeps conv outputs off the 0 kink (inputs are multiples of 0.02)
  net.emplace<MaxPool2d<double>>(2);
  net.emplace<ReLU<double>>();
  net.emplace<Flatten<double>>();
  net.emplace<FullyConnected<double>>(FullyConnectedOptions(4, 3), rng);
  const Tensor<double> x = convkit::testing::random_distinct(Shape{2, 1, 4, 4}, rng, 0.02);
  EXPECT_TRUE(gradcheck_layer(net, x, rng));
}

TEST(Sequential, ForwardEqualsChildrenAppliedInOrder) {
  Rng rng = seeded_rng(103);
  Sequential<double> net = small_net<double>(rng);
  const Tensor<double> x = random_normal(Shape{3, 2, 6, 6}, rng);
  Tensor<double> h = x;
  for (Index i = 0; i < net.size(); ++i) h = net[i].forward(h);
  const Tensor<double> y = net.forward(x);
  ASSERT_EQ(y.shape(), h.shape());
  for (Index i = 0; i < y.numel(); ++i) EXPECT_EQ(y[i], h[i]) << "at " << i;
}

TEST(Sequential, NamedParametersAreDottedPathsInOrder) {
  Rng rng = seeded_rng(104);
  Sequential<float> net = small_net<float>(rng);
  const std::vector<NamedParameter<float>> named = net.named_parameters();
  const std::vector<std::string> expected = {"0.weight", "0.bias", "4.weight", "4.bias"};
  ASSERT_EQ(named.size(), expected.size());
  for (std::size_t i = 0; i < named.size(); ++i) EXPECT_EQ(named[i].name, expected[i]);

  auto& conv = dynamic_cast<Conv2d<float>&>(net[0]);
  auto& fc = dynamic_cast<FullyConnected<float>&>(net[4]);
  const std::vector<Parameter<float>*> params = net.parameters();
  ASSERT_EQ(params.size(), 4u);
  EXPECT_EQ(params[0], &conv.weight());
  EXPECT_EQ(params[1], &conv.bias());
  EXPECT_EQ(params[2], &fc.weight());
  EXPECT_EQ(params[3], &fc.bias());
  for (std::size_t i = 0; i < named.size(); ++i) EXPECT_EQ(named[i].param, params[i]);
  EXPECT_EQ(net.parameter_count(), 3 * 2 * 9 + 3 + 4 * 12 + 4);
}

TEST(Sequential, NamedChildrenAndNestedContainers) {
  Rng rng = seeded_rng(105);
  auto features = std::make_unique<Sequential<float>>();
  features->add("c1", std::make_unique<Conv2d<float>>(Conv2dOptions(1, 2, 3), rng));
  features->add("act", std::make_unique<ReLU<float>>());
  Sequential<float> net;
  net.add("features", std::move(features));
  net.add("flatten", std::make_unique<Flatten<float>>());
  net.add(std::make_unique<FullyConnected<float>>(FullyConnectedOptions(8, 3), rng));

  std::vector<std::string> names;
  for (const auto& p : net.named_parameters()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"features.c1.weight", "features.c1.bias", "2.weight", "2.bias"}));
  EXPECT_EQ(net.name(0), "features");
  EXPECT_EQ(net.name(2), "2");
  EXPECT_EQ(net.child("flatten").describe(), "Flatten");
  EXPECT_EQ(net.size(), 3);
  EXPECT_EQ(net.output_shape(Shape{5, 1, 4, 4}), (Shape{5, 3}));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.child("nope"); }), "no child named 'nope'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net[3]; }), "index 3 is out of range for 3 children"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.name(-1); }), "index -1 is out of range"));
}

TEST(Sequential, ZeroGradClearsEveryChildsGradients) {
  Rng rng = seeded_rng(106);
  Sequential<double> net = small_net<double>(rng);
  const Tensor<double> x = random_normal(Shape{2, 2, 6, 6}, rng);
  const Tensor<double> y = net.forward(x);
  net.backward(random_normal(y.shape(), rng));
  double before = 0.0;
  for (Parameter<double>* p : net.parameters())
    for (double g : p->grad) before += std::abs(g);
  EXPECT_GT(before, 0.0);
  net.zero_grad();
  for (Parameter<double>* p : net.parameters())
    for (double g : p->grad) EXPECT_EQ(g, 0.0) << p->name;
}

TEST(Sequential, BackwardAccumulatesParameterGradients) {
  Rng rng = seeded_rng(107);
  Sequential<double> net = small_net<double>(rng);
  const Tensor<double> x = random_normal(Shape{2, 2, 6, 6}, rng);
  const Tensor<double> g = random_normal(Shape{2, 4}, rng);
  net.forward(x);
  net.backward(g);
  std::vector<Tensor<double>> once;
  for (Parameter<double>* p : net.parameters()) once.push_back(p->grad);
  net.forward(x);
  net.backward(g);
  const auto params = net.parameters();
  for (std::size_t k = 0; k < params.size(); ++k)
    for (Index i = 0; i < once[k].numel(); ++i) EXPECT_NEAR(params[k]->grad[i], 2 * once[k][i], 1e-12);
}

TEST(Sequential, TrainAndEvalPropagateToChildren) {
  Sequential<float> net;
  net.add("fc", std::make_unique<FullyConnected<float>>(4, 4));
  net.add("drop", std::make_unique<Dropout<float>>(0.5));
  EXPECT_TRUE(net.is_training());
  EXPECT_TRUE(net[1].is_training());

  net.eval();
  EXPECT_FALSE(net.is_training());
  for (Index i = 0; i < net.size(); ++i) EXPECT_FALSE(net[i].is_training()) << net.name(i);
  // A child added to an evaluating container evaluates too.
  net.add("late", std::make_unique<Dropout<float>>(0.5));
  EXPECT_FALSE(net[2].is_training());

  // In evaluation Dropout is the identity: the net equals its FC layer alone.
  Rng rng = seeded_rng(108);
  Tensor<float> x(Shape{3, 4});
  for (float& v : x) v = static_cast<float>(rng.normal());
  const Tensor<float> fc_only = net[0].forward(x);
  const Tensor<float> y = net.forward(x);
  for (Index i = 0; i < y.numel(); ++i) EXPECT_EQ(y[i], fc_only[i]);

  // In training, Dropout zeroes some outputs and doubles the rest.
  net.train();
  for (Index i = 0; i < net.size(); ++i) EXPECT_TRUE(net[i].is_training()) << net.name(i);
  Tensor<float> big(Shape{16, 4});
  for (float& v : big) v = static_cast<float>(rng.normal());
  const Tensor<float> ref = net[0].forward(big);
  const Tensor<float> yt = net.forward(big);
  Index zeros = 0, kept = 0;
  for (Index i = 0; i < yt.numel(); ++i) {
    if (yt[i] == 0.0f) {
      ++zeros;
    } else {
      ++kept;
      // two dropout layers: each kept value is scaled by 2 · 2
      EXPECT_FLOAT_EQ(yt[i], 4.0f * ref[i]);
    }
  }
  EXPECT_GT(zeros, 0);
  EXPECT_GT(kept, 0);
}

TEST(Sequential, OutputShapeErrorNamesTheChild) {
  Sequential<float> net;
  net.add("first", std::make_unique<Conv2d<float>>(Conv2dOptions(1, 3, 3)));
  net.add("second", std::make_unique<Conv2d<float>>(Conv2dOptions(3, 8, 3)));
  net.add("bad", std::make_unique<Conv2d<float>>(Conv2dOptions(3, 8, 3)));
  const std::string msg = message_of<ShapeError>([&] { net.output_shape(Shape{2, 1, 12, 12}); });
  EXPECT_TRUE(starts_with(msg, "bad: Conv2d(3->8, k=3x3, s=1, p=0): expected input (N, 3, H, W)")) << msg;
  EXPECT_TRUE(contains(msg, "got (2, 8, 8, 8)"));

  // forward reports the same error, before computing anything
  Tensor<float> x(Shape{2, 1, 12, 12});
  const std::string fmsg = message_of<ShapeError>([&] { net.forward(x); });
  EXPECT_TRUE(starts_with(fmsg, "bad: Conv2d(3->8, k=3x3, s=1, p=0): expected input (N, 3, H, W)")) << fmsg;

  // An index-named child is named by its index.
  Sequential<float> plain;
  plain.add(std::make_unique<Conv2d<float>>(Conv2dOptions(3, 8, 3)));
  const std::string pmsg = message_of<ShapeError>([&] { plain.output_shape(Shape{1, 1, 8, 8}); });
  EXPECT_TRUE(starts_with(pmsg, "0: Conv2d(3->8, k=3x3, s=1, p=0): expected input (N, 3, H, W)")) << pmsg;
  EXPECT_TRUE(contains(pmsg, "got (1, 1, 8, 8)"));
}

TEST(Sequential, BackwardErrorNamesTheChild) {
  Sequential<float> net;
  net.add("fc", std::make_unique<FullyConnected<float>>(4, 2));
  Tensor<float> g(Shape{1, 2});
  const std::string msg = message_of<convkit::StateError>([&] { net.backward(g); });
  // the container itself reports the missing forward
  EXPECT_TRUE(contains(msg, "backward called before forward")) << msg;
}

TEST(Sequential, SummaryListsShapesParametersAndMultiplyAdds) {
  Rng rng = seeded_rng(109);
  const Sequential<float> net = convkit::models::lenet5<float>(rng);
  const std::string s = net.summary(Shape{1, 1, 32, 32});

  std::istringstream lines(s);
  std::string line;
  std::vector<std::string> all;
  while (std::getline(lines, line)) all.push_back(line);
  auto row = [&](const std::string& name) -> std::string {
    for (const std::string& l : all)
      if (l.compare(0, name.size() + 1, name + " ") == 0) return l;
    ADD_FAILURE() << "no row for " << name << " in\n" << s;
    return "";
  };
  auto fields = [](const std::string& l) {
    std::vector<std::string> out;
    std::istringstream is(l);
    std::string w;
    while (is >> w) out.push_back(w);
    return out;
  };
  struct Expect {
    std::string name, shape;
    Index params, macs;
  };
  const std::vector<Expect> expected = {
      {"c1", "(1, 6, 28, 28)", 156, 117600},  {"relu1", "(1, 6, 28, 28)", 0, 0},
      {"s2", "(1, 6, 14, 14)", 0, 0},         {"c3", "(1, 16, 10, 10)", 2416, 240000},
      {"relu3", "(1, 16, 10, 10)", 0, 0},     {"s4", "(1, 16, 5, 5)", 0, 0},
      {"flatten", "(1, 400)", 0, 0},          {"f5", "(1, 120)", 48120, 48000},
      {"relu5", "(1, 120)", 0, 0},            {"f6", "(1, 84)", 10164, 10080},
      {"relu6", "(1, 84)", 0, 0},             {"output", "(1, 10)", 850, 840},
  };
  for (const Expect& e : expected) {
    const std::string l = row(e.name);
    EXPECT_TRUE(contains(l, e.shape)) << l;
    const auto f = fields(l);
    ASSERT_GE(f.size(), 2u);
    EXPECT_EQ(f[f.size() - 2], std::to_string(e.params)) << l;
    EXPECT_EQ(f[f.size() - 1], std::to_string(e.macs)) << l;
  }
  EXPECT_TRUE(contains(row("c1"), "Conv2d(1->6, k=5x5, s=1, p=0)"));
  EXPECT_TRUE(contains(row("f5"), "FullyConnected(400->120)"));
  const auto total = fields(row("total"));
  ASSERT_EQ(total.size(), 3u);
  EXPECT_EQ(total[1], "61706");
  EXPECT_EQ(total[2], "416520");
  EXPECT_EQ(net.multiply_adds(Shape{1, 1, 32, 32}), 416520);
  EXPECT_EQ(net.multiply_adds(Shape{4, 1, 32, 32}), 4 * 416520);
  EXPECT_EQ(net.parameter_count(), 61706);
}

TEST(Sequential, SummaryErrorNamesTheChild) {
  Rng rng = seeded_rng(110);
  const Sequential<float> net = convkit::models::lenet5<float>(rng);
  // 3 channels: c1 rejects the input
  const std::string c1 = message_of<ShapeError>([&] { net.summary(Shape{1, 3, 32, 32}); });
  EXPECT_TRUE(starts_with(c1, "c1: Conv2d(1->6, k=5x5, s=1, p=0): expected input (N, 1, H, W)")) << c1;
  // 28x28: only f5 sees the wrong feature count
  const std::string f5 = message_of<ShapeError>([&] { net.summary(Shape{1, 1, 28, 28}); });
  EXPECT_TRUE(starts_with(f5, "f5: FullyConnected(400->120): expected input (N, 400)")) << f5;
  EXPECT_TRUE(contains(f5, "got (1, 256)")) << f5;
  const std::string m = message_of<ShapeError>([&] { net.multiply_adds(Shape{1, 1, 28, 28}); });
  EXPECT_TRUE(starts_with(m, "f5: FullyConnected(400->120)")) << m;
}

TEST(Sequential, NoInputGradientStillGivesParameterGradients) {
  Rng rng_a = seeded_rng(111), rng_b(111);
  Sequential<double> with = small_net<double>(rng_a);
  Sequential<double> without = small_net<double>(rng_b);
  without.set_needs_input_grad(false);
  EXPECT_FALSE(without.needs_input_grad());
  EXPECT_FALSE(without[0].needs_input_grad());
  EXPECT_TRUE(without[4].needs_input_grad());

  Rng data = seeded_rng(112);
  const Tensor<double> x = random_normal(Shape{2, 2, 6, 6}, data);
  const Tensor<double> g = random_normal(Shape{2, 4}, data);
  with.forward(x);
  without.forward(x);
  const Tensor<double> dx = with.backward(g);
  const Tensor<double> none = without.backward(g);
  EXPECT_EQ(dx.shape(), x.shape());
  EXPECT_EQ(none.numel(), 0);
  const auto pa = with.parameters(), pb = without.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t k = 0; k < pa.size(); ++k) {
    ASSERT_EQ(pa[k]->grad.shape(), pb[k]->grad.shape());
    for (Index i = 0; i < pa[k]->grad.numel(); ++i) EXPECT_EQ(pa[k]->grad[i], pb[k]->grad[i]) << pa[k]->name;
  }

  // A first child added after the flag was cleared inherits it; later children do not.
  Sequential<double> late;
  late.set_needs_input_grad(false);
  late.add(std::make_unique<FullyConnected<double>>(3, 2));
  late.add(std::make_unique<FullyConnected<double>>(2, 2));
  EXPECT_FALSE(late[0].needs_input_grad());
  EXPECT_TRUE(late[1].needs_input_grad());
  late.forward(Tensor<double>(Shape{1, 3}, 1.0));
  EXPECT_EQ(late.backward(Tensor<double>(Shape{1, 2}, 1.0)).numel(), 0);
}

TEST(Sequential, AddRejectsNullDuplicateAndDottedNames) {
  Sequential<float> net;
  net.add("c1", std::make_unique<ReLU<float>>());
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.add("x", nullptr); }), "expected a layer, got nullptr for 'x'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.add(std::unique_ptr<Layer<float>>()); }),
                       "got nullptr for '1'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.add("c1", std::make_unique<ReLU<float>>()); }),
                       "a child is already named 'c1'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.add("a.b", std::make_unique<ReLU<float>>()); }),
                       "expected a non-empty name without '.', got 'a.b'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.add("", std::make_unique<ReLU<float>>()); }),
                       "expected a non-empty name without '.', got ''"));
  // A default (index) name that a named child already took is a duplicate too.
  net.add("2", std::make_unique<ReLU<float>>());
  EXPECT_TRUE(contains(message_of<ValueError>([&] { net.add(std::make_unique<ReLU<float>>()); }),
                       "a child is already named '2'"));
  EXPECT_EQ(net.size(), 2);  // failed adds leave the container as it was
  EXPECT_EQ(net.describe(), "Sequential(2 layers)");
}

}  // namespace
