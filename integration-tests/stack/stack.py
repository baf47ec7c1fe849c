"""Run the real stack (configs/services.yaml under xtask-supervisor) on private ports for tests.

    with Stack(region="local") as s:      # ports from port_block("stack"), data in a temp dir
        s.wait_healthy()
        cookie = s.login()                 # user `dev` (group developers: one factor)
        s.api("/api/v1/nodes", cookie)

Every port and path goes through the environment variables of configs/services.yaml (docs/STACK.md),
exactly as scripts/up.sh and the container set them; nothing of the product's defaults is used.
"""
import json
import os
import shutil
import signal
import subprocess
import time

from stacklib import api as _api, check, js_api as _js_api, login as _login
from xt_testlib import BIN_DIR, SOURCE_DIR, Proc, TempDir, http_request, wait_until

DEV_USER, DEV_PASSWORD = "dev", "stack-test-password-1"


def tool(name):
    p = os.path.join(BIN_DIR, name)
    check(os.access(p, os.X_OK), f"{p} is not built: the stack tests need every service")
    return p


class Stack:
    """One supervisor running the four services. `ports` is a list of 8 free ports."""

    def __init__(self, ports, region="local", extra_env=None, data_dir=None, config_dir=None, name=None):
        for b in ("xtask-supervisor", "xtask", "xtask-auth", "xtask-web"):
            tool(b)
        self.region = region
        self.name = name or region
        self.tmp = TempDir(prefix=f"xt-stack-{self.name}-")
        self.data = data_dir or os.path.join(self.tmp.path, "data")
        self.run_dir = os.path.join(self.tmp.path, "run")
        os.makedirs(self.data, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        (self.http_port, self.auth_port, self.nats_port, self.nats_http_port, self.cluster_port,
         self.leaf_port, self.status_port, _) = ports[:8]
        self.front = f"http://127.0.0.1:{self.http_port}"
        self.status_url = f"http://127.0.0.1:{self.status_port}"
        gui = os.path.join(os.path.dirname(BIN_DIR), "share", "xtask-web", "gui")
        path = os.pathsep.join([BIN_DIR, os.path.join(SOURCE_DIR, "entrypoint"), os.environ.get("PATH", "")])
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("XTASK_", "NATS_", "FLY_"))}
        self.env.update({
            "PATH": path,
            "XTASK_CONFIG_DIR": config_dir or os.path.join(SOURCE_DIR, "configs"),
            "XTASK_DATA_DIR": self.data,
            "XTASK_RUN_DIR": self.run_dir,
            "XTASK_USER": subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip(),
            "XTASK_BIND": "127.0.0.1",
            "XTASK_HTTP_PORT": str(self.http_port),
            "XTASK_AUTH_PORT": str(self.auth_port),
            "XTASK_NATS_PORT": str(self.nats_port),
            "XTASK_NATS_HTTP_PORT": str(self.nats_http_port),
            "XTASK_NATS_CLUSTER_PORT": str(self.cluster_port),
            "XTASK_NATS_LEAF_PORT": str(self.leaf_port),
            "XTASK_STATUS_ADDR": f"127.0.0.1:{self.status_port}",
            "XTASK_WEB_GUI": gui,
            "XTASK_DOMAIN": "xtask.localhost",
            "XTASK_PORTAL_URL": f"http://auth.xtask.localhost:{self.http_port}/",
            "XTASK_AUTH_ALLOW_HTTP": "true",
            "FLY_REGION": region,
            "XTASK_NODE_ID": f"{region}-node",
            "XTASK_ADMIN_USER": DEV_USER,
            "XTASK_ADMIN_GROUPS": "developers",
            "XTASK_ADMIN_PASSWORD": DEV_PASSWORD,
        })
        self.env.update(extra_env or {})
        self.proc = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self):
        r = subprocess.run(["xtask-setup"], env=self.env, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"xtask-setup: {r.stdout}{r.stderr}")
        # like the entrypoint: the bundle (the bus's seeds) is for xtask-setup only, no service gets it
        env = {k: v for k, v in self.env.items() if k != "XTASK_BUS_BUNDLE"}
        self.proc = Proc([tool("xtask-supervisor"), "run", "-c", os.path.join(SOURCE_DIR, "configs", "services.yaml")],
                         env=env, cwd=self.tmp.path)
        return self

    def healthy(self):
        try:
            return http_request(self.status_url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def wait_healthy(self, timeout=30):
        def ok():
            if not self.proc.running():
                raise AssertionError(f"supervisor exited ({self.proc.p.returncode}):\n{self.proc.output()[-4000:]}")
            return self.healthy()
        wait_until(ok, timeout, 0.02, f"stack {self.name} all ready")

    def status(self):
        st, _, body = http_request(self.status_url + "/status.json", timeout=2)
        check(st == 200, f"/status.json: {st}")
        return {s["name"]: s for s in json.loads(body)["services"]}

    def pids(self):
        return {n: s["pid"] for n, s in self.status().items() if s.get("pid")}

    def leftovers(self):
        """Pids of processes still carrying this stack's XTASK_RUN_DIR in their environment."""
        marker = f"XTASK_RUN_DIR={self.run_dir}".encode()
        found = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open(f"/proc/{d}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        with open(f"/proc/{d}/stat") as g:
                            if g.read().split(") ", 1)[1].split()[0] != "Z":
                                found.append(int(d))
            except OSError:
                pass
        return found

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.running():
            self.proc.signal(sig)
            try:
                return self.proc.wait(timeout)
            finally:
                self.proc.kill()
        return None

    def kill(self):
        """SIGKILL the supervisor and every process of this stack (a region dying)."""
        if self.proc:
            self.proc.kill()
        for pid in self.leftovers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self):
        self.kill()
        self.tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.cleanup()

    # --- the bus ------------------------------------------------------------------------------
    @property
    def bus_dir(self):
        return self.env.get("XTASK_BUS_DIR") or os.path.join(self.data, "bus")

    def creds(self, name):
        """A platform identity's .creds as this stack's bus-init made it (admin, node, web, auth, cli)."""
        return os.path.join(self.bus_dir, "creds", f"{name}.creds")

    def js_api(self, verb, body=None, timeout=5.0):
        """A JetStream API call as the bus's admin identity."""
        return _js_api(self.nats_port, verb, body, timeout, creds=self.creds("admin"))

    # --- HTTP ----------------------------------------------------------------------------------
    def login(self, user=DEV_USER, password=DEV_PASSWORD):
        return _login(self.front, user, password)

    def api(self, path, cookie=None, method="GET", body=None, timeout=30):
        return _api(self.front, path, cookie, method, body, timeout=timeout)
