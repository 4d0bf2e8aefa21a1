// convkit/ops/packed_im2col.h — the im2col unfolding written straight into the packed GEMM's
// B panels (ops/packed_gemm.h), so a float convolution never builds its column matrix.
//
// The lowered forward GEMM is W_g (OC/g, C/g·KH·KW) · col (C/g·KH·KW, columns). Unfolded
// first, col is written once by im2col, read back and written again by pack_b, then read by
// the micro-kernel; packed here from x directly, the first write and read go. Measured on
// ResNet-18's 64-channel 3x3 layer at 56x56, one thread, im2col + pack_b took 30% of the
// call. The column matrix of a block is `nb` samples side by side, each `plane` columns
// (the output rows [oy0, oy0 + plane / OW) of that sample), exactly as im2col_block lays
// them out; each kLanes-wide vector of a panel row is gathered from the input rows its
// columns read (one run per output row it touches), lanes in the padding left 0.
#pragma once

#include "convkit/ops/im2col.h"
#include "convkit/ops/packed_gemm.h"

#ifdef CONVKIT_PACKED_GEMM

#include <cstdint>
#include <limits>
#include <vector>

namespace convkit::ops::detail::packed {

/// The lanes [lo, hi) of one masked load as bits, and for stride 2 the bits of the 2·kLanes
/// elements they take ([2·lo, 2·hi − 1)); all zero: a load that reads nothing.
struct LaneMask {
  std::uint32_t lanes = 0, elems = 0;
};

template <int kStride>
inline LaneMask lane_mask(int lo, int hi) {  // 0 <= lo < hi <= kLanes
  static_assert(kStride == 1 || kStride == 2, "unit or stride-2 loads only");
  const auto bits = [](int b, int e) { return ((std::uint32_t{1} << e) - 1u) & ~((std::uint32_t{1} << b) - 1u); };
  return LaneMask{bits(lo, hi), kStride == 2 ? bits(2 * lo, 2 * hi - 1) : 0u};
}

/// acc with the lanes t of m replaced by base[t·kStride]. Only the elements those lanes take
/// are read, so `base` may point outside the buffer by as much as the others; but with
/// `whole` (all kLanes·kStride elements from base lie in the buffer) AVX2 reads them all and
/// keeps those lanes: its masked loads took Im2colB to 12-13% of ResNet-18's 256-channel 3x3
/// forward at batch 8 on Zen 3, whole loads where possible to 8.6-8.8% (profile shares).
template <int kStride>
inline Vec vload_lanes(Vec acc, const float* base, LaneMask m, bool whole) {
#if defined(__AVX512F__)
  if constexpr (kStride == 1) {
    return _mm512_mask_loadu_ps(acc, static_cast<__mmask16>(m.lanes), base);
  } else {  // the elements of two vectors, then the even ones
    const __m512 a = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m.elems), base);
    const __m512 b = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m.elems >> 16), base + 16);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_mask_mov_ps(acc, static_cast<__mmask16>(m.lanes), _mm512_permutex2var_ps(a, even, b));
  }
  (void)whole;
#else
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const auto vector_mask = [&bit](std::uint32_t bits) {
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), bit), bit);
  };
  // 8 elements from p: all of them when `whole`, else only those whose bits are set (the mask
  // is built only then)
  const auto load = [whole, &vector_mask](const float* p, std::uint32_t bits) {
    return whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, vector_mask(bits));
  };
  const __m256i lanes = vector_mask(m.lanes);
  if constexpr (kStride == 1) {
    return _mm256_blendv_ps(acc, load(base, m.lanes), _mm256_castsi256_ps(lanes));
  } else {  // the elements of two vectors, then the even ones: a0 a2 b0 b2 | a4 a6 b4 b6, then
            // its 64-bit pairs reordered
    const __m256 a = load(base, m.elems), b = load(base + 8, m.elems >> 8);
    const __m256d pairs = _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88));
    return _mm256_blendv_ps(acc, _mm256_castpd_ps(_mm256_permute4x64_pd(pairs, 0xD8)),
                            _mm256_castsi256_ps(lanes));
  }
#endif
}

/// Whether Im2colB packs convolutions of this geometry: column stride 1 or 2 (a gather for
/// other strides measured slower than im2col + pack_b: ResNet's 7x7/2 stem 1.35x). Stride 2
/// on AVX2 (two loads, a shuffle and a permute per vector), against im2col + pack_b, Zen 3, one
/// thread, forward at batch 8, two sets of 3 interleaved rounds: ResNet-18's 3x3/2 layers
/// 1.03-1.07x, 1.07-1.10x and 1.04-1.08x, its 1x1/2 64 -> 128 1.11-1.21x, its 7x7/2 stem
/// 0.97-0.99x (3 input channels: little to share each run's clipping).
inline bool im2col_packs(const ConvGeometry& g) { return g.sw == 1 || g.sw == 2; }

/// Rows of the column matrix (C/g·KH·KW) below which the float forward unfolds a column matrix
/// and packs it with pack_b rather than use Im2colB: Im2colB clips every run of a panel at
/// each kernel position once per panel, whatever the panel's number of rows, so with few input
/// channels that setup outweighs what it saves. Measured on Zen 3 (AVX2), one thread, ms,
/// Im2colB -> im2col + pack_b: LeNet's C1 (1 channel, 5x5: 25 rows) at batch 64 1.57 -> 0.92;
/// VGG's conv1_1 (3 channels, 3x3: 27 rows) at batch 1 4.2-4.4 -> 3.3-3.7, at batch 8 38-43 -> 31.
inline constexpr Index kMinIm2colPackedRows = 64;

/// op(B) = the input of a pointwise (1x1, stride 1, unpadded) convolution, which is its own
/// column matrix, for `nb` samples of one group side by side: x points at the group's channels
/// of the first sample, `sample` apart; each sample has `plane` columns (channel c of sample s at
/// x + s·sample + c·plane). Packed row by row, like pack_b (each row read front to back); a
/// panel that straddles two samples is copied a value at a time.
struct PointwiseB {
  const float* x;
  Index sample, plane;

  void operator()(Index p0, Index kc, Index j0, Index nc, float* dst) const {
    for (Index jc = 0; jc < nc; jc += kNC) pack(p0, kc, j0 + jc, std::min(kNC, nc - jc), dst + jc * kc);
  }

 private:
  void pack(Index p0, Index kc, Index j0, Index nc, float* dst) const {
    constexpr Index kPanels = kNC / kNR;
    Index first[kPanels];  // per panel: offset of its first column in x (row p0), or -1 if it straddles
    const Index panels = (nc + kNR - 1) / kNR;
    for (Index r = 0; r < panels; ++r) {
      const Index j = j0 + r * kNR, s = j / plane, q = j % plane;
      first[r] = q + kNR <= plane ? s * sample + p0 * plane + q : -1;
    }
    for (Index p = 0; p < kc; ++p) {
      float* o = dst + p * kNR;
      for (Index r = 0; r < panels; ++r) {
        float* out = o + r * kNR * kc;
        const Index cols = std::min<Index>(kNR, nc - r * kNR);
        if (first[r] >= 0 && cols == kNR) {
          const float* src = x + first[r] + p * plane;
#pragma GCC unroll 4
          for (int v = 0; v < kNV; ++v) vstore(out + v * kLanes, vload(src + v * kLanes));
          continue;
        }
        for (Index t = 0; t < cols; ++t) {
          const Index j = j0 + r * kNR + t;
          out[t] = x[(j / plane) * sample + (p0 + p) * plane + j % plane];
        }
        for (Index t = cols; t < kNR; ++t) out[t] = 0.0f;
      }
    }
  }
};

/// op(B) = the column matrix of `nb` samples of one group, for sgemm_with: x points at the
/// group's channels of the first sample, `sample` apart; each sample has `plane` columns,
/// starting at output row oy0.
struct Im2colB {
  const float* x;
  const ConvGeometry* g;
  Index sample, plane, oy0;

  void operator()(Index p0, Index kc, Index j0, Index nc, float* dst) const {
    for (Index jc = 0; jc < nc; jc += kNC) {
      if (g->sw == 2) {
        pack<2>(p0, kc, j0 + jc, std::min(kNC, nc - jc), dst + jc * kc);
        continue;
      }
      pack<1>(p0, kc, j0 + jc, std::min(kNC, nc - jc), dst + jc * kc);
    }
  }

 private:
  // The columns of one vector of a panel row that lie in one output row: lanes [lo, hi),
  // input row iy (at kernel row 0) and input column ix of lane 0 (at kernel column 0), of the
  // sample at offset src in x.
  struct Run {
    Index src, iy, ix;
    int lo, hi;
  };
  // What a run reads at one kernel position: the lanes of `mask` from channel + off + t·sw;
  // `whole` when every element of the vector from there lies in the channel's plane.
  struct Load {
    Index off;
    LaneMask mask;
    bool whole;
  };

  /// Columns [j0, j0 + nc) (nc <= kNC) of rows [p0, p0 + kc) into panels at dst, panel by
  /// panel. Per panel, each run is clipped to the input once for every kernel position, into
  /// the same number of loads for every vector (the most runs any vector has; the others
  /// padded with loads that read nothing, so the loop over them does not branch on the data);
  /// then each row of the panel is those masked loads, the rows of one kernel position
  /// together (rows_of_position).
  template <int kStride>
  void pack(Index p0, Index kc, Index j0, Index nc, float* dst) const {
    const ConvGeometry& G = *g;
    constexpr Index kVecs = kNC / kLanes;
    const Index vecs = (nc + kNR - 1) / kNR * kNV;
    Run runs[kNC];
    int first_run[kVecs + 1];
    int count = 0, slots = 1;
    for (Index v = 0; v < vecs; ++v) {
      first_run[v] = count;
      const Index begin = j0 + v * kLanes, end = std::min(begin + kLanes, j0 + nc);
      for (Index j = begin; j < end;) {
        const Index s = j / plane, q = j % plane, oy = oy0 + q / G.ow, ox = q % G.ow;
        const Index len = std::min(G.ow - ox, end - j);
        const int lo = static_cast<int>(j - begin);
        runs[count++] = Run{s * sample, oy * G.sh - G.pt, (ox - lo) * G.sw - G.pl, lo, static_cast<int>(lo + len)};
        j += len;
      }
      slots = std::max(slots, count - first_run[v]);
    }
    first_run[vecs] = count;
    const Index kk = G.kh * G.kw, hw = G.in_plane(), per_pos = kNV * slots;
    thread_local std::vector<Load> buffer;
    if (buffer.size() < static_cast<std::size_t>(kk * per_pos)) buffer.resize(static_cast<std::size_t>(kk * per_pos));
    Load* loads = buffer.data();  // [pos][vector of the panel][slot]
    for (Index v0 = 0; v0 < vecs; v0 += kNV) {
      for (Index pos = 0; pos < kk; ++pos) {
        const Index dy = (pos / G.kw) * G.dh, dx = (pos % G.kw) * G.dw;
        for (Index v = 0; v < kNV; ++v) {
          Load* slot = loads + pos * per_pos + v * slots;
          Load* const slot_end = slot + slots;
          for (int r = first_run[v0 + v]; r < first_run[v0 + v + 1]; ++r) {
            const Run& run = runs[r];
            const Index iy = run.iy + dy;
            if (iy < 0 || iy >= G.h) continue;
            const Index ix = run.ix + dx;  // lane t reads input column ix + t·sw
            Index lo, hi;
            if constexpr (kStride == 1) {
              lo = -ix, hi = G.w - ix;
            } else {
              lo = ceil_div(-ix, kStride), hi = ceil_div(G.w - ix, kStride);
            }
            lo = std::max<Index>(lo, run.lo), hi = std::min<Index>(hi, run.hi);
            const Index first = iy * G.w + ix;  // in the plane, lane 0's element
            if (lo < hi)
              *slot++ = Load{run.src + first, lane_mask<kStride>(static_cast<int>(lo), static_cast<int>(hi)),
                             first >= 0 && first + kStride * kLanes <= hw};
          }
          for (; slot < slot_end; ++slot) *slot = Load{0, LaneMask{}, false};
        }
      }
      // Row p = c·kk + pos of the slice: by kernel position, then channel, so that each
      // position's loads stay in registers over its channels (row after row, reloading them
      // per row and looping over a run-time count of them, Im2colB was 18.5% of ResNet-18's
      // 64-channel 3x3 forward at batch 8; Xeon, one thread).
      float* out = dst + v0 / kNV * kc * kNR;
      for (Index pos = 0; pos < kk; ++pos) {
        const Index c_begin = pos >= p0 ? 0 : (p0 - pos + kk - 1) / kk;
        const Index c_end = pos >= p0 + kc ? 0 : (p0 + kc - pos + kk - 1) / kk;
        if (c_begin >= c_end) continue;
        const Load* load = loads + pos * per_pos;
        float* row = out + (c_begin * kk + pos - p0) * kNR;
        switch (slots) {
          case 1:
            rows_of_position<kStride, 1>(load, c_begin, c_end, hw, row, kk * kNR);
            break;
          case 2:
            rows_of_position<kStride, 2>(load, c_begin, c_end, hw, row, kk * kNR);
            break;
          case 3:
            rows_of_position<kStride, 3>(load, c_begin, c_end, hw, row, kk * kNR);
            break;
          case 4:
            rows_of_position<kStride, 4>(load, c_begin, c_end, hw, row, kk * kNR);
            break;
          default:
            rows_of_position<kStride, 0>(load, c_begin, c_end, hw, row, kk * kNR, slots);
        }
      }
    }
  }

  /// The panel rows of channels [c_begin, c_end) at one kernel position, `step` floats apart
  /// from `row` on: for each of the panel's kNV vectors the position's kSlots loads (slots
  /// of them for kSlots = 0), which `load` holds vector by vector.
  template <int kStride, int kSlots>
  void rows_of_position(const Load* load, Index c_begin, Index c_end, Index hw, float* row, Index step,
                        int slots = kSlots) const {
    if constexpr (kSlots > 0) {
      Load l[kNV][kSlots];
      for (int v = 0; v < kNV; ++v)
        for (int t = 0; t < kSlots; ++t) l[v][t] = load[v * kSlots + t];
      for (Index c = c_begin; c < c_end; ++c, row += step) {
        // Lane 0's address may lie outside the input; its lane is then not read.
        const auto channel = reinterpret_cast<std::uintptr_t>(x + c * hw);
#pragma GCC unroll 4
        for (int v = 0; v < kNV; ++v) {
          Vec acc = vzero();
#pragma GCC unroll 4
          for (int t = 0; t < kSlots; ++t)
            acc = vload_lanes<kStride>(acc, address(channel, l[v][t].off), l[v][t].mask, l[v][t].whole);
          vstore(row + v * kLanes, acc);
        }
      }
    } else {
      for (Index c = c_begin; c < c_end; ++c, row += step) {
        const auto channel = reinterpret_cast<std::uintptr_t>(x + c * hw);
        const Load* l = load;
        for (int v = 0; v < kNV; ++v) {
          Vec acc = vzero();
          for (int t = 0; t < slots; ++t, ++l)
            acc = vload_lanes<kStride>(acc, address(channel, l->off), l->mask, l->whole);
          vstore(row + v * kLanes, acc);
        }
      }
    }
  }

  /// channel + off floats, as an address (it may lie outside the input: see rows_of_position).
  static const float* address(std::uintptr_t channel, Index off) {
    return reinterpret_cast<const float*>(
        channel + static_cast<std::uintptr_t>(off * static_cast<Index>(sizeof(float))));
  }
};

/// The A of a data gradient's flipped-filter convolution (ops/conv2d.h), packed straight from
/// the filters W (OC, C/g, KH, KW): for group g, A (C/g x OC/g·KH·KW) holds
/// A[c][o·KH·KW + t] = W[g·OC/g + o][c][KH·KW − 1 − t], the filters rotated by 180 degrees with
/// input and output channels swapped. Copying W' out first (a gather over all of W, written
/// whole and read back by the GEMM's packing) took 18% of ResNet-50's 512-channel 3x3 data
/// gradient at 7x7, batch 8 (Xeon, one thread). For a panel, one output channel's filters of
/// its input channels lie side by side in W (rows·KH·KW values). A pointwise layer's A is
/// W_gᵀ, packed as a transposed matrix.
struct FlippedFiltersA {
  const float* w;  // group g's first filter: W + g·(OC/g)·(C/g)·KH·KW
  Index rows;      // C/g, the rows of A
  Index kk;        // KH·KW, at most kMaxFlippedTaps

  /// Taps (KH·KW) whose gather offsets (up to kLanes·KH·KW) fit an int.
  static constexpr Index kMaxFlippedTaps = std::numeric_limits<int>::max() / kLanes;

  void operator()(Index r, Index p0, Index kc, float* out) const {
    if (kk == 1) {
      pack_a_panel(true, rows, 1.0f, w, rows, r, p0, kc, out);
      return;
    }
    const Index c0 = panel_start(rows, r), n = panel_rows(rows, r);
    Index o = p0 / kk, t = p0 % kk;
    // Each row of the panel is one gather of stride KH·KW, stored whole: its lanes past kMR
    // land in the next row, written next (the last row only its own kMR). One scalar copy per
    // value was 12% of that 7x7 data gradient, the gathers 8.5%.
    const Offsets off = voffsets(static_cast<int>(kk));
    for (Index p = 0; p < kc; ++p, out += kMR) {
      const Vec v = vgather_head(w + (o * rows + c0) * kk + (kk - 1 - t), off, static_cast<int>(n));
      if (p + 1 < kc)
        vstore(out, v);
      else
        vstore_head(out, v, kMR);
      if (++t == kk) t = 0, ++o;
    }
  }
};

}  // namespace convkit::ops::detail::packed

#endif
