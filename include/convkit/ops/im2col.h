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

}  // namespace detail

namespace detail {

/// Calls visit(row, base, lo, hi, oy) for every (row of the column matrix, output row oy in
/// [oy0, oy1)) pair whose input row lies inside the input: output columns [lo, hi) of it read
/// the input element base + ox·sw of the group (Cg, H, W); the others fall in the padding.
/// Channels run in parallel (each visit touches only its own channel's plane and rows);
/// `edge(row, oy)` is called for output rows that fall outside the input.
template <typename Visit, typename Edge>
void for_each_window_row(const ConvGeometry& g, Index oy0, Index oy1, Visit&& visit, Edge&& edge) {
  const double work = static_cast<double>(g.col_rows()) * static_cast<double>((oy1 - oy0) * g.ow);
  convkit::detail::parallel_for(g.cg(), work, [&](Index c) {
    for (Index i = 0; i < g.kh; ++i) {
      for (Index j = 0; j < g.kw; ++j) {
        const Index row = (c * g.kh + i) * g.kw + j;
        const Index x0 = j * g.dw - g.pl;  // input column of output column 0
        // Output columns whose input column lies in [0, W).
        const Index lo = std::clamp(ceil_div(-x0, g.sw), Index{0}, g.ow);
        const Index hi = std::clamp(ceil_div(g.w - x0, g.sw), lo, g.ow);
        for (Index oy = oy0; oy < oy1; ++oy) {
          const Index iy = oy * g.sh - g.pt + i * g.dh;
          if (iy < 0 || iy >= g.h)
            edge(row, oy);
          else
            visit(row, (c * g.h + iy) * g.w + x0, lo, hi, oy);
        }
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
  detail::for_each_window_row(
      g, oy0, oy1,
      [&](Index row, Index src0, Index lo, Index hi, Index oy) {
        T* dst = col + row * ld + (oy - oy0) * g.ow;
        std::fill(dst, dst + lo, T(0));
        if (g.sw == 1) {
          std::copy(x + (src0 + lo), x + (src0 + hi), dst + lo);
        } else {
          for (Index ox = lo; ox < hi; ++ox) dst[ox] = x[src0 + ox * g.sw];
        }
        std::fill(dst + hi, dst + g.ow, T(0));
      },
      [&](Index row, Index oy) {
        T* dst = col + row * ld + (oy - oy0) * g.ow;
        std::fill(dst, dst + g.ow, T(0));
      });
}

/// x (Cg, H, W) += col2im(col): each entry of `col` (rows of length OH·OW, row stride `ld`; or
/// of output rows [oy0, oy1) only, as im2col unfolds them) is added to the input pixel im2col
/// copied it from; entries from the padding are dropped. Per pixel the additions run in a
/// fixed order (by kernel row, kernel column, output position).
template <typename T>
void col2im_add(const T* col, const ConvGeometry& g, Index ld, T* x, Index oy0 = 0, Index oy1 = -1) {
  if (oy1 < 0) oy1 = g.oh;
  detail::for_each_window_row(
      g, oy0, oy1,
      [&](Index row, Index dst0, Index lo, Index hi, Index oy) {
        const T* src = col + row * ld + (oy - oy0) * g.ow;
        for (Index ox = lo; ox < hi; ++ox) x[dst0 + ox * g.sw] += src[ox];
      },
      [](Index, Index) {});
}

}  // namespace convkit::ops
