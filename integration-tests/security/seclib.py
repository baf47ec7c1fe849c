"""Helpers for the security tests (Python standard library only): a real front (xtask-web) in front of
the real auth (xtask-auth), a raw recording upstream, a scriptable fake auth service, raw-socket HTTP,
and the case runner. Every port comes from port_block("web") (XT_PORT_OFFSET 500+: 23500-23999)."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import traceback

from xt_testlib import NatsServer, Proc, TempDir, bin_path, fast_hash, http_request, port_block, wait_until

DOMAIN = "xtask.test"
APP, PORTAL_HOST, FAKE_HOST = f"app.{DOMAIN}", f"auth.{DOMAIN}", f"fake.{DOMAIN}"
DEV_PASS = "dev-Pa55-s3cret"
ADMIN_PASS = "adm-Pa55-s3cret"




# --- raw HTTP/1.1 over a socket ----------------------------------------------------------------

RESET = b"<connection reset>"


def raw(port, data, timeout=3.0, read_all=True):
    """Send bytes, read until the server closes or `timeout` passes without data. Returns bytes, ending
    with RESET when the server reset the connection (what it answered before may be lost then)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                out += RESET
                break
            if not d:
                break
            out += d
            if not read_all and b"\r\n\r\n" in out:
                break
        return out
    finally:
        s.close()


def statuses(resp):
    """Every HTTP status code in a raw response stream (pipelined answers)."""
    return [int(m.group(1)) for m in re.finditer(rb"HTTP/1\.[01] (\d{3})", resp)]


def first_status(resp):
    st = statuses(resp)
    return st[0] if st else None


def head_of(resp):
    return resp.split(b"\r\n\r\n", 1)[0]


# --- a raw recording upstream --------------------------------------------------------------------

class RawUpstream:
    """HTTP/1.1 upstream that records every request's raw head and body exactly as received (no
    lenient parsing) and answers with JSON {path, head, body}. Keeps connections alive, so a request
    smuggled through the front would show up as an extra record."""

    def __init__(self, port, answer_headers=()):
        self.port = port
        self.seen = []  # dicts: conn, head (str), body (bytes)
        self.answer_headers = list(answer_headers)
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.nconn = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.nconn += 1
            threading.Thread(target=self._serve, args=(c, self.nconn), daemon=True).start()

    def _serve(self, c, cid):
        buf = b""
        c.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                hdrs = [ln.split(":", 1) for ln in lines[1:]]
                cl = [v.strip() for k, v in hdrs if k.lower() == "content-length"]
                te = [v.strip() for k, v in hdrs if k.lower() == "transfer-encoding"]
                body = b""
                if te:
                    # decode chunked strictly
                    while True:
                        while b"\r\n" not in buf:
                            buf += c.recv(65536)
                        size_line, buf = buf.split(b"\r\n", 1)
                        n = int(size_line.split(b";")[0], 16)
                        while len(buf) < n + 2:
                            buf += c.recv(65536)
                        body += buf[:n]
                        buf = buf[n + 2:]
                        if n == 0:
                            break
                elif cl:
                    n = int(cl[0])
                    while len(buf) < n:
                        buf += c.recv(65536)
                    body, buf = buf[:n], buf[n:]
                rec = {"conn": cid, "head": head.decode("latin-1"), "body": body}
                with self.lock:
                    self.seen.append(rec)
                out = json.dumps({"path": lines[0], "head": rec["head"], "body": body.decode("latin-1")}).encode()
                extra = "".join(f"{k}: {v}\r\n" for k, v in self.answer_headers)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + extra.encode() +
                          b"Content-Length: " + str(len(out)).encode() + b"\r\n\r\n" + out)
        except (OSError, ValueError):
            return
        finally:
            c.close()

    def clear(self):
        with self.lock:
            self.seen.clear()

    def stop(self):
        self.sock.close()


def header_lines(head):
    """[(name as sent, value)] of a raw head (request line excluded)."""
    out = []
    for ln in head.split("\r\n")[1:]:
        k, _, v = ln.partition(":")
        out.append((k, v.strip()))
    return out


def identity_values(head):
    """Values of every header whose name, lower-cased with '_' as '-' and stripped, is an identity name."""
    vals = []
    for k, v in header_lines(head):
        n = k.strip().lower().replace("_", "-")
        if n.startswith("remote-"):
            vals.append((k, v))
    return vals


# --- a scriptable fake auth service ------------------------------------------------------------------

class FakeAuth:
    """Answers every request on a raw socket with self.answer (bytes) or by a mode:
    'hang' (never answers), 'close' (closes at once), 'garbage' (non-HTTP bytes)."""

    def __init__(self, port):
        self.port = port
        self.answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        self.mode = "answer"
        self.requests = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        c.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.requests.append(head.decode("latin-1"))
                if self.mode == "hang":
                    time.sleep(10)
                    return
                if self.mode == "close":
                    return
                if self.mode == "garbage":
                    c.sendall(b"\x00\x01garbage\r\n\r\n")
                    return
                c.sendall(self.answer)
                if b"connection: close" in self.answer.lower():
                    return
        except OSError:
            return
        finally:
            c.close()

    def stop(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


# --- the stack under test ---------------------------------------------------------------------------

class Stack:
    """nats-server + real xtask-auth + raw upstream + fake auth + xtask-web, all on the port block."""

    def __init__(self, prefix="xt-sec-", trusted="[]", tls=False, web_extra="", auth_extra="", server_extra="",
                 verify_path="/api/verify?rd="):
        self.auth_bin = bin_path("xtask-auth")
        P = port_block("web", 10)
        self.WEB, self.AUTH, self.UP, self.NATS, self.NATS_HTTP, self.FAKE = P[0], P[1], P[2], P[3], P[4], P[5]
        self.tmp = TempDir(prefix)
        t = self.tmp
        auth_extra = auth_extra.replace("@NATS@", str(self.NATS))
        self.portal = f"http://{PORTAL_HOST}:{self.WEB}/"
        users = t.write("users.yml", f"""users:
  developer:
    displayname: "Developer"
    password: "{fast_hash(DEV_PASS)}"
    email: dev@{DOMAIN}
    groups: [developers]
  admin:
    displayname: "Admin"
    password: "{fast_hash(ADMIN_PASS)}"
    email: admin@{DOMAIN}
    groups: [admins, developers]
""")
        self.session_secret = "S3ss10nS3cr3t-0123456789abcdefXYZ"
        auth_cfg = t.write("auth.yml", f"""
server:
  address: "tcp://127.0.0.1:{self.AUTH}/"
  hash_workers: 1
  hash_queue: 8
{server_extra}log: {{level: debug}}
totp: {{issuer: {DOMAIN}, secrets_path: "{t.path}/totp.yml"}}
authentication_backend:
  file:
    path: "{users}"
    password: {{argon2: {{iterations: 1, memory: 1024, parallelism: 1}}}}
access_control:
  default_policy: deny
  rules:
    - domain: ["{APP}"]
      policy: deny
      resources: ["^/app/admin([/?].*)?$"]
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: bypass
      resources: ["^/health([/?].*)?$"]
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: two_factor
      subject: "group:admins"
      resources: ["^/nats([/?].*)?$"]
    - domain: ["{DOMAIN}", "*.{DOMAIN}"]
      policy: one_factor
      subject: "group:developers"
      resources: ["^/web([/?].*)?$", "^/api([/?].*)?$", "^/events([/?].*)?$", "^/app([/?].*)?$"]
session:
  domain: {DOMAIN}
  authelia_url: "{self.portal}"
  secret: "{self.session_secret}"
  allow_http: true
regulation:
  max_retries: 30
  find_time: 10s
  ban_time: 3s
  failure_delay: 50ms
{auth_extra}""")
        self.nats = NatsServer(self.NATS, self.NATS_HTTP, os.path.join(t.path, "nats")).start()
        self.auth = Proc([self.auth_bin, "--config", auth_cfg])
        try:
            wait_until(lambda: http_request(f"http://127.0.0.1:{self.AUTH}/api/health", timeout=1)[0] == 200, 15,
                       what="xtask-auth healthy")
        except AssertionError:
            print(self.auth.output()[-3000:])
            raise
        self.up = RawUpstream(self.UP, answer_headers=[("X-Upstream", "1")])
        self.fake = FakeAuth(self.FAKE)
        self.TLS = P[6]
        tls_block = ""
        if tls:
            key, crt = os.path.join(t.path, "key.pem"), os.path.join(t.path, "cert.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
                            "-days", "1", "-subj", f"/CN={APP}"], check=True, capture_output=True)
            tls_block = f"  - address: 127.0.0.1:{self.TLS}\n    tls: {{ cert: {crt}, key: {key} }}\n"
        os.makedirs(os.path.join(t.path, "static"), exist_ok=True)
        t.write("static/hello.txt", "hello\n")
        web_cfg = t.write("web.yaml", f"""version: 1
threads: 1
log: {{ level: debug }}
listen:
  - address: 127.0.0.1:{self.WEB}
{tls_block}limits:
  max_header_bytes: 8KiB
  max_body_bytes: 64KiB
  request_timeout: 2s
  drain_timeout: 500ms
trusted_proxies: {trusted}
nats:
  url: nats://127.0.0.1:{self.NATS}
{web_extra}security_headers:
  Strict-Transport-Security: "max-age=31536000; includeSubDomains"
  X-Content-Type-Options: nosniff
  X-Frame-Options: DENY
hosts:
  - names: [{APP}, 127.0.0.1, localhost]
    forward_auth:
      url: "http://127.0.0.1:{self.AUTH}{verify_path}{self.portal}"
      copy_headers: [Remote-User, Remote-Groups, Remote-Name, Remote-Email]
      timeout: 1s
    routes:
      - path: /health
        handle: health
        public: true
      - path: /api/logout
        reverse_proxy: {{ upstream: "http://127.0.0.1:{self.AUTH}/api/logout" }}
        public: true
      - path: /api/
        handle: api
      - path: /nats/
        reverse_proxy: {{ upstream: "http://127.0.0.1:{self.NATS_HTTP}/", keepalive: 2s }}
      - path: /app/
        reverse_proxy: {{ upstream: "http://127.0.0.1:{self.UP}/app/", keepalive: 10s }}
      - path: /static/
        file_server: {{ root: {t.path}/static }}
  - names: [{FAKE_HOST}]
    forward_auth:
      url: "http://127.0.0.1:{self.FAKE}/api/verify"
      copy_headers: [Remote-User, Remote-Groups, Remote-Name, Remote-Email]
      timeout: 1s
    routes:
      - path: /health
        handle: health
        public: true
      - path: /app/
        reverse_proxy: {{ upstream: "http://127.0.0.1:{self.UP}/app/", keepalive: 10s }}
  - names: [{PORTAL_HOST}]
    routes:
      - path: /
        reverse_proxy: {{ upstream: "http://127.0.0.1:{self.AUTH}/" }}
        public: true
""")
        self.web = Proc([bin_path("xtask-web"), "--config", web_cfg])
        self.web.wait_output(r"ready", 10)
        self.base = f"http://127.0.0.1:{self.WEB}"
        wait_until(lambda: http_request(self.base + "/health", headers={"Host": APP})[0] == 200, 10, what="/health")

    def req(self, method, path, host=APP, headers=None, body=None, timeout=5):
        h = {"Host": host}
        h.update(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        return http_request(self.base + path, method, h, body, timeout=timeout)

    def login(self, user="developer", password=DEV_PASS, cookie=None):
        h = {"Cookie": cookie} if cookie else {}
        st, hd, body = self.req("POST", "/api/firstfactor", host=PORTAL_HOST, headers=h,
                                body={"username": user, "password": password,
                                      "targetURL": f"http://{APP}:{self.WEB}/app/"})
        assert st == 200, (st, hd, body)
        m = re.search(r"authelia_session=([^;]+)", hd.get("set-cookie", ""))
        assert m, hd
        return "authelia_session=" + m.group(1), hd["set-cookie"]

    def raw(self, data, **kw):
        return raw(self.WEB, data, **kw)

    def alive(self):
        return self.web.running() and self.auth.running() and \
            self.req("GET", "/health")[0] == 200

    def stop(self):
        self.web.kill()
        self.auth.kill()
        self.up.stop()
        self.fake.stop()
        self.nats.stop()
        self.tmp.cleanup()


class Runner:
    def __init__(self, stack):
        self.stack, self.failed, self.passed = stack, [], 0

    def case(self, fn):
        t0 = time.monotonic()
        try:
            fn()
            self.passed += 1
            print(f"ok   {fn.__name__} ({time.monotonic() - t0:.2f}s)", flush=True)
        except Exception as e:  # noqa: BLE001 - report every case
            self.failed.append(fn.__name__)
            traceback.print_exc()
            print(f"FAIL {fn.__name__}: {e!r}", flush=True)
        # every attack must leave both services up
        if not (self.stack.web.running() and self.stack.auth.running()):
            self.failed.append(fn.__name__ + " (a service died)")
            print(f"FAIL {fn.__name__}: a service died", flush=True)

    def finish(self):
        if self.failed:
            print("---- web ----\n" + self.stack.web.output()[-4000:])
            print("---- auth ----\n" + self.stack.auth.output()[-3000:])
        self.stack.stop()
        print(f"{self.passed} passed, {len(self.failed)} failed {self.failed}")
        sys.exit(1 if self.failed else 0)
