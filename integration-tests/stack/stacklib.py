"""Helpers shared by the whole-stack tests (owner: stack). Python 3 standard library only."""
import json
import os
import re
import subprocess

from xt_testlib import SOURCE_DIR

TEST_BIN_DIR = os.environ.get("XT_TEST_BIN_DIR", os.path.join(SOURCE_DIR, "build", "tests"))

DURATION_RX = re.compile(r"^(\d+)(ms|s|m|h)$")


def duration_ms(text):
    """'100ms', '5s', '2m' -> milliseconds (the manifest's duration syntax)."""
    m = DURATION_RX.match(str(text).strip())
    if not m:
        raise ValueError(f"bad duration {text!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n * {"ms": 1, "s": 1000, "m": 60000, "h": 3600000}[unit]


def load_yaml(path, raw=False, env=None):
    """A YAML file as Python data, through the project's own loader (stack-yaml2json)."""
    argv = [os.path.join(TEST_BIN_DIR, "stack-yaml2json")] + (["--raw"] if raw else []) + [path]
    e = dict(os.environ)
    if env is not None:
        e = dict(env)
    r = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"{path}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def yaml_merge(v):
    """Apply YAML merge keys (`<<: *anchor`, as compose files use them) recursively."""
    if isinstance(v, list):
        return [yaml_merge(x) for x in v]
    if not isinstance(v, dict):
        return v
    out = {}
    base = v.get("<<")
    for b in (base if isinstance(base, list) else [base] if base else []):
        out.update(yaml_merge(b))
    for k, x in v.items():
        if k != "<<":
            out[k] = yaml_merge(x)
    return out


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
