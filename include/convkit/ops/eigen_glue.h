// convkit/ops/eigen_glue.h — the one place that includes Eigen: C += alpha · op(A) · op(B) on
// row-major buffers by Eigen's own matrix-matrix and matrix-vector kernels.
//
// ops::gemm calls the kernels directly (Eigen::internal::general_matrix_matrix_product and
// general_matrix_vector_product, the same calls Eigen's BLAS wrapper makes) rather than through
// Eigen's expressions: `C.noalias() += alpha * A * B` over Maps instantiates, for each of the
// four transpositions, Eigen's coefficient-wise product for tiny sizes, its matrix-vector
// selectors and its threading, and that cost about 6 of the 22-23 s examples/lenet5_mnist.cpp
// took to compile at -O2. Eigen's own threading is replaced by ops::gemm's (shares of C's
// rows or columns). Nothing outside ops/ sees an Eigen type.
#pragma once

#include <Eigen/Core>

#include <vector>

#include "convkit/core/shape.h"

#if !EIGEN_VERSION_AT_LEAST(3, 4, 0)
#error "convkit needs Eigen 3.4 or later (its kernels are called with 3.4's signatures)"
#endif

namespace convkit::ops::detail {

static_assert(std::is_same_v<Index, Eigen::Index>, "convkit::Index must equal Eigen::Index");

/// v (n values, stride inc) as a contiguous array: v itself for inc = 1, else a copy in buf.
template <typename T>
const T* contiguous(const T* v, Index n, Index inc, std::vector<T>& buf) {
  if (inc == 1) return v;
  buf.resize(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) buf[i] = v[i * inc];
  return buf.data();
}

/// y (rows, stride incy) += alpha · M · x, M (rows x cols) stored row-major with leading
/// dimension ld (trans = false) or stored transposed, i.e. column-major (trans = true); x has
/// stride incx. Eigen's row-major kernel reads x contiguously and its column-major one writes
/// y contiguously, so a strided x or y is copied for them.
template <typename T>
void eigen_gemv_add(bool trans, Index rows, Index cols, T alpha, const T* m, Index ld, const T* x, Index incx, T* y,
                    Index incy) {
  namespace ei = Eigen::internal;
  std::vector<T> buf;
  if (!trans) {
    using MMap = ei::const_blas_data_mapper<T, Index, Eigen::RowMajor>;
    using XMap = ei::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
    ei::general_matrix_vector_product<Index, T, MMap, Eigen::RowMajor, false, T, XMap, false>::run(
        rows, cols, MMap(m, ld), XMap(contiguous(x, cols, incx, buf), 1), y, incy, alpha);
    return;
  }
  T* out = y;
  if (incy != 1) {
    contiguous<T>(y, rows, incy, buf);
    out = buf.data();
  }
  using MMap = ei::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using XMap = ei::const_blas_data_mapper<T, Index, Eigen::RowMajor>;
  ei::general_matrix_vector_product<Index, T, MMap, Eigen::ColMajor, false, T, XMap, false>::run(
      rows, cols, MMap(m, ld), XMap(x, incx), out, 1, alpha);
  if (out != y)
    for (Index i = 0; i < rows; ++i) y[i * incy] = out[i];
}

/// Rows (or columns) of C up to which a product is that many matrix-vector products: Eigen's
/// GEMM packs all of op(B) and its register tiles are mostly empty, so a 2 x 9216 by
/// 9216 x 4096 product took 52 ms at one thread against 10 ms for one row.
constexpr Index kMaxGemvRows = 3;

/// How Eigen computes a product: one matrix-vector product per row of C (at most
/// kMaxGemvRows rows), one per column (at most kMaxGemvRows columns), or its blocked GEMM.
enum class EigenKernel { kRowGemv, kColumnGemv, kGemm };

inline EigenKernel eigen_kernel(Index m, Index n) {
  if (m <= kMaxGemvRows) return EigenKernel::kRowGemv;
  return n <= kMaxGemvRows ? EigenKernel::kColumnGemv : EigenKernel::kGemm;
}

/// C (m x n, row-major, ldc) += alpha · op(A) · op(B), as ops::gemm, on the calling thread, by
/// `kernel` (chosen by ops::gemm for the whole product, of which this may be a share).
/// m, n, k >= 1.
template <typename T>
void eigen_gemm_add(EigenKernel kernel, bool ta, bool tb, Index m, Index n, Index k, T alpha, const T* a, Index lda,
                    const T* b, Index ldb, T* c, Index ldc) {
  if (kernel == EigenKernel::kRowGemv) {  // C[i]ᵀ += alpha · op(B)ᵀ · op(A)[i]ᵀ (op(B)ᵀ is
    for (Index i = 0; i < m; ++i)         // stored transposed when B is not)
      eigen_gemv_add(!tb, n, k, alpha, b, ldb, ta ? a + i : a + i * lda, ta ? lda : 1, c + i * ldc, 1);
    return;
  }
  if (kernel == EigenKernel::kColumnGemv) {  // C[:, j] += alpha · op(A) · op(B)[:, j]
    for (Index j = 0; j < n; ++j)
      eigen_gemv_add(ta, m, k, alpha, a, lda, tb ? b + j * ldb : b + j, tb ? 1 : ldb, c + j, ldc);
    return;
  }
  namespace ei = Eigen::internal;
  constexpr int kRow = Eigen::RowMajor, kCol = Eigen::ColMajor;
  ei::gemm_blocking_space<kRow, T, T, Eigen::Dynamic, Eigen::Dynamic, Eigen::Dynamic> blocking(m, n, k, 1, true);
  auto run = [&](auto lhs_order, auto rhs_order) {
    ei::general_matrix_matrix_product<Index, T, decltype(lhs_order)::value, false, T, decltype(rhs_order)::value,
                                      false, kRow, 1>::run(m, n, k, a, lda, b, ldb, c, 1, ldc, alpha, blocking);
  };
  using Row = std::integral_constant<int, kRow>;
  using Col = std::integral_constant<int, kCol>;
  if (!ta && !tb) run(Row{}, Row{});
  else if (!ta) run(Row{}, Col{});
  else if (!tb) run(Col{}, Row{});
  else run(Col{}, Col{});
}

}  // namespace convkit::ops::detail
