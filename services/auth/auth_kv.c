/*
 * auth_kv: see auth_kv.h.
 *
 * Value: AES-256-GCM(key = SHA-256("xtask-auth kv v1" || secret)) of a small JSON record, stored
 * as nonce(12) || ciphertext || tag(16). A logout writes a tombstone record (deleted: true) rather
 * than a KV delete, since a delete carries only the key, and the key (an HMAC) cannot be mapped
 * back to the session id.
 *
 * Replays. Whoever can publish into the bucket could re-publish a session's old record (a valid
 * ciphertext) after its logout; with History 1 the tombstone would be gone and the old record would
 * win. So every record is chained: it carries, sealed, `prev`, the revision of the key it replaced
 * (0 for the first), and is written with compare-and-set (kvStore_Create / kvStore_Update with that
 * revision). The bucket keeps 2 entries per key, so a reader sees a record and its predecessor: a
 * record counts only when its predecessor's revision is its `prev`. A replayed record always lands
 * on top of something newer than its own `prev` (at least the original record itself), so it never
 * counts, however often it is replayed. Writers read the key first and never write over a tombstone:
 * a logout is final, also against our own late activity writes. Tombstones themselves need no chain
 * (they only ever remove access). A predecessor that ages out (the bucket's TTL, the longest session
 * lifetime) leaves a record alone that no longer counts: by then its session has expired.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <nats/nats.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth_kv.h"
#include "xt_log.h"
#include "xt_nats.h"

#define KV_QUEUE_MAX 4096
#define KV_VALUE_MAX 1024
#define KV_JS_WAIT_MS 2000     /* JetStream API requests of setup and writes */
#define KV_PUT_BUDGET_MS 10000 /* a write retries (leader elections) for this long, then is dropped */
#define KV_SETUP_RETRY_MS 1000 /* bucket not reachable yet (cluster forming): try again */
/* Lookups on a local miss (see auth_kv.h) */
#define KV_LOOKUP_INFLIGHT_MAX 64 /* queued or running; beyond: a miss at once */
#define KV_LOOKUP_RATE 200        /* lookups per second (token bucket) ... */
#define KV_LOOKUP_BURST 200       /* ... with this burst */
#define KV_NEG_SLOTS 4096         /* negative cache: direct-mapped, ids not found in the bucket */
#define KV_NEG_TTL_MS 2000
#define KV_HISTORY 2 /* a record and its predecessor: enough to check the chain (see above) */
/* The bucket's bound on the volume (the XTASK account requires one on every stream): some 50000
 * sessions of KV_HISTORY records; beyond it a new record is refused (nats.c makes buckets with
 * discard new), never an old one evicted. Three replicas of it fit beside the coordinator's streams
 * in the 2 GiB of a Fly machine's account. */
#define KV_MAX_BYTES (64LL << 20)

typedef struct wnode {
    struct wnode *next;
    auth_session s;
    int deleted;
} wnode;

typedef struct {
    h2o_multithread_message_t msg;
    auth_session s;
    int deleted;
    struct auth_kv_lookup *lk; /* a lookup's answer (else a watcher update) */
} kv_msg;

enum { LK_FOUND, LK_MISSING, LK_ERROR };

struct auth_kv_lookup {
    kv_msg m; /* the answer travels to the loop in here */
    struct auth_kv_lookup *next;
    uint8_t id[AUTH_SID_BYTES];
    int64_t deadline_ms; /* monotonic */
    int result;
    auth_kv_lookup_cb cb; /* NULL once cancelled (loop thread only) */
    void *cb_ud;
};

typedef struct {
    uint8_t id[AUTH_SID_BYTES];
    int64_t until_ms;
} neg_slot;

struct auth_kv {
    natsConnection *nc;
    jsCtx *js, *js_get;
    kvStore *store, *get_store; /* set once by setup, before `ready` */
    kvWatcher *watcher;
    atomic_int ready;
    char *bucket;
    int replicas;
    int64_t ttl_ms, lookup_timeout_ms, resync_ms;
    int setup_warned, resync_warned;
    /* watch thread only: the current watcher is a resync's, still replaying the bucket (until its
     * end-of-initial-values marker); the first watcher has delivered its initial values */
    int replaying, initial_done, fault_drop_live;
    uint64_t resync_logouts;    /* logout records seen by the current resync */
    atomic_ullong replays_seen; /* records refused by the chain check (watch and lookup threads) */
    uint8_t enc_key[32];
    char *secret;
    size_t secret_len;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_queue_t *queue;
    auth_kv_update_cb cb;
    void *ud;
    pthread_t watch_thread, write_thread, lookup_thread;
    int watch_started, write_started, lookup_started;
    pthread_mutex_t mu;
    pthread_cond_t cv, lk_cv;
    wnode *head, *tail;
    size_t qlen, dropped;
    struct auth_kv_lookup *lk_head, *lk_tail; /* under mu */
    volatile int stopping;
    /* loop thread only */
    int lk_inflight;
    double lk_tokens;
    int64_t lk_refill_ms;
    uint64_t lk_started, lk_found, lk_missing, lk_errors, lk_refused;
    neg_slot *neg;
};

static void key_of(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES], char out[65])
{
    uint8_t mac[32];
    unsigned ml = 0;
    HMAC(EVP_sha256(), kv->secret, (int)kv->secret_len, id, AUTH_SID_BYTES, mac, &ml);
    auth_hex_encode(mac, 32, out);
}

static long seal(auth_kv *kv, const char *pt, size_t ptlen, uint8_t *out, size_t outlen)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    long rc = -1;
    if (!c || ptlen + 28 > outlen || RAND_bytes(out, 12) != 1) goto out;
    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, kv->enc_key, out) != 1 ||
        EVP_EncryptUpdate(c, out + 12, &l1, (const uint8_t *)pt, (int)ptlen) != 1 ||
        EVP_EncryptFinal_ex(c, out + 12 + l1, &l2) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + l1 + l2) != 1)
        goto out;
    rc = 12 + l1 + l2 + 16;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

static long open_(auth_kv *kv, const uint8_t *in, size_t len, char *out, size_t outlen)
{
    EVP_CIPHER_CTX *c;
    int l1 = 0, l2 = 0;
    long rc = -1;
    if (len < 28 || len - 28 >= outlen) return -1;
    c = EVP_CIPHER_CTX_new();
    if (!c) return -1;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, kv->enc_key, in) != 1 ||
        EVP_DecryptUpdate(c, (uint8_t *)out, &l1, in + 12, (int)(len - 28)) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + len - 16)) != 1 ||
        EVP_DecryptFinal_ex(c, (uint8_t *)out + l1, &l2) != 1)
        goto out;
    out[l1 + l2] = '\0';
    rc = l1 + l2;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* negative cache (loop thread) */

static size_t neg_index(const uint8_t id[AUTH_SID_BYTES])
{
    uint32_t h;
    memcpy(&h, id, sizeof(h)); /* ids are random; a chosen id only evicts the chooser's own slot */
    return h % KV_NEG_SLOTS;
}

static int neg_has(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES], int64_t now)
{
    const neg_slot *sl = &kv->neg[neg_index(id)];
    return sl->until_ms > now && CRYPTO_memcmp(sl->id, id, AUTH_SID_BYTES) == 0;
}

static void neg_add(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES], int64_t now)
{
    neg_slot *sl = &kv->neg[neg_index(id)];
    memcpy(sl->id, id, AUTH_SID_BYTES);
    sl->until_ms = now + KV_NEG_TTL_MS;
}

static void neg_forget(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES])
{
    neg_slot *sl = &kv->neg[neg_index(id)];
    if (CRYPTO_memcmp(sl->id, id, AUTH_SID_BYTES) == 0) sl->until_ms = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* answers on the loop thread */

static void lookup_done(auth_kv *kv, struct auth_kv_lookup *lk)
{
    kv->lk_inflight--;
    switch (lk->result) {
    case LK_FOUND:
        kv->lk_found++;
        neg_forget(kv, lk->id);
        kv->cb(kv->ud, &lk->m.s, 0);
        break;
    case LK_MISSING:
        kv->lk_missing++;
        neg_add(kv, lk->id, auth_mono_ms());
        break;
    default:
        kv->lk_errors++; /* not cached: the next request asks again */
        break;
    }
    if (lk->cb) lk->cb(lk->cb_ud, lk->result == LK_FOUND);
    OPENSSL_cleanse(lk, sizeof(*lk));
    free(lk);
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    auth_kv *kv = H2O_STRUCT_FROM_MEMBER(auth_kv, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        kv_msg *km = H2O_STRUCT_FROM_MEMBER(kv_msg, msg, m);
        h2o_linklist_unlink(&m->link);
        if (km->lk) {
            lookup_done(kv, km->lk);
            continue;
        }
        if (!km->deleted) neg_forget(kv, km->s.id);
        kv->cb(kv->ud, &km->s, km->deleted);
        OPENSSL_cleanse(km, sizeof(*km));
        free(km);
    }
}

/* Decrypt and check one stored value. 0 and *s, *deleted, *prev filled; -1 when it is not ours. */
static int decode_value(auth_kv *kv, const void *val, int len, auth_session *s, int *deleted, uint64_t *prev)
{
    char pt[KV_VALUE_MAX];
    json_t *j;
    json_error_t je;
    const char *idhex, *user;
    long n = open_(kv, val, (size_t)len, pt, sizeof(pt));
    int rc = -1;

    if (n < 0) {
        xt_warn("session store: a value that does not decrypt (another session.secret?): ignored");
        return -1;
    }
    j = json_loadb(pt, (size_t)n, 0, &je);
    OPENSSL_cleanse(pt, sizeof(pt));
    if (!j) return -1;
    memset(s, 0, sizeof(*s));
    idhex = json_string_value(json_object_get(j, "id"));
    user = json_string_value(json_object_get(j, "user"));
    if (!idhex || !user || strlen(user) > AUTH_NAME_MAX ||
        auth_hex_decode(idhex, strlen(idhex), s->id, AUTH_SID_BYTES) < 0)
        goto out;
    memcpy(s->user, user, strlen(user) + 1);
    *deleted = json_is_true(json_object_get(j, "deleted"));
    json_int_t pv = json_integer_value(json_object_get(j, "prev"));
    *prev = pv > 0 ? (uint64_t)pv : 0;
    s->level = (uint8_t)json_integer_value(json_object_get(j, "level"));
    s->remember = (uint8_t)json_is_true(json_object_get(j, "remember"));
    s->created_ms = json_integer_value(json_object_get(j, "created"));
    s->last_ms = json_integer_value(json_object_get(j, "last"));
    s->expires_ms = json_integer_value(json_object_get(j, "expires"));
    s->synced_ms = s->last_ms;
    if (s->level > AUTH_LEVEL_TWO) goto out;
    rc = 0;
out:
    json_decref(j);
    return rc;
}

/* The key's last KV_HISTORY entries, oldest first (NATS_NOT_FOUND: none). */
static natsStatus key_history(kvStore *store, const char *key, int64_t timeout_ms, kvEntryList *list)
{
    kvWatchOptions o;
    kvWatchOptions_Init(&o);
    o.Timeout = timeout_ms > 0 ? timeout_ms : 1;
    memset(list, 0, sizeof(*list));
    return kvStore_History(list, store, key, &o);
}

enum { CHAIN_OK, CHAIN_SUPERSEDED, CHAIN_BROKEN };

/* Does the record at revision `rev` (sealed `prev`) chain to its predecessor in `h`? SUPERSEDED: a
 * newer entry exists and the predecessor is out of view (the newer entry decides). */
static int chain_check(const kvEntryList *h, uint64_t rev, uint64_t prev)
{
    for (int i = h->Count - 1; i >= 0; i--) {
        if (kvEntry_Revision(h->Entries[i]) != rev) continue;
        if (i > 0) return kvEntry_Revision(h->Entries[i - 1]) == prev ? CHAIN_OK : CHAIN_BROKEN;
        /* the oldest in view: with a newer entry, its own predecessor may have been pushed out, so it
         * cannot be judged (the newer entry decides); alone, it is the key's first record or nothing */
        if (h->Count > 1) return CHAIN_SUPERSEDED;
        return prev == 0 ? CHAIN_OK : CHAIN_BROKEN;
    }
    return CHAIN_SUPERSEDED; /* no longer in the bucket */
}

static void warn_replay(auth_kv *kv)
{
    unsigned long long n = atomic_fetch_add(&kv->replays_seen, 1) + 1;
    if (n % 100 == 1)
        xt_warn("session store: a record that does not chain to its predecessor (a replayed old record?): "
                "ignored (%llu so far)",
                n);
}

/* A live session record seen by the watcher: does it count? Also checks that it sits under its own
 * key (HMAC of its id). Watch thread. */
static int entry_counts(auth_kv *kv, kvEntry *e, const auth_session *s, uint64_t prev)
{
    char key[65];
    kvEntryList h;
    int rc = 0;
    key_of(kv, s->id, key);
    if (strcmp(key, kvEntry_Key(e)) != 0) {
        warn_replay(kv);
        return 0;
    }
    if (key_history(kv->store, key, KV_JS_WAIT_MS, &h) != NATS_OK) return 0; /* a lookup may find it later */
    switch (chain_check(&h, kvEntry_Revision(e), prev)) {
    case CHAIN_OK:
        rc = 1;
        break;
    case CHAIN_BROKEN:
        warn_replay(kv);
        break;
    default:
        break;
    }
    kvEntryList_Destroy(&h);
    return rc;
}

static void handle_entry(auth_kv *kv, kvEntry *e)
{
    uint64_t prev = 0;
    kv_msg *km;
    if (kvEntry_Operation(e) != kvOp_Put)
        return; /* TTL purges and deletes: the sessions expire locally on their own */
    /* XT_AUTH_FAULT_DROP_WATCH=1 (tests only): live updates are lost, as nats.c 3.4.1's watcher loses
     * them across a leader change; the initial values and the resyncs still arrive */
    if (kv->fault_drop_live && kv->initial_done && !kv->replaying) return;
    km = calloc(1, sizeof(*km));
    if (!km) return;
    if (decode_value(kv, kvEntry_Value(e), kvEntry_ValueLen(e), &km->s, &km->deleted, &prev) < 0 ||
        (kv->replaying && !km->deleted) || (!km->deleted && !entry_counts(kv, e, &km->s, prev))) {
        /* a resync applies logouts only: a live session is found by a lookup on a local miss anyway,
         * and replaying it could bring back one this instance logged out while its write failed */
        OPENSSL_cleanse(km, sizeof(*km));
        free(km);
        return;
    }
    if (kv->replaying) kv->resync_logouts++;
    h2o_multithread_send_message(&kv->receiver, &km->msg);
}

/* Read the whole bucket again through a fresh watcher, every session.nats.resync_interval: nats.c
 * 3.4.1's watcher can lose entries when the bucket's leader or replicas change, and a lost logout
 * would leave that session valid on this instance until it expires. Bounds that to the interval. */
static void resync(auth_kv *kv)
{
    kvWatcher *w = NULL, *old;
    natsStatus st = kvStore_WatchAll(&w, kv->store, NULL);
    if (st != NATS_OK) {
        if (!kv->resync_warned++)
            xt_warn("session store: re-reading %s: %s (retried every %lld ms)", kv->bucket,
                    natsStatus_GetText(st), (long long)kv->resync_ms);
        return;
    }
    pthread_mutex_lock(&kv->mu); /* auth_kv_free stops the current watcher under mu */
    if (kv->stopping) {
        pthread_mutex_unlock(&kv->mu);
        kvWatcher_Destroy(w);
        return;
    }
    old = kv->watcher;
    kv->watcher = w;
    pthread_mutex_unlock(&kv->mu);
    kvWatcher_Destroy(old);
    kv->replaying = 1;
    kv->resync_warned = 0;
    kv->resync_logouts = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* bucket setup (retried from the watch thread until it works: a cluster may still be forming) */

/* The bucket's stream as the chain needs it (see the top of this file), on a new bucket and an old one:
 * KV_HISTORY entries per key; no rollup (a replayed record sent with `Nats-Rollup: sub` would wipe
 * its predecessors and stand alone), no purge or delete through the stream API (same effect). Then an
 * existing bucket with another replica count is scaled to the configured one (nats-server 2.9 moves
 * the data). A failure is logged; the bucket is used as it is. */
static void ensure_config(auth_kv *kv)
{
    char name[256];
    jsStreamInfo *si = NULL, *si2 = NULL;
    jsErrCode jerr = 0;
    natsStatus st;
    snprintf(name, sizeof(name), "KV_%s", kv->bucket);
    if (js_GetStreamInfo(&si, kv->js, name, NULL, &jerr) != NATS_OK || !si) return;
    jsStreamConfig *c = si->Config;
    if (c && (c->MaxMsgsPerSubject < KV_HISTORY || c->AllowRollup || !c->DenyPurge || !c->DenyDelete ||
              c->MaxBytes <= 0)) {
        c->MaxMsgsPerSubject = c->MaxMsgsPerSubject < KV_HISTORY ? KV_HISTORY : c->MaxMsgsPerSubject;
        if (c->MaxBytes <= 0) c->MaxBytes = KV_MAX_BYTES;
        c->AllowRollup = false;
        c->DenyPurge = true;
        c->DenyDelete = true;
        st = js_UpdateStream(&si2, kv->js, c, NULL, &jerr);
        if (st == NATS_OK)
            xt_info("session store: bucket %s: %d entries per key, no rollup, no purge (chained records)",
                    kv->bucket, KV_HISTORY);
        else
            xt_error("session store: bucket %s: cannot set %d entries per key, no rollup, no purge: %s (%d)",
                     kv->bucket, KV_HISTORY, natsStatus_GetText(st), (int)jerr);
        jsStreamInfo_Destroy(si2);
        si2 = NULL;
    }
    if (c && c->Replicas != kv->replicas) {
        int64_t was = c->Replicas;
        c->Replicas = kv->replicas;
        st = js_UpdateStream(&si2, kv->js, c, NULL, &jerr);
        if (st == NATS_OK)
            xt_info("session store: bucket %s scaled from %lld to %d replicas", kv->bucket, (long long)was,
                    kv->replicas);
        else
            xt_warn(
                "session store: bucket %s has %lld replicas, cannot scale to %d: %s (%d); using it as it is",
                kv->bucket, (long long)was, kv->replicas, natsStatus_GetText(st), (int)jerr);
        jsStreamInfo_Destroy(si2);
    }
    jsStreamInfo_Destroy(si);
}

static natsStatus bucket_setup(auth_kv *kv, char *err, size_t errlen)
{
    kvStore *store = NULL, *get_store = NULL;
    natsStatus st = js_KeyValue(&store, kv->js, kv->bucket);
    if (st != NATS_OK) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = kv->bucket;
        kc.History = KV_HISTORY;
        kc.TTL = kv->ttl_ms * 1000000LL;
        kc.MaxValueSize = KV_VALUE_MAX;
        kc.MaxBytes = KV_MAX_BYTES;
        kc.Replicas = kv->replicas;
        if ((st = js_CreateKeyValue(&store, kv->js, &kc)) != NATS_OK &&
            (st = js_KeyValue(&store, kv->js, kv->bucket)) != NATS_OK) {
            snprintf(err, errlen, "bucket %s: %s", kv->bucket, natsStatus_GetText(st));
            return st;
        }
    }
    ensure_config(kv);
    if ((st = js_KeyValue(&get_store, kv->js_get, kv->bucket)) != NATS_OK ||
        (st = kvStore_WatchAll(&kv->watcher, store, NULL)) != NATS_OK) {
        snprintf(err, errlen, "watch %s: %s", kv->bucket, natsStatus_GetText(st));
        kvStore_Destroy(get_store);
        kvStore_Destroy(store);
        return st;
    }
    kv->store = store;
    kv->get_store = get_store;
    atomic_store(&kv->ready, 1);
    return NATS_OK;
}

static void *watch_main(void *arg)
{
    auth_kv *kv = arg;
    while (!kv->stopping && !atomic_load(&kv->ready)) {
        char err[256];
        if (bucket_setup(kv, err, sizeof(err)) == NATS_OK) {
            xt_info("session store: bucket %s ready (%d replicas)", kv->bucket, kv->replicas);
            break;
        }
        if (!kv->setup_warned++) xt_warn("session store: %s; retrying every %d ms", err, KV_SETUP_RETRY_MS);
        for (int i = 0; i < KV_SETUP_RETRY_MS / 100 && !kv->stopping; i++)
            nats_Sleep(100);
    }
    int64_t next_resync = auth_mono_ms() + kv->resync_ms;
    while (!kv->stopping) {
        kvEntry *e = NULL;
        if (auth_mono_ms() >= next_resync) {
            resync(kv);
            next_resync = auth_mono_ms() + kv->resync_ms;
        }
        int64_t wait = next_resync - auth_mono_ms();
        natsStatus st = kvWatcher_Next(&e, kv->watcher, wait < 1 ? 1 : wait > 500 ? 500 : wait);
        if (st == NATS_TIMEOUT) continue;
        if (st != NATS_OK) {
            if (kv->stopping) break;
            nats_Sleep(100);
            continue;
        }
        if (e) {
            handle_entry(kv, e);
            kvEntry_Destroy(e);
        } else { /* the end of the initial values */
            if (kv->replaying)
                xt_debug("session store: re-read %s: %llu logout records", kv->bucket,
                         (unsigned long long)kv->resync_logouts);
            kv->initial_done = 1;
            kv->replaying = 0;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* writes */

/* Seal a record of w chained to `prev` into val. Its length, or -1. */
static long seal_record(auth_kv *kv, const wnode *w, uint64_t prev, uint8_t *val, size_t vallen)
{
    char hex[AUTH_SID_HEX + 1];
    json_t *j;
    char *pt;
    long n;
    auth_hex_encode(w->s.id, AUTH_SID_BYTES, hex);
    j = json_pack("{s:s,s:s,s:i,s:b,s:I,s:I,s:I,s:b,s:I}", "id", hex, "user", w->s.user, "level",
                  (int)w->s.level, "remember", (int)w->s.remember, "created", (json_int_t)w->s.created_ms,
                  "last", (json_int_t)w->s.last_ms, "expires", (json_int_t)w->s.expires_ms, "deleted",
                  w->deleted, "prev", (json_int_t)prev);
    OPENSSL_cleanse(hex, sizeof(hex));
    pt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!pt) return -1;
    n = seal(kv, pt, strlen(pt), val, vallen);
    OPENSSL_cleanse(pt, strlen(pt));
    free(pt);
    return n;
}

enum { PUT_DONE, PUT_RETRY, PUT_REFUSED };

/* One attempt at a session record: read the key, refuse to write over a logout or a record that does
 * not chain, else compare-and-set on the revision read. A tombstone is simply put: it always wins. */
static int put_once(auth_kv *kv, const wnode *w, const char *key, natsStatus *st)
{
    uint8_t val[KV_VALUE_MAX];
    kvEntryList h;
    long n;
    int rc = PUT_RETRY;
    if (w->deleted) {
        n = seal_record(kv, w, 0, val, sizeof(val));
        if (n < 0) return PUT_REFUSED;
        *st = kvStore_Put(NULL, kv->store, key, val, (int)n);
        OPENSSL_cleanse(val, sizeof(val));
        return *st == NATS_OK ? PUT_DONE : PUT_RETRY;
    }
    *st = key_history(kv->store, key, KV_JS_WAIT_MS, &h);
    if (*st == NATS_NOT_FOUND) {
        n = seal_record(kv, w, 0, val, sizeof(val));
        if (n < 0) return PUT_REFUSED;
        *st = kvStore_Create(NULL, kv->store, key, val, (int)n); /* fails if someone wrote first: retry */
        OPENSSL_cleanse(val, sizeof(val));
        return *st == NATS_OK ? PUT_DONE : PUT_RETRY;
    }
    if (*st != NATS_OK) return PUT_RETRY;
    kvEntry *last = h.Entries[h.Count - 1];
    auth_session cur;
    int deleted = 0, tomb = 0;
    uint64_t prev = 0;
    for (int i = 0; i < h.Count && !tomb; i++) {
        int d = 0;
        uint64_t p;
        tomb = kvEntry_Operation(h.Entries[i]) != kvOp_Put ||
               (decode_value(kv, kvEntry_Value(h.Entries[i]), kvEntry_ValueLen(h.Entries[i]), &cur, &d, &p) ==
                    0 &&
                d);
    }
    if (tomb) {
        rc = PUT_REFUSED; /* logged out (or deleted): final */
    } else if (decode_value(kv, kvEntry_Value(last), kvEntry_ValueLen(last), &cur, &deleted, &prev) < 0 ||
               CRYPTO_memcmp(cur.id, w->s.id, AUTH_SID_BYTES) != 0 ||
               chain_check(&h, kvEntry_Revision(last), prev) != CHAIN_OK) {
        warn_replay(kv);
        rc = PUT_REFUSED; /* the key holds something we did not write: never build on it */
    } else if ((n = seal_record(kv, w, kvEntry_Revision(last), val, sizeof(val))) < 0) {
        rc = PUT_REFUSED;
    } else {
        *st = kvStore_Update(NULL, kv->store, key, val, (int)n, kvEntry_Revision(last));
        rc = *st == NATS_OK ? PUT_DONE : PUT_RETRY; /* another write came first: read again */
    }
    OPENSSL_cleanse(&cur, sizeof(cur));
    OPENSSL_cleanse(val, sizeof(val));
    kvEntryList_Destroy(&h);
    return rc;
}

static void write_one(auth_kv *kv, wnode *w)
{
    char key[65];
    natsStatus st = NATS_OK;
    int64_t t0 = auth_mono_ms(), backoff = 50;
    int attempts = 0;

    key_of(kv, w->s.id, key);
    /* Right after a cluster peer dies the bucket's leader is re-elected: for a second or two a put
     * gets "no responders" or times out; a compare-and-set may also lose to another instance's
     * write. Retry with a bounded back-off; one warning per write. */
    for (;;) {
        int rc =
            atomic_load(&kv->ready) ? put_once(kv, w, key, &st) : (st = NATS_NOT_YET_CONNECTED, PUT_RETRY);
        attempts++;
        if (rc == PUT_REFUSED) {
            xt_debug("session store: a session record not written (logged out or not ours)");
            break;
        }
        if (rc == PUT_DONE) {
            if (attempts > 1)
                xt_info("session store: put went through after %d attempts (%lld ms)", attempts,
                        (long long)(auth_mono_ms() - t0));
            break;
        }
        if (kv->stopping || auth_mono_ms() - t0 + backoff > KV_PUT_BUDGET_MS) {
            xt_warn("session store: put failed after %d attempts: %s", attempts, natsStatus_GetText(st));
            break;
        }
        if (attempts == 1) xt_warn("session store: put failed: %s; retrying", natsStatus_GetText(st));
        nats_Sleep(backoff);
        backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
    }
}

static void *write_main(void *arg)
{
    auth_kv *kv = arg;
    for (;;) {
        wnode *w;
        pthread_mutex_lock(&kv->mu);
        while (!kv->head && !kv->stopping)
            pthread_cond_wait(&kv->cv, &kv->mu);
        if (!kv->head) {
            pthread_mutex_unlock(&kv->mu);
            return NULL;
        }
        w = kv->head;
        kv->head = w->next;
        if (!kv->head) kv->tail = NULL;
        kv->qlen--;
        pthread_mutex_unlock(&kv->mu);
        write_one(kv, w);
        OPENSSL_cleanse(w, sizeof(*w));
        free(w);
    }
}

static void enqueue(auth_kv *kv, const auth_session *s, int deleted)
{
    wnode *w = calloc(1, sizeof(*w));
    if (!w) return;
    w->s = *s;
    w->deleted = deleted;
    pthread_mutex_lock(&kv->mu);
    if (kv->qlen >= KV_QUEUE_MAX) {
        kv->dropped++;
        pthread_mutex_unlock(&kv->mu);
        free(w);
        return;
    }
    if (kv->tail)
        kv->tail->next = w;
    else
        kv->head = w;
    kv->tail = w;
    kv->qlen++;
    pthread_cond_signal(&kv->cv);
    pthread_mutex_unlock(&kv->mu);
}

void auth_kv_put(auth_kv *kv, const auth_session *s)
{
    enqueue(kv, s, 0);
}

void auth_kv_delete(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES])
{
    auth_session s;
    memset(&s, 0, sizeof(s));
    memcpy(s.id, id, AUTH_SID_BYTES);
    s.expires_ms = auth_now_ms();
    enqueue(kv, &s, 1);
}

/* ------------------------------------------------------------------------------------------ */
/* lookups on a local miss: one thread, each lookup bounded by its own deadline */

static void lookup_one(auth_kv *kv, struct auth_kv_lookup *lk)
{
    char key[65];
    int64_t backoff = 20;
    lk->result = LK_ERROR;
    if (!atomic_load(&kv->ready)) return;
    key_of(kv, lk->id, key);
    while (!kv->stopping && auth_mono_ms() < lk->deadline_ms) {
        kvEntryList h;
        natsStatus st = key_history(kv->get_store, key, lk->deadline_ms - auth_mono_ms(), &h);
        if (st == NATS_NOT_FOUND) {
            lk->result = LK_MISSING;
            return;
        }
        if (st == NATS_OK) {
            kvEntry *e = h.Entries[h.Count - 1];
            int deleted = 0;
            uint64_t prev = 0;
            lk->result = LK_MISSING; /* logged out, expired, not ours or not chained */
            if (kvEntry_Operation(e) == kvOp_Put &&
                decode_value(kv, kvEntry_Value(e), kvEntry_ValueLen(e), &lk->m.s, &deleted, &prev) == 0 &&
                CRYPTO_memcmp(lk->m.s.id, lk->id, AUTH_SID_BYTES) == 0 && !deleted &&
                lk->m.s.expires_ms > auth_now_ms()) {
                if (chain_check(&h, kvEntry_Revision(e), prev) == CHAIN_OK)
                    lk->result = LK_FOUND;
                else
                    warn_replay(kv);
            }
            kvEntryList_Destroy(&h);
            return;
        }
        /* no responders / timeout while a leader is elected: again, within the deadline */
        if (auth_mono_ms() + backoff >= lk->deadline_ms) return;
        nats_Sleep(backoff);
        backoff *= 2;
    }
}

static void *lookup_main(void *arg)
{
    auth_kv *kv = arg;
    for (;;) {
        struct auth_kv_lookup *lk;
        pthread_mutex_lock(&kv->mu);
        int stopping;
        while (!kv->lk_head && !kv->stopping)
            pthread_cond_wait(&kv->lk_cv, &kv->mu);
        if (!kv->lk_head) {
            pthread_mutex_unlock(&kv->mu);
            return NULL;
        }
        lk = kv->lk_head;
        kv->lk_head = lk->next;
        if (!kv->lk_head) kv->lk_tail = NULL;
        stopping = kv->stopping;
        pthread_mutex_unlock(&kv->mu);
        /* on shutdown every queued lookup still gets its answer (an error): a request may wait on it */
        if (stopping)
            lk->result = LK_ERROR;
        else
            lookup_one(kv, lk);
        lk->m.lk = lk;
        h2o_multithread_send_message(&kv->receiver, &lk->m.msg);
    }
}

auth_kv_lookup *auth_kv_lookup_start(auth_kv *kv, const uint8_t id[AUTH_SID_BYTES], auth_kv_lookup_cb cb,
                                     void *ud)
{
    int64_t now = auth_mono_ms();
    struct auth_kv_lookup *lk;

    if (!atomic_load(&kv->ready) || neg_has(kv, id, now)) return NULL;
    if (kv->lk_refill_ms == 0) kv->lk_refill_ms = now;
    kv->lk_tokens += (double)(now - kv->lk_refill_ms) * KV_LOOKUP_RATE / 1000.0;
    if (kv->lk_tokens > KV_LOOKUP_BURST) kv->lk_tokens = KV_LOOKUP_BURST;
    kv->lk_refill_ms = now;
    if (kv->lk_tokens < 1 || kv->lk_inflight >= KV_LOOKUP_INFLIGHT_MAX) {
        if (kv->lk_refused++ % 1000 == 0)
            xt_warn("session store: lookups on local misses over their bound (%d/s, %d in flight): "
                    "answered as unknown sessions (%llu so far)",
                    KV_LOOKUP_RATE, KV_LOOKUP_INFLIGHT_MAX, (unsigned long long)kv->lk_refused);
        return NULL;
    }
    if (!(lk = calloc(1, sizeof(*lk)))) return NULL;
    kv->lk_tokens -= 1;
    kv->lk_inflight++;
    kv->lk_started++;
    memcpy(lk->id, id, AUTH_SID_BYTES);
    lk->deadline_ms = now + kv->lookup_timeout_ms;
    lk->cb = cb;
    lk->cb_ud = ud;
    pthread_mutex_lock(&kv->mu);
    if (kv->lk_tail)
        kv->lk_tail->next = lk;
    else
        kv->lk_head = lk;
    kv->lk_tail = lk;
    pthread_cond_signal(&kv->lk_cv);
    pthread_mutex_unlock(&kv->mu);
    return lk;
}

void auth_kv_lookup_cancel(auth_kv_lookup *lk)
{
    if (lk) lk->cb = NULL;
}

/* ------------------------------------------------------------------------------------------ */

auth_kv *auth_kv_new(const auth_config *cfg, int64_t ttl_ms, h2o_multithread_queue_t *queue,
                     auth_kv_update_cb cb, void *ud, char *err, size_t errlen)
{
    auth_kv *kv = calloc(1, sizeof(*kv));
    natsStatus st;
    EVP_MD_CTX *md = NULL;
    unsigned mdl = 0;
    jsOptions jo;

    if (!kv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&kv->mu, NULL);
    pthread_cond_init(&kv->cv, NULL);
    pthread_cond_init(&kv->lk_cv, NULL);
    kv->cb = cb;
    kv->ud = ud;
    kv->ttl_ms = ttl_ms;
    kv->replicas = cfg->kv_replicas > 0 ? cfg->kv_replicas : 1;
    kv->lookup_timeout_ms = cfg->kv_lookup_timeout_ms > 0 ? cfg->kv_lookup_timeout_ms : 1000;
    kv->resync_ms = cfg->kv_resync_ms > 0 ? cfg->kv_resync_ms : 30000;
    const char *fault = getenv("XT_AUTH_FAULT_DROP_WATCH");
    kv->fault_drop_live = fault && strcmp(fault, "1") == 0;
    if (kv->fault_drop_live)
        xt_warn("session store: XT_AUTH_FAULT_DROP_WATCH=1: live updates are dropped (tests only)");
    kv->lk_tokens = KV_LOOKUP_BURST;
    kv->neg = calloc(KV_NEG_SLOTS, sizeof(*kv->neg));
    kv->bucket = strdup(cfg->kv_bucket);
    kv->secret_len = strlen(cfg->secret);
    kv->secret = strdup(cfg->secret);
    if (!kv->neg || !kv->bucket) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    md = EVP_MD_CTX_new();
    if (!kv->secret || !md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, "xtask-auth kv v1", 16) != 1 ||
        EVP_DigestUpdate(md, cfg->secret, kv->secret_len) != 1 ||
        EVP_DigestFinal_ex(md, kv->enc_key, &mdl) != 1) {
        EVP_MD_CTX_free(md);
        snprintf(err, errlen, "cannot derive the store key");
        goto fail;
    }
    EVP_MD_CTX_free(md);
    h2o_multithread_register_receiver(queue, &kv->receiver, on_messages);
    kv->queue = queue;
    /* the first connection must succeed (the supervisor restarts us otherwise); then reconnects
     * forever under xt_nats's policy */
    xt_nats_params np = {
        .name = "xtask-auth", .creds_where = "session.nats.creds", .tls_where = "session.nats.tls_ca"};
    if (xt_nats_connect(&cfg->kv_nats, &np, &kv->nc, err, errlen) != 0) goto fail;
    jsOptions_Init(&jo);
    jo.Wait = KV_JS_WAIT_MS;
    if ((st = natsConnection_JetStream(&kv->js, kv->nc, &jo)) != NATS_OK) {
        snprintf(err, errlen, "jetstream: %s", natsStatus_GetText(st));
        goto fail;
    }
    /* lookups: a context whose requests give up within the lookup's own bound */
    jsOptions_Init(&jo);
    jo.Wait = kv->lookup_timeout_ms;
    if ((st = natsConnection_JetStream(&kv->js_get, kv->nc, &jo)) != NATS_OK) {
        snprintf(err, errlen, "jetstream: %s", natsStatus_GetText(st));
        goto fail;
    }
    /* Set the bucket up now if JetStream answers; else (a cluster still forming, an R3 bucket
     * without 3 servers yet) the watch thread keeps trying, and the service runs meanwhile with
     * local sessions only. */
    if (bucket_setup(kv, err, errlen) != NATS_OK) {
        xt_warn("session store: %s; retrying every %d ms", err, KV_SETUP_RETRY_MS);
        kv->setup_warned = 1;
    }
    if (pthread_create(&kv->watch_thread, NULL, watch_main, kv) != 0) goto fail;
    kv->watch_started = 1;
    if (pthread_create(&kv->write_thread, NULL, write_main, kv) != 0) goto fail;
    kv->write_started = 1;
    if (pthread_create(&kv->lookup_thread, NULL, lookup_main, kv) != 0) goto fail;
    kv->lookup_started = 1;
    char url[XT_NATS_URL_MAX];
    xt_info("session store: NATS KV bucket %s on %s (%d replicas, lookups on a miss within %lld ms)",
            cfg->kv_bucket, xt_nats_url_redact(cfg->kv_nats.url, url, sizeof url), kv->replicas,
            (long long)kv->lookup_timeout_ms);
    return kv;
fail:
    auth_kv_free(kv);
    return NULL;
}

void auth_kv_free(auth_kv *kv)
{
    if (!kv) return;
    kv->stopping = 1;
    pthread_mutex_lock(&kv->mu);
    pthread_cond_broadcast(&kv->cv);
    pthread_cond_broadcast(&kv->lk_cv);
    pthread_mutex_unlock(&kv->mu);
    if (kv->write_started) pthread_join(kv->write_thread, NULL);
    if (kv->lookup_started) pthread_join(kv->lookup_thread, NULL);
    pthread_mutex_lock(&kv->mu);
    if (kv->watcher) kvWatcher_Stop(kv->watcher);
    pthread_mutex_unlock(&kv->mu);
    if (kv->watch_started) pthread_join(kv->watch_thread, NULL);
    kvWatcher_Destroy(kv->watcher);
    kvStore_Destroy(kv->get_store);
    kvStore_Destroy(kv->store);
    jsCtx_Destroy(kv->js_get);
    jsCtx_Destroy(kv->js);
    natsConnection_Destroy(kv->nc);
    if (kv->queue) {
        if (!h2o_linklist_is_empty(&kv->receiver._messages))
            return; /* updates still queued for the loop: leave the rest to the process exit */
        h2o_multithread_unregister_receiver(kv->queue, &kv->receiver);
    }
    while (kv->head) {
        wnode *w = kv->head;
        kv->head = w->next;
        free(w);
    }
    if (kv->secret) {
        OPENSSL_cleanse(kv->secret, kv->secret_len);
        free(kv->secret);
    }
    free(kv->bucket);
    free(kv->neg);
    OPENSSL_cleanse(kv->enc_key, sizeof(kv->enc_key));
    pthread_mutex_destroy(&kv->mu);
    pthread_cond_destroy(&kv->cv);
    pthread_cond_destroy(&kv->lk_cv);
    free(kv);
}
