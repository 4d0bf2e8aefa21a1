// summary(model, input, max_depth): nested paths indented by depth, each row's shape,
// parameters and multiply-adds, the totals counting every layer once, and the buffers line
// that batch normalisation adds.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <convkit/containers/residual.h>
#include <convkit/containers/sequential.h>
#include <convkit/containers/summary.h>
#include <convkit/layers/adaptive_avg_pool2d.h>
#include <convkit/layers/batch_norm2d.h>
#include <convkit/layers/conv2d.h>
#include <convkit/layers/flatten.h>
#include <convkit/layers/fully_connected.h>
#include <convkit/layers/relu.h>

#include "support/expect.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;

using convkit::AdaptiveAvgPool2d;
using convkit::BatchNorm2d;
using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Flatten;
using convkit::FullyConnected;
using convkit::FullyConnectedOptions;
using convkit::ReLU;
using convkit::Residual;
using convkit::Rng;
using convkit::Sequential;
using convkit::Shape;
using convkit::ShapeError;
using convkit::testing::seeded_rng;

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(s);
  for (std::string l; std::getline(is, l);) out.push_back(l);
  return out;
}

std::vector<std::string> fields_of(const std::string& l) {
  std::vector<std::string> out;
  std::istringstream is(l);
  for (std::string w; is >> w;) out.push_back(w);
  return out;
}

/// The line that starts with `start` exactly (indentation included).
std::string row(const std::vector<std::string>& lines, const std::string& start) {
  for (const std::string& l : lines)
    if (l.compare(0, start.size(), start) == 0) return l;
  ADD_FAILURE() << "no line starts with '" << start << "'";
  return "";
}

/// stem Conv2d(3->4, k3, p1) -> bn BatchNorm2d(4) -> block Residual(conv1, relu, conv2; then
/// ReLU) -> pool AdaptiveAvgPool2d(1) -> flatten -> fc FC(4 -> 2), for (N, 3, H, W) inputs.
Sequential<float> small_resnet(Rng& rng, bool with_bn) {
  Sequential<float> net;
  net.add("stem", std::make_unique<Conv2d<float>>(Conv2dOptions(3, 4, 3).padding(1), rng));
  if (with_bn) net.add("bn", std::make_unique<BatchNorm2d<float>>(4));
  auto block = std::make_unique<Residual<float>>();
  block->add("conv1", std::make_unique<Conv2d<float>>(Conv2dOptions(4, 4, 3).padding(1), rng));
  block->add("relu", std::make_unique<ReLU<float>>());
  block->add("conv2", std::make_unique<Conv2d<float>>(Conv2dOptions(4, 4, 3).padding(1), rng));
  block->set_activation(std::make_unique<ReLU<float>>());
  net.add("block", std::move(block));
  net.add("pool", std::make_unique<AdaptiveAvgPool2d<float>>(1));
  net.add("flatten", std::make_unique<Flatten<float>>());
  net.add("fc", std::make_unique<FullyConnected<float>>(FullyConnectedOptions(4, 2), rng));
  return net;
}

TEST(Summary, NestedRowsAreIndentedWithTheirPathsShapesAndCounts) {
  Rng rng = seeded_rng(801);
  const Sequential<float> net = small_resnet(rng, /*with_bn=*/true);
  const std::string s = convkit::summary(net, Shape{1, 3, 8, 8}, 2);
  const std::vector<std::string> lines = lines_of(s);

  struct Expect {
    std::string start, layer, shape, params, macs;
  };
  // stem 3·4·9 + 4 parameters, 64·4 outputs × 27; conv1/conv2 4·4·9 + 4, 256 × 36; fc 4·2 + 2, 2 × 4.
  const std::vector<Expect> expected = {
      {"stem ", "Conv2d(3->4, k=3x3, s=1, p=1)", "(1, 4, 8, 8)", "112", "6912"},
      {"bn ", "BatchNorm2d(4, eps=1e-05, momentum=0.1)", "(1, 4, 8, 8)", "8", "0"},
      {"block ", "Residual(3 layers + identity, then ReLU)", "(1, 4, 8, 8)", "296", "18432"},
      {"  block.conv1 ", "Conv2d(4->4, k=3x3, s=1, p=1)", "(1, 4, 8, 8)", "148", "9216"},
      {"  block.relu ", "ReLU", "(1, 4, 8, 8)", "0", "0"},
      {"  block.conv2 ", "Conv2d(4->4, k=3x3, s=1, p=1)", "(1, 4, 8, 8)", "148", "9216"},
      {"  block.activation ", "ReLU", "(1, 4, 8, 8)", "0", "0"},
      {"pool ", "AdaptiveAvgPool2d(1x1)", "(1, 4, 1, 1)", "0", "0"},
      {"flatten ", "Flatten", "(1, 4)", "0", "0"},
      {"fc ", "FullyConnected(4->2)", "(1, 2)", "10", "8"},
  };
  for (const Expect& e : expected) {
    const std::string l = row(lines, e.start);
    EXPECT_TRUE(contains(l, e.layer)) << l;
    EXPECT_TRUE(contains(l, e.shape)) << l;
    const std::vector<std::string> f = fields_of(l);
    ASSERT_GE(f.size(), 2u) << l;
    EXPECT_EQ(f[f.size() - 2], e.params) << l;
    EXPECT_EQ(f.back(), e.macs) << l;
  }
  // Rows come in forward order, each nested row right after its container's.
  std::vector<std::string> order;
  for (const std::string& l : lines) {
    const std::vector<std::string> f = fields_of(l);
    if (!f.empty() && (f[0] == "stem" || f[0] == "block" || f[0] == "block.conv1" || f[0] == "block.activation" ||
                       f[0] == "fc"))
      order.push_back(f[0]);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"stem", "block", "block.conv1", "block.activation", "fc"}));

  // The totals count each layer once: trainable parameters and all multiply-adds.
  const std::vector<std::string> total = fields_of(row(lines, "total "));
  ASSERT_EQ(total.size(), 3u);
  EXPECT_EQ(total[1], "426");    // 112 + 8 + 296 + 10
  EXPECT_EQ(total[2], "25352");  // 6912 + 18432 + 8
  EXPECT_EQ(net.parameter_count(), 426);
  EXPECT_EQ(net.multiply_adds(Shape{1, 3, 8, 8}), 25352);
  // The batch norm's running statistics are listed apart.
  const std::vector<std::string> buffers = fields_of(row(lines, "buffers (not trained) "));
  ASSERT_FALSE(buffers.empty());
  EXPECT_EQ(buffers.back(), "8");
  EXPECT_EQ(net.buffer_count(), 8);
  // the input line
  EXPECT_TRUE(contains(s, "input")) << s;
  EXPECT_TRUE(contains(s, "(1, 3, 8, 8)")) << s;
}

TEST(Summary, DepthOneHidesNestedRowsAndNoBuffersLineWithoutBatchNorm) {
  Rng rng = seeded_rng(802);
  const Sequential<float> net = small_resnet(rng, /*with_bn=*/false);
  const std::string s1 = convkit::summary(net, Shape{2, 3, 6, 6}, 1);
  EXPECT_EQ(s1.find("block.conv1"), std::string::npos) << s1;
  EXPECT_EQ(s1.find("buffers"), std::string::npos) << s1;
  const std::vector<std::string> lines = lines_of(s1);
  // the block's row still counts its children: 2 × (4·4·9 + 4) parameters, 2 × 72·4·36 mult-adds
  const std::vector<std::string> block = fields_of(row(lines, "block "));
  ASSERT_GE(block.size(), 2u);
  EXPECT_EQ(block[block.size() - 2], "296");
  EXPECT_EQ(block.back(), std::to_string(2 * 2 * 36 * 4 * 36));
  const std::vector<std::string> total = fields_of(row(lines, "total "));
  ASSERT_EQ(total.size(), 3u);
  EXPECT_EQ(total[1], "418");
  EXPECT_EQ(total[2], std::to_string(2 * 36 * 4 * 27 + 2 * 2 * 36 * 4 * 36 + 2 * 2 * 4));
  // max_depth below 1 is taken as 1; the Sequential member gives the same table
  EXPECT_EQ(convkit::summary(net, Shape{2, 3, 6, 6}, 0), s1);
  EXPECT_EQ(net.summary(Shape{2, 3, 6, 6}), s1);
  // deeper than the tree changes nothing past depth 2
  EXPECT_EQ(convkit::summary(net, Shape{2, 3, 6, 6}, 5), convkit::summary(net, Shape{2, 3, 6, 6}, 2));
}

TEST(Summary, ErrorNamesTheNestedPath) {
  Rng rng = seeded_rng(803);
  Sequential<float> net;
  auto block = std::make_unique<Residual<float>>();
  block->add("conv1", std::make_unique<Conv2d<float>>(Conv2dOptions(3, 4, 3).padding(1), rng));
  net.add("block", std::move(block));
  const std::string msg = message_of<ShapeError>([&] { convkit::summary(net, Shape{1, 3, 5, 5}, 2); });
  EXPECT_TRUE(contains(msg, "block: Residual(1 layers + identity): expected the body and the shortcut to give one shape"))
      << msg;
  EXPECT_TRUE(contains(msg, "got body (1, 4, 5, 5) and identity shortcut (1, 3, 5, 5)")) << msg;
  const std::string child = message_of<ShapeError>([&] { convkit::summary(net, Shape{1, 2, 5, 5}, 2); });
  // the nested child's dotted path, before its description
  EXPECT_TRUE(contains(child, "block.conv1: Conv2d(3->4, k=3x3, s=1, p=1): expected input (N, 3, H, W)")) << child;
}

}  // namespace
