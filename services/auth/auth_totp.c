/*
 * auth_totp: RFC 6238 time-based one-time passwords (RFC 4226 HOTP over OpenSSL HMAC), and the
 * TOTP secrets store (a YAML map `user: BASE32`, mode 0600, replaced atomically).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"

static const EVP_MD *algo_md(auth_totp_algo a)
{
    switch (a) {
    case AUTH_TOTP_SHA256:
        return EVP_sha256();
    case AUTH_TOTP_SHA512:
        return EVP_sha512();
    default:
        return EVP_sha1();
    }
}

static const char *algo_name(auth_totp_algo a)
{
    return a == AUTH_TOTP_SHA256 ? "SHA256" : a == AUTH_TOTP_SHA512 ? "SHA512" : "SHA1";
}

uint32_t auth_hotp(const uint8_t *key, size_t keylen, uint64_t counter, int digits, auth_totp_algo algo)
{
    uint8_t msg[8], mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0, off;
    uint32_t bin, mod = 1;
    int i;

    for (i = 7; i >= 0; i--) {
        msg[i] = (uint8_t)(counter & 0xff);
        counter >>= 8;
    }
    if (!HMAC(algo_md(algo), key, (int)keylen, msg, sizeof(msg), mac, &maclen) || maclen < 20)
        return UINT32_MAX;
    off = mac[maclen - 1] & 0x0f;
    bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
          ((uint32_t)mac[off + 2] << 8) | mac[off + 3];
    for (i = 0; i < digits; i++)
        mod *= 10;
    return bin % mod;
}

int auth_totp_check(const uint8_t *key, size_t keylen, const char *code, int64_t now_s, int period, int skew,
                    int digits, auth_totp_algo algo, int64_t *last_step)
{
    uint32_t want = 0;
    int64_t step = now_s / period, s;
    int i, rc = AUTH_TOTP_WRONG;
    int64_t hit = -1;

    if ((int)strlen(code) != digits) return AUTH_TOTP_WRONG;
    for (i = 0; i < digits; i++) {
        if (code[i] < '0' || code[i] > '9') return AUTH_TOTP_WRONG;
        want = want * 10 + (uint32_t)(code[i] - '0');
    }
    /* check every step in the window (no early exit: timing does not tell which step matched). A code
     * of a step already used is told apart from a wrong one, so that the portal can say so: the caller
     * has proven the password already, and a used code is one the user typed right. */
    for (s = step - skew; s <= step + skew; s++) {
        uint32_t got;
        if (s < 0) continue;
        got = auth_hotp(key, keylen, (uint64_t)s, digits, algo);
        if (got != want) continue;
        if (s > *last_step && hit < 0) {
            hit = s;
            rc = AUTH_TOTP_OK;
        } else if (s <= *last_step && rc == AUTH_TOTP_WRONG) {
            rc = AUTH_TOTP_REUSED;
        }
    }
    if (rc == AUTH_TOTP_OK) *last_step = hit;
    return rc;
}

/* percent-encode for a URI component */
static int uri_put(char *out, size_t outlen, size_t *o, const char *s)
{
    long n = auth_url_encode(s, strlen(s), out + *o, outlen - *o);
    if (n < 0) return -1;
    *o += (size_t)n;
    return 0;
}

int auth_totp_uri(const char *issuer, const char *user, const char *secret_b32, auth_totp_algo algo,
                  int digits, int period, char *out, size_t outlen)
{
    size_t o = 0;
    int n;
#define PUTS(s)                                                                                              \
    do {                                                                                                     \
        size_t l_ = strlen(s);                                                                               \
        if (o + l_ >= outlen) return -1;                                                                     \
        memcpy(out + o, s, l_);                                                                              \
        o += l_;                                                                                             \
        out[o] = '\0';                                                                                       \
    } while (0)
    PUTS("otpauth://totp/");
    if (uri_put(out, outlen, &o, issuer) < 0) return -1;
    PUTS(":");
    if (uri_put(out, outlen, &o, user) < 0) return -1;
    PUTS("?secret=");
    PUTS(secret_b32);
    PUTS("&issuer=");
    if (uri_put(out, outlen, &o, issuer) < 0) return -1;
    n = snprintf(out + o, outlen - o, "&algorithm=%s&digits=%d&period=%d", algo_name(algo), digits, period);
    if (n < 0 || (size_t)n >= outlen - o) return -1;
#undef PUTS
    return 0;
}

int auth_totp_store_load(const char *path, auth_totp_store *st, char *err, size_t errlen)
{
    xt_doc *doc = NULL;
    size_t i;
    int rc = -1;

    memset(st, 0, sizeof(*st));
    if (access(path, F_OK) != 0 && errno == ENOENT) return 0;
    if (xt_conf_load_file(path, &doc, err, errlen) < 0) return -1;
    if (doc->root == NULL || (doc->root->kind == XT_NODE_SCALAR && doc->root->is_null)) {
        rc = 0;
        goto out;
    }
    if (xt_conf_want_map(doc, doc->root, "totp store", err, errlen) < 0) goto out;
    st->v = calloc(doc->root->len ? doc->root->len : 1, sizeof(auth_totp_entry));
    if (!st->v) goto out;
    for (i = 0; i < doc->root->len; i++) {
        const char *name = doc->root->keys[i]->str, *sec;
        auth_totp_entry *e = &st->v[st->n];
        long kl;
        if (strlen(name) > AUTH_NAME_MAX) {
            xt_conf_error(err, errlen, doc, doc->root->keys[i], "user name too long");
            goto out;
        }
        if (xt_conf_string(doc, doc->root->items[i], "totp secret", &sec, err, errlen) < 0) goto out;
        kl = auth_base32_decode(sec, strlen(sec), e->key, sizeof(e->key));
        if (kl < 10) {
            xt_conf_error(err, errlen, doc, doc->root->items[i], "bad base32 TOTP secret for '%s'", name);
            goto out;
        }
        memcpy(e->name, name, strlen(name) + 1);
        e->keylen = (size_t)kl;
        e->last_step = -1;
        st->n++;
    }
    rc = 0;
out:
    xt_doc_free(doc);
    if (rc < 0) auth_totp_store_free(st);
    return rc;
}

void auth_totp_store_free(auth_totp_store *st)
{
    if (!st) return;
    if (st->v) OPENSSL_cleanse(st->v, st->n * sizeof(auth_totp_entry));
    free(st->v);
    st->v = NULL;
    st->n = 0;
}

auth_totp_entry *auth_totp_store_find(auth_totp_store *st, const char *user)
{
    size_t i;
    for (i = 0; i < st->n; i++)
        if (strcmp(st->v[i].name, user) == 0) return &st->v[i];
    return NULL;
}

static int name_is_plain(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' ||
              *s == '_' || *s == '-' || *s == '@'))
            return 0;
    return 1;
}

int auth_totp_store_set(const char *path, const char *user, const char *secret_b32, char *err, size_t errlen)
{
    auth_totp_store st;
    char tmp[4096];
    FILE *f = NULL;
    int fd, rc = -1;
    size_t i;
    char b32[128];

    if (strlen(user) == 0 || strlen(user) > AUTH_NAME_MAX || !name_is_plain(user)) {
        snprintf(err, errlen, "bad user name '%s'", user);
        return -1;
    }
    if (auth_totp_store_load(path, &st, err, errlen) < 0) return -1;
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp)) {
        snprintf(err, errlen, "%s: path too long", path);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        goto out;
    }
    fprintf(f, "# xtask-auth TOTP secrets (user: base32 secret). Keep private (0600).\n");
    for (i = 0; i < st.n; i++) {
        if (strcmp(st.v[i].name, user) == 0 || !name_is_plain(st.v[i].name)) continue;
        if (auth_base32_encode(st.v[i].key, st.v[i].keylen, b32, sizeof(b32)) < 0) continue;
        fprintf(f, "\"%s\": \"%s\"\n", st.v[i].name, b32);
    }
    fprintf(f, "\"%s\": \"%s\"\n", user, secret_b32);
    OPENSSL_cleanse(b32, sizeof(b32));
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        fclose(f);
        unlink(tmp);
        goto out;
    }
    fclose(f);
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "rename %s: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    rc = 0;
out:
    auth_totp_store_free(&st);
    return rc;
}
