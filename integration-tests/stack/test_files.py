"""Static checks of the stack's files: configs/services.yaml, fly.toml, Taskfile.yml, the compose
file. Each check reads the file the way its consumer does (the project's YAML loader, tomllib) and
checks it against the others: the ports, the stop budget, the documented keys."""
import os
import re
import subprocess
import tempfile
import sys

from stacklib import TEST_BIN_DIR, check, duration_ms, load_yaml, yaml_merge
from xt_testlib import BIN_DIR, SOURCE_DIR

FAILED = []


def case(fn):
    try:
        fn()
        print(f"ok   {fn.__name__}")
    except Exception as e:  # noqa: BLE001 - report every case, fail at the end
        FAILED.append(fn.__name__)
        print(f"FAIL {fn.__name__}: {e}")


def src(*p):
    return os.path.join(SOURCE_DIR, *p)


def manifest(env_extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XTASK_", "NATS_", "FLY_"))}
    env.update(env_extra or {})
    return load_yaml(src("configs", "services.yaml"), env=env)


def test_manifest_services():
    m = manifest()
    svcs = m["services"]
    check(set(svcs) >= {"nats", "xtask", "auth", "web"}, f"services: {sorted(svcs)}")
    check(svcs["xtask"]["depends_on"]["nats"] == "ready", "xtask waits for nats ready")
    check(svcs["web"]["depends_on"] == {"nats": "ready", "auth": "ready"}, "web waits for nats and auth")
    # nats starts on the bus directory xtask-bus made (operator, accounts, certificates)
    check(svcs["nats"]["depends_on"] == {"bus-init": "completed"}, "nats waits for bus-init to complete")
    check(svcs["bus-init"].get("type") == "oneshot" and svcs["bus-init"]["command"][:2] == ["xtask-bus", "init"],
          "bus-init runs xtask-bus init once")
    for name in ("nats", "xtask", "auth", "web"):
        s = svcs[name]
        check("ready" in s and "live" in s, f"{name}: readiness and liveness probes")
        check(s.get("restart") == "always", f"{name}: restart always")
        check(s.get("essential") == "true", f"{name}: essential")


def test_manifest_stop_budget():
    """Reverse-order stop, even fully serial, fits the supervisor's budget, which fits Fly's 5 s."""
    m = manifest()
    budget = duration_ms(m["supervisor"]["stop_timeout"])
    check(budget <= 4000, f"stop_timeout {budget} ms > 4 s")
    # a oneshot (bus-init) has completed before anything depending on it starts: nothing to stop
    total = sum(duration_ms(s["stop"]["timeout"]) for s in m["services"].values() if s.get("type") != "oneshot")
    check(total <= budget, f"service stop timeouts add up to {total} ms > {budget} ms")


def test_manifest_defaults():
    m = manifest()
    check(m["supervisor"]["status_http"] == "127.0.0.1:9100", "status_http default 127.0.0.1:9100")
    check(m["supervisor"]["control_socket"] == "/run/xtask/supervisor.sock", "control socket default")
    env = m["env"]
    check(env["FLY_REGION"] == "local" and env["NATS_SERVER_NAME"] == "xtask-local", "region defaults")
    check(env["XTASK_CONFIG_DIR"] == "/etc/xtask" and env["XTASK_DATA_DIR"] == "/data", "dir defaults")
    ports = {k: env[k] for k in ("XTASK_WEB_LISTEN", "XTASK_AUTH_URL", "XTASK_NATS_PORT", "XTASK_NATS_HTTP",
                                 "XTASK_NATS_CLUSTER_PORT", "XTASK_NATS_LEAF_PORT", "XTASK_NATS_URL")}
    check(ports == {"XTASK_WEB_LISTEN": "127.0.0.1:8080", "XTASK_AUTH_URL": "http://127.0.0.1:9091",
                    "XTASK_NATS_PORT": "4222", "XTASK_NATS_HTTP": "127.0.0.1:8222",
                    "XTASK_NATS_CLUSTER_PORT": "6222", "XTASK_NATS_LEAF_PORT": "7422",
                    "XTASK_NATS_URL": "nats://127.0.0.1:4222"}, f"default ports {ports}")
    check(set(m["secrets"]) == {"AUTH_SESSION_SECRET", "XTASK_ROUTE_PASSWORD"}, f"secrets {sorted(m['secrets'])}")
    check(m["secrets"]["AUTH_SESSION_SECRET"]["file"] == "/data/secrets/session", "session secret under /data/secrets")
    # the route password is the one xtask-bus init made in the bus directory (from the bundle on Fly)
    check(m["secrets"]["XTASK_ROUTE_PASSWORD"]["file"] == "/data/bus/route-password", "route password in the bus dir")
    check(m["services"]["nats"]["secrets"] == ["XTASK_ROUTE_PASSWORD"], "only nats gets the route password")
    # operator mode: every service connects with its own credential from the bus directory
    svcs = m["services"]
    check(svcs["xtask"]["env"]["XTASK_NODE_CREDS"] == "/data/bus/creds/node.creds", "coordinator: node.creds")
    check(svcs["xtask"]["env"]["XTASK_NATS_CREDS"] == "/data/bus/creds/cli.creds", "xtask ping probe: cli.creds")
    check(svcs["web"]["env"]["XTASK_WEB_CREDS"] == "/data/bus/creds/web.creds", "web: web.creds")
    check(svcs["auth"]["env"]["XTASK_AUTH_CREDS"] == "/data/bus/creds/auth.creds", "auth: auth.creds")
    check(m["env"]["XTASK_NATS_OPERATOR"] == "/data/bus/operator.jwt" and m["env"]["XTASK_NATS_RESOLVER_DIR"]
          == "/data/bus/jwt", "operator JWT and resolver dir from the bus dir")
    check(m["env"]["XTASK_NATS_MAX_MEMORY"] == str(1 << 30) and m["env"]["XTASK_NATS_MAX_FILE"] == str(10 << 30),
          "JetStream limits of the account: the seed's 1 GiB / 10 GiB")
    # the server's budget holds the account's limits twice (nats-server's double count, nats.conf)
    for k in ("MEMORY", "FILE"):
        check(int(m["env"][f"XTASK_NATS_SERVER_MAX_{k}"]) >= 2 * int(m["env"][f"XTASK_NATS_MAX_{k}"]),
              f"server budget {k} >= twice the account's")


def test_manifest_moves_with_env():
    """Every port and path follows the environment: nothing hard-wired to a default port."""
    env = {"XTASK_CONFIG_DIR": "/c", "XTASK_DATA_DIR": "/d", "XTASK_RUN_DIR": "/r", "FLY_REGION": "syd",
           "XTASK_STATUS_ADDR": "127.0.0.1:24100", "XTASK_HTTP_PORT": "24080", "XTASK_AUTH_PORT": "24091",
           "XTASK_NATS_PORT": "24222", "XTASK_NATS_HTTP_PORT": "24822", "XTASK_NATS_CLUSTER_PORT": "24622",
           "XTASK_NATS_LEAF_PORT": "24722", "XTASK_WEB_GUI": "/g"}
    m = manifest(env)
    text = repr(m)
    for port in ("8080", "9091", "4222", "8222", "6222", "7422", "9100"):
        check(not re.search(rf"(?<!\d){port}(?!\d)", text), f"default port {port} still in the manifest with every port moved")
    for d in ("/etc/xtask", "/data", "/run/xtask", "/usr/share"):
        check(d + "/" not in text and d + "'" not in text, f"default dir {d} still in the manifest")
    check(m["env"]["NATS_SERVER_NAME"] == "xtask-syd", "server name follows FLY_REGION")


def test_manifest_parser():
    """The supervisor's own parser accepts the manifest (default env and a moved env)."""
    if os.environ.get("XT_STACK_HAVE_MANIFEST") != "1":
        raise AssertionError("supervisor manifest parser not built (registered without it?)")
    tool = os.path.join(TEST_BIN_DIR, "stack-manifest-check")
    for extra in ({}, {"FLY_REGION": "ams", "XTASK_HTTP_PORT": "24080", "XTASK_DATA_DIR": "/tmp/x"}):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XTASK_", "NATS_", "FLY_"))}
        env.update(extra)
        r = subprocess.run([tool, src("configs", "services.yaml")], capture_output=True, text=True, env=env,
                           timeout=30)
        check(r.returncode == 0, f"manifest rejected: {r.stderr.strip()}")
        check("order: bus-init nats auth xtask web" in r.stdout, f"start order: {r.stdout}")
    sup = os.environ.get("XT_STACK_SUPERVISOR")
    if sup:
        # `check` resolves `user:` (default xtask, which the image creates; this host may lack it):
        # check it against a passwd file that has it, as the image's
        with tempfile.NamedTemporaryFile("w", prefix="xt-passwd-", delete=False) as pw:
            with open("/etc/passwd") as f:
                pw.write(f.read() + "xtask:x:1000:1000::/data:/usr/sbin/nologin\n")
        env["XTASK_SUPERVISOR_PASSWD_FILE"] = pw.name
        try:
            r = subprocess.run([sup, "check", src("configs", "services.yaml")], capture_output=True, text=True,
                               env=env, timeout=30)
        finally:
            os.unlink(pw.name)
        check(r.returncode == 0, f"xtask-supervisor check: {r.returncode} {r.stdout} {r.stderr}")


# --- fly.toml ---------------------------------------------------------------------------------
# Keys Fly documents (fly.io/docs/reference/configuration; LIBRARY-NOTES.md). Seed 000's [regions]
# and [scaling] tables do not exist.
FLY_TOP = {"app", "primary_region", "kill_signal", "kill_timeout", "build", "env", "mounts", "services",
           "checks", "vm", "metrics", "deploy", "http_service", "processes", "console_command", "swap_size_mb"}
FLY_BUILD = {"dockerfile", "image", "builder", "buildpacks", "args", "target", "ignorefile",
             "build-target", "build_target"}
FLY_MOUNT = {"source", "destination", "initial_size", "processes", "auto_extend_size_threshold",
             "auto_extend_size_increment", "auto_extend_size_limit", "snapshot_retention"}
FLY_SERVICE = {"internal_port", "protocol", "processes", "ports", "tcp_checks", "http_checks", "concurrency",
               "auto_stop_machines", "auto_start_machines", "min_machines_running"}
FLY_PORT = {"port", "handlers", "force_https", "start_port", "end_port", "tls_options", "http_options",
            "proxy_proto_options"}
FLY_SVC_CHECK = {"interval", "timeout", "grace_period", "method", "path", "protocol", "tls_skip_verify",
                 "tls_server_name", "headers", "restart_limit"}
FLY_CHECK = {"type", "port", "path", "method", "interval", "timeout", "grace_period", "protocol",
             "tls_skip_verify", "tls_server_name", "headers", "processes"}
FLY_VM = {"size", "memory", "cpus", "cpu_kind", "memory_mb", "gpus", "gpu_kind", "processes", "kernel_args",
          "host_dedication_id"}
FLY_HANDLERS = {"http", "tls", "pg_tls", "proxy_proto", "edge_http"}
SIGNALS = {"SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGSTOP"}


def fly():
    import tomllib
    with open(src("fly.toml"), "rb") as f:
        return tomllib.load(f)


def keys_ok(d, allowed, where):
    extra = set(d) - allowed
    check(not extra, f"fly.toml {where}: undocumented keys {sorted(extra)}")


def test_fly_documented_keys():
    f = fly()
    keys_ok(f, FLY_TOP, "top level")
    keys_ok(f["build"], FLY_BUILD, "[build]")
    for m in f["mounts"]:
        keys_ok(m, FLY_MOUNT, "[[mounts]]")
    for svc in f["services"]:
        keys_ok(svc, FLY_SERVICE, "[[services]]")
        for p in svc["ports"]:
            keys_ok(p, FLY_PORT, "[[services.ports]]")
            check(set(p.get("handlers", [])) <= FLY_HANDLERS, f"handlers {p.get('handlers')}")
        for c in svc.get("http_checks", []) + svc.get("tcp_checks", []):
            keys_ok(c, FLY_SVC_CHECK, "service check")
    for name, c in f["checks"].items():
        keys_ok(c, FLY_CHECK, f"[checks.{name}]")
        check(c["type"] in ("http", "tcp"), f"check {name} type")
    for v in f["vm"]:
        keys_ok(v, FLY_VM, "[[vm]]")
    check(all(isinstance(v, str) for v in f["env"].values()), "[env] values are strings")


def test_fly_fits_the_stack():
    f = fly()
    m = manifest({k: v for k, v in f["env"].items()})
    env = m["env"]
    check(f["kill_signal"] in SIGNALS and f["kill_signal"] in ("SIGINT", "SIGTERM"), "kill_signal stops the supervisor")
    check(isinstance(f["kill_timeout"], int) and 1 <= f["kill_timeout"] <= 300, "kill_timeout in seconds")
    check(duration_ms(m["supervisor"]["stop_timeout"]) < f["kill_timeout"] * 1000,
          "the supervisor's stop budget fits under kill_timeout")
    check(os.path.exists(src(f["build"]["dockerfile"])), f"dockerfile {f['build']['dockerfile']}")
    check(any(x["destination"] == env["XTASK_DATA_DIR"] == "/data" for x in f["mounts"]), "/data mounted")
    by_port = {s["internal_port"]: s for s in f["services"]}
    web_port = env["XTASK_WEB_LISTEN"].rsplit(":", 1)[1]
    web = by_port.get(int(web_port))
    check(web is not None, f"a service on the front's port {web_port}")
    ports = {p["port"]: p for p in web["ports"]}
    check(ports[80]["handlers"] == ["http"] and ports[80].get("force_https") is True, "80: http, force_https")
    check(ports[443]["handlers"] == ["tls", "http"], "443: tls + http")
    ready_path = m["services"]["web"]["ready"]["http"].split(web_port, 1)[1]
    check(any(c["path"] == ready_path for c in web["http_checks"]), f"edge check on {ready_path}")
    leaf = by_port.get(int(env["XTASK_NATS_LEAF_PORT"]))
    check(leaf is not None and leaf["ports"][0]["port"] == 7422, "7422 leaf nodes exposed")
    status_port = int(m["supervisor"]["status_http"].rsplit(":", 1)[1])
    sup = [c for c in f["checks"].values() if c.get("path") == "/healthz"]
    check(sup and sup[0]["port"] == status_port, f"a check on the supervisor's /healthz port {status_port}")
    check(not m["supervisor"]["status_http"].startswith("127."), "Fly's checks cannot reach loopback")
    internal = {int(env["XTASK_NATS_PORT"]), int(env["XTASK_NATS_HTTP"].rsplit(":", 1)[1]),
                int(env["XTASK_AUTH_URL"].rsplit(":", 1)[1])}
    check(not internal & set(by_port), "internal ports are not public services")
    check(f["env"]["XTASK_REGIONS"].split() == ["ams", "dfw", "hkg", "syd", "gru", "jnb"], "six regions")
    # JetStream sized to the Machine's volume (bytes; the account JWT gets the same)
    mount = next(x for x in f["mounts"] if x["destination"] == "/data")
    vol = int(mount["initial_size"].rstrip("gb")) << 30
    check(int(env["XTASK_NATS_MAX_FILE"]) < vol, f"the account's file limit {env['XTASK_NATS_MAX_FILE']} fits the {vol} volume")
    for k in ("MEMORY", "FILE"):
        check(int(env[f"XTASK_NATS_SERVER_MAX_{k}"]) >= 2 * int(env[f"XTASK_NATS_MAX_{k}"]), f"fly: server budget {k}")
    check(f["primary_region"] in f["env"]["XTASK_REGIONS"].split(), "primary region is one of them")


# --- nats.conf as the stack renders it ---------------------------------------------------------
def tools_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XTASK_", "NATS_", "FLY_"))}
    env["PATH"] = os.pathsep.join([BIN_DIR, src("entrypoint"), env.get("PATH", "")])
    return env


def stack_env(extra):
    """The environment a service gets: the caller's `extra`, then the manifest's `env:` block, plus
    the secrets: the route password of a bus directory `xtask-bus init` made under XTASK_DATA_DIR
    (as xtask-setup does), the others generated (base64, as the supervisor makes them)."""
    import base64
    m = manifest(extra)
    env = tools_env()
    env.update(extra)
    env.update(m["env"])
    bus = m["env"]["XTASK_BUS_DIR"]
    if not os.path.exists(os.path.join(bus, "operator.jwt")):
        r = subprocess.run(["xtask-bus", "init", "--dir", bus], capture_output=True, text=True, env=env, timeout=60)
        check(r.returncode == 0, f"xtask-bus init: {r.stderr}")
    for name, sec in m["secrets"].items():
        env[name] = base64.b64encode(os.urandom(int(sec.get("bytes", 32)))).decode()
    with open(m["secrets"]["XTASK_ROUTE_PASSWORD"]["file"]) as f:
        env["XTASK_ROUTE_PASSWORD"] = f.read().strip()
    return env


def nats_test(conf, env):
    r = subprocess.run(["nats-server", "-t", "-c", conf], capture_output=True, text=True, env=env, timeout=30)
    check(r.returncode == 0, f"nats-server -t -c {conf}: {r.stdout}{r.stderr}")


def test_manifest_feeds_every_config_variable():
    """Every $VAR of the nats configs (no defaults there) and every ${VAR} without a default in the
    YAML configs is exported by the manifest (env: or secrets:) or set by the entrypoint on Fly."""
    m = manifest()
    given = set(m["env"]) | set(m["secrets"]) | {"XTASK_NATS_CONF", "FLY_APP_NAME", "FLY_MACHINE_ID"}
    missing = []
    cfg = src("configs")
    for name in sorted(os.listdir(cfg)):
        with open(os.path.join(cfg, name)) as f:
            text = "\n".join(l.split("#", 1)[0] for l in f)
        if name.endswith(".conf"):
            used = set(re.findall(r"\$([A-Z_][A-Z0-9_]*)", text))
        elif name != "services.yaml":
            used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", text))
        else:
            continue
        missing += [f"{name}: {v}" for v in sorted(used - given)]
    check(not missing, f"variables the manifest does not provide: {missing}")


def test_route_password_and_bus():
    """xtask-setup makes the bus directory (operator, accounts, CA, leaf certificate, creds) and a
    route password nats-server always reads as one token ("xt" + hex), 0600; no leaf password is
    left anywhere in what ships."""
    with tempfile.TemporaryDirectory(prefix="xt-stack-bus-") as tmp:
        env = tools_env()
        env.update({"XTASK_DATA_DIR": tmp, "XTASK_ADMIN_GROUPS": "developers",
                    "XTASK_ADMIN_PASSWORD_HASH": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"})
        r = subprocess.run(["sh", src("entrypoint", "xtask-setup")], capture_output=True, text=True, env=env,
                           timeout=60)
        check(r.returncode == 0, f"xtask-setup: {r.stderr}")
        bus = os.path.join(tmp, "bus")
        pw = open(os.path.join(bus, "route-password")).read()
        check(re.fullmatch(r"xt[0-9a-f]{48}", pw), f"route password shape {pw!r}")
        check(oct(os.stat(os.path.join(bus, "route-password")).st_mode & 0o777) == "0o600", "0600")
        for f in ("operator.jwt", "tls/ca.pem", "tls/server.pem", "creds/node.creds", "creds/web.creds",
                  "creds/auth.creds", "creds/cli.creds", "creds/admin.creds"):
            check(os.path.exists(os.path.join(bus, f)), f"bus/{f} made by xtask-setup")
        check(not os.path.exists(os.path.join(tmp, "secrets", "leaf-password")), "no leaf password any more")
        base = stack_env({"XTASK_DATA_DIR": tmp})
        nats_test(src("configs", "nats-cluster.conf"), {**base, "XTASK_ROUTE_PASSWORD": pw,
                                                        "XTASK_NATS_ROUTES": '["nats://127.0.0.1:6222"]'})
    shipped = ["configs", "entrypoint", "docker", "fly.toml", "README.md", "docs", "scripts"]
    r = subprocess.run(["grep", "-rl", "LEAF_PASSWORD\\|leaf-password\\|XTASK_LEAF_USER"] + [src(p) for p in shipped],
                       capture_output=True, text=True)
    check(r.stdout.strip() == "", f"the old leaf password is still named in: {r.stdout.split()}")


def test_xtask_nats_routes():
    """entrypoint/xtask-nats puts the route user and password into each seed route, never on a
    command line, and refuses to start routes without a usable password."""
    with tempfile.TemporaryDirectory(prefix="xt-stack-xn-") as tmp:
        with open(os.path.join(tmp, "nats-server"), "w") as f:
            f.write('#!/bin/sh\necho "args=$*"\necho "routes=$XTASK_NATS_ROUTES"\n')
        os.chmod(os.path.join(tmp, "nats-server"), 0o755)
        env = {"PATH": f"{tmp}:{os.environ['PATH']}", "XTASK_ROUTE_PASSWORD": "xt00ff",
               "XTASK_NATS_ROUTES": '["nats://ams.x.internal:6222", "nats-route://[fdaa::3]:6222"]'}
        r = subprocess.run(["sh", src("entrypoint", "xtask-nats"), "--config", "c.conf"], capture_output=True,
                           text=True, env=env, timeout=30)
        check(r.returncode == 0, f"xtask-nats: {r.stderr}")
        check("args=--config c.conf" in r.stdout and "xt00ff" not in r.stdout.split("routes=")[0], r.stdout)
        check('routes=["nats://xtask-route:xt00ff@ams.x.internal:6222", '
              '"nats-route://xtask-route:xt00ff@[fdaa::3]:6222"]' in r.stdout, r.stdout)
        for bad in ({"XTASK_ROUTE_PASSWORD": ""}, {"XTASK_ROUTE_PASSWORD": "a b"},
                    {"XTASK_NATS_ROUTES": '["nats://u:p@h:6222"]'}):
            r = subprocess.run(["sh", src("entrypoint", "xtask-nats")], capture_output=True, text=True,
                               env={**env, **bad}, timeout=30)
            check(r.returncode == 2 and "xtask-nats:" in r.stderr, f"{bad}: {r.returncode} {r.stderr}")
        # a single server (no routes) does not need the password
        r = subprocess.run(["sh", src("entrypoint", "xtask-nats")], capture_output=True, text=True,
                           env={"PATH": env["PATH"], "XTASK_NATS_ROUTES": "[]"}, timeout=30)
        check(r.returncode == 0 and "routes=[]" in r.stdout, r.stdout + r.stderr)


def test_nats_conf_local():
    with tempfile.TemporaryDirectory(prefix="xt-stack-nats-") as tmp:
        nats_test(src("configs", "nats.conf"), stack_env({"XTASK_DATA_DIR": tmp}))


def test_nats_conf_fly():
    """On Fly: the entrypoint derives server name and routes from FLY_*; nats-server accepts the
    clustered file with them, for each of the six regions."""
    tmp = tempfile.TemporaryDirectory(prefix="xt-stack-nats-")
    for region in fly()["env"]["XTASK_REGIONS"].split():
        fly_env = {"FLY_APP_NAME": "xtask", "FLY_REGION": region, "FLY_MACHINE_ID": "3d8d9e1b" + region,
                   "FLY_PRIVATE_IP": "fdaa:0:1::3", "XTASK_DATA_DIR": tmp.name}
        fly_env.update(fly()["env"])
        r = subprocess.run(["sh", src("entrypoint", "xtask-entrypoint"), "fly-env"], capture_output=True,
                           text=True, env={**os.environ, **fly_env}, timeout=30)
        check(r.returncode == 0, f"entrypoint fly-env: {r.stderr}")
        derived = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        check(derived["NATS_SERVER_NAME"] == f"xtask-{region}-3d8d9e1b{region}", "server name = region + machine id")
        routes = derived["XTASK_NATS_ROUTES"]
        for rr in fly()["env"]["XTASK_REGIONS"].split():
            check(f'"nats://{rr}.xtask.internal:6222"' in routes, f"route to {rr}: {routes}")
        check("@" not in routes, f"routes carry no credential in the environment: {routes}")
        env = stack_env({**fly_env, **derived})
        check(env["XTASK_NATS_REGION_TAG"] == f"region:{region}", "region tag")
        nats_test(src("configs", env.get("XTASK_NATS_CONF", "nats.conf")), env)
    tmp.cleanup()


# --- entrypoint modes ---------------------------------------------------------------------------
def test_entrypoint_modes():
    """The old modes map onto the supervisor: one mode = that service and what it needs, through
    `xtask-supervisor run --only NAME` on the full manifest (the supervisor adds the dependencies:
    tested in integration-tests/supervisor/test_sv_select.py)."""
    import tempfile
    sup = os.environ.get("XT_STACK_SUPERVISOR")
    check(sup, "xtask-supervisor not built")
    want = {"all": "", "nats": "nats", "xtask": "xtask", "auth": "auth", "authelia": "auth", "web": "web",
            "caddy": "web"}
    with tempfile.TemporaryDirectory(prefix="xt-stack-ep-") as tmp:
        fake = os.path.join(tmp, "bin")
        os.makedirs(fake)
        # a stand-in supervisor: `check` is the real one, `run` prints its manifest and --only
        with open(os.path.join(fake, "xtask-supervisor"), "w") as f:
            f.write(f'#!/bin/sh\nif [ "$1" = check ]; then exec {sup} "$@"; fi\n'
                    'while [ $# -gt 0 ]; do case "$1" in -c) echo "manifest=$2";; --only) echo "only=$2";; esac; '
                    'shift; done\n')
        os.chmod(os.path.join(fake, "xtask-supervisor"), 0o755)
        for mode, services in want.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith(("XTASK_", "NATS_", "FLY_"))}
            env.update({"PATH": f"{fake}:{src('entrypoint')}:{BIN_DIR}:{env['PATH']}", "XTASK_CONFIG_DIR": src("configs"),
                        "XTASK_DATA_DIR": os.path.join(tmp, "data"), "XTASK_RUN_DIR": os.path.join(tmp, "run"),
                        "XTASK_USER": "", "XTASK_ADMIN_GROUPS": "developers",
                        "XTASK_ADMIN_PASSWORD_HASH": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g"})
            r = subprocess.run(["sh", src("entrypoint", "xtask-entrypoint"), mode], capture_output=True, text=True,
                               env=env, timeout=30)
            check(r.returncode == 0, f"mode {mode}: {r.stderr}")
            check(f"manifest={src('configs', 'services.yaml')}" in r.stdout, f"mode {mode}: full manifest: {r.stdout}")
            m = re.search(r"(?m)^only=(.*)$", r.stdout)
            got = m.group(1) if m else ""
            check(got == services, f"mode {mode}: --only {got!r}, want {services!r}")
        r = subprocess.run(["sh", src("entrypoint", "xtask-entrypoint"), "help"], capture_output=True, text=True,
                           timeout=30)
        check(r.returncode == 0 and "caddy" in r.stdout, "help lists the modes")


# --- Taskfile.yml (go-task v3; parsed with the project's YAML loader) --------------------------
def test_taskfile():
    t = load_yaml(src("Taskfile.yml"), raw=True)
    check(str(t["version"]) == "3", "go-task version 3")
    tasks = t["tasks"]
    want = {"build", "test", "up", "down", "status", "image", "compose", "deploy"}
    check(want <= set(tasks), f"tasks missing: {sorted(want - set(tasks))}")
    for name, task in tasks.items():
        check(isinstance(task.get("cmds"), list) and task["cmds"], f"task {name} has cmds")
        check(set(task) <= {"desc", "cmds", "deps", "vars", "env", "dir", "preconditions", "summary",
                            "silent", "sources", "generates", "status", "internal", "aliases"},
              f"task {name}: unknown keys {sorted(task)}")
    cmds = {n: " ".join(c if isinstance(c, str) else c.get("cmd", "") for c in t["cmds"])
            for n, t in tasks.items()}
    # each calls what the README / docs/STACK.md call
    check("scripts/test.sh" in cmds["test"], "test -> scripts/test.sh")
    check("scripts/up.sh" in cmds["up"], "up -> scripts/up.sh")
    check("scripts/down.sh" in cmds["down"], "down -> scripts/down.sh")
    check("xtask-supervisor status" in cmds["status"], "status -> xtask-supervisor status")
    check("docker/build.sh" in cmds["image"], "image -> docker/build.sh")
    with open(src("docker", "build.sh")) as f:
        check("docker/Dockerfile" in f.read(), "docker/build.sh builds docker/Dockerfile")
    check("docker/docker-compose.yml" in cmds["compose"], "compose uses docker/docker-compose.yml")
    check("fly deploy" in cmds["deploy"] and "fly scale count 6" in cmds["deploy"]
          and "--max-per-region 1" in cmds["deploy"], "deploy: fly deploy + one Machine per region")
    regions = t["vars"]["FLY_REGIONS"].split(",")
    check(regions == fly()["env"]["XTASK_REGIONS"].split(), "Taskfile regions == fly.toml regions")
    for n in ("test", "up", "down"):
        script = cmds[n].split()[0]
        check(os.access(src(script), os.X_OK), f"{script} is executable")


# --- docker/docker-compose.yml ------------------------------------------------------------------
def test_compose():
    c = yaml_merge(load_yaml(src("docker", "docker-compose.yml"), raw=True))
    svcs = c["services"]
    one = svcs["xtask"]
    check("profiles" not in one, "the default service has no profile")
    check(all(p.startswith("127.0.0.1:") for p in one["ports"]), "ports published on 127.0.0.1 only")
    check(any(v.split(":")[0] in c["volumes"] and v.endswith(":/data") for v in one["volumes"]),
          "named volume on /data")
    regions = [n for n, s in svcs.items() if "regions" in (s.get("profiles") or [])]
    check(len(regions) == 3, f"three region services in the 'regions' profile: {regions}")
    for n in regions:
        env = svcs[n]["environment"]
        check(env["FLY_REGION"] == n and env["XTASK_NATS_CONF"] == "nats-cluster.conf", f"{n}: region env")
        check(all(f"nats://{r}:6222" in env["XTASK_NATS_ROUTES"] for r in regions), f"{n}: routes to all three")
        check("@" not in env["XTASK_NATS_ROUTES"], f"{n}: routes without credentials (xtask-nats adds them)")
        check("XTASK_BUS_BUNDLE" in env, f"{n}: the regions share one bus bundle")
    check(os.path.exists(os.path.join(src("docker"), one["build"]["context"], one["build"]["dockerfile"])),
          "build context + dockerfile exist")


for fn in [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]:
    case(fn)
if FAILED:
    print(f"{len(FAILED)} failed: {', '.join(FAILED)}")
    sys.exit(1)
print("all ok")
