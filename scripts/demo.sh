#!/usr/bin/env bash
# Builds and runs convkit's main program. Installs missing Debian packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build_dir=${BUILD_DIR:-build/release}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" --target conv_net_demo -j "${JOBS:-$(nproc)}"
"$build_dir/examples/conv_net_demo" "$@"
