#!/usr/bin/env python3
"""Security: what the front does when the auth service misbehaves (a fake auth of ours answering
garbage, injecting headers, hanging, closing, answering twice), when the real auth is down, and what
HTTP/2 exposes (TLS + ALPN only). Fail closed everywhere: 503, never 200."""
import os
import socket
import ssl
import struct
import sys
import time

os.environ.setdefault("XT_PORT_OFFSET", "560")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seclib import Runner, Stack, first_status, head_of, identity_values  # noqa: E402

S = Stack("xt-seca-", tls=True)
T = Runner(S)
DEV, _ = S.login()
FAKE_REQ = (b"GET /app/x HTTP/1.1\r\nHost: fake.xtask.test\r\nRemote-User: spoof\r\nremote_groups: admins\r\n"
            b"Accept: application/json\r\nConnection: close\r\n\r\n")


def via_fake(answer, timeout=3.0):
    S.fake.mode = "answer"
    S.fake.answer = answer
    S.up.clear()
    return S.raw(FAKE_REQ, timeout=timeout)


def test_fake_2xx_without_identity_passes_without_identity():
    r = via_fake(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert first_status(r) == 200, r[:200]
    assert len(S.up.seen) == 1 and identity_values(S.up.seen[0]["head"]) == [], S.up.seen[0]["head"]


def test_fake_2xx_extra_headers_never_forwarded():
    r = via_fake(b"HTTP/1.1 200 OK\r\nRemote-User: alice\r\nX-Evil: 1\r\nSet-Cookie: evil=1\r\n"
                 b"Remote-Groups: g1\r\nRemote-Groups: g2\r\nLocation: https://evil.example/\r\n"
                 b"Content-Length: 0\r\n\r\n")
    assert first_status(r) == 200, r[:200]
    h = head_of(r).lower()
    assert b"x-evil" not in h and b"evil=1" not in h and b"evil.example" not in h, h
    head = S.up.seen[0]["head"]
    assert identity_values(head) == [("Remote-User", "alice"), ("Remote-Groups", "g1")], head
    assert "x-evil" not in head.lower() and "evil=1" not in head, head
    # an obs-fold continuation in the auth answer never becomes a header of its own
    r = via_fake(b"HTTP/1.1 200 OK\r\nRemote-User: alice\r\n Remote-Groups: admins\r\nContent-Length: 0\r\n\r\n")
    if first_status(r) == 200:
        head = S.up.seen[0]["head"]
        assert identity_values(head) == [("Remote-User", "alice")], head
        assert "admins" not in head, head
    else:
        assert first_status(r) == 503 and S.up.seen == []


def test_fake_malformed_answers_fail_closed():
    bad = [b"HTTP/1.1 200 OK\r\nRemote-User: ad\rmin\r\nContent-Length: 0\r\n\r\n",
           b"HTTP/9.9 200 OK\r\nRemote-User: admin\r\nContent-Length: 0\r\n\r\n",
           b"HTTP/1.1 2000 OK\r\nRemote-User: admin\r\nContent-Length: 0\r\n\r\n",
           b"HTTP/1.1 200 OK\r\nRemote-User: admin\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           b"HTTP/1.1 200 OK\r\nRemote-User: admin\r\nContent-Length: 10\r\n\r\nab",
           b"HTTP/1.1 200 OK\r\nRemote-User: admin\r\n",
           b"\x16\x03\x01\x00\x05hello",
           b"HTTP/1.1 200 OK\r\nRemote-User: admin\r\nContent-Length: 0\r\n" + b"X-Pad: p\r\n" * 200 + b"\r\n"]
    for ans in bad:
        t0 = time.monotonic()
        r = via_fake(ans)
        assert first_status(r) == 503, (ans[:60], r[:200])
        assert time.monotonic() - t0 < 2.5
        assert S.up.seen == [], (ans[:60], S.up.seen)
        assert b"admin" not in r
    for mode in ["close", "garbage", "hang"]:
        S.fake.mode = mode
        S.up.clear()
        t0 = time.monotonic()
        r = S.raw(FAKE_REQ, timeout=4)
        assert first_status(r) == 503 and S.up.seen == [], (mode, r[:200])
        assert time.monotonic() - t0 < 2.5, (mode, time.monotonic() - t0)  # forward_auth.timeout is 1s
    S.fake.mode = "answer"


def test_fake_non2xx_verbatim_but_filtered():
    r = via_fake(b"HTTP/1.1 302 Found\r\nLocation: https://auth.xtask.test/\r\nSet-Cookie: f=1\r\nX-Evil: 1\r\n"
                 b"Remote-User: admin\r\nContent-Length: 3\r\n\r\nabc")
    h = head_of(r).lower()
    assert first_status(r) == 302 and b"location: https://auth.xtask.test/" in h and b"set-cookie: f=1" in h, r
    assert b"x-evil" not in h and b"remote-user" not in h and r.endswith(b"abc"), r
    assert S.up.seen == []
    for st in [b"401 Unauthorized", b"403 Forbidden", b"500 Oops", b"404 Not Found", b"301 Moved"]:
        r = via_fake(b"HTTP/1.1 " + st + b"\r\nContent-Length: 0\r\n\r\n")
        assert first_status(r) == int(st[:3]) and S.up.seen == [], (st, r[:200])


def test_fake_answering_twice_cannot_poison_the_pool():
    # an auth connection with bytes left over (a second answer) must not serve the next request
    via_fake(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
             b"HTTP/1.1 200 OK\r\nRemote-User: admin\r\nContent-Length: 0\r\n\r\n")
    for _ in range(3):
        r = via_fake(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        assert first_status(r) == 401 and S.up.seen == [], r[:200]


# --- HTTP/2: only through TLS + ALPN ------------------------------------------------------------------

def h2_literal(name, value):
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v  # literal without indexing, new name


def h2_frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def h2_get(path, extra=()):
    """One HTTP/2 GET over TLS; returns the first byte of the response header block (0x88 = :status 200)
    or None if the stream was refused/reset."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", S.TLS), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname="app.xtask.test") as s:
            assert s.selected_alpn_protocol() == "h2"
            block = b"".join(h2_literal(k, v) for k, v in [(":method", "GET"), (":scheme", "https"),
                                                          (":authority", "app.xtask.test"), (":path", path),
                                                          ("accept", "application/json"), *extra])
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b"") + h2_frame(1, 5, 1, block))
            buf = b""
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                while len(buf) >= 9:
                    ln = struct.unpack(">I", b"\x00" + buf[:3])[0]
                    if len(buf) < 9 + ln:
                        break
                    ftype, stream, payload = buf[3], struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF, buf[9:9 + ln]
                    buf = buf[9 + ln:]
                    if ftype == 1 and stream == 1:
                        return payload[0]
                    if ftype in (3, 7):  # RST_STREAM, GOAWAY
                        return None
                d = s.recv(65536)
                if not d:
                    return None
                buf += d
    return None


def test_http2_only_via_tls_and_still_guarded():
    # ALPN offers h2 on the TLS listener (documented: no Rapid Reset mitigation in libh2o 2.2.5)
    S.up.clear()
    first = h2_get("/app/x")
    assert first is not None and first != 0x88, first  # an answer, and not :status 200
    first = h2_get("/app/x", [("remote-user", "admin"), ("remote_user", "admin")])
    assert first is not None and first != 0x88, first
    first = h2_get("/health/../app/x")
    assert first != 0x88, first
    assert S.up.seen == [], [r["head"] for r in S.up.seen]
    # with a session, spoofed identity headers are replaced over HTTP/2 too
    first = h2_get("/app/x", [("cookie", DEV), ("remote-user", "admin"), ("remote_user", "admin")])
    assert first == 0x88, first
    head = S.up.seen[-1]["head"]
    assert dict(identity_values(head)).get("Remote-User") == "developer" and "admin" not in head, head
    # no h2 on the plain listener (no prior knowledge)
    r = S.raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0, b""))
    assert not r.startswith(b"\x00"), r[:20]


def test_real_auth_down_then_slow_is_503():
    S.auth.kill()
    S.auth.running = lambda: True  # killed on purpose: the runner's "a service died" check is about web
    for path in [b"/app/x", b"/api/v1/nodes", b"/nats/varz", b"/web/"]:
        S.up.clear()
        r = S.raw(b"GET " + path + b" HTTP/1.1\r\nHost: app.xtask.test\r\nCookie: " + DEV.encode() +
                  b"\r\nRemote-User: admin\r\nConnection: close\r\n\r\n")
        assert first_status(r) == 503 and S.up.seen == [], (path, r[:200])
        assert b"server_id" not in r
    # public routes still answer
    assert first_status(S.raw(b"GET /health HTTP/1.1\r\nHost: app.xtask.test\r\nConnection: close\r\n\r\n")) == 200
    # the auth port taken by something that accepts and never answers: 503 after the timeout
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", S.AUTH))
    ls.listen(16)
    try:
        t0 = time.monotonic()
        r = S.raw(b"GET /app/x HTTP/1.1\r\nHost: app.xtask.test\r\nCookie: " + DEV.encode() +
                  b"\r\nConnection: close\r\n\r\n", timeout=4)
        assert first_status(r) == 503 and S.up.seen == [], r[:200]
        assert time.monotonic() - t0 < 2.5
    finally:
        ls.close()
    assert S.web.running()


for t in [test_fake_2xx_without_identity_passes_without_identity, test_fake_2xx_extra_headers_never_forwarded,
          test_fake_malformed_answers_fail_closed, test_fake_non2xx_verbatim_but_filtered,
          test_fake_answering_twice_cannot_poison_the_pool, test_http2_only_via_tls_and_still_guarded,
          test_real_auth_down_then_slow_is_503]:
    T.case(t)
T.finish()
