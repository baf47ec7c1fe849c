"""xtask-auth sessions over time and across instances: expiration, inactivity, remember-me (tiny
durations, waited on as conditions), and the NATS KV session store with a real nats-server: a login on
one instance is valid on another, a logout on one ends it everywhere, an instance started later sees
existing sessions, an instance with another secret sees none, and a logged-out session's old records
published into the bucket again never bring it back.
"""
import os
import sys
import time

from xt_testlib import NatsServer, TempDir, port_block, wait_until
from authlib import FAILED, AuthServer, case, fast_hash

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "coordinator"))
import natsproto  # noqa: E402

PW = {"bob": "bob-pw"}
USERS = {"bob": {"password": fast_hash(PW["bob"]), "groups": ["developers"]}}
tmp = TempDir(prefix="xt-auth-sess-")
ports = port_block("auth", 16)


def alive(srv, c):
    """Is the session alive? (/api/state does not count as activity.)"""
    return srv.state(c)["username"] == "bob"


def test_expiration_inactivity_remember_me():
    srv = AuthServer(tmp, ports[0], USERS, name="timed",
                     session_extra="  expiration: 3s\n  inactivity: 1500ms\n  remember_me: 6s\n").start()
    try:
        # activity keeps a session past its inactivity limit, but not past its expiration
        t0 = time.monotonic()
        st, hd, js, c = srv.login("bob", PW["bob"])
        assert st == 200
        while time.monotonic() - t0 < 2.2:  # continuous activity for 2.2 s (> inactivity 1.5 s)
            assert srv.verify("/web/", cookie=c)[0] == 200, time.monotonic() - t0
        wait_until(lambda: srv.verify("/web/", cookie=c, accept="application/json")[0] == 401, 5,
                   interval=0.05, what="expiration")
        dt = time.monotonic() - t0
        assert 2.9 <= dt < 4.5, dt

        # idle: the session ends after `inactivity`
        t0 = time.monotonic()
        st, hd, js, c = srv.login("bob", PW["bob"])
        wait_until(lambda: not alive(srv, c), 5, interval=0.05, what="inactivity")
        dt = time.monotonic() - t0
        assert 1.4 <= dt < 2.9, dt
        assert srv.verify("/web/", cookie=c)[0] == 302

        # remember me: a persistent cookie, no inactivity limit, expiry = remember_me
        t0 = time.monotonic()
        st, hd, js, c = srv.login("bob", PW["bob"], keep=True)
        assert "Max-Age=6" in hd["set-cookie"], hd["set-cookie"]
        wait_until(lambda: time.monotonic() - t0 > 2.5, 5, what="past inactivity")
        assert alive(srv, c)
        wait_until(lambda: not alive(srv, c), 6, interval=0.1, what="remember-me expiry")
        dt = time.monotonic() - t0
        assert 5.9 <= dt < 7.5, dt
    finally:
        srv.stop()


def test_nats_kv_shared_sessions():
    nats = NatsServer(ports[1], ports[2], os.path.join(tmp.path, "nats"), name="auth-kv").start()
    kv = f"""  nats:
    enabled: true
    servers: nats://127.0.0.1:{ports[1]}
    bucket: test_sessions
"""
    a = AuthServer(tmp, ports[3], USERS, name="ams", session_extra=kv).start()
    b = AuthServer(tmp, ports[4], USERS, name="dfw", session_extra=kv).start()
    others = []
    try:
        st, hd, js, c = a.login("bob", PW["bob"])
        assert st == 200
        assert a.verify("/web/", cookie=c)[0] == 200
        # the login made on ams is valid on dfw
        wait_until(lambda: b.verify("/web/", cookie=c)[0] == 200, 10, interval=0.05, what="session on dfw")
        st, hd, _ = b.verify("/web/", cookie=c)
        assert hd["remote-user"] == "bob", hd
        # an instance started later sees the existing session
        late = AuthServer(tmp, ports[5], USERS, name="hkg", session_extra=kv).start()
        others.append(late)
        wait_until(lambda: late.verify("/web/", cookie=c)[0] == 200, 10, interval=0.05, what="session on hkg")
        # an instance with another secret cannot read the bucket's sessions
        alien = AuthServer(tmp, ports[6], USERS, name="alien", session_extra=kv,
                           secret="another-secret-another-secret-00").start()
        others.append(alien)
        wait_until(lambda: "does not decrypt" in alien.proc.output(), 10, what="alien ignores the values")
        assert alien.verify("/web/", cookie=c)[0] == 302
        # logout on dfw ends the session on ams and hkg too
        st, hd, js = b.post_json("/api/logout", {}, cookie=c)
        assert st == 200
        wait_until(lambda: a.verify("/web/", cookie=c)[0] == 302, 10, interval=0.05, what="logout reaches ams")
        wait_until(lambda: late.verify("/web/", cookie=c)[0] == 302, 10, interval=0.05, what="logout reaches hkg")
        # the bucket holds no usable cookie value in clear
        for srv in (a, b, late):
            assert c not in srv.proc.output()
    finally:
        for s in [a, b] + others:
            s.stop()
        nats.stop()


def test_nats_kv_lost_logout_resync():
    # nats.c 3.4.1's watcher can lose entries when the bucket's leader changes; dfw here loses every
    # live update (XT_AUTH_FAULT_DROP_WATCH=1): a logout made on ams must still end the session on
    # dfw within session.nats.resync_interval (1 s), not at its expiry (1 h)
    nats = NatsServer(ports[7], ports[8], os.path.join(tmp.path, "nats2"), name="auth-kv2").start()
    kv = f"""  expiration: 1h
  nats:
    enabled: true
    servers: nats://127.0.0.1:{ports[7]}
    bucket: resync_sessions
    resync_interval: 1s
"""
    a = AuthServer(tmp, ports[9], USERS, name="ams2", session_extra=kv).start()
    b = AuthServer(tmp, ports[10], USERS, name="dfw2", session_extra=kv, env={"XT_AUTH_FAULT_DROP_WATCH": "1"}).start()
    try:
        wait_until(lambda: "live updates are dropped" in b.proc.output(), 5, what="dfw2 drops live updates")
        st, hd, js, c = a.login("bob", PW["bob"])
        assert st == 200
        # dfw2 never saw the login go by: it finds the session with a lookup on its local miss
        wait_until(lambda: b.verify("/web/", cookie=c)[0] == 200, 10, interval=0.05, what="session on dfw2")
        st, hd, js = a.post_json("/api/logout", {}, cookie=c)
        assert st == 200 and a.verify("/web/", cookie=c)[0] == 302
        t0 = time.monotonic()
        wait_until(lambda: b.verify("/web/", cookie=c)[0] == 302, 10, interval=0.05, what="logout reaches dfw2 by resync")
        dt = time.monotonic() - t0
        assert dt < 5, dt
        print(f"    logout reached dfw2 after {dt:.2f} s", flush=True)
    finally:
        a.stop()
        b.stop()
        nats.stop()


def test_nats_kv_logout_replay():
    """Whoever can publish into the sessions bucket re-publishes a session's old records after its
    logout (valid ciphertexts, the attack of issue 10): the session stays logged out on every
    instance, on the watch path and on the lookup path of an instance started afterwards."""
    nats = NatsServer(ports[11], ports[12], os.path.join(tmp.path, "nats3"), name="auth-kv3").start()
    kv = f"""  inactivity: 4s
  nats:
    enabled: true
    servers: nats://127.0.0.1:{ports[11]}
    bucket: replay_sessions
"""
    a = AuthServer(tmp, ports[13], USERS, name="ams3", session_extra=kv).start()
    b = AuthServer(tmp, ports[14], USERS, name="dfw3", session_extra=kv).start()
    late = None
    spy = natsproto.Client(f"nats://127.0.0.1:{ports[11]}")
    try:
        sid = spy.subscribe("$KV.replay_sessions.>")
        spy.flush()
        seen = []

        def records(n):
            seen.extend(spy.drain(sid, 0.05))
            return len(seen) >= n

        st, hd, js, c = a.login("bob", PW["bob"])
        assert st == 200
        wait_until(lambda: records(1), 5, what="the login's record")
        wait_until(lambda: b.verify("/web/", cookie=c)[0] == 200, 10, interval=0.05, what="session on dfw3")
        # activity (inactivity 4 s: written every second) chains a second record onto the first
        wait_until(lambda: a.verify("/web/", cookie=c)[0] == 200 and records(2), 10, interval=0.1,
                   what="an activity record")
        old = [(m.subject, m.data) for m in seen]
        assert len({subj for subj, _ in old}) == 1, old  # one key per session
        st, hd, js = b.post_json("/api/logout", {}, cookie=c)
        assert st == 200
        wait_until(lambda: a.verify("/web/", cookie=c)[0] == 302, 10, interval=0.05, what="logout reaches ams3")
        # the replay: every old record again, in order, twice (raw publishes, as an attacker would)
        for _ in range(2):
            for subj, data in old:
                spy.publish(subj, data)
        # ... and the first record alone, its predecessors wiped: by a rollup or a purge of its key
        subj, data = old[0]
        r = spy.request(subj, data, headers={"Nats-Rollup": "sub"})
        assert b"rollup not permitted" in r.data, r.data
        r = spy.js_api("STREAM.PURGE.KV_replay_sessions", {"filter": subj})
        assert "purge not permitted" in r["error"]["description"], r
        spy.flush()
        for srv in (a, b):
            # whichever comes first: the replay refused (logged), or the session revived (the bug)
            wait_until(lambda: "does not chain" in srv.proc.output() or srv.verify("/web/", cookie=c)[0] == 200,
                       10, what=f"{srv.name} sees the replay")
            v = srv.verify("/web/", cookie=c)
            assert v[0] == 302, (srv.name, v, srv.proc.output()[-3000:])
            assert srv.state(c)["username"] != "bob"
        # an instance started after the replay: its watcher's initial values and its lookup on a miss
        late = AuthServer(tmp, ports[15], USERS, name="hkg3", session_extra=kv).start()
        assert late.verify("/web/", cookie=c)[0] == 302
        wait_until(lambda: "does not chain" in late.proc.output(), 10, what="hkg3 refuses the replay")
        assert late.verify("/web/", cookie=c)[0] == 302
        # the platform itself still works: a new login is valid everywhere
        st, hd, js, c2 = b.login("bob", PW["bob"])
        assert st == 200
        wait_until(lambda: late.verify("/web/", cookie=c2)[0] == 200, 10, interval=0.05, what="new session on hkg3")
    finally:
        spy.close()
        for srv in [a, b] + ([late] if late else []):
            srv.stop()
        nats.stop()


def main():
    try:
        for t in (test_expiration_inactivity_remember_me, test_nats_kv_shared_sessions, test_nats_kv_lost_logout_resync,
                  test_nats_kv_logout_replay):
            case(t)
    finally:
        tmp.cleanup()
    if FAILED:
        print("failed:", ", ".join(FAILED))
        sys.exit(1)


if __name__ == "__main__":
    main()
