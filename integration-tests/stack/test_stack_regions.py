"""Three regions on loopback: three supervisors (distinct ports and FLY_REGIONs) whose nats-servers
form one cluster (configs/nats-cluster.conf), as on Fly.
- the nodes of all regions are visible in each region's API;
- a task submitted in one region runs on a node of another;
- one login is valid in all three (auth's NATS KV session store on);
- one region killed (SIGKILL, every process): the other two keep serving: sessions, tasks across the
  survivors, stored results.
Replication: XTASK_REPLICAS=3 (as on Fly), which configs/services.yaml passes to the coordinator's
streams (xtask.yaml nats.replicas) and to auth's sessions bucket (auth.yml session.nats.replicas),
with the shipped configs/ as they are.
- a login made after a region died is valid in the surviving regions (auth looks a session up in
  the bucket on a local miss).
The bus as on Fly: one bundle (`xtask-bus export` of a "laptop" directory) in XTASK_BUS_BUNDLE for
every region, so they share operator, accounts, CA and route password; routes authenticate:
- a nats-server routing to a region without the route credential, or with a wrong one, is refused;
- an anonymous client is refused on every region's client port.
"""
import base64
import json
import os
import re
import subprocess
import sys
import time

from stack import Stack, tool
from stacklib import check, nats_connect_error
from xt_testlib import Proc, TempDir, bin_path, http_request, port_block, wait_until

REGIONS = ["ams", "dfw", "hkg"]


def main():
    ports = port_block("stack", 30)
    blocks = [ports[i * 8:(i + 1) * 8] for i in range(3)]
    spare = ports[24:]
    routes = "[" + ", ".join(f'"nats://127.0.0.1:{b[4]}"' for b in blocks) + "]"
    secret = base64.b64encode(os.urandom(32)).decode()
    stacks = []
    laptop = TempDir("xt-stack-bus-")
    rogues = []
    try:
        # the operator's bus directory, made once on a trusted machine; each region gets its bundle
        master = os.path.join(laptop.path, "bus")
        for args in (["init", "--dir", master, "--domain", "xtask.localhost"], ["export", "--dir", master, "--value"]):
            r = subprocess.run([tool("xtask-bus")] + args, capture_output=True, text=True, timeout=60)
            check(r.returncode == 0, f"xtask-bus {args[0]}: {r.stderr}")
        bundle = r.stdout.strip()
        for region, b in zip(REGIONS, blocks):
            s = Stack(b, region, {
                "XTASK_NATS_CONF": "nats-cluster.conf",
                "XTASK_NATS_READY": "healthz",
                "NATS_SERVER_NAME": f"xtask-{region}",
                "XTASK_NATS_ROUTES": routes,
                "XTASK_AUTH_SHARED_SESSIONS": "true",
                "XTASK_REPLICAS": "3",
            }, name=region)
            # one session secret for the whole app (on Fly: `fly secrets set AUTH_SESSION_SECRET=...`)
            s.env["AUTH_SESSION_SECRET"] = secret
            s.env["XTASK_BUS_BUNDLE"] = bundle  # `fly secrets set XTASK_BUS_BUNDLE=...`
            stacks.append(s)
        for s in stacks:
            s.start()
        for s in stacks:
            s.wait_healthy(60)
        print("three regions ready", flush=True)
        ams, dfw, hkg = stacks

        # the bus: no anonymous client anywhere; a route without the credential is refused
        for s in stacks:
            err = nats_connect_error(s.nats_port)
            check(err and "authorization violation" in err.lower(), f"{s.region}: anonymous client: {err}")
            check(nats_connect_error(s.nats_port, s.creds("admin")) is None, f"{s.region}: admin refused")
        def read(path):
            with open(path) as f:
                return f.read()
        pw = read(os.path.join(master, "route-password"))
        check(all(read(os.path.join(s.bus_dir, "route-password")) == pw for s in stacks),
              "every region has the bundle's route password")
        for name, cred in (("rogue-none", ""), ("rogue-wrong", "xtask-route:xtwrong0123@")):
            port, cport, hport = spare.pop(0), spare.pop(0), spare.pop(0)
            conf = os.path.join(laptop.path, f"{name}.conf")
            with open(conf, "w") as f:
                f.write(f'server_name: "{name}"\nhost: 127.0.0.1\nport: {port}\nhttp: 127.0.0.1:{hport}\n'
                        f'cluster {{ name: xtask, host: 127.0.0.1, port: {cport}, '
                        f'routes: ["nats://{cred}127.0.0.1:{ams.cluster_port}"] }}\n')
            rogue = Proc([bin_path("nats-server"), "-c", conf])
            rogues.append(rogue)
            rogue.wait_output(r"[Aa]uthorization [Vv]iolation", 15, f"{name} refused as a route")
            st, _, body = http_request(f"http://127.0.0.1:{hport}/routez", timeout=2)
            check(st == 200 and json.loads(body)["num_routes"] == 0, f"{name} holds routes: {body[:300]!r}")
            st, _, body = http_request(f"http://127.0.0.1:{ams.nats_http_port}/routez", timeout=2)
            check(st == 200 and json.loads(body)["num_routes"] == 2, f"ams routes changed: {body[:300]!r}")
            rogue.kill()
        print("anonymous clients refused in every region; routes without / with a wrong credential refused",
              flush=True)

        # streams and the sessions bucket replicated in every region, from the shipped configs
        def replicated(stream):
            info = ams.js_api(f"STREAM.INFO.{stream}")
            return "error" not in info and info["config"].get("num_replicas") == 3
        for stream in ("xtask-results", "xtask-queue", "KV_xtask_sessions"):
            wait_until(lambda: replicated(stream), 20, 0.1, f"{stream} at 3 replicas")

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
        st, _, res = ams.api("/api/v1/tasks", cookie, "POST", {"node": "dfw-node", "args": ["noop"]})
        check(st == 200 and res.get("node") == "dfw-node" and res.get("exit_code") == 0, f"ams -> dfw: {st} {res}")
        x_id = res["id"]
        wait_until(lambda: hkg.api(f"/api/v1/tasks/{x_id}", cookie)[0] == 200, 10, 0.05, "the result from hkg")
        print("task submitted in ams ran in dfw; result read in hkg", flush=True)

        # Kill outright the region that leads the streams, so that JetStream must elect new leaders
        # (the case the coordinator's store retry and auth's lookup on a miss are for): the victim
        # is xtask-results' leader, and the other streams' leaders are moved there (step-downs).
        def leader(stream):
            info = ams.js_api(f"STREAM.INFO.{stream}")
            return info.get("cluster", {}).get("leader")
        victim = wait_until(lambda: leader("xtask-results"), 10, 0.1, "xtask-results leader")
        for stream in ("KV_xtask_sessions", "xtask-queue"):
            def on_victim(stream=stream):
                cur = leader(stream)
                if cur == victim:
                    return True
                if cur:
                    ams.js_api(f"STREAM.LEADER.STEPDOWN.{stream}")
                return False
            wait_until(on_victim, 20, 0.3, f"{stream} led by {victim}")
        by_name = {f"xtask-{s.region}": s for s in stacks}
        dead = by_name[victim]
        sa, sb = [s for s in stacks if s is not dead]
        print(f"killing {dead.region}, the leader of every stream; survivors {sa.region}, {sb.region}", flush=True)
        t0 = time.monotonic()
        dead.kill()
        wait_until(lambda: not dead.leftovers(), 5, 0.05, f"{dead.region} gone")
        for s in (sa, sb):
            check(s.healthy(), f"{s.region} still all-ready after {dead.region} died")

        # Serving = a task submitted in one survivor runs in the other and its result is stored and
        # readable from both. Right after a peer dies JetStream re-elects leaders: the coordinator
        # retries a failed store (bounded), so the first attempt must succeed; the web API's own
        # request may still time out during the election, hence the retry of the submission itself,
        # whose count is reported.
        attempts = {}
        ran = []

        def serving(s, other, key):
            n = attempts[key] = attempts.get(key, 0) + 1
            try:
                st, _, res = s.api("/api/v1/tasks", cookie, "POST", {"node": f"{other}-node", "args": ["noop"]},
                                   timeout=5)
                if st != 200 or res.get("exit_code") != 0:
                    return False
                tid = res["id"]
                ran.append(tid)
            except OSError:
                return False
            # the node retries the store through the election: the result must come
            wait_until(lambda: all(x.api(f"/api/v1/tasks/{tid}", cookie, timeout=5)[0] == 200
                                   for x in (sa, sb)), 15, 0.1, f"result {tid} stored in both survivors")
            return tid
        got = [wait_until(lambda: serving(sa, sb.region, "a-b"), 20, 0.2, "a survivor runs a task in the other"),
               wait_until(lambda: serving(sb, sa.region, "b-a"), 20, 0.2, "the other way round")]
        print(f"after the region died: attempts until a task ran and its result was stored: {attempts}", flush=True)
        for s in (sa, sb):
            for tid in [x_id] + got + ran:
                st, _, res = s.api(f"/api/v1/tasks/{tid}", cookie, timeout=5)
                check(st == 200 and res.get("exit_code") == 0, f"result {tid} in {s.region} without the dead region: {st} {res}")
        for s in (sa, sb):
            check(s.api("/api/v1/nodes", cookie, timeout=5)[0] == 200, f"the first login still valid in {s.region}")
        # a login made after the region died is valid in both survivors (auth's lookup on a local miss, even
        # when its KV watch lost the bucket's leader with the dead region)
        for here, there in ((sb, sa), (sa, sb)):
            fresh = here.login()
            check(here.api("/api/v1/nodes", fresh, timeout=5)[0] == 200, f"a new login in {here.region}")
            # (the survivors re-elect the sessions bucket's leader; generous on a loaded machine)
            wait_until(lambda: there.api("/api/v1/nodes", fresh, timeout=3)[0] == 200, 30, 0.05,
                       f"a login made in {here.region} after {dead.region} died accepted in {there.region}")
        print(f"logins made after {dead.region} died are accepted in both survivors", flush=True)
        retried = {s.region: len(re.findall(r"result \S+ stored after \d+ attempts", s.proc.output())) for s in (sa, sb)}
        print(f"coordinator stores that needed retries, per survivor: {retried}", flush=True)
        print(f"{dead.region} killed: {sa.region} and {sb.region} keep serving ({time.monotonic() - t0:.1f}s to check)", flush=True)
        for s in (sa, sb):
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
                    i = s.js_api(f"STREAM.INFO.{stream}")
                    print(f"{s.region} {stream}: replicas {i.get('config', {}).get('num_replicas')} "
                          f"cluster {i.get('cluster')} state {i.get('state', {}).get('messages')} err {i.get('error')}")
                except Exception as e:  # noqa: BLE001 - diagnostics only
                    print(f"{s.region} {stream}: {e}")
        raise
    finally:
        for r in rogues:
            r.kill()
        for s in stacks:
            s.cleanup()
        laptop.cleanup()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("ok")
