"""What an edge machine cannot do: a revoked node is cut off in every region within seconds and a
re-join is refused with the cause; an altered, truncated, expired or foreign bundle is refused with
a clear message (exit 2 for what is wrong with the bundle itself, 1 for what the hub refused); the
edge identity cannot act in another node's name or take another capability's work, not even from a
local client of its leaf; the leaf's local port needs the local password."""
import base64
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from edgelib import Hub, tid  # noqa: E402
from buslib import Probe  # noqa: E402
from coordlib import run_tests, xtask  # noqa: E402
from xt_bus import bus_tool  # noqa: E402
from xt_testlib import wait_until  # noqa: E402

HUB = Hub(n=3, replicas=1)
S = {}


def unpack(bundle_file):
    text = open(bundle_file).read().strip()
    assert text.startswith("xtj1.")
    raw = text[5:]
    return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))


def pack(obj, name):
    raw = base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    path = os.path.join(HUB.bus.tmp.path, name)
    with open(path, "w") as f:
        f.write("xtj1." + raw)
    return path


def test_revoked_node_cut_off_everywhere():
    _, bundle = HUB.node_add("rv-1", caps=("task",))
    S["rv_bundle"] = bundle
    m = HUB.machine("rv")
    m.join(bundle)
    HUB.wait_node("rv-1", 1, m.proc)
    t0 = time.monotonic()
    r = HUB.node_revoke("rv-1", via=2)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: sum(HUB.bus.leafs(i) for i in range(3)) == 0, 5, interval=0.05, what="leaf dropped everywhere")
    print(f"revocation -> leaf gone in every region: {time.monotonic() - t0:.2f}s", flush=True)
    with HUB.web(0) as w:
        answered = True
        try:
            w.request("xtask.rv-1.ping", b"{}", 1.0)
        except Exception:  # noqa: BLE001 (no responders or timeout: gone)
            answered = False
        assert not answered, "a revoked node still answers"
    # it keeps trying and stays out
    wait_until(lambda: "Authorization Violation" in m.proc.output(), 10, what="the leaf refused on reconnect")
    assert sum(HUB.bus.leafs(i) for i in range(3)) == 0
    m.kill()
    rc, out = m.join_once(bundle, "--timeout", "10s")
    assert rc == 1 and "refused the node's credential" in out, (rc, out)
    lst = xtask("node", "list", "--bus-dir", HUB.bus.master, "--json")
    rows = {n["name"]: n for n in json.loads(lst.stdout)}
    assert rows["rv-1"]["status"] == "revoked", rows


def test_altered_bundles_refused():
    _, a = HUB.node_add("al-1", caps=("task",))
    _, b = HUB.node_add("al-2", caps=("task", "ci"))
    m = HUB.machine("al")
    A, B = unpack(a), unpack(b)
    cases = []
    # claims of the join JWT changed (a capability added): its signature no longer verifies
    hdr, claims, sig = A["join"].split(".")
    c = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    c["nats"]["caps"].append("ci")
    c["nats"]["hubs"] = ["tls://evil.example:7422"]
    forged = dict(A, join=".".join([hdr, base64.urlsafe_b64encode(json.dumps(c).encode()).decode().rstrip("="), sig]))
    cases.append((pack(forged, "caps.bundle"), "altered or forged"))
    cases.append((pack(dict(A, creds=B["creds"]), "swap.bundle"), "not the one the bundle was signed for"))
    cases.append((pack(dict(A, ca=A["ca"].replace("MII", "MIJ", 1)), "ca.bundle"), "CA certificate"))
    text = open(a).read().strip()
    # cut at a multiple of 4 base64 characters after "xtj1.": decodable, so the JSON inside is what is
    # cut (an odd cut is "not base64url", below; which one a half-length cut hits depends on its length)
    cut = 5 + ((len(text) - 5) // 2) // 4 * 4
    cases.append((text[:cut], "not a version 1 bundle"))
    cases.append(("xtj1.%%%", "not base64url"))
    cases.append(("hello", "neither a join bundle"))
    for bundle, want in cases:
        rc, out = m.join_once(bundle)
        assert rc == 2 and want in out, (bundle[:40], rc, out)
        assert "SEED" not in out and "BEGIN NATS" not in out, out
    assert not os.path.exists(os.path.join(m.dir, "node.creds"))


def test_expired_bundle_refused():
    _, e = HUB.node_add("ex-1", caps=("task",), expires="1s")
    time.sleep(1.1)  # the credential's own expiry (seconds granularity): nothing to wait on
    m = HUB.machine("ex")
    rc, out = m.join_once(e)
    assert rc == 2 and "expired at" in out, (rc, out)


def test_foreign_platform_refused():
    """A self-consistent bundle of another operator (its own CA): the hub's TLS certificate does not
    verify with it; with our CA swapped in (re-signed), the hub refuses the foreign credential."""
    other = os.path.join(HUB.bus.tmp.path, "other-platform")
    bus_tool(["init", "--dir", other, "--domain", "xtask.localhost", "--node-id", "o"])
    out = os.path.join(HUB.bus.tmp.path, "foreign.bundle")
    args = ["node", "add", "fo-1", "--bus-dir", other, "--out", out]
    for h in HUB.hubs():
        args += ["--hub", h]
    r = xtask(*args)
    assert r.returncode == 0, r.stderr
    m = HUB.machine("fo")
    rc, text = m.join_once(out, "--timeout", "10s")
    assert rc == 1 and "does not verify with the bundle's CA" in text, (rc, text)
    # same foreign operator, but its CA file replaced by ours in its bus dir before minting
    import shutil
    shutil.copy(HUB.bus.ca, os.path.join(other, "tls", "ca.pem"))
    r = xtask("node", "add", "fo-2", "--bus-dir", other, "--out", out, *sum((["--hub", h] for h in HUB.hubs()), []))
    assert r.returncode == 0, r.stderr
    rc, text = m.join_once(out, "--timeout", "10s")
    assert rc == 1 and "refused the node's credential" in text, (rc, text)


def test_edge_identity_bounded():
    _, bundle = HUB.node_add("sb-1", caps=("task", "ci"))
    m = HUB.machine("sb")
    m.join(bundle)
    HUB.wait_node("sb-1", 0, m.proc)
    pw = open(os.path.join(m.dir, "local-password")).read().strip()
    local = f"nats://127.0.0.1:{m.port}"
    # the leaf's client port: no anonymous client
    try:
        Probe(local, timeout=2).close()
        anonymous_ok = True
    except (IOError, OSError):
        anonymous_ok = False
    assert not anonymous_ok, "anonymous client accepted by the edge's leaf"
    rid = HUB.bus.regions[0].name
    with HUB.web(0) as w, HUB.admin(0) as a:
        sids = [w.subscribe(s) for s in (f"xtask.results.{rid}.>", f"xtask.nodes.register.{rid}",
                                          f"xtask.{rid}.>", "xtask.logs.>")]
        w.flush()
        # a local client of the edge's leaf (what a task on that machine could reach)
        with Probe(local, user="node", password=pw) as c:
            for subj in (f"xtask.results.{rid}.{tid('forged')}", f"xtask.nodes.register.{rid}",
                         f"xtask.{rid}.task.run", f"xtask.logs.{rid}", "$JS.API.STREAM.DELETE.xtask-results",
                         "$JS.API.CONSUMER.MSG.NEXT.xtask-queue.xtask-q-deploy", "$KV.xtask_sessions.s1"):
                c.publish(subj, b'{"forged":true}', reply="_INBOX_node-sb-1.x")
            c.flush()
        for sid in sids:
            assert w.drain(sid, 1.0) == [], "a forged message crossed the leaf"
        info = a.js_api("STREAM.INFO.xtask-results")
        assert "error" not in info, info
    # the same credential directly on a region: refused by the server itself
    creds = os.path.join(m.dir, "node.creds")
    with Probe(HUB.bus.regions[1].url, creds=creds) as c:
        c.prefix = "_INBOX_node-sb-1.p"
        for subj in (f"xtask.{rid}.>", "xtask.results.>", "_INBOX_web.>", "xtask.queue.>"):
            c.subscribe(subj)
            assert c.refused(subj), f"edge identity could subscribe to {subj}"
        for subj in (f"xtask.results.{rid}.x", f"xtask.nodes.heartbeat.{rid}", f"xtask.{rid}.task.run",
                     "$JS.API.CONSUMER.MSG.NEXT.xtask-queue.xtask-q-deploy", "xtask.queue.ci",
                     "$JS.API.STREAM.PURGE.xtask-queue"):
            c.publish(subj, b"{}")
            assert c.refused(subj), f"edge identity could publish to {subj}"


def test_cli_help():
    """`--help` on every edge command prints its usage on stdout and exits 0; a usage error exits 2."""
    for args, want in ((("node", "--help"), "xtask node add"), (("node", "-h"), "xtask node list"),
                       (("node", "help"), "xtask node revoke"), (("node", "add", "--help"), "--capability"),
                       (("node", "add", "x", "--tag", "t", "-h"), "--capability"),
                       (("node", "revoke", "--help"), "xtask node revoke"), (("node", "list", "--help"), "--json"),
                       (("join", "--help"), "xtask join"), (("join", "some.bundle", "-h"), "--print-only")):
        r = xtask(*args)
        assert r.returncode == 0 and want in r.stdout, (args, r.returncode, r.stdout, r.stderr)
    for args in (("node",), ("node", "bogus"), ("node", "add", "--bogus", "x"), ("join", "--bogus")):
        r = xtask(*args)
        assert r.returncode == 2 and "usage:" in r.stderr, (args, r.returncode, r.stderr)


def main():
    HUB.start()
    try:
        run_tests([test_cli_help, test_revoked_node_cut_off_everywhere, test_altered_bundles_refused, test_expired_bundle_refused,
                   test_foreign_platform_refused, test_edge_identity_bounded])
    finally:
        HUB.stop()


if __name__ == "__main__":
    main()
