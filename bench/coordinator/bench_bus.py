#!/usr/bin/env python3
"""The coordinator benchmark's operator-mode half (bench/coordinator/run.sh runs it in the same run as
today's configuration): the bus as integration-tests/lib/xt_bus.py builds it (`xtask-bus init`,
nats-server in operator mode with the full resolver, every client authenticated with a .creds file,
permissions from the user JWTs, the leaf port on TLS from the platform CA).

    bench_bus.py BIN_DIR N BASE_PORT      prints one JSON object:
        {"floor": ..., "run": ..., "leaf": ..., "run_notls": ..., "leaf_notls": ...}

- floor: request/reply between two authenticated send-asap nats.c clients (xtask-bench-responder and
  xtask-bench-client with XTASK_NATS_CREDS)
- run:   xtask.<node>.task.run of `noop`, the node and the caller both authenticated
- leaf:  the same task.run from a client of a leaf nats-server whose link to the hub is TLS (verified
  with the platform CA) and authenticated with a .creds file
- run_notls, leaf_notls: the same on a second bus whose leaf listener has no TLS (BusCluster
  leaf_tls=False; the leaf link still authenticates with its JWT): the TLS leaf's comparison point
Ports: BASE_PORT .. BASE_PORT+49 (two buses of 24).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration-tests", "lib"))
os.environ.setdefault("XT_BIN_DIR", os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "")

from xt_bus import BusCluster  # noqa: E402
from xt_testlib import Proc, wait_until  # noqa: E402


def bench_bus(bindir, n, ports, leaf_tls):
    """One bus (one region) with a node on it; returns {"floor", "run", "leaf"} measures."""
    client, xtask = os.path.join(bindir, "xtask-bench-client"), os.path.join(bindir, "xtask")
    with BusCluster(n=1, ports=ports, leaf_tls=leaf_tls) as bus:
        region = bus.regions[0]
        # The node's identity: the admin identity until xtask-bus mints node roles (authenticated
        # either way; the permissions are what its user JWT says).
        creds = bus.creds("admin")
        conf = os.path.join(bus.tmp.path, "xtask.yaml")
        with open(conf, "w") as f:
            f.write(f"nats: {{ url: '{region.url}', creds: '{creds}' }}\n"
                    "limits: { max_concurrent: 4, max_queued: 64 }\n"
                    "tasks:\n  noop: ['true']\n")
        env = {"XTASK_NATS_CREDS": creds, "XT_LOG_LEVEL": "warn"}
        node = Proc([xtask, "--nats-mode", "--config", conf, "--node-id", "benchop"], env=env)
        resp = Proc([os.path.join(bindir, "xtask-bench-responder"), region.url, "bench.floor"], env=env)

        def ping(url, extra=None):
            e = {**os.environ, **env, **(extra or {})}
            argv = [xtask, "ping", "--node-id", "benchop", "--timeout", "500ms", "--cluster-url", url]
            return subprocess.run(argv, env=e, capture_output=True, timeout=10).returncode == 0

        def measure(url, subject, body, extra=None):
            e = {**os.environ, **env, **(extra or {})}
            out = subprocess.run([client, "req", url, subject, body, str(n)], env=e, capture_output=True,
                                 text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"bench client {subject} at {url}: {out.stderr.strip()}")
            return json.loads(out.stdout)

        wait_until(lambda: ping(region.url), 20, 0.1, "the operator-mode node answers ping")
        resp.wait_output("ready", 10)
        res = {"floor": measure(region.url, "bench.floor", "{}"),
               "run": measure(region.url, "xtask.benchop.task.run", '{"args":["noop"]}')}
        leaf = bus.leaf("bench-leaf", creds)
        wait_until(lambda: bus.leafs(0) == 1, 15, 0.05, "the leaf connected")
        leaf_url = f"nats://127.0.0.1:{leaf.port}"
        # the leaf's own clients need no credentials: the leaf link carries its .creds identity
        no_creds = {"XTASK_NATS_CREDS": ""}
        wait_until(lambda: ping(leaf_url, no_creds), 20, 0.1, "the node answers through the leaf")
        res["leaf"] = measure(leaf_url, "xtask.benchop.task.run", '{"args":["noop"]}', no_creds)
        node.kill()
        resp.kill()
        return res


def main():
    if len(sys.argv) != 4:
        print("usage: bench_bus.py BIN_DIR N BASE_PORT", file=sys.stderr)
        return 2
    bindir, n, base = os.path.abspath(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    res = bench_bus(bindir, n, list(range(base, base + 24)), True)
    plain = bench_bus(bindir, n, list(range(base + 25, base + 49)), False)
    res["run_notls"], res["leaf_notls"] = plain["run"], plain["leaf"]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
