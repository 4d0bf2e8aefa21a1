#!/usr/bin/env bash
# Line coverage of the file readers reached by the fuzzers' corpora: builds each fuzz target
# with clang's source-based coverage (no sanitizers), replays the corpus that scripts/fuzz.sh
# left in BUILD_DIR/corpus (default build/fuzz; the seed corpus if none) and prints
# llvm-cov's totals (regions, functions, lines, branches) for the header each target reads with.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build/fuzz}
out="$build_dir/coverage"
mkdir -p "$out"
for name in idx idx_gz checkpoint; do
  corpus="$build_dir/corpus/$name"
  [ -d "$corpus" ] || corpus="fuzz/corpus/$name"
  clang++ -std=c++17 -O1 -g -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -Iinclude \
    -I/usr/include/eigen3 "fuzz/${name}_fuzz.cpp" -lz -o "$out/$name"
  LLVM_PROFILE_FILE="$out/$name.profraw" "$out/$name" "$corpus" -runs=0 >"$out/$name.log" 2>&1
done
for name in idx idx_gz checkpoint; do
  llvm-profdata merge -o "$out/$name.profdata" "$out/$name.profraw"
  file=include/convkit/data/idx.h
  [ "$name" = checkpoint ] && file=include/convkit/io/checkpoint.h
  echo "== $name: $file"
  llvm-cov report "$out/$name" -instr-profile="$out/$name.profdata" "$file" | tail -n 1
  # Lines never reached, for the curious: llvm-cov show "$out/$name" -instr-profile=... "$file"
done
