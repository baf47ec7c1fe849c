#!/usr/bin/env python3
"""Request-framing flaws a front must not let through (docs/SECURITY.md findings 1-5), against the
real front and the real auth, signed in (only the framing check stands between the request and the
upstream). libh2o 2.2.5 lets all five through and hides 2-4 from handlers; the front refuses them
(front.c framing_problem / raw_head_problem).

 1. obs-fold (a header line starting with SP/HTAB): libh2o keeps it as a header with an EMPTY name,
    which a proxy would forward as `:  Remote-User: admin` (RFC 9112 5.2: reject).
 2. Two different Content-Length values (libh2o: the first wins; RFC 9112 6.3: 400).
 3. Content-Length together with Transfer-Encoding (RFC 9112 6.1: at least close). With another proxy
    in front that frames differently (Fly's edge pools connections to us), 2. and 3. are request
    smuggling primitives.
 4. Two Host headers (libh2o routes by the last one; RFC 9112 3.2: 400).
 5. TRACE reaching the upstream (cross-site tracing if the upstream echoes).
"""
import os
import sys

os.environ.setdefault("XT_PORT_OFFSET", "620")  # by hand; CTest passes PORT_OFFSET 620 itself
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
