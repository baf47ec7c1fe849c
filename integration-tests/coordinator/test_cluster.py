"""Three regions on loopback: three nats-servers started from configs/nats-cluster.conf (which
includes configs/nats.conf) with a coordinator each. Discover sees all three; work submitted in one
region runs on a node of another; R3 xtask-results keeps every result when one server is killed;
a leaf node with a credential of the bus over TLS (platform CA) joins and sees the nodes, the old shared
user/password is refused.
The bus as shipped: operator mode, one bundle (`xtask-bus export`) materialized in each region's own
directory, routes with the route password (entrypoint/xtask-nats adds it), every node and client
with its .creds (the nodes: the regions' platform identities node-<id>)."""
import json
import os

from coordlib import Node, natsproto, req_json, run_tests, xtask, tid
from xt_bus import bus_tool
from xt_testlib import Proc, SOURCE_DIR, TempDir, bin_path, http_request, port_block, wait_until

PORTS = port_block("coordinator", 30)
TMP = TempDir("xt-coord-cluster-")
REGIONS = ["ams", "dfw", "hkg"]
CONF = os.path.join(SOURCE_DIR, "configs", "nats-cluster.conf")
MASTER = os.path.join(TMP.path, "bus-master")


def bus_dir(i):
    return os.path.join(TMP.path, REGIONS[i], "bus")


def creds(name, i=0):
    return os.path.join(bus_dir(i), "creds", f"{name}.creds")


def bus_setup():
    bus_tool(["init", "--dir", MASTER, "--domain", "xtask.localhost"])
    bundle = bus_tool(["export", "--dir", MASTER, "--value"]).stdout.strip()
    for i, r in enumerate(REGIONS):
        bus_tool(["init", "--dir", bus_dir(i), "--domain", "xtask.localhost", "--node-id", f"{r}-1"],
                 env={"XTASK_BUS_BUNDLE": bundle})


def ports(i):
    b = 10 * i
    return {"client": PORTS[b], "http": PORTS[b + 1], "leaf": PORTS[b + 2], "cluster": PORTS[b + 3]}


def server_env(i):
    p = ports(i)
    routes = ", ".join(f"nats://127.0.0.1:{ports(j)['cluster']}" for j in range(3))
    d = bus_dir(i)
    with open(os.path.join(d, "route-password")) as f:
        route_password = f.read().strip()
    return {"PATH": os.environ["PATH"],
            "NATS_SERVER_NAME": f"xtask-{REGIONS[i]}-m{i}", "XTASK_DATA_DIR": os.path.join(TMP.path, REGIONS[i]),
            "XTASK_NATS_HOST": "127.0.0.1", "XTASK_NATS_PORT": str(p["client"]),
            "XTASK_NATS_HTTP": f"127.0.0.1:{p['http']}", "XTASK_NATS_LEAF_HOST": "127.0.0.1",
            "XTASK_NATS_LEAF_PORT": str(p["leaf"]), "XTASK_NATS_OPERATOR": os.path.join(d, "operator.jwt"),
            "XTASK_NATS_RESOLVER_DIR": os.path.join(d, "jwt"), "XTASK_LEAF_TLS_CERT": os.path.join(d, "tls", "server.pem"),
            "XTASK_LEAF_TLS_KEY": os.path.join(d, "tls", "server-key.pem"), "XTASK_NATS_SERVER_MAX_MEMORY": "2147483648",
            "XTASK_NATS_SERVER_MAX_FILE": "21474836480", "XTASK_ROUTE_PASSWORD": route_password,
            "XTASK_NATS_REGION_TAG": f"region:{REGIONS[i]}", "XTASK_NATS_CLUSTER_HOST": "127.0.0.1",
            "XTASK_NATS_CLUSTER_PORT": str(p["cluster"]), "XTASK_NATS_ROUTES": f"[{routes}]"}


SERVERS = [None, None, None]
NODES = []
URLS = [f"nats://127.0.0.1:{ports(i)['client']}" for i in range(3)]
NODE_CONFIG = """
nats: { heartbeat: 500ms, node_ttl: 3s, replicas: 3, creds: "%s" }
queue: { ack_wait: 3s }
tasks:
  noop: ["true"]
  where: { argv: [echo], args: true }
"""


def start_server(i):
    # the shipped way: entrypoint/xtask-nats adds the route credential to the routes, then nats-server
    SERVERS[i] = Proc(["sh", os.path.join(SOURCE_DIR, "entrypoint", "xtask-nats"), "-c", CONF], env=server_env(i))


def client(url, timeout=5.0):
    """A test client as the bus's admin identity (the servers refuse anonymous ones)."""
    return natsproto.Client(url, timeout=timeout, creds=creds("admin"))


def js_ok(url):
    with client(url, timeout=1) as c:
        r = c.js_api("INFO", b"", 1)
        return "error" not in r


def setup():
    bus_setup()
    for i in range(3):
        start_server(i)
    for i in range(3):
        wait_until(lambda: http_request(f"http://127.0.0.1:{ports(i)['http']}/healthz?js-enabled-only=true",
                                        timeout=1)[0] == 200, 15, what=f"server {i}")
    for i in range(3):
        wait_until(lambda: js_ok(URLS[i]), 30, interval=0.1, what=f"JetStream meta leader via {REGIONS[i]}")
    for i, r in enumerate(REGIONS):
        NODES.append(Node(TMP.path, f"{r}-1", URLS[i], NODE_CONFIG % creds("node", i), region=r,
                          client_creds=creds("admin")))
    for n in NODES:
        n.start(wait=False)
    for n in NODES:
        n.wait_ready(30)


def test_routes_and_tags():
    v = json.loads(http_request(f"http://127.0.0.1:{ports(0)['http']}/varz")[2])
    assert v["server_name"] == "xtask-ams-m0" and v["tags"] == ["region:ams"], v
    rz = json.loads(http_request(f"http://127.0.0.1:{ports(0)['http']}/routez")[2])
    assert rz["num_routes"] >= 2, rz
    # no anonymous client
    try:
        natsproto.Client(URLS[0], timeout=2).close()
    except IOError as e:
        assert "uthorization" in str(e), e
    else:
        raise AssertionError("an anonymous client was accepted")



def test_discover_sees_all():
    with client(URLS[0]) as c:
        def all3():
            got = sorted(m.json()["id"] for m in c.gather("xtask.nodes.discover", b"{}", 0.5))
            return got == ["ams-1", "dfw-1", "hkg-1"]
        wait_until(all3, 10, what="three nodes in discover")
        got = [m.json() for m in c.gather("xtask.nodes.discover", b'{"region":"dfw"}', 0.5)]
        assert [g["id"] for g in got] == ["dfw-1"] and got[0]["region"] == "dfw", got
    def regions():  # discover gathers for 500 ms: a loaded machine may need another ask
        p = xtask("nodes", "--json", url=URLS[2], env={"XTASK_NATS_CREDS": creds("admin", 2)})
        return p.returncode == 0 and {n["region"] for n in json.loads(p.stdout)} == set(REGIONS)
    wait_until(regions, 10, 0.1, "every region listed by `xtask nodes`")


def test_task_in_other_region():
    with client(URLS[0]) as c:  # connected in ams
        r = req_json(c, "xtask.dfw-1.task.run", {"args": ["where", "from-ams"]})
        assert r["node"] == "dfw-1" and r["output_tail"] == "from-ams\n", r
    p = xtask("run", "--node", "hkg-1", "where", "via-cli", url=URLS[0], env={"XTASK_NATS_CREDS": creds("admin")})
    assert p.returncode == 0 and p.stdout == "via-cli\n", p


def test_queue_runs_in_other_region():
    assert NODES[0].stop() == 0  # no coordinator left in ams
    with client(URLS[0]) as c:
        ids = [f"cq{i}" for i in range(4)]
        for i in ids:
            c.js_publish("xtask.queue.task", {"args": ["where", i], "id": tid(i)}, msg_id=tid(i))
        for i in ids:
            res = wait_until(lambda: c.js_last("xtask-results", f"xtask.results.*.{tid(i)}"), 15, what=f"result {i}")
            assert res["node"] in ("dfw-1", "hkg-1") and res["output"] == f"{i}\n", res
    NODES[0].start()


def test_results_r3_survive_server_loss():
    ids = []
    with client(URLS[0]) as c:
        info = c.js_api("STREAM.INFO.xtask-results")
        assert info["config"]["num_replicas"] == 3, info["config"]
        assert len(info["cluster"].get("replicas", [])) == 2, info["cluster"]
        for k in range(12):
            node = NODES[k % 3].id
            r = req_json(c, f"xtask.{node}.task.run", {"args": ["where", f"r{k}"], "id": tid(f"r3-{k}")})
            assert r["exit_code"] == 0, r
            ids.append(tid(f"r3-{k}"))
        for i in ids:
            wait_until(lambda: c.js_last("xtask-results", f"xtask.results.*.{i}"), 10, what=f"stored {i}")
    NODES[2].kill()
    SERVERS[2].kill()  # hkg server gone (SIGKILL): 2 of 3 keep quorum
    with client(URLS[0]) as c:
        for k, i in enumerate(ids):
            res = wait_until(lambda: c.js_last("xtask-results", f"xtask.results.*.{i}"), 20, interval=0.1,
                             what=f"{i} after losing a server")
            assert res["output"] == f"r{k}\n", res
        # and the cluster still stores new results
        r = req_json(c, "xtask.dfw-1.task.run", {"args": ["where", "after"], "id": tid("r3-after")})
        assert r["exit_code"] == 0
        wait_until(lambda: c.js_last("xtask-results", "xtask.results.*." + tid("r3-after")), 20, what="new result, 2 of 3")


def leaf_conf(name, port, remote):
    path = os.path.join(TMP.path, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f'server_name: {name}\nlisten: 127.0.0.1:{port}\n'
                f'leafnodes {{ reconnect: 1, remotes: [ {{ {remote} }} ] }}\n')
    return path


def leafz():
    return json.loads(http_request(f"http://127.0.0.1:{ports(0)['http']}/leafz")[2])["leafnodes"]


def test_leaf_credential_and_old_password():
    hub = f"127.0.0.1:{ports(0)['leaf']}"
    ca = os.path.join(MASTER, "tls", "ca.pem")
    ops = os.path.join(TMP.path, "ops.creds")  # an operator's machine: the admin role
    bus_tool(["user", "add", "ops", "--role", "admin", "--out", ops, "--dir", MASTER])
    good = Proc([bin_path("nats-server"), "-c", leaf_conf("leaf-ok", PORTS[27],
                                                        f'url: "tls://{hub}", credentials: "{ops}", tls {{ ca_file: "{ca}" }}')])
    bad = Proc([bin_path("nats-server"), "-c", leaf_conf("leaf-bad", PORTS[28],
                                                       f'url: "tls://xtask:xtold0123@{hub}", tls {{ ca_file: "{ca}" }}')])
    try:
        wait_until(lambda: leafz() == 1, 10, what="the leaf with a bus credential joins")
        bad.wait_output("[Aa]uthorization [Vv]iolation", 10)
        assert leafz() == 1
        # a developer machine behind the leaf sees the cluster's nodes (its own server: no auth there)
        with natsproto.Client(f"nats://127.0.0.1:{PORTS[27]}") as c:
            def seen():
                return len(c.gather("xtask.nodes.discover", b"{}", 0.5)) >= 2
            wait_until(seen, 10, what="discover through the leaf")
    finally:
        good.kill()
        bad.kill()


def main():
    try:
        setup()
        run_tests([test_routes_and_tags, test_discover_sees_all, test_task_in_other_region,
                   test_queue_runs_in_other_region, test_leaf_credential_and_old_password,
                   test_results_r3_survive_server_loss])
    finally:
        for n in NODES:
            n.kill()
        for s in SERVERS:
            if s:
                s.kill()
        TMP.cleanup()


if __name__ == "__main__":
    main()
