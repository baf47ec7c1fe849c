"""The bus on three clustered regions (as stack_regions runs them, each on its own bus directory
materialized from one exported bundle):
- the regions route to each other with the route credential; a route without it, or with a wrong
  one, is refused (the rogue server never joins, the regions keep their two routes);
- one admin identity works across regions (a message published in one region reaches a subscriber
  in another);
- a credential revoked while in use (clients in every region and a leaf over TLS) is disconnected
  within seconds in every region, pushed once through one region ($SYS.REQ.CLAIMS.UPDATE, the full
  resolver forwards it), and cannot come back anywhere.
"""
import base64
import json
import os
import sys
import time

from xt_bus import BusCluster, http_json_get
from xt_testlib import Proc, wait_until

DROP_WITHIN_S = 5.0


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main():
    with BusCluster(n=3) as bus:
        for i in range(3):
            check(bus.routes(i) == 2, f"region {i}: {bus.routes(i)} routes")
        print("three regions routed with the route credential; JetStream meta leader elected", flush=True)

        # --- rogue routes ---------------------------------------------------------------------------
        for name, user, pw in (("rogue-none", None, None), ("rogue-wrong", bus.ROUTE_USER, "xtwrong0123")):
            rogue = bus.rogue_route(name, 0, user, pw)
            rogue.wait_output(r"[Aa]uthorization [Vv]iolation", 15, f"{name} refused")
            check(all(bus.routes(i) == 2 for i in range(3)), f"{name}: the regions' routes changed")
            z = http_json_get(f"http://127.0.0.1:{rogue.http_port}/routez")
            check(z.get("num_routes", 0) == 0, f"{name} holds routes: {z}")
            check(bus.probe("connect", creds=bus.creds("admin")).returncode == 0, "region 0 still serves")
            rogue.kill()
        print("routes without / with a wrong route credential refused", flush=True)

        # --- one identity across regions ------------------------------------------------------------
        probe_bin = os.path.join(os.environ["XT_TEST_BIN_DIR"], "bus-probe")
        sub = Proc([probe_bin, "--url", bus.regions[2].url, "--creds", bus.creds("admin", 2), "--timeout-ms",
                    "15000", "sub", "bus.cross.check"])
        sub.wait_output(r"^subscribed$", 10, "a subscriber in region 2")

        def delivered():
            # interest crosses the routes asynchronously: publish until the subscriber has it
            bus.probe("pub", "bus.cross.check", "from-region-0", creds=bus.creds("admin", 0), region=0, check=True)
            return "got from-region-0" in sub.output()
        wait_until(delivered, 10, 0.05, "region 0's message in region 2")
        sub.kill()
        for i in range(3):
            bus.probe("connect", creds=bus.creds("admin", i), region=i, check=True)
        print("admin identity valid in every region (creds minted per region from the shared account key)",
              flush=True)

        # --- revocation while connected -------------------------------------------------------------
        dev = bus.add_user("dev", "admin")
        holds = []
        for i in range(3):
            h = Proc([os.path.join(os.environ["XT_TEST_BIN_DIR"], "bus-probe"), "--url", bus.regions[i].url,
                      "--creds", dev, "--timeout-ms", "30000", "hold"])
            h.wait_output(r"^connected$", 10, f"dev connected to region {i}")
            holds.append(h)
        leaf = bus.leaf("edge-dev", dev, region=1)
        wait_until(lambda: bus.leafs(1) == 1, 10, 0.05, "dev's leaf connected to region 1")
        t0 = time.monotonic()
        bus.revoke("dev", via=0)
        for i, h in enumerate(holds):
            m = h.wait_output(r"closed after \d+ ms: (.*)$", DROP_WITHIN_S, f"dev dropped in region {i}")
            check("Revoked" in m.group(1), f"region {i}: closed for another reason: {m.group(1)}")
        wait_until(lambda: bus.leafs(1) == 0, DROP_WITHIN_S, 0.02, "dev's leaf dropped by region 1")
        took = time.monotonic() - t0
        print(f"revoked while connected: clients dropped in all three regions and the leaf in region 1, "
              f"{took * 1000:.0f} ms after the push", flush=True)
        for i in range(3):
            p = bus.probe("connect", creds=dev, region=i)
            check(p.returncode == 1, f"revoked dev reconnected to region {i}: {p.stdout}")
        leaf.wait_output(r"Leafnode Error '(User Authentication Revoked|Authorization Violation)'", 10,
                         "the leaf's reconnection refused")
        check(bus.leafs(1) == 0, "the revoked leaf came back")
        # every region's resolver directory holds the new account JWT (it survives a restart)
        xtask_pub = None
        with open(bus.creds("admin", 0)) as f:
            jwt = f.read().split("-----BEGIN NATS USER JWT-----\n")[1].split("\n")[0]
            claims = json.loads(base64.urlsafe_b64decode(jwt.split(".")[1] + "=="))
            xtask_pub = claims["iss"]

        def revoked_on_disk(i):
            with open(os.path.join(bus.regions[i].dir, "jwt", f"{xtask_pub}.jwt")) as f:
                body = f.read().strip().split(".")[1]
            nats = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["nats"]
            return len(nats.get("revocations", {})) == 1
        for i in range(3):
            wait_until(lambda i=i: revoked_on_disk(i), 5, 0.05, f"region {i}'s resolver dir has the revocation")
        print("revoked dev refused everywhere afterwards; each region's resolver directory holds the revocation",
              flush=True)
        for h in holds:
            h.kill()
    print("bus_cluster: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
