// Model zoo builders: exact parameter counts of every family and depth, parameter names and
// shapes equal to torchvision's (tests/models/torchvision/*.txt), output shapes of every stage
// at 224×224 (and small inputs), the errors for inputs that do not fit, and build() by name.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/models/zoo.h>

#include "support/expect.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;

using convkit::Index;
using convkit::Layer;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::ValueError;
using convkit::models::ModelOptions;

Sequential<float> build(const std::string& name, const ModelOptions& o = ModelOptions()) {
  Rng rng = convkit::testing::seeded_rng(501);
  return convkit::models::build<float>(name, rng, o);
}

// ---------------------------------------------------------------------------------------------
// Parameter counts (trainable parameters, as torchvision's sum(p.numel() for p in parameters()))

struct Count {
  const char* name;
  Index params;
};

class ParameterCount : public ::testing::TestWithParam<Count> {};

TEST_P(ParameterCount, EqualsThePublishedNumber) {
  const Count c = GetParam();
  EXPECT_EQ(build(c.name).parameter_count(), c.params) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, ParameterCount,
    ::testing::Values(Count{"alexnet", 61100840}, Count{"alexnet-original", 60965224},  // Caffe's bvlc_alexnet
                      Count{"googlenet", 6624904},
                      // the paper's layout: 5×5 convolutions, biases, no batch norm
                      Count{"googlenet-original", 6998552}, Count{"resnet18", 11689512},
                      Count{"resnet34", 21797672}, Count{"resnet50", 25557032}, Count{"resnet101", 44549160},
                      Count{"resnet152", 60192808}),
    [](const ::testing::TestParamInfo<Count>& info) {
      std::string n = info.param.name;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

TEST(GoogLeNet, AuxiliaryHeadsAddTorchvisionsCount) {
  EXPECT_EQ(build("googlenet", ModelOptions().aux_logits(true)).parameter_count(), 13004888);
}

TEST(Zoo, OtherClassCountsChangeOnlyTheLastLayer) {
  // resnet18's fc: 512·1000 + 1000 → 512·10 + 10
  EXPECT_EQ(build("resnet18", ModelOptions().num_classes(10)).parameter_count(), 11689512 - 513000 + 5130);
  // alexnet's first conv: 3 → 1 input channel
  EXPECT_EQ(build("alexnet", ModelOptions().in_channels(1)).parameter_count(), 61100840 - 2 * 64 * 121);
}

TEST(Zoo, BatchNormBuffersAreNotParameters) {
  const Sequential<float> r = build("resnet18");
  // running mean and variance of every BatchNorm2d: twice the number of BN channels
  EXPECT_EQ(r.buffer_count(), 2 * (64 + 2 * 2 * 64 + (2 * 128 * 2 + 128) + (2 * 256 * 2 + 256) + (2 * 512 * 2 + 512)));
  EXPECT_EQ(build("vgg16").buffer_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Names and shapes equal torchvision's

std::map<std::string, Shape> read_reference(const std::string& model) {
  // Beside this source file (CMake compiles it by its absolute path).
  const std::string here = __FILE__;
  const std::string path = here.substr(0, here.find_last_of('/')) + "/torchvision/" + model + ".txt";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::map<std::string, Shape> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream is(line);
    std::string name;
    is >> name;
    std::vector<Index> dims;
    Index d;
    while (is >> d) dims.push_back(d);
    out[name] = Shape(dims.data(), static_cast<int>(dims.size()));
  }
  return out;
}

void expect_same_entries(Sequential<float>& net, const std::string& reference) {
  const std::map<std::string, Shape> expected = read_reference(reference);
  ASSERT_FALSE(expected.empty());
  std::map<std::string, Shape> got;
  for (const auto& p : net.named_parameters()) {
    EXPECT_TRUE(got.emplace(p.name, p.param->value.shape()).second) << "duplicate name " << p.name;
  }
  for (const auto& [name, shape] : expected) {
    const auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << reference << ": convkit has no '" << name << "'";
      continue;
    }
    EXPECT_EQ(it->second, shape) << reference << ": " << name;
  }
  for (const auto& [name, shape] : got)
    EXPECT_TRUE(expected.count(name)) << reference << ": convkit has an extra '" << name << "' " << shape;
}

TEST(TorchvisionNames, AlexNet) {
  auto net = build("alexnet");
  expect_same_entries(net, "alexnet");
}
TEST(TorchvisionNames, Vgg16) {
  auto net = build("vgg16");
  expect_same_entries(net, "vgg16");
}
TEST(TorchvisionNames, Vgg11WithBatchNorm) {
  auto net = build("vgg11-bn");
  expect_same_entries(net, "vgg11_bn");
}
TEST(TorchvisionNames, GoogLeNetWithAuxiliaryHeads) {
  auto net = build("googlenet", ModelOptions().aux_logits(true));
  expect_same_entries(net, "googlenet_aux");
}
TEST(TorchvisionNames, ResNet18) {
  auto net = build("resnet18");
  expect_same_entries(net, "resnet18");
}
TEST(TorchvisionNames, ResNet50) {
  auto net = build("resnet50");
  expect_same_entries(net, "resnet50");
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// The output shape of each named top-level child for `input`.
std::map<std::string, Shape> stage_shapes(const Sequential<float>& net, const Shape& input) {
  std::map<std::string, Shape> out;
  Shape s = input;
  for (Index i = 0; i < net.size(); ++i) {
    s = net[i].output_shape(s);
    out[net.name(i)] = s;
  }
  return out;
}

TEST(ResNet, StageShapesAt224AndAt32) {
  for (const char* name : {"resnet18", "resnet50"}) {
    const Index e = std::string(name) == "resnet50" ? 4 : 1;
    const auto s = stage_shapes(build(name), Shape{2, 3, 224, 224});
    EXPECT_EQ(s.at("maxpool"), (Shape{2, 64, 56, 56})) << name;
    EXPECT_EQ(s.at("layer1"), (Shape{2, 64 * e, 56, 56})) << name;
    EXPECT_EQ(s.at("layer2"), (Shape{2, 128 * e, 28, 28})) << name;
    EXPECT_EQ(s.at("layer3"), (Shape{2, 256 * e, 14, 14})) << name;
    EXPECT_EQ(s.at("layer4"), (Shape{2, 512 * e, 7, 7})) << name;
    EXPECT_EQ(s.at("fc"), (Shape{2, 1000})) << name;
    const auto c = stage_shapes(build(name, ModelOptions().num_classes(10)), Shape{1, 3, 32, 32});
    EXPECT_EQ(c.at("layer4"), (Shape{1, 512 * e, 1, 1})) << name;
    EXPECT_EQ(c.at("fc"), (Shape{1, 10})) << name;
  }
}

TEST(GoogLeNet, InceptionOutputsFollowThePapersTable) {
  for (const char* name : {"googlenet", "googlenet-original"}) {
    const auto s = stage_shapes(build(name), Shape{1, 3, 224, 224});
    EXPECT_EQ(s.at("conv1"), (Shape{1, 64, 112, 112})) << name;
    EXPECT_EQ(s.at("maxpool1"), (Shape{1, 64, 56, 56})) << name;
    EXPECT_EQ(s.at("maxpool2"), (Shape{1, 192, 28, 28})) << name;
    EXPECT_EQ(s.at("inception3a"), (Shape{1, 256, 28, 28})) << name;
    EXPECT_EQ(s.at("inception3b"), (Shape{1, 480, 28, 28})) << name;
    EXPECT_EQ(s.at("inception4a"), (Shape{1, 512, 14, 14})) << name;
    EXPECT_EQ(s.at("inception4b"), (Shape{1, 512, 14, 14})) << name;
    EXPECT_EQ(s.at("inception4c"), (Shape{1, 512, 14, 14})) << name;
    EXPECT_EQ(s.at("inception4d"), (Shape{1, 528, 14, 14})) << name;
    EXPECT_EQ(s.at("inception4e"), (Shape{1, 832, 14, 14})) << name;
    EXPECT_EQ(s.at("inception5a"), (Shape{1, 832, 7, 7})) << name;
    EXPECT_EQ(s.at("inception5b"), (Shape{1, 1024, 7, 7})) << name;
    EXPECT_EQ(s.at("fc"), (Shape{1, 1000})) << name;
  }
}

/// Layers with weights (Conv2d, FullyConnected) on the deepest path from input to output.
Index weight_depth(Layer<float>& layer) {
  if (dynamic_cast<convkit::Conv2d<float>*>(&layer) || dynamic_cast<convkit::FullyConnected<float>*>(&layer))
    return 1;
  if (dynamic_cast<convkit::Concat<float>*>(&layer)) {
    Index deepest = 0;
    layer.visit_children([&](const std::string&, Layer<float>& b) { deepest = std::max(deepest, weight_depth(b)); });
    return deepest;
  }
  if (dynamic_cast<convkit::AuxiliaryHead<float>*>(&layer)) return 0;  // a side branch
  Index total = 0;
  layer.visit_children([&](const std::string&, Layer<float>& c) { total += weight_depth(c); });
  return total;
}

TEST(GoogLeNet, TwentyTwoLayersDeepWithNineInceptionModules) {
  for (const char* name : {"googlenet", "googlenet-original"}) {
    auto net = build(name, ModelOptions().aux_logits(true));
    EXPECT_EQ(weight_depth(net), 22) << name;
    EXPECT_EQ(convkit::find_layers<convkit::Concat<float>>(net).size(), 9u) << name;
    EXPECT_EQ(convkit::find_layers<convkit::AuxiliaryHead<float>>(net).size(), 2u) << name;
  }
}

TEST(GoogLeNet, LayoutsDiffer) {
  auto tv = build("googlenet"), orig = build("googlenet-original");
  EXPECT_EQ(convkit::find_layers<convkit::LRN<float>>(tv).size(), 0u);
  EXPECT_EQ(convkit::find_layers<convkit::LRN<float>>(orig).size(), 2u);
  EXPECT_EQ(convkit::find_layers<convkit::BatchNorm2d<float>>(tv).size(), 57u);  // one per conv
  EXPECT_EQ(convkit::find_layers<convkit::BatchNorm2d<float>>(orig).size(), 0u);
  auto& tv3 = dynamic_cast<convkit::Conv2d<float>&>(
      dynamic_cast<Sequential<float>&>(dynamic_cast<Sequential<float>&>(
          dynamic_cast<convkit::Concat<float>&>(tv.child("inception3a")).branch("branch3"))[1]).child("conv"));
  auto& orig3 = dynamic_cast<convkit::Conv2d<float>&>(
      dynamic_cast<Sequential<float>&>(dynamic_cast<Sequential<float>&>(
          dynamic_cast<convkit::Concat<float>&>(orig.child("inception3a")).branch("branch3"))[1]).child("conv"));
  EXPECT_EQ(tv3.options().kernel_h(), 3);  // torchvision's deviation from the paper
  EXPECT_EQ(orig3.options().kernel_h(), 5);
}


// Each configuration is built once (VGG takes seconds to initialise): exact count (torchvision's
// for A, B, D, E and the BN variants), the paper's millions (Table 2: 133, 133, 133, 134, 138,
// 144), the number of weight layers (11, 11, 13, 16, 16, 19) and the 7×7 feature map.
struct VggCase {
  const char* name;
  Index params;
  double millions;
  Index convs;
  Index batch_norms;
};

class VggConfiguration : public ::testing::TestWithParam<VggCase> {};

TEST_P(VggConfiguration, CountsDepthAndFeatureShape) {
  const VggCase c = GetParam();
  auto net = build(c.name);
  const Index n = net.parameter_count();
  EXPECT_EQ(n, c.params) << c.name;
  EXPECT_EQ(std::round(static_cast<double>(n) / 1e6), c.millions) << c.name << ": " << n;
  EXPECT_EQ(static_cast<Index>(convkit::find_layers<convkit::Conv2d<float>>(net).size()), c.convs) << c.name;
  EXPECT_EQ(static_cast<Index>(convkit::find_layers<convkit::FullyConnected<float>>(net).size()), 3) << c.name;
  EXPECT_EQ(static_cast<Index>(convkit::find_layers<convkit::BatchNorm2d<float>>(net).size()), c.batch_norms);
  EXPECT_EQ(weight_depth(net), c.convs + 3) << c.name;
  EXPECT_EQ(convkit::find_layers<convkit::LRN<float>>(net).size(), std::string(c.name) == "vgg-a-lrn" ? 1u : 0u);
  EXPECT_EQ(net.child("features").output_shape(Shape{1, 3, 224, 224}), (Shape{1, 512, 7, 7})) << c.name;
  EXPECT_EQ(net.output_shape(Shape{1, 3, 224, 224}), (Shape{1, 1000})) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, VggConfiguration,
    ::testing::Values(VggCase{"vgg-a", 132863336, 133, 8, 0}, VggCase{"vgg-a-lrn", 132863336, 133, 8, 0},
                      VggCase{"vgg-b", 133047848, 133, 10, 0},
                      // C = B + 1×1 convolutions 256→256 and twice 512→512
                      VggCase{"vgg-c", 133047848 + (256 * 256 + 256) + 2 * (512 * 512 + 512), 134, 13, 0},
                      VggCase{"vgg16", 138357544, 138, 13, 0}, VggCase{"vgg19", 143667240, 144, 16, 0},
                      VggCase{"vgg11-bn", 132868840, 133, 8, 8}, VggCase{"vgg16-bn", 138365992, 138, 13, 13}),
    [](const ::testing::TestParamInfo<VggCase>& info) {
      std::string n = info.param.name;
      for (char& ch : n)
        if (ch == '-') ch = '_';
      return n;
    });

TEST(AlexNet, FeatureShapesOfBothLayouts) {
  EXPECT_EQ(build("alexnet").child("features").output_shape(Shape{1, 3, 224, 224}), (Shape{1, 256, 6, 6}));
  auto orig = build("alexnet-original");
  const auto s = stage_shapes(orig, Shape{1, 3, 227, 227});
  EXPECT_EQ(s.at("features"), (Shape{1, 256, 6, 6}));
  EXPECT_EQ(s.at("classifier"), (Shape{1, 1000}));
  EXPECT_EQ(convkit::find_layers<convkit::LRN<float>>(orig).size(), 2u);
  // the two-GPU split: conv2, conv4 and conv5 have groups = 2
  Index grouped = 0;
  for (auto* c : convkit::find_layers<convkit::Conv2d<float>>(orig)) grouped += c->options().params().groups == 2;
  EXPECT_EQ(grouped, 3);
  // The classifier's fan-in follows the input size: at 224 the features end at 5×5.
  auto small = build("alexnet-original", ModelOptions().input_size(224));
  EXPECT_EQ(small.parameter_count(), 60965224 - 256 * (36 - 25) * 4096);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(ZooErrors, InputTooSmallNamesTheModelAndTheLayer) {
  const std::string a = message_of<ShapeError>([] { build("alexnet", ModelOptions().input_size(32)); });
  EXPECT_TRUE(contains(a, "alexnet: input (1, 3, 32, 32) does not fit: features.12: MaxPool2d(k=3x3, s=2, p=0): "
                          "expected input")) << a;
  const std::string g = message_of<ShapeError>([] { build("googlenet-original", ModelOptions().input_size(64).aux_logits(true)); });
  EXPECT_TRUE(contains(g, "googlenet auxiliary head: input (1, 512, 4, 4) does not fit: pool: AvgPool2d(k=5x5")) << g;
}

TEST(ZooErrors, BadOptionsAndUnknownNames) {
  const std::string c = message_of<ValueError>([] { build("resnet18", ModelOptions().num_classes(0)); });
  EXPECT_TRUE(contains(c, "resnet18: expected num_classes >= 1")) << c;
  Rng rng(1);
  const std::string d = message_of<ValueError>([&] { convkit::models::resnet<float>(20, rng); });
  EXPECT_EQ(d, "resnet: expected depth 18, 34, 50, 101 or 152, got 20");
  const std::string u = message_of<ValueError>([] { build("resnet19"); });
  EXPECT_TRUE(contains(u, "models::build: unknown model 'resnet19'; known: lenet5, alexnet")) << u;
  EXPECT_TRUE(contains(u, "resnet152")) << u;
}

TEST(Zoo, EveryNameBuilds) {
  // The cheap ones at a small input; the big ones are covered by the counts above.
  for (const std::string& name : convkit::models::model_names()) {
    if (name.compare(0, 3, "vgg") == 0 || name.compare(0, 7, "alexnet") == 0 || name == "resnet101" ||
        name == "resnet152")
      continue;
    ModelOptions o;
    if (name != "lenet5") o.num_classes(7).input_size(64);
    auto net = build(name, o);
    const Index size = name == "lenet5" ? 32 : 64;
    const Shape in{1, name == "lenet5" ? 1 : 3, size, size};
    EXPECT_EQ(net.output_shape(in), (Shape{1, name == "lenet5" ? 10 : 7})) << name;
  }
}

}  // namespace
