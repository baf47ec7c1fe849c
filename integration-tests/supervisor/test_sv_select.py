"""Supervisor: `run --only NAME[,NAME...]` (the named services plus their dependencies, transitively;
unknown names refused with a did-you-mean) and `status --check` (the container's HEALTHCHECK: exit 0
only when every essential service is READY, 1 otherwise, 3 when no supervisor answers)."""
import json
import os
import subprocess

from xt_testlib import wait_until
from svlib import SUP, Sup, fix, run_tests

GRAPH = f"""
  base:
    command: {fix("forever")}
  db:
    command: {fix("forever")}
    depends_on: {{ base: started }}
  api:
    command: {fix("forever")}
    depends_on: [db]
  web:
    command: {fix("forever")}
    depends_on: {{ api: ready }}
  other:
    command: {fix("forever")}
  tool:
    type: oneshot
    command: {fix("exit:0")}
"""


def names(sup):
    return sorted(sup.status())


def test_only_with_dependencies(tmp):
    """--only api: api, db (direct) and base (transitive); web (a dependent) and the rest stay out
    of the supervisor: not started, not in status, unknown to start."""
    sup = Sup(tmp, GRAPH, args=["--only", "api"])
    try:
        sup.start()
        sup.wait_state("api", "READY")
        assert names(sup) == ["api", "base", "db"], names(sup)
        r = sup.cli("start", "web")
        assert r.returncode == 1 and "unknown service 'web'" in r.stderr, (r.returncode, r.stderr)
        assert "--only api: 3 of 6 services (base db api)" in sup.output(), sup.output()
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_only_list_forms(tmp):
    """A comma list, repeated and overlapping names, and the --only=LIST form."""
    for args, want in ((["--only", "web,other"], ["api", "base", "db", "other", "web"]),
                       (["--only=db,base,db"], ["base", "db"]),
                       (["--only", "tool"], ["tool"])):
        sup = Sup(tmp, GRAPH, args=args)
        try:
            sup.start()
            got = names(sup)
            assert got == want, (args, got)
            assert sup.stop() == 0
        finally:
            sup.kill()


def test_only_unknown_name(tmp):
    """An unknown name: exit 2 with a did-you-mean, nothing started (no socket)."""
    sup = Sup(tmp, GRAPH)
    for only, msg in (("api,wbe", "--only: unknown service 'wbe' (did you mean 'web'?)"),
                      ("zzzzzzzz", "--only: unknown service 'zzzzzzzz' (services: base db api web other tool)"),
                      (",", "--only: no service named")):
        r = subprocess.run([SUP, "run", "-c", sup.path, "--only", only], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2, (only, r.returncode, r.stderr)
        assert f"{sup.path}: {msg}" in r.stderr, (only, r.stderr)
        assert not os.path.exists(sup.sock), "nothing started"
    r = subprocess.run([SUP, "status", "--only", "api", "-s", sup.sock], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--only goes with run" in r.stderr, r.stderr
    r = subprocess.run([SUP, "run", "-c", sup.path, "--only"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--only needs service names" in r.stderr, r.stderr


def test_only_survives_reload(tmp):
    """reload keeps the --only selection: a new dependency of a selected service joins, a service
    outside the selection stays out, one no longer needed is stopped."""
    sup = Sup(tmp, GRAPH, args=["--only", "api"])
    try:
        sup.start()
        sup.wait_state("api", "READY")
        sup.write(f"""
  base:
    command: {fix("forever")}
  db:
    command: {fix("forever")}
  cache:
    command: {fix("forever")}
  api:
    command: {fix("forever")}
    depends_on: [db, cache]
  web:
    command: {fix("forever")}
    depends_on: {{ api: ready }}
""")
        r = sup.cli("reload")
        assert r.returncode == 0, r.stderr
        wait_until(lambda: names(sup) == ["api", "cache", "db"], 10, what="base gone, cache in")
        # a reload that drops a --only name is refused; the old configuration keeps running
        sup.write(f"""
  db:
    command: {fix("forever")}
""")
        r = sup.cli("reload")
        assert r.returncode == 1 and "--only: unknown service 'api'" in r.stderr, (r.returncode, r.stderr)
        assert names(sup) == ["api", "cache", "db"]
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_status_check(tmp):
    """status --check (with or without --json): 0 only when every essential service is READY; 1 with
    the essential services that are not, on stderr, and the status on stdout; 3 when not running."""
    flag = os.path.join(tmp.path, "flag")
    sup = Sup(tmp, f"""
  core:
    command: {fix("forever")}
    essential: true
    ready: {{ exec: ["test", "-e", "{flag}"], interval: 20ms }}
  side:
    command: {fix("forever")}
    essential: true
  extra:
    command: {fix("exit:3")}
    restart: never
""")
    r = sup.cli("status", "--check")
    assert r.returncode == 3 and "not running" in r.stderr, (r.returncode, r.stderr)
    r = sup.cli("status", "--check", "--json")
    assert r.returncode == 3, r.returncode
    try:
        sup.start()
        sup.wait_state("side", "READY")
        sup.wait_state("extra", "FAILED")  # not essential: does not count
        r = sup.cli("status", "--check")
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert r.stderr.strip() == "xtask-supervisor: not ready: core STARTING", r.stderr
        assert "core" in r.stdout and "side" in r.stdout, r.stdout
        r = sup.cli("status", "--json", "--check")
        assert r.returncode == 1, r.returncode
        assert {s["name"] for s in json.loads(r.stdout)["services"]} == {"core", "side", "extra"}
        # plain status is unchanged: exit 0 whatever the services do
        assert sup.cli("status").returncode == 0
        open(flag, "w").close()
        sup.wait_state("core", "READY")
        for args in (("status", "--check"), ("status", "--check", "--json"), ("--check", "status")):
            r = sup.cli(*args)
            assert r.returncode == 0 and r.stderr == "", (args, r.returncode, r.stderr)
        r = sup.cli("status", "--check", "--json")
        assert json.loads(r.stdout)["supervisor"]["state"] == "running"
        # an essential service stopped: 1 again, until it is back
        assert sup.cli("stop", "side").returncode == 0
        sup.wait_state("side", "STOPPED")
        r = sup.cli("status", "--check")
        assert r.returncode == 1 and "side STOPPED" in r.stderr, (r.returncode, r.stderr)
        assert sup.cli("start", "side").returncode == 0
        wait_until(lambda: sup.cli("status", "--check").returncode == 0, 10, what="healthy again")
        r = sup.cli("logs", "core", "--check")
        assert r.returncode == 2 and "--check goes with status" in r.stderr, r.stderr
        assert sup.stop() == 0
    finally:
        sup.kill()
    r = sup.cli("status", "--check")
    assert r.returncode == 3, r.returncode


run_tests([test_only_with_dependencies, test_only_list_forms, test_only_unknown_name, test_only_survives_reload,
           test_status_check])
