/*
 * auth_session: the in-memory session table. A fixed pool of slots (capacity from the config),
 * chained hash buckets indexed by the id's first bytes (ids are random, so already uniform).
 * Only the event-loop thread touches it.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "auth.h"

struct auth_sessions {
    auth_session *v;
    size_t cap, count;
    int32_t *buckets;
    size_t nbuckets;
    int32_t free_head;
};

static size_t bucket_of(const auth_sessions *t, const uint8_t *id)
{
    uint64_t h;
    memcpy(&h, id, sizeof(h));
    return (size_t)(h % t->nbuckets);
}

auth_sessions *auth_sessions_new(size_t capacity)
{
    auth_sessions *t = calloc(1, sizeof(*t));
    size_t i;
    if (!t) return NULL;
    t->cap = capacity ? capacity : 1;
    t->nbuckets = t->cap;
    t->v = calloc(t->cap, sizeof(auth_session));
    t->buckets = malloc(t->nbuckets * sizeof(int32_t));
    if (!t->v || !t->buckets) {
        auth_sessions_free(t);
        return NULL;
    }
    for (i = 0; i < t->nbuckets; i++)
        t->buckets[i] = -1;
    for (i = 0; i < t->cap; i++)
        t->v[i].next = i + 1 < t->cap ? (int32_t)(i + 1) : -1;
    t->free_head = 0;
    return t;
}

void auth_sessions_free(auth_sessions *t)
{
    if (!t) return;
    if (t->v) OPENSSL_cleanse(t->v, t->cap * sizeof(auth_session));
    free(t->v);
    free(t->buckets);
    free(t);
}

auth_session *auth_sessions_find(auth_sessions *t, const uint8_t id[AUTH_SID_BYTES])
{
    int32_t i = t->buckets[bucket_of(t, id)];
    while (i >= 0) {
        /* compare all bytes: a timing difference must not tell how much of an id was right */
        if (auth_ct_equal(t->v[i].id, AUTH_SID_BYTES, id, AUTH_SID_BYTES)) return &t->v[i];
        i = t->v[i].next;
    }
    return NULL;
}

void auth_sessions_remove(auth_sessions *t, auth_session *s)
{
    int32_t idx = (int32_t)(s - t->v);
    int32_t *pp = &t->buckets[bucket_of(t, s->id)];
    while (*pp >= 0) {
        if (*pp == idx) {
            *pp = s->next;
            break;
        }
        pp = &t->v[*pp].next;
    }
    OPENSSL_cleanse(s, sizeof(*s));
    s->next = t->free_head;
    t->free_head = idx;
    t->count--;
}

int auth_session_alive(const auth_session *s, int64_t now_ms, int64_t inactivity_ms)
{
    if (now_ms >= s->expires_ms) return 0;
    if (!s->remember && inactivity_ms > 0 && now_ms - s->last_ms >= inactivity_ms) return 0;
    return 1;
}

size_t auth_sessions_sweep(auth_sessions *t, int64_t now_ms, int64_t inactivity_ms)
{
    size_t i, n = 0;
    for (i = 0; i < t->cap; i++)
        if (t->v[i].in_use && !auth_session_alive(&t->v[i], now_ms, inactivity_ms)) {
            auth_sessions_remove(t, &t->v[i]);
            n++;
        }
    return n;
}

static auth_session *take_slot(auth_sessions *t, int64_t now_ms)
{
    auth_session *s;
    if (t->free_head < 0) {
        size_t i, victim = 0;
        int64_t soonest = INT64_MAX;
        for (i = 0; i < t->cap; i++)
            if (t->v[i].in_use && t->v[i].expires_ms < soonest) {
                soonest = t->v[i].expires_ms;
                victim = i;
            }
        auth_sessions_remove(t, &t->v[victim]);
    }
    s = &t->v[t->free_head];
    t->free_head = s->next;
    memset(s, 0, sizeof(*s));
    s->in_use = 1;
    s->created_ms = s->last_ms = now_ms;
    t->count++;
    return s;
}

static void link_slot(auth_sessions *t, auth_session *s)
{
    size_t b = bucket_of(t, s->id);
    s->next = t->buckets[b];
    t->buckets[b] = (int32_t)(s - t->v);
}

auth_session *auth_sessions_create(auth_sessions *t, int64_t now_ms)
{
    uint8_t id[AUTH_SID_BYTES];
    auth_session *s;
    if (RAND_bytes(id, sizeof(id)) != 1) return NULL;
    if (auth_sessions_find(t, id)) /* 2^-256; still, never alias */
        return NULL;
    s = take_slot(t, now_ms);
    memcpy(s->id, id, sizeof(id));
    OPENSSL_cleanse(id, sizeof(id));
    link_slot(t, s);
    return s;
}

auth_session *auth_sessions_put(auth_sessions *t, const auth_session *src)
{
    auth_session *s = auth_sessions_find(t, src->id);
    if (s) auth_sessions_remove(t, s);
    s = take_slot(t, src->created_ms);
    memcpy(s->id, src->id, AUTH_SID_BYTES);
    memcpy(s->user, src->user, sizeof(s->user));
    s->user[AUTH_NAME_MAX] = '\0';
    s->level = src->level;
    s->remember = src->remember;
    s->created_ms = src->created_ms;
    s->last_ms = src->last_ms;
    s->expires_ms = src->expires_ms;
    s->synced_ms = src->synced_ms;
    link_slot(t, s);
    return s;
}

size_t auth_sessions_capacity(const auth_sessions *t)
{
    return t->cap;
}

auth_session *auth_sessions_slot(auth_sessions *t, size_t i)
{
    return i < t->cap && t->v[i].in_use ? &t->v[i] : NULL;
}

size_t auth_sessions_count(const auth_sessions *t)
{
    return t->count;
}
