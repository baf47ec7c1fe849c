"""Coordinator resilience: starts before nats-server, survives its restart (re-registers, JetStream
set up again, tasks run), queued work survives a coordinator restart (exactly once) and a crash in
the middle of a task (redelivered after ack_wait, one stored result)."""
import json
import os
import time

from coordlib import Node, natsproto, req_json, run_tests, tid
from xt_testlib import NatsServer, TempDir, port_block, wait_until

PORTS = port_block("coordinator")
TMP = TempDir("xt-coord-res-")
NS = NatsServer(PORTS[0], PORTS[1], os.path.join(TMP.path, "nats"), name="coord-res")
URL = NS.url
RAN = os.path.join(TMP.path, "ran.txt")
STARTED = os.path.join(TMP.path, "started.txt")

CONFIG = f"""
nats: {{ heartbeat: 300ms, node_ttl: 2s }}
limits: {{ max_concurrent: 2 }}
queue: {{ ack_wait: 2s }}
tasks:
  noop: ["true"]
  record: {{ argv: [sh, -c, 'echo "$1" >> {RAN}', sh], args: true }}
  slowrec: {{ argv: [sh, -c, 'echo "$1" >> {STARTED}; sleep 1; echo "$1" >> {RAN}', sh], args: true }}
"""
NODE = Node(TMP.path, "r1", URL, CONFIG)


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def test_start_before_server():
    NODE.start(wait=False)
    NODE.proc.wait_output("not reachable yet", 5)
    assert NODE.proc.running()
    NS.start()
    NODE.wait_ready(15)
    with natsproto.Client(URL) as c:
        assert req_json(c, "xtask.r1.task.run", {"args": ["noop"]})["exit_code"] == 0


def test_server_restart():
    NS.stop()
    assert NODE.proc.running()
    NODE.proc.wait_output("disconnected from NATS", 5)
    NS.start()
    NODE.wait_ready(15)
    with natsproto.Client(URL) as c:
        # KV (memory storage) was lost with the server: the node set it up again and heartbeats fill it
        rec = wait_until(lambda: c.kv_get("xtask_nodes", "r1"), 10, what="KV record after restart")
        assert rec["id"] == "r1"
        assert req_json(c, "xtask.r1.task.run", {"args": ["noop"]})["exit_code"] == 0
        assert len(c.gather("xtask.nodes.discover", b"{}", 0.3)) == 1
    assert NODE.proc.running()


def test_queue_exactly_once_across_restart():
    assert NODE.stop() == 0
    ids = [f"q{i}" for i in range(6)]
    with natsproto.Client(URL) as c:
        for i in ids:
            ack = c.js_publish("xtask.queue.task", {"args": ["record", i], "id": tid(i)}, msg_id=tid(i))
            assert ack["stream"] == "xtask-queue" and not ack.get("duplicate"), ack
        dup = c.js_publish("xtask.queue.task", {"args": ["record", "q3"], "id": tid("q3")}, msg_id=tid("q3"))
        assert dup.get("duplicate") is True, dup
        assert c.js_api("STREAM.INFO.xtask-queue")["state"]["messages"] == 6
        NODE.start()
        for i in ids:
            res = wait_until(lambda: c.js_last("xtask-results", f"xtask.results.*.{tid(i)}"), 15, what=f"result {i}")
            assert res["exit_code"] == 0 and res["node"] == "r1", res
        wait_until(lambda: c.js_api("STREAM.INFO.xtask-queue")["state"]["messages"] == 0, 10, what="queue empty")
    ran = lines(RAN)
    assert sorted(ran) == sorted(ids), ran  # each exactly once


def test_crash_mid_task_redelivered():
    open(RAN, "w").close()
    with natsproto.Client(URL) as c:
        c.js_publish("xtask.queue.task", {"args": ["slowrec", "c1"], "id": tid("c1")}, msg_id=tid("c1"))
        wait_until(lambda: "c1" in lines(STARTED), 10, what="task started")
        NODE.kill()  # SIGKILL: no nak, no goodbye; the message is redelivered after ack_wait
        NODE.start()
        res = wait_until(lambda: c.js_last("xtask-results", "xtask.results.*." + tid("c1")), 15, what="result after crash")
        assert res["exit_code"] == 0, res
        info = c.js_api("STREAM.INFO.xtask-results", {"subjects_filter": "xtask.results.*." + tid("c1")})
        assert sum(info["state"]["subjects"].values()) == 1, info  # one stored result
        wait_until(lambda: c.js_api("STREAM.INFO.xtask-queue")["state"]["messages"] == 0, 10, what="queue empty")
        n = lines(STARTED).count("c1")
        assert n >= 2, n  # it ran again after the crash


def main():
    try:
        run_tests([test_start_before_server, test_server_restart, test_queue_exactly_once_across_restart,
                   test_crash_mid_task_redelivered])
    finally:
        NODE.kill()
        NS.kill()
        TMP.cleanup()


if __name__ == "__main__":
    main()
