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
//
// With --shapes=FILE (benchdnn's convolution descriptor format, as in
// ../shared/benchdnn_shapes/conv/shapes_vgg_19) the layers come from that file instead, at each
// batch size of --batch=1,8 (default 1), named conv2d/<layer name>/mb<N>/{fwd,bwd_data,bwd_weight};
// `benchmarks/compare_pytorch.py --conv FILE` runs them next to PyTorch's convolution.
// --threads=N (default 1) sets the OpenMP threads of the ops (built with OpenMP).
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "convkit/core/rng.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/conv2d.h"
#include "convkit/ops/workspace.h"

#include "bench_flags.h"

namespace {

using convkit::Index;
using convkit::Shape;
using convkit::Tensor;
namespace ops = convkit::ops;

/// One convolution layer: input (n, c, h, w), oc filters of k x k, square stride and padding.
/// Keep this table in step with the one in bench_gemm.cpp.
struct LayerSpec {
  std::string name;
  Index n, c, h, w, oc, k, stride, pad;
  // Width-wise values where they differ (0, or -1 for the padding: as the height one).
  Index kw = 0, stride_w = 0, pad_w = -1, dilation = 1, dilation_w = 1, groups = 1;
  Index kernel_w() const { return kw > 0 ? kw : k; }
  Index sw() const { return stride_w > 0 ? stride_w : stride; }
  Index pw() const { return pad_w >= 0 ? pad_w : pad; }
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
  p.stride_h = l.stride;
  p.stride_w = l.sw();
  p.pad_h = l.pad;
  p.pad_w = l.pw();
  p.dilation_h = l.dilation;
  p.dilation_w = l.dilation_w;
  p.groups = l.groups;
  return p;
}

Shape input_shape(const LayerSpec& l) { return Shape{l.n, l.c, l.h, l.w}; }
Shape weight_shape(const LayerSpec& l) { return Shape{l.oc, l.c / l.groups, l.k, l.kernel_w()}; }
Shape output_shape(const LayerSpec& l) {
  const Index oh = ops::conv2d_output_size(l.h, l.k, l.stride, l.pad, l.dilation);
  const Index ow = ops::conv2d_output_size(l.w, l.kernel_w(), l.sw(), l.pw(), l.dilation_w);
  return Shape{l.n, l.oc, oh, ow};
}

/// 2·N·OC·OH·OW·(C/g)·KH·KW: one multiply and one add per weight per output pixel.
double nominal_flops(const LayerSpec& l) {
  const Shape y = output_shape(l);
  return 2.0 * static_cast<double>(y.numel()) * static_cast<double>(l.c / l.groups * l.k * l.kernel_w());
}

/// One line of a benchdnn convolution shape file, e.g.
///   g1mb50ic256ih56iw56oc512oh28ow28kh1kw1sh2sw2ph0pw0n"resnet_50:res3a_branch1"
///   mb64ic3ih224oc64oh224kh3ph1n"vgg_19:conv1_1*2"
/// Width values default to the height ones, strides to 1, the padding to what gives the stated
/// output size (or 0), the output size to what the padding gives; dh/dw are benchdnn's
/// dilations (0 = dense). A trailing "*count" on the name is dropped. 3-D (id/kd/...) shapes and
/// unknown keys are errors.
LayerSpec parse_benchdnn(const std::string& line) {
  Index g = 1, mb = 2, ic = 0, ih = 0, iw = 0, oc = 0, oh = 0, ow = 0, kh = 0, kw = 0, sh = 0, sw = 0,
        ph = -1, pw = -1, dh = 0, dw = -1;
  std::string name;
  std::size_t i = 0;
  while (i < line.size()) {
    if (line[i] == ' ' || line[i] == '\t') break;  // a trailing comment
    if (line[i] == '_') {  // benchdnn's optional separator
      ++i;
      continue;
    }
    if (line[i] == 'n' && i + 1 < line.size() && line[i + 1] == '"') {
      const std::size_t end = line.find('"', i + 2);
      if (end == std::string::npos) throw std::runtime_error("unterminated name in: " + line);
      name = line.substr(i + 2, end - i - 2);
      i = end + 1;
      continue;
    }
    std::size_t j = i;
    while (j < line.size() && line[j] >= 'a' && line[j] <= 'z') ++j;
    const std::string key = line.substr(i, j - i);
    std::size_t k = j;
    while (k < line.size() && line[k] >= '0' && line[k] <= '9') ++k;
    if (key.empty() || k == j) throw std::runtime_error("expected <key><number> at '" + line.substr(i) + "' in: " + line);
    const Index v = std::stoll(line.substr(j, k - j));
    const std::pair<const char*, Index*> keys[] = {{"g", &g},   {"mb", &mb}, {"ic", &ic}, {"ih", &ih}, {"iw", &iw},
                                                   {"oc", &oc}, {"oh", &oh}, {"ow", &ow}, {"kh", &kh}, {"kw", &kw},
                                                   {"sh", &sh}, {"sw", &sw}, {"ph", &ph}, {"pw", &pw}, {"dh", &dh},
                                                   {"dw", &dw}};
    Index* slot = nullptr;
    for (const auto& [name_of_key, where] : keys)
      if (key == name_of_key) slot = where;
    if (slot == nullptr) throw std::runtime_error("unsupported key '" + key + "' (2-D convolutions only) in: " + line);
    *slot = v;
    i = k;
  }
  if (ic <= 0 || oc <= 0 || ih <= 0 || kh <= 0) throw std::runtime_error("expected at least ic, oc, ih and kh in: " + line);
  if (iw == 0 && ow == 0 && kw == 0 && sw == 0 && pw < 0 && dw < 0) {  // square: w as h
    iw = ih, ow = oh, kw = kh, sw = sh, pw = ph, dw = dh;
  }
  if (iw == 0) iw = ih;
  if (kw == 0) kw = kh;
  if (sh == 0) sh = 1;
  if (sw == 0) sw = 1;
  if (dw < 0) dw = 0;
  const auto pad_for = [](Index in, Index out, Index kernel, Index stride, Index dil) {
    return out > 0 ? std::max<Index>(0, ((out - 1) * stride - in + (kernel - 1) * (dil + 1) + 1) / 2) : Index{0};
  };
  if (ph < 0) ph = pad_for(ih, oh, kh, sh, dh);
  if (pw < 0) pw = pad_for(iw, ow, kw, sw, dw);
  const std::size_t star = name.rfind('*');
  if (star != std::string::npos) name.resize(star);
  if (name.empty()) name = line;
  LayerSpec l{name, mb, ic, ih, iw, oc, kh, sh, ph};
  l.kw = kw, l.stride_w = sw, l.pad_w = pw, l.dilation = dh + 1, l.dilation_w = dw + 1, l.groups = g;
  const Shape y = output_shape(l);
  if ((oh > 0 && y[2] != oh) || (ow > 0 && y[3] != ow))
    throw std::runtime_error("stated output " + std::to_string(oh) + "x" + std::to_string(ow) + " but the padding gives " +
                             std::to_string(y[2]) + "x" + std::to_string(y[3]) + " in: " + line);
  return l;
}

std::vector<LayerSpec> read_benchdnn(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open shape file " + path);
  std::vector<LayerSpec> layers;
  for (std::string line; std::getline(in, line);) {
    const std::size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    layers.push_back(parse_benchdnn(line.substr(start)));
  }
  if (layers.empty()) throw std::runtime_error("no shapes in " + path);
  return layers;
}

Tensor<float> random_tensor(const Shape& shape, convkit::Rng& rng) {
  Tensor<float> t(shape);
  for (float& v : t) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  return t;
}

/// The layer as a fully explicit benchdnn descriptor (dilation 0 = dense), e.g.
/// "g1mb1ic3ih224iw224oc64oh112ow112kh7kw7sh2sw2ph3pw3dh0dw0": every benchmark's label, which
/// compare_pytorch.py --conv reads to run the same convolution in PyTorch.
std::string descriptor(const LayerSpec& l) {
  const Shape y = output_shape(l);
  std::string d;
  const std::pair<const char*, Index> fields[] = {
      {"g", l.groups}, {"mb", l.n},  {"ic", l.c},      {"ih", l.h},    {"iw", l.w},    {"oc", l.oc},
      {"oh", y[2]},    {"ow", y[3]}, {"kh", l.k},      {"kw", l.kernel_w()}, {"sh", l.stride}, {"sw", l.sw()},
      {"ph", l.pad},   {"pw", l.pw()}, {"dh", l.dilation - 1}, {"dw", l.dilation_w - 1}};
  for (const auto& [key, value] : fields) d += key + std::to_string(value);
  return d;
}

void set_counters(benchmark::State& state, const LayerSpec& l) {
  state.SetLabel(descriptor(l));
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

template <typename... Args>
void add(const std::string& name, Args&&... args) {
  benchmark::RegisterBenchmark(name.c_str(), std::forward<Args>(args)...)->Unit(benchmark::kMicrosecond);
}

void register_all() {
  // The no-bias variants run right after their with-bias twins, so the machine's drift over
  // the run does not leak into the difference.
  for (const LayerSpec& l : kLayers) {
    const std::string base = "conv2d/" + l.name + "/";
    add(base + "fwd", bm_forward, l, true);
    add(base + "fwd_nobias", bm_forward, l, false);
    add(base + "bwd_data", bm_backward_data, l);
    add(base + "bwd_weight", bm_backward_weight, l, true);
    add(base + "bwd_weight_nobias", bm_backward_weight, l, false);
  }
}

/// The three passes (with bias) of every shape of a benchdnn file at each batch size.
void register_file(const std::string& path, const std::vector<Index>& batches) {
  for (LayerSpec l : read_benchdnn(path))
    for (const Index n : batches) {
      l.n = n;
      const std::string base = "conv2d/" + l.name + "/mb" + std::to_string(n) + "/";
      add(base + "fwd", bm_forward, l, true);
      add(base + "bwd_data", bm_backward_data, l);
      add(base + "bwd_weight", bm_backward_weight, l, true);
    }
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = convkit_bench::take_threads(argc, argv);
  const std::string shapes = convkit_bench::take_flag(argc, argv, "shapes");
  const std::string batch_list = convkit_bench::take_flag(argc, argv, "batch");
  try {
    if (shapes.empty()) {
      if (!batch_list.empty()) throw std::runtime_error("--batch needs --shapes=FILE");
      register_all();
    } else {
      std::vector<Index> batches;
      for (std::size_t i = 0; i <= batch_list.size();) {
        const std::size_t comma = std::min(batch_list.find(',', i), batch_list.size());
        const std::string item = batch_list.substr(i, comma - i);
        char* end = nullptr;
        const long long n = item.empty() ? 0 : std::strtoll(item.c_str(), &end, 10);
        if (!batch_list.empty() && (n < 1 || *end != '\0'))
          throw std::runtime_error("--batch expects positive integers separated by commas, got '" + batch_list + "'");
        if (n >= 1) batches.push_back(n);
        i = comma + 1;
      }
      if (batches.empty()) batches.push_back(1);
      register_file(shapes, batches);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "convkit_bench_conv2d: %s\n", e.what());
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("eigen_simd", Eigen::SimdInstructionSetsInUse());
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
  benchmark::AddCustomContext("conv_column_budget", std::to_string(ops::kConvColumnBudget));
  benchmark::AddCustomContext("threads", std::to_string(threads));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
