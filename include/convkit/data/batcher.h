// convkit/data/batcher.h — mini-batches over a dataset, shuffled by an explicit Rng.
//
// Each epoch is a permutation of [0, N) (Fisher–Yates with Rng::below when shuffling, the
// identity otherwise) cut into batches of batch_size; the last batch is smaller unless
// drop_last. gather() copies a batch's images and labels out of a Dataset.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/rng.h"
#include "convkit/data/dataset.h"

namespace convkit::data {

class Batcher {
 public:
  /// @throws ValueError for size < 0 or batch_size < 1.
  Batcher(Index size, Index batch_size, bool shuffle = true, bool drop_last = false)
      : batch_(batch_size), shuffle_(shuffle), drop_last_(drop_last) {
    CONVKIT_CHECK(size >= 0 && batch_size >= 1, ValueError,
                  "Batcher: expected size >= 0 and batch_size >= 1, got " << size << " and " << batch_size);
    order_.resize(static_cast<std::size_t>(size));
    std::iota(order_.begin(), order_.end(), Index{0});
  }

  /// Starts an epoch: a new permutation drawn from rng when shuffling.
  void start_epoch(Rng& rng) {
    std::iota(order_.begin(), order_.end(), Index{0});
    if (!shuffle_) return;
    for (std::size_t i = order_.size(); i > 1; --i)
      std::swap(order_[i - 1], order_[static_cast<std::size_t>(rng.below(i))]);
  }

  Index num_batches() const {
    const Index n = static_cast<Index>(order_.size());
    return drop_last_ ? n / batch_ : (n + batch_ - 1) / batch_;
  }

  /// Sample indices of batch b of the current epoch.
  /// @throws ValueError if b is out of range.
  std::vector<Index> batch(Index b) const {
    CONVKIT_CHECK(b >= 0 && b < num_batches(), ValueError,
                  "Batcher: batch " << b << " is out of range for " << num_batches() << " batches");
    const auto begin = order_.begin() + b * batch_;
    const auto end = order_.begin() + std::min<Index>((b + 1) * batch_, static_cast<Index>(order_.size()));
    return std::vector<Index>(begin, end);
  }

 private:
  std::vector<Index> order_;
  Index batch_;
  bool shuffle_, drop_last_;
};

/// Copies the samples `indices` of d into images (B, C, H, W) and labels (B).
template <typename T>
void gather(const Dataset<T>& d, const std::vector<Index>& indices, Tensor<T>& images, std::vector<Index>& labels) {
  const Shape& s = d.images.shape();
  const Index per = s[1] * s[2] * s[3], b = static_cast<Index>(indices.size());
  if (images.shape() != Shape{b, s[1], s[2], s[3]}) images = Tensor<T>(Shape{b, s[1], s[2], s[3]});
  labels.resize(indices.size());
  for (Index i = 0; i < b; ++i) {
    const Index k = indices[static_cast<std::size_t>(i)];
    CONVKIT_CHECK(k >= 0 && k < d.size(), ValueError,
                  "gather: sample index " << k << " is out of range for a dataset of " << d.size());
    std::copy(d.images.data() + k * per, d.images.data() + (k + 1) * per, images.data() + i * per);
    labels[static_cast<std::size_t>(i)] = d.labels[static_cast<std::size_t>(k)];
  }
}

}  // namespace convkit::data
