// AuxiliaryHead: the identity on the main path, the head's output in training mode only,
// backward adding head.backward(set_output_grad's gradient) to the passing gradient, the
// errors with their messages, find_layers through nested containers, parameter paths, and a
// gradient check of <main, g1> + <head(x), g2> by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/containers/auxiliary_head.h>
#include <convkit/containers/sequential.h>
#include <convkit/containers/summary.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/tanh.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;
using convkit::testing::starts_with;

using convkit::AuxiliaryHead;
using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Flatten;
using convkit::FullyConnected;
using convkit::FullyConnectedOptions;
using convkit::Index;
using convkit::Layer;
using convkit::Parameter;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tanh;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::dot;
using convkit::testing::gradcheck_function;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// The identity, counting its forward and backward calls.
template <typename T>
class Counting : public Layer<T> {
 public:
  Counting(int* forwards, int* backwards) : forwards_(forwards), backwards_(backwards) {}
  Shape output_shape(const Shape& input) const override { return input; }
  std::string describe() const override { return "Counting"; }

 protected:
  Tensor<T> do_forward(const Tensor<T>& input) override {
    ++*forwards_;
    return input;
  }
  Tensor<T> do_backward(const Tensor<T>& grad_output) override {
    ++*backwards_;
    return grad_output;
  }

 private:
  int* forwards_;
  int* backwards_;
};

/// A head for (N, 2, 3, 3) inputs: Conv2d(2->1, k1) -> Tanh -> Flatten -> FC(9 -> 3).
template <typename T>
std::unique_ptr<Sequential<T>> small_head(Rng& rng) {
  auto head = std::make_unique<Sequential<T>>();
  head->add("conv", std::make_unique<Conv2d<T>>(Conv2dOptions(2, 1, 1), rng));
  head->add("act", std::make_unique<Tanh<T>>());
  head->add("flatten", std::make_unique<Flatten<T>>());
  head->add("fc", std::make_unique<FullyConnected<T>>(FullyConnectedOptions(9, 3), rng));
  return head;
}

TEST(AuxiliaryHead, TrainingForwardPassesTheInputAndKeepsTheHeadsOutput) {
  Rng rng = seeded_rng(701), twin(701);
  AuxiliaryHead<double> aux(small_head<double>(rng));
  auto separate = small_head<double>(twin);
  const Tensor<double> x = random_normal(Shape{2, 2, 3, 3}, rng);
  EXPECT_EQ(aux.output(), nullptr);  // nothing before a forward
  const Tensor<double> y = aux.forward(x);
  ASSERT_EQ(y.shape(), x.shape());
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(y[i], x[i]);
  ASSERT_NE(aux.output(), nullptr);
  const Tensor<double> a = separate->forward(x);
  ASSERT_EQ(aux.output()->shape(), (Shape{2, 3}));
  for (Index i = 0; i < a.numel(); ++i) EXPECT_EQ((*aux.output())[i], a[i]);
  EXPECT_EQ(aux.output_shape(x.shape()), x.shape());
}

TEST(AuxiliaryHead, EvalForwardDoesNotRunTheHead) {
  int forwards = 0, backwards = 0;
  auto head = std::make_unique<Sequential<float>>();
  head->add(std::make_unique<Counting<float>>(&forwards, &backwards));
  AuxiliaryHead<float> aux(std::move(head));
  const Tensor<float> x(Shape{1, 2, 2, 2}, 1.5f);
  aux.forward(x);
  EXPECT_EQ(forwards, 1);
  ASSERT_NE(aux.output(), nullptr);

  aux.eval();
  EXPECT_FALSE(aux.head().is_training());
  const Tensor<float> y = aux.forward(x);
  EXPECT_EQ(forwards, 1);  // the head did not run
  EXPECT_EQ(aux.output(), nullptr);
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(y[i], x[i]);
  const std::string msg = message_of<StateError>([&] { aux.set_output_grad(Tensor<float>(Shape{1, 2, 2, 2})); });
  EXPECT_TRUE(contains(msg, "AuxiliaryHead(loss weight 0.3): set_output_grad without a training-mode forward")) << msg;
  const Tensor<float> g(Shape{1, 2, 2, 2}, 0.5f);
  const Tensor<float> dx = aux.backward(g);
  EXPECT_EQ(backwards, 0);
  for (Index i = 0; i < g.numel(); ++i) EXPECT_EQ(dx[i], 0.5f);

  aux.train();
  EXPECT_TRUE(aux.head().is_training());
  aux.forward(x);
  EXPECT_EQ(forwards, 2);
}

TEST(AuxiliaryHead, BackwardWithoutOutputGradReturnsGradOutputUnchanged) {
  Rng rng = seeded_rng(702);
  AuxiliaryHead<double> aux(small_head<double>(rng));
  const Tensor<double> x = random_normal(Shape{2, 2, 3, 3}, rng);
  aux.forward(x);
  const Tensor<double> g = random_normal(x.shape(), rng);
  const Tensor<double> dx = aux.backward(g);
  ASSERT_EQ(dx.shape(), g.shape());
  for (Index i = 0; i < g.numel(); ++i) EXPECT_EQ(dx[i], g[i]);
  // the head's backward did not run: its gradients were never allocated
  for (Parameter<double>* p : aux.parameters()) EXPECT_FALSE(p->has_grad()) << p->name;
}

TEST(AuxiliaryHead, BackwardAddsTheHeadsInputGradient) {
  Rng rng = seeded_rng(703), twin(703);
  AuxiliaryHead<double> aux(small_head<double>(rng));
  auto separate = small_head<double>(twin);
  const Tensor<double> x = random_normal(Shape{2, 2, 3, 3}, rng);
  const Tensor<double> g = random_normal(x.shape(), rng);
  const Tensor<double> ga = random_normal(Shape{2, 3}, rng);
  aux.forward(x);
  aux.set_output_grad(ga);
  const Tensor<double> dx = aux.backward(g);
  separate->forward(x);
  const Tensor<double> dh = separate->backward(ga);
  ASSERT_EQ(dx.shape(), x.shape());
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(dx[i], g[i] + dh[i]) << "at " << i;
  const auto pa = aux.parameters(), pb = separate->parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t k = 0; k < pa.size(); ++k)
    for (Index i = 0; i < pa[k]->grad.numel(); ++i) EXPECT_EQ(pa[k]->grad[i], pb[k]->grad[i]) << pa[k]->name;

  // The output gradient serves one backward only.
  const Tensor<double> again = aux.backward(g);
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(again[i], g[i]);
  // and a new forward forgets one that was set but not used
  aux.forward(x);
  aux.set_output_grad(ga);
  aux.forward(x);
  const Tensor<double> fresh = aux.backward(g);
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(fresh[i], g[i]);
}

TEST(AuxiliaryHead, SetOutputGradErrors) {
  Rng rng = seeded_rng(704);
  AuxiliaryHead<float> aux(small_head<float>(rng), 0.5);
  const std::string before = message_of<StateError>([&] { aux.set_output_grad(Tensor<float>(Shape{2, 3})); });
  EXPECT_TRUE(contains(before, "AuxiliaryHead(loss weight 0.5): set_output_grad without a training-mode forward"))
      << before;
  aux.forward(Tensor<float>(Shape{2, 2, 3, 3}, 0.1f));
  const std::string shape = message_of<ShapeError>([&] { aux.set_output_grad(Tensor<float>(Shape{2, 4})); });
  EXPECT_TRUE(contains(shape, "AuxiliaryHead(loss weight 0.5): expected an output gradient (2, 3), got (2, 4)"))
      << shape;
  EXPECT_NO_THROW(aux.set_output_grad(Tensor<float>(Shape{2, 3})));
}

TEST(AuxiliaryHead, ConstructorAndShapeErrors) {
  const std::string null = message_of<ValueError>([] { AuxiliaryHead<float> a(nullptr); });
  EXPECT_TRUE(contains(null, "AuxiliaryHead: expected a head layer, got nullptr")) << null;
  Rng rng = seeded_rng(705);
  const std::string neg = message_of<ValueError>([&] { AuxiliaryHead<float> a(small_head<float>(rng), -0.1); });
  EXPECT_TRUE(contains(neg, "AuxiliaryHead: expected a finite loss weight >= 0, got -0.1")) << neg;
  const std::string nan = message_of<ValueError>(
      [&] { AuxiliaryHead<float> a(small_head<float>(rng), std::numeric_limits<double>::quiet_NaN()); });
  EXPECT_TRUE(contains(nan, "got nan")) << nan;

  AuxiliaryHead<float> aux(small_head<float>(rng), 0.3);
  EXPECT_EQ(aux.loss_weight(), 0.3);
  EXPECT_EQ(aux.describe(), "AuxiliaryHead(loss weight 0.3)");
  // The head is validated on the input too; its error paths are the head's own, as if the
  // head stood in the layer's place.
  const std::string bad = message_of<ShapeError>([&] { aux.output_shape(Shape{2, 3, 3, 3}); });
  EXPECT_TRUE(starts_with(bad, "conv: Conv2d(2->1, k=1x1, s=1, p=0): expected input (N, 2, H, W)")) << bad;
  EXPECT_TRUE(contains(bad, "got (2, 3, 3, 3)")) << bad;
  const std::string fc = message_of<ShapeError>([&] { aux.forward(Tensor<float>(Shape{2, 2, 4, 4})); });
  EXPECT_TRUE(starts_with(fc, "fc: FullyConnected(9->3): expected input (N, 9)")) << fc;
  EXPECT_TRUE(contains(fc, "got (2, 16)")) << fc;
  Sequential<float> net;
  net.add("aux1", std::make_unique<AuxiliaryHead<float>>(small_head<float>(rng)));
  const std::string nested = message_of<ShapeError>([&] { net.forward(Tensor<float>(Shape{2, 2, 4, 4})); });
  EXPECT_TRUE(starts_with(nested, "aux1.fc: FullyConnected(9->3): expected input (N, 9)")) << nested;
}

TEST(AuxiliaryHead, FindLayersFindsHeadsInsideNestedContainers) {
  Rng rng = seeded_rng(706);
  Sequential<double> net;
  net.add("stem", std::make_unique<Conv2d<double>>(Conv2dOptions(2, 2, 3).padding(1), rng));
  net.add("aux1", std::make_unique<AuxiliaryHead<double>>(small_head<double>(rng)));
  auto block = std::make_unique<Sequential<double>>();
  block->add("conv", std::make_unique<Conv2d<double>>(Conv2dOptions(2, 2, 3).padding(1), rng));
  block->add("aux2", std::make_unique<AuxiliaryHead<double>>(small_head<double>(rng), 0.7));
  net.add("block", std::move(block));

  const std::vector<AuxiliaryHead<double>*> heads = convkit::find_layers<AuxiliaryHead<double>>(net);
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_EQ(heads[0], &net.child("aux1"));
  EXPECT_EQ(heads[1], &dynamic_cast<Sequential<double>&>(net.child("block")).child("aux2"));
  EXPECT_EQ(heads[1]->loss_weight(), 0.7);
  // every convolution, main path and heads, depth first
  EXPECT_EQ(convkit::find_layers<Conv2d<double>>(net).size(), 4u);
  EXPECT_EQ(convkit::find_layers<FullyConnected<double>>(net).size(), 2u);
  // the root itself counts
  EXPECT_EQ(convkit::find_layers<Sequential<double>>(net).size(), 4u);  // net, block and two heads
  AuxiliaryHead<double>& lone = *heads[0];
  EXPECT_EQ(convkit::find_layers<AuxiliaryHead<double>>(lone).size(), 1u);

  // Parameter paths go through the layer's name into the head's.
  std::vector<std::string> names;
  for (const auto& p : net.named_parameters()) names.push_back(p.name);
  const std::vector<std::string> expected = {"stem.weight", "stem.bias", "aux1.conv.weight", "aux1.conv.bias",
                                             "aux1.fc.weight", "aux1.fc.bias", "block.conv.weight", "block.conv.bias",
                                             "block.aux2.conv.weight", "block.aux2.conv.bias",
                                             "block.aux2.fc.weight", "block.aux2.fc.bias"};
  EXPECT_EQ(names, expected);

  // The main path ignores the heads: the model's output shape is the stem's.
  EXPECT_EQ(net.output_shape(Shape{4, 2, 3, 3}), (Shape{4, 2, 3, 3}));
}

TEST(AuxiliaryHead, GradcheckOfMainAndAuxiliaryLossByHand) {
  // net: conv (2->2, k3, p1) -> Tanh -> aux (head) -> conv (2->1, k3)
  // L(x, θ) = <net(x), g1> + <head(h), g2>, h the input of the head.
  Rng rng = seeded_rng(707);
  Sequential<double> net;
  auto& first = net.emplace<Conv2d<double>>(Conv2dOptions(2, 2, 3).padding(1), rng);
  net.emplace<Tanh<double>>();
  auto& aux = net.emplace<AuxiliaryHead<double>>(small_head<double>(rng));
  net.emplace<Conv2d<double>>(Conv2dOptions(2, 1, 3), rng);
  const Tensor<double> x = random_normal(Shape{2, 2, 3, 3}, rng);
  const Tensor<double> g1 = random_normal(Shape{2, 1, 1, 1}, rng);
  const Tensor<double> g2 = random_normal(Shape{2, 3}, rng);

  auto loss_at = [&](const Tensor<double>& in) {
    const Tensor<double> y = net.forward(in);
    return dot(y, g1) + dot(*aux.output(), g2);
  };
  net.forward(x);
  aux.set_output_grad(g2);
  const Tensor<double> dx = net.backward(g1);
  EXPECT_TRUE(gradcheck_function(loss_at, x, dx));

  // Parameters: the first convolution (before the head: both losses reach it) and the
  // head's fully connected weight (only the auxiliary loss reaches it).
  auto& fc = dynamic_cast<FullyConnected<double>&>(dynamic_cast<Sequential<double>&>(aux.head()).child("fc"));
  for (Parameter<double>* p : {&first.weight(), &first.bias(), &fc.weight()}) {
    ASSERT_TRUE(p->has_grad()) << p->name;
    const Tensor<double> analytic = p->grad;
    auto loss_of_param = [&](const Tensor<double>& v) {
      const Tensor<double> saved = p->value;
      p->value = v;
      const double l = loss_at(x);
      p->value = saved;
      return l;
    };
    EXPECT_TRUE(gradcheck_function(loss_of_param, p->value, analytic)) << p->name;
  }

  // Without the auxiliary gradient only the main loss flows back; the FC gets nothing more.
  const Tensor<double> fc_grad = fc.weight().grad;
  net.forward(x);
  const Tensor<double> dx_main = net.backward(g1);
  for (Index i = 0; i < fc_grad.numel(); ++i) EXPECT_EQ(fc.weight().grad[i], fc_grad[i]);
  auto main_only = [&](const Tensor<double>& in) { return dot(net.forward(in), g1); };
  EXPECT_TRUE(gradcheck_function(main_only, x, dx_main));
}

TEST(AuxiliaryHead, SummaryShowsTheMainPathAndTheHeadsRows) {
  Rng rng = seeded_rng(708);
  Sequential<float> net;
  net.add("aux", std::make_unique<AuxiliaryHead<float>>(small_head<float>(rng)));
  net.add("after", std::make_unique<Tanh<float>>());
  const std::string s = convkit::summary(net, Shape{1, 2, 3, 3}, 2);
  const auto line_of = [&](const std::string& start) {
    const std::size_t at = s.find("\n" + start);
    EXPECT_NE(at, std::string::npos) << start << " in\n" << s;
    return at == std::string::npos ? std::string() : s.substr(at + 1, s.find('\n', at + 1) - at - 1);
  };
  const auto last_two = [](const std::string& l) {
    std::vector<std::string> f;
    std::istringstream is(l);
    for (std::string w; is >> w;) f.push_back(w);
    return f.size() >= 2 ? f[f.size() - 2] + " " + f.back() : std::string();
  };
  // The layer's row: the head's output after its description, the main path's shape, and
  // the head's 3 + 30 parameters and 9·2 + 3·9 mult-adds.
  const std::string aux = line_of("aux ");
  EXPECT_TRUE(contains(aux, "AuxiliaryHead(loss weight 0.3) -> (1, 3)")) << aux;
  EXPECT_TRUE(contains(aux, "(1, 2, 3, 3)")) << aux;
  EXPECT_EQ(last_two(aux), "33 45") << aux;
  // The head's layers under the layer's path, as its parameters are named.
  const std::string conv = line_of("  aux.conv ");
  EXPECT_TRUE(contains(conv, "(1, 1, 3, 3)")) << conv;
  EXPECT_EQ(last_two(conv), "3 18") << conv;
  const std::string fc = line_of("  aux.fc ");
  EXPECT_TRUE(contains(fc, "(1, 3)")) << fc;
  EXPECT_EQ(last_two(fc), "30 27") << fc;
  // The next layer sees the main path's shape.
  EXPECT_TRUE(contains(line_of("after "), "(1, 2, 3, 3)"));
  EXPECT_EQ(last_two(line_of("total ")), "33 45");
}

}  // namespace
