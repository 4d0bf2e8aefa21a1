// fuzz/fuzz_util.h — what the fuzz targets share: a failed invariant ends the run loudly.
#pragma once

#include <cstdio>
#include <cstdlib>

/// An invariant of a successful parse; libFuzzer reports the abort as a crash with the input.
#define CONVKIT_FUZZ_ASSERT(cond)                                                          \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)
