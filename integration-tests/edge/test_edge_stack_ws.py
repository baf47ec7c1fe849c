"""The shipped stack carries edge leafs over WebSocket when asked as fly.toml asks it
(XTASK_NATS_WS_PORT: entrypoint/xtask-nats adds the loopback websocket listener to the generated top
file; XTASK_WEB_LEAF_WS: the front passes /leafnode to it): an edge machine joins with a bundle whose
only hub is the front's ws:// URL and answers a ping and a task from the platform's admin. Ports:
port_block("stack")."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "stack"))

from edgelib import Machine, tid  # noqa: E402
from buslib import Probe  # noqa: E402
from coordlib import xtask  # noqa: E402
from stack import Stack  # noqa: E402
from xt_testlib import port_block, wait_until  # noqa: E402


class _Hub:
    """What edgelib.Machine needs of a hub: a temp dir and spare ports."""

    def __init__(self, tmp, spare):
        self.bus = type("B", (), {})()
        self.bus.tmp = tmp
        self.bus.take_port = lambda: spare.pop(0)


def main():
    ports = port_block("stack", 14)
    ws_port = ports[8]
    s = Stack(ports[:8], "local", name="edge-ws",
              extra_env={"XTASK_NATS_WS_PORT": str(ws_port), "XTASK_WEB_LEAF_WS": f"http://127.0.0.1:{ws_port}"})
    m = None
    try:
        s.start()
        s.wait_healthy(60)
        out = os.path.join(s.tmp.path, "ws.bundle")
        r = xtask("node", "add", "sw-1", "--bus-dir", s.bus_dir, "--capability", "task", "--out", out,
                  "--hub", f"local=ws://127.0.0.1:{s.http_port}")
        assert r.returncode == 0, r.stderr
        m = Machine(_Hub(s.tmp, ports[9:]), "sw")
        m.join(out)   # a bundle with WebSocket hubs only: used without --websocket

        def answers():
            if not m.proc.running():
                raise AssertionError(f"join exited: {m.proc.output()[-3000:]}")
            try:
                with Probe(f"nats://127.0.0.1:{s.nats_port}", creds=s.creds("admin")) as c:
                    c.prefix = "_INBOX_admin.sw"
                    return c.request("xtask.sw-1.ping", b"{}", 1.0).json().get("jetstream")
            except (IOError, OSError, ValueError):
                return None
        wait_until(answers, 40, 0.1, "sw-1 answers through the shipped stack's front")
        leaf = open(os.path.join(m.dir, "leaf.conf")).read()
        assert f"ws://127.0.0.1:{s.http_port}" in leaf and "tls://" not in leaf, leaf
        with Probe(f"nats://127.0.0.1:{s.nats_port}", creds=s.creds("admin")) as c:
            c.prefix = "_INBOX_admin.sw"
            rep = c.request("xtask.sw-1.task.run", json.dumps({"args": ["echo", "shipped"], "id": tid("sw")}).encode(),
                            10).json()
        assert rep.get("exit_code") == 0 and "shipped" in rep.get("output_tail", ""), rep
        print("an edge joined the shipped stack through its front's /leafnode and ran a task", flush=True)
    finally:
        if m:
            m.kill()
        s.stop()
        s.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
