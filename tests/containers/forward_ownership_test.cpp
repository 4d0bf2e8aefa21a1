// Layer::forward(Tensor&&): a layer given an input its caller gives up (a container's
// intermediate result) may keep it for backward instead of copying it. Output and gradients
// must be exactly those of forward(const Tensor&), for every layer that takes its input over
// and for the containers that pass results on.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <convkit/containers/auxiliary_head.h>
#include <convkit/containers/residual.h>
#include <convkit/containers/sequential.h>
#include <convkit/core/anomaly.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/dropout.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/global_avg_pool2d.h>
#include <convkit/layers/relu.h>
#include <convkit/layers/tanh.h>

#include "support/gradcheck.h"

namespace {

using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Index;
using convkit::Layer;
using convkit::ReLU;
using convkit::Residual;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::Tensor;
using convkit::testing::random_normal;

using Factory = std::function<std::unique_ptr<Layer<double>>(Rng&)>;

void expect_same(const Tensor<double>& a, const Tensor<double>& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  for (Index i = 0; i < a.numel(); ++i) ASSERT_EQ(a[i], b[i]) << what << ", element " << i;
}

/// Two layers from one seed: one runs forward(x), the other forward(std::move(copy of x));
/// outputs, input gradients and parameter gradients must agree bit for bit, twice in a row
/// (the second forward replaces what the first kept), and x must be left as it was. A layer
/// that `takes_over` its input must have left the given-up tensor empty (no copy was made).
void check_same_both_ways(const std::string& name, const Factory& make, const Shape& in, bool training,
                          bool takes_over = false) {
  SCOPED_TRACE(name + (training ? ", training" : ", evaluation"));
  Rng rng_a(11), rng_b(11), data(12);
  auto a = make(rng_a), b = make(rng_b);
  a->set_training(training);
  b->set_training(training);
  for (int pass = 0; pass < 2; ++pass) {
    const Tensor<double> x = random_normal(in, data);
    const Tensor<double> x_before = x;
    const Tensor<double> ya = a->forward(x);
    Tensor<double> given = x;
    const Tensor<double> yb = b->forward(std::move(given));
    expect_same(x, x_before, "the const& input");
    if (takes_over) {
      EXPECT_EQ(given.numel(), 0) << "the given-up input was copied, not taken over";
    }
    expect_same(yb, ya, "output");
    const Tensor<double> g = random_normal(ya.shape(), data);
    expect_same(b->backward(g), a->backward(g), "input gradient");
    const auto pa = a->named_parameters(), pb = b->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (std::size_t i = 0; i < pa.size(); ++i) {
      ASSERT_EQ(pa[i].param->has_grad(), pb[i].param->has_grad()) << pa[i].name;
      if (pa[i].param->has_grad()) expect_same(pb[i].param->grad, pa[i].param->grad, pa[i].name + " gradient");
      expect_same(pb[i].param->value, pa[i].param->value, pa[i].name);  // running statistics too
    }
  }
}

std::unique_ptr<Layer<double>> conv(Rng& rng, Index in, Index out, Index stride = 1) {
  return std::make_unique<Conv2d<double>>(Conv2dOptions(in, out, 3).padding(1).stride(stride), rng);
}

std::unique_ptr<Layer<double>> block(Rng& rng, bool projection) {
  auto r = std::make_unique<Residual<double>>();
  const Index stride = projection ? 2 : 1;
  r->add("conv1", conv(rng, 3, 3, stride));
  r->add("bn", std::make_unique<convkit::BatchNorm2d<double>>(3));
  r->add("relu", std::make_unique<ReLU<double>>());
  r->add("conv2", conv(rng, 3, 3));
  if (projection)
    r->set_shortcut("downsample", std::make_unique<Conv2d<double>>(Conv2dOptions(3, 3, 1).stride(2), rng));
  r->set_activation(std::make_unique<ReLU<double>>());
  return r;
}

TEST(ForwardOwnership, EveryLayerGivesTheSameResultsForAGivenUpInput) {
  const std::vector<std::pair<std::string, Factory>> layers = {
      {"Conv2d", [](Rng& rng) { return conv(rng, 3, 4); }},
      {"FullyConnected",
       [](Rng& rng) {
         return std::make_unique<convkit::FullyConnected<double>>(convkit::FullyConnectedOptions(3 * 5 * 5, 4), rng);
       }},
      {"ReLU", [](Rng&) { return std::make_unique<ReLU<double>>(); }},
      {"Tanh", [](Rng&) { return std::make_unique<convkit::Tanh<double>>(); }},
      {"Flatten", [](Rng&) { return std::make_unique<convkit::Flatten<double>>(); }},
      {"Dropout", [](Rng&) { return std::make_unique<convkit::Dropout<double>>(0.5); }},
      {"BatchNorm2d", [](Rng&) { return std::make_unique<convkit::BatchNorm2d<double>>(3); }},
      {"Residual, identity", [](Rng& rng) { return block(rng, false); }},
      {"Residual, projection", [](Rng& rng) { return block(rng, true); }},
      {"Sequential",
       [](Rng& rng) {
         auto s = std::make_unique<Sequential<double>>();
         s->add("conv", conv(rng, 3, 3));
         s->add("relu", std::make_unique<ReLU<double>>());
         s->add("block", block(rng, true));
         s->add("aux", std::make_unique<convkit::AuxiliaryHead<double>>(
                           [&] {
                             auto head = std::make_unique<Sequential<double>>();
                             head->add("pool", std::make_unique<convkit::GlobalAvgPool2d<double>>());
                             return head;
                           }(),
                           0.3));
         s->add("flatten", std::make_unique<convkit::Flatten<double>>());
         s->add("dropout", std::make_unique<convkit::Dropout<double>>(0.25));
         return s;
       }},
      {"Sequential, empty", [](Rng&) { return std::make_unique<Sequential<double>>(); }},
  };
  const std::vector<std::string> taking_over = {"Conv2d", "FullyConnected", "ReLU", "Flatten", "BatchNorm2d"};
  for (const auto& [name, make] : layers)
    for (const bool training : {true, false})
      check_same_both_ways(name, make, Shape{2, 3, 5, 5}, training,
                           std::find(taking_over.begin(), taking_over.end(), name) != taking_over.end());
}

TEST(ForwardOwnership, UnderAnomalyDetectionToo) {
  const convkit::DetectAnomaly on;
  check_same_both_ways("Residual, projection, anomaly detection", [](Rng& rng) { return block(rng, true); },
                       Shape{2, 3, 6, 6}, true);
}

}  // namespace
