"""Supervisor: `user:` / `group:` resolved without NSS in the static binary (users.c). Real processes
as root: a name from /etc/passwd, a numeric uid without an entry, `group:`, supplementary groups
from the group file, a user only getent knows; an unknown user or group is a file:line:col error at
`check` and at `run` (nothing started), and a `reload` that brings one is refused with the running
services untouched (the old static binary died with SIGSEGV in getpwnam_r on all of these)."""
import os
import re
import subprocess

from svlib import SUP, Sup, fix, q, run_tests

ROOT = os.geteuid() == 0


def uid_line(sup, name):
    m = sup.proc.wait_output(rf"^{name} +\| uid (\d+) gid (\d+)$")
    return int(m.group(1)), int(m.group(2))


def groups_line(sup, name):
    m = sup.proc.wait_output(rf"^{name} +\| groups ?([\d ]*)$")
    return sorted(int(g) for g in m.group(1).split())


def test_users_and_groups(tmp):
    # a group file: the system's, plus one that lists nobody as a member (supplementary groups come
    # from the files, as initgroups would find them, but without NSS)
    with open("/etc/group") as f:
        groups = f.read()
    grp = tmp.write("group", groups + "xtsvtest:x:4321:daemon,nobody\n")
    sup = Sup(tmp, f"""
  byname:
    command: {fix("uid", "groups", "forever")}
    user: nobody
  numeric:
    command: {fix("uid", "groups", "forever")}
    user: 4242
  withgroup:
    command: {fix("uid", "forever")}
    user: nobody
    group: daemon
""", env={"XTASK_SUPERVISOR_GROUP_FILE": grp})
    try:
        sup.start()
        for n in ("byname", "numeric", "withgroup"):
            sup.wait_state(n, "READY")
        if ROOT:
            assert uid_line(sup, "byname") == (65534, 65534)
            assert 4321 in groups_line(sup, "byname"), sup.output()[-2000:]
            assert uid_line(sup, "numeric") == (4242, 4242)
            assert groups_line(sup, "numeric") == [4242]
            assert uid_line(sup, "withgroup") == (65534, 1)
        assert sup.stop() == 0
    finally:
        sup.kill()
    # a user the passwd file does not have: asked of getent (where NSS works), in a child
    empty = tmp.write("passwd-empty", "")
    sup = Sup(tmp, f"""
  nssonly:
    command: {fix("uid", "forever")}
    user: nobody
""", env={"XTASK_SUPERVISOR_PASSWD_FILE": empty})
    try:
        sup.start()
        sup.wait_state("nssonly", "READY")
        if ROOT:
            assert uid_line(sup, "nssonly") == (65534, 65534)
        assert sup.stop() == 0
    finally:
        sup.kill()


def test_unknown_user_or_group_refused(tmp):
    flag = os.path.join(tmp.path, "started")
    sup = Sup(tmp, f"""
  first:
    command: {fix(f"touch:{flag}", "forever")}
  typo:
    command: {fix("forever")}
    user: xtsvnosuchuser
""")
    # check: exit 2 with the value's position
    r = subprocess.run([SUP, "check", sup.path], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert re.search(r"services\.yaml:\d+:11: service 'typo': unknown user 'xtsvnosuchuser'", r.stderr), r.stderr
    # run: exit 2 before anything starts
    r = subprocess.run([SUP, "run", "-c", sup.path], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "unknown user 'xtsvnosuchuser'" in r.stderr, r
    assert not os.path.exists(flag)
    # an unknown group, the same
    sup.write(f"""
  first:
    command: {fix("forever")}
    user: nobody
    group: xtsvnosuchgroup
""")
    r = subprocess.run([SUP, "check", sup.path], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2, r
    assert re.search(r"services\.yaml:\d+:12: service 'first': unknown group 'xtsvnosuchgroup'", r.stderr), r.stderr


def test_reload_with_unknown_user_refused(tmp):
    good = f"""
  good:
    command: {fix("forever")}
    user: nobody
"""
    sup = Sup(tmp, good)
    try:
        sup.start()
        pid = sup.wait_state("good", "READY")["pid"]
        # a new service with a typo, and a change to the running one: nothing of it applies
        sup.write(f"""
  good:
    command: {fix("print:changed", "forever")}
    user: nobody
  typo:
    command: {fix("forever")}
    user: xtsvnosuchuser
""")
        r = sup.cli("reload")
        assert r.returncode == 1 and "unknown user 'xtsvnosuchuser'" in r.stderr, r
        assert re.search(r"services\.yaml:\d+:11:", r.stderr), r.stderr
        st = sup.status()
        assert set(st) == {"good"} and st["good"]["pid"] == pid and st["good"]["state"] == "READY", st
        assert "keeping the running configuration" in sup.output()
        # fixed: the reload applies
        sup.write(good + f"""
  fixed:
    command: {fix("forever")}
    user: {q("65534")}
""")
        assert sup.cli("reload").returncode == 0
        sup.wait_state("fixed", "READY")
        assert sup.status()["good"]["pid"] == pid
        assert sup.stop() == 0
    finally:
        sup.kill()


if __name__ == "__main__":
    run_tests([test_users_and_groups, test_unknown_user_or_group_refused, test_reload_with_unknown_user_refused])
