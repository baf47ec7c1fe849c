"""The image as an edge node (label "container"): build the image (docker/build.sh: after the
stack_container test of the same run its layers are cached, so this is one build per CI run), start a
hub on loopback (a BusCluster region and its platform node, TLS leaf port), mint a node with
`xtask node add`, then `podman run --network host -e XTASK_JOIN_BUNDLE=... IMAGE edge`: the command
the README gives macOS and Windows developers. The node must answer through the hub, run a task sent
by the web identity, report the hub's region in its record, and stop cleanly on SIGTERM.

Needs root and podman (as test_container.py). Ports: port_block("edge"). The container's log is
printed when a check fails."""
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "edge"))

from edgelib import Hub, tid  # noqa: E402
from xt_testlib import SOURCE_DIR, port_block, wait_until  # noqa: E402

IMAGE = f"localhost/xtask:test-edge-{os.getpid()}"
CONTAINER = f"xtedge{os.getpid()}"
T0 = time.monotonic()


def step(name):
    print(f"[{time.monotonic() - T0:6.1f}s] {name}", flush=True)


def run(argv, timeout=120, check_rc=True, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=SOURCE_DIR)
    if check_rc and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def running():
    r = run(["podman", "inspect", "-f", "{{.State.Running}}", CONTAINER], check_rc=False, timeout=30)
    return r.returncode == 0 and r.stdout.strip() == "true"


def main():
    if os.geteuid() != 0 or not shutil.which("podman"):
        print("SKIP: needs root and podman (the stack_container test sets podman up)")
        return
    hub = Hub(n=1, replicas=1, ports=port_block("edge", 44))
    built = False
    try:
        step("podman build")
        run(["docker/build.sh", IMAGE], timeout=1500, env=dict(os.environ, XTASK_ENGINE="podman"))
        built = True
        step("built")
        hub.start()
        region = hub.bus.regions[0].name
        r, bundle = hub.node_add("box-1", caps=("task",))
        text = open(bundle).read().strip()
        port, http_port = hub.bus.take_port(), hub.bus.take_port()
        # the README's command, plus ports of this test's block (host network: the defaults are shared)
        run(["podman", "run", "-d", "--name", CONTAINER, "--network", "host", "-e", f"XTASK_JOIN_BUNDLE={text}",
             IMAGE, "edge", "--port", str(port), "--http-port", str(http_port)], timeout=60)
        step("container started")
        hub.wait_node("box-1", 0, timeout=60)
        step("the edge node answers through the hub")
        with hub.web(0) as w:
            t = tid("container")
            rep = w.request("xtask.box-1.task.run", json.dumps({"args": ["echo", "from-the-image"], "id": t,
                                                                "requested_by": "alice", "via": "web"}).encode(),
                            10).json()
            assert rep.get("exit_code") == 0 and "from-the-image" in rep.get("output_tail", ""), rep
            found = w.gather("xtask.nodes.discover", b"{}", 1.0)
            recs = {json.loads(x.data)["id"]: json.loads(x.data) for x in found}
            assert recs.get("box-1", {}).get("region") == region, recs.get("box-1")
        step("a task ran on the edge node in the container")
        who = run(["podman", "exec", CONTAINER, "ps", "-o", "user=", "-C", "xtask"]).stdout.split()
        assert who and set(who) == {"xtask"}, f"the node runs as the image's user, not root: {who}"
        t = time.monotonic()
        run(["podman", "stop", "-t", "10", CONTAINER], timeout=30)
        took = time.monotonic() - t
        code = run(["podman", "inspect", "-f", "{{.State.ExitCode}}", CONTAINER]).stdout.strip()
        assert code == "0" and took < 5.0, f"SIGTERM: exit {code} after {took:.1f}s"
        step(f"stopped by SIGTERM in {took:.2f}s, exit 0")
    except (AssertionError, OSError):
        logs = run(["podman", "logs", CONTAINER], check_rc=False, timeout=60)
        print(f"--- container log (last lines) ---\n{(logs.stdout + logs.stderr)[-6000:]}", flush=True)
        raise
    finally:
        run(["podman", "rm", "-f", "-v", CONTAINER], check_rc=False, timeout=60)
        if built:
            run(["podman", "rmi", "-f", IMAGE], check_rc=False, timeout=60)  # the layers stay cached
        hub.stop()
    print(f"container edge test: {time.monotonic() - T0:.1f}s")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("ok")
