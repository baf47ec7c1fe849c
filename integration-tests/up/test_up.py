#!/usr/bin/env python3
"""scripts/up.sh as a user runs it: a port held by someone else is named at once, with its holder and
the variable to change, and nothing starts; with every port moved, `source .local/stack.env` gives
the CLIs everything they read (`xtask nodes`, `xtask-supervisor status`), and scripts/down.sh stops it."""
import os
import socket
import subprocess
import sys
import time

from xt_testlib import BIN_DIR, SOURCE_DIR, TempDir, port_block, wait_until

FAILED = []
tmp = TempDir(prefix="xt-up-it-")
P = port_block("stack", 8)
build = os.path.dirname(BIN_DIR)
local = os.path.join(tmp.path, "local")
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("XTASK_", "NATS_", "FLY_"))}
ENV.update({"XTASK_BUILD_DIR": build, "XTASK_LOCAL_DIR": local, "XTASK_HTTP_PORT": str(P[0]),
            "XTASK_AUTH_PORT": str(P[1]), "XTASK_NATS_PORT": str(P[2]), "XTASK_NATS_HTTP_PORT": str(P[3]),
            "XTASK_NATS_LEAF_PORT": str(P[4]), "XTASK_STATUS_ADDR": f"127.0.0.1:{P[5]}",
            "XTASK_UP_TIMEOUT": "60"})


def case(fn):
    t0 = time.monotonic()
    try:
        fn()
        print(f"ok   {fn.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
    except Exception as e:  # noqa: BLE001 - report every case
        import traceback
        traceback.print_exc()
        FAILED.append(fn.__name__)
        print(f"FAIL {fn.__name__}: {e}", flush=True)


def up(*args, timeout=150):
    return subprocess.run(["bash", os.path.join(SOURCE_DIR, "scripts", "up.sh"), *args], env=ENV, cwd=SOURCE_DIR,
                          capture_output=True, text=True, timeout=timeout)


def down():
    return subprocess.run(["bash", os.path.join(SOURCE_DIR, "scripts", "down.sh")], env=ENV, cwd=SOURCE_DIR,
                          capture_output=True, text=True, timeout=30)


def test_busy_port_named_at_once():
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", P[2]))
    held.listen()
    try:
        t0 = time.monotonic()
        r = up("--detach")
        took = time.monotonic() - t0
    finally:
        held.close()
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    msg = f"up: port {P[2]} (NATS clients) is in use by python3 (pid {os.getpid()}): set XTASK_NATS_PORT to a free port"
    assert msg in r.stderr, r.stderr[-2000:]
    assert "nothing was started" in r.stderr, r.stderr[-2000:]
    # the check comes before anything starts, not after the readiness wait (the time includes
    # up.sh's incremental build: printed, not bounded)
    print(f"up.sh refused in {took:.1f}s", flush=True)
    assert "not ready" not in r.stderr, r.stderr[-2000:]
    for f in ("run/supervisor.pid", "supervisor.log", "stack.env"):
        assert not os.path.exists(os.path.join(local, f)), f"{f}: something was started"
    # two variables on one port: a usage error naming both
    env = dict(ENV, XTASK_AUTH_PORT=str(P[0]))
    r = subprocess.run(["bash", "scripts/up.sh", "--detach"], env=env, cwd=SOURCE_DIR, capture_output=True, text=True,
                       timeout=150)
    assert r.returncode == 2 and f"port {P[0]} is given twice" in r.stderr and "XTASK_AUTH_PORT" in r.stderr, r.stderr


def test_stack_env_serves_the_clis():
    r = up("--detach")
    try:
        assert r.returncode == 0, (r.returncode, r.stdout[-1500:], r.stderr[-3000:])
        envfile = os.path.join(local, "stack.env")
        text = open(envfile).read()
        for v in (f"XTASK_NATS_URL=nats://127.0.0.1:{P[2]}", f"XTASK_NATS_PORT={P[2]}", "XTASK_NATS_CREDS=",
                  "XTASK_SUPERVISOR_SOCKET=", "XTASK_BUS_DIR=", f"XTASK_AUTH_PORT={P[1]}", "XTASK_CONFIG_DIR="):
            assert f"export {v}" in text, (v, text)
        # a fresh shell with nothing but stack.env: the README's commands work on the moved ports
        clean = {k: v for k, v in ENV.items() if not k.startswith("XTASK_")}
        sh = f". {envfile} && xtask nodes && xtask-supervisor status"
        last = []  # the latest run, for the message if the deadline passes

        def readme_commands_work():  # the node registers itself: ask again until it has
            r = subprocess.run(["bash", "-c", sh], env=clean, capture_output=True, text=True, timeout=30)
            last[:] = [r]
            return r if r.returncode == 0 and "READY" in r.stdout else None
        try:
            r2 = wait_until(readme_commands_work, 30, 0.5, "xtask nodes && xtask-supervisor status from stack.env")
        except AssertionError:
            r2 = last[0]
        assert r2.returncode == 0, (r2.returncode, r2.stdout[-2000:], r2.stderr[-2000:])
        assert "local" in r2.stdout and "nats" in r2.stdout and "READY" in r2.stdout, r2.stdout[-2000:]
    finally:
        d = down()
        print(d.stderr.strip(), flush=True)
    assert d.returncode == 0, d.stderr


case(test_busy_port_named_at_once)
case(test_stack_env_serves_the_clis)
if FAILED:
    log = os.path.join(local, "supervisor.log")
    if os.path.exists(log):
        print(open(log).read()[-4000:])
tmp.cleanup()
print(f"{2 - len(FAILED)} passed, {len(FAILED)} failed")
sys.exit(1 if FAILED else 0)
