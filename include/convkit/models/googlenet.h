// convkit/models/googlenet.h — GoogLeNet, Inception v1 (Szegedy et al. 2014), two layouts.
//
// An inception module is a Concat of four branches on the same input:
//   branch1  1×1 conv (c1)
//   branch2  1×1 conv (c3r), 3×3 conv p1 (c3)
//   branch3  1×1 conv (c5r), 5×5 conv p2 (c5)      torchvision: 3×3 p1 (its known deviation)
//   branch4  3×3/1 p1 max pooling, 1×1 conv (pool projection)
// joined along the channels. The trunk (the paper's Table 1; output sizes at 224×224):
//   conv1 7×7/2 p3 64 (112), max 3/2 (56), conv2 1×1 64, conv3 3×3 p1 192, max 3/2 (28),
//   3a (256), 3b (480), max 3/2 (14), 4a (512), 4b, 4c (512), 4d (528), 4e (832), max (7),
//   5a (832), 5b (1024), global average pooling, dropout, FC 1024→classes
// 22 layers with weights on the deepest path (3 + 2 per inception module + 1). Poolings round
// up (ceil mode), as in Caffe and torchvision.
//
// googlenet(): torchvision's layout and names: every conv is conv (no bias) + BatchNorm2d
// (ε = 1e-3) + ReLU, named conv1.conv, conv1.bn, inception3a.branch2.1.conv ...; 2×2/2 fourth
// pooling; dropout 0.2; no LRN; 6,624,904 parameters at 1000 classes without auxiliary heads.
// Initialisation N(0, 0.01²) for conv and FC weights (torchvision's truncated normal at ±2 is
// the same distribution here), BN γ = 1, β = 0.
//
// googlenet_original(): the paper's layout: convolutions with bias and ReLU, no batch norm,
// LRN (size 5, α = 1e-4, β = 0.75, k = 1, Caffe's) after the first pooling and after conv3,
// 5×5 convolutions in branch3, 3×3/2 fourth pooling, dropout 0.4; Xavier-uniform weights and
// biases 0.2 (Caffe's bvlc_googlenet).
//
// ModelOptions::aux_logits adds the two auxiliary classifiers after 4a and 4d as AuxiliaryHead
// layers named aux1 and aux2 (loss weight 0.3, run in training mode only):
//   torchvision: AdaptiveAvgPool2d(4×4), 1×1 conv 128 (+BN, ReLU), FC 2048→1024, ReLU,
//                Dropout 0.7, FC 1024→classes
//   original:    5×5/3 average pooling, 1×1 conv 128 + ReLU, FC (128·4·4 at 224)→1024, ReLU,
//                Dropout 0.7, FC 1024→classes
#pragma once

#include <memory>
#include <string>

#include "convkit/containers/auxiliary_head.h"
#include "convkit/containers/concat.h"
#include "convkit/containers/sequential.h"
#include "convkit/layers/adaptive_avg_pool2d.h"
#include "convkit/layers/avg_pool2d.h"
#include "convkit/layers/batch_norm2d.h"
#include "convkit/layers/flatten.h"
#include "convkit/layers/global_avg_pool2d.h"
#include "convkit/layers/lrn.h"
#include "convkit/layers/max_pool2d.h"
#include "convkit/layers/relu.h"
#include "convkit/models/model_options.h"

namespace convkit::models {

namespace detail {

/// Builds the pieces of one GoogLeNet layout.
template <typename T>
class GoogLeNetBuilder {
 public:
  GoogLeNetBuilder(Rng& rng, bool original) : rng_(rng), original_(original) {}

  /// torchvision: Sequential{conv (no bias), bn, relu}; original: Sequential{conv, relu}.
  std::unique_ptr<Sequential<T>> basic_conv(Index in, Index out, Index k, Index stride = 1, Index pad = 0) {
    auto c = detail::conv<T>(rng_, in, out, k, stride, pad, /*bias=*/original_);
    if (original_) {
      init::xavier_uniform(c->weight().value, rng_);
      c->bias().value.fill(T(0.2));
    } else {
      init::normal(c->weight().value, 0.0, 0.01, rng_);
    }
    auto s = std::make_unique<Sequential<T>>();
    s->add("conv", std::move(c));
    if (!original_) s->add("bn", std::make_unique<BatchNorm2d<T>>(BatchNorm2dOptions(out).eps(1e-3)));
    s->add("relu", std::make_unique<ReLU<T>>());
    return s;
  }

  std::unique_ptr<FullyConnected<T>> fc(Index in, Index out) {
    auto f = detail::linear<T>(rng_, in, out);
    if (original_) {
      init::xavier_uniform(f->weight().value, rng_);
      f->bias().value.fill(T(0.2));
    } else {
      init::normal(f->weight().value, 0.0, 0.01, rng_);
    }
    return f;
  }

  std::unique_ptr<Concat<T>> inception(Index in, Index c1, Index c3r, Index c3, Index c5r, Index c5, Index proj) {
    auto m = std::make_unique<Concat<T>>();
    m->add("branch1", basic_conv(in, c1, 1));
    auto b2 = std::make_unique<Sequential<T>>();
    b2->add(basic_conv(in, c3r, 1));
    b2->add(basic_conv(c3r, c3, 3, 1, 1));
    m->add("branch2", std::move(b2));
    auto b3 = std::make_unique<Sequential<T>>();
    b3->add(basic_conv(in, c5r, 1));
    if (original_) b3->add(basic_conv(c5r, c5, 5, 1, 2));
    else b3->add(basic_conv(c5r, c5, 3, 1, 1));
    m->add("branch3", std::move(b3));
    auto b4 = std::make_unique<Sequential<T>>();
    b4->add(std::make_unique<MaxPool2d<T>>(Pool2dOptions(3).stride(1).padding(1).ceil_mode(true)));
    b4->add(basic_conv(in, proj, 1));
    m->add("branch4", std::move(b4));
    return m;
  }

  /// An auxiliary classifier on an (N, in, 14, 14)-sized activation (at 224×224 input).
  std::unique_ptr<AuxiliaryHead<T>> aux(Index in, Index classes, const Shape& at) {
    auto h = std::make_unique<Sequential<T>>();
    if (original_) h->add("pool", std::make_unique<AvgPool2d<T>>(Pool2dOptions(5).stride(3)));
    else h->add("pool", std::make_unique<AdaptiveAvgPool2d<T>>(4));
    h->add("conv", basic_conv(in, 128, 1));
    h->add("flatten", std::make_unique<Flatten<T>>());
    const Index fan_in = features_per_sample("googlenet auxiliary head", *h, at);
    h->add("fc1", fc(fan_in, 1024));
    h->add("relu", std::make_unique<ReLU<T>>());
    h->add("dropout", dropout<T>(rng_, 0.7));
    h->add("fc2", fc(1024, classes));
    return std::make_unique<AuxiliaryHead<T>>(std::move(h), 0.3);
  }

  Sequential<T> build(const ModelOptions& o, const char* name) {
    const Shape input = o.input_shape(224);
    auto pool = [](Index k) { return std::make_unique<MaxPool2d<T>>(Pool2dOptions(k).stride(2).ceil_mode(true)); };
    auto lrn = [] { return std::make_unique<LRN<T>>(LRNOptions(5).alpha(1e-4).beta(0.75).k(1.0)); };
    Sequential<T> net;
    net.add("conv1", basic_conv(o.in_channels(), 64, 7, 2, 3));
    net.add("maxpool1", pool(3));
    if (original_) net.add("lrn1", lrn());
    net.add("conv2", basic_conv(64, 64, 1));
    net.add("conv3", basic_conv(64, 192, 3, 1, 1));
    if (original_) net.add("lrn2", lrn());
    net.add("maxpool2", pool(3));
    net.add("inception3a", inception(192, 64, 96, 128, 16, 32, 32));
    net.add("inception3b", inception(256, 128, 128, 192, 32, 96, 64));
    net.add("maxpool3", pool(3));
    net.add("inception4a", inception(480, 192, 96, 208, 16, 48, 64));
    if (o.aux_logits()) net.add("aux1", aux(512, o.num_classes(), shape_so_far(net, input, name)));
    net.add("inception4b", inception(512, 160, 112, 224, 24, 64, 64));
    net.add("inception4c", inception(512, 128, 128, 256, 24, 64, 64));
    net.add("inception4d", inception(512, 112, 144, 288, 32, 64, 64));
    if (o.aux_logits()) net.add("aux2", aux(528, o.num_classes(), shape_so_far(net, input, name)));
    net.add("inception4e", inception(528, 256, 160, 320, 32, 128, 128));
    net.add("maxpool4", pool(original_ ? 3 : 2));
    net.add("inception5a", inception(832, 256, 160, 320, 32, 128, 128));
    net.add("inception5b", inception(832, 384, 192, 384, 48, 128, 128));
    if (original_) net.add("avgpool", std::make_unique<GlobalAvgPool2d<T>>());
    else net.add("avgpool", std::make_unique<AdaptiveAvgPool2d<T>>(1));
    net.add("flatten", std::make_unique<Flatten<T>>());
    net.add("dropout", dropout<T>(rng_, original_ ? 0.4 : 0.2));
    net.add("fc", fc(1024, o.num_classes()));
    check_input_fits(name, net, input);
    return net;
  }

 private:
  static Shape shape_so_far(const Sequential<T>& net, const Shape& input, const char* name) {
    check_input_fits(name, net, input);
    return net.output_shape(input);
  }

  Rng& rng_;
  bool original_;
};

}  // namespace detail

/// torchvision's GoogLeNet (see top).
/// @throws ValueError for bad options; ShapeError for an input under 15×15.
template <typename T>
Sequential<T> googlenet(Rng& rng, const ModelOptions& o = ModelOptions()) {
  detail::check_options("googlenet", o, 224);
  return detail::GoogLeNetBuilder<T>(rng, /*original=*/false).build(o, "googlenet");
}

/// The paper's GoogLeNet (see top).
/// @throws ValueError for bad options; ShapeError for an input too small for its poolings.
template <typename T>
Sequential<T> googlenet_original(Rng& rng, const ModelOptions& o = ModelOptions()) {
  detail::check_options("googlenet_original", o, 224);
  return detail::GoogLeNetBuilder<T>(rng, /*original=*/true).build(o, "googlenet_original");
}

}  // namespace convkit::models
