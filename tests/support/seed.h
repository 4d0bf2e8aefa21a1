// tests/support/seed.h — fixed, printed seeds for tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>

#include <convkit/core/rng.h>

namespace convkit::testing {

/// An Rng seeded with `seed`; the seed is recorded in the test's output and XML report.
inline Rng seeded_rng(std::uint64_t seed) {
  ::testing::Test::RecordProperty("seed", static_cast<int>(seed));
  return Rng(seed);
}

/// The two scalar types every typed test runs over.
using Scalars = ::testing::Types<float, double>;

}  // namespace convkit::testing
