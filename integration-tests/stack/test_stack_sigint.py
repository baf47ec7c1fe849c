"""SIGINT to the supervisor (Fly's default kill_signal): every service stopped within the 5 s budget
(kill_timeout), exit code 0, and no process of the stack left behind (children, grandchildren, a
task's processes), also while tasks and requests are in flight."""
import signal
import sys
import threading
import time

from stack import Stack
from stacklib import check
from xt_testlib import port_block, wait_until


def main():
    ports = port_block("stack", 8)
    s = Stack(ports, "local")
    try:
        s.start()
        s.wait_healthy()
        cookie = s.login()
        pids = s.pids()
        check(set(pids) >= {"nats", "xtask", "auth", "web"}, f"service pids: {pids}")
        before = s.leftovers()
        check(len(before) >= 4, f"the stack's processes are visible: {before}")
        # in flight: a few requests and tasks
        stop = threading.Event()

        ids = []

        def traffic():
            while not stop.is_set():
                try:
                    st, _, res = s.api("/api/v1/tasks", cookie, "POST", {"node": "local-node", "args": ["noop"]},
                                       timeout=3)
                    if st == 200 and isinstance(res, dict) and res.get("id"):
                        ids.append(res["id"])
                except OSError:
                    pass
        t = threading.Thread(target=traffic, daemon=True)
        t.start()
        wait_until(lambda: len(ids) >= 2 and s.api(f"/api/v1/tasks/{ids[1]}", cookie, timeout=3)[0] == 200, 10,
                   0.05, "traffic flowing")
        t0 = time.monotonic()
        s.proc.signal(signal.SIGINT)
        code = s.proc.wait(10)
        took = time.monotonic() - t0
        stop.set()
        t.join(5)
        print(f"SIGINT: supervisor exited {code} after {took * 1000:.0f} ms")
        check(code == 0, f"exit code {code}:\n{s.proc.output()[-3000:]}")
        check(took < 5.0, f"stopped after {took:.2f}s, Fly's kill_timeout is 5 s")
        left = s.leftovers()
        check(not left, f"processes left behind: {left}")
        out = s.proc.output()
        for svc in ("web", "xtask", "auth", "nats"):
            check(f"{svc}: STOPPING -> STOPPED" in out or f"{svc}: READY -> STOPPED" in out,
                  f"{svc} stopped cleanly:\n{out[-3000:]}")
        # reverse dependency order: web before nats
        check(out.index("web: STOPPING -> STOPPED") < out.index("nats: STOPPING -> STOPPED"), "web stops before nats")
    finally:
        s.cleanup()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("ok")
