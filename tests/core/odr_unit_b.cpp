// The second translation unit of the two-unit link test (see odr_unit_a.cpp).
#include <gtest/gtest.h>

#include <convkit/convkit.h>

convkit::Tensor<float> odr_unit_a_conv(const convkit::Tensor<float>& x);

TEST(OdrLink, TwoUnitsIncludingTheUmbrellaHeaderLinkAndAgree) {
  convkit::Tensor<float> x(convkit::Shape{1, 1, 4, 4});
  for (convkit::Index i = 0; i < x.numel(); ++i) x[i] = static_cast<float>(i) * 0.25f;
  convkit::Conv2d<float> conv(convkit::Conv2dOptions(1, 2, 3).padding(1));
  const convkit::Tensor<float> here = conv.forward(x);
  const convkit::Tensor<float> there = odr_unit_a_conv(x);
  ASSERT_EQ(here.shape(), there.shape());
  for (convkit::Index i = 0; i < here.numel(); ++i) EXPECT_EQ(here[i], there[i]);
}
