// Tests of Shape, Tensor<T>, Parameter<T> and the error/check machinery.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

#include <convkit/core/error.h>
#include <convkit/core/parameter.h>
#include <convkit/core/shape.h>
#include <convkit/core/tensor.h>

#include "support/seed.h"

namespace convkit {
namespace {

template <typename E, typename Fn>
std::string message_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an exception";
  return "";
}

TEST(Shape, RankNumelAndPrinting) {
  EXPECT_EQ(Shape().rank(), 0);
  EXPECT_EQ(Shape().numel(), 1);
  const Shape s{8, 3, 32, 32};
  EXPECT_EQ(s.rank(), 4);
  EXPECT_EQ(s[1], 3);
  EXPECT_EQ(s.numel(), 8 * 3 * 32 * 32);
  EXPECT_EQ(s.to_string(), "(8, 3, 32, 32)");
  EXPECT_EQ(Shape{10}.to_string(), "(10)");
  EXPECT_EQ((Shape{4, 0}.numel()), 0);
  EXPECT_EQ((Shape{2, 3}), (Shape{2, 3}));
  EXPECT_NE((Shape{2, 3}), (Shape{3, 2}));
  EXPECT_NE((Shape{6}), (Shape{6, 1}));
}

TEST(Shape, BadDimensionsThrowWithTheValue) {
  EXPECT_NE(message_of<ValueError>([] { Shape({1, 2, 3, 4, 5}); }).find("at most 4 dimensions, got 5"),
            std::string::npos);
  EXPECT_NE(message_of<ValueError>([] { Shape({2, -1}); }).find("got -1"), std::string::npos);
  EXPECT_NE(message_of<ShapeError>([] { (void)Shape({2, 3})[2]; }).find("dimension 2 does not exist"),
            std::string::npos);
}

template <typename T>
class TensorTest : public ::testing::Test {};
TYPED_TEST_SUITE(TensorTest, testing::Scalars);

TYPED_TEST(TensorTest, ZeroInitialisedAlignedRowMajor) {
  using T = TypeParam;
  Tensor<T> t(Shape{2, 3, 4, 5});
  EXPECT_EQ(t.numel(), 120);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % 64, 0u);
  for (T v : t) EXPECT_EQ(v, T(0));
  t(1, 2, 3, 4) = T(7);
  EXPECT_EQ(t[((1 * 3 + 2) * 4 + 3) * 5 + 4], T(7));
  EXPECT_EQ(t.at(1, 2, 3, 4), T(7));
  t.fill(T(1.5));
  EXPECT_EQ(t[0], T(1.5));
  EXPECT_EQ(t[119], T(1.5));
}

TYPED_TEST(TensorTest, CopyIsDeepMoveIsCheap) {
  using T = TypeParam;
  Tensor<T> a(Shape{3, 4}, T(2));
  Tensor<T> b = a;
  b[0] = T(9);
  EXPECT_EQ(a[0], T(2));
  const T* data = a.data();
  Tensor<T> c = std::move(a);
  EXPECT_EQ(c.data(), data);
  EXPECT_EQ(c.shape(), (Shape{3, 4}));
  EXPECT_EQ(a.numel(), 0);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  Tensor<T> d(Shape{1});
  d = c;
  EXPECT_EQ(d.shape(), (Shape{3, 4}));
  EXPECT_EQ(d[11], T(2));
}

TYPED_TEST(TensorTest, ReshapeKeepsDataAndChecksCount) {
  using T = TypeParam;
  Tensor<T> t(Shape{2, 6});
  for (Index i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(i);
  const Tensor<T> r = t.reshaped(Shape{3, 2, 2});
  EXPECT_EQ(r.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(r(2, 1, 1), T(11));
  const std::string msg = message_of<ShapeError>([&] { (void)t.reshaped(Shape{5, 2}); });
  EXPECT_NE(msg.find("expected a shape of 12 elements"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got (5, 2) (10 elements)"), std::string::npos) << msg;
}

TYPED_TEST(TensorTest, CheckedAccessNamesTheBadIndex) {
  using T = TypeParam;
  Tensor<T> t(Shape{2, 3});
  std::string msg = message_of<ShapeError>([&] { (void)t.at(0, 3); });
  EXPECT_NE(msg.find("index 3 of dimension 1 is out of range for shape (2, 3)"), std::string::npos) << msg;
  msg = message_of<ShapeError>([&] { (void)t.at(1); });
  EXPECT_NE(msg.find("expected 2 indices for shape (2, 3), got 1"), std::string::npos) << msg;
}

TEST(Parameter, GradIsAllocatedOnDemandWithTheValuesShape) {
  Parameter<float> p("weight", Shape{4, 3});
  EXPECT_EQ(p.name, "weight");
  EXPECT_EQ(p.value.shape(), (Shape{4, 3}));
  EXPECT_FALSE(p.has_grad());
  EXPECT_EQ(p.grad.numel(), 0);
  Tensor<float>& g = p.ensure_grad();
  EXPECT_TRUE(p.has_grad());
  EXPECT_EQ(&g, &p.grad);
  EXPECT_EQ(p.grad.shape(), (Shape{4, 3}));
  for (float v : p.grad) EXPECT_EQ(v, 0.0f);
  g[0] = 2.0f;
  EXPECT_EQ(p.ensure_grad()[0], 2.0f);  // a second call keeps the values
  EXPECT_TRUE(p.trainable);
  Parameter<double> buffer("running_mean", Shape{8}, false);
  EXPECT_FALSE(buffer.trainable);
}

TEST(Check, BuildsTheMessageOnlyOnFailure) {
  int evaluated = 0;
  auto expensive = [&] {
    ++evaluated;
    return 42;
  };
  CONVKIT_CHECK(true, ValueError, "never " << expensive());
  EXPECT_EQ(evaluated, 0);
  const std::string msg = message_of<ValueError>([&] { CONVKIT_CHECK(false, ValueError, "got " << expensive()); });
  EXPECT_EQ(msg, "got 42");
  EXPECT_EQ(evaluated, 1);
}

TEST(Errors, HierarchyDerivesFromRuntimeError) {
  EXPECT_THROW(throw ShapeError("s"), Error);
  EXPECT_THROW(throw ValueError("v"), Error);
  EXPECT_THROW(throw StateError("t"), Error);
  EXPECT_THROW(throw IoError("i"), Error);
  EXPECT_THROW(throw FormatError("f"), std::runtime_error);
}

}  // namespace
}  // namespace convkit

namespace convkit {
namespace {

TEST(BlockCache, SizeClassesWasteAtMostAQuarterAndReuseBlocks) {
  using detail::BlockCache;
  EXPECT_EQ(BlockCache::size_class(1000), 1000u);  // small blocks are not rounded
  for (std::size_t bytes : {std::size_t{65536}, std::size_t{70000}, std::size_t{1000000}, std::size_t{1234567}}) {
    const std::size_t cls = BlockCache::size_class(bytes);
    EXPECT_GE(cls, bytes);
    EXPECT_LE(cls, bytes + bytes / 4 + 1) << bytes;
    EXPECT_EQ(cls % 64, 0u);
  }
  // A freed large tensor's block is handed to the next tensor of the same size class.
  const float* first = nullptr;
  {
    Tensor<float> a(Shape{300000});
    first = a.data();
  }
  Tensor<float> b(Shape{300000});
  EXPECT_EQ(b.data(), first);
  for (float v : b) ASSERT_EQ(v, 0.0f);  // reused storage is still zero-initialised
}

}  // namespace
}  // namespace convkit
