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


# --- logging in through the front (forward-auth to xtask-auth) ----------------------------------
import base64 as _b64
import hashlib as _hashlib
import hmac as _hmac
import struct as _struct
import time as _time
import urllib.parse as _up

from xt_testlib import http_request as _http_request


def totp_now(secret_b32, t=None, step_offset=0):
    """RFC 6238 TOTP (SHA1, 6 digits, 30 s), standard library only."""
    key = _b64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    counter = int((t if t is not None else _time.time()) // 30) + step_offset
    mac = _hmac.new(key, _struct.pack(">Q", counter), _hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    code = (_struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000
    return f"{code:06d}"


def totp_secret_from_uri(uri):
    q = _up.parse_qs(_up.urlsplit(uri.strip()).query)
    return q["secret"][0]


def session_cookie(headers, name="authelia_session"):
    """The value of cookie `name` in a response's Set-Cookie headers, or None."""
    for line in headers.get("set-cookie", "").split("\n"):
        first = line.split(";", 1)[0].strip()
        if first.startswith(name + "="):
            return first.split("=", 1)[1]
    return None


def login(front, user, password, totp_secret=None, domain="xtask.localhost", timeout=10):
    """Sign in through the front's auth host (first factor, then TOTP when a secret is given).
    Returns the session cookie value. `front` is http://127.0.0.1:PORT."""
    auth_host = f"auth.{domain}"
    body = json.dumps({"username": user, "password": password, "keepMeLoggedIn": False})
    st, hd, data = _http_request(front + "/api/firstfactor", "POST",
                                 {"Host": auth_host, "Content-Type": "application/json",
                                  "Accept": "application/json"}, body, timeout)
    check(st == 200, f"first factor: {st} {data[:300]!r}")
    cookie = session_cookie(hd)
    check(cookie, f"first factor set no session cookie: {hd}")
    if totp_secret:
        code = totp_now(totp_secret)
        st, hd, data = _http_request(front + "/api/secondfactor/totp", "POST",
                                     {"Host": auth_host, "Content-Type": "application/json",
                                      "Accept": "application/json",
                                      "Cookie": f"authelia_session={cookie}"},
                                     json.dumps({"token": code}), timeout)
        check(st == 200, f"second factor: {st} {data[:300]!r}")
        cookie = session_cookie(hd) or cookie
    return cookie


def api(front, path, cookie=None, method="GET", body=None, domain="xtask.localhost", timeout=30):
    """A request to the front's main host; returns (status, headers, parsed JSON or raw bytes)."""
    h = {"Host": domain, "Accept": "application/json"}
    if cookie:
        h["Cookie"] = f"authelia_session={cookie}"
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body)
    st, hd, data = _http_request(front + path, method, h, body, timeout)
    try:
        return st, hd, json.loads(data) if data else None
    except ValueError:
        return st, hd, data


# --- a minimal NATS request client (core protocol; enough for JetStream API calls) --------------
import socket as _socket
import sys as _sys

_sys.path.insert(0, os.path.join(SOURCE_DIR, "integration-tests", "coordinator"))
from natsproto import creds_sign as _creds_sign  # noqa: E402 - .creds signing (openssl), one copy


def nats_request(port, subject, payload=b"", timeout=5.0, host="127.0.0.1", creds=None):
    """One request/reply over a fresh connection; returns the reply payload (bytes). The stack's bus
    runs in operator mode: pass a .creds file (e.g. Stack.creds("admin")); without, the server
    refuses the connection (AssertionError with its -ERR)."""
    if isinstance(payload, str):
        payload = payload.encode()
    s = _socket.create_connection((host, port), timeout=timeout)
    try:
        f = s.makefile("rb")
        info = json.loads(f.readline()[5:] or b"{}")
        opts = {"verbose": False, "pedantic": False, "headers": False}
        if creds:
            opts["jwt"], opts["sig"] = _creds_sign(creds, info.get("nonce", ""))
        inbox = f"_INBOX.stack{os.getpid()}"
        s.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\n"
                  + f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode() + payload + b"\r\nPING\r\n")
        deadline = _time.monotonic() + timeout
        while _time.monotonic() < deadline:
            line = f.readline()
            if not line:
                break
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                n = int(line.split()[-1])
                data = f.read(n + 2)[:n]
                return data
            elif line.startswith(b"-ERR"):
                raise AssertionError(f"nats: {line!r}")
        raise AssertionError(f"no reply on {subject}")
    finally:
        s.close()


def js_api(port, verb, body=None, timeout=5.0, creds=None):
    """A JetStream API call ($JS.API.<verb>); returns the parsed JSON reply."""
    reply = nats_request(port, f"$JS.API.{verb}", json.dumps(body or {}), timeout, creds=creds)
    return json.loads(reply)


def nats_connect_error(port, creds=None, timeout=5.0, host="127.0.0.1"):
    """Connect (and PING) with `creds` or anonymously; None if the server accepted us, else its -ERR
    line (e.g. "-ERR 'Authorization Violation'")."""
    s = _socket.create_connection((host, port), timeout=timeout)
    try:
        f = s.makefile("rb")
        info = json.loads(f.readline()[5:] or b"{}")
        opts = {"verbose": False, "pedantic": False}
        if creds:
            opts["jwt"], opts["sig"] = _creds_sign(creds, info.get("nonce", ""))
        s.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        line = f.readline()
        return None if line.startswith(b"PONG") else line.decode(errors="replace").strip() or "closed"
    finally:
        s.close()
