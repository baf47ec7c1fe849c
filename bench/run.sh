#!/usr/bin/env bash
# Run every benchmark (ours beside its anchor in the same run); each rewrites its section of
# bench/RESULTS.md. Not part of the test suite: benchmarks take minutes and want a quiet machine.
#   bench/run.sh [supervisor|coordinator|auth|web|stack|edge ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(supervisor coordinator auth web stack edge)
rc=0
for p in "${parts[@]}"; do
  if [ -x "bench/$p/run.sh" ]; then
    echo "== bench $p"
    "bench/$p/run.sh" || { echo "bench $p failed" >&2; rc=1; }
  else
    echo "== bench $p: none yet"
  fi
done
exit $rc
