"""An edge machine joins a three-region hub with one command (`xtask join BUNDLE`), runs a task the
web identity sends through another region, takes queued `ci` work over its leaf link exactly once,
also when its node is killed mid-task (redelivered after the consumer's ack wait), and reattaches
to another region when its hub region goes away."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgelib import Hub, tid  # noqa: E402
from coordlib import run_tests, xtask  # noqa: E402
from xt_testlib import wait_until  # noqa: E402

HUB = Hub(n=3)
S = {}


def result(w, task_id, timeout=20):
    m = wait_until(lambda: w.js_api("STREAM.MSG.GET.xtask-results", {"last_by_subj": f"xtask.results.*.{task_id}"})
                   .get("message"), timeout, interval=0.05, what=f"result {task_id}")
    return m


def test_join_one_command():
    r, bundle = HUB.node_add("ci-1", caps=("task", "ci"))
    assert "xtask-q-ci ready" in r.stderr, r.stderr
    text = open(bundle).read().strip()
    assert text.startswith("xtj1."), text[:20]
    assert oct(os.stat(bundle).st_mode & 0o777) == "0o600"
    # never the operator or account seeds in the bundle
    for f in ("operator.nk", "XTASK.nk", "SYS.nk"):
        seed = open(os.path.join(HUB.bus.master, "keys", f)).read().strip()
        assert seed not in text and seed[:20] not in text
    m = HUB.machine("a")
    S["a"] = m
    t0 = time.monotonic()
    m.join(bundle)
    HUB.wait_node("ci-1", 2, m.proc)   # visible through every region
    HUB.wait_node("ci-1", 1, m.proc)
    print(f"join -> node answering in every region: {time.monotonic() - t0:.2f}s", flush=True)
    st = os.stat(m.dir)
    assert st.st_mode & 0o777 == 0o700, oct(st.st_mode)
    for f in ("node.creds", "ca.pem", "leaf.conf", "xtask.yaml", "edge.yaml", "local-password"):
        assert os.stat(os.path.join(m.dir, f)).st_mode & 0o777 == 0o600, f
    leaf = open(os.path.join(m.dir, "leaf.conf")).read()
    assert "host: 127.0.0.1" in leaf and all(h in leaf for h in HUB.hubs()), leaf
    assert sum(HUB.bus.leafs(i) for i in range(3)) == 1


def test_direct_task_from_web():
    with HUB.web(1) as w:
        t = tid("direct")
        r = w.request("xtask.ci-1.task.run", json.dumps({"args": ["echo", "hello-edge"], "id": t,
                                                          "requested_by": "alice", "via": "web"}).encode(), 10).json()
        assert r.get("exit_code") == 0 and r["node"] == "ci-1" and "hello-edge" in r["output_tail"], r
        m = result(w, t)
        assert m["subject"] == f"xtask.results.ci-1.{t}", m
        found = w.gather("xtask.nodes.discover", b"{}", 1.0)
        recs = {json.loads(x.data)["id"]: json.loads(x.data) for x in found}
        assert "ci-1" in recs, recs
        assert recs["ci-1"]["tags"] == ["test"], recs["ci-1"]   # the node record carries its tags
        assert not w.errors, w.errors
    out = S["a"].proc.output()
    assert "Permissions Violation" not in out, out[-3000:]
    # the admin's view: the bus directory's record plus the live node record (KV xtask_nodes)
    # ... whose region is the one its leaf is attached to (the leaf's hub), named by the bundle
    where = HUB.bus.regions[wait_until(lambda: [attached_region(S["a"])] if attached_region(S["a"]) is not None
                                       else None, 10, what="ci-1's leaf attached")[0]].name
    row = wait_until(lambda: (lambda x: x if x and x.get("region") == where else None)(HUB.record("ci-1", 1)), 10,
                     interval=0.1, what=f"ci-1's record names {where}")
    assert row["status"] == "active" and row["online"] and row["version"], row
    assert row["caps"] == ["task", "ci"] and row["tags"] == ["test"] and 0 <= row["seen_ms_ago"] < 10000, row
    r = xtask("node", "list", "--bus-dir", HUB.bus.master, "--server", HUB.bus.regions[1].url)
    assert r.returncode == 0 and "online" in r.stdout and "ci-1" in r.stdout and where in r.stdout, (r.stdout, r.stderr)
    assert "REGION" in r.stdout and "VERSION" in r.stdout, r.stdout


def test_queued_ci_work_exactly_once():
    with HUB.web(2) as w:
        ids = [tid(f"q{i}") for i in range(5)]
        for t in ids:
            ack = w.js_publish("xtask.queue.ci", {"args": ["echo", t], "id": t}, msg_id=t)
            assert ack.get("stream") == "xtask-queue", ack
        for t in ids:
            m = result(w, t)
            assert m["subject"] == f"xtask.results.ci-1.{t}", m
        # exactly once: one result message per task, the queue empty
        for t in ids:
            r = w.js_api("STREAM.MSG.GET.xtask-results", {"last_by_subj": f"xtask.results.*.{t}"})
            assert r["message"]["seq"] > 0
    with HUB.admin() as a:
        si = a.js_api("STREAM.INFO.xtask-results", {"subjects_filter": "xtask.results.ci-1.>"})
        subs = si["state"].get("subjects", {})
        for t in ids:
            assert subs.get(f"xtask.results.ci-1.{t}") == 1, subs
        wait_until(lambda: a.js_api("STREAM.INFO.xtask-queue")["state"]["messages"] == 0, 10, interval=0.1,
                   what="queue drained")


def test_two_machines_share_the_queue():
    """A second machine with capability ci: queued work is spread over both, each task once."""
    _, bundle = HUB.node_add("ci-2", caps=("task", "ci"))
    b = HUB.machine("b")
    S["b"] = b
    b.join(bundle)
    HUB.wait_node("ci-2", 1, b.proc)
    ids = [tid(f"two{i}") for i in range(12)]
    with HUB.web(1) as w:
        for t in ids:
            ack = w.js_publish("xtask.queue.ci", {"args": ["sleep", "0.2"], "id": t}, msg_id=t)
            assert ack.get("stream") == "xtask-queue", ack
        by = {}
        for t in ids:
            node = result(w, t)["subject"].split(".")[2]
            by[node] = by.get(node, 0) + 1
    assert set(by) <= {"ci-1", "ci-2"} and sum(by.values()) == len(ids), by
    with HUB.admin() as a:
        si = a.js_api("STREAM.INFO.xtask-results", {"subjects_filter": "xtask.results.*.>"})
        subs = si["state"].get("subjects", {})
        for t in ids:
            assert sum(v for k, v in subs.items() if k.endswith("." + t)) == 1, (t, subs)
    print(f"12 queued tasks over two edge machines: {by}", flush=True)


def test_queued_task_survives_node_kill():
    """Both machines' nodes killed (SIGKILL) while one runs a queued task: no ack, no nak; the
    supervisors start them again and the task runs again after the consumer's ack wait (3 s)."""
    with HUB.web(0) as w, HUB.admin(0) as a:
        t = tid("kill")
        ack = w.js_publish("xtask.queue.ci", {"args": ["sleep", "2"], "id": t}, msg_id=t)
        assert ack.get("stream") == "xtask-queue", ack
        wait_until(lambda: a.js_api("CONSUMER.INFO.xtask-queue.xtask-q-ci").get("num_ack_pending") == 1, 10,
                   interval=0.02, what="the task delivered to an edge node")
        pids = {k: wait_until(S[k].node_pid, 10, what=f"{k}'s node pid") for k in ("a", "b")}
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        msg = result(w, t, timeout=40)
        assert msg["subject"].startswith("xtask.results.ci-"), msg
        assert json.loads(__import__("base64").b64decode(msg["data"]))["exit_code"] == 0
    with HUB.admin() as a:
        si = a.js_api("STREAM.INFO.xtask-results", {"subjects_filter": f"xtask.results.*.{t}"})
        assert sum(si["state"].get("subjects", {}).values()) == 1, si["state"]
    for k in ("a", "b"):
        assert wait_until(S[k].node_pid, 10, what=f"{k}'s node READY again") != pids[k]


def attached_region(m):
    """The region the machine's leaf is attached to: its own leafz names the hub's leaf port
    (nats-server 2.9's leafz on the hub side does not name the leaf)."""
    from xt_bus import http_json_get
    z = http_json_get(f"http://127.0.0.1:{m.http_port}/leafz") or {}
    ports = {lf.get("port") for lf in z.get("leafs") or []}
    for i, r in enumerate(HUB.bus.regions):
        if r.leaf_port in ports and r.server.proc.running():
            return i
    return None


def test_hub_region_lost_reattaches():
    m = S["a"]
    # (region 0 is a valid answer: wrapped, so wait_until does not take it for "not yet")
    attached = wait_until(lambda: [attached_region(m)] if attached_region(m) is not None else None, 10,
                          what="ci-1's leaf attached")[0]
    victim = HUB.bus.regions[attached]
    victim.server.proc.kill()
    others = [i for i in range(3) if i != attached]
    wait_until(lambda: attached_region(m) in others, 20, interval=0.1, what="leaf reattached")
    HUB.wait_node("ci-1", others[0], m.proc, timeout=20)
    now = HUB.bus.regions[attached_region(m)].name
    assert now != victim.name
    wait_until(lambda: (HUB.record("ci-1", others[0]) or {}).get("region") == now, 15, interval=0.2,
               what=f"ci-1's record names its new region {now}, not {victim.name}")
    with HUB.web(others[-1]) as w:
        t = tid("after-loss")
        r = w.request("xtask.ci-1.task.run", json.dumps({"args": ["echo", "still-here"], "id": t}).encode(), 10).json()
        assert r.get("exit_code") == 0 and "still-here" in r["output_tail"], r


def test_entrypoint_edge_mode():
    """The image's `xtask-entrypoint edge`: the bundle from the environment, state under
    $XTASK_DATA_DIR/edge (--print-only: the files, not the processes)."""
    import subprocess
    from xt_testlib import SOURCE_DIR, bin_path
    _, bundle = HUB.node_add("img-1", caps=("task",))
    data = os.path.join(HUB.bus.tmp.path, "img-data")
    env = dict(os.environ, XTASK_JOIN_BUNDLE=open(bundle).read().strip(), XTASK_DATA_DIR=data,
               PATH=os.path.dirname(bin_path("xtask")) + os.pathsep + os.environ.get("PATH", ""))
    r = subprocess.run(["sh", os.path.join(SOURCE_DIR, "entrypoint", "xtask-entrypoint"), "edge", "--print-only"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert r.stdout.strip() == os.path.join(data, "edge", "edge.yaml"), r.stdout
    conf = open(os.path.join(data, "edge", "xtask.yaml")).read()
    assert "_INBOX_node-img-1" in conf and "manage_streams: false" in conf, conf
    env.pop("XTASK_JOIN_BUNDLE")
    r = subprocess.run(["sh", os.path.join(SOURCE_DIR, "entrypoint", "xtask-entrypoint"), "edge"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "XTASK_JOIN_BUNDLE" in r.stderr, (r.returncode, r.stderr)


def test_stop_clean():
    for m in (S["a"], S["b"]):
        rc = m.stop(10)
        assert rc == 0, (rc, m.proc.output()[-2000:])


def main():
    HUB.start()
    try:
        run_tests([test_join_one_command, test_direct_task_from_web, test_queued_ci_work_exactly_once,
                   test_two_machines_share_the_queue,
                   test_queued_task_survives_node_kill, test_hub_region_lost_reattaches, test_entrypoint_edge_mode,
                   test_stop_clean])
    finally:
        HUB.stop()


if __name__ == "__main__":
    main()
