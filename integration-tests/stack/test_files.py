"""Static checks of the stack's files: configs/services.yaml, fly.toml, Taskfile.yml, the compose
file. Each check reads the file the way its consumer does (the project's YAML loader, tomllib) and
checks it against the others: the ports, the stop budget, the documented keys."""
import os
import re
import subprocess
import sys

from stacklib import TEST_BIN_DIR, check, duration_ms, load_yaml
from xt_testlib import SOURCE_DIR

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
    total = sum(duration_ms(s["stop"]["timeout"]) for s in m["services"].values())
    check(total <= budget, f"service stop timeouts add up to {total} ms > {budget} ms")


def test_manifest_defaults():
    m = manifest()
    check(m["supervisor"]["status_http"] == "127.0.0.1:9100", "status_http default 127.0.0.1:9100")
    check(m["supervisor"]["control_socket"] == "/run/xtask/supervisor.sock", "control socket default")
    env = m["env"]
    check(env["FLY_REGION"] == "local" and env["NATS_SERVER_NAME"] == "xtask-local", "region defaults")
    check(env["XTASK_CONFIG_DIR"] == "/etc/xtask" and env["XTASK_DATA_DIR"] == "/data", "dir defaults")
    ports = {k: env[k] for k in ("XTASK_HTTP_PORT", "XTASK_AUTH_PORT", "NATS_PORT", "NATS_HTTP_PORT",
                                 "NATS_CLUSTER_PORT", "NATS_LEAF_PORT")}
    check(ports == {"XTASK_HTTP_PORT": "8080", "XTASK_AUTH_PORT": "9091", "NATS_PORT": "4222",
                    "NATS_HTTP_PORT": "8222", "NATS_CLUSTER_PORT": "6222", "NATS_LEAF_PORT": "7422"},
          f"default ports {ports}")
    check("AUTH_SESSION_SECRET" in m["secrets"] and "NATS_LEAF_PASSWORD" in m["secrets"], "secrets")
    for name, sec in m["secrets"].items():
        check(sec["file"].startswith("/data/secrets/"), f"secret {name} under /data/secrets")


def test_manifest_moves_with_env():
    """Every port and path follows the environment: nothing hard-wired to a default port."""
    env = {"XTASK_CONFIG_DIR": "/c", "XTASK_DATA_DIR": "/d", "XTASK_RUN_DIR": "/r", "FLY_REGION": "syd",
           "XTASK_STATUS_ADDR": "127.0.0.1:24100", "XTASK_HTTP_PORT": "24080", "XTASK_AUTH_PORT": "24091",
           "NATS_PORT": "24222", "NATS_HTTP_PORT": "24822", "NATS_CLUSTER_PORT": "24622",
           "NATS_LEAF_PORT": "24722"}
    m = manifest(env)
    text = repr(m)
    for port in ("8080", "9091", "4222", "8222", "6222", "7422", "9100"):
        check(not re.search(rf"(?<!\d){port}(?!\d)", text), f"default port {port} still in the manifest with every port moved")
    for d in ("/etc/xtask", "/data", "/run/xtask"):
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
        check("order: nats auth xtask web" in r.stdout, f"start order: {r.stdout}")
    sup = os.environ.get("XT_STACK_SUPERVISOR")
    if sup:
        r = subprocess.run([sup, "check", src("configs", "services.yaml")], capture_output=True, text=True,
                           env=env, timeout=30)
        check(r.returncode == 0, f"xtask-supervisor check: {r.returncode} {r.stdout} {r.stderr}")


for fn in [v for k, v in list(globals().items()) if k.startswith("test_") and callable(v)]:
    case(fn)
if FAILED:
    print(f"{len(FAILED)} failed: {', '.join(FAILED)}")
    sys.exit(1)
print("all ok")
