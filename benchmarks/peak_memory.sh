#!/usr/bin/env bash
# Peak memory (maximum resident set, from /usr/bin/time -v) of convkit and of PyTorch doing the
# same work, one right after the other:
#   vgg16      torchvision-shaped VGG-16, 2 untimed + timed forwards at batch 1, 224x224, eval mode
#   lenet5     one LeNet-5 training epoch on Fashion-MNIST (batch 64, SGD momentum 0.9, pixels in
#              [0, 1]): examples/lenet5_mnist against ../shared/bench/pytorch_reference.py
# PyTorch's figure includes the interpreter and its libraries; "torch import" prints that floor.
#   benchmarks/peak_memory.sh [threads]      (BUILD_DIR, default build/release, holds the programs)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build/release}
threads=${1:-1}
export OMP_NUM_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
for tool in /usr/bin/time /usr/bin/python3 "$build/benchmarks/convkit_bench_models" "$build/examples/lenet5_mnist"; do
  [[ -x $tool ]] || { echo "peak_memory.sh: $tool is missing (apt-get install time python3-torch python3-torchvision; scripts/test.sh builds the rest)" >&2; exit 1; }
done
# Runs "$@" with its output discarded and prints its maximum resident set in MiB.
max_rss() {
  local log
  log=$(mktemp)
  /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log" >&2; rm -f "$log"; return 1; }
  awk -F': ' '/Maximum resident set size/ {printf "%.0f MiB\n", $2 / 1024}' "$log"
  rm -f "$log"
}
torch_vgg='import torch, torchvision
torch.set_num_threads('"$threads"')
m = torchvision.models.vgg16().eval()
x = torch.rand(1, 3, 224, 224)
with torch.no_grad():
    for _ in range(3): m(x)'
echo "threads: $threads"
echo "vgg16 forward b1   convkit $(max_rss "$build/benchmarks/convkit_bench_models" --threads="$threads" \
  --benchmark_filter='^forward_b1/vgg16/')   PyTorch $(max_rss /usr/bin/python3 -c "$torch_vgg")"
echo "lenet5 train epoch convkit $(max_rss "$build/examples/lenet5_mnist" --dataset fashion-mnist --optimizer sgd \
  --lr 0.01 --schedule none --normalize unit --epochs 1 --threads "$threads" --save '')   PyTorch $(max_rss \
  /usr/bin/python3 ../shared/bench/pytorch_reference.py lenet-train --threads "$threads" --epochs 1)"
echo "torch import       PyTorch $(max_rss /usr/bin/python3 -c 'import torch, torchvision')"
