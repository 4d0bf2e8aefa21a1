// ops/im2col.h: the column matrix against its definition
//   col[(c·KH + i)·KW + j][y·OW + x] = x[c][y·sh − pt + i·dh][x·sw − pl + j·dw]  (0 outside),
// for rows of every width from 1 to 70 at column strides 1, 2 and 3: the stride-2 rows go a
// vector of outputs at a time (unfold_even) while the element after the vector still lies in
// the row, then one at a time. The input is held in a buffer of exactly its size, so a read
// past the last row is out of bounds (AddressSanitizer reports it in the sanitized build).
#include <gtest/gtest.h>

#include <vector>

#include <convkit/ops/im2col.h>

namespace convkit {
namespace {

template <typename T>
void expect_definition(Index w, Index kw, Index sw, Index pl) {
  ops::ConvGeometry g;
  g.n = 1, g.c = 2, g.h = 3, g.w = w, g.oc = 1, g.kh = 2, g.kw = kw, g.sh = 1, g.sw = sw, g.pt = 0, g.pl = pl;
  g.oh = g.h - g.kh + 1, g.ow = (w + 2 * pl - kw) / sw + 1;
  if (g.ow < 1) return;
  std::vector<T> x(static_cast<std::size_t>(g.c * g.h * g.w));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(i + 1);
  const Index cols = g.oh * g.ow;
  std::vector<T> col(static_cast<std::size_t>(g.col_rows() * cols), T(-1));
  ops::im2col(x.data(), g, col.data(), cols);
  for (Index c = 0; c < g.c; ++c)
    for (Index i = 0; i < g.kh; ++i)
      for (Index j = 0; j < g.kw; ++j)
        for (Index y = 0; y < g.oh; ++y)
          for (Index q = 0; q < g.ow; ++q) {
            const Index iy = y + i, ix = q * sw - pl + j;
            const T want = ix >= 0 && ix < w ? x[static_cast<std::size_t>((c * g.h + iy) * w + ix)] : T(0);
            ASSERT_EQ(col[static_cast<std::size_t>(((c * g.kh + i) * g.kw + j) * cols + y * g.ow + q)], want)
                << "w " << w << " kw " << kw << " sw " << sw << " pl " << pl << " at " << c << "," << i << ","
                << j << "," << y << "," << q;
          }
}

TEST(Im2col, RowsOfEveryWidthMatchTheDefinition) {
  for (Index w = 1; w <= 70; ++w)
    for (Index sw : {1, 2, 3})
      for (Index kw : {1, 3})
        for (Index pl : {Index{0}, kw / 2}) {
          expect_definition<float>(w, kw, sw, pl);
          expect_definition<double>(w, kw, sw, pl);
        }
}

}  // namespace
}  // namespace convkit
