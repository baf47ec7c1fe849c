"""The audit trail from the node's side, against a real nats-server: every verb a node executes or
refuses leaves a record on xtask.audit.task.<node> in the stream xtask-audit (who, what, which
node, when, exit code, duration); the stream refuses message deletes and purges (deny flags); task
ids are the platform's (a queued message whose id is not its Nats-Msg-Id is refused); `xtask
audit` reads the trail with --user, --since and -n."""
import json
import os
import re
import time

from coordlib import Node, assert_error, natsproto, req_json, run_tests, tid, xtask
from xt_testlib import NatsServer, TempDir, port_block, wait_until

PORTS = port_block("coordinator")
TMP = TempDir("xt-coord-audit-")
KILL_PORT = PORTS[5]
NS = NatsServer(PORTS[0], PORTS[1], os.path.join(TMP.path, "nats"), name="coord-audit")
URL = NS.url
NODE_ID = "au1"
CONFIG = f"""
version: 1
node: {{ region: fra }}
nats: {{ heartbeat: 300ms, node_ttl: 2s }}
audit: {{ max_age: 30d, max_bytes: 8MiB }}
queue: {{ ack_wait: 2s }}
tasks:
  noop: ["true"]
  fail: {{ argv: [sh, -c, "exit 7"] }}
  echo: {{ argv: [echo], args: true }}
silent:
  quiet: ["true"]
kill_port: {{ ports: ["{KILL_PORT}"] }}
"""
NODE = Node(TMP.path, NODE_ID, URL, CONFIG, region="fra")
C = None
AUDIT = f"xtask.audit.task.{NODE_ID}"


def setup():
    global C
    NS.start()
    C = natsproto.Client(URL)
    NODE.start()


def audit_records(sid, n, timeout=5.0):
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        out.append(C.next_msg(sid, max(0.05, deadline - time.monotonic())).json())
    return out


def test_stream_config():
    info = C.js_api("STREAM.INFO.xtask-audit")
    cfg = info["config"]
    assert cfg["subjects"] == ["xtask.audit.>"], cfg
    assert cfg["deny_delete"] is True and cfg["deny_purge"] is True, cfg
    assert cfg["max_age"] == 30 * 86400 * 10**9 and cfg["max_bytes"] == 8 * 1024 * 1024, cfg
    assert cfg["num_replicas"] == 1 and cfg["storage"] == "file", cfg


def test_task_run_record():
    sid = C.subscribe(AUDIT)
    C.flush()
    t0 = int(time.time() * 1000)
    r = req_json(C, f"xtask.{NODE_ID}.task.run", {"args": ["fail"], "id": tid("a1"), "requested_by": "erin",
                                                   "via": "web", "project": "p9"}, 10)
    assert r["exit_code"] == 7 and r["requested_by"] == "erin", r
    rec = audit_records(sid, 1)[0]
    assert rec["type"] == "task" and rec["verb"] == "task.run" and rec["outcome"] == "finished", rec
    assert rec["id"] == tid("a1") and rec["task"] == "fail" and rec["project"] == "p9", rec
    assert rec["node"] == NODE_ID and rec["region"] == "fra", rec
    assert rec["requested_by"] == "erin" and rec["via"] == "web", rec
    assert rec["exit_code"] == 7 and rec["signal"] == 0 and rec["timed_out"] is False, rec
    assert rec["duration_ms"] >= 0 and t0 <= rec["started_ms"] <= rec["finished_ms"] <= rec["ts_ms"], rec
    assert rec["nargs"] == 0 and rec["queued"] is False, rec
    # arguments never reach the trail (they may hold secrets): only their count
    r = req_json(C, f"xtask.{NODE_ID}.task.run", {"args": ["echo", "DEPLOY_TOKEN=s3cr3t"], "requested_by": "erin"})
    rec = audit_records(sid, 1)[0]
    assert rec["nargs"] == 1 and "s3cr3t" not in json.dumps(rec), rec
    # a refused request is recorded too
    assert_error(req_json(C, f"xtask.{NODE_ID}.task.run", {"args": ["rm"], "requested_by": "mallory"}),
                 "unknown_task")
    rec = audit_records(sid, 1)[0]
    assert rec["outcome"] == "refused" and rec["error"] == "unknown_task" and rec["requested_by"] == "mallory", rec
    C.unsubscribe(sid)


def test_other_verbs_recorded():
    sid = C.subscribe(AUDIT)
    C.flush()
    r = req_json(C, f"xtask.{NODE_ID}.kill-port.{KILL_PORT}", {"requested_by": "root-admin", "via": "web"})
    assert r["port"] == KILL_PORT, r
    rec = audit_records(sid, 1)[0]
    assert rec["verb"] == "kill-port" and rec["target"] == str(KILL_PORT) and rec["outcome"] == "done", rec
    assert rec["requested_by"] == "root-admin" and rec["node"] == NODE_ID, rec
    r = req_json(C, f"xtask.{NODE_ID}.silent.exec", {"name": "quiet", "requested_by": "root-admin"})
    rec = audit_records(sid, 1)[0]
    assert rec["verb"] == "silent.exec" and rec["target"] == "quiet" and rec["exit_code"] == 0, rec
    r = req_json(C, f"xtask.{NODE_ID}.silent.exec", {"name": "nope", "requested_by": "root-admin"})
    rec = audit_records(sid, 1)[0]
    assert rec["outcome"] == "error" and rec["error"] == "not_allowed", rec
    r = req_json(C, f"xtask.{NODE_ID}.which.check", {"name": "sh"})
    rec = audit_records(sid, 1)[0]
    assert rec["verb"] == "which.check" and rec["requested_by"] == "unknown", rec
    C.unsubscribe(sid)


def test_queue_ids_are_the_platforms():
    sid = C.subscribe(AUDIT)
    C.flush()
    good = tid("q-good")
    ack = C.js_publish("xtask.queue.task", {"args": ["noop"], "id": good, "requested_by": "frank", "via": "cli"},
                       msg_id=good)
    assert not ack.get("duplicate"), ack
    res = wait_until(lambda: C.js_last("xtask-results", f"xtask.results.*.{good}"), 10, what="queued result")
    assert res["requested_by"] == "frank", res
    rec = audit_records(sid, 1)[0]
    assert rec["id"] == good and rec["queued"] is True and rec["requested_by"] == "frank", rec
    # the same id again within the window: dropped by the stream (the id is the Nats-Msg-Id)
    dup = C.js_publish("xtask.queue.task", {"args": ["noop"], "id": good}, msg_id=good)
    assert dup.get("duplicate") is True, dup
    # an id that is not the message's Nats-Msg-Id, or no id at all: refused, never run
    other = tid("q-other")
    C.js_publish("xtask.queue.task", {"args": ["noop"], "id": other, "requested_by": "mallory"},
                 msg_id=tid("q-else"))
    rec = audit_records(sid, 1)[0]
    assert rec["outcome"] == "refused" and rec["id"] == other and rec["requested_by"] == "mallory", rec
    C.js_publish("xtask.queue.task", {"args": ["noop"], "requested_by": "mallory"}, msg_id=tid("q-noid"))
    rec = audit_records(sid, 1)[0]
    assert rec["outcome"] == "refused", rec
    wait_until(lambda: C.js_api("STREAM.INFO.xtask-queue")["state"]["messages"] == 0, 10, what="queue empty")
    assert C.js_last("xtask-results", f"xtask.results.*.{other}") is None
    C.unsubscribe(sid)


def test_delete_and_purge_refused():
    before = C.js_api("STREAM.INFO.xtask-audit")["state"]
    assert before["messages"] >= 8, before
    r = C.js_api("STREAM.PURGE.xtask-audit", {})
    assert "error" in r and r.get("success") is not True, r
    r = C.js_api("STREAM.PURGE.xtask-audit", {"filter": AUDIT})
    assert "error" in r, r
    r = C.js_api("STREAM.MSG.DELETE.xtask-audit", {"seq": before["first_seq"]})
    assert "error" in r, r
    r = C.js_api("STREAM.MSG.DELETE.xtask-audit", {"seq": before["first_seq"], "no_erase": True})
    assert "error" in r, r
    after = C.js_api("STREAM.INFO.xtask-audit")["state"]
    assert after["messages"] == before["messages"] and after["first_seq"] == before["first_seq"], after


def test_cli_audit():
    p = xtask("audit", "--json", url=URL)
    assert p.returncode == 0, p
    recs = json.loads(p.stdout)
    assert len(recs) >= 8 and all("seq" in r for r in recs), recs
    assert [r["seq"] for r in recs] == sorted(r["seq"] for r in recs)  # oldest first
    p = xtask("audit", "--json", "--user", "erin", url=URL)
    mine = json.loads(p.stdout)
    assert len(mine) == 2 and all(r["requested_by"] == "erin" for r in mine), mine
    p = xtask("audit", "--json", "-n", "2", url=URL)
    last2 = json.loads(p.stdout)
    assert [r["seq"] for r in last2] == [r["seq"] for r in recs[-2:]], (last2, recs[-2:])
    time.sleep(0.01)  # the next record's wall-clock ms must differ from the window's start
    start = int(time.time() * 1000)
    req_json(C, f"xtask.{NODE_ID}.task.run", {"args": ["noop"], "requested_by": "gina"})
    def newest():
        p = xtask("audit", "--json", "--since", "1s", url=URL)
        r = json.loads(p.stdout) if p.returncode == 0 else []
        return r if r and r[-1].get("requested_by") == "gina" else None
    fresh = wait_until(newest, 5, what="the newest record within --since")
    assert all(r["ts_ms"] >= start - 1000 for r in fresh), fresh
    p = xtask("audit", "--user", "gina", url=URL)
    assert p.returncode == 0 and "gina" in p.stdout and "task.run" in p.stdout and "erin" not in p.stdout, p
    for bad in (["-n", "0"], ["--since", "soon"], ["--user", "a\nb"], ["extra"]):
        p = xtask("audit", *bad, url=URL)
        assert p.returncode == 2, (bad, p)
    p = xtask("audit", url="nats://127.0.0.1:1")
    assert p.returncode == 3, p


def main():
    try:
        setup()
        run_tests([test_stream_config, test_task_run_record, test_other_verbs_recorded,
                   test_queue_ids_are_the_platforms, test_delete_and_purge_refused, test_cli_audit])
    finally:
        NODE.kill()
        NS.kill()
        TMP.cleanup()


if __name__ == "__main__":
    main()
