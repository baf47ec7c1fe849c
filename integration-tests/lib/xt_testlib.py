"""Shared helpers for xtask integration tests (Python 3 standard library only).

Rules these helpers enforce: every wait has a deadline (never a fixed sleep), every process a test
starts runs in its own process group and is killed when the test ends (even on failure), and all
traffic stays on 127.0.0.1.

    from xt_testlib import bin_path, wait_until, Proc, NatsServer, http_request, port_block, TempDir
"""
import atexit
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE_DIR = os.environ.get("XT_SOURCE_DIR", _ROOT)
BIN_DIR = os.environ.get("XT_BIN_DIR", os.path.join(SOURCE_DIR, "build", "bin"))
ARTIFACTS = os.environ.get("XT_ARTIFACTS", os.path.join(SOURCE_DIR, "integration-tests", "artifacts"))

_live = []  # every Proc still running, killed at exit
_log_dir = None  # this test process's Proc logs: one directory, removed at exit (XT_KEEP_TMP=1 keeps it)


def _proc_log_path():
    global _log_dir
    if _log_dir is None:
        _log_dir = tempfile.mkdtemp(prefix="xt-logs-")
    fd, path = tempfile.mkstemp(prefix="proc-", suffix=".log", dir=_log_dir)
    os.close(fd)
    return path

# Leak detection. Every process a test starts (Proc, subprocess, the services a supervisor under
# test spawns, their setsid escapees and daemons) inherits this environment entry, unique to the test
# process that imported this module first; environments are inherited across fork, setsid and exec,
# so the marker finds what a process group or a parent/child walk would miss. A Python helper the
# test starts imports this module too and keeps the inherited marker (only the owner, whose pid is in
# it, checks and kills). At exit, and after each test of the per-file runners (check_leaks), every
# process still carrying the marker is killed and the test fails, naming each one.
OWNER_ENV = "XT_TEST_OWNER"
if not os.environ.get(OWNER_ENV, "").startswith("xt."):
    os.environ[OWNER_ENV] = f"xt.{os.getpid()}.{os.urandom(6).hex()}"
_OWNER = os.environ[OWNER_ENV]
_IS_OWNER = _OWNER.split(".")[1] == str(os.getpid())


def _marked_pids():
    """Pids (not ours) whose environment carries our marker: {pid: command line}."""
    needle = f"{OWNER_ENV}={_OWNER}".encode()
    me = os.getpid()
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read()
            if needle not in env.split(b"\0"):
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            found[int(d)] = cmd or "?"
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass  # gone meanwhile (or a zombie: its environment reads empty)
    return found


def check_leaks(what="this test", grace=1.0):
    """Kill every process this test process started that is still running and return a list of
    "pid N (command)" strings (empty: nothing leaked). A process still dying (killed a moment ago)
    gets `grace` seconds to go before it counts."""
    if not _IS_OWNER:
        return []
    deadline = time.monotonic() + grace
    left = _marked_pids()
    while left and time.monotonic() < deadline:
        time.sleep(0.02)  # poll interval inside the deadline-bounded grace period
        left = {p: c for p, c in _marked_pids().items() if p in left}
    leaks = [f"pid {p} ({c[:200]})" for p, c in sorted(left.items())]
    for _ in range(100):  # SIGKILL until they are gone (a stopped or dying process may need a moment)
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        left = {p: c for p, c in _marked_pids().items() if p in left}
        if not left:
            break
        time.sleep(0.01)
    if leaks:
        print(f"LEAK: {what} left {len(leaks)} process(es) running (killed now): " + "; ".join(leaks),
              file=sys.stderr, flush=True)
    return leaks


def bin_path(name):
    """Absolute path of a built program (build/bin/<name>), or of a system one (nats-server)."""
    p = os.path.join(BIN_DIR, name)
    if os.path.exists(p):
        return p
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"{name}: not in {BIN_DIR} nor on PATH (build first)")


def fast_hash(password, salt="saltsalt1234"):
    """An argon2id hash made by the argon2 CLI (Debian package argon2), with small parameters so
    tests stay fast; xtask-auth must verify what another implementation produced."""
    out = subprocess.run(["argon2", salt, "-id", "-t", "1", "-m", "10", "-p", "1", "-e"],
                         input=password.encode(), capture_output=True, check=True)
    return out.stdout.decode().strip()


def wait_until(pred, timeout=10.0, interval=0.01, what="condition"):
    """Call pred() until it returns a true value; return that value. Raise AssertionError naming
    `what` when `timeout` seconds pass. Exceptions from pred count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - not yet
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)  # poll interval inside a deadline-bounded wait, not a synchronization sleep


def port_block(component, n=20):
    """A block of n ports for one test process. Each component owns a range of 1000 ports
    (supervisor 20000, coordinator 21000, auth 22000, web 23000, stack 24000, bench 25000, bus 26000), and
    XT_PORT_OFFSET (0-900, set per CTest test) picks a block inside it. Ports are checked free."""
    bases = {"supervisor": 20000, "coordinator": 21000, "auth": 22000, "web": 23000, "stack": 24000,
             "bench": 25000, "bus": 26000, "edge": 27000}
    base = bases[component] + int(os.environ.get("XT_PORT_OFFSET", "0"))
    for start in range(base, bases[component] + 1000 - n, n):
        ports = list(range(start, start + n))
        # "free now" is not "mine": a test run beside this one (ctest -j, another checkout) may have
        # checked the same block and not bound it yet. A lock per block, held until this process
        # exits, makes the choice exclusive among test processes.
        if not _port_lock(ports) or not all(port_free(p) for p in ports):
            continue
        return ports
    raise RuntimeError(f"no {n} free ports in the {component} range")


_port_locks = []  # open lock files of the blocks this process holds (released at exit)


def _port_lock(ports):
    """Lock every port of the block (one lock file per port, so overlapping blocks of different
    sizes exclude each other too); False, holding nothing, if another process holds any of them."""
    d = os.path.join(tempfile.gettempdir(), f"xt-port-locks-{os.getuid()}")
    os.makedirs(d, exist_ok=True)
    held = []
    for p in ports:
        f = open(os.path.join(d, str(p)), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            for h in held:
                h.close()
            return False
        held.append(f)
    _port_locks.extend(held)
    return True


def port_free(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def tcp_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class TempDir:
    """A temporary directory removed at exit (kept when XT_KEEP_TMP=1)."""

    def __init__(self, prefix="xt-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __enter__(self):
        return self.path

    def __exit__(self, *a):
        self.cleanup()

    def cleanup(self):
        if os.environ.get("XT_KEEP_TMP") != "1":
            shutil.rmtree(self.path, ignore_errors=True)

    def write(self, name, text, mode=0o644):
        p = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p


class Proc:
    """A process in its own session/process group; stdout+stderr go to a log file that tests can
    search. Killed (whole group, SIGKILL) by stop()/kill()/context exit/interpreter exit."""

    def __init__(self, argv, env=None, cwd=None, log=None, stdin=subprocess.DEVNULL, new_session=True):
        self.argv = [str(a) for a in argv]
        self.log_path = _proc_log_path() if log is None else log
        self._log = open(self.log_path, "wb")
        e = dict(os.environ)
        if env:
            e.update({k: str(v) for k, v in env.items()})
        self.p = subprocess.Popen(self.argv, env=e, cwd=cwd, stdin=stdin, stdout=self._log,
                                  stderr=subprocess.STDOUT, start_new_session=new_session)
        self.pid = self.p.pid
        _live.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.kill()

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_output(self, pattern, timeout=10.0, what=None):
        """Wait until the output matches regex `pattern`; return the match."""
        rx = re.compile(pattern, re.M)

        def check():
            m = rx.search(self.output())
            if m:
                return m
            if self.p.poll() is not None:
                m = rx.search(self.output())
                if m:
                    return m
                raise AssertionError(f"{self.argv[0]} exited ({self.p.returncode}) before printing "
                                     f"{pattern!r}; output:\n{self.output()[-3000:]}")
            return None
        return wait_until(check, timeout, what=what or f"output matching {pattern!r}")

    def running(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.running():
            os.kill(self.pid, sig)

    def wait(self, timeout=10.0):
        """Wait for exit with a deadline; return the exit code (negative: killed by signal)."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.argv[0]} did not exit within {timeout}s; output:\n"
                                 f"{self.output()[-3000:]}")

    def kill(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        else:
            # the leader is gone; its group may still hold children
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self in _live:
            _live.remove(self)
        self._log.close()


@atexit.register
def _kill_all():
    for p in list(_live):
        p.kill()
    if _log_dir and os.environ.get("XT_KEEP_TMP") != "1":
        shutil.rmtree(_log_dir, ignore_errors=True)
    if check_leaks(f"{os.path.basename(sys.argv[0] or 'the test')}"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # fail the test process whatever its own verdict was


def http_request(url, method="GET", headers=None, body=None, timeout=5.0):
    """One HTTP/1.1 request without following redirects. Returns (status, headers dict with
    lower-case names (multi-valued joined by '\\n'), body bytes)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        hdrs = {}
        for k, v in r.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + "\n" + v if k in hdrs else v
        return r.status, hdrs, data
    finally:
        conn.close()


def http_json(url, method="GET", headers=None, body=None, timeout=5.0):
    h = dict(headers or {})
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        h.setdefault("Content-Type", "application/json")
    st, hd, data = http_request(url, method, h, body, timeout)
    return st, hd, (json.loads(data) if data else None)


class NatsServer:
    """A real nats-server with JetStream on 127.0.0.1, started with a generated config.
    extra_conf is appended verbatim (cluster, leafnodes, accounts...)."""

    def __init__(self, port, http_port, store_dir, name="xt-test", extra_conf="", jetstream=True):
        self.port, self.http_port, self.store_dir, self.name = port, http_port, store_dir, name
        os.makedirs(store_dir, exist_ok=True)
        self.conf = os.path.join(store_dir, f"{name}.conf")
        js = f'jetstream {{ store_dir: "{store_dir}/js" }}\n' if jetstream else ""
        with open(self.conf, "w") as f:
            f.write(f'server_name: "{name}"\nhost: 127.0.0.1\nport: {port}\nhttp: 127.0.0.1:{http_port}\n'
                    f'{js}{extra_conf}\n')
        self.proc = None

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout=15.0):
        self.proc = Proc([bin_path("nats-server"), "-c", self.conf])
        wait_until(lambda: http_request(f"http://127.0.0.1:{self.http_port}/healthz?js-enabled-only=true",
                                        timeout=1)[0] == 200, timeout, what=f"nats-server {self.name} ready")
        return self

    def stop(self):
        if self.proc:
            self.proc.signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            finally:
                self.proc.kill()

    def kill(self):
        if self.proc:
            self.proc.kill()

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()
