// convkit/ops/softmax.h — log-softmax along the channel axis.
//
// x is (N, C) or (N, C, H, W); the softmax runs over C for every n (and every pixel h, w):
//   log p_c = x_c − m − log Σ_k e^(x_k − m),   m = max_k x_k
// Subtracting the maximum keeps every exponent <= 0, so any finite logits give a finite result.
#pragma once

#include <algorithm>
#include <cmath>

#include "convkit/core/error.h"
#include "convkit/core/tensor.h"

namespace convkit::ops {

/// log softmax over dimension 1 of x (rank 2 or 4); same shape as x.
template <typename T>
Tensor<T> log_softmax(const Tensor<T>& x) {
  CONVKIT_CHECK((x.rank() == 2 || x.rank() == 4) && x.dim(1) >= 1, ShapeError,
                "log_softmax: expected (N, C) or (N, C, H, W) with C >= 1, got " << x.shape());
  const Index n = x.dim(0), c = x.dim(1), s = x.numel() / std::max<Index>(1, n * c);
  auto out = Tensor<T>::uninitialized(x.shape());
  for (Index i = 0; i < n; ++i)
    for (Index p = 0; p < s; ++p) {
      const T* in = x.data() + i * c * s + p;
      T* o = out.data() + i * c * s + p;
      T m = in[0];
      for (Index k = 1; k < c; ++k) m = std::max(m, in[k * s]);
      T sum = T(0);
      for (Index k = 0; k < c; ++k) sum += std::exp(in[k * s] - m);
      const T lse = m + std::log(sum);
      for (Index k = 0; k < c; ++k) o[k * s] = in[k * s] - lse;
    }
  return out;
}

}  // namespace convkit::ops
