// tests/support/reference_ops.h — naive reference ops, the oracles of the op-level tests.
//
// Everything here is written as plain loops straight from the definitions, independently of
// convkit/ops/ (only Tensor, Shape and the parameter structs are shared):
//
//   conv2d_forward          the direct 7-loop convolution over n, oc, oh, ow, c, kh, kw:
//                             y[n, o, oy, ox] = b[o] + Σ_{c, i, j} W[o, c, i, j] ·
//                               x[n, g·Cg + c, oy·sh − ph + i·dh, ox·sw − pw + j·dw]
//                           (g = o / OCg, out-of-range input positions read as zero)
//   conv2d_backward_data    the col2im oracle: per sample and group, col = W_gᵀ · dY_g of shape
//                           (Cg·KH·KW, OH·OW), then col2im scatters every column entry back to
//                           the input position it was read from: dX = col2im(Wᵀ · dY)
//   conv2d_backward_weight  dW[o, c, i, j] = Σ_{n, oy, ox} dY[n, o, oy, ox] · x[n, g·Cg + c, …],
//                           db[o] = Σ dY[n, o, ·, ·]; both returned fresh (not accumulated)
//   pooling                 max / average over explicit KH×KW windows of the padded plane,
//                           PyTorch's rules: in ceil mode the last window is dropped when it
//                           would start in the bottom/right padding; the average divisor counts
//                           the window positions inside [−p, H + p) when count_include_pad,
//                           else the positions inside [0, H).
//
// It also holds the tests' data generators and the relative comparison all_close.
//
// Sums are accumulated in double (long double would be slower and buys nothing at the
// tolerances the tests use), so the float oracle is more accurate than the op under test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <utility>
#include <vector>

#include <convkit/core/rng.h>
#include <convkit/core/shape.h>
#include <convkit/core/tensor.h>
#include <convkit/ops/conv2d.h>
#include <convkit/ops/pool2d.h>

namespace convkit::testing::ref {

// ---------------------------------------------------------------------------------------------
// Convolution

/// Output length of a convolution along one axis, from the definition: the number of window
/// starts 0, s, 2s, … whose dilated window fits inside the padded length.
inline Index conv_out_size(Index in, Index kernel, Index stride, Index pad, Index dilation) {
  const Index padded = in + 2 * pad, span = dilation * (kernel - 1) + 1;
  Index count = 0;
  for (Index start = 0; start + span <= padded; start += stride) ++count;
  return count;
}

/// The sizes of one reference convolution, read from x (N, C, H, W) and w (OC, C/g, KH, KW).
struct ConvDims {
  Index n, c, h, w, oc, cg, ocg, kh, kw, oh, ow;

  ConvDims(const Shape& x, const Shape& wt, const ops::Conv2dParams& p)
      : n(x[0]), c(x[1]), h(x[2]), w(x[3]), oc(wt[0]), cg(wt[1]), ocg(wt[0] / p.groups), kh(wt[2]),
        kw(wt[3]), oh(conv_out_size(x[2], wt[2], p.stride_h, p.pad_h, p.dilation_h)),
        ow(conv_out_size(x[3], wt[3], p.stride_w, p.pad_w, p.dilation_w)) {}
};

namespace detail {
/// Keeps a parameter out of template deduction, so a bare nullptr bias is accepted.
template <typename T>
struct NonDeduced {
  using type = T;
};
}  // namespace detail

/// y (N, OC, OH, OW) by the direct 7-loop definition; bias may be null.
template <typename T>
Tensor<T> conv2d_forward(const Tensor<T>& x, const Tensor<T>& weight,
                         const typename detail::NonDeduced<Tensor<T>>::type* bias,
                         const ops::Conv2dParams& p) {
  const ConvDims d(x.shape(), weight.shape(), p);
  Tensor<T> y(Shape{d.n, d.oc, d.oh, d.ow});
  const T* xd = x.data();
  const T* wd = weight.data();
  T* yd = y.data();
  for (Index n = 0; n < d.n; ++n)
    for (Index o = 0; o < d.oc; ++o) {
      const Index first_c = (o / d.ocg) * d.cg;  // the group's first input channel
      for (Index oy = 0; oy < d.oh; ++oy)
        for (Index ox = 0; ox < d.ow; ++ox) {
          double acc = bias != nullptr ? static_cast<double>((*bias)[o]) : 0.0;
          for (Index c = 0; c < d.cg; ++c)
            for (Index i = 0; i < d.kh; ++i) {
              const Index iy = oy * p.stride_h - p.pad_h + i * p.dilation_h;
              if (iy < 0 || iy >= d.h) continue;
              for (Index j = 0; j < d.kw; ++j) {
                const Index ix = ox * p.stride_w - p.pad_w + j * p.dilation_w;
                if (ix < 0 || ix >= d.w) continue;
                const double xv = xd[((n * d.c + first_c + c) * d.h + iy) * d.w + ix];
                const double wv = wd[((o * d.cg + c) * d.kh + i) * d.kw + j];
                acc += xv * wv;
              }
            }
          yd[((n * d.oc + o) * d.oh + oy) * d.ow + ox] = static_cast<T>(acc);
        }
    }
  return y;
}

/// dX (input_shape) = col2im(Wᵀ · dY), per sample and group, with plain loops.
template <typename T>
Tensor<T> conv2d_backward_data(const Tensor<T>& grad_output, const Tensor<T>& weight,
                               const Shape& input_shape, const ops::Conv2dParams& p) {
  const ConvDims d(input_shape, weight.shape(), p);
  const Index rows = d.cg * d.kh * d.kw, cols = d.oh * d.ow;
  std::vector<double> col(static_cast<std::size_t>(rows * cols));
  std::vector<double> dx(static_cast<std::size_t>(input_shape.numel()), 0.0);
  const T* dy = grad_output.data();
  const T* wd = weight.data();
  for (Index n = 0; n < d.n; ++n)
    for (Index g = 0; g < p.groups; ++g) {
      // col (Cg·KH·KW, OH·OW) = W_gᵀ (Cg·KH·KW, OCg) · dY_g (OCg, OH·OW), row by row
      // (the o loop outside the q loop keeps both dY and col reads contiguous).
      std::fill(col.begin(), col.end(), 0.0);
      for (Index r = 0; r < rows; ++r) {
        double* col_row = col.data() + r * cols;
        for (Index o = 0; o < d.ocg; ++o) {
          const Index oc = g * d.ocg + o;
          const double wv = static_cast<double>(wd[oc * rows + r]);
          const T* dy_row = dy + (n * d.oc + oc) * cols;
          for (Index q = 0; q < cols; ++q) col_row[q] += wv * static_cast<double>(dy_row[q]);
        }
      }
      // col2im: row (c, i, j), column (oy, ox) came from input (c, oy·sh − ph + i·dh, …).
      for (Index c = 0; c < d.cg; ++c)
        for (Index i = 0; i < d.kh; ++i)
          for (Index j = 0; j < d.kw; ++j) {
            const Index r = (c * d.kh + i) * d.kw + j;
            for (Index oy = 0; oy < d.oh; ++oy) {
              const Index iy = oy * p.stride_h - p.pad_h + i * p.dilation_h;
              if (iy < 0 || iy >= d.h) continue;
              for (Index ox = 0; ox < d.ow; ++ox) {
                const Index ix = ox * p.stride_w - p.pad_w + j * p.dilation_w;
                if (ix < 0 || ix >= d.w) continue;
                dx[static_cast<std::size_t>(((n * d.c + g * d.cg + c) * d.h + iy) * d.w + ix)] +=
                    col[static_cast<std::size_t>(r * cols + oy * d.ow + ox)];
              }
            }
          }
    }
  Tensor<T> out(input_shape);
  for (Index k = 0; k < out.numel(); ++k) out[k] = static_cast<T>(dx[static_cast<std::size_t>(k)]);
  return out;
}

/// The weight (OC, C/g, KH, KW) and bias (OC) gradients of one backward, returned fresh.
template <typename T>
struct ConvParamGrads {
  Tensor<T> weight;
  Tensor<T> bias;
};

template <typename T>
ConvParamGrads<T> conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& grad_output,
                                         const Shape& weight_shape, const ops::Conv2dParams& p) {
  const ConvDims d(x.shape(), weight_shape, p);
  ConvParamGrads<T> out{Tensor<T>(weight_shape), Tensor<T>(Shape{d.oc})};
  const T* xd = x.data();
  const T* dy = grad_output.data();
  for (Index o = 0; o < d.oc; ++o) {
    const Index first_c = (o / d.ocg) * d.cg;
    for (Index c = 0; c < d.cg; ++c)
      for (Index i = 0; i < d.kh; ++i)
        for (Index j = 0; j < d.kw; ++j) {
          double acc = 0.0;
          for (Index n = 0; n < d.n; ++n)
            for (Index oy = 0; oy < d.oh; ++oy) {
              const Index iy = oy * p.stride_h - p.pad_h + i * p.dilation_h;
              if (iy < 0 || iy >= d.h) continue;
              for (Index ox = 0; ox < d.ow; ++ox) {
                const Index ix = ox * p.stride_w - p.pad_w + j * p.dilation_w;
                if (ix < 0 || ix >= d.w) continue;
                acc += static_cast<double>(dy[((n * d.oc + o) * d.oh + oy) * d.ow + ox]) *
                       static_cast<double>(xd[((n * d.c + first_c + c) * d.h + iy) * d.w + ix]);
              }
            }
          out.weight[((o * d.cg + c) * d.kh + i) * d.kw + j] = static_cast<T>(acc);
        }
    double acc = 0.0;
    for (Index n = 0; n < d.n; ++n)
      for (Index q = 0; q < d.oh * d.ow; ++q)
        acc += static_cast<double>(dy[(n * d.oc + o) * d.oh * d.ow + q]);
    out.bias[o] = static_cast<T>(acc);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pooling

/// Output length of a pooling along one axis: window starts −p, −p + s, …; floor mode keeps
/// the starts whose whole window lies in the padded input [−p, H + p). Ceil mode adds the
/// next, partial window when the whole ones leave padded positions uncovered at the end,
/// unless that window would start in the bottom padding (at H or later).
inline Index pool_out_size(Index in, Index kernel, Index stride, Index pad, bool ceil_mode) {
  Index count = 0, last_whole = 0;
  for (Index start = -pad; start + kernel <= in + pad; start += stride) {
    ++count;
    last_whole = start;
  }
  const Index next = last_whole + stride;
  if (ceil_mode && count > 0 && last_whole + kernel < in + pad && next < in) ++count;
  return count;
}

inline Shape pool_out_shape(const Shape& x, const ops::Pool2dParams& p) {
  return Shape{x[0], x[1], pool_out_size(x[2], p.kernel_h, p.stride_h, p.pad_h, p.ceil_mode),
               pool_out_size(x[3], p.kernel_w, p.stride_w, p.pad_w, p.ceil_mode)};
}

namespace detail {

/// Calls fn(plane, out_index, window_positions) for every output pixel, where
/// window_positions lists the flat in-plane indices of the real pixels in the window in
/// raster order and the divisor is the average-pooling divisor of the window.
template <typename Fn>
void visit_windows(const Shape& x, const ops::Pool2dParams& p, Fn&& fn) {
  const Shape ys = pool_out_shape(x, p);
  const Index h = x[2], w = x[3], oh = ys[2], ow = ys[3];
  std::vector<Index> real;
  for (Index plane = 0; plane < x[0] * x[1]; ++plane)
    for (Index oy = 0; oy < oh; ++oy)
      for (Index ox = 0; ox < ow; ++ox) {
        real.clear();
        Index in_padded = 0;
        for (Index i = 0; i < p.kernel_h; ++i)
          for (Index j = 0; j < p.kernel_w; ++j) {
            const Index r = oy * p.stride_h - p.pad_h + i, c = ox * p.stride_w - p.pad_w + j;
            if (r >= -p.pad_h && r < h + p.pad_h && c >= -p.pad_w && c < w + p.pad_w) ++in_padded;
            if (r >= 0 && r < h && c >= 0 && c < w) real.push_back(r * w + c);
          }
        const Index divisor = p.count_include_pad ? in_padded : static_cast<Index>(real.size());
        fn(plane, oy * ow + ox, real, divisor);
      }
}

}  // namespace detail

/// Max pooling; `argmax` receives the flat input index of each output's first maximum.
template <typename T>
Tensor<T> max_pool2d_forward(const Tensor<T>& x, const ops::Pool2dParams& p,
                             std::vector<Index>* argmax = nullptr) {
  Tensor<T> y(pool_out_shape(x.shape(), p));
  if (argmax != nullptr) argmax->assign(static_cast<std::size_t>(y.numel()), -1);
  const Index in_plane = x.shape()[2] * x.shape()[3], out_plane = y.shape()[2] * y.shape()[3];
  detail::visit_windows(x.shape(), p, [&](Index plane, Index o, const std::vector<Index>& real, Index) {
    T best = -std::numeric_limits<T>::infinity();
    Index best_at = -1;
    for (Index k : real) {
      const T v = x[plane * in_plane + k];
      if (best_at < 0 || v > best) {
        best = v;
        best_at = plane * in_plane + k;
      }
    }
    y[plane * out_plane + o] = best;
    if (argmax != nullptr) (*argmax)[static_cast<std::size_t>(plane * out_plane + o)] = best_at;
  });
  return y;
}

/// dX of max pooling: each dY goes to its window's first maximum of x.
template <typename T>
Tensor<T> max_pool2d_backward(const Tensor<T>& x, const Tensor<T>& grad_output,
                              const ops::Pool2dParams& p) {
  std::vector<Index> argmax;
  max_pool2d_forward(x, p, &argmax);
  Tensor<T> dx(x.shape());
  for (Index i = 0; i < grad_output.numel(); ++i)
    dx[argmax[static_cast<std::size_t>(i)]] += grad_output[i];
  return dx;
}

template <typename T>
Tensor<T> avg_pool2d_forward(const Tensor<T>& x, const ops::Pool2dParams& p) {
  Tensor<T> y(pool_out_shape(x.shape(), p));
  const Index in_plane = x.shape()[2] * x.shape()[3], out_plane = y.shape()[2] * y.shape()[3];
  detail::visit_windows(x.shape(), p,
                        [&](Index plane, Index o, const std::vector<Index>& real, Index divisor) {
                          double s = 0.0;
                          for (Index k : real) s += static_cast<double>(x[plane * in_plane + k]);
                          y[plane * out_plane + o] = static_cast<T>(s / static_cast<double>(divisor));
                        });
  return y;
}

template <typename T>
Tensor<T> avg_pool2d_backward(const Tensor<T>& grad_output, const Shape& input_shape,
                              const ops::Pool2dParams& p) {
  std::vector<double> dx(static_cast<std::size_t>(input_shape.numel()), 0.0);
  const Index in_plane = input_shape[2] * input_shape[3];
  const Shape ys = pool_out_shape(input_shape, p);
  const Index out_plane = ys[2] * ys[3];
  detail::visit_windows(input_shape, p,
                        [&](Index plane, Index o, const std::vector<Index>& real, Index divisor) {
                          const double g = static_cast<double>(grad_output[plane * out_plane + o]) /
                                           static_cast<double>(divisor);
                          for (Index k : real) dx[static_cast<std::size_t>(plane * in_plane + k)] += g;
                        });
  Tensor<T> out(input_shape);
  for (Index k = 0; k < out.numel(); ++k) out[k] = static_cast<T>(dx[static_cast<std::size_t>(k)]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Test data and comparison

/// Elements uniform in [lo, hi), drawn in double and rounded to T, so float and double tests
/// of one seed see the same values.
template <typename T>
Tensor<T> uniform(const Shape& s, Rng& rng, double lo = -1.0, double hi = 1.0) {
  Tensor<T> t(s);
  for (T& v : t) v = static_cast<T>(rng.uniform(lo, hi));
  return t;
}

/// A copy of t with every element converted to U.
template <typename U, typename T>
Tensor<U> cast(const Tensor<T>& t) {
  Tensor<U> out(t.shape());
  for (Index i = 0; i < t.numel(); ++i) out[i] = static_cast<U>(t[i]);
  return out;
}

/// Distinct values spaced `gap` apart in random order (max pooling has no ties).
template <typename T>
Tensor<T> distinct(const Shape& s, Rng& rng, double gap = 1.0 / 64) {
  Tensor<T> t(s);
  const Index n = t.numel();
  for (Index i = 0; i < n; ++i) t[i] = static_cast<T>((static_cast<double>(i) - n / 2.0) * gap);
  for (Index i = n - 1; i > 0; --i)
    std::swap(t[i], t[static_cast<Index>(rng.below(static_cast<std::uint64_t>(i + 1)))]);
  return t;
}

/// Every element within rel_tol · max(1, |expected|) of expected, and the same shape.
template <typename T>
::testing::AssertionResult all_close(const Tensor<T>& actual, const Tensor<T>& expected,
                                     double rel_tol) {
  if (actual.shape() != expected.shape())
    return ::testing::AssertionFailure() << "shape " << actual.shape() << ", expected "
                                         << expected.shape();
  Index bad = 0, worst_at = -1;
  double worst = 0.0;
  for (Index i = 0; i < actual.numel(); ++i) {
    const double a = actual[i], e = expected[i];
    const double diff = std::abs(a - e), allowed = rel_tol * std::max(1.0, std::abs(e));
    if (!(diff <= allowed)) {  // also catches NaN
      ++bad;
      const double excess = diff - allowed;
      if (worst_at < 0 || !(excess <= worst)) {
        worst = excess;
        worst_at = i;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os.precision(17);
  os << bad << " of " << actual.numel() << " elements differ by more than " << rel_tol
     << " relative; worst at flat index " << worst_at << ": got " << actual[worst_at]
     << ", expected " << expected[worst_at];
  return ::testing::AssertionFailure() << os.str();
}

/// <a, b> in long double.
template <typename T>
double dot(const Tensor<T>& a, const Tensor<T>& b) {
  long double s = 0;
  for (Index i = 0; i < a.numel(); ++i) s += static_cast<long double>(a[i]) * b[i];
  return static_cast<double>(s);
}

}  // namespace convkit::testing::ref
