// convkit/ops/packed_gemm.h — convkit's own single-precision GEMM for x86 with AVX-512 or
// AVX2 + FMA (compiled in only when the translation unit targets one of them).
//
//   C (m, n) = alpha · op(A) · op(B) + beta · C          row-major, as ops::gemm
//   (+ bias[i] on row i, for the convolution forward: sgemm_with's bias, see block)
//
// The scheme is the classic one of GotoBLAS and BLIS, laid out for row-major C:
//   - A is packed, alpha folded in, into panels of kMR rows: for each block of kKC columns
//     of op(A), panel r holds op(A)[start_r + i][p] at [p][i] (kMR rows or a few fewer, the
//     rows spread evenly over the panels, see panel_start; the rest 0). With several column
//     blocks all of A is packed first and shared; with one, each panel is packed just before
//     its only use into a buffer that stays in L1 (PanelA). A caller multiplying one A by
//     several B packs it once (pack_a_once) and hands it to each product.
//   - The columns of C are cut into blocks of at most kNC (one block up to kOneBlockColumns). On several
//   threads, a product
//     with more columns than rows (and at least two kNR panels per thread) gives each thread
//     whole column blocks; any other gives each thread a share of A's row panels, so that
//     no thread reads all of A (the weights, in a convolution with fewer output positions
//     than channels: ResNet-50 at batch 1, 2 threads, 38.8 -> 35.0 ms). Per block and per
//     kKC slice of k, op(B) is packed into panels of kNR columns, [p][j] (columns past n are
//     0): the slice (kKC x kNC floats, 576 KiB for AVX-512) stays in L2 while every A panel
//     passes over it.
//   - The micro-kernel keeps a kMR x kNR tile of C in registers (kMR·kNR/lanes vector
//     accumulators: 24 of the 32 zmm registers), and per step of k loads kNR/lanes vectors of
//     B and broadcasts kMR scalars of A: the A panel (kMR x kKC, 18 KiB) stays in L1. A
//     last tile of at most one vector of columns loads only that vector (run_kernel_runs).
//   - A product of two stored matrices with few columns and many rows (col2im's W_gᵀ · dY at
//     7x7) is computed as its transpose, with the same bits (sgemm).
// Each element of C is summed over k in the same order whatever the number of threads
// (threads split columns or rows, never k), so results do not depend on the thread count.
#pragma once

#if defined(__GNUC__) && (defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))) && \
    !defined(CONVKIT_NO_PACKED_GEMM)
#define CONVKIT_PACKED_GEMM 1

#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <new>
#include <utility>

#include "convkit/core/parallel.h"
#include "convkit/core/shape.h"


namespace convkit::ops::detail::packed {

/// Transposes the 8 x 8 block r holds (row i in r[i]) in place: afterwards lane i of r[q] is
/// what lane q of r[i] was.
inline void transpose8x8(__m256 (&r)[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 2; ++g) {  // u[4g + c], lane L: column 4L + c of rows 4g .. 4g+3
    u[4 * g] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm256_shuffle_ps(t[4 * g], t[4 * g + 2], 0xEE);
    u[4 * g + 2] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm256_shuffle_ps(t[4 * g + 1], t[4 * g + 3], 0xEE);
  }
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
  }
}

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16;
inline Vec vzero() { return _mm512_setzero_ps(); }
inline Vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec vadd(Vec a, Vec b) { return _mm512_add_ps(a, b); }
/// Stores the first `width` lanes of v (1..kLanes) at p.
inline void vstore_head(float* p, Vec v, int width) {
  _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << width) - 1), v);
}
/// scale · p[0 .. kLanes) in lanes [0, rows), 0 in the others; reads all kLanes elements.
inline Vec vload_scaled_head(const float* p, float scale, int rows) {
  return _mm512_maskz_mul_ps(static_cast<__mmask16>((1u << rows) - 1), _mm512_set1_ps(scale),
                             _mm512_loadu_ps(p));
}
/// Lane offsets i·stride, i < kLanes, for vgather_head (kLanes·stride must fit an int).
using Offsets = __m512i;
inline Offsets voffsets(int stride) {
  return _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                            _mm512_set1_epi32(stride));
}
/// p[off_i] in lanes [0, rows), 0 in the others (which are not read).
inline Vec vgather_head(const float* p, Offsets off, int rows) {
  return _mm512_mask_i32gather_ps(vzero(), static_cast<__mmask16>((1u << rows) - 1), off, p, 4);
}
/// dst[q·ldd + i] = scale · src[i·lds + q] for a 16 x 16 block, of which only the first
/// `rows` rows of src are read (the others count as 0) and only the first `width` values of
/// each dst row are written. (The zero-masked forms with a full mask are the plain
/// instructions; GCC 12's unmasked ones warn of an uninitialised value.)
inline void transpose_block(const float* src, Index lds, int rows, float scale, float* dst, Index ldd,
                            int width) {
  constexpr __mmask16 kAll = 0xFFFF;
  constexpr __mmask8 kAll8 = 0xFF;
  const __m512 s = _mm512_set1_ps(scale);
  const auto row = [&](int i) { return i < rows ? _mm512_mul_ps(s, _mm512_loadu_ps(src + i * lds)) : vzero(); };
  const auto store = [width](float* p, __m512 v) { vstore_head(p, v, width); };
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    const __m512 r0 = row(i), r1 = row(i + 1);
    t[i] = _mm512_maskz_unpacklo_ps(kAll, r0, r1);      // per 128-bit lane: r0[0] r1[0] r0[1] r1[1]
    t[i + 1] = _mm512_maskz_unpackhi_ps(kAll, r0, r1);  //                   r0[2] r1[2] r0[3] r1[3]
  }
  for (int g = 0; g < 4; ++g) {  // u[4g + c], lane L: column 4L + c of rows 4g .. 4g+3
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, a, c));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, a, c));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, b, d));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, b, d));
  }
  for (int c = 0; c < 4; ++c) {  // gather lane L of u[c], u[4+c], u[8+c], u[12+c]: column 4L + c
    const __m512 va = _mm512_maskz_shuffle_f32x4(kAll, u[c], u[4 + c], 0x88),
                 vb = _mm512_maskz_shuffle_f32x4(kAll, u[c], u[4 + c], 0xDD);
    const __m512 wa = _mm512_maskz_shuffle_f32x4(kAll, u[8 + c], u[12 + c], 0x88),
                 wb = _mm512_maskz_shuffle_f32x4(kAll, u[8 + c], u[12 + c], 0xDD);
    store(dst + c * ldd, _mm512_maskz_shuffle_f32x4(kAll, va, wa, 0x88));
    store(dst + (4 + c) * ldd, _mm512_maskz_shuffle_f32x4(kAll, vb, wb, 0x88));
    store(dst + (8 + c) * ldd, _mm512_maskz_shuffle_f32x4(kAll, va, wa, 0xDD));
    store(dst + (12 + c) * ldd, _mm512_maskz_shuffle_f32x4(kAll, vb, wb, 0xDD));
  }
}
constexpr int kMR = 12;  // rows of the register tile
constexpr int kNV = 2;   // vectors per row: kNR = 32
constexpr Index kKC = 384;
constexpr Index kNC = 384;
#else
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec vzero() { return _mm256_setzero_ps(); }
inline Vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline void vstore(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec vbroadcast(const float* p) { return _mm256_set1_ps(*p); }
inline Vec vfma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec vadd(Vec a, Vec b) { return _mm256_add_ps(a, b); }
/// Stores the first `width` lanes of v (1..kLanes) at p, by 4-, 2- and 1-lane stores: AVX2's
/// masked store is slow on AMD's cores, and pack_a's 6-row panels (width 6) went through it for
/// every block (transposes were 11-14% of ResNet-18's forward and of a LeNet-5 step on Zen 3).
inline void vstore_head(float* p, Vec v, int width) {
  if (width == 8) {
    _mm256_storeu_ps(p, v);
    return;
  }
  __m128 part = _mm256_castps256_ps128(v);
  if (width >= 4) {
    _mm_storeu_ps(p, part);
    part = _mm256_extractf128_ps(v, 1);
    p += 4, width -= 4;
  }
  if (width >= 2) {
    _mm_storel_pi(reinterpret_cast<__m64*>(p), part);
    part = _mm_movehl_ps(part, part);
    p += 2, width -= 2;
  }
  if (width >= 1) _mm_store_ss(p, part);
}
/// scale · p[0 .. kLanes) in lanes [0, rows), 0 in the others; reads all kLanes elements.
inline Vec vload_scaled_head(const float* p, float scale, int rows) {
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_and_ps(_mm256_mul_ps(_mm256_set1_ps(scale), _mm256_loadu_ps(p)), _mm256_castsi256_ps(keep));
}
/// As for AVX-512.
using Offsets = __m256i;
inline Offsets voffsets(int stride) {
  return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(stride));
}
inline Vec vgather_head(const float* p, Offsets off, int rows) {
  const __m256i keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  return _mm256_mask_i32gather_ps(vzero(), p, off, _mm256_castsi256_ps(keep), 4);
}
/// dst[q·ldd + i] = scale · src[i·lds + q] for an 8 x 8 block; rows and width as for AVX-512.
inline void transpose_block(const float* src, Index lds, int rows, float scale, float* dst, Index ldd,
                            int width) {
  const __m256 s = _mm256_set1_ps(scale);
  const auto row = [&](int i) {
    return i < rows ? _mm256_mul_ps(s, _mm256_loadu_ps(src + i * lds)) : vzero();
  };
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = row(i);
  transpose8x8(r);
  for (int q = 0; q < 8; ++q) vstore_head(dst + q * ldd, r[q], width);
}
constexpr int kMR = 6;
constexpr int kNV = 2;  // kNR = 16
constexpr Index kKC = 256;
constexpr Index kNC = 256;
#endif
constexpr int kNR = kNV * kLanes;
static_assert(kLanes <= 2 * kMR, "whole-vector stores of a panel row spill only into the next row");
static_assert(kMR <= kLanes, "pack_a transposes kLanes x kLanes blocks holding one row panel");
/// ops::gemm sends products with fewer rows to Eigen (see there).
constexpr Index kMinPackedRows = 4;

/// Row panels that op(A) with m rows packs into: ⌈m / kMR⌉, the rows spread evenly over them
/// (⌊m / P⌋ or ⌈m / P⌉ each for P panels), so that no tile is thinner than it must be: m = 64
/// on AVX2 is nine panels of 6 rows and two of 5 rather than ten of 6 and one of 4. A thin
/// tile leaves the FMA units idle, its few accumulators waiting on each other: the 4-row tile
/// ran at 60% of the 12-row tile's rate per row on ResNet's 64-channel layers (AVX-512), and
/// at 64% of the 6-row tile's on Zen 3 (AVX2). Each panel holds kMR rows of storage, zero past
/// its own rows.
inline Index panels_of(Index m) { return (m + kMR - 1) / kMR; }

/// First row of panel r (r = panels_of(m) gives m).
inline Index panel_start(Index m, Index r) {
  const Index panels = panels_of(m);
  return r >= panels ? m : r * m / panels;
}

/// Rows of panel r (1..kMR).
inline Index panel_rows(Index m, Index r) { return panel_start(m, r + 1) - panel_start(m, r); }

/// A per-thread scratch buffer of at least n floats, 64-byte aligned, kept between calls
/// (slot 0: packed B, slot 1: packed A, slot 2: an A packed once for several products, see
/// pack_a_once; slot 3: Cᵀ of a product sgemm computes as its transpose). Freed when the
/// thread ends.
inline float* scratch(int slot, Index n) {
  struct Buffer {
    float* data = nullptr;
    Index size = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffers[4];
  Buffer& b = buffers[slot];
  if (b.size < n) {
    std::free(b.data);
    b.data = nullptr, b.size = 0;
    const std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(float) + 63) / 64 * 64;
    b.data = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (b.data == nullptr) throw std::bad_alloc();
    b.size = n;
  }
  return b.data;
}

/// C tile (rows x cols, at most kMR x NV·kLanes) {=, +=} A panel · B panel over runs·len
/// steps of k: A's steps are consecutive; B's are too within a run (kNR floats a step, of which
/// the first NV vectors are read), and b_skip floats lie between the end of one run and the
/// start of the next (ops/shifted_conv.h walks output rows of a padded plane this way).
/// `accumulate` adds to C; otherwise C is overwritten.
template <int R, int NV = kNV>
inline void micro_kernel_runs(Index runs, Index len, Index b_skip, const float* __restrict a,
                              const float* __restrict b, float* c, Index ldc, int cols, bool accumulate) {
  Vec acc[R][NV];
#pragma GCC unroll 16
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = vzero();
  for (Index t = 0; t < runs; ++t, b += b_skip)
    for (Index p = 0; p < len; ++p) {
      Vec bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[v] = vload(b + v * kLanes);
#pragma GCC unroll 16
      for (int i = 0; i < R; ++i) {
        const Vec ai = vbroadcast(a + i);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = vfma(ai, bv[v], acc[i][v]);
      }
      a += kMR;
      b += kNR;
    }
  if (cols == NV * kLanes) {
#pragma GCC unroll 16
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* dst = c + i * ldc + v * kLanes;
        vstore(dst, accumulate ? vadd(acc[i][v], vload(dst)) : acc[i][v]);
      }
    return;
  }
  alignas(64) float tile[R][NV * kLanes];
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < NV; ++v) vstore(&tile[i][v * kLanes], acc[i][v]);
  for (int i = 0; i < R; ++i) {
    float* dst = c + i * ldc;
    if (accumulate) {
      for (int j = 0; j < cols; ++j) dst[j] += tile[i][j];
    } else {
      for (int j = 0; j < cols; ++j) dst[j] = tile[i][j];
    }
  }
}

template <int NV, int... R>
struct KernelTable {
  using Fn = void (*)(Index, Index, Index, const float*, const float*, float*, Index, int, bool);
  static constexpr Fn fns[] = {nullptr, &micro_kernel_runs<R, NV>...};
};

template <int NV, int... I>
constexpr auto make_table(std::integer_sequence<int, I...>) {
  return KernelTable<NV, (I + 1)...>{};
}

/// The micro-kernel for a tile of `rows` rows (1..kMR), over runs of B (micro_kernel_runs). A
/// tile of at most kLanes columns (the last of a product whose columns are not a multiple of
/// kNR) runs the one-vector kernel: it skips the multiply-adds of the panel's zero columns,
/// with each element's sum in the same order. ResNet-50's and VGG's 14x14 layers at batch 1
/// (196 columns) computed 224 columns, now 208 (AVX-512; 208 -> 200 on AVX2).
inline void run_kernel_runs(int rows, Index runs, Index len, Index b_skip, const float* a, const float* b,
                            float* c, Index ldc, int cols, bool accumulate) {
  if (cols <= kLanes) {
    using Narrow = decltype(make_table<1>(std::make_integer_sequence<int, kMR>{}));
    Narrow::fns[rows](runs, len, b_skip, a, b, c, ldc, cols, accumulate);
  } else if (rows == kMR) {
    micro_kernel_runs<kMR>(runs, len, b_skip, a, b, c, ldc, cols, accumulate);
  } else {
    using Table = decltype(make_table<kNV>(std::make_integer_sequence<int, kMR>{}));
    Table::fns[rows](runs, len, b_skip, a, b, c, ldc, cols, accumulate);
  }
}

/// The micro-kernel for a tile of `rows` rows over kc consecutive steps of both panels.
inline void run_kernel(int rows, Index kc, const float* a, const float* b, float* c, Index ldc, int cols,
                       bool accumulate) {
  run_kernel_runs(rows, 1, kc, 0, a, b, c, ldc, cols, accumulate);
}

/// Packs panel r of op(A) (m x k; transposed: stored k x m), times alpha, for the k-slice
/// [p0, p0 + kc) into out (kc x kMR): [p][i] = alpha · op(A)[panel_start(m, r) + i][p0 + p]
/// (rows past the panel's: 0).
inline void pack_a_panel(bool trans, Index m, float alpha, const float* a, Index lda, Index r, Index p0, Index kc,
                         float* out) {
  const Index i0 = panel_start(m, r), rows = panel_rows(m, r);
  if (trans) {  // op(A)[i][p] = a[p·lda + i]: row p of storage holds the panel's values
    Index p = 0;
    if (i0 + kLanes <= m) {
      // A whole vector from each row (the panel's values, then the next panel's, zeroed),
      // stored whole: its kLanes - kMR last lanes land in slot p + 1, which is written next;
      // the last slot only its own kMR. One scalar copy per value took half of col2im's data
      // gradient for ResNet-50's 2048 -> 512 1x1 layer at 7x7 (batch 1, Zen 3; at batches 1
      // and 2 that GEMM is now computed as its transpose, see sgemm).
      const auto row = [&](Index q) {
        return vload_scaled_head(a + (p0 + q) * lda + i0, alpha, static_cast<int>(rows));
      };
      for (; p + 1 < kc; ++p) vstore(out + p * kMR, row(p));
      vstore_head(out + p * kMR, row(p), kMR);
      return;
    }
    for (; p < kc; ++p) {
      const float* src = a + (p0 + p) * lda + i0;
      float* o = out + p * kMR;
      for (Index i = 0; i < rows; ++i) o[i] = alpha * src[i];
      for (Index i = rows; i < kMR; ++i) o[i] = 0.0f;
    }
    return;
  }
  // op(A)[i][p] = a[i·lda + p]: transposed kLanes-column blocks, then the rest
  const float* src = a + i0 * lda + p0;
  Index p = 0;
  for (; p + kLanes <= kc; p += kLanes)
    transpose_block(src + p, lda, static_cast<int>(rows), alpha, out + p * kMR, kMR, kMR);
  for (; p < kc; ++p) {
    for (Index i = 0; i < rows; ++i) out[p * kMR + i] = alpha * src[i * lda + p];
    for (Index i = rows; i < kMR; ++i) out[p * kMR + i] = 0.0f;
  }
}

/// alpha · op(A) (m x k) stored as a matrix, as an A packer: packer(r, p0, kc, out) writes
/// panel r of the k-slice [p0, p0 + kc) in pack_a_panel's layout. Other packers (the flipped
/// filters of a convolution's data gradient, ops/packed_im2col.h) read A from other layouts.
struct MatrixA {
  bool trans;
  Index m;
  float alpha;
  const float* a;
  Index lda;
  void operator()(Index r, Index p0, Index kc, float* out) const {
    pack_a_panel(trans, m, alpha, a, lda, r, p0, kc, out);
  }
};

/// Packs panels [r0, r1) of an A of m rows and k columns (given by its packer) for all
/// k-slices: slice s (columns [p0, p0 + kc), p0 = s·kKC) starts at p0·P·kMR for P panels and
/// holds panel r at r·kc·kMR.
template <typename APack>
void pack_a(const APack& packer, Index m, Index k, Index r0, Index r1, float* dst) {
  const Index panels = panels_of(m);
  for (Index p0 = 0; p0 < k; p0 += kKC) {
    const Index kc = std::min(kKC, k - p0);
    for (Index r = r0; r < r1; ++r) packer(r, p0, kc, dst + p0 * panels * kMR + r * kc * kMR);
  }
}

/// Floats that pack_a writes for an op(A) of m rows and k columns.
inline Index packed_a_size(Index m, Index k) { return panels_of(m) * kMR * k; }

/// All of A packed by pack_a into ap, `threads` threads (OpenMP) packing shares of its panels.
template <typename APack>
void pack_a_on(int threads, const APack& packer, Index m, Index k, float* ap) {
  const Index panels = panels_of(m);
  convkit::detail::parallel_for_on(threads, threads, [&](Index id) {
    pack_a(packer, m, k, panels * id / threads, panels * (id + 1) / threads, ap);
  });
}

/// A panels packed by pack_a beforehand, for products whose column blocks share them.
struct PackedA {
  const float* ap;
  Index panels;
  const float* operator()(Index r, Index p0, Index kc) const { return ap + p0 * panels * kMR + r * kc * kMR; }
};

/// A panels packed as they are needed, into a per-thread buffer that stays in L1, for
/// products with one column block: there each panel is used once, and packing all of A
/// first (a weight matrix of up to 9 MiB at batch 1) sent it through memory twice more.
template <typename APack>
struct PanelA {
  const APack& packer;
  float* buf;  // kKC x kMR floats
  const float* operator()(Index r, Index p0, Index kc) const {
    packer(r, p0, kc, buf);
    return buf;
  }
};

/// Packs op(B)[p0 : p0+kc, j0 : j0+nc] into panels of kNR columns, [panel][p][j].
inline void pack_b(bool trans, Index p0, Index kc, Index j0, Index nc, const float* b, Index ldb,
                   float* dst) {
  if (!trans) {  // op(B)[p][j] = b[p·ldb + j]: row by row, each read front to back into every panel
    // (panel by panel, the reads went a row apart, each to a new page, and waited on memory: a
    // third of ResNet-50's 3x3 data gradient at 7x7, batch 1, whose B is W_g, 18 KiB a row)
    const Index whole = nc / kNR * kNR;
    for (Index p = 0; p < kc; ++p) {
      const float* src = b + (p0 + p) * ldb + j0;
      float* o = dst + p * kNR;
      for (Index jp = 0; jp < whole; jp += kNR)
#pragma GCC unroll 4
        for (int v = 0; v < kNV; ++v) vstore(o + jp * kc + v * kLanes, vload(src + jp + v * kLanes));
      if (whole < nc) {
        float* last = o + whole * kc;
        for (Index j = whole; j < nc; ++j) last[j - whole] = src[j];
        for (Index j = nc - whole; j < kNR; ++j) last[j] = 0.0f;
      }
    }
    return;
  }
  // op(B)[p][j] = b[j·ldb + p]: transposed kLanes x kLanes blocks at a time
  for (Index jp = 0; jp < nc; jp += kNR) {
    const Index cols = std::min<Index>(kNR, nc - jp);
    float* out = dst + jp * kc;
    const float* src = b + (j0 + jp) * ldb + p0;
    Index full = 0;  // columns covered by whole blocks
    if (kc >= kLanes)
      for (; full + kLanes <= cols; full += kLanes) {
        Index p = 0;
        for (; p + kLanes <= kc; p += kLanes)
          transpose_block(src + full * ldb + p, ldb, kLanes, 1.0f, out + p * kNR + full, kNR, kLanes);
        for (; p < kc; ++p)
          for (Index j = full; j < full + kLanes; ++j) out[p * kNR + j] = src[j * ldb + p];
      }
    for (Index j = full; j < cols; ++j)
      for (Index p = 0; p < kc; ++p) out[p * kNR + j] = src[j * ldb + p];
    for (Index j = cols; j < kNR; ++j)
      for (Index p = 0; p < kc; ++p) out[p * kNR + j] = 0.0f;
  }
}

/// op(B) stored as a matrix: packs with pack_b.
struct MatrixB {
  bool trans;
  const float* b;
  Index ldb;
  void operator()(Index p0, Index kc, Index j0, Index nc, float* dst) const { pack_b(trans, p0, kc, j0, nc, b, ldb, dst); }
};

/// The rows of panels [r0, r1) of C[:, j0 : j0+nc]: beta applied, then every k-slice added,
/// then bias[i] to row i where bias is not null (each panel's rows right after their last
/// slice, while they are in cache: a separate pass over a convolution's output read it from
/// memory again; the same one addition per value, after the sum, so the same bits).
/// a_panel(r, p0, kc) gives panel r of the k-slice at p0 (PackedA or PanelA);
/// pack(p0, kc, j0, nc, dst) writes op(B)[p0 : p0+kc, j0 : j0+nc] in pack_b's panel layout.
template <typename APanels, typename PackB>
void block(Index m, Index k, Index r0, Index r1, Index j0, Index nc, const APanels& a_panel,
           const PackB& pack, float beta, float* c, Index ldc, const float* bias) {
  if (beta != 0.0f && beta != 1.0f)
    for (Index i = panel_start(m, r0); i < panel_start(m, r1); ++i)
      for (Index j = 0; j < nc; ++j) c[i * ldc + j0 + j] *= beta;
  float* bp = scratch(0, kKC * ((nc + kNR - 1) / kNR * kNR));
  for (Index p0 = 0; p0 < k; p0 += kKC) {
    const Index kc = std::min(kKC, k - p0);
    pack(p0, kc, j0, nc, bp);
    const bool accumulate = p0 > 0 || beta != 0.0f;
    for (Index r = r0; r < r1; ++r) {
      const int rows = static_cast<int>(panel_rows(m, r));
      const float* ar = a_panel(r, p0, kc);
      float* c_row = c + panel_start(m, r) * ldc + j0;
      for (Index jp = 0; jp < nc; jp += kNR)
        run_kernel(rows, kc, ar, bp + jp * kc, c_row + jp, ldc,
                   static_cast<int>(std::min<Index>(kNR, nc - jp)), accumulate);
      if (bias != nullptr && p0 + kc == k)
        for (Index i = 0; i < rows; ++i) {
          const float bi = bias[panel_start(m, r) + i];
          float* row = c_row + i * ldc;
          for (Index j = 0; j < nc; ++j) row[j] += bi;
        }
    }
  }
}

/// Columns of C up to which a product on one thread, or one whose threads split the rows,
/// is one column block (PanelA: each A panel packed once, in L1) rather than blocks of at
/// most kNC (A packed whole first, then read once per block). ResNet-50's 512-channel 3x3
/// layer at 7x7, batch 8 (392 columns; W_g 9 MiB), one thread:
/// forward 11.0 -> 10.2 ms (least of 7 interleaved runs; Xeon, AVX-512). Its B slice, kKC x
/// 768 floats, is 1.1 MiB of the 2 MiB L2. AVX2 keeps kNC: Zen 3's L2 is 512 KiB.
#if defined(__AVX512F__)
constexpr Index kOneBlockColumns = 2 * kNC;
#else
constexpr Index kOneBlockColumns = kNC;
#endif

/// The whole product C = A · op(B) + beta · C, A (m x k) given by its packer (MatrixA, or one
/// of a convolution's, see pack_a) and op(B) by its packer (see block); k >= 1 (an empty C
/// is left alone). With `threads` > 1 (OpenMP), the threads take equal shares of the column
/// blocks of C when it has more columns than rows and enough for two kNR panels each, else
/// equal shares of its row panels; when A is packed first, they pack it together.
/// `prepacked`, when not null, is A already packed by pack_a (the packer is then unused), for
/// callers that multiply one A by several B (pack_a_once). `bias`, when not null, holds m
/// values added to C's rows after the product (see block).
template <typename APack, typename PackB>
void sgemm_packed(Index m, Index n, Index k, const APack& a_pack, const PackB& pack, float beta, float* c,
                  Index ldc, int threads, const float* prepacked = nullptr, const float* bias = nullptr) {
  if (m <= 0 || n <= 0) return;
  const Index panels = panels_of(m);
  Index col_blocks = (n + kNC - 1) / kNC, row_groups = 1;
  if (threads > 1) {  // split the columns when C is wide, else the row panels (see the top)
    if (n >= 2 * threads * kNR && m < n)
      col_blocks = (col_blocks + threads - 1) / threads * threads;
    else
      row_groups = std::min<Index>(threads, panels);
  }
  if (n <= kOneBlockColumns && (threads <= 1 || row_groups > 1)) col_blocks = 1;
  const Index nc = ((n + col_blocks - 1) / col_blocks + kNR - 1) / kNR * kNR;
  col_blocks = (n + nc - 1) / nc;
  if (col_blocks == 1 && prepacked == nullptr) {  // each A panel used once: packed when needed (PanelA)
    auto task = [&](Index rg) {
      const PanelA<APack> a_panel{a_pack, scratch(1, kKC * kMR)};
      block(m, k, panels * rg / row_groups, panels * (rg + 1) / row_groups, 0, n, a_panel, pack, beta, c, ldc,
            bias);
    };
    convkit::detail::parallel_for_on(threads, row_groups, task);  // a plain loop for one group
    return;
  }
  const Index tasks = col_blocks * row_groups;
  const bool threaded = threads > 1 && tasks > 1;  // the threads pack A together, then share the tasks
  const float* ap = prepacked;
  if (ap == nullptr) {
    float* buffer = scratch(1, packed_a_size(m, k));
    pack_a_on(threaded ? threads : 1, a_pack, m, k, buffer);
    ap = buffer;
  }
  const PackedA packed{ap, panels};
  auto task = [&](Index t) {  // row group major: a thread's contiguous tasks share its rows of A
    const Index rg = t / col_blocks, jb = t % col_blocks;
    block(m, k, panels * rg / row_groups, panels * (rg + 1) / row_groups, jb * nc, std::min(nc, n - jb * nc),
          packed, pack, beta, c, ldc, bias);
  };
  if (threaded) {
    convkit::detail::parallel_for_on(threads, tasks, task);
    return;
  }
  for (Index t = 0; t < tasks; ++t) task(t);
}

/// The same with alpha · op(A) a stored matrix (MatrixA; ta, a, lda and alpha are unused
/// when `prepacked` is given).
template <typename PackB>
void sgemm_with(bool ta, Index m, Index n, Index k, float alpha, const float* a, Index lda, const PackB& pack,
                float beta, float* c, Index ldc, int threads, const float* prepacked = nullptr,
                const float* bias = nullptr) {
  sgemm_packed(m, n, k, MatrixA{ta, m, alpha, a, lda}, pack, beta, c, ldc, threads, prepacked, bias);
}

/// A (given by its packer) packed by pack_a into the calling thread's slot-2 scratch buffer (valid until its
/// next pack_a_once), the `threads` threads packing shares of its panels: for callers that multiply one A by
/// several B, which then pass it to sgemm_with as `prepacked` (from any thread).
template <typename APack>
const float* pack_a_once(const APack& packer, Index m, Index k, int threads) {
  float* ap = scratch(2, packed_a_size(m, k));
  pack_a_on(threads, packer, m, k, ap);
  return ap;
}

/// The same for alpha · op(A) stored as a matrix.
inline const float* pack_a_once(bool ta, Index m, Index k, float alpha, const float* a, Index lda,
                                int threads) {
  return pack_a_once(MatrixA{ta, m, alpha, a, lda}, m, k, threads);
}

/// Columns of C below which sgemm computes Cᵀ = op(B)ᵀ · op(A)ᵀ instead (see
/// product_transposed).
constexpr Index kTransposedProductColumns = 128;

/// Whether sgemm computes a product of m x n with this alpha as its transpose: alpha = 1 (it
/// is folded into the packed A, which would then be the other operand), fewer than
/// kTransposedProductColumns columns, at least kMinPackedRows of them (the rows of the
/// transposed product), and at least twice as many rows.
inline bool product_transposed(Index m, Index n, float alpha) {
  return alpha == 1.0f && n < kTransposedProductColumns && n >= kMinPackedRows && 2 * n <= m;
}

/// dst (cols x rows, row-major, ldd) = scale · srcᵀ for src (rows x cols, lds).
inline void transpose_into(const float* src, Index lds, Index rows, Index cols, float scale, float* dst,
                           Index ldd) {
  for (Index i = 0; i < rows; i += kLanes)
    for (Index j = 0; j < cols; j += kLanes) {
      const int r = static_cast<int>(std::min<Index>(kLanes, rows - i));
      const int w = static_cast<int>(std::min<Index>(kLanes, cols - j));
      if (w == kLanes) {
        transpose_block(src + i * lds + j, lds, r, scale, dst + j * ldd + i, ldd, r);
        continue;
      }
      for (Index q = j; q < j + w; ++q)
        for (Index t = i; t < i + r; ++t) dst[q * ldd + t] = scale * src[t * lds + q];
    }
}

/// The whole product of two stored matrices; k >= 1. A product with few columns and many
/// rows (product_transposed) is computed as its transpose, op(B)ᵀ · op(A)ᵀ, into a per-thread
/// buffer then transposed into C: the large operand op(A) is then packed as B (for col2im's
/// transposed W_gᵀ, a contiguous copy per panel row), and the few columns become rows of
/// panels (on AVX2, 49 columns: 9 panels of 5-6 rows instead of 4 column panels of 16 with 15
/// unused). The
/// bits are the same either way: each element's products are summed in the same order and
/// slices, and an FMA's product does not depend on its operands' order. Measured on ResNet-50's
/// data gradients at 7x7, batch 1 (col2im's A = W_gᵀ, 49 columns), Zen 3, least of 10
/// interleaved runs, ms direct -> transposed: 1x1 1024 -> 2048 /2 5.30 -> 4.43, 1024 -> 512 /2
/// 1.31 -> 0.86, 512 -> 2048 2.27 -> 1.68, 2048 -> 512 2.66 -> 2.07 at one thread; 2.89 -> 2.13,
/// 0.76 -> 0.46, 1.24 -> 0.86, 1.28 -> 0.98 at two. At batch 2 (98 columns) 1.10-1.31x.
inline void sgemm(bool ta, bool tb, Index m, Index n, Index k, float alpha, const float* a, Index lda,
                  const float* b, Index ldb, float beta, float* c, Index ldc, int threads) {
  if (product_transposed(m, n, alpha)) {
    float* t = scratch(3, n * m);  // Cᵀ (n x m)
    // t = (beta · C)ᵀ: beta applied first, as block() does, by the same one multiply per value
    if (beta != 0.0f) transpose_into(c, ldc, m, n, beta, t, m);
    sgemm_with(!tb, n, m, k, 1.0f, b, ldb, MatrixB{!ta, a, lda}, beta != 0.0f ? 1.0f : 0.0f, t, m, threads);
    transpose_into(t, m, n, m, 1.0f, c, ldc);
    return;
  }
  sgemm_with(ta, m, n, k, alpha, a, lda, MatrixB{tb, b, ldb}, beta, c, ldc, threads);
}

}  // namespace convkit::ops::detail::packed

#endif
