#!/usr/bin/env bash
# Build everything and run every test: the README's test command, and what CI runs (.ci/run).
#   scripts/test.sh              normal build + all tests, then the ASan+UBSan build + all tests
#   XT_TEST_SANITIZE=0           skip the sanitizer pass
#   XT_TEST_ARGS="-R pattern"    extra ctest arguments (both passes)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh test

total_pass=0
total_fail=0
run_pass() { # name builddir cmake-args...
  local name=$1 dir=$2
  shift 2
  echo "== $name: configure and build ($dir)"
  cmake -S "$root" -B "$dir" "$@" >/dev/null
  if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
    grep -Ev '^\[ *[0-9]+%\]' "$dir/build.log" | tail -n 60 >&2
    echo "== $name: BUILD FAILED" >&2
    total_fail=$((total_fail + 1))
    return 1
  fi
  echo "== $name: tests"
  local log="$dir/ctest.log" rc=0
  # shellcheck disable=SC2086
  ctest --test-dir "$dir" --output-on-failure --timeout 600 ${XT_TEST_ARGS:-} 2>&1 | tee "$log" || rc=$?
  local line passed failed
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -n 1 || true)
  if [ -n "$line" ]; then
    failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$line")
    passed=$((total - failed))
    total_pass=$((total_pass + passed))
    total_fail=$((total_fail + failed))
  elif [ $rc -ne 0 ]; then
    total_fail=$((total_fail + 1))
  fi
  return $rc
}

status=0
run_pass "release" build -DCMAKE_BUILD_TYPE=RelWithDebInfo || status=1
if [ "${XT_TEST_SANITIZE:-1}" != 0 ]; then
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    run_pass "sanitize (ASan+UBSan)" build-asan -DXT_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug || status=1
fi
echo
echo "all: $total_pass passed, $total_fail failed"
exit $status
