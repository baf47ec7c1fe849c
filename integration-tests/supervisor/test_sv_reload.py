"""Supervisor: reload (CLI and SIGHUP) restarts only the services whose definition changed,
starts added ones, stops removed ones, and keeps running on a bad manifest."""
import signal

from xt_testlib import wait_until
from svlib import Sup, fix, run_tests


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


if __name__ == "__main__":
    run_tests([test_reload])
