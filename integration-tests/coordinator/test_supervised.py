"""The coordinator under the supervisor: a node killed with SIGKILL leaves none of its tasks behind.

Tasks run in process groups of their own, so the supervisor's SIGKILL to the dead node's group does
not reach them: they are reparented to the supervisor (a subreaper) and carry XTASK_SERVICE=xtask
from the node's environment. Before the node starts again, the supervisor kills them. So a direct
task nobody can observe any more does not run on, and a queued task the new node gets redelivered
does not run twice at the same time (the old copy is gone before the new node starts).
"""
import json
import os
import re
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "supervisor"))

from coordlib import XTASK, natsproto, run_tests, tid  # noqa: E402
from svlib import Sup, pid_alive, q  # noqa: E402
from xt_testlib import NatsServer, TempDir, bin_path, port_block, wait_until  # noqa: E402

PORTS = port_block("coordinator")
TMP = TempDir("xt-coord-sup-")
NS = NatsServer(PORTS[0], PORTS[1], os.path.join(TMP.path, "nats"), name="coord-sup")
URL = NS.url
PIDS = os.path.join(TMP.path, "pids.txt")

CONFIG = os.path.join(TMP.path, "xtask.yaml")
with open(CONFIG, "w") as f:
    f.write(f"""
nats: {{ heartbeat: 300ms, node_ttl: 2s }}
queue: {{ ack_wait: 2s }}
tasks:
  # the shell execs sleep, so the pid it records is the task's process ($$ is a literal $ here)
  longrun: {{ argv: [sh, -c, 'echo "$1 $$$$" >> {PIDS}; exec sleep 60', sh], args: true, timeout: 2m }}
""")


def recorded():
    if not os.path.exists(PIDS):
        return {}
    with open(PIDS) as f:
        return {k: int(v) for k, v in (ln.split() for ln in f if ln.strip())}


def ping(c):
    return c.request("xtask.s1.ping", b"{}", 1.0).json().get("jetstream")


def test_killed_node_leaves_no_task_behind():
    sup = Sup(TMP, f"""
  nats:
    command: [{q(bin_path("nats-server"))}, -c, {q(NS.conf)}]
    ready: {{ tcp: "127.0.0.1:{PORTS[0]}", interval: 20ms }}
  xtask:
    command: [{q(XTASK)}, --nats-mode, --cluster-url, {q(URL)}, --config, {q(CONFIG)}, --node-id, s1]
    depends_on: {{ nats: ready }}
    backoff: {{ initial: 10ms, max: 10ms }}
""")
    try:
        sup.start()
        node = sup.wait_state("xtask", "READY", 15)
        with natsproto.Client(URL) as c:
            wait_until(lambda: ping(c), 15, interval=0.05, what="node s1 ready")
            # a direct task (its caller's request will never be answered) and a queued one
            c.publish("xtask.s1.task.run", json.dumps({"args": ["longrun", "direct"]}).encode(), reply=c.new_inbox())
            c.js_publish("xtask.queue.task", {"args": ["longrun", "queued"], "id": tid("lq1")}, msg_id=tid("lq1"))
            c.flush()
            first = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(recorded()), 10, what="both tasks running")
            assert all(pid_alive(p) for p in first.values()), first
            os.kill(node["pid"], signal.SIGKILL)
            # the node comes back; its predecessor's tasks are gone
            wait_until(lambda: (lambda s: s if s["state"] == "READY" and s["pid"] != node["pid"] else None)(
                sup.status()["xtask"]), 15, interval=0.02, what="xtask back")
            for name, pid in first.items():
                wait_until(lambda: not pid_alive(pid), 5, what=f"{name} task {pid} of the killed node gone")
            out = sup.output()
            assert re.search(r"xtask: killing pid \d+ \(sleep\), left behind by its previous run", out), out[-3000:]
            # the queued task is redelivered (after ack_wait) and runs again, alone
            wait_until(lambda: os.path.exists(PIDS) and open(PIDS).read().count("queued ") >= 2, 15,
                       what="queued task redelivered")
            again = recorded()["queued"]
            assert again != first["queued"] and pid_alive(again) and not pid_alive(first["queued"])
        assert sup.stop() == 0
        wait_until(lambda: not pid_alive(again), 5, what="the redelivered task stopped with the node")
    finally:
        sup.kill()


def main():
    try:
        run_tests([test_killed_node_leaves_no_task_behind])
    finally:
        NS.kill()
        TMP.cleanup()


if __name__ == "__main__":
    main()
