// convkit/ops/pool2d.h — max and average pooling over each (n, c) plane, forward and backward.
//
// Shapes: x (N, C, H, W) -> y (N, C, OH, OW), with
//   OH = ⌊(H + 2·ph − KH) / sh⌋ + 1, or ⌈·⌉ + 1 in ceil mode, where a last window that would
//   start in the bottom padding is dropped (PyTorch's and Caffe's rule).
// Padding may be at most half the kernel, so every window holds at least one input pixel.
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
#include <utility>
#include <vector>

#include "convkit/core/error.h"
#include "convkit/core/parallel.h"
#include "convkit/core/tensor.h"

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

/// y = max pooling of x; argmax[i] receives the flat index into x of output i's maximum
/// (the first one on ties; NaN wins, so NaN propagates).
template <typename T>
Tensor<T> max_pool2d_forward(const Tensor<T>& x, const Pool2dParams& p, std::vector<Index>& argmax) {
  const Shape ys = pool2d_output_shape(x.shape(), p);
  auto y = Tensor<T>::uninitialized(ys);
  argmax.resize(static_cast<std::size_t>(y.numel()));
  const Index planes = ys[0] * ys[1], h = x.dim(2), w = x.dim(3), oh = ys[2], ow = ys[3];
  // Locals, not p's fields: stores through the index rows could alias them.
  const Index kh = p.kernel_h, kw = p.kernel_w, sh = p.stride_h, sw = p.stride_w, ph = p.pad_h, pw = p.pad_w;
  const T* xd = x.data();
  // Plane offsets fit in 32 bits for planes of under 2^31 pixels: the inner loop then blends
  // values and indices of one width, which is what lets it vectorise.
  CONVKIT_CHECK(h * w < (Index{1} << 31), ValueError,
                "max_pool2d: expected planes of fewer than 2^31 pixels, got " << h << "x" << w);
  convkit::detail::parallel_for(planes, static_cast<double>(x.numel()), [&](Index pl) {
    const T* plane = xd + pl * h * w;
    std::vector<std::int32_t> best(static_cast<std::size_t>(ow));
    std::int32_t* bi = best.data();
    // One output row at a time, the window offsets outside and the output columns inside,
    // so the inner loop is branch-free and runs over contiguous outputs. Each output still
    // sees its window in row-major order: the first maximum wins ties, and the first NaN
    // wins (NaN never compares greater, so it is taken only while the running value is a
    // number).
    for (Index oy = 0; oy < oh; ++oy) {
      T* yrow = y.data() + (pl * oh + oy) * ow;
      const Index ys0 = oy * sh - ph;
      const Index y0 = std::max<Index>(ys0, 0), y1 = std::min(ys0 + kh, h);
      for (Index ox = 0; ox < ow; ++ox) {  // the window's first pixel, in case nothing beats −∞
        yrow[ox] = -std::numeric_limits<T>::infinity();
        bi[ox] = static_cast<std::int32_t>(y0 * w + std::max<Index>(ox * sw - pw, 0));
      }
      for (Index r = y0; r < y1; ++r)
        for (Index c = 0; c < kw; ++c) {
          // Output columns whose window column c lies inside the row: 0 <= ox·sw − pw + c < w.
          const Index lo = std::min(detail::ceil_div_nonneg(pw - c, sw), ow);
          const Index hi = std::max(lo, std::min(detail::ceil_div_nonneg(w + pw - c, sw), ow));
          // The stride as a constant for the common 1 and 2, so the compiler sees the access pattern.
          const auto scan = [&](auto step) {
            const Index first_index = r * w - pw + c + lo * step;  // input pixel of output lo
            const T* src = plane + first_index;
            const auto first = static_cast<std::int32_t>(first_index);
            for (Index i = 0; i < hi - lo; ++i) {
              const T v = src[i * step], m = yrow[lo + i];
              const bool take = v > m || (v != v && m == m);
              bi[lo + i] = take ? first + static_cast<std::int32_t>(i * step) : bi[lo + i];
              yrow[lo + i] = take ? v : m;
            }
          };
          if (sw == 1)
            scan(std::integral_constant<Index, 1>{});
          else if (sw == 2)
            scan(std::integral_constant<Index, 2>{});
          else
            scan(sw);
        }
      Index* arow = argmax.data() + (pl * oh + oy) * ow;
      for (Index ox = 0; ox < ow; ++ox) arow[ox] = pl * h * w + bi[ox];
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
