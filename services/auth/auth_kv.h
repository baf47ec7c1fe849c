/*
 * auth_kv: the optional shared session store, a NATS JetStream KV bucket (session.nats), so that one
 * login works on every instance (every region).
 *
 * Every instance watches the whole bucket and mirrors it into its in-memory table, so lookups on
 * the hot path stay local; writes (login, 2FA, logout, activity, at most once per few seconds per
 * session) go to a writer thread through a bounded queue and never block the loop; a write that
 * fails while JetStream re-elects a leader is retried (bounded, 10 s). Keys are
 * HMAC-SHA256(session.secret, id) so the bucket alone does not reveal usable cookie values; the
 * id itself travels inside the value. The bucket's TTL bounds how long a session outlives its
 * last write. The bucket has session.nats.replicas replicas (an existing one is scaled to that);
 * when JetStream cannot create it yet (a cluster still forming), it is retried every second.
 *
 * Lookups on a local miss. The watcher alone is not enough: with nats.c 3.4.1 it can lose entries
 * when the bucket's leader changes (a region dies) or its replicas change. So a cookie whose id is
 * not in the local table is looked up in the bucket directly (kvStore_Get). The choice:
 * - never on the loop thread: the request is suspended and the lookup runs on this module's own
 *   lookup thread; the answer comes back as a loop message, the found session is put in the local
 *   table, then the request is handled again. Logged-in users (local hits) never wait for NATS,
 *   whatever NATS does.
 * - bounded: each lookup has a deadline (session.nats.lookup_timeout, 1 s, below the front's
 *   forward-auth timeout), counted from when it was queued; retries on "no responders" within it.
 *   An error or a deadline answers "no session" (a login prompt, never access) and is not cached.
 * - flood-proof: an id the bucket does not hold (or holds logged out / expired) is negative-cached
 *   for 2 s; at most 64 lookups in flight and 200 per second (burst 200): beyond that a miss is
 *   answered as an unknown session at once, so bogus cookies cost NATS at most 200 gets a second.
 *
 * Lost logouts. A session already in the local table is never looked up again, so a logout the
 * watcher lost would keep it valid here until it expires. Every session.nats.resync_interval (30 s)
 * a fresh watcher reads the whole bucket again and only its logouts are applied.
 */
#ifndef XT_AUTH_KV_H
#define XT_AUTH_KV_H

#include <h2o.h>

#include "auth.h"

typedef struct auth_kv auth_kv;

/* Called on the loop thread for every update seen in the bucket (also our own writes).
 * deleted: the session with that id is gone. */
typedef void (*auth_kv_update_cb)(void *ud, const auth_session *s, int deleted);

/* Connect, create the bucket if missing (TTL = ttl_ms), start the watcher and the writer. */
auth_kv *auth_kv_new(const auth_config *cfg, int64_t ttl_ms, h2o_multithread_queue_t *queue,
                     auth_kv_update_cb cb, void *ud, char *err, size_t errlen);
/* Start a lookup of a session id that is not in the local table (loop thread). NULL when none is
 * started (not worth it: negative-cached, over the rate or in-flight bound, bucket not ready): the
 * session is unknown. Else cb runs later on the loop thread exactly once (found: the session is
 * already in the local table through the update callback), unless cancelled first. */
typedef struct auth_kv_lookup auth_kv_lookup;
typedef void (*auth_kv_lookup_cb)(void *ud, int found);
auth_kv_lookup *auth_kv_lookup_start(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES], auth_kv_lookup_cb cb,
                                     void *ud);
/* The waiting request went away: cb will not run (loop thread; the lookup itself completes). */
void auth_kv_lookup_cancel(auth_kv_lookup *lk);

/* Queue a write (dropped with a counter when the queue is full). Loop thread. */
void auth_kv_put(auth_kv *kv, const auth_session *s);
void auth_kv_delete(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES]);
void auth_kv_free(auth_kv *kv);

#endif
