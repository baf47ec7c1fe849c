"""Benchmark xtask-supervisor against its anchors on one 4-service manifest (nats-server + three
small services), side by side in one run, and rewrite the supervisor section of bench/RESULTS.md.

  anchors: the seed's entrypoint approach (`entrypoint.sh all`: start in order behind fixed sleeps),
           supervisord (Debian `supervisor`), s6 2.11 (Debian `s6`: s6-svscan and one s6-supervise
           per service; readiness through the notification fd, s6-notifyoncheck for nats-server,
           dependencies with s6-svwait -U in the run scripts), runit (Debian `runit`: runsvdir and
           one runsv per service; no readiness protocol: dependencies poll in the run scripts), and
           the services' own start-up (a launcher that starts each service the moment its
           dependencies answer, polling every 1 ms: the floor).
  not available here: process-compose (no Debian 12 package).

Usage: bench.py BUILD_DIR [--idle SECONDS] [--runs N] [--results FILE] [--quick]
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BASE_PORT = 25000 + int(os.environ.get("XT_BENCH_PORT_OFFSET", "100"))  # bench range 25000-25999


def now():
    return time.monotonic()


def tcp_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_ok(url):
    try:
        with urllib.request.urlopen(url, timeout=0.5) as r:
            return 200 <= r.status < 300
    except Exception:  # noqa: BLE001 - not yet
        return False


def wait(pred, timeout, step=0.001):
    end = now() + timeout
    while now() < end:
        if pred():
            return True
        time.sleep(step)
    return False


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def mem_kb(pid):
    """(RSS, PSS) of one process in kB, from /proc/PID/smaps_rollup."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for ln in f:
            if ln.startswith("Rss:"):
                rss = int(ln.split()[1])
            elif ln.startswith("Pss:"):
                pss = int(ln.split()[1])
    return rss, pss


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def tree_mem(root, names):
    """(RSS, PSS, processes) of the supervision tree: root and its descendants named in `names`
    (the supervisors, not the services)."""
    rss = pss = n = 0
    for pid in tree_pids(root):
        if pid == root or comm(pid) in names:
            try:
                r, p = mem_kb(pid)
            except OSError:
                continue
            rss, pss, n = rss + r, pss + p, n + 1
    return rss, pss, n


def tree_pids(root):
    """root and its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    kids.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def killtree(p):
    for pid in reversed(tree_pids(p.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    p.wait()


class Setup:
    """The four services: nats-server (JetStream, readiness /healthz?js-enabled-only=true) and three
    fixtures that take 20 ms to listen: api and web need nats ready, web also needs auth."""

    def __init__(self, build, tmp):
        self.build, self.tmp = build, tmp
        self.sup = os.path.join(build, "bin", "xtask-supervisor")
        self.fix = os.path.join(build, "tests", "sv_fixture")
        self.nats = shutil.which("nats-server")
        p = BASE_PORT
        self.nport, self.hport, self.api, self.auth, self.web, self.status = p, p + 1, p + 2, p + 3, p + 4, p + 5
        self.conf = os.path.join(tmp, "nats.conf")
        with open(self.conf, "w") as f:
            f.write(f'server_name: "bench"\nhost: 127.0.0.1\nport: {self.nport}\nhttp: 127.0.0.1:{self.hport}\n'
                    f'jetstream {{ store_dir: "{tmp}/js" }}\n')
        self.stamp = os.path.join(tmp, "api.stamps")
        self.healthz = f"http://127.0.0.1:{self.hport}/healthz?js-enabled-only=true"

    def cmd(self, name):
        if name == "nats":
            return [self.nats, "-c", self.conf]
        port = {"api": self.api, "auth": self.auth, "web": self.web}[name]
        steps = [f"stamp:{self.stamp}"] if name == "api" else []
        # notify:3 tells s6 (and us) it is ready; under the other runners fd 3 is not open: nothing
        return [self.fix] + steps + [f"listen-after:20:{port}", "notify:3", "forever"]

    def deps(self, name):
        return {"api": ["nats"], "web": ["nats", "auth"]}.get(name, [])

    def check(self, name):
        """A shell command that succeeds once `name` answers (runit's dependency polls)."""
        if name == "nats":
            return f"curl -sf -o /dev/null '{self.healthz}'"
        return f"{self.fix} connect:{ {'api': self.api, 'auth': self.auth, 'web': self.web}[name]}"

    def s6_dir(self, scan):
        """An s6 scan directory: readiness through the notification fd (fixtures write it after
        listening; nats-server through s6-notifyoncheck polling /healthz every 5 ms), dependencies
        with s6-svwait -U (up and ready) in the run scripts."""
        shutil.rmtree(scan, ignore_errors=True)
        for n in ("nats", "auth", "api", "web"):
            d = os.path.join(scan, n)
            os.makedirs(os.path.join(d, "data"))
            wait = "".join(f"until s6-svwait -U ../{x} 2>/dev/null; do sleep 0.005; done\n" for x in self.deps(n))
            if n == "nats":
                run = f"exec s6-notifyoncheck -s 0 -w 5 -n 0 {' '.join(self.cmd(n))}\n"
                with open(os.path.join(d, "data", "check"), "w") as f:
                    f.write(f"#!/bin/sh\nexec {self.check('nats')}\n")
                os.chmod(os.path.join(d, "data", "check"), 0o755)
            else:
                run = f"exec {' '.join(self.cmd(n))}\n"
            with open(os.path.join(d, "run"), "w") as f:
                f.write("#!/bin/sh\nexec 2>&1 >/dev/null\n" + wait + run)
            os.chmod(os.path.join(d, "run"), 0o755)
            with open(os.path.join(d, "notification-fd"), "w") as f:
                f.write("3\n")

    def runit_dir(self, scan):
        """A runit service directory: no readiness protocol, so a dependent's run script polls its
        dependencies every 5 ms before it execs."""
        shutil.rmtree(scan, ignore_errors=True)
        for n in ("nats", "auth", "api", "web"):
            d = os.path.join(scan, n)
            os.makedirs(d)
            wait = "".join(f"until {self.check(x)} 2>/dev/null; do sleep 0.005; done\n" for x in self.deps(n))
            with open(os.path.join(d, "run"), "w") as f:
                f.write("#!/bin/sh\nexec 2>&1 >/dev/null\n" + wait + f"exec {' '.join(self.cmd(n))}\n")
            os.chmod(os.path.join(d, "run"), 0o755)

    def all_ready(self):
        return all(tcp_ok(p) for p in (self.api, self.auth, self.web)) and http_ok(self.healthz)

    def manifest(self, path, sock):
        def q(a):
            return json.dumps(a)

        def c(n):
            return "[" + ", ".join(q(a) for a in self.cmd(n)) + "]"
        y = f"""version: 1
supervisor:
  control_socket: {q(sock)}
  stop_timeout: 4s
services:
  nats:
    command: {c("nats")}
    ready: {{ http: {q(self.healthz)}, interval: 5ms, timeout: 1s }}
    live: {{ http: {q(self.healthz)}, interval: 1s, timeout: 1s }}
  auth:
    command: {c("auth")}
    ready: {{ notify: 3 }}
    live: {{ tcp: "127.0.0.1:{self.auth}", interval: 1s }}
  api:
    command: {c("api")}
    depends_on: {{ nats: ready }}
    ready: {{ notify: 3 }}
    live: {{ tcp: "127.0.0.1:{self.api}", interval: 1s }}
    backoff: {{ initial: 10ms, max: 1s, reset_after: 100ms }}
  web:
    command: {c("web")}
    depends_on: {{ nats: ready, auth: ready }}
    ready: {{ notify: 3 }}
    live: {{ tcp: "127.0.0.1:{self.web}", interval: 1s }}
"""
        with open(path, "w") as f:
            f.write(y)

    def supervisord_conf(self, path, sock):
        progs = ""
        for prio, n in ((1, "nats"), (2, "auth"), (3, "api"), (4, "web")):
            progs += (f"[program:{n}]\ncommand={' '.join(self.cmd(n))}\npriority={prio}\nautorestart=true\n"
                      f"startsecs=0\nstopasgroup=true\nkillasgroup=true\n"
                      f"stdout_logfile={self.tmp}/{n}.log\nredirect_stderr=true\n\n")
        with open(path, "w") as f:
            f.write(f"[supervisord]\nnodaemon=true\nlogfile={self.tmp}/supervisord.log\npidfile={self.tmp}/sd.pid\n"
                    f"[unix_http_server]\nfile={sock}\n"
                    "[rpcinterface:supervisor]\n"
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
                    f"[supervisorctl]\nserverurl=unix://{sock}\n\n" + progs)


def clean_js(s):
    shutil.rmtree(os.path.join(s.tmp, "js"), ignore_errors=True)


def run_ours(s, idle, do_extra):
    """Start to all ready; then RSS, status round trip, kill -9 respawn, idle CPU."""
    res = {}
    mf = os.path.join(s.tmp, "services.yaml")
    sock = os.path.join(s.tmp, "sup.sock")
    s.manifest(mf, sock)
    clean_js(s)
    t0 = now()
    p = subprocess.Popen([s.sup, "run", "-c", mf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        if not wait(s.all_ready, 30):
            raise RuntimeError("xtask-supervisor: services not ready")
        res["ready_s"] = now() - t0
        if not do_extra:
            return res
        time.sleep(1.0)  # let start-up settle
        res["rss_kb"] = rss_kb(p.pid)
        res["tree"] = tree_mem(p.pid, ())
        env = dict(os.environ, XTASK_SUPERVISOR_SOCKET=sock)
        rts = []
        for _ in range(50):
            a = now()
            subprocess.run([s.sup, "status"], env=env, stdout=subprocess.DEVNULL, check=True)
            rts.append(now() - a)
        res["status_s"] = statistics.median(rts)
        rts = []
        for _ in range(50):
            a = now()
            subprocess.run([s.sup, "-c", mf, "status"], stdout=subprocess.DEVNULL, check=True)
            rts.append(now() - a)
        res["status_mf_s"] = statistics.median(rts)
        raw = []
        for _ in range(200):
            a = now()
            c = socket.socket(socket.AF_UNIX)
            c.connect(sock)
            c.sendall(b"status\n")
            while c.recv(65536):
                pass
            c.close()
            raw.append(now() - a)
        res["status_raw_s"] = statistics.median(raw)
        res["respawn_s"] = respawn(s, lambda: api_pid_ours(sock), 0.010)
        res["idle_cpu"] = idle_cpu(p.pid, idle)
        res["rss_kb_after"] = rss_kb(p.pid)
        return res
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            killtree(p)


def api_pid_ours(sock):
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.sendall(b"status json\n")
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.close()
    doc = json.loads(data.split(b"\n", 1)[1])
    return [x["pid"] for x in doc["services"] if x["name"] == "api"][0]


def respawn(s, get_pid, backoff_s, n=10, gap=0.2):
    """kill -9 the api service; the new process stamps CLOCK_MONOTONIC at its start: respawn
    latency = stamp - kill time - configured backoff. `gap`: s6-supervise and runsv wait until a
    service has run 1 s before they restart it, so their kills are more than 1 s apart."""
    lat = []
    for _ in range(n):
        pid = get_pid()
        with open(s.stamp) as f:
            before = len(f.read().split())
        t = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        if not wait(lambda: len(open(s.stamp).read().split()) > before, 5):
            raise RuntimeError("no respawn")
        stamp = int(open(s.stamp).read().split()[-1])
        lat.append((stamp - t) / 1e9 - backoff_s)
        wait(lambda: tcp_ok(s.api), 5)
        time.sleep(gap)
    return statistics.median(lat)


def cpu_ns(pid):
    """CPU time of a single-threaded process in ns (/proc/PID/schedstat: nanosecond resolution,
    where /proc/PID/stat counts 10 ms clock ticks: 0.017 % of a core over 60 s per tick)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def idle_cpu(pid, seconds):
    c0 = cpu_ns(pid)
    t0 = now()
    time.sleep(seconds)  # the idle window being measured
    c1 = cpu_ns(pid)
    return (c1 - c0) / 1e9 / (now() - t0) * 100.0


def run_supervisord(s, idle, do_extra):
    res = {}
    conf = os.path.join(s.tmp, "supervisord.conf")
    sock = os.path.join(s.tmp, "supervisord.sock")
    s.supervisord_conf(conf, sock)
    clean_js(s)
    t0 = now()
    p = subprocess.Popen(["supervisord", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        if not wait(s.all_ready, 30):
            raise RuntimeError("supervisord: services not ready")
        res["ready_s"] = now() - t0
        if not do_extra:
            return res
        time.sleep(1.0)
        res["rss_kb"] = rss_kb(p.pid)
        res["tree"] = tree_mem(p.pid, ())
        rts = []
        for _ in range(10):
            a = now()
            subprocess.run(["supervisorctl", "-c", conf, "status"], stdout=subprocess.DEVNULL)
            rts.append(now() - a)
        res["status_s"] = statistics.median(rts)

        def api_pid():
            out = subprocess.run(["supervisorctl", "-c", conf, "pid", "api"], capture_output=True, text=True).stdout
            return int(out.strip())
        res["respawn_s"] = respawn(s, api_pid, 0.0)
        res["idle_cpu"] = idle_cpu(p.pid, idle)
        return res
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            killtree(p)


def run_scan(s, kind, do_extra):
    """s6 or runit: start to all ready, the supervision tree's memory, status of the four services,
    kill -9 to respawn."""
    res = {}
    scan = os.path.join(s.tmp, kind)
    if kind == "s6":
        s.s6_dir(scan)
        argv, names = ["s6-svscan", scan], ("s6-supervise",)
    else:
        s.runit_dir(scan)
        argv, names = ["runsvdir", "-P", scan], ("runsv",)
    dirs = [os.path.join(scan, n) for n in ("nats", "auth", "api", "web")]
    clean_js(s)
    t0 = now()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not wait(s.all_ready, 30):
            raise RuntimeError(f"{kind}: services not ready")
        res["ready_s"] = now() - t0
        if not do_extra:
            return res
        time.sleep(1.0)
        res["rss_kb"] = rss_kb(p.pid)
        res["tree"] = tree_mem(p.pid, names)
        rts = []
        for _ in range(20):
            a = now()
            if kind == "s6":  # one s6-svstat per service: it reads one service directory
                for d in dirs:
                    subprocess.run(["s6-svstat", d], stdout=subprocess.DEVNULL, check=True)
            else:
                subprocess.run(["sv", "status"] + dirs, stdout=subprocess.DEVNULL, check=True)
            rts.append(now() - a)
        res["status_s"] = statistics.median(rts)

        def api_pid():
            if kind == "s6":
                out = subprocess.run(["s6-svstat", "-p", dirs[2]], capture_output=True, text=True).stdout
                return int(out.strip())
            out = subprocess.run(["sv", "status", dirs[2]], capture_output=True, text=True).stdout
            return int(out.split("(pid ", 1)[1].split(")", 1)[0])
        res["respawn_s"] = respawn(s, api_pid, 0.0, n=5, gap=1.1)
        return res
    finally:
        left = tree_pids(p.pid)  # the services too: once their supervisors are gone they are orphans
        if kind == "s6":
            subprocess.run(["s6-svscanctl", "-t", scan], stderr=subprocess.DEVNULL)
        else:
            p.send_signal(signal.SIGHUP)  # runsvdir: SIGHUP sends TERM to every runsv, which stop their services
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        killtree(p)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def run_sleeps(s):
    """The seed's `entrypoint.sh all`: each daemon in the background behind a fixed sleep."""
    clean_js(s)
    sh = (f"{' '.join(s.cmd('nats'))} &\nsleep 5\n{' '.join(s.cmd('auth'))} &\nsleep 3\n"
          f"{' '.join(s.cmd('web'))} &\nsleep 2\n{' '.join(s.cmd('api'))} &\nsleep 2\nwait\n")
    t0 = now()
    p = subprocess.Popen(["sh", "-c", sh], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        if not wait(s.all_ready, 30):
            raise RuntimeError("sleeps: not ready")
        return {"ready_s": now() - t0}
    finally:
        killtree(p)


def run_direct(s):
    """The services' own start-up: start each the moment its dependencies answer (1 ms polling)."""
    clean_js(s)
    procs = []
    t0 = now()
    try:
        procs.append(subprocess.Popen(s.cmd("nats"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(s.cmd("auth"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait(lambda: http_ok(s.healthz), 30)
        procs.append(subprocess.Popen(s.cmd("api"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait(lambda: tcp_ok(s.auth), 30)
        procs.append(subprocess.Popen(s.cmd("web"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait(s.all_ready, 30):
            raise RuntimeError("direct: not ready")
        return {"ready_s": now() - t0}
    finally:
        for p in procs:
            p.kill()
            p.wait()


# --- scaling: N identical services, ours vs s6 ------------------------------------------------------

def sock_status_json(sock):
    c = socket.socket(socket.AF_UNIX)
    c.connect(sock)
    c.sendall(b"status json\n")
    data = b""
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        data += b
    c.close()
    return json.loads(data.split(b"\n", 1)[1])


def scale_direct(s, n):
    """The services' own start-up: fork+exec n fixtures, wait until each has written its readiness
    newline (the same program and readiness as under the supervisors)."""
    rs, procs = [], []
    t0 = now()
    try:
        for _ in range(n):
            r, w = os.pipe()
            procs.append(subprocess.Popen([s.fix, f"notify:{w}", "forever"], pass_fds=(w,),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            os.close(w)
            rs.append(r)
        for r in rs:
            os.read(r, 1)
        return now() - t0
    finally:
        for r in rs:
            os.close(r)
        for p in procs:
            p.kill()
            p.wait()


def scale_ours(s, n):
    tmp = os.path.join(s.tmp, f"scale-ours-{n}")
    os.makedirs(tmp, exist_ok=True)
    sock = os.path.join(tmp, "sup.sock")
    mf = os.path.join(tmp, "services.yaml")
    with open(mf, "w") as f:
        f.write(f"version: 1\nsupervisor:\n  control_socket: {json.dumps(sock)}\n  stop_timeout: 10s\nservices:\n")
        for i in range(n):
            f.write(f"  s{i}:\n    command: [{json.dumps(s.fix)}, \"notify:3\", \"forever\"]\n"
                    "    ready: { notify: 3 }\n")
    res = {}
    t0 = now()
    p = subprocess.Popen([s.sup, "run", "-c", mf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        def all_ready():
            try:
                return all(x["state"] == "READY" for x in sock_status_json(sock)["services"])
            except (OSError, ValueError, IndexError):
                return False
        if not wait(all_ready, 120, step=0.002):
            raise RuntimeError(f"ours: {n} services not ready")
        res["ready_s"] = now() - t0
        time.sleep(1.0)
        res["tree"] = tree_mem(p.pid, ())
        env = dict(os.environ, XTASK_SUPERVISOR_SOCKET=sock)
        rts = []
        for _ in range(20):
            a = now()
            subprocess.run([s.sup, "status"], env=env, stdout=subprocess.DEVNULL, check=True)
            rts.append(now() - a)
        res["status_s"] = statistics.median(rts)
        return res
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            killtree(p)


def scale_s6(s, n):
    scan = os.path.join(s.tmp, f"scale-s6-{n}")
    shutil.rmtree(scan, ignore_errors=True)
    dirs = []
    for i in range(n):
        d = os.path.join(scan, f"s{i}")
        os.makedirs(d)
        with open(os.path.join(d, "run"), "w") as f:
            f.write(f"#!/bin/sh\nexec {s.fix} notify:3 forever\n")
        os.chmod(os.path.join(d, "run"), 0o755)
        with open(os.path.join(d, "notification-fd"), "w") as f:
            f.write("3\n")
        dirs.append(d)
    res = {}
    t0 = now()
    p = subprocess.Popen(["s6-svscan", "-c", str(max(n, 1000)), scan], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    left = []
    try:
        # s6-svwait -U -a: every service up and ready (event-driven); it fails while a supervise
        # directory does not exist yet, so it is retried; 100 directories per call (one fd each)
        for k in range(0, n, 100):
            chunk = dirs[k:k + 100]
            if not wait(lambda: subprocess.run(["s6-svwait", "-U", "-a", "-t", "120000"] + chunk,
                                               stderr=subprocess.DEVNULL).returncode == 0, 120, step=0.002):
                raise RuntimeError(f"s6: {n} services not ready")
        res["ready_s"] = now() - t0
        time.sleep(1.0)
        res["tree"] = tree_mem(p.pid, ("s6-supervise",))
        if n <= 100:
            rts = []
            for _ in range(5):
                a = now()
                for d in dirs:
                    subprocess.run(["s6-svstat", d], stdout=subprocess.DEVNULL, check=True)
                rts.append(now() - a)
            res["status_s"] = statistics.median(rts)
        left = tree_pids(p.pid)
        return res
    finally:
        left = left or tree_pids(p.pid)
        subprocess.run(["s6-svscanctl", "-t", scan], stderr=subprocess.DEVNULL)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            pass
        killtree(p)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def scale_table(s, sizes, runs):
    rows = []
    for n in sizes:
        try:
            d = statistics.median([scale_direct(s, n) for _ in range(runs)])
            o = [scale_ours(s, n) for _ in range(runs)]
            x = [scale_s6(s, n) for _ in range(runs)]
        except (RuntimeError, OSError) as e:
            print(f"scale {n}: {e}", flush=True)
            rows.append(f"| {n} | failed: {e} | | | | | | |")
            continue
        om, xm = statistics.median(r["ready_s"] for r in o), statistics.median(r["ready_s"] for r in x)
        ot, xt = o[0]["tree"], x[0]["tree"]
        ost = ms(o[0]["status_s"])
        xst = ms(x[0]["status_s"]) + f" ({n} x s6-svstat)" if "status_s" in x[0] else "not measured"
        print(f"scale {n}: direct {ms(d)}, ours {ms(om)}, s6 {ms(xm)}", flush=True)
        rows.append(f"| {n} | {ms(d)} | {ms(om)} (+{(om - d) * 1000:.0f} ms) | {ms(xm)} | "
                    f"{ot[0] / 1024:.2f} / {ot[1] / 1024:.2f} MB | {xt[0] / 1024:.1f} / {xt[1] / 1024:.1f} MB "
                    f"({xt[2]} proc.) | {ost} | {xst} |")
    return ("\n### Scaling: N identical services (bench.py --scale)\n\n"
            f"Each service is `sv_fixture notify:3 forever` (ready when it writes fd 3), medians of {runs} "
            "runs. Ready: until the supervisor reports every service ready (ours: `status json` on the socket "
            "every 2 ms; s6: `s6-svwait -U -a` on every directory); own: fork+exec of the n fixtures by the "
            "bench until each wrote its newline. Memory: the supervision tree, RSS / PSS. Targets at 100: "
            "ready within own + 50 ms, memory < 2 MB, status < 2 ms; at 1000: memory < 8 MB.\n\n"
            "| services | own start-up | xtask-supervisor ready | s6 ready | ours RSS / PSS | s6 RSS / PSS | "
            "ours `status` | s6 status |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    model = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}"


def ms(x):
    return f"{x * 1000:.1f} ms"


def write_results(path, text):
    begin, end = "<!-- begin:supervisor -->", "<!-- end:supervisor -->"
    with open(path) as f:
        doc = f.read()
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin) + len(begin)] + "\n" + text + doc[doc.index(end):]
    else:
        doc += f"\n{begin}\n{text}{end}\n"
    with open(path, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--idle", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--results", default=None)
    ap.add_argument("--scale", default="10,100,1000", help="service counts for the scaling table ('' for none)")
    ap.add_argument("--scale-runs", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="xt-bench-sv-")
    try:
        s = Setup(os.path.abspath(args.build), tmp)
        ours, sd, direct, sleeps, s6, rn = [], [], [], [], [], []
        extra_ours = extra_sd = extra_s6 = extra_rn = None
        for i in range(args.runs):
            direct.append(run_direct(s)["ready_s"])
            r = run_ours(s, args.idle, i == 0)
            ours.append(r["ready_s"])
            extra_ours = extra_ours or r
            r = run_supervisord(s, args.idle, i == 0)
            sd.append(r["ready_s"])
            extra_sd = extra_sd or r
            r = run_scan(s, "s6", i == 0)
            s6.append(r["ready_s"])
            extra_s6 = extra_s6 or r
            r = run_scan(s, "runit", i == 0)
            rn.append(r["ready_s"])
            extra_rn = extra_rn or r
            print(f"run {i + 1}: direct {ms(direct[-1])}, ours {ms(ours[-1])}, supervisord {ms(sd[-1])}, "
                  f"s6 {ms(s6[-1])}, runit {ms(rn[-1])}", flush=True)
        sleeps.append(run_sleeps(s)["ready_s"])
        print(f"sleeps: {sleeps[-1]:.2f} s", flush=True)
        d, o, v, sl, s6m, rnm = (statistics.median(x) for x in (direct, ours, sd, sleeps, s6, rn))
        over = statistics.median([a - b for a, b in zip(ours, direct)])  # paired: same run, same load
        vs6 = statistics.median([a - b for a, b in zip(ours, s6)])
        eo, es, e6, er = extra_ours, extra_sd, extra_s6, extra_rn

        def mem(e):
            return f"{e['tree'][0] / 1024:.2f} / {e['tree'][1] / 1024:.2f} MB ({e['tree'][2]} proc.)"
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = f"""## supervisor (bench/supervisor/run.sh)

{date}; {machine()}. Manifest: nats-server 2.9 (JetStream; readiness `/healthz?js-enabled-only=true`)
plus three small services that listen 20 ms after start (two need nats ready, one also needs the
third): the same four programs under every runner. Medians of {args.runs} runs (start-up), 50 CLI
calls (ours) / 10 (supervisorctl), 10 kills. Idle CPU over {args.idle:.0f} s with four 1 s liveness
probes (ours; supervisord has no probes). Readiness: the three small services write a newline to
fd 3 once they listen (`ready: {{ notify: 3 }}` for us, `notification-fd` for s6); nats-server is
polled on /healthz every 5 ms (our http probe; s6-notifyoncheck -w 5 with curl); runit has no
readiness protocol (dependents poll in their run scripts every 5 ms). s6 and runit respawn at most
once a second, so their kills are 1.1 s apart (5 kills). process-compose: not packaged, not measured.

| measure | xtask-supervisor | anchor | ratio | target |
|---|---|---|---|---|
| start to all ready | {ms(o)} | services' own start-up {ms(d)}; s6 {ms(s6m)}; runit {ms(rnm)}; supervisord {ms(v)}; seed sleeps {sl:.2f} s | {over * 1000:+.1f} ms vs own, {vs6 * 1000:+.1f} ms vs s6 (paired medians); {sl / o:.0f}x faster than sleeps | within 20 ms of own; within 5 ms of s6 |
| supervision tree memory, RSS / PSS | {mem(eo)} | s6 {mem(e6)}; runit {mem(er)}; supervisord {mem(es)} | RSS {e6['tree'][0] / eo['tree'][0]:.1f}x smaller than s6, PSS {e6['tree'][1] / eo['tree'][1]:.1f}x | below s6's |
| supervisor RSS (4 services) | {eo['rss_kb'] / 1024:.2f} MB | supervisord {es['rss_kb'] / 1024:.1f} MB | {es['rss_kb'] / eo['rss_kb']:.0f}x smaller | < 1.5 MB |
| `status` round trip (CLI, socket from env) | {ms(eo['status_s'])} | `supervisorctl status` {ms(es['status_s'])}; 4 x `s6-svstat` {ms(e6['status_s'])}; `sv status` (4 dirs) {ms(er['status_s'])} | {es['status_s'] / eo['status_s']:.0f}x faster than supervisorctl, {e6['status_s'] / eo['status_s']:.1f}x than s6, {er['status_s'] / eo['status_s']:.1f}x than runit | < 5 ms |
| `status` with `-c manifest` (parses it) | {ms(eo['status_mf_s'])} | | | |
| `status` on the socket alone | {eo['status_raw_s'] * 1e6:.0f} us | | | |
| kill -9 to respawn, beyond backoff (10 ms) | {ms(eo['respawn_s'])} | supervisord {ms(es['respawn_s'])}; s6 {ms(e6['respawn_s'])}; runit {ms(er['respawn_s'])} | | < 10 ms |
| idle CPU, four 1 s probes | {eo['idle_cpu']:.3f} % of a core | supervisord {es['idle_cpu']:.3f} % (no probes) | | < 0.1 % |

"""
        if args.scale:
            text += scale_table(s, [int(x) for x in args.scale.split(",")], args.scale_runs) + "\n"
        print(text)
        if args.results:
            write_results(args.results, text)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
