// One of two translation units that both include the umbrella header: if any function
// defined in a header were not inline, linking convkit_core_test would fail.
#include <convkit/convkit.h>

convkit::Tensor<float> odr_unit_a_conv(const convkit::Tensor<float>& x) {
  convkit::Conv2d<float> conv(convkit::Conv2dOptions(1, 2, 3).padding(1));
  return conv.forward(x);
}
