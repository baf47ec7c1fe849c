/* xt_audit: see xt_audit.h. */
#include "xt_audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int xt_audit_match_user(json_t *rec, const char *user)
{
    const char *a = json_string_value(json_object_get(rec, "requested_by"));
    const char *b = json_string_value(json_object_get(rec, "user"));
    if (!user || !*user) return 1;
    return (a && strcmp(a, user) == 0) || (b && strcmp(b, user) == 0);
}

int xt_audit_read(natsConnection *nc, const xt_audit_query *q, json_t **out, char *err, size_t errlen)
{
    jsCtx *js = NULL;
    jsStreamInfo *si = NULL;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    size_t limit = q->limit ? q->limit : XT_AUDIT_LIMIT_DEFAULT;
    int64_t deadline = mono_ms() + (q->timeout_ms > 0 ? q->timeout_ms : 5000);
    json_t **ring = NULL;
    size_t head = 0, count = 0, scanned = 0;
    int rc = -1;

    *out = NULL;
    if (limit > XT_AUDIT_LIMIT_MAX) limit = XT_AUDIT_LIMIT_MAX;
    ring = calloc(limit, sizeof *ring);
    natsStatus st = ring ? natsConnection_JetStream(&js, nc, NULL) : NATS_NO_MEMORY;
    if (st == NATS_OK) st = js_GetStreamInfo(&si, js, XT_AUDIT_STREAM, NULL, &jerr);
    if (st != NATS_OK) {
        snprintf(err, errlen, "stream %s: %s%s", XT_AUDIT_STREAM, natsStatus_GetText(st),
                 jerr == JSStreamNotFoundErr ? " (no audit stream yet: no node has set up JetStream)" : "");
        goto out;
    }
    /* Nothing stored, or nothing since the start time: no consumer needed (and none would deliver). */
    if (si->State.Msgs == 0 || (q->since_ms > 0 && si->State.LastTime / 1000000 < q->since_ms)) {
        rc = 0;
        goto out;
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = XT_AUDIT_STREAM;
    so.Ordered = true;
    if (q->since_ms > 0) {
        so.Config.DeliverPolicy = js_DeliverByStartTime;
        so.Config.OptStartTime = q->since_ms * 1000000LL;
    } else {
        so.Config.DeliverPolicy = js_DeliverAll;
    }
    st = js_SubscribeSync(&sub, js, "xtask.audit.>", NULL, &so, &jerr);
    if (st != NATS_OK) {
        snprintf(err, errlen, "reading %s: %s (%d)", XT_AUDIT_STREAM, natsStatus_GetText(st), (int)jerr);
        goto out;
    }
    for (;;) {
        int64_t left = deadline - mono_ms();
        natsMsg *m = NULL;
        jsMsgMetaData *meta = NULL;
        if (left <= 0) {
            snprintf(err, errlen, "reading %s: timed out after %zu records", XT_AUDIT_STREAM, scanned);
            goto out;
        }
        st = natsSubscription_NextMsg(&m, sub, left);
        if (st != NATS_OK) {
            snprintf(err, errlen, "reading %s: %s after %zu records", XT_AUDIT_STREAM, natsStatus_GetText(st),
                     scanned);
            goto out;
        }
        uint64_t pending = 0, seq = 0;
        if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            pending = meta->NumPending;
            seq = meta->Sequence.Stream;
            jsMsgMetaData_Destroy(meta);
        }
        json_t *rec = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
        natsMsg_Destroy(m);
        scanned++;
        if (json_is_object(rec) && xt_audit_match_user(rec, q->user)) {
            json_object_set_new(rec, "seq", json_integer((json_int_t)seq));
            json_decref(ring[head]); /* the oldest kept record leaves the ring */
            ring[head] = rec;
            head = (head + 1) % limit;
            if (count < limit) count++;
        } else {
            json_decref(rec);
        }
        if (pending == 0 || scanned >= XT_AUDIT_SCAN_MAX) break;
    }
    rc = 0;
out:
    if (rc == 0) {
        *out = json_array();
        for (size_t i = 0; i < count; i++) {
            size_t k = (head + limit - count + i) % limit;
            json_array_append(*out, ring[k]);
        }
    }
    for (size_t i = 0; ring && i < limit; i++)
        json_decref(ring[i]);
    free(ring);
    if (sub) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
    jsStreamInfo_Destroy(si);
    jsCtx_Destroy(js);
    return rc;
}
