// bench_flags.h — the benchmarks' own command-line flags, taken out of argv before Google
// Benchmark parses the rest, and the --threads flag they share.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace convkit_bench {

/// Removes every "--<flag>=value" from argv and returns the last value ("" when absent).
inline std::string take_flag(int& argc, char** argv, const char* flag) {
  const std::string prefix = std::string("--") + flag + "=";
  std::string value;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0)
      value = argv[i] + prefix.size();
    else
      argv[out++] = argv[i];
  }
  argc = out;
  return value;
}

/// Takes --threads=N (default 1) and sets the OpenMP threads every convkit op may use; returns N.
inline int take_threads(int& argc, char** argv) {
  const std::string value = take_flag(argc, argv, "threads");
  const int threads = value.empty() ? 1 : std::max(1, std::atoi(value.c_str()));
#ifdef _OPENMP
  omp_set_num_threads(threads);
#endif
  return threads;
}

}  // namespace convkit_bench
