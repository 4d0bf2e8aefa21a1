#!/usr/bin/env bash
# Installs what convkit's build needs on Debian/Ubuntu, or says what is missing.
# Required: the compiler, CMake, Eigen, zlib, GoogleTest, Google Benchmark, CLI11, stb (the
# picture examples) and pkg-config (the packaging test).
# Optional (a warning if they cannot be had): Debian's Fashion-MNIST, which the trainer
# falls back to and the integration test trains on, and curl, which downloads MNIST.
# Arguments name further required packages (scripts/fuzz.sh adds clang and its runtimes,
# scripts/test.sh Open MPI for the data-parallel tests).
# As root it runs apt-get; otherwise it prints the apt-get command to run (and fails only
# if something required is missing).
set -euo pipefail

required=(cmake g++ make libeigen3-dev zlib1g-dev libgtest-dev libbenchmark-dev libcli11-dev libstb-dev pkg-config)
required+=("$@")
optional=(dataset-fashion-mnist curl)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing_required=() missing_optional=()
for p in "${required[@]}"; do installed "$p" || missing_required+=("$p"); done
for p in "${optional[@]}"; do installed "$p" || missing_optional+=("$p"); done
[ ${#missing_required[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  [ ${#missing_required[@]} -eq 0 ] && exit 0
  echo "convkit: no apt-get here; install by hand: a C++17 compiler, CMake >= 3.16, Eigen 3.4, zlib," >&2
  echo "         GoogleTest, Google Benchmark, CLI11, stb and pkg-config (Debian names: ${missing_required[*]})" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  all=("${missing_required[@]}" "${missing_optional[@]}")
  echo "convkit: missing Debian packages: ${all[*]}" >&2
  echo "         install them with: sudo apt-get update && sudo apt-get install -y ${all[*]}" >&2
  [ ${#missing_required[@]} -eq 0 ] && exit 0
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "convkit: installing ${missing_required[*]} ${missing_optional[*]}"
apt-get update -qq
if [ ${#missing_required[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${missing_required[@]}" >/dev/null
fi
for p in "${missing_optional[@]}"; do
  apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 ||
    echo "convkit: optional package $p could not be installed; continuing without it" >&2
done
