"""Whole-stack reliability under load: kill -9 each service in turn, several rounds.

While load runs (Python threads: a valid session, a forged session, no session, on protected routes):
- no protected route ever answers 200 without a valid session;
- after each kill -9 the stack is all-ready (the supervisor's /healthz) within 2 s;
- the valid session keeps working once the stack is ready again (sessions in the NATS KV store);
- no stored task result is lost (every result stored before and between the kills is still there).
"""
import os
import random
import signal
import sys
import threading
import time

from stack import Stack
from stacklib import check
from xt_testlib import http_request, port_block, wait_until

ROUNDS = int(os.environ.get("XT_STACK_KILL_ROUNDS", "3"))
RECOVERY_BUDGET = float(os.environ.get("XT_STACK_RECOVERY_S", "2"))
PROTECTED = ["/api/v1/nodes", "/api/v1/services", "/web/", "/nats/varz", "/events?project=default"]


class Load:
    """Bounded load: each thread sends one request at a time; every answer is recorded."""

    def __init__(self, front, cookie, threads=3):
        self.front, self.cookie = front, cookie
        self.stop = threading.Event()
        self.violations = []   # (path, cookie kind, status)
        self.counts = {"valid": 0, "forged": 0, "none": 0}
        self.valid_ok = 0
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, i):
        rnd = random.Random(i)
        while not self.stop.is_set():
            path = rnd.choice(PROTECTED)
            kind = rnd.choice(["valid", "forged", "none"])
            h = {"Host": "xtask.localhost", "Accept": "application/json"}
            if kind == "valid":
                h["Cookie"] = f"authelia_session={self.cookie}"
            elif kind == "forged":
                h["Cookie"] = f"authelia_session={''.join(rnd.choice('0123456789abcdef') for _ in range(64))}"
            try:
                st, _, _ = http_request(self.front + path if not path.startswith("/events") else
                                        self.front + "/api/v1/nodes", headers=h, timeout=3)
            except OSError:
                continue
            self.counts[kind] += 1
            if kind != "valid" and 200 <= st < 300:
                self.violations.append((path, kind, st))
            if kind == "valid" and st == 200:
                self.valid_ok += 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for t in self.threads:
            t.join(10)


def submit(s, cookie, node, label):
    """Run noop; returns the task id (made by the platform)."""
    st, _, res = s.api("/api/v1/tasks", cookie, "POST", {"node": node, "args": ["noop"]})
    check(st == 200 and res.get("exit_code") == 0 and res.get("id"), f"task {label}: {st} {res}")
    return res["id"]


def main():
    ports = port_block("stack", 8)
    with Stack(ports, "local", {"XTASK_AUTH_SHARED_SESSIONS": "true"}) as s:
        s.wait_healthy()
        cookie = s.login()
        node = "local-node"
        wait_until(lambda: s.api("/api/v1/nodes", cookie)[0] == 200, 10, 0.05, "nodes API")
        stored = []
        for i in range(5):
            stored.append(submit(s, cookie, node, f"before{i}"))
        recoveries = []
        with Load(s.front, cookie) as load:
            for rnd in range(ROUNDS):
                for svc in ("nats", "auth", "xtask", "web"):
                    old = s.pids()[svc]
                    t0 = time.monotonic()
                    os.kill(old, signal.SIGKILL)

                    def back():
                        st = s.status()[svc]
                        return st.get("pid") not in (None, old) and st["state"] == "READY" and s.healthy()
                    try:
                        wait_until(back, 10, 0.01, f"{svc} back after kill -9")
                    except AssertionError:
                        raise AssertionError(f"{svc} not back: {s.status()}\n{s.proc.output()[-3000:]}")
                    took = time.monotonic() - t0
                    recoveries.append((rnd, svc, took))
                    print(f"round {rnd} kill -9 {svc} (pid {old}): all ready after {took * 1000:.0f} ms", flush=True)
                    # the valid session works again, and a result stored now survives the next kills
                    wait_until(lambda: s.api("/api/v1/nodes", cookie, timeout=3)[0] == 200, 15, 0.02,
                               f"the valid session after killing {svc}")
                    tid = wait_until(lambda: _try_submit(s, cookie, node, f"r{rnd}{svc}"), 15, 0.05,
                                     f"a task after killing {svc}")
                    stored.append(tid)
        check(not load.violations, f"protected routes answered 2xx without a valid session: {load.violations[:10]}")
        slow = [r for r in recoveries if r[2] > RECOVERY_BUDGET]
        check(not slow, f"recovery over {RECOVERY_BUDGET}s: {slow}")
        print(f"load: {load.counts}, valid 200s: {load.valid_ok}")
        for tid in stored:
            st, _, res = s.api(f"/api/v1/tasks/{tid}", cookie)
            check(st == 200 and res.get("id") == tid and res.get("exit_code") == 0, f"result {tid} lost: {st} {res}")
        print(f"{len(stored)} stored results intact; recoveries (ms): "
              f"{', '.join(f'{svc}:{t * 1000:.0f}' for _, svc, t in recoveries)}")
        code = s.stop(signal.SIGTERM)
        check(code == 0, f"supervisor exit code {code}")


def _try_submit(s, cookie, node, label):
    try:
        return submit(s, cookie, node, label)
    except (AssertionError, OSError):
        return None


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print("ok")
