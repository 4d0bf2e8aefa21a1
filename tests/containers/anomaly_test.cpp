// Anomaly detection (core/anomaly.h): off by default, NaN flows through silently; on, the
// first layer or loss producing a NaN or infinity throws a NumericalError naming its path,
// the element, and whether what came in was already non-finite.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include <convkit/containers/sequential.h>
#include <convkit/core/anomaly.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/relu.h>
#include <convkit/losses/euclidean.h>
#include <convkit/losses/softmax_cross_entropy.h>

#include "support/expect.h"

namespace {

using convkit::DetectAnomaly;
using convkit::FullyConnected;
using convkit::Index;
using convkit::Layer;
using convkit::NumericalError;
using convkit::Parameter;
using convkit::ReLU;
using convkit::Sequential;
using convkit::Shape;
using convkit::Tensor;
using convkit::testing::contains;
using convkit::testing::message_of;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

/// Identity forward; backward puts NaN into element `bad` of the input gradient, or of its
/// parameter's gradient: a custom layer with a bug in its backward.
class BrokenBackward : public Layer<float> {
 public:
  BrokenBackward(Index bad, bool in_parameter) : bad_(bad), in_parameter_(in_parameter), scale_("scale", Shape{3}) {}
  Shape output_shape(const Shape& input) const override { return input; }
  std::string describe() const override { return "BrokenBackward"; }
  void collect_parameters(std::vector<convkit::NamedParameter<float>>& out, const std::string& prefix) override {
    add_parameter(out, prefix, scale_);
  }

 protected:
  Tensor<float> do_forward(const Tensor<float>& input) override { return input; }
  Tensor<float> do_backward(const Tensor<float>& grad_output) override {
    Tensor<float> g = grad_output;
    Tensor<float>& pg = scale_.ensure_grad();
    if (in_parameter_)
      pg[bad_] = kNaN;
    else
      g[bad_] = kNaN;
    return g;
  }

 private:
  Index bad_;
  bool in_parameter_;
  Parameter<float> scale_;
};

/// features: FC(4->3), ReLU, FC(3->3); head: FC(3->2) — weights all 0.1.
std::unique_ptr<Sequential<float>> make_model() {
  auto features = std::make_unique<Sequential<float>>();
  features->emplace<FullyConnected<float>>(4, 3);
  features->emplace<ReLU<float>>();
  features->emplace<FullyConnected<float>>(3, 3);
  auto model = std::make_unique<Sequential<float>>();
  model->add("features", std::move(features));
  model->add("head", std::make_unique<FullyConnected<float>>(3, 2));
  for (auto& p : model->named_parameters()) p.param->value.fill(0.1f);
  return model;
}

FullyConnected<float>& fc(Sequential<float>& model, const std::string& path) {
  if (path == "head") return dynamic_cast<FullyConnected<float>&>(model.child("head"));
  auto& features = dynamic_cast<Sequential<float>&>(model.child("features"));
  return dynamic_cast<FullyConnected<float>&>(features.child(path));
}

Tensor<float> input() { return Tensor<float>(Shape{2, 4}, 1.0f); }

TEST(Anomaly, OffByDefaultNaNFlowsThrough) {
  EXPECT_FALSE(convkit::detect_anomaly());
  auto model = make_model();
  fc(*model, "2").weight().value[4] = kNaN;
  const Tensor<float> y = model->forward(input());
  EXPECT_TRUE(std::isnan(y[0]));
}

TEST(Anomaly, GuardTurnsItOnAndRestores) {
  {
    DetectAnomaly on;
    EXPECT_TRUE(convkit::detect_anomaly());
    {
      DetectAnomaly off(false);
      EXPECT_FALSE(convkit::detect_anomaly());
    }
    EXPECT_TRUE(convkit::detect_anomaly());
  }
  EXPECT_FALSE(convkit::detect_anomaly());
}

TEST(Anomaly, ForwardNamesTheFirstLayerWithItsPath) {
  DetectAnomaly on;
  auto model = make_model();
  fc(*model, "2").weight().value[4] = kNaN;  // row 1 of the second FC: output element 1 of sample 0
  const std::string msg = message_of<NumericalError>([&] { model->forward(input()); });
  EXPECT_TRUE(convkit::testing::starts_with(msg, "features.2: FullyConnected(3->3")) << msg;
  EXPECT_TRUE(contains(msg, "forward produced NaN at element 1 of its output (2, 3) from a finite input")) << msg;

  // An infinity in the head: the head is named, not the features.
  auto other = make_model();
  fc(*other, "head").weight().value[0] = kInf;
  const std::string inf = message_of<NumericalError>([&] { other->forward(input()); });
  EXPECT_TRUE(convkit::testing::starts_with(inf, "head: FullyConnected(3->2")) << inf;
  EXPECT_TRUE(contains(inf, "produced +inf at element 0 of its output (2, 2)")) << inf;
}

TEST(Anomaly, NonFiniteInputIsReportedAsComingIn) {
  DetectAnomaly on;
  auto model = make_model();
  Tensor<float> x = input();
  x[5] = -kInf;
  const std::string msg = message_of<NumericalError>([&] { model->forward(x); });
  EXPECT_TRUE(convkit::testing::starts_with(msg, "features.0: FullyConnected(4->3")) << msg;
  EXPECT_TRUE(contains(msg, "its input already held -inf at element 5")) << msg;
}

TEST(Anomaly, BackwardNamesTheLayerWhoseGradientBreaks) {
  DetectAnomaly on;
  for (bool in_parameter : {false, true}) {
    Sequential<float> model;
    model.emplace<FullyConnected<float>>(4, 3);
    model.add("broken", std::make_unique<BrokenBackward>(2, in_parameter));
    model.emplace<FullyConnected<float>>(3, 2);
    const Tensor<float> y = model.forward(input());
    const std::string msg = message_of<NumericalError>([&] { model.backward(Tensor<float>(y.shape(), 1.0f)); });
    EXPECT_TRUE(convkit::testing::starts_with(msg, "broken: BrokenBackward: backward produced NaN at element 2 of "))
        << msg;
    EXPECT_TRUE(contains(msg, in_parameter ? "of the gradient of scale (3)" : "of the input gradient (2, 3)")) << msg;
    EXPECT_TRUE(contains(msg, "from a finite grad_output")) << msg;
  }
}

TEST(Anomaly, LossesCheckTheirValueAndGradient) {
  DetectAnomaly on;
  convkit::SoftmaxCrossEntropy<float> ce;
  Tensor<float> logits(Shape{2, 3}, 0.5f);
  logits[4] = kInf;
  const std::string msg = message_of<NumericalError>([&] { ce.forward(logits, {0, 1}); });
  EXPECT_TRUE(contains(msg, "SoftmaxCrossEntropy: forward produced a loss of NaN; its logits already held +inf at element 4"))
      << msg;
  // Finite logits as large as 1e4 are no anomaly.
  logits[4] = 1e4f;
  EXPECT_TRUE(std::isfinite(ce.forward(logits, {0, 1})));
  EXPECT_NO_THROW(ce.backward());

  convkit::Euclidean<float> l2;
  Tensor<float> target(Shape{2, 3}, 0.0f);
  target[1] = kNaN;
  const std::string emsg = message_of<NumericalError>([&] { l2.forward(Tensor<float>(Shape{2, 3}, 1.0f), target); });
  EXPECT_TRUE(contains(emsg, "Euclidean: forward produced a loss of NaN; its prediction - target already held NaN at element 1")) << emsg;
}

}  // namespace
