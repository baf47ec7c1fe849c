#!/usr/bin/env bash
# Supervisor benchmark: xtask-supervisor vs the seed's sleep-based entrypoint, supervisord, s6, runit and
# the services' own start-up, on one 4-service manifest (nats-server + three small services). Rewrites
# the supervisor section of bench/RESULTS.md.
#   bench/supervisor/run.sh                 (idle CPU over 60 s, 5 start-up runs)
#   BENCH_IDLE=20 BENCH_RUNS=3 bench/supervisor/run.sh   (quicker, while developing)
#   BUILD_DIR=build-x bench/supervisor/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${BUILD_DIR:-build}
if [ ! -x "$build/bin/xtask-supervisor" ] || [ ! -x "$build/tests/sv_fixture" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target xtask-supervisor sv_fixture >/dev/null
fi
for tool in nats-server supervisord supervisorctl s6-svscan s6-supervise s6-svstat s6-svwait s6-notifyoncheck \
  runsvdir runsv sv curl; do
  command -v "$tool" >/dev/null || { echo "bench supervisor: $tool not installed" >&2; exit 1; }
done
exec python3 bench/supervisor/bench.py "$build" --idle "${BENCH_IDLE:-60}" --runs "${BENCH_RUNS:-5}" \
  --results bench/RESULTS.md
