// convkit/ops/conv2d.h — 2-D convolution: forward, data gradient and weight gradient.
//
// Shapes: x (N, C, H, W), weight (OC, C/g, KH, KW), bias (OC), y (N, OC, OH, OW) with
//   OH = ⌊(H + 2·ph − dh·(KH − 1) − 1) / sh⌋ + 1   (OW likewise).
//
// Forward, per group g (DESIGN.md §4):
//   y[n, g] = W_g · im2col(x[n, g]) + b_g               W_g (OC/g, C/g·KH·KW)
// In float with convkit's packed GEMM (unit or stride-2 columns, and at least
// kMinIm2colPackedRows rows of the column matrix; or pointwise with planes under kNC columns,
// pointwise_forward_packed), the column matrix is never built: the GEMM packs its B panels
// straight from x (ops/packed_im2col.h), one GEMM per sample and group, or per chunk of
// samples with small planes. Otherwise
// several samples are unfolded side by side into one wide column matrix, so the batch is
// one GEMM per group as far as the column budget allows; a sample whose column matrix alone
// is over the budget is unfolded a tile of output rows at a time (the same for the weight
// and col2im data gradients, which always unfold).
//
// Layers with few output channels (4 to 16; one group, column stride 1, small planes; see
// direct::forward_applies) skip both: with AVX2, their float forward pass (and so a flipped-
// filter data gradient with 4 to 16 input channels) and their weight gradient (column
// dilation 1) run on the direct kernels of ops/direct_conv.h, output channels in the lanes;
// a data gradient that would go by col2im, at unit strides, is gathered there instead
// (direct::data_grad_applies), input columns in the lanes.
//
// Weight gradient:  dW_g += dY_g · colᵀ,   db += Σ_{n,y,x} dY (summed in double). A small
// dW (at most kMaxChunkedWeightGrad values) is summed per fixed chunk of samples, the partial
// sums added in chunk order, so that threads can share the chunks.
//
// Data gradient, two ways (conv2d_backward_data picks one per layer):
//   col2im, for strided layers, groups with fewer input than output channels, and batches
//   of at most 784 output positions whose column matrix is small or that are pointwise
//   (backward_data_by_col2im):
//      col = W_gᵀ · dY_g  (C/g·KH·KW, OH·OW),  dX[n, g] = col2im(col)  (each entry added back
//      onto the input pixel im2col took it from): the same multiply-adds as the forward pass
//      (or, for few output channels at unit strides, direct::data_grad's gather, see above).
//   Otherwise (stride 1), as a convolution with flipped filters:
//   1. W' = W rotated 180° in both spatial axes, input and output channels swapped per group:
//      W'[g·C/g + c, o, i, j] = W[g·OC/g + o, c, KH−1−i, KW−1−j]     W' (C, OC/g, KH, KW)
//   2. dX = the stride-1 forward convolution of dY, padded by dh·(KH − 1) − ph on top
//      (negative: cropped) and at the bottom by whatever makes the output exactly H rows,
//      with W' (dilation and groups kept); likewise for the columns.
//   Where that convolution's float forward takes the packed GEMM (forward_packed_applies),
//   W' is never copied out: the GEMM packs its A panels from W (packed::FlippedFiltersA).
//   (The flipped form works for any stride once s − 1 zeros go between neighbouring pixels
//   of dY, but then sh·sw times the useful multiply-adds; col2im does none of those.)
#pragma once

#include <algorithm>
#include <type_traits>

#include "convkit/core/error.h"
#include "convkit/core/parallel.h"
#include "convkit/core/tensor.h"
#include "convkit/ops/direct_conv.h"
#include "convkit/ops/gemm.h"
#include "convkit/ops/im2col.h"
#include "convkit/ops/packed_im2col.h"
#include "convkit/ops/shifted_conv.h"
#include "convkit/ops/sums.h"
#include "convkit/ops/workspace.h"

namespace convkit::ops {

/// Stride, zero padding (both sides), dilation and groups of a convolution.
struct Conv2dParams {
  Index stride_h = 1, stride_w = 1;
  Index pad_h = 0, pad_w = 0;
  Index dilation_h = 1, dilation_w = 1;
  Index groups = 1;
};

/// Output length along one axis; `in + 2·pad` must be at least the dilated kernel.
inline Index conv2d_output_size(Index in, Index kernel, Index stride, Index pad, Index dilation) {
  return (in + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1;
}

/// Column-matrix elements unfolded at once (several samples side by side, at least one).
/// Small enough that the unfolded chunk is still in cache when the GEMM reads it back
/// (2 MiB of floats): measured on LeNet-5, 4M elements made backward 2x slower.
inline constexpr Index kConvColumnBudget = Index{1} << 19;

/// Checks x and weight against params and returns the geometry of the forward call.
/// @throws ShapeError on a rank, channel or size mismatch; ValueError on bad params.
inline ConvGeometry conv2d_geometry(const Shape& x, const Shape& weight, const Conv2dParams& p) {
  CONVKIT_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.dilation_h >= 1 && p.dilation_w >= 1 &&
                    p.pad_h >= 0 && p.pad_w >= 0 && p.groups >= 1,
                ValueError,
                "conv2d: expected stride >= 1, dilation >= 1, padding >= 0 and groups >= 1, got stride "
                    << p.stride_h << "x" << p.stride_w << ", dilation " << p.dilation_h << "x"
                    << p.dilation_w << ", padding " << p.pad_h << "x" << p.pad_w << ", groups "
                    << p.groups);
  CONVKIT_CHECK(weight.rank() == 4 && weight[0] >= 1 && weight[0] % p.groups == 0 &&
                    weight[2] >= 1 && weight[3] >= 1,
                ShapeError,
                "conv2d: expected weight (OC, C/groups, KH, KW) with OC divisible by groups = "
                    << p.groups << ", got " << weight);
  CONVKIT_CHECK(x.rank() == 4 && x[1] == weight[1] * p.groups, ShapeError,
                "conv2d: expected input (N, " << weight[1] * p.groups << ", H, W), got " << x);
  ConvGeometry g;
  g.n = x[0], g.c = x[1], g.h = x[2], g.w = x[3];
  g.oc = weight[0], g.kh = weight[2], g.kw = weight[3];
  g.sh = p.stride_h, g.sw = p.stride_w, g.pt = p.pad_h, g.pl = p.pad_w;
  g.dh = p.dilation_h, g.dw = p.dilation_w, g.groups = p.groups;
  const Index keh = g.dh * (g.kh - 1) + 1, kew = g.dw * (g.kw - 1) + 1;
  CONVKIT_CHECK(g.h + 2 * g.pt >= keh && g.w + 2 * g.pl >= kew, ShapeError,
                "conv2d: the dilated kernel " << keh << "x" << kew << " is larger than the padded input "
                                              << g.h + 2 * g.pt << "x" << g.w + 2 * g.pl
                                              << " of input " << x);
  g.oh = conv2d_output_size(g.h, g.kh, g.sh, g.pt, g.dh);
  g.ow = conv2d_output_size(g.w, g.kw, g.sw, g.pl, g.dw);
  return g;
}

namespace detail {

/// Samples unfolded together so the column matrix stays within the budget.
inline Index conv_chunk(const ConvGeometry& g) {
  const Index per_sample = std::max<Index>(1, g.col_rows() * g.out_plane());
  return std::clamp<Index>(kConvColumnBudget / per_sample, 1, std::max<Index>(1, g.n));
}

/// Output rows unfolded at once when one sample's column matrix alone is over the budget (all
/// of them otherwise): a VGG-16 conv1_2 column matrix is 576 x 50,176 floats (115 MB), which
/// the GEMM would stream from memory; in tiles of a few rows it stays in cache. A tile keeps at
/// least 256 columns, since narrower GEMMs lose more than the cache saves. Measured on VGG's
/// 3x3 layers at batch 1, one thread (forward ms, whole sample -> tiles): conv1_2 33.1 -> 22.6,
/// conv2_2 24.4 -> 19.2, conv3_2 20.1 -> 18.8; conv4_2 (4608 x 784) was 26.3 in tiles of 112
/// columns, 20.8 in tiles of 448 and 22.3 whole.
inline Index conv_tile_rows(const ConvGeometry& g) {
  const Index ow = std::max<Index>(1, g.ow);
  const Index rows = std::max(kConvColumnBudget / std::max<Index>(1, g.col_rows() * ow), (256 + ow - 1) / ow);
  return std::clamp<Index>(rows, 1, std::max<Index>(1, g.oh));
}

/// Calls fn(n0, nb, oy0, oy1) for each block conv2d unfolds at once, in order: nb samples from
/// n0 side by side with all their output rows (oy0 = 0, oy1 = OH), or, where one sample's
/// column matrix alone is over the budget, one sample's output rows [oy0, oy1) a tile of
/// conv_tile_rows(g) at a time. A block's column matrix has nb·(oy1 − oy0)·OW columns.
template <typename Fn>
void for_each_unfold_block(const ConvGeometry& g, Fn&& fn) {
  const Index chunk = conv_chunk(g);
  for (Index n0 = 0; n0 < g.n; n0 += chunk) {
    const Index nb = std::min(chunk, g.n - n0);
    if (nb > 1) {
      fn(n0, nb, Index{0}, g.oh);
      continue;
    }
    const Index tile = conv_tile_rows(g);
    for (Index oy0 = 0; oy0 < g.oh; oy0 += tile) fn(n0, Index{1}, oy0, std::min(g.oh, oy0 + tile));
  }
}

/// Multiply-adds of a whole pass from which its threads take whole chunks of samples (the
/// forward pass, the col2im data gradient, the weight gradient of small filters). One parallel
/// region per pass and no barriers inside the GEMMs pay off at a twentieth of what a split
/// GEMM needs (kMinThreadedGemmWork): LeNet-5's convolutions at batch 64 (7.5 M and 15 M multiply-
/// adds per pass) stayed on one thread.
constexpr double kMinChunkThreadsWork = 1e6;

/// Multiply-adds of one pass of the convolution (forward, data or weight gradient alike):
/// N·OC·OH·OW·C/g·KH·KW.
inline double conv_multiply_adds(const ConvGeometry& g) {
  return static_cast<double>(g.n * g.out_plane()) * static_cast<double>(g.oc) * static_cast<double>(g.col_rows());
}

/// Threads a pass of `work` multiply-adds may give whole chunks to (see above).
inline int chunk_threads(double work) { return convkit::detail::threads_for(work, kMinChunkThreadsWork); }

/// Whether every column of a T GEMM with m rows gets the same bits however many columns the
/// GEMM has and wherever the column sits: true of convkit's packed float GEMM (it never splits
/// k, and a column's sum does not depend on its tile), not of Eigen's (the last n mod 4
/// columns of a product with 2-3 rows are summed in another order than the others).
template <typename T>
constexpr bool gemm_columns_independent(Index m) {
#ifdef CONVKIT_PACKED_GEMM
  if constexpr (std::is_same_v<T, float>) return m >= packed::kMinPackedRows;
#endif
  (void)m;
  return false;
}

/// Whole-sample chunks of a batch.
struct SampleChunks {
  Index per, count;
};

/// Chunks for `threads` threads that each take whole chunks, at most conv_chunk(g) samples
/// each. With `regroup` (the pass's values do not depend on how samples are grouped: every
/// output column lies within one GEMM column of a gemm_columns_independent GEMM, every input
/// pixel within one sample), as many chunks as make a multiple of the threads where the batch
/// allows (it may give fewer: 5 samples on 4 threads are 3 chunks of 2); otherwise the chunks
/// of for_each_unfold_block, the same on any number of threads.
inline SampleChunks thread_chunks(const ConvGeometry& g, int threads, bool regroup) {
  const Index budget = conv_chunk(g);
  if (g.n <= 0) return {budget, 0};
  Index count = (g.n + budget - 1) / budget;
  if (!regroup) return {budget, count};
  count = std::min(g.n, (count + threads - 1) / threads * threads);
  const Index per = (g.n + count - 1) / count;
  return {per, (g.n + per - 1) / per};
}

/// Whether `threads` threads share `count` chunks well enough to each take whole ones: several
/// threads, and chunks that split evenly between them or number at least 4 per thread.
inline bool chunks_share_well(Index count, int threads) {
  return threads > 1 && count >= threads && (count % threads == 0 || count >= 4 * threads);
}

/// fn(slot, n0, nb) for every chunk (samples [n0, n0 + nb)) of a batch of n, on `threads`
/// threads that each take whole chunks; slot is the thread's number, for its own buffers.
template <typename Fn>
void for_each_chunk(int threads, const SampleChunks& chunks, Index n, Fn&& fn) {
  convkit::detail::parallel_for_slots(threads, chunks.count, [&](int slot, Index ci) {
    const Index n0 = ci * chunks.per;
    fn(slot, n0, std::min(chunks.per, n - n0));
  });
}

/// Unfolds block (n0, nb, oy0, oy1) of group grp of x into col, nb·(oy1 − oy0)·OW columns, each
/// sample's beside the previous one's.
template <typename T>
void im2col_block(const T* x, const ConvGeometry& g, Index n0, Index nb, Index oy0, Index oy1, Index grp, T* col) {
  const Index in_sample = g.c * g.in_plane(), tile = (oy1 - oy0) * g.ow;
  const T* x_group = x + n0 * in_sample + grp * g.cg() * g.in_plane();
  for (Index s = 0; s < nb; ++s) im2col(x_group + s * in_sample, g, col + s * tile, nb * tile, oy0, oy1);
}

/// Copies the product of nb samples side by side, prod (OC/g, nb·P), into their planes of
/// y_group (sample s, channel o at s·OC·P + o·P).
template <typename T>
void scatter_product(const T* prod, const ConvGeometry& g, Index nb, T* y_group) {
  const Index p = g.out_plane(), ocg = g.ocg(), cols = nb * p, out_sample = g.oc * p;
  convkit::detail::parallel_for(nb * ocg, static_cast<double>(ocg * cols), [&](Index so) {
    const Index s = so / ocg, o = so % ocg;
    std::copy(prod + o * cols + s * p, prod + o * cols + (s + 1) * p, y_group + s * out_sample + o * p);
  });
}

/// y (N, OC, OH, OW) += b (OC) per channel; nothing when b is null.
template <typename T>
void add_bias(const ConvGeometry& g, const T* b, T* y) {
  if (b == nullptr) return;
  const Index p = g.out_plane();
  convkit::detail::parallel_for(g.n * g.oc, static_cast<double>(g.n * g.oc * p), [&](Index no) {
    T* plane = y + no * p;
    const T bo = b[no % g.oc];
    for (Index i = 0; i < p; ++i) plane[i] += bo;
  });
}

#ifdef CONVKIT_PACKED_GEMM
/// Columns of one GEMM of conv2d_forward_packed at most (several samples' planes side by side).
constexpr Index kMaxPackedConvColumns = 8 * packed::kNC;

/// Samples whose planes share one GEMM in conv2d_forward_packed, on `threads` threads: one
/// when a plane has at least kNC columns (the GEMM then writes y in place); otherwise the
/// batch in as few GEMMs as kMaxPackedConvColumns allows, samples spread evenly, and where the
/// batch has kNC columns per thread, in a multiple of the threads (each takes whole ones).
/// A wider GEMM leaves less of its last column panel unused: ResNet-18's 256-channel 3x3 layer
/// at 14x14, batch 8 (Xeon, least of 3 interleaved runs, ms), in GEMMs of 2 samples (392
/// columns: 13 panels of 32, 416 computed) as before -> of 8 (1,568: 49) at one thread 9.21 ->
/// 8.68; of 4 on two threads 5.12 -> 4.89. Its 512-channel one at 7x7 stays one GEMM split
/// between two threads (two chunks of 196 columns, 7 panels each: 5.38 -> 6.28).
inline Index packed_conv_chunk(const ConvGeometry& g, int threads) {
  const Index p = std::max<Index>(1, g.out_plane());
  if (p >= packed::kNC || g.n <= 1) return 1;
  Index chunks = ceil_div(g.n, std::max<Index>(1, kMaxPackedConvColumns / p));
  if (threads > 1 && g.n * p >= threads * packed::kNC)
    chunks = std::min(g.n, ceil_div(chunks, threads) * threads);
  return ceil_div(g.n, chunks);
}

/// Whether conv2d_forward_packed takes a pointwise layer (B packed from x by PointwiseB): when
/// its planes are under kNC columns, so that several samples share each GEMM and W_g is packed
/// once for all of them, rather than one GEMM per sample packing W_g each time; but not when
/// the whole batch has under kTransposedProductColumns columns (the per-sample GEMMs, such as
/// batch 1 at 7x7, are then computed as their transpose by packed::sgemm where they have at
/// least twice as many rows). ResNet-50's pointwise layers at batch 8, Zen 3, one
/// thread, least of 4 interleaved runs, per sample -> shared: 256 -> 1024 at 14x14 1.07x,
/// 1024 -> 256 1.14x, 512 -> 2048 at 7x7 1.08x, 2048 -> 512 1.11x (two threads 0.93-1.05x).
/// With planes of 784 columns and more the two threads' one-thread GEMMs, a sample each, were
/// slower than splitting each sample's GEMM between them (256 -> 64 at 56x56: 0.81x, 8 runs).
inline bool pointwise_forward_packed(const ConvGeometry& g) {
  return g.out_plane() < packed::kNC && g.n * g.out_plane() >= packed::kTransposedProductColumns;
}

/// The forward GEMMs of conv2d_forward_raw for float, with B packed from x by Im2colB (by
/// PointwiseB for the pointwise layers pointwise_forward_packed admits): no column matrix, so
/// no row tiles either; a whole sample (or a chunk of small ones) is one GEMM. The GEMM adds
/// the bias b (null: none) to each block of output rows after its last k-slice, while the
/// block is in cache (packed::block); add_bias's pass over y afterwards read y from memory
/// again (VGG-19's conv1_2 at batch 1: 64 x 224 x 224 outputs).
/// With several threads and chunks that split evenly between them (or at least 4 per thread),
/// each thread takes whole chunks on one-thread GEMMs: no barriers inside the GEMMs. With
/// several chunks W_g is packed once, by all the threads, for all of them (pack_a_once).
/// Measured at batch 8, 2 threads (bench_conv2d, medians of 7 interleaved runs, ms):
/// ResNet-18's 1x1/2 downsampling 0.73 -> 0.35 (each GEMM was under the threading threshold,
/// so they ran on one thread), 64-ch 3x3 8.3 -> 6.7, 256-ch 3x3 7.3 -> 5.4. The GEMMs are the
/// same either way, so are the results.
/// `weights(grp)` gives the packer of group grp's A (OC/g x C/g·KH·KW; packed::MatrixA over
/// W_g, or the flipped filters of a data gradient, packed::FlippedFiltersA).
template <typename WeightsA>
void conv2d_forward_packed(const float* x, const ConvGeometry& g, const WeightsA& weights, const float* b,
                           float* y, Workspace<float>& ws) {
  const Index k = g.col_rows(), p = g.out_plane(), ocg = g.ocg(), cg = g.cg();
  const int threads = chunk_threads(conv_multiply_adds(g));
  const Index in_sample = g.c * g.in_plane(), out_sample = g.oc * p, chunk = packed_conv_chunk(g, threads);
  const Index chunks = (g.n + chunk - 1) / chunk;
  const double chunk_work = static_cast<double>(ocg) * static_cast<double>(chunk * p) *
                            static_cast<double>(k) * static_cast<double>(g.groups);
  const bool by_chunk = chunks_share_well(chunks, threads);
  const int gemm_threads_per_chunk = by_chunk ? 1 : gemm_threads(chunk_work);
  float* products = chunk > 1 ? ws.get(Workspace<float>::kProduct, (by_chunk ? threads : 1) * ocg * chunk * p) : nullptr;
  for (Index grp = 0; grp < g.groups; ++grp) {
    // With several chunks, W_g is packed once for all of them (packed::pack_a_once)
    const auto w_group = weights(grp);
    const float* packed_w = chunks > 1 ? packed::pack_a_once(w_group, ocg, k, threads) : nullptr;
    const float* b_group = b != nullptr ? b + grp * ocg : nullptr;
    convkit::detail::parallel_for_on(by_chunk ? threads : 1, chunks, [&](Index ci) {
      const Index n0 = ci * chunk, nb = std::min(chunk, g.n - n0), cols = nb * p;
      const int slot = by_chunk ? convkit::detail::thread_slot() : 0;
      const float* x_group = x + n0 * in_sample + grp * cg * g.in_plane();
      float* y_group = y + n0 * out_sample + grp * ocg * p;
      float* c = nb == 1 ? y_group : products + slot * ocg * chunk * p;
      const auto gemm_with = [&](const auto& pack) {
        packed::sgemm_packed(ocg, cols, k, w_group, pack, 0.0f, c, cols, gemm_threads_per_chunk, packed_w,
                             b_group);
      };
      if (g.is_pointwise())
        gemm_with(packed::PointwiseB{x_group, in_sample, p});
      else
        gemm_with(packed::Im2colB{x_group, &g, in_sample, p, 0});
      if (nb > 1) scatter_product(c, g, nb, y_group);
    });
  }
}

/// Whether conv2d_forward_raw takes g's float forward to conv2d_forward_packed: the packed GEMM
/// has enough rows (output channels per group) and B is packed from x (pointwise_forward_packed,
/// or Im2colB for enough column rows).
inline bool forward_packed_applies(const ConvGeometry& g) {
  return g.ocg() >= packed::kMinPackedRows &&
         (g.is_pointwise() ? pointwise_forward_packed(g)
                           : g.col_rows() >= packed::kMinIm2colPackedRows && packed::im2col_packs(g));
}
#endif

/// The unfolding forward pass (no bias) on several threads, each taking whole chunks of samples
/// (thread_chunks) with its own column and product buffers; false, doing nothing, where it
/// does not apply (one thread, fewer samples than threads, a sample over the column budget,
/// which goes a tile of rows at a time, or chunks that neither split evenly between the
/// threads nor number 4 per thread). Each output column's GEMM column gives the same bits as
/// on one thread (thread_chunks regroups only where that holds). LeNet-5's C1 at batch 64: see
/// docs/design.md.
template <typename T>
bool conv2d_forward_by_chunks(const T* x, const ConvGeometry& g, const T* w, T* y, Workspace<T>& ws) {
  const Index k = g.col_rows(), p = g.out_plane(), ocg = g.ocg();
  const int threads = chunk_threads(conv_multiply_adds(g));
  if (threads < 2 || g.n < threads || conv_tile_rows(g) < g.oh) return false;
  const SampleChunks chunks = thread_chunks(g, threads, gemm_columns_independent<T>(ocg));
  if (!chunks_share_well(chunks.count, threads)) return false;
  const Index cols_max = chunks.per * p, out_sample = g.oc * p;
  T* columns = ws.get(Workspace<T>::kColumns, threads * k * cols_max);
  T* products = ws.get(Workspace<T>::kProduct, threads * ocg * cols_max);
  for_each_chunk(threads, chunks, g.n, [&](int slot, Index n0, Index nb) {
    const Index cols = nb * p;
    T* col = columns + slot * k * cols_max;
    for (Index grp = 0; grp < g.groups; ++grp) {
      im2col_block(x, g, n0, nb, Index{0}, g.oh, grp, col);
      T* y_group = y + n0 * out_sample + grp * ocg * p;
      T* c = nb == 1 ? y_group : products + slot * ocg * cols_max;
      gemm(Trans::kNo, Trans::kNo, ocg, cols, k, T(1), w + grp * ocg * k, k, col, cols, T(0), c, cols);
      if (nb > 1) scatter_product(c, g, nb, y_group);
    }
  });
  return true;
}

/// y (N, OC, OH, OW) = conv(x (N, C, H, W), w (OC, C/g, KH, KW)) + b, for any geometry
/// (padding may be negative or asymmetric through oh/ow). Overwrites y.
template <typename T>
void conv2d_forward_raw(const T* x, const ConvGeometry& g, const T* w, const T* b, T* y,
                        Workspace<T>& ws) {
  const Index k = g.col_rows(), p = g.out_plane(), ocg = g.ocg(), cg = g.cg();
  const Index in_sample = g.c * g.in_plane(), out_sample = g.oc * p;
  if (k == 0 || p == 0) {  // no input channels (x holds no data) or no output positions
    std::fill(y, y + g.n * out_sample, T(0));
    add_bias(g, b, y);
    return;
  }
#ifdef CONVKIT_DIRECT_CONV
  if constexpr (std::is_same_v<T, float>) {
    if (direct::forward_applies(g)) {
      direct::forward(x, g, w, b, y, ws, chunk_threads(conv_multiply_adds(g)));
      return;
    }
  }
#endif
#ifdef CONVKIT_PACKED_GEMM
  if constexpr (std::is_same_v<T, float>) {
    if (forward_packed_applies(g)) {
      conv2d_forward_packed(
          x, g,
          [&](Index grp) {
            return packed::MatrixA{false, ocg, 1.0f, w + grp * ocg * k, k};
          },
          b, y, ws);
      return;
    }
  }
#endif
  if (g.is_pointwise()) {
    for (Index n = 0; n < g.n; ++n)
      for (Index grp = 0; grp < g.groups; ++grp)
        gemm(Trans::kNo, Trans::kNo, ocg, p, k, T(1), w + grp * ocg * k, k,
             x + n * in_sample + grp * cg * g.in_plane(), p, T(0),
             y + n * out_sample + grp * ocg * p, p);
  } else if (!conv2d_forward_by_chunks(x, g, w, y, ws)) {
    for_each_unfold_block(g, [&](Index n0, Index nb, Index oy0, Index oy1) {
      const Index cols = nb * (oy1 - oy0) * g.ow;
      for (Index grp = 0; grp < g.groups; ++grp) {
        T* col = ws.get(Workspace<T>::kColumns, k * cols);
        im2col_block(x, g, n0, nb, oy0, oy1, grp, col);
        T* y_group = y + n0 * out_sample + grp * ocg * p;
        if (nb == 1) {  // straight into those rows of y
          gemm(Trans::kNo, Trans::kNo, ocg, cols, k, T(1), w + grp * ocg * k, k, col, cols, T(0),
               y_group + oy0 * g.ow, p);
          continue;
        }
        T* prod = ws.get(Workspace<T>::kProduct, ocg * cols);
        gemm(Trans::kNo, Trans::kNo, ocg, cols, k, T(1), w + grp * ocg * k, k, col, cols, T(0),
             prod, cols);
        scatter_product(prod, g, nb, y_group);
      }
    });
  }
  add_bias(g, b, y);
}

/// dY of block (n0, nb, oy0, oy1) (see for_each_unfold_block), group grp, as one (OC/g,
/// nb·(oy1 − oy0)·OW) matrix in the column order of that block's column matrix, with its row
/// stride in `ld`: for one sample, those rows of dY in place (ld = OH·OW); for several, their
/// planes gathered into `gathered` (OC/g · nb·OH·OW values; unused for one sample).
template <typename T>
const T* grad_output_block(const T* dy, const ConvGeometry& g, Index n0, Index nb, Index oy0, Index grp, Index& ld,
                           T* gathered) {
  const Index p = g.out_plane(), ocg = g.ocg(), out_sample = g.oc * p, cols = nb * p;
  const T* dy_group = dy + n0 * out_sample + grp * ocg * p;
  if (nb == 1) {
    ld = p;
    return dy_group + oy0 * g.ow;
  }
  convkit::detail::parallel_for(nb * ocg, static_cast<double>(ocg * cols), [&](Index so) {
    const Index s = so / ocg, o = so % ocg;
    std::copy(dy_group + s * out_sample + o * p, dy_group + s * out_sample + (o + 1) * p, gathered + o * cols + s * p);
  });
  ld = cols;
  return gathered;
}

/// The same, gathering into the workspace's product slot.
template <typename T>
const T* grad_output_block(const T* dy, const ConvGeometry& g, Index n0, Index nb, Index oy0, Index grp, Index& ld,
                           Workspace<T>& ws) {
  return grad_output_block(dy, g, n0, nb, oy0, grp, ld, nb == 1 ? nullptr : ws.get(Workspace<T>::kProduct, g.ocg() * nb * g.out_plane()));
}

/// Whether the data gradient goes through col2im (dX = col2im(W_gᵀ · dY_g)) rather than the
/// flipped-filter convolution: for strides above 1, where the flipped filters would run over
/// sh·sw times as many positions, most of them inserted zeros; where a group has fewer input
/// than output channels, where the flipped convolution's GEMM would have only C/g rows; and
/// where the whole batch has at most 784 output positions and the layer is pointwise or its
/// column matrix is at most two column budgets, where the flipped path's copy of the weights
/// (as large as W, once per call) outweighs col2im's scatter. Past two budgets col2im's GEMMs,
/// one per unfolded block or row tile, each pack all of W_gᵀ again. Measured on Zen 3 (AVX2),
/// 3x3 layers, ms flipped -> col2im: 512 channels at 7x7, one thread, batch 1 5.4 -> 5.0,
/// batch 8 (four blocks) 24.1 -> 30.5; two threads, batch 1 4.0 -> 2.4-2.8, batch 8 14.0 ->
/// 15.8-17.0; at batch 1 (three row tiles; least of 6 interleaved runs) 256 channels at 28x28
/// 11.1 -> 13.0 at one thread, 7.2 -> 8.2 at two, 512 at 28x28 45.0 -> 55.0 and 26.0 -> 32.3.
/// A pointwise layer's flipped filters are a transposed copy of W, and there col2im stays
/// ahead past two budgets: 2048 -> 512 channels at 7x7, batch 16, 32.1 -> 29.5 at one
/// thread, 26.6 -> 21.2 at two.
inline bool backward_data_by_col2im(const ConvGeometry& g) {
  const Index positions = g.n * g.out_plane();
  return g.sh > 1 || g.sw > 1 || g.cg() < g.ocg() ||
         (positions <= 784 && (g.is_pointwise() || positions * g.col_rows() <= 2 * kConvColumnBudget));
}

/// The stride-1 forward convolution whose output is the data gradient of a stride-1 layer g:
/// input dY, filters W' (C, OC/g, KH, KW), padded so that the output is exactly H x W (see top).
inline ConvGeometry flipped_geometry(const ConvGeometry& g) {
  ConvGeometry back;
  back.n = g.n, back.c = g.oc, back.h = g.oh, back.w = g.ow;
  back.oc = g.c, back.kh = g.kh, back.kw = g.kw;
  back.pt = g.dh * (g.kh - 1) - g.pt, back.pl = g.dw * (g.kw - 1) - g.pl;
  back.dh = g.dh, back.dw = g.dw, back.groups = g.groups;
  back.oh = g.h, back.ow = g.w;
  return back;
}

/// dX (N, C, H, W) = col2im(W_gᵀ · dY_g) per chunk of samples and group. Overwrites dx.
template <typename T>
void conv2d_backward_data_col2im(const T* dy, const ConvGeometry& g, const T* w, T* dx, Workspace<T>& ws) {
  const Index k = g.col_rows(), ocg = g.ocg(), cg = g.cg();
  const Index in_sample = g.c * g.in_plane();
  convkit::detail::parallel_fill(dx, g.n * in_sample, T(0));
  // Blocks of whole samples write disjoint planes of dx: with several threads and chunks that
  // split evenly between them (thread_chunks; or at least 4 per thread), each thread takes
  // whole chunks, as in conv2d_forward_packed, with its own column and gather buffers; but only
  // chunks of at least 192 columns, since each thread then packs all of W_gᵀ for its chunk alone. Measured at
  // batch 8, 2 threads, ms: ResNet-18's 3x3/2 layers 5.2 -> 3.8 (784 columns), 5.0 -> 3.4 (392),
  // 5.7 -> 4.4 (196); its 512-ch 3x3 at 7x7 (98 columns) 9.6 -> 13.3, so it stays on split GEMMs.
  const Index p = g.out_plane();
  const int threads = chunk_threads(conv_multiply_adds(g));
  const SampleChunks chunks = thread_chunks(g, threads, gemm_columns_independent<T>(k));
  if (conv_tile_rows(g) >= g.oh && chunks.per * p >= 192 && chunks_share_well(chunks.count, threads)) {
    const Index cols_max = chunks.per * p;
    T* columns = ws.get(Workspace<T>::kColumns, threads * k * cols_max);
    T* gathers = ws.get(Workspace<T>::kProduct, threads * ocg * cols_max);
    for_each_chunk(threads, chunks, g.n, [&](int slot, Index n0, Index nb) {
      const Index cols = nb * p;
      T* col = columns + slot * k * cols_max;
      for (Index grp = 0; grp < g.groups; ++grp) {
        Index ld = 0;
        const T* dy_group = grad_output_block(dy, g, n0, nb, Index{0}, grp, ld, gathers + slot * ocg * cols_max);
        gemm(Trans::kYes, Trans::kNo, k, cols, ocg, T(1), w + grp * ocg * k, k, dy_group, ld, T(0), col, cols);
        T* dx_group = dx + n0 * in_sample + grp * cg * g.in_plane();
        for (Index s = 0; s < nb; ++s) col2im_add(col + s * p, g, cols, dx_group + s * in_sample);
      }
    });
    return;
  }
  for_each_unfold_block(g, [&](Index n0, Index nb, Index oy0, Index oy1) {
    const Index tile = (oy1 - oy0) * g.ow, cols = nb * tile;
    for (Index grp = 0; grp < g.groups; ++grp) {
      Index ld = 0;
      const T* dy_group = grad_output_block(dy, g, n0, nb, oy0, grp, ld, ws);
      T* col = ws.get(Workspace<T>::kColumns, k * cols);
      gemm(Trans::kYes, Trans::kNo, k, cols, ocg, T(1), w + grp * ocg * k, k, dy_group, ld, T(0), col, cols);
      T* dx_group = dx + n0 * in_sample + grp * cg * g.in_plane();
      for (Index s = 0; s < nb; ++s) col2im_add(col + s * tile, g, cols, dx_group + s * in_sample, oy0, oy1);
    }
  });
}

/// Weight gradients of at most this many values (OC · C/g·KH·KW) are summed per chunk of
/// samples into partial sums that are then added to dW in chunk order (conv2d_backward_weight_
/// chunked), so that threads can take whole chunks: a gradient this small cannot be split
/// between threads by its columns, and LeNet-5's (150 and 2,400 values over 50,176 and 6,400
/// positions) ran on one thread. Larger ones are split GEMMs.
constexpr Index kMaxChunkedWeightGrad = Index{1} << 14;

/// Samples per chunk of the chunked weight gradient: within the column budget and at most a
/// quarter of the batch, so that 2 or 4 threads share whole chunks. Fixed by the shape alone:
/// the partial sums, hence the values, are the same on any number of threads.
inline Index weight_grad_chunk(const ConvGeometry& g) { return std::min(conv_chunk(g), quarter_batch(g.n)); }

/// Whether conv2d_backward_weight goes by chunks (see kMaxChunkedWeightGrad): several samples,
/// and not a 1x1 convolution (which has no column matrix).
inline bool weight_grad_by_chunks(const ConvGeometry& g) {
  return !g.is_pointwise() && g.n >= 2 && g.oc * g.col_rows() <= kMaxChunkedWeightGrad;
}

/// dW += Σ over chunks c, in order, of P_c = dY_c · col_cᵀ, each P_c computed alone (on any
/// thread, with its own column and gather buffers). A sample whose column matrix alone is over
/// the budget is a chunk of its own, unfolded conv_tile_rows(g) output rows at a time, the
/// tiles' products summed in order. (ResNet-18's stem, 64 x 147 values over 12,544 positions
/// a sample, went by split GEMMs, whose 147 columns two threads share unevenly: 1.42x at
/// batch 8.)
template <typename T>
void conv2d_backward_weight_chunked(const T* x, const T* dy, const ConvGeometry& g, T* dw, Workspace<T>& ws) {
  const Index k = g.col_rows(), p = g.out_plane(), ocg = g.ocg(), per = weight_grad_chunk(g);
  const SampleChunks chunks{per, (g.n + per - 1) / per};
  const Index tile = conv_tile_rows(g), cols_max = tile >= g.oh ? per * p : tile * g.ow, dw_size = g.oc * k;
  const int threads = static_cast<int>(std::min<Index>(chunk_threads(conv_multiply_adds(g)), chunks.count));
  T* partials = ws.get(Workspace<T>::kPartialSums, chunks.count * dw_size);
  T* columns = ws.get(Workspace<T>::kColumns, threads * k * cols_max);
  T* gathers = ws.get(Workspace<T>::kProduct, threads * ocg * cols_max);
  for_each_chunk(threads, chunks, g.n, [&](int slot, Index n0, Index nb) {
    const Index ci = n0 / per;
    T* col = columns + slot * k * cols_max;
    for (Index grp = 0; grp < g.groups; ++grp)
      for (Index oy0 = 0; oy0 < g.oh; oy0 += tile) {  // one tile of all rows where the chunk fits
        const Index oy1 = std::min(g.oh, oy0 + tile), cols = nb * (oy1 - oy0) * g.ow;
        im2col_block(x, g, n0, nb, oy0, oy1, grp, col);
        Index ld = 0;
        const T* dy_group = grad_output_block(dy, g, n0, nb, oy0, grp, ld, gathers + slot * ocg * cols_max);
        gemm(Trans::kNo, Trans::kYes, ocg, k, cols, T(1), dy_group, ld, col, cols, T(oy0 > 0 ? 1 : 0),
             partials + ci * dw_size + grp * ocg * k, k);
      }
  });
  for (Index ci = 0; ci < chunks.count; ++ci) {
    const T* part = partials + ci * dw_size;
    for (Index i = 0; i < dw_size; ++i) dw[i] += part[i];
  }
}

/// The weight gradient on the direct kernels (ops/direct_conv.h), in the chunks of the chunked
/// weight gradient, where they take g (float with AVX2, few output channels); false, doing
/// nothing, elsewhere. LeNet-5 at batch 64, one thread, medians of 3 interleaved runs, ms:
/// C1 1.72 -> 0.58, C3 1.96 -> 0.63 (chunked im2col + GEMM -> direct).
template <typename T>
bool conv2d_backward_weight_direct(const T* x, const T* dy, const ConvGeometry& g, T* dw, Workspace<T>& ws) {
#ifdef CONVKIT_DIRECT_CONV
  if constexpr (std::is_same_v<T, float>) {
    if (g.n >= 1 && direct::weight_grad_applies(g)) {
      // Chunks of a quarter of the batch (fixed by the shape: the same bits on any thread
      // count); no column matrix, so no column budget.
      const Index per = quarter_batch(g.n), chunks = (g.n + per - 1) / per;
      const int threads = static_cast<int>(std::min<Index>(chunk_threads(conv_multiply_adds(g)), chunks));
      direct::weight_grad(x, dy, g, dw, per, threads, ws);
      return true;
    }
  }
#endif
  (void)x, (void)dy, (void)g, (void)dw, (void)ws;
  return false;
}

/// The data gradient on the direct kernels (direct::data_grad), where they take g (float with
/// AVX2, stride 1, few output channels, a layer whose GEMM route is col2im); false, doing
/// nothing, elsewhere.
template <typename T>
bool conv2d_backward_data_direct(const T* dy, const ConvGeometry& g, const T* w, T* dx, Workspace<T>& ws) {
#ifdef CONVKIT_DIRECT_CONV
  if constexpr (std::is_same_v<T, float>) {
    if (g.n >= 1 && direct::data_grad_applies(g)) {
      direct::data_grad(dy, g, w, dx, ws, static_cast<int>(std::min<Index>(chunk_threads(conv_multiply_adds(g)), g.n)));
      return true;
    }
  }
#endif
  (void)dy, (void)g, (void)w, (void)dx, (void)ws;
  return false;
}

/// The weight gradient as products over shifted views of the padded input (ops/shifted_conv.h),
/// where that route takes g (float on the packed GEMM, stride 1, one group); false, doing
/// nothing, elsewhere.
template <typename T>
bool conv2d_backward_weight_shifted(const T* x, const T* dy, const ConvGeometry& g, T* dw, Workspace<T>& ws) {
#ifdef CONVKIT_SHIFTED_CONV
  if constexpr (std::is_same_v<T, float>) {
    if (shifted::weight_grad_applies(g)) {
      shifted::weight_grad(x, dy, g, dw, gemm_threads(conv_multiply_adds(g)), ws);
      return true;
    }
  }
#endif
  (void)x, (void)dy, (void)g, (void)dw, (void)ws;
  return false;
}

template <typename T>
void check_bias(const Tensor<T>* bias, Index oc) {
  CONVKIT_CHECK(bias == nullptr || bias->shape() == Shape{oc}, ShapeError,
                "conv2d: expected bias (" << oc << "), got " << bias->shape());
}

}  // namespace detail

/// y (N, OC, OH, OW) = x (N, C, H, W) ⋆ weight (OC, C/g, KH, KW) + bias (OC) (bias may be null).
template <typename T>
Tensor<T> conv2d_forward(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<convkit::detail::NoDeduce<T>>* bias,
                         const Conv2dParams& p, Workspace<T>& ws) {
  const ConvGeometry g = conv2d_geometry(x.shape(), weight.shape(), p);
  detail::check_bias(bias, g.oc);
  auto y = Tensor<T>::uninitialized(Shape{g.n, g.oc, g.oh, g.ow});
  detail::conv2d_forward_raw(x.data(), g, weight.data(), bias ? bias->data() : nullptr, y.data(), ws);
  return y;
}

/// dX (N, C, H, W) from dY (N, OC, OH, OW) and weight (OC, C/g, KH, KW): by col2im where
/// detail::backward_data_by_col2im says so, otherwise as the convolution of the padded dY with
/// the flipped filters (see top).
template <typename T>
Tensor<T> conv2d_backward_data(const Tensor<T>& grad_output, const Tensor<T>& weight,
                               const Shape& input_shape, const Conv2dParams& p, Workspace<T>& ws) {
  const ConvGeometry g = conv2d_geometry(input_shape, weight.shape(), p);
  CONVKIT_CHECK(grad_output.shape() == Shape({g.n, g.oc, g.oh, g.ow}), ShapeError,
                "conv2d_backward_data: expected grad_output " << Shape({g.n, g.oc, g.oh, g.ow})
                                                              << ", got " << grad_output.shape());
  auto grad_input = Tensor<T>::uninitialized(input_shape);
  if (detail::backward_data_by_col2im(g)) {
    if (!detail::conv2d_backward_data_direct(grad_output.data(), g, weight.data(), grad_input.data(), ws))
      detail::conv2d_backward_data_col2im(grad_output.data(), g, weight.data(), grad_input.data(), ws);
    return grad_input;
  }
  const Index ocg = g.ocg(), cg = g.cg(), kk = g.kh * g.kw;
  const ConvGeometry back = detail::flipped_geometry(g);
#ifdef CONVKIT_PACKED_GEMM
  if constexpr (std::is_same_v<T, float>) {
    bool direct = false;
#ifdef CONVKIT_DIRECT_CONV
    direct = detail::direct::forward_applies(back);
#endif
    if (!direct && back.col_rows() > 0 && back.out_plane() > 0 &&
        kk <= detail::packed::FlippedFiltersA::kMaxFlippedTaps && detail::forward_packed_applies(back)) {
      const T* w = weight.data();
      detail::conv2d_forward_packed(
          grad_output.data(), back,
          [&](Index grp) {
            return detail::packed::FlippedFiltersA{w + grp * ocg * cg * kk, cg, kk};
          },
          static_cast<const float*>(nullptr), grad_input.data(), ws);
      return grad_input;
    }
  }
#endif

  // 1. Flipped, channel-swapped filters W' (C, OC/g, KH, KW).
  T* wf = ws.get(Workspace<T>::kFlippedWeight, weight.numel());
  const T* w = weight.data();
  // In blocks of kFlipBlock x kFlipBlock filters, so that reads and writes both run along
  // rows: one filter at a time, each write went a whole W' row (OC/g·KH·KW values) from the
  // last; for ResNet-18's 512-channel 3x3 layer at 7x7, batch 8, that copy was 16% of the
  // data gradient (Xeon, AVX-512).
  // Threads take blocks of input channels (their W' rows): 1.3% of ResNet-18's two-thread
  // training step had been this copy on one thread.
  constexpr Index kFlipBlock = 16;
  const Index c_blocks = detail::ceil_div(cg, kFlipBlock);
  const auto flip_block = [&](Index gb) {  // group gb / c_blocks, input channels from c0
    const Index grp = gb / c_blocks, c0 = gb % c_blocks * kFlipBlock;
    for (Index o0 = 0; o0 < ocg; o0 += kFlipBlock)
      for (Index c = c0; c < std::min(cg, c0 + kFlipBlock); ++c)
        for (Index o = o0; o < std::min(ocg, o0 + kFlipBlock); ++o) {
          const T* src = w + ((grp * ocg + o) * cg + c) * kk;
          T* dst = wf + ((grp * cg + c) * ocg + o) * kk;
          for (Index i = 0; i < kk; ++i) dst[kk - 1 - i] = src[i];
        }
  };
  convkit::detail::parallel_for(g.groups * c_blocks, 2.0 * static_cast<double>(weight.numel()), flip_block);

  // 2. Stride-1 convolution of dY, top/left padding dilation·(K − 1) − padding, output H x W.
  detail::conv2d_forward_raw(grad_output.data(), back, wf, static_cast<const T*>(nullptr), grad_input.data(), ws);
  return grad_input;
}

/// grad_weight (OC, C/g, KH, KW) += dY · colᵀ; grad_bias (OC) += Σ dY (grad_bias may be null).
template <typename T>
void conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& grad_output, const Conv2dParams& p,
                            Tensor<T>& grad_weight, Tensor<convkit::detail::NoDeduce<T>>* grad_bias, Workspace<T>& ws) {
  const ConvGeometry g = conv2d_geometry(x.shape(), grad_weight.shape(), p);
  CONVKIT_CHECK(grad_output.shape() == Shape({g.n, g.oc, g.oh, g.ow}), ShapeError,
                "conv2d_backward_weight: expected grad_output " << Shape({g.n, g.oc, g.oh, g.ow})
                                                                << ", got " << grad_output.shape());
  detail::check_bias(grad_bias, g.oc);
  const Index k = g.col_rows(), p_out = g.out_plane(), ocg = g.ocg(), cg = g.cg();
  const Index in_sample = g.c * g.in_plane(), out_sample = g.oc * p_out;
  const T* xd = x.data();
  const T* dy = grad_output.data();
  T* dw = grad_weight.data();
  if (g.is_pointwise()) {
    for (Index n = 0; n < g.n; ++n)
      for (Index grp = 0; grp < g.groups; ++grp)
        gemm(Trans::kNo, Trans::kYes, ocg, k, p_out, T(1), dy + n * out_sample + grp * ocg * p_out,
             p_out, xd + n * in_sample + grp * cg * g.in_plane(), p_out, T(1), dw + grp * ocg * k, k);
  } else if (detail::conv2d_backward_weight_direct(xd, dy, g, dw, ws)) {
  } else if (detail::conv2d_backward_weight_shifted(xd, dy, g, dw, ws)) {
  } else if (detail::weight_grad_by_chunks(g)) {
    detail::conv2d_backward_weight_chunked(xd, dy, g, dw, ws);
  } else {
    detail::for_each_unfold_block(g, [&](Index n0, Index nb, Index oy0, Index oy1) {
      const Index cols = nb * (oy1 - oy0) * g.ow;
      for (Index grp = 0; grp < g.groups; ++grp) {
        T* col = ws.get(Workspace<T>::kColumns, k * cols);
        detail::im2col_block(xd, g, n0, nb, oy0, oy1, grp, col);
        Index ld = 0;
        const T* dy_group = detail::grad_output_block(dy, g, n0, nb, oy0, grp, ld, ws);
        gemm(Trans::kNo, Trans::kYes, ocg, k, cols, T(1), dy_group, ld, col, cols, T(1), dw + grp * ocg * k, k);
      }
    });
  }
  if (grad_bias != nullptr) {
    T* db = grad_bias->data();
    // Per channel, one sum in double over the samples' planes in order (DoubleSums: a fixed
    // order that vectorises; a running float sum per plane cost LeNet-5's C1 0.3 ms a step).
    convkit::detail::parallel_for(g.oc, static_cast<double>(g.n * out_sample), [&](Index o) {
      detail::DoubleSums sum;
      for (Index n = 0; n < g.n; ++n) {
        const T* plane = dy + n * out_sample + o * p_out;
        sum.add(p_out, [plane](Index i) { return static_cast<double>(plane[i]); });
      }
      db[o] += static_cast<T>(sum.total());
    });
  }
}

}  // namespace convkit::ops
