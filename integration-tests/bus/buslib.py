"""The bus's identities for tests: the permission table of docs/SECURITY.md ("The bus") as a static
nats-server `accounts` config (users with pub/sub allow lists and allow_responses), which nats-server
2.9 enforces exactly as it enforces the same lists in user JWTs (services/bus/bus_roles.c)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "coordinator"))

import natsproto  # noqa: E402

VERBS = {"task": ["task.run"], "which": ["which.check"], "got": ["got.download"], "silent": ["silent.exec"],
         "kill-port": ["kill-port.*"]}
RESULTS, QUEUE, NODES_KV, SESSIONS_KV, AUDIT = "xtask-results", "xtask-queue", "xtask_nodes", "xtask_sessions", \
    "xtask-audit"
NOT_NODES = ["xtask.results.>", "xtask.logs.>", "xtask.events.>", "xtask.nodes.register.>",
             "xtask.nodes.heartbeat.>", "xtask.audit.>"]
RESP_TTL = "1h"


def inbox(role, ident=""):
    if role in ("node", "platform"):
        return f"_INBOX_node-{ident}"
    if role == "cli":
        return f"_INBOX_cli-{ident}"
    return f"_INBOX_{role}"


def perms(role, ident="", caps=()):
    """{"publish": {...}, "subscribe": {...}, "allow_responses": {...}} of one identity."""
    if role in ("node", "platform"):
        i = ident
        pub = [f"xtask.nodes.register.{i}", f"xtask.nodes.heartbeat.{i}", f"xtask.logs.{i}",
               f"xtask.events.*.{i}.>", f"xtask.results.{i}.*", f"$KV.{NODES_KV}.{i}", f"xtask.audit.task.{i}", f"_R.{i}.>", f"_R.{i}.web.>", f"_R.{i}.admin.>",
               f"$JS.API.DIRECT.GET.{RESULTS}.xtask.results.{i}.>"]
        sub = [f"xtask.{i}.>", "xtask.nodes.discover", "xtask.broadcast.ping", f"{inbox(role, i)}.>"]
        for c in (caps if role == "node" else []):
            sub += [f"xtask.broadcast.{v}" for v in VERBS.get(c, [])]
            q = f"{QUEUE}.xtask-q-{c}"
            pub += [f"$JS.API.CONSUMER.INFO.{q}", f"$JS.API.CONSUMER.MSG.NEXT.{q}", f"$JS.ACK.{q}.>"]
        if role == "platform":  # the region's coordinator: every verb's broadcast, every queue
            sub += [f"xtask.broadcast.{v[0]}" for v in VERBS.values()]
            pub += [f"$JS.API.CONSUMER.MSG.NEXT.{QUEUE}.*", f"$JS.ACK.{QUEUE}.>"]
            for s in (RESULTS, QUEUE, f"KV_{NODES_KV}", AUDIT):
                pub += [f"$JS.API.STREAM.CREATE.{s}", f"$JS.API.STREAM.UPDATE.{s}", f"$JS.API.STREAM.INFO.{s}"]
            pub += [f"$JS.API.CONSUMER.DURABLE.CREATE.{QUEUE}.*", f"$JS.API.CONSUMER.CREATE.{QUEUE}.>",
                    f"$JS.API.CONSUMER.INFO.{QUEUE}.*"]
        return {"publish": {"allow": pub}, "subscribe": {"allow": sub},
                "allow_responses": {"max": 1, "expires": RESP_TTL}}
    if role in ("web", "cli"):
        verbs = ["ping", "task.run"] + ([] if role == "cli" else
                                        ["which.check", "got.download", "silent.exec", "kill-port.*"])
        pub = [f"xtask.*.{v}" for v in verbs] + ["xtask.nodes.discover", "xtask.queue.*",
                                                 f"$JS.API.STREAM.MSG.GET.{RESULTS}",
                                                 f"$JS.API.STREAM.INFO.KV_{NODES_KV}"]
        sub = ["xtask.logs.*", f"{inbox(role, ident)}.>", f"_R.*.{inbox(role, ident)[7:]}.>"]
        if role == "web":
            sub += ["xtask.events.>", "xtask.nodes.heartbeat.*", "xtask.nodes.register.*"]
        return {"publish": {"allow": pub, "deny": NOT_NODES}, "subscribe": {"allow": sub}}
    if role == "auth":
        b = f"KV_{SESSIONS_KV}"
        pub = [f"$KV.{SESSIONS_KV}.>", f"$JS.API.STREAM.INFO.{b}", f"$JS.API.STREAM.CREATE.{b}",
               f"$JS.API.STREAM.UPDATE.{b}", f"$JS.API.CONSUMER.CREATE.{b}", f"$JS.API.CONSUMER.CREATE.{b}.>",
               f"$JS.API.CONSUMER.DELETE.{b}.*", f"$JS.API.DIRECT.GET.{b}.>", f"$JS.API.STREAM.MSG.GET.{b}",
               f"$JS.FC.{b}.>", "xtask.audit.auth.*",
               "$JS.API.STREAM.NAMES"]  # nats.c's KV watcher finds its stream by subject (names only)
        return {"publish": {"allow": pub}, "subscribe": {"allow": [f"{inbox(role)}.>"]}}
    if role == "admin":
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    raise ValueError(role)


def accounts_conf(users):
    """users: [(name, password, role, ident, caps)] -> the `accounts` block (JSON is valid config)."""
    xt = [{"user": n, "password": p, "permissions": perms(r, i, c)} for n, p, r, i, c in users]
    acc = {"XTASK": {"jetstream": "enabled", "users": xt},
           "SYS": {"users": [{"user": "sys", "password": "sys-pw"}]}}
    return "accounts: " + json.dumps(acc, indent=1) + "\nsystem_account: SYS\n"


class Probe(natsproto.Client):
    """A client that reports the server's permission errors instead of raising on them."""

    def __init__(self, *a, **k):
        self.errors = []
        super().__init__(*a, **k)

    def _step(self, deadline):
        try:
            return super()._step(deadline)
        except IOError as e:
            if "Permissions Violation" not in str(e):
                raise
            self.errors.append(str(e))
            return None

    def refused(self, what):
        """1 if the server answered `what` (a subject) with a permissions violation since the last call."""
        self.flush()
        hit = [e for e in self.errors if f'"{what}"' in e]
        self.errors = []
        return bool(hit)
