"""Edge machines for the tests: a BusCluster as the hub (its regions), a region's platform node that
makes the streams, `xtask node add` in the master bus directory and `xtask join` on a "machine" (its
own state directory and ports, its own xtask-supervisor)."""
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "coordinator"))
sys.path.insert(0, os.path.join(HERE, "..", "bus"))

from buslib import Probe  # noqa: E402
from coordlib import Node, xtask  # noqa: E402
from xt_bus import BusCluster  # noqa: E402
from xt_testlib import Proc, bin_path, port_block, wait_until  # noqa: E402

PLATFORM_CONF = """
nats: {{ creds: '{creds}', heartbeat: 500ms, node_ttl: 3s, manage_streams: true, replicas: {replicas},
        results_max_bytes: 16MiB, queue_max_bytes: 8MiB, nodes_max_bytes: 1MiB }}
audit: {{ max_bytes: 16MiB }}
node: {{ capabilities: [task, which] }}
queue: {{ capabilities: [task], ack_wait: 3s }}
tasks:
  echo: {{ argv: [echo], args: true, timeout: 10s }}
  noop: {{ argv: ["true"], timeout: 10s }}
"""

EDGE_TASKS = """tasks:
  echo: { argv: [echo], args: true, timeout: 10s }
  sleep: { argv: [sleep], args: true, timeout: 30s }
  noop: { argv: ["true"], timeout: 10s }
"""


def tid(label):
    import hashlib
    return "t-" + hashlib.sha256(f"{os.getpid()}:{label}".encode()).hexdigest()[:16]


class Hub:
    """n regions, a platform node on region 0 (streams R`replicas`)."""

    def __init__(self, n=3, replicas=3, ports=None, leaf_ws=False):
        self.bus = BusCluster(n=n, ports=ports or port_block("edge", 4 * n + 40), leaf_js=True, leaf_ws=leaf_ws)
        self.replicas = replicas
        self.platform = None
        self.machines = []

    def start(self):
        self.bus.start()
        r0 = self.bus.regions[0]
        self.platform = Node(self.bus.tmp.path, r0.name, r0.url,
                             PLATFORM_CONF.format(creds=self.bus.creds("node"), replicas=self.replicas))
        self.platform.start(wait=False)
        self.wait_node(r0.name, 0, self.platform.proc)
        return self

    def stop(self):
        for m in self.machines:
            m.kill()
        if self.platform:
            self.platform.kill()
        self.bus.stop()

    def web(self, region=0):
        """The web front's identity in `region` (sends verbs on behalf of users)."""
        c = Probe(self.bus.regions[region].url, creds=self.bus.creds("web", region))
        c.prefix = f"_INBOX_web.t{id(c):x}"
        return c

    def admin(self, region=0):
        c = Probe(self.bus.regions[region].url, creds=os.path.join(self.bus.master, "creds", "admin.creds"))
        c.prefix = f"_INBOX_admin.t{id(c):x}"
        return c

    def hubs(self):
        return [f"tls://127.0.0.1:{r.leaf_port}" for r in self.bus.regions]

    def node_add(self, name, caps=("task", "ci"), expires=None, check=True, extra=(), hubs=None):
        """`xtask node add` (admin, master bus dir); returns (CompletedProcess, bundle file)."""
        out = os.path.join(self.bus.tmp.path, f"{name}.bundle")
        args = ["node", "add", name, "--bus-dir", self.bus.master, "--server", self.bus.regions[0].url,
                "--ack-wait", "3s", "--out", out, "--tag", "test"]
        for c in caps:
            args += ["--capability", c]
        for h in hubs if hubs is not None else [f"{r.name}={h}" for r, h in zip(self.bus.regions, self.hubs())]:
            args += ["--hub", h]   # REGION=URL: the region names the hub in the node's record
        if expires:
            args += ["--expires", expires]
        r = xtask(*args, *extra)
        if check:
            assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        return r, out

    def record(self, name, via):
        """`xtask node list --json` through region `via`: the node's row (bus dir + live record)."""
        r = xtask("node", "list", "--bus-dir", self.bus.master, "--server", self.bus.regions[via].url, "--json")
        assert r.returncode == 0, r.stderr
        return {n["name"]: n for n in json.loads(r.stdout)}.get(name)

    def node_revoke(self, name, via=0):
        return xtask("node", "revoke", name, "--bus-dir", self.bus.master, "--server", self.bus.regions[via].url,
                     "--creds", os.path.join(self.bus.master, "creds", "sys.creds"))

    def wait_node(self, node, region, proc=None, timeout=30):
        """node answers ping with JetStream bound, asked through `region`."""
        def ok():
            if proc is not None and not proc.running():
                raise AssertionError(f"{node}: process exited: {proc.output()[-3000:]}")
            try:
                with self.web(region) as c:
                    return c.request(f"xtask.{node}.ping", b"{}", 1.0).json().get("jetstream")
            except (IOError, OSError, ValueError):
                return None
        wait_until(ok, timeout, interval=0.05, what=f"{node} answers through region {region}")

    def machine(self, name):
        m = Machine(self, name)
        self.machines.append(m)
        return m


class Machine:
    """One edge machine: its state dir, its ports, `xtask join` (which becomes its supervisor)."""

    def __init__(self, hub, name):
        self.hub, self.name = hub, name
        self.dir = os.path.join(hub.bus.tmp.path, f"machine-{name}")
        self.port, self.http_port = hub.bus.take_port(), hub.bus.take_port()
        self.tasks = os.path.join(hub.bus.tmp.path, f"tasks-{name}.yaml")
        with open(self.tasks, "w") as f:
            f.write(EDGE_TASKS)
        self.proc = None

    def argv(self, bundle, *extra):
        return [bin_path("xtask"), "join", bundle, "--dir", self.dir, "--port", str(self.port), "--http-port",
                str(self.http_port), "--tasks", self.tasks, *extra]

    def join(self, bundle, *extra, env=None):
        self.proc = Proc(self.argv(bundle, *extra), env=env)
        return self.proc

    def join_once(self, bundle, *extra, timeout=60):
        """A join expected to fail: (exit code, output)."""
        import subprocess
        r = subprocess.run(self.argv(bundle, *extra), capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def node_pid(self):
        """The node's pid from the supervisor's status."""
        import subprocess
        r = subprocess.run([bin_path("xtask-supervisor"), "-s", os.path.join(self.dir, "run", "supervisor.sock"),
                            "status", "--json"], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return None
        for s in json.loads(r.stdout)["services"]:
            if s["name"] == "node" and s["state"] == "READY":
                return s["pid"]
        return None

    def stop(self, timeout=10):
        self.proc.signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self):
        """The supervisor stops its services on SIGTERM (each is its own session: a group kill of the
        supervisor would miss them); SIGKILL only if it does not exit."""
        if self.proc:
            if self.proc.running():
                self.proc.signal(signal.SIGTERM)
                try:
                    self.proc.wait(10)
                except AssertionError:
                    pass
            self.proc.kill()
