#!/usr/bin/env python3
"""The task API against the real xtask coordinator node (services/coordinator) on a real
nats-server with JetStream: run and wait, run without waiting, queue, results from the
xtask-results stream, the node registry, SSE output of a run. Fails when `xtask` is not built."""
import json
import os
import re
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webtest import StandinAuth, Upstream, gui_root, web_config  # noqa: E402
from xt_testlib import NatsServer, Proc, TempDir, bin_path, http_request, port_block, wait_until  # noqa: E402

XTASK = bin_path("xtask")  # FileNotFoundError (test fails) when it was not built

P = port_block("web")
WEB, AUTH, UP, NATS, NATS_HTTP = P[0], P[1], P[2], P[3], P[4]
BASE = f"http://127.0.0.1:{WEB}"
tmp = TempDir("xt-webapi-")
nats = NatsServer(NATS, NATS_HTTP, os.path.join(tmp.path, "nats")).start()
xcfg = tmp.write("xtask.yaml", f"""version: 1
node: {{ region: local, capabilities: [task], events_project: default }}
nats: {{ url: "nats://127.0.0.1:{NATS}", heartbeat: 1s, node_ttl: 5s, replicas: 1 }}
queue: {{ capabilities: [task] }}
tasks:
  hello:
    argv: ["sh", "-c", "echo hello-from-node; echo second-line"]
    timeout: 10s
  fail:
    argv: ["sh", "-c", "echo failing >&2; exit 3"]
    timeout: 10s
""")
node = Proc([XTASK, "--nats-mode", "--config", xcfg, "--node-id", "api-1"])
auth = StandinAuth(AUTH, f"http://auth.xtask.test:{WEB}/").start()
up = Upstream(UP).start()
cfg = web_config(os.path.join(tmp.path, "web.yaml"), listen=f"127.0.0.1:{WEB}", auth_port=AUTH, upstream_port=UP,
                 nats_port=NATS, nats_http_port=NATS_HTTP, gui_root=gui_root(), static_root=tmp.path,
                 portal_url=f"http://auth.xtask.test:{WEB}/")
web = Proc([bin_path("xtask-web"), "--config", cfg])
web.wait_output(r"ready", 10)
DEV = auth.login("developer")
H = {"Cookie": DEV, "Accept": "application/json"}


def call(method, path, body=None):
    st, hd, data = http_request(BASE + path, method, dict(H, **({"Content-Type": "application/json"} if body else {})),
                                json.dumps(body) if body is not None else None, timeout=20)
    return st, (json.loads(data) if data else None)


FAILED = []


def case(fn):
    t0 = time.monotonic()
    try:
        fn()
        print(f"ok   {fn.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
    except Exception as e:  # noqa: BLE001 - report every case
        FAILED.append(fn.__name__)
        traceback.print_exc()
        print(f"FAIL {fn.__name__}: {e!r}", flush=True)


def test_node_listed():
    wait_until(lambda: any(n["id"] == "api-1" for n in call("GET", "/api/v1/nodes")[1]["nodes"]), 10,
               what="api-1 in /api/v1/nodes")


RUN_ID = []


def test_run_and_wait():
    st, r = call("POST", "/api/v1/tasks", {"node": "api-1", "task": "hello"})
    assert st == 200 and r["exit_code"] == 0 and "hello-from-node" in r["output_tail"], (st, r)
    RUN_ID.append(r["id"])
    st, r = call("POST", "/api/v1/tasks", {"node": "api-1", "task": "fail"})
    assert st == 200 and r["exit_code"] == 3, (st, r)
    st, r = call("POST", "/api/v1/tasks", {"node": "api-1", "task": "not-allowed"})
    assert st in (403, 404) and r["error"]["code"] in ("unknown_task", "not_allowed"), (st, r)


def test_result_from_stream():
    rid = RUN_ID[0]
    wait_until(lambda: call("GET", f"/api/v1/tasks/{rid}")[0] == 200, 10, what="the stored result")
    st, r = call("GET", f"/api/v1/tasks/{rid}")
    assert r["id"] == rid and r["exit_code"] == 0 and "second-line" in r.get("output", r.get("output_tail", "")), r
    st, r = call("GET", "/api/v1/tasks/no-such-task")
    assert st == 404 and r["error"]["code"] == "not_found", (st, r)


def test_queue_then_result():
    st, r = call("POST", "/api/v1/tasks", {"mode": "queue", "task": "hello", "id": "q-web-1"})
    assert st == 400 and "made by the platform" in r["error"]["message"], (st, r)  # ids are never chosen
    st, r = call("POST", "/api/v1/tasks", {"mode": "queue", "task": "hello"})
    assert st == 202 and re.fullmatch(r"t-[0-9a-f]{16}", r["id"]) and r["queued"], (st, r)
    qid = r["id"]
    wait_until(lambda: call("GET", f"/api/v1/tasks/{qid}")[0] == 200, 15, what="the queued task's result")
    res = call("GET", f"/api/v1/tasks/{qid}")[1]
    assert res["exit_code"] == 0 and res["requested_by"] == "developer" and res["via"] == "web", res


def test_run_without_waiting_streams_output():
    import socket
    s = socket.create_connection(("127.0.0.1", WEB), timeout=10)
    s.sendall(f"GET /events?project=default&format=json HTTP/1.1\r\nHost: x\r\nCookie: {DEV}\r\n\r\n".encode())
    buf = b""
    while b"event: hello" not in buf:
        buf += s.recv(65536)
    st, r = call("POST", "/api/v1/tasks", {"node": "api-1", "task": "hello", "wait": False})
    assert st == 202, (st, r)
    deadline = time.monotonic() + 10
    while b"task.finished" not in buf and time.monotonic() < deadline:
        buf += s.recv(65536)
    s.close()
    assert r["id"].encode() in buf and b"hello-from-node" in buf and b"event: task.output" in buf, buf[-800:]


for t in [test_node_listed, test_run_and_wait, test_result_from_stream, test_queue_then_result,
          test_run_without_waiting_streams_output]:
    case(t)
if FAILED:
    print(web.output()[-3000:])
    print(node.output()[-3000:])
web.kill()
node.kill()
auth.stop()
up.stop()
nats.stop()
tmp.cleanup()
print(f"{5 - len(FAILED)} passed, {len(FAILED)} failed")
sys.exit(1 if FAILED else 0)
