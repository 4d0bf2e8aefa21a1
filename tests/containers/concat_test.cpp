// Concat: forward joins the branches' outputs along C, backward sums the branches' input
// gradients, a gradient check through conv, Sequential and max-pool branches, dotted
// parameter names, the mismatch error naming every branch, set_needs_input_grad(false),
// train()/eval() propagation, add()'s errors and the nested summary rows.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/containers/concat.h>
#include <convkit/containers/sequential.h>
#include <convkit/containers/summary.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/dropout.h>
#include <convkit/layers/max_pool2d.h>
#include <convkit/layers/relu.h>
#include <convkit/layers/tanh.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;
using convkit::testing::starts_with;

using convkit::Concat;
using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Dropout;
using convkit::Index;
using convkit::Layer;
using convkit::MaxPool2d;
using convkit::Parameter;
using convkit::Pool2dOptions;
using convkit::ReLU;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::Tanh;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_distinct;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// An inception-like module on (N, 2, H, W) inputs, keeping H and W:
///   branch1: Conv2d(2->3, k3, p1)                           -> 3 channels
///   b2:      Conv2d(2->2, k1) -> Tanh -> Conv2d(2->1, k3, p1)  -> 1 channel
///   2:       MaxPool2d(3, s1, p1)                            -> 2 channels
template <typename T>
Concat<T> inception(Rng& rng) {
  Concat<T> cat;
  cat.add("branch1", std::make_unique<Conv2d<T>>(Conv2dOptions(2, 3, 3).padding(1), rng));
  auto b2 = std::make_unique<Sequential<T>>();
  b2->add(std::make_unique<Conv2d<T>>(Conv2dOptions(2, 2, 1), rng));
  b2->add(std::make_unique<Tanh<T>>());
  b2->add(std::make_unique<Conv2d<T>>(Conv2dOptions(2, 1, 3).padding(1), rng));
  cat.add("b2", std::move(b2));
  cat.add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(1).padding(1)));
  return cat;
}

TEST(Concat, ForwardStacksBranchOutputsAlongChannels) {
  Rng rng = seeded_rng(501);
  Concat<double> cat = inception<double>(rng);
  const Tensor<double> x = random_normal(Shape{2, 2, 4, 5}, rng);
  EXPECT_EQ(cat.output_shape(x.shape()), (Shape{2, 6, 4, 5}));
  const Tensor<double> y = cat.forward(x);
  ASSERT_EQ(y.shape(), (Shape{2, 6, 4, 5}));
  const Tensor<double> a = cat.branch("branch1").forward(x);
  const Tensor<double> b = cat.branch("b2").forward(x);
  const Tensor<double> c = cat.branch("2").forward(x);
  for (Index n = 0; n < 2; ++n)
    for (Index ch = 0; ch < 6; ++ch)
      for (Index r = 0; r < 4; ++r)
        for (Index q = 0; q < 5; ++q) {
          const double expected = ch < 3 ? a(n, ch, r, q) : ch < 4 ? b(n, ch - 3, r, q) : c(n, ch - 4, r, q);
          ASSERT_EQ(y(n, ch, r, q), expected) << n << ", " << ch << ", " << r << ", " << q;
        }
  EXPECT_EQ(cat.size(), 3);
  EXPECT_EQ(cat.describe(), "Concat(3 branches)");
}

TEST(Concat, BackwardSumsTheBranchesInputGradients) {
  Rng rng_a = seeded_rng(502), rng_b(502);
  Concat<double> cat = inception<double>(rng_a);
  Concat<double> separate = inception<double>(rng_b);  // the same weights, run branch by branch
  Rng data = seeded_rng(503);
  const Tensor<double> x = random_distinct(Shape{2, 2, 4, 4}, data, 0.03);
  const Tensor<double> g = random_normal(Shape{2, 6, 4, 4}, data);
  cat.forward(x);
  const Tensor<double> dx = cat.backward(g);

  // The channel slices [0, 3), [3, 4), [4, 6) of g go to the three branches.
  const std::string names[] = {"branch1", "b2", "2"};
  const Index first[] = {0, 3, 4}, count[] = {3, 1, 2};
  Tensor<double> sum(x.shape());
  for (int k = 0; k < 3; ++k) {
    Layer<double>& branch = separate.branch(names[k]);
    branch.forward(x);
    Tensor<double> gk(Shape{2, count[k], 4, 4});
    for (Index n = 0; n < 2; ++n)
      for (Index ch = 0; ch < count[k]; ++ch)
        for (Index r = 0; r < 4; ++r)
          for (Index q = 0; q < 4; ++q) gk(n, ch, r, q) = g(n, first[k] + ch, r, q);
    const Tensor<double> dk = branch.backward(gk);
    for (Index i = 0; i < sum.numel(); ++i) sum[i] += dk[i];
  }
  ASSERT_EQ(dx.shape(), x.shape());
  for (Index i = 0; i < x.numel(); ++i) EXPECT_NEAR(dx[i], sum[i], 1e-14) << "at " << i;

  const auto pa = cat.parameters(), pb = separate.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t k = 0; k < pa.size(); ++k)
    for (Index i = 0; i < pa[k]->grad.numel(); ++i) EXPECT_EQ(pa[k]->grad[i], pb[k]->grad[i]) << pa[k]->name;
}

TEST(Concat, GradcheckThroughConvSequentialAndMaxPoolBranches) {
  Rng rng = seeded_rng(504);
  Concat<double> cat = inception<double>(rng);
  // distinct inputs: no max-pool ties
  const Tensor<double> x = random_distinct(Shape{2, 2, 4, 4}, rng, 0.03);
  EXPECT_TRUE(gradcheck_layer(cat, x, rng));
}

TEST(Concat, ParameterNamesAreDottedPathsThroughTheBranches) {
  Rng rng = seeded_rng(505);
  Sequential<float> net;
  net.add("mixed", std::make_unique<Concat<float>>(inception<float>(rng)));
  std::vector<std::string> names;
  for (const auto& p : net.named_parameters()) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"mixed.branch1.weight", "mixed.branch1.bias", "mixed.b2.0.weight",
                                             "mixed.b2.0.bias", "mixed.b2.2.weight", "mixed.b2.2.bias"}));
  Concat<float> cat = inception<float>(rng);
  std::vector<std::string> own;
  for (const auto& p : cat.named_parameters()) own.push_back(p.name);
  EXPECT_EQ(own, (std::vector<std::string>{"branch1.weight", "branch1.bias", "b2.0.weight", "b2.0.bias",
                                           "b2.2.weight", "b2.2.bias"}));
  auto& conv = dynamic_cast<Conv2d<float>&>(cat.branch("branch1"));
  EXPECT_EQ(cat.parameters()[0], &conv.weight());
  EXPECT_EQ(cat.parameter_count(), (3 * 2 * 9 + 3) + (2 * 2 + 2) + (1 * 2 * 9 + 1));
  EXPECT_EQ(cat.buffer_count(), 0);
  // multiply-adds add up over the branches
  const Shape in{1, 2, 4, 4};
  EXPECT_EQ(cat.multiply_adds(in), 16 * 3 * 18 + 16 * 2 * 2 + 16 * 1 * 18);
}

TEST(Concat, MismatchErrorListsEveryBranchAndItsShape) {
  Concat<float> cat;
  cat.add("wide", std::make_unique<Conv2d<float>>(Conv2dOptions(2, 3, 3).padding(1)));
  cat.add("valid", std::make_unique<Conv2d<float>>(Conv2dOptions(2, 4, 3)));
  cat.add("pool", std::make_unique<MaxPool2d<float>>(2));
  const std::string msg = message_of<ShapeError>([&] { cat.output_shape(Shape{1, 2, 6, 6}); });
  EXPECT_TRUE(starts_with(msg, "Concat(3 branches): expected branch outputs (N, C_i, H, W) that differ only in channels"))
      << msg;
  EXPECT_TRUE(contains(msg, "got wide (1, 3, 6, 6), valid (1, 4, 4, 4), pool (1, 2, 3, 3)")) << msg;
  // forward reports it before computing
  const std::string fmsg = message_of<ShapeError>([&] { cat.forward(Tensor<float>(Shape{1, 2, 6, 6})); });
  EXPECT_EQ(fmsg, msg);

  // a branch that rejects the input is named
  const std::string bad = message_of<ShapeError>([&] { cat.output_shape(Shape{1, 5, 6, 6}); });
  EXPECT_TRUE(starts_with(bad, "wide: Conv2d(2->3, k=3x3, s=1, p=1): expected input (N, 2, H, W)")) << bad;

  // inside containers the path is dotted: model -> Concat branch -> Sequential child
  Rng rng = seeded_rng(509);
  Sequential<float> net;
  net.add("mixed", std::make_unique<Concat<float>>(inception<float>(rng)));
  try {
    net.forward(Tensor<float>(Shape{1, 3, 4, 4}));
    ADD_FAILURE() << "threw nothing";
  } catch (const ShapeError& e) {
    EXPECT_EQ(e.path(), "mixed.branch1");
    EXPECT_TRUE(starts_with(e.what(), "mixed.branch1: Conv2d(2->3, k=3x3, s=1, p=1): expected input (N, 2, H, W)"))
        << e.what();
    EXPECT_TRUE(starts_with(e.detail(), "Conv2d(2->3, k=3x3, s=1, p=1)")) << e.detail();
  }

  Concat<float> none;
  const std::string empty = message_of<ShapeError>([&] { none.output_shape(Shape{1, 2, 6, 6}); });
  EXPECT_TRUE(contains(empty, "Concat(0 branches): has no branch to apply")) << empty;
}

TEST(Concat, NoInputGradientStillGivesTheSameParameterGradients) {
  Rng rng_a = seeded_rng(506), rng_b(506);
  Concat<double> with = inception<double>(rng_a);
  Concat<double> without = inception<double>(rng_b);
  without.set_needs_input_grad(false);
  EXPECT_FALSE(without.needs_input_grad());
  EXPECT_FALSE(without.branch("branch1").needs_input_grad());
  EXPECT_FALSE(without.branch("b2").needs_input_grad());
  EXPECT_FALSE(without.branch("2").needs_input_grad());
  Rng data = seeded_rng(507);
  const Tensor<double> x = random_distinct(Shape{2, 2, 4, 4}, data, 0.03);
  const Tensor<double> g = random_normal(Shape{2, 6, 4, 4}, data);
  with.forward(x);
  without.forward(x);
  EXPECT_EQ(with.backward(g).shape(), x.shape());
  EXPECT_EQ(without.backward(g).numel(), 0);
  const auto pa = with.parameters(), pb = without.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (std::size_t k = 0; k < pa.size(); ++k) {
    ASSERT_TRUE(pb[k]->has_grad()) << pb[k]->name;
    for (Index i = 0; i < pa[k]->grad.numel(); ++i) EXPECT_EQ(pa[k]->grad[i], pb[k]->grad[i]) << pa[k]->name;
  }
  // a branch added later inherits the flag
  without.add("late", std::make_unique<ReLU<double>>());
  EXPECT_FALSE(without.branch("late").needs_input_grad());
}

TEST(Concat, TrainAndEvalPropagateToBranches) {
  Concat<float> cat;
  cat.add("drop", std::make_unique<Dropout<float>>(0.5));
  cat.add("keep", std::make_unique<ReLU<float>>());
  EXPECT_TRUE(cat.branch("drop").is_training());

  Tensor<float> x(Shape{2, 1, 4, 4});
  for (Index i = 0; i < x.numel(); ++i) x[i] = 0.25f + static_cast<float>(i);  // positive: ReLU keeps them

  cat.eval();
  EXPECT_FALSE(cat.branch("drop").is_training());
  EXPECT_FALSE(cat.branch("keep").is_training());
  const Tensor<float> ye = cat.forward(x);
  ASSERT_EQ(ye.shape(), (Shape{2, 2, 4, 4}));
  for (Index n = 0; n < 2; ++n)
    for (Index r = 0; r < 4; ++r)
      for (Index q = 0; q < 4; ++q) {
        EXPECT_EQ(ye(n, 0, r, q), x(n, 0, r, q));  // Dropout is the identity in evaluation
        EXPECT_EQ(ye(n, 1, r, q), x(n, 0, r, q));
      }
  cat.add("late", std::make_unique<Dropout<float>>(0.5));
  EXPECT_FALSE(cat.branch("late").is_training());

  cat.train();
  for (const char* name : {"drop", "keep", "late"}) EXPECT_TRUE(cat.branch(name).is_training()) << name;
  const Tensor<float> yt = cat.forward(x);
  Index zeros = 0, doubled = 0;
  for (Index n = 0; n < 2; ++n)
    for (Index r = 0; r < 4; ++r)
      for (Index q = 0; q < 4; ++q) {
        const float v = yt(n, 0, r, q);
        if (v == 0.0f) {
          ++zeros;
        } else {
          ++doubled;
          EXPECT_EQ(v, 2.0f * x(n, 0, r, q));
        }
        EXPECT_EQ(yt(n, 1, r, q), x(n, 0, r, q));
      }
  EXPECT_GT(zeros, 0);
  EXPECT_GT(doubled, 0);
}

TEST(Concat, AddRejectsNullDuplicateAndDottedNames) {
  Concat<float> cat;
  cat.add("a", std::make_unique<ReLU<float>>());
  EXPECT_TRUE(contains(message_of<ValueError>([&] { cat.add("b", nullptr); }),
                       "Concat::add: expected a layer, got nullptr for 'b'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { cat.add("a", std::make_unique<ReLU<float>>()); }),
                       "Concat::add: a branch is already named 'a'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { cat.add("x.y", std::make_unique<ReLU<float>>()); }),
                       "expected a non-empty name without '.', got 'x.y'"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { cat.add("", std::make_unique<ReLU<float>>()); }),
                       "expected a non-empty name without '.', got ''"));
  EXPECT_TRUE(contains(message_of<ValueError>([&] { cat.branch("nope"); }), "Concat: no branch named 'nope'"));
  EXPECT_EQ(cat.size(), 1);
}

TEST(Concat, SummaryListsBranchesAsNestedRows) {
  Rng rng = seeded_rng(508);
  Sequential<float> net;
  net.add("stem", std::make_unique<Conv2d<float>>(Conv2dOptions(1, 2, 1), rng));
  net.add("mixed", std::make_unique<Concat<float>>(inception<float>(rng)));
  const Shape in{1, 1, 5, 5};
  const std::string s = convkit::summary(net, in, 2);
  std::vector<std::string> lines;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) lines.push_back(l);
  auto row = [&](const std::string& start) -> std::string {
    for (const std::string& l : lines)
      if (l.compare(0, start.size(), start) == 0) return l;
    ADD_FAILURE() << "no row starting with '" << start << "' in\n" << s;
    return "";
  };
  auto last_two = [](const std::string& l) {
    std::vector<std::string> f;
    std::istringstream fs(l);
    for (std::string w; fs >> w;) f.push_back(w);
    return f.size() >= 2 ? f[f.size() - 2] + " " + f.back() : std::string();
  };
  const std::string mixed = row("mixed ");
  EXPECT_TRUE(contains(mixed, "Concat(3 branches)")) << mixed;
  EXPECT_TRUE(contains(mixed, "(1, 6, 5, 5)")) << mixed;
  EXPECT_EQ(last_two(mixed), "82 1900") << mixed;  // the branches' 57 + 25 parameters, 1350 + 550 mult-adds
  const std::string b1 = row("  mixed.branch1 ");
  EXPECT_TRUE(contains(b1, "Conv2d(2->3, k=3x3, s=1, p=1)")) << b1;
  EXPECT_TRUE(contains(b1, "(1, 3, 5, 5)")) << b1;
  EXPECT_EQ(last_two(b1), "57 1350") << b1;
  const std::string b2 = row("  mixed.b2 ");
  EXPECT_TRUE(contains(b2, "Sequential(3 layers)")) << b2;
  EXPECT_TRUE(contains(b2, "(1, 1, 5, 5)")) << b2;
  EXPECT_EQ(last_two(b2), "25 550") << b2;  // 2·2 + 2 and 2·9 + 1; 50·2 and 25·18
  const std::string pool = row("  mixed.2 ");
  EXPECT_TRUE(contains(pool, "MaxPool2d")) << pool;
  EXPECT_TRUE(contains(pool, "(1, 2, 5, 5)")) << pool;
  EXPECT_EQ(last_two(row("total")), "86 1950");  // each layer once: the stem's 4 and 50 added
  EXPECT_EQ(s.find("buffers"), std::string::npos) << s;
  // depth 2 stops at the branches; depth 3 shows b2's layers
  EXPECT_EQ(s.find("mixed.b2.0"), std::string::npos) << s;
  const std::string deeper = convkit::summary(net, in, 3);
  EXPECT_NE(deeper.find("    mixed.b2.0 "), std::string::npos) << deeper;
  // depth 1 shows no branch
  EXPECT_EQ(convkit::summary(net, in, 1).find("mixed.branch1"), std::string::npos);
}

}  // namespace
