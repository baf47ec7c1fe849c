"""The container image end to end (label "container"): build it with podman, start it with
podman-compose, sign in through the front (first factor + TOTP, as the generated admin), run a task,
stop it with SIGTERM (clean exit 0, within the supervisor's budget), and check that the data volume
survived: a second start sees the same admin, the same secrets and the stored task result.

Needs root and podman; on a machine without podman it runs ../shared/tools/container-engine.sh
first (a few minutes, once per machine). Ports come from port_block("stack"). Timings are printed:
the build's share is the one to watch (layers: packages, then sources; compile through a cache mount).
"""
import os
import shutil
import subprocess
import sys
import time

from stacklib import api, check, login, totp_secret_from_uri
from xt_testlib import SOURCE_DIR, port_block, wait_until

PROJECT = f"xtstack{os.getpid()}"
# per test process: two runs beside each other (ctest -j, another checkout) never swap images
IMAGE = f"localhost/xtask:test-{os.getpid()}"
T0 = time.monotonic()
timings = []


def step(name):
    timings.append((name, time.monotonic()))
    print(f"[{time.monotonic() - T0:6.1f}s] {name}", flush=True)


def run(argv, timeout=600, check_rc=True, env=None, quiet=False):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=SOURCE_DIR)
    if check_rc and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def ensure_engine():
    if shutil.which("podman") and shutil.which("podman-compose"):
        return
    tool = os.path.join(os.path.dirname(SOURCE_DIR), "shared", "tools", "container-engine.sh")
    check(os.path.exists(tool), f"podman is missing and so is {tool} (CI runs with ../shared beside the checkout)")
    step("setting up podman (container-engine.sh)")
    run(["bash", tool], timeout=1200)


def main():
    check(os.geteuid() == 0, "the container test needs root (podman with runc)")
    ensure_engine()
    ports = port_block("stack", 4)
    http_port, leaf_port = ports[0], ports[1]
    env = dict(os.environ, XTASK_HTTP_PORT=str(http_port), XTASK_NATS_LEAF_PORT=str(leaf_port),
               XTASK_IMAGE=IMAGE)
    compose = ["podman-compose", "-p", PROJECT, "-f", "docker/docker-compose.yml"]
    container = f"{PROJECT}_xtask_1"
    volume = f"{PROJECT}_xtask-data"
    front = f"http://127.0.0.1:{http_port}"

    step("podman build")
    run(["docker/build.sh", IMAGE], timeout=1500, env=dict(os.environ, XTASK_ENGINE="podman"))
    step("built")
    try:
        # --- first start -----------------------------------------------------------------------
        run(compose + ["up", "-d", "xtask"], env=env, timeout=120)
        wait_until(lambda: api(front, "/health", timeout=2)[0] == 200, 60, 0.2, "the front's /health")
        wait_until(lambda: run(["podman", "exec", container, "xtask-supervisor", "status"], check_rc=False,
                               timeout=20).returncode == 0, 30, 0.2, "xtask-supervisor status in the container")
        wait_until(lambda: run(["podman", "exec", container, "curl", "-fsS", "http://127.0.0.1:9100/healthz"],
                               check_rc=False, timeout=20).returncode == 0, 60, 0.2, "all services ready")
        step("all ready")
        hc = run(["podman", "healthcheck", "run", container], check_rc=False, timeout=30)
        check(hc.returncode == 0, f"the image's HEALTHCHECK: {hc.returncode} {hc.stdout} {hc.stderr}")
        status = run(["podman", "exec", container, "xtask-supervisor", "status"]).stdout
        for svc in ("nats", "xtask", "auth", "web"):
            check(svc in status and "READY" in status, f"status lists {svc} READY:\n{status}")
        # the generated admin: password and TOTP URI shown once in the log, kept 0600 in /data
        logs = run(["podman", "logs", container]).stdout
        check("created user 'admin' with password:" in logs, f"first-run admin in the log:\n{logs[-2000:]}")
        pw = run(["podman", "exec", container, "cat", "/data/secrets/admin-password"]).stdout.strip()
        uri = run(["podman", "exec", container, "cat", "/data/secrets/admin-totp-uri"]).stdout.strip()
        mode = run(["podman", "exec", container, "stat", "-c", "%a %U", "/data/secrets/admin-password"]).stdout
        check(mode.split()[0] == "600", f"admin password kept 0600: {mode}")
        check(pw in logs, "the password shown once is the stored one")

        # protected routes refuse anonymous requests, then sign in through the front
        st, _, _ = api(front, "/api/v1/nodes")
        check(st in (401, 302), f"anonymous /api/v1/nodes: {st}")
        cookie = login(front, "admin", pw, totp_secret_from_uri(uri))
        step("signed in")
        st, _, nodes = api(front, "/api/v1/nodes", cookie)
        check(st == 200, f"/api/v1/nodes: {st} {nodes}")
        node_list = nodes.get("nodes", nodes) if isinstance(nodes, dict) else nodes
        check(node_list, f"a node registered: {nodes}")
        node = node_list[0]["id"]
        st, _, res = api(front, "/api/v1/tasks", cookie, "POST", {"node": node, "args": ["noop"], "wait": True})
        check(st == 200 and res.get("exit_code") == 0, f"task run: {st} {res}")
        task_id = res["id"]
        wait_until(lambda: api(front, f"/api/v1/tasks/{task_id}", cookie)[0] == 200, 10, 0.1,
                   "the task's stored result")
        step("task ran")

        # --- the bus: no anonymous client; the machine's cli identity gets in -----------------------
        anon = run(["podman", "exec", container, "xtask", "ping"], check_rc=False, timeout=30)
        check(anon.returncode != 0 and "authorization" in (anon.stdout + anon.stderr).lower(),
              f"anonymous `xtask ping` in the container: {anon.returncode} {anon.stdout} {anon.stderr}")
        cli = run(["podman", "exec", "-e", "XTASK_NATS_CREDS=/data/bus/creds/cli.creds", container, "xtask", "ping"],
                  check_rc=False, timeout=30)
        check(cli.returncode == 0, f"`xtask ping` with the cli credential: {cli.returncode} {cli.stdout} {cli.stderr}")
        step("bus: anonymous client refused, cli credential accepted")

        # --- SIGTERM: a clean stop within the budget ------------------------------------------------
        # `podman stop` sends the image's STOPSIGNAL (SIGTERM) and would SIGKILL after 10 s; a plain
        # `podman kill` would be undone by compose's restart policy.
        t = time.monotonic()
        run(["podman", "stop", "-t", "10", container], timeout=30)
        took = time.monotonic() - t
        code = run(["podman", "inspect", "-f", "{{.State.ExitCode}}", container]).stdout.strip()
        check(code == "0", f"exit code after SIGTERM: {code}\n{run(['podman', 'logs', container]).stdout[-3000:]}")
        check(took < 5.0, f"stopped in {took:.1f}s, budget 5 s")
        step(f"stopped by SIGTERM in {took:.2f}s, exit 0")

        # --- the volume survived: same admin, same secrets, the stored result ----------------------
        ls = run(["podman", "run", "--rm", "-v", f"{volume}:/data", "--entrypoint", "ls", IMAGE, "/data",
                  "/data/secrets", "/data/bus", "/data/bus/creds"]).stdout
        for f in ("users_database.yml", "jetstream", "session", "admin-password", "operator.jwt", "route-password",
                  "node.creds", "web.creds", "auth.creds", "cli.creds"):
            check(f in ls, f"{f} on the volume:\n{ls}")
        run(["podman", "start", container])
        wait_until(lambda: run(["podman", "exec", container, "curl", "-fsS", "http://127.0.0.1:9100/healthz"],
                               check_rc=False, timeout=20).returncode == 0, 60, 0.2, "ready again")
        logs2 = run(["podman", "logs", "--since", "1m", container]).stdout
        # no new admin: the first run's password still signs in (a new TOTP step may be needed)
        # (a TOTP code is usable once: a login in the same 30 s step as the first one waits a step)
        cookie = wait_until(lambda: _fresh_login(front, pw, uri), 35, 1.0, "the same admin signs in after a restart")
        st, _, res = api(front, f"/api/v1/tasks/{task_id}", cookie)
        check(st == 200 and res.get("exit_code") == 0, f"stored result after restart: {st} {res}")
        check(logs2.count("created user 'admin'") <= 1, "no second admin created")
        step("volume intact after restart")
    except AssertionError:
        logs = run(["podman", "logs", container], check_rc=False, timeout=60)
        print(f"--- container log (last lines) ---\n{(logs.stdout + logs.stderr)[-6000:]}", flush=True)
        raise
    finally:
        run(compose + ["down"], env=env, check_rc=False, timeout=120)
        run(["podman", "rm", "-f", container], check_rc=False, timeout=60)
        run(["podman", "volume", "rm", "-f", volume], check_rc=False, timeout=60)
        run(["podman", "network", "rm", "-f", f"{PROJECT}_default"], check_rc=False, timeout=60)
        run(["podman", "rmi", "-f", IMAGE], check_rc=False, timeout=60)  # the layers stay cached
    total = time.monotonic() - T0
    build = timings[1][1] - timings[0][1]
    print(f"container test: {total:.1f}s total, image build {build:.1f}s")


def _fresh_login(front, pw, uri):
    try:
        return login(front, "admin", pw, totp_secret_from_uri(uri))
    except AssertionError:
        return None


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("ok")
