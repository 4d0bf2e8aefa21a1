#!/usr/bin/env bash
# Builds convkit's tests, examples and benchmarks in Release and runs the whole test suite.
# Installs missing Debian packages first (see scripts/install-deps.sh), Open MPI among them
# (the data-parallel tests run under mpirun). Exits non-zero on
# any failure. BUILD_DIR (default build/release) and JOBS (default: all cores) can be set.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh libopenmpi-dev openmpi-bin
build_dir=${BUILD_DIR:-build/release}
jobs=${JOBS:-$(nproc)}
start=$(date +%s)
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$jobs"
ctest --test-dir "$build_dir" --output-on-failure -j "$jobs" --timeout 600
echo "convkit: build and tests took $(( $(date +%s) - start )) s"
