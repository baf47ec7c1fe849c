"""Coordinator node against one real nats-server: every subject of ARCHITECTURE.md, bad inputs,
timeouts, busy, the CLI and its exit codes, a clean SIGTERM."""
import hashlib
import http.server
import json
import os
import re
import signal
import socket
import threading
import time

from coordlib import Node, assert_error, natsproto, req_json, run_tests, xtask, tid
from xt_testlib import NatsServer, Proc, TempDir, port_block, wait_until

PORTS = port_block("coordinator")
TMP = TempDir("xt-coord-node-")
DL = os.path.join(TMP.path, "dl")
os.makedirs(DL)
KILL_PORT = PORTS[5]
NS = NatsServer(PORTS[0], PORTS[1], os.path.join(TMP.path, "nats"), name="coord-node")
URL = NS.url
NODE_ID = "n1"

CONFIG = f"""
version: 1
node: {{ region: ams, events_project: ops }}
nats: {{ heartbeat: 300ms, node_ttl: 2s, results_max_bytes: 2MiB }}
limits: {{ max_concurrent: 2, max_queued: 1, max_request: 8KiB, kill_grace: 200ms, output_tail: 256 }}
queue: {{ ack_wait: 2s }}
tasks:
  noop: ["true"]
  echo: {{ argv: [echo], args: true }}
  lines: {{ argv: [sh, -c, "for i in 1 2 3; do echo line$i; done; echo warn >&2; exit 3"] }}
  sleep: {{ argv: [sleep, "30"], timeout: 400ms }}
  block: {{ argv: [sleep, "1.5"] }}
  env: {{ argv: [sh, -c, "echo $XT_V from $(pwd)"], env: {{ XT_V: hello }}, cwd: /tmp }}
  spam: {{ argv: [sh, -c, "i=0; while [ $i -lt 2000 ]; do echo 0123456789abcdef; i=$((i+1)); done"] }}
  missing: [/nonexistent/program]
  envnames: [sh, -c, "env | cut -d= -f1 | sort | tr '\\n' ' '"]
  envleak: {{ argv: [sh, -c, "env | grep -e s3cr3t -e AUTH_SESSION -e TOKEN; echo XT_OWN=$XT_OWN XT_SET=$XT_SET"], env: {{ XT_OWN: own }} }}
task_env: {{ set: {{ XT_SET: fixed }} }}
silent:
  quiet: ["true"]
download: {{ dirs: ["{DL}"], max_bytes: 1KiB, timeout: 5s, allow_networks: ["127.0.0.2/32"] }}
kill_port: {{ ports: ["{KILL_PORT}"] }}
"""

# The coordinator's environment holds credentials; no task may see them (task_env allowlist).
SECRET_ENV = {"AUTH_SESSION_SECRET": "s3cr3t-session", "FAKE_CLOUD_TOKEN": "s3cr3t-cloud", "LANG": "C.UTF-8"}
NODE = Node(TMP.path, NODE_ID, URL, CONFIG, region="ams", env=SECRET_ENV)
C = None  # natsproto client


def run(args, **kw):
    body = {"args": args}
    body.update(kw)
    return req_json(C, f"xtask.{NODE_ID}.task.run", body, 10)


def setup():
    global C
    NS.start()
    C = natsproto.Client(URL)


def test_register_and_heartbeat():
    sub_reg = C.subscribe(f"xtask.nodes.register.{NODE_ID}")
    sub_hb = C.subscribe(f"xtask.nodes.heartbeat.{NODE_ID}")
    sub_ev = C.subscribe(f"xtask.events.ops.{NODE_ID}.node.>")
    C.flush()
    NODE.start()
    reg = C.next_msg(sub_reg, 5).json()
    assert reg["id"] == NODE_ID and reg["region"] == "ams", reg
    assert "task" in reg["capabilities"] and "noop" in reg["tasks"], reg
    assert reg["platform"]["os"] == "linux", reg
    hb = C.next_msg(sub_hb, 3).json()
    assert hb["id"] == NODE_ID and hb["ts_ms"] >= reg["ts_ms"], hb
    ev = C.next_msg(sub_ev, 3).json()
    assert ev["type"] == "node.joined" and ev["node"] == NODE_ID and ev["region"] == "ams", ev
    for s in (sub_reg, sub_hb, sub_ev):
        C.unsubscribe(s)
    rec = wait_until(lambda: C.kv_get("xtask_nodes", NODE_ID), 5, what="KV record")
    assert rec["id"] == NODE_ID, rec


def test_ping_and_cli_ping():
    r = req_json(C, f"xtask.{NODE_ID}.ping", {})
    assert r["ok"] is True and r["id"] == NODE_ID and r["jetstream"] is True, r
    p = xtask("ping", "--node-id", NODE_ID, url=URL)
    assert p.returncode == 0, p
    p = xtask("ping", "--node-id", "nobody", "--timeout", "300ms", url=URL)
    assert p.returncode == 1, p
    p = xtask("ping", env={"XTASK_NODE_ID": NODE_ID}, url=URL)
    assert p.returncode == 0, p


def test_discover_filters():
    def ids(f):
        return [m.json()["id"] for m in C.gather("xtask.nodes.discover", json.dumps(f).encode(), 0.4)]
    assert ids({}) == [NODE_ID]
    assert C.gather("xtask.nodes.discover", b"", 0.4)[0].json()["id"] == NODE_ID
    assert ids({"capability": "task", "region": "ams", "platform": "linux"}) == [NODE_ID]
    assert ids({"task": "echo"}) == [NODE_ID]
    assert ids({"region": "dfw"}) == []
    assert ids({"capability": "docker"}) == []
    assert ids({"platform": "darwin"}) == []
    bad = C.gather("xtask.nodes.discover", b"{nope", 0.4)
    assert len(bad) == 1 and bad[0].json()["error"]["code"] == "bad_request", bad
    # discover gathers for 500 ms: a loaded machine may need another ask
    wait_until(lambda: (lambda p: p.returncode == 0 and p.stdout.strip().startswith("[")
                        and json.loads(p.stdout)[:1] and json.loads(p.stdout)[0]["id"] == NODE_ID)(
        xtask("nodes", "--json", url=URL)), 10, 0.1, "the node listed (--json)")
    wait_until(lambda: (lambda p: p.returncode == 0 and NODE_ID in p.stdout and "ams" in p.stdout)(
        xtask("nodes", url=URL)), 10, 0.1, "the node listed")
    p = xtask("nodes", "--region", "nowhere", "--timeout", "200ms", url=URL)
    assert p.returncode == 1, p
    # every node registered in the KV registry answered: no need to wait out the window
    t0 = time.monotonic()
    p = xtask("nodes", "--timeout", "30s", url=URL)
    assert p.returncode == 0 and NODE_ID in p.stdout and time.monotonic() - t0 < 15, (p, time.monotonic() - t0)


def test_task_run_output_logs_events_result():
    logs = C.subscribe(f"xtask.logs.{NODE_ID}")
    evs = C.subscribe("xtask.events.proj1.>")
    C.flush()
    r = run(["lines"], project="proj1", id=tid("run-lines-1"), requested_by="dave", via="web")
    assert r["id"] == tid("run-lines-1") and r["requested_by"] == "dave" and r["via"] == "web", r
    assert r["node"] == NODE_ID and r["task"] == "lines", r
    assert r["exit_code"] == 3 and r["signal"] == 0 and r["timed_out"] is False, r
    assert "line1\nline2\nline3\n" in r["output_tail"] and "warn" in r["output_tail"], r
    lines = [m.json() for m in C.drain(logs, 0.3)]
    assert [(x["stream"], x["line"]) for x in lines if x["stream"] == "stdout"] == \
        [("stdout", "line1"), ("stdout", "line2"), ("stdout", "line3")], lines
    assert ("stderr", "warn") in [(x["stream"], x["line"]) for x in lines], lines
    assert all(x["id"] == tid("run-lines-1") and x["task"] == "lines" for x in lines), lines
    events = [m for m in C.drain(evs, 0.3)]
    assert all(m.subject.split(".")[3] == NODE_ID for m in events), events  # xtask.events.<p>.<node>.<type>
    types = [m.subject.split(".", 4)[4] for m in events]
    assert types[0] == "task.started" and types[-1] == "task.finished", types
    assert types.count("task.output") == 4, types
    fin = events[-1].json()
    assert fin["exit_code"] == 3 and fin["id"] == tid("run-lines-1") and fin["node"] == NODE_ID, fin
    assert fin["requested_by"] == "dave" and events[0].json()["requested_by"] == "dave", events[0]
    C.unsubscribe(logs)
    C.unsubscribe(evs)
    res = wait_until(lambda: C.js_last("xtask-results", "xtask.results.*." + tid("run-lines-1")), 5, what="stored result")
    assert res["exit_code"] == 3 and "line3" in res["output"] and res["finished_ms"] >= res["started_ms"], res
    assert res["requested_by"] == "dave", res


def test_args_env_cwd_and_bounds():
    r = run(["echo", "hello", "$(id)", ";", "world"])
    assert r["exit_code"] == 0 and r["output_tail"] == "hello $(id) ; world\n", r  # no shell
    r = run(["env"])
    assert r["output_tail"] == "hello from /tmp\n", r
    r = run(["spam"])  # 34000 bytes of output: tail bounded, result bounded, marked truncated
    assert r["exit_code"] == 0 and len(r["output_tail"]) <= 256 and r["truncated"] is True, len(r["output_tail"])
    r = run(["missing"])
    assert r["exit_code"] == 127 and "cannot run" in r["output_tail"], r


def test_task_env_is_clean():
    """A task that prints its environment shows nothing of the coordinator's beyond task_env.pass."""
    r = run(["envleak"])
    assert r["exit_code"] == 0 and r["output_tail"] == "XT_OWN=own XT_SET=fixed\n", r
    r = run(["envnames"])
    names = set(r["output_tail"].split())
    allowed = {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "TMPDIR",
               "XT_SET", "XTASK_SERVICE", "PWD", "SHLVL", "OLDPWD", "_"}  # the last four: set by sh
    assert names <= allowed and "LANG" in names and "XT_SET" in names, names


def test_timeout_kills():
    t0 = time.monotonic()
    r = run(["sleep"])
    took = time.monotonic() - t0
    assert r["timed_out"] is True and r["signal"] == signal.SIGTERM and r["exit_code"] == -1, r
    assert took < 2.0, took
    r = run(["block"], timeout_ms=100)  # a request may shorten the timeout
    assert r["timed_out"] is True and r["duration_ms"] < 1000, r


def test_bad_inputs():
    s = f"xtask.{NODE_ID}.task.run"
    assert_error(C.request(s, b"{not json", 3).json(), "bad_request")
    assert_error(C.request(s, b"[1,2]", 3).json(), "bad_request")
    assert_error(C.request(s, b"", 3).json(), "bad_request")
    assert_error(req_json(C, s, {"args": "noop"}), "bad_request")
    assert_error(req_json(C, s, {"args": [1]}), "bad_request")
    assert_error(req_json(C, s, {"args": ["rm", "-rf", "/"]}), "unknown_task")
    assert_error(req_json(C, s, {"args": ["-rf"]}), "unknown_task")
    assert_error(req_json(C, s, {"args": ["noop", "extra"]}), "not_allowed")
    assert_error(req_json(C, s, {"args": ["noop"], "project": "a.b"}), "bad_request")
    assert_error(req_json(C, s, {"args": ["noop"], "id": "x>y"}), "bad_request")
    r = req_json(C, s, {"args": ["noop"], "id": "my-chosen-id"})  # ids are made by the platform
    assert_error(r, "bad_request")
    assert "made by the platform" in r["error"]["message"], r
    r = run(["noop"])  # no id: the node makes one
    assert re.fullmatch(r"t-[0-9a-f]{16}", r["id"]) and r["requested_by"] == "unknown", r
    big = json.dumps({"args": ["echo", "x" * 9000]}).encode()
    r = C.request(s, big, 3).json()
    assert_error(r, "payload_too_large")
    assert r["node"] == NODE_ID, r
    assert_error(req_json(C, f"xtask.{NODE_ID}.nope.verb", {}), "not_found")
    assert_error(req_json(C, f"xtask.{NODE_ID}.kill-port.abc", {}), "bad_request")
    assert_error(req_json(C, f"xtask.{NODE_ID}.kill-port.99999", {}), "bad_request")
    assert_error(req_json(C, f"xtask.{NODE_ID}.which.check", {"name": 5}), "bad_request")
    assert_error(req_json(C, f"xtask.{NODE_ID}.which.check", {"name": "../sh"}), "bad_request")
    with natsproto.Client(URL) as c2:  # a request to a node that does not exist: no responders
        try:
            c2.request("xtask.ghost.task.run", b"{}", 1)
            raise AssertionError("expected no responders")
        except natsproto.NoResponders:
            pass
    assert req_json(C, f"xtask.{NODE_ID}.ping", {})["ok"]  # still alive


def test_busy():
    """max_concurrent 2 + max_queued 1: a fourth concurrent request is refused with busy."""
    inboxes = []
    sids = []
    for i in range(5):
        ib = C.new_inbox()
        sids.append(C.subscribe(ib))
        inboxes.append(ib)
    C.flush()
    for ib in inboxes:
        C.publish(f"xtask.{NODE_ID}.task.run", json.dumps({"args": ["block"]}).encode(), reply=ib)
    replies = [C.next_msg(sid, 10).json() for sid in sids]
    busy = [r for r in replies if "error" in r]
    done = [r for r in replies if "exit_code" in r]
    assert len(busy) == 2 and all(r["error"]["code"] == "busy" for r in busy), replies
    assert len(done) == 3 and all(r["exit_code"] == 0 for r in done), replies
    for sid in sids:
        C.unsubscribe(sid)


def test_which():
    r = req_json(C, f"xtask.{NODE_ID}.which.check", {"name": "sh"})
    assert r["found"] is True and r["path"].endswith("/sh") and r["node"] == NODE_ID, r
    r = req_json(C, f"xtask.{NODE_ID}.which.check", {"name": "python3"})
    assert r["found"] is True and r["version"].startswith("Python 3"), r
    r = req_json(C, f"xtask.{NODE_ID}.which.check", {"name": "xtask-not-installed"})
    assert r["found"] is False and r["path"] is None, r


class _Files(http.server.BaseHTTPRequestHandler):
    files = {}
    redirects = {}

    def do_GET(self):
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_download():
    srv = http.server.ThreadingHTTPServer(("127.0.0.2", PORTS[6]), _Files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        good = b"binary-content\n" * 10
        _Files.files = {"/good": good, "/big": b"x" * 2048}
        base = f"http://127.0.0.2:{PORTS[6]}"  # the allowlisted test server
        sha = hashlib.sha256(good).hexdigest()
        s = f"xtask.{NODE_ID}.got.download"
        out = os.path.join(DL, "good.bin")
        r = req_json(C, s, {"url": base + "/good", "output": out, "sha256": sha})
        assert r["bytes"] == len(good) and r["sha256"] == sha and r["path"] == os.path.realpath(out), r
        with open(out, "rb") as f:
            assert f.read() == good
        r = req_json(C, s, {"url": base + "/good", "output": os.path.join(DL, "bad.bin"), "sha256": "0" * 64})
        assert_error(r, "checksum_mismatch")
        r = req_json(C, s, {"url": base + "/big", "output": os.path.join(DL, "big.bin")})
        assert_error(r, "download_failed")
        r = req_json(C, s, {"url": base + "/missing", "output": os.path.join(DL, "m.bin")})
        assert_error(r, "download_failed")
        assert sorted(os.listdir(DL)) == ["good.bin"], os.listdir(DL)  # no partial files left
        assert_error(req_json(C, s, {"url": base + "/good", "output": "/etc/xtask-evil"}), "path_not_allowed")
        assert_error(req_json(C, s, {"url": base + "/good", "output": DL + "/../escape"}), "path_not_allowed")
        assert_error(req_json(C, s, {"url": "file:///etc/passwd", "output": DL + "/p"}), "bad_request")
        assert_error(req_json(C, s, {"url": base + "/good"}), "bad_request")
        assert_error(req_json(C, s, {"url": base + "/good", "output": DL + "/x", "sha256": "zz"}), "bad_request")
        # A redirect inside the allowlist is followed (the body of the 302 is not the download).
        _Files.redirects = {"/hop": "/good", "/to-loopback": f"http://127.0.0.3:{PORTS[6]}/good",
                            "/to-metadata": "http://169.254.169.254/latest/meta-data/",
                            "/to-file": "file:///etc/passwd"}
        r = req_json(C, s, {"url": base + "/hop", "output": os.path.join(DL, "hop.bin"), "sha256": sha})
        assert r["bytes"] == len(good) and r["sha256"] == sha, r
        os.unlink(os.path.join(DL, "hop.bin"))
    finally:
        srv.shutdown()
        srv.server_close()


def test_download_guard():
    """got.download never reaches the node's own network position: loopback (outside the test's
    127.0.0.2/32 allowlist), metadata, private ranges, Fly's 6PN, in any spelling, also by redirect."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.2", PORTS[6]), _Files)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        s = f"xtask.{NODE_ID}.got.download"
        p = PORTS[6]
        for url in (f"http://127.0.0.1:{p}/good", f"http://localhost:{p}/good", f"http://0.0.0.0:{p}/good",
                    f"http://[::1]:{p}/good", "http://169.254.169.254/latest/meta-data/", "http://[fdaa::3]/x",
                    "http://[fd00:ec2::254]/", "http://10.0.0.1/", "http://100.64.0.1/", "http://[fc00::1]/",
                    "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.0.0.1/", "http://127.1/",
                    "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://224.0.0.1/"):
            r = req_json(C, s, {"url": url, "output": os.path.join(DL, "evil.bin")})
            assert_error(r, "not_allowed")
            assert "not a public address" in r["error"]["message"], (url, r)
        base = f"http://127.0.0.2:{p}"
        for path, what in (("/to-loopback", "127.0.0.3"), ("/to-metadata", "cloud metadata")):
            r = req_json(C, s, {"url": base + path, "output": os.path.join(DL, "evil.bin")})
            assert_error(r, "not_allowed")
            assert "redirect to" in r["error"]["message"] and what in r["error"]["message"], r
        r = req_json(C, s, {"url": base + "/to-file", "output": os.path.join(DL, "evil.bin")})
        assert_error(r, "bad_request")
        assert sorted(os.listdir(DL)) == ["good.bin"], os.listdir(DL)
    finally:
        srv.shutdown()
        srv.server_close()


def test_silent_exec():
    r = req_json(C, f"xtask.{NODE_ID}.silent.exec", {"name": "quiet"})
    assert r["exit_code"] == 0 and r["node"] == NODE_ID and "output_tail" not in r, r
    assert_error(req_json(C, f"xtask.{NODE_ID}.silent.exec", {"name": "rm"}), "not_allowed")


def test_kill_port():
    listener = Proc(["python3", "-c",
                     "import socket,time,sys\n"
                     f"s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                     f"s.bind(('127.0.0.1',{KILL_PORT})); s.listen(); print('listening', flush=True)\n"
                     "while True: time.sleep(1)\n"])
    try:
        listener.wait_output("listening", 5)
        r = req_json(C, f"xtask.{NODE_ID}.kill-port.{KILL_PORT}", {})
        assert r["found"] is True and r["killed"] == [listener.pid] and r["port"] == KILL_PORT, r
        listener.wait(5)
        r = req_json(C, f"xtask.{NODE_ID}.kill-port.{KILL_PORT}", {})
        assert r["found"] is False and r["killed"] == [], r
        assert_error(req_json(C, f"xtask.{NODE_ID}.kill-port.{PORTS[0]}", {}), "not_allowed")  # nats: never
    finally:
        listener.kill()


def test_broadcast():
    r = C.gather("xtask.broadcast.ping", b"{}", 0.5)
    assert len(r) == 1 and r[0].json()["node"] == NODE_ID, r
    r = C.gather("xtask.broadcast.task.run", json.dumps({"args": ["echo", "all"]}).encode(), 1.0)
    assert len(r) == 1 and r[0].json()["node"] == NODE_ID and r[0].json()["output_tail"] == "all\n", r
    r = C.gather("xtask.broadcast.task.run", json.dumps({"args": ["not-here"]}).encode(), 0.5)
    assert r == [], r  # nodes without the task stay silent
    r = C.gather("xtask.broadcast.which.check", json.dumps({"name": "sh"}).encode(), 1.0)
    assert len(r) == 1 and r[0].json()["found"] is True, r


def test_queue_basic():
    ack = C.js_publish("xtask.queue.task", {"args": ["echo", "queued"], "id": tid("q-basic-1")}, msg_id=tid("q-basic-1"))
    assert ack.get("stream") == "xtask-queue", ack
    res = wait_until(lambda: C.js_last("xtask-results", "xtask.results.*." + tid("q-basic-1")), 10, what="queued result")
    assert res["output"] == "queued\n" and res["node"] == NODE_ID, res
    # an unknown task on the queue: an error result, and the message is not redelivered forever
    C.js_publish("xtask.queue.task", {"args": ["nope-task"], "id": tid("q-bad-1")}, msg_id=tid("q-bad-1"))
    res = wait_until(lambda: C.js_last("xtask-results", "xtask.results.*." + tid("q-bad-1")), 10, what="error result")
    assert res["error"]["code"] == "unknown_task", res
    info = wait_until(lambda: (lambda i: i if i["state"]["messages"] == 0 else None)(
        C.js_api("STREAM.INFO.xtask-queue")), 10, what="queue empty")
    assert info["config"]["retention"] == "workqueue", info


def test_cli_run_result():
    p = xtask("run", "--node", NODE_ID, "lines", url=URL)
    assert p.returncode == 3, p
    assert p.stdout == "line1\nline2\nline3\n" and "warn" in p.stderr, p
    p = xtask("run", "--node", NODE_ID, "echo", "a", "b", url=URL)
    assert p.returncode == 0 and p.stdout == "a b\n", p
    p = xtask("run", "--node", NODE_ID, "sleep", url=URL)
    assert p.returncode == 124 and "timed out" in p.stderr, p
    p = xtask("run", "--any", "echo", "any", url=URL)
    assert p.returncode == 0 and p.stdout == "any\n", p
    p = xtask("run", "--node", NODE_ID, "nope", url=URL)
    assert p.returncode == 1 and "unknown_task" in p.stderr, p
    t0 = time.monotonic()
    p = xtask("run", "--node", "ghost", "noop", url=URL)
    assert p.returncode == 1 and "ghost" in p.stderr and time.monotonic() - t0 < 5, p
    p = xtask("submit", "--id", "cli-sub-1", "echo", "sub", url=URL)
    assert p.returncode == 2 and "made by the platform" in p.stderr, p  # ids are never chosen
    p = xtask("submit", "--wait", "10s", "echo", "sub", url=URL, env={"XTASK_USER": "carol"})
    sub_id, out = p.stdout.split("\n", 1)
    assert p.returncode == 0 and out == "sub\n" and re.fullmatch(r"t-[0-9a-f]{16}", sub_id), p
    p = xtask("result", sub_id, url=URL)
    res = json.loads(p.stdout)
    assert p.returncode == 0 and res["output"] == "sub\n" and res["requested_by"] == "carol", p
    assert res["via"] == "cli", res
    p = xtask("result", "--wait", "200ms", "no-such-id", url=URL)
    assert p.returncode == 1, p
    # `result` exits like `run`: the task's code, 124 timed out, 1 an error result (the JSON still printed)
    for task, code in (("lines", 3), ("sleep", 124), ("nope", 1)):
        p = xtask("submit", "--wait", "10s", task, url=URL)
        rid = p.stdout.split("\n", 1)[0]
        assert re.fullmatch(r"t-[0-9a-f]{16}", rid), (task, p)
        p = xtask("result", rid, url=URL)
        assert p.returncode == code and json.loads(p.stdout), (task, p)
        if task == "nope":
            assert "unknown_task" in p.stderr, p
    # every subcommand's --help: its usage on stdout, exit 0 (before the task name; after it, an argument)
    for cmd in ("nodes", "run", "submit", "result", "audit", "ping", "--nats-mode"):
        p = xtask(cmd, "--help", url="nats://127.0.0.1:1")
        assert p.returncode == 0 and p.stdout.startswith("usage:\n  xtask " + cmd), (cmd, p)
    p = xtask("run", "--node", NODE_ID, "echo", "x", "--help", url=URL)
    assert p.returncode == 0 and p.stdout == "x --help\n", p
    p = xtask("run", url="nats://127.0.0.1:1")
    assert p.returncode == 2, p
    p = xtask("run", "noop", "--node", "x", url="nats://127.0.0.1:1")  # options after TASK are args
    assert p.returncode == 3, p
    p = xtask("bogus", url=URL)
    assert p.returncode == 2, p
    p = xtask("--help")
    assert p.returncode == 0 and "exit codes" in p.stdout, p
    p = xtask("--nats-mode", "--config", "/nonexistent.yaml")
    assert p.returncode == 2, p


def test_bad_config_position():
    bad = os.path.join(TMP.path, "bad.yaml")
    with open(bad, "w") as f:
        f.write("tasks:\n  build: { argv: [make], timeot: 5s }\n")
    p = xtask("--nats-mode", "--config", bad, url=URL)
    assert p.returncode == 2 and f"{bad}:2:" in p.stderr and "timeout" in p.stderr, p


def test_sigterm_clean_stop():
    logs = C.subscribe(f"xtask.events.ops.{NODE_ID}.node.left")
    C.flush()
    ib = C.new_inbox()
    sid = C.subscribe(ib)
    C.publish(f"xtask.{NODE_ID}.task.run", json.dumps({"args": ["block"], "id": tid("killed-1")}).encode(), reply=ib)
    wait_until(lambda: req_json(C, f"xtask.{NODE_ID}.ping", {}) and
               C.kv_get("xtask_nodes", NODE_ID)["load"]["running"] == 1, 5, what="task running")
    t0 = time.monotonic()
    rc = NODE.stop(5)
    took = time.monotonic() - t0
    assert rc == 0 and took < 3.0, (rc, took)
    r = C.next_msg(sid, 2).json()
    assert r["id"] == tid("killed-1") and r["signal"] == signal.SIGKILL, r
    assert C.next_msg(logs, 2).json()["type"] == "node.left"
    assert C.kv_get("xtask_nodes", NODE_ID) is None


def test_results_flood_bounded():
    """A flood of large publishes into xtask-results (issue 10: 16 MiB in a second) stays within
    nats.results_max_bytes: the oldest are discarded, the server and the node stay up."""
    info = C.js_api("STREAM.INFO.xtask-results")
    assert info["config"]["max_bytes"] == 2 * 1024 * 1024 and info["config"]["discard"] == "old", info["config"]
    q = C.js_api("STREAM.INFO.xtask-queue")["config"]
    assert q["max_bytes"] == 64 * 1024 * 1024 and q["discard"] == "new", q
    blob = b"x" * (512 * 1024)
    for i in range(24):  # 12 MiB
        ack = C.request(f"xtask.results.{NODE_ID}.flood-{i}", blob, 5).json()
        assert "error" not in ack, ack
    st = C.js_api("STREAM.INFO.xtask-results")["state"]
    assert st["bytes"] <= 2 * 1024 * 1024, st
    assert req_json(C, f"xtask.{NODE_ID}.ping", {})["ok"] is True


def main():
    try:
        setup()
        run_tests([test_register_and_heartbeat, test_ping_and_cli_ping, test_discover_filters,
                   test_task_run_output_logs_events_result, test_args_env_cwd_and_bounds, test_task_env_is_clean,
                   test_timeout_kills,
                   test_bad_inputs, test_busy, test_which, test_download, test_download_guard, test_silent_exec, test_kill_port,
                   test_broadcast, test_queue_basic, test_cli_run_result, test_bad_config_position, test_results_flood_bounded,
                   test_sigterm_clean_stop])
    finally:
        NODE.kill()
        NS.kill()
        TMP.cleanup()


if __name__ == "__main__":
    socket.setdefaulttimeout(10)
    main()
