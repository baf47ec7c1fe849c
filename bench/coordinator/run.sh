#!/usr/bin/env bash
# Coordinator benchmark (TEAM.md rules): ours beside the anchor in one run, then rewrite only the
# coordinator section of bench/RESULTS.md.
#   - floor: a bare nats.c request/reply to a trivial responder (xtask-bench-responder)
#   - spawn: our runner (posix_spawn + pipes + pidfd wait + capture) of `true`, alone
#   - ours:  xtask.<node>.task.run of the `noop` task (true), sequential, then 4 callers in parallel
#   - discover across a three-server cluster with a coordinator each: time to all three replies
# Target: task.run p50 <= spawn p50 + floor p50 + 1 ms.
#   bench/coordinator/run.sh [BIN_DIR]     (default build/bin; N=2000 requests, BENCH_N overrides)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-${XT_BIN_DIR:-build/bin}}
BIN=$(cd "$BIN" && pwd)
N=${BENCH_N:-2000}
P=25000                                   # bench port range 25000-25999 (TEAM.md)
TMP=$(mktemp -d /tmp/xt-bench-coord-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

wait_http() {  # url: wait up to 15 s for 200
  for _ in $(seq 150); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1   # polling a readiness URL within a deadline
  done
  echo "timeout waiting for $1" >&2; return 1
}

wait_ping() {  # url node
  for _ in $(seq 150); do
    if XTASK_NATS_URL=$1 "$BIN/xtask" ping --node-id "$2" --timeout 500ms >/dev/null 2>&1; then return 0; fi
    sleep 0.1   # polling readiness within a deadline
  done
  echo "node $2 not ready" >&2; return 1
}

field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# ---- one server: floor, spawn, task.run -------------------------------------------------------
cat > "$TMP/n.conf" <<EOF
server_name: bench
listen: 127.0.0.1:$P
http: 127.0.0.1:$((P + 1))
jetstream { store_dir: "$TMP/js" }
EOF
nats-server -c "$TMP/n.conf" > "$TMP/nats.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$((P + 1))/healthz?js-enabled-only=true"
URL=nats://127.0.0.1:$P
cat > "$TMP/xtask.yaml" <<EOF
limits: { max_concurrent: 4, max_queued: 64 }
tasks:
  noop: ["true"]
EOF
"$BIN/xtask-bench-responder" "$URL" bench.floor > "$TMP/resp.log" 2>&1 & pids+=($!)
XT_LOG_LEVEL=warn "$BIN/xtask" --nats-mode --cluster-url "$URL" --config "$TMP/xtask.yaml" --node-id bench1 \
  > "$TMP/node.log" 2>&1 & pids+=($!)
wait_ping "$URL" bench1
for _ in $(seq 50); do grep -q ready "$TMP/resp.log" && break; sleep 0.1; done

floor=$("$BIN/xtask-bench-client" req "$URL" bench.floor '{}' "$N")
spawn=$("$BIN/xtask-bench-client" spawn "$N")
ours=$("$BIN/xtask-bench-client" req "$URL" xtask.bench1.task.run '{"args":["noop"]}' "$N")
ourspar=$("$BIN/xtask-bench-client" req "$URL" xtask.bench1.task.run '{"args":["noop"]}' $((N / 4)) 4)
echo "floor   $floor"; echo "spawn   $spawn"; echo "ours    $ours"; echo "ours x4 $ourspar"

# ---- three-server cluster: discover latency ----------------------------------------------------
ROUTES="[nats://127.0.0.1:$((P + 13)), nats://127.0.0.1:$((P + 23)), nats://127.0.0.1:$((P + 33))]"
i=0
for r in ams dfw hkg; do
  i=$((i + 1)); b=$((P + 10 * i))
  env NATS_SERVER_NAME="xtask-$r-b" XTASK_DATA_DIR="$TMP/$r" XTASK_NATS_HOST=127.0.0.1 XTASK_NATS_PORT=$b \
    XTASK_NATS_HTTP="127.0.0.1:$((b + 1))" XTASK_NATS_LEAF_HOST=127.0.0.1 XTASK_NATS_LEAF_PORT=$((b + 2)) \
    XTASK_LEAF_USER=xtask XTASK_LEAF_PASSWORD=benchLeafPw XTASK_NATS_REGION_TAG="region:$r" \
    XTASK_NATS_CLUSTER_HOST=127.0.0.1 XTASK_NATS_CLUSTER_PORT=$((b + 3)) XTASK_NATS_ROUTES="$ROUTES" \
    nats-server -c configs/nats-cluster.conf > "$TMP/nats-$r.log" 2>&1 & pids+=($!)
done
i=0
for r in ams dfw hkg; do
  i=$((i + 1)); b=$((P + 10 * i))
  wait_http "http://127.0.0.1:$((b + 1))/healthz?js-enabled-only=true"
  FLY_REGION=$r XT_LOG_LEVEL=warn "$BIN/xtask" --nats-mode --cluster-url "nats://127.0.0.1:$b" \
    --config "$TMP/xtask.yaml" --node-id "$r-b" > "$TMP/node-$r.log" 2>&1 & pids+=($!)
done
i=0
for r in ams dfw hkg; do i=$((i + 1)); wait_ping "nats://127.0.0.1:$((P + 10 * i))" "$r-b"; done
# routes carry interest asynchronously: wait until discover from ams sees all three
for _ in $(seq 100); do
  n=$(XTASK_NATS_URL=nats://127.0.0.1:$((P + 10))  "$BIN/xtask" nodes --json --timeout 300ms 2>/dev/null \
      | python3 -c "import json,sys; print(len(json.load(sys.stdin)))" 2>/dev/null || echo 0)
  [ "$n" = 3 ] && break
done
disc=$("$BIN/xtask-bench-client" gather "nats://127.0.0.1:$((P + 10))" xtask.nodes.discover '{}' $((N / 4)) 3)
echo "discover $disc"

# ---- report ------------------------------------------------------------------------------------
fp=$(field "$floor" p50_us); sp=$(field "$spawn" p50_us); op=$(field "$ours" p50_us)
verdict=$(python3 -c "
f,s,o=$fp,$sp,$op
budget=f+s+1000
print(f'p50 {o:.0f} us vs budget spawn+floor+1ms = {budget:.0f} us: ' + ('met' if o<=budget else 'MISSED') +
      f'; ratio task.run/floor = {o/f:.1f}x, task.run-(spawn+floor) = {o-s-f:.0f} us')")
echo "$verdict"

row() { python3 -c "
import json,sys
d=json.loads(sys.argv[2]); print(f\"| {sys.argv[1]} | {d['n']} | {d['p50_us']:.0f} | {d['p99_us']:.0f} | {d['per_s']:.0f} |\")" "$1" "$2"; }
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<EOF
<!-- begin:coordinator -->
## coordinator (bench/coordinator/run.sh)

$(date -u +%Y-%m-%d) · $(nproc) CPUs · $model · nats-server $(nats-server --version | awk '{print $2}') · N=$N

| measure | n | p50 µs | p99 µs | per second |
|---|---|---|---|---|
$(row "floor: bare nats.c request/reply to a trivial responder" "$floor")
$(row "spawn alone: runner of \`true\` (posix_spawn, pipes, pidfd)" "$spawn")
$(row "**task.run \`noop\`** round trip, 1 caller" "$ours")
$(row "task.run \`noop\`, 4 callers in parallel (tasks/s)" "$ourspar")
$(row "discover across 3 clustered servers (all 3 replies)" "$disc")

Target: task.run p50 within 1 ms of spawn + floor. Result: $verdict.
<!-- end:coordinator -->
EOF
)
python3 - "$section" <<'PY'
import re, sys
path = "bench/RESULTS.md"
text = open(path).read()
new = sys.argv[1]
pat = re.compile(r"<!-- begin:coordinator -->.*?<!-- end:coordinator -->", re.S)
text = pat.sub(lambda m: new, text) if pat.search(text) else text.rstrip("\n") + "\n\n" + new + "\n"
open(path, "w").write(text)
PY
echo "bench/RESULTS.md updated"
