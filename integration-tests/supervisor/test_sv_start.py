"""Supervisor: start order and readiness gating (with a real nats-server), oneshot completion,
parallel start, and every CLI command against the control socket."""
import os
import re
import signal
import stat
import subprocess

from xt_testlib import bin_path, port_block, wait_until
from svlib import SUP, Sup, cmd, fix, q, run_tests

PORTS = port_block("supervisor")


def line_index(out, pattern):
    m = re.search(pattern, out, re.M)
    assert m, f"no line matching {pattern!r} in:\n{out[-4000:]}"
    return m.start()


def test_start_order_and_gating(tmp):
    nport, hport = PORTS[0], PORTS[1]
    conf = tmp.write("nats.conf", f'server_name: "sv-test"\nhost: 127.0.0.1\nport: {nport}\n'
                                  f'http: 127.0.0.1:{hport}\njetstream {{ store_dir: "{tmp.path}/js" }}\n')
    sup = Sup(tmp, f"""
  nats:
    command: {cmd(bin_path("nats-server"), "-c", conf)}
    ready: {{ http: "http://127.0.0.1:{hport}/healthz?js-enabled-only=true", interval: 20ms, timeout: 1s }}
    live: {{ tcp: "127.0.0.1:{nport}", interval: 1s }}
  api:
    command: {fix("print:api started", "forever")}
    depends_on: {{ nats: ready }}
  side:
    command: {fix("print:side started", "forever")}
  setup:
    type: oneshot
    command: {fix("sleep:200", "print:setup done")}
  after:
    command: {fix("print:after started", "forever")}
    depends_on: {{ setup: completed, side: started }}
""")
    try:
        sup.start()
        for n in ("nats", "api", "side", "after"):
            sup.wait_state(n, "READY", 20)
        sup.wait_state("setup", "EXITED")
        out = sup.output()
        # api only after nats is ready; side did not wait for nats (parallel start)
        assert line_index(out, r"nats: STARTING -> READY") < line_index(out, r"api: WAITING -> STARTING")
        assert line_index(out, r"side: STARTING -> READY") < line_index(out, r"nats: STARTING -> READY")
        # after waited for the oneshot to complete
        assert line_index(out, r"setup: STARTING -> EXITED") < line_index(out, r"after: WAITING -> STARTING")
        assert "api        | api started" in out or re.search(r"^api +\| api started$", out, re.M), out
        st = sup.status()
        assert st["nats"]["probe"]["kind"] == "tcp" or st["nats"]["probe"]["kind"] == "http"
        assert st["setup"]["ready"] is True and st["setup"]["last_exit"]["code"] == 0
        rc = sup.stop()
        assert rc == 0, (rc, sup.output()[-3000:])
    finally:
        sup.kill()


def test_cli_commands(tmp):
    sup = Sup(tmp, f"""
  ticker:
    command: [sh, -c, "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.05; done"]
  quiet:
    command: {fix("print:quiet up", "forever")}
  manual:
    command: {fix("forever")}
    autostart: false
""")
    try:
        sup.start()
        sup.wait_state("ticker", "READY")
        sup.wait_state("quiet", "READY")
        assert sup.status()["manual"]["state"] == "STOPPED"
        # socket 0600 in a 0700 directory
        assert stat.S_IMODE(os.stat(sup.sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(sup.sock)).st_mode) == 0o700
        r = sup.cli("status")
        assert r.returncode == 0 and r.stdout.startswith("NAME"), r
        assert re.search(r"^ticker +READY +\d+", r.stdout, re.M), r.stdout
        # start / stop / restart
        assert sup.cli("start", "manual").returncode == 0
        sup.wait_state("manual", "READY")
        pid = sup.status()["quiet"]["pid"]
        r = sup.cli("restart", "quiet")
        assert r.returncode == 0, r
        wait_until(lambda: sup.status()["quiet"]["pid"] not in (None, pid)
                   and sup.status()["quiet"]["state"] == "READY", 10, what="quiet restarted")
        assert sup.cli("stop", "manual").returncode == 0
        sup.wait_state("manual", "STOPPED")
        # logs -n and logs -f
        r = sup.cli("logs", "quiet", "-n", "5")
        assert r.returncode == 0 and "quiet up" in r.stdout, r
        r = wait_until(lambda: (lambda r: r if len(r.stdout.splitlines()) == 3 else None)(
            sup.cli("logs", "ticker", "-n", "3")), 10, what="3 ticker lines")
        assert r.stdout.startswith("tick"), r.stdout
        p = subprocess.Popen([SUP, "-s", sup.sock, "logs", "ticker", "-f", "-n", "0"], stdout=subprocess.PIPE,
                             text=True)
        try:
            got = [p.stdout.readline() for _ in range(3)]
            assert all(g.startswith("tick ") for g in got), got
        finally:
            p.kill()
            p.wait()
        # errors
        r = sup.cli("stop", "nosuch")
        assert r.returncode == 1 and "unknown service 'nosuch'" in r.stderr, r
        r = sup.cli("frob")
        assert r.returncode == 2 and "unknown command" in r.stderr, r
        r = sup.cli("status", "--bogus")
        assert r.returncode == 2, r
        # a second supervisor on the same socket refuses to start, nothing started
        r = subprocess.run([SUP, "run", "-c", sup.path], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and "another supervisor answers" in r.stderr, r
        # kill -9 leaves a stale socket: the next supervisor replaces it
        services = [st["pid"] for st in sup.status().values() if st["pid"]]
        os.killpg(sup.pid, signal.SIGKILL)
        sup.proc.wait(5)
        for pid in services:  # each in its own session: not in the supervisor's group
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        assert os.path.exists(sup.sock)
        r = sup.cli("status")
        assert r.returncode == 3 and f"not running (no answer on {sup.sock})" in r.stderr, r
        sup2 = Sup(tmp, "  one:\n    command: " + fix("forever") + "\n").start()
        try:
            sup2.wait_state("one", "READY")
            assert sup2.stop() == 0
            assert not os.path.exists(sup2.sock)
        finally:
            sup2.kill()
    finally:
        sup.kill()


def test_check_help_version(tmp):
    good = tmp.write("good.yaml", "version: 1\nservices:\n  a:\n    command: [true]\n")
    r = subprocess.run([SUP, "check", good], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r
    bad = tmp.write("bad.yaml", "version: 1\nservices:\n  a:\n    comand: [true]\n")
    r = subprocess.run([SUP, "check", bad], capture_output=True, text=True)
    assert r.returncode == 2 and re.search(r"bad\.yaml:\d+:\d+: ", r.stderr), r
    # run on a bad manifest: exit 2, nothing started
    r = subprocess.run([SUP, "run", "-c", bad], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "bad.yaml:" in r.stderr, r
    r = subprocess.run([SUP, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: xtask-supervisor" in r.stdout
    r = subprocess.run([SUP, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("xtask-supervisor ")
    r = subprocess.run([SUP, "logs", "a", "b"], capture_output=True, text=True)  # `logs` alone: every service
    assert r.returncode == 2
    # not running: socket from the environment
    r = subprocess.run([SUP, "status"], capture_output=True, text=True,
                       env=dict(os.environ, XTASK_SUPERVISOR_SOCKET=os.path.join(tmp.path, "none.sock")))
    assert r.returncode == 3 and "not running" in r.stderr, r


def test_spawn_environment(tmp):
    """Each service: its own session, no inherited fds, empty signal mask, env layers, user, secrets."""
    secret_file = os.path.join(tmp.path, "secrets", "token")
    user = "    user: nobody\n" if os.geteuid() == 0 else ""
    sup = Sup(tmp, f"""
  probe:
    type: oneshot
    command: {fix("fds", "sigmask", "uid", "env:LAYER", "env:GLOBAL", "env:TOKEN")}
    env: {{ LAYER: service }}
    secrets: [TOKEN]
{user}  other:
    type: oneshot
    command: {fix("env:TOKEN")}
""", top=f"""env:
  LAYER: manifest
  GLOBAL: from-manifest
secrets:
  TOKEN: {{ bytes: 16, file: {q(secret_file)} }}
""", env={"LAYER": "supervisor-env"})
    try:
        # the supervisor's own descriptors (epoll, signalfd, sockets, other pipes) never leak
        sup.start()
        sup.wait_state("probe", "EXITED")
        out = sup.cli("logs", "probe").stdout
        assert "fds 0 1 2\n" in out, out
        assert "SigBlk:\t0000000000000000" in out and "SigIgn:\t0000000000000000" in out, out
        assert "LAYER=service" in out and "GLOBAL=from-manifest" in out, out
        token = open(secret_file).read().strip()
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        assert f"TOKEN={token}" in out and len(token) >= 20, out
        # a secret reaches only the services that name it (and never through the supervisor's own env)
        sup.wait_state("other", "EXITED")
        other = sup.cli("logs", "other").stdout
        assert "TOKEN=(unset)" in other and token not in other, other
        if user:
            assert "uid 65534" in out, out
        # the secret value is never in the supervisor's own log
        assert token not in sup.output().replace(f"TOKEN={token}", "")
        # kept on the next start
        assert sup.stop() == 0
        sup2 = Sup(tmp, "  x:\n    command: " + fix("env:TOKEN", "forever") + "\n    secrets: [TOKEN]\n",
                   top=f"""secrets:
  TOKEN: {{ bytes: 16, file: {q(secret_file)} }}
""").start()
        try:
            wait_until(lambda: f"TOKEN={token}" in sup2.cli("logs", "x").stdout, 5, what="same token")
            assert sup2.stop() == 0
        finally:
            sup2.kill()
    finally:
        sup.kill()


if __name__ == "__main__":
    run_tests([test_start_order_and_gating, test_cli_commands, test_check_help_version, test_spawn_environment])
