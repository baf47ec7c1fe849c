#!/usr/bin/env python3
"""xtask-web starts with host names that collide: the shipped configs/web.yaml with XTASK_DOMAIN=localhost
("localhost" then appears twice in the main host: once through ${XTASK_DOMAIN}, once literally) starts
and routes both hosts; a name written twice by hand is refused at start with file:line:col and exit 2,
never a crash."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webtest import gui_root  # noqa: E402
from xt_testlib import Proc, TempDir, bin_path, http_request, port_block, wait_until  # noqa: E402

P = port_block("web")
WEB, AUTH, NATS, SUP = P[0], P[1], P[2], P[3]
SRC = os.environ.get("XT_SOURCE_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONF = os.path.join(SRC, "configs", "web.yaml")
tmp = TempDir("xt-webhosts-")
env = {"XTASK_DOMAIN": "localhost", "XTASK_WEB_GUI": gui_root(), "XTASK_AUTH_URL": f"http://127.0.0.1:{AUTH}",
       "XTASK_PORTAL_URL": "http://auth.localhost/", "XTASK_SUPERVISOR_STATUS": f"http://127.0.0.1:{SUP}/status.json",
       "XTASK_LOG_LEVEL": "info", "FLY_REGION": "local"}
failures = 0


def case(fn):
    global failures
    try:
        fn()
        print(f"ok   {fn.__name__}", flush=True)
    except Exception as e:  # noqa: BLE001 - report and go on
        failures += 1
        print(f"FAIL {fn.__name__}: {e!r}", flush=True)


def shipped_config_with_domain_localhost_starts():
    chk = Proc([bin_path("xtask-web"), "--config", CONF, "--check"], env=env)
    assert chk.wait(10) == 0, chk.output()
    web = Proc([bin_path("xtask-web"), "--config", CONF, "--listen", f"127.0.0.1:{WEB}", "--nats",
                f"nats://127.0.0.1:{NATS}"], env=env)
    try:
        web.wait_output(r"ready", 10)
        # /health is public on the main host; NATS is not running here, so 503 (the front answers)
        for host in ("localhost", f"localhost:{WEB}", "xtask-local.localhost", "127.0.0.1"):
            st, _, body = http_request(f"http://127.0.0.1:{WEB}/health", headers={"Host": host})
            assert st == 503 and b'"nats":false' in body, (host, st, body)
        # the auth portal host is the other host: its route proxies to the (absent) auth service
        st, _, _ = http_request(f"http://127.0.0.1:{WEB}/health", headers={"Host": "auth.localhost"})
        assert st == 502, st
        # the main host's protected routes still need auth (auth is down: 503, never open)
        st, _, _ = http_request(f"http://127.0.0.1:{WEB}/api/v1/nodes", headers={"Host": "localhost"})
        assert st == 503, st
        assert web.running()
    finally:
        web.kill()


def literal_duplicate_refused_at_start():
    cfg = tmp.write("dup.yaml", f"""version: 1
listen: [{{ address: "127.0.0.1:{WEB}" }}]
hosts:
  - names: [app.test, localhost]
    routes: [{{ path: /health, handle: health, public: true }}]
  - names:
      - other.test
      - LOCALHOST
    routes: [{{ path: /health, handle: health, public: true }}]
""")
    for extra in (["--check"], []):
        p = Proc([bin_path("xtask-web"), "--config", cfg] + extra)
        rc = p.wait(10)
        out = p.output()
        assert rc == 2, (extra, rc, out)
        assert f"{cfg}:8:9: duplicate host 'localhost' (first at line 4, in another host)" in out, out
        assert "Assertion" not in out and "Segmentation" not in out, out


case(shipped_config_with_domain_localhost_starts)
case(literal_duplicate_refused_at_start)
tmp.cleanup()
sys.exit(1 if failures else 0)
