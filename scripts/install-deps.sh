#!/usr/bin/env bash
# Installs what convkit's build needs on Debian/Ubuntu, or says what is missing.
#   scripts/install-deps.sh            library, tests, examples and benchmarks
# As root it runs apt-get; otherwise it prints the apt-get command to run and fails.
set -euo pipefail

packages=(cmake g++ make libeigen3-dev zlib1g-dev libgtest-dev libbenchmark-dev libcli11-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "convkit: missing packages (${missing[*]}) and no apt-get here: install Eigen 3.4, GoogleTest," >&2
  echo "         Google Benchmark, CMake >= 3.16 and a C++17 compiler by hand." >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "convkit: missing Debian packages: ${missing[*]}" >&2
  echo "         install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "convkit: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
