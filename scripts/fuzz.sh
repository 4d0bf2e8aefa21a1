#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ (clang, ASan + UBSan) and runs each for SECONDS
# seconds (first argument, default 60) from a copy of its seed corpus in fuzz/corpus/.
# Any crash, leak, sanitizer report, broken invariant or allocation over 256 MiB fails the
# run (non-zero exit) and leaves the input in BUILD_DIR (default build/fuzz). Prints the
# executions and coverage of each target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh clang libclang-rt-14-dev
seconds=${1:-60}
build_dir=${BUILD_DIR:-build/fuzz}
cmake -S . -B "$build_dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" -DCONVKIT_BUILD_FUZZERS=ON -DCONVKIT_BUILD_TESTS=OFF \
  -DCONVKIT_BUILD_EXAMPLES=OFF -DCONVKIT_BUILD_BENCHMARKS=OFF -DCONVKIT_INSTALL=OFF >/dev/null
cmake --build "$build_dir" -j "${JOBS:-$(nproc)}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=()
for name in idx idx_gz checkpoint; do
  corpus="$build_dir/corpus/$name"
  rm -rf "$corpus" && mkdir -p "$corpus" && cp fuzz/corpus/"$name"/* "$corpus"/
  log="$build_dir/$name.log"
  echo "convkit: fuzzing $name for $seconds s"
  if ! (cd "$build_dir" && "fuzz/convkit_${name}_fuzz" "corpus/$name" -max_total_time="$seconds" \
          -malloc_limit_mb=256 -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1) >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "convkit: fuzz target $name FAILED; the input that broke it is in $build_dir (crash-*, leak-*, oom-*)" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)
  summary+=("$name: $runs executions in $seconds s, $cov, corpus $(ls "$corpus" | wc -l) inputs")
done
printf 'convkit fuzz: %s\n' "${summary[@]}"
