#!/usr/bin/env bash
# Builds and runs convkit's main program, the LeNet-5 trainer (examples/lenet5_mnist.cpp),
# on its default data: MNIST from data/mnist/ or downloaded there, else Debian's
# Fashion-MNIST. Extra arguments go to the trainer (try --help). Installs missing Debian
# packages first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build_dir=${BUILD_DIR:-build/release}
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" --target lenet5_mnist -j "${JOBS:-$(nproc)}"
exec "$build_dir/examples/lenet5_mnist" "$@"
