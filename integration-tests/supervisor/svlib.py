"""Helpers for the supervisor's integration tests: a manifest in a temp dir, the supervisor as a
Proc, the CLI, status polling, and a tiny test runner (each test file runs its tests in order and
exits non-zero when one fails)."""
import json
import os
import signal
import subprocess
import sys
import time
import traceback

from xt_testlib import BIN_DIR, Proc, TempDir, bin_path, check_leaks, wait_until

SUP = bin_path("xtask-supervisor")
FIX = os.path.join(os.path.dirname(BIN_DIR), "tests", "sv_fixture")


def q(s):
    """A YAML double-quoted scalar."""
    return json.dumps(str(s))


def cmd(*argv):
    """A YAML flow sequence for a command: the fixture with steps."""
    return "[" + ", ".join(q(a) for a in argv) + "]"


def fix(*steps):
    return cmd(FIX, *steps)


class Sup:
    """One supervisor on a manifest written from `services_yaml` (the body under `services:`)."""

    def __init__(self, tmp, services_yaml, stop_timeout="3s", http=None, extra_sup="", top="", env=None,
                 stdout=None, log_format="text", args=(), prefix=()):
        self.tmp = tmp
        self.args = list(args)  # after `run -c FILE`, e.g. ["--only", "web"]
        self.prefix = list(prefix)  # before the supervisor, e.g. setpriv dropping a capability
        self.sock = os.path.join(tmp.path, "run", "sup.sock")
        self.path = os.path.join(tmp.path, "services.yaml")
        self.write(services_yaml, stop_timeout, http, extra_sup, top, log_format)
        self.env = dict(env or {})
        self.env.setdefault("XT_LOG_LEVEL", "debug")
        self.stdout = stdout
        self.proc = None
        self.raw = None

    def write(self, services_yaml, stop_timeout="3s", http=None, extra_sup="", top="", log_format="text"):
        text = ("version: 1\nsupervisor:\n"
                f"  control_socket: {q(self.sock)}\n  stop_timeout: {stop_timeout}\n"
                f"  log: {{ format: {log_format} }}\n"
                + (f"  status_http: {q(http)}\n" if http else "") + extra_sup + top
                + "services:\n" + services_yaml)
        with open(self.path, "w") as f:
            f.write(text)

    def start(self, wait_socket=True):
        if self.stdout is None:
            self.proc = Proc([*self.prefix, SUP, "run", "-c", self.path, *self.args], env=self.env)
        else:
            # a raw Popen whose stdout the test controls (e.g. a pipe nobody reads)
            e = dict(os.environ)
            e.update(self.env)
            self.raw = subprocess.Popen([SUP, "run", "-c", self.path, *self.args], env=e, stdout=self.stdout,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        if wait_socket:
            wait_until(lambda: self.cli("ping").returncode == 0, 10, what="control socket answers")
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else self.raw.pid

    def output(self):
        return self.proc.output() if self.proc else ""

    def cli(self, *args, timeout=10):
        return subprocess.run([SUP, "-s", self.sock, *args], capture_output=True, text=True, timeout=timeout)

    def status(self):
        r = self.cli("status", "--json")
        if r.returncode != 0:
            raise AssertionError(f"status failed: {r.stderr}")
        return {s["name"]: s for s in json.loads(r.stdout)["services"]}

    def wait_state(self, name, state, timeout=10):
        def check():
            s = self.status()[name]
            return s if s["state"] == state else None
        return wait_until(check, timeout, what=f"{name} {state}")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def wait_exit(self, timeout=10):
        if self.proc:
            return self.proc.wait(timeout)
        return self.raw.wait(timeout=timeout)

    def stop(self, timeout=10):
        if (self.proc and self.proc.running()) or (self.raw and self.raw.poll() is None):
            self.signal(signal.SIGTERM)
            return self.wait_exit(timeout)
        return self.proc.p.returncode if self.proc else self.raw.returncode

    def kill(self):
        if self.proc:
            self.proc.kill()
        if self.raw and self.raw.poll() is None:
            try:
                os.killpg(self.raw.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.raw.wait()


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()[0]
        return st != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def children_of(pid):
    """[(pid, state)] of processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if int(rest[1]) == pid:
                out.append((int(d), rest[0]))
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            pass
    return out


def run_tests(tests):
    """Run test functions in order; print a line each; exit 1 if any failed."""
    failed = 0
    for t in tests:
        t0 = time.monotonic()
        tmp = TempDir(prefix=f"xt-sv-{t.__name__}-")
        try:
            t(tmp)
            leaks = check_leaks(t.__name__)
            if leaks:
                raise AssertionError(f"{t.__name__} left processes running: " + "; ".join(leaks))
            print(f"PASS {t.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Exception:  # noqa: BLE001 - report and go on
            failed += 1
            print(f"FAIL {t.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
            traceback.print_exc()
        finally:
            check_leaks(t.__name__)  # a failed test's processes go before the next test starts
            tmp.cleanup()
    sys.exit(1 if failed else 0)
