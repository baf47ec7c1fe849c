#!/usr/bin/env bash
# Install the Debian 12 packages a purpose needs; idempotent (a second run only checks).
#   scripts/deps.sh build     compile everything (C toolchain, -dev packages, node/npm for the GUI bundle)
#   scripts/deps.sh run       + what the running stack needs (nats-server)
#   scripts/deps.sh test      + what the test suite needs (cmocka, argon2 CLI, chromium, node/npm, podman...)
#   scripts/deps.sh bench     + the anchors the benchmarks compare against (supervisor, s6, runit, caddy, nginx, wrk)
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libnats-dev libyaml-dev libcurl4-openssl-dev libh2o-evloop-dev
            libssl-dev libargon2-dev libjansson-dev zlib1g-dev libqrencode-dev)
run_pkgs=(nats-server openssl ca-certificates procps iproute2 libqrencode4)
test_pkgs=(libcmocka-dev argon2 curl python3 chromium zbar-tools iproute2 wrk clang-format clang libclang-rt-14-dev)
bench_pkgs=(supervisor s6 runit caddy nginx-light wrk hyperfine iproute2)

want=("${build_pkgs[@]}")
case "${1:-build}" in
  build) ;;
  run) want+=("${run_pkgs[@]}") ;;
  test) want+=("${run_pkgs[@]}" "${test_pkgs[@]}") ;;
  bench) want+=("${run_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|run|test|bench" >&2; exit 2 ;;
esac
# node and npm (the GUI's Datastar bundle and the browser tests come from npm): only when the machine
# has none (a newer Node from elsewhere is fine)
command -v node >/dev/null 2>&1 || want+=(nodejs)
command -v npm >/dev/null 2>&1 || want+=(npm)

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
