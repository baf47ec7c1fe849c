#!/usr/bin/env bash
# Build the libFuzzer harnesses (a clang ASan+UBSan build of the whole project with coverage
# instrumentation, targets fuzz_*) and, with --short, run each one briefly from its seed corpus.
#   fuzz/build.sh [--short] BUILD_DIR
#   XT_FUZZ_SECONDS=5     seconds per harness for --short
#   XT_FUZZ_ONLY="a b"    only these harnesses (--short)
#   XT_FUZZ_SEED=1        libFuzzer's -seed for --short
# The short run is CTest's fuzz_short (release pass of scripts/test.sh): any crash, leak, undefined
# behaviour, timeout (10 s per input) or broken property fails it; the input is kept under
# BUILD_DIR/short/<harness>/ and the command to replay it is printed.
set -euo pipefail
short=0
if [ "${1:-}" = --short ]; then
  short=1
  shift
fi
[ $# -eq 1 ] || { echo "usage: $0 [--short] BUILD_DIR" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$1
cc=${XT_FUZZ_CC:-clang}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (scripts/deps.sh test installs clang)" >&2; exit 1; }

mkdir -p "$dir"
if ! { cmake -S "$root" -B "$dir" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug -DXT_SANITIZE=ON \
         -DXT_FUZZ=ON -DXT_BUILD_TESTS=OFF >"$dir/configure.log" 2>&1 &&
       cmake --build "$dir" --target fuzz_all -j"$(nproc 2>/dev/null || echo 2)" >"$dir/build.log" 2>&1; }; then
  tail -n 40 "$dir/configure.log" "$dir/build.log" >&2 || true
  echo "fuzz: build failed ($dir)" >&2
  exit 1
fi
[ $short -eq 1 ] || exit 0

secs=${XT_FUZZ_SECONDS:-5}
harnesses=${XT_FUZZ_ONLY:-$(cat "$dir/fuzz/harnesses.txt")}
status=0
total_runs=0
for h in $harnesses; do
  out=$dir/short/$h
  rm -rf "$out"
  mkdir -p "$out/new"
  # a fixed seed: the same mutations on every run, so the suite is red only when a commit makes it
  # so (a random exploration belongs to scripts/fuzz.sh)
  args=(-seed="${XT_FUZZ_SEED:-1}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$out/")
  [ -f "$root/fuzz/dict/$h.dict" ] && args+=(-dict="$root/fuzz/dict/$h.dict")
  # new inputs go to $out/new (the first directory), never into the committed corpus
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     "$dir/fuzz/fuzz_$h" "${args[@]}" "$out/new" "$root/fuzz/corpus/$h" >"$out/log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -n 1)
    total_runs=$((total_runs + ${runs:-0}))
    echo "fuzz_$h: ok, ${runs:-?} inputs in ${secs}s"
  else
    status=1
    echo "fuzz_$h: FAILED" >&2
    grep -E 'ERROR|SUMMARY|runtime error|==[0-9]+==|^ +#[0-9]+ ' "$out/log" | head -n 40 >&2 || true
    for a in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*; do
      [ -e "$a" ] && echo "  replay: $dir/fuzz/fuzz_$h $a" >&2
    done
  fi
done
echo "fuzz: $total_runs inputs in total"
exit $status
