/*
 * auth_regulation: Authelia's regulator, in memory.
 *
 * Authelia looks at the user's most recent `max_retries` non-banned attempts, stops at the first
 * success, and bans when it found max_retries failures whose newest and oldest are less than
 * find_time apart: banned until newest + ban_time (Authelia's documented semantics; its SQL window
 * of now-ban_time would end the ban early, at oldest + ban_time). We keep exactly those attempts: a
 * ring of the last max_retries non-banned attempts per user name. The number of names is bounded;
 * when full, the name whose last attempt is oldest is forgotten.
 *
 * The server counts an attempt before checking it (auth_regulation_begin: checked for a ban and
 * recorded as a failure in one step on the loop thread, then turned into a success by its ticket
 * when the password or code was right): attempts in flight at once are each counted, so the
 * (max_retries+1)-th concurrent guess is refused before its hash is even computed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

typedef struct {
    char name[AUTH_NAME_MAX + 1];
    int64_t t[AUTH_MAX_RETRIES_MAX];    /* ring, t[head-1] newest */
    uint8_t ok[AUTH_MAX_RETRIES_MAX];   /* 0 failure, 1 success, 2 left out (auth_regulation_forget) */
    uint64_t seq[AUTH_MAX_RETRIES_MAX]; /* tickets of auth_regulation_begin */
    int count, head;
    int64_t last_ms;
    int32_t next;
    int used;
} reg_entry;

struct auth_regulation {
    int max_retries;
    int64_t find_ms, ban_ms;
    reg_entry *v;
    size_t cap, n;
    int32_t *buckets;
    size_t nbuckets;
    uint64_t seq; /* last ticket handed out */
};

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

auth_regulation *auth_regulation_new(int max_retries, int64_t find_time_ms, int64_t ban_time_ms,
                                     size_t capacity)
{
    auth_regulation *r = calloc(1, sizeof(*r));
    size_t i;
    if (!r) return NULL;
    if (max_retries > AUTH_MAX_RETRIES_MAX) max_retries = AUTH_MAX_RETRIES_MAX;
    r->max_retries = max_retries < 0 ? 0 : max_retries;
    r->find_ms = find_time_ms;
    r->ban_ms = ban_time_ms;
    r->cap = capacity ? capacity : 1;
    r->nbuckets = r->cap * 2;
    r->v = calloc(r->cap, sizeof(reg_entry));
    r->buckets = malloc(r->nbuckets * sizeof(int32_t));
    if (!r->v || !r->buckets) {
        auth_regulation_free(r);
        return NULL;
    }
    for (i = 0; i < r->nbuckets; i++)
        r->buckets[i] = -1;
    return r;
}

void auth_regulation_free(auth_regulation *r)
{
    if (!r) return;
    free(r->v);
    free(r->buckets);
    free(r);
}

static reg_entry *find(auth_regulation *r, const char *user)
{
    int32_t i = r->buckets[name_hash(user) % r->nbuckets];
    while (i >= 0) {
        if (strcmp(r->v[i].name, user) == 0) return &r->v[i];
        i = r->v[i].next;
    }
    return NULL;
}

static void unlink_entry(auth_regulation *r, int32_t idx)
{
    int32_t *pp = &r->buckets[name_hash(r->v[idx].name) % r->nbuckets];
    while (*pp >= 0) {
        if (*pp == idx) {
            *pp = r->v[idx].next;
            break;
        }
        pp = &r->v[*pp].next;
    }
    memset(&r->v[idx], 0, sizeof(reg_entry));
    r->n--;
}

static reg_entry *find_or_add(auth_regulation *r, const char *user)
{
    reg_entry *e = find(r, user);
    int32_t idx = -1;
    size_t i;
    uint32_t b;
    if (e) return e;
    if (r->n == r->cap) { /* forget the coldest name */
        int64_t oldest = INT64_MAX;
        for (i = 0; i < r->cap; i++)
            if (r->v[i].used && r->v[i].last_ms < oldest) {
                oldest = r->v[i].last_ms;
                idx = (int32_t)i;
            }
        unlink_entry(r, idx);
    } else {
        for (i = 0; i < r->cap; i++)
            if (!r->v[i].used) {
                idx = (int32_t)i;
                break;
            }
    }
    e = &r->v[idx];
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", user);
    e->used = 1;
    b = name_hash(e->name) % r->nbuckets;
    e->next = r->buckets[b];
    r->buckets[b] = idx;
    r->n++;
    return e;
}

int auth_regulation_banned(auth_regulation *r, const char *user, int64_t now_ms, int64_t *until_ms)
{
    reg_entry *e;
    int64_t newest = 0, oldest = 0;
    int fails = 0, k;
    char key[AUTH_NAME_MAX + 1];

    if (r->max_retries == 0) return 0;
    snprintf(key, sizeof(key), "%.*s", AUTH_NAME_MAX, user);
    e = find(r, key);
    if (!e) return 0;
    for (k = 0; k < e->count && fails < r->max_retries; k++) {
        int slot = (e->head - 1 - k + AUTH_MAX_RETRIES_MAX) % AUTH_MAX_RETRIES_MAX;
        if (e->ok[slot] == 1) break;
        if (e->ok[slot] == 2) continue;
        if (fails == 0) newest = e->t[slot];
        oldest = e->t[slot];
        fails++;
    }
    if (fails < r->max_retries) return 0;
    if (newest - oldest < r->find_ms) {
        if (newest + r->ban_ms > now_ms) {
            if (until_ms) *until_ms = newest + r->ban_ms;
            return 1;
        }
    }
    return 0;
}

static uint64_t record(auth_regulation *r, const char *user, int success, int64_t now_ms)
{
    reg_entry *e;
    char key[AUTH_NAME_MAX + 1];
    snprintf(key, sizeof(key), "%.*s", AUTH_NAME_MAX, user);
    e = find_or_add(r, key);
    e->t[e->head] = now_ms;
    e->ok[e->head] = (uint8_t)(success != 0);
    e->seq[e->head] = ++r->seq;
    e->head = (e->head + 1) % AUTH_MAX_RETRIES_MAX;
    if (e->count < AUTH_MAX_RETRIES_MAX) e->count++;
    e->last_ms = now_ms;
    return r->seq;
}

void auth_regulation_mark(auth_regulation *r, const char *user, int success, int banned, int64_t now_ms)
{
    if (r->max_retries == 0 || banned) return;
    record(r, user, success, now_ms);
}

int auth_regulation_begin(auth_regulation *r, const char *user, int64_t now_ms, int64_t *until_ms,
                          uint64_t *ticket)
{
    int banned = 0;
    *ticket = 0;
    if (r->max_retries == 0) return 0;
    banned = auth_regulation_banned(r, user, now_ms, until_ms);
    if (!banned) *ticket = record(r, user, 0, now_ms);
    return banned;
}

static void settle(auth_regulation *r, const char *user, uint64_t ticket, uint8_t to)
{
    reg_entry *e;
    char key[AUTH_NAME_MAX + 1];
    if (r->max_retries == 0 || ticket == 0) return;
    snprintf(key, sizeof(key), "%.*s", AUTH_NAME_MAX, user);
    e = find(r, key);
    for (int k = 0; e && k < e->count; k++) {
        int slot = (e->head - 1 - k + AUTH_MAX_RETRIES_MAX) % AUTH_MAX_RETRIES_MAX;
        if (e->seq[slot] == ticket) {
            e->ok[slot] = to;
            break;
        }
    }
}

void auth_regulation_succeed(auth_regulation *r, const char *user, uint64_t ticket)
{
    settle(r, user, ticket, 1);
}

void auth_regulation_forget(auth_regulation *r, const char *user, uint64_t ticket)
{
    settle(r, user, ticket, 2);
}
