// MaxPool2d, AvgPool2d and GlobalAvgPool2d: values by hand and against direct loops (padding,
// ceil mode, count_include_pad), gradient checks, shapes, describe() and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <convkit/layers/avg_pool2d.h>
#include <convkit/layers/global_avg_pool2d.h>
#include <convkit/layers/max_pool2d.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::AvgPool2d;
using convkit::GlobalAvgPool2d;
using convkit::Index;
using convkit::MaxPool2d;
using convkit::Pool2dOptions;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_distinct;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

template <typename T>
Tensor<T> from_values(const Shape& s, const std::vector<double>& v) {
  Tensor<T> t(s);
  EXPECT_EQ(static_cast<Index>(v.size()), t.numel());
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(v[static_cast<std::size_t>(i)]);
  return t;
}

template <typename T>
void expect_values(const Tensor<T>& t, const Shape& s, const std::vector<double>& v, double tol) {
  ASSERT_EQ(t.shape(), s);
  for (Index i = 0; i < t.numel(); ++i)
    EXPECT_NEAR(static_cast<double>(t[i]), v[static_cast<std::size_t>(i)], tol) << "element " << i;
}

// The 4x4 plane used by the hand-computed cases.
const std::vector<double> kPlane = {1, 2, 5, 3,     //
                                    4, 0, 1, 7,     //
                                    -1, -2, 8, 6,   //
                                    -3, -4, 2, 9};  //

// ---------------------------------------------------------------------------------------------
// Direct-loop references, written from PyTorch's documented rules.

struct Geometry {
  Index kh, kw, sh, sw, ph, pw;
  bool ceil;
};

Index out_size(Index in, Index k, Index s, Index p, bool ceil) {
  const Index num = in + 2 * p - k;
  Index o = (ceil ? static_cast<Index>(std::ceil(static_cast<double>(num) / static_cast<double>(s)))
                  : num / s) + 1;
  if (ceil && (o - 1) * s >= in + p) o -= 1;  // the last window must start inside input or left padding
  return o;
}

Tensor<double> reference_pool(const Tensor<double>& x, const Geometry& g, bool max, bool include_pad) {
  const Index n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  const Index oh = out_size(h, g.kh, g.sh, g.ph, g.ceil), ow = out_size(w, g.kw, g.sw, g.pw, g.ceil);
  Tensor<double> y(Shape{n, c, oh, ow});
  for (Index i = 0; i < n; ++i)
    for (Index ch = 0; ch < c; ++ch)
      for (Index oy = 0; oy < oh; ++oy)
        for (Index ox = 0; ox < ow; ++ox) {
          const Index r0 = oy * g.sh - g.ph, c0 = ox * g.sw - g.pw;
          double best = -std::numeric_limits<double>::infinity(), sum = 0;
          Index real = 0, padded = 0;
          for (Index r = r0; r < r0 + g.kh; ++r)
            for (Index cc = c0; cc < c0 + g.kw; ++cc) {
              if (r < h + g.ph && cc < w + g.pw) ++padded;  // inside the padded input
              if (r < 0 || r >= h || cc < 0 || cc >= w) continue;
              ++real;
              best = std::max(best, x(i, ch, r, cc));
              sum += x(i, ch, r, cc);
            }
          y(i, ch, oy, ox) = max ? best : sum / static_cast<double>(include_pad ? padded : real);
        }
  return y;
}

Pool2dOptions options_of(const Geometry& g, bool include_pad = true) {
  return Pool2dOptions(g.kh, g.kw).stride(g.sh, g.sw).padding(g.ph, g.pw).ceil_mode(g.ceil).count_include_pad(include_pad);
}

const Geometry kGeometries[] = {
    {2, 2, 2, 2, 0, 0, false}, {3, 3, 2, 2, 1, 1, false}, {3, 3, 2, 2, 0, 0, true}, {3, 3, 2, 2, 1, 1, true},
    {2, 2, 2, 2, 1, 1, true},  {3, 2, 1, 2, 1, 0, false}, {2, 3, 3, 2, 1, 1, true}, {3, 3, 1, 1, 1, 1, false},
    {1, 1, 2, 2, 0, 0, false}, {4, 4, 3, 3, 2, 2, true},
};

TEST(Pool2dReference, MaxAndAvgMatchDirectLoopsOverGeometriesAndSizes) {
  Rng rng = seeded_rng(1);
  for (const Geometry& g : kGeometries)
    for (Index h : {4, 5, 6, 7})
      for (Index w : {4, 5, 7}) {
        const Tensor<double> x = random_normal(Shape{2, 2, h, w}, rng);
        MaxPool2d<double> mp(options_of(g));
        AvgPool2d<double> ap_in(options_of(g, true)), ap_ex(options_of(g, false));
        const Tensor<double> ym = mp.forward(x), yi = ap_in.forward(x), ye = ap_ex.forward(x);
        const Tensor<double> rm = reference_pool(x, g, true, true), ri = reference_pool(x, g, false, true),
                             re = reference_pool(x, g, false, false);
        const std::string where = mp.describe() + " on " + x.shape().to_string();
        ASSERT_EQ(ym.shape(), rm.shape()) << where;
        ASSERT_EQ(yi.shape(), ri.shape()) << where;
        ASSERT_EQ(ye.shape(), re.shape()) << where;
        EXPECT_EQ(mp.output_shape(x.shape()), rm.shape()) << where;
        for (Index i = 0; i < rm.numel(); ++i) {
          ASSERT_EQ(ym[i], rm[i]) << where << " max " << i;
          ASSERT_NEAR(yi[i], ri[i], 1e-14) << where << " avg include_pad " << i;
          ASSERT_NEAR(ye[i], re[i], 1e-14) << where << " avg exclude_pad " << i;
        }
      }
}

// ---------------------------------------------------------------------------------------------
// MaxPool2d by hand

template <typename T>
class PoolTyped : public ::testing::Test {};
TYPED_TEST_SUITE(PoolTyped, convkit::testing::Scalars);

TYPED_TEST(PoolTyped, MaxPoolTwoByTwoForwardAndBackward) {
  using T = TypeParam;
  MaxPool2d<T> mp(2);
  const Tensor<T> y = mp.forward(from_values<T>(Shape{1, 1, 4, 4}, kPlane));
  expect_values(y, Shape{1, 1, 2, 2}, {4, 7, -1, 9}, 0);
  const Tensor<T> dx = mp.backward(from_values<T>(Shape{1, 1, 2, 2}, {1, 2, 3, 4}));
  expect_values(dx, Shape{1, 1, 4, 4}, {0, 0, 0, 0, 1, 0, 0, 2, 3, 0, 0, 0, 0, 0, 0, 4}, 0);
}

TYPED_TEST(PoolTyped, MaxPoolWithPaddingNeverPicksThePadding) {
  using T = TypeParam;
  MaxPool2d<T> mp(Pool2dOptions(3).stride(2).padding(1));
  const Tensor<T> y = mp.forward(from_values<T>(Shape{1, 1, 4, 4}, kPlane));
  expect_values(y, Shape{1, 1, 2, 2}, {4, 7, 4, 9}, 0);
  // The 4 at (1, 0) wins two windows: its gradient is the sum.
  const Tensor<T> dx = mp.backward(from_values<T>(Shape{1, 1, 2, 2}, {1, 2, 3, 4}));
  expect_values(dx, Shape{1, 1, 4, 4}, {0, 0, 0, 0, 1 + 3, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 4}, 0);
  // All-negative input: a zero from the padding must not be the maximum.
  MaxPool2d<T> neg(Pool2dOptions(2).stride(1).padding(1));
  const Tensor<T> yn = neg.forward(Tensor<T>(Shape{1, 1, 2, 2}, T(-5)));
  ASSERT_EQ(yn.shape(), (Shape{1, 1, 3, 3}));
  for (T v : yn) EXPECT_EQ(v, T(-5));
}

TYPED_TEST(PoolTyped, MaxPoolCeilModeKeepsPartialWindows) {
  using T = TypeParam;
  std::vector<double> v(25);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i);
  MaxPool2d<T> ceil(Pool2dOptions(2).ceil_mode(true)), floor(Pool2dOptions(2));
  expect_values(ceil.forward(from_values<T>(Shape{1, 1, 5, 5}, v)), Shape{1, 1, 3, 3},
                {6, 8, 9, 16, 18, 19, 21, 23, 24}, 0);
  expect_values(floor.forward(from_values<T>(Shape{1, 1, 5, 5}, v)), Shape{1, 1, 2, 2}, {6, 8, 16, 18}, 0);
}

// ---------------------------------------------------------------------------------------------
// AvgPool2d by hand

TYPED_TEST(PoolTyped, AvgPoolTwoByTwoForwardAndBackward) {
  using T = TypeParam;
  AvgPool2d<T> ap(2);
  expect_values(ap.forward(from_values<T>(Shape{1, 1, 4, 4}, kPlane)), Shape{1, 1, 2, 2}, {1.75, 4, -2.5, 6.25}, 1e-6);
  const Tensor<T> dx = ap.backward(from_values<T>(Shape{1, 1, 2, 2}, {4, 8, -4, 2}));
  expect_values(dx, Shape{1, 1, 4, 4}, {1, 1, 2, 2, 1, 1, 2, 2, -1, -1, 0.5, 0.5, -1, -1, 0.5, 0.5}, 0);
}

TYPED_TEST(PoolTyped, AvgPoolPaddingCountedOrNot) {
  using T = TypeParam;
  const Tensor<T> x = from_values<T>(Shape{1, 1, 2, 2}, {1, 2, 3, 4});
  AvgPool2d<T> inc(Pool2dOptions(2).stride(1).padding(1));
  AvgPool2d<T> exc(Pool2dOptions(2).stride(1).padding(1).count_include_pad(false));
  expect_values(inc.forward(x), Shape{1, 1, 3, 3}, {0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1}, 1e-6);
  expect_values(exc.forward(x), Shape{1, 1, 3, 3}, {1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4}, 1e-6);
  const Tensor<T> ones(Shape{1, 1, 3, 3}, T(1));
  // Every pixel lies in 4 windows: 4 · 1/4 with the padding counted;
  // 1/1 + 1/2 + 1/2 + 1/4 without.
  expect_values(inc.backward(ones), Shape{1, 1, 2, 2}, {1, 1, 1, 1}, 1e-6);
  expect_values(exc.backward(ones), Shape{1, 1, 2, 2}, {2.25, 2.25, 2.25, 2.25}, 1e-6);
}

TYPED_TEST(PoolTyped, AvgPoolCeilModeDivisors) {
  using T = TypeParam;
  // 3x3, k=2, s=2, ceil: the partial windows are divided by the pixels they cover (no padding).
  const Tensor<T> x = from_values<T>(Shape{1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  AvgPool2d<T> ap(Pool2dOptions(2).ceil_mode(true));
  expect_values(ap.forward(x), Shape{1, 1, 2, 2}, {3, 4.5, 7.5, 9}, 1e-6);
  // 4x4, k=3, s=2, p=1, ceil: the last window holds 1 real row and 1 row of padding; the
  // padding counts (divisor 2·2 = 4 in the corner) unless count_include_pad is off.
  const Tensor<T> x4 = from_values<T>(Shape{1, 1, 4, 4}, kPlane);
  AvgPool2d<T> inc(Pool2dOptions(3).stride(2).padding(1).ceil_mode(true));
  AvgPool2d<T> exc(Pool2dOptions(3).stride(2).padding(1).ceil_mode(true).count_include_pad(false));
  const Tensor<T> yi = inc.forward(x4), ye = exc.forward(x4);
  ASSERT_EQ(yi.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_NEAR(static_cast<double>(yi(0, 0, 0, 0)), (1 + 2 + 4 + 0) / 9.0, 1e-6);
  EXPECT_NEAR(static_cast<double>(ye(0, 0, 0, 0)), (1 + 2 + 4 + 0) / 4.0, 1e-6);
  EXPECT_NEAR(static_cast<double>(yi(0, 0, 2, 2)), 9 / 4.0, 1e-6);
  EXPECT_NEAR(static_cast<double>(ye(0, 0, 2, 2)), 9.0, 1e-6);
  EXPECT_NEAR(static_cast<double>(yi(0, 0, 0, 2)), (3 + 7) / 6.0, 1e-6);  // 3 rows x 2 columns
  EXPECT_NEAR(static_cast<double>(ye(0, 0, 0, 2)), (3 + 7) / 2.0, 1e-6);
}

// ---------------------------------------------------------------------------------------------
// GlobalAvgPool2d by hand

TYPED_TEST(PoolTyped, GlobalAvgPoolForwardAndBackward) {
  using T = TypeParam;
  GlobalAvgPool2d<T> gap;
  const Tensor<T> x = from_values<T>(Shape{2, 2, 2, 2}, {1, 2, 3, 4, -1, -1, -1, 5, 0, 0, 0, 8, 2, 2, 2, 2});
  expect_values(gap.forward(x), Shape{2, 2, 1, 1}, {2.5, 0.5, 2, 2}, 1e-6);
  expect_values(gap.backward(from_values<T>(Shape{2, 2, 1, 1}, {4, 8, -2, 0})), Shape{2, 2, 2, 2},
                {1, 1, 1, 1, 2, 2, 2, 2, -0.5, -0.5, -0.5, -0.5, 0, 0, 0, 0}, 0);
  EXPECT_EQ(gap.describe(), "GlobalAvgPool2d");
  EXPECT_EQ(gap.output_shape(Shape{8, 512, 7, 7}), (Shape{8, 512, 1, 1}));
  EXPECT_EQ(gap.output_shape(Shape{1, 3, 1, 5}), (Shape{1, 3, 1, 1}));
  EXPECT_TRUE(gap.parameters().empty());
}

TYPED_TEST(PoolTyped, FloatAndDoubleAgree) {
  using T = TypeParam;
  Rng rng = seeded_rng(7);
  const Tensor<double> xd = random_normal(Shape{2, 3, 7, 6}, rng);
  Tensor<T> xt(xd.shape());
  Tensor<double> xr(xd.shape());
  for (Index i = 0; i < xd.numel(); ++i) xt[i] = static_cast<T>(xd[i]), xr[i] = static_cast<double>(xt[i]);
  const Pool2dOptions o = Pool2dOptions(3).stride(2).padding(1).ceil_mode(true).count_include_pad(false);
  MaxPool2d<T> mt(o);
  MaxPool2d<double> md(o);
  AvgPool2d<T> at(o);
  AvgPool2d<double> ad(o);
  GlobalAvgPool2d<T> gt;
  GlobalAvgPool2d<double> gd;
  const Tensor<T> ym = mt.forward(xt), ya = at.forward(xt), yg = gt.forward(xt);
  const Tensor<double> rm = md.forward(xr), ra = ad.forward(xr), rg = gd.forward(xr);
  for (Index i = 0; i < rm.numel(); ++i) {
    EXPECT_EQ(static_cast<double>(ym[i]), rm[i]) << i;  // a maximum is exact
    EXPECT_NEAR(static_cast<double>(ya[i]), ra[i], 1e-6) << i;
  }
  for (Index i = 0; i < rg.numel(); ++i) EXPECT_NEAR(static_cast<double>(yg[i]), rg[i], 1e-6) << i;
}

// ---------------------------------------------------------------------------------------------
// Shapes and describe()

TYPED_TEST(PoolTyped, OutputShapes) {
  using T = TypeParam;
  EXPECT_EQ(MaxPool2d<T>(2).output_shape(Shape{8, 6, 28, 28}), (Shape{8, 6, 14, 14}));
  EXPECT_EQ(MaxPool2d<T>(Pool2dOptions(3).stride(2)).output_shape(Shape{1, 96, 55, 55}), (Shape{1, 96, 27, 27}));
  EXPECT_EQ(MaxPool2d<T>(Pool2dOptions(3).stride(2).padding(1)).output_shape(Shape{1, 64, 112, 112}),
            (Shape{1, 64, 56, 56}));
  // GoogLeNet: 3x3/2 with ceil mode on 112 -> 56 (floor would give 55).
  EXPECT_EQ(MaxPool2d<T>(Pool2dOptions(3).stride(2).ceil_mode(true)).output_shape(Shape{1, 64, 112, 112}),
            (Shape{1, 64, 56, 56}));
  EXPECT_EQ(MaxPool2d<T>(Pool2dOptions(3).stride(2)).output_shape(Shape{1, 64, 112, 112}), (Shape{1, 64, 55, 55}));
  // Ceil mode drops a last window that would start in the bottom/right padding:
  // 5 + 2 − 2 = 5 → ⌈5/2⌉ + 1 = 4, but window 3 starts at 6 − 1 = 5 = H, so 3.
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(2).padding(1).ceil_mode(true)).output_shape(Shape{1, 1, 5, 5}),
            (Shape{1, 1, 3, 3}));
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(2, 3).stride(1, 2)).output_shape(Shape{2, 3, 5, 9}), (Shape{2, 3, 4, 4}));
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(5).stride(3)).output_shape(Shape{1, 512, 14, 14}), (Shape{1, 512, 4, 4}));
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(4).padding(2)).output_shape(Shape{1, 1, 1, 1}), (Shape{1, 1, 1, 1}));
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(4).stride(1).padding(2)).output_shape(Shape{1, 1, 1, 1}), (Shape{1, 1, 2, 2}));
}

TYPED_TEST(PoolTyped, Describe) {
  using T = TypeParam;
  EXPECT_EQ(MaxPool2d<T>(2).describe(), "MaxPool2d(k=2x2, s=2, p=0)");
  EXPECT_EQ(MaxPool2d<T>(Pool2dOptions(3).stride(2).padding(1)).describe(), "MaxPool2d(k=3x3, s=2, p=1)");
  EXPECT_EQ(MaxPool2d<T>(Pool2dOptions(3).stride(2).ceil_mode(true)).describe(), "MaxPool2d(k=3x3, s=2, p=0, ceil)");
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(2, 3).stride(1, 2).padding(1, 0)).describe(),
            "AvgPool2d(k=2x3, s=1x2, p=1x0)");
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(3).stride(1).padding(1).count_include_pad(false)).describe(),
            "AvgPool2d(k=3x3, s=1, p=1, exclude_pad)");
  EXPECT_EQ(AvgPool2d<T>(Pool2dOptions(7).stride(1)).describe(), "AvgPool2d(k=7x7, s=1, p=0)");
  EXPECT_TRUE(MaxPool2d<T>(2).parameters().empty());
  EXPECT_TRUE(AvgPool2d<T>(2).parameters().empty());
}

// ---------------------------------------------------------------------------------------------
// Gradient checks (double, rel 1e-6)

TEST(Pool2dGradcheck, MaxPoolPlain) {
  Rng rng = seeded_rng(11);
  MaxPool2d<double> mp(2);
  EXPECT_TRUE(gradcheck_layer(mp, random_distinct(Shape{2, 2, 4, 6}, rng), rng));
}

TEST(Pool2dGradcheck, MaxPoolOverlappingWithPadding) {
  Rng rng = seeded_rng(12);
  MaxPool2d<double> mp(Pool2dOptions(3).stride(2).padding(1));
  EXPECT_TRUE(gradcheck_layer(mp, random_distinct(Shape{2, 2, 5, 6}, rng), rng));
}

TEST(Pool2dGradcheck, MaxPoolCeilMode) {
  Rng rng = seeded_rng(13);
  MaxPool2d<double> mp(Pool2dOptions(3).stride(2).ceil_mode(true));
  EXPECT_TRUE(gradcheck_layer(mp, random_distinct(Shape{1, 3, 6, 6}, rng), rng));
}

TEST(Pool2dGradcheck, MaxPoolCeilModeWithPaddingNonSquare) {
  Rng rng = seeded_rng(14);
  MaxPool2d<double> mp(Pool2dOptions(2, 3).stride(2, 2).padding(1, 1).ceil_mode(true));
  EXPECT_TRUE(gradcheck_layer(mp, random_distinct(Shape{2, 1, 5, 6}, rng), rng));
}

TEST(Pool2dGradcheck, MaxPoolStrideOne) {
  Rng rng = seeded_rng(15);
  MaxPool2d<double> mp(Pool2dOptions(3).stride(1).padding(1));
  EXPECT_TRUE(gradcheck_layer(mp, random_distinct(Shape{1, 2, 4, 4}, rng), rng));
}

TEST(Pool2dGradcheck, AvgPoolPlain) {
  Rng rng = seeded_rng(21);
  AvgPool2d<double> ap(2);
  EXPECT_TRUE(gradcheck_layer(ap, random_normal(Shape{2, 2, 4, 6}, rng), rng));
}

TEST(Pool2dGradcheck, AvgPoolCountIncludePad) {
  Rng rng = seeded_rng(22);
  AvgPool2d<double> ap(Pool2dOptions(3).stride(2).padding(1));
  EXPECT_TRUE(gradcheck_layer(ap, random_normal(Shape{2, 2, 5, 6}, rng), rng));
}

TEST(Pool2dGradcheck, AvgPoolExcludePad) {
  Rng rng = seeded_rng(23);
  AvgPool2d<double> ap(Pool2dOptions(3).stride(2).padding(1).count_include_pad(false));
  EXPECT_TRUE(gradcheck_layer(ap, random_normal(Shape{2, 2, 5, 6}, rng), rng));
}

TEST(Pool2dGradcheck, AvgPoolCeilModeIncludePad) {
  Rng rng = seeded_rng(24);
  AvgPool2d<double> ap(Pool2dOptions(3).stride(2).padding(1).ceil_mode(true));
  EXPECT_TRUE(gradcheck_layer(ap, random_normal(Shape{1, 2, 6, 7}, rng), rng));
}

TEST(Pool2dGradcheck, AvgPoolCeilModeExcludePadNonSquare) {
  Rng rng = seeded_rng(25);
  AvgPool2d<double> ap(Pool2dOptions(2, 3).stride(2, 2).padding(1, 1).ceil_mode(true).count_include_pad(false));
  EXPECT_TRUE(gradcheck_layer(ap, random_normal(Shape{2, 1, 5, 6}, rng), rng));
}

TEST(Pool2dGradcheck, AvgPoolStrideOneOverlapping) {
  Rng rng = seeded_rng(26);
  AvgPool2d<double> ap(Pool2dOptions(3).stride(1));
  EXPECT_TRUE(gradcheck_layer(ap, random_normal(Shape{1, 2, 5, 4}, rng), rng));
}

TEST(Pool2dGradcheck, GlobalAvgPool) {
  Rng rng = seeded_rng(31);
  GlobalAvgPool2d<double> gap;
  EXPECT_TRUE(gradcheck_layer(gap, random_normal(Shape{2, 3, 3, 4}, rng), rng));
}

TEST(Pool2dGradcheck, GlobalAvgPoolOnOnePixel) {
  Rng rng = seeded_rng(32);
  GlobalAvgPool2d<double> gap;
  EXPECT_TRUE(gradcheck_layer(gap, random_normal(Shape{3, 2, 1, 1}, rng), rng));
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(Pool2dErrors, ZeroOrNegativeStrideOrKernelIsValueError) {
  EXPECT_EQ(message_of<ValueError>([] { MaxPool2d<float> p(Pool2dOptions(2).stride(0)); }),
            "MaxPool2d: expected kernel >= 1 and stride >= 1, got kernel 2x2, stride 0x0");
  EXPECT_EQ(message_of<ValueError>([] { AvgPool2d<float> p(Pool2dOptions(3).stride(2, -1)); }),
            "AvgPool2d: expected kernel >= 1 and stride >= 1, got kernel 3x3, stride 2x-1");
  EXPECT_EQ(message_of<ValueError>([] { MaxPool2d<double> p(0); }),
            "MaxPool2d: expected kernel >= 1 and stride >= 1, got kernel 0x0, stride 0x0");
  EXPECT_EQ(message_of<ValueError>([] { AvgPool2d<double> p(Pool2dOptions(-2, 2).stride(1)); }),
            "AvgPool2d: expected kernel >= 1 and stride >= 1, got kernel -2x2, stride 1x1");
}

TEST(Pool2dErrors, PaddingOutsideHalfKernelIsValueError) {
  EXPECT_EQ(message_of<ValueError>([] { MaxPool2d<float> p(Pool2dOptions(3).padding(2)); }),
            "MaxPool2d: expected 0 <= padding <= kernel / 2, got padding 2x2 for kernel 3x3");
  EXPECT_EQ(message_of<ValueError>([] { AvgPool2d<float> p(Pool2dOptions(2).padding(0, -1)); }),
            "AvgPool2d: expected 0 <= padding <= kernel / 2, got padding 0x-1 for kernel 2x2");
  EXPECT_NO_THROW(MaxPool2d<float>(Pool2dOptions(2).padding(1)));  // exactly half is allowed
}

TEST(Pool2dErrors, BadInputNamesTheLayer) {
  MaxPool2d<float> mp(2);
  std::string msg = message_of<ShapeError>([&] { mp.forward(Tensor<float>(Shape{2, 3, 4})); });
  EXPECT_EQ(msg.rfind("MaxPool2d(k=2x2, s=2, p=0): expected input (N, C, H, W)", 0), 0u) << msg;
  EXPECT_NE(msg.find("got (2, 3, 4)"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("pool2d:"), std::string::npos) << msg;  // the op's name is replaced
  AvgPool2d<double> ap(Pool2dOptions(3).padding(1));
  msg = message_of<ShapeError>([&] { ap.output_shape(Shape{1, 1, 0, 5}); });
  EXPECT_EQ(msg.rfind("AvgPool2d(k=3x3, s=3, p=1): expected input (N, C, H, W)", 0), 0u) << msg;
  EXPECT_NE(msg.find(">= 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got (1, 1, 0, 5)"), std::string::npos) << msg;
  EXPECT_EQ(ap.output_shape(Shape{1, 1, 1, 5}), (Shape{1, 1, 1, 2}));
  MaxPool2d<double> big(4);
  msg = message_of<ShapeError>([&] { big.output_shape(Shape{1, 1, 4, 3}); });
  EXPECT_NE(msg.find("got (1, 1, 4, 3)"), std::string::npos) << msg;
}

TEST(Pool2dErrors, GlobalAvgPoolBadInput) {
  GlobalAvgPool2d<float> gap;
  EXPECT_EQ(message_of<ShapeError>([&] { gap.forward(Tensor<float>(Shape{2, 3})); }),
            "GlobalAvgPool2d: expected input (N, C, H, W) with H, W >= 1, got (2, 3)");
  EXPECT_EQ(message_of<ShapeError>([&] { gap.output_shape(Shape{2, 3, 0, 4}); }),
            "GlobalAvgPool2d: expected input (N, C, H, W) with H, W >= 1, got (2, 3, 0, 4)");
}

TEST(Pool2dErrors, BackwardBeforeForwardAndWrongGradShape) {
  MaxPool2d<double> mp(2);
  AvgPool2d<double> ap(Pool2dOptions(3).stride(2).padding(1).ceil_mode(true));
  GlobalAvgPool2d<double> gap;
  EXPECT_EQ(message_of<StateError>([&] { mp.backward(Tensor<double>(Shape{1, 1, 2, 2})); }),
            "MaxPool2d(k=2x2, s=2, p=0): backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { ap.backward(Tensor<double>(Shape{1, 1, 2, 2})); }),
            "AvgPool2d(k=3x3, s=2, p=1, ceil): backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { gap.backward(Tensor<double>(Shape{1, 1, 1, 1})); }),
            "GlobalAvgPool2d: backward called before forward");
  mp.forward(Tensor<double>(Shape{1, 2, 4, 4}));
  EXPECT_EQ(message_of<ShapeError>([&] { mp.backward(Tensor<double>(Shape{1, 2, 4, 4})); }),
            "MaxPool2d(k=2x2, s=2, p=0): expected grad_output (1, 2, 2, 2) (the last forward's output), "
            "got (1, 2, 4, 4)");
  ap.forward(Tensor<double>(Shape{1, 2, 4, 4}));
  EXPECT_EQ(message_of<ShapeError>([&] { ap.backward(Tensor<double>(Shape{1, 2, 2, 2})); }),
            "AvgPool2d(k=3x3, s=2, p=1, ceil): expected grad_output (1, 2, 3, 3) (the last forward's output), "
            "got (1, 2, 2, 2)");
  gap.forward(Tensor<double>(Shape{2, 3, 2, 2}));
  EXPECT_EQ(message_of<ShapeError>([&] { gap.backward(Tensor<double>(Shape{2, 3})); }),
            "GlobalAvgPool2d: expected grad_output (2, 3, 1, 1) (the last forward's output), got (2, 3)");
}

}  // namespace
