#!/usr/bin/env bash
# Stop the local stack that scripts/up.sh started (foreground or --detach): SIGTERM to the
# supervisor, which stops every service in reverse order within its 4 s budget; waits for it.
set -euo pipefail
cd "$(dirname "$0")/.."
local_dir=${XTASK_LOCAL_DIR:-$PWD/.local}
[ -f "$local_dir/stack.env" ] && . "$local_dir/stack.env"
pidfile=${XTASK_RUN_DIR:-$local_dir/run}/supervisor.pid
if [ ! -f "$pidfile" ] || ! pid=$(cat "$pidfile") || ! kill -0 "$pid" 2>/dev/null; then
  echo "down: no local stack running" >&2
  rm -f "$pidfile"
  exit 0
fi
kill -TERM "$pid"
for _ in $(seq 1 100); do # up to 10 s: the supervisor's budget is 4 s
  kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "down: stopped (pid $pid)" >&2; exit 0; }
  sleep 0.1
done
echo "down: supervisor $pid still running after 10 s" >&2
exit 1
