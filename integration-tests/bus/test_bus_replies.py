"""Replies to nodes name the node (common/xt_nats.h, docs/SECURITY.md "Replies"), through a real leaf:
the hub in operator mode, an edge machine joined with `xtask node add` + `xtask join` (its leaf over
TLS with the node's JWT, its coordinator behind it).
- the edge node answers what is addressed to it: a web request to xtask.<edge>.ping, task.run and a
  discover broadcast (each reply under _R.<edge>.web.<...>), an admin's request too;
- the edge identity reaches no requester's inbox: a client of its leaf (what a task on that machine
  reaches, with the leaf's rights) publishing into _INBOX.>, _INBOX_web.>, _INBOX_admin.>,
  _INBOX_cli-<id>.>, into another node's replies (_R.<other>.web.>) or the broadcast marker delivers
  nothing, while the same client's publish under _R.<edge>.web.> does arrive (the path is open)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "edge"))

from edgelib import Hub, tid  # noqa: E402
from buslib import Probe  # noqa: E402
from coordlib import run_tests  # noqa: E402
from xt_testlib import port_block, wait_until  # noqa: E402

HUB = Hub(n=1, replicas=1, ports=port_block("bus", 44))
S = {}
EDGE = "rp-1"


def test_edge_answers_requests_addressed_to_it():
    _, bundle = HUB.node_add(EDGE, caps=("task",))
    m = HUB.machine("rp")
    m.join(bundle)
    HUB.wait_node(EDGE, 0, m.proc)
    S["m"] = m
    with HUB.web(0) as w, HUB.admin(0) as a:
        r = w.request(f"xtask.{EDGE}.ping", b"{}", 5).json()
        assert r.get("ok") is True and r.get("node", EDGE) == EDGE, r
        t = tid("reply-run")
        r = w.request(f"xtask.{EDGE}.task.run", json.dumps({"args": ["echo", "via-leaf"], "id": t}).encode(), 10).json()
        assert r.get("exit_code") == 0 and "via-leaf" in r.get("output_tail", ""), r
        # a broadcast: each node answers under its own id, the edge through its leaf
        found = wait_until(lambda: [x for x in w.gather("xtask.nodes.discover", b"{}", 1.0)
                                    if json.loads(x.data).get("id") == EDGE], 10, 0.1, "the edge's discover reply")
        assert found[0].subject.startswith(f"_R.{EDGE}.web."), found[0].subject
        assert a.request(f"xtask.{EDGE}.ping", b"{}", 5).json().get("ok") is True
        assert not w.errors and not a.errors, (w.errors, a.errors)
    out = m.proc.output()
    assert "Permissions Violation" not in out, out[-3000:]


def test_edge_cannot_reach_other_inboxes():
    m = S["m"]
    rid = HUB.bus.regions[0].name
    pw = open(os.path.join(m.dir, "local-password")).read().strip()
    forged = [f"_INBOX.x{os.getpid()}.1", "_INBOX_web.x.1", "_INBOX_admin.x.1", f"_INBOX_cli-{rid}.x",
              f"_INBOX_node-{rid}.x", f"_R.{rid}.web.x.1", f"_R.{rid}.admin.x.1", "_R.broadcast.web.x.1"]
    with HUB.web(0) as w, HUB.admin(0) as a:
        # the admin sees everything (sub >); web its own inbox and node replies
        spy = a.subscribe(">")
        wsid = w.subscribe("_R.*.web.>")
        w.flush()
        a.flush()
        with Probe(f"nats://127.0.0.1:{m.port}", user="node", password=pw) as c:
            for subj in forged:
                c.publish(subj, b'{"ok":true,"forged":true}')
            c.publish(f"_R.{EDGE}.web.x.2", b'{"ok":true}')  # its own: allowed, and the control
            c.flush()
        got = wait_until(lambda: [x for x in w.drain(wsid, 0.3)], 10, 0.1, "the edge's own reply subject")
        assert [x.subject for x in got] == [f"_R.{EDGE}.web.x.2"], [x.subject for x in got]
        seen = [x.subject for x in a.drain(spy, 1.0)]
        assert f"_R.{EDGE}.web.x.2" in seen, seen  # the spy sees what crosses the leaf
        leaked = [x for x in seen if x in forged]
        assert leaked == [], f"the edge identity published into {leaked}"


def main():
    HUB.start()
    try:
        run_tests([test_edge_answers_requests_addressed_to_it, test_edge_cannot_reach_other_inboxes])
    finally:
        HUB.stop()


if __name__ == "__main__":
    main()
