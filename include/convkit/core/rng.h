// convkit/core/rng.h — Rng, the explicit, seeded random number generator.
//
// There is no global random state in convkit: initialisers, Dropout and data shuffling each
// take an Rng. The engine is the 64-bit Mersenne twister (std::mt19937_64, whose output
// sequence the C++ standard fixes); the distributions are written here rather than taken
// from <random>, whose distributions differ between standard libraries, so one seed gives
// the same numbers with GCC, Clang and MSVC.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>

#include "convkit/core/error.h"

namespace convkit {

class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : engine_(seed) {}

  /// Restarts the sequence from `seed`.
  void seed(std::uint64_t seed) {
    engine_.seed(seed);
    has_spare_normal_ = false;
  }

  /// 64 random bits.
  std::uint64_t next_u64() { return engine_(); }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * (1.0 / 9007199254740992.0); }

  /// Uniform in [low, high).
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  /// Normal with the given mean and standard deviation (Marsaglia's polar method).
  double normal(double mean = 0.0, double stddev = 1.0) {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return mean + stddev * spare_normal_;
    }
    double u, v, s;
    do {
      u = 2.0 * uniform() - 1.0;
      v = 2.0 * uniform() - 1.0;
      s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    const double f = std::sqrt(-2.0 * std::log(s) / s);
    spare_normal_ = v * f;
    has_spare_normal_ = true;
    return mean + stddev * u * f;
  }

  /// True with probability p.
  bool bernoulli(double p) { return uniform() < p; }

  /// Uniform integer in [0, n); n must be > 0. Unbiased (rejection sampling).
  std::uint64_t below(std::uint64_t n) {
    CONVKIT_CHECK(n > 0, ValueError, "Rng::below: expected n > 0, got 0");
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t x;
    do {
      x = engine_();
    } while (x >= limit);
    return x % n;
  }

  /// The full generator state as text, for checkpoints.
  std::string state() const {
    std::ostringstream os;
    os << engine_ << ' ' << has_spare_normal_ << ' ';
    os.precision(17);
    os << spare_normal_;
    return os.str();
  }

  /// Restores a state produced by state().
  /// @throws FormatError if the text is not such a state.
  void set_state(const std::string& text) {
    std::istringstream is(text);
    std::mt19937_64 engine;
    bool has_spare = false;
    double spare = 0.0;
    is >> engine >> has_spare >> spare;
    CONVKIT_CHECK(!is.fail(), FormatError,
                  "Rng::set_state: expected a state written by Rng::state(), got " << text.size()
                                                                                   << " characters that do not parse");
    engine_ = engine;
    has_spare_normal_ = has_spare;
    spare_normal_ = spare;
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace convkit
