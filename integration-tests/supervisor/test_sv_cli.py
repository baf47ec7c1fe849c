"""Supervisor CLI: `restart` waits until the service is READY again (or says why it failed, or
times out; --no-wait skips), `logs` of every service interleaved ("name | line"), -t timestamps,
--since, no line cap beyond what the supervisor keeps (streamed a buffer at a time), `--help` on
every subcommand, and the documented exit codes (0 ok, 1 runtime, 2 usage, 3 not running)."""
import os
import re
import subprocess
import threading
import time

from xt_testlib import wait_until
from svlib import SUP, FIX, Sup, fix, q, run_tests

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def test_restart_waits_until_ready(tmp):
    sup = Sup(tmp, f"""
  slow:
    command: {fix("sleep:400", "print:up", "forever")}
    ready: {{ log: "^up$", start_period: 20s }}
""")
    try:
        sup.start()
        old = sup.wait_state("slow", "READY")
        r = sup.cli("restart", "slow")
        assert r.returncode == 0 and r.stdout == "slow: READY\n", r
        st = sup.status()["slow"]  # no polling: READY when the CLI returns
        assert st["state"] == "READY" and st["pid"] != old["pid"], st
        r = sup.cli("restart", "slow", "--no-wait")
        assert r.returncode == 0 and r.stdout in ("slow: STOPPING\n", "slow: STARTING\n"), r
        sup.wait_state("slow", "READY")
        # not READY within the timeout: exit 1, named
        r = sup.cli("restart", "slow", "--timeout", "50ms")
        assert r.returncode == 1 and "restart slow: not READY within 50 ms" in r.stderr, r
        sup.wait_state("slow", "READY")
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_restart_failure_says_why(tmp):
    flag = os.path.join(tmp.path, "ran-once")
    sup = Sup(tmp, f"""
  brittle:
    command: ["sh", "-c", {q(f"if [ -e {flag} ]; then echo broken >&2; exit 5; fi; touch {flag}; exec {FIX} print:up forever")}]
    ready: {{ log: "^up$", start_period: 20s }}
    backoff: {{ initial: 10ms, max: 10ms }}
    restart_limit: {{ count: 2, window: 60s }}
""")
    try:
        sup.start()
        sup.wait_state("brittle", "READY")
        r = sup.cli("restart", "brittle")
        assert r.returncode == 1, r
        assert re.match(r"xtask-supervisor: brittle: (EXITED|FAILED), exit code 5\n$", r.stderr), r
        assert "readiness" not in r.stderr, r  # the passed probe was the earlier run's
        r = sup.cli("restart", "nosuch")
        assert r.returncode == 1 and "unknown service 'nosuch'" in r.stderr, r
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_logs_all_interleaved_ts_since(tmp):
    sup = Sup(tmp, f"""
  alpha:
    command: {fix("print:a1", "print:a2", "forever")}
  beta:
    command: {fix("print:b1", "print:b2", "forever")}
""")
    try:
        sup.start()
        sup.wait_state("alpha", "READY")
        sup.wait_state("beta", "READY")
        wait_until(lambda: sup.cli("logs", "-n", "all").stdout.count("\n") >= 4, 10, what="4 lines kept")
        lines = sup.cli("logs").stdout.splitlines()
        assert sorted(lines) == ["alpha | a1", "alpha | a2", "beta | b1", "beta | b2"], lines
        assert lines.index("alpha | a1") < lines.index("alpha | a2"), lines
        assert lines.index("beta | b1") < lines.index("beta | b2"), lines
        assert sup.cli("logs", "-n", "1").stdout.count("\n") == 1
        # one service: the lines as they were, -t prefixes the time
        r = sup.cli("logs", "alpha", "-t")
        got = r.stdout.splitlines()
        assert r.returncode == 0 and len(got) == 2 and all(TS.match(g) for g in got), r
        assert got[0].endswith(" a1"), got
        newest = max(time.mktime(time.strptime(g[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                     for g in sup.cli("logs", "-t", "-n", "all").stdout.splitlines()) + 1
        assert sup.cli("logs", "--since", "1h").stdout.count("\n") == 4
        wait_until(lambda: time.time() > newest + 1.5, 5, what="the lines older than 1s")
        r = sup.cli("logs", "--since", "1s", "-n", "all")
        assert r.returncode == 0 and r.stdout == "", r
        # follow every service: a new line of any of them arrives, prefixed
        f = subprocess.Popen([SUP, "-s", sup.sock, "logs", "-f", "-n", "1"], stdout=subprocess.PIPE, text=True)
        got = []
        t = threading.Thread(target=lambda: [got.append(ln) for ln in f.stdout], daemon=True)
        t.start()
        try:
            # the newest kept line first: the follower is connected, whatever comes next is new
            wait_until(lambda: len(got) >= 1, 10, what="the follower's first line")
            assert got[0] in ("alpha | a2\n", "beta | b2\n"), got
            sup.cli("restart", "beta")
            wait_until(lambda: "beta | b2\n" in got[1:], 10, what="beta's new lines followed")
            assert got[1:3] == ["beta | b1\n", "beta | b2\n"], got
        finally:
            f.kill()
            f.wait()
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_logs_beyond_one_buffer(tmp):
    # 10 services x 200 kept lines x ~100 bytes: more than one 128 KB fill of the control answer
    body = "".join(f"""
  n{i}:
    command: {fix("noisy:300", "forever")}
""" for i in range(10))
    sup = Sup(tmp, body)
    try:
        sup.start()
        want = 10 * 200
        wait_until(lambda: sup.cli("logs", "-n", "all").stdout.count("\n") == want, 20, what="all rings full")
        out = sup.cli("logs", "-n", "all").stdout.splitlines()
        assert len(out) == want, len(out)
        per = {}
        for ln in out:
            name, _, text = ln.partition(" | ")
            per.setdefault(name, []).append(text)
        assert sorted(per) == [f"n{i}" for i in range(10)], sorted(per)
        for name, texts in per.items():
            assert len(texts) == 200 and texts[-1] == "noisy done", (name, texts[-3:])
        # the newest N of all: the tail of the interleaved listing
        tail = sup.cli("logs", "-n", "1234").stdout.splitlines()
        assert tail == out[-1234:], (len(tail), tail[:2], out[-1234:-1232])
        assert sup.cli("logs", "-n", "0").stdout == ""
        # more than the old 200-line cap is accepted; one service gives what it keeps
        r = sup.cli("logs", "n3", "-n", "100000")
        assert r.returncode == 0 and r.stdout.count("\n") == 200, r.stderr
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_help_and_exit_codes(tmp):
    for c in ("run", "status", "start", "stop", "restart", "logs", "reload", "check", "ping"):
        r = subprocess.run([SUP, c, "--help"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0 and r.stdout.startswith("usage: xtask-supervisor") and c in r.stdout.split("\n")[0], (c, r)
    r = subprocess.run([SUP, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "exit codes:" in r.stdout, r
    for bad in (["logs", "-n", "x"], ["restart", "--timeout", "soon", "x"], ["status", "--no-wait"],
                ["frob"], ["logs", "--since"]):
        r = subprocess.run([SUP, "-s", os.path.join(tmp.path, "none.sock"), *bad], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2 and r.stderr.startswith("xtask-supervisor: "), (bad, r)
    r = subprocess.run([SUP, "-s", os.path.join(tmp.path, "none.sock"), "restart", "x"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 3 and "not running" in r.stderr, r


if __name__ == "__main__":
    run_tests([test_restart_waits_until_ready, test_restart_failure_says_why, test_logs_all_interleaved_ts_since,
               test_logs_beyond_one_buffer, test_help_and_exit_codes])
