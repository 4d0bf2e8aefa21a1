// convkit/ops/eigen_glue.h — the one place that includes Eigen.
//
// Row-major matrix views over raw convkit buffers. Nothing outside ops/ sees an Eigen type.
#pragma once

#include <Eigen/Core>

#include "convkit/core/shape.h"

namespace convkit::ops::detail {

static_assert(std::is_same_v<Index, Eigen::Index>, "convkit::Index must equal Eigen::Index");

template <typename T>
using RowMajorMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A rows x cols row-major view with leading dimension ld (>= cols).
template <typename T>
using MatrixView = Eigen::Map<RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using ConstMatrixView = Eigen::Map<const RowMajorMatrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename T>
MatrixView<T> view(T* data, Index rows, Index cols, Index ld) {
  return MatrixView<T>(data, rows, cols, Eigen::OuterStride<>(ld));
}
template <typename T>
ConstMatrixView<T> view(const T* data, Index rows, Index cols, Index ld) {
  return ConstMatrixView<T>(data, rows, cols, Eigen::OuterStride<>(ld));
}

}  // namespace convkit::ops::detail
