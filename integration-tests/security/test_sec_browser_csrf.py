#!/usr/bin/env python3
"""Security: cross-site requests from a real browser (Debian's chromium through playwright-core).

A signed-in user's browser visits pages of two other loopback origins: a foreign site
(http://evil.test:<port>) and a sibling subdomain (http://evil.xtask.test:<port>, the same *site*
to the cookie, so SameSite=Lax lets the cookie go). Each page makes the browser POST to our front:
forms in application/x-www-form-urlencoded, multipart/form-data and text/plain (a JSON-looking body)
to /api/v1/tasks, a form to /api/logout, and fetch(..., {mode: 'no-cors', credentials: 'include'})
to both. Checked: the front refused every one (its log, 6 per page), no task ran (the audit stream
holds only the control task the user's own page started), the session is still valid."""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

os.environ.setdefault("XT_PORT_OFFSET", "860")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "coordinator"))
from seclib import APP, Runner, Stack  # noqa: E402
from coordlib import Node  # noqa: E402
import natsproto  # noqa: E402
from xt_testlib import BIN_DIR, port_block, wait_until  # noqa: E402

if not os.path.exists("/usr/bin/chromium") or not shutil.which("npm") or not shutil.which("node"):
    print("FAIL: this test needs /usr/bin/chromium, node and npm (scripts/deps.sh test installs them)")
    sys.exit(1)

RULES = """api:
  rules:
    - groups: [developers]
      verbs: [task.run]
      tasks: [noop]
"""
S = Stack("xt-seccsrf-", web_extra=RULES)
T = Runner(S)
NATS_URL = f"nats://127.0.0.1:{S.NATS}"
NODE_ID = "csrf-n1"
NODE = Node(S.tmp.path, NODE_ID, NATS_URL, """
version: 1
node: { region: sec1 }
nats: { heartbeat: 1s, node_ttl: 3s }
tasks:
  noop: ["true"]
""", region="sec1").start()
C = natsproto.Client(NATS_URL)
EVIL = port_block("web", 2)[0]
APP_URL = f"http://{APP}:{S.WEB}"

# playwright-core from the web browser test's lockfile, installed next to the build
work = os.path.join(os.path.dirname(BIN_DIR), "security-browser-csrf")
os.makedirs(work, exist_ok=True)
web_browser = os.path.join(os.path.dirname(HERE), "web", "browser")
for f in ("package.json", "package-lock.json"):
    shutil.copy(os.path.join(web_browser, f), os.path.join(work, f))
shutil.copy(os.path.join(HERE, "browser", "csrf.mjs"), os.path.join(work, "csrf.mjs"))
if not os.path.exists(os.path.join(work, "node_modules", "playwright-core", "package.json")):
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=work, check=True, timeout=300)

ATTACK = """<!doctype html><html><head><title>attack</title></head><body>
<script>window.loaded = 0;</script>
<iframe name="s1" onload="window.loaded++"></iframe><iframe name="s2" onload="window.loaded++"></iframe>
<iframe name="s3" onload="window.loaded++"></iframe><iframe name="s4" onload="window.loaded++"></iframe>
<form id="f1" method="POST" action="@APP@/api/v1/tasks" target="s1">
  <input name="node" value="@NODE@"><input name="task" value="noop"></form>
<form id="f2" method="POST" action="@APP@/api/v1/tasks" enctype="multipart/form-data" target="s2">
  <input name="node" value="@NODE@"><input name="task" value="noop"></form>
<form id="f3" method="POST" action="@APP@/api/v1/tasks" enctype="text/plain" target="s3">
  <input name='{"node":"@NODE@","task":"noop","pad":"' value='"}'></form>
<form id="f4" method="POST" action="@APP@/api/logout" target="s4"><input name="rd" value="@APP@/"></form>
<script>
(async () => {
  window.loaded = 0; // the empty frames' first load is not an answer
  for (const f of ['f1', 'f2', 'f3', 'f4']) document.getElementById(f).submit();
  const opts = { method: 'POST', mode: 'no-cors', credentials: 'include' };
  await fetch('@APP@/api/v1/tasks', { ...opts, headers: { 'Content-Type': 'text/plain' },
                                      body: JSON.stringify({ node: '@NODE@', task: 'noop' }) }).catch(() => {});
  await fetch('@APP@/api/logout', { ...opts, body: '{}' }).catch(() => {});
  document.title = 'done';
})();
</script></body></html>
""".replace("@APP@", APP_URL).replace("@NODE@", NODE_ID)


class Evil(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = ATTACK.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


evil = http.server.ThreadingHTTPServer(("127.0.0.1", EVIL), Evil)
threading.Thread(target=evil.serve_forever, daemon=True).start()


def task_records():
    """Task records of the audit stream (the coordinator writes one per task it runs)."""
    try:
        info = C.js_api("STREAM.INFO.xtask-audit")
    except Exception:  # noqa: BLE001 - no stream yet: no task ran
        return []
    out = []
    for seq in range(max(1, info["state"]["first_seq"]), info["state"]["last_seq"] + 1):
        r = C.js_api("STREAM.MSG.GET.xtask-audit", {"seq": seq})
        if "message" in r and r["message"]["subject"].startswith("xtask.audit.task."):
            import base64
            out.append(json.loads(base64.b64decode(r["message"]["data"])))
    return out


def refused():
    return len(re.findall(r"refused a cross-site POST (/api/v1/tasks|/api/logout)", S.web.output()))


def test_cross_site_pages_change_nothing():
    ck, set_cookie = S.login()
    name, value = ck.split("=", 1)
    m = re.search(r"SameSite=(\w+)", set_cookie, re.I)
    same_site = (m.group(1).capitalize() if m else "Lax")
    assert task_records() == [], "a task ran before the test"
    before = refused()
    attackers = [f"http://evil.test:{EVIL}/attack.html", f"http://evil.xtask.test:{EVIL}/attack.html"]
    env = {"CSRF_APP": APP_URL, "CSRF_ATTACKERS": json.dumps(attackers), "CSRF_NODE": NODE_ID,
           "CSRF_COOKIE": json.dumps({"name": name, "value": value, "domain": ".xtask.test", "sameSite": same_site}),
           "CSRF_RESOLVER_RULES": "MAP *.xtask.test 127.0.0.1, MAP evil.test 127.0.0.1"}
    r = subprocess.run(["node", "csrf.mjs"], cwd=work, env={**os.environ, **env}, timeout=120, capture_output=True,
                       text=True)
    print(r.stdout, r.stderr, flush=True)
    assert r.returncode == 0, r.stderr[-2000:]
    control = re.search(r'CONTROL "([^"]+)"', r.stdout).group(1)
    # every cross-site POST reached the front and was refused there (6 per page)
    wait_until(lambda: refused() - before >= 12, 10, 0.1, "12 cross-site refusals in the front's log")
    assert refused() - before == 12, refused() - before
    # no task ran but the control one (the coordinator's audit records). The attacks' POSTs were all
    # refused by the front (exactly 12, counted above), so none reached the API that starts tasks:
    # nothing is left to wait for once the control's record is in
    wait_until(lambda: len(task_records()) >= 1, 10, 0.1, "the control task's audit record")
    recs = task_records()
    assert [x.get("id") for x in recs] == [control], recs
    # the session is still valid (the cross-site logouts ended nothing)
    assert S.req("GET", "/app/x", headers={"Cookie": ck})[0] == 200


try:
    T.case(test_cross_site_pages_change_nothing)
finally:
    evil.shutdown()
    NODE.stop()
T.finish()
