// Flatten: shapes, data order, gradient reshaped back, gradient check and errors.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include <convkit/layers/flatten.h>

#include "support/expect.h"
#include "support/gradcheck.h"
#include "support/seed.h"

namespace {

using convkit::testing::message_of;

using convkit::Flatten;
using convkit::Index;
using convkit::Rng;
using convkit::Shape;
using convkit::ShapeError;
using convkit::StateError;
using convkit::Tensor;
using convkit::testing::gradcheck_layer;
using convkit::testing::random_normal;
using convkit::testing::seeded_rng;

template <typename T>
class FlattenTyped : public ::testing::Test {};
TYPED_TEST_SUITE(FlattenTyped, convkit::testing::Scalars);

TYPED_TEST(FlattenTyped, OutputShapes) {
  using T = TypeParam;
  Flatten<T> f;
  EXPECT_EQ(f.describe(), "Flatten");
  EXPECT_EQ(f.output_shape(Shape{8, 16, 5, 5}), (Shape{8, 400}));
  EXPECT_EQ(f.output_shape(Shape{2, 3, 4}), (Shape{2, 12}));
  EXPECT_EQ(f.output_shape(Shape{4, 10}), (Shape{4, 10}));
  EXPECT_EQ(f.output_shape(Shape{5}), (Shape{5, 1}));
  EXPECT_EQ(f.output_shape(Shape{1, 512, 1, 1}), (Shape{1, 512}));
  EXPECT_EQ(f.output_shape(Shape{0, 3, 2, 2}), (Shape{0, 0}));
  EXPECT_TRUE(f.parameters().empty());
}

TYPED_TEST(FlattenTyped, KeepsRowMajorOrderAndReshapesGradientBack) {
  using T = TypeParam;
  Flatten<T> f;
  Tensor<T> x(Shape{2, 3, 2, 2});
  for (Index i = 0; i < x.numel(); ++i) x[i] = static_cast<T>(i) - T(7);
  const Tensor<T> y = f.forward(x);
  ASSERT_EQ(y.shape(), (Shape{2, 12}));
  // y[n, (c·H + h)·W + w] = x[n, c, h, w]
  for (Index n = 0; n < 2; ++n)
    for (Index c = 0; c < 3; ++c)
      for (Index h = 0; h < 2; ++h)
        for (Index w = 0; w < 2; ++w) EXPECT_EQ(y(n, (c * 2 + h) * 2 + w), x(n, c, h, w));
  Tensor<T> g(Shape{2, 12});
  for (Index i = 0; i < g.numel(); ++i) g[i] = static_cast<T>(3 * i);
  const Tensor<T> dx = f.backward(g);
  ASSERT_EQ(dx.shape(), (Shape{2, 3, 2, 2}));
  for (Index i = 0; i < dx.numel(); ++i) EXPECT_EQ(dx[i], g[i]);
  // The input is not modified (a copy, not a move, of the caller's tensor).
  for (Index i = 0; i < x.numel(); ++i) EXPECT_EQ(x[i], static_cast<T>(i) - T(7));
  EXPECT_EQ(x.shape(), (Shape{2, 3, 2, 2}));
}

TEST(FlattenGradcheck, FourDimensional) {
  Rng rng = seeded_rng(81);
  Flatten<double> f;
  EXPECT_TRUE(gradcheck_layer(f, random_normal(Shape{2, 3, 2, 3}, rng), rng));
}

TEST(FlattenGradcheck, ThreeDimensional) {
  Rng rng = seeded_rng(82);
  Flatten<double> f;
  EXPECT_TRUE(gradcheck_layer(f, random_normal(Shape{3, 2, 4}, rng), rng));
}

TEST(FlattenErrors, RankZeroAndStateErrors) {
  Flatten<float> f;
  EXPECT_EQ(message_of<ShapeError>([&] { f.output_shape(Shape{}); }),
            "Flatten: expected input (N, ...) of rank >= 1, got ()");
  EXPECT_EQ(message_of<StateError>([&] { f.backward(Tensor<float>(Shape{2, 4})); }),
            "Flatten: backward called before forward");
  f.forward(Tensor<float>(Shape{2, 2, 1, 2}));
  EXPECT_EQ(message_of<ShapeError>([&] { f.backward(Tensor<float>(Shape{2, 2, 1, 2})); }),
            "Flatten: expected grad_output (2, 4) (the last forward's output), got (2, 2, 1, 2)");
}

}  // namespace
