// bench_pool2d — float max and average pooling, forward and backward, through the public ops
// API (ops::max_pool2d_forward / max_pool2d_backward, avg_pool2d_forward / avg_pool2d_backward)
// on the pooling layers of LeNet-5, AlexNet, VGG, GoogLeNet and ResNet (batch sizes as the
// model benchmarks use them; the shapes are those of ../shared/benchdnn_shapes/pool/ at another
// batch). Named pool2d/<layer>/<pass>, pass one of max_fwd, max_bwd, avg_fwd, avg_bwd; each
// reports the input elements it reads per second (GB/s of float input as "Gelem/s").
// --threads=N (default 1) sets the OpenMP threads of the ops (built with OpenMP).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "convkit/core/rng.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/pool2d.h"

#include "bench_flags.h"

namespace {

using convkit::Index;
using convkit::Shape;
using convkit::Tensor;
namespace ops = convkit::ops;

struct PoolSpec {
  std::string name;
  Shape input;
  Index kernel, stride, pad;
};

const PoolSpec kPools[] = {
    {"lenet_s2", Shape{64, 6, 28, 28}, 2, 2, 0},          // LeNet-5 at batch 64
    {"lenet_s4", Shape{64, 16, 10, 10}, 2, 2, 0},
    {"vgg_pool1", Shape{1, 64, 224, 224}, 2, 2, 0},       // VGG-16 at batch 1
    {"vgg_pool5", Shape{1, 512, 14, 14}, 2, 2, 0},
    {"alexnet_pool1", Shape{1, 64, 55, 55}, 3, 2, 0},     // torchvision AlexNet
    {"resnet_stem", Shape{1, 64, 112, 112}, 3, 2, 1},     // ResNet-18/50
    {"googlenet_3a", Shape{1, 192, 28, 28}, 3, 1, 1},     // an inception branch's 3x3/1 pool
    {"googlenet_4a", Shape{1, 480, 14, 14}, 3, 1, 1},
};

ops::Pool2dParams params_of(const PoolSpec& s) {
  ops::Pool2dParams p;
  p.kernel_h = p.kernel_w = s.kernel;
  p.stride_h = p.stride_w = s.stride;
  p.pad_h = p.pad_w = s.pad;
  return p;
}

Tensor<float> random_tensor(const Shape& shape, convkit::Rng& rng) {
  Tensor<float> t(shape);
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<float>(rng.uniform(-1.0, 1.0));
  return t;
}

void report(benchmark::State& state, const Shape& input) {
  state.counters["Gelem/s"] = benchmark::Counter(static_cast<double>(input.numel()) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (const PoolSpec& spec : kPools) {
    const auto add = [&spec](const char* pass, auto fn) {
      benchmark::RegisterBenchmark(("pool2d/" + spec.name + "/" + pass).c_str(), [spec, fn](benchmark::State& s) {
        convkit::Rng rng(0);
        const ops::Pool2dParams p = params_of(spec);
        const Tensor<float> x = random_tensor(spec.input, rng);
        const Tensor<float> dy = random_tensor(ops::pool2d_output_shape(spec.input, p), rng);
        fn(s, spec, p, x, dy);
        report(s, spec.input);
      })->Unit(benchmark::kMicrosecond);
    };
    add("max_fwd", [](benchmark::State& s, const PoolSpec&, const ops::Pool2dParams& p, const Tensor<float>& x,
                      const Tensor<float>&) {
      std::vector<Index> argmax;
      for (auto _ : s) benchmark::DoNotOptimize(ops::max_pool2d_forward(x, p, argmax));
    });
    add("max_bwd", [](benchmark::State& s, const PoolSpec& spec, const ops::Pool2dParams& p, const Tensor<float>& x,
                      const Tensor<float>& dy) {
      std::vector<Index> argmax;
      ops::max_pool2d_forward(x, p, argmax);
      for (auto _ : s) benchmark::DoNotOptimize(ops::max_pool2d_backward(dy, argmax, spec.input));
    });
    add("avg_fwd", [](benchmark::State& s, const PoolSpec&, const ops::Pool2dParams& p, const Tensor<float>& x,
                      const Tensor<float>&) {
      for (auto _ : s) benchmark::DoNotOptimize(ops::avg_pool2d_forward(x, p));
    });
    add("avg_bwd", [](benchmark::State& s, const PoolSpec& spec, const ops::Pool2dParams& p, const Tensor<float>&,
                      const Tensor<float>& dy) {
      for (auto _ : s) benchmark::DoNotOptimize(ops::avg_pool2d_backward(dy, spec.input, p));
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  convkit_bench::take_threads(argc, argv);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
