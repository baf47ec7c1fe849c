"""The shipped stack's bus (configs/nats.conf in operator mode, configs/services.yaml), as a user runs
it: no anonymous NATS connection, every platform service under its own identity, and the leaf port
speaking TLS only, to leafs that authenticate with a node credential.
- an anonymous client is refused on the client port; the admin credential is accepted;
- the coordinator, web and auth are connected as node-<id>, web and auth (the server's connz);
- a leaf in plain text is refused (the hub demands TLS; a CONNECT in clear gets no answer), a leaf
  that cannot verify the hub (no platform CA) sends nothing, one with the old shared user/password
  (over TLS) is refused, and one with
  a node credential (`xtask-bus user add --role node`) over TLS verified with the platform CA
  connects, and its clients reach the platform only as that node (the hub's leafz shows it).
- every stream and bucket of the running stack (results, queue, audit, node registry, sessions) has a
  max_bytes, and the XTASK account refuses a stream without one (max_bytes_required in its JWT).
"""
import json
import os
import socket
import subprocess
import sys

from stack import Stack, tool
from stacklib import check, nats_connect_error
from xt_testlib import Proc, bin_path, http_request, port_block, wait_until


def monitor(s, endpoint):
    st, _, body = http_request(f"http://127.0.0.1:{s.nats_http_port}/{endpoint}", timeout=2)
    check(st == 200, f"/{endpoint}: {st}")
    return json.loads(body)


def leaf(s, name, port, remote, top=""):
    """A leaf nats-server (client port `port`) with one remote to the stack's leaf port."""
    conf = os.path.join(s.tmp.path, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f'server_name: "{name}"\nhost: 127.0.0.1\nport: {port}\n{top}'
                f'leafnodes {{ reconnect: 1, remotes [ {{ {remote} }} ] }}\n')
    return Proc([bin_path("nats-server"), "-c", conf])


def main():
    ports = port_block("stack", 12)
    # shared sessions: auth makes its bucket (every stream and bucket of the stack is checked below)
    s = Stack(ports[:8], "local", name="bus", extra_env={"XTASK_AUTH_SHARED_SESSIONS": "true"})
    leafs = []
    try:
        s.start()
        s.wait_healthy(60)

        # --- clients ------------------------------------------------------------------------------
        err = nats_connect_error(s.nats_port)
        check(err and "authorization violation" in err.lower(), f"anonymous client: {err}")
        check(nats_connect_error(s.nats_port, s.creds("admin")) is None, "the admin credential is refused")
        print("anonymous client refused on the client port; admin accepted", flush=True)

        # --- the platform's own services, each as itself ------------------------------------------
        def names():
            conns = monitor(s, "connz?auth=true&limit=100")["connections"]
            return {c.get("name", ""): c.get("name_tag", "") for c in conns}
        want = {"xtask-node-local-node": "node-local-node", "xtask-web-local": "web"}
        wait_until(lambda: all(names().get(k) == v for k, v in want.items()), 15, 0.1,
                   f"services connected as {want}: {names()}")
        tags = set(names().values())
        check("auth" in tags, f"auth's connection (audit) as identity auth: {names()}")
        check("admin" not in tags and "" not in tags, f"a service without its own identity: {names()}")
        print(f"services connected as their identities: {sorted(tags)}", flush=True)
        # the XTASK account has its JetStream (with a server budget below twice the account's limits,
        # two first connections enabling it at once could leave it without: "insufficient memory
        # resources available"; the loser of that race may still log an error, the account must work)
        check("error" not in s.js_api("INFO"), f"JetStream for the account: {s.js_api('INFO')}")

        # --- every stream and bucket bounded in bytes -----------------------------------------------
        want_streams = {"xtask-results", "xtask-queue", "xtask-audit", "KV_xtask_nodes", "KV_xtask_sessions"}
        def streams():
            return set(s.js_api("STREAM.NAMES").get("streams") or [])
        wait_until(lambda: want_streams <= streams(), 30, 0.2, f"the stack's streams {sorted(want_streams)}")
        for name in sorted(streams()):
            cfg = s.js_api(f"STREAM.INFO.{name}").get("config", {})
            check(cfg.get("max_bytes", -1) > 0, f"stream {name} without max_bytes: {cfg}")
        r = s.js_api("STREAM.CREATE.unbounded", {"name": "unbounded", "subjects": ["unbounded.>"]})
        check(r.get("error", {}).get("err_code") == 10113, f"a stream without max_bytes: {r}")
        print(f"streams and buckets bounded in bytes: {sorted(streams())}; an unbounded one refused", flush=True)

        # --- the leaf port ------------------------------------------------------------------------
        bus = s.bus_dir
        ca = os.path.join(bus, "tls", "ca.pem")
        edge = os.path.join(s.tmp.path, "edge-1.creds")
        r = subprocess.run([tool("xtask-bus"), "user", "add", "edge-1", "--role", "node", "--capability", "task",
                            "--out", edge, "--dir", bus], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"xtask-bus user add: {r.stderr}")
        hub = f"127.0.0.1:{s.leaf_port}"
        # a leaf speaking plain text: the hub's INFO demands TLS, and a CONNECT in clear (here the old
        # shared user/password) gets no PONG, only the connection closed
        with socket.create_connection(("127.0.0.1", s.leaf_port), timeout=5) as c:
            f = c.makefile("rb")
            info = json.loads(f.readline()[5:])
            check(info.get("tls_required") is True, f"leaf INFO without tls_required: {info}")
            c.sendall(b'CONNECT {"user":"xtask","pass":"xt0123456789abcdef","verbose":false}\r\nPING\r\n')
            rest, closed = b"", False
            c.settimeout(5)
            try:
                while b"PONG" not in rest:
                    chunk = c.recv(4096)
                    if not chunk:
                        closed = True
                        break
                    rest += chunk
            except OSError:
                pass
            check(b"PONG" not in rest and closed, f"a plain-text leaf CONNECT: closed={closed}, got {rest!r}")
        # nats-server's leaf client upgrades to TLS itself when the hub requires it: without the
        # platform CA it refuses the hub's certificate and sends nothing
        bad = [("leaf-noca", f'url: "nats://{hub}", credentials: "{edge}"', r"certificate signed by unknown authority"),
               ("leaf-oldpw", f'url: "tls://xtask:xt0123456789abcdef@{hub}", tls {{ ca_file: "{ca}" }}',
                r"[Aa]uthorization [Vv]iolation")]
        for (name, remote, rx), port in zip(bad, ports[8:10]):
            p = leaf(s, name, port, remote)
            leafs.append(p)
            p.wait_output(rx, 15, f"{name} refused")
            check(monitor(s, "leafz")["leafnodes"] == 0, f"{name} got in: {monitor(s, 'leafz')}")
            p.kill()
        # the edge side maps its account to the default JetStream domain as `xtask join` does; the hub
        # side is the shipped config's (xtask-nats names the XTASK account): together they let the
        # JetStream API through the leaf link (queued work for edge nodes, docs/EDGE.md)
        good = leaf(s, "leaf-edge-1", ports[10], f'url: "tls://{hub}", credentials: "{edge}", tls {{ ca_file: "{ca}" }}',
                    top='default_js_domain: { "$G": "" }\n')
        leafs.append(good)
        wait_until(lambda: monitor(s, "leafz")["leafnodes"] == 1, 15, 0.1, "the node's leaf over TLS connected")
        lz = monitor(s, "leafz?subs=true")["leafs"][0]
        print(f"leaf without TLS and with the old user/password refused; node credential over TLS with the "
              f"platform CA connected (account {lz.get('account', '?')[:8]}...)", flush=True)

        # through the leaf, the node reaches its queue consumer's JetStream API (nats-server 2.9 denies
        # $JS.API.> on a leaf link unless both ends map the account to the default domain)
        def js_through_leaf():
            with socket.create_connection(("127.0.0.1", ports[10]), timeout=5) as c:
                f = c.makefile("rb")
                f.readline()
                c.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX_node-edge-1.q 1\r\nPING\r\n')
                while f.readline().strip() != b"PONG":
                    pass
                c.sendall(b"PUB $JS.API.CONSUMER.INFO.xtask-queue.xtask-q-task _INBOX_node-edge-1.q 2\r\n{}\r\n")
                c.settimeout(2)
                try:
                    while True:
                        line = f.readline()
                        if line.startswith(b"MSG "):
                            return json.loads(f.read(int(line.split()[-1])))
                        if not line:
                            return None
                except OSError:
                    return None
        reply = wait_until(js_through_leaf, 15, 0.2, "a JetStream API answer through the edge leaf")
        check(reply.get("type", "").startswith("io.nats.jetstream.api.v1.consumer_info"), f"through the leaf: {reply}")
        # the hub's side (needed once the hub is a cluster: the edge tests' 3-region hub without it
        # refuses even direct tasks): xtask-nats started nats-server on a top file naming the account
        with open(os.path.join(bus, "nats-top.conf")) as f:
            top = f.read()
        acct = lz.get("account", "")
        check(f'default_js_domain: {{ {acct}: "" }}' in top and 'include "' in top, f"nats-top.conf: {top}")
        print("the JetStream API answers a node through its leaf (queued work reaches edge nodes)", flush=True)
        code = s.stop()
        check(code == 0, f"supervisor exit {code}")
    except AssertionError:
        if s.proc:
            print("--- supervisor output (last lines) ---\n" + "\n".join(s.proc.output().splitlines()[-40:]))
        for p in leafs:
            print(f"--- leaf log ---\n{p.output()[-1500:]}")
        raise
    finally:
        for p in leafs:
            p.kill()
        s.cleanup()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("ok")
