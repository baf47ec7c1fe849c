#!/usr/bin/env bash
# The README's first command: build everything and run the whole stack locally under
# xtask-supervisor, data under .local/ in the checkout, every port on 127.0.0.1.
#
#   scripts/up.sh              foreground: supervisor logs here, Ctrl-C stops everything cleanly
#   scripts/up.sh --detach     background: logs in .local/supervisor.log; stop with scripts/down.sh
#
# Ports and directories follow the environment (defaults in configs/services.yaml), e.g.
#   XTASK_HTTP_PORT=8081 scripts/up.sh
# Fresh Debian 12 as root: installs its packages first (scripts/deps.sh run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

detach=0
for a in "$@"; do
  case $a in
    -d | --detach) detach=1 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: $0 [--detach]" >&2; exit 2 ;;
  esac
done

say() { printf 'up: %s\n' "$*" >&2; }

# --- packages and build ----------------------------------------------------------------------
scripts/deps.sh run
build=${XTASK_BUILD_DIR:-$root/build}
if [ ! -f "$build/CMakeCache.txt" ]; then
  say "configuring $build"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXT_BUILD_TESTS=OFF >/dev/null
fi
say "building (cmake --build $build)"
if ! cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" >"$root/.build-up.log" 2>&1; then
  grep -Ev '^\[ *[0-9]+%\]' "$root/.build-up.log" | tail -n 40 >&2
  say "build failed (full log: .build-up.log)"
  exit 1
fi
rm -f "$root/.build-up.log"
for b in xtask-supervisor xtask xtask-auth xtask-web xtask-bus; do
  [ -x "$build/bin/$b" ] || { say "$build/bin/$b was not built: the stack needs it"; exit 1; }
done

# --- local configuration: the manifest reads these (configs/services.yaml, docs/STACK.md) ------
local_dir=${XTASK_LOCAL_DIR:-$root/.local}
export XTASK_CONFIG_DIR=${XTASK_CONFIG_DIR:-$root/configs}
export XTASK_DATA_DIR=${XTASK_DATA_DIR:-$local_dir/data}
export XTASK_RUN_DIR=${XTASK_RUN_DIR:-$local_dir/run}
export XTASK_USERS_FILE=${XTASK_USERS_FILE:-$XTASK_DATA_DIR/users_database.yml}
export XTASK_USER=${XTASK_USER:-$(id -un)}
export XTASK_BIND=${XTASK_BIND:-127.0.0.1}
export XTASK_HTTP_PORT=${XTASK_HTTP_PORT:-8080}
export XTASK_STATUS_ADDR=${XTASK_STATUS_ADDR:-127.0.0.1:9100}
export XTASK_WEB_GUI=${XTASK_WEB_GUI:-$build/share/xtask-web/gui}
# A laptop has no DNS for the platform's hosts: browsers (and curl) resolve *.localhost to loopback, so
# the front is xtask.localhost, the login portal auth.xtask.localhost (same cookie domain), plain http.
export XTASK_DOMAIN=${XTASK_DOMAIN:-xtask.localhost}
export XTASK_PUBLIC_URL=${XTASK_PUBLIC_URL:-http://$XTASK_DOMAIN:$XTASK_HTTP_PORT}
export XTASK_PORTAL_URL=${XTASK_PORTAL_URL:-http://auth.$XTASK_DOMAIN:$XTASK_HTTP_PORT/}
export XTASK_AUTH_ALLOW_HTTP=${XTASK_AUTH_ALLOW_HTTP:-true}
export FLY_REGION=${FLY_REGION:-local}
export PATH="$build/bin:$root/entrypoint:$PATH"
manifest=${XTASK_MANIFEST:-$root/configs/services.yaml}
mkdir -p "$XTASK_DATA_DIR" "$XTASK_RUN_DIR"
chmod 700 "$XTASK_DATA_DIR" "$XTASK_RUN_DIR"

pidfile=$XTASK_RUN_DIR/supervisor.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  say "a stack is already running (pid $(cat "$pidfile")); scripts/down.sh stops it"
  exit 1
fi
xtask-supervisor check "$manifest" >/dev/null

# --- every port this stack will listen on, checked before anything starts -------------------
# (a busy port would otherwise surface as a service that never becomes ready). One row per port:
# the variable that moves it, its value, what listens there.
status_port=${XTASK_STATUS_ADDR##*:}
ports=(
  "XTASK_HTTP_PORT $XTASK_HTTP_PORT the web front (HTTP)"
  "XTASK_AUTH_PORT ${XTASK_AUTH_PORT:-9091} xtask-auth"
  "XTASK_NATS_PORT ${XTASK_NATS_PORT:-4222} NATS clients"
  "XTASK_NATS_HTTP_PORT ${XTASK_NATS_HTTP_PORT:-8222} NATS monitoring"
  "XTASK_NATS_LEAF_PORT ${XTASK_NATS_LEAF_PORT:-7422} NATS leaf nodes"
  "XTASK_STATUS_ADDR $status_port the supervisor's status page ($XTASK_STATUS_ADDR)"
)
[ -n "${XTASK_NATS_WS_PORT:-}" ] && ports+=("XTASK_NATS_WS_PORT $XTASK_NATS_WS_PORT NATS WebSocket (edge leafs)")
case ${XTASK_NATS_CONF:-nats.conf} in
  *cluster*) ports+=("XTASK_NATS_CLUSTER_PORT ${XTASK_NATS_CLUSTER_PORT:-6222} NATS cluster routes") ;;
esac

# Who listens on TCP port $1 ("" when nobody): ss names the process when it may (same user, or
# root); without ss, a connection to loopback tells that something listens, not who.
port_holder() {
  local out
  if command -v ss >/dev/null 2>&1; then
    out=$(ss -Hltnp "( sport = :$1 )" 2>/dev/null | head -n 1) || out=""
    [ -z "$out" ] && return 0
    if [[ $out =~ users:\(\(\"([^\"]+)\",pid=([0-9]+) ]]; then
      printf '%s (pid %s)' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
    else
      printf 'another process (not ours to name: ss -ltnp as root tells)'
    fi
  elif (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; then
    printf 'another process'
  fi
}

busy=0
declare -A seen=()
for row in "${ports[@]}"; do
  read -r var port what <<<"$row"
  if ! [[ $port =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    say "$var='$port' ($what): not a port number"
    exit 2
  fi
  if [ -n "${seen[$port]:-}" ]; then
    say "port $port is given twice: $var ($what) and ${seen[$port]}; set one of them to another port"
    exit 2
  fi
  seen[$port]="$var ($what)"
  holder=$(port_holder "$port")
  if [ -n "$holder" ]; then
    say "port $port ($what) is in use by $holder: set $var to a free port, e.g. $var=$((port + 1)) scripts/up.sh"
    [ "$var" = XTASK_STATUS_ADDR ] && say "  (XTASK_STATUS_ADDR is host:port, e.g. XTASK_STATUS_ADDR=127.0.0.1:$((port + 1)))"
    busy=1
  fi
done
[ $busy = 0 ] || { say "nothing was started"; exit 1; }

# The rendered local configuration, for scripts/down.sh, `status` and the curious.
envfile=$local_dir/stack.env
{
  echo "# written by scripts/up.sh: the environment the local stack runs with"
  for v in XTASK_CONFIG_DIR XTASK_DATA_DIR XTASK_RUN_DIR XTASK_USERS_FILE XTASK_USER XTASK_BIND \
           XTASK_HTTP_PORT XTASK_STATUS_ADDR XTASK_WEB_GUI XTASK_DOMAIN XTASK_PUBLIC_URL XTASK_PORTAL_URL \
           XTASK_AUTH_ALLOW_HTTP FLY_REGION; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
  # every port, with the value this stack uses (moved or default): the CLIs and scripts/down.sh
  # read them from here
  printf 'export XTASK_AUTH_PORT=%q\n' "${XTASK_AUTH_PORT:-9091}"
  printf 'export XTASK_NATS_PORT=%q\n' "${XTASK_NATS_PORT:-4222}"
  printf 'export XTASK_NATS_HTTP_PORT=%q\n' "${XTASK_NATS_HTTP_PORT:-8222}"
  printf 'export XTASK_NATS_LEAF_PORT=%q\n' "${XTASK_NATS_LEAF_PORT:-7422}"
  # other knobs of configs/services.yaml, when set
  for v in XTASK_NATS_CLUSTER_PORT XTASK_NATS_WS_PORT XTASK_NATS_ROUTES XTASK_NATS_CONF \
           XTASK_AUTH_SHARED_SESSIONS NATS_SERVER_NAME; do
    if [ -n "${!v:-}" ]; then printf 'export %s=%q\n' "$v" "${!v}"; fi
  done
  # what the CLIs read (grep getenv): xtask-supervisor's control socket; xtask's bus URL and
  # credentials (the bus refuses anonymous clients: the `xtask` CLI in this shell is the operator,
  # the admin identity); xtask-bus's directory; xtask-auth's config (totp-code, hash-password)
  printf 'export XTASK_SUPERVISOR_SOCKET=%q\n' "$XTASK_RUN_DIR/supervisor.sock"
  bus_dir=${XTASK_BUS_DIR:-$XTASK_DATA_DIR/bus}
  printf 'export XTASK_BUS_DIR=%q\n' "$bus_dir"
  printf 'export XTASK_NATS_URL=%q\n' "nats://127.0.0.1:${XTASK_NATS_PORT:-4222}"
  printf 'export XTASK_NATS_CREDS=%q\n' "$bus_dir/creds/admin.creds"
  printf 'export PATH=%q:%q:"$PATH"\n' "$build/bin" "$root/entrypoint"
} >"$envfile"

# First run: the admin user (password printed once, kept 0600), and the bus directory (operator,
# accounts, CA, certificates, the services' .creds; from XTASK_BUS_BUNDLE when it is set).
setup_out=$(xtask-setup)
[ -n "$setup_out" ] && printf '%s\n' "$setup_out" >&2
# the bundle holds the bus's seeds: xtask-setup wrote it to the bus directory; no service needs it
unset XTASK_BUS_BUNDLE

# --- start and wait for all-ready ----------------------------------------------------------
url=$XTASK_PUBLIC_URL/web/
status_cmd="XTASK_SUPERVISOR_SOCKET=$XTASK_RUN_DIR/supervisor.sock $build/bin/xtask-supervisor status"
healthz=http://$XTASK_STATUS_ADDR/healthz

healthy() { curl -fsS -o /dev/null --max-time 1 "$healthz" 2>/dev/null; }

banner() {
  local pw_file=$XTASK_DATA_DIR/secrets/admin-password
  echo
  echo "xtask is up: $url"
  if [ -f "$pw_file" ]; then
    echo "  login:    ${XTASK_ADMIN_USER:-admin} / password in $pw_file (cat it; 0600)"
  else
    echo "  login:    users in $XTASK_USERS_FILE"
  fi
  if [ -f "$XTASK_DATA_DIR/secrets/admin-totp-uri" ]; then
    echo "            second factor (TOTP): add the otpauth:// URI in $XTASK_DATA_DIR/secrets/admin-totp-uri"
    echo "            to an authenticator app, or print the current code:"
    echo "            (source $envfile && xtask-auth totp-code --user ${XTASK_ADMIN_USER:-admin} --config \$XTASK_CONFIG_DIR/auth.yml)"
  fi
  echo "  tasks:    (source $envfile && xtask nodes && xtask run noop)   # as the bus's admin identity"
  echo "  status:   $status_cmd"
  echo "            (or: source $envfile && xtask-supervisor status)"
  if [ $detach = 1 ]; then
    echo "  logs:     $local_dir/supervisor.log      stop: scripts/down.sh"
  else
    echo "  stop:     Ctrl-C"
  fi
  echo
}

wait_ready() { # pid deadline_s
  local pid=$1 deadline=$((SECONDS + $2))
  while ! healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then return 2; fi
    if [ $SECONDS -ge $deadline ]; then return 1; fi
    sleep 0.1 # poll interval of a deadline-bounded wait
  done
}

if [ $detach = 1 ]; then
  log=$local_dir/supervisor.log
  setsid xtask-supervisor run -c "$manifest" >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$pidfile"
  rc=0
  wait_ready "$pid" "${XTASK_UP_TIMEOUT:-60}" || rc=$?
  if [ $rc != 0 ]; then
    tail -n 30 "$log" >&2
    [ $rc = 2 ] && say "the supervisor exited (log: $log)" || say "not ready in time (log: $log)"
    [ $rc = 1 ] && kill -TERM "$pid" 2>/dev/null
    exit 1
  fi
  banner
  exit 0
fi

# Foreground. The supervisor runs in its own session so that Ctrl-C reaches it exactly once, from
# here: it stops every service in reverse order and exits; we return its exit code.
setsid xtask-supervisor run -c "$manifest" </dev/null &
pid=$!
echo "$pid" >"$pidfile"
stopping=0
forward() {
  [ $stopping = 1 ] && return
  stopping=1
  kill -"$1" "$pid" 2>/dev/null || true
}
trap 'forward INT' INT
trap 'forward TERM' TERM
trap 'forward TERM' HUP
rc=0
wait_ready "$pid" "${XTASK_UP_TIMEOUT:-60}" || rc=$?
if [ $stopping = 0 ]; then
  case $rc in
    0) banner ;;
    1) say "not all services ready after ${XTASK_UP_TIMEOUT:-60}s; still trying (status: $status_cmd)" ;;
  esac
fi
code=0
while kill -0 "$pid" 2>/dev/null; do
  wait "$pid" && code=0 || code=$?
done
wait "$pid" 2>/dev/null && code=0 || code=$?
rm -f "$pidfile"
exit $code
