/*
 * auth_kv: see auth_kv.h.
 *
 * Value: AES-256-GCM(key = SHA-256("xtask-auth kv v1" || secret)) of a small JSON record, stored
 * as nonce(12) || ciphertext || tag(16). A logout writes a tombstone record (deleted: true) rather
 * than a KV delete, since a delete carries only the key, and the key (an HMAC) cannot be mapped
 * back to the session id.
 */
#include <pthread.h>
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

#define KV_QUEUE_MAX 4096
#define KV_VALUE_MAX 1024

typedef struct wnode {
    struct wnode *next;
    auth_session s;
    int deleted;
} wnode;

typedef struct {
    h2o_multithread_message_t msg;
    auth_session s;
    int deleted;
} kv_msg;

struct auth_kv {
    natsConnection *nc;
    jsCtx *js;
    kvStore *store;
    kvWatcher *watcher;
    uint8_t enc_key[32];
    char *secret;
    size_t secret_len;
    h2o_multithread_receiver_t receiver;
    h2o_multithread_queue_t *queue;
    auth_kv_update_cb cb;
    void *ud;
    pthread_t watch_thread, write_thread;
    int watch_started, write_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wnode *head, *tail;
    size_t qlen, dropped;
    volatile int stopping;
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

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    auth_kv *kv = H2O_STRUCT_FROM_MEMBER(auth_kv, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        kv_msg *km = H2O_STRUCT_FROM_MEMBER(kv_msg, msg, m);
        h2o_linklist_unlink(&m->link);
        kv->cb(kv->ud, &km->s, km->deleted);
        OPENSSL_cleanse(km, sizeof(*km));
        free(km);
    }
}

static void handle_entry(auth_kv *kv, kvEntry *e)
{
    char pt[KV_VALUE_MAX];
    json_t *j = NULL;
    json_error_t je;
    kv_msg *km = NULL;
    const char *idhex, *user;
    long n;

    if (kvEntry_Operation(e) != kvOp_Put)
        return; /* TTL purges and deletes: the sessions expire locally on their own */
    n = open_(kv, kvEntry_Value(e), (size_t)kvEntry_ValueLen(e), pt, sizeof(pt));
    if (n < 0) {
        xt_warn("session store: a value that does not decrypt (another session.secret?): ignored");
        return;
    }
    j = json_loadb(pt, (size_t)n, 0, &je);
    OPENSSL_cleanse(pt, sizeof(pt));
    km = calloc(1, sizeof(*km));
    if (!j || !km) goto out;
    idhex = json_string_value(json_object_get(j, "id"));
    user = json_string_value(json_object_get(j, "user"));
    if (!idhex || !user || strlen(user) > AUTH_NAME_MAX ||
        auth_hex_decode(idhex, strlen(idhex), km->s.id, AUTH_SID_BYTES) < 0)
        goto out;
    memcpy(km->s.user, user, strlen(user) + 1);
    km->deleted = json_is_true(json_object_get(j, "deleted"));
    km->s.level = (uint8_t)json_integer_value(json_object_get(j, "level"));
    km->s.remember = (uint8_t)json_is_true(json_object_get(j, "remember"));
    km->s.created_ms = json_integer_value(json_object_get(j, "created"));
    km->s.last_ms = json_integer_value(json_object_get(j, "last"));
    km->s.expires_ms = json_integer_value(json_object_get(j, "expires"));
    km->s.synced_ms = km->s.last_ms;
    if (km->s.level > AUTH_LEVEL_TWO) goto out;
    h2o_multithread_send_message(&kv->receiver, &km->msg);
    km = NULL;
out:
    json_decref(j);
    free(km);
}

static void *watch_main(void *arg)
{
    auth_kv *kv = arg;
    while (!kv->stopping) {
        kvEntry *e = NULL;
        natsStatus st = kvWatcher_Next(&e, kv->watcher, 500);
        if (st == NATS_TIMEOUT) continue;
        if (st != NATS_OK) {
            if (kv->stopping) break;
            nats_Sleep(100);
            continue;
        }
        if (e) { /* NULL marks the end of the initial values */
            handle_entry(kv, e);
            kvEntry_Destroy(e);
        }
    }
    return NULL;
}

static void write_one(auth_kv *kv, wnode *w)
{
    char key[65], hex[AUTH_SID_HEX + 1];
    uint8_t val[KV_VALUE_MAX];
    json_t *j;
    char *pt;
    long n;
    natsStatus st;

    key_of(kv, w->s.id, key);
    auth_hex_encode(w->s.id, AUTH_SID_BYTES, hex);
    j = json_pack("{s:s,s:s,s:i,s:b,s:I,s:I,s:I,s:b}", "id", hex, "user", w->s.user, "level", (int)w->s.level,
                  "remember", (int)w->s.remember, "created", (json_int_t)w->s.created_ms, "last",
                  (json_int_t)w->s.last_ms, "expires", (json_int_t)w->s.expires_ms, "deleted", w->deleted);
    OPENSSL_cleanse(hex, sizeof(hex));
    pt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!pt) return;
    n = seal(kv, pt, strlen(pt), val, sizeof(val));
    OPENSSL_cleanse(pt, strlen(pt));
    free(pt);
    if (n < 0) return;
    st = kvStore_Put(NULL, kv->store, key, val, (int)n);
    if (st != NATS_OK) xt_warn("session store: put failed: %s", natsStatus_GetText(st));
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

auth_kv *auth_kv_new(const auth_config *cfg, int64_t ttl_ms, h2o_multithread_queue_t *queue,
                     auth_kv_update_cb cb, void *ud, char *err, size_t errlen)
{
    auth_kv *kv = calloc(1, sizeof(*kv));
    natsOptions *opts = NULL;
    natsStatus st;
    EVP_MD_CTX *md = NULL;
    unsigned mdl = 0;

    if (!kv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&kv->mu, NULL);
    pthread_cond_init(&kv->cv, NULL);
    kv->cb = cb;
    kv->ud = ud;
    kv->secret_len = strlen(cfg->secret);
    kv->secret = strdup(cfg->secret);
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
    if ((st = natsOptions_Create(&opts)) != NATS_OK ||
        (st = natsOptions_SetServers(opts, (const char *[]){cfg->kv_url}, 1)) != NATS_OK ||
        (st = natsOptions_SetMaxReconnect(opts, -1)) != NATS_OK ||
        (st = natsOptions_SetReconnectWait(opts, 500)) != NATS_OK ||
        (st = natsOptions_SetName(opts, "xtask-auth")) != NATS_OK) {
        snprintf(err, errlen, "nats options: %s", natsStatus_GetText(st));
        goto fail;
    }
    if ((st = natsConnection_Connect(&kv->nc, opts)) != NATS_OK) {
        snprintf(err, errlen, "connect to %s: %s", cfg->kv_url, natsStatus_GetText(st));
        goto fail;
    }
    if ((st = natsConnection_JetStream(&kv->js, kv->nc, NULL)) != NATS_OK) {
        snprintf(err, errlen, "jetstream: %s", natsStatus_GetText(st));
        goto fail;
    }
    if (js_KeyValue(&kv->store, kv->js, cfg->kv_bucket) != NATS_OK) {
        kvConfig kc;
        kvConfig_Init(&kc);
        kc.Bucket = cfg->kv_bucket;
        kc.History = 1;
        kc.TTL = ttl_ms * 1000000LL;
        kc.MaxValueSize = KV_VALUE_MAX;
        if ((st = js_CreateKeyValue(&kv->store, kv->js, &kc)) != NATS_OK &&
            (st = js_KeyValue(&kv->store, kv->js, cfg->kv_bucket)) != NATS_OK) {
            snprintf(err, errlen, "bucket %s: %s", cfg->kv_bucket, natsStatus_GetText(st));
            goto fail;
        }
    }
    if ((st = kvStore_WatchAll(&kv->watcher, kv->store, NULL)) != NATS_OK) {
        snprintf(err, errlen, "watch %s: %s", cfg->kv_bucket, natsStatus_GetText(st));
        goto fail;
    }
    if (pthread_create(&kv->watch_thread, NULL, watch_main, kv) != 0) goto fail;
    kv->watch_started = 1;
    if (pthread_create(&kv->write_thread, NULL, write_main, kv) != 0) goto fail;
    kv->write_started = 1;
    natsOptions_Destroy(opts);
    xt_info("session store: NATS KV bucket %s on %s", cfg->kv_bucket, cfg->kv_url);
    return kv;
fail:
    natsOptions_Destroy(opts);
    auth_kv_free(kv);
    return NULL;
}

void auth_kv_free(auth_kv *kv)
{
    if (!kv) return;
    kv->stopping = 1;
    pthread_mutex_lock(&kv->mu);
    pthread_cond_broadcast(&kv->cv);
    pthread_mutex_unlock(&kv->mu);
    if (kv->write_started) pthread_join(kv->write_thread, NULL);
    if (kv->watcher) kvWatcher_Stop(kv->watcher);
    if (kv->watch_started) pthread_join(kv->watch_thread, NULL);
    kvWatcher_Destroy(kv->watcher);
    kvStore_Destroy(kv->store);
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
    OPENSSL_cleanse(kv->enc_key, sizeof(kv->enc_key));
    pthread_mutex_destroy(&kv->mu);
    pthread_cond_destroy(&kv->cv);
    free(kv);
}
