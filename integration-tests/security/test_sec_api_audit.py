#!/usr/bin/env python3
"""Security: who may send verbs through the web API, and the audit trail, end to end with the real
front (xtask-web), the real auth (xtask-auth), a real nats-server and a real coordinator node.
- api.rules decide from Remote-User / Remote-Groups: a developer runs the allowed tasks only, an
  admin also kill-port, silent.exec...; a refused request is a 403 with a JSON error and nothing
  reaches NATS; task ids are the platform's (a client-chosen id is refused);
- every task records who asked (requested_by) in the reply, the stored result, the events and the
  audit record; every sign-in, failure, logout and ban lands in the audit stream with the client
  address as the front saw it (a spoofed X-Forwarded-For does not reach it);
- GET /api/v1/audit is for admins only (403 for others)."""
import json
import os
import sys
import time

os.environ.setdefault("XT_PORT_OFFSET", "680")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "coordinator"))
from seclib import ADMIN_PASS, DEV_PASS, Runner, Stack  # noqa: E402
from coordlib import Node  # noqa: E402
import natsproto  # noqa: E402
from xt_testlib import wait_until  # noqa: E402

RULES = """api:
  rules:
    - users: [admin]
      verbs: [kill-port]
      policy: deny
    - groups: [admins]
      verbs: [task.run, which.check, got.download, silent.exec, kill-port, audit.read]
    - groups: [developers]
      verbs: [task.run, which.check]
      tasks: [noop, "build:*"]
"""
S = Stack("xt-secaud-", web_extra=RULES,
          auth_extra='audit: {enabled: true, servers: "nats://127.0.0.1:@NATS@", region: sec1}\n')
T = Runner(S)
NATS_URL = f"nats://127.0.0.1:{S.NATS}"
NODE_ID = "sec-n1"
NODE = Node(S.tmp.path, NODE_ID, NATS_URL, """
version: 1
node: { region: sec1 }
nats: { heartbeat: 1s, node_ttl: 3s }
tasks:
  noop: ["true"]
  "build:web": ["true"]
  deploy: { argv: [sh, -c, "echo deployed"] }
silent:
  quiet: ["true"]
""", region="sec1").start()
C = natsproto.Client(NATS_URL)


def api(method, path, cookie, body=None, headers=None):
    h = {"Cookie": cookie, "Accept": "application/json"}
    h.update(headers or {})
    st, hd, data = S.req(method, path, headers=h, body=body, timeout=10)
    try:
        return st, json.loads(data) if data else None
    except ValueError:
        return st, data


def audit_records(pred, timeout=10.0):
    """Records of the audit stream (read with a JetStream ordered read through natsproto) matching pred."""
    def read():
        info = C.js_api("STREAM.INFO.xtask-audit")
        last = info["state"]["last_seq"]
        out = []
        for seq in range(max(1, last - 200), last + 1):
            r = C.js_api("STREAM.MSG.GET.xtask-audit", {"seq": seq})
            if "message" in r:
                import base64
                rec = json.loads(base64.b64decode(r["message"]["data"]))
                rec["_subject"] = r["message"]["subject"]
                if pred(rec):
                    out.append(rec)
        return out or None
    return wait_until(read, timeout, 0.1, "audit records")


def quiet_on_nats(fn):
    """Run fn(); assert no verb, queue submission or broadcast reached NATS meanwhile."""
    sids = [C.subscribe(s) for s in (f"xtask.{NODE_ID}.>", "xtask.queue.>", "xtask.broadcast.>")]
    C.flush()
    out = fn()
    got = []
    for sid in sids:
        got += C.drain(sid, 0.3)
        C.unsubscribe(sid)
    assert got == [], [m.subject for m in got]
    return out


wait_until(lambda: C.js_api("STREAM.INFO.xtask-audit").get("config"), 15, 0.1, "the audit stream (node up)")
DEV, _ = S.login("developer", DEV_PASS)
ADM, _ = S.login("admin", ADMIN_PASS)


def test_developer_runs_allowed_tasks_attributed():
    ev = C.subscribe("xtask.events.default.>")
    C.flush()
    st, r = api("POST", "/api/v1/tasks", DEV, {"node": NODE_ID, "task": "noop"})
    assert st == 200 and r["exit_code"] == 0 and r["requested_by"] == "developer" and r["via"] == "web", (st, r)
    tid = r["id"]
    events = [m.json() for m in C.drain(ev, 0.5)]
    C.unsubscribe(ev)
    assert [e["requested_by"] for e in events if e.get("id") == tid] == ["developer", "developer"], events
    st, r = api("POST", "/api/v1/tasks", DEV, {"node": NODE_ID, "task": "build:web"})
    assert st == 200 and r["exit_code"] == 0, (st, r)
    wait_until(lambda: api("GET", f"/api/v1/tasks/{tid}", DEV)[0] == 200, 10, 0.1, "stored result")
    assert api("GET", f"/api/v1/tasks/{tid}", DEV)[1]["requested_by"] == "developer"
    rec = audit_records(lambda x: x.get("id") == tid)[0]
    assert rec["_subject"] == f"xtask.audit.task.{NODE_ID}" and rec["requested_by"] == "developer", rec
    assert rec["via"] == "web" and rec["task"] == "noop" and rec["node"] == NODE_ID and rec["exit_code"] == 0, rec
    # queued work too, with the platform's id as its Nats-Msg-Id
    st, r = api("POST", "/api/v1/tasks", DEV, {"mode": "queue", "task": "noop"})
    assert st == 202, (st, r)
    qid = r["id"]
    wait_until(lambda: api("GET", f"/api/v1/tasks/{qid}", DEV)[0] == 200, 10, 0.1, "queued result")
    assert api("GET", f"/api/v1/tasks/{qid}", DEV)[1]["requested_by"] == "developer"


def test_developer_forbidden_nothing_on_nats():
    for body in ({"node": NODE_ID, "task": "deploy"}, {"mode": "queue", "task": "deploy"},
                 {"node": NODE_ID, "args": ["rm", "-rf", "/"]}):
        st, r = quiet_on_nats(lambda: api("POST", "/api/v1/tasks", DEV, body))
        assert st == 403 and r["error"]["code"] == "forbidden", (body, st, r)
        assert "developer" in r["error"]["message"] and r["error"]["task"] == body.get("task", "rm"), r
    for verb, body in (("kill-port", {"port": 9}), ("silent.exec", {"name": "quiet"}),
                       ("got.download", {"url": "http://127.0.0.1/", "output": "/tmp/x"})):
        st, r = quiet_on_nats(lambda: api("POST", f"/api/v1/nodes/{NODE_ID}/{verb}", DEV, body))
        assert st == 403 and r["error"]["code"] == "forbidden" and r["error"]["verb"] == verb, (verb, st, r)
    # a client-chosen id is refused before anything is sent
    st, r = quiet_on_nats(lambda: api("POST", "/api/v1/tasks", DEV, {"node": NODE_ID, "task": "noop",
                                                                       "id": "t-0000000000000000"}))
    assert st == 400 and "made by the platform" in r["error"]["message"], (st, r)
    # a Remote-User sent by the client is stripped by the front: it cannot become admin
    st, r = quiet_on_nats(lambda: api("POST", "/api/v1/tasks", DEV, {"node": NODE_ID, "task": "deploy"},
                                      {"Remote-User": "admin", "Remote-Groups": "admins"}))
    assert st == 403, (st, r)


def test_admin_verbs_and_rule_order():
    st, r = api("POST", "/api/v1/tasks", ADM, {"node": NODE_ID, "task": "deploy"})
    assert st == 200 and r["output_tail"] == "deployed\n" and r["requested_by"] == "admin", (st, r)
    st, r = api("POST", f"/api/v1/nodes/{NODE_ID}/silent.exec", ADM, {"name": "quiet", "requested_by": "someone"})
    assert st == 200 and r["exit_code"] == 0, (st, r)
    rec = audit_records(lambda x: x.get("verb") == "silent.exec")[-1]
    assert rec["requested_by"] == "admin" and rec["via"] == "web", rec  # the client cannot name someone else
    st, r = api("POST", f"/api/v1/nodes/{NODE_ID}/which.check", ADM, {"name": "sh"})
    assert st == 200 and r["found"] is True, (st, r)
    # the first matching rule decides: kill-port is denied to the user admin before the group rule
    st, r = quiet_on_nats(lambda: api("POST", f"/api/v1/nodes/{NODE_ID}/kill-port", ADM, {"port": 9}))
    assert st == 403 and "denied by an api rule" in r["error"]["message"], (st, r)
    st, r = api("POST", f"/api/v1/nodes/{NODE_ID}/nope.verb", ADM, {})
    assert st == 404, (st, r)


def test_auth_events_with_client_address():
    # a failed sign-in, a login and a logout, each with the client as the front saw it: a spoofed
    # X-Forwarded-For from an untrusted client is dropped by the front
    spoof = {"X-Forwarded-For": "203.0.113.9"}
    st, _, _ = S.req("POST", "/api/firstfactor", host="auth.xtask.test", headers=spoof,
                     body={"username": "developer", "password": "wrong"})
    assert st == 401, st
    cookie, _ = S.login("developer", DEV_PASS)
    st, _, _ = S.req("POST", "/api/logout", headers={"Cookie": cookie}, body={})
    assert st == 200, st
    def all_three():
        r = audit_records(lambda x: x.get("type") == "auth" and x.get("user") == "developer", 10)
        return r if {"login_failed", "login", "logout"} <= {x["event"] for x in r} else None
    recs = wait_until(all_three, 10, 0.1, "login_failed, login and logout records")
    events = [r["event"] for r in recs]
    assert "login_failed" in events and "login" in events and "logout" in events, events
    for r in recs:
        assert r["client"] == "127.0.0.1" and "203.0.113.9" not in json.dumps(r), r
        assert r["_subject"] == "xtask.audit.auth.sec1" and r["region"] == "sec1" and r["ts_ms"] > 0, r
    fail = [r for r in recs if r["event"] == "login_failed"][-1]
    assert fail["outcome"] == "failed", fail
    login = [r for r in recs if r["event"] == "login"][-1]
    assert login["level"] == 1 and login["outcome"] == "ok", login


def test_ban_recorded():
    # regulation (seclib): 30 failures within 10 s ban the name for 3 s
    for _ in range(30):
        st, _, _ = S.req("POST", "/api/firstfactor", host="auth.xtask.test",
                         body={"username": "victim", "password": "nope"})
        assert st == 401, st
    rec = audit_records(lambda x: x.get("event") == "ban" and x.get("user") == "victim", 10)[0]
    assert rec["outcome"] == "banned" and rec["until_ms"] > rec["ts_ms"] and rec["client"] == "127.0.0.1", rec


def test_audit_api_admins_only():
    st, r = api("GET", "/api/v1/audit", DEV)
    assert st == 403 and r["error"]["code"] == "forbidden", (st, r)
    st, r = api("GET", "/api/v1/audit?user=developer&n=500", ADM)
    assert st == 200 and r["count"] == len(r["records"]) > 0, (st, r)
    recs = r["records"]
    assert all(x.get("requested_by") == "developer" or x.get("user") == "developer" for x in recs), recs
    assert {"task", "auth"} <= {x["type"] for x in recs}, recs
    assert [x["seq"] for x in recs] == sorted(x["seq"] for x in recs), recs
    st, r = api("GET", "/api/v1/audit?n=2", ADM)
    assert st == 200 and len(r["records"]) == 2, (st, r)
    st, r = api("GET", "/api/v1/audit?since=1h&user=victim", ADM)
    assert st == 200 and any(x["event"] == "ban" for x in r["records"]), (st, r)
    for bad in ("n=0", "n=x", "since=soon", "user="):
        st, r = api("GET", f"/api/v1/audit?{bad}", ADM)
        assert st == 400 and r["error"]["code"] == "bad_request", (bad, st, r)


def test_audit_stream_refuses_delete_and_purge():
    before = C.js_api("STREAM.INFO.xtask-audit")["state"]
    assert "error" in C.js_api("STREAM.PURGE.xtask-audit", {}), "purge accepted"
    assert "error" in C.js_api("STREAM.MSG.DELETE.xtask-audit", {"seq": before["first_seq"]}), "delete accepted"
    after = C.js_api("STREAM.INFO.xtask-audit")["state"]
    assert after["first_seq"] == before["first_seq"] and after["messages"] >= before["messages"], (before, after)


try:
    for t in [test_developer_runs_allowed_tasks_attributed, test_developer_forbidden_nothing_on_nats,
              test_admin_verbs_and_rule_order, test_auth_events_with_client_address, test_ban_recorded,
              test_audit_api_admins_only, test_audit_stream_refuses_delete_and_purge]:
        T.case(t)
    if T.failed:
        print("---- node ----\n" + NODE.proc.output()[-3000:])
finally:
    NODE.kill()
    C.close()
T.finish()
