// conv2d on real layer shapes of AlexNet, GoogLeNet, ResNet-50 and VGG-19, read at test time
// from the oneDNN benchdnn shape lists in ../shared/benchdnn_shapes/conv/ (README.md there
// gives the descriptor syntax), at batch 1 or 2 and, where stated, a reduced spatial size.
// Forward in float and double, data and weight gradients in double, against the references.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <algorithm>
#include <map>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>

#include <convkit/ops/conv2d.h>

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

using testing::ref::all_close;

/// One benchdnn convolution descriptor, with the README's defaults filled in.
struct ConvDescriptor {
  std::string name;
  Index g = 1, mb = 2, ic = 0, ih = 0, iw = 0, oc = 0, oh = 0, ow = 0, kh = 0, kw = 0;
  Index sh = 1, sw = 1, ph = 0, pw = 0, dh = 0, dw = 0;  // dh, dw: dilation minus one
};

/// Parses `g2mb256ic96ih27oc256oh27kh5ph2n"alexnet:conv2"`; the name loses a `*N` suffix.
/// Returns nothing for comments and blank lines.
/// @throws std::runtime_error on a key it does not know.
std::optional<ConvDescriptor> parse_descriptor(const std::string& line) {
  const std::string text = line.substr(0, line.find('#'));
  std::map<std::string, Index> kv;
  std::string name;
  std::size_t i = 0;
  while (i < text.size()) {
    const char ch = text[i];
    if (std::isspace(static_cast<unsigned char>(ch)) || ch == '_') {
      ++i;
    } else if (ch == 'n' && i + 1 < text.size() && text[i + 1] == '"') {
      const std::size_t end = text.find('"', i + 2);
      name = text.substr(i + 2, end - (i + 2));
      i = end == std::string::npos ? text.size() : end + 1;
    } else if (std::isalpha(static_cast<unsigned char>(ch))) {
      std::size_t j = i;
      while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
      std::size_t k = j;
      while (k < text.size() && std::isdigit(static_cast<unsigned char>(text[k]))) ++k;
      if (k == j) throw std::runtime_error("descriptor key without value in: " + line);
      kv[text.substr(i, j - i)] = std::stoll(text.substr(j, k - j));
      i = k;
    } else {
      throw std::runtime_error("unexpected character in descriptor: " + line);
    }
  }
  if (kv.empty()) return std::nullopt;
  ConvDescriptor d;
  d.name = name.substr(0, name.find('*'));
  auto get = [&](const char* key, Index fallback) {
    auto it = kv.find(key);
    if (it == kv.end()) return fallback;
    const Index v = it->second;
    kv.erase(it);
    return v;
  };
  d.g = get("g", 1), d.mb = get("mb", 2), d.ic = get("ic", 0), d.oc = get("oc", 0);
  d.ih = get("ih", 1), d.iw = get("iw", d.ih), d.oh = get("oh", 1), d.ow = get("ow", d.oh);
  d.kh = get("kh", 1), d.kw = get("kw", d.kh), d.sh = get("sh", 1), d.sw = get("sw", d.sh);
  d.ph = get("ph", 0), d.pw = get("pw", d.ph), d.dh = get("dh", 0), d.dw = get("dw", d.dh);
  if (!kv.empty()) throw std::runtime_error("unknown key '" + kv.begin()->first + "' in: " + line);
  return d;
}

/// The descriptor named `name` in ../shared/benchdnn_shapes/conv/<file>, or nothing.
std::optional<ConvDescriptor> find_descriptor(const std::string& file, const std::string& name) {
  std::ifstream in(std::string(CONVKIT_SHARED_DIR) + "/benchdnn_shapes/conv/" + file);
  std::string line;
  while (std::getline(in, line)) {
    const auto d = parse_descriptor(line);
    if (d && d->name == name) return d;
  }
  return std::nullopt;
}

TEST(BenchdnnDescriptor, ParsesDefaultsAndDilationMinusOne) {
  const auto a = parse_descriptor(R"(g2mb256ic96ih27oc256oh27kh5ph2n"alexnet:conv2")");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->name, "alexnet:conv2");
  EXPECT_EQ(a->g, 2);
  EXPECT_EQ(a->mb, 256);
  EXPECT_EQ(a->iw, 27);
  EXPECT_EQ(a->kw, 5);
  EXPECT_EQ(a->sw, 1);
  EXPECT_EQ(a->pw, 2);
  EXPECT_EQ(a->dh, 0);
  const auto b = parse_descriptor(R"(mb2ic8ih9oc4oh5kh3sh1ph2dh1n"x:dil*3"   # comment)");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->name, "x:dil");
  EXPECT_EQ(b->dh, 1);
  EXPECT_EQ(b->dw, 1);
  EXPECT_FALSE(parse_descriptor("# mb96ic256ih28oc128oh28kh1ph0n\"commented\"").has_value());
  EXPECT_FALSE(parse_descriptor("").has_value());
}

/// A layer to test: file, name, batch, and a cap on the input's spatial size (0: full size).
struct LayerCase {
  const char* test_name;
  const char* file;
  const char* layer;
  Index batch;
  Index max_spatial;
};

std::ostream& operator<<(std::ostream& os, const LayerCase& c) {
  return os << c.file << " " << c.layer << " at batch " << c.batch;
}

const LayerCase kLayers[] = {
    {"alexnet_conv2_grouped", "shapes_alexnet", "alexnet:conv2", 1, 0},
    {"alexnet_conv4_grouped", "shapes_alexnet", "alexnet:conv4", 2, 0},
    {"googlenet_conv1_7x7_s2_at_56", "shapes_googlenet_v1", "googlenet_v1:conv1/7x7_s2", 1, 56},
    {"googlenet_3a_1x1", "shapes_googlenet_v1", "googlenet_v1:inception_3a/1x1", 2, 0},
    {"googlenet_3a_3x3", "shapes_googlenet_v1", "googlenet_v1:inception_3a/3x3", 1, 0},
    {"googlenet_3a_5x5", "shapes_googlenet_v1", "googlenet_v1:inception_3a/5x5", 2, 0},
    {"resnet50_res3a_branch1_1x1_s2", "shapes_resnet_50", "resnet_50:res3a_branch1", 1, 0},
    {"resnet50_res4a_branch2a_1x1_s2", "shapes_resnet_50", "resnet_50:res4a_branch2a", 2, 0},
    {"resnet50_res3a_branch2b_3x3", "shapes_resnet_50", "resnet_50:res3a_branch2b", 1, 0},
    {"vgg19_conv1_2_at_56", "shapes_vgg_19", "vgg_19:conv1_2", 1, 56},
    {"vgg19_conv4_2_at_7", "shapes_vgg_19", "vgg_19:conv4_2", 1, 7},
};

class Conv2dRealShapes : public ::testing::TestWithParam<LayerCase> {
 protected:
  void SetUp() override {
    const LayerCase& c = GetParam();
    const std::string dir = std::string(CONVKIT_SHARED_DIR) + "/benchdnn_shapes/conv/";
    if (!std::ifstream(dir + c.file).good())
      GTEST_SKIP() << "shape list " << dir << c.file << " not found";
    const auto d = find_descriptor(c.file, c.layer);
    ASSERT_TRUE(d.has_value()) << "no layer " << c.layer << " in " << dir << c.file;
    desc_ = *d;
    params_.stride_h = desc_.sh, params_.stride_w = desc_.sw;
    params_.pad_h = desc_.ph, params_.pad_w = desc_.pw;
    params_.dilation_h = desc_.dh + 1, params_.dilation_w = desc_.dw + 1;
    params_.groups = desc_.g;
    Index ih = desc_.ih, iw = desc_.iw;
    if (c.max_spatial > 0) {
      ih = std::min(ih, c.max_spatial);
      iw = std::min(iw, c.max_spatial);
    }
    x_shape_ = Shape{c.batch, desc_.ic, ih, iw};
    w_shape_ = Shape{desc_.oc, desc_.ic / desc_.g, desc_.kh, desc_.kw};

    std::uint64_t seed = 2000;  // + the layer's position in kLayers
    while (std::string(kLayers[seed - 2000].test_name) != c.test_name) ++seed;
    Rng rng = testing::seeded_rng(seed);
    x_ = testing::ref::uniform<double>(x_shape_, rng);
    const double scale = 1.0 / std::sqrt(static_cast<double>(w_shape_.numel() / desc_.oc));
    w_ = testing::ref::uniform<double>(w_shape_, rng, -scale, scale);
    b_ = testing::ref::uniform<double>(Shape{desc_.oc}, rng);
    const ops::ConvGeometry g = ops::conv2d_geometry(x_shape_, w_shape_, params_);
    dy_ = testing::ref::uniform<double>(Shape{c.batch, desc_.oc, g.oh, g.ow}, rng);
  }

  ConvDescriptor desc_;
  ops::Conv2dParams params_;
  Shape x_shape_, w_shape_;
  Tensor<double> x_, w_, b_, dy_;
};

// At the layer's full size the op's output size equals the one the shape list states.
TEST_P(Conv2dRealShapes, OutputSizeMatchesShapeList) {
  const Shape full{GetParam().batch, desc_.ic, desc_.ih, desc_.iw};
  const ops::ConvGeometry g = ops::conv2d_geometry(full, w_shape_, params_);
  EXPECT_EQ(g.oh, desc_.oh);
  EXPECT_EQ(g.ow, desc_.ow);
}

TEST_P(Conv2dRealShapes, ForwardFloat) {
  const Tensor<float> x = testing::ref::cast<float>(x_), w = testing::ref::cast<float>(w_),
                      b = testing::ref::cast<float>(b_);
  ops::Workspace<float> ws;
  EXPECT_TRUE(all_close(ops::conv2d_forward(x, w, &b, params_, ws),
                        testing::ref::conv2d_forward(x, w, &b, params_), 1e-4))
      << GetParam();
}

TEST_P(Conv2dRealShapes, ForwardDouble) {
  ops::Workspace<double> ws;
  EXPECT_TRUE(all_close(ops::conv2d_forward(x_, w_, &b_, params_, ws),
                        testing::ref::conv2d_forward(x_, w_, &b_, params_), 1e-12))
      << GetParam();
}

TEST_P(Conv2dRealShapes, BackwardDataDouble) {
  ops::Workspace<double> ws;
  EXPECT_TRUE(all_close(ops::conv2d_backward_data(dy_, w_, x_shape_, params_, ws),
                        testing::ref::conv2d_backward_data(dy_, w_, x_shape_, params_), 1e-12))
      << GetParam();
}

TEST_P(Conv2dRealShapes, BackwardWeightDouble) {
  ops::Workspace<double> ws;
  Tensor<double> gw(w_shape_), gb(Shape{desc_.oc});
  ops::conv2d_backward_weight(x_, dy_, params_, gw, &gb, ws);
  const auto expected = testing::ref::conv2d_backward_weight(x_, dy_, w_shape_, params_);
  EXPECT_TRUE(all_close(gw, expected.weight, 1e-12)) << GetParam();
  EXPECT_TRUE(all_close(gb, expected.bias, 1e-12)) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Benchdnn, Conv2dRealShapes, ::testing::ValuesIn(kLayers),
                         [](const ::testing::TestParamInfo<LayerCase>& info) {
                           return std::string(info.param.test_name);
                         });

}  // namespace
}  // namespace convkit
