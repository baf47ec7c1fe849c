#!/usr/bin/env python3
"""REPRO (not registered in CTest: fails until services/web is fixed). Request-framing flaws of the
front that libh2o 2.2.5 lets through and front.c does not catch:

 1. obs-fold (a header line starting with SP/HTAB) is accepted and forwarded to the upstream as a
    header with an EMPTY name, e.g. `:  Remote-User: admin`. RFC 9112 5.2: a proxy MUST reject it
    (400) or replace it with SP. An authenticated user can thus place arbitrary bytes, including an
    identity header text, in the upstream request; a lenient upstream parser may read it as a header.
 2. Two different Content-Length values are accepted (the first wins; RFC 9112 6.3: 400).
 3. Content-Length together with Transfer-Encoding: the connection is kept alive after the answer
    (RFC 9112 6.1: MUST close). With another proxy in front that frames differently (Fly's edge pools
    connections to us), 2. and 3. are request-smuggling primitives.
 4. Two Host headers are accepted (the request is routed by one of them; RFC 9112 3.2: 400).
 5. TRACE reaches the upstream (cross-site tracing if the upstream echoes).

Run: XT_BIN_DIR=build/bin PYTHONPATH=integration-tests/lib python3 integration-tests/security/repro_web_framing.py
Suggested fix (services/web/front.c, guard_on_req, before routing): answer 400 (and set
req->http1_is_persistent = 0) when any request header has name->len == 0 (h2o's representation of a
continuation line) or a name with bytes outside RFC 9110 tchar; when Content-Length appears more
than once, or together with Transfer-Encoding; when Host appears more than once; 405 for TRACE/TRACK.
"""
import os
import sys

os.environ.setdefault("XT_PORT_OFFSET", "620")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from seclib import Stack, first_status  # noqa: E402

S = Stack("xt-secr-")
DEV, _ = S.login()
CK = DEV.encode()
bugs = []

# 1. obs-fold
S.up.clear()
r = S.raw(b"GET /app/x HTTP/1.1\r\nHost: app.xtask.test\r\nCookie: " + CK + b"\r\nX-A: b\r\n Remote-User: admin\r\n"
          b"Connection: close\r\n\r\n")
if first_status(r) != 400:
    heads = [x["head"] for x in S.up.seen]
    bugs.append(f"obs-fold accepted ({first_status(r)}); upstream got: {heads!r}")

# 2. differing Content-Length
S.up.clear()
r = S.raw(b"POST /app/x HTTP/1.1\r\nHost: app.xtask.test\r\nCookie: " + CK +
          b"\r\nContent-Length: 5\r\nContent-Length: 7\r\nConnection: close\r\n\r\nhello!!", timeout=1.5)
if first_status(r) != 400:
    bugs.append(f"two Content-Length values accepted ({first_status(r)}), upstream body "
                f"{[x['body'] for x in S.up.seen]!r}")

# 3. CL + TE keeps the connection
r = S.raw(b"POST /app/x HTTP/1.1\r\nHost: app.xtask.test\r\nCookie: " + CK +
          b"\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", timeout=1.5, read_all=False)
if first_status(r) != 400 and b"connection: close" not in r.lower():
    bugs.append(f"Content-Length + Transfer-Encoding answered {first_status(r)} with the connection kept alive")

# 4. two Host headers
r = S.raw(b"GET /api/state HTTP/1.1\r\nHost: app.xtask.test\r\nHost: auth.xtask.test\r\nConnection: close\r\n\r\n")
if first_status(r) != 400:
    bugs.append(f"two Host headers accepted ({first_status(r)}): routed to {'auth' if b'authentication_level' in r else 'app'}")

# 5. TRACE
S.up.clear()
r = S.raw(b"TRACE /app/x HTTP/1.1\r\nHost: app.xtask.test\r\nCookie: " + CK + b"\r\nConnection: close\r\n\r\n")
if S.up.seen:
    bugs.append(f"TRACE forwarded to the upstream ({first_status(r)})")

S.stop()
for b in bugs:
    print("VULN:", b)
print(f"{len(bugs)} open issue(s)")
sys.exit(1 if bugs else 0)
