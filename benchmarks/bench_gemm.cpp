// bench_gemm — single-precision GEMM through ops::gemm (Eigen), single-threaded, and the
// pieces the conv2d passes of bench_conv2d lower to, timed alone.
//
//   sgemm/<NN|NT|TN>/<n>                  C (n, n) = op(A) · op(B), square, beta = 0: the peak
//   lowered/<layer>/<pass>/gemm           the exact sequence of ops::gemm calls (shapes,
//                                         transposes, beta) that conv2d makes for that pass
//   lowered/<layer>/<fwd|bwd_data>/im2col the im2col unfolding that pass does before its GEMMs
//                                         (bwd_weight unfolds exactly like fwd)
//   lowered/<layer>/bwd_data/col2im       the col2im scatter-add after the data gradient's
//                                         GEMMs, for layers whose data gradient goes that way
//   pipeline/<layer>/<fwd|bwd_data>/budget:<elements>
//                                         im2col + GEMM + copy-out of a forward-type pass with
//                                         the batch chunked under another column budget
//
// Subtracting lowered/*/gemm (and im2col) from conv2d/*/* gives the cost of everything that
// is not a GEMM: unfolding and folding back, the flipped-filter copy, the dY gather, the copy
// out of the batched product, the bias passes and the output allocation.
//
// The lowering below mirrors include/convkit/ops/conv2d.h (per-sample GEMMs for 1x1
// stride-1 unpadded layers; otherwise batches of samples unfolded side by side as long as
// the column matrix stays within ops::kConvColumnBudget elements; the data gradient by col2im
// where ops::detail::backward_data_by_col2im says so, otherwise as the stride-1 forward
// convolution of the padded dY with the flipped filters). If that file changes its strategy,
// change this one too. Layers with few channels, which conv2d runs on its direct kernels
// (ops/direct_conv.h) where the CPU has AVX2, are lowered here as on a CPU without them.
#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "convkit/core/rng.h"
#include "convkit/ops/conv2d.h"
#include "convkit/ops/gemm.h"
#include "convkit/ops/im2col.h"

namespace {

using convkit::Index;
using convkit::Shape;
namespace ops = convkit::ops;
using ops::Trans;

// ---------------------------------------------------------------------------------------
// Large square SGEMM: the peak the conv passes are measured against.

std::vector<float> random_buffer(Index n, std::uint64_t seed) {
  convkit::Rng rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.uniform(-1.0, 1.0));
  return v;
}

void bm_sgemm_square(benchmark::State& state, Trans ta, Trans tb) {
  const Index n = state.range(0);
  const std::vector<float> a = random_buffer(n * n, 1), b = random_buffer(n * n, 2);
  std::vector<float> c(static_cast<std::size_t>(n * n));
  for (auto _ : state) {
    ops::gemm(ta, tb, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP"] = benchmark::Counter(2.0 * n * n * n * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

// ---------------------------------------------------------------------------------------
// The conv layers of bench_conv2d.cpp (keep the two tables in step).

struct LayerSpec {
  const char* name;
  Index n, c, h, w, oc, k, stride, pad;
};

const LayerSpec kLayers[] = {
    {"lenet_c1", 64, 1, 32, 32, 6, 5, 1, 0},
    {"lenet_c3", 64, 6, 14, 14, 16, 5, 1, 0},
    {"vgg_3x3_256", 1, 256, 56, 56, 256, 3, 1, 1},
    {"resnet_1x1_1024_256", 2, 1024, 14, 14, 256, 1, 1, 0},
    {"resnet_1x1_256_64", 1, 256, 56, 56, 64, 1, 1, 0},
    {"resnet_1x1s2_256_512", 1, 256, 56, 56, 512, 1, 2, 0},
    {"resnet_3x3s2_128", 1, 128, 56, 56, 128, 3, 2, 1},
};

ops::ConvGeometry forward_geometry(const LayerSpec& l) {
  ops::Conv2dParams p;
  p.stride_h = p.stride_w = l.stride;
  p.pad_h = p.pad_w = l.pad;
  return ops::conv2d_geometry(Shape{l.n, l.c, l.h, l.w}, Shape{l.oc, l.c, l.k, l.k}, p);
}

double nominal_flops(const ops::ConvGeometry& g) {
  return 2.0 * static_cast<double>(g.n * g.oc * g.oh * g.ow) * static_cast<double>(g.col_rows());
}

/// Columns of each block conv2d unfolds at once (ops::detail::for_each_unfold_block), in order.
std::vector<Index> unfold_blocks(const ops::ConvGeometry& g) {
  std::vector<Index> cols;
  ops::detail::for_each_unfold_block(g, [&](Index, Index nb, Index oy0, Index oy1) { cols.push_back(nb * (oy1 - oy0) * g.ow); });
  return cols;
}

/// One ops::gemm call: C (m, n) = op(A) · op(B) + beta·C. Pointwise layers read and write a
/// different sample for each call (b_off/c_off); unfolded ones reuse one column buffer.
struct GemmCall {
  Trans ta, tb;
  Index m, n, k;
  float beta;
  Index b_off, c_off;
};

std::vector<GemmCall> forward_gemms(const ops::ConvGeometry& g) {
  std::vector<GemmCall> calls;
  const Index k = g.col_rows(), p = g.out_plane(), ocg = g.ocg();
  if (g.is_pointwise()) {
    for (Index n = 0; n < g.n; ++n)
      for (Index grp = 0; grp < g.groups; ++grp)
        calls.push_back({Trans::kNo, Trans::kNo, ocg, p, k, 0.0f, (n * g.groups + grp) * k * p,
                         (n * g.groups + grp) * ocg * p});
    return calls;
  }
  for (const Index cols : unfold_blocks(g))
    for (Index grp = 0; grp < g.groups; ++grp) calls.push_back({Trans::kNo, Trans::kNo, ocg, cols, k, 0.0f, 0, 0});
  return calls;
}

std::vector<GemmCall> backward_weight_gemms(const ops::ConvGeometry& g) {
  std::vector<GemmCall> calls;
  const Index k = g.col_rows(), p = g.out_plane(), ocg = g.ocg();
  if (g.is_pointwise()) {
    for (Index n = 0; n < g.n; ++n)
      for (Index grp = 0; grp < g.groups; ++grp)
        calls.push_back({Trans::kNo, Trans::kYes, ocg, k, p, 1.0f, (n * g.groups + grp) * k * p, 0});
    return calls;
  }
  for (const Index cols : unfold_blocks(g))
    for (Index grp = 0; grp < g.groups; ++grp) calls.push_back({Trans::kNo, Trans::kYes, ocg, k, cols, 1.0f, 0, 0});
  return calls;
}

/// The col2im data gradient: col = W_gᵀ · dY_g per unfolded block and group.
std::vector<GemmCall> backward_data_col2im_gemms(const ops::ConvGeometry& g) {
  std::vector<GemmCall> calls;
  for (const Index cols : unfold_blocks(g))
    for (Index grp = 0; grp < g.groups; ++grp)
      calls.push_back({Trans::kYes, Trans::kNo, g.col_rows(), cols, g.ocg(), 0.0f, 0, 0});
  return calls;
}

std::string describe(const std::vector<GemmCall>& calls) {
  // Runs of equal shapes, e.g. "2x(256x196x1024 NN)".
  std::ostringstream os;
  for (std::size_t i = 0; i < calls.size();) {
    std::size_t j = i;
    while (j < calls.size() && calls[j].m == calls[i].m && calls[j].n == calls[i].n &&
           calls[j].k == calls[i].k)
      ++j;
    if (i > 0) os << " + ";
    os << (j - i) << "x(" << calls[i].m << "x" << calls[i].n << "x" << calls[i].k << " "
       << (calls[i].ta == Trans::kYes ? 'T' : 'N') << (calls[i].tb == Trans::kYes ? 'T' : 'N') << ")";
    i = j;
  }
  return os.str();
}

void bm_lowered_gemm(benchmark::State& state, std::vector<GemmCall> calls, double conv_flops) {
  Index a_size = 0, b_size = 0, c_size = 0;
  double flops = 0.0;
  for (const GemmCall& c : calls) {
    a_size = std::max(a_size, c.m * c.k);
    b_size = std::max(b_size, c.b_off + c.k * c.n);
    c_size = std::max(c_size, c.c_off + c.m * c.n);
    flops += 2.0 * static_cast<double>(c.m) * static_cast<double>(c.n) * static_cast<double>(c.k);
  }
  const std::vector<float> a = random_buffer(a_size, 3), b = random_buffer(b_size, 4);
  std::vector<float> out(static_cast<std::size_t>(c_size));
  for (auto _ : state) {
    for (const GemmCall& c : calls) {
      const Index lda = c.ta == Trans::kYes ? c.m : c.k;
      const Index ldb = c.tb == Trans::kYes ? c.k : c.n;
      ops::gemm(c.ta, c.tb, c.m, c.n, c.k, 1.0f, a.data(), lda, b.data() + c.b_off, ldb, c.beta,
                out.data() + c.c_off, c.n);
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(describe(calls));
  // GFLOP (printed per second): the GEMMs' own flops. conv_GFLOP: the layer's nominal count
  // over the same time, i.e. the rate conv2d would reach if everything but the GEMMs were free.
  state.counters["GFLOP"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["conv_GFLOP"] =
      benchmark::Counter(conv_flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

/// Every im2col call of one pass over the whole batch, as conv2d does it (input in `x`), or
/// with `fold`, every col2im_add call of the col2im data gradient (into `x`).
void bm_lowered_im2col(benchmark::State& state, ops::ConvGeometry g, bool fold) {
  const Index k = g.col_rows(), in_sample = g.c * g.in_plane();
  const std::vector<Index> blocks = unfold_blocks(g);
  const Index widest = *std::max_element(blocks.begin(), blocks.end());
  std::vector<float> x = random_buffer(g.n * in_sample, 5);
  std::vector<float> col = random_buffer(k * widest, 6);
  for (auto _ : state) {
    ops::detail::for_each_unfold_block(g, [&](Index n0, Index nb, Index oy0, Index oy1) {
      const Index tile = (oy1 - oy0) * g.ow;
      for (Index grp = 0; grp < g.groups; ++grp) {
        if (!fold) {
          ops::detail::im2col_block(x.data(), g, n0, nb, oy0, oy1, grp, col.data());
          continue;
        }
        for (Index s = 0; s < nb; ++s)
          ops::col2im_add(col.data() + s * tile, g, nb * tile, x.data() + (n0 + s) * in_sample + grp * g.cg() * g.in_plane(),
                          oy0, oy1);
      }
      benchmark::DoNotOptimize(col.data());
      benchmark::DoNotOptimize(x.data());
      benchmark::ClobberMemory();
    });
  }
  const double bytes = static_cast<double>(g.n * g.groups * k * g.out_plane()) * sizeof(float);
  state.counters["col_GB"] =
      benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  std::ostringstream label;
  label << "col " << k << "x" << widest << ", " << blocks.size() << " block(s)";
  state.SetLabel(label.str());
}

/// im2col + GEMM (+ the copy out of the batched product) for a whole forward-type pass, with
/// the batch split into chunks under `budget` column elements: what conv2d does with
/// budget = ops::kConvColumnBudget, and what a smaller, cache-sized budget would cost.
void bm_lowered_pipeline(benchmark::State& state, ops::ConvGeometry g, Index budget) {
  const Index k = g.col_rows(), p = g.out_plane(), ocg = g.ocg();
  const Index in_sample = g.c * g.in_plane(), out_sample = g.oc * p;
  const Index per_sample = std::max<Index>(1, k * p);
  const Index chunk = std::clamp<Index>(budget / per_sample, 1, std::max<Index>(1, g.n));
  const std::vector<float> x = random_buffer(g.n * in_sample, 6), w = random_buffer(g.oc * k, 7);
  std::vector<float> col(static_cast<std::size_t>(k * chunk * p));
  std::vector<float> prod(static_cast<std::size_t>(ocg * chunk * p));
  std::vector<float> y(static_cast<std::size_t>(g.n * out_sample));
  for (auto _ : state) {
    for (Index n0 = 0; n0 < g.n; n0 += chunk) {
      const Index nb = std::min(chunk, g.n - n0), cols = nb * p;
      for (Index grp = 0; grp < g.groups; ++grp) {
        for (Index s = 0; s < nb; ++s)
          ops::im2col(x.data() + (n0 + s) * in_sample + grp * g.cg() * g.in_plane(), g,
                      col.data() + s * p, cols);
        float* y_group = y.data() + n0 * out_sample + grp * ocg * p;
        float* dst = nb == 1 ? y_group : prod.data();
        ops::gemm(Trans::kNo, Trans::kNo, ocg, cols, k, 1.0f, w.data() + grp * ocg * k, k, col.data(),
                  cols, 0.0f, dst, cols);
        if (nb > 1)
          for (Index s = 0; s < nb; ++s)
            for (Index o = 0; o < ocg; ++o)
              std::copy(prod.data() + o * cols + s * p, prod.data() + o * cols + (s + 1) * p,
                        y_group + s * out_sample + o * p);
      }
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP"] = benchmark::Counter(nominal_flops(g) * 1e-9,
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel("chunk " + std::to_string(chunk) + " samples, col " + std::to_string(k) + "x" +
                 std::to_string(chunk * p));
}

void register_all() {
  for (Index n : {512, 1024, 2048})
    benchmark::RegisterBenchmark(("sgemm/NN/" + std::to_string(n)).c_str(), bm_sgemm_square,
                                 Trans::kNo, Trans::kNo)
        ->Arg(n)
        ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("sgemm/NT/1024", bm_sgemm_square, Trans::kNo, Trans::kYes)
      ->Arg(1024)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("sgemm/TN/1024", bm_sgemm_square, Trans::kYes, Trans::kNo)
      ->Arg(1024)
      ->Unit(benchmark::kMillisecond);

  for (const LayerSpec& l : kLayers) {
    const ops::ConvGeometry g = forward_geometry(l);
    const ops::ConvGeometry back = ops::detail::flipped_geometry(g);
    const bool by_col2im = ops::detail::backward_data_by_col2im(g);
    const double flops = nominal_flops(g);
    const std::string base = std::string("lowered/") + l.name + "/";
    benchmark::RegisterBenchmark((base + "fwd/gemm").c_str(), bm_lowered_gemm, forward_gemms(g), flops)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((base + "bwd_data/gemm").c_str(), bm_lowered_gemm,
                                 by_col2im ? backward_data_col2im_gemms(g) : forward_gemms(back), flops)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((base + "bwd_weight/gemm").c_str(), bm_lowered_gemm,
                                 backward_weight_gemms(g), flops)
        ->Unit(benchmark::kMicrosecond);
    if (!g.is_pointwise())
      benchmark::RegisterBenchmark((base + "fwd/im2col").c_str(), bm_lowered_im2col, g, false)
          ->Unit(benchmark::kMicrosecond);
    if (by_col2im)
      benchmark::RegisterBenchmark((base + "bwd_data/col2im").c_str(), bm_lowered_im2col, g, true)
          ->Unit(benchmark::kMicrosecond);
    else if (!back.is_pointwise())
      benchmark::RegisterBenchmark((base + "bwd_data/im2col").c_str(), bm_lowered_im2col, back, false)
          ->Unit(benchmark::kMicrosecond);
  }

  // The column budget, on the batched LeNet layers (the others unfold one sample at a time
  // under any budget); 2^22 was the library's first value, the one it uses now is marked. The GFLOP counter is the nominal count of the geometry that is run
  // (for bwd_data: the padded, full convolution the data gradient actually computes).
  for (const LayerSpec& l : kLayers) {
    const ops::ConvGeometry g = forward_geometry(l);
    if (g.n == 1 || g.is_pointwise()) continue;
    std::vector<Index> budgets = {Index{1} << 22, Index{1} << 19, Index{1} << 17, Index{1} << 15};
    if (std::find(budgets.begin(), budgets.end(), ops::kConvColumnBudget) == budgets.end())
      budgets.push_back(ops::kConvColumnBudget);
    for (Index budget : budgets) {
      const std::string tail = "/budget:" + std::to_string(budget) +
                               (budget == ops::kConvColumnBudget ? "_library" : "");
      benchmark::RegisterBenchmark((std::string("pipeline/") + l.name + "/fwd" + tail).c_str(),
                                   bm_lowered_pipeline, g, budget)
          ->Unit(benchmark::kMicrosecond);
      if (!ops::detail::backward_data_by_col2im(g))  // the flipped-filter data gradient only
        benchmark::RegisterBenchmark((std::string("pipeline/") + l.name + "/bwd_data" + tail).c_str(),
                                     bm_lowered_pipeline, ops::detail::flipped_geometry(g), budget)
            ->Unit(benchmark::kMicrosecond);
    }
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
