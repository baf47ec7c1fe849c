"""The coordinator node and the `xtask` client commands on the bus in operator/JWT mode (xt_nats):
- a node whose xtask.yaml names a .creds file (nats.creds) joins and answers; the CLI authenticates
  with XTASK_NATS_CREDS and runs a task;
- the CLI without credentials fails fast (exit 3) naming the URL and the cause, with the hint
  "authorization violation: check XTASK_NATS_CREDS"; a missing credentials file is a usage error
  (exit 2) naming the variable;
- a node whose nats.creds file does not exist does not start: exit 2 and file:line:col;
- a node without credentials stops at once and says why (a server that is down is waited for, a
  refused credential is not).
"""
import os
import subprocess
import sys
import time

from xt_bus import BusCluster
from xt_testlib import Proc, bin_path, port_block, wait_until


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def xtask(*args, env=None, timeout=20):
    e = {k: v for k, v in os.environ.items() if not k.startswith("XTASK_")}
    e.update(env or {})
    return subprocess.run([bin_path("xtask")] + list(args), capture_output=True, text=True, env=e, timeout=timeout)


def main():
    with BusCluster(n=1, ports=port_block("coordinator", 24)) as bus:
        region = bus.regions[0]
        admin = bus.creds("admin")
        conf = os.path.join(bus.tmp.path, "xtask.yaml")
        with open(conf, "w") as f:
            f.write(f"nats:\n  url: {region.url}\n  creds: {admin}\ntasks:\n  noop: ['true']\n"
                    "  echo: {argv: [echo], args: true}\n")
        node = Proc([bin_path("xtask"), "--nats-mode", "--config", conf, "--node-id", "authnode"])
        creds_env = {"XTASK_NATS_URL": region.url, "XTASK_NATS_CREDS": admin}
        wait_until(lambda: xtask("ping", "--node-id", "authnode", env=creds_env).returncode == 0, 20, 0.1,
                   "the node with nats.creds answers an authenticated ping")
        t0 = time.monotonic()
        r = xtask("run", "--node", "authnode", "echo", "hello", env=creds_env)
        check(r.returncode == 0 and r.stdout == "hello\n", f"authenticated run: {r}")
        print(f"node with nats.creds + CLI with XTASK_NATS_CREDS: run ok ({time.monotonic() - t0:.2f}s)", flush=True)

        # the CLI without credentials: refused by the server, fails fast with the cause
        t0 = time.monotonic()
        r = xtask("run", "--node", "authnode", "noop", env={"XTASK_NATS_URL": region.url})
        took = time.monotonic() - t0
        check(r.returncode == 3, f"anonymous CLI: exit {r.returncode}: {r.stderr}")
        check(f"NATS at {region.url}: authorization violation: check XTASK_NATS_CREDS" in r.stderr,
              f"anonymous CLI message: {r.stderr}")
        check(took < 5, f"anonymous CLI took {took:.1f}s")
        print(f"anonymous CLI: exit 3 in {took:.2f}s: {r.stderr.strip()}", flush=True)

        r = xtask("ping", env={"XTASK_NATS_URL": region.url, "XTASK_NATS_CREDS": "/nonexistent/admin.creds"})
        check(r.returncode == 2 and "XTASK_NATS_CREDS: /nonexistent/admin.creds: No such file or directory"
              in r.stderr, f"missing creds file: {r}")

        # a node whose credentials file is missing: a configuration error, with its position
        bad = os.path.join(bus.tmp.path, "bad.yaml")
        with open(bad, "w") as f:
            f.write(f"nats:\n  url: {region.url}\n  creds: /nonexistent/node.creds\n")
        r = xtask("--nats-mode", "--config", bad, "--node-id", "badnode")
        check(r.returncode == 2 and f"{bad}:3:10: nats.creds: /nonexistent/node.creds: No such file or directory"
              in r.stderr, f"node with a missing creds file: {r}")

        # a node without credentials: refused at start, it says why and exits (the supervisor
        # restarts it with back-off); it does not retry a refused credential silently
        anon = os.path.join(bus.tmp.path, "anon.yaml")
        with open(anon, "w") as f:
            f.write(f"nats:\n  url: {region.url}\n")
        r = xtask("--nats-mode", "--config", anon, "--node-id", "anonnode")
        check(r.returncode == 1 and f"NATS at {region.url}: authorization violation: check nats.creds" in r.stderr,
              f"node without credentials: {r}")
        print("node without credentials: exit 1, 'authorization violation: check nats.creds'", flush=True)
        node.kill()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
