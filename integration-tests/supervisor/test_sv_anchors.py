"""Supervisor: the anchors' known bugs, as tests with real processes.
- process-compose #520: a leader that exits on SIGTERM while a member of its group ignores it: the
  group is empty within the stop timeout;
- process-compose #237, compose #10658: `printf 'a\\nb'; exit 1` under CPU load keeps both lines;
- process-compose #544: a dependency that is first unready (fails its start period) then ready
  does not strand its dependents;
- process-compose #530: restarting a pending service never makes a duplicate."""
import os
import re
import time

from xt_testlib import Proc, wait_until
from svlib import FIX, Sup, fix, pid_alive, run_tests


def service_pids(name):
    """Live processes whose environment says they belong to service `name`."""
    want = f"XTASK_SERVICE={name}".encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                if want in f.read().split(b"\0") and pid_alive(int(d)):
                    out.append(int(d))
        except OSError:
            pass
    return out


def test_group_member_ignoring_term(tmp):
    # pc #520: the leader exits at once on SIGTERM; a member of its group ignores SIGTERM
    sup = Sup(tmp, f"""
  leader:
    command: [sh, -c, "trap '' TERM; sleep 600 & echo member $!; trap - TERM; exec {FIX} term-exit:0 forever"]
    stop: {{ timeout: 1s }}
""")
    try:
        sup.start()
        sup.wait_state("leader", "READY")
        member = int(sup.proc.wait_output(r"^leader +\| member (\d+)$").group(1))
        assert pid_alive(member)
        t0 = time.monotonic()
        assert sup.cli("stop", "leader").returncode == 0
        wait_until(lambda: not pid_alive(member), 5, interval=0.005, what="the member gone")
        took = time.monotonic() - t0
        assert took < 1.0, f"the group emptied after {took:.2f}s, stop timeout 1s"
        sup.wait_state("leader", "STOPPED")
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_last_line_without_newline_under_load(tmp):
    # pc #237 / compose #10658: the last line, without a newline, of a process that exits at once
    hogs = [Proc(["sh", "-c", "while :; do :; done"]) for _ in range(3)]
    sup = Sup(tmp, """
  burst:
    command: [sh, -c, "printf 'a\\\\nb'; exit 1"]
    restart: on-failure
    backoff: { initial: 10ms, max: 10ms }
    restart_limit: { count: 20, window: 60s }
""")
    try:
        sup.start()
        sup.wait_state("burst", "FAILED", 30)
        out = sup.output()
        a = re.findall(r"^burst +\| a$", out, re.M)
        b = re.findall(r"^burst +\| b$", out, re.M)
        assert len(a) == 21 and len(b) == 21, (len(a), len(b), out[-2000:])
        logs = sup.cli("logs", "burst", "-n", "200").stdout.splitlines()
        assert logs.count("a") == 21 and logs.count("b") == 21, logs
        assert sup.stop() == 0
    finally:
        sup.kill()
        for h in hogs:
            h.kill()


def test_dependency_unready_then_ready(tmp):
    # pc #544: db fails its first start period (unready), is restarted and becomes ready; app,
    # waiting for db: ready, must start then
    flag = os.path.join(tmp.path, "db-ok")
    sup = Sup(tmp, f"""
  db:
    command: {fix("forever")}
    ready: {{ exec: ["test", "-e", "{flag}"], interval: 20ms, start_period: 300ms }}
    backoff: {{ initial: 50ms, max: 50ms }}
  app:
    command: {fix("forever")}
    depends_on: {{ db: ready }}
""")
    try:
        sup.start()
        wait_until(lambda: sup.status()["db"]["restarts"] >= 1, 10, what="db failed its start period")
        assert sup.status()["app"]["state"] == "WAITING"
        open(flag, "w").close()
        sup.wait_state("db", "READY", 10)
        st = sup.wait_state("app", "READY", 10)
        assert st["restarts"] == 0
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_restart_pending_never_duplicates(tmp):
    # pc #530: `restart` of a service that waits for its dependency, many times: one process
    flag = os.path.join(tmp.path, "db-ok")
    sup = Sup(tmp, f"""
  db:
    command: {fix("forever")}
    ready: {{ exec: ["test", "-e", "{flag}"], interval: 20ms }}
  pending:
    command: {fix("forever")}
    depends_on: {{ db: ready }}
""")
    try:
        sup.start()
        assert sup.status()["pending"]["state"] == "WAITING"
        for _ in range(5):  # --no-wait: `restart` would wait for READY, i.e. for db
            assert sup.cli("restart", "pending", "--no-wait").returncode == 0
        assert sup.status()["pending"]["state"] == "WAITING", sup.status()["pending"]
        open(flag, "w").close()
        st = sup.wait_state("pending", "READY")
        for _ in range(5):  # and while it runs: each restart replaces it, never adds one
            assert sup.cli("restart", "pending").returncode == 0
        st = wait_until(lambda: (lambda s: s if s["state"] == "READY" and s["pid"] != st["pid"] else None)(
            sup.status()["pending"]), 10, what="pending restarted")
        wait_until(lambda: service_pids("pending") == [st["pid"]], 5, what="exactly one pending process")
        assert len(re.findall(r"pending: \w+ -> STARTING", sup.output())) >= 2
        assert sup.stop() == 0
    finally:
        sup.kill()


if __name__ == "__main__":
    run_tests([test_group_member_ignoring_term, test_last_line_without_newline_under_load,
               test_dependency_unready_then_ready, test_restart_pending_never_duplicates])
