// convkit/ops/gemm.h — general matrix multiply on row-major buffers: convkit's packed float
// kernel (ops/packed_gemm.h) where the CPU has AVX2 or AVX-512, Eigen otherwise.
//
//   C (m, n) = alpha · op(A) · op(B) + beta · C
//
// op(X) is X or Xᵀ. A is (m, k) or, transposed, stored as (k, m); B is (k, n) or stored
// (n, k). lda, ldb and ldc are the row strides of the stored matrices. Every convolution and
// fully connected layer ends up here, so this one call decides the library's speed.
#pragma once

#include "convkit/core/parallel.h"
#include "convkit/core/shape.h"
#include "convkit/ops/eigen_glue.h"
#include "convkit/ops/packed_gemm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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

/// While alive, Eigen's GEMMs on this thread use one OpenMP thread (Eigen reads the calling
/// thread's omp_get_max_threads(), a per-thread setting, unless Eigen::setNbThreads was used).
class SingleThreadedGemm {
 public:
  explicit SingleThreadedGemm(bool on) {
#ifdef _OPENMP
    if (on && (saved_ = omp_get_max_threads()) > 1) omp_set_num_threads(1);
#else
    (void)on;
#endif
  }
  SingleThreadedGemm(const SingleThreadedGemm&) = delete;
  SingleThreadedGemm& operator=(const SingleThreadedGemm&) = delete;
  ~SingleThreadedGemm() {
#ifdef _OPENMP
    if (saved_ > 1) omp_set_num_threads(saved_);
#endif
  }

 private:
#ifdef _OPENMP
  int saved_ = 0;
#endif
};

}  // namespace detail

template <typename T>
void gemm(Trans trans_a, Trans trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
          const T* b, Index ldb, T beta, T* c, Index ldc) {
  if (m == 0 || n == 0) return;  // C is empty
  auto cm = detail::view(c, m, n, ldc);
  if (k == 0) {
    if (beta == T(0)) cm.setZero(); else cm *= beta;
    return;
  }
  const bool ta = trans_a == Trans::kYes;
  const bool tb = trans_b == Trans::kYes;
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
#ifdef CONVKIT_PACKED_GEMM
  // A product of fewer than kMinPackedRows rows is a matrix-vector product in all but name:
  // packing B would cost more than using it, so Eigen's matrix-vector path takes it.
  if constexpr (std::is_same_v<T, float>) {
    if (m >= detail::packed::kMinPackedRows) {
      detail::packed::sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, detail::gemm_threads(work));
      return;
    }
  }
#endif
  auto am = detail::view(a, ta ? k : m, ta ? m : k, lda);
  auto bm = detail::view(b, tb ? n : k, tb ? k : n, ldb);
  const detail::SingleThreadedGemm small(work < detail::kMinThreadedGemmWork);
  auto run = [&](const auto& lhs, const auto& rhs) {
    if (beta == T(0)) {
      cm.noalias() = alpha * lhs * rhs;
    } else {
      if (beta != T(1)) cm *= beta;
      cm.noalias() += alpha * lhs * rhs;
    }
  };
  if (!ta && !tb) run(am, bm);
  else if (!ta && tb) run(am, bm.transpose());
  else if (ta && !tb) run(am.transpose(), bm);
  else run(am.transpose(), bm.transpose());
}

}  // namespace convkit::ops
