"""Whole-stack benchmark: start to all-ready, and kill -9 to all-ready per service, for the stack
under xtask-supervisor, beside seed 000's `entrypoint.sh all` (the same four programs behind its
fixed sleeps: 5 s after nats, 3 s after auth, 2 s after web, 2 s after xtask) in the same run.
Prints a Markdown section on stdout. Ports: the bench range (25000-25999)."""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [os.path.join(ROOT, "integration-tests", "lib"), os.path.join(ROOT, "integration-tests", "stack")]

from stack import Stack  # noqa: E402
from xt_testlib import http_request, port_block, wait_until  # noqa: E402

RUNS = int(os.environ.get("XT_BENCH_RUNS", "5"))


def start_to_ready(ports):
    s = Stack(ports, "local", name="bench")
    try:
        subprocess.run(["xtask-setup"], env=s.env, capture_output=True, timeout=60, check=True)
        t0 = time.monotonic()
        s.start()
        s.wait_healthy(60)
        first = time.monotonic() - t0
        kills = {}
        for svc in ("nats", "auth", "xtask", "web"):
            old = s.pids()[svc]
            t = time.monotonic()
            os.kill(old, signal.SIGKILL)
            wait_until(lambda: (lambda st: st.get("pid") not in (None, old) and st["state"] == "READY")(
                s.status()[svc]) and s.healthy(), 20, 0.005, f"{svc} back")
            kills[svc] = time.monotonic() - t
        t = time.monotonic()
        s.stop(signal.SIGINT)
        stop = time.monotonic() - t
        return first, kills, stop
    finally:
        s.cleanup()


def seed_entrypoint(ports):
    """seed 000's `entrypoint.sh all`: start in order behind fixed sleeps; ready = /health 200."""
    s = Stack(ports, "local", name="seed")
    procs = []
    try:
        subprocess.run(["xtask-setup"], env=s.env, capture_output=True, timeout=60, check=True)
        env = dict(s.env)
        # what the supervisor would have exported (manifest env + secrets), computed once
        bus = os.path.join(s.data, "bus")
        env.update({"AUTH_SESSION_SECRET": "x" * 32,
                    "XTASK_NATS_OPERATOR": f"{bus}/operator.jwt", "XTASK_NATS_RESOLVER_DIR": f"{bus}/jwt",
                    "XTASK_LEAF_TLS_CERT": f"{bus}/tls/server.pem", "XTASK_LEAF_TLS_KEY": f"{bus}/tls/server-key.pem",
                    "XTASK_NATS_SERVER_MAX_MEMORY": str(2 << 30), "XTASK_NATS_SERVER_MAX_FILE": str(20 << 30),
                    "XTASK_NODE_CREDS": f"{bus}/creds/node.creds", "XTASK_WEB_CREDS": f"{bus}/creds/web.creds",
                    "XTASK_AUTH_CREDS": f"{bus}/creds/auth.creds",
                    "XTASK_WEB_LISTEN": f"127.0.0.1:{s.http_port}", "XTASK_AUTH_URL": f"http://127.0.0.1:{s.auth_port}",
                    "XTASK_NATS_URL": f"nats://127.0.0.1:{s.nats_port}", "XTASK_NATS_HOST": "127.0.0.1",
                    "XTASK_NATS_PORT": str(s.nats_port), "XTASK_NATS_HTTP": f"127.0.0.1:{s.nats_http_port}",
                    "XTASK_NATS_LEAF_HOST": "127.0.0.1", "XTASK_NATS_LEAF_PORT": str(s.leaf_port),
                    "XTASK_NATS_REGION_TAG": "region:local",
                    "NATS_SERVER_NAME": "xtask-local"})
        cfg = os.path.join(ROOT, "configs")
        script = f"""
nats-server --config {cfg}/nats.conf & sleep 5
xtask-auth --config {cfg}/auth.yml & sleep 3
xtask-web --config {cfg}/web.yaml & sleep 2
xtask --nats-mode --config {cfg}/xtask.yaml & sleep 2
wait
"""
        t0 = time.monotonic()
        p = subprocess.Popen(["sh", "-c", script], env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        front = f"http://127.0.0.1:{s.http_port}/health"

        def ready():
            return http_request(front, headers={"Host": "xtask.localhost"}, timeout=1)[0] == 200
        wait_until(ready, 60, 0.005, "seed stack /health")
        health = time.monotonic() - t0
        # the script's own notion of "started": after its last sleep
        started = 12.0
        return health, started
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        s.cleanup()


def main():
    ports = port_block("bench", 8)
    ours, seeds = [], []
    for _ in range(RUNS):
        ours.append(start_to_ready(ports))
        seeds.append(seed_entrypoint(ports))
    med = statistics.median
    first = med(o[0] for o in ours)
    stop = med(o[2] for o in ours)
    kills = {svc: med(o[1][svc] for o in ours) for svc in ("nats", "auth", "xtask", "web")}
    seed_health = med(x[0] for x in seeds)
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"### Whole stack (bench/stack/run.sh)\n")
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores ({cpu}), medians of {RUNS} runs in one session.\n")
    print("| measure | xtask-supervisor (configs/services.yaml) | seed 000 `entrypoint.sh all` (sleeps) | ratio |")
    print("|---|---|---|---|")
    print(f"| start to all-ready (front /health 200; ours: every service ready) | {first * 1000:.0f} ms | "
          f"{seed_health * 1000:.0f} ms (script done after 12 s, never checks health) | {seed_health / first:.1f}x faster |")
    for svc, v in kills.items():
        print(f"| kill -9 {svc} -> all-ready again | {v * 1000:.0f} ms | never (nothing restarts it) | - |")
    print(f"| SIGINT -> every process stopped, exit 0 | {stop * 1000:.0f} ms | `wait` forwards nothing | - |")


if __name__ == "__main__":
    main()
