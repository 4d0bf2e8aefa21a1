// convkit/ops/sums.h — sums in double over a sequence of float or double terms, in a fixed
// order that vectorises: term k goes to partial sum k mod kWidth (k counted across every
// add() call), and total() adds the partial sums pairwise. A single running sum has one order
// too, but it cannot be vectorised and runs at one add per 4-cycle latency (8% of a ResNet-18
// training step in batch norm). The order depends only on the number of terms, never on the
// threads. Used by batch norm's channel statistics and the convolution's bias gradient.
#pragma once

#include "convkit/core/shape.h"

namespace convkit::ops::detail {

/// A sum in double over a sequence of terms: term k goes to partial sum k mod kWidth, counting
/// k across every add() call, so independent chains fill the vector units.
class DoubleSums {
 public:
  static constexpr int kWidth = 32;

  /// Adds term(i) for i in [0, n); term returns a double.
  template <typename Term>
  void add(Index n, Term term) {
    Index i = 0;
    for (; pos_ != 0 && i < n; ++i) {  // finish the partial row of the previous call
      v_[pos_] += term(i);
      pos_ = (pos_ + 1) % kWidth;
    }
    for (; i + kWidth <= n; i += kWidth)
      for (int j = 0; j < kWidth; ++j) v_[j] += term(i + j);
    for (; i < n; ++i) v_[pos_++] += term(i);
  }

  /// The sum of the partial sums, pairwise.
  double total() const {
    double w[kWidth];
    for (int j = 0; j < kWidth; ++j) w[j] = v_[j];
    for (int width = kWidth / 2; width >= 1; width /= 2)
      for (int j = 0; j < width; ++j) w[j] += w[j + width];
    return w[0];
  }

 private:
  double v_[kWidth] = {};
  int pos_ = 0;
};

}  // namespace convkit::ops::detail
