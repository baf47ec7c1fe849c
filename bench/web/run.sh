#!/usr/bin/env bash
# Web front benchmark: xtask-web forward_auth vs nginx auth_request vs Caddy forward_auth (same auth
# backend, same upstream, same wrk load, interleaved rounds), then the SSE fan-out. Rewrites the web
# section of bench/RESULTS.md. Needs: wrk, nginx, caddy, argon2, nats-server (scripts/deps.sh bench).
#   XT_BUILD=build bench/web/run.sh        (WEB_BENCH_SECS / _ROUNDS / _CONNS / _SSE_* / _NETNS to tune)
set -euo pipefail
cd "$(dirname "$0")/../.."
export XT_BUILD=${XT_BUILD:-$PWD/build}
for t in wrk nginx caddy argon2 nats-server; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/sbin/$t" ] || { echo "bench/web: $t is missing (scripts/deps.sh bench)" >&2; exit 1; }
done
for b in xtask-web xtask-auth xtask-web-bench-sse; do
  [ -x "$XT_BUILD/bin/$b" ] || { echo "bench/web: $XT_BUILD/bin/$b is not built" >&2; exit 1; }
done
# A private network namespace (loopback only) when we may make one: the host's own firewall (here
# podman's NAT rules, which send every loopback packet through conntrack) then stays out of every
# front's figures alike. WEB_BENCH_NETNS=0 measures in the host's namespace instead.
if [ "${WEB_BENCH_NETNS:-1}" = 1 ] && [ -z "${XT_BENCH_IN_NETNS:-}" ] && unshare -n true 2>/dev/null; then
  exec unshare -n env XT_BENCH_IN_NETNS=1 sh -c 'ip link set lo up && exec python3 bench/web/bench.py'
fi
exec python3 bench/web/bench.py
