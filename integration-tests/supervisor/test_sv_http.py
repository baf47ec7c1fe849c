"""Supervisor: the status_http endpoints (/healthz, /status.json, /metrics) and their limits."""
import json
import os
import select
import socket
import threading
import time

from xt_testlib import http_request, port_block, wait_until
from svlib import Sup, fix, run_tests

PORTS = port_block("supervisor")


def test_status_http(tmp):
    port = PORTS[0]
    flag = os.path.join(tmp.path, "flag")
    sup = Sup(tmp, f"""
  core:
    command: {fix("forever")}
    essential: true
    ready: {{ exec: ["test", "-e", "{flag}"], interval: 20ms }}
  extra:
    command: {fix("forever")}
""", http=f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    try:
        sup.start()
        sup.wait_state("extra", "READY")
        st, _, body = http_request(base + "/healthz")
        assert st == 503 and body == b"not ready\n", (st, body)
        open(flag, "w").close()
        wait_until(lambda: http_request(base + "/healthz")[0] == 200, 5, what="healthz 200")
        st, hd, body = http_request(base + "/status.json")
        assert st == 200 and hd["content-type"] == "application/json"
        doc = json.loads(body)
        assert doc["supervisor"]["state"] == "running" and doc["supervisor"]["pid"] == sup.pid
        core = [s for s in doc["services"] if s["name"] == "core"][0]
        assert core["ready"] is True and core["essential"] is True and core["probe"]["kind"] == "exec"
        st, _, body = http_request(base + "/metrics")
        text = body.decode()
        assert st == 200
        assert 'xtask_supervisor_service_state{service="core",state="READY"} 1' in text
        assert 'xtask_supervisor_service_restarts_total{service="extra"} 0' in text
        assert 'xtask_supervisor_probe_latency_seconds{service="core"}' in text
        assert 'xtask_supervisor_dropped_lines_total{service="core"} 0' in text
        assert http_request(base + "/nope")[0] == 404
        assert http_request(base + "/healthz", method="POST", body="x")[0] == 405
        st, _, body = http_request(base + "/healthz", method="HEAD")
        assert st == 200 and body == b""
        # an oversized request is refused, and the server goes on
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n")
            data = s.recv(100)
            assert data.startswith(b"HTTP/1.1 431"), data
        assert http_request(base + "/healthz")[0] == 200
        # what a web page could send is refused: a rebound DNS name (evil.example -> 127.0.0.1), a
        # cross-origin fetch, a cross-site navigation; health checkers (IP literals, localhost,
        # Fly's .internal names) pass
        def raw(head):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(head.encode())
                return s.recv(4096)
        for host, code in ((f"evil.example:{port}", 403), ("EVIL.example", 403), (f"127.0.0.1:{port}", 200),
                           (f"[::1]:{port}", 200), ("localhost", 200), (f"LocalHost:{port}", 200),
                           ("app.localhost", 200), ("xtask.internal:9100", 200), ("10.0.0.7", 200),
                           ("127.0.0.1.evil.example", 403), ("localhost.evil.example", 403)):
            data = raw(f"GET /status.json HTTP/1.1\r\nHost: {host}\r\n\r\n")
            assert data.startswith(f"HTTP/1.1 {code}".encode()), (host, data[:200])
        data = raw("GET /status.json HTTP/1.1\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 403") and b"no Host" in data, data[:200]
        data = raw(f"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\nhost: evil.example\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 403"), data[:200]
        for extra in ("Origin: http://127.0.0.1:1234", "origin: null", "Sec-Fetch-Site: cross-site",
                      "Sec-Fetch-Site: same-site"):
            data = raw(f"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n\r\n")
            assert data.startswith(b"HTTP/1.1 403"), (extra, data[:200])
        data = raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Fetch-Site: none\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200"), data[:200]
        # the essential service going down turns /healthz red again
        sup.cli("stop", "core")
        wait_until(lambda: http_request(base + "/healthz")[0] == 503, 5, what="healthz 503")
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_slow_clients(tmp):
    """More slow clients than slots (each sends one byte every 2 s, as in issue 15) never turn
    /healthz away, and each is closed by the whole-request deadline though it never goes silent."""
    port = PORTS[1]
    sup = Sup(tmp, f"""
  core:
    command: {fix("forever")}
    essential: true
""", http=f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    slow = []
    try:
        sup.start()
        wait_until(lambda: http_request(base + "/healthz")[0] == 200, 10, what="healthz 200")
        # a full table of silent clients: the next /healthz evicts one and is answered at once
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(16)]
        try:
            st = http_request(base + "/healthz", timeout=1.5)[0]
            assert st == 200, st
        finally:
            for s in idle:
                s.close()
        closed = {}
        stop = threading.Event()
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.setblocking(False)
            slow.append((s, time.monotonic()))

        def trickle():
            """One byte every 2 s on each open slow socket; note when the server closes it."""
            next_send = time.monotonic()
            while not stop.is_set():
                if time.monotonic() >= next_send:
                    for s, _ in slow:
                        if s.fileno() not in closed:
                            try:
                                s.send(b"G")
                            except OSError:
                                closed[s.fileno()] = time.monotonic()
                    next_send += 2.0
                open_ = [s for s, _ in slow if s.fileno() not in closed]
                if not open_:
                    return
                r, _, _ = select.select(open_, [], [], 0.1)
                for s in r:
                    try:
                        data = s.recv(100)
                    except OSError:
                        data = b""
                    if not data:
                        closed[s.fileno()] = time.monotonic()

        th = threading.Thread(target=trickle)
        th.start()
        answers = []
        t_end = time.monotonic() + 6.5
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            st = http_request(base + "/healthz", timeout=2)[0]
            answers.append((st, time.monotonic() - t0))
        stop.set()
        th.join()
        bad = [a for a in answers if a[0] != 200]
        assert answers and not bad, bad[:5]
        # every slow client was closed (evicted or past its deadline), none held on for 6 s
        late = [round(closed.get(s.fileno(), 99) - t, 1) for s, t in slow
                if closed.get(s.fileno(), 99) - t > 4.5]
        assert not late, late
        assert sup.stop() == 0
    finally:
        for s, _ in slow:
            s.close()
        sup.kill()


if __name__ == "__main__":
    run_tests([test_status_http, test_slow_clients])
