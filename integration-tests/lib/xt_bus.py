"""The bus in operator/JWT mode for tests and benchmarks: `xtask-bus init` into a temporary directory
and real nats-servers started on it, one or several clustered as the regions are (the shape of
configs/nats.conf + nats-cluster.conf in operator mode: full resolver, route password, leaf
listener with TLS from the platform CA, JWT-authenticated leaf connections and clients).

    from xt_bus import BusCluster
    with BusCluster(n=3) as bus:            # three regions, routes authenticated
        bus.probe("pubsub", "x.y", creds=bus.creds("admin"), region=2)
        path = bus.add_user("dev", "admin", expires="1h")
        leaf = bus.leaf("edge", path)         # a leaf nats-server over TLS to region 0's 7422
        bus.revoke("dev")                     # $SYS.REQ.CLAIMS.UPDATE through region 0

Like the product on Fly: one "laptop" directory made by `xtask-bus init` (bus.master), exported as a
bundle (`xtask-bus export`), materialized in each region's own directory by `xtask-bus init` with
XTASK_BUS_BUNDLE set; users are minted in the master directory from the shared account key.
Ports come from port_block("bus") unless given. Every process is killed when the fixture ends.
"""
import json
import os
import subprocess

from xt_testlib import (NatsServer, Proc, TempDir, bin_path, http_request, port_block, wait_until)

TEST_BIN_DIR = os.environ.get("XT_TEST_BIN_DIR",
                              os.path.join(os.path.dirname(bin_path("xtask-bus")), "..", "tests"))


def bus_tool(args, env=None, check=True, timeout=30):
    """Run xtask-bus; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e.pop("XTASK_BUS_BUNDLE", None)
    e.update(env or {})
    r = subprocess.run([bin_path("xtask-bus")] + list(args), capture_output=True, text=True, env=e,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"xtask-bus {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def probe(mode, *args, url, creds=None, tls_ca=None, timeout_ms=3000, check=False, timeout=30):
    """Run bus-probe (a nats.c client reading .creds); returns CompletedProcess (text)."""
    argv = [os.path.join(TEST_BIN_DIR, "bus-probe"), "--url", url, "--timeout-ms", str(timeout_ms)]
    if creds:
        argv += ["--creds", creds]
    if tls_ca:
        argv += ["--tls-ca", tls_ca]
    r = subprocess.run(argv + [mode] + list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"bus-probe {mode} {args} at {url}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def http_json_get(url, timeout=2):
    st, _, body = http_request(url, timeout=timeout)
    return json.loads(body) if st == 200 else None


class Region:
    """One region's nats-server in operator mode, on its own bus directory."""

    def __init__(self, fixture, index, ports):
        self.index = index
        self.name = f"bus-r{index}"
        self.port, self.http_port, self.leaf_port, self.cluster_port = ports
        self.root = os.path.join(fixture.tmp.path, self.name)
        self.dir = os.path.join(self.root, "bus")
        self.server = None
        self.leaf_tls = fixture.leaf_tls
        self.ws_port = None  # BusCluster(leaf_ws=True): the websocket listener (leaf links via the front)

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    @property
    def leaf_url(self):
        return f"{'tls' if self.leaf_tls else 'nats'}://127.0.0.1:{self.leaf_port}"

    def conf(self, cluster_ports, route_user, route_password, leaf_tls=True, extra="", xtask_account=None):
        d = self.dir
        tls = (f'  tls {{ cert_file: "{d}/tls/server.pem", key_file: "{d}/tls/server-key.pem", timeout: 2 }}\n'
               if leaf_tls else "")
        text = (f'operator: "{d}/operator.jwt"\n'
                f'resolver {{ type: full, dir: "{d}/jwt", allow_delete: false, interval: "2m" }}\n'
                'max_payload: 1048576\n'
                f'server_tags: ["region:{self.name}"]\n'
                'leafnodes {\n  host: 127.0.0.1\n'
                f'  port: {self.leaf_port}\n{tls}'
                '}\n')
        if self.ws_port:
            # what the front passes /leafnode to (edge leafs over WebSocket): loopback, no TLS (the
            # front terminates it); a leaf still authenticates with its JWT
            text += f'websocket {{\n  host: 127.0.0.1\n  port: {self.ws_port}\n  no_tls: true\n}}\n'

        if xtask_account:
            # JetStream's API over leaf links (edge nodes pull from the queue through their leaf):
            # nats-server 2.9 denies $JS.API.>, $KV.>, $OBJ.> on a leaf connection of an account
            # unless it is mapped to the default (empty) JetStream domain, on both ends (docs/EDGE.md)
            text += f'default_js_domain: {{ {xtask_account}: "" }}\n'
        if cluster_ports:
            routes = ", ".join(f'"nats://{route_user}:{route_password}@127.0.0.1:{p}"' for p in cluster_ports)
            text += ('cluster {\n  name: xtask\n  host: 127.0.0.1\n'
                     f'  port: {self.cluster_port}\n'
                     f'  authorization {{ user: {route_user}, password: {route_password}, timeout: 2 }}\n'
                     f'  routes: [{routes}]\n}}\n')
        return text + extra


class BusCluster:
    """n regions (n=1: a single server without a cluster block). leaf_tls=False gives the leaf
    listener without TLS (leaf connections still authenticate with their JWT): only as the
    benchmark's comparison point for "a leaf round trip with TLS beside the same without"."""

    ROUTE_USER = "xtask-route"

    def __init__(self, n=1, ports=None, js_memory="256M", js_disk="1G", domain="xtask.localhost", leaf_tls=True,
                 leaf_js=False, leaf_ws=False):
        self.n = n
        self.leaf_js = leaf_js
        self.leaf_tls = leaf_tls
        need = 4 * n + 20
        self.ports = ports or port_block("bus", need)
        self.spare = list(self.ports[4 * n:])  # for leafs, rogues and other helpers
        self.tmp = TempDir("xt-bus-")
        self.master = os.path.join(self.tmp.path, "master")
        self.js_memory, self.js_disk, self.domain = js_memory, js_disk, domain
        self.regions = [Region(self, i, self.ports[4 * i:4 * i + 4]) for i in range(n)]
        if leaf_ws:
            for r in self.regions:
                r.ws_port = self.take_port()
        self.extra = []  # leaf and rogue servers

    # --- setup ------------------------------------------------------------------------------
    def init(self):
        bus_tool(["init", "--dir", self.master, "--domain", self.domain, "--js-memory", self.js_memory,
                  "--js-disk", self.js_disk])
        bundle = bus_tool(["export", "--dir", self.master, "--value"]).stdout.strip()
        for r in self.regions:
            bus_tool(["init", "--dir", r.dir, "--domain", self.domain, "--node-id", r.name, "--js-memory",
                      self.js_memory, "--js-disk", self.js_disk], env={"XTASK_BUS_BUNDLE": bundle})
        with open(os.path.join(self.master, "route-password")) as f:
            self.route_password = f.read().strip()
        return self

    def start(self, timeout=30):
        if not os.path.exists(os.path.join(self.master, "operator.jwt")):
            self.init()
        cluster_ports = [r.cluster_port for r in self.regions] if self.n > 1 else []
        acct = self.xtask_account() if self.leaf_js else None
        for r in self.regions:
            r.server = NatsServer(r.port, r.http_port, r.root, name=r.name,
                                  extra_conf=r.conf(cluster_ports, self.ROUTE_USER, self.route_password,
                                                    self.leaf_tls, xtask_account=acct))
            r.server.proc = Proc([bin_path("nats-server"), "-c", r.server.conf])
        # in a cluster JetStream is healthy once there is a meta leader (every region up)
        path = "healthz" if self.n > 1 else "healthz?js-enabled-only=true"
        for r in self.regions:
            wait_until(lambda r=r: http_request(f"http://127.0.0.1:{r.http_port}/{path}", timeout=1)[0] == 200,
                       timeout, 0.05, f"{r.name} healthy")
        if self.n > 1:
            for r in self.regions:
                wait_until(lambda r=r: self.routes(r) >= self.n - 1, timeout, 0.05, f"{r.name} routed to all")
        # healthz can answer before the system account takes its users (a sys user was refused once
        # in ~20 starts under load): ready means both accounts' platform users get in
        for r in self.regions:
            for who in ("sys", "admin"):
                wait_until(lambda r=r, who=who: probe("connect", url=r.url, creds=self.creds(who, r.index),
                                                      timeout_ms=1000).returncode == 0,
                           timeout, 0.05, f"{r.name} accepts the {who} user")
        return self

    def stop(self):
        for p in self.extra:
            p.kill()
        for r in self.regions:
            if r.server and r.server.proc:
                r.server.proc.kill()
        self.tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # --- identities ---------------------------------------------------------------------------
    def xtask_account(self):
        """The XTASK account's public key (`xtask-bus show`)."""
        import re
        show = bus_tool(["show", "--dir", self.master]).stdout
        return re.search(r"^account\s+XTASK\s+(A\S+)", show, re.M).group(1)

    @property
    def ca(self):
        return os.path.join(self.master, "tls", "ca.pem")

    def creds(self, name, region=0):
        """A platform identity's .creds as region `region`'s init made it."""
        return os.path.join(self.regions[region].dir, "creds", f"{name}.creds")

    def add_user(self, name, role, caps=(), expires=None):
        """`xtask-bus user add` in the master directory; returns the .creds path."""
        out = os.path.join(self.tmp.path, f"{name}.creds")
        args = ["user", "add", name, "--role", role, "--out", out, "--dir", self.master]
        for c in caps:
            args += ["--capability", c]
        if expires:
            args += ["--expires", expires]
        bus_tool(args)
        return out

    def revoke(self, name, via=0):
        """`xtask-bus user revoke NAME` pushed through region `via` as the SYS user."""
        return bus_tool(["user", "revoke", name, "--dir", self.master, "--server", self.regions[via].url,
                         "--creds", os.path.join(self.master, "creds", "sys.creds")])

    # --- observation ----------------------------------------------------------------------------
    def probe(self, mode, *args, creds=None, region=0, **kw):
        try:
            return probe(mode, *args, url=self.regions[region].url, creds=creds, **kw)
        except AssertionError as e:
            tail = "\n".join(self.log(region).splitlines()[-15:])
            raise AssertionError(f"{e}\n--- {self.regions[region].name} log (last lines) ---\n{tail}") from None

    def monitor(self, region, endpoint):
        return http_json_get(f"http://127.0.0.1:{self.regions[region].http_port}/{endpoint}")

    def routes(self, region):
        if isinstance(region, Region):
            region = region.index
        z = self.monitor(region, "routez")
        return z["num_routes"] if z else 0

    def leafs(self, region=0):
        z = self.monitor(region, "leafz")
        return z["leafnodes"] if z else 0

    def log(self, region=0):
        return self.regions[region].server.proc.output()

    # --- helpers other servers -------------------------------------------------------------------
    def take_port(self):
        return self.spare.pop(0)

    def leaf(self, name, creds, region=0, ca=None, url=None, tls=None):
        """A leaf nats-server with one remote to region `region`'s leaf port: TLS verified with `ca`
        (default: the platform CA; tls=None follows the hub's leaf_tls), authenticated with `creds`.
        Returns its Proc (log: .output(); its client port: .port, no auth: a local leaf's own
        clients are the machine's business)."""
        if tls is None:
            tls = self.leaf_tls
        port = self.take_port()
        url = url or self.regions[region].leaf_url
        tls_block = f'tls {{ ca_file: "{ca or self.ca}" }}' if tls else ""
        conf = os.path.join(self.tmp.path, f"{name}.conf")
        with open(conf, "w") as f:
            f.write(f'server_name: "{name}"\nhost: 127.0.0.1\nport: {port}\n'
                    f'leafnodes {{ reconnect: 1, remotes [ {{ url: "{url}", credentials: "{creds}"{", " + tls_block if tls_block else ""} }} ] }}\n')
        p = Proc([bin_path("nats-server"), "-c", conf])
        p.port = port
        self.extra.append(p)
        return p

    def rogue_route(self, name, region=0, user=None, password=None):
        """A plain nats-server naming cluster xtask with a route to region `region`'s cluster port,
        with the given route credential (none by default). Returns its Proc."""
        port, cport, hport = self.take_port(), self.take_port(), self.take_port()
        cred = f"{user}:{password}@" if user else ""
        conf = os.path.join(self.tmp.path, f"{name}.conf")
        with open(conf, "w") as f:
            f.write(f'server_name: "{name}"\nhost: 127.0.0.1\nport: {port}\nhttp: 127.0.0.1:{hport}\n'
                    f'cluster {{ name: xtask, host: 127.0.0.1, port: {cport}, '
                    f'routes: ["nats://{cred}127.0.0.1:{self.regions[region].cluster_port}"] }}\n')
        p = Proc([bin_path("nats-server"), "-c", conf])
        p.http_port = hport
        self.extra.append(p)
        return p
