// convkit/ops/im2col.h — the geometry of a 2-D convolution and the im2col unfolding.
//
// For one sample and one group, im2col turns the input (Cg, H, W) into the matrix
//   col (Cg·KH·KW, OH·OW),  col[(c·KH + i)·KW + j][y·OW + x] = x[c][y·sh − pt + i·dh][x·sw − pl + j·dw]
// (zero where that position falls outside the input), so the convolution becomes the GEMM
// W (OCg, Cg·KH·KW) · col. Padding is given for the top and left edges only and may be
// negative (a crop); the output size is explicit, which fixes the bottom and right padding.
// col2im_add is its adjoint: it adds every column-matrix entry back onto the input pixel it
// was copied from (the data gradient of strided convolutions, see conv2d.h).
#pragma once

#include <algorithm>
#include <type_traits>

#if defined(__GNUC__) && (defined(__AVX512F__) || defined(__AVX2__))
#include <immintrin.h>
#endif

#include "convkit/core/parallel.h"
#include "convkit/core/shape.h"

namespace convkit::ops {

/// Everything that fixes the work of one convolution call.
struct ConvGeometry {
  Index n = 0, c = 0, h = 0, w = 0;  // input (N, C, H, W)
  Index oc = 0, kh = 0, kw = 0;      // weight (OC, C/groups, KH, KW)
  Index sh = 1, sw = 1;              // stride
  Index pt = 0, pl = 0;              // top / left padding (negative: crop)
  Index dh = 1, dw = 1;              // dilation
  Index oh = 0, ow = 0;              // output (N, OC, OH, OW)
  Index groups = 1;

  Index cg() const { return c / groups; }
  Index ocg() const { return oc / groups; }
  Index col_rows() const { return cg() * kh * kw; }
  Index out_plane() const { return oh * ow; }
  Index in_plane() const { return h * w; }
  /// A 1x1, stride-1, unpadded convolution: the input itself is the column matrix.
  bool is_pointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == h && ow == w;
  }
};

namespace detail {

/// ceil(a / b) for b > 0 and any sign of a.
inline Index ceil_div(Index a, Index b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

/// Samples per chunk of the weight gradients that sum by fixed chunks (the chunked, direct and
/// shifted routes): a quarter of a batch of n, at least one. Fixed by the shape, so the sums
/// are the same on any number of threads, and 2 or 4 threads share whole chunks.
inline Index quarter_batch(Index n) { return std::max<Index>(1, (n + 3) / 4); }

}  // namespace detail

namespace detail {

/// What row `row` of the column matrix reads for output rows [oy0, oy1): output rows [ya, yb)
/// lie over input rows inside the input (the others fall in the padding); in output row
/// ya + t, output columns [lo, hi) read the group's (Cg, H, W) element base + t·sh·W + ox·sw,
/// the others the padding.
struct WindowRow {
  Index row, base, lo, hi, ya, yb;
};

/// dst[ox] = x[at + 2·ox] for ox from lo on, a vector of outputs at a time, from two vectors
/// of x, while the element after a vector's last one is still x[at + 2·ox] of an ox below hi
/// (so that no read passes the row's last element read); returns the first ox not written.
/// (at may be negative, as in unfold_row: only x + (at + 2·ox) is formed.) The compiler
/// made one scalar load and store of each (ResNet's 7x7/2 stem: a fifth of its weight
/// gradient at batch 8 went to im2col).
inline Index unfold_even(const float* __restrict x, Index at, Index lo, Index hi, float* __restrict dst) {
  Index ox = lo;
#if defined(__GNUC__) && defined(__AVX512F__)
  const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (; ox + 16 < hi; ox += 16) {
    const float* p = x + (at + 2 * ox);
    _mm512_storeu_ps(dst + ox, _mm512_permutex2var_ps(_mm512_loadu_ps(p), evens, _mm512_loadu_ps(p + 16)));
  }
#elif defined(__GNUC__) && defined(__AVX2__)
  for (; ox + 8 < hi; ox += 8) {
    const float* p = x + (at + 2 * ox);
    // lanes: p[0] p[2] p[8] p[10] | p[4] p[6] p[12] p[14], then the 64-bit pairs reordered
    const __m256 pairs = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), 0x88);
    _mm256_storeu_ps(dst + ox, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), 0xD8)));
  }
#endif
  (void)x, (void)at, (void)hi, (void)dst;
  return ox;
}

/// dst[ox] = x[at + ox·sw] for ox in [lo, hi), 0 for the other ox in [0, ow). x and dst never
/// overlap (restrict: no run-time overlap checks in the short loops).
template <typename T>
inline void unfold_row(const T* __restrict x, Index at, Index lo, Index hi, Index ow, Index sw, T* __restrict dst) {
  for (Index ox = 0; ox < lo; ++ox) dst[ox] = T(0);
  if (sw == 1) {
    for (Index ox = lo; ox < hi; ++ox) dst[ox] = x[at + ox];
  } else {
    Index ox = lo;
    if constexpr (std::is_same_v<T, float>)
      if (sw == 2) ox = unfold_even(x, at, lo, hi, dst);
    for (; ox < hi; ++ox) dst[ox] = x[at + ox * sw];
  }
  for (Index ox = hi; ox < ow; ++ox) dst[ox] = T(0);
}

/// Calls visit(const WindowRow&) once for every row of the column matrix, for output rows
/// [oy0, oy1). Channels run in parallel (each visit touches only its own channel's plane and
/// rows). One call per row rather than per (row, output row): the visitors' inner loops then
/// run over locals (per output row, reloading the geometry through references cost about 30
/// cycles, three times the copying, on LeNet's 10-column rows).
template <typename Visit>
void for_each_window_row(const ConvGeometry& g, Index oy0, Index oy1, Visit&& visit) {
  const double work = static_cast<double>(g.col_rows()) * static_cast<double>((oy1 - oy0) * g.ow);
  convkit::detail::parallel_for(g.cg(), work, [&](Index c) {
    for (Index i = 0; i < g.kh; ++i) {
      // Output rows whose input row oy·sh − pt + i·dh lies in [0, H).
      const Index ya = std::clamp(ceil_div(g.pt - i * g.dh, g.sh), oy0, oy1);
      const Index yb = std::clamp(ceil_div(g.h + g.pt - i * g.dh, g.sh), ya, oy1);
      for (Index j = 0; j < g.kw; ++j) {
        const Index x0 = j * g.dw - g.pl;  // input column of output column 0
        // Output columns whose input column lies in [0, W).
        const Index lo = std::clamp(ceil_div(-x0, g.sw), Index{0}, g.ow);
        const Index hi = std::clamp(ceil_div(g.w - x0, g.sw), lo, g.ow);
        visit(WindowRow{(c * g.kh + i) * g.kw + j, (c * g.h + ya * g.sh - g.pt + i * g.dh) * g.w + x0, lo, hi, ya, yb});
      }
    }
  });
}

}  // namespace detail

/// Unfolds one sample's group `x` (Cg, H, W) into `col` rows of length OH·OW, row stride `ld`;
/// or, given output rows [oy0, oy1), only those columns, as rows of length (oy1 − oy0)·OW.
template <typename T>
void im2col(const T* x, const ConvGeometry& g, T* col, Index ld, Index oy0 = 0, Index oy1 = -1) {
  if (oy1 < 0) oy1 = g.oh;
  const Index ow = g.ow, sw = g.sw, step = g.sh * g.w;
  detail::for_each_window_row(g, oy0, oy1, [x, col, ld, oy0, oy1, ow, sw, step](const detail::WindowRow& r) {
    T* dst = col + r.row * ld;
    std::fill(dst, dst + (r.ya - oy0) * ow, T(0));  // output rows over the top padding
    dst += (r.ya - oy0) * ow;
    // Indices, not a pointer x + base: base may lie before x (left padding).
    for (Index oy = r.ya, at = r.base; oy < r.yb; ++oy, dst += ow, at += step)
      detail::unfold_row(x, at, r.lo, r.hi, ow, sw, dst);
    std::fill(dst, dst + (oy1 - r.yb) * ow, T(0));  // and over the bottom padding
  });
}

/// x (Cg, H, W) += col2im(col): each entry of `col` (rows of length OH·OW, row stride `ld`; or
/// of output rows [oy0, oy1) only, as im2col unfolds them) is added to the input pixel im2col
/// copied it from; entries from the padding are dropped. Per pixel the additions run in a
/// fixed order (by kernel row, kernel column, output position).
template <typename T>
void col2im_add(const T* col, const ConvGeometry& g, Index ld, T* x, Index oy0 = 0, Index oy1 = -1) {
  if (oy1 < 0) oy1 = g.oh;
  const Index ow = g.ow, sw = g.sw, step = g.sh * g.w;
  detail::for_each_window_row(g, oy0, oy1, [col, x, ld, oy0, ow, sw, step](const detail::WindowRow& r) {
    const T* src = col + r.row * ld + (r.ya - oy0) * ow;
    for (Index oy = r.ya, at = r.base; oy < r.yb; ++oy, src += ow, at += step) {
      if (sw == 1) {
        for (Index ox = r.lo; ox < r.hi; ++ox) x[at + ox] += src[ox];
      } else {
        for (Index ox = r.lo; ox < r.hi; ++ox) x[at + ox * sw] += src[ox];
      }
    }
  });
}

}  // namespace convkit::ops
