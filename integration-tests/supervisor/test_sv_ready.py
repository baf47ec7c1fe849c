"""Supervisor: readiness protocols that need no polling, against real programs: s6's notification
fd (`ready: {notify: N}`, a shell and python writing a newline to fd N) and log-line readiness
(`ready: {log: "regex"}`, on stdout or stderr)."""
import os

from xt_testlib import wait_until
from svlib import Sup, cmd, fix, run_tests


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


if __name__ == "__main__":
    run_tests([test_notify_fd, test_log_line])
