#!/usr/bin/env python3
"""The open GUI across real restarts: the whole stack (configs/services.yaml under xtask-supervisor),
Debian's chromium driven by playwright-core (browser/restarts.mjs).

- `xtask-supervisor restart web`: the page reconnects by itself, says live again, shows the new web
  pid, and a task run afterwards shows its output;
- `restart auth`: the next request through forward-auth works or says signed out;
- `stop nats`: every page shows the outage banner; `start nats`: the banner goes, runs work again.
Figures (`figure: NAME MS`) are printed for bench/web/gui.sh. Screenshots in integration-tests/artifacts."""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "stack"))
from stack import DEV_PASSWORD, DEV_USER, Stack  # noqa: E402
from xt_testlib import ARTIFACTS, BIN_DIR, port_block  # noqa: E402

if not os.path.exists("/usr/bin/chromium") or not shutil.which("npm") or not shutil.which("node"):
    print("FAIL: the browser test needs /usr/bin/chromium, node and npm (scripts/deps.sh test installs them)")
    sys.exit(1)

work = os.path.join(os.path.dirname(BIN_DIR), "web-browser-e2e")
os.makedirs(work, exist_ok=True)
for f in ("package.json", "package-lock.json", "restarts.mjs"):
    shutil.copy(os.path.join(HERE, "browser", f), os.path.join(work, f))
if not all(os.path.exists(os.path.join(work, "node_modules", m, "package.json")) for m in ("playwright-core", "axe-core")):
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True, timeout=300)
os.makedirs(ARTIFACTS, exist_ok=True)
shot = os.path.join(ARTIFACTS, "web-restarts.png")

rc = 1
with Stack(port_block("web"), region="local", name="webgui") as s:
    s.wait_healthy(60)
    cookie = s.login()
    env = {**s.env, "E2E_APP_URL": f"http://xtask.localhost:{s.http_port}/web/", "E2E_COOKIE": cookie,
           "E2E_NODE": "local-node", "E2E_USER": DEV_USER, "E2E_PASS": DEV_PASSWORD, "E2E_SUPERVISOR": os.path.join(BIN_DIR, "xtask-supervisor"),
           "E2E_SCREENSHOT": shot, "E2E_ROUNDS": os.environ.get("E2E_ROUNDS", "1")}
    r = subprocess.run(["node", "restarts.mjs"], cwd=work, env=env, timeout=240)
    rc = r.returncode
    if rc != 0:
        print(s.proc.output()[-6000:])
sys.exit(rc)
