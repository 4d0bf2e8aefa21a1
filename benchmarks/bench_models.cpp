// bench_models — whole-model timings: forward at batch 1, 224×224, in evaluation mode under
// NoGradGuard, for alexnet, vgg16, googlenet, resnet18 and resnet50 (and at batch 8 for vgg16
// and resnet50, the pair the 2-thread speed-up is judged on); a training step (forward, softmax
// cross-entropy, backward, SGD-momentum update) at batch 8 for resnet18 and vgg16; and the
// LeNet-5 training step at batch 64 (32×32).
//
//   convkit_bench_models [--threads=N] [Google Benchmark flags]
// --threads sets the GEMM threads (Eigen over OpenMP; 1 without OpenMP). Times are wall
// clock (UseRealTime), reported in milliseconds; the GMAC/s counter divides the forward
// multiply-adds (×3 for a training step) by the time. benchmarks/compare_pytorch.py runs this
// next to PyTorch and prints the ratios.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <memory>
#include <string>
#include <vector>

#include <convkit/convkit.h>

#include "bench_flags.h"

namespace {

using namespace convkit;

Tensor<float> random_input(const Shape& s, Rng& rng) {
  Tensor<float> t(s);
  for (float& v : t) v = static_cast<float>(rng.uniform());
  return t;
}

/// Untimed runs before the timed ones. The first passes page-fault in every activation and
/// workspace block (measured here: VGG-16's first forward 2,317 ms, its second 808, its third
/// 366), and a big model runs only once in MinTime; PyTorch's side warms up the same way.
constexpr int kWarmUp = 2;

void forward(benchmark::State& state, const std::string& name, Index batch) {
  Rng rng(0);
  Sequential<float> net = models::build<float>(name, rng);
  net.eval();
  const Index size = models::native_input_size(name);
  const Shape in{batch, 3, size, size};
  const Tensor<float> x = random_input(in, rng);
  const NoGradGuard no_grad;  // inference, as PyTorch's side runs under torch.no_grad()
  for (int i = 0; i < kWarmUp; ++i) net.forward(x);
  for (auto _ : state) {
    Tensor<float> y = net.forward(x);
    benchmark::DoNotOptimize(y.data());
  }
  const double macs = static_cast<double>(net.multiply_adds(in));
  state.counters["GMAC/s"] = benchmark::Counter(macs * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void train_step(benchmark::State& state, const std::string& name, Index batch) {
  Rng rng(0);
  Sequential<float> net = models::build<float>(name, rng);
  net.train();
  net.set_needs_input_grad(false);
  const Index size = models::native_input_size(name);
  const Shape in{batch, name == "lenet5" ? 1 : 3, size, size};
  const Tensor<float> x = random_input(in, rng);
  const Index classes = net.output_shape(in)[1];
  std::vector<Index> y;
  for (Index i = 0; i < batch; ++i) y.push_back(static_cast<Index>(rng.below(static_cast<std::uint64_t>(classes))));
  SGD<float> opt(net.named_parameters(), SgdOptions(name == "lenet5" ? 0.01 : 1e-3).momentum(0.9));
  SoftmaxCrossEntropy<float> loss;
  const auto step = [&] {
    opt.zero_grad();
    const float l = loss.forward(net.forward(x), y);
    benchmark::DoNotOptimize(l);
    net.backward(loss.backward());
    opt.step();
  };
  for (int i = 0; i < kWarmUp; ++i) step();
  for (auto _ : state) step();
  const double macs = 3.0 * static_cast<double>(net.multiply_adds(in));
  state.counters["GMAC/s"] = benchmark::Counter(macs * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (const char* name : {"alexnet", "vgg16", "googlenet", "resnet18", "resnet50"})
    benchmark::RegisterBenchmark((std::string("forward_b1/") + name).c_str(),
                                 [name](benchmark::State& s) { forward(s, name, 1); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(1.0);
  for (const char* name : {"vgg16", "resnet50"})  // the thread-scaling pair
    benchmark::RegisterBenchmark((std::string("forward_b8/") + name).c_str(),
                                 [name](benchmark::State& s) { forward(s, name, 8); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(2.0);
  for (const char* name : {"resnet18", "vgg16"})
    benchmark::RegisterBenchmark((std::string("train_b8/") + name).c_str(),
                                 [name](benchmark::State& s) { train_step(s, name, 8); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime()
        ->MinTime(2.0);
  benchmark::RegisterBenchmark("train_b64/lenet5", [](benchmark::State& s) { train_step(s, "lenet5", 64); })
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(1.0);
}

}  // namespace

int main(int argc, char** argv) {
  convkit_bench::take_threads(argc, argv);
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
