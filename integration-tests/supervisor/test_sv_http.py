"""Supervisor: the status_http endpoints (/healthz, /status.json, /metrics) and their limits."""
import json
import os
import socket

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
        # the essential service going down turns /healthz red again
        sup.cli("stop", "core")
        wait_until(lambda: http_request(base + "/healthz")[0] == 503, 5, what="healthz 503")
        assert sup.stop() == 0
    finally:
        sup.kill()


if __name__ == "__main__":
    run_tests([test_status_http])
