// convkit/ops/workspace.h — reusable scratch buffers for ops that need temporary storage.
//
// A layer owns one Workspace and passes it to every op call, so steady-state training
// allocates no scratch memory: each slot grows to the largest size asked of it and stays.
#pragma once

#include <array>
#include <vector>

#include "convkit/core/shape.h"

namespace convkit::ops {

template <typename T>
class Workspace {
 public:
  enum Slot { kColumns = 0, kProduct, kFlippedWeight, kPartialSums, kSlotCount };

  /// A buffer of at least n elements for `slot`; its contents are unspecified.
  T* get(Slot slot, Index n) {
    auto& buf = buffers_[static_cast<std::size_t>(slot)];
    if (static_cast<Index>(buf.size()) < n) buf.resize(static_cast<std::size_t>(n));
    return buf.data();
  }

  /// Bytes held by all slots.
  std::size_t bytes() const {
    std::size_t total = 0;
    for (const auto& b : buffers_) total += b.size() * sizeof(T);
    return total;
  }

 private:
  std::array<std::vector<T>, kSlotCount> buffers_;
};

}  // namespace convkit::ops
