// Conv2d: forward against a direct-loop reference, gradient checks over the geometry options,
// parameters, accumulation, describe(), output_shape() and the errors with their messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <convkit/layers/conv2d.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;

using convkit::Conv2d;
using convkit::Conv2dOptions;
using convkit::Index;
using convkit::Parameter;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// Direct six-loop convolution: the oracle for the forward pass.
template <typename T>
Tensor<T> reference_conv(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>* b, Index sh, Index sw,
                         Index ph, Index pw, Index dh, Index dw, Index groups) {
  const Index n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
  const Index oc = w.dim(0), cg = w.dim(1), kh = w.dim(2), kw = w.dim(3);
  const Index oh = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1;
  const Index ow = (wd + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
  EXPECT_EQ(c, cg * groups);
  const Index ocg = oc / groups;
  Tensor<T> y(Shape{n, oc, oh, ow});
  for (Index i = 0; i < n; ++i)
    for (Index o = 0; o < oc; ++o) {
      const Index g = o / ocg;
      for (Index oy = 0; oy < oh; ++oy)
        for (Index ox = 0; ox < ow; ++ox) {
          double s = b ? static_cast<double>((*b)(o)) : 0.0;
          for (Index ci = 0; ci < cg; ++ci)
            for (Index ky = 0; ky < kh; ++ky)
              for (Index kx = 0; kx < kw; ++kx) {
                const Index iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                s += static_cast<double>(w(o, ci, ky, kx)) * static_cast<double>(x(i, g * cg + ci, iy, ix));
              }
          y(i, o, oy, ox) = static_cast<T>(s);
        }
    }
  return y;
}

template <typename T>
Tensor<T> reference_for(Conv2d<T>& conv, const Tensor<T>& x) {
  const auto& o = conv.options();
  const auto& p = o.params();
  return reference_conv(x, conv.weight().value, o.bias() ? &conv.bias().value : nullptr, p.stride_h,
                        p.stride_w, p.pad_h, p.pad_w, p.dilation_h, p.dilation_w, p.groups);
}

template <typename T>
Tensor<T> random_tensor(const Shape& s, Rng& rng) {
  Tensor<T> t(s);
  for (T& v : t) v = static_cast<T>(rng.normal());
  return t;
}

template <typename T>
double max_abs_diff(const Tensor<T>& a, const Tensor<T>& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double m = 0;
  for (Index i = 0; i < a.numel() && i < b.numel(); ++i)
    m = std::max(m, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

// ---------------------------------------------------------------------------------------------
// Forward values

TEST(Conv2dForward, HandComputedTwoByTwoKernelOnThreeByThree) {
  Conv2d<double> conv(Conv2dOptions(1, 1, 2));
  conv.weight().value.fill(1.0);
  conv.bias().value(0) = 0.5;
  Tensor<double> x(Shape{1, 1, 3, 3});
  for (Index i = 0; i < 9; ++i) x[i] = static_cast<double>(i + 1);  // 1..9 row-major
  const Tensor<double> y = conv.forward(x);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_DOUBLE_EQ(y(0, 0, 0, 0), 1 + 2 + 4 + 5 + 0.5);
  EXPECT_DOUBLE_EQ(y(0, 0, 0, 1), 2 + 3 + 5 + 6 + 0.5);
  EXPECT_DOUBLE_EQ(y(0, 0, 1, 0), 4 + 5 + 7 + 8 + 0.5);
  EXPECT_DOUBLE_EQ(y(0, 0, 1, 1), 5 + 6 + 8 + 9 + 0.5);
}

TEST(Conv2dForward, HandComputedPaddingAndAsymmetricKernelIsCorrelationNotConvolution) {
  // weight [[1, 2]] over a padded row: y = x[left] + 2·x[right] (cross-correlation, no flip).
  Conv2d<double> conv(Conv2dOptions(1, 1, 1, 2).padding(0, 1).bias(false));
  conv.weight().value(0, 0, 0, 0) = 1.0;
  conv.weight().value(0, 0, 0, 1) = 2.0;
  Tensor<double> x(Shape{1, 1, 1, 3});
  x[0] = 10, x[1] = 20, x[2] = 30;
  const Tensor<double> y = conv.forward(x);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 1, 4}));
  EXPECT_DOUBLE_EQ(y[0], 0 + 2 * 10);
  EXPECT_DOUBLE_EQ(y[1], 10 + 2 * 20);
  EXPECT_DOUBLE_EQ(y[2], 20 + 2 * 30);
  EXPECT_DOUBLE_EQ(y[3], 30 + 0);
}

struct ConvCase {
  const char* name;
  Index n, c, h, w, oc, kh, kw, sh, sw, ph, pw, dh, dw, groups;
  bool bias;
  Conv2dOptions options() const {
    return Conv2dOptions(c, oc, kh, kw).stride(sh, sw).padding(ph, pw).dilation(dh, dw).groups(groups).bias(bias);
  }
  Shape input() const { return Shape{n, c, h, w}; }
};

std::ostream& operator<<(std::ostream& os, const ConvCase& c) { return os << c.name; }

// Small geometries covering each option; used for both the reference and gradient checks.
const ConvCase kConvCases[] = {
    // name          n  c  h  w oc kh kw sh sw ph pw dh dw  g  bias
    {"plain",        2, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1, true},
    {"stride2",      2, 2, 7, 6, 3, 3, 3, 2, 2, 0, 0, 1, 1, 1, true},
    {"padding",      1, 2, 4, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},
    {"stride2pad",   2, 2, 6, 5, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, true},
    {"dilation2",    1, 2, 7, 7, 3, 3, 3, 1, 1, 0, 0, 2, 2, 1, true},
    {"dilation2pad", 1, 2, 5, 6, 2, 3, 3, 2, 1, 2, 1, 2, 2, 1, true},
    {"groups2",      2, 4, 5, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, true},
    {"depthwise",    2, 3, 5, 4, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3, true},
    {"depthwiseX2",  1, 2, 5, 5, 4, 3, 3, 2, 2, 1, 1, 1, 1, 2, true},
    {"nonsquare",    2, 2, 5, 7, 3, 2, 3, 2, 1, 1, 0, 1, 1, 1, true},
    {"nonsqStride",  1, 2, 6, 7, 2, 3, 2, 1, 3, 0, 1, 1, 2, 1, true},
    {"nobias",       2, 3, 4, 4, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, false},
    {"oneByOne",     2, 4, 3, 3, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, true},
    {"kernelEqIn",   2, 2, 3, 3, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1, true},
    {"strideGtK",    1, 2, 8, 8, 2, 2, 2, 3, 3, 0, 0, 1, 1, 1, false},
    // Padding larger than dilation·(K − 1): the data gradient crops instead of padding.
    {"k1pad1",       2, 2, 3, 4, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, true},
    {"padGtKernel",  1, 1, 3, 3, 2, 3, 3, 2, 2, 3, 3, 1, 1, 1, true},
    {"k1stride2",    2, 3, 5, 6, 2, 1, 1, 2, 2, 0, 0, 1, 1, 1, true},
    // 841 output positions, stride 1, C >= OC: the flipped-filter data gradient (the cases
    // above all take col2im; see ops::detail::backward_data_by_col2im).
    {"flippedPath",  1, 3, 29, 29, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, true},
};

class Conv2dCases : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dCases, ForwardMatchesDirectLoops) {
  const ConvCase& c = GetParam();
  Rng rng = seeded_rng(101);
  Conv2d<double> conv(c.options(), rng);
  const Tensor<double> x = random_tensor<double>(c.input(), rng);
  const Tensor<double> y = conv.forward(x);
  const Tensor<double> ref = reference_for(conv, x);
  ASSERT_EQ(y.shape(), ref.shape());
  EXPECT_EQ(conv.output_shape(c.input()), ref.shape());
  EXPECT_LT(max_abs_diff(y, ref), 1e-12);
}

TEST_P(Conv2dCases, GradientCheck) {
  const ConvCase& c = GetParam();
  Rng rng = seeded_rng(202);
  Conv2d<double> conv(c.options(), rng);
  EXPECT_TRUE(gradcheck_layer(conv, random_normal(c.input(), rng), rng));
}

INSTANTIATE_TEST_SUITE_P(Geometries, Conv2dCases, ::testing::ValuesIn(kConvCases),
                         [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

TEST(Conv2dForward, LargeBatchSplitIntoChunksMatchesPerSampleForward) {
  // 16·3·3 column rows × 32·32 outputs × 31 samples = 4.6e6 elements, more than the column
  // budget (at most 2^22) holds at once, so the batch is unfolded in several chunks; each
  // sample must come out as if alone.
  Rng rng = seeded_rng(303);
  Conv2d<double> conv(Conv2dOptions(16, 2, 3).padding(1), rng);
  const Index n = 31;
  const Tensor<double> x = random_tensor<double>(Shape{n, 16, 32, 32}, rng);
  const Tensor<double> y = conv.forward(x);
  ASSERT_EQ(y.shape(), (Shape{n, 2, 32, 32}));
  const Index in_per = 16 * 32 * 32, out_per = 2 * 32 * 32;
  for (Index i : {Index{0}, Index{17}, n - 1}) {
    Tensor<double> xi(Shape{1, 16, 32, 32});
    std::copy(x.data() + i * in_per, x.data() + (i + 1) * in_per, xi.data());
    const Tensor<double> ref = reference_for(conv, xi);
    double m = 0;
    for (Index k = 0; k < out_per; ++k) m = std::max(m, std::abs(y[i * out_per + k] - ref[k]));
    EXPECT_LT(m, 1e-12) << "sample " << i;
  }
}

TEST(Conv2dBackward, LargeBatchSplitIntoChunksMatchesPerSampleBackward) {
  // As above, for both gradients: the batch's weight gradient is the sum of the samples'
  // (accumulated here over one backward per sample), and each input gradient is the sample's.
  // 8·3·3 column rows per group × 48·48 outputs × 30 samples = 5.0e6 > 2^22 elements.
  Rng rng = seeded_rng(304);
  const Conv2dOptions opts = Conv2dOptions(16, 2, 3).padding(1).groups(2);
  Conv2d<double> batch(opts, rng);
  Conv2d<double> single(opts, rng);
  single.weight().value = batch.weight().value;
  single.bias().value = batch.bias().value;
  const Index n = 30, in_per = 16 * 48 * 48;
  const Tensor<double> x = random_tensor<double>(Shape{n, 16, 48, 48}, rng);
  const Tensor<double> y = batch.forward(x);
  ASSERT_EQ(y.shape(), (Shape{n, 2, 48, 48}));
  const Index out_per = 2 * 48 * 48;
  const Tensor<double> g = random_tensor<double>(y.shape(), rng);
  const Tensor<double> dx = batch.backward(g);
  double worst_dx = 0;
  for (Index i = 0; i < n; ++i) {
    Tensor<double> xi(Shape{1, 16, 48, 48}), gi(Shape{1, 2, 48, 48});
    std::copy(x.data() + i * in_per, x.data() + (i + 1) * in_per, xi.data());
    std::copy(g.data() + i * out_per, g.data() + (i + 1) * out_per, gi.data());
    single.forward(xi);
    const Tensor<double> dxi = single.backward(gi);
    for (Index k = 0; k < in_per; ++k) worst_dx = std::max(worst_dx, std::abs(dx[i * in_per + k] - dxi[k]));
  }
  EXPECT_LT(worst_dx, 1e-12);
  EXPECT_LT(max_abs_diff(batch.weight().grad, single.weight().grad), 1e-9);
  EXPECT_LT(max_abs_diff(batch.bias().grad, single.bias().grad), 1e-9);
}

// ---------------------------------------------------------------------------------------------
// Typed tests: float and double

template <typename T>
class Conv2dTyped : public ::testing::Test {};
TYPED_TEST_SUITE(Conv2dTyped, convkit::testing::Scalars);

TYPED_TEST(Conv2dTyped, ForwardMatchesReference) {
  using T = TypeParam;
  Rng rng = seeded_rng(404);
  Conv2d<T> conv(Conv2dOptions(4, 6, 3).stride(2).padding(1).groups(2), rng);
  const Tensor<T> x = random_tensor<T>(Shape{2, 4, 7, 6}, rng);
  const Tensor<T> y = conv.forward(x);
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-12;
  EXPECT_LT(max_abs_diff(y, reference_for(conv, x)), tol);
}

TYPED_TEST(Conv2dTyped, SameSeedGivesSameWeightsInFloatAndDoubleAndCloseOutputs) {
  using T = TypeParam;
  Conv2d<T> a(Conv2dOptions(3, 5, 3).padding(1), Rng(9));
  Conv2d<double> d(Conv2dOptions(3, 5, 3).padding(1), Rng(9));
  for (Index i = 0; i < d.weight().value.numel(); ++i)
    ASSERT_EQ(a.weight().value[i], static_cast<T>(d.weight().value[i])) << i;
  for (Index i = 0; i < d.bias().value.numel(); ++i)
    ASSERT_EQ(a.bias().value[i], static_cast<T>(d.bias().value[i])) << i;
  Rng rng = seeded_rng(505);
  const Tensor<double> xd = random_tensor<double>(Shape{2, 3, 6, 5}, rng);
  Tensor<T> xt(xd.shape());
  for (Index i = 0; i < xd.numel(); ++i) xt[i] = static_cast<T>(xd[i]);
  const Tensor<T> yt = a.forward(xt);
  const Tensor<double> yd = d.forward(xd);
  ASSERT_EQ(yt.shape(), yd.shape());
  for (Index i = 0; i < yd.numel(); ++i) EXPECT_NEAR(static_cast<double>(yt[i]), yd[i], 1e-5) << i;
}

TYPED_TEST(Conv2dTyped, BackwardIsTransposeOfForward) {
  // For a linear map f (no bias): <f(x), g> = <x, f^T(g)>, and <f(x), g> = <W, dW>.
  using T = TypeParam;
  Rng rng = seeded_rng(606);
  Conv2d<T> conv(Conv2dOptions(2, 3, 3, 2).stride(2, 1).padding(1, 0).dilation(1, 2).bias(false), rng);
  const Tensor<T> x = random_tensor<T>(Shape{2, 2, 6, 5}, rng);
  const Tensor<T> y = conv.forward(x);
  const Tensor<T> g = random_tensor<T>(y.shape(), rng);
  conv.zero_grad();
  const Tensor<T> dx = conv.backward(g);
  double lhs = 0, rhs = 0, rhs_w = 0;
  for (Index i = 0; i < y.numel(); ++i) lhs += static_cast<double>(y[i]) * static_cast<double>(g[i]);
  for (Index i = 0; i < x.numel(); ++i) rhs += static_cast<double>(x[i]) * static_cast<double>(dx[i]);
  const Tensor<T>& w = conv.weight().value;
  const Tensor<T>& dw = conv.weight().grad;
  for (Index i = 0; i < w.numel(); ++i) rhs_w += static_cast<double>(w[i]) * static_cast<double>(dw[i]);
  const double tol = std::is_same<T, float>::value ? 1e-4 : 1e-10;
  EXPECT_NEAR(lhs, rhs, tol * (1 + std::abs(lhs)));
  EXPECT_NEAR(lhs, rhs_w, tol * (1 + std::abs(lhs)));
}

TYPED_TEST(Conv2dTyped, OutputShapes) {
  using T = TypeParam;
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(3, 64, 3).padding(1)).output_shape(Shape{8, 3, 32, 32}),
            (Shape{8, 64, 32, 32}));
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(3, 96, 11).stride(4)).output_shape(Shape{1, 3, 227, 227}),
            (Shape{1, 96, 55, 55}));
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(1, 6, 5)).output_shape(Shape{4, 1, 32, 32}), (Shape{4, 6, 28, 28}));
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(64, 128, 3).stride(2).padding(1)).output_shape(Shape{2, 64, 56, 56}),
            (Shape{2, 128, 28, 28}));
  // (H + 2p − d(K − 1) − 1)/s + 1 = (10 + 4 − 4 − 1)/2 + 1 = 5 rows; (9 + 0 − 2 − 1)/1 + 1 = 7 columns
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(2, 4, 3, 2).stride(2, 1).padding(2, 0).dilation(2)).output_shape(
                Shape{3, 2, 10, 9}),
            (Shape{3, 4, 5, 7}));
  // Kernel exactly as large as the padded input: one output pixel.
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(1, 1, 5).padding(1)).output_shape(Shape{1, 1, 3, 3}), (Shape{1, 1, 1, 1}));
  // An empty batch keeps N = 0.
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(3, 8, 3)).output_shape(Shape{0, 3, 5, 5}), (Shape{0, 8, 3, 3}));
}

TYPED_TEST(Conv2dTyped, Describe) {
  using T = TypeParam;
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(3, 64, 3).stride(1).padding(1)).describe(), "Conv2d(3->64, k=3x3, s=1, p=1)");
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(1, 6, 5)).describe(), "Conv2d(1->6, k=5x5, s=1, p=0)");
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(3, 96, 11).stride(4)).describe(), "Conv2d(3->96, k=11x11, s=4, p=0)");
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(4, 8, 3, 5).stride(2, 1).padding(0, 2)).describe(),
            "Conv2d(4->8, k=3x5, s=2x1, p=0x2)");
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(4, 8, 3).padding(2).dilation(2)).describe(),
            "Conv2d(4->8, k=3x3, s=1, p=2, d=2)");
  EXPECT_EQ(Conv2d<T>(Conv2dOptions(32, 32, 3).padding(1).groups(32).bias(false)).describe(),
            "Conv2d(32->32, k=3x3, s=1, p=1, groups=32, bias=false)");
}

// ---------------------------------------------------------------------------------------------
// Parameters

TEST(Conv2dParameters, NamesAndShapes) {
  Conv2d<float> conv(Conv2dOptions(6, 16, 5));
  std::vector<Parameter<float>*> ps = conv.parameters();
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0]->name, "weight");
  EXPECT_EQ(ps[0]->value.shape(), (Shape{16, 6, 5, 5}));
  EXPECT_FALSE(ps[0]->has_grad());  // allocated by the first backward
  EXPECT_EQ(ps[0]->ensure_grad().shape(), (Shape{16, 6, 5, 5}));
  EXPECT_EQ(ps[1]->name, "bias");
  EXPECT_EQ(ps[1]->value.shape(), (Shape{16}));
  EXPECT_EQ(ps[1]->ensure_grad().shape(), (Shape{16}));
  EXPECT_TRUE(ps[0]->trainable);
  EXPECT_TRUE(ps[1]->trainable);
  EXPECT_EQ(ps[0], &conv.weight());
  EXPECT_EQ(ps[1], &conv.bias());
  // Gradients start at zero when allocated.
  for (float v : ps[0]->grad) ASSERT_EQ(v, 0.0f);
}

TEST(Conv2dParameters, GroupedWeightShapeAndNoBias) {
  Conv2d<double> conv(Conv2dOptions(8, 4, 3, 1).groups(4).bias(false));
  std::vector<Parameter<double>*> ps = conv.parameters();
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0]->name, "weight");
  EXPECT_EQ(ps[0]->value.shape(), (Shape{4, 2, 3, 1}));
  const std::string msg = message_of<StateError>([&] { conv.bias(); });
  EXPECT_EQ(msg, "Conv2d(8->4, k=3x1, s=1, p=0, groups=4, bias=false): has no bias (built with bias(false))");
}

TEST(Conv2dParameters, NamedParametersAndPrefixGiveDottedNames) {
  Conv2d<double> conv(Conv2dOptions(1, 2, 3));
  std::vector<convkit::NamedParameter<double>> named = conv.named_parameters();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].name, "weight");
  EXPECT_EQ(named[0].param, &conv.weight());
  EXPECT_EQ(named[1].name, "bias");
  EXPECT_EQ(named[1].param, &conv.bias());
  std::vector<convkit::NamedParameter<double>> ps;
  conv.collect_parameters(ps, "features.0.");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].name, "features.0.weight");
  EXPECT_EQ(ps[1].name, "features.0.bias");
  EXPECT_EQ(ps[0].param, &conv.weight());
  // Collecting never renames the parameter itself.
  EXPECT_EQ(conv.weight().name, "weight");
  EXPECT_EQ(conv.bias().name, "bias");
  EXPECT_EQ(conv.parameter_count(), 2 * 1 * 3 * 3 + 2);
}

TEST(Conv2dParameters, ParameterCountAndMultiplyAdds) {
  Conv2d<float> conv(Conv2dOptions(3, 64, 3).padding(1));
  EXPECT_EQ(conv.parameter_count(), 64 * 3 * 3 * 3 + 64);
  // One multiply-add per output element per weight tap: 64·32·32 outputs × 3·3·3 taps.
  EXPECT_EQ(conv.multiply_adds(Shape{1, 3, 32, 32}), Index{64} * 32 * 32 * 27);
  EXPECT_EQ(conv.multiply_adds(Shape{2, 3, 32, 32}), Index{2} * 64 * 32 * 32 * 27);
  Conv2d<float> grouped(Conv2dOptions(8, 8, 3).groups(4).bias(false));
  EXPECT_EQ(grouped.parameter_count(), 8 * 2 * 3 * 3);
  EXPECT_EQ(grouped.multiply_adds(Shape{1, 8, 5, 5}), Index{8} * 3 * 3 * 2 * 3 * 3);
}

TEST(Conv2dParameters, InitialisedWithinDefaultUniformBoundsAndSeeded) {
  // fan_in = C/groups · KH · KW = 4/2 · 3 · 3 = 18
  const Conv2dOptions opts = Conv2dOptions(4, 6, 3).groups(2);
  Conv2d<double> a(opts, Rng(1)), b(opts, Rng(1)), c(opts, Rng(2)), d(opts), e(opts);
  const double bound = 1.0 / std::sqrt(18.0);
  double max_abs = 0;
  for (double v : a.weight().value) {
    EXPECT_LT(std::abs(v), bound);
    max_abs = std::max(max_abs, std::abs(v));
  }
  for (double v : a.bias().value) EXPECT_LT(std::abs(v), bound);
  EXPECT_GT(max_abs, 0.5 * bound);  // really spread over the range, not all tiny
  EXPECT_EQ(max_abs_diff(a.weight().value, b.weight().value), 0.0);
  EXPECT_EQ(max_abs_diff(a.bias().value, b.bias().value), 0.0);
  EXPECT_GT(max_abs_diff(a.weight().value, c.weight().value), 0.0);
  EXPECT_EQ(max_abs_diff(d.weight().value, e.weight().value), 0.0);  // default seed
  Conv2d<double> f(opts, Rng(Conv2d<double>::kDefaultInitSeed));
  EXPECT_EQ(max_abs_diff(d.weight().value, f.weight().value), 0.0);
}

TEST(Conv2dParameters, GradientsAccumulateOverTwoBackwardsAndZeroGradClears) {
  Rng rng = seeded_rng(707);
  Conv2d<double> conv(Conv2dOptions(2, 3, 3).stride(2).padding(1), rng);
  const Tensor<double> x = random_tensor<double>(Shape{2, 2, 5, 5}, rng);
  const Tensor<double> y = conv.forward(x);
  const Tensor<double> g = random_tensor<double>(y.shape(), rng);
  const Tensor<double> dx1 = conv.backward(g);
  const Tensor<double> w1 = conv.weight().grad, b1 = conv.bias().grad;
  double norm = 0;
  for (double v : w1) norm += std::abs(v);
  ASSERT_GT(norm, 0.0);
  // Bias gradient = Σ over n, y, x of dY for that channel.
  for (Index o = 0; o < 3; ++o) {
    double s = 0;
    for (Index i = 0; i < 2; ++i)
      for (Index r = 0; r < 3; ++r)
        for (Index c = 0; c < 3; ++c) s += g(i, o, r, c);
    EXPECT_NEAR(b1[o], s, 1e-12);
  }
  const Tensor<double> dx2 = conv.backward(g);
  EXPECT_EQ(max_abs_diff(dx1, dx2), 0.0);  // input gradient is returned, not accumulated
  for (Index i = 0; i < w1.numel(); ++i) EXPECT_NEAR(conv.weight().grad[i], 2 * w1[i], 1e-12);
  for (Index i = 0; i < b1.numel(); ++i) EXPECT_NEAR(conv.bias().grad[i], 2 * b1[i], 1e-12);
  conv.zero_grad();
  for (double v : conv.weight().grad) ASSERT_EQ(v, 0.0);
  for (double v : conv.bias().grad) ASSERT_EQ(v, 0.0);
  // Values untouched by zero_grad.
  EXPECT_GT(max_abs_diff(conv.weight().value, Tensor<double>(conv.weight().value.shape())), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(Conv2dErrors, WrongChannelCountNamesLayerAndShape) {
  Conv2d<float> conv(Conv2dOptions(3, 64, 3).stride(1).padding(1));
  const std::string msg = message_of<ShapeError>([&] { conv.forward(Tensor<float>(Shape{8, 1, 28, 28})); });
  EXPECT_TRUE(contains(msg, "Conv2d(3->64, k=3x3, s=1, p=1): expected input (N, 3, H, W)"));
  EXPECT_TRUE(contains(msg, "got (8, 1, 28, 28)"));
  EXPECT_EQ(msg.rfind("Conv2d(3->64, k=3x3, s=1, p=1): ", 0), 0u) << msg;
}

TEST(Conv2dErrors, WrongRankNamesLayerAndShape) {
  Conv2d<double> conv(Conv2dOptions(3, 8, 3));
  std::string msg = message_of<ShapeError>([&] { conv.forward(Tensor<double>(Shape{8, 3, 28})); });
  EXPECT_TRUE(contains(msg, "Conv2d(3->8, k=3x3, s=1, p=0): expected input (N, 3, H, W)"));
  EXPECT_TRUE(contains(msg, "got (8, 3, 28)"));
  msg = message_of<ShapeError>([&] { conv.output_shape(Shape{3, 28, 28}); });
  EXPECT_TRUE(contains(msg, "got (3, 28, 28)"));
  msg = message_of<ShapeError>([&] { conv.output_shape(Shape{}); });
  EXPECT_TRUE(contains(msg, "got ()"));
}

TEST(Conv2dErrors, KernelLargerThanPaddedInput) {
  Conv2d<double> conv(Conv2dOptions(1, 2, 5));
  std::string msg = message_of<ShapeError>([&] { conv.forward(Tensor<double>(Shape{2, 1, 4, 4})); });
  EXPECT_EQ(msg, "Conv2d(1->2, k=5x5, s=1, p=0): expected input (N, 1, H, W) with H, W >= 5, got (2, 1, 4, 4)");
  // The padding counts: p = 1 makes 3x3 enough.
  Conv2d<double> padded(Conv2dOptions(1, 2, 5).padding(1));
  EXPECT_EQ(padded.output_shape(Shape{2, 1, 3, 3}), (Shape{2, 2, 1, 1}));
  msg = message_of<ShapeError>([&] { padded.output_shape(Shape{2, 1, 2, 3}); });
  EXPECT_TRUE(contains(msg, "with H, W >= 3, got (2, 1, 2, 3)"));
  // Dilation enlarges the kernel: 3 taps at dilation 2 span 5 rows; non-square limits differ.
  Conv2d<double> dil(Conv2dOptions(1, 1, 3, 2).dilation(2, 1).padding(0, 1));
  msg = message_of<ShapeError>([&] { dil.output_shape(Shape{1, 1, 4, 1}); });
  EXPECT_TRUE(contains(msg, "with H >= 5, W >= 1, got (1, 1, 4, 1)"));
  EXPECT_EQ(dil.output_shape(Shape{1, 1, 5, 1}), (Shape{1, 1, 1, 2}));
}

TEST(Conv2dErrors, BadHyperparametersAreValueErrors) {
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<float> c(Conv2dOptions(3, 8, 3).stride(0)); }),
            "Conv2d: expected stride >= 1, got 0x0");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<float> c(Conv2dOptions(3, 8, 3).stride(1, -2)); }),
            "Conv2d: expected stride >= 1, got 1x-2");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<float> c(Conv2dOptions(3, 8, 3).padding(-1)); }),
            "Conv2d: expected padding >= 0, got -1x-1");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<float> c(Conv2dOptions(3, 8, 3).dilation(0)); }),
            "Conv2d: expected dilation >= 1, got 0x0");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<float> c(Conv2dOptions(3, 8, 0)); }),
            "Conv2d: expected kernel >= 1, got 0x0");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<float> c(Conv2dOptions(0, 8, 3)); }),
            "Conv2d: expected in_channels >= 1 and out_channels >= 1, got 0 and 8");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<double> c(Conv2dOptions(4, 6, 3).groups(3)); }),
            "Conv2d: expected groups >= 1 dividing in_channels 4 and out_channels 6, got 3");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<double> c(Conv2dOptions(4, 6, 3).groups(4)); }),
            "Conv2d: expected groups >= 1 dividing in_channels 4 and out_channels 6, got 4");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<double> c(Conv2dOptions(4, 6, 3).groups(0)); }),
            "Conv2d: expected groups >= 1 dividing in_channels 4 and out_channels 6, got 0");
  EXPECT_EQ(message_of<ValueError>([] { Conv2d<double> c(Conv2dOptions(4, 6, 3).groups(-2)); }),
            "Conv2d: expected groups >= 1 dividing in_channels 4 and out_channels 6, got -2");
}

TEST(Conv2dErrors, BackwardBeforeForward) {
  Conv2d<double> conv(Conv2dOptions(3, 64, 3).padding(1));
  EXPECT_EQ(message_of<StateError>([&] { conv.backward(Tensor<double>(Shape{1, 64, 4, 4})); }),
            "Conv2d(3->64, k=3x3, s=1, p=1): backward called before forward");
}

TEST(Conv2dErrors, GradOutputOfWrongShape) {
  Conv2d<double> conv(Conv2dOptions(2, 4, 3));
  conv.forward(Tensor<double>(Shape{2, 2, 5, 5}));
  const std::string msg = message_of<ShapeError>([&] { conv.backward(Tensor<double>(Shape{2, 4, 3, 4})); });
  EXPECT_EQ(msg,
            "Conv2d(2->4, k=3x3, s=1, p=0): expected grad_output (2, 4, 3, 3) (the last forward's output), "
            "got (2, 4, 3, 4)");
  // The rejected call did not even allocate the parameter gradients.
  EXPECT_FALSE(conv.weight().has_grad());
}

TEST(Conv2dErrors, FailedForwardKeepsThePreviousForwardForBackward) {
  Rng rng = seeded_rng(808);
  Conv2d<double> conv(Conv2dOptions(2, 3, 3), rng);
  const Tensor<double> x = random_tensor<double>(Shape{1, 2, 4, 4}, rng);
  conv.forward(x);
  EXPECT_THROW(conv.forward(Tensor<double>(Shape{1, 5, 4, 4})), ShapeError);
  const Tensor<double> dx = conv.backward(Tensor<double>(Shape{1, 3, 2, 2}, 1.0));
  EXPECT_EQ(dx.shape(), x.shape());
}

}  // namespace
