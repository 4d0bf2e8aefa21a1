// convkit/ops/pool2d.h — max and average pooling over each (n, c) plane, forward and backward.
//
// Shapes: x (N, C, H, W) -> y (N, C, OH, OW), with
//   OH = ⌊(H + 2·ph − KH) / sh⌋ + 1, or ⌈·⌉ + 1 in ceil mode, where a last window that would
//   start in the bottom padding is dropped (PyTorch's and Caffe's rule).
// Padding may be at most half the kernel and the input has at least one row and column, so
// every window holds at least one input pixel.
//
// Max:  y = max over the window (padding never wins); dX[argmax] += dY.
// Average: y = Σ window / divisor. With count_include_pad (the default, as in PyTorch and
//   Caffe) the divisor counts the padded positions inside the padded input,
//   (min(y0 + KH, H + ph) − y0)·(…); without it, only the real pixels. dX = dY / divisor
//   spread over the window.
// Adaptive average: the output size is given instead of the window; output (i, j) averages
//   rows [⌊i·H/OH⌋, ⌈(i+1)·H/OH⌉) and the same rule for columns (PyTorch's AdaptiveAvgPool2d).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/parallel.h"
#include "convkit/core/tensor.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace convkit::ops {

struct Pool2dParams {
  Index kernel_h = 2, kernel_w = 2;
  Index stride_h = 2, stride_w = 2;
  Index pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
};

/// Output length along one axis; see the rule at the top of this file.
inline Index pool2d_output_size(Index in, Index kernel, Index stride, Index pad, bool ceil_mode) {
  const Index span = in + 2 * pad - kernel;
  Index out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

/// @throws ValueError for kernel or stride < 1, or padding outside [0, kernel / 2].
inline void pool2d_check_params(const Pool2dParams& p) {
  CONVKIT_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1, ValueError,
                "pool2d: expected kernel >= 1 and stride >= 1, got kernel "
                    << p.kernel_h << "x" << p.kernel_w << ", stride " << p.stride_h << "x" << p.stride_w);
  CONVKIT_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && 2 * p.pad_h <= p.kernel_h && 2 * p.pad_w <= p.kernel_w,
                ValueError,
                "pool2d: expected 0 <= padding <= kernel / 2, got padding "
                    << p.pad_h << "x" << p.pad_w << " for kernel " << p.kernel_h << "x" << p.kernel_w);
}

/// Checks the parameters and returns the output shape for input shape x.
/// @throws ValueError for bad parameters; ShapeError for a bad input.
inline Shape pool2d_output_shape(const Shape& x, const Pool2dParams& p) {
  pool2d_check_params(p);
  CONVKIT_CHECK(x.rank() == 4 && x[2] + 2 * p.pad_h >= p.kernel_h && x[3] + 2 * p.pad_w >= p.kernel_w,
                ShapeError,
                "pool2d: expected input (N, C, H, W) with H + 2·padding >= " << p.kernel_h
                    << " and W + 2·padding >= " << p.kernel_w << ", got " << x);
  CONVKIT_CHECK(x[2] >= 1 && x[3] >= 1, ShapeError,
                "pool2d: expected input (N, C, H, W) with H, W >= 1 (a window of only padding has no "
                "value), got " << x);
  return Shape{x[0], x[1], pool2d_output_size(x[2], p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode),
               pool2d_output_size(x[3], p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode)};
}

namespace detail {

/// ⌈a / b⌉ for b > 0, and 0 for a <= 0.
inline Index ceil_div_nonneg(Index a, Index b) { return a <= 0 ? 0 : (a + b - 1) / b; }

/// Calls fn(plane_index, oy·OW + ox, y0, y1, x0, x1, divisor) for every output pixel, where
/// [y0, y1) x [x0, x1) is the window clipped to the input. Planes may run on separate
/// threads (core/parallel.h): fn must write only to its own plane.
template <typename Fn>
void for_each_window(const Shape& x, const Shape& y, const Pool2dParams& p, Fn&& fn) {
  const Index planes = x[0] * x[1], h = x[2], w = x[3], oh = y[2], ow = y[3];
  convkit::detail::parallel_for(planes, static_cast<double>(planes) * static_cast<double>(h * w + oh * ow), [&](Index pl) {
    for (Index oy = 0; oy < oh; ++oy) {
      const Index ys = oy * p.stride_h - p.pad_h;
      const Index ye_pad = std::min(ys + p.kernel_h, h + p.pad_h);
      const Index y0 = std::max<Index>(ys, 0), y1 = std::min(ye_pad, h);
      for (Index ox = 0; ox < ow; ++ox) {
        const Index xs = ox * p.stride_w - p.pad_w;
        const Index xe_pad = std::min(xs + p.kernel_w, w + p.pad_w);
        const Index x0 = std::max<Index>(xs, 0), x1 = std::min(xe_pad, w);
        const Index divisor =
            p.count_include_pad ? (ye_pad - ys) * (xe_pad - xs) : (y1 - y0) * (x1 - x0);
        fn(pl, oy * ow + ox, y0, y1, x0, x1, divisor);
      }
    }
  });
}

}  // namespace detail

namespace detail {

/// Output columns [lo, hi) of a pooling row whose windows lie wholly inside the input row
/// (0 <= ox·s − pad and ox·s − pad + k <= w); the others reach into the padding.
inline std::pair<Index, Index> pool_interior_columns(Index w, Index ow, Index k, Index s, Index pad) {
  const Index lo = std::min(ceil_div_nonneg(pad, s), ow), last = w + pad - k;  // ox·s <= last
  return {lo, last < 0 ? lo : std::clamp(last / s + 1, lo, ow)};
}

/// Whether v replaces the running maximum m: a larger value, or the first NaN (NaN never
/// compares greater, so it is taken only while m is a number; later values never replace it).
template <typename T>
inline bool max_takes(T v, T m) {
  return (v > m) | ((v != v) & (m == m));  // & and |: no branch on the data
}

#if defined(__AVX2__)
/// Float vectors of 8 (AVX) and 4 (SSE) lanes with 32-bit indices beside them, for
/// max_pool_lanes. load<S> reads lanes src[l·S] for S = 1 or 2, and for S = 2 no element past
/// the last lane's (even elements of src[0 ..] and of a second load that ends on it).
struct MaxPoolVec8 {
  using V = __m256;
  using I = __m256i;
  static constexpr int kLanes = 8;
  template <int S>
  static V load(const float* src) {
    if constexpr (S == 1) {
      return _mm256_loadu_ps(src);
    } else {  // [0 2 8 10 | 4 6 12 14] from src[0..7] and src[7..14], then 64-bit pairs reordered
      const V even = _mm256_shuffle_ps(_mm256_loadu_ps(src), _mm256_loadu_ps(src + 7), 0xD8);
      return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), 0xD8));
    }
  }
  static I lanes(int step) { return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(step)); }
  static I add(std::int32_t a, I b) { return _mm256_add_epi32(_mm256_set1_epi32(a), b); }
  static V takes(V v, V m) {  // max_takes on every lane
    return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ),
                        _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q), _mm256_cmp_ps(m, m, _CMP_ORD_Q)));
  }
  static V blend(V a, V b, V mask) { return _mm256_blendv_ps(a, b, mask); }
  static I blend(I a, I b, V mask) {
    return _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), mask));
  }
  static void store(float* y, V v) { _mm256_storeu_ps(y, v); }
  static void store(std::int32_t* y, I v) { _mm256_storeu_si256(reinterpret_cast<I*>(y), v); }
};
struct MaxPoolVec4 {
  using V = __m128;
  using I = __m128i;
  static constexpr int kLanes = 4;
  template <int S>
  static V load(const float* src) {
    if constexpr (S == 1) {
      return _mm_loadu_ps(src);
    } else {  // src[0 2] of src[0..3], src[4 6] of src[3..6]
      return _mm_shuffle_ps(_mm_loadu_ps(src), _mm_loadu_ps(src + 3), _MM_SHUFFLE(3, 1, 2, 0));
    }
  }
  static I lanes(int step) { return _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(step)); }
  static I add(std::int32_t a, I b) { return _mm_add_epi32(_mm_set1_epi32(a), b); }
  static V takes(V v, V m) {
    return _mm_or_ps(_mm_cmpgt_ps(v, m), _mm_and_ps(_mm_cmpunord_ps(v, v), _mm_cmpord_ps(m, m)));
  }
  static V blend(V a, V b, V mask) { return _mm_blendv_ps(a, b, mask); }
  static I blend(I a, I b, V mask) { return _mm_castps_si128(_mm_blendv_ps(_mm_castsi128_ps(a), _mm_castsi128_ps(b), mask)); }
  static void store(float* y, V v) { _mm_storeu_ps(y, v); }
  static void store(std::int32_t* y, I v) { _mm_storeu_si128(reinterpret_cast<I*>(y), v); }
};

/// Outputs [0, Vec::kLanes) of one row, at y and arg (in-plane index + plane_offset): the
/// windows over input rows [y0, y1) and columns x0 + l·S + [0, kw) for lane l, all inside the
/// plane. Each lane keeps its maximum and index in a register while the window is scanned in
/// row-major order (max_takes), so it finds what the scalar scan finds.
template <typename Vec, int S>
void max_pool_lanes(const float* plane, Index w, Index y0, Index y1, Index kw, Index x0, float* y, Index* arg,
                    Index plane_offset) {
  const auto first = static_cast<std::int32_t>(y0 * w + x0);
  const typename Vec::I lane = Vec::lanes(S);
  typename Vec::V m = Vec::template load<S>(plane + first);
  typename Vec::I bi = Vec::add(first, lane);
  for (Index r = y0; r < y1; ++r)
    for (Index c = r == y0 ? 1 : 0; c < kw; ++c) {
      const auto at = static_cast<std::int32_t>(r * w + x0 + c);
      const typename Vec::V v = Vec::template load<S>(plane + at);
      const typename Vec::V take = Vec::takes(v, m);
      m = Vec::blend(m, v, take);
      bi = Vec::blend(bi, Vec::add(at, lane), take);
    }
  Vec::store(y, m);
  std::int32_t idx[Vec::kLanes];
  Vec::store(idx, bi);
  for (int l = 0; l < Vec::kLanes; ++l) arg[l] = plane_offset + idx[l];
}

/// Output columns [lo, hi) of one row by max_pool_lanes, in groups of Vec::kLanes (hi − lo at
/// least that); a last partial group overlaps the one before it (each output is computed on
/// its own, so computing one twice gives the same result).
template <typename Vec, int S>
void max_pool_row(const float* plane, Index w, Index y0, Index y1, Index kw, Index pw, Index lo, Index hi, float* yrow,
                  Index* arow, Index plane_offset) {
  for (Index ox = lo;; ox += Vec::kLanes) {
    ox = std::min<Index>(ox, hi - Vec::kLanes);
    max_pool_lanes<Vec, S>(plane, w, y0, y1, kw, ox * S - pw, yrow + ox, arow + ox, plane_offset);
    if (ox + Vec::kLanes >= hi) return;
  }
}

/// The interior columns [lo, hi) of one output row in vector lanes, for float with a column
/// stride of 1 or 2 and at least 4 such columns; returns whether it did (otherwise the caller
/// scans them one by one). Measured on Zen 3 (AVX2), one thread, µs, the old scan (running
/// maximum in y, auto-vectorised) -> this: LeNet's 2x2/2 pools of (64, 6, 28, 28) 726 -> 120
/// and of (64, 16, 10, 10) 411 -> 99; ResNet's 3x3/2 stem pool of (1, 64, 112, 112) 3491 -> 569.
template <typename T>
bool max_pool_row_vectorised(const T* plane, Index w, Index y0, Index y1, Index kw, Index sw, Index pw, Index lo,
                             Index hi, T* yrow, Index* arow, Index plane_offset) {
  if constexpr (std::is_same_v<T, float>) {
    if ((sw != 1 && sw != 2) || hi - lo < MaxPoolVec4::kLanes) return false;
    const auto run = [&](auto vec) {
      using Vec = decltype(vec);
      if (sw == 1)
        max_pool_row<Vec, 1>(plane, w, y0, y1, kw, pw, lo, hi, yrow, arow, plane_offset);
      else
        max_pool_row<Vec, 2>(plane, w, y0, y1, kw, pw, lo, hi, yrow, arow, plane_offset);
    };
    if (hi - lo >= MaxPoolVec8::kLanes)
      run(MaxPoolVec8{});
    else
      run(MaxPoolVec4{});
    return true;
  }
  return false;
}
#else
template <typename T>
bool max_pool_row_vectorised(const T*, Index, Index, Index, Index, Index, Index, Index, Index, T*, Index*, Index) {
  return false;
}
#endif

}  // namespace detail

/// y = max pooling of x; argmax[i] receives the flat index into x of output i's maximum
/// (the first one on ties; NaN wins, so NaN propagates).
template <typename T>
Tensor<T> max_pool2d_forward(const Tensor<T>& x, const Pool2dParams& p, std::vector<Index>& argmax) {
  const Shape ys = pool2d_output_shape(x.shape(), p);
  auto y = Tensor<T>::uninitialized(ys);
  argmax.resize(static_cast<std::size_t>(y.numel()));
  const Index planes = ys[0] * ys[1], h = x.dim(2), w = x.dim(3), oh = ys[2], ow = ys[3];
  // Locals, not p's fields: stores through the outputs could alias them.
  const Index kh = p.kernel_h, kw = p.kernel_w, sh = p.stride_h, sw = p.stride_w, ph = p.pad_h, pw = p.pad_w;
  const T* xd = x.data();
  T* yd = y.data();
  Index* ad = argmax.data();
  // In-plane indices fit in 32 bits for planes of under 2^31 pixels: the vector lanes then
  // blend values and indices of one width.
  CONVKIT_CHECK(h * w < (Index{1} << 31), ValueError,
                "max_pool2d: expected planes of fewer than 2^31 pixels, got " << h << "x" << w);
  // Not a structured binding: C++17 lambdas cannot capture one (clang 14 rejects it).
  const std::pair<Index, Index> interior = detail::pool_interior_columns(w, ow, kw, sw, pw);
  const Index lo = interior.first, hi = interior.second;
  convkit::detail::parallel_for(planes, static_cast<double>(x.numel()), [&](Index pl) {
    const T* plane = xd + pl * h * w;
    const Index offset = pl * h * w;
    for (Index oy = 0; oy < oh; ++oy) {
      const Index ys0 = oy * sh - ph, y0 = std::max<Index>(ys0, 0), y1 = std::min(ys0 + kh, h);
      T* yrow = yd + (pl * oh + oy) * ow;
      Index* arow = ad + (pl * oh + oy) * ow;
      const auto one = [&](Index ox) {  // any window, clipped to the input; no branch on the data
        const Index x0 = std::max<Index>(ox * sw - pw, 0), x1 = std::min(ox * sw - pw + kw, w);
        T m = plane[y0 * w + x0];
        Index best = y0 * w + x0;
        for (Index r = y0; r < y1; ++r)
          for (Index c = x0; c < x1; ++c) {
            const T v = plane[r * w + c];
            const bool take = detail::max_takes(v, m);
            best = take ? r * w + c : best;
            m = take ? v : m;
          }
        yrow[ox] = m, arow[ox] = offset + best;
      };
      const bool interior_done = detail::max_pool_row_vectorised(plane, w, y0, y1, kw, sw, pw, lo, hi, yrow, arow, offset);
      for (Index ox = 0; ox < lo; ++ox) one(ox);
      for (Index ox = interior_done ? hi : lo; ox < ow; ++ox) one(ox);
    }
  });
  return y;
}

/// dX (input_shape) with dX[argmax[i]] += dY[i].
template <typename T>
Tensor<T> max_pool2d_backward(const Tensor<T>& grad_output, const std::vector<Index>& argmax,
                              const Shape& input_shape) {
  CONVKIT_CHECK(static_cast<Index>(argmax.size()) == grad_output.numel(), ShapeError,
                "max_pool2d_backward: expected grad_output of " << argmax.size()
                                                                << " elements (the forward output), got "
                                                                << grad_output.shape());
  Tensor<T> grad_input(input_shape);
  T* gx = grad_input.data();
  const T* gy = grad_output.data();
  // Every output's maximum lies in its own (n, c) plane, so threads taking whole planes
  // never add to the same input element.
  const Index planes = input_shape[0] * input_shape[1], out_plane = grad_output.numel() / std::max<Index>(1, planes);
  convkit::detail::parallel_for(planes, static_cast<double>(grad_output.numel() + grad_input.numel()), [&](Index pl) {
    for (Index i = pl * out_plane; i < (pl + 1) * out_plane; ++i) gx[argmax[static_cast<std::size_t>(i)]] += gy[i];
  });
  return grad_input;
}

/// y = average pooling of x (divisor rule at the top of this file).
template <typename T>
Tensor<T> avg_pool2d_forward(const Tensor<T>& x, const Pool2dParams& p) {
  const Shape ys = pool2d_output_shape(x.shape(), p);
  auto y = Tensor<T>::uninitialized(ys);
  const Index in_plane = x.dim(2) * x.dim(3), out_plane = ys[2] * ys[3], w = x.dim(3);
  const T* xd = x.data();
  T* yd = y.data();
  detail::for_each_window(x.shape(), ys, p,
                          [&](Index pl, Index o, Index y0, Index y1, Index x0, Index x1, Index divisor) {
                            const T* plane = xd + pl * in_plane;
                            T s = T(0);
                            for (Index r = y0; r < y1; ++r)
                              for (Index c = x0; c < x1; ++c) s += plane[r * w + c];
                            yd[pl * out_plane + o] = s / static_cast<T>(divisor);
                          });
  return y;
}

/// dX: each dY[i] / divisor added to every input pixel of window i.
template <typename T>
Tensor<T> avg_pool2d_backward(const Tensor<T>& grad_output, const Shape& input_shape,
                              const Pool2dParams& p) {
  const Shape ys = pool2d_output_shape(input_shape, p);
  CONVKIT_CHECK(grad_output.shape() == ys, ShapeError,
                "avg_pool2d_backward: expected grad_output " << ys << ", got " << grad_output.shape());
  Tensor<T> grad_input(input_shape);
  const Index in_plane = input_shape[2] * input_shape[3], out_plane = ys[2] * ys[3], w = input_shape[3];
  T* gx = grad_input.data();
  const T* gy = grad_output.data();
  detail::for_each_window(input_shape, ys, p,
                          [&](Index pl, Index o, Index y0, Index y1, Index x0, Index x1, Index divisor) {
                            T* plane = gx + pl * in_plane;
                            const T g = gy[pl * out_plane + o] / static_cast<T>(divisor);
                            for (Index r = y0; r < y1; ++r)
                              for (Index c = x0; c < x1; ++c) plane[r * w + c] += g;
                          });
  return grad_input;
}

/// y (N, C, 1, 1) = mean of each (n, c) plane of x (N, C, H, W).
template <typename T>
Tensor<T> global_avg_pool2d_forward(const Tensor<T>& x) {
  CONVKIT_CHECK(x.rank() == 4 && x.dim(2) * x.dim(3) > 0, ShapeError,
                "global_avg_pool2d: expected input (N, C, H, W) with H, W >= 1, got " << x.shape());
  auto y = Tensor<T>::uninitialized(Shape{x.dim(0), x.dim(1), 1, 1});
  const Index plane = x.dim(2) * x.dim(3);
  for (Index i = 0; i < y.numel(); ++i) {
    T s = T(0);
    for (Index j = 0; j < plane; ++j) s += x[i * plane + j];
    y[i] = s / static_cast<T>(plane);
  }
  return y;
}

/// dX[n, c, :, :] = dY[n, c] / (H·W).
template <typename T>
Tensor<T> global_avg_pool2d_backward(const Tensor<T>& grad_output, const Shape& input_shape) {
  Tensor<T> grad_input(input_shape);
  const Index plane = input_shape[2] * input_shape[3];
  for (Index i = 0; i < grad_output.numel(); ++i) {
    const T g = grad_output[i] / static_cast<T>(plane);
    std::fill(grad_input.data() + i * plane, grad_input.data() + (i + 1) * plane, g);
  }
  return grad_input;
}

/// Window [start, end) of output position i of `out` along an input axis of length `in`, as
/// PyTorch's adaptive pooling: start = ⌊i·in/out⌋, end = ⌈(i + 1)·in/out⌉.
inline std::pair<Index, Index> adaptive_window(Index i, Index in, Index out) {
  return {(i * in) / out, ((i + 1) * in + out - 1) / out};
}

/// Output shape (N, C, OH, OW) of adaptive average pooling of x.
/// @throws ValueError for an output size < 1; ShapeError unless x is (N, C, H, W) with H, W >= 1.
inline Shape adaptive_avg_pool2d_output_shape(const Shape& x, Index oh, Index ow) {
  CONVKIT_CHECK(oh >= 1 && ow >= 1, ValueError,
                "adaptive_avg_pool2d: expected an output size >= 1, got " << oh << "x" << ow);
  CONVKIT_CHECK(x.rank() == 4 && x[2] >= 1 && x[3] >= 1, ShapeError,
                "adaptive_avg_pool2d: expected input (N, C, H, W) with H, W >= 1, got " << x);
  return Shape{x[0], x[1], oh, ow};
}

/// y (N, C, OH, OW): output (i, j) is the mean of x over rows adaptive_window(i, H, OH) and
/// columns adaptive_window(j, W, OW). Windows overlap when the sizes do not divide.
template <typename T>
Tensor<T> adaptive_avg_pool2d_forward(const Tensor<T>& x, Index oh, Index ow) {
  const Shape ys = adaptive_avg_pool2d_output_shape(x.shape(), oh, ow);
  auto y = Tensor<T>::uninitialized(ys);
  const Index planes = ys[0] * ys[1], h = x.dim(2), w = x.dim(3);
  for (Index pl = 0; pl < planes; ++pl) {
    const T* plane = x.data() + pl * h * w;
    for (Index oy = 0; oy < oh; ++oy) {
      const auto [y0, y1] = adaptive_window(oy, h, oh);
      for (Index ox = 0; ox < ow; ++ox) {
        const auto [x0, x1] = adaptive_window(ox, w, ow);
        T s = T(0);
        for (Index r = y0; r < y1; ++r)
          for (Index c = x0; c < x1; ++c) s += plane[r * w + c];
        y[(pl * oh + oy) * ow + ox] = s / static_cast<T>((y1 - y0) * (x1 - x0));
      }
    }
  }
  return y;
}

/// dX: each dY(i, j) divided by its window's size and added to every pixel of the window.
template <typename T>
Tensor<T> adaptive_avg_pool2d_backward(const Tensor<T>& grad_output, const Shape& input_shape) {
  CONVKIT_CHECK(grad_output.rank() == 4 && input_shape.rank() == 4 && grad_output.dim(0) == input_shape[0] &&
                    grad_output.dim(1) == input_shape[1],
                ShapeError,
                "adaptive_avg_pool2d_backward: expected grad_output (" << input_shape[0] << ", " << input_shape[1]
                                                                       << ", OH, OW), got " << grad_output.shape());
  Tensor<T> grad_input(input_shape);
  const Index planes = input_shape[0] * input_shape[1], h = input_shape[2], w = input_shape[3];
  const Index oh = grad_output.dim(2), ow = grad_output.dim(3);
  for (Index pl = 0; pl < planes; ++pl) {
    T* plane = grad_input.data() + pl * h * w;
    for (Index oy = 0; oy < oh; ++oy) {
      const auto [y0, y1] = adaptive_window(oy, h, oh);
      for (Index ox = 0; ox < ow; ++ox) {
        const auto [x0, x1] = adaptive_window(ox, w, ow);
        const T g = grad_output[(pl * oh + oy) * ow + ox] / static_cast<T>((y1 - y0) * (x1 - x0));
        for (Index r = y0; r < y1; ++r)
          for (Index c = x0; c < x1; ++c) plane[r * w + c] += g;
      }
    }
  }
  return grad_input;
}

}  // namespace convkit::ops
