// convkit/train/metrics.h — classification metrics: predictions, accuracy, confusion matrix.
#pragma once

#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/tensor.h"

namespace convkit {

/// argmax over the classes of logits (N, C): one predicted class per row (first on ties).
template <typename T>
std::vector<Index> predict_classes(const Tensor<T>& logits) {
  CONVKIT_CHECK(logits.rank() == 2 && logits.dim(1) >= 1, ShapeError,
                "predict_classes: expected logits (N, C) with C >= 1, got " << logits.shape());
  const Index n = logits.dim(0), c = logits.dim(1);
  std::vector<Index> out(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) {
    Index best = 0;
    for (Index k = 1; k < c; ++k)
      if (logits[i * c + k] > logits[i * c + best]) best = k;
    out[static_cast<std::size_t>(i)] = best;
  }
  return out;
}

/// counts[true][predicted] over everything added.
class ConfusionMatrix {
 public:
  /// @throws ValueError for classes < 1.
  explicit ConfusionMatrix(Index classes) : classes_(classes) {
    CONVKIT_CHECK(classes >= 1, ValueError, "ConfusionMatrix: expected classes >= 1, got " << classes);
    counts_.assign(static_cast<std::size_t>(classes * classes), 0);
  }

  /// @throws ValueError for a label or prediction outside [0, classes) or mismatched sizes.
  void add(const std::vector<Index>& labels, const std::vector<Index>& predicted) {
    CONVKIT_CHECK(labels.size() == predicted.size(), ValueError,
                  "ConfusionMatrix: expected as many predictions as labels, got " << predicted.size() << " and "
                                                                                  << labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
      CONVKIT_CHECK(labels[i] >= 0 && labels[i] < classes_ && predicted[i] >= 0 && predicted[i] < classes_,
                    ValueError,
                    "ConfusionMatrix: expected classes in [0, " << classes_ << "), got label " << labels[i]
                                                                << " and prediction " << predicted[i]);
      ++counts_[static_cast<std::size_t>(labels[i] * classes_ + predicted[i])];
    }
  }

  /// The counts, row by row (true class): classes()² of them. Writable, so that the parts of
  /// one evaluation can be summed in place (DataParallel sums its ranks' matrices).
  const std::vector<Index>& counts() const { return counts_; }
  std::vector<Index>& counts() { return counts_; }

  Index classes() const { return classes_; }
  Index count(Index truth, Index predicted) const {
    return counts_.at(static_cast<std::size_t>(truth * classes_ + predicted));
  }
  Index total() const {
    Index t = 0;
    for (Index c : counts_) t += c;
    return t;
  }
  Index correct() const {
    Index t = 0;
    for (Index k = 0; k < classes_; ++k) t += count(k, k);
    return t;
  }
  /// Fraction correct, 0 when empty.
  double accuracy() const { return total() == 0 ? 0.0 : static_cast<double>(correct()) / static_cast<double>(total()); }

  /// The matrix as text: rows are true classes, columns predictions.
  std::string to_string(const std::vector<std::string>& names = {}) const {
    std::ostringstream os;
    auto label = [&](Index k) { return k < static_cast<Index>(names.size()) ? names[static_cast<std::size_t>(k)] : std::to_string(k); };
    const std::string corner = "true\\pred";
    std::size_t w = corner.size() + 1;  // the row labels' column, as wide as its header
    for (Index k = 0; k < classes_; ++k) w = std::max(w, label(k).size() + 1);
    os << std::setw(static_cast<int>(w)) << corner;
    for (Index k = 0; k < classes_; ++k) os << std::setw(6) << k;
    os << '\n';
    for (Index t = 0; t < classes_; ++t) {
      os << std::setw(static_cast<int>(w)) << label(t);
      for (Index p = 0; p < classes_; ++p) os << std::setw(6) << count(t, p);
      os << '\n';
    }
    return os.str();
  }

 private:
  Index classes_;
  std::vector<Index> counts_;
};

}  // namespace convkit
