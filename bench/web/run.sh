#!/usr/bin/env bash
# Web front benchmark: xtask-web forward_auth vs nginx auth_request vs Caddy forward_auth (same auth
# backend, same upstream, same wrk load, interleaved rounds), then the SSE fan-out. Rewrites the web
# section of bench/RESULTS.md. Needs: wrk, nginx, caddy, argon2, nats-server (scripts/deps.sh bench).
#   XT_BUILD=build bench/web/run.sh        (WEB_BENCH_SECS / _ROUNDS / _CONNS / _SSE_* to tune)
set -euo pipefail
cd "$(dirname "$0")/../.."
export XT_BUILD=${XT_BUILD:-$PWD/build}
for t in wrk nginx caddy argon2 nats-server; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || { echo "bench/web: $t is missing (scripts/deps.sh bench)" >&2; exit 1; }
done
for b in xtask-web xtask-auth xtask-web-bench-sse; do
  [ -x "$XT_BUILD/bin/$b" ] || { echo "bench/web: $XT_BUILD/bin/$b is not built" >&2; exit 1; }
done
exec python3 bench/web/bench.py
