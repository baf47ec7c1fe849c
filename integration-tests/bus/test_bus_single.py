"""The bus on one server in operator/JWT mode (xtask-bus init + a real nats-server 2.9):
- an anonymous client is refused on the client port; the admin .creds works (nats.c reads our
  .creds), with the account's JetStream limits from its JWT; SYS stays out of the admin's reach;
- a leaf with our CA and a valid credential connects over TLS; a leaf that speaks plain text, one
  that does not know our CA, one with a credential of another operator, and one whose credential
  has expired are refused;
- a client whose credential expires is refused afterwards.
"""
import json
import os
import re
import socket
import sys
import time

from xt_bus import BusCluster, bus_tool, probe
from xt_testlib import TempDir, wait_until


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def raw_connect(port, connect_json, timeout=3.0):
    """Speak the NATS protocol by hand: read INFO, send CONNECT + PING; return (info, reply bytes)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        info = json.loads(f.readline()[5:])
        s.sendall(b"CONNECT " + json.dumps(connect_json).encode() + b"\r\nPING\r\n")
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(4096)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
            if b"PONG" in out or b"-ERR" in out:
                break
        return info, out
    finally:
        s.close()


def leaf_refused(bus, leaf, pattern, what):
    """The leaf's log shows `pattern` (its attempt failed, e.g. a certificate or auth error) and the
    hub holds no leaf connection."""
    m = leaf.wait_output(pattern, 15, what)
    line = leaf.output()[:m.end()].rsplit("\n", 1)[-1] + leaf.output()[m.end():].split("\n", 1)[0]
    print(f"  {what}: {line.strip()[:200]}", flush=True)
    check(bus.leafs(0) == 0, f"{what}: the hub holds a leaf connection: {bus.monitor(0, 'leafz')}")


def main():
    with BusCluster(n=1) as bus:
        r = bus.regions[0]
        admin = bus.creds("admin")

        # --- clients on the client port ---------------------------------------------------------
        info, reply = raw_connect(r.port, {"verbose": False, "pedantic": False})
        check(info.get("auth_required") is True, f"INFO does not require auth: {info}")
        check(b"Authorization Violation" in reply and b"PONG" not in reply,
              f"an anonymous CONNECT was not refused: {reply!r}")
        info, reply = raw_connect(r.port, {"user": "xtask", "pass": "guess", "verbose": False})
        check(b"PONG" not in reply, f"a user/password CONNECT was accepted: {reply!r}")
        p = bus.probe("connect")
        check(p.returncode == 1 and "Authorization" in p.stderr, f"nats.c without creds: {p.returncode} {p.stderr}")
        print("anonymous and password clients refused", flush=True)

        p = bus.probe("pubsub", "bus.test.hello", creds=admin, check=True)
        check("roundtrip ok" in p.stdout, p.stdout)
        p = bus.probe("request", "$JS.API.INFO", creds=admin, check=True)
        lim = json.loads(p.stdout)["limits"]
        check(lim["max_memory"] == 256 << 20 and lim["max_storage"] == 1 << 30, f"JetStream limits: {lim}")
        # the admin is a user of XTASK: the system account's subjects are not there
        p = bus.probe("request", "$SYS.REQ.SERVER.PING", creds=admin, timeout_ms=500)
        check(p.returncode != 0, f"admin reached $SYS: {p.stdout}")
        p = bus.probe("request", "$SYS.REQ.SERVER.PING", creds=bus.creds("sys"), check=True)
        check('"server"' in p.stdout, p.stdout)
        print("admin .creds read by nats.c: pub/sub and JetStream with the JWT's limits; SYS only for sys",
              flush=True)

        # --- leaf connections -------------------------------------------------------------------
        good = bus.add_user("edge-good", "admin")
        leaf = bus.leaf("leaf-good", good)
        wait_until(lambda: bus.leafs(0) == 1, 10, 0.05, "the TLS leaf connected")
        z = bus.monitor(0, "leafz")
        xtask_account = z["leafs"][0]["account"]
        check(xtask_account.startswith("A"), f"leaf bound to {xtask_account}")
        leaf.kill()
        wait_until(lambda: bus.leafs(0) == 0, 10, 0.05, "the leaf gone")
        print("leaf with the platform CA and a valid credential: connected over TLS", flush=True)

        # plain text to the leaf port: the server wants TLS first, a CONNECT in clear gets nothing
        info, reply = raw_connect(r.leaf_port, {"user": "xtask", "pass": "secret"})
        check(info.get("tls_required") is True, f"leaf INFO does not require TLS: {info}")
        check(b"PONG" not in reply and b"+OK" not in reply, f"plain-text leaf CONNECT answered: {reply!r}")
        # a leaf configured without TLS
        plain = bus.leaf("leaf-plain", good, url=f"nats://127.0.0.1:{r.leaf_port}", tls=False)
        leaf_refused(bus, plain, r"TLS leafnode handshake error|x509:", "a leaf without our CA configured")
        plain.kill()

        # a leaf trusting another CA (another platform's bus directory)
        with TempDir("xt-bus-other-") as other:
            bus_tool(["init", "--dir", other, "--domain", "xtask.localhost"])
            wrong_ca = bus.leaf("leaf-wrong-ca", good, ca=os.path.join(other, "tls", "ca.pem"))
            leaf_refused(bus, wrong_ca, r"x509: certificate signed by unknown authority", "a leaf with a wrong CA")
            wrong_ca.kill()
            # a credential of another operator (valid format, wrong issuer)
            foreign = os.path.join(other, "creds", "admin.creds")
            wrong = bus.leaf("leaf-wrong-creds", foreign)
            leaf_refused(bus, wrong, r"Leafnode Error 'Authorization Violation'", "a leaf with another operator's credential")
            wrong.kill()
        print("leaf refused: plain text, no/wrong CA, another operator's credential", flush=True)

        # --- expiry -------------------------------------------------------------------------------
        t_added = time.time()
        short = bus.add_user("short-lived", "admin", expires="2s")
        refusal = re.compile(r"(?i)(authorization|authentication) violation|expired")

        def refused():
            # only after the expiry (the JWT's exp is in whole seconds): a slow probe before it is no answer
            if time.time() < t_added + 3:
                return None
            p = bus.probe("connect", creds=short)
            return p if p.returncode == 1 and refusal.search(p.stderr) else None
        p = wait_until(refused, 15, 0.2, "the expired credential refused")
        p = bus.probe("connect", creds=short)
        check(p.returncode == 1 and refusal.search(p.stderr), f"expired credential: {p.returncode} {p.stderr}")
        expired_leaf = bus.leaf("leaf-old", short)
        leaf_refused(bus, expired_leaf, r"Leafnode Error '(Authorization Violation|[^']*[Ee]xpired)", "a leaf with an expired credential")
        expired_leaf.kill()
        print("expired credential refused (client and leaf)", flush=True)

        # the CLI: usage and config errors exit 2 with the cause; show prints no secret
        for args, want in ((["frobnicate"], "unknown command"),
                           (["user", "add", "x", "--role", "admin", "--expires", "soon", "--out", "/dev/null"],
                            "--expires 'soon'"),
                           (["user", "add", "x", "--role", "root", "--out", os.path.join(bus.tmp.path, "x.creds"),
                             "--dir", bus.master], "unknown role 'root'"),
                           (["user", "revoke", "nobody", "--dir", bus.master], "no user 'nobody'")):
            r = bus_tool(args, check=False)
            check(r.returncode == 2 and want in r.stderr, f"xtask-bus {args}: {r.returncode} {r.stderr!r}")
        r = bus_tool(["init", "--dir", "/proc/xt-no-such-dir"], check=False)
        check(r.returncode == 1 and "/proc/xt-no-such-dir" in r.stderr, f"init in /proc: {r.returncode} {r.stderr!r}")
        shown = bus_tool(["show", "--dir", bus.master]).stdout
        check("short-lived" in shown and "expired" in shown, shown)
        with open(os.path.join(bus.master, "keys", "XTASK.nk")) as f:
            check(f.read().strip() not in shown, "show printed the account seed")
        print("xtask-bus CLI: exit 2 with the cause for bad usage, show without secrets", flush=True)

        # the server never logged a secret
        log = bus.log(0)
        with open(os.path.join(bus.master, "route-password")) as f:
            check(f.read().strip() not in log, "the route password is in the server log")
        check(not re.search(r"\bSU[A-Z2-7]{56}\b", log), "a user seed is in the server log")
    print("bus_single: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
