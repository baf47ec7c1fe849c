"""Helpers for the xtask-web integration tests (Python standard library only).

- StandinAuth: an HTTP server with xtask-auth's (Authelia's) forward-auth answers, a login portal
  without JavaScript, /api/logout, and knobs for the tests (delay, last verify request seen).
- Upstream: an echo server that answers with the path and headers it received.
- Nats: a minimal NATS client (PUB/SUB/request replies) over a raw socket.
- web_config(): a web.yaml for a test, every port from the caller's port block.
"""
import http.server
import json
import os
import socket
import socketserver
import threading
import time
import urllib.parse
import uuid

USERS = {
    # user: (password, groups, display name, email)
    "admin": ("admin-pass", ["admins", "developers"], "Administrator", "admin@xtask.test"),
    "developer": ("dev-pass", ["developers"], "Developer", "dev@xtask.test"),
    "ci": ("ci-pass", ["automation"], "CI", "ci@xtask.test"),
}


class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up early (timeouts under test) are expected


class StandinAuth:
    """Authelia 4.37 /api/verify semantics with the seed's rules:
    ^/health bypass; ^/nats admins; ^/web, ^/api, ^/events developers; anything else deny."""

    def __init__(self, port, portal_url, cookie_domain=None):
        self.port, self.portal_url, self.cookie_domain = port, portal_url, cookie_domain
        self.sessions = {}
        self.delay = 0.0
        self.verify_count = 0
        self.verify_done = 0  # verify requests past their delay
        self.last_verify = None
        self.connections = set()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                outer.connections.add(self.client_address)

            def _send(self, status, body=b"", headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _session(self):
                c = self.headers.get("Cookie", "")
                for part in c.split(";"):
                    k, _, v = part.strip().partition("=")
                    if k == "authelia_session" and v in outer.sessions:
                        return outer.sessions[v]
                return None

            def do_GET(self):
                u = urllib.parse.urlsplit(self.path)
                if u.path in ("/api/verify", "/api/authz/forward-auth"):
                    return self._verify(u)
                if u.path == "/api/health":
                    return self._send(200, b'{"status":"OK"}', [("Content-Type", "application/json")])
                if u.path == "/api/state":
                    s = self._session()
                    body = json.dumps({"status": "OK", "data": {"username": s or "", "authentication_level": 1 if s else 0}})
                    return self._send(200, body.encode(), [("Content-Type", "application/json")])
                if u.path == "/":
                    rd = urllib.parse.parse_qs(u.query).get("rd", [""])[0]
                    page = ("<!doctype html><html><head><title>Login</title></head><body><h1>Sign in</h1>"
                            "<form method=\"post\" action=\"/api/firstfactor\">"
                            f"<input type=\"hidden\" name=\"rd\" value=\"{rd}\">"
                            "<label>Username <input id=\"username\" name=\"username\"></label>"
                            "<label>Password <input id=\"password\" name=\"password\" type=\"password\"></label>"
                            "<button id=\"sign-in\" type=\"submit\">Sign in</button></form></body></html>")
                    return self._send(200, page.encode(), [("Content-Type", "text/html; charset=utf-8")])
                return self._send(404, b"not found")

            def _verify(self, u):
                outer.verify_count += 1
                outer.last_verify = {k.lower(): v for k, v in self.headers.items()}
                outer.last_verify["_path"] = self.path
                if outer.delay:
                    time.sleep(outer.delay)  # the slow auth service under test
                outer.verify_done += 1
                method = self.headers.get("X-Forwarded-Method", "GET")
                proto = self.headers.get("X-Forwarded-Proto", "http")
                host = self.headers.get("X-Forwarded-Host", "")
                uri = self.headers.get("X-Forwarded-Uri", "/")
                path = uri.split("?")[0]
                if path.startswith("/health"):
                    return self._send(200)
                if path.startswith("/nats"):
                    need = "admins"
                elif path.startswith(("/web", "/api", "/events", "/app", "/static")):
                    need = "developers"
                else:
                    need = None
                user = self._session()
                if user is None:  # anonymous: a login answer (Authelia does this for deny rules too)
                    accept = self.headers.get("Accept", "")
                    xhr = self.headers.get("X-Requested-With", "").lower() == "xmlhttprequest"
                    if "text/html" in accept and not xhr:
                        target = f"{proto}://{host}{uri}"
                        loc = f"{outer.portal_url}?rd={urllib.parse.quote(target, safe='')}"
                        status = 302 if method in ("GET", "HEAD") else 303
                        body = f'<a href="{loc}">{status}</a>'.encode()
                        return self._send(status, body, [("Location", loc), ("Content-Type", "text/html; charset=utf-8"),
                                                         ("Set-Cookie", "authelia_flow=1; Path=/; HttpOnly")])
                    return self._send(401, b"Unauthorized", [("Content-Type", "text/plain; charset=utf-8")])
                groups = USERS[user][1]
                if need is None or need not in groups:
                    return self._send(403, b"Forbidden", [("Content-Type", "text/plain; charset=utf-8")])
                return self._send(200, b"", [("Remote-User", user), ("Remote-Groups", ",".join(groups)),
                                            ("Remote-Name", USERS[user][2]), ("Remote-Email", USERS[user][3])])

            def do_HEAD(self):
                return self.do_GET()

            def do_POST(self):
                u = urllib.parse.urlsplit(self.path)
                n = int(self.headers.get("Content-Length", "0") or 0)
                raw = self.rfile.read(n) if n else b""
                if u.path == "/api/firstfactor":
                    if self.headers.get("Content-Type", "").startswith("application/json"):
                        f = json.loads(raw or b"{}")
                        user, pw, rd = f.get("username"), f.get("password"), f.get("targetURL", "")
                    else:
                        f = urllib.parse.parse_qs(raw.decode())
                        user, pw, rd = (f.get(k, [""])[0] for k in ("username", "password", "rd"))
                    if user not in USERS or USERS[user][0] != pw:
                        return self._send(401, b'{"status":"KO","message":"Authentication failed."}',
                                          [("Content-Type", "application/json")])
                    sid = uuid.uuid4().hex
                    outer.sessions[sid] = user
                    cookie = f"authelia_session={sid}; Path=/; HttpOnly; SameSite=Lax"
                    if outer.cookie_domain:
                        cookie += f"; Domain={outer.cookie_domain}"
                    if self.headers.get("Content-Type", "").startswith("application/json"):
                        return self._send(200, b'{"status":"OK"}', [("Content-Type", "application/json"),
                                                                    ("Set-Cookie", cookie)])
                    return self._send(302, b"", [("Location", rd or "/"), ("Set-Cookie", cookie)])
                if u.path == "/api/logout":
                    s = None
                    for part in self.headers.get("Cookie", "").split(";"):
                        k, _, v = part.strip().partition("=")
                        if k == "authelia_session":
                            s = v
                    outer.sessions.pop(s, None)
                    cookie = "authelia_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
                    if outer.cookie_domain:
                        cookie += f"; Domain={outer.cookie_domain}"
                    return self._send(200, b'{"status":"OK"}', [("Content-Type", "application/json"), ("Set-Cookie", cookie)])
                return self._send(404, b"not found")

        self.server = _ThreadingServer(("127.0.0.1", port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def login(self, user):
        """A session for `user` without going through the portal; returns the cookie header value."""
        sid = uuid.uuid4().hex
        self.sessions[sid] = user
        return f"authelia_session={sid}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Upstream:
    """Answers every request with JSON {method, path, headers} (and a body echo for POST)."""

    def __init__(self, port):
        self.port = port
        self.seen = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _answer(self):
                n = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(n) if n else b""
                rec = {"method": self.command, "path": self.path,
                       "headers": [[k.lower(), v] for k, v in self.headers.items()], "body": body.decode("latin-1")}
                outer.seen.append(rec)
                out = json.dumps(rec).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self.server = _ThreadingServer(("127.0.0.1", port), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SupervisorStatus:
    """Serves a supervisor status document (docs/PROTOCOL.md) at /status.json."""

    def __init__(self, port, services=("nats", "xtask", "auth", "web")):
        doc = {"supervisor": {"pid": 1, "version": "0.1.0", "uptime_ms": 12345, "state": "running"},
               "services": [{"name": n, "state": "READY", "pid": 100 + i, "uptime_ms": 12000, "restarts": 0,
                             "last_exit": {"code": None, "signal": None, "at_ms": None}, "essential": True,
                             "ready": True, "probe": {"kind": "http", "ok": True, "latency_ms": 1.3, "message": "200"}}
                            for i, n in enumerate(services)]}
        body = json.dumps(doc).encode()

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200 if self.path == "/status.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _ThreadingServer(("127.0.0.1", port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class SupervisorSocket:
    """The supervisor's control socket protocol for `status json`: one request line, then "ok\n" and
    the status document, then close (supervisor/control.c)."""

    def __init__(self, path, services=("nats", "web")):
        self.path = path
        self.requests = []
        doc = {"supervisor": {"pid": 1, "version": "0.1.0", "uptime_ms": 1, "state": "running"},
               "services": [{"name": n, "state": "READY", "pid": 10 + i, "restarts": 0, "ready": True}
                            for i, n in enumerate(services)]}
        self.body = b"ok\n" + json.dumps(doc).encode() + b"\n"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                line = b""
                while not line.endswith(b"\n"):
                    d = c.recv(256)
                    if not d:
                        break
                    line += d
                self.requests.append(line.decode().strip())
                c.sendall(self.body if line.strip() == b"status json" else b"error unknown\n")

    def stop(self):
        self.sock.close()


class Nats:
    """A minimal NATS client: publish, subscribe with a callback (run on the reader thread)."""

    def __init__(self, port, name="web-test"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.settimeout(None)
        self.f = self.sock.makefile("rb")
        info = self.f.readline()
        assert info.startswith(b"INFO"), info
        self.lock = threading.Lock()
        self.subs = {}
        self.sid = 0
        self.pong = threading.Event()
        self._send(f'CONNECT {{"verbose":false,"pedantic":false,"name":"{name}","headers":false,"no_responders":false}}\r\n'.encode())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.flush()

    def _send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def _read(self):
        try:
            while True:
                line = self.f.readline()
                if not line:
                    return
                if line.startswith(b"PING"):
                    self._send(b"PONG\r\n")
                elif line.startswith(b"PONG"):
                    self.pong.set()
                elif line.startswith(b"MSG"):
                    parts = line.split()
                    subj, sid = parts[1].decode(), int(parts[2])
                    reply = parts[3].decode() if len(parts) == 5 else None
                    n = int(parts[-1])
                    data = self.f.read(n + 2)[:n]
                    cb = self.subs.get(sid)
                    if cb:
                        try:
                            cb(subj, reply, data)
                        except Exception as e:  # noqa: BLE001 - a test callback failing must not kill the reader
                            print("nats callback error:", e)
        except OSError:
            return

    def flush(self, timeout=5):
        self.pong.clear()
        self._send(b"PING\r\n")
        if not self.pong.wait(timeout):
            raise AssertionError("no PONG from nats-server")

    def publish_quiet(self, subject, data, reply=None):
        try:
            self.publish(subject, data, reply)
        except OSError:
            pass  # the test is over and closed the connection

    def publish(self, subject, data, reply=None):
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode()
        elif isinstance(data, str):
            data = data.encode()
        r = f" {reply}" if reply else ""
        self._send(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")

    def subscribe(self, subject, cb):
        self.sid += 1
        self.subs[self.sid] = cb
        self._send(f"SUB {subject} {self.sid}\r\n".encode())
        return self.sid

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class FakeNode:
    """Stands in for an xtask coordinator node until the real one is built: heartbeats, task.run
    replies, and the events/log lines a run produces (docs/PROTOCOL.md shapes)."""

    def __init__(self, nats, node_id="test-1", region="local", lines=3, line_delay=0.05):
        self.nats, self.id, self.region, self.lines, self.line_delay = nats, node_id, region, lines, line_delay
        self.record = {"id": node_id, "region": region, "capabilities": ["task"],
                       "platform": {"os": "linux", "arch": "x86_64", "hostname": "h1"},
                       "tasks": ["build", "test", "noop"], "load": {"running": 0, "load1": 0.1},
                       "version": "0.1.0", "started_ms": int(time.time() * 1000), "ts_ms": int(time.time() * 1000)}
        nats.subscribe(f"xtask.{node_id}.task.run", self._run)
        nats.subscribe("xtask.nodes.discover", lambda s, r, d: r and nats.publish(r, self.record))
        nats.flush()

    def heartbeat(self):
        self.record["ts_ms"] = int(time.time() * 1000)
        self.nats.publish(f"xtask.nodes.heartbeat.{self.id}", self.record)

    def _run(self, subj, reply, data):
        req = json.loads(data)
        tid = req.get("id") or ("t-" + uuid.uuid4().hex[:8])
        project = req.get("project", "default")
        task = req["args"][0]

        def work():
            t0 = time.time()
            ev = f"xtask.events.{project}.{self.id}"
            self.nats.publish_quiet(f"{ev}.task.started", {"type": "task.started", "id": tid, "node": self.id, "task": task,
                                                     "ts_ms": int(t0 * 1000)})
            out = []
            for i in range(self.lines):
                line = f"{task} step {i + 1}/{self.lines}"
                out.append(line)
                self.nats.publish_quiet(f"{ev}.task.output", {"type": "task.output", "id": tid, "node": self.id,
                                                        "stream": "stdout", "line": line})
                time.sleep(self.line_delay)
            dur = int((time.time() - t0) * 1000)
            self.nats.publish_quiet(f"{ev}.task.finished", {"type": "task.finished", "id": tid, "node": self.id, "task": task,
                                                      "exit_code": 0, "duration_ms": dur})
            if reply:
                self.nats.publish_quiet(reply, {"id": tid, "node": self.id, "task": task, "exit_code": 0, "signal": 0,
                                          "duration_ms": dur, "timed_out": False, "output_tail": "\n".join(out),
                                          "truncated": False})
        threading.Thread(target=work, daemon=True).start()


def web_config(path, *, listen, auth_port, upstream_port, nats_port, nats_http_port, gui_root, static_root,
               portal_url, extra_limits="", events_queue=256, heartbeat="15s", trusted="[]", tls=None,
               supervisor_url=None, supervisor_socket=None, domain="xtask.test", threads="auto", events_extra="",
               api_extra=""):
    tls_block = ""
    if tls:
        tls_block = f"  - address: {tls['address']}\n    tls: {{ cert: {tls['cert']}, key: {tls['key']} }}\n"
    sup = f"supervisor:\n  status_url: {supervisor_url}\n  poll: 200ms\n" if supervisor_url else ""
    if supervisor_socket:
        sup = f"supervisor:\n  status_socket: {supervisor_socket}\n  poll: 200ms\n"
    text = f"""version: 1
threads: {threads}
log: {{ level: info }}
listen:
  - address: {listen}
{tls_block}limits:
  max_header_bytes: 8KiB
  max_body_bytes: 64KiB
  request_timeout: 2s
  drain_timeout: 1s
{extra_limits}
trusted_proxies: {trusted}
nats:
  url: nats://127.0.0.1:{nats_port}
{sup}events:
  queue: {events_queue}
  heartbeat: {heartbeat}
{events_extra}gui:
  root: {gui_root}
api:
{api_extra}  rules:
    - groups: [admins]
      verbs: [task.run, which.check, got.download, silent.exec, kill-port, audit.read]
    - groups: [developers]
      verbs: [task.run, which.check]
security_headers:
  Strict-Transport-Security: "max-age=31536000; includeSubDomains"
  X-Content-Type-Options: nosniff
  X-Frame-Options: DENY
  Referrer-Policy: strict-origin-when-cross-origin
  Content-Security-Policy: "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
hosts:
  - names: [app.{domain}, 127.0.0.1, localhost]
    forward_auth:
      url: "http://127.0.0.1:{auth_port}/api/verify?rd={portal_url}"
      copy_headers: [Remote-User, Remote-Groups, Remote-Name, Remote-Email]
      timeout: 1s
    routes:
      - path: /health
        handle: health
        public: true
      - path: /api/logout
        reverse_proxy: {{ upstream: "http://127.0.0.1:{auth_port}/api/logout" }}
        public: true
      - path: /api/
        handle: api
      - path: /events
        handle: events
      - path: /web
        handle: gui
      - path: /nats/
        reverse_proxy: {{ upstream: "http://127.0.0.1:{nats_http_port}/", keepalive: 2s }}
      - path: /app/
        reverse_proxy: {{ upstream: "http://127.0.0.1:{upstream_port}/app/", keepalive: 2s }}
      - path: /static/
        file_server: {{ root: {static_root} }}
      - path: /
        redirect: {{ to: /web/ }}
        public: true
  - names: [auth.{domain}]
    headers:
      X-Frame-Options: SAMEORIGIN
      Content-Security-Policy: ""
    routes:
      - path: /
        reverse_proxy: {{ upstream: "http://127.0.0.1:{auth_port}/" }}
        public: true
"""
    with open(path, "w") as f:
        f.write(text)
    return path


def gui_root():
    """Where the build put the GUI assets (<build>/share/xtask-web/gui)."""
    bin_dir = os.environ.get("XT_BIN_DIR") or os.path.join(os.environ.get("XT_SOURCE_DIR", "."), "build", "bin")
    return os.path.join(os.path.dirname(bin_dir), "share", "xtask-web", "gui")
