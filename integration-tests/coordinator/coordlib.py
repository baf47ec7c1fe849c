"""Helpers for the coordinator's integration tests: nodes, CLI runs, the test runner."""
import json
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from xt_testlib import Proc, bin_path, wait_until  # noqa: E402
import natsproto  # noqa: E402

XTASK = bin_path("xtask")


class Node:
    """An `xtask --nats-mode` process with its own config file."""

    def __init__(self, tmp, node_id, url, config_text, region="local", env=None, client_creds=None):
        """client_creds: the .creds wait_ready's client connects with (servers in operator mode)."""
        self.id, self.url, self.tmp = node_id, url, tmp
        self.client_creds = client_creds
        self.config = os.path.join(tmp, f"xtask-{node_id}.yaml")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.env = {"FLY_REGION": region, "XT_LOG_LEVEL": "info"}
        self.env.update(env or {})
        self.proc = None

    def start(self, wait=True, timeout=15.0):
        self.proc = Proc([XTASK, "--nats-mode", "--cluster-url", self.url, "--config", self.config,
                          "--node-id", self.id], env=self.env)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=15.0):
        """Ping answered with JetStream set up."""
        def ready():
            if not self.proc.running():
                raise AssertionError(f"node {self.id} exited: {self.proc.output()[-2000:]}")
            with natsproto.Client(self.url, timeout=1, creds=self.client_creds) as c:
                return c.request(f"xtask.{self.id}.ping", b"{}", 1.0).json().get("jetstream")
        wait_until(ready, timeout, interval=0.05, what=f"node {self.id} ready")

    def stop(self, timeout=5.0):
        import signal
        self.proc.signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.proc.kill()
        return rc

    def kill(self):
        if self.proc:
            self.proc.kill()


def xtask(*args, url=None, env=None, timeout=30.0):
    """Run the CLI; returns CompletedProcess (text)."""
    e = dict(os.environ)
    if url:
        e["XTASK_NATS_URL"] = url
    e.update(env or {})
    return subprocess.run([XTASK, *args], env=e, capture_output=True, text=True, timeout=timeout)


def tid(label):
    """A task id in the platform's form (t- and 16 hex digits), stable for a label within a run."""
    import hashlib
    return "t-" + hashlib.sha256(f"{os.getpid()}:{label}".encode()).hexdigest()[:16]


def req_json(c, subject, body, timeout=5.0):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return c.request(subject, body, timeout).json()


def assert_error(reply, code):
    assert "error" in reply, f"expected error {code}, got {reply}"
    assert reply["error"]["code"] == code, f"expected {code}, got {reply}"
    assert reply["error"]["message"], reply


def run_tests(tests, budget=None):
    """Run test functions in order; print a line each; exit 1 if any failed."""
    failed = 0
    t_all = time.monotonic()
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            print(f"PASS {t.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
        except Exception:  # noqa: BLE001
            failed += 1
            print(f"FAIL {t.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
            traceback.print_exc()
    print(f"{len(tests) - failed}/{len(tests)} passed in {time.monotonic() - t_all:.1f}s", flush=True)
    sys.exit(1 if failed else 0)
