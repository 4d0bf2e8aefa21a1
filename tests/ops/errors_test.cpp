// Error reporting of the conv and pool ops: the exception type and the message text, which
// says what was expected and what was got (DESIGN.md §7).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include <convkit/ops/conv2d.h>
#include <convkit/ops/pool2d.h>

#include "support/expect.h"

namespace convkit {
namespace {

using convkit::testing::message_of;

using ::testing::AllOf;
using ::testing::HasSubstr;

const Tensor<float>* const kNoBias = nullptr;

/// conv2d_forward on zero tensors of the given shapes.
std::function<void()> conv(const Shape& x, const Shape& w, const ops::Conv2dParams& p = {}) {
  return [=] {
    ops::Workspace<float> ws;
    ops::conv2d_forward(Tensor<float>(x), Tensor<float>(w), kNoBias, p, ws);
  };
}

TEST(Conv2dErrors, WrongInputRank) {
  EXPECT_THAT(message_of<ShapeError>(conv(Shape{3, 8, 8}, Shape{4, 3, 3, 3})),
              AllOf(HasSubstr("conv2d: expected input (N, 3, H, W)"), HasSubstr("got (3, 8, 8)")));
}

TEST(Conv2dErrors, WrongChannelCount) {
  EXPECT_THAT(message_of<ShapeError>(conv(Shape{2, 1, 28, 28}, Shape{64, 3, 3, 3})),
              AllOf(HasSubstr("expected input (N, 3, H, W)"), HasSubstr("got (2, 1, 28, 28)")));
}

TEST(Conv2dErrors, WrongWeightRank) {
  EXPECT_THAT(message_of<ShapeError>(conv(Shape{2, 3, 8, 8}, Shape{4, 3, 3})),
              AllOf(HasSubstr("expected weight (OC, C/groups, KH, KW)"), HasSubstr("got (4, 3, 3)")));
}

TEST(Conv2dErrors, KernelLargerThanPaddedInput) {
  ops::Conv2dParams p;
  p.pad_h = p.pad_w = 1;
  EXPECT_THAT(message_of<ShapeError>(conv(Shape{1, 3, 4, 6}, Shape{2, 3, 7, 7}, p)),
              AllOf(HasSubstr("the dilated kernel 7x7 is larger than the padded input 6x8"),
                    HasSubstr("(1, 3, 4, 6)")));
  // Dilation counts: a 3x3 kernel with dilation 3 spans 7.
  ops::Conv2dParams d;
  d.dilation_h = d.dilation_w = 3;
  EXPECT_THAT(message_of<ShapeError>(conv(Shape{1, 3, 6, 9}, Shape{2, 3, 3, 3}, d)),
              HasSubstr("the dilated kernel 7x7 is larger than the padded input 6x9"));
}

TEST(Conv2dErrors, StrideZero) {
  ops::Conv2dParams p;
  p.stride_w = 0;
  EXPECT_THAT(message_of<ValueError>(conv(Shape{1, 3, 8, 8}, Shape{2, 3, 3, 3}, p)),
              AllOf(HasSubstr("expected stride >= 1"), HasSubstr("got stride 1x0")));
}

TEST(Conv2dErrors, NegativePaddingAndZeroDilationAndGroups) {
  ops::Conv2dParams p;
  p.pad_h = -1;
  EXPECT_THAT(message_of<ValueError>(conv(Shape{1, 3, 8, 8}, Shape{2, 3, 3, 3}, p)),
              HasSubstr("padding -1x0"));
  ops::Conv2dParams d;
  d.dilation_h = 0;
  EXPECT_THAT(message_of<ValueError>(conv(Shape{1, 3, 8, 8}, Shape{2, 3, 3, 3}, d)),
              HasSubstr("dilation 0x1"));
  ops::Conv2dParams g;
  g.groups = 0;
  EXPECT_THAT(message_of<ValueError>(conv(Shape{1, 3, 8, 8}, Shape{2, 3, 3, 3}, g)),
              HasSubstr("groups 0"));
}

TEST(Conv2dErrors, GroupsNotDividingChannels) {
  ops::Conv2dParams p;
  p.groups = 4;
  // Output channels 6 are not divisible by 4 groups.
  EXPECT_THAT(message_of<ShapeError>(conv(Shape{1, 8, 5, 5}, Shape{6, 2, 3, 3}, p)),
              AllOf(HasSubstr("OC divisible by groups = 4"), HasSubstr("got (6, 2, 3, 3)")));
  // Input channels 6 are not divisible by 4 groups: no weight (OC, C/4, ...) fits.
  EXPECT_THAT(message_of<ShapeError>(conv(Shape{1, 6, 5, 5}, Shape{8, 1, 3, 3}, p)),
              AllOf(HasSubstr("expected input (N, 4, H, W)"), HasSubstr("got (1, 6, 5, 5)")));
}

TEST(Conv2dErrors, BiasAndGradOutputShapes) {
  ops::Workspace<float> ws;
  const Tensor<float> x(Shape{1, 3, 6, 6}), w(Shape{4, 3, 3, 3}), b(Shape{3});
  EXPECT_THAT(message_of<ShapeError>([&] { ops::conv2d_forward(x, w, &b, {}, ws); }),
              HasSubstr("conv2d: expected bias (4), got (3)"));
  const Tensor<float> dy(Shape{1, 4, 5, 4});
  EXPECT_THAT(message_of<ShapeError>([&] { ops::conv2d_backward_data(dy, w, x.shape(), {}, ws); }),
              HasSubstr("conv2d_backward_data: expected grad_output (1, 4, 4, 4), got (1, 4, 5, 4)"));
  Tensor<float> gw(w.shape());
  Tensor<float>* no_grad_bias = nullptr;
  EXPECT_THAT(
      message_of<ShapeError>([&] { ops::conv2d_backward_weight(x, dy, {}, gw, no_grad_bias, ws); }),
      HasSubstr("conv2d_backward_weight: expected grad_output (1, 4, 4, 4), got (1, 4, 5, 4)"));
}

/// max_pool2d_forward on a zero tensor of shape x.
std::function<void()> max_pool(const Shape& x, const ops::Pool2dParams& p) {
  return [=] {
    std::vector<Index> argmax;
    ops::max_pool2d_forward(Tensor<float>(x), p, argmax);
  };
}

TEST(Pool2dErrors, PaddingMoreThanHalfTheKernel) {
  ops::Pool2dParams p;
  p.kernel_h = p.kernel_w = 3;
  p.pad_h = 2;
  EXPECT_THAT(message_of<ValueError>(max_pool(Shape{1, 1, 8, 8}, p)),
              AllOf(HasSubstr("expected 0 <= padding <= kernel / 2"),
                    HasSubstr("got padding 2x0 for kernel 3x3")));
  EXPECT_THAT(message_of<ValueError>([&] {
                ops::avg_pool2d_forward(Tensor<double>(Shape{1, 1, 8, 8}), p);
              }),
              HasSubstr("got padding 2x0 for kernel 3x3"));
}

TEST(Pool2dErrors, StrideZero) {
  ops::Pool2dParams p;
  p.stride_h = 0;
  EXPECT_THAT(message_of<ValueError>(max_pool(Shape{1, 1, 8, 8}, p)),
              AllOf(HasSubstr("expected kernel >= 1 and stride >= 1"), HasSubstr("stride 0x2")));
}

TEST(Pool2dErrors, InputTooSmallOrWrongRank) {
  ops::Pool2dParams p;
  p.kernel_h = p.kernel_w = 3;
  EXPECT_THAT(message_of<ShapeError>(max_pool(Shape{1, 1, 2, 8}, p)),
              AllOf(HasSubstr("H + 2·padding >= 3"), HasSubstr("got (1, 1, 2, 8)")));
  EXPECT_THAT(message_of<ShapeError>(max_pool(Shape{4, 8, 8}, p)),
              AllOf(HasSubstr("expected input (N, C, H, W)"), HasSubstr("got (4, 8, 8)")));
}

TEST(Pool2dErrors, BackwardGradOutputShape) {
  ops::Pool2dParams p;
  EXPECT_THAT(message_of<ShapeError>([&] {
                ops::avg_pool2d_backward(Tensor<float>(Shape{1, 1, 3, 3}), Shape{1, 1, 8, 8}, p);
              }),
              HasSubstr("avg_pool2d_backward: expected grad_output (1, 1, 4, 4), got (1, 1, 3, 3)"));
  const std::vector<Index> argmax(16, 0);
  EXPECT_THAT(message_of<ShapeError>([&] {
                ops::max_pool2d_backward(Tensor<float>(Shape{1, 1, 3, 3}), argmax, Shape{1, 1, 8, 8});
              }),
              HasSubstr("expected grad_output of 16 elements"));
}

}  // namespace
}  // namespace convkit
