#!/usr/bin/env bash
# Build the image with docker or podman (what the Taskfile's `image` task and the container test run).
#   docker/build.sh [TAG]        default localhost/xtask:latest
# podman: --format docker keeps the HEALTHCHECK (OCI images have none); behind a TLS-intercepting
# proxy the build's npm step trusts the host's CA bundle, mounted read-only for the build only.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-localhost/xtask:latest}
engine=${XTASK_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null 2>&1; then engine=podman; else engine=docker; fi
fi
if [ "$engine" = podman ]; then
  extra=(--format docker)
  ca=/etc/ssl/certs/ca-certificates.crt
  [ -s "$ca" ] && extra+=(-v "$ca:/run/host-ca.crt:ro")
  exec podman build "${extra[@]}" -f docker/Dockerfile -t "$tag" .
fi
exec docker build -f docker/Dockerfile -t "$tag" .
