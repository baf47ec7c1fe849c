/*
 * xt_audit: read the audit trail (JetStream stream `xtask-audit`, subjects `xtask.audit.>`),
 * shared by `xtask audit` (CLI) and `GET /api/v1/audit` (web).
 *
 * Records are JSON objects written by the nodes (xtask.audit.task.<node>) and by auth
 * (xtask.audit.auth.<region>); docs/PROTOCOL.md lists their fields. Reading uses an ordered
 * ephemeral consumer from a start time, so the reader needs only the stream's info and
 * consumer-create API and its own inbox: no durable state, nothing to clean up.
 */
#ifndef XT_AUDIT_H
#define XT_AUDIT_H

#include <jansson.h>
#include <nats/nats.h>
#include <stddef.h>
#include <stdint.h>

#define XT_AUDIT_STREAM "xtask-audit"
#define XT_AUDIT_LIMIT_DEFAULT 100
#define XT_AUDIT_LIMIT_MAX 10000
#define XT_AUDIT_SCAN_MAX 200000 /* records looked at by one query, at most */

typedef struct {
    int64_t since_ms;   /* wall-clock ms: records stored at or after it (0 = from the start) */
    const char *user;   /* only records of this user (requested_by or user), NULL/"" = all */
    size_t limit;       /* the newest `limit` matching records (0 = XT_AUDIT_LIMIT_DEFAULT) */
    int64_t timeout_ms; /* bound of the whole read (0 = 5 s) */
} xt_audit_query;

/* Read the matching records, oldest first, into *out (a JSON array the caller decrefs). Each record
 * gets "seq" (its stream sequence). Returns 0, or -1 with a message naming the cause in err. */
int xt_audit_read(natsConnection *nc, const xt_audit_query *q, json_t **out, char *err, size_t errlen);

/* 1 if record `rec` matches `user` (NULL/"" matches every record). */
int xt_audit_match_user(json_t *rec, const char *user);

#endif
