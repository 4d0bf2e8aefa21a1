// convkit/ops/shifted_conv.h — the weight gradient of a stride-1 convolution as KH·KW
// products over shifted views of the padded input, with no column matrix (float, packed GEMM).
//
// Pad each input plane to wp = OW + (KW−1)·DW columns and hp = OH + (KH−1)·DH rows, so that
// padded pixel (Y, X) is x[Y − pt][X − pl] (0 outside x), and number the padded pixels
// R = Y·wp + X. Output position (oy, ox) then reads, through tap (ky, kx), the padded pixel
// oy·wp + ox + s with s = ky·DH·wp + kx·DW: one offset per tap, so that
//
//   dW[:, :, ky, kx] (OC x C) = Σ_(oy, ox) dY[:, oy, ox] · xpad[:, oy·wp + ox + s]ᵀ
//
// is a GEMM whose B (positions x C) is the transposed padded input, xpadᵀ, from row s on,
// skipping wp − OW rows after each output row. Stored as the packed GEMM's B panels (kNR
// channels each, [R][j]), every tap's B is those panels from row s on, read by the
// micro-kernel in runs of OW rows (packed::micro_kernel_runs): the input is transposed once
// per sample, where the im2col route writes KH·KW copies of it and then transposes them all
// into panels. dY is packed once as A (k-slices of whole output rows) and serves all taps.
// Input channels are padded to whole panels, so the route is taken where that wastes at
// most an eighth of the multiply-adds.
//
// Each dW element is summed over the samples of a chunk in order, then over k-slices, then
// within the micro-kernel, and the chunks' sums are added in order: the same on any number of
// threads (threads take whole chunks, or split the products of dW's rows and taps).
#pragma once

#include "convkit/ops/packed_gemm.h"

#ifdef CONVKIT_PACKED_GEMM
#define CONVKIT_SHIFTED_CONV 1

#include <algorithm>
#include <cstdint>

#include "convkit/core/parallel.h"
#include "convkit/ops/im2col.h"
#include "convkit/ops/workspace.h"

namespace convkit::ops::detail::shifted {

using packed::kLanes;
using packed::kMR;
using packed::kNR;

/// The padded geometry of one sample (see the top).
struct Layout {
  Index wp, hp;  // padded columns and rows
  Index rows;    // rows of a transposed input panel: hp·wp, then room for the last block's
                 // transpose (kLanes rows, zero)
  Index cp;      // input channels rounded up to whole panels
  Index slice;   // output rows per k-slice: the plane in slices of about kKC positions
};

inline Layout layout(const ConvGeometry& g) {
  Layout l;
  l.wp = g.ow + (g.kw - 1) * g.dw;
  l.hp = g.oh + (g.kh - 1) * g.dh;
  l.rows = l.hp * l.wp + kLanes;
  l.cp = (g.c + kNR - 1) / kNR * kNR;
  const Index slices = std::max<Index>(1, (g.oh * g.ow + packed::kKC / 2) / packed::kKC);
  l.slice = (g.oh + slices - 1) / slices;
  return l;
}

/// Output rows shorter than this stay on the im2col route: each sample's k-slice is then one
/// short slice, and the micro-kernel's runs short. ResNet-18's 3x3 512-channel layer at 7x7,
/// batch 8, one thread: 10.95 ms on im2col, 11.7 this way (Xeon, AVX-512).
constexpr Index kMinOutputColumns = 14;

/// Whether the weight gradient of g goes this way: stride 1, one group, a filter of several
/// taps, at least kMinPackedRows output channels, output rows of kMinOutputColumns or more,
/// and at most an eighth of the multiply-adds wasted on padded channels.
inline bool weight_grad_applies(const ConvGeometry& g) {
  if (g.n < 1 || g.groups != 1 || g.sh != 1 || g.sw != 1 || g.kh * g.kw < 2 ||
      g.oc < packed::kMinPackedRows || g.oh < 1 || g.ow < kMinOutputColumns || g.c < 1)
    return false;
  const Layout l = layout(g);
  return 8 * (l.cp - g.c) <= l.cp;
}

/// Channels [c0, c0 + kLanes) of one sample x (C, H, W), padded and transposed into the
/// panels xt (cp/kNR panels of l.rows x kNR): xt[panel][R][j] = xpad[panel·kNR + j][R].
/// Channels past C are 0.
inline void transpose_input(const float* x, const ConvGeometry& g, const Layout& l, Index c0, float* xt) {
  const Index plane = g.h * g.w, channels = std::clamp<Index>(g.c - c0, 0, kLanes);
  float* panel = xt + c0 / kNR * l.rows * kNR + c0 % kNR;
  alignas(64) float stage[kLanes * kLanes];
  for (Index y = 0; y < l.hp; ++y) {
    const Index iy = y - g.pt;
    const bool row_in = iy >= 0 && iy < g.h;
    for (Index x0 = 0; x0 < l.wp; x0 += kLanes) {
      float* dst = panel + (y * l.wp + x0) * kNR;
      const Index ix0 = x0 - g.pl;
      if (row_in && channels == kLanes && ix0 >= 0 && ix0 + kLanes <= g.w && x0 + kLanes <= l.wp) {
        packed::transpose_block(x + c0 * plane + iy * g.w + ix0, plane, kLanes, 1.0f, dst, kNR, kLanes);
        continue;
      }
      // a block at the border: staged with its zeros (the columns past wp too, which land in
      // the next row's first positions before that row overwrites them, or in the zero rows)
      std::fill(stage, stage + kLanes * kLanes, 0.0f);
      // columns [lo, hi) of the block lie inside x's row
      const Index lo = std::max<Index>(0, -ix0), hi = std::min<Index>({kLanes, g.w - ix0, l.wp - x0});
      if (row_in && lo < hi)
        for (Index i = 0; i < channels; ++i) {
          const Index at = (c0 + i) * plane + iy * g.w + ix0;  // column 0 of the block (may lie before x)
          std::copy(x + (at + lo), x + (at + hi), stage + i * kLanes + lo);
        }
      packed::transpose_block(stage, kLanes, kLanes, 1.0f, dst, kNR, kLanes);
    }
  }
  for (Index r = l.hp * l.wp; r < l.rows; ++r) std::fill(panel + r * kNR, panel + r * kNR + kLanes, 0.0f);
}

/// The first 64-byte boundary at or after p (at most 15 floats on).
inline float* aligned(float* p) {
  return reinterpret_cast<float*>((reinterpret_cast<std::uintptr_t>(p) + 63) / 64 * 64);
}

/// Sums of weight_grad's products at most, per chunk of samples, for the chunks to have a
/// buffer each (1 MiB: ResNet-18's 64- and 128-channel layers).
constexpr Index kMaxChunkSums = Index{1} << 18;

/// Buffers for one sample's operands: the transposed padded input (B panels) and dY packed as
/// A, 64-byte aligned (a B row of kNR floats whose vectors straddled cache lines ran slower).
struct Operands {
  float *xt, *ap;  // ap: slice at oy0 (p0 = oy0·OW) at p0·panels·kMR, panel r at r·kc·kMR
  static Index size(const ConvGeometry& g, const Layout& l) {
    return l.cp * l.rows + packed::packed_a_size(g.oc, g.out_plane()) + 16;
  }
  Operands(float* buf, const Layout& l) : xt(aligned(buf)), ap(xt + l.cp * l.rows) {}
};

/// sums [tap][o][c] (=, or += if `accumulate`) the products of sample xn's and dyn's, on
/// `threads` threads.
inline void add_sample(const float* xn, const float* dyn, const ConvGeometry& g, const Layout& l,
                       const Operands& op, float* sums, bool accumulate, int threads) {
  const Index taps = g.kh * g.kw, panels = packed::panels_of(g.oc), p = g.out_plane();
  // Threads take shares of the (A row panel, tap) products, contiguous in that order and even
  // in rows: shares of whole panels left 58 and 70 rows to two threads for 128 channels
  // (11 panels of 11-12 rows); these measured 1.07x on ResNet-18's layer at 28x28, batch 8. (Shares of
  // B's column panels instead, where there are enough, measured 1.07x on that layer and 0.95x
  // on its 256-channel one at 14x14.)
  const Index units = panels * taps, shares = std::min<Index>(threads, units), blocks = l.cp / kLanes;
  const auto share_start = [&](Index sh) {  // first unit of share sh: rows before it >= its part of OC·taps
    Index u = 0, before = 0;
    while (u < units && before * shares < sh * g.oc * taps) before += packed::panel_rows(g.oc, u++ / taps);
    return u;
  };
  convkit::detail::parallel_for_on(threads, blocks + panels, [&](Index t) {  // x's blocks, then dY's panels
    if (t < blocks) {
      transpose_input(xn, g, l, t * kLanes, op.xt);
      return;
    }
    const Index r = t - blocks;
    for (Index oy0 = 0; oy0 < g.oh; oy0 += l.slice) {
      const Index p0 = oy0 * g.ow, kc = std::min(l.slice, g.oh - oy0) * g.ow;
      packed::pack_a_panel(false, g.oc, 1.0f, dyn, p, r, p0, kc, op.ap + p0 * panels * kMR + r * kc * kMR);
    }
  });
  convkit::detail::parallel_for_on(threads, shares, [&](Index sh) {
    const Index u0 = share_start(sh), u1 = share_start(sh + 1);
    for (Index oy0 = 0; oy0 < g.oh; oy0 += l.slice) {
      const Index runs = std::min(l.slice, g.oh - oy0), p0 = oy0 * g.ow, kc = runs * g.ow;
      for (Index u = u0; u < u1; ++u) {
        const Index r = u / taps, ky = u % taps / g.kw, kx = u % g.kw;
        const int rows = static_cast<int>(packed::panel_rows(g.oc, r));
        const float* ar = op.ap + p0 * panels * kMR + r * kc * kMR;
        const Index s = ky * g.dh * l.wp + kx * g.dw;
        float* c = sums + ((ky * g.kw + kx) * g.oc + packed::panel_start(g.oc, r)) * l.cp;
        for (Index jp = 0; jp < l.cp; jp += kNR)
          packed::run_kernel_runs(rows, runs, g.ow, (l.wp - g.ow) * kNR, ar,
                                  op.xt + jp * l.rows + (s + oy0 * l.wp) * kNR, c + jp, l.cp, kNR,
                                  accumulate || oy0 > 0);
      }
    }
  });
}

/// dW (OC, C, KH, KW) += the weight gradient of x (N, C, H, W) and dy (N, OC, OH, OW) for a g
/// that weight_grad_applies to, on `threads` threads. Where the sums are small
/// (kMaxChunkSums), they are kept per chunk of a quarter of the batch, and threads take whole
/// chunks: splitting each sample's products between two threads scaled 1.6x on ResNet-18's
/// 64-channel layer at 56x56 (batch 8), each thread reading operands the other had just
/// written. The chunks' sums are added in order, so the values do not depend on the threads.
inline void weight_grad(const float* x, const float* dy, const ConvGeometry& g, float* dw, int threads,
                        Workspace<float>& ws) {
  const Layout l = layout(g);
  const Index taps = g.kh * g.kw, p = g.out_plane(), sums_size = taps * g.oc * l.cp + 16;
  const Index per = sums_size <= kMaxChunkSums ? quarter_batch(g.n) : std::max<Index>(g.n, 1);
  const Index chunks = (g.n + per - 1) / per;
  const int outer = static_cast<int>(std::min<Index>(threads, chunks)), inner = chunks > 1 ? 1 : threads;
  float* buffers = ws.get(Workspace<float>::kColumns, outer * Operands::size(g, l));
  float* all_sums = ws.get(Workspace<float>::kPartialSums, chunks * sums_size);
  const auto sums_of = [&](Index ci) { return aligned(all_sums + ci * sums_size); };  // [tap][o][c]
  convkit::detail::parallel_for_slots(outer, chunks, [&](int slot, Index ci) {
    const Operands op(buffers + slot * Operands::size(g, l), l);
    for (Index n = ci * per; n < std::min(g.n, (ci + 1) * per); ++n)
      add_sample(x + n * g.c * g.in_plane(), dy + n * g.oc * p, g, l, op, sums_of(ci), n > ci * per, inner);
  });
  // Each chunk's rows of o in turn, read along c (dW's row of o, C·taps values, stays in L1).
  convkit::detail::parallel_for_on(threads, g.oc, [&](Index o) {
    float* dwo = dw + o * g.c * taps;
    for (Index ci = 0; ci < chunks; ++ci)
      for (Index t = 0; t < taps; ++t) {
        const float* row = sums_of(ci) + (t * g.oc + o) * l.cp;
        for (Index c = 0; c < g.c; ++c) dwo[c * taps + t] += row[c];
      }
  });
}

}  // namespace convkit::ops::detail::shifted

#endif
