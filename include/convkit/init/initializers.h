// convkit/init/initializers.h — weight initialisers, each seeded by an explicit Rng.
//
// fan_in of a weight (O, I, KH, KW) or (O, I) is I·KH·KW; fan_out is O·KH·KW.
//   uniform(a, b)       U(a, b)
//   he_uniform          U(−√(6 / fan_in), √(6 / fan_in))         (Kaiming, for ReLU nets)
//   he_normal           N(0, 2 / fan_in)
//   he_normal_fan_out   N(0, 2 / fan_out)                         (torchvision's VGG and ResNet convs)
//   xavier_uniform      U(−√(6 / (fan_in + fan_out)), +…)        (Glorot)
//   xavier_normal       N(0, 2 / (fan_in + fan_out))
//   default_uniform     U(−1/√fan_in, 1/√fan_in), PyTorch's default for Conv2d and Linear
//                       weights (kaiming_uniform with a = √5) and biases.
#pragma once

#include <cmath>

#include "convkit/core/error.h"
#include "convkit/core/rng.h"
#include "convkit/core/tensor.h"

namespace convkit::init {

struct Fans {
  Index fan_in = 1, fan_out = 1;
};

/// Fans of a weight of rank 2 (O, I) or 4 (O, I, KH, KW).
/// @throws ShapeError for another rank.
inline Fans fans_of(const Shape& weight) {
  CONVKIT_CHECK(weight.rank() == 2 || weight.rank() == 4, ShapeError,
                "init: expected a weight (O, I) or (O, I, KH, KW), got " << weight);
  const Index receptive = weight.rank() == 4 ? weight[2] * weight[3] : 1;
  return Fans{weight[1] * receptive, weight[0] * receptive};
}

template <typename T>
void uniform(Tensor<T>& t, double low, double high, Rng& rng) {
  CONVKIT_CHECK(low <= high, ValueError, "init::uniform: expected low <= high, got " << low << " > " << high);
  for (T& v : t) v = static_cast<T>(rng.uniform(low, high));
}

template <typename T>
void normal(Tensor<T>& t, double mean, double stddev, Rng& rng) {
  CONVKIT_CHECK(stddev >= 0, ValueError, "init::normal: expected stddev >= 0, got " << stddev);
  for (T& v : t) v = static_cast<T>(rng.normal(mean, stddev));
}

template <typename T>
void he_uniform(Tensor<T>& w, Rng& rng) {
  const double b = std::sqrt(6.0 / static_cast<double>(fans_of(w.shape()).fan_in));
  uniform(w, -b, b, rng);
}

template <typename T>
void he_normal(Tensor<T>& w, Rng& rng) {
  normal(w, 0.0, std::sqrt(2.0 / static_cast<double>(fans_of(w.shape()).fan_in)), rng);
}

template <typename T>
void he_normal_fan_out(Tensor<T>& w, Rng& rng) {
  normal(w, 0.0, std::sqrt(2.0 / static_cast<double>(fans_of(w.shape()).fan_out)), rng);
}

template <typename T>
void xavier_uniform(Tensor<T>& w, Rng& rng) {
  const Fans f = fans_of(w.shape());
  const double b = std::sqrt(6.0 / static_cast<double>(f.fan_in + f.fan_out));
  uniform(w, -b, b, rng);
}

template <typename T>
void xavier_normal(Tensor<T>& w, Rng& rng) {
  const Fans f = fans_of(w.shape());
  normal(w, 0.0, std::sqrt(2.0 / static_cast<double>(f.fan_in + f.fan_out)), rng);
}

/// U(−1/√fan_in, 1/√fan_in) into `t`, with fan_in given (PyTorch's Conv2d/Linear default).
template <typename T>
void default_uniform(Tensor<T>& t, Index fan_in, Rng& rng) {
  const double b = 1.0 / std::sqrt(static_cast<double>(std::max<Index>(1, fan_in)));
  uniform(t, -b, b, rng);
}

}  // namespace convkit::init
