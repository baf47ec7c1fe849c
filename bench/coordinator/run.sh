#!/usr/bin/env bash
# Coordinator benchmark (TEAM.md rules): ours beside the anchors in one run, then rewrite only the
# coordinator section of bench/RESULTS.md.
#   - raw floor: a raw-socket requester and a raw responder (the NATS protocol by hand) on the same
#     nats-server: what the server itself costs per request/reply
#   - a raw-socket requester -> the send-asap nats.c responder (xtask-bench-responder)
#   - nats.c with send-asap on both sides (xt_nats, what every program uses), and nats.c's default
#     options beside it (no send-asap: every request waits for the library's flusher, ~1 ms)
#   - spawn: our runner (posix_spawn + pipes + pidfd wait + capture) of `true`, alone
#   - ours:  xtask.<node>.task.run of the `noop` task (true), sequential, then 4 callers in parallel
#   - task.run through a leaf nats-server linked as today (password, no TLS)
#   - operator mode (bench_bus.py, the bus of issue 10): authenticated floor and task.run, and
#     task.run through a leaf whose link is TLS (platform CA) + .creds
#   - discover across a three-server cluster with a coordinator each: time to all three replies (the
#     shipped nats-cluster.conf as the product runs it: operator mode, one bus bundle, routes with the
#     route password through entrypoint/xtask-nats, each node with its node.creds, the caller admin)
# Target: task.run p50 <= raw floor p50 + spawn p50 + 100 us.
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

# ---- one server: floor, spawn, task.run -------------------------------------------------------
cat > "$TMP/n.conf" <<EOF
server_name: bench
listen: 127.0.0.1:$P
http: 127.0.0.1:$((P + 1))
jetstream { store_dir: "$TMP/js" }
leafnodes { listen: "127.0.0.1:$((P + 5))", authorization { user: xtask, password: benchLeafPw, timeout: 2 } }
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
"$BIN/xtask-bench-responder" --nats-default "$URL" bench.default > "$TMP/resp-default.log" 2>&1 & pids+=($!)
XT_LOG_LEVEL=warn "$BIN/xtask" --nats-mode --cluster-url "$URL" --config "$TMP/xtask.yaml" --node-id bench1 \
  > "$TMP/node.log" 2>&1 & pids+=($!)
wait_ping "$URL" bench1
for f in resp resp-default; do
  for _ in $(seq 50); do grep -q ready "$TMP/$f.log" && break; sleep 0.1; done
done

rawpair=$("$BIN/xtask-bench-client" rawpair "$URL" "$N")
raw=$("$BIN/xtask-bench-client" raw "$URL" bench.floor '{}' "$N")
floor=$("$BIN/xtask-bench-client" req "$URL" bench.floor '{}' "$N")
ncdef=$("$BIN/xtask-bench-client" req --nats-default "$URL" bench.default '{}' $((N / 4)))
spawn=$("$BIN/xtask-bench-client" spawn "$N")
ours=$("$BIN/xtask-bench-client" req "$URL" xtask.bench1.task.run '{"args":["noop"]}' "$N")
ourspar=$("$BIN/xtask-bench-client" req "$URL" xtask.bench1.task.run '{"args":["noop"]}' $((N / 4)) 4)
echo "raw pair $rawpair"; echo "raw      $raw"; echo "floor    $floor"; echo "default  $ncdef"
echo "spawn    $spawn"; echo "ours     $ours"; echo "ours x4  $ourspar"

# a leaf nats-server linked as today (password, plain text); its clients run tasks on the hub's node
cat > "$TMP/leaf.conf" <<EOF
server_name: bench-leaf
listen: 127.0.0.1:$((P + 6))
leafnodes { remotes [ { url: "nats://xtask:benchLeafPw@127.0.0.1:$((P + 5))" } ] }
EOF
nats-server -c "$TMP/leaf.conf" > "$TMP/leaf.log" 2>&1 & pids+=($!)
wait_ping "nats://127.0.0.1:$((P + 6))" bench1
leafplain=$("$BIN/xtask-bench-client" req "nats://127.0.0.1:$((P + 6))" xtask.bench1.task.run '{"args":["noop"]}' "$N")
echo "leaf     $leafplain"

# operator mode (auth, permissions, leaf with and without TLS) in the same run, ports P+100..P+148
opfloor=""; oprun=""; opleaf=""; oprun2=""; opleaf2=""
if op=$(python3 bench/coordinator/bench_bus.py "$BIN" "$N" $((P + 100)) 2> "$TMP/bus.log"); then
  pick() { python3 -c "import json,sys; print(json.dumps(json.loads(sys.argv[1])[sys.argv[2]]))" "$op" "$1"; }
  opfloor=$(pick floor); oprun=$(pick run); opleaf=$(pick leaf); oprun2=$(pick run_notls)
  opleaf2=$(pick leaf_notls)
  echo "op floor $opfloor"; echo "op run   $oprun"; echo "op leaf  $opleaf"
  echo "op run (2nd bus) $oprun2"; echo "op leaf no TLS   $opleaf2"
else
  echo "operator mode not measured:" >&2; tail -20 "$TMP/bus.log" >&2
fi

# ---- three-server cluster: discover latency (the shipped configs, operator mode) -----------------
"$BIN/xtask-bus" init --dir "$TMP/bus-master" --domain xtask.localhost > /dev/null
BUNDLE=$("$BIN/xtask-bus" export --dir "$TMP/bus-master" --value)
ROUTES="[nats://127.0.0.1:$((P + 13)), nats://127.0.0.1:$((P + 23)), nats://127.0.0.1:$((P + 33))]"
cat > "$TMP/xtask-op.yaml" <<'EOF'
limits: { max_concurrent: 4, max_queued: 64 }
nats: { creds: "${XTASK_NODE_CREDS}" }
tasks:
  noop: ["true"]
EOF
i=0
for r in ams dfw hkg; do
  i=$((i + 1)); b=$((P + 10 * i)); B="$TMP/$r/bus"
  XTASK_BUS_BUNDLE="$BUNDLE" "$BIN/xtask-bus" init --dir "$B" --domain xtask.localhost --node-id "$r-b" > /dev/null
  env NATS_SERVER_NAME="xtask-$r-b" XTASK_DATA_DIR="$TMP/$r" XTASK_NATS_HOST=127.0.0.1 XTASK_NATS_PORT=$b \
    XTASK_NATS_HTTP="127.0.0.1:$((b + 1))" XTASK_NATS_LEAF_HOST=127.0.0.1 XTASK_NATS_LEAF_PORT=$((b + 2)) \
    XTASK_NATS_OPERATOR="$B/operator.jwt" XTASK_NATS_RESOLVER_DIR="$B/jwt" XTASK_LEAF_TLS_CERT="$B/tls/server.pem" \
    XTASK_LEAF_TLS_KEY="$B/tls/server-key.pem" XTASK_NATS_SERVER_MAX_MEMORY=2147483648 XTASK_NATS_SERVER_MAX_FILE=21474836480 \
    XTASK_ROUTE_PASSWORD="$(cat "$B/route-password")" XTASK_NATS_REGION_TAG="region:$r" \
    XTASK_NATS_CLUSTER_HOST=127.0.0.1 XTASK_NATS_CLUSTER_PORT=$((b + 3)) XTASK_NATS_ROUTES="$ROUTES" \
    sh entrypoint/xtask-nats -c configs/nats-cluster.conf > "$TMP/nats-$r.log" 2>&1 & pids+=($!)
done
# the callers below (xtask nodes/ping, the bench client) are the bus's admin
export XTASK_NATS_CREDS="$TMP/ams/bus/creds/admin.creds"
i=0
for r in ams dfw hkg; do
  i=$((i + 1)); b=$((P + 10 * i))
  wait_http "http://127.0.0.1:$((b + 1))/healthz?js-enabled-only=true"
  FLY_REGION=$r XT_LOG_LEVEL=warn XTASK_NODE_CREDS="$TMP/$r/bus/creds/node.creds" "$BIN/xtask" --nats-mode \
    --cluster-url "nats://127.0.0.1:$b" --config "$TMP/xtask-op.yaml" --node-id "$r-b" > "$TMP/node-$r.log" 2>&1 & pids+=($!)
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
p50() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['p50_us'])" "$1"; }
verdict=$(python3 -c "
rp,s,o,f,d=$(p50 "$rawpair"),$(p50 "$spawn"),$(p50 "$ours"),$(p50 "$floor"),$(p50 "$ncdef")
budget=rp+s+100
print(f'task.run p50 {o:.0f} us vs raw floor + spawn + 100 us = {budget:.0f} us: ' + ('met' if o<=budget else 'MISSED') +
      f' (task.run - spawn - raw floor = {o-s-rp:.0f} us); send-asap nats.c floor {f:.0f} us = {f/rp:.2f}x the raw floor; '
      f'nats.c default {d:.0f} us = {d/f:.1f}x send-asap')")
echo "$verdict"
opverdict="not measured (bench_bus.py failed: see the run's output)"
if [ -n "$oprun" ]; then
  opverdict=$(python3 -c "
o,a,lp,lt,f,af,a2,ln=$(p50 "$ours"),$(p50 "$oprun"),$(p50 "$leafplain"),$(p50 "$opleaf"),$(p50 "$floor"),$(p50 "$opfloor"),$(p50 "$oprun2"),$(p50 "$opleaf2")
print(f'authenticated task.run {a:.0f} us = {a/o:.2f}x today ({a-o:+.0f} us); authenticated floor {af:.0f} us = {af/f:.2f}x '
      f'the unauthenticated one; through a leaf: TLS {lt:.0f} us vs no TLS {ln:.0f} us = {lt/ln:.2f}x '
      f'(leaf hop {lt-a:+.0f} us with TLS, {ln-a2:+.0f} us without; today\'s password leaf {lp-o:+.0f} us)')")
fi
echo "operator mode: $opverdict"

row() {
  if [ -z "$2" ]; then echo "| $1 | - | not measured | | |"; return; fi
  python3 -c "
import json,sys
d=json.loads(sys.argv[2]); print(f\"| {sys.argv[1]} | {d['n']} | {d['p50_us']:.0f} | {d['p99_us']:.0f} | {d['per_s']:.0f} |\")" "$1" "$2"; }
model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
section=$(cat <<EOF
<!-- begin:coordinator -->
## coordinator (bench/coordinator/run.sh)

$(date -u +%Y-%m-%d) · $(nproc) CPUs · $model · nats-server $(nats-server --version | awk '{print $2}') · N=$N · load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)

| measure | n | p50 µs | p99 µs | per second |
|---|---|---|---|---|
$(row "**raw floor**: raw-socket requester and raw responder (NATS protocol by hand)" "$rawpair")
$(row "raw-socket requester, nats.c send-asap responder" "$raw")
$(row "nats.c request/reply, send-asap both sides (xt_nats: every program)" "$floor")
$(row "nats.c request/reply, nats.c default options (no send-asap)" "$ncdef")
$(row "spawn alone: runner of \`true\` (posix_spawn, pipes, pidfd)" "$spawn")
$(row "**task.run \`noop\`** round trip, 1 caller (no auth, as today)" "$ours")
$(row "task.run \`noop\`, 4 callers in parallel (tasks/s)" "$ourspar")
$(row "task.run \`noop\` through a leaf, link as today (password, no TLS)" "$leafplain")
$(row "operator mode: nats.c send-asap floor, both clients authenticated (.creds)" "$opfloor")
$(row "**operator mode: task.run \`noop\`**, node and caller authenticated (.creds)" "$oprun")
$(row "operator mode: task.run through a leaf, link TLS (platform CA) + .creds" "$opleaf")
$(row "operator mode, 2nd bus whose leaf port has no TLS: task.run direct" "$oprun2")
$(row "operator mode, 2nd bus: task.run through a leaf, link without TLS (.creds)" "$opleaf2")
$(row "discover across 3 clustered servers (all 3 replies; shipped nats-cluster.conf, operator mode)" "$disc")

Target: task.run p50 <= raw floor + spawn + 100 µs. Result: $verdict.
Operator mode (same run): $opverdict.
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
