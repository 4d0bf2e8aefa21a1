// gemm (all transpositions, strided storage, alpha/beta, k = 0) and the fully connected op
// against triple loops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <convkit/ops/gemm.h>
#include <convkit/ops/linear.h>

#include "support/reference_ops.h"
#include "support/seed.h"

namespace convkit {
namespace {

using testing::ref::all_close;

ops::Trans trans(bool t) { return t ? ops::Trans::kYes : ops::Trans::kNo; }

/// alpha · op(A) · op(B) + beta · C by triple loop in double; beta = 0 ignores C (even NaN).
template <typename T>
Tensor<T> reference_gemm(bool ta, bool tb, Index m, Index n, Index k, double alpha, const Tensor<T>& a,
                         Index lda, const Tensor<T>& b, Index ldb, double beta, const Tensor<T>& c,
                         Index ldc) {
  Tensor<T> expected = c;
  for (Index i = 0; i < m; ++i)
    for (Index j = 0; j < n; ++j) {
      double s = 0.0;
      for (Index q = 0; q < k; ++q) {
        const double av = ta ? a[q * lda + i] : a[i * lda + q];
        const double bv = tb ? b[j * ldb + q] : b[q * ldb + j];
        s += av * bv;
      }
      const double old = beta == 0.0 ? 0.0 : beta * static_cast<double>(c[i * ldc + j]);
      expected[i * ldc + j] = static_cast<T>(alpha * s + old);
    }
  return expected;
}

template <typename T>
class Gemm : public ::testing::Test {
 protected:
  static double tol() { return std::is_same_v<T, float> ? 1e-5 : 1e-13; }
};
TYPED_TEST_SUITE(Gemm, testing::Scalars);

// Every transposition, with padded rows, for a small matrix, a single row or column of C
// (Eigen's matrix-vector kernels, each reading or writing a strided vector in one of the
// transpositions), a single element, longer vectors that fill whole SIMD registers, and
// C of 3 rows or 2 columns (one matrix-vector product per row or column).
TYPED_TEST(Gemm, AllTranspositionsWithLeadingDimensionsAlphaAndBeta) {
  using T = TypeParam;
  struct Size {
    Index m, n, k;
  };
  const Index pad = 3;  // stored rows are `pad` wider than needed
  Rng rng = testing::seeded_rng(81);
  for (const Size size : {Size{5, 7, 6}, Size{1, 7, 6}, Size{5, 1, 6}, Size{1, 1, 6}, Size{1, 37, 70},
                          Size{37, 1, 70}, Size{3, 37, 70}, Size{37, 2, 70}, Size{2, 3, 1}})
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (double beta : {0.0, 1.0, -0.5}) {
        const Index m = size.m, n = size.n, k = size.k;
        const Index a_rows = ta ? k : m, a_cols = ta ? m : k;
        const Index b_rows = tb ? n : k, b_cols = tb ? k : n;
        const Index lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
        const Tensor<T> a = testing::ref::uniform<T>(Shape{a_rows, lda}, rng);
        const Tensor<T> b = testing::ref::uniform<T>(Shape{b_rows, ldb}, rng);
        Tensor<T> c = testing::ref::uniform<T>(Shape{m, ldc}, rng);
        if (beta == 0.0)  // beta = 0 must ignore C, even NaN in it
          for (T& v : c) v = std::numeric_limits<T>::quiet_NaN();
        const double alpha = 1.5;
        Tensor<T> expected = reference_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        ops::gemm(trans(ta), trans(tb), m, n, k, T(alpha), a.data(), lda, b.data(), ldb, T(beta), c.data(),
                  ldc);
        // The padding columns of C are left as they were (NaN compares unequal: check bits).
        for (Index i = 0; i < m; ++i)
          for (Index j = n; j < ldc; ++j) {
            const T got = c[i * ldc + j], want = expected[i * ldc + j];
            EXPECT_TRUE(got == want || (std::isnan(got) && std::isnan(want)));
            c[i * ldc + j] = expected[i * ldc + j] = T(0);
          }
        EXPECT_TRUE(all_close(c, expected, TestFixture::tol()))
            << "m " << m << " n " << n << " k " << k << " ta " << ta << " tb " << tb << " beta " << beta;
      }
}

// Sizes that cross every blocking boundary of the packed float GEMM (ops/packed_gemm.h):
// partial register tiles in both directions (with AVX-512's 12-row panels, m = 61, 613 and
// 16 end in two panels that share the remainder: 7 + 6, 7 + 6 and 8 + 8), several k-slices
// (k > 256), one column block (A packed panel by panel as it is used) and several (A packed
// first), last column tiles of up to one vector (the one-vector kernel; 208 columns end in one
// whole vector on AVX-512, 421 and 77 in part of one); on 1 and, with OpenMP, 2 threads (the
// first three products are above the threading threshold: the first, wider than tall, splits
// columns between the threads; the second and third, not, split row panels, the third over
// two column blocks). Each thread count must give the same bits. The last two products,
// above the threshold, go to Eigen's matrix-vector kernel: 3 rows (one call per row, the
// threads sharing the columns) and 3 columns (one call per column, the threads sharing the
// rows). Its results too must not
// depend on the thread count: k = 1005 leaves a remainder of 5 after 8-float packets, which
// a row summed alone (not in a group of rows) adds in half packets, and 6702 / 2 = 3351 is
// odd, so splitting the 3-row product's columns evenly rather than on multiples of kShare
// would change bits.
TYPED_TEST(Gemm, LargeOddSizesAcrossBlocksAndThreads) {
  using T = TypeParam;
  struct Size {
    Index m, n, k;
  };
  const Index pad = 5;
  Rng rng = testing::seeded_rng(82);
  for (const Size size : {Size{61, 421, 797}, Size{1103, 37, 501}, Size{613, 421, 300}, Size{16, 77, 390},
                          Size{45, 208, 390}, Size{3, 6702, 1005}, Size{6701, 3, 1005}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (double beta : {0.0, -0.5}) {
          const Index m = size.m, n = size.n, k = size.k;
          const bool gemv = m <= 3 || n <= 3;  // Eigen's matrix-vector kernel, unless packed
          if (gemv) {  // meant to be threaded
            ASSERT_GE(static_cast<double>(m) * n * k, ops::detail::kMinThreadedGemmWork);
          }
          const Index lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
          const Tensor<T> a = testing::ref::uniform<T>(Shape{ta ? k : m, lda}, rng);
          const Tensor<T> b = testing::ref::uniform<T>(Shape{tb ? n : k, ldb}, rng);
          const Tensor<T> c0 = testing::ref::uniform<T>(Shape{m, ldc}, rng);
          const Tensor<T> expected = reference_gemm(ta, tb, m, n, k, 0.75, a, lda, b, ldb, beta, c0, ldc);
          Tensor<T> first;
          for (int threads : {1, 2}) {
#ifdef _OPENMP
            const int saved = omp_get_max_threads();
            omp_set_num_threads(threads);
#else
            if (threads > 1) continue;
#endif
            Tensor<T> c = c0;
            ops::gemm(trans(ta), trans(tb), m, n, k, T(0.75), a.data(), lda, b.data(), ldb, T(beta), c.data(),
                      ldc);
#ifdef _OPENMP
            omp_set_num_threads(saved);
#endif
            // Sums of up to 1005 products of terms below 1: float rounding stays under 1e-4.
            EXPECT_TRUE(all_close(c, expected, std::is_same_v<T, float> ? 1e-4 : 1e-12))
                << "m " << m << " ta " << ta << " tb " << tb << " beta " << beta << " threads " << threads;
            // convkit's packed float kernel splits threads over whole output blocks, never over k,
            // so its result does not depend on the thread count; nor does Eigen's matrix-vector
            // kernel's (ops::gemm's shares start on multiples of kShare). Eigen's GEMM blocks
            // each thread's share for its own size, so it may sum in another order.
            bool same_bits = gemv;
#ifdef CONVKIT_PACKED_GEMM
            same_bits = same_bits || std::is_same_v<T, float>;
#endif
            if (threads == 1) {
              first = c;
            } else if (same_bits) {
              EXPECT_TRUE(std::equal(c.begin(), c.end(), first.begin()))
                  << "1 vs 2 threads differ: m " << m << " n " << n << " ta " << ta << " tb " << tb;
            }
          }
        }
}

#ifdef CONVKIT_PACKED_GEMM
// A packed once (packed::pack_a_once) and handed to several products gives the same bits as
// each product packing it itself: m not a multiple of the panel height, k over one kKC slice,
// one column block and several, A stored and transposed, alpha folded in, on 1 and 2 threads.
TEST(PackedGemm, PrepackedAGivesTheSameBits) {
  namespace packed = ops::detail::packed;
  Rng rng = testing::seeded_rng(83);
  const Index m = 70, k = packed::kKC + 45;
  for (const Index n : {packed::kNC - 9, 3 * packed::kNC + 5})
    for (bool ta : {false, true})
      for (int threads : {1, 2}) {
        const Index lda = (ta ? m : k) + 3;
        const Tensor<float> a = testing::ref::uniform<float>(Shape{ta ? k : m, lda}, rng);
        const Tensor<float> b = testing::ref::uniform<float>(Shape{k, n}, rng);
        const Tensor<float> c0 = testing::ref::uniform<float>(Shape{m, n}, rng);
        Tensor<float> want = c0, got = c0;
        packed::sgemm(ta, false, m, n, k, 0.5f, a.data(), lda, b.data(), n, 1.0f, want.data(), n, threads);
        const float* ap = packed::pack_a_once(ta, m, k, 0.5f, a.data(), lda, threads);
        packed::sgemm_with(ta, m, n, k, 0.5f, nullptr, lda, packed::MatrixB{false, b.data(), n}, 1.0f, got.data(), n,
                           threads, ap);
        EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin())) << "n " << n << " ta " << ta << " threads " << threads;
        EXPECT_TRUE(all_close(want, reference_gemm(ta, false, m, n, k, 0.5, a, lda, b, n, 1.0, c0, n), 1e-4));
      }
}

// A bias given to sgemm_with is added to each row after the product: the same bits as the
// product without it followed by one addition per value, for row counts off the panel height,
// k over one kKC slice, one column block and several, A packed by the product or beforehand,
// beta 0 and another, on 1 and 2 threads (splitting columns where C is wider than tall, row
// panels otherwise).
TEST(PackedGemm, RowBiasGivesTheBitsOfASeparateAddition) {
  namespace packed = ops::detail::packed;
  Rng rng = testing::seeded_rng(91);
  struct Size {
    Index m, n;
  };
  const Index k = packed::kKC + 45;
  for (const Size size : {Size{70, 3 * packed::kNC + 5}, Size{613, 421}, Size{500, 200}})
    for (bool prepack : {false, true})
      for (float beta : {0.0f, -0.5f})
        for (int threads : {1, 2}) {
          const Index m = size.m, n = size.n;
          const Tensor<float> a = testing::ref::uniform<float>(Shape{m, k}, rng);
          const Tensor<float> b = testing::ref::uniform<float>(Shape{k, n}, rng);
          const Tensor<float> c0 = testing::ref::uniform<float>(Shape{m, n}, rng);
          const Tensor<float> bias = testing::ref::uniform<float>(Shape{m}, rng);
          const float* ap = prepack ? packed::pack_a_once(false, m, k, 0.5f, a.data(), k, threads) : nullptr;
          Tensor<float> want = c0, got = c0;
          packed::sgemm_with(false, m, n, k, 0.5f, a.data(), k, packed::MatrixB{false, b.data(), n}, beta,
                             want.data(), n, threads, ap);
          for (Index i = 0; i < m; ++i)
            for (Index j = 0; j < n; ++j) want[i * n + j] += bias[i];
          packed::sgemm_with(false, m, n, k, 0.5f, a.data(), k, packed::MatrixB{false, b.data(), n}, beta,
                             got.data(), n, threads, ap, bias.data());
          EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin()))
              << "m " << m << " n " << n << " prepacked " << prepack << " beta " << beta << " threads "
              << threads;
        }
}

// The one-vector kernel for a last tile of at most kLanes columns gives those columns the
// bits the full kNR-column kernel gives them, for full and partial row counts, overwriting C
// and adding to it, over k = 2 runs of B with a gap between them.
template <int R>
void expect_one_vector_tile_as_full(Rng& rng) {
  namespace packed = ops::detail::packed;
  const Index runs = 2, len = 37, skip = 3 * packed::kNR, steps = runs * len;
  const Tensor<float> a = testing::ref::uniform<float>(Shape{steps, packed::kMR}, rng);
  const Tensor<float> b = testing::ref::uniform<float>(Shape{steps * packed::kNR + runs * skip}, rng);
  const Tensor<float> c0 = testing::ref::uniform<float>(Shape{R, packed::kNR}, rng);
  for (int cols : {1, 5, packed::kLanes})
    for (bool accumulate : {false, true}) {
      Tensor<float> full = c0, one = c0;
      packed::micro_kernel_runs<R>(runs, len, skip, a.data(), b.data(), full.data(), packed::kNR, packed::kNR,
                                   accumulate);
      packed::run_kernel_runs(R, runs, len, skip, a.data(), b.data(), one.data(), packed::kNR, cols,
                              accumulate);
      for (Index i = 0; i < R; ++i)
        for (Index j = 0; j < packed::kNR; ++j)
          EXPECT_EQ(one[i * packed::kNR + j], j < cols ? full[i * packed::kNR + j] : c0[i * packed::kNR + j])
              << "rows " << R << " cols " << cols << " accumulate " << accumulate << " at " << i << ", " << j;
    }
}

TEST(PackedGemm, OneVectorTileGivesTheFullTilesBits) {
  Rng rng = testing::seeded_rng(92);
  expect_one_vector_tile_as_full<1>(rng);
  expect_one_vector_tile_as_full<5>(rng);
  expect_one_vector_tile_as_full<ops::detail::packed::kMR>(rng);
}

// A product with few columns and many rows is computed as its transpose (packed::sgemm, see
// product_transposed): the same bits as the direct product (sgemm_with and MatrixB), for every
// transposition, beta 0, 1 and another, k over one kKC slice, 1 and 2 threads, column counts on
// both sides of the switch, and operands with and without padding after their rows.
TEST(PackedGemm, TransposedProductGivesTheSameBits) {
  namespace packed = ops::detail::packed;
  Rng rng = testing::seeded_rng(89);
  const Index m = 3 * packed::kTransposedProductColumns + 7, k = packed::kKC + 21;
  const Index last = packed::kTransposedProductColumns - 1, first_direct = packed::kTransposedProductColumns;
  for (const Index n : {Index{5}, Index{49}, last, first_direct}) {
    ASSERT_EQ(packed::product_transposed(m, n, 1.0f), n != first_direct) << "n " << n;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.0f, 1.0f, -0.5f})
          for (int threads : {1, 2}) {
            const Index pad = beta == 1.0f ? 0 : 2;  // no padding: an over-read leaves the buffer
            const Index lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
            const Tensor<float> a = testing::ref::uniform<float>(Shape{ta ? k : m, lda}, rng);
            const Tensor<float> b = testing::ref::uniform<float>(Shape{tb ? n : k, ldb}, rng);
            const Tensor<float> c0 = testing::ref::uniform<float>(Shape{m, ldc}, rng);
            Tensor<float> want = c0, got = c0;
            packed::sgemm_with(ta, m, n, k, 1.0f, a.data(), lda, packed::MatrixB{tb, b.data(), ldb}, beta,
                               want.data(), ldc, threads);
            packed::sgemm(ta, tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, beta, got.data(), ldc,
                          threads);
            EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin()))
                << "n " << n << " ta " << ta << " tb " << tb << " beta " << beta << " threads " << threads;
            const Tensor<float> exact =
                reference_gemm(ta, tb, m, n, k, 1.0, a, lda, b, ldb, double{beta}, c0, ldc);
            EXPECT_TRUE(all_close(want, exact, 1e-4));
          }
  }
}
#endif

// k = 0 only scales C, on Eigen's path (2 rows) and, for float with AVX2, the packed one (5).
TYPED_TEST(Gemm, EmptyInnerDimensionScalesC) {
  using T = TypeParam;
  for (const Index m : {2, 5}) {
    Tensor<T> c(Shape{m, 3}, T(4));
    ops::gemm(ops::Trans::kNo, ops::Trans::kNo, m, 3, 0, T(1), static_cast<const T*>(nullptr), 1,
              static_cast<const T*>(nullptr), 3, T(0.5), c.data(), 3);
    for (T v : c) EXPECT_EQ(v, T(2));
    ops::gemm(ops::Trans::kNo, ops::Trans::kNo, m, 3, 0, T(1), static_cast<const T*>(nullptr), 1,
              static_cast<const T*>(nullptr), 3, T(0), c.data(), 3);
    for (T v : c) EXPECT_EQ(v, T(0));
  }
}

template <typename T>
class Linear : public ::testing::Test {};
TYPED_TEST_SUITE(Linear, testing::Scalars);

TYPED_TEST(Linear, ForwardBackwardAgainstLoops) {
  using T = TypeParam;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  const Index n = 4, f = 9, o = 6;
  Rng rng = testing::seeded_rng(91);
  // x given as (N, 1, 3, 3): read as (N, F) by its first dimension.
  const Tensor<T> x = testing::ref::uniform<T>(Shape{n, 1, 3, 3}, rng);
  const Tensor<T> w = testing::ref::uniform<T>(Shape{o, f}, rng);
  const Tensor<T> b = testing::ref::uniform<T>(Shape{o}, rng);
  const Tensor<T> dy = testing::ref::uniform<T>(Shape{n, o}, rng);

  Tensor<T> y_ref(Shape{n, o}), y_nobias_ref(Shape{n, o}), dx_ref(x.shape()), dw_ref(w.shape()),
      db_ref(b.shape());
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < o; ++j) {
      double s = 0.0;
      for (Index q = 0; q < f; ++q) s += static_cast<double>(x[i * f + q]) * w[j * f + q];
      y_nobias_ref[i * o + j] = static_cast<T>(s);
      y_ref[i * o + j] = static_cast<T>(s + b[j]);
    }
  for (Index i = 0; i < n; ++i)
    for (Index q = 0; q < f; ++q) {
      double s = 0.0;
      for (Index j = 0; j < o; ++j) s += static_cast<double>(dy[i * o + j]) * w[j * f + q];
      dx_ref[i * f + q] = static_cast<T>(s);
    }
  // Pre-filled parameter gradients: the op adds.
  Tensor<T> gw = testing::ref::uniform<T>(w.shape(), rng), gb = testing::ref::uniform<T>(b.shape(), rng);
  for (Index j = 0; j < o; ++j) {
    for (Index q = 0; q < f; ++q) {
      double s = gw[j * f + q];
      for (Index i = 0; i < n; ++i) s += static_cast<double>(dy[i * o + j]) * x[i * f + q];
      dw_ref[j * f + q] = static_cast<T>(s);
    }
    double s = gb[j];
    for (Index i = 0; i < n; ++i) s += dy[i * o + j];
    db_ref[j] = static_cast<T>(s);
  }

  EXPECT_TRUE(all_close(ops::linear_forward(x, w, &b), y_ref, tol));
  EXPECT_TRUE(
      all_close(ops::linear_forward(x, w, static_cast<const Tensor<T>*>(nullptr)), y_nobias_ref, tol));
  EXPECT_TRUE(all_close(ops::linear_backward_data(dy, w, x.shape()), dx_ref, tol));
  ops::linear_backward_weight(x, dy, gw, &gb);
  EXPECT_TRUE(all_close(gw, dw_ref, tol));
  EXPECT_TRUE(all_close(gb, db_ref, tol));
}

TEST(LinearErrors, InputFeatureMismatch) {
  const Tensor<float> x(Shape{2, 5}), w(Shape{3, 4});
  try {
    ops::linear_forward(x, w, static_cast<const Tensor<float>*>(nullptr));
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("linear: expected input (N, 4), got (2, 5)"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace convkit
