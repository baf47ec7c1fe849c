"""Least privilege on the bus (docs/SECURITY.md, "The bus"): a real nats-server enforcing the
identity table, a region coordinator connected as `platform` and an edge coordinator as `node`.
Every allowed action works with exactly those rights (direct, broadcast and queued tasks, stored
results, the web's and the CLI's reads, the sessions bucket for auth); every forbidden action of a
node identity (and of web, cli, platform) is refused by the server and leaves no trace."""
import json
import time
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "auth"))

from authlib import AuthServer, fast_hash  # noqa: E402
from buslib import Probe, accounts_conf, inbox  # noqa: E402
from coordlib import Node, run_tests, xtask
from xt_testlib import NatsServer, TempDir, port_block, wait_until

PORTS = port_block("bus", 10)
TMP = TempDir("xt-bus-ids-")
PW = {"r1": "pw-r1", "n2": "pw-n2", "web": "pw-web", "auth": "pw-auth", "alice": "pw-alice", "admin": "pw-admin"}
USERS = [("r1", PW["r1"], "platform", "r1", ["task", "which"]),
         ("n2", PW["n2"], "node", "n2", ["task", "which", "ci"]),
         ("web", PW["web"], "web", "", []),
         ("auth", PW["auth"], "auth", "", []),
         ("alice", PW["alice"], "cli", "alice", []),
         ("admin", PW["admin"], "admin", "", [])]
SERVER = NatsServer(PORTS[0], PORTS[1], os.path.join(TMP.path, "nats"), name="xt-bus",
                    extra_conf=accounts_conf(USERS))



def T(label):
    """A task id in the platform's form (t- and 16 hex digits): ids are never chosen freely."""
    import hashlib
    return "t-" + hashlib.sha256(label.encode()).hexdigest()[:16]

def url(user):
    return f"nats://{user}:{PW[user]}@127.0.0.1:{PORTS[0]}"


def client(user):
    c = Probe(url(user), name=f"test-{user}")
    role = {u[0]: (u[2], u[3]) for u in USERS}[user]
    c.prefix = f"{inbox(*role)}.t{id(c):x}"  # replies come to the identity's own inbox
    return c


NODE_CONF = """
nats: {{ heartbeat: 500ms, node_ttl: 3s, manage_streams: {manage} }}
node: {{ capabilities: [task, which] }}
queue: {{ capabilities: [{queue}], ack_wait: 3s }}
tasks:
  echo: {{ argv: [echo], args: true, timeout: 10s }}
"""
R1 = Node(TMP.path, "r1", url("r1"), NODE_CONF.format(manage="true", queue="task"))
N2 = Node(TMP.path, "n2", url("n2"), NODE_CONF.format(manage="false", queue="ci"))


def ping_ready(node):
    def ready():
        if not node.proc.running():
            raise AssertionError(f"node {node.id} exited: {node.proc.output()[-2000:]}")
        with client("web") as c:
            return c.request(f"xtask.{node.id}.ping", b"{}", 1.0).json().get("jetstream")
    wait_until(ready, 20, interval=0.05, what=f"node {node.id} ready")


def test_nodes_start_with_their_rights():
    R1.start(wait=False)
    ping_ready(R1)  # the platform node made the streams, the bucket and its consumer
    with client("admin") as a:  # the ci queue's consumer: made by an admin (`xtask node add` later)
        r = a.js_api(f"CONSUMER.DURABLE.CREATE.xtask-queue.xtask-q-ci",
                     {"stream_name": "xtask-queue", "config": {"durable_name": "xtask-q-ci", "ack_policy": "explicit",
                                                               "filter_subject": "xtask.queue.ci", "ack_wait": 3000000000}})
        assert "error" not in r, r
    N2.start(wait=False)
    ping_ready(N2)  # the edge node bound to it with consumer info only
    with client("web") as w:
        sid = w.subscribe("xtask.nodes.heartbeat.*")
        w.flush()
        seen = set()
        wait_until(lambda: seen.update(m.subject for m in w.drain(sid, 0.2)) or
                   {"xtask.nodes.heartbeat.r1", "xtask.nodes.heartbeat.n2"} <= seen, 5, what="heartbeats")
        assert not w.errors
    with client("admin") as a:
        assert a.kv_get("xtask_nodes", "n2")["id"] == "n2"
    for n in (R1, N2):
        assert "Permissions Violation" not in n.proc.output(), n.proc.output()[-3000:]


def test_web_runs_a_task_and_reads_its_result():
    with client("web") as w:
        r = w.request("xtask.n2.task.run", json.dumps({"args": ["echo", "hi"], "id": T("w-1")}).encode(), 10).json()
        assert r["exit_code"] == 0 and r["node"] == "n2", r
        res = wait_until(lambda: w.js_api("STREAM.MSG.GET.xtask-results", {"last_by_subj": "xtask.results.*." + T("w-1")}).get(
            "message"), 5, what="stored result")
        assert res["subject"] == "xtask.results.n2." + T("w-1"), res
        assert not w.errors, w.errors


def test_broadcast_reaches_every_capable_node():
    with client("web") as w:
        got = sorted(m.json()["node"] for m in w.gather("xtask.broadcast.task.run",
                                                        json.dumps({"args": ["echo", "b"]}).encode(), 1.5))
        assert got == ["n2", "r1"], got
        got = sorted(m.json()["id"] for m in w.gather("xtask.nodes.discover", b"{}", 0.5))
        assert got == ["n2", "r1"], got


def test_queued_tasks_on_platform_and_edge():
    with client("web") as w:
        for cap, tid in (("ci", "q-ci-1"), ("task", "q-task-1")):
            ack = w.js_publish(f"xtask.queue.{cap}", {"args": ["echo", tid], "id": T(tid)}, msg_id=T(tid))
            assert ack.get("stream") == "xtask-queue", ack
        for tid, node in (("q-ci-1", "n2"), ("q-task-1", "r1")):
            m = wait_until(lambda: w.js_api("STREAM.MSG.GET.xtask-results", {"last_by_subj": f"xtask.results.*.{T(tid)}"})
                           .get("message"), 10, what=f"result {tid}")
            assert m["subject"] == f"xtask.results.{node}.{T(tid)}", m
        assert not w.errors, w.errors
    for n in (R1, N2):
        assert "Permissions Violation" not in n.proc.output(), n.proc.output()[-3000:]


def test_cli_identity():
    env = {"XTASK_NATS_INBOX_PREFIX": inbox("cli", "alice")}
    r = xtask("run", "--node", "n2", "echo", "from-cli", url=url("alice"), env=env)
    assert r.returncode == 0 and "from-cli" in r.stdout, (r.returncode, r.stdout, r.stderr)
    r = xtask("submit", "--wait", "10s", "echo", "queued-cli", url=url("alice"), env=env)
    assert r.returncode == 0 and "queued-cli" in r.stdout, (r.returncode, r.stdout, r.stderr)
    q1 = r.stdout.split("\n", 1)[0]
    r = xtask("result", q1, url=url("alice"), env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["id"] == q1, (r.stdout, r.stderr)
    def both():  # discover gathers for 500 ms: a loaded machine may need another ask
        r = xtask("nodes", "--json", url=url("alice"), env=env)
        return r.returncode == 0 and sorted(n["id"] for n in json.loads(r.stdout)) == ["n2", "r1"]
    wait_until(both, 10, 0.1, "n2 and r1 listed by `xtask nodes`")
    # the cli identity may count the node registry: `nodes` returns once both answered, not after 30 s
    t0 = time.monotonic()
    r = xtask("nodes", "--json", "--timeout", "30s", url=url("alice"), env=env)
    assert r.returncode == 0 and sorted(n["id"] for n in json.loads(r.stdout)) == ["n2", "r1"], r
    assert time.monotonic() - t0 < 15, time.monotonic() - t0
    with client("alice") as c:  # no admin verbs, no node's subjects
        for subj in ("xtask.r1.kill-port.8080", "xtask.r1.got.download", "xtask.r1.silent.exec",
                     "xtask.results.r1.forged", "xtask.nodes.register.r1", "xtask.logs.r1", "$KV.xtask_sessions.x"):
            c.publish(subj, b"{}")
            assert c.refused(subj), subj
        for subj in ("xtask.events.>", "_INBOX_web.>", "_INBOX.>", "xtask.r1.>"):
            c.subscribe(subj)
            assert c.refused(subj), subj


def test_real_auth_shares_sessions_with_its_identity():
    kv = f"""  nats:
    enabled: true
    servers: {url("auth")}
    bucket: xtask_sessions
"""
    users = {"bob": {"password": fast_hash("bob-pw"), "groups": ["developers"]}}
    a = AuthServer(TMP, PORTS[2], users, name="ams", session_extra=kv).start()
    b = AuthServer(TMP, PORTS[3], users, name="dfw", session_extra=kv).start()
    try:
        st, _, _, cookie = a.login("bob", "bob-pw")
        assert st == 200
        wait_until(lambda: b.verify("/web/", cookie=cookie)[0] == 200, 10, interval=0.05, what="session on dfw")
        assert b.post_json("/api/logout", {}, cookie=cookie)[0] == 200
        wait_until(lambda: a.verify("/web/", cookie=cookie)[0] == 302, 10, interval=0.05, what="logout on ams")
        for srv in (a, b):
            assert "Permissions Violation" not in srv.proc.output(), srv.proc.output()[-3000:]
    finally:
        a.stop()
        b.stop()


def test_auth_reaches_the_sessions_bucket_only():
    with client("auth") as c:
        ack = c.js_publish("$KV.xtask_sessions.s1", b'{"user":"alice"}')
        assert ack.get("stream") == "KV_xtask_sessions", ack
        m = c.request("$JS.API.DIRECT.GET.KV_xtask_sessions.$KV.xtask_sessions.s1", b"", 2)
        assert m.data == b'{"user":"alice"}', m
        for subj in ("xtask.n2.task.run", "$JS.API.STREAM.MSG.GET.xtask-results", "$JS.API.STREAM.DELETE.xtask-results",
                     "$KV.xtask_nodes.n2"):
            c.publish(subj, b"{}")
            assert c.refused(subj), subj


def test_node_forbidden_subscriptions():
    with client("n2") as c:
        for subj in (">", "xtask.>", "xtask.r1.>", "xtask.r1.task.run", "_INBOX.>", "_INBOX_web.>",
                     "_INBOX_node-r1.>", "_INBOX_cli-alice.>", "xtask.logs.>", "xtask.logs.r1", "xtask.events.>",
                     "xtask.results.>", "xtask.queue.>", "xtask.nodes.heartbeat.*", "$KV.xtask_sessions.>",
                     "$KV.>", "xtask.broadcast.kill-port.*", "xtask.broadcast.>", "xtask.audit.>"):
            c.subscribe(subj)
            assert c.refused(subj), f"node n2 could subscribe to {subj}"
        for subj in ("xtask.n2.>", "_INBOX_node-n2.>", "xtask.broadcast.task.run", "xtask.nodes.discover"):
            c.subscribe(subj)
            assert not c.refused(subj), f"node n2 could not subscribe to its own {subj}"


def test_node_forbidden_publishes():
    with client("admin") as a:
        watch = a.subscribe(">")
        a.flush()
        with client("n2") as c:
            forbidden = [
                "xtask.r1.ping", "xtask.r1.task.run", "xtask.r1.kill-port.8080", "xtask.broadcast.ping",  # verbs
                "xtask.results.r1.forged", "xtask.nodes.register.r1", "xtask.nodes.heartbeat.r1",  # r1's name
                "xtask.logs.r1", "$KV.xtask_nodes.r1", "xtask.events.default.r1.node.left", "xtask.audit.task.r1",
                "xtask.queue.task",  # work in the platform's name
                "_INBOX_web.x.1", "_INBOX_cli-alice.1",  # replies it was never asked for
                "$KV.xtask_sessions.s1", "$JS.API.STREAM.INFO.KV_xtask_sessions",  # the sessions bucket
                "$JS.API.DIRECT.GET.KV_xtask_sessions.$KV.xtask_sessions.s1",
                "$JS.API.STREAM.DELETE.xtask-results", "$JS.API.STREAM.PURGE.xtask-results",  # stream admin
                "$JS.API.STREAM.DELETE.xtask-audit", "$JS.API.STREAM.PURGE.xtask-audit",
                "$JS.API.STREAM.UPDATE.xtask-results", "$JS.API.STREAM.CREATE.evil",
                "$JS.API.CONSUMER.DELETE.xtask-queue.xtask-q-task", "$JS.API.STREAM.MSG.DELETE.xtask-results",
                "$JS.API.STREAM.MSG.GET.xtask-results",  # other tasks' results
                "$JS.API.DIRECT.GET.xtask-results.xtask.results.r1.w-1",
                "$JS.API.CONSUMER.MSG.NEXT.xtask-queue.xtask-q-kill",  # a queue of a capability it lacks
            ]
            for subj in forbidden:
                c.publish(subj, b'{"forged":true}', reply=c.new_inbox())
                assert c.refused(subj), f"node n2 could publish to {subj}"
        leaked = [m.subject for m in a.drain(watch, 0.3) if b"forged" in m.data]
        assert not leaked, leaked
        assert a.js_api("STREAM.INFO.xtask-results")["config"]["name"] == "xtask-results"
        assert a.js_last("xtask-results", "xtask.results.r1.forged") is None


def test_platform_and_web_cannot_delete_or_forge():
    for user in ("r1", "web"):
        with client(user) as c:
            for subj in ("$JS.API.STREAM.DELETE.xtask-results", "$JS.API.STREAM.PURGE.xtask-queue",
                         "$JS.API.STREAM.DELETE.KV_xtask_sessions", "$KV.xtask_sessions.s1",
                         "$JS.API.STREAM.PURGE.xtask-audit", "xtask.results.n2.forged", "xtask.nodes.register.n2"):
                c.publish(subj, b"{}")
                assert c.refused(subj), f"{user} could publish to {subj}"


def test_wrong_password_refused():
    try:
        Probe(f"nats://n2:wrong@127.0.0.1:{PORTS[0]}").close()
    except IOError as e:
        assert "Authorization Violation" in str(e), e
    else:
        raise AssertionError("a wrong password was accepted")
    try:
        Probe(f"nats://127.0.0.1:{PORTS[0]}").close()
    except IOError as e:
        assert "Authorization Violation" in str(e), e
    else:
        raise AssertionError("an anonymous client was accepted")


def main():
    SERVER.start()
    try:
        run_tests([test_nodes_start_with_their_rights, test_web_runs_a_task_and_reads_its_result,
                   test_broadcast_reaches_every_capable_node, test_queued_tasks_on_platform_and_edge,
                   test_cli_identity, test_real_auth_shares_sessions_with_its_identity,
                   test_auth_reaches_the_sessions_bucket_only, test_node_forbidden_subscriptions,
                   test_node_forbidden_publishes, test_platform_and_web_cannot_delete_or_forge,
                   test_wrong_password_refused])
    finally:
        for n in (N2, R1):
            n.kill()
        SERVER.stop()
        TMP.cleanup()


if __name__ == "__main__":
    main()
