// SoftmaxCrossEntropy: values by hand, (N, C) and pixel-wise (N, C, H, W), gradient checks,
// stability for logits of ±1e4, label and shape errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <convkit/losses/softmax_cross_entropy.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::Index;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::SoftmaxCrossEntropy;
using convkit::StateError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_function;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

template <typename T>
Tensor<T> from_values(const Shape& s, const std::vector<double>& v) {
  Tensor<T> t(s);
  EXPECT_EQ(static_cast<Index>(v.size()), t.numel());
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(v[static_cast<std::size_t>(i)]);
  return t;
}

std::vector<Index> random_labels(Index count, Index classes, Rng& rng) {
  std::vector<Index> labels(static_cast<std::size_t>(count));
  for (Index& l : labels) l = static_cast<Index>(rng.below(static_cast<std::uint64_t>(classes)));
  return labels;
}

/// −log softmax(row)[label] in long double, straight from the definition.
long double nll(const std::vector<long double>& row, Index label) {
  long double sum = 0;
  for (long double v : row) sum += std::exp(v);
  return std::log(sum) - row[static_cast<std::size_t>(label)];
}

template <typename T>
class SoftmaxCrossEntropyTyped : public ::testing::Test {
 protected:
  static double tol() { return std::is_same<T, float>::value ? 1e-6 : 1e-14; }
};
TYPED_TEST_SUITE(SoftmaxCrossEntropyTyped, convkit::testing::Scalars);

TYPED_TEST(SoftmaxCrossEntropyTyped, HandComputedTwoClasses) {
  using T = TypeParam;
  // logits [0, log 3]: softmax = [1/4, 3/4]. Sample 0 has label 1 (−log 3/4), sample 1 label 0 (−log 1/4).
  SoftmaxCrossEntropy<T> loss;
  const double l3 = std::log(3.0);
  const T value = loss.forward(from_values<T>(Shape{2, 2}, {0, l3, 0, l3}), {1, 0});
  EXPECT_NEAR(static_cast<double>(value), (std::log(4.0 / 3.0) + std::log(4.0)) / 2, 2 * this->tol());
  const Tensor<T> g = loss.backward();
  ASSERT_EQ(g.shape(), (Shape{2, 2}));
  // (softmax − onehot) / N
  EXPECT_NEAR(static_cast<double>(g(0, 0)), 0.25 / 2, this->tol());
  EXPECT_NEAR(static_cast<double>(g(0, 1)), -0.25 / 2, this->tol());
  EXPECT_NEAR(static_cast<double>(g(1, 0)), -0.75 / 2, this->tol());
  EXPECT_NEAR(static_cast<double>(g(1, 1)), 0.75 / 2, this->tol());
  // log_probabilities() is log softmax of the logits.
  const Tensor<T>& lp = loss.log_probabilities();
  EXPECT_NEAR(static_cast<double>(lp(0, 0)), std::log(0.25), this->tol());
  EXPECT_NEAR(static_cast<double>(lp(0, 1)), std::log(0.75), this->tol());
}

TYPED_TEST(SoftmaxCrossEntropyTyped, UniformLogitsGiveLogC) {
  using T = TypeParam;
  SoftmaxCrossEntropy<T> loss;
  const T value = loss.forward(Tensor<T>(Shape{3, 10}, T(2.5)), {0, 9, 4});
  EXPECT_NEAR(static_cast<double>(value), std::log(10.0), 4 * this->tol());
  const Tensor<T> g = loss.backward();
  EXPECT_NEAR(static_cast<double>(g(1, 9)), (0.1 - 1) / 3, this->tol());
  EXPECT_NEAR(static_cast<double>(g(1, 0)), 0.1 / 3, this->tol());
  // Each row of the gradient sums to zero.
  for (Index i = 0; i < 3; ++i) {
    double s = 0;
    for (Index c = 0; c < 10; ++c) s += static_cast<double>(g(i, c));
    EXPECT_NEAR(s, 0.0, this->tol());
  }
}

TYPED_TEST(SoftmaxCrossEntropyTyped, HugeLogitsGiveFiniteExactValues) {
  using T = TypeParam;
  SoftmaxCrossEntropy<T> loss;
  // Row 0: the label has the largest logit by 2e4 → loss 0, gradient 0.
  // Row 1: the label is 2e4 below the maximum → loss 2e4, gradient [1, −1] (before / N).
  // Row 2: three classes, label at 0 while the maximum is 1e4 → loss 1e4.
  // Mean over 3 rows: (0 + 2e4 + 1e4) / 3 = 1e4.
  Tensor<T> x(Shape{3, 3});
  const double v[] = {1e4, -1e4, -1e4, 1e4, -1e4, -1e4, 0, 1e4, -1e4};
  for (Index i = 0; i < 9; ++i) x[i] = static_cast<T>(v[i]);
  const T value = loss.forward(x, {0, 1, 0});
  ASSERT_TRUE(std::isfinite(static_cast<double>(value)));
  EXPECT_EQ(static_cast<double>(value), 1e4);
  const Tensor<T> g = loss.backward();
  const double third = 1.0 / 3.0;
  const double expected[] = {0, 0, 0, third, -third, 0, -third, third, 0};
  for (Index i = 0; i < 9; ++i) {
    ASSERT_TRUE(std::isfinite(static_cast<double>(g[i]))) << i;
    EXPECT_NEAR(static_cast<double>(g[i]), expected[i], this->tol()) << i;
  }
  // Both logits −1e4: finite, log 2 (float loses the digits of log 2 below the spacing of
  // floats near 1e4, about 1e-3).
  const T v2 = loss.forward(from_values<T>(Shape{1, 2}, {-1e4, -1e4}), {1});
  EXPECT_NEAR(static_cast<double>(v2), std::log(2.0), (std::is_same<T, float>::value ? 1e-3 : 1e-12));
  const Tensor<T> g2 = loss.backward();
  EXPECT_NEAR(static_cast<double>(g2[0]), 0.5, 1e-3);
  EXPECT_NEAR(static_cast<double>(g2[1]), -0.5, 1e-3);
}

TYPED_TEST(SoftmaxCrossEntropyTyped, PixelWiseValueByHand) {
  using T = TypeParam;
  // (N=1, C=2, H=1, W=2): pixel 0 has logits [0, log 3], pixel 1 [log 3, 0]; labels (n, h, w) order.
  SoftmaxCrossEntropy<T> loss;
  const double l3 = std::log(3.0);
  const Tensor<T> x = from_values<T>(Shape{1, 2, 1, 2}, {0, l3, l3, 0});  // channel 0: [0, l3]; channel 1: [l3, 0]
  // pixel 0: channel logits [0, l3] label 1 → −log 3/4; pixel 1: [l3, 0] label 1 → −log 1/4
  const T value = loss.forward(x, {1, 1});
  EXPECT_NEAR(static_cast<double>(value), (std::log(4.0 / 3.0) + std::log(4.0)) / 2, 2 * this->tol());
  const Tensor<T> g = loss.backward();
  ASSERT_EQ(g.shape(), (Shape{1, 2, 1, 2}));
  EXPECT_NEAR(static_cast<double>(g(0, 0, 0, 0)), 0.25 / 2, this->tol());
  EXPECT_NEAR(static_cast<double>(g(0, 1, 0, 0)), -0.25 / 2, this->tol());
  EXPECT_NEAR(static_cast<double>(g(0, 0, 0, 1)), 0.75 / 2, this->tol());
  EXPECT_NEAR(static_cast<double>(g(0, 1, 0, 1)), -0.75 / 2, this->tol());
}

TEST(SoftmaxCrossEntropy, RandomBatchMatchesDefinition) {
  Rng rng = seeded_rng(1);
  const Index n = 5, c = 7;
  Tensor<double> x = random_normal(Shape{n, c}, rng);
  for (double& v : x) v *= 4;
  const std::vector<Index> labels = random_labels(n, c, rng);
  SoftmaxCrossEntropy<double> loss;
  long double expected = 0;
  for (Index i = 0; i < n; ++i) {
    std::vector<long double> row;
    for (Index k = 0; k < c; ++k) row.push_back(x(i, k));
    expected += nll(row, labels[static_cast<std::size_t>(i)]);
  }
  EXPECT_NEAR(loss.forward(x, labels), static_cast<double>(expected / n), 1e-13);
}

TEST(SoftmaxCrossEntropy, PixelWiseEqualsPerPixelRows) {
  // (N, C, H, W) with labels in (n, h, w) order equals the (N·H·W, C) loss of the pixels.
  Rng rng = seeded_rng(2);
  const Index n = 2, c = 4, h = 3, w = 2;
  const Tensor<double> x = random_normal(Shape{n, c, h, w}, rng);
  const std::vector<Index> labels = random_labels(n * h * w, c, rng);
  Tensor<double> rows(Shape{n * h * w, c});
  for (Index i = 0; i < n; ++i)
    for (Index k = 0; k < c; ++k)
      for (Index y = 0; y < h; ++y)
        for (Index z = 0; z < w; ++z) rows((i * h + y) * w + z, k) = x(i, k, y, z);
  SoftmaxCrossEntropy<double> pixel, flat;
  EXPECT_NEAR(pixel.forward(x, labels), flat.forward(rows, labels), 1e-14);
  const Tensor<double> gp = pixel.backward(), gf = flat.backward();
  ASSERT_EQ(gp.shape(), x.shape());
  for (Index i = 0; i < n; ++i)
    for (Index k = 0; k < c; ++k)
      for (Index y = 0; y < h; ++y)
        for (Index z = 0; z < w; ++z) EXPECT_NEAR(gp(i, k, y, z), gf((i * h + y) * w + z, k), 1e-15);
}

TEST(SoftmaxCrossEntropy, FloatMatchesDouble) {
  Rng rng = seeded_rng(3);
  const Tensor<double> xd = random_normal(Shape{4, 6, 2, 2}, rng);
  Tensor<float> xf(xd.shape());
  Tensor<double> xr(xd.shape());
  for (Index i = 0; i < xd.numel(); ++i) xf[i] = static_cast<float>(xd[i]), xr[i] = static_cast<double>(xf[i]);
  const std::vector<Index> labels = random_labels(16, 6, rng);
  SoftmaxCrossEntropy<float> lf;
  SoftmaxCrossEntropy<double> ld;
  EXPECT_NEAR(static_cast<double>(lf.forward(xf, labels)), ld.forward(xr, labels), 1e-6);
  const Tensor<float> gf = lf.backward();
  const Tensor<double> gd = ld.backward();
  for (Index i = 0; i < gd.numel(); ++i) EXPECT_NEAR(static_cast<double>(gf[i]), gd[i], 1e-7) << i;
}

TEST(SoftmaxCrossEntropyGradcheck, TwoDimensional) {
  Rng rng = seeded_rng(11);
  const Tensor<double> x = random_normal(Shape{4, 5}, rng);
  const std::vector<Index> labels = random_labels(4, 5, rng);
  SoftmaxCrossEntropy<double> loss;
  loss.forward(x, labels);
  const Tensor<double> analytic = loss.backward();
  EXPECT_TRUE(gradcheck_function(
      [&](const Tensor<double>& in) {
        SoftmaxCrossEntropy<double> l;
        return l.forward(in, labels);
      },
      x, analytic));
}

TEST(SoftmaxCrossEntropyGradcheck, PixelWise) {
  Rng rng = seeded_rng(12);
  const Tensor<double> x = random_normal(Shape{2, 3, 2, 3}, rng);
  const std::vector<Index> labels = random_labels(2 * 2 * 3, 3, rng);
  SoftmaxCrossEntropy<double> loss;
  loss.forward(x, labels);
  const Tensor<double> analytic = loss.backward();
  EXPECT_TRUE(gradcheck_function(
      [&](const Tensor<double>& in) {
        SoftmaxCrossEntropy<double> l;
        return l.forward(in, labels);
      },
      x, analytic));
}

TEST(SoftmaxCrossEntropyGradcheck, LargeSpreadLogits) {
  Rng rng = seeded_rng(13);
  Tensor<double> x = random_normal(Shape{3, 4}, rng);
  for (double& v : x) v *= 6;
  const std::vector<Index> labels = {3, 0, 2};
  SoftmaxCrossEntropy<double> loss;
  loss.forward(x, labels);
  const Tensor<double> analytic = loss.backward();
  EXPECT_TRUE(gradcheck_function(
      [&](const Tensor<double>& in) {
        SoftmaxCrossEntropy<double> l;
        return l.forward(in, labels);
      },
      x, analytic));
}

TEST(SoftmaxCrossEntropyErrors, LabelOutOfRangeNamesValueAndIndex) {
  SoftmaxCrossEntropy<float> loss;
  const Tensor<float> x(Shape{3, 4});
  EXPECT_EQ(message_of<ValueError>([&] { loss.forward(x, {0, -1, 2}); }),
            "SoftmaxCrossEntropy: label -1 at index 1 is out of range [0, 4)");
  EXPECT_EQ(message_of<ValueError>([&] { loss.forward(x, {0, 1, 4}); }),
            "SoftmaxCrossEntropy: label 4 at index 2 is out of range [0, 4)");
  EXPECT_EQ(message_of<ValueError>([&] { loss.forward(x, {12, 1, 3}); }),
            "SoftmaxCrossEntropy: label 12 at index 0 is out of range [0, 4)");
  SoftmaxCrossEntropy<double> pixel;
  std::vector<Index> labels(8, 1);
  labels[5] = 2;
  EXPECT_EQ(message_of<ValueError>([&] { pixel.forward(Tensor<double>(Shape{2, 2, 2, 2}), labels); }),
            "SoftmaxCrossEntropy: label 2 at index 5 is out of range [0, 2)");
  // A failed call leaves no state behind: backward still has nothing to work on.
  EXPECT_THROW(pixel.backward(), StateError);
}

TEST(SoftmaxCrossEntropyErrors, WrongLabelCountOrLogitsShape) {
  SoftmaxCrossEntropy<double> loss;
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{2, 3}), {0, 1, 2}); }),
            "SoftmaxCrossEntropy: expected 2 labels for logits (2, 3), got 3");
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{2, 3, 2, 2}), {0, 1}); }),
            "SoftmaxCrossEntropy: expected 8 labels for logits (2, 3, 2, 2), got 2");
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{2, 3, 4}), {0, 1}); }),
            "SoftmaxCrossEntropy: expected logits (N, C) or (N, C, H, W) with C >= 1, got (2, 3, 4)");
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{2, 0}), {}); }),
            "SoftmaxCrossEntropy: expected logits (N, C) or (N, C, H, W) with C >= 1, got (2, 0)");
}

TEST(SoftmaxCrossEntropyErrors, BackwardBeforeForward) {
  SoftmaxCrossEntropy<float> lf;
  SoftmaxCrossEntropy<double> ld;
  EXPECT_EQ(message_of<StateError>([&] { lf.backward(); }), "SoftmaxCrossEntropy: backward called before forward");
  EXPECT_EQ(message_of<StateError>([&] { ld.backward(); }), "SoftmaxCrossEntropy: backward called before forward");
}

TEST(SoftmaxCrossEntropy, BackwardFollowsTheLastForward) {
  SoftmaxCrossEntropy<double> loss;
  loss.forward(Tensor<double>(Shape{1, 2}), {0});
  loss.forward(Tensor<double>(Shape{2, 2}), {1, 1});
  const Tensor<double> g = loss.backward();
  ASSERT_EQ(g.shape(), (Shape{2, 2}));
  EXPECT_DOUBLE_EQ(g(0, 0), 0.25);
  EXPECT_DOUBLE_EQ(g(0, 1), -0.25);
  // backward can be called again and gives the same result.
  const Tensor<double> g2 = loss.backward();
  for (Index i = 0; i < 4; ++i) EXPECT_EQ(g[i], g2[i]);
}

TEST(SoftmaxCrossEntropyErrors, EmptyBatchIsAShapeErrorNotAZeroLoss) {
  SoftmaxCrossEntropy<double> loss;
  EXPECT_EQ(message_of<ShapeError>([&] { loss.forward(Tensor<double>(Shape{0, 3}), {}); }),
            "SoftmaxCrossEntropy: expected at least one label, got logits (0, 3)");
}

}  // namespace
