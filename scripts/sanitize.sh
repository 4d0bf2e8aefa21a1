#!/usr/bin/env bash
# Builds the tests with AddressSanitizer and UndefinedBehaviorSanitizer using clang (the `sanitize`
# preset: -O1, -fno-sanitize-recover=all, so any report fails the test) and runs them, less
# the packaging tests (they build unsanitized consumer projects). Exits non-zero on any
# failure. BUILD_DIR (default build/sanitize) and JOBS (default: all cores) can be set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh clang libclang-rt-14-dev
build_dir=${BUILD_DIR:-build/sanitize}
jobs=${JOBS:-$(nproc)}
start=$(date +%s)
cmake --preset sanitize -B "$build_dir"
cmake --build "$build_dir" -j "$jobs"
# halt_on_error and abort: a report ends the test with a failure; leaks are reported too.
# allocator_may_return_null: an impossible allocation throws std::bad_alloc, as without ASan
# (a test checks that convkit turns it into its own error).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 900 -LE package
echo "convkit: sanitized build and tests took $(( $(date +%s) - start )) s"
