// bench_conv2d — float conv2d forward, data gradient and weight gradient through the public
// ops API (ops::conv2d_forward / conv2d_backward_data / conv2d_backward_weight), on layer
// shapes from LeNet-5, VGG and ResNet.
//
// Every pass reports GFLOP/s for the same nominal count, 2·N·OC·OH·OW·(C/g)·KH·KW, so the
// three passes of a layer compare directly. As in Conv2d, one Workspace lives across all
// iterations of a benchmark, so the steady state allocates only the returned tensor; one
// untimed call before the timed loop grows the workspace (a layer's first step).
//
// Benchmarks are named conv2d/<layer>/<pass>; the passes are
//   fwd             y = W ⋆ x + b                     (what Conv2d::forward does)
//   bwd_data        dX                                (flipped-filter convolution)
//   bwd_weight      dW += dY · colᵀ, db += Σ dY       (what Conv2d::backward does for the weights)
//   fwd_nobias, bwd_weight_nobias: the same without the bias, to price the bias passes.
// The GEMMs and im2col unfoldings these passes lower to are timed alone in bench_gemm.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <string>

#include "convkit/core/rng.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/conv2d.h"
#include "convkit/ops/workspace.h"

namespace {

using convkit::Index;
using convkit::Shape;
using convkit::Tensor;
namespace ops = convkit::ops;

/// One convolution layer: input (n, c, h, w), oc filters of k x k, square stride and padding.
/// Keep this table in step with the one in bench_gemm.cpp.
struct LayerSpec {
  const char* name;
  Index n, c, h, w, oc, k, stride, pad;
};

const LayerSpec kLayers[] = {
    // The four layers of the required table.
    {"lenet_c1", 64, 1, 32, 32, 6, 5, 1, 0},          // 1->6, 5x5, 32x32 -> 28x28
    {"lenet_c3", 64, 6, 14, 14, 16, 5, 1, 0},         // 6->16, 5x5, 14x14 -> 10x10
    {"vgg_3x3_256", 1, 256, 56, 56, 256, 3, 1, 1},    // VGG conv3_x, 56x56
    {"resnet_1x1_1024_256", 2, 1024, 14, 14, 256, 1, 1, 0},  // ResNet-50 conv4_x reduce
    // Extra shapes: a large-plane 1x1, and two stride-2 layers for the zero-insertion cost.
    {"resnet_1x1_256_64", 1, 256, 56, 56, 64, 1, 1, 0},      // ResNet-50 conv2_x reduce
    {"resnet_1x1s2_256_512", 1, 256, 56, 56, 512, 1, 2, 0},  // ResNet-50 conv3_1 projection
    {"resnet_3x3s2_128", 1, 128, 56, 56, 128, 3, 2, 1},      // ResNet-50 conv3_1 3x3 (v1.5)
};

ops::Conv2dParams params_of(const LayerSpec& l) {
  ops::Conv2dParams p;
  p.stride_h = p.stride_w = l.stride;
  p.pad_h = p.pad_w = l.pad;
  return p;
}

Shape input_shape(const LayerSpec& l) { return Shape{l.n, l.c, l.h, l.w}; }
Shape weight_shape(const LayerSpec& l) { return Shape{l.oc, l.c, l.k, l.k}; }
Shape output_shape(const LayerSpec& l) {
  const Index oh = ops::conv2d_output_size(l.h, l.k, l.stride, l.pad, 1);
  const Index ow = ops::conv2d_output_size(l.w, l.k, l.stride, l.pad, 1);
  return Shape{l.n, l.oc, oh, ow};
}

/// 2·N·OC·OH·OW·C·KH·KW: one multiply and one add per weight per output pixel.
double nominal_flops(const LayerSpec& l) {
  const Shape y = output_shape(l);
  return 2.0 * static_cast<double>(y.numel()) * static_cast<double>(l.c * l.k * l.k);
}

Tensor<float> random_tensor(const Shape& shape, convkit::Rng& rng) {
  Tensor<float> t(shape);
  for (float& v : t) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  return t;
}

void set_counters(benchmark::State& state, const LayerSpec& l) {
  // Iteration-invariant rate: value · iterations / CPU seconds; prints as "GFLOP=<n>/s".
  state.counters["GFLOP"] =
      benchmark::Counter(nominal_flops(l) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bm_forward(benchmark::State& state, LayerSpec l, bool with_bias) {
  convkit::Rng rng(1);
  const Tensor<float> x = random_tensor(input_shape(l), rng);
  const Tensor<float> w = random_tensor(weight_shape(l), rng);
  const Tensor<float> b = random_tensor(Shape{l.oc}, rng);
  const ops::Conv2dParams p = params_of(l);
  ops::Workspace<float> ws;
  ops::conv2d_forward(x, w, with_bias ? &b : nullptr, p, ws);  // warm-up: sizes the workspace
  for (auto _ : state) {
    Tensor<float> y = ops::conv2d_forward(x, w, with_bias ? &b : nullptr, p, ws);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, l);
  state.counters["ws_MiB"] = static_cast<double>(ws.bytes()) / (1024.0 * 1024.0);
}

void bm_backward_data(benchmark::State& state, LayerSpec l) {
  convkit::Rng rng(2);
  const Tensor<float> dy = random_tensor(output_shape(l), rng);
  const Tensor<float> w = random_tensor(weight_shape(l), rng);
  const Shape in = input_shape(l);
  const ops::Conv2dParams p = params_of(l);
  ops::Workspace<float> ws;
  ops::conv2d_backward_data(dy, w, in, p, ws);  // warm-up: sizes the workspace
  for (auto _ : state) {
    Tensor<float> dx = ops::conv2d_backward_data(dy, w, in, p, ws);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, l);
  state.counters["ws_MiB"] = static_cast<double>(ws.bytes()) / (1024.0 * 1024.0);
}

void bm_backward_weight(benchmark::State& state, LayerSpec l, bool with_bias) {
  convkit::Rng rng(3);
  const Tensor<float> x = random_tensor(input_shape(l), rng);
  const Tensor<float> dy = random_tensor(output_shape(l), rng);
  Tensor<float> dw(weight_shape(l));  // accumulated into, as the layer does between zero_grad()s
  Tensor<float> db(Shape{l.oc});
  const ops::Conv2dParams p = params_of(l);
  ops::Workspace<float> ws;
  ops::conv2d_backward_weight(x, dy, p, dw, with_bias ? &db : nullptr, ws);  // warm-up
  for (auto _ : state) {
    ops::conv2d_backward_weight(x, dy, p, dw, with_bias ? &db : nullptr, ws);
    benchmark::DoNotOptimize(dw.data());
    benchmark::DoNotOptimize(db.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, l);
  state.counters["ws_MiB"] = static_cast<double>(ws.bytes()) / (1024.0 * 1024.0);
}

void register_all() {
  // The no-bias variants run right after their with-bias twins, so the machine's drift over
  // the run does not leak into the difference.
  for (const LayerSpec& l : kLayers) {
    const std::string base = std::string("conv2d/") + l.name + "/";
    auto add = [](const std::string& name, auto&&... args) {
      benchmark::RegisterBenchmark(name.c_str(), args...)->Unit(benchmark::kMicrosecond);
    };
    add(base + "fwd", bm_forward, l, true);
    add(base + "fwd_nobias", bm_forward, l, false);
    add(base + "bwd_data", bm_backward_data, l);
    add(base + "bwd_weight", bm_backward_weight, l, true);
    add(base + "bwd_weight_nobias", bm_backward_weight, l, false);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
  benchmark::AddCustomContext("conv_column_budget", std::to_string(ops::kConvColumnBudget));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
