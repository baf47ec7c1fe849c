"""Three regions on loopback: three nats-servers started from configs/nats-cluster.conf (which
includes configs/nats.conf) with a coordinator each. Discover sees all three; work submitted in one
region runs on a node of another; R3 xtask-results keeps every result when one server is killed;
a leaf node with the right password joins (and sees the nodes), a wrong password is refused."""
import json
import os

from coordlib import Node, natsproto, req_json, run_tests, xtask, tid
from xt_testlib import Proc, SOURCE_DIR, TempDir, bin_path, http_request, port_block, wait_until

PORTS = port_block("coordinator", 30)
TMP = TempDir("xt-coord-cluster-")
REGIONS = ["ams", "dfw", "hkg"]
LEAF_PASSWORD = "s3cr3t+/Leaf=="
CONF = os.path.join(SOURCE_DIR, "configs", "nats-cluster.conf")


def ports(i):
    b = 10 * i
    return {"client": PORTS[b], "http": PORTS[b + 1], "leaf": PORTS[b + 2], "cluster": PORTS[b + 3]}


def server_env(i):
    p = ports(i)
    routes = ", ".join(f"nats://127.0.0.1:{ports(j)['cluster']}" for j in range(3))
    return {"NATS_SERVER_NAME": f"xtask-{REGIONS[i]}-m{i}", "XTASK_DATA_DIR": os.path.join(TMP.path, REGIONS[i]),
            "XTASK_NATS_HOST": "127.0.0.1", "XTASK_NATS_PORT": p["client"],
            "XTASK_NATS_HTTP": f"127.0.0.1:{p['http']}", "XTASK_NATS_LEAF_HOST": "127.0.0.1",
            "XTASK_NATS_LEAF_PORT": p["leaf"], "XTASK_LEAF_USER": "xtask", "XTASK_LEAF_PASSWORD": LEAF_PASSWORD,
            "XTASK_NATS_REGION_TAG": f"region:{REGIONS[i]}", "XTASK_NATS_CLUSTER_HOST": "127.0.0.1",
            "XTASK_NATS_CLUSTER_PORT": p["cluster"], "XTASK_NATS_ROUTES": f"[{routes}]"}


SERVERS = [None, None, None]
NODES = []
URLS = [f"nats://127.0.0.1:{ports(i)['client']}" for i in range(3)]
NODE_CONFIG = """
nats: { heartbeat: 500ms, node_ttl: 3s, replicas: 3 }
queue: { ack_wait: 3s }
tasks:
  noop: ["true"]
  where: { argv: [echo], args: true }
"""


def start_server(i):
    SERVERS[i] = Proc([bin_path("nats-server"), "-c", CONF], env=server_env(i))


def js_ok(url):
    with natsproto.Client(url, timeout=1) as c:
        r = c.js_api("INFO", b"", 1)
        return "error" not in r


def setup():
    for i in range(3):
        start_server(i)
    for i in range(3):
        wait_until(lambda: http_request(f"http://127.0.0.1:{ports(i)['http']}/healthz?js-enabled-only=true",
                                        timeout=1)[0] == 200, 15, what=f"server {i}")
    for i in range(3):
        wait_until(lambda: js_ok(URLS[i]), 30, interval=0.1, what=f"JetStream meta leader via {REGIONS[i]}")
    for i, r in enumerate(REGIONS):
        NODES.append(Node(TMP.path, f"{r}-1", URLS[i], NODE_CONFIG, region=r))
    for n in NODES:
        n.start(wait=False)
    for n in NODES:
        n.wait_ready(30)


def test_routes_and_tags():
    v = json.loads(http_request(f"http://127.0.0.1:{ports(0)['http']}/varz")[2])
    assert v["server_name"] == "xtask-ams-m0" and v["tags"] == ["region:ams"], v
    rz = json.loads(http_request(f"http://127.0.0.1:{ports(0)['http']}/routez")[2])
    assert rz["num_routes"] >= 2, rz


def test_discover_sees_all():
    with natsproto.Client(URLS[0]) as c:
        def all3():
            got = sorted(m.json()["id"] for m in c.gather("xtask.nodes.discover", b"{}", 0.5))
            return got == ["ams-1", "dfw-1", "hkg-1"]
        wait_until(all3, 10, what="three nodes in discover")
        got = [m.json() for m in c.gather("xtask.nodes.discover", b'{"region":"dfw"}', 0.5)]
        assert [g["id"] for g in got] == ["dfw-1"] and got[0]["region"] == "dfw", got
    def regions():  # discover gathers for 500 ms: a loaded machine may need another ask
        p = xtask("nodes", "--json", url=URLS[2])
        return p.returncode == 0 and {n["region"] for n in json.loads(p.stdout)} == set(REGIONS)
    wait_until(regions, 10, 0.1, "every region listed by `xtask nodes`")


def test_task_in_other_region():
    with natsproto.Client(URLS[0]) as c:  # connected in ams
        r = req_json(c, "xtask.dfw-1.task.run", {"args": ["where", "from-ams"]})
        assert r["node"] == "dfw-1" and r["output_tail"] == "from-ams\n", r
    p = xtask("run", "--node", "hkg-1", "where", "via-cli", url=URLS[0])
    assert p.returncode == 0 and p.stdout == "via-cli\n", p


def test_queue_runs_in_other_region():
    assert NODES[0].stop() == 0  # no coordinator left in ams
    with natsproto.Client(URLS[0]) as c:
        ids = [f"cq{i}" for i in range(4)]
        for i in ids:
            c.js_publish("xtask.queue.task", {"args": ["where", i], "id": tid(i)}, msg_id=tid(i))
        for i in ids:
            res = wait_until(lambda: c.js_last("xtask-results", f"xtask.results.*.{tid(i)}"), 15, what=f"result {i}")
            assert res["node"] in ("dfw-1", "hkg-1") and res["output"] == f"{i}\n", res
    NODES[0].start()


def test_results_r3_survive_server_loss():
    ids = []
    with natsproto.Client(URLS[0]) as c:
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
    with natsproto.Client(URLS[0]) as c:
        for k, i in enumerate(ids):
            res = wait_until(lambda: c.js_last("xtask-results", f"xtask.results.*.{i}"), 20, interval=0.1,
                             what=f"{i} after losing a server")
            assert res["output"] == f"r{k}\n", res
        # and the cluster still stores new results
        r = req_json(c, "xtask.dfw-1.task.run", {"args": ["where", "after"], "id": tid("r3-after")})
        assert r["exit_code"] == 0
        wait_until(lambda: c.js_last("xtask-results", "xtask.results.*." + tid("r3-after")), 20, what="new result, 2 of 3")


def leaf_conf(name, port, password):
    path = os.path.join(TMP.path, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f'server_name: {name}\nlisten: 127.0.0.1:{port}\n'
                f'leafnodes {{ remotes: [ {{ url: "nats://xtask:{password}@127.0.0.1:{ports(0)["leaf"]}" }} ] }}\n')
    return path


def leafz():
    return json.loads(http_request(f"http://127.0.0.1:{ports(0)['http']}/leafz")[2])["leafnodes"]


def test_leaf_right_and_wrong_password():
    import urllib.parse
    good = Proc([bin_path("nats-server"), "-c", leaf_conf("leaf-ok", PORTS[27], urllib.parse.quote(LEAF_PASSWORD, safe=""))])
    bad = Proc([bin_path("nats-server"), "-c", leaf_conf("leaf-bad", PORTS[28], "wrong")])
    try:
        wait_until(lambda: leafz() == 1, 10, what="the good leaf joins")
        bad.wait_output("[Aa]uthorization [Vv]iolation", 10)
        assert leafz() == 1
        # a developer machine behind the leaf sees the cluster's nodes
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
                   test_queue_runs_in_other_region, test_leaf_right_and_wrong_password,
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
