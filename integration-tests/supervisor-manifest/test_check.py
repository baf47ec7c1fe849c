"""`xtask-supervisor check FILE` and `xtask-supervisor -c FILE run` on the manifest corpus.

Every supervisor/tests/manifests/bad/*.yaml announces its message on its first line
(`# expect: LINE:COL: message`). For each: `check` exits 2 with exactly "FILE:LINE:COL: message" on
stderr; `run` exits 2 with the same message, and nothing was started or written: the programs the
manifests name are stand-ins on PATH that leave a marker when run, and the run and data
directories stay empty (no control socket, no generated secret). Every good/*.yaml passes `check`.
"""
import glob
import os
import shutil
import signal
import subprocess
import sys

from xt_testlib import SOURCE_DIR, Proc, TempDir, bin_path, wait_until

FAILED = []
CORPUS = os.path.join("supervisor", "tests", "manifests")  # relative: messages carry the path as given
PROGRAMS = ["nats-server", "xtask", "xtask-auth", "xtask-web", "xtask-render", "sleep"]


def case(fn):
    try:
        fn()
        print(f"ok   {fn.__name__}")
    except Exception as e:  # noqa: BLE001 - report every case, fail at the end
        FAILED.append(fn.__name__)
        print(f"FAIL {fn.__name__}: {e}")


def expectation(path):
    with open(os.path.join(SOURCE_DIR, path)) as f:
        first = f.readline().rstrip("\n")
    assert first.startswith("# expect: "), f"{path}: first line must be '# expect: LINE:COL: message'"
    return first[len("# expect: "):]


class Sandbox:
    """Stand-in programs that leave a marker, and empty run/data directories."""

    def __init__(self):
        self.tmp = TempDir(prefix="xt-mf-it-")
        self.bin = os.path.join(self.tmp.path, "bin")
        self.markers = os.path.join(self.tmp.path, "markers")
        self.run_dir = os.path.join(self.tmp.path, "run")
        self.data_dir = os.path.join(self.tmp.path, "data")
        for d in (self.bin, self.markers, self.run_dir, self.data_dir):
            os.makedirs(d)
        with open("/etc/passwd") as f:
            self.passwd = self.tmp.write("passwd", f.read() + "xtask:x:1000:1000::/data:/usr/sbin/nologin\n"
                                         "nats:x:10002:10002::/data:/usr/sbin/nologin\n")
        for p in PROGRAMS:
            self.tmp.write(os.path.join("bin", p), f"#!/bin/sh\ntouch '{self.markers}/{p}'\nexec /bin/sleep 30\n",
                           mode=0o755)

    def env(self):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("XTASK_", "XT_MANIFEST_TEST_", "NATS_", "FLY_"))}
        e["PATH"] = self.bin + os.pathsep + e.get("PATH", "/usr/bin:/bin")
        e["XTASK_RUN_DIR"] = self.run_dir
        e["XTASK_DATA_DIR"] = self.data_dir
        e["XTASK_SUPERVISOR_SOCKET"] = os.path.join(self.run_dir, "client.sock")
        # `check` resolves users (an unknown one is an error): the corpus names `xtask` and `nats`,
        # which the image has; this host may not, so they are added to a copy of its passwd file
        e["XTASK_SUPERVISOR_PASSWD_FILE"] = self.passwd
        return e

    def reset(self):
        for d in (self.markers, self.run_dir, self.data_dir):
            shutil.rmtree(d)
            os.makedirs(d)

    def assert_untouched(self, what):
        for d in (self.markers, self.run_dir, self.data_dir):
            left = os.listdir(d)
            assert not left, f"{what}: {d} is not empty: {left}"


SANDBOX = Sandbox()


def run_cli(args, timeout=10):
    p = subprocess.run([bin_path("xtask-supervisor")] + args, cwd=SOURCE_DIR, env=SANDBOX.env(),
                       capture_output=True, text=True, timeout=timeout, start_new_session=True)
    return p.returncode, p.stdout, p.stderr


def bad_files():
    files = sorted(glob.glob(os.path.join(SOURCE_DIR, CORPUS, "bad", "*.yaml")))
    assert len(files) >= 25, f"only {len(files)} malformed manifests"
    return [os.path.relpath(f, SOURCE_DIR) for f in files]


def test_sandbox_positive_control():
    """A valid manifest does run the stand-in: so an absent marker below means nothing started."""
    path = SANDBOX.tmp.write("good.yaml", "version: 1\nservices:\n  nats:\n    command: [nats-server]\n")
    with Proc([bin_path("xtask-supervisor"), "-c", path, "run"], env=SANDBOX.env(), cwd=SOURCE_DIR) as p:
        wait_until(lambda: os.path.exists(os.path.join(SANDBOX.markers, "nats-server")), 10,
                   what="the stand-in nats-server to run")
        p.signal(signal.SIGTERM)
        p.wait(timeout=10)
    SANDBOX.reset()


def test_check_bad_manifests():
    problems = []
    for rel in bad_files():
        want = f"{rel}:{expectation(rel)}"
        rc, out, err = run_cli(["check", rel])
        if rc != 2 or err != want + "\n" or out != "":
            problems.append(f"{rel}: exit {rc}, stdout {out!r}\n  stderr: {err!r}\n  want:   {want!r}")
    SANDBOX.assert_untouched("check")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_run_bad_manifests():
    """The supervisor itself refuses to start: exit 2, the message, nothing started, no socket."""
    problems = []
    for rel in bad_files():
        want = f"{rel}:{expectation(rel)}"
        with Proc([bin_path("xtask-supervisor"), "-c", rel, "run"], env=SANDBOX.env(), cwd=SOURCE_DIR) as p:
            rc = p.wait(timeout=10)
            out = p.output()
        if rc != 2 or want not in out:
            problems.append(f"{rel}: exit {rc}\n  output: {out[-500:]!r}\n  want:   {want!r}")
        SANDBOX.assert_untouched(f"run {rel}")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)


def test_secret_not_written_for_bad_manifest():
    """Validation comes before secrets: a manifest with a valid secret and a bad service
    generates nothing."""
    rel = os.path.join(SANDBOX.tmp.path, "secret-then-error.yaml")
    secret = os.path.join(SANDBOX.data_dir, "secrets", "session")
    SANDBOX.tmp.write("secret-then-error.yaml",
                      "version: 1\n"
                      "secrets:\n"
                      "  AUTH_SESSION_SECRET: { file: \"${XTASK_DATA_DIR}/secrets/session\" }\n"
                      "services:\n"
                      "  auth:\n"
                      "    command: [xtask-auth]\n"
                      "    restart: allways\n")
    want = f"{rel}:7:14: services.auth.restart: unknown restart policy 'allways' (did you mean 'always'?)"
    for args in (["check", rel], ["-c", rel, "run"]):
        rc, out, err = run_cli(args)
        assert rc == 2, f"{args}: exit {rc}"
        assert want in err, f"{args}: stderr {err!r}"
        assert not os.path.exists(secret), f"{args}: the secret was generated"
        SANDBOX.assert_untouched(f"{args}")


def test_check_good_manifests():
    files = sorted(glob.glob(os.path.join(SOURCE_DIR, CORPUS, "good", "*.yaml")))
    assert len(files) >= 4, files
    for f in files:
        rel = os.path.relpath(f, SOURCE_DIR)
        rc, out, err = run_cli(["check", rel])
        assert rc == 0, f"{rel}: exit {rc}: {err}"
        assert out.startswith(f"{rel}: ok"), f"{rel}: stdout {out!r}"
    rc, out, _ = run_cli(["check", os.path.join(CORPUS, "good", "architecture.yaml")])
    assert "(4 services: nats xtask auth web)" in out, out
    SANDBOX.assert_untouched("check good")


def test_check_missing_file():
    rc, out, err = run_cli(["check", "no/such/manifest.yaml"])
    assert rc == 2, rc
    assert err == "no/such/manifest.yaml: cannot open: No such file or directory\n", err


def main():
    try:
        for t in (test_sandbox_positive_control, test_check_bad_manifests, test_run_bad_manifests, test_secret_not_written_for_bad_manifest,
                  test_check_good_manifests, test_check_missing_file):
            case(t)
    finally:
        SANDBOX.tmp.cleanup()
    if FAILED:
        print(f"{len(FAILED)} failed: {', '.join(FAILED)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
