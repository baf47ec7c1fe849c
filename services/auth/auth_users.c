/*
 * auth_users: Authelia's file authentication backend (users_database.yml) and argon2 passwords.
 *
 *   users:
 *     alice: { displayname: "Alice", password: "$argon2id$v=19$m=65536,t=3,p=4$...", email: a@x,
 *              groups: [admins, developers], disabled: false }
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/rand.h>

#include "auth.h"

/* Bounds on a stored hash's cost, so a bad users file cannot make one login take minutes or GBs. */
#define HASH_M_MAX (1024u * 1024u) /* KiB: 1 GiB */
#define HASH_T_MAX 64u
#define HASH_P_MAX 64u

/* A decoded $argon2{id,i,d}$[v=N$]m=M,t=T,p=P$salt$hash string. */
typedef struct {
    argon2_type type;
    uint32_t version, m, t, p;
    uint8_t salt[64], hash[128];
    size_t saltlen, hashlen;
} parsed_hash;

static long b64_decode(const char *in, size_t len, uint8_t *out, size_t outlen)
{
    uint32_t buf = 0;
    int bits = 0;
    size_t i, o = 0;
    for (i = 0; i < len; i++) {
        int c = (unsigned char)in[i], v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else
            return -1;
        buf = (buf << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            if (o >= outlen) return -1;
            out[o++] = (uint8_t)(buf >> (bits - 8));
            bits -= 8;
        }
    }
    return (long)o;
}

static int hash_parse(const char *enc, parsed_hash *h)
{
    const char *s = enc, *salt, *hash;
    unsigned long v = 0x10, mm = 0, tt = 0, pp = 0;
    long n1, n2;
    int n = 0;
    if (strncmp(s, "$argon2id$", 10) == 0)
        h->type = Argon2_id, s += 10;
    else if (strncmp(s, "$argon2i$", 9) == 0)
        h->type = Argon2_i, s += 9;
    else if (strncmp(s, "$argon2d$", 9) == 0)
        h->type = Argon2_d, s += 9;
    else
        return -1;
    if (strncmp(s, "v=", 2) == 0) {
        if (sscanf(s, "v=%lu$%n", &v, &n) != 1 || n == 0 || (v != 0x10 && v != 0x13)) return -1;
        s += n;
    }
    n = 0;
    if (sscanf(s, "m=%lu,t=%lu,p=%lu$%n", &mm, &tt, &pp, &n) != 3 || n == 0) return -1;
    if (mm == 0 || mm > HASH_M_MAX || tt == 0 || tt > HASH_T_MAX || pp == 0 || pp > HASH_P_MAX || mm < 8 * pp)
        return -1;
    salt = s + n;
    hash = strchr(salt, '$');
    if (!hash) return -1;
    n1 = b64_decode(salt, (size_t)(hash - salt), h->salt, sizeof(h->salt));
    hash++;
    n2 = b64_decode(hash, strlen(hash), h->hash, sizeof(h->hash));
    if (n1 < 8 || n2 < 4) return -1;
    h->version = (uint32_t)v;
    h->m = (uint32_t)mm, h->t = (uint32_t)tt, h->p = (uint32_t)pp;
    h->saltlen = (size_t)n1;
    h->hashlen = (size_t)n2;
    return 0;
}

static int hash_params(const char *enc, argon2_type *type, uint32_t *m, uint32_t *t, uint32_t *p)
{
    parsed_hash h;
    if (hash_parse(enc, &h) < 0) return -1;
    *type = h.type, *m = h.m, *t = h.t, *p = h.p;
    return 0;
}

/* Verified with one thread whatever the hash's parallelism (lanes are computed one after the
 * other: same result), so a pool of N workers uses at most N cores. */
int auth_password_verify(const char *encoded, const char *pw, size_t pwlen)
{
    parsed_hash h;
    uint8_t out[sizeof(h.hash)];
    argon2_context ctx;
    int rc;
    if (strlen(encoded) > AUTH_HASH_MAX || hash_parse(encoded, &h) < 0 || pwlen > AUTH_PASSWORD_MAX)
        return -1;
    memset(&ctx, 0, sizeof(ctx));
    ctx.out = out;
    ctx.outlen = (uint32_t)h.hashlen;
    ctx.pwd = (uint8_t *)(uintptr_t)pw;
    ctx.pwdlen = (uint32_t)pwlen;
    ctx.salt = h.salt;
    ctx.saltlen = (uint32_t)h.saltlen;
    ctx.t_cost = h.t;
    ctx.m_cost = h.m;
    ctx.lanes = h.p;
    ctx.threads = 1;
    ctx.version = h.version;
    ctx.flags = ARGON2_DEFAULT_FLAGS;
    rc = argon2_verify_ctx(&ctx, (const char *)h.hash, h.type);
    OPENSSL_cleanse(out, sizeof(out));
    if (rc == ARGON2_OK) return 1;
    if (rc == ARGON2_VERIFY_MISMATCH) return 0;
    return -1;
}

int auth_password_hash(const auth_argon2_params *p, const char *pw, size_t pwlen, char *out, size_t outlen)
{
    uint8_t salt[64];
    size_t need;
    if (p->salt_len < 8 || p->salt_len > sizeof(salt) || RAND_bytes(salt, (int)p->salt_len) != 1) return -1;
    need = argon2_encodedlen(p->t_cost, p->m_kib, p->parallelism, p->salt_len, p->key_len,
                             (argon2_type)p->variant);
    if (need > outlen) return -1;
    if (argon2_hash(p->t_cost, p->m_kib, p->parallelism, pw, pwlen, salt, p->salt_len, NULL, p->key_len, out,
                    outlen, (argon2_type)p->variant, ARGON2_VERSION_13) != ARGON2_OK)
        return -1;
    return 0;
}

/* Values that end up in response headers (Remote-Name, Remote-Email, Remote-Groups): printable. */
static int header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f) return 0;
    return 1;
}

static int user_cmp(const void *a, const void *b)
{
    return strcmp(((const auth_user *)a)->name, ((const auth_user *)b)->name);
}

static int load_user(const xt_doc *doc, const xt_node *key, const xt_node *n, auth_user *u, char *err,
                     size_t errlen)
{
    static const char *const keys[] = {"displayname", "password", "email", "groups", "disabled", NULL};
    char where[AUTH_NAME_MAX + 16];
    const xt_node *v;
    const char *s;
    size_t i, len = 0;
    argon2_type type;
    uint32_t m, t, p;

    u->name = key->str;
    if (strlen(u->name) == 0 || strlen(u->name) > AUTH_NAME_MAX)
        return xt_conf_error(err, errlen, doc, key, "user name must be 1-%d bytes", AUTH_NAME_MAX);
    for (s = u->name; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == ',' || *s == ':' || (unsigned char)*s == 0x7f)
            return xt_conf_error(err, errlen, doc, key, "user name '%s': no spaces, ',' or ':'", u->name);
    snprintf(where, sizeof(where), "user '%s'", u->name);
    if (xt_conf_want_map(doc, n, where, err, errlen) < 0 ||
        xt_conf_check_keys(doc, n, keys, where, err, errlen) < 0)
        return -1;
    if (!(v = xt_map_get(n, "password")))
        return xt_conf_error(err, errlen, doc, n, "%s: 'password' is required", where);
    if (xt_conf_string(doc, v, "password", &s, err, errlen) < 0) return -1;
    if (strlen(s) > AUTH_HASH_MAX || hash_params(s, &type, &m, &t, &p) < 0)
        return xt_conf_error(
            err, errlen, doc, v,
            "%s: password must be an argon2 hash ($argon2id$v=19$m=...,t=...,p=...$salt$hash)"
            " within bounds (m <= 1 GiB, t <= 64, p <= 64)",
            where);
    u->password = (char *)s;
    {
        uint8_t md[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)s, strlen(s), md);
        memcpy(u->pwtag, md, AUTH_PWTAG_BYTES);
    }
    u->displayname = u->name;
    if ((v = xt_map_get(n, "displayname")) && !v->is_null) {
        if (xt_conf_string(doc, v, "displayname", &s, err, errlen) < 0) return -1;
        u->displayname = (char *)s;
        if (!header_safe(s) || strlen(s) > 256)
            return xt_conf_error(err, errlen, doc, v, "%s: displayname: control characters or too long",
                                 where);
    }
    u->email = "";
    if ((v = xt_map_get(n, "email")) && !v->is_null) {
        if (xt_conf_string(doc, v, "email", &s, err, errlen) < 0) return -1;
        u->email = (char *)s;
        if (!header_safe(s) || strlen(s) > 256)
            return xt_conf_error(err, errlen, doc, v, "%s: email: control characters or too long", where);
    }
    if ((v = xt_map_get(n, "disabled")) && xt_conf_bool(doc, v, "disabled", &u->disabled, err, errlen) < 0)
        return -1;
    if ((v = xt_map_get(n, "groups")) && !v->is_null) {
        if (xt_conf_strv(doc, v, "groups", 1, 0, &u->groups, err, errlen) < 0) return -1;
    } else {
        u->groups = calloc(1, sizeof(char *));
        if (!u->groups) return xt_conf_error(err, errlen, doc, n, "out of memory");
    }
    for (i = 0; u->groups[i]; i++) {
        if (strlen(u->groups[i]) == 0 || strlen(u->groups[i]) > AUTH_NAME_MAX || strchr(u->groups[i], ',') ||
            !header_safe(u->groups[i]))
            return xt_conf_error(err, errlen, doc, v, "%s: group names are 1-%d bytes without ','", where,
                                 AUTH_NAME_MAX);
        len += strlen(u->groups[i]) + 1;
    }
    u->groups_csv = calloc(1, len + 1);
    if (!u->groups_csv) return xt_conf_error(err, errlen, doc, n, "out of memory");
    for (i = 0, len = 0; u->groups[i]; i++) {
        size_t gl = strlen(u->groups[i]);
        if (i) u->groups_csv[len++] = ',';
        memcpy(u->groups_csv + len, u->groups[i], gl);
        len += gl;
    }
    return 0;
}

int auth_users_load(const char *path, auth_users **out, char *err, size_t errlen)
{
    auth_users *u = calloc(1, sizeof(*u));
    const xt_node *users;
    size_t i;
    static const char *const keys[] = {"users", NULL};

    *out = NULL;
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (xt_conf_load_file(path, &u->doc, err, errlen) < 0) goto fail;
    if (u->doc->root == NULL) {
        xt_conf_error(err, errlen, u->doc, NULL, "empty users database (expected 'users:')");
        goto fail;
    }
    if (xt_conf_want_map(u->doc, u->doc->root, "users database", err, errlen) < 0 ||
        xt_conf_check_keys(u->doc, u->doc->root, keys, "users database", err, errlen) < 0)
        goto fail;
    users = xt_map_get(u->doc->root, "users");
    if (!users || users->is_null) goto done;
    if (xt_conf_want_map(u->doc, users, "users", err, errlen) < 0) goto fail;
    u->v = calloc(users->len ? users->len : 1, sizeof(auth_user));
    if (!u->v) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (i = 0; i < users->len; i++) {
        u->n = i + 1;
        if (load_user(u->doc, users->keys[i], users->items[i], &u->v[i], err, errlen) < 0) goto fail;
    }
    qsort(u->v, u->n, sizeof(auth_user), user_cmp);
done:
    *out = u;
    return 0;
fail:
    auth_users_free(u);
    return -1;
}

void auth_users_free(auth_users *u)
{
    size_t i;
    if (!u) return;
    for (i = 0; i < u->n; i++) {
        xt_strv_free(u->v[i].groups);
        free(u->v[i].groups_csv);
    }
    free(u->v);
    xt_doc_free(u->doc);
    free(u);
}

const auth_user *auth_users_find(const auth_users *u, const char *name)
{
    auth_user key;
    if (!u || !u->n) return NULL;
    key.name = (char *)name;
    return bsearch(&key, u->v, u->n, sizeof(auth_user), user_cmp);
}
