// convkit/core/tensor.h — Tensor<T>, an owning, contiguous, row-major array with a Shape.
//
// Copying a Tensor copies its data; moving it is cheap. Storage is 64-byte aligned so the
// GEMM kernels can use aligned loads. Element (n, c, h, w) of an NCHW tensor lives at
// ((n·C + c)·H + h)·W + w.
#pragma once

#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "convkit/core/allocator.h"
#include "convkit/core/error.h"
#include "convkit/core/parallel.h"
#include "convkit/core/shape.h"

namespace convkit {

namespace detail {

template <typename T>
struct IsSupportedScalar : std::bool_constant<std::is_same_v<T, float> || std::is_same_v<T, double>> {};

/// T itself, in a context where a template argument is not deduced: lets a
/// `const Tensor<NoDeduce<T>>*` parameter accept a plain nullptr.
template <typename T>
struct NoDeduceImpl {
  using type = T;
};
template <typename T>
using NoDeduce = typename NoDeduceImpl<T>::type;

/// Returns a block to BlockCache; remembers the size it was allocated with.
struct AlignedDelete {
  std::size_t bytes = 0;
  void operator()(void* p) const noexcept { BlockCache::release(p, bytes); }
};

/// 64-byte aligned storage for n values of T, zero-filled unless `zero` is false.
template <typename T>
std::unique_ptr<T[], AlignedDelete> allocate_aligned(Index n, bool zero = true) {
  if (n == 0) return nullptr;
  const std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
  void* p = nullptr;
  try {
    p = BlockCache::allocate(bytes);
  } catch (const std::bad_alloc&) {
    throw Error("Tensor: cannot allocate " + std::to_string(bytes) + " bytes for " + std::to_string(n) +
                " elements (out of memory)");
  }
  if (zero) std::memset(p, 0, bytes);
  return std::unique_ptr<T[], AlignedDelete>(static_cast<T*>(p), AlignedDelete{bytes});
}

}  // namespace detail

/// A dense tensor of float or double.
template <typename T>
class Tensor {
  static_assert(detail::IsSupportedScalar<T>::value,
                "convkit::Tensor<T> supports T = float or T = double only: float for speed, "
                "double for gradient checks.");

 public:
  using value_type = T;

  /// An empty tensor of shape (0).
  Tensor() : shape_{0} {}

  /// A zero-filled tensor of the given shape.
  explicit Tensor(const Shape& shape) : shape_(shape), data_(detail::allocate_aligned<T>(shape.numel())) {}

  /// A tensor whose elements are left unset, for ops that write every element.
  static Tensor uninitialized(const Shape& shape) {
    Tensor t;
    t.shape_ = shape;
    t.data_ = detail::allocate_aligned<T>(shape.numel(), /*zero=*/false);
    return t;
  }

  /// A tensor of the given shape, every element `value`.
  Tensor(const Shape& shape, T value) : Tensor(uninitialized(shape)) { fill(value); }

  Tensor(const Tensor& other) : Tensor(uninitialized(other.shape_)) { copy_from(other); }
  Tensor(Tensor&& other) noexcept : shape_(other.shape_), data_(std::move(other.data_)) {
    other.shape_ = Shape{0};
  }
  Tensor& operator=(const Tensor& other) {
    if (this != &other) {
      if (numel() != other.numel()) data_ = detail::allocate_aligned<T>(other.numel(), /*zero=*/false);
      shape_ = other.shape_;
      copy_from(other);
    }
    return *this;
  }
  Tensor& operator=(Tensor&& other) noexcept {
    shape_ = other.shape_;
    data_ = std::move(other.data_);
    other.shape_ = Shape{0};
    return *this;
  }
  ~Tensor() = default;

  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  Index numel() const { return shape_.numel(); }
  /// Dimension i of the shape.
  Index dim(int i) const { return shape_[i]; }

  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  T* begin() { return data(); }
  T* end() { return data() + numel(); }
  const T* begin() const { return data(); }
  const T* end() const { return data() + numel(); }

  /// Unchecked flat access.
  T& operator[](Index i) { return data_[static_cast<std::size_t>(i)]; }
  const T& operator[](Index i) const { return data_[static_cast<std::size_t>(i)]; }

  /// Unchecked multi-index access; the number of indices must equal the rank.
  template <typename... I>
  T& operator()(I... idx) {
    return data_[static_cast<std::size_t>(offset_unchecked(static_cast<Index>(idx)...))];
  }
  template <typename... I>
  const T& operator()(I... idx) const {
    return data_[static_cast<std::size_t>(offset_unchecked(static_cast<Index>(idx)...))];
  }

  /// Checked multi-index access.
  /// @throws ShapeError if the number of indices differs from the rank or one is out of range.
  template <typename... I>
  T& at(I... idx) {
    return data_[static_cast<std::size_t>(offset_checked({static_cast<Index>(idx)...}))];
  }
  template <typename... I>
  const T& at(I... idx) const {
    return data_[static_cast<std::size_t>(offset_checked({static_cast<Index>(idx)...}))];
  }

  /// Sets every element to `value`.
  void fill(T value) { std::fill(begin(), end(), value); }

  /// A copy with another shape of the same number of elements.
  /// @throws ShapeError if the element counts differ.
  Tensor reshaped(const Shape& shape) const& {
    Tensor out(*this);
    out.reshape(shape);
    return out;
  }
  /// The same data under another shape, without a copy.
  Tensor reshaped(const Shape& shape) && {
    reshape(shape);
    return std::move(*this);
  }

  /// Changes the shape in place, keeping the data.
  /// @throws ShapeError if the element counts differ.
  void reshape(const Shape& shape) {
    CONVKIT_CHECK(shape.numel() == numel(), ShapeError,
                  "Tensor::reshape: expected a shape of " << numel() << " elements like " << shape_
                                                          << ", got " << shape << " ("
                                                          << shape.numel() << " elements)");
    shape_ = shape;
  }

 private:
  /// Copies other's elements (numel() of them) into this tensor's storage; large tensors on
  /// several threads (core/parallel.h), each element copied once.
  void copy_from(const Tensor& other) {
    const T* src = other.data();
    T* dst = data();
    detail::parallel_ranges(other.numel(), [&](Index b, Index e) { std::copy(src + b, src + e, dst + b); });
  }

  Index offset_unchecked() const { return 0; }
  template <typename... I>
  Index offset_unchecked(Index first, I... rest) const {
    constexpr int n = 1 + static_cast<int>(sizeof...(rest));
    const Index idx[n] = {first, rest...};
    Index off = 0;
    for (int i = 0; i < n; ++i) off = off * shape_[i] + idx[i];
    return off;
  }

  Index offset_checked(std::initializer_list<Index> idx) const {
    CONVKIT_CHECK(static_cast<int>(idx.size()) == rank(), ShapeError,
                  "Tensor::at: expected " << rank() << " indices for shape " << shape_ << ", got "
                                          << idx.size());
    Index off = 0;
    int i = 0;
    for (Index v : idx) {
      CONVKIT_CHECK(v >= 0 && v < shape_[i], ShapeError,
                    "Tensor::at: index " << v << " of dimension " << i << " is out of range for shape "
                                         << shape_);
      off = off * shape_[i] + v;
      ++i;
    }
    return off;
  }

  Shape shape_;
  std::unique_ptr<T[], detail::AlignedDelete> data_;
};

}  // namespace convkit
