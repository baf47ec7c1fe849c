#!/usr/bin/env bash
# Long fuzzing runs: build the libFuzzer harnesses (fuzz/build.sh, clang, into build-fuzz/) and run
# one harness, or each in turn, for SECONDS (default 600 each), one process at a time under nice.
#   scripts/fuzz.sh                   every harness, 600 s each
#   scripts/fuzz.sh manifest 3600     one harness for an hour
#   scripts/fuzz.sh list              the harnesses
# Findings (crash-*, leak-*, timeout-*, oom-*), the grown corpus and the log are under
# fuzz/out/<harness>/ (git-ignored). Replay one: build-fuzz/fuzz/fuzz_<harness> fuzz/out/<harness>/crash-...
# A finding is fixed in the parser, and its input committed to fuzz/corpus/<harness>/ (named
# regress-*) so that the test suite's short run (CTest fuzz_short) replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bdir=${XT_FUZZ_BUILD:-$root/build-fuzz}
fuzz/build.sh "$bdir"
all=$(cat "$bdir/fuzz/harnesses.txt")
if [ "${1:-}" = list ]; then
  echo "$all"
  exit 0
fi
which=${1:-all}
secs=${2:-600}
[ "$which" = all ] && which=$all
for h in $which; do
  [ -x "$bdir/fuzz/fuzz_$h" ] || { echo "fuzz: no harness '$h' (scripts/fuzz.sh list)" >&2; exit 2; }
done
status=0
for h in $which; do
  out=$root/fuzz/out/$h
  mkdir -p "$out/corpus"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/")
  [ -f "fuzz/dict/$h.dict" ] && args+=(-dict="fuzz/dict/$h.dict")
  echo "fuzz_$h: ${secs}s, log $out/log"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     nice -n 10 "$bdir/fuzz/fuzz_$h" "${args[@]}" "$out/corpus" "fuzz/corpus/$h" >"$out/log" 2>&1; then
    echo "fuzz_$h: ok, $(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -n 1) inputs"
  else
    status=1
    echo "fuzz_$h: FINDING (see $out/log)" >&2
    grep -E 'ERROR|SUMMARY|runtime error' "$out/log" | head -n 5 >&2 || true
  fi
done
exit $status
