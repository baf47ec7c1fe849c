"""Supervisor: stop in reverse dependency order, SIGKILL escalation, the whole stop budget, a
second signal hurrying, no process left behind (grandchildren, setsid escapees, double-forked
orphans), zombies reaped as a subreaper."""
import os
import re
import signal
import time

from xt_testlib import wait_until
from svlib import Sup, children_of, fix, pid_alive, run_tests


def idx(out, pattern):
    m = re.search(pattern, out, re.M)
    assert m, f"no line matching {pattern!r} in:\n{out[-3000:]}"
    return m.start()


def test_stop_order_and_escalation(tmp):
    sup = Sup(tmp, f"""
  base:
    command: {fix("term-exit:0", "forever")}
  mid:
    command: {fix("term-exit:0", "forever")}
    depends_on: {{ base: started }}
  top:
    command: {fix("term-exit:0", "sleep:0", "forever")}
    depends_on: {{ mid: ready }}
  stubborn:
    command: {fix("ignore-term", "forever")}
    stop: {{ signal: SIGTERM, timeout: 300ms }}
""", stop_timeout="3s")
    try:
        sup.start()
        for n in ("base", "mid", "top", "stubborn"):
            sup.wait_state(n, "READY")
        t0 = time.monotonic()
        sup.signal(signal.SIGINT)
        rc = sup.wait_exit(10)
        took = time.monotonic() - t0
        out = sup.output()
        assert rc == 0, (rc, out[-2000:])
        assert 0.25 < took < 2.5, took
        # dependents first: top stopped before mid was signalled, mid before base
        assert idx(out, r"top: STOPPING -> STOPPED") < idx(out, r"mid: READY -> STOPPING")
        assert idx(out, r"mid: STOPPING -> STOPPED") < idx(out, r"base: READY -> STOPPING")
        assert "stubborn: still running after its stop timeout, sending SIGKILL" in out
        assert "stubborn: killed by signal 9" in out
        assert "stopping (SIGINT)" in out
    finally:
        sup.kill()


def test_budget_and_hurry(tmp):
    # the whole budget (500ms) caps a service's own 10s timeout
    sup = Sup(tmp, f"""
  slow:
    command: {fix("ignore-term", "forever")}
    stop: {{ timeout: 10s }}
""", stop_timeout="500ms")
    try:
        sup.start()
        sup.wait_state("slow", "READY")
        t0 = time.monotonic()
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(5) == 0
        assert time.monotonic() - t0 < 1.5
    finally:
        sup.kill()
    # a second signal during the stop: SIGKILL everything now
    sup = Sup(tmp, f"""
  slow:
    command: {fix("ignore-term", "forever")}
    stop: {{ timeout: 10s }}
""", stop_timeout="10s")
    try:
        sup.start()
        sup.wait_state("slow", "READY")
        t0 = time.monotonic()
        sup.signal(signal.SIGQUIT)
        wait_until(lambda: "stopping (SIGQUIT)" in sup.output(), 5, what="stopping")
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(5) == 0
        assert time.monotonic() - t0 < 1.5
        assert "second stop signal" in sup.output()
    finally:
        sup.kill()


def test_no_process_left_behind(tmp):
    sup = Sup(tmp, f"""
  spawner:
    command: {fix("fork-sleep:60000", "setsid-sleep:60000", "orphan-sleep:60000", "forever")}
""")
    try:
        sup.start()
        sup.wait_state("spawner", "READY")
        out = wait_until(lambda: (lambda o: o if re.search(r"orphan \d+", o) else None)(sup.output()), 5,
                         what="fixture pids")
        pids = [int(re.search(rf"{k} (\d+)", out).group(1)) for k in ("child", "escapee", "orphan")]
        assert all(pid_alive(p) for p in pids), pids
        # the double-forked orphan was reparented to us (child subreaper)
        assert pids[2] in [p for p, _ in children_of(sup.pid)]
        sup.signal(signal.SIGTERM)
        assert sup.wait_exit(10) == 0
        for p in pids:
            wait_until(lambda: not pid_alive(p), 5, what=f"pid {p} gone")
        assert "killing leftover process" in sup.output()  # the setsid escapee
    finally:
        sup.kill()


def test_zombies_reaped(tmp):
    sup = Sup(tmp, f"""
  parent:
    command: {fix("zombies:5", "orphan-sleep:200", "forever")}
    backoff: {{ initial: 10ms }}
""")
    try:
        sup.start()
        st = sup.wait_state("parent", "READY")
        wait_until(lambda: "zombies 5" in sup.output(), 5, what="zombies made")
        # the short-lived orphan was reparented to us and exits: reaped, not a zombie
        wait_until(lambda: re.search(r"orphan \d+", sup.output()), 5, what="orphan made")
        orphan = int(re.search(r"orphan (\d+)", sup.output()).group(1))
        wait_until(lambda: orphan not in [p for p, _ in children_of(sup.pid)], 5, what="orphan reaped")
        # the service dies with 5 unreaped children: they become ours and are reaped
        import os
        os.kill(st["pid"], signal.SIGKILL)
        wait_until(lambda: sup.status()["parent"]["restarts"] == 1, 5, what="respawn")
        wait_until(lambda: not [p for p, s in children_of(sup.pid) if s == "Z"], 5, what="no zombies")
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_as_pid1(tmp):
    """As PID 1 of a pid namespace (no subreaper needed): orphans and zombies reaped, stop clean."""
    import os
    import shutil
    import subprocess
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("skip test_as_pid1: needs root and unshare")
        return
    if subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"]).returncode != 0:
        print("skip test_as_pid1: no pid namespaces here")
        return
    from xt_testlib import Proc
    from svlib import SUP
    sup = Sup(tmp, f"""
  parent:
    command: {fix("zombies:3", "orphan-sleep:100", "orphan-sleep:60000", "forever")}
""")
    p = Proc(["unshare", "--pid", "--fork", "--mount-proc", SUP, "run", "-c", sup.path], env=sup.env)
    try:
        wait_until(lambda: sup.cli("ping").returncode == 0, 10, what="socket")
        assert sup.cli("ping").stdout.split()[-1] == "1", "the supervisor is PID 1 in its namespace"
        inner = wait_until(lambda: children_of(p.pid), 5, what="supervisor process")[0][0]
        sup.wait_state("parent", "READY")
        wait_until(lambda: p.output().count("orphan ") >= 2, 5, what="orphans made")
        st = sup.status()["parent"]
        os.kill(inner, 0)
        # kill the service: its zombies and the long orphan become ours; zombies must be reaped
        subprocess.run(["kill", "-9", str([c for c, _ in children_of(inner)][0])])
        wait_until(lambda: sup.status()["parent"]["restarts"] == 1, 5, what="respawn")
        wait_until(lambda: not [c for c, s in children_of(inner) if s == "Z"], 5, what="no zombies")
        os.kill(inner, signal.SIGTERM)
        assert p.wait(10) == 0
        assert "(PID 1)" in p.output()
        del st
    finally:
        p.kill()


def test_supervisor_killed_leaves_nothing(tmp):
    # SIGKILL to the supervisor alone (OOM killer, a crashed terminal): every service's main process
    # dies with it (PR_SET_PDEATHSIG), also one that ignores SIGTERM; what left the services' groups
    # (a setsid escapee) or stayed in a group whose leader died is stopped by the next start of the
    # same manifest before anything of it starts
    services = f"""
  plain:
    command: {fix("forever")}
  stubborn:
    command: {fix("ignore-term", "fork-sleep:60000", "forever")}
  daemonizer:
    command: {fix("setsid-sleep:60000", "forever")}
"""
    sup = Sup(tmp, services, stop_timeout="1s")
    try:
        sup.start()
        for n in ("plain", "stubborn", "daemonizer"):
            sup.wait_state(n, "READY")
        mains = {n: st["pid"] for n, st in sup.status().items()}
        child = int(sup.proc.wait_output(r"^stubborn +\| child (\d+)$").group(1))
        escapee = int(sup.proc.wait_output(r"^daemonizer +\| escapee (\d+)$").group(1))
        sup.signal(signal.SIGKILL)
        sup.wait_exit(5)
        for n, pid in mains.items():
            wait_until(lambda: not pid_alive(pid), 5, what=f"{n} (pid {pid}) gone with its supervisor")
        assert pid_alive(child) and pid_alive(escapee), "the leftovers this test is about"
        # the next start of the same manifest stops them first
        sup2 = Sup(tmp, services, stop_timeout="1s")
        sup2.start()
        try:
            out = sup2.proc.wait_output(r"plain: STOPPED -> STARTING")
            assert not pid_alive(child) and not pid_alive(escapee), out[-3000:]
            out = sup2.output()
            for pid in (child, escapee):
                m = re.search(rf"stopping pid {pid} \(.*\), left behind by an earlier supervisor", out)
                assert m and m.start() < out.index("plain: STOPPED -> STARTING"), out[-3000:]
            assert sup2.stop() == 0
            # stopped cleanly: no state left for a next start to act on
            assert not os.path.exists(sup2.sock + ".state")
        finally:
            sup2.kill()
    finally:
        sup.kill()


def test_state_never_kills_a_recycled_pid(tmp):
    # a state file naming a dead supervisor and a "service" whose pid now belongs to an unrelated
    # process (different start time): that process is left alone
    import subprocess
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        sup = Sup(tmp, f"  one:\n    command: {fix('forever')}\n")
        os.makedirs(os.path.dirname(sup.sock), mode=0o700, exist_ok=True)
        with open(sup.sock + ".state", "w") as f:
            f.write(f"xtask-supervisor-state 1\nrun 999999.1\nsvc one {stranger.pid} 1\n")
        try:
            sup.start()
            sup.wait_state("one", "READY")
            assert stranger.poll() is None and "left behind" not in sup.output(), sup.output()[-2000:]
            assert sup.stop() == 0
        finally:
            sup.kill()
    finally:
        stranger.kill()
        stranger.wait()


if __name__ == "__main__":
    run_tests([test_stop_order_and_escalation, test_budget_and_hurry, test_no_process_left_behind,
               test_zombies_reaped, test_as_pid1, test_supervisor_killed_leaves_nothing,
               test_state_never_kills_a_recycled_pid])
