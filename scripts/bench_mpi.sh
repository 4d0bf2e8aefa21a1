#!/usr/bin/env bash
# Data-parallel throughput, side by side in one run: 1 process × 1 thread, 1 process × 2
# threads and 2 MPI ranks × 1 thread, for LeNet-5 (batch 64) and resnet18 on 32×32 input
# (batch 32), interleaved and repeated REPEATS times (default 3); prints every run and the
# median images/s of each setting with its ratio to 1 × 1. Needs a build with convkit::mpi
# (BUILD_DIR, default build/release) and Open MPI's mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${BUILD_DIR:-build/release}/benchmarks/convkit_bench_data_parallel
repeats=${REPEATS:-3}
[ -x "$bin" ] || { echo "bench_mpi: $bin not built (needs libopenmpi-dev; run scripts/test.sh)" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(mpirun --version | head -1)"
for model in lenet5 resnet18; do
  steps=100; [ "$model" = resnet18 ] && steps=10
  declare -A rates=()
  for ((r = 0; r < repeats; r++)); do
    for setting in 1x1 1x2 2x1; do
      case $setting in
        1x1) line=$("$bin" --model "$model" --steps "$steps" --threads 1) ;;
        1x2) line=$("$bin" --model "$model" --steps "$steps" --threads 2) ;;
        2x1) line=$(mpirun -np 2 "$bin" --model "$model" --steps "$steps" --threads 1) ;;
      esac
      echo "$setting  $line"
      rates[$setting]+="$(echo "$line" | sed -E 's/.*: ([0-9.]+) images\/s.*/\1/') "
    done
  done
  median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  base=$(median "${rates[1x1]}")
  for setting in 1x1 1x2 2x1; do
    m=$(median "${rates[$setting]}")
    awk -v n="$model" -v s="$setting" -v m="$m" -v b="$base" \
      'BEGIN { printf "%-9s %-4s median %8.1f images/s  %.2fx of 1x1\n", n, s, m, m / b }'
  done
  unset rates
done
