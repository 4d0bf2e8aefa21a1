// convkit/ops/gemm.h — general matrix multiply on row-major buffers, through Eigen.
//
//   C (m, n) = alpha · op(A) · op(B) + beta · C
//
// op(X) is X or Xᵀ. A is (m, k) or, transposed, stored as (k, m); B is (k, n) or stored
// (n, k). lda, ldb and ldc are the row strides of the stored matrices. Every convolution and
// fully connected layer ends up here, so this one call decides the library's speed.
#pragma once

#include "convkit/core/shape.h"
#include "convkit/ops/eigen_glue.h"

namespace convkit::ops {

enum class Trans { kNo, kYes };

template <typename T>
void gemm(Trans trans_a, Trans trans_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
          const T* b, Index ldb, T beta, T* c, Index ldc) {
  auto cm = detail::view(c, m, n, ldc);
  if (k == 0) {
    if (beta == T(0)) cm.setZero(); else cm *= beta;
    return;
  }
  const bool ta = trans_a == Trans::kYes;
  const bool tb = trans_b == Trans::kYes;
  auto am = detail::view(a, ta ? k : m, ta ? m : k, lda);
  auto bm = detail::view(b, tb ? n : k, tb ? k : n, ldb);
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
