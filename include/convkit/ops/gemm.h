// convkit/ops/gemm.h — general matrix multiply on row-major buffers: convkit's packed float
// kernel (ops/packed_gemm.h) where the CPU has AVX2 or AVX-512, Eigen otherwise.
//
//   C (m, n) = alpha · op(A) · op(B) + beta · C
//
// op(X) is X or Xᵀ. A is (m, k) or, transposed, stored as (k, m); B is (k, n) or stored
// (n, k). lda, ldb and ldc are the row strides of the stored matrices. Every convolution and
// fully connected layer ends up here, so this one call decides the library's speed.
#pragma once

#include <algorithm>
#include <type_traits>

#include "convkit/core/parallel.h"
#include "convkit/core/shape.h"
#include "convkit/ops/eigen_glue.h"
#include "convkit/ops/packed_gemm.h"

namespace convkit::ops {

enum class Trans { kNo, kYes };

namespace detail {

/// Multiply-adds below which a GEMM runs on one thread even when OpenMP offers more. Eigen
/// would split any product above 50,000 per thread; on this project's 2-core machine no GEMM
/// under 2·10⁷ gained from a second thread, and LeNet-5's (all under it) lost: its training
/// step took 9.8 ms on 2 threads against 7.8 ms on one (docs/benchmarks.md).
constexpr double kMinThreadedGemmWork = 2e7;

/// Threads a GEMM of `work` multiply-adds runs on: all OpenMP offers from outside a parallel
/// region once the work reaches kMinThreadedGemmWork, one otherwise.
inline int gemm_threads(double work) { return convkit::detail::threads_for(work, kMinThreadedGemmWork); }

/// C (m x n) *= beta, or set to 0 for beta = 0 (whatever C held, NaN included).
template <typename T>
void scale_rows(Index m, Index n, T beta, T* c, Index ldc) {
  if (beta == T(1)) return;
  for (Index i = 0; i < m; ++i) {
    T* row = c + i * ldc;
    if (beta == T(0)) std::fill(row, row + n, T(0));
    else for (Index j = 0; j < n; ++j) row[j] *= beta;
  }
}

/// Rows or columns of C per share when Eigen's kernels run on several threads. Shares start
/// on multiples of it, so in a matrix-vector product (the float path on AVX2 machines) each
/// element falls in the same place of Eigen's row groups and SIMD packets (8 groups of 16
/// floats at most) as on one thread, and gets the same bits; and each thread, which packs
/// all of the other operand, has many of Eigen's register panels to fill.
constexpr Index kShare = 128;

}  // namespace detail

template <typename T>
void gemm(Trans trans_a, Trans trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
          const T* b, Index ldb, T beta, T* c, Index ldc) {
  if (m == 0 || n == 0) return;  // C is empty
  const bool ta = trans_a == Trans::kYes;
  const bool tb = trans_b == Trans::kYes;
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
#ifdef CONVKIT_PACKED_GEMM
  // A product of fewer than kMinPackedRows rows is a matrix-vector product in all but name:
  // packing B would cost more than using it, so Eigen's matrix-vector path takes it.
  if constexpr (std::is_same_v<T, float>) {
    if (k > 0 && m >= detail::packed::kMinPackedRows) {
      detail::packed::sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, detail::gemm_threads(work));
      return;
    }
  }
#endif
  detail::scale_rows(m, n, beta, c, ldc);
  if (k == 0) return;
  // Eigen's kernels, chosen for the whole product, on one thread each; with several, each
  // thread takes a contiguous share of C's columns, or of its rows when C is computed column
  // by column or has more rows than columns, so no element's sum is split.
  const detail::EigenKernel kernel = detail::eigen_kernel(m, n);
  const bool by_rows = kernel == detail::EigenKernel::kColumnGemv || (kernel == detail::EigenKernel::kGemm && m > n);
  convkit::detail::parallel_ranges_on(detail::gemm_threads(work), by_rows ? m : n, detail::kShare,
                                      [&](Index s0, Index s1) {
    if (by_rows)
      detail::eigen_gemm_add(kernel, ta, tb, s1 - s0, n, k, alpha, ta ? a + s0 : a + s0 * lda, lda, b, ldb,
                             c + s0 * ldc, ldc);
    else
      detail::eigen_gemm_add(kernel, ta, tb, m, s1 - s0, k, alpha, a, lda, tb ? b + s0 * ldb : b + s0, ldb, c + s0,
                             ldc);
  });
}

}  // namespace convkit::ops
