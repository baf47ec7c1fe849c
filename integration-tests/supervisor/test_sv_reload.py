"""Supervisor: reload (CLI and SIGHUP) restarts only the services whose definition changed,
starts added ones, stops removed ones, and keeps running on a bad manifest."""
import os
import signal
import subprocess

from xt_testlib import wait_until
from svlib import SUP, Sup, fix, run_tests


def svc(name, *steps, extra=""):
    return f"  {name}:\n    command: {fix(*steps)}\n{extra}"


def test_reload(tmp):
    a = svc("a", "print:a v1", "forever")
    b1 = svc("b", "print:b v1", "forever", extra="    depends_on: { a: ready }\n")
    b2 = svc("b", "print:b v2", "forever", extra="    depends_on: { a: ready }\n")
    c = svc("c", "forever")
    d = svc("d", "print:d new", "forever")
    sup = Sup(tmp, a + b1 + c)
    try:
        sup.start()
        for n in "abc":
            sup.wait_state(n, "READY")
        before = sup.status()
        sup.write(a + b2 + d)
        r = sup.cli("reload")
        assert r.returncode == 0, r
        sup.wait_state("d", "READY")
        wait_until(lambda: "c" not in sup.status(), 5, what="c removed")
        st = sup.wait_state("b", "READY")
        assert st["pid"] != before["b"]["pid"], "b changed: restarted"
        assert sup.status()["a"]["pid"] == before["a"]["pid"], "a unchanged: not restarted"
        assert "reload: " in sup.output() and "1 changed, 1 added, 1 removed, 1 unchanged" in sup.output()
        wait_until(lambda: "b v2" in sup.cli("logs", "b").stdout, 5, what="b v2 output")
        # a bad manifest: error, nothing changes
        with open(sup.path, "a") as f:
            f.write("  e:\n    comand: [true]\n")
        r = sup.cli("reload")
        assert r.returncode == 1 and "services.yaml:" in r.stderr, r
        assert sorted(sup.status()) == ["a", "b", "d"]
        assert "keeping the running configuration" in sup.output()
        # SIGHUP does the same: change a only
        a_pid = sup.status()["a"]["pid"]
        b_pid = sup.status()["b"]["pid"]
        sup.write(svc("a", "print:a v2", "forever") + b2 + d)
        sup.signal(signal.SIGHUP)
        wait_until(lambda: sup.status()["a"]["pid"] not in (None, a_pid), 5, what="a restarted")
        sup.wait_state("a", "READY")
        assert sup.status()["b"]["pid"] == b_pid
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_reload_parses_off_the_loop(tmp):
    # the manifest is a FIFO nobody writes to yet: the reload's parse blocks in open(). The loop
    # must go on (status answers, the probe keeps passing); a second reload asked meanwhile is parsed
    # after the first; both clients get the final answer once the file is readable again
    ticks = os.path.join(tmp.path, "ticks")
    a = svc("a", "forever", extra=f'    live: {{ exec: ["sh", "-c", "echo x >> {ticks}"], interval: 20ms }}\n')
    e = svc("e", "print:e added", "forever")
    sup = Sup(tmp, a)
    cli = []
    try:
        sup.start()
        sup.wait_state("a", "READY")
        wait_until(lambda: os.path.exists(ticks), 5, what="the liveness probe runs")
        good = open(sup.path).read()
        os.unlink(sup.path)
        os.mkfifo(sup.path)
        for _ in range(2):
            cli.append(subprocess.Popen([SUP, "-s", sup.sock, "reload"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
        wait_until(lambda: sup.output().count("control: reload") == 2, 5, what="both reloads asked")
        for _ in range(5):  # served while the parse is stuck
            st = sup.status()
            assert st["a"]["state"] == "READY" and all(c.poll() is None for c in cli), st
        n0 = os.path.getsize(ticks)
        wait_until(lambda: os.path.getsize(ticks) > n0 + 10, 5, what="the liveness probe still running")
        # the good file takes the FIFO's place first; then a writer on the FIFO (by another name)
        # releases the stuck open(): that parse fails (a FIFO), the second one reads the good file
        os.link(sup.path, sup.path + ".fifo")
        with open(sup.path + ".new", "w") as f:
            f.write(good.replace("services:\n", "services:\n" + e))
        os.replace(sup.path + ".new", sup.path)
        with open(sup.path + ".fifo", "w"):
            pass
        for c in cli:
            out, err = c.communicate(timeout=20)
            assert c.returncode == 0 and "reloaded" in out, (c.returncode, out, err)
        sup.wait_state("e", "READY")
        assert "not a regular file" in sup.output(), sup.output()[-2000:]
        assert sup.stop() == 0
    finally:
        for c in cli:
            if c.poll() is None:
                c.kill()
                c.wait()
        sup.kill()


if __name__ == "__main__":
    run_tests([test_reload, test_reload_parses_off_the_loop])
