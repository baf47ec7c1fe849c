"""A small NATS client over the text protocol, for tests (Python standard library only).

One socket, no threads: every call reads the socket until what it waits for arrives or its deadline
passes, queueing the messages of other subscriptions on the way and answering the server's PINGs.

    c = Client(url)                         # nats://127.0.0.1:port, optional user/password
    c = Client(url, creds="x.creds")        # a user JWT + nkey seed (.creds), as nats.c reads it
    c.request("xtask.n1.ping", b"{}", 1.0) -> Msg (raises Timeout, NoResponders)
    c.gather("xtask.nodes.discover", b"{}", 0.5) -> [Msg]
    sid = c.subscribe("xtask.logs.>"); c.flush(); ...; c.next_msg(sid, 1.0) / c.drain(sid)
    c.js_publish("xtask.queue.task", body, msg_id="x") -> PubAck dict
    c.js_api("STREAM.INFO.xtask-results") -> dict
    c.js_last("xtask-results", "xtask.results.*.t-1") -> dict or None
"""
import base64
import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse

# PKCS#8 DER prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
_ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")


def creds_sign(creds_path, nonce):
    """(jwt, signature) for a .creds file and the server's nonce: the nkey seed's Ed25519 signature,
    made by the openssl command (stdlib Python has no Ed25519)."""
    text = open(creds_path).read()
    jwt = text.split("-----BEGIN NATS USER JWT-----")[1].split("------END NATS USER JWT------")[0].strip()
    seed = text.split("-----BEGIN USER NKEY SEED-----")[1].split("------END USER NKEY SEED------")[0].strip()
    raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    key = raw[2:34]  # 2 prefix bytes, 32 bytes of seed, CRC16
    with tempfile.TemporaryDirectory() as d:
        kp = os.path.join(d, "k.der")
        with open(os.open(kp, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(_ED25519_PKCS8 + key)
        np = os.path.join(d, "nonce")  # Ed25519 is one-shot: openssl wants a file it can size
        with open(np, "wb") as f:
            f.write(nonce.encode())
        sig = subprocess.run(["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", kp, "-keyform", "DER", "-in", np],
                             capture_output=True, check=True).stdout
    return jwt, base64.urlsafe_b64encode(sig).decode().rstrip("=")


def reply_target(subject):
    """The node a request on `subject` goes to, "broadcast", or None (common/xt_nats.c)."""
    t = subject.split(".")
    if len(t) < 3 or t[0] != "xtask":
        return None
    if t[1] == "broadcast" or subject == "xtask.nodes.discover":
        return "broadcast"
    return None if t[1] in ("nodes", "queue", "results", "logs", "events", "audit") else t[1]


class Timeout(Exception):
    pass


class NoResponders(Exception):
    pass


class Msg:
    def __init__(self, subject, reply, data, headers=None, status=None):
        self.subject, self.reply, self.data = subject, reply, data
        self.headers = headers or {}
        self.status = status

    def json(self):
        return json.loads(self.data)

    def __repr__(self):
        return f"Msg({self.subject!r}, {self.data[:200]!r})"


class Client:
    def __init__(self, url, timeout=5.0, user=None, password=None, name="xt-test", creds=None):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 4222), timeout=timeout)
        self.buf = b""
        self.sid = 0
        self.queues = {}  # sid -> [Msg]
        self.inbox_n = 0
        self.prefix = f"_INBOX.t{id(self):x}{int(time.monotonic() * 1e6) % 1000000}"
        line = self._read_line(time.monotonic() + timeout)
        if not line.startswith(b"INFO "):
            raise IOError(f"expected INFO, got {line!r}")
        self.info = json.loads(line[5:])
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1,
                "lang": "python-test", "version": "0.1", "name": name}
        user = user or u.username
        password = password or u.password
        if user:
            opts["user"] = urllib.parse.unquote(user)
            opts["pass"] = urllib.parse.unquote(password or "")
        if creds:
            opts["jwt"], opts["sig"] = creds_sign(creds, self.info.get("nonce", ""))
        self._send(b"CONNECT " + json.dumps(opts).encode() + b"\r\n")
        self.flush(timeout)

    # -- plumbing --------------------------------------------------------------------------
    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _send(self, b):
        self.sock.sendall(b)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout()
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def _read_line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_n(self, n, deadline):
        while len(self.buf) < n + 2:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _step(self, deadline):
        """Process one protocol message. Returns 'PONG' for a pong, else None."""
        line = self._read_line(deadline)
        if line.startswith(b"MSG "):
            parts = line.split()
            subj, sid = parts[1].decode(), int(parts[2])
            reply = parts[3].decode() if len(parts) == 5 else None
            data = self._read_n(int(parts[-1]), deadline)
            self.queues.setdefault(sid, []).append(Msg(subj, reply, data))
        elif line.startswith(b"HMSG "):
            parts = line.split()
            subj, sid = parts[1].decode(), int(parts[2])
            reply = parts[3].decode() if len(parts) == 6 else None
            hlen, total = int(parts[-2]), int(parts[-1])
            raw = self._read_n(total, deadline)
            hdr, data = raw[:hlen], raw[hlen:]
            lines = hdr.decode("utf-8", "replace").split("\r\n")
            status = None
            first = lines[0].split()
            if len(first) >= 2 and first[1].isdigit():
                status = int(first[1])
            headers = {}
            for h in lines[1:]:
                if ":" in h:
                    k, v = h.split(":", 1)
                    headers[k.strip()] = v.strip()
            self.queues.setdefault(sid, []).append(Msg(subj, reply, data, headers, status))
        elif line == b"PING":
            self._send(b"PONG\r\n")
        elif line == b"PONG":
            return "PONG"
        elif line.startswith(b"-ERR"):
            raise IOError(line.decode())
        # +OK, INFO: ignore
        return None

    def flush(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        self._send(b"PING\r\n")
        while self._step(deadline) != "PONG":
            pass

    # -- core API -----------------------------------------------------------------------------
    def new_inbox(self):
        self.inbox_n += 1
        return f"{self.prefix}.{self.inbox_n}"

    def subscribe(self, subject, queue=None):
        self.sid += 1
        q = f" {queue}" if queue else ""
        self._send(f"SUB {subject}{q} {self.sid}\r\n".encode())
        self.queues[self.sid] = []
        return self.sid

    def unsubscribe(self, sid):
        self._send(f"UNSUB {sid}\r\n".encode())
        self.queues.pop(sid, None)

    def publish(self, subject, data=b"", reply=None, headers=None):
        if isinstance(data, str):
            data = data.encode()
        r = f" {reply}" if reply else ""
        if headers:
            h = "NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            hb = h.encode()
            self._send(f"HPUB {subject}{r} {len(hb)} {len(hb) + len(data)}\r\n".encode() + hb + data + b"\r\n")
        else:
            self._send(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")

    def next_msg(self, sid, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.queues.get(sid):
            self._step(deadline)
        return self.queues[sid].pop(0)

    def drain(self, sid, timeout=0.2):
        """Every message of sid that arrives within timeout (after a flush)."""
        try:
            self.flush(timeout + 2)
        except Timeout:
            pass
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._step(deadline)
        except Timeout:
            pass
        out, self.queues[sid] = self.queues.get(sid, []), []
        return out

    def reply_subjects(self, subject):
        """(reply, subscription) of a request on `subject`: a node's replies go under _R.<node>.<inbox
        tail> (common/xt_nats.h), a broadcast's under each answering node's id, subscribed as
        _R.*.<identity>.> (the shape a hub tells a leaf of); others to the inbox."""
        inbox = self.new_inbox()
        target = reply_target(subject)
        if not target:
            return inbox, inbox
        tail = inbox[7:] if inbox.startswith("_INBOX_") else "admin." + inbox[7:] if inbox.startswith("_INBOX.") \
            else inbox
        if target == "broadcast":
            return f"_R.broadcast.{tail}", f"_R.*.{tail.split('.')[0]}.>"
        return f"_R.{target}.{tail}", f"_R.{target}.{tail}"

    def request(self, subject, data=b"{}", timeout=2.0, headers=None):
        inbox, rsub = self.reply_subjects(subject)
        sid = self.subscribe(rsub)
        try:
            self.publish(subject, data, reply=inbox, headers=headers)
            m = self.next_msg(sid, timeout)
            if m.status == 503:
                raise NoResponders(subject)
            return m
        finally:
            self.unsubscribe(sid)

    def gather(self, subject, data=b"{}", window=0.5):
        inbox, rsub = self.reply_subjects(subject)
        sid = self.subscribe(rsub)
        self.publish(subject, data, reply=inbox)
        deadline = time.monotonic() + window
        try:
            while True:
                self._step(deadline)
        except Timeout:
            pass
        mine = inbox.split(".", 2)[-1]  # _R.broadcast.<tail>: keep replies to this request only
        out = [m for m in self.queues.get(sid, []) if m.status != 503 and
               (m.subject == inbox or m.subject.split(".", 2)[-1] == mine)]
        self.unsubscribe(sid)
        return out

    # -- JetStream ----------------------------------------------------------------------------
    def js_api(self, what, body=b"", timeout=3.0):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return self.request(f"$JS.API.{what}", body, timeout).json()

    def js_publish(self, subject, data, msg_id=None, timeout=3.0):
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode()
        h = {"Nats-Msg-Id": msg_id} if msg_id else None
        return self.request(subject, data, timeout, headers=h).json()

    def js_last(self, stream, subject, timeout=3.0):
        r = self.js_api(f"STREAM.MSG.GET.{stream}", {"last_by_subj": subject}, timeout)
        if "error" in r:
            return None
        return json.loads(base64.b64decode(r["message"]["data"]))

    def kv_get(self, bucket, key, timeout=3.0):
        r = self.js_api(f"STREAM.MSG.GET.KV_{bucket}", {"last_by_subj": f"$KV.{bucket}.{key}"}, timeout)
        if "error" in r:
            return None
        m = r["message"]
        hdrs = base64.b64decode(m.get("hdrs", "")).decode("utf-8", "replace") if m.get("hdrs") else ""
        if "KV-Operation: DEL" in hdrs or "KV-Operation: PURGE" in hdrs:
            return None
        return json.loads(base64.b64decode(m.get("data", "")) or b"null")
