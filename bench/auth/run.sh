#!/usr/bin/env bash
# xtask-auth benchmark (TEAM.md rules): /api/verify with a valid session, idle and while 50 logins
# hash, beside nginx `return 200` in the same run; rewrites only the auth section of bench/RESULTS.md.
#   bench/auth/run.sh [BIN_DIR]      (default build/bin; BENCH_ROUNDS, BENCH_SECONDS, BENCH_CONNS)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-${XT_BIN_DIR:-build/bin}}
export XT_BIN_DIR=$(cd "$BIN" && pwd)
command -v wrk >/dev/null || { echo "bench/auth: wrk is not installed" >&2; exit 1; }
command -v argon2 >/dev/null || { echo "bench/auth: the argon2 CLI is not installed" >&2; exit 1; }
exec python3 bench/auth/bench.py
