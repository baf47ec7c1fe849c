"""Supervisor: 1000 services in one manifest (the cap): all start and are READY, `status` lists them
all, a reload that removes half, adds as many and changes one applies, and the stop leaves nothing.
Speed and memory at this size are measured in bench/supervisor, not here."""
import time

from xt_testlib import wait_until
from svlib import Sup, fix, run_tests

N = 1000


def services(names, changed=()):
    """Every 10th service depends on the one before it (ready), the rest are independent."""
    out = []
    for k, name in enumerate(names):
        extra = ["changed"] if name in changed else []
        out.append(f"  {name}:\n    command: {fix(f'print:hello {name}', *[f'print:{e}' for e in extra], 'forever')}\n")
        if k % 10 == 9:
            out.append(f"    depends_on: [{names[k - 1]}]\n")
    return "".join(out)


def all_ready(sup, names):
    st = sup.status()
    return set(st) == set(names) and all(s["state"] == "READY" for s in st.values())


def test_thousand_services(tmp):
    names = [f"s{i}" for i in range(N)]
    sup = Sup(tmp, services(names), stop_timeout="20s")
    try:
        sup.start()
        wait_until(lambda: all_ready(sup, names), 60, interval=0.2, what=f"{N} services READY")
        table = sup.cli("status").stdout.splitlines()
        assert len(table) == N + 1 and table[-1].split()[:2] == ["s999", "READY"], table[-3:]
        wait_until(lambda: "hello s999" in sup.cli("logs", "s999").stdout, 10, what="s999's line in logs")
        # reload: the second half removed, as many new ones added, s0 changed
        new = names[:N // 2] + [f"t{i}" for i in range(N // 2)]
        pid_s1 = sup.status()["s1"]["pid"]
        sup.write(services(new, changed={"s0"}), stop_timeout="20s")
        r = sup.cli("reload", timeout=30)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: all_ready(sup, new), 60, interval=0.2, what="the reloaded services READY")
        assert sup.status()["s1"]["pid"] == pid_s1  # unchanged: untouched
        wait_until(lambda: "changed" in sup.cli("logs", "s0").stdout, 10, what="s0 restarted as changed")
        t0 = time.monotonic()
        assert sup.stop(timeout=40) == 0
        print(f"  stop of {N} services: {time.monotonic() - t0:.2f}s")
    finally:
        sup.kill()


if __name__ == "__main__":
    run_tests([test_thousand_services])
