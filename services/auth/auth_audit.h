/*
 * auth_audit: auth's side of the audit trail. Every sign-in, failed sign-in, second factor, logout
 * and ban goes, as one JSON record, to xtask.audit.auth.<region> (JetStream stream xtask-audit,
 * created by the nodes; docs/PROTOCOL.md "Audit trail").
 *
 * The loop thread only formats the record and queues it (bounded; when full the oldest record is
 * dropped and counted, never the loop blocked). One writer thread publishes with a JetStream ack
 * and retries (leader elections, the stream not created yet) for a bounded time per record.
 */
#ifndef AUTH_AUDIT_H
#define AUTH_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "xt_nats.h"

typedef struct auth_audit auth_audit;

/* Connect with `nc` (session.nats's settings: url, creds, TLS) in the background (auth starts
 * before NATS); records go to xtask.audit.auth.<region>. NULL and a message in err on failure. */
auth_audit *auth_audit_new(const xt_nats_conf *nc, const char *region, char *err, size_t errlen);

/* Queue one record: event ("login", "login_failed", "second_factor", "second_factor_failed",
 * "logout", "ban"), the user, the client address as the front saw it, the X-Forwarded-For chain
 * (may be NULL), the authentication level reached (0 when none), and for a ban its end (else 0). */
void auth_audit_event(auth_audit *a, const char *event, const char *user, const char *client,
                      const char *forwarded_for, int level, int64_t until_ms);

/* Flush what is queued (bounded wait), stop the writer, close. Accepts NULL. */
void auth_audit_free(auth_audit *a);

#endif
