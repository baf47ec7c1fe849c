/*
 * auth_kv: the optional shared session store, a NATS JetStream KV bucket (session.nats), so that one
 * login works on every instance (every region).
 *
 * Every instance watches the whole bucket and mirrors it into its in-memory table, so lookups on
 * the hot path stay local; writes (login, 2FA, logout, activity, at most once per few seconds per
 * session) go to a writer thread through a bounded queue and never block the loop. Keys are
 * HMAC-SHA256(session.secret, id) so the bucket alone does not reveal usable cookie values; the
 * id itself travels inside the value. The bucket's TTL bounds how long a session outlives its
 * last write.
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
/* Queue a write (dropped with a counter when the queue is full). Loop thread. */
void auth_kv_put(auth_kv *kv, const auth_session *s);
void auth_kv_delete(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES]);
void auth_kv_free(auth_kv *kv);

#endif
