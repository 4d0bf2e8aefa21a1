// convkit/core/shape.h — Shape, the dimensions of a tensor (rank 0 to 4).
//
// Activations are NCHW: (batch, channels, height, width); a fully connected activation is
// (batch, features). A Shape prints as "(8, 3, 32, 32)".
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "convkit/core/error.h"

namespace convkit {

/// Signed index type used for every size and position (the same as Eigen::Index).
using Index = std::ptrdiff_t;

/// The dimensions of a tensor: rank 0 (a scalar) to 4, each dimension >= 0.
class Shape {
 public:
  static constexpr int kMaxRank = 4;
  /// The most elements a shape may have (2^48: 1 PiB of floats), so sizes never overflow.
  static constexpr Index kMaxElements = Index{1} << 48;

  /// Rank 0: one element.
  Shape() = default;

  /// @throws ValueError if there are more than four dimensions or one is negative.
  Shape(std::initializer_list<Index> dims) : Shape(dims.begin(), static_cast<int>(dims.size())) {}

  /// The first `rank` entries of `dims`.
  /// @throws ValueError if there are more than four dimensions or one is negative.
  Shape(const Index* dims, int rank) {
    CONVKIT_CHECK(rank >= 0 && rank <= kMaxRank, ValueError,
                  "Shape: expected at most " << kMaxRank << " dimensions, got " << rank);
    Index n = 1;
    for (int i = 0; i < rank; ++i) {
      CONVKIT_CHECK(dims[i] >= 0, ValueError, "Shape: expected dimensions >= 0, got " << dims[i]);
      // Checked before multiplying, so numel() never wraps around.
      CONVKIT_CHECK(dims[i] == 0 || n <= kMaxElements / dims[i], ValueError,
                    "Shape: expected at most 2^48 elements, got dimension " << dims[i] << " after "
                                                                           << (i ? "a product of " + std::to_string(n) : std::string("none")));
      n = dims[i] == 0 ? 0 : n * dims[i];
      dims_[static_cast<std::size_t>(rank_++)] = dims[i];
    }
  }

  int rank() const { return rank_; }

  /// Dimension i; @throws ShapeError if i is not in [0, rank).
  Index operator[](int i) const {
    CONVKIT_CHECK(i >= 0 && i < rank_, ShapeError,
                  "Shape" << *this << ": dimension " << i << " does not exist (rank " << rank_
                          << ")");
    return dims_[static_cast<std::size_t>(i)];
  }

  /// Number of elements: the product of the dimensions (1 for rank 0).
  Index numel() const {
    Index n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[static_cast<std::size_t>(i)] != b.dims_[static_cast<std::size_t>(i)]) return false;
    return true;
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '(';
    for (int i = 0; i < s.rank_; ++i) {
      if (i) os << ", ";
      os << s.dims_[static_cast<std::size_t>(i)];
    }
    return os << ')';
  }

  std::string to_string() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }

 private:
  std::array<Index, kMaxRank> dims_{};
  int rank_ = 0;
};

}  // namespace convkit
