"""Three regions on loopback: three supervisors (distinct ports and FLY_REGIONs) whose nats-servers
form one cluster (configs/nats-cluster.conf), as on Fly.
- the nodes of all regions are visible in each region's API;
- a task submitted in one region runs on a node of another;
- one login is valid in all three (auth's NATS KV session store on);
- one region killed (SIGKILL, every process): the other two keep serving: sessions, tasks across the
  survivors, stored results.
Replication: the coordinator's streams use `nats.replicas: 3` (a copy of configs/ with that value: the
shipped default is 1) and the sessions bucket is scaled to R3 through the JetStream API once the
cluster is up (auth creates it R1), as an operator would on Fly.
"""
import base64
import os
import re
import shutil
import subprocess
import sys
import time

from stack import Stack, tool
from stacklib import check, js_api
from xt_testlib import SOURCE_DIR, TempDir, port_block, wait_until

REGIONS = ["ams", "dfw", "hkg"]


def main():
    ports = port_block("stack", 24)
    blocks = [ports[i * 8:(i + 1) * 8] for i in range(3)]
    conf = TempDir(prefix="xt-stack-conf-")
    cfg = os.path.join(conf.path, "configs")
    shutil.copytree(os.path.join(SOURCE_DIR, "configs"), cfg)
    with open(os.path.join(cfg, "xtask.yaml")) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^(\s*replicas:\s*)1\b", r"\g<1>3", text)
    check(n == 1, "xtask.yaml: nats.replicas to raise")
    with open(os.path.join(cfg, "xtask.yaml"), "w") as f:
        f.write(text)
    routes = "[" + ", ".join(f'"nats://127.0.0.1:{b[4]}"' for b in blocks) + "]"
    secret = base64.b64encode(os.urandom(32)).decode()
    stacks = []
    try:
        for region, b in zip(REGIONS, blocks):
            s = Stack(b, region, {
                "XTASK_NATS_CONF": "nats-cluster.conf",
                "XTASK_NATS_READY": "healthz",
                "NATS_SERVER_NAME": f"xtask-{region}",
                "XTASK_NATS_ROUTES": routes,
                "XTASK_AUTH_SHARED_SESSIONS": "true",
            }, config_dir=cfg, name=region)
            # one session secret for the whole app (on Fly: `fly secrets set AUTH_SESSION_SECRET=...`)
            s.env["AUTH_SESSION_SECRET"] = secret
            stacks.append(s)
        for s in stacks:
            s.start()
        for s in stacks:
            s.wait_healthy(60)
        print("three regions ready", flush=True)
        ams, dfw, hkg = stacks

        # the sessions bucket replicated in every region (auth created it with one replica)
        def scale_sessions():
            info = js_api(ams.nats_port, "STREAM.INFO.KV_xtask_sessions")
            if "error" in info:
                return False
            c = info["config"]
            if c.get("num_replicas") == 3:
                return True
            c["num_replicas"] = 3
            r = js_api(ams.nats_port, "STREAM.UPDATE.KV_xtask_sessions", c)
            return "error" not in r and r["config"]["num_replicas"] == 3
        wait_until(scale_sessions, 20, 0.2, "KV_xtask_sessions at 3 replicas")
        # the auth services watch the bucket from their start: restart them on the R3 bucket (their
        # watchers do not follow a replica change), through the supervisor as an operator would
        for s in stacks:
            r = subprocess.run([tool("xtask-supervisor"), "-s", os.path.join(s.run_dir, "supervisor.sock"),
                                "restart", "auth"], capture_output=True, text=True, timeout=20)
            check(r.returncode == 0, f"restart auth in {s.region}: {r.stdout}{r.stderr}")
        for s in stacks:
            wait_until(lambda s=s: s.status()["auth"]["state"] == "READY" and s.healthy(), 20, 0.05,
                       f"auth ready again in {s.region}")

        # one login, valid everywhere
        cookie = ams.login()
        for s in stacks:
            wait_until(lambda s=s: s.api("/api/v1/nodes", cookie, timeout=3)[0] == 200, 10, 0.05,
                       f"the ams session accepted in {s.region}")
        # every region's API sees the nodes of all regions
        want = {f"{r}-node" for r in REGIONS}

        def sees_all(s):
            st, _, body = s.api("/api/v1/nodes", cookie, timeout=5)
            return st == 200 and want <= {n["id"] for n in body["nodes"]}
        for s in stacks:
            wait_until(lambda s=s: sees_all(s), 20, 0.1, f"{s.region} sees {sorted(want)}")
        print("nodes of all regions visible in each API; one login valid in all three", flush=True)

        # a task submitted in ams runs on a dfw node; its result is readable from hkg
        st, _, res = ams.api("/api/v1/tasks", cookie, "POST", {"node": "dfw-node", "args": ["noop"], "id": "x-ams-dfw"})
        check(st == 200 and res.get("node") == "dfw-node" and res.get("exit_code") == 0, f"ams -> dfw: {st} {res}")
        wait_until(lambda: hkg.api("/api/v1/tasks/x-ams-dfw", cookie)[0] == 200, 10, 0.05, "the result from hkg")
        print("task submitted in ams ran in dfw; result read in hkg", flush=True)

        # kill one region outright; the other two keep serving
        t0 = time.monotonic()
        hkg.kill()
        wait_until(lambda: not hkg.leftovers(), 5, 0.05, "hkg gone")
        for s in (ams, dfw):
            check(s.healthy(), f"{s.region} still all-ready after hkg died")

        # Serving = a task submitted in one survivor runs in the other and its result is stored and
        # readable from both. Right after a peer dies JetStream may re-elect leaders for a few
        # seconds: a store then can fail (the coordinator does not retry it yet), so each attempt
        # uses a new task id and the count of attempts is reported.
        attempts = {}

        def serving(s, other, key):
            n = attempts[key] = attempts.get(key, 0) + 1
            tid = f"y-{key}-{n}"
            try:
                st, _, res = s.api("/api/v1/tasks", cookie, "POST", {"node": f"{other}-node", "args": ["noop"],
                                                                      "id": tid}, timeout=5)
                if st != 200 or res.get("exit_code") != 0:
                    return False
                wait_until(lambda: all(x.api(f"/api/v1/tasks/{tid}", cookie, timeout=5)[0] == 200
                                       for x in (ams, dfw)), 2, 0.1, f"result {tid}")
                return tid
            except (AssertionError, OSError):
                return False
        got = [wait_until(lambda: serving(ams, "dfw", "ams-dfw"), 20, 0.2, "ams runs a task in dfw without hkg"),
               wait_until(lambda: serving(dfw, "ams", "dfw-ams"), 20, 0.2, "dfw runs a task in ams without hkg")]
        print(f"after hkg died: attempts until a task ran and its result was stored: {attempts}", flush=True)
        for s in (ams, dfw):
            for tid in ["x-ams-dfw"] + got:
                st, _, res = s.api(f"/api/v1/tasks/{tid}", cookie, timeout=5)
                check(st == 200 and res.get("exit_code") == 0, f"result {tid} in {s.region} without hkg: {st} {res}")
        for s in (ams, dfw):
            check(s.api("/api/v1/nodes", cookie, timeout=5)[0] == 200, f"the first login still valid in {s.region}")
        fresh = dfw.login()
        check(dfw.api("/api/v1/nodes", fresh, timeout=5)[0] == 200, "a new login in dfw after hkg died")
        # A new session reaches the other survivor through auth's KV watch, which does not always
        # survive the bucket leader dying with hkg (nats.c 3.4.1 watcher); until auth looks a session
        # up in KV on a miss this is reported, not asserted (docs/STACK.md, known issues).
        try:
            wait_until(lambda: ams.api("/api/v1/nodes", fresh, timeout=3)[0] == 200, 5, 0.05, "")
            print("a login made in dfw after hkg died is accepted in ams", flush=True)
        except AssertionError:
            print("KNOWN ISSUE (auth): a login made in dfw after hkg died is not accepted in ams", flush=True)
        print(f"hkg killed: ams and dfw keep serving ({time.monotonic() - t0:.1f}s to check)", flush=True)
        for s in (ams, dfw):
            code = s.stop()
            check(code == 0, f"{s.region} supervisor exit {code}")
    except AssertionError:
        for s in stacks:
            if s.proc:
                lines = [ln for ln in s.proc.output().splitlines() if not ln.startswith("nats ")]
                print(f"--- {s.region} supervisor output (without nats) ---\n" + "\n".join(lines[-40:]))
        for s in stacks[:2]:
            for stream in ("xtask-results", "KV_xtask_sessions"):
                try:
                    i = js_api(s.nats_port, f"STREAM.INFO.{stream}")
                    print(f"{s.region} {stream}: replicas {i.get('config', {}).get('num_replicas')} "
                          f"cluster {i.get('cluster')} state {i.get('state', {}).get('messages')} err {i.get('error')}")
                except Exception as e:  # noqa: BLE001 - diagnostics only
                    print(f"{s.region} {stream}: {e}")
        raise
    finally:
        for s in stacks:
            s.cleanup()
        conf.cleanup()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("ok")
