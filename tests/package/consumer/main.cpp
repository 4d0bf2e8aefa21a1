// A user's program: builds a small network, runs forward and backward, and checks the
// version macros against the CMake package version when there is one.
#include <convkit/convkit.h>

#include <cstdio>
#include <cstring>
#include <string>

int main() {
  using namespace convkit;
  Rng rng(1);
  Sequential<float> net = models::lenet5<float>(rng);
  const Tensor<float> y = net.forward(Tensor<float>(Shape{2, 1, 32, 32}, 0.5f));
  net.backward(Tensor<float>(y.shape(), 1.0f));
  const std::string version = std::to_string(CONVKIT_VERSION_MAJOR) + "." + std::to_string(CONVKIT_VERSION_MINOR) +
                              "." + std::to_string(CONVKIT_VERSION_PATCH);
  std::printf("convkit %s (%s): output %s, %lld parameters\n", kVersion, version.c_str(), y.shape().to_string().c_str(),
              static_cast<long long>(net.parameter_count()));
  if (version != kVersion) return 1;
#ifdef CONSUMER_EXPECTED_VERSION
  if (version != CONSUMER_EXPECTED_VERSION) {
    std::printf("version.h says %s, the CMake package %s\n", version.c_str(), CONSUMER_EXPECTED_VERSION);
    return 1;
  }
#endif
  return y.shape() == Shape{2, 10} && net.parameter_count() == 61706 ? 0 : 1;
}
