"""Supervisor: readiness protocols that need no polling, against real programs: s6's notification
fd (`ready: {notify: N}`, a shell and python writing a newline to fd N) and log-line readiness
(`ready: {log: "regex"}`, on stdout or stderr)."""
import os
import re
import shutil
import socket
import subprocess

from xt_testlib import Proc, http_request, port_block, tcp_open, wait_until
from svlib import FIX, Sup, cmd, fix, run_tests

PORTS = port_block("supervisor")


def wait_flag_then(flag, then):
    """A shell that waits for `flag` to exist, then runs `then` (each check is a real process step)."""
    return cmd("sh", "-c", f'while [ ! -e "{flag}" ]; do sleep 0.02; done; {then}')


def test_notify_fd(tmp):
    flag = os.path.join(tmp.path, "flag")
    py = ("import os, time\n"
          f"while not os.path.exists({flag!r}): time.sleep(0.02)\n"
          "os.write(4, b'ready\\n')\n"
          "time.sleep(1000)\n")
    sup = Sup(tmp, f"""
  shell:
    command: {wait_flag_then(flag, 'echo >&3; exec sleep 1000')}
    ready: {{ notify: 3, start_period: 20s }}
  python:
    command: {cmd("python3", "-c", py)}
    ready: {{ notify: 4, start_period: 20s }}
  fds:
    command: {fix("fds", "forever")}
    ready: {{ notify: 5, start_period: 20s }}
  after:
    command: {fix("forever")}
    depends_on: [shell, python]
  silent:
    command: {cmd("sh", "-c", "exec 3>&-; exec sleep 1000")}
    ready: {{ notify: 3, start_period: 300ms }}
    restart: never
""")
    try:
        sup.start()
        # the fd is there, open, in the service (and only the fds it should have)
        wait_until(lambda: "fds 0 1 2 5" in sup.cli("logs", "fds").stdout, 10, what="fds line")
        st = sup.status()
        assert st["shell"]["state"] == "STARTING" and st["python"]["state"] == "STARTING", st
        assert st["after"]["state"] == "WAITING"
        open(flag, "w").close()
        sup.wait_state("shell", "READY")
        sup.wait_state("python", "READY")
        sup.wait_state("after", "READY")
        st = sup.status()
        assert st["shell"]["probe"]["kind"] == "notify" and st["shell"]["probe"]["ok"] is True, st["shell"]
        assert st["fds"]["state"] == "STARTING"  # it never wrote: not ready
        # closing the fd without a newline is not readiness: start_period fails it
        sup.wait_state("silent", "FAILED")
        assert "not ready within 300ms" in sup.output()
        # a restart gets a fresh pipe and is ready again on the next newline
        sup.cli("restart", "shell")
        wait_until(lambda: sup.status()["shell"]["restarts"] >= 1 or "shell: READY -> STOPPING" in sup.output(),
                   10, what="shell restarted")
        sup.wait_state("shell", "READY")
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_log_line(tmp):
    flag = os.path.join(tmp.path, "flag")
    sup = Sup(tmp, f"""
  err:
    command: {wait_flag_then(flag, 'echo "server listening on port 4222" >&2; exec sleep 1000')}
    ready: {{ log: "listening on port [0-9]+$", start_period: 20s }}
  out:
    command: {cmd("sh", "-c", 'echo "not yet: listening on port x"; echo "Server is ready"; exec sleep 1000')}
    ready: {{ log: "^Server is ready$", start_period: 20s }}
  never:
    command: {fix("print:hello", "forever")}
    ready: {{ log: "^bye$", start_period: 400ms }}
    restart: never
""")
    try:
        sup.start()
        sup.wait_state("out", "READY")
        assert sup.status()["err"]["state"] == "STARTING"
        open(flag, "w").close()
        sup.wait_state("err", "READY")
        assert sup.status()["err"]["probe"]["kind"] == "log"
        sup.wait_state("never", "FAILED")
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_never_ready_on_a_strangers_listener(tmp):
    # the case: something else (here another process, the fixture started by the test, not
    # by the supervisor) still listens on nats's port. The new run crash-loops on the taken port
    # while its probe is answered by the stranger: it must never be READY on that; status (text,
    # json, http) and the log say who holds the port; once the stranger is gone, the service gets
    # its port and is READY
    port, hport, hport2 = PORTS[0], PORTS[1], PORTS[2]
    stranger = Proc([FIX, f"listen:{port}", "forever"])
    wait_until(lambda: tcp_open(port), 5, what="the stranger listens")
    sup = Sup(tmp, f"""
  nats:
    command: {fix(f"listen:{port}", "forever")}
    ready: {{ tcp: "127.0.0.1:{port}", interval: 20ms, start_period: 30s }}
    backoff: {{ initial: 50ms, max: 50ms }}
    restart_limit: {{ count: 1000, window: 60s }}
  web:
    command: {fix("forever")}
    ready: {{ http: "http://127.0.0.1:{hport2}/", interval: 20ms, start_period: 30s }}
""", http=f"127.0.0.1:{hport}")
    want = rf"127\.0\.0\.1:{port} answers before nats started: held by pid {stranger.pid} \(sv_fixture\)"
    hserver = None
    try:
        sup.start()
        st = wait_until(lambda: (lambda s: s if s["probe"] and re.search(want, s["probe"]["message"]) else None)(
            sup.status()["nats"]), 10, what="the held port reported")
        assert st["ready"] is False and st["state"] != "READY" and st["probe"]["ok"] is False, st
        assert re.search(want, sup.cli("status").stdout), sup.cli("status").stdout
        _, _, body = http_request(f"http://127.0.0.1:{hport}/status.json")
        assert re.search(want, body.decode()), body
        wait_until(lambda: re.search(rf"nats: {want}|nats: 127\.0\.0\.1:{port} answers before it started: "
                                     rf"held by pid {stranger.pid}", sup.output()), 5, what="the warning logged")
        # an http probe answered by a stranger's server (started after the service) is not READY either
        hserver = subprocess.Popen(["python3", "-m", "http.server", "--bind", "127.0.0.1", str(hport2)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: (lambda s: s["probe"] and f"answered by pid {hserver.pid}" in s["probe"]["message"])(
            sup.status()["web"]), 10, what="the http stranger reported")
        for _ in range(10):  # never READY while held, whatever the probe says
            s = sup.status()
            assert s["nats"]["state"] != "READY" and s["web"]["state"] != "READY", s
        stranger.kill()
        sup.wait_state("nats", "READY", 10)
        assert sup.status()["nats"]["probe"]["message"] == "connected"
        assert sup.stop() == 0
    finally:
        if hserver is not None:
            hserver.kill()
            hserver.wait()
        stranger.kill()
        sup.kill()


def test_liveness_on_a_strangers_listener(tmp):
    # a liveness probe is checked for ownership like readiness: answered by a stranger's listener
    # (here the test's own process on the port), it is reported with the stranger's pid and fails,
    # and the service is restarted; a service's own listener keeps passing, whether its main process
    # holds it or a child of its session does (that one is looked up once, then remembered)
    port, own, kid = PORTS[10], PORTS[11], PORTS[12]
    stranger = Proc([FIX, f"listen:{port}", "forever"])
    wait_until(lambda: tcp_open(port), 5, what="the stranger listens")
    sup = Sup(tmp, f"""
  idle:
    command: {fix("forever")}
    live: {{ tcp: "127.0.0.1:{port}", interval: 30ms, failures: 2 }}
  own:
    command: {fix(f"listen:{own}", "forever")}
    ready: {{ tcp: "127.0.0.1:{own}", interval: 20ms }}
    live: {{ tcp: "127.0.0.1:{own}", interval: 30ms, failures: 2 }}
  parent:
    command: {cmd("sh", "-c", f"{FIX} listen:{kid} forever; true")}
    ready: {{ tcp: "127.0.0.1:{kid}", interval: 20ms }}
    live: {{ tcp: "127.0.0.1:{kid}", interval: 30ms, failures: 2 }}
""")
    want = f"127.0.0.1:{port} answered by pid {stranger.pid} (sv_fixture), not by idle"
    try:
        sup.start()
        wait_until(lambda: "idle: liveness failed 2 times" in sup.output(), 10, what="the liveness restart")
        assert want in sup.output(), sup.output()[-2000:]
        assert re.search(rf"idle: 127\.0\.0\.1:{port} answers from another process: held by pid "
                         rf"{stranger.pid} \(sv_fixture\); not alive on it", sup.output()), sup.output()[-2000:]
        sup.wait_state("own", "READY")
        sup.wait_state("parent", "READY")
        # several liveness passes of each (the debug log names every probe result)
        wait_until(lambda: min(sup.output().count(f"{n}: live probe ok") for n in ("own", "parent")) >= 5, 10,
                   what="five liveness passes each")
        st = sup.status()
        for name in ("own", "parent"):
            assert st[name]["state"] == "READY" and st[name]["restarts"] == 0, st[name]
            assert st[name]["probe"]["ok"] is True, st[name]
        assert "own: liveness failed" not in sup.output() and "parent: liveness failed" not in sup.output()
        # the child's listener is looked up once per run, not at every liveness interval
        assert sup.output().count(f"parent: 127.0.0.1:{kid} answers") == 0, sup.output()[-2000:]
        assert sup.stop() == 0
    finally:
        stranger.kill()
        sup.kill()


def test_ready_on_its_own_escapees_listener(tmp):
    # a service that daemonizes (its listener is in a process that left its session) is its own
    port = PORTS[3]
    sup = Sup(tmp, f"""
  daemon:
    command: {fix(f"setsid-listen:{port}", "forever")}
    ready: {{ tcp: "127.0.0.1:{port}", interval: 20ms, start_period: 10s }}
""")
    try:
        sup.start()
        sup.wait_state("daemon", "READY", 10)
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_ready_in_a_container_without_ptrace(tmp):
    # Container root (podman, Docker, Fly) has no CAP_SYS_PTRACE: the supervisor cannot read the
    # fds of a service it dropped to another user, and took the service's own listener for a
    # stranger's (the image never became ready). Its own listener must still make it READY.
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        print("skipped: needs root and setpriv")
        return
    port = PORTS[4]
    sup = Sup(tmp, f"""
  web:
    command: {fix(f"listen:{port}", "forever")}
    user: nobody
    ready: {{ tcp: "127.0.0.1:{port}", interval: 20ms, start_period: 10s }}
""", prefix=["setpriv", "--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"])
    try:
        sup.start()
        with open(f"/proc/{sup.pid}/status") as f:
            eff = int(re.search(r"CapEff:\s*([0-9a-f]+)", f.read()).group(1), 16)
        assert not eff & (1 << 19), "the supervisor still has CAP_SYS_PTRACE"  # 19: CAP_SYS_PTRACE
        st = sup.wait_state("web", "READY", 10)
        assert st["probe"]["ok"] is True, st
        assert sup.stop() == 0
    finally:
        sup.kill()


def sd_send(name, text):
    """A datagram to an abstract NOTIFY_SOCKET ('@name'), from this (foreign) process."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(text, "\0" + name[1:])


def test_sd_notify(tmp):
    # READY=1 and STATUS= over NOTIFY_SOCKET (one socket per run); a stranger's datagram (this test's)
    # does not make the service READY; an oversized one is dropped; MAINPID= is ignored
    flag = os.path.join(tmp.path, "go")
    sup = Sup(tmp, f"""
  sd:
    command: {fix("env:NOTIFY_SOCKET", "env:WATCHDOG_USEC", "sdnotify:STATUS=warming up",
                  "sdnotify:MAINPID=1", "sdnotify:STATUS=" + "y" * 5000, "sleep:300", "sdnotify:READY=1|STATUS=serving", "forever")}
    ready: {{ sd_notify: true, start_period: 10s }}
  late:
    command: {fix("env:NOTIFY_SOCKET", "forever")}
    ready: {{ sd_notify: true, start_period: 30s }}
""")
    try:
        sup.start()
        st = sup.wait_state("sd", "READY", 10)
        assert st["status_text"] == "serving" and st["probe"]["kind"] == "sd_notify", st
        assert st["probe"]["message"] == "READY=1", st
        assert re.search(r"sd +READY .*sd_notify ok .*READY=1; status: serving", sup.cli("status").stdout)
        out = sup.output()
        assert re.search(r"sd +\| NOTIFY_SOCKET=@\S+", out) and "WATCHDOG_USEC=(unset)" in out, out[-2000:]
        assert "MAINPID=1 ignored" in out, out[-2000:]
        assert "sd: sd_notify message of 5007 bytes dropped (at most 4096)" in out, out[-2000:]
        name = wait_until(lambda: re.search(r"late +\| NOTIFY_SOCKET=(@\S+)", sup.output()), 5).group(1)
        sd_send(name, b"STATUS=x" + b"y" * 5000)
        sd_send(name, b"READY=1\nSTATUS=forged")
        wait_until(lambda: re.search(rf"late: sd_notify message from pid {os.getpid()} ignored: not one of its "
                                     "processes", sup.output()), 5, what="the stranger refused")
        st = sup.status()["late"]
        assert st["state"] == "STARTING" and st["status_text"] is None, st
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_sd_notify_watchdog(tmp):
    # `watchdog:`: WATCHDOG_USEC and WATCHDOG_PID (the service's own pid) are passed; a service
    # that pings stays up; one that stops pinging is restarted
    sup = Sup(tmp, f"""
  steady:
    command: {fix("sdnotify:READY=1", "sdwatchdog:50:1000000")}
    ready: {{ sd_notify: true }}
    watchdog: 1s
  stalls:
    command: {fix("env:WATCHDOG_USEC", "env:WATCHDOG_PID", "pid", "sdnotify:READY=1", "sdwatchdog:50:4",
                  "forever")}
    ready: {{ sd_notify: true }}
    watchdog: 300ms
    backoff: {{ initial: 10ms, max: 10ms }}
""")
    try:
        sup.start()
        sup.wait_state("steady", "READY", 10)
        wait_until(lambda: sup.status()["stalls"]["restarts"] >= 2, 10, what="the stalled service restarted")
        out = sup.output()
        assert "stalls: watchdog: no WATCHDOG=1 within 300ms, restarting" in out, out[-2000:]
        assert "WATCHDOG_USEC=300000" in out, out[-2000:]
        pids = re.findall(r"stalls +\| pid (\d+)", out)
        wpids = re.findall(r"stalls +\| WATCHDOG_PID=(\d+)", out)
        assert pids and wpids[:len(pids)] == pids[:len(wpids)], (pids, wpids)
        st = sup.status()["steady"]
        assert st["restarts"] == 0 and st["state"] == "READY", st
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_sd_notify_systemd_notify(tmp):
    # the real client, when installed (Debian's systemd package; the fixture's datagrams above are
    # the protocol without it): `systemd-notify --ready --status=...` waits for its barrier
    if shutil.which("systemd-notify") is None:
        print("systemd-notify not installed: covered by the fixture's sd_notify only")
        return
    sup = Sup(tmp, """
  script:
    command: ["sh", "-c", "systemd-notify --status='starting up'; sleep 0.1; systemd-notify --ready --status='up: 3 workers'; exec sleep 600"]
    ready: { sd_notify: true, start_period: 10s }
""")
    try:
        sup.start()
        st = sup.wait_state("script", "READY", 10)
        assert st["status_text"] == "up: 3 workers", st
        assert sup.stop() == 0
    finally:
        sup.kill()


if __name__ == "__main__":
    run_tests([test_notify_fd, test_log_line, test_never_ready_on_a_strangers_listener,
               test_liveness_on_a_strangers_listener,
               test_ready_on_its_own_escapees_listener, test_ready_in_a_container_without_ptrace, test_sd_notify, test_sd_notify_watchdog,
               test_sd_notify_systemd_notify])
