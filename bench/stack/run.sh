#!/usr/bin/env bash
# Whole-stack benchmark (owner: stack): start to all-ready and kill -9 recovery under the supervisor,
# beside seed 000's sleep-based entrypoint, in one run. Rewrites only the stack section of
# bench/RESULTS.md.   bench/stack/run.sh   (XT_BENCH_RUNS=5 by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
build=${XT_BUILD_DIR:-$root/build}
[ -x "$build/bin/xtask-web" ] || { echo "bench/stack: build first ($build/bin)" >&2; exit 1; }
out=$(XT_BIN_DIR=$build/bin PATH="$build/bin:$root/entrypoint:$PATH" python3 bench/stack/bench_stack.py)
printf '%s\n' "$out"
python3 - "$out" <<'PY'
import re, sys
path = "bench/RESULTS.md"
text = open(path).read()
new = "<!-- begin:stack -->\n" + sys.argv[1].strip() + "\n<!-- end:stack -->"
text = re.sub(r"<!-- begin:stack -->.*?<!-- end:stack -->", lambda m: new, text, flags=re.S)
open(path, "w").write(text)
PY
