#!/usr/bin/env bash
# Build everything and start the whole stack locally under xtask-supervisor, on the embedded
# default configs (configs/), data under .local/, ports on 127.0.0.1. The README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/deps.sh run
cmake -S "$root" -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXT_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null

export XTASK_CONFIG_DIR=${XTASK_CONFIG_DIR:-$root/configs}
export XTASK_DATA_DIR=${XTASK_DATA_DIR:-$root/.local/data}
export XTASK_RUN_DIR=${XTASK_RUN_DIR:-$root/.local/run}
export PATH="$root/build/bin:$PATH"
mkdir -p "$XTASK_DATA_DIR" "$XTASK_RUN_DIR"
chmod 700 "$XTASK_DATA_DIR" "$XTASK_RUN_DIR"
echo "xtask: starting the stack (Ctrl-C stops it); in another terminal:"
echo "  XTASK_SUPERVISOR_SOCKET=$XTASK_RUN_DIR/supervisor.sock $root/build/bin/xtask-supervisor status"
exec "$root/build/bin/xtask-supervisor" run -c "$root/configs/services.yaml"
