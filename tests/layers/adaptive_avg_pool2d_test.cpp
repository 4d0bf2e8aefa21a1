// AdaptiveAvgPool2d: forward against direct loops over PyTorch's window rule (divisible,
// overlapping, identity and replicating sizes, non-square), values and gradient by hand,
// gradient checks, describe(), output_shape() and the errors with their messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include <convkit/layers/adaptive_avg_pool2d.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;
using convkit::testing::contains;
using convkit::testing::starts_with;

using convkit::AdaptiveAvgPool2d;
using convkit::Index;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::Tensor;
using convkit::ValueError;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

/// Direct loops: output (i, j) averages rows [floor(i·H/OH), ceil((i+1)·H/OH)) and the same for columns.
template <typename T>
Tensor<double> reference_adaptive(const Tensor<T>& x, Index oh, Index ow) {
  const Index n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3);
  Tensor<double> y(Shape{n, c, oh, ow});
  auto lo = [](Index i, Index in, Index out) {
    return static_cast<Index>(std::floor(static_cast<double>(i * in) / static_cast<double>(out)));
  };
  auto hi = [](Index i, Index in, Index out) {
    return static_cast<Index>(std::ceil(static_cast<double>((i + 1) * in) / static_cast<double>(out)));
  };
  for (Index s = 0; s < n; ++s)
    for (Index ch = 0; ch < c; ++ch)
      for (Index i = 0; i < oh; ++i)
        for (Index j = 0; j < ow; ++j) {
          double sum = 0.0;
          Index count = 0;
          for (Index r = lo(i, h, oh); r < hi(i, h, oh); ++r)
            for (Index q = lo(j, w, ow); q < hi(j, w, ow); ++q) {
              sum += static_cast<double>(x(s, ch, r, q));
              ++count;
            }
          y(s, ch, i, j) = sum / static_cast<double>(count);
        }
  return y;
}

struct Sizes {
  Index h, w, oh, ow;
};

// divisible, overlapping (7->3, 5->2), identity, replication (1->4), non-square, mixed.
const Sizes kSizes[] = {{6, 6, 3, 3}, {8, 4, 2, 2}, {7, 7, 3, 3}, {5, 5, 2, 2}, {6, 6, 6, 6}, {1, 1, 4, 4},
                        {7, 5, 3, 2}, {4, 6, 3, 4}, {10, 3, 4, 5}, {3, 3, 1, 1}, {13, 13, 6, 6}, {2, 9, 5, 7}};

template <typename T>
class AdaptiveAvgPool2dTyped : public ::testing::Test {};
TYPED_TEST_SUITE(AdaptiveAvgPool2dTyped, convkit::testing::Scalars);

TYPED_TEST(AdaptiveAvgPool2dTyped, ForwardMatchesDirectLoops) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 1e-6 : 1e-14;
  Rng rng = seeded_rng(401);
  for (const Sizes& s : kSizes) {
    Tensor<T> x(Shape{2, 3, s.h, s.w});
    for (T& v : x) v = static_cast<T>(rng.normal());
    AdaptiveAvgPool2d<T> pool(s.oh, s.ow);
    const Tensor<T> y = pool.forward(x);
    const Tensor<double> ref = reference_adaptive(x, s.oh, s.ow);
    const std::string where = pool.describe() + " on " + x.shape().to_string();
    ASSERT_EQ(y.shape(), ref.shape()) << where;
    EXPECT_EQ(pool.output_shape(x.shape()), ref.shape()) << where;
    for (Index i = 0; i < y.numel(); ++i) ASSERT_NEAR(static_cast<double>(y[i]), ref[i], tol) << where << " at " << i;
  }
}

TYPED_TEST(AdaptiveAvgPool2dTyped, IdentityAndReplicationAreExact) {
  using T = TypeParam;
  Rng rng = seeded_rng(402);
  Tensor<T> x(Shape{2, 2, 5, 3});
  for (T& v : x) v = static_cast<T>(rng.normal());
  AdaptiveAvgPool2d<T> same(5, 3);
  const Tensor<T> y = same.forward(x);
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(y[i], x[i]);

  // 1x1 -> 4x4 copies each value; 2x1 -> 4x3 copies each row twice and each column three times.
  Tensor<T> one(Shape{1, 2, 1, 1});
  one[0] = T(3.5), one[1] = T(-2);
  const Tensor<T> up = AdaptiveAvgPool2d<T>(4).forward(one);
  ASSERT_EQ(up.shape(), (Shape{1, 2, 4, 4}));
  for (Index i = 0; i < 16; ++i) {
    EXPECT_EQ(up[i], T(3.5));
    EXPECT_EQ(up[16 + i], T(-2));
  }
  Tensor<T> col(Shape{1, 1, 2, 1});
  col[0] = T(1), col[1] = T(7);
  const Tensor<T> rep = AdaptiveAvgPool2d<T>(4, 3).forward(col);
  for (Index r = 0; r < 4; ++r)
    for (Index q = 0; q < 3; ++q) EXPECT_EQ(rep(0, 0, r, q), r < 2 ? T(1) : T(7)) << r << q;
}

TEST(AdaptiveAvgPool2d, OverlappingWindowsByHand) {
  // W = 5 -> 2: windows [0, 3) and [2, 5), sharing column 2.
  Tensor<double> x(Shape{1, 1, 1, 5});
  for (Index i = 0; i < 5; ++i) x[i] = static_cast<double>(i + 1);
  AdaptiveAvgPool2d<double> pool(1, 2);
  const Tensor<double> y = pool.forward(x);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 1, 2}));
  EXPECT_DOUBLE_EQ(y[0], 2.0);  // (1 + 2 + 3) / 3
  EXPECT_DOUBLE_EQ(y[1], 4.0);  // (3 + 4 + 5) / 3
  Tensor<double> g(Shape{1, 1, 1, 2});
  g[0] = 3.0, g[1] = 6.0;
  const Tensor<double> dx = pool.backward(g);
  const std::vector<double> expected = {1.0, 1.0, 3.0, 2.0, 2.0};
  for (Index i = 0; i < 5; ++i) EXPECT_DOUBLE_EQ(dx[i], expected[static_cast<std::size_t>(i)]) << i;

  // H = 7 -> 3: rows [0, 3), [2, 5), [4, 7).
  Tensor<double> col(Shape{1, 1, 7, 1});
  for (Index i = 0; i < 7; ++i) col[i] = static_cast<double>(i * i);
  const Tensor<double> yc = AdaptiveAvgPool2d<double>(3, 1).forward(col);
  EXPECT_DOUBLE_EQ(yc[0], (0.0 + 1 + 4) / 3);
  EXPECT_DOUBLE_EQ(yc[1], (4.0 + 9 + 16) / 3);
  EXPECT_DOUBLE_EQ(yc[2], (16.0 + 25 + 36) / 3);
}

TEST(AdaptiveAvgPool2d, Gradcheck) {
  Rng rng = seeded_rng(403);
  for (const Sizes& s : kSizes) {
    AdaptiveAvgPool2d<double> pool(s.oh, s.ow);
    EXPECT_TRUE(gradcheck_layer(pool, random_normal(Shape{2, 2, s.h, s.w}, rng), rng))
        << pool.describe() << " on " << s.h << "x" << s.w;
  }
}

TEST(AdaptiveAvgPool2d, BackwardSpreadsEveryGradientOnce) {
  // Σ dx = Σ dy for any sizes: every output's gradient is split over its window.
  Rng rng = seeded_rng(404);
  AdaptiveAvgPool2d<double> pool(3, 4);
  const Tensor<double> x = random_normal(Shape{2, 3, 7, 10}, rng);
  pool.forward(x);
  const Tensor<double> g = random_normal(Shape{2, 3, 3, 4}, rng);
  const Tensor<double> dx = pool.backward(g);
  ASSERT_EQ(dx.shape(), x.shape());
  for (Index p = 0; p < 6; ++p) {
    double sg = 0, sx = 0;
    for (Index i = 0; i < 12; ++i) sg += g[p * 12 + i];
    for (Index i = 0; i < 70; ++i) sx += dx[p * 70 + i];
    EXPECT_NEAR(sx, sg, 1e-12) << "plane " << p;
  }
}

TEST(AdaptiveAvgPool2d, DescribeAndOutputShape) {
  EXPECT_EQ(AdaptiveAvgPool2d<float>(6).describe(), "AdaptiveAvgPool2d(6x6)");
  EXPECT_EQ(AdaptiveAvgPool2d<double>(7, 3).describe(), "AdaptiveAvgPool2d(7x3)");
  const AdaptiveAvgPool2d<float> pool(7);
  EXPECT_EQ(pool.output_shape(Shape{4, 512, 13, 9}), (Shape{4, 512, 7, 7}));
  EXPECT_EQ(pool.output_shape(Shape{1, 2, 1, 1}), (Shape{1, 2, 7, 7}));
  EXPECT_EQ(pool.parameter_count(), 0);
}

TEST(AdaptiveAvgPool2d, Errors) {
  const std::string zero = message_of<ValueError>([] { AdaptiveAvgPool2d<float> p(0); });
  EXPECT_TRUE(starts_with(zero, "AdaptiveAvgPool2d: expected an output size >= 1, got 0x0")) << zero;
  const std::string zero_w = message_of<ValueError>([] { AdaptiveAvgPool2d<float> p(3, 0); });
  EXPECT_TRUE(contains(zero_w, "got 3x0")) << zero_w;
  const std::string neg_h = message_of<ValueError>([] { AdaptiveAvgPool2d<double> p(-1, 2); });
  EXPECT_TRUE(contains(neg_h, "got -1x2")) << neg_h;

  AdaptiveAvgPool2d<float> pool(3);
  const std::string rank2 = message_of<ShapeError>([&] { pool.forward(Tensor<float>(Shape{2, 3})); });
  EXPECT_TRUE(starts_with(rank2, "AdaptiveAvgPool2d(3x3): expected input (N, C, H, W) with H, W >= 1")) << rank2;
  EXPECT_TRUE(contains(rank2, "got (2, 3)")) << rank2;
  const std::string empty = message_of<ShapeError>([&] { pool.output_shape(Shape{1, 2, 0, 4}); });
  EXPECT_TRUE(contains(empty, "got (1, 2, 0, 4)")) << empty;

  pool.forward(Tensor<float>(Shape{1, 2, 5, 5}));
  const std::string bw = message_of<ShapeError>([&] { pool.backward(Tensor<float>(Shape{1, 2, 5, 5})); });
  EXPECT_TRUE(contains(bw, "expected grad_output (1, 2, 3, 3)")) << bw;
  // the op's own check
  const std::string op = message_of<ShapeError>(
      [] { convkit::ops::adaptive_avg_pool2d_backward(Tensor<float>(Shape{1, 3, 2, 2}), Shape{1, 2, 4, 4}); });
  EXPECT_TRUE(starts_with(op, "adaptive_avg_pool2d_backward: expected grad_output (1, 2, OH, OW), got (1, 3, 2, 2)"))
      << op;
}

}  // namespace
