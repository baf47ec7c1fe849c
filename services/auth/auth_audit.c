/* auth_audit: see auth_audit.h. */
#include "auth_audit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <nats/nats.h>

#include "xt_log.h"

#define AUDIT_QUEUE_MAX 4096
#define AUDIT_BUDGET_MS 10000 /* retries of one record (leader election, stream not there yet) */
#define AUDIT_FLUSH_MS 2000   /* what shutdown waits for the queue */

typedef struct rec {
    struct rec *next;
    char *json;
} rec;

struct auth_audit {
    natsConnection *nc;
    jsCtx *js;
    char subject[160], region[64];
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rec *head, *tail;
    size_t n;
    uint64_t dropped;
    int stopping;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void publish_one(auth_audit *a, const char *json)
{
    int64_t t0 = mono_ms(), backoff = 50;
    int attempts = 0;
    for (;;) {
        jsErrCode jerr = 0;
        jsPubAck *pa = NULL;
        natsStatus st = js_Publish(&pa, a->js, a->subject, json, (int)strlen(json), NULL, &jerr);
        jsPubAck_Destroy(pa);
        attempts++;
        if (st == NATS_OK) return;
        int stopping;
        pthread_mutex_lock(&a->mu);
        stopping = a->stopping;
        pthread_mutex_unlock(&a->mu);
        if (mono_ms() - t0 + backoff > (stopping ? 0 : AUDIT_BUDGET_MS)) {
            xt_warn("audit: record lost after %d attempts: %s (%d)", attempts, natsStatus_GetText(st),
                    (int)jerr);
            return;
        }
        nats_Sleep(backoff);
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
}

static void *writer_main(void *arg)
{
    auth_audit *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->head && !a->stopping)
            pthread_cond_wait(&a->cv, &a->mu);
        if (!a->head || a->stopping) break; /* stopping: what is left was given its time (free) */
        rec *r = a->head;
        a->head = r->next;
        if (!a->head) a->tail = NULL;
        a->n--;
        pthread_mutex_unlock(&a->mu);
        publish_one(a, r->json);
        free(r->json);
        free(r);
        pthread_mutex_lock(&a->mu);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

auth_audit *auth_audit_new(const xt_nats_conf *nc, const char *region, char *err, size_t errlen)
{
    auth_audit *a = calloc(1, sizeof(*a));
    natsStatus st = NATS_OK;
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    snprintf(a->region, sizeof(a->region), "%s", region);
    snprintf(a->subject, sizeof(a->subject), "xtask.audit.auth.%s", region);
    xt_nats_params np = {.name = "xtask-auth-audit",
                         .retry_connect = 1,
                         .creds_where = "session.nats.creds",
                         .tls_where = "session.nats.tls_ca"};
    char cerr[512];
    if (xt_nats_connect(nc, &np, &a->nc, cerr, sizeof(cerr)) != 0) {
        snprintf(err, errlen, "audit: %s", cerr);
        auth_audit_free(a);
        return NULL;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 2000;
    st = natsConnection_JetStream(&a->js, a->nc, &jo);
    if (st != NATS_OK) {
        snprintf(err, errlen, "audit: jetstream: %s", natsStatus_GetText(st));
        auth_audit_free(a);
        return NULL;
    }
    if (pthread_create(&a->thread, NULL, writer_main, a) != 0) {
        snprintf(err, errlen, "audit: cannot start the writer thread");
        auth_audit_free(a);
        return NULL;
    }
    a->started = 1;
    return a;
}

void auth_audit_event(auth_audit *a, const char *event, const char *user, const char *client,
                      const char *forwarded_for, int level, int64_t until_ms)
{
    if (!a) return;
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "type", "auth", "event", event, "user", user ? user : "",
                  "client", client ? client : "", "region", a->region, "ts_ms", (json_int_t)now_ms());
    if (o && forwarded_for && *forwarded_for)
        json_object_set_new(o, "forwarded_for", json_string(forwarded_for));
    if (o && level > 0) json_object_set_new(o, "level", json_integer(level));
    if (o && until_ms > 0) json_object_set_new(o, "until_ms", json_integer(until_ms));
    if (o)
        json_object_set_new(
            o, "outcome",
            json_string(strcmp(event, "login_failed") == 0 || strcmp(event, "second_factor_failed") == 0
                            ? "failed"
                        : strcmp(event, "ban") == 0 ? "banned"
                                                    : "ok"));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    rec *r = s ? calloc(1, sizeof(*r)) : NULL;
    if (!r) {
        free(s);
        return;
    }
    r->json = s;
    pthread_mutex_lock(&a->mu);
    if (a->n >= AUDIT_QUEUE_MAX) { /* NATS away for long: keep the newest, count the loss */
        rec *old = a->head;
        a->head = old->next;
        a->n--;
        if (!a->head) a->tail = NULL;
        free(old->json);
        free(old);
        if (a->dropped++ % 1000 == 0)
            xt_warn("audit: queue full, %llu records dropped", (unsigned long long)a->dropped);
    }
    if (a->tail)
        a->tail->next = r;
    else
        a->head = r;
    a->tail = r;
    a->n++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void auth_audit_free(auth_audit *a)
{
    if (!a) return;
    if (a->started) {
        /* give the queue a bounded time, then stop retrying and leave */
        int64_t deadline = mono_ms() + AUDIT_FLUSH_MS;
        for (;;) {
            pthread_mutex_lock(&a->mu);
            size_t n = a->n;
            pthread_mutex_unlock(&a->mu);
            if (n == 0 || mono_ms() >= deadline) break;
            nats_Sleep(10);
        }
        pthread_mutex_lock(&a->mu);
        a->stopping = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->thread, NULL);
    }
    if (a->n) xt_warn("audit: %zu records not stored at shutdown (NATS unreachable?)", a->n);
    while (a->head) {
        rec *r = a->head;
        a->head = r->next;
        free(r->json);
        free(r);
    }
    jsCtx_Destroy(a->js);
    if (a->nc) {
        natsConnection_Close(a->nc);
        natsConnection_Destroy(a->nc);
    }
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a);
}
