// convkit/ops/direct_conv.h — direct float convolution for layers with few output channels
// (kMinChannels to kMaxChannels), compiled in with AVX2 + FMA where the packed GEMM is
// (ops/packed_gemm.h), unless CONVKIT_NO_DIRECT_CONV is defined (the GEMM paths then take
// these layers).
//
// The im2col GEMM pays for its unfolding by reusing each unfolded value across the output
// channels: with 6 or 16 of them (LeNet-5's C1 and C3) there is little reuse, and unfolding,
// packing and the GEMM's thin tiles cost more than the multiply-adds (C1's forward ran at 11
// GFLOP/s on Zen 3). Here the output channels are the vector lanes (one vector of 8, or two),
// and a tile of neighbouring outputs keeps 12 accumulators or fewer; per tap
// (c, i, j) it loads the tap's NV weight vectors and broadcasts the tile's input values, read
// in place (a tile is R outputs of two neighbouring rows where its channels fit one register:
// one vector of 8, or with AVX-512 two):
//
//   y[n, o, oy, ox] = b[o] + Σ_{c,i,j} w[o, c, i, j] · xp[n, c, oy·sh + i·dh, ox + j·dw]
//
// where xp is the sample with its padding: x itself when the layer does not pad, otherwise a
// zero-padded copy of the sample (small: the layers this serves have small planes). The tile
// writes its outputs channel-fastest into a per-sample buffer, which is transposed into y's
// planes with the bias added. Column stride 1, one group. Each output is one tile's sum over
// the taps in a fixed order, so the values do not depend on the number of threads (threads
// take whole samples). The weight gradient (weight_grad) runs the same tiles with the roles
// turned: their outputs are filter taps, their loop a sample's output positions, and dY
// (transposed) gives the vectors. The data gradient of such a layer at unit strides, where the
// GEMM route would be col2im, is gathered by data_grad, with the input's columns in the lanes.
// With AVX-512, 16 lanes are one register (Reg) and its tiles take two rows; a layer with one
// vector of channels (8 lanes, of which LeNet-5's C1 fills 6) and output rows of at least 24
// that fill 3/4 of their 32-column tiles (columns_forward_applies) runs its forward pass and
// (at column dilation 1) its weight gradient with output columns in the lanes instead
// (forward_by_columns, weight_grad_by_columns). docs/design.md has the measurements.
#pragma once

#include "convkit/ops/packed_gemm.h"

#if defined(CONVKIT_PACKED_GEMM) && defined(__AVX2__) && defined(__FMA__) && !defined(CONVKIT_NO_DIRECT_CONV)
#define CONVKIT_DIRECT_CONV 1

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

#include "convkit/core/parallel.h"
#include "convkit/ops/im2col.h"
#include "convkit/ops/workspace.h"

namespace convkit::ops::detail::direct {

constexpr int kLanes = 8;

/// The registers of L lanes (8 or 16) of a tile: an AVX-512 vector for 16 where the build has
/// AVX-512, otherwise L/8 AVX2 vectors. One 16-lane FMA does the work of two 8-lane ones, at
/// the same rate where the core has two 512-bit FMA units.
template <int L>
struct Reg;
template <>
struct Reg<8> {
  using V = __m256;
  static constexpr int kCount = 1, kWidth = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V set1(float a) { return _mm256_set1_ps(a); }  // not _mm256_broadcast_ss: see packed::vbroadcast
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  /// Stores the first n lanes of v (0 < n < 8).
  static void store_first(float* p, V v, int n) {
    alignas(32) float t[8];
    _mm256_store_ps(t, v);
    std::copy(t, t + n, p);
  }
};
#if defined(__AVX512F__)
template <>
struct Reg<16> {
  using V = __m512;
  static constexpr int kCount = 1, kWidth = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float a) { return _mm512_set1_ps(a); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void store_first(float* p, V v, int n) { packed::vstore_head(p, v, n); }  // the GEMM's masked store
};
template <>
struct Reg<32> : Reg<16> {
  static constexpr int kCount = 2;
};
/// Accumulators a tile may keep: 32 registers, less the vectors and the broadcast value.
constexpr int kMaxAccumulators = 24;
constexpr bool kWideRegisters = true;
#else
template <>
struct Reg<16> : Reg<8> {
  static constexpr int kCount = 2;
};
constexpr int kMaxAccumulators = 12;  // of AVX2's 16 registers
constexpr bool kWideRegisters = false;
#endif

/// Output channels the direct forward takes: one or two vectors of them, at least half full
/// (one channel in 8 lanes ran LeNet-5's C1 data gradient as a flipped convolution at a third
/// of col2im's speed).
constexpr Index kMinChannels = kLanes / 2, kMaxChannels = 2 * kLanes;
/// Taps (C·KH·KW) at most: a tile's loop streams the weights of every tap (one or two vectors
/// each: 32 or 64 KiB at this limit, from L2). Measured up to 576 taps (docs/benchmarks.md);
/// larger products reuse enough for the GEMM to pay for its unfolding.
constexpr Index kMaxTaps = 1024;
/// Floats of a sample's buffers at most (its output, channels in lanes, and its padded copy):
/// 256 KiB, within the L2. Larger planes keep the GEMM paths, whose memory the column budget
/// bounds and whose GEMMs split between threads even for one sample; the direct kernels
/// split the batch only.
constexpr Index kMaxSampleFloats = Index{1} << 16;
/// Outputs per tile row at most: a tile of two output rows for one register of channels, of
/// one for two (AVX2's 16 lanes), so 12 accumulators, with the weights and one broadcast
/// value, in AVX2's 16 registers. (Measured on Zen 3, one core, tiles over L1-resident data: 6
/// outputs x 2 vectors 68-73 GFLOP/s, 12 x 1 58-64, 7 x 1 40-43, 8 x 1 54-55: fewer
/// accumulators than 12 leave the FMA units waiting.)
constexpr int kMaxTile = 6;

/// Output rows per tile for nv 8-lane vectors of channels: two where they fit one register.
constexpr int tile_rows(int nv) { return nv == 1 || Reg<2 * kLanes>::kCount == 1 ? 2 : 1; }

/// A loop of sums over (c, i, j) for c < channels, i < kh, j < kw, reading the input at
/// c·channel + i·row + j·col from where the tile's outputs start. The forward pass loops over
/// the taps of the filters; the weight gradient, whose outputs are the taps, over the output
/// positions of each sample (one "channel").
struct Taps {
  Index channels, kh, kw;
  Index channel, row, col;
};

/// out[q·out_step + r·NV·8 + lane] (+= if `accumulate`, = otherwise) Σ over the loop's steps s
/// of vec[s·NV·8 + lane] · in[q·in_step + offset(s) + r], for the R outputs r of each of the
/// tile's rows q. Forward: vec holds the weights, tap-major, output channels in lanes; weight
/// gradient: dY, position-major, output channels in lanes.
template <int R, int NV>
void tile(const float* in, Index in_step, const Taps& t, const float* vec, float* out, Index out_step,
          bool accumulate) {
  using G = Reg<NV * kLanes>;
  using V = typename G::V;
  constexpr int kRows = tile_rows(NV), kL = NV * kLanes, kC = G::kCount, kW = G::kWidth;
  V acc[kRows][R][kC];
#pragma GCC unroll 2
  for (int q = 0; q < kRows; ++q)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < kC; ++v)
        acc[q][r][v] = accumulate ? G::load(out + q * out_step + r * kL + v * kW) : G::zero();
  for (Index c = 0; c < t.channels; ++c)
    for (Index i = 0; i < t.kh; ++i) {
      const float* row = in + c * t.channel + i * t.row;
      for (Index j = 0; j < t.kw; ++j, vec += kL) {
        const float* src = row + j * t.col;
        V wv[kC];
#pragma GCC unroll 2
        for (int v = 0; v < kC; ++v) wv[v] = G::load(vec + v * kW);
#pragma GCC unroll 2
        for (int q = 0; q < kRows; ++q)
#pragma GCC unroll 16
          for (int r = 0; r < R; ++r) {
            const V a = G::set1(src[q * in_step + r]);
#pragma GCC unroll 2
            for (int v = 0; v < kC; ++v) acc[q][r][v] = G::fma(a, wv[v], acc[q][r][v]);
          }
      }
    }
#pragma GCC unroll 2
  for (int q = 0; q < kRows; ++q)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < kC; ++v) G::store(out + q * out_step + r * kL + v * kW, acc[q][r][v]);
}

using TileFn = void (*)(const float*, Index, const Taps&, const float*, float*, Index, bool);

template <int NV, int... R>
constexpr std::array<TileFn, sizeof...(R)> tile_table(std::integer_sequence<int, R...>) {
  return {&tile<R + 1, NV>...};
}

/// The tile of r outputs per row (1 <= r <= kMaxTile) for nv vectors of channels.
inline TileFn kernel(int nv, Index r) {
  static constexpr auto one = tile_table<1>(std::make_integer_sequence<int, kMaxTile>{});
  static constexpr auto two = tile_table<2>(std::make_integer_sequence<int, kMaxTile>{});
  return nv == 1 ? one[static_cast<std::size_t>(r - 1)] : two[static_cast<std::size_t>(r - 1)];
}

/// Tiles of `size` outputs that cover an extent of `len`: tile s starts at start(s).
struct Cover {
  Index len, count, size;
  /// Tiles of at most `most`, as even as they come.
  Cover(Index len_, Index most) : len(len_), count((len_ + most - 1) / most), size((len_ + count - 1) / count) {}
  /// The last tile moved back to end at len, overlapping its neighbour: for outputs that are
  /// overwritten (written again with the same values), not added to.
  Index start(Index s) const { return std::min(s * size, len - size); }
};

/// Input rows and columns the outputs of g read, from the top-left corner of the padding.
inline Index read_rows(const ConvGeometry& g) { return (g.oh - 1) * g.sh + g.dh * (g.kh - 1) + 1; }
inline Index read_cols(const ConvGeometry& g) { return g.ow + g.dw * (g.kw - 1); }  // column stride 1

/// Whether the direct forward takes this geometry.
inline bool forward_applies(const ConvGeometry& g) {
  if (!(g.groups == 1 && g.sw == 1 && g.oc >= kMinChannels && g.oc <= kMaxChannels && g.col_rows() >= 1 &&
        g.col_rows() <= kMaxTaps && g.oh >= 1 && g.ow >= 1 && !g.is_pointwise()))
    return false;
  return g.out_plane() * kMaxChannels + g.c * std::max(read_rows(g), g.h) * std::max(read_cols(g), g.w) <=
         kMaxSampleFloats;
}

/// Whether the direct weight gradient takes this geometry: as the forward, and unit column
/// dilation (a tile's taps are neighbouring input columns).
inline bool weight_grad_applies(const ConvGeometry& g) { return forward_applies(g) && g.dw == 1; }

inline int vectors(const ConvGeometry& g) { return g.oc <= kLanes ? 1 : 2; }

/// y (OC, P) = the first OC lanes of buf (P, lanes), transposed, plus b (null: none).
inline void store_planes(const float* buf, Index lanes, Index p, Index oc, const float* b, float* y) {
  Index p0 = 0;
  for (; p0 + kLanes <= p; p0 += kLanes)
    for (Index v = 0; v * kLanes < oc; ++v) {
      __m256 r[kLanes];
      for (int i = 0; i < kLanes; ++i) r[i] = _mm256_loadu_ps(buf + (p0 + i) * lanes + v * kLanes);
      packed::transpose8x8(r);
      for (Index q = 0; q < kLanes && v * kLanes + q < oc; ++q) {
        const Index o = v * kLanes + q;
        _mm256_storeu_ps(y + o * p + p0, b ? _mm256_add_ps(r[q], _mm256_set1_ps(b[o])) : r[q]);
      }
    }
  for (; p0 < p; ++p0)
    for (Index o = 0; o < oc; ++o) y[o * p + p0] = b ? buf[p0 * lanes + o] + b[o] : buf[p0 * lanes + o];
}

/// buf (P, lanes) = y (OC, P) transposed, lanes past OC 0.
inline void load_planes(const float* y, Index oc, Index p, Index lanes, float* buf) {
  Index p0 = 0;
  for (; p0 + kLanes <= p; p0 += kLanes)
    for (Index v = 0; v * kLanes < lanes; ++v) {
      __m256 r[kLanes];
      for (int q = 0; q < kLanes; ++q) {
        const Index o = v * kLanes + q;
        r[q] = o < oc ? _mm256_loadu_ps(y + o * p + p0) : _mm256_setzero_ps();
      }
      packed::transpose8x8(r);
      for (int i = 0; i < kLanes; ++i) _mm256_storeu_ps(buf + (p0 + i) * lanes + v * kLanes, r[i]);
    }
  for (; p0 < p; ++p0)
    for (Index o = 0; o < lanes; ++o) buf[p0 * lanes + o] = o < oc ? y[o * p + p0] : 0.0f;
}

/// o[q] = src[q − pl] for q in [0, cols) where that lies in [0, w), 0 elsewhere: a row of w
/// values placed at column pl of a zero row (pl may be negative: a crop).
inline void pad_row(const float* src, Index w, Index pl, Index cols, float* o) {
  const Index lo = std::clamp<Index>(pl, 0, cols), hi = std::clamp<Index>(pl + w, lo, cols);
  std::fill(o, o + lo, 0.0f);
  if (hi > lo) std::copy(src + (lo - pl), src + (hi - pl), o + lo);
  std::fill(o + hi, o + cols, 0.0f);
}

/// The input the taps read: x itself when the layer does not pad, otherwise each sample copied
/// with its padding (rows x cols per channel, from the top-left corner of the padding).
struct Input {
  bool copy;
  Index rows, cols;  // of a channel of the input read
  /// min_cols: columns a tile may read past the outputs' (tiles of whole vectors of columns).
  explicit Input(const ConvGeometry& g, Index min_cols = 0) {
    const Index need_rows = read_rows(g), need_cols = std::max(read_cols(g), min_cols);
    copy = g.pt != 0 || g.pl != 0 || need_rows > g.h || need_cols > g.w;
    rows = copy ? need_rows : g.h;
    cols = copy ? need_cols : g.w;
  }
  /// Floats of a padded copy of one sample (0 without copies).
  Index copy_size(const ConvGeometry& g) const { return copy ? g.c * rows * cols : 0; }

  /// Sample xs (C, H, W) as the taps read it: xs itself, or its padded copy in buf:
  /// buf[c, r, q] = xs[c, r − pt, q − pl], 0 outside xs.
  const float* sample(const float* xs, const ConvGeometry& g, float* buf) const {
    if (!copy) return xs;
    for (Index c = 0; c < g.c; ++c)
      for (Index r = 0; r < rows; ++r) {
        float* o = buf + (c * rows + r) * cols;
        const Index sr = r - g.pt;
        if (sr < 0 || sr >= g.h)
          std::fill(o, o + cols, 0.0f);
        else
          pad_row(xs + (c * g.h + sr) * g.w, g.w, g.pl, cols, o);
      }
    return buf;
  }
};

/// y = conv(x, w) + b (b null: none) for a geometry forward_applies to, output channels in the
/// lanes, on `threads` threads that take whole samples. Overwrites y.
inline void forward_by_channels(const float* x, const ConvGeometry& g, const float* w, const float* b,
                                float* y, Workspace<float>& ws, int threads) {
  const int nv = vectors(g);
  const Index lanes = nv * kLanes, k = g.col_rows(), p = g.out_plane();
  const Input input(g);
  const Index padded = input.copy_size(g), per_thread = padded + p * lanes;
  float* wt = ws.get(Workspace<float>::kProduct, k * lanes);  // wt[t][o] = w[o][t], 0 past OC
  for (Index t = 0; t < k; ++t)
    for (Index o = 0; o < lanes; ++o) wt[t * lanes + o] = o < g.oc ? w[o * k + t] : 0.0f;
  float* buffers = ws.get(Workspace<float>::kColumns, threads * per_thread);
  // Tiles cover each output row and tiles of two rows the rows (a single row is taken as two
  // rows that are the same); the last ones overlap their neighbours (Cover::start).
  const Cover across(g.ow, kMaxTile), down(g.oh, std::min<Index>(tile_rows(nv), g.oh));
  const Index rows_per_tile = down.size;
  const TileFn fn = kernel(nv, across.size);
  const Taps taps{g.c, g.kh, g.kw, input.rows * input.cols, g.dh * input.cols, g.dw};
  const Index in_sample = g.c * g.in_plane(), in_step = rows_per_tile > 1 ? g.sh * input.cols : 0,
              out_step = rows_per_tile > 1 ? g.ow * lanes : 0;
  convkit::detail::parallel_for_slots(threads, g.n, [&](int slot, Index n) {
    float* buf = buffers + slot * per_thread;
    const float* xs = input.sample(x + n * in_sample, g, buf);
    float* out = buf + padded;
    for (Index ty = 0; ty < down.count; ++ty) {
      const Index oy = down.start(ty);
      for (Index tx = 0; tx < across.count; ++tx) {
        const Index ox = across.start(tx);
        fn(xs + oy * g.sh * input.cols + ox, in_step, taps, wt, out + (oy * g.ow + ox) * lanes, out_step, false);
      }
    }
    store_planes(out, lanes, p, g.oc, b, y + n * g.oc * p);
  });
}

/// dW += Σ over chunks of `per` samples, in chunk order, of each chunk's sum (computed on any
/// of `threads` threads), for a geometry weight_grad_applies to:
///   dW[o, c, i, j] = Σ_{n, oy, ox} dY[n, o, oy, ox] · xp[n, c, oy·sh + i·dh, ox + j]
/// Here the outputs of a tile are taps (c, i, j .. j + R − 1), with channels in one register two
/// filter rows i, i + 1 of them, and the loop runs over a sample's output positions, reading
/// dY transposed (positions x channels). The tiles partition the taps exactly (sums add up
/// over the samples of a chunk): a last single filter row goes as two rows that are the same.
inline void weight_grad_by_channels(const float* x, const float* dy, const ConvGeometry& g, float* dw,
                                    Index per, int threads, Workspace<float>& ws) {
  const int nv = vectors(g);
  const Index lanes = nv * kLanes, k = g.col_rows(), p = g.out_plane(), chunks = (g.n + per - 1) / per;
  const Input input(g);
  const Index padded = input.copy_size(g), per_thread = padded + p * lanes;
  float* partials = ws.get(Workspace<float>::kPartialSums, chunks * k * lanes);  // [chunk][tap][lane]
  float* buffers = ws.get(Workspace<float>::kColumns, threads * per_thread);
  const Index rows_per_tile = std::min<Index>(tile_rows(nv), g.kh);
  const Cover across(g.kw, kMaxTile);
  const Taps positions{1, g.oh, g.ow, 0, g.sh * input.cols, 1};
  const Index in_sample = g.c * g.in_plane(), out_sample = g.oc * p;
  convkit::detail::parallel_for_slots(threads, chunks, [&](int slot, Index ci) {
    float* buf = buffers + slot * per_thread;
    float* dyt = buf + padded;
    float* part = partials + ci * k * lanes;
    const Index n0 = ci * per, n1 = std::min(g.n, n0 + per);
    for (Index n = n0; n < n1; ++n) {
      const float* xs = input.sample(x + n * in_sample, g, buf);
      load_planes(dy + n * out_sample, g.oc, p, lanes, dyt);
      for (Index c = 0; c < g.c; ++c)
        for (Index i = 0; i < g.kh; i += rows_per_tile) {
          const bool pair = i + rows_per_tile <= g.kh && rows_per_tile > 1;
          for (Index j = 0; j < g.kw; j += across.size) {
            const Index r = std::min(across.size, g.kw - j);  // exact: the last tile may be narrower
            kernel(nv, r)(xs + c * input.rows * input.cols + i * g.dh * input.cols + j, pair ? g.dh * input.cols : 0,
                          positions, dyt, part + ((c * g.kh + i) * g.kw + j) * lanes, pair ? g.kw * lanes : 0, n > n0);
          }
        }
    }
  });
  for (Index ci = 0; ci < chunks; ++ci) {
    const float* part = partials + ci * k * lanes;
    for (Index o = 0; o < g.oc; ++o)
      for (Index t = 0; t < k; ++t) dw[o * k + t] += part[t * lanes + o];
  }
}

/// The data gradient of a stride-1 layer whose GEMM route is col2im (see conv2d.h's
/// backward_data_by_col2im: fewer input than output channels, or few positions), gathered:
///   dX[n, c, y, x] = Σ_{o, i, j} w[o, c, i, j] · dY[n, o, y + pt − i·dh, x + pl − j·dw]
/// over the taps whose dY position lies inside dY. Here the input columns x are the lanes (one
/// vector of 8, or two) and a tile sums R input channels of one input row: per tap it loads
/// the tap's dY vectors (shifted rows of a copy of the sample's dY, zero-padded at the sides)
/// and broadcasts the R weights. The filter rows are cut per input row to those whose dY row
/// exists, so no tile multiplies a row of zeros (LeNet-5's C3: 50 of the 70 row taps of a
/// 14-row input; its flipped convolution would sum over 196 positions x 25 taps per channel,
/// col2im over 100 x 25 at K = 16 and then scatters). Each value is one tile's sum in a fixed
/// order (i, j, o), on any thread count (threads take whole samples).
struct GradTaps {
  Index oc, kw, dw;
  Index d_o, d_i;       // dY copy: step per output channel, per filter row (negative)
  Index w_o, w_i, w_j;  // repacked weights [i][j][o][c]: steps
};

/// out[r·out_step + x] = Σ_{o < t.oc, i < rows, j < t.kw} w[o·w_o + i·w_i + j·w_j + r] ·
/// d[o·d_o + i·d_i + (kw − 1 − j)·dw + x] for the R channels r and NV·8 columns x, of which the
/// first `cols` are stored. With AVX-512, where the tile has fewer than 8 accumulators (two FMA
/// units, four cycles each: fewer leave them waiting), even and odd output channels keep
/// separate sums, added at the end, if twice the accumulators fit the registers (AVX2 builds
/// keep one sum per accumulator, as measured on Zen 3).
template <int R, int NV>
void grad_tile(const float* d, const float* w, const GradTaps& t, Index rows, float* out, Index out_step, int cols) {
  using G = Reg<NV * kLanes>;
  using V = typename G::V;
  constexpr int kC = G::kCount, kW = G::kWidth,
                kSplit = kWideRegisters && R * kC < 8 && 2 * R * kC <= kMaxAccumulators ? 2 : 1;
  V acc[kSplit][R][kC];
#pragma GCC unroll 2
  for (int s = 0; s < kSplit; ++s)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < kC; ++v) acc[s][r][v] = G::zero();
  // Output channels innermost: the longest of the three loops (4 to 16 steps; a filter row
  // has 3 or 5). (In forward_by_columns this loop runs over the input channels.) Offsets, not pointers: none
  // is formed past the last channel.
  const Index oc = t.oc, kw = t.kw, d_o = t.d_o, w_o = t.w_o;
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < kw; ++j) {
      const float* src = d + i * t.d_i + (kw - 1 - j) * t.dw;
      const float* wj = w + i * t.w_i + j * t.w_j;
      Index at_d = 0, at_w = 0;  // of channel o
      const auto step = [&](V(&sum)[R][kC]) {
        V dv[kC];
#pragma GCC unroll 2
        for (int v = 0; v < kC; ++v) dv[v] = G::load(src + at_d + v * kW);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
          const V a = G::set1(wj[at_w + r]);
#pragma GCC unroll 2
          for (int v = 0; v < kC; ++v) sum[r][v] = G::fma(a, dv[v], sum[r][v]);
        }
        at_d += d_o, at_w += w_o;
      };
      Index o = 0;
      for (; o + kSplit <= oc; o += kSplit)
#pragma GCC unroll 2
        for (int s = 0; s < kSplit; ++s) step(acc[s]);
      if (o < oc) step(acc[0]);
    }
  if constexpr (kSplit == 2)
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
      for (int v = 0; v < kC; ++v) acc[0][r][v] = G::add(acc[0][r][v], acc[1][r][v]);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int v = 0; v < kC; ++v) {
      const int n = cols - v * kW;
      if (n >= kW)
        G::store(out + r * out_step + v * kW, acc[0][r][v]);
      else if (n > 0)
        G::store_first(out + r * out_step + v * kW, acc[0][r][v], n);
    }
}

using GradTileFn = void (*)(const float*, const float*, const GradTaps&, Index, float*, Index, int);

/// Channels per data-gradient tile at most: 12 accumulators, as the forward's tiles (of one
/// register or two).
constexpr int grad_tile_channels(int nv) {
  return 12 / (nv == 1 ? 1 : nv == 2 ? Reg<2 * kLanes>::kCount : 2);
}

template <int NV, int... R>
constexpr std::array<GradTileFn, sizeof...(R)> grad_tile_table(std::integer_sequence<int, R...>) {
  return {&grad_tile<R + 1, NV>...};
}

/// The data-gradient tile of r channels (1 <= r <= grad_tile_channels(nv)) for nv vectors.
inline GradTileFn grad_kernel(int nv, Index r) {
  static constexpr auto one = grad_tile_table<1>(std::make_integer_sequence<int, grad_tile_channels(1)>{});
  static constexpr auto two = grad_tile_table<2>(std::make_integer_sequence<int, grad_tile_channels(2)>{});
#if defined(__AVX512F__)
  static constexpr auto four = grad_tile_table<4>(std::make_integer_sequence<int, grad_tile_channels(4)>{});
  if (nv == 4) return four[static_cast<std::size_t>(r - 1)];
#endif
  return nv == 1 ? one[static_cast<std::size_t>(r - 1)] : two[static_cast<std::size_t>(r - 1)];
}

/// Vectors of input columns per data-gradient tile: one for inputs at most 8 wide, else two.
inline int grad_vectors(const ConvGeometry& g) { return g.w <= kLanes ? 1 : 2; }

/// Columns of a row of the data gradient's dY copy: every column a tile reads, for tiles of
/// grad_vectors(g)·8 input columns (at least the input's width).
inline Index grad_copy_cols(const ConvGeometry& g) {
  return std::max<Index>(g.w, grad_vectors(g) * kLanes) + g.dw * (g.kw - 1);
}

/// The first column of column tile tx of `width` columns over a row of `len`: the last tile is
/// moved back to end at len, overlapping its neighbour (0 for a row narrower than a tile,
/// whose tile stores only its first len columns).
inline Index column_tile_start(Index tx, Index width, Index len) {
  return len < width ? 0 : std::min(tx * width, len - width);
}

/// Whether the direct data gradient takes g: one group, unit strides, 4 to 16 output channels
/// (the GEMM of col2im has K = OC: thin), at most kMaxTaps taps per input channel (OC·KH·KW),
/// a sample's dY copy within kMaxSampleFloats, not an unpadded 1x1 (no col2im: one GEMM); and tiles that
/// keep the FMA units busy: at least 6 accumulators (channels per tile x vectors; fewer
/// measured slower than col2im: 3 channels x 1 vector 0.7-0.8x), and at least 3/4 of their
/// lanes on input columns (tiles of 8 or 16 columns, the last one overlapping its neighbour;
/// a 4-wide input in 8 lanes measured 0.74-0.96x).
inline bool data_grad_applies(const ConvGeometry& g) {
  if (!(g.groups == 1 && g.sh == 1 && g.sw == 1 && g.oc >= kMinChannels && g.oc <= kMaxChannels && g.c >= 1 &&
        g.oc * g.kh * g.kw <= kMaxTaps && g.h >= 1 && g.w >= 1 && g.oh >= 1 && g.ow >= 1 && !g.is_pointwise()))
    return false;
  const int nv = grad_vectors(g);
  const Index width = nv * kLanes, computed = (g.w + width - 1) / width * width;
  return Cover(g.c, grad_tile_channels(nv)).size * nv >= 6 && 4 * g.w >= 3 * computed &&
         g.oc * g.oh * grad_copy_cols(g) <= kMaxSampleFloats;
}

/// dX = the data gradient of g from dY and w (OC, C, KH, KW), for a geometry data_grad_applies
/// to, on `threads` threads that take whole samples. Overwrites dx.
inline void data_grad(const float* dy, const ConvGeometry& g, const float* w, float* dx, Workspace<float>& ws,
                      int threads) {
  const int nv = grad_vectors(g);
  const Index width = nv * kLanes, pw = grad_copy_cols(g), kk = g.kh * g.kw, out_sample = g.oc * g.out_plane();
  // Copy column q of a dY row holds dY column q + first (0 outside dY): the tile of input
  // columns [x, x + width) reads, for filter column j, copy columns x + (KW − 1 − j)·dw + [0, width).
  const Index first = g.pl - g.dw * (g.kw - 1);
  float* wt = ws.get(Workspace<float>::kProduct, g.oc * kk * g.c);  // wt[i][j][o][c] = w[o][c][i][j]
  for (Index o = 0; o < g.oc; ++o)
    for (Index c = 0; c < g.c; ++c)
      for (Index t = 0; t < kk; ++t) wt[(t * g.oc + o) * g.c + c] = w[(o * g.c + c) * kk + t];
  const Index per_thread = g.oc * g.oh * pw;
  float* buffers = ws.get(Workspace<float>::kColumns, threads * per_thread);
  const Cover channels(g.c, grad_tile_channels(nv));
  const Index across = (g.w + width - 1) / width;
  const GradTaps taps{g.oc, g.kw, g.dw, g.oh * pw, -g.dh * pw, g.c, g.kw * g.oc * g.c, g.oc * g.c};
  convkit::detail::parallel_for_slots(threads, g.n, [&](int slot, Index n) {
    float* d = buffers + slot * per_thread;
    const float* src = dy + n * out_sample;
    for (Index r = 0; r < g.oc * g.oh; ++r) pad_row(src + r * g.ow, g.ow, -first, pw, d + r * pw);
    float* dxs = dx + n * g.c * g.in_plane();
    for (Index y = 0; y < g.h; ++y) {
      // Filter rows i whose dY row y + pt − i·dh lies in [0, OH).
      const Index i0 = std::clamp<Index>(ceil_div(y + g.pt - g.oh + 1, g.dh), 0, g.kh);
      const Index i1 = std::clamp<Index>(ceil_div(y + g.pt + 1, g.dh), i0, g.kh);
      const float* drow = i1 > i0 ? d + (y + g.pt - i0 * g.dh) * pw : d;  // the dY row of filter row i0
      for (Index cb = 0; cb < channels.count; ++cb) {
        const Index c0 = cb * channels.size, cn = std::min(channels.size, g.c - c0);
        const GradTileFn fn = grad_kernel(nv, cn);
        for (Index tx = 0; tx < across; ++tx) {
          const Index x0 = column_tile_start(tx, width, g.w);
          fn(drow + x0, wt + i0 * taps.w_i + c0, taps, i1 - i0, dxs + (c0 * g.h + y) * g.w + x0,
             g.in_plane(), static_cast<int>(std::min(width, g.w)));
        }
      }
    }
  });
}

#if defined(__AVX512F__)
/// The forward pass with output columns in the lanes, as the data gradient's gather: a tile
/// of grad_tile sums R output channels over 32 columns of one output row (two AVX-512
/// registers), per tap (c, i, j) loading the input row's vectors and broadcasting the R
/// weights. A layer with few output channels fills only part of the forward's 8 lanes
/// (LeNet-5's C1: 6), where its rows fill most of a 16-lane register's.
constexpr int kColumnVectors = 4;  // 8-lane vectors of columns per tile

/// Whether forward takes g by columns: one 8-lane vector of channels, and output rows that
/// fill at least 3/4 of the tiles' lanes (the last tile of a row overlaps its neighbour).
inline bool columns_forward_applies(const ConvGeometry& g) {
  constexpr Index width = kColumnVectors * kLanes;
  return vectors(g) == 1 && g.ow >= width * 3 / 4 && 4 * g.ow >= 3 * ceil_div(g.ow, width) * width;
}

/// forward_by_channels's result, by columns, for a geometry columns_forward_applies to.
inline void forward_by_columns(const float* x, const ConvGeometry& g, const float* w, const float* b,
                               float* y, Workspace<float>& ws, int threads) {
  constexpr Index width = kColumnVectors * kLanes;
  const Index kk = g.kh * g.kw, p = g.out_plane();
  // Tile columns [x0, x0 + width) read copy columns x0 + (KW − 1 − j)·dw + [0, width) for
  // weights flipped in j: wt[i][j][c][o] = w[o][c][i][KW − 1 − j].
  const Input input(g, std::max(g.ow, width) + g.dw * (g.kw - 1));
  float* wt = ws.get(Workspace<float>::kProduct, g.oc * kk * g.c);
  for (Index o = 0; o < g.oc; ++o)
    for (Index c = 0; c < g.c; ++c)
      for (Index i = 0; i < g.kh; ++i)
        for (Index j = 0; j < g.kw; ++j)
          wt[((i * g.kw + (g.kw - 1 - j)) * g.c + c) * g.oc + o] = w[((o * g.c + c) * g.kh + i) * g.kw + j];
  const Index padded = input.copy_size(g);
  float* buffers = ws.get(Workspace<float>::kColumns, threads * padded);
  const Cover channels(g.oc, grad_tile_channels(kColumnVectors));
  const Index across = ceil_div(g.ow, width), in_sample = g.c * g.in_plane();
  const GradTaps taps{
      g.c, g.kw, g.dw, input.rows * input.cols, g.dh * input.cols, g.oc, g.kw * g.c * g.oc, g.c * g.oc};
  convkit::detail::parallel_for_slots(threads, g.n, [&](int slot, Index n) {
    const float* xs = input.sample(x + n * in_sample, g, buffers + slot * padded);
    float* ys = y + n * g.oc * p;
    for (Index oy = 0; oy < g.oh; ++oy)
      for (Index cb = 0; cb < channels.count; ++cb) {
        const Index o0 = cb * channels.size, on = std::min(channels.size, g.oc - o0);
        const GradTileFn fn = grad_kernel(kColumnVectors, on);
        for (Index tx = 0; tx < across; ++tx) {
          const Index x0 = column_tile_start(tx, width, g.ow);
          fn(xs + oy * g.sh * input.cols + x0, wt + o0, taps, g.kh, ys + (o0 * g.oh + oy) * g.ow + x0, p,
             static_cast<int>(std::min(width, g.ow)));
        }
      }
    if (b)
      for (Index o = 0; o < g.oc; ++o) {
        float* plane = ys + o * p;
        for (Index q = 0; q < p; ++q) plane[q] += b[o];
      }
  });
}

/// The weight gradient with output columns in the lanes: part[j·tap + r·16 + lane] (=, or +=
/// if `accumulate`) Σ over output rows oy < rows and columns ox = 16·q + lane < cols of
///   dy[r·dy_plane + oy·dy_row + ox] · x[oy·x_row + ox + j]
/// for the R output channels r and the T neighbouring filter columns j of one tap row; the
/// lanes are summed at the end (weight_grad_by_columns). The last vector of a row loads its
/// lanes past `cols` as 0, from dY and x alike, reading nothing there.
template <int R, int T>
void column_grad_tile(const float* dy, Index dy_plane, Index dy_row, const float* x, Index x_row, Index rows,
                      Index cols, float* part, Index tap, bool accumulate) {
  __m512 acc[T][R];
#pragma GCC unroll 4
  for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
      acc[j][r] = accumulate ? _mm512_loadu_ps(part + j * tap + r * 16) : _mm512_setzero_ps();
  for (Index oy = 0; oy < rows; ++oy)
    for (Index ox = 0; ox < cols; ox += 16) {
      const __mmask16 m =
          cols - ox >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (cols - ox)) - 1);
      const float* d = dy + oy * dy_row + ox;
      const float* in = x + oy * x_row + ox;
      __m512 dv[R], xv[T];
      // Each vector in a register (the empty asm): GCC otherwise folds the loads of dY into
      // the FMAs, loading each T times.
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        dv[r] = _mm512_maskz_loadu_ps(m, d + r * dy_plane);
        __asm__("" : "+v"(dv[r]));
      }
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j) xv[j] = _mm512_maskz_loadu_ps(m, in + j);
#pragma GCC unroll 4
      for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[j][r] = _mm512_fmadd_ps(dv[r], xv[j], acc[j][r]);
    }
#pragma GCC unroll 4
  for (int j = 0; j < T; ++j)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) _mm512_storeu_ps(part + j * tap + r * 16, acc[j][r]);
}

/// Channels and filter columns of a column_grad_tile at most: 18 accumulators, with the 9
/// vectors they multiply in the 32 registers.
constexpr int kColumnGradChannels = 6, kColumnGradTaps = 3;

using ColumnGradTileFn = void (*)(const float*, Index, Index, const float*, Index, Index, Index, float*,
                                  Index, bool);

template <int T, int... R>
constexpr std::array<ColumnGradTileFn, sizeof...(R)> column_grad_row(std::integer_sequence<int, R...>) {
  return {&column_grad_tile<R + 1, T>...};
}

/// The column_grad_tile of r channels and t filter columns.
inline ColumnGradTileFn column_grad_kernel(Index r, Index t) {
  using Channels = std::make_integer_sequence<int, kColumnGradChannels>;
  static constexpr std::array<std::array<ColumnGradTileFn, kColumnGradChannels>, kColumnGradTaps> table{
      column_grad_row<1>(Channels{}), column_grad_row<2>(Channels{}), column_grad_row<3>(Channels{})};
  return table[static_cast<std::size_t>(t - 1)][static_cast<std::size_t>(r - 1)];
}

/// weight_grad_by_channels's result, by columns, for a geometry columns_forward_applies and
/// weight_grad_applies (column dilation 1: a tile's filter columns are neighbouring inputs) to.
/// Each tile sweeps a sample's rows for its (channels, c, i, filter columns), reading dY and
/// the input (or its padded copy) in place; sums stay in lanes through a chunk, then are
/// added up across the lanes in a fixed order (_mm512_reduce_add_ps), chunk after chunk.
inline void weight_grad_by_columns(const float* x, const float* dy, const ConvGeometry& g, float* dw,
                                   Index per, int threads, Workspace<float>& ws) {
  const Index k = g.col_rows(), p = g.out_plane();
  const Index chunks = (g.n + per - 1) / per, tap = g.oc * 16;  // part: [chunk][tap][o][lane]
  const Input input(g);
  const Index padded = input.copy_size(g);
  float* partials = ws.get(Workspace<float>::kPartialSums, chunks * k * tap);
  float* buffers = ws.get(Workspace<float>::kColumns, threads * padded);
  const Cover channels(g.oc, kColumnGradChannels);
  const Index in_sample = g.c * g.in_plane();
  convkit::detail::parallel_for_slots(threads, chunks, [&](int slot, Index ci) {
    float* part = partials + ci * k * tap;
    const Index n0 = ci * per, n1 = std::min(g.n, n0 + per);
    for (Index n = n0; n < n1; ++n) {
      const float* xs = input.sample(x + n * in_sample, g, buffers + slot * padded);
      for (Index c = 0; c < g.c; ++c)
        for (Index i = 0; i < g.kh; ++i)
          for (Index j = 0; j < g.kw; j += kColumnGradTaps) {
            const Index t = std::min<Index>(kColumnGradTaps, g.kw - j);
            for (Index cb = 0; cb < channels.count; ++cb) {
              const Index o0 = cb * channels.size, on = std::min(channels.size, g.oc - o0);
              column_grad_kernel(on, t)(dy + (n * g.oc + o0) * p, p, g.ow,
                                        xs + (c * input.rows + i * g.dh) * input.cols + j, g.sh * input.cols,
                                        g.oh, g.ow, part + ((c * g.kh + i) * g.kw + j) * tap + o0 * 16, tap,
                                        n > n0);
            }
          }
    }
  });
  for (Index ci = 0; ci < chunks; ++ci) {
    const float* part = partials + ci * k * tap;
    for (Index o = 0; o < g.oc; ++o)
      for (Index t = 0; t < k; ++t)
        dw[o * k + t] += _mm512_reduce_add_ps(_mm512_loadu_ps(part + t * tap + o * 16));
  }
}
#endif

/// y = conv(x, w) + b (b null: none) for a geometry forward_applies to, on `threads` threads
/// that take whole samples. Overwrites y.
inline void forward(const float* x, const ConvGeometry& g, const float* w, const float* b, float* y,
                    Workspace<float>& ws, int threads) {
#if defined(__AVX512F__)
  if (columns_forward_applies(g)) return forward_by_columns(x, g, w, b, y, ws, threads);
#endif
  forward_by_channels(x, g, w, b, y, ws, threads);
}

/// dW += Σ over chunks of `per` samples, in chunk order, of each chunk's sum (computed on any
/// of `threads` threads), for a geometry weight_grad_applies to.
inline void weight_grad(const float* x, const float* dy, const ConvGeometry& g, float* dw, Index per,
                        int threads, Workspace<float>& ws) {
#if defined(__AVX512F__)
  if (columns_forward_applies(g)) return weight_grad_by_columns(x, dy, g, dw, per, threads, ws);
#endif
  weight_grad_by_channels(x, dy, g, dw, per, threads, ws);
}

}  // namespace convkit::ops::detail::direct

#endif
