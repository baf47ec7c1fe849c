/* bus_ops: init, user add/revoke, show, export of a bus directory (contract in bus_ops.h). */
#include "bus_ops.h"

#include <errno.h>
#include <limits.h>
#include <nats/nats.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bus_join.h"
#include "bus_pki.h"
#include "bus_roles.h"
#include "bus_store.h"
#include "xt_jwt.h"
#include "xt_nats.h"
#include "xt_nkey.h"

#define MAX_FILE (256 * 1024)
#define CA_DAYS 3650
#define SERVER_DAYS 825
#define RENEW_BEFORE (30LL * 86400)

/* The keys of one bus directory, loaded once per command. */
typedef struct bus_ctx {
    const bus_opts *o;
    FILE *out;
    xt_nkey op, sys, xtask;
    char op_pub[XT_NKEY_PUBLIC_LEN + 1], sys_pub[XT_NKEY_PUBLIC_LEN + 1], xtask_pub[XT_NKEY_PUBLIC_LEN + 1];
    json_t *users; /* users.json */
} bus_ctx;

static void ctx_free(bus_ctx *c)
{
    xt_nkey_wipe(&c->op);
    xt_nkey_wipe(&c->sys);
    xt_nkey_wipe(&c->xtask);
    json_decref(c->users);
}

static int path_of(const bus_ctx *c, char *out, size_t outlen, const char *name, char *err, size_t errlen)
{
    if (bus_store_path(out, outlen, c->o->dir, name) != 0) {
        snprintf(err, errlen, "%s/%s: path too long", c->o->dir, name);
        return -1;
    }
    return 0;
}

/* Write DIR/name (0600) and say so (the name only, never the content). */
static int put(bus_ctx *c, const char *name, const char *text, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (path_of(c, p, sizeof(p), name, err, errlen) != 0) return -1;
    if (bus_store_write(p, text, strlen(text), 0600, err, errlen) != 0) return -1;
    if (c->out) fprintf(c->out, "xtask-bus: wrote %s\n", p);
    return 0;
}

/* DIR/name's content (malloc'd), or NULL; *missing tells a missing file from an unreadable one. */
static char *get(const bus_ctx *c, const char *name, int *missing, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (path_of(c, p, sizeof(p), name, err, errlen) != 0) return NULL;
    return bus_store_read(p, MAX_FILE, NULL, missing, err, errlen);
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = '\0';
}

/* keys/<name>.nk: load it, or create it when `create` (else a missing key is an error). */
static int key_load(bus_ctx *c, const char *name, xt_nkey_type type, int create, xt_nkey *k, char *pub,
                    char *err, size_t errlen)
{
    char file[64], p[PATH_MAX], seed[XT_NKEY_SEED_LEN + 1];
    int missing = 0, rc = -1;
    snprintf(file, sizeof(file), "keys/%s.nk", name);
    char *text = get(c, file, &missing, err, errlen);
    if (text == NULL && !(missing && create)) {
        if (missing)
            snprintf(err, errlen, "%s/%s is missing: run `xtask-bus init --dir %s`", c->o->dir, file,
                     c->o->dir);
        goto out;
    }
    if (text) {
        trim(text);
        char kerr[160];
        if (xt_nkey_from_seed(text, k, kerr, sizeof(kerr)) != 0) {
            path_of(c, p, sizeof(p), file, err, errlen);
            snprintf(err, errlen, "%s: %s", p, kerr);
            goto out;
        }
        if (k->type != type) {
            path_of(c, p, sizeof(p), file, err, errlen);
            snprintf(err, errlen, "%s: a %s key, want %s", p, xt_nkey_type_name(k->type),
                     xt_nkey_type_name(type));
            goto out;
        }
    } else {
        if (xt_nkey_create(type, k, err, errlen) != 0) goto out;
        xt_nkey_seed_text(k, seed, sizeof(seed));
        int w = put(c, file, seed, err, errlen);
        OPENSSL_cleanse(seed, sizeof(seed));
        if (w != 0) goto out;
    }
    xt_nkey_public_text(k, pub, XT_NKEY_PUBLIC_LEN + 1);
    rc = 0;
out:
    free_secret(text);
    return rc;
}

static int load_keys(bus_ctx *c, int create, char *err, size_t errlen)
{
    if (key_load(c, "operator", XT_NKEY_OPERATOR, create, &c->op, c->op_pub, err, errlen) != 0 ||
        key_load(c, "SYS", XT_NKEY_ACCOUNT, create, &c->sys, c->sys_pub, err, errlen) != 0 ||
        key_load(c, "XTASK", XT_NKEY_ACCOUNT, create, &c->xtask, c->xtask_pub, err, errlen) != 0)
        return -1;
    return 0;
}

static int load_users(bus_ctx *c, char *err, size_t errlen)
{
    int missing = 0;
    char *text = get(c, "users.json", &missing, err, errlen);
    if (text == NULL) {
        if (!missing) return -1;
        c->users = json_object();
        return 0;
    }
    json_error_t je;
    c->users = json_loads(text, 0, &je);
    free(text);
    if (!json_is_object(c->users)) {
        snprintf(err, errlen, "%s/users.json:%d:%d: %s", c->o->dir, je.line, je.column,
                 c->users ? "not a JSON object" : je.text);
        json_decref(c->users);
        c->users = NULL;
        return -1;
    }
    return 0;
}

static int save_users(bus_ctx *c, char *err, size_t errlen)
{
    char *text = json_dumps(c->users, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc = text ? put(c, "users.json", text, err, errlen) : -1;
    free(text);
    return rc;
}

/* The account key and public key for an account name. */
static const xt_nkey *account_key(const bus_ctx *c, const char *account, const char **pub)
{
    if (strcmp(account, "SYS") == 0) {
        *pub = c->sys_pub;
        return &c->sys;
    }
    *pub = c->xtask_pub;
    return &c->xtask;
}

/* --- JWTs ------------------------------------------------------------------------------------ */

static void xtask_limits(const bus_opts *o, xt_jwt_account_limits *lim)
{
    xt_jwt_account_limits_default(lim);
    lim->mem_storage = o->js_mem;
    lim->disk_storage = o->js_disk;
    lim->streams = lim->consumer = lim->max_ack_pending = -1;
    lim->mem_max_stream_bytes = lim->disk_max_stream_bytes = -1;
    /* nats-server refuses a stream or bucket without max_bytes (stream.go, checkStreamCfg): nothing
     * in the account can grow until the volume is full, whoever creates it */
    lim->max_bytes_required = 1;
}

/* jwt/<pub>.jwt decoded and checked (signed by our operator, about that account), or NULL. */
static json_t *account_jwt_load(bus_ctx *c, const char *pub, char *err, size_t errlen)
{
    char file[128];
    int missing = 0;
    snprintf(file, sizeof(file), "jwt/%s.jwt", pub);
    char *text = get(c, file, &missing, err, errlen);
    if (text == NULL) return NULL;
    trim(text);
    json_t *cl = xt_jwt_decode(text, 0, err, errlen);
    free(text);
    if (cl && (strcmp(json_string_value(json_object_get(cl, "iss")) ?: "", c->op_pub) != 0 ||
               strcmp(json_string_value(json_object_get(cl, "sub")) ?: "", pub) != 0)) {
        snprintf(err, errlen, "%s/%s: not this operator's JWT for this account", c->o->dir, file);
        json_decref(cl);
        cl = NULL;
    }
    return cl;
}

/* Sign the account's claims (keeping `revocations`) and write jwt/<pub>.jwt when its `nats` part
 * differs from what is there (or force). The new iat is later than the old one: the full resolver
 * keeps the newer of two JWTs. Returns the JWT written or kept (malloc'd) in *jwt_out if not NULL. */
static int account_jwt_write(bus_ctx *c, const char *account, json_t *revocations, int force, char **jwt_out,
                             char *err, size_t errlen)
{
    int rc = -1;
    const char *pub;
    const xt_nkey *key = account_key(c, account, &pub);
    xt_jwt_account_limits lim;
    if (strcmp(account, "XTASK") == 0)
        xtask_limits(c->o, &lim);
    else
        xt_jwt_account_limits_default(&lim);
    json_t *want = xt_jwt_account_claims(account, pub, &lim, revocations, NULL);
    char lerr[256], file[128];
    json_t *have = account_jwt_load(c, pub, lerr, sizeof(lerr));
    char *jwt = NULL;
    (void)key;
    snprintf(file, sizeof(file), "jwt/%s.jwt", pub);
    /* A caller that names no JetStream limits (`xtask node revoke`) keeps the account's current
     * ones: a revocation must not switch the account's JetStream off (limits 0). */
    json_t *have_lim = json_object_get(json_object_get(have, "nats"), "limits");
    if (c->o->js_mem <= 0 && c->o->js_disk <= 0 && json_is_object(have_lim))
        json_object_set(json_object_get(want, "nats"), "limits", have_lim);
    if (have && !force && json_equal(json_object_get(have, "nats"), json_object_get(want, "nats"))) {
        rc = 0;
        if (jwt_out) *jwt_out = get(c, file, NULL, err, errlen);
        if (jwt_out && *jwt_out) trim(*jwt_out);
        goto out;
    }
    json_int_t iat = (json_int_t)time(NULL);
    json_int_t old = have ? json_integer_value(json_object_get(have, "iat")) : 0;
    if (iat <= old) iat = old + 1;
    json_object_set_new(want, "iat", json_integer(iat));
    jwt = xt_jwt_encode(want, &c->op, err, errlen);
    if (jwt == NULL || put(c, file, jwt, err, errlen) != 0) goto out;
    if (jwt_out) {
        *jwt_out = jwt;
        jwt = NULL;
    }
    rc = 0;
out:
    free(jwt);
    json_decref(want);
    json_decref(have);
    return rc;
}

/* The revocations in the account's current JWT (new reference; empty object when none). */
static json_t *current_revocations(bus_ctx *c, const char *pub)
{
    char lerr[256];
    json_t *have = account_jwt_load(c, pub, lerr, sizeof(lerr));
    json_t *r = json_object_get(json_object_get(have, "nats"), "revocations");
    json_t *out = json_is_object(r) ? json_deep_copy(r) : json_object();
    json_decref(have);
    return out;
}

static int operator_jwt(bus_ctx *c, char *err, size_t errlen)
{
    char lerr[256];
    int missing = 0;
    char *text = get(c, "operator.jwt", &missing, lerr, sizeof(lerr));
    if (text) {
        trim(text);
        json_t *cl = xt_jwt_decode(text, 0, lerr, sizeof(lerr));
        free(text);
        const char *sub = json_string_value(json_object_get(cl, "sub"));
        const char *sa = json_string_value(json_object_get(json_object_get(cl, "nats"), "system_account"));
        int ok = sub && sa && strcmp(sub, c->op_pub) == 0 && strcmp(sa, c->sys_pub) == 0;
        json_decref(cl);
        if (ok) return 0;
    }
    json_t *claims = xt_jwt_operator_claims("xtask", c->op_pub, c->sys_pub);
    char *jwt = xt_jwt_encode(claims, &c->op, err, errlen);
    json_decref(claims);
    int rc = jwt ? put(c, "operator.jwt", jwt, err, errlen) : -1;
    free(jwt);
    return rc;
}

/* --- users --------------------------------------------------------------------------------- */

static int valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64) return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_' || (ch == '.' && i > 0)))
            return 0;
    }
    return 1;
}

/* The user JWT inside a .creds file (malloc'd) or NULL. */
static char *creds_jwt(const char *creds)
{
    static const char begin[] = "-----BEGIN NATS USER JWT-----\n";
    const char *p = strstr(creds, begin);
    if (!p) return NULL;
    p += sizeof(begin) - 1;
    const char *e = strchr(p, '\n');
    return e ? strndup(p, (size_t)(e - p)) : NULL;
}

/* Mint a user of `role` (its account from the role): new key pair, JWT, .creds at out_path. Records
 * it in users.json. */
static int mint_user(bus_ctx *c, const char *name, const char *id, const char *role, const char *const *caps,
                     size_t ncaps, int64_t expires_in, const char *out_path, char *err, size_t errlen)
{
    int rc = -1;
    xt_nkey user;
    char upub[XT_NKEY_PUBLIC_LEN + 1], seed[XT_NKEY_SEED_LEN + 1], creds[8192];
    char *jwt = NULL;
    json_t *claims = NULL, *perm = NULL;
    memset(&user, 0, sizeof(user));
    const char *account = bus_roles_account(role);
    if (account == NULL) {
        snprintf(err, errlen, "unknown role '%s'", role);
        rc = 2;
        goto out;
    }
    perm = bus_roles_permissions(role, id, caps, ncaps, err, errlen);
    if (perm == NULL) {
        rc = 2;
        goto out;
    }
    const char *apub;
    const xt_nkey *akey = account_key(c, account, &apub);
    if (xt_nkey_create(XT_NKEY_USER, &user, err, errlen) != 0) goto out;
    xt_nkey_public_text(&user, upub, sizeof(upub));
    int64_t now = (int64_t)time(NULL);
    int64_t exp = expires_in > 0 ? now + expires_in : 0;
    claims = xt_jwt_user_claims(name, upub, perm, exp, NULL);
    json_object_set_new(claims, "iat", json_integer(now));
    jwt = xt_jwt_encode(claims, akey, err, errlen);
    if (jwt == NULL) goto out;
    xt_nkey_seed_text(&user, seed, sizeof(seed));
    long n = xt_jwt_creds(jwt, seed, creds, sizeof(creds));
    OPENSSL_cleanse(seed, sizeof(seed));
    if (n < 0) {
        snprintf(err, errlen, "%s: credentials too large", name);
        goto out;
    }
    if (bus_store_write(out_path, creds, (size_t)n, 0600, err, errlen) != 0) goto out;
    if (c->out) fprintf(c->out, "xtask-bus: %s (%s, %s) -> %s\n", name, role, upub, out_path);
    json_t *caps_json = json_array();
    for (size_t i = 0; i < ncaps; i++)
        json_array_append_new(caps_json, json_string(caps[i]));
    json_object_set_new(c->users, name,
                        json_pack("{ss ss ss so sI sI}", "pub", upub, "role", role, "account", account,
                                  "caps", caps_json, "iat", (json_int_t)now, "exp", (json_int_t)exp));
    rc = 0;
out:
    OPENSSL_cleanse(creds, sizeof(creds));
    free(jwt);
    json_decref(claims);
    json_decref(perm);
    xt_nkey_wipe(&user);
    return rc;
}

/* Keep creds/<name>.creds when it is still right: signed by the account the role belongs to, with
 * the role's current permissions, not expired, not revoked. */
static int creds_current(bus_ctx *c, const char *path, const char *name, const char *role,
                         json_t *revocations)
{
    char lerr[256];
    int ok = 0;
    char *text = bus_store_read(path, MAX_FILE, NULL, NULL, lerr, sizeof(lerr));
    char *jwt = text ? creds_jwt(text) : NULL;
    json_t *cl = jwt ? xt_jwt_decode(jwt, (int64_t)time(NULL), lerr, sizeof(lerr)) : NULL;
    json_t *perm = NULL;
    const char *account = bus_roles_account(role), *apub;
    if (cl == NULL || account == NULL) goto out;
    account_key(c, account, &apub);
    if (strcmp(json_string_value(json_object_get(cl, "iss")) ?: "", apub) != 0) goto out;
    if (strcmp(json_string_value(json_object_get(cl, "name")) ?: "", name) != 0) goto out;
    perm = bus_roles_permissions(role, c->o->node_id ? c->o->node_id : "", NULL, 0, lerr, sizeof(lerr));
    if (perm == NULL) goto out;
    json_t *nats = json_object_get(cl, "nats");
    const char *k;
    json_t *v;
    json_object_foreach(perm, k, v) if (!json_equal(json_object_get(nats, k), v)) goto out;
    const char *sub = json_string_value(json_object_get(cl, "sub"));
    json_t *rt = sub ? json_object_get(revocations, sub) : NULL;
    if (rt && json_integer_value(rt) >= json_integer_value(json_object_get(cl, "iat"))) goto out;
    ok = 1;
out:
    json_decref(perm);
    json_decref(cl);
    free(jwt);
    free_secret(text);
    return ok;
}

/* --- the bundle ------------------------------------------------------------------------------ */

static const struct {
    const char *key;  /* in the bundle */
    const char *file; /* in DIR */
} bundle_files[] = {
    {"operator", "keys/operator.nk"},     {"sys", "keys/SYS.nk"}, {"xtask", "keys/XTASK.nk"},
    {"route_password", "route-password"}, {"ca", "tls/ca.pem"},   {"server_cert", "tls/server.pem"},
    {"server_key", "tls/server-key.pem"},
};

/* XTASK_BUS_BUNDLE -> DIR: the bundle wins over what is there (every region must share it). Account
 * JWTs from the bundle are written unless DIR holds a newer one of the same account. */
static int bundle_import(bus_ctx *c, char *err, size_t errlen)
{
    int rc = 2;
    size_t blen = strlen(c->o->bundle);
    unsigned char *raw = malloc(blen + 1);
    json_t *b = NULL;
    if (raw == NULL) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    long n = xt_b64url_decode(c->o->bundle, blen, raw, blen);
    if (n < 0) {
        snprintf(err, errlen, "XTASK_BUS_BUNDLE: not base64url (paste the value `xtask-bus export` printed)");
        goto out;
    }
    json_error_t je;
    b = json_loadb((const char *)raw, (size_t)n, 0, &je);
    if (!json_is_object(b) || json_integer_value(json_object_get(b, "v")) != 1) {
        snprintf(err, errlen, "XTASK_BUS_BUNDLE: not a version 1 bundle");
        goto out;
    }
    for (size_t i = 0; i < sizeof(bundle_files) / sizeof(bundle_files[0]); i++) {
        const char *v = json_string_value(json_object_get(b, bundle_files[i].key));
        if (v == NULL) {
            snprintf(err, errlen, "XTASK_BUS_BUNDLE: '%s' is missing", bundle_files[i].key);
            goto out;
        }
        char lerr[256];
        char *have = get(c, bundle_files[i].file, NULL, lerr, sizeof(lerr));
        int same = have && strcmp(have, v) == 0;
        free_secret(have);
        if (!same && put(c, bundle_files[i].file, v, err, errlen) != 0) {
            rc = 1;
            goto out;
        }
    }
    json_t *jwts = json_object_get(b, "jwt");
    const char *pub;
    json_t *jv;
    json_object_foreach(jwts, pub, jv)
    {
        char lerr[256], file[128];
        const char *jwt = json_string_value(jv);
        json_t *in = jwt ? xt_jwt_decode(jwt, 0, lerr, sizeof(lerr)) : NULL;
        if (in == NULL ||
            xt_nkey_decode_public(pub, &(xt_nkey_type){0}, (unsigned char[32]){0}, lerr, sizeof(lerr)) != 0) {
            snprintf(err, errlen, "XTASK_BUS_BUNDLE: account JWT %s: %s", pub, lerr);
            json_decref(in);
            goto out;
        }
        snprintf(file, sizeof(file), "jwt/%s.jwt", pub);
        char *text = get(c, file, NULL, lerr, sizeof(lerr));
        json_t *have = text ? xt_jwt_decode(text, 0, lerr, sizeof(lerr)) : NULL;
        free(text);
        int newer = have && json_integer_value(json_object_get(have, "iat")) >=
                                json_integer_value(json_object_get(in, "iat"));
        json_decref(have);
        json_decref(in);
        if (!newer && put(c, file, jwt, err, errlen) != 0) {
            rc = 1;
            goto out;
        }
    }
    rc = 0;
out:
    OPENSSL_cleanse(raw, blen + 1);
    free(raw);
    json_decref(b); /* holds seeds: jansson frees without clearing; the process exits soon after */
    return rc;
}

/* --- TLS ------------------------------------------------------------------------------------- */

static int tls_files(bus_ctx *c, char *err, size_t errlen)
{
    int rc = -1, missing = 0;
    char lerr[256], want[2048], have_sans[2048];
    char *ca_key = get(c, "keys/ca-key.pem", &missing, lerr, sizeof(lerr));
    char *ca = get(c, "tls/ca.pem", NULL, lerr, sizeof(lerr));
    char *cert = get(c, "tls/server.pem", NULL, lerr, sizeof(lerr));
    char *key = get(c, "tls/server-key.pem", NULL, lerr, sizeof(lerr));
    char *nk = NULL, *nc = NULL;
    if (ca == NULL) {
        if (ca_key != NULL) {
            snprintf(err, errlen, "%s/tls/ca.pem is missing but the CA key exists: restore it from a backup",
                     c->o->dir);
            goto out;
        }
        if (bus_pki_make_ca("xtask platform CA", CA_DAYS, &nk, &nc, err, errlen) != 0 ||
            put(c, "keys/ca-key.pem", nk, err, errlen) != 0 || put(c, "tls/ca.pem", nc, err, errlen) != 0)
            goto out;
        free_secret(ca_key);
        ca_key = nk;
        ca = nc;
        nk = nc = NULL;
        free_secret(cert);
        cert = NULL; /* a new CA: the server certificate must be made again */
    }
    if (bus_pki_want_sans(c->o->domains, c->o->ndomains, want, sizeof(want)) != 0) {
        snprintf(err, errlen, "too many or too long --domain names");
        goto out;
    }
    long long not_after = 0;
    int by_ca = 0;
    int stale = cert == NULL || key == NULL ||
                bus_pki_cert_info(cert, ca, have_sans, sizeof(have_sans), &not_after, &by_ca, lerr,
                                  sizeof(lerr)) != 0 ||
                !by_ca || strcmp(have_sans, want) != 0 || not_after - (long long)time(NULL) < RENEW_BEFORE;
    if (stale) {
        if (ca_key == NULL) {
            /* the bundle carries the certificate; only the machine that made the CA can renew it */
            if (cert == NULL || key == NULL || !by_ca) {
                snprintf(
                    err, errlen,
                    "%s/tls/server.pem: missing or not signed by tls/ca.pem, and this directory has no CA "
                    "key to make one",
                    c->o->dir);
                goto out;
            }
            fprintf(stderr,
                    "xtask-bus: warning: %s/tls/server.pem names %s (want %s) or expires soon; renew it "
                    "where the CA key is and export the bundle again\n",
                    c->o->dir, have_sans, want);
        } else {
            if (bus_pki_make_server(ca_key, ca, c->o->domains, c->o->ndomains, SERVER_DAYS, &nk, &nc, err,
                                    errlen) != 0 ||
                put(c, "tls/server-key.pem", nk, err, errlen) != 0 ||
                put(c, "tls/server.pem", nc, err, errlen) != 0)
                goto out;
        }
    }
    rc = 0;
out:
    free_secret(ca_key);
    free_secret(key);
    free_secret(nk);
    free(ca);
    free(cert);
    free(nc);
    return rc;
}

static int route_password(bus_ctx *c, char *err, size_t errlen)
{
    char lerr[256];
    int missing = 0;
    char *have = get(c, "route-password", &missing, lerr, sizeof(lerr));
    if (have) {
        free_secret(have);
        return 0;
    }
    if (!missing) {
        snprintf(err, errlen, "%s", lerr);
        return -1;
    }
    /* "xt" + hex: nats-server reads the value as a bare config token and a route URL's userinfo, where
     * only these characters are always safe (a leading digit would parse as a number). */
    unsigned char rnd[24];
    char pw[2 + 48 + 1] = "xt";
    if (RAND_priv_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errlen, "random route password");
        return -1;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(pw + 2 + 2 * i, 3, "%02x", rnd[i]);
    int rc = put(c, "route-password", pw, err, errlen);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    OPENSSL_cleanse(pw, sizeof(pw));
    return rc;
}

static int mkdirs(bus_ctx *c, char *err, size_t errlen)
{
    static const char *const sub[] = {"", "keys", "jwt", "tls", "creds"};
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        char p[PATH_MAX];
        if (path_of(c, p, sizeof(p), sub[i], err, errlen) != 0) return -1;
        if (bus_store_mkdir(p, 0700, err, errlen) != 0) return -1;
    }
    return 0;
}

/* A platform identity's JWT name: the pattern with "{id}" replaced by the node id. */
static int identity_name(const char *pattern, const char *id, char *out, size_t outlen)
{
    const char *m = strstr(pattern, "{id}");
    int n;
    if (m == NULL)
        n = snprintf(out, outlen, "%s", pattern);
    else if (id == NULL || !valid_name(id))
        return -1;
    else
        n = snprintf(out, outlen, "%.*s%s%s", (int)(m - pattern), pattern, id, m + 4);
    return (n < 0 || (size_t)n >= outlen || !valid_name(out)) ? -1 : 0;
}

long long bus_ops_parse_duration(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0 || end[0] == '\0' || end[1] != '\0') return -1;
    long long mul = 0;
    switch (*end) {
    case 's':
        mul = 1;
        break;
    case 'm':
        mul = 60;
        break;
    case 'h':
        mul = 3600;
        break;
    case 'd':
        mul = 86400;
        break;
    default:
        return -1;
    }
    return v > LLONG_MAX / mul ? -1 : v * mul;
}

/* --- commands ------------------------------------------------------------------------------- */

int bus_ops_init(const bus_opts *o, FILE *out, char *err, size_t errlen)
{
    bus_ctx c = {.o = o, .out = out};
    int rc = 1;
    json_t *rev = NULL;
    if (mkdirs(&c, err, errlen) != 0) goto out;
    if (o->bundle && o->bundle[0]) {
        rc = bundle_import(&c, err, errlen);
        if (rc != 0) goto out;
        rc = 1;
    }
    if (load_keys(&c, 1, err, errlen) != 0 || load_users(&c, err, errlen) != 0 ||
        operator_jwt(&c, err, errlen) != 0)
        goto out;
    rev = current_revocations(&c, c.sys_pub);
    if (account_jwt_write(&c, "SYS", rev, 0, NULL, err, errlen) != 0) goto out;
    json_decref(rev);
    rev = current_revocations(&c, c.xtask_pub);
    if (account_jwt_write(&c, "XTASK", rev, 0, NULL, err, errlen) != 0) goto out;
    if (route_password(&c, err, errlen) != 0 || tls_files(&c, err, errlen) != 0) goto out;
    size_t n;
    const bus_identity *ids = bus_roles_platform_identities(&n);
    int users_changed = 0;
    for (size_t i = 0; i < n; i++) {
        char file[128], p[PATH_MAX], name[128];
        if (identity_name(ids[i].name, o->node_id, name, sizeof(name)) != 0) {
            snprintf(err, errlen, "identity %s: no usable node id (--node-id or XTASK_NODE_ID)", ids[i].name);
            rc = 2;
            goto out;
        }
        snprintf(file, sizeof(file), "creds/%s.creds", ids[i].file);
        if (path_of(&c, p, sizeof(p), file, err, errlen) != 0) goto out;
        const char *account = bus_roles_account(ids[i].role);
        json_t *arev = account && strcmp(account, "SYS") == 0 ? NULL : rev;
        if (creds_current(&c, p, name, ids[i].role, arev)) continue;
        int m = mint_user(&c, name, o->node_id ? o->node_id : name, ids[i].role, NULL, 0, 0, p, err, errlen);
        if (m != 0) {
            rc = m;
            goto out;
        }
        users_changed = 1;
    }
    if (users_changed && save_users(&c, err, errlen) != 0) goto out;
    if (out)
        fprintf(out, "xtask-bus: %s ready (operator %s, account XTASK %s)\n", o->dir, c.op_pub, c.xtask_pub);
    rc = 0;
out:
    json_decref(rev);
    ctx_free(&c);
    return rc;
}

int bus_ops_user_add(const bus_opts *o, FILE *out, char *err, size_t errlen)
{
    bus_ctx c = {.o = o, .out = out};
    int rc = 2;
    if (!valid_name(o->name)) {
        snprintf(err, errlen, "user name '%s': 1-64 of A-Z a-z 0-9 - _ .", o->name ? o->name : "");
        goto out;
    }
    if (o->role == NULL || o->out == NULL) {
        snprintf(err, errlen, "user add needs --role ROLE and --out FILE");
        goto out;
    }
    for (size_t i = 0; i < o->ncaps; i++) {
        if (!valid_name(o->caps[i])) {
            snprintf(err, errlen, "--capability '%s': 1-64 of A-Z a-z 0-9 - _ .", o->caps[i]);
            goto out;
        }
    }
    rc = 1;
    if (load_keys(&c, 0, err, errlen) != 0 || load_users(&c, err, errlen) != 0) goto out;
    json_t *u = json_object_get(c.users, o->name);
    if (u && !json_object_get(u, "revoked")) {
        snprintf(err, errlen, "user '%s' exists (%s): revoke it first", o->name,
                 json_string_value(json_object_get(u, "pub")));
        rc = 2;
        goto out;
    }
    /* the user's own name is its id (e.g. an edge node's id in its subjects) */
    rc = mint_user(&c, o->name, o->name, o->role, o->caps, o->ncaps, o->expires_in, o->out, err, errlen);
    if (rc != 0) goto out;
    rc = save_users(&c, err, errlen) == 0 ? 0 : 1;
out:
    ctx_free(&c);
    return rc;
}

/* $SYS.REQ.CLAIMS.UPDATE as the SYS user: the server stores the JWT in its resolver directory, the
 * full resolver forwards it to every server of the cluster, and clients of a revoked user are
 * disconnected. */
static int push_claims(const bus_opts *o, const char *jwt, FILE *out, char *err, size_t errlen)
{
    int rc = 1;
    char creds[PATH_MAX];
    xt_nats_conf nconf = {0};
    natsConnection *nc = NULL;
    natsMsg *reply = NULL;
    json_t *r = NULL;
    if (o->creds)
        snprintf(creds, sizeof(creds), "%s", o->creds);
    else if (bus_store_path(creds, sizeof(creds), o->dir, "creds/sys.creds") != 0)
        goto out;
    /* one attempt, the cause in the message ("NATS at nats://...: authorization violation: check
     * --creds (the SYS user)") */
    xt_nats_params np = {
        .cli = 1, .timeout_ms = 5000, .name = "xtask-bus", .creds_where = "--creds (the SYS user)"};
    if (xt_nats_conf_set(&nconf, "url", o->server, "--server", err, errlen) != 0 ||
        xt_nats_conf_set(&nconf, "creds", creds, "--creds", err, errlen) != 0)
        goto out;
    if (nats_Open(-1) != NATS_OK) {
        snprintf(err, errlen, "cannot start the NATS library");
        goto out;
    }
    if (xt_nats_connect(&nconf, &np, &nc, err, errlen) != 0) goto out;
    natsStatus s = natsConnection_Request(&reply, nc, "$SYS.REQ.CLAIMS.UPDATE", jwt, (int)strlen(jwt), 5000);
    if (s != NATS_OK) {
        snprintf(err, errlen, "$SYS.REQ.CLAIMS.UPDATE on %s: %s", o->server, natsStatus_GetText(s));
        goto out;
    }
    json_error_t je;
    r = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, &je);
    json_t *e = json_object_get(r, "error");
    if (e || !json_object_get(r, "data")) {
        snprintf(err, errlen, "$SYS.REQ.CLAIMS.UPDATE refused: %.*s", natsMsg_GetDataLength(reply),
                 natsMsg_GetData(reply));
        goto out;
    }
    if (out) fprintf(out, "xtask-bus: account JWT pushed to %s\n", o->server);
    rc = 0;
out:
    json_decref(r);
    natsMsg_Destroy(reply);
    natsConnection_Destroy(nc);
    xt_nats_conf_free(&nconf);
    return rc;
}

int bus_ops_user_revoke(const bus_opts *o, FILE *out, char *err, size_t errlen)
{
    bus_ctx c = {.o = o, .out = out};
    int rc = 2;
    char *jwt = NULL;
    json_t *rev = NULL;
    const char *pub = NULL;
    xt_nkey_type t;
    unsigned char raw[32];
    if (o->name == NULL) {
        snprintf(err, errlen, "user revoke needs a user name or public key (U...)");
        goto out;
    }
    rc = 1;
    if (load_keys(&c, 0, err, errlen) != 0 || load_users(&c, err, errlen) != 0) goto out;
    json_t *u = json_object_get(c.users, o->name);
    if (u) {
        pub = json_string_value(json_object_get(u, "pub"));
        const char *account = json_string_value(json_object_get(u, "account"));
        if (account && strcmp(account, "XTASK") != 0) {
            snprintf(err, errlen, "'%s' is a user of %s: only XTASK users are revoked here", o->name,
                     account);
            rc = 2;
            goto out;
        }
    } else if (xt_nkey_decode_public(o->name, &t, raw, NULL, 0) == 0 && t == XT_NKEY_USER) {
        pub = o->name;
    } else {
        snprintf(err, errlen, "no user '%s' in %s/users.json (a public key U... is accepted too)", o->name,
                 o->dir);
        rc = 2;
        goto out;
    }
    rev = current_revocations(&c, c.xtask_pub);
    json_int_t now = (json_int_t)time(NULL);
    json_object_set_new(rev, pub, json_integer(now));
    if (account_jwt_write(&c, "XTASK", rev, 1, &jwt, err, errlen) != 0) goto out;
    if (u) {
        json_object_set_new(u, "revoked", json_integer(now));
        if (save_users(&c, err, errlen) != 0) goto out;
    }
    if (out) fprintf(out, "xtask-bus: revoked %s (%s)\n", o->name, pub);
    if (o->server && push_claims(o, jwt, out, err, errlen) != 0) goto out;
    rc = 0;
out:
    free(jwt);
    json_decref(rev);
    ctx_free(&c);
    return rc;
}

static void show_time(FILE *out, json_int_t t)
{
    char buf[32] = "never";
    if (t > 0) {
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    fputs(buf, out);
}

int bus_ops_show(const bus_opts *o, FILE *out, char *err, size_t errlen)
{
    bus_ctx c = {.o = o};
    int rc = 1;
    json_t *xa = NULL;
    char lerr[256];
    if (load_keys(&c, 0, err, errlen) != 0 || load_users(&c, err, errlen) != 0) goto out;
    fprintf(out, "directory  %s\noperator   %s\naccount    SYS   %s\naccount    XTASK %s\n", o->dir, c.op_pub,
            c.sys_pub, c.xtask_pub);
    xa = account_jwt_load(&c, c.xtask_pub, lerr, sizeof(lerr));
    json_t *lim = json_object_get(json_object_get(xa, "nats"), "limits");
    fprintf(out, "jetstream  memory %lld bytes, disk %lld bytes\n",
            (long long)json_integer_value(json_object_get(lim, "mem_storage")),
            (long long)json_integer_value(json_object_get(lim, "disk_storage")));
    char *ca = get(&c, "tls/ca.pem", NULL, lerr, sizeof(lerr));
    char *cert = get(&c, "tls/server.pem", NULL, lerr, sizeof(lerr));
    char sans[2048] = "";
    long long na = 0;
    int by_ca = 0;
    if (cert && bus_pki_cert_info(cert, ca, sans, sizeof(sans), &na, &by_ca, lerr, sizeof(lerr)) == 0) {
        fprintf(out, "leaf tls   %s, expires ", sans);
        show_time(out, (json_int_t)na);
        fprintf(out, "%s\n", by_ca ? "" : " (NOT signed by tls/ca.pem)");
    }
    free(ca);
    free(cert);
    fprintf(out, "%-20s %-9s %-56s %-20s %s\n", "USER", "ROLE", "PUBLIC KEY", "EXPIRES", "STATUS");
    const char *name;
    json_t *u;
    json_object_foreach(c.users, name, u)
    {
        fprintf(out, "%-20s %-9s %-56s ", name, json_string_value(json_object_get(u, "role")) ?: "?",
                json_string_value(json_object_get(u, "pub")) ?: "?");
        json_int_t exp = json_integer_value(json_object_get(u, "exp"));
        show_time(out, exp);
        json_int_t rv = json_integer_value(json_object_get(u, "revoked"));
        fprintf(out, "%s", exp > 0 ? " " : "                ");
        if (rv > 0) {
            fputs("revoked ", out);
            show_time(out, rv);
        } else {
            fputs(exp > 0 && exp <= (json_int_t)time(NULL) ? "expired" : "active", out);
        }
        fputc('\n', out);
    }
    rc = 0;
out:
    json_decref(xa);
    ctx_free(&c);
    return rc;
}

int bus_ops_export(const bus_opts *o, FILE *out, char *err, size_t errlen)
{
    bus_ctx c = {.o = o};
    int rc = 1;
    json_t *b = json_pack("{si}", "v", 1);
    char *text = NULL, *enc = NULL;
    if (load_keys(&c, 0, err, errlen) != 0) goto out;
    for (size_t i = 0; i < sizeof(bundle_files) / sizeof(bundle_files[0]); i++) {
        char *v = get(&c, bundle_files[i].file, NULL, err, errlen);
        if (v == NULL) goto out;
        json_object_set_new(b, bundle_files[i].key, json_string(v));
        free_secret(v);
    }
    json_t *jwts = json_object();
    json_object_set_new(b, "jwt", jwts);
    const char *pubs[] = {c.sys_pub, c.xtask_pub};
    for (size_t i = 0; i < 2; i++) {
        char file[128];
        snprintf(file, sizeof(file), "jwt/%s.jwt", pubs[i]);
        char *v = get(&c, file, NULL, err, errlen);
        if (v == NULL) goto out;
        trim(v);
        json_object_set_new(jwts, pubs[i], json_string(v));
        free(v);
    }
    text = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    size_t len = text ? strlen(text) : 0;
    enc = text ? malloc(len * 4 / 3 + 4) : NULL;
    if (enc == NULL || xt_b64url_encode((const unsigned char *)text, len, enc, len * 4 / 3 + 4) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (o->export_value)
        fprintf(out, "%s\n", enc);
    else
        fprintf(out, "fly secrets set XTASK_BUS_BUNDLE=%s\n", enc);
    rc = 0;
out:
    free_secret(text);
    free_secret(enc);
    json_decref(b);
    ctx_free(&c);
    return rc;
}

/* --- edge nodes ------------------------------------------------------------------------------ */

int bus_ops_node_add(const bus_opts *o, FILE *out, char **bundle, char *err, size_t errlen)
{
    bus_ctx c = {.o = o, .out = NULL};
    int rc = 2;
    char tmp[PATH_MAX], *creds = NULL, *ca = NULL;
    *bundle = NULL;
    tmp[0] = '\0';
    (void)out;
    if (o->nhubs == 0) {
        snprintf(err, errlen, "node add needs the hubs' leaf URLs (--hub tls://HOST:7422, one per region)");
        goto out;
    }
    for (size_t i = 0; i < o->ntags; i++) {
        if (!valid_name(o->tags[i])) {
            snprintf(err, errlen, "--tag '%s': 1-64 of A-Z a-z 0-9 - _ .", o->tags[i]);
            goto out;
        }
    }
    for (size_t i = 0; i < o->nhubs; i++) {
        /* "[REGION=]tls://HOST:PORT": the region names the hub in the edge node's record */
        const char *h = o->hubs[i], *eq = strchr(h, '='), *url = h;
        char region[72] = "";
        if (eq && (size_t)(eq - h) < sizeof(region)) {
            snprintf(region, sizeof(region), "%.*s", (int)(eq - h), h);
            url = eq + 1;
        }
        /* tls:// the leaf port; wss:// the front's WebSocket path (443); ws:// only on loopback
         * (tests): the link's TLS is the point */
        int ok = strncmp(url, "tls://", 6) == 0 || strncmp(url, "wss://", 6) == 0 ||
                 strncmp(url, "ws://127.0.0.1:", 15) == 0 || strncmp(url, "ws://localhost:", 15) == 0;
        if ((eq && !valid_name(region)) || !ok || strlen(h) > 512 || strpbrk(url, " \t\"'@,=")) {
            snprintf(
                err, errlen,
                "--hub '%s': want [REGION=]tls://HOST:PORT (the leaf port) or [REGION=]wss://HOST[:PORT] "
                "(the front, WebSocket); REGION: 1-64 of A-Z a-z 0-9 - _ .",
                h);
            goto out;
        }
    }
    /* the role checks the id and capabilities (one subject token each) */
    char perr[256];
    json_t *perm = bus_roles_permissions("edge", o->name, o->caps, o->ncaps, perr, sizeof(perr));
    if (perm == NULL) {
        snprintf(err, errlen, "%s", perr);
        goto out;
    }
    json_decref(perm);
    bus_opts uo = *o;
    uo.role = "edge";
    if (bus_store_path(tmp, sizeof(tmp), o->dir, "creds/.join.tmp") != 0) {
        snprintf(err, errlen, "%s: path too long", o->dir);
        goto out;
    }
    uo.out = tmp;
    rc = bus_ops_user_add(&uo, NULL, err, errlen);
    if (rc != 0) goto out;
    rc = 1;
    if (load_keys(&c, 0, err, errlen) != 0 || load_users(&c, err, errlen) != 0) goto out;
    creds = bus_store_read(tmp, MAX_FILE, NULL, NULL, err, errlen);
    ca = creds ? get(&c, "tls/ca.pem", NULL, err, errlen) : NULL;
    json_t *u = json_object_get(c.users, o->name);
    if (ca == NULL || u == NULL) {
        if (ca) snprintf(err, errlen, "user '%s' not recorded in users.json", o->name);
        goto out;
    }
    json_int_t exp = json_integer_value(json_object_get(u, "exp"));
    *bundle = bus_join_encode(&c.xtask, o->name, o->caps, o->ncaps, o->tags, o->ntags, o->hubs, o->nhubs, ca,
                              creds, (int64_t)exp, err, errlen);
    if (*bundle == NULL) goto out;
    json_t *tags = json_array(), *hubs = json_array();
    for (size_t i = 0; i < o->ntags; i++)
        json_array_append_new(tags, json_string(o->tags[i]));
    for (size_t i = 0; i < o->nhubs; i++)
        json_array_append_new(hubs, json_string(o->hubs[i]));
    json_object_set_new(u, "tags", tags);
    json_object_set_new(u, "hubs", hubs);
    json_object_set_new(u, "edge", json_true());
    if (save_users(&c, err, errlen) != 0) goto out;
    rc = 0;
out:
    if (tmp[0]) unlink(tmp);
    free_secret(creds);
    free(ca);
    if (rc != 0 && *bundle) {
        free_secret(*bundle);
        *bundle = NULL;
    }
    ctx_free(&c);
    return rc;
}

json_t *bus_ops_users(const bus_opts *o, char *err, size_t errlen)
{
    bus_ctx c = {.o = o};
    json_t *u = NULL;
    if (load_users(&c, err, errlen) == 0) {
        u = c.users;
        c.users = NULL;
    }
    ctx_free(&c);
    return u;
}

const char *bus_ops_default_dir(char *buf, size_t len)
{
    const char *e = getenv("XTASK_BUS_DIR");
    if (e && *e) return e;
    e = getenv("XTASK_DATA_DIR");
    snprintf(buf, len, "%s/bus", e && *e ? e : "/data");
    return buf;
}
