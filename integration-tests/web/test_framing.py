#!/usr/bin/env python3
"""Request framing the front refuses before routing (docs/SECURITY.md findings 1-5): an obs-fold
continuation line (libh2o 2.2.5 keeps it as a header with an empty name, which the proxy would forward
as `: <text>`); Host, Content-Length or Transfer-Encoding twice, and Content-Length beside
Transfer-Encoding (libh2o hides these from handlers: the front re-reads the request head); TRACE/TRACK.
Signed in, so only the framing check stands between the request and the echo upstream; nothing may
reach it, and the connection closes after a 400."""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webtest import StandinAuth, Upstream, gui_root, web_config  # noqa: E402
from xt_testlib import Proc, TempDir, bin_path, http_request, port_block, wait_until  # noqa: E402

P = port_block("web")
WEB, AUTH, UP, NATS, NATS_HTTP = P[0], P[1], P[2], P[3], P[4]
tmp = TempDir("xt-webframing-")
auth = StandinAuth(AUTH, f"http://auth.xtask.test:{WEB}/").start()
up = Upstream(UP).start()
cfg = web_config(os.path.join(tmp.path, "web.yaml"), listen=f"127.0.0.1:{WEB}", auth_port=AUTH, upstream_port=UP,
                 nats_port=NATS, nats_http_port=NATS_HTTP, gui_root=gui_root(), static_root=tmp.path,
                 portal_url=f"http://auth.xtask.test:{WEB}/")
web = Proc([bin_path("xtask-web"), "--config", cfg])
web.wait_output(r"ready", 10)
CK = auth.login("developer").encode()
failures = 0


def raw(data):
    """Send bytes; return everything the front answers until it closes (or 3 s pass)."""
    s = socket.create_connection(("127.0.0.1", WEB), timeout=3)
    out = b""
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        out += b"<still open>"
    finally:
        s.close()
    return out


def case(name, data, status):
    global failures
    up.seen.clear()
    r = raw(data)
    ok = r.startswith(f"HTTP/1.1 {status} ".encode()) and not up.seen and b"<still open>" not in r
    if not ok:
        failures += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {r[:60]!r} upstream={len(up.seen)}", flush=True)


H = b"Host: xtask.test\r\nCookie: " + CK + b"\r\n"
# the control: the same request without the trick reaches the upstream
st, _, body = http_request(f"http://127.0.0.1:{WEB}/app/x", headers={"Host": "xtask.test", "Cookie": CK.decode()})
assert st == 200 and b'"path": "/app/x"' in body, (st, body)
case("obs-fold (SP)", b"GET /app/x HTTP/1.1\r\n" + H + b"X-A: b\r\n Remote-User: admin\r\n\r\n", 400)
case("obs-fold (HTAB)", b"GET /app/x HTTP/1.1\r\n" + H + b"X-A: b\r\n\tRemote-User: admin\r\n\r\n", 400)
case("obs-fold on a public route", b"GET /health HTTP/1.1\r\nHost: xtask.test\r\nX-A: b\r\n x\r\n\r\n", 400)
case("two Host headers", b"GET /app/x HTTP/1.1\r\nHost: xtask.test\r\nCookie: " + CK + b"\r\nHost: auth.xtask.test\r\n\r\n", 400)
case("two Host headers, same value, other case", b"GET /app/x HTTP/1.1\r\n" + H + b"HOST: xtask.test\r\n\r\n", 400)
case("two Content-Length values", b"POST /app/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello!!",
     400)
case("Content-Length twice, same value", b"POST /app/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\ncontent-length: 5\r\n\r\nhello",
     400)
case("Content-Length beside Transfer-Encoding",
     b"POST /app/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
case("Transfer-Encoding beside Content-Length (TE first)",
     b"POST /app/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400)
case("Transfer-Encoding twice",
     b"POST /app/x HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
case("two Host headers on a public route", b"GET /health HTTP/1.1\r\nHost: xtask.test\r\nHost: other.test\r\n\r\n", 400)
case("TRACE", b"TRACE /app/x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405)
case("TRACK", b"TRACK /app/x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", 405)
# pipelined after a good request (/health: 503 here, no NATS): the good one is answered, the folded one refused, then close
up.seen.clear()
r = raw(b"GET /health HTTP/1.1\r\nHost: xtask.test\r\n\r\nGET /app/x HTTP/1.1\r\n" + H + b"X-A: b\r\n Remote-User: admin\r\n\r\n")
ok = r.count(b"HTTP/1.1 ") == 2 and r.rindex(b"HTTP/1.1 400 ") > 0 and not up.seen and b"<still open>" not in r
failures += not ok
print(f"{'ok  ' if ok else 'FAIL'} pipelined: {r.count(b'HTTP/1.1 ')} answers, upstream={len(up.seen)}", flush=True)
# the controls: one Content-Length, or chunked alone, reach the upstream with the body intact
for name, req, want in [("one Content-Length", b"Content-Length: 5\r\n\r\nhello", "hello"),
                        ("chunked", b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello")]:
    up.seen.clear()
    r = raw(b"POST /app/x HTTP/1.1\r\n" + H + b"Connection: close\r\n" + req)
    ok = r.startswith(b"HTTP/1.1 200 ") and len(up.seen) == 1 and want in repr(up.seen)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} control, {name}: {r[:40]!r} upstream={up.seen!r:.120}", flush=True)
# the second request on a kept-alive connection is checked against its own head
up.seen.clear()
r = raw(b"GET /health HTTP/1.1\r\nHost: xtask.test\r\n\r\nGET /app/x HTTP/1.1\r\n" + H + b"Host: auth.xtask.test\r\n\r\n")
ok = r.count(b"HTTP/1.1 ") == 2 and r.rindex(b"HTTP/1.1 400 ") > 0 and not up.seen and b"<still open>" not in r
failures += not ok
print(f"{'ok  ' if ok else 'FAIL'} pipelined duplicate Host: {r.count(b'HTTP/1.1 ')} answers, upstream={len(up.seen)}", flush=True)
# a request with a body ends the connection (defence in depth: a body's framing is where parsers
# part): the bytes after the body are never read as a request, even a well-formed one
up.seen.clear()
r = raw(b"POST /app/x HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello"
        b"GET /app/smuggled HTTP/1.1\r\n" + H + b"\r\n")
ok = r.count(b"HTTP/1.1 ") == 1 and b"<still open>" not in r and len(up.seen) == 1 and "smuggled" not in repr(up.seen)
failures += not ok
print(f"{'ok  ' if ok else 'FAIL'} close after a body: {r.count(b'HTTP/1.1 ')} answers, upstream={len(up.seen)}", flush=True)
# without a body the connection stays open: a second request on it is answered too
s2 = socket.create_connection(("127.0.0.1", WEB), timeout=3)
got = b""
try:
    for _ in range(2):
        s2.sendall(b"GET /health HTTP/1.1\r\nHost: xtask.test\r\n\r\n")
        want = got.count(b"HTTP/1.1 ") + 1
        while got.count(b"HTTP/1.1 ") < want or not got.endswith(b"}"):
            b_ = s2.recv(65536)
            if not b_:
                break
            got += b_
except OSError:
    pass
finally:
    s2.close()
ok = got.count(b"HTTP/1.1 ") == 2
failures += not ok
print(f"{'ok  ' if ok else 'FAIL'} keep-alive without a body: {got.count(b'HTTP/1.1 ')} answers on one connection", flush=True)
assert web.running()
web.kill()
auth.stop()
up.stop()
tmp.cleanup()
sys.exit(1 if failures else 0)
