#!/usr/bin/env bash
# Edge-node benchmark (TEAM.md rules): in one run, on a three-region operator-mode bus (the
# BusCluster fixture: TLS leaf port, .creds everywhere, default_js_domain for the XTASK account):
#   - anchors: the raw NATS hop (nats.c send-asap request/reply, both clients on region 0) and the
#     same hop through a leaf nats-server (TLS + .creds link) to region 0
#   - task.run `noop` from the web identity on region 0 to the region's own node, and to an edge
#     node joined with `xtask join` whose leaf is attached to region 0
#   - join-to-first-task: `xtask join BUNDLE` started -> the first task.run answered through another
#     region (and: -> the node answering in all three regions), with and without the pre-flight check
# Rewrites only the edge section of bench/RESULTS.md. Target (issue 11): the leaf adds at most 2x the
# raw NATS hop to a task round trip.
#   bench/edge/run.sh [BIN_DIR]     (default build/bin; N=2000 requests, BENCH_N overrides; JOINS=5)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-${XT_BIN_DIR:-build/bin}}
BIN=$(cd "$BIN" && pwd)
export XT_BIN_DIR=$BIN
exec python3 bench/edge/bench_edge.py "$BIN" "${BENCH_N:-2000}" "${JOINS:-5}"
