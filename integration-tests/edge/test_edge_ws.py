"""The leaf link over WebSocket through the front, for networks that block 7422: the hub region's
nats-server has a `websocket {}` listener on loopback, the front (xtask-web) passes the upgrade of
/leafnode (and nothing else) to it (XTASK_WEB_LEAF_WS), and an edge machine joins with
`--hub REGION=ws://FRONT` in its bundle: with `--websocket`, and by itself when no tls:// hub answers.
It runs a task; its record names the region; revoking it drops the link. Without credentials that
path gives nothing: a plain request is refused by the front, a bare WebSocket is closed by the hub."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgelib import Hub, tid  # noqa: E402
from coordlib import run_tests  # noqa: E402
from xt_testlib import SOURCE_DIR, Proc, bin_path, http_request, wait_until  # noqa: E402

HUB = Hub(n=1, replicas=1, leaf_ws=True)
S = {}


def front_env():
    bin_dir = os.path.dirname(bin_path("xtask-web"))
    gui = os.path.join(os.path.dirname(bin_dir), "share", "xtask-web", "gui")
    return {"XTASK_DOMAIN": "localhost", "XTASK_WEB_GUI": gui, "XTASK_AUTH_URL": f"http://127.0.0.1:{HUB.bus.take_port()}",
            "XTASK_PORTAL_URL": "http://auth.localhost/", "FLY_REGION": "local", "XTASK_LOG_LEVEL": "info",
            "XTASK_SUPERVISOR_STATUS": f"http://127.0.0.1:{HUB.bus.take_port()}/status.json",
            "XTASK_WEB_CREDS": HUB.bus.creds("web"),
            "XTASK_WEB_LEAF_WS": f"http://127.0.0.1:{HUB.bus.regions[0].ws_port}"}


def start_front():
    port = HUB.bus.take_port()
    env = dict(os.environ, **front_env())
    p = Proc([bin_path("xtask-web"), "--config", os.path.join(SOURCE_DIR, "configs", "web.yaml"), "--listen",
              f"127.0.0.1:{port}", "--nats", HUB.bus.regions[0].url], env=env)
    S["front"], S["front_port"] = p, port
    p.wait_output(r"ready", 15)
    return port


def ws_hub():
    return f"{HUB.bus.regions[0].name}=ws://127.0.0.1:{S['front_port']}"


def test_front_config_refused():
    """XTASK_WEB_LEAF_WS must name a loopback http:// listener: anything else is a usage error."""
    env = dict(os.environ, **dict(front_env(), XTASK_WEB_LEAF_WS="http://10.1.2.3:8080"))
    p = Proc([bin_path("xtask-web"), "--config", os.path.join(SOURCE_DIR, "configs", "web.yaml"), "--listen",
              f"127.0.0.1:{HUB.bus.take_port()}"], env=env)
    assert p.wait(10) == 2 and "XTASK_WEB_LEAF_WS" in p.output(), p.output()


def test_join_with_websocket():
    start_front()
    _, bundle = HUB.node_add("ws-1", caps=("task",), hubs=[ws_hub()])
    m = HUB.machine("ws")
    S["m"], S["bundle"] = m, bundle
    t0 = time.monotonic()
    m.join(bundle, "--websocket")
    HUB.wait_node("ws-1", 0, m.proc)
    print(f"join over WebSocket -> node answering: {time.monotonic() - t0:.2f}s", flush=True)
    leaf = open(os.path.join(m.dir, "leaf.conf")).read()
    assert f"ws://127.0.0.1:{S['front_port']}" in leaf and "tls://" not in leaf, leaf
    with HUB.web(0) as w:
        t = tid("ws")
        r = w.request("xtask.ws-1.task.run", json.dumps({"args": ["echo", "via-443"], "id": t}).encode(), 10).json()
        assert r.get("exit_code") == 0 and "via-443" in r["output_tail"], r
    wait_until(lambda: (HUB.record("ws-1", 0) or {}).get("region") == HUB.bus.regions[0].name, 10, interval=0.1,
               what="ws-1's record names its region")
    assert HUB.bus.leafs(0) == 1


def test_falls_back_to_websocket():
    """No tls:// hub answers (7422 blocked: here a port nobody listens on): join tries the bundle's
    WebSocket hub by itself."""
    dead = HUB.bus.take_port()
    _, bundle = HUB.node_add("ws-2", caps=("task",), hubs=[f"blocked=tls://127.0.0.1:{dead}", ws_hub()])
    m = HUB.machine("ws2")
    m.join(bundle, "--timeout", "2s")
    HUB.wait_node("ws-2", 0, m.proc, timeout=30)
    assert "trying the bundle's WebSocket hubs" in m.proc.output(), m.proc.output()[-2000:]
    m.kill()


def test_path_useless_without_credentials():
    port = S["front_port"]
    # a plain request: the front answers it, the broker never sees it
    st, _, body = http_request(f"http://127.0.0.1:{port}/leafnode", timeout=5)
    assert st == 400 and b"WebSocket" in body, (st, body)
    # a WebSocket upgrade elsewhere is not passed to the broker (the front's own routes answer)
    def upgrade(path):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        return s
    s = upgrade("/")
    head = s.recv(4096)
    s.close()
    assert not head.startswith(b"HTTP/1.1 101"), head[:200]
    # a bare WebSocket on /leafnode: the hub takes it as a leaf, sends its INFO, and closes it when
    # no credential follows (its auth timeout); nothing else comes through
    s = upgrade("/leafnode")
    data, deadline = b"", time.monotonic() + 15
    s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 101"), data[:300]
    assert time.monotonic() < deadline, "the hub kept an unauthenticated leaf WebSocket open"
    assert b"MSG " not in data and b"+OK" not in data, data[:600]


def test_revoked_over_websocket():
    """Revocation cuts a WebSocket leaf like a 7422 one (the same JWT check inside NATS)."""
    assert HUB.bus.leafs(0) == 1
    t0 = time.monotonic()
    r = HUB.node_revoke("ws-1")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: HUB.bus.leafs(0) == 0, 5, interval=0.05, what="the WebSocket leaf dropped")
    print(f"revocation -> WebSocket leaf gone: {time.monotonic() - t0:.2f}s", flush=True)
    out = lambda: S["m"].proc.output().lower()
    wait_until(lambda: "user authentication revoked" in out() or "authorization violation" in out(), 10,
               what=f"refused on reconnect: {S['m'].proc.output()[-1500:]}")
    assert HUB.bus.leafs(0) == 0
    # joining again over the WebSocket: refused with the cause
    m2 = HUB.machine("ws-again")
    rc, out = m2.join_once(S["bundle"], "--websocket", "--timeout", "10s")
    assert rc == 1 and "refused the node's credential" in out, (rc, out[-2000:])


def test_stop_clean():
    rc = S["m"].stop(10)
    assert rc == 0, (rc, S["m"].proc.output()[-2000:])


def main():
    HUB.start()
    try:
        run_tests([test_front_config_refused, test_join_with_websocket, test_falls_back_to_websocket,
                   test_path_useless_without_credentials, test_revoked_over_websocket, test_stop_clean])
    finally:
        if "front" in S:
            S["front"].kill()
        HUB.stop()


if __name__ == "__main__":
    main()
