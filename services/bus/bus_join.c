/* bus_join: an edge node's join bundle (contract in bus_join.h). */
#include "bus_join.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xt_jwt.h"

#define JOIN_TYPE "xtask-join"

static int sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n != 32) return -1;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* The text of a delimited block of a .creds file (after `begin`, up to the newline), malloc'd. */
static char *creds_block(const char *creds, const char *begin)
{
    const char *p = strstr(creds, begin);
    if (p == NULL) return NULL;
    p += strlen(begin);
    const char *e = strchr(p, '\n');
    return e ? strndup(p, (size_t)(e - p)) : NULL;
}

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

char *bus_join_encode(const xt_nkey *account, const char *node, const char *const *caps, size_t ncaps,
                      const char *const *tags, size_t ntags, const char *const *hubs, size_t nhubs,
                      const char *ca_pem, const char *creds, int64_t exp, char *err, size_t errlen)
{
    char *jwt = NULL, *user_jwt = NULL, *text = NULL, *out = NULL, hash[65];
    json_t *claims = NULL, *ucl = NULL, *b = NULL;
    if (nhubs == 0 || nhubs > BUS_JOIN_MAX_HUBS || ncaps > BUS_JOIN_MAX_CAPS || ntags > BUS_JOIN_MAX_TAGS) {
        snprintf(err, errlen, "join bundle: 1-%d hub URLs, at most %d capabilities and %d tags",
                 BUS_JOIN_MAX_HUBS, BUS_JOIN_MAX_CAPS, BUS_JOIN_MAX_TAGS);
        goto out;
    }
    user_jwt = creds_block(creds, "-----BEGIN NATS USER JWT-----\n");
    ucl = user_jwt ? xt_jwt_decode(user_jwt, 0, err, errlen) : NULL;
    const char *upub = json_string_value(json_object_get(ucl, "sub"));
    if (upub == NULL || sha256_hex(ca_pem, hash) != 0) {
        if (ucl) snprintf(err, errlen, "join bundle: the credential or CA is unreadable");
        goto out;
    }
    claims = json_pack("{ss ss s{ss si ss s:o s:o s:o ss}}", "sub", upub, "name", node, "nats", "type",
                       JOIN_TYPE, "version", 2, "node", node, "caps", str_array(caps, ncaps), "tags",
                       str_array(tags, ntags), "hubs", str_array(hubs, nhubs), "ca_sha256", hash);
    if (claims && exp > 0) json_object_set_new(claims, "exp", json_integer((json_int_t)exp));
    jwt = claims ? xt_jwt_encode(claims, account, err, errlen) : NULL;
    if (jwt == NULL) goto out;
    b = json_pack("{si ss ss ss}", "v", 1, "join", jwt, "creds", creds, "ca", ca_pem);
    text = b ? json_dumps(b, JSON_COMPACT) : NULL;
    size_t len = text ? strlen(text) : 0, cap = len * 4 / 3 + 8 + sizeof(BUS_JOIN_PREFIX);
    out = text ? malloc(cap) : NULL;
    if (out == NULL) {
        snprintf(err, errlen, "join bundle: out of memory");
        goto out;
    }
    memcpy(out, BUS_JOIN_PREFIX, sizeof(BUS_JOIN_PREFIX));
    size_t pl = sizeof(BUS_JOIN_PREFIX) - 1;
    if (xt_b64url_encode((const unsigned char *)text, len, out + pl, cap - pl) < 0 ||
        strlen(out) >= BUS_JOIN_MAX) {
        snprintf(err, errlen, "join bundle: too large");
        free(out);
        out = NULL;
    }
out:
    if (text) OPENSSL_cleanse(text, strlen(text));
    free(text);
    free(jwt);
    free(user_jwt);
    json_decref(claims);
    json_decref(ucl);
    json_decref(b); /* holds the seed: jansson frees without clearing; the CLI exits soon after */
    return out;
}

void bus_join_free(bus_join *j)
{
    if (j == NULL) return;
    free(j->node);
    for (size_t i = 0; i < j->ncaps; i++)
        free(j->caps[i]);
    for (size_t i = 0; i < j->ntags; i++)
        free(j->tags[i]);
    for (size_t i = 0; i < j->nhubs; i++)
        free(j->hubs[i]);
    free(j->ca);
    if (j->creds) OPENSSL_cleanse(j->creds, strlen(j->creds));
    free(j->creds);
    memset(j, 0, sizeof(*j));
}

/* Copy a JSON array of strings into v (at most max). -1 if not an array of strings or too long. */
static int take_strings(json_t *a, char **v, size_t *n, size_t max)
{
    size_t i;
    json_t *e;
    if (!json_is_array(a) || json_array_size(a) > max) return -1;
    json_array_foreach(a, i, e)
    {
        if (!json_is_string(e) || (v[i] = strdup(json_string_value(e))) == NULL) return -1;
        *n = i + 1;
    }
    return 0;
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int bus_join_parse(const char *text, int64_t now, bus_join *out, char *err, size_t errlen)
{
    int rc = 2;
    unsigned char *raw = NULL;
    json_t *b = NULL, *jc = NULL, *uc = NULL;
    char *user_jwt = NULL, *seed = NULL, lerr[256], hash[65];
    xt_nkey k;
    memset(out, 0, sizeof(*out));
    memset(&k, 0, sizeof(k));
    while (text && (*text == ' ' || *text == '\n' || *text == '\r' || *text == '\t'))
        text++;
    size_t len = text ? strnlen(text, BUS_JOIN_MAX + 1) : 0;
    while (len > 0 &&
           (text[len - 1] == ' ' || text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == '\t'))
        len--;
    size_t pl = sizeof(BUS_JOIN_PREFIX) - 1;
    if (len > BUS_JOIN_MAX || len <= pl || strncmp(text, BUS_JOIN_PREFIX, pl) != 0) {
        snprintf(err, errlen,
                 "not a join bundle (want the text `xtask node add` printed, starting with '%s')",
                 BUS_JOIN_PREFIX);
        goto out;
    }
    raw = malloc(len + 1);
    long n = raw ? xt_b64url_decode(text + pl, len - pl, raw, len) : -1;
    if (n < 0) {
        snprintf(err, errlen, "join bundle: not base64url after '%s' (truncated or altered when pasted?)",
                 BUS_JOIN_PREFIX);
        goto out;
    }
    json_error_t je;
    b = json_loadb((const char *)raw, (size_t)n, 0, &je);
    const char *jwt = json_string_value(json_object_get(b, "join"));
    const char *creds = json_string_value(json_object_get(b, "creds"));
    const char *ca = json_string_value(json_object_get(b, "ca"));
    if (!json_is_object(b) || json_integer_value(json_object_get(b, "v")) != 1 || !jwt || !creds || !ca) {
        snprintf(err, errlen, "join bundle: not a version 1 bundle (join, creds and ca are required)");
        goto out;
    }
    /* signature first, expiry later: an altered bundle says so rather than "expired" */
    jc = xt_jwt_decode(jwt, 0, lerr, sizeof(lerr));
    json_t *nats = json_object_get(jc, "nats");
    if (jc == NULL || strcmp(json_string_value(json_object_get(nats, "type")) ?: "", JOIN_TYPE) != 0) {
        snprintf(err, errlen, "join bundle: its signature does not verify (%s): altered or forged",
                 jc ? "not an xtask-join JWT" : lerr);
        goto out;
    }
    user_jwt = creds_block(creds, "-----BEGIN NATS USER JWT-----\n");
    seed = creds_block(creds, "-----BEGIN USER NKEY SEED-----\n");
    uc = user_jwt ? xt_jwt_decode(user_jwt, 0, lerr, sizeof(lerr)) : NULL;
    if (uc == NULL || seed == NULL || xt_nkey_from_seed(seed, &k, lerr, sizeof(lerr)) != 0) {
        snprintf(err, errlen, "join bundle: the node credential is damaged (%s)", uc ? lerr : "no user JWT");
        goto out;
    }
    char kpub[XT_NKEY_PUBLIC_LEN + 1] = "";
    xt_nkey_public_text(&k, kpub, sizeof(kpub));
    const char *jiss = json_string_value(json_object_get(jc, "iss")),
               *uiss = json_string_value(json_object_get(uc, "iss")),
               *jsub = json_string_value(json_object_get(jc, "sub")),
               *usub = json_string_value(json_object_get(uc, "sub"));
    if (!jiss || !uiss || strcmp(jiss, uiss) != 0 || !jsub || !usub || strcmp(jsub, usub) != 0 ||
        strcmp(kpub, usub) != 0) {
        snprintf(err, errlen,
                 "join bundle: the credential is not the one the bundle was signed for (altered "
                 "or another node's)");
        goto out;
    }
    if (sha256_hex(ca, hash) != 0 ||
        strcmp(hash, json_string_value(json_object_get(nats, "ca_sha256")) ?: "") != 0) {
        snprintf(err, errlen,
                 "join bundle: the CA certificate is not the one the bundle was signed with (altered)");
        goto out;
    }
    json_int_t exp = json_integer_value(json_object_get(uc, "exp"));
    if (exp > 0 && now > 0 && exp <= now) {
        char t[32];
        fmt_time(exp, t, sizeof(t));
        snprintf(err, errlen,
                 "join bundle: the node credential expired at %s (ask an admin for a new one: "
                 "`xtask node revoke` then `xtask node add`)",
                 t);
        goto out;
    }
    const char *node = json_string_value(json_object_get(nats, "node"));
    if (node == NULL || (out->node = strdup(node)) == NULL ||
        take_strings(json_object_get(nats, "caps"), out->caps, &out->ncaps, BUS_JOIN_MAX_CAPS) != 0 ||
        take_strings(json_object_get(nats, "tags"), out->tags, &out->ntags, BUS_JOIN_MAX_TAGS) != 0 ||
        take_strings(json_object_get(nats, "hubs"), out->hubs, &out->nhubs, BUS_JOIN_MAX_HUBS) != 0 ||
        out->nhubs == 0 || (out->ca = strdup(ca)) == NULL || (out->creds = strdup(creds)) == NULL) {
        snprintf(err, errlen, "join bundle: node, caps, tags or hubs malformed");
        goto out;
    }
    snprintf(out->user_pub, sizeof(out->user_pub), "%s", usub);
    snprintf(out->account_pub, sizeof(out->account_pub), "%s", uiss);
    out->exp = exp;
    rc = 0;
out:
    if (rc != 0) bus_join_free(out);
    if (raw) OPENSSL_cleanse(raw, len + 1);
    free(raw);
    if (seed) OPENSSL_cleanse(seed, strlen(seed));
    free(seed);
    free(user_jwt);
    xt_nkey_wipe(&k);
    json_decref(b);
    json_decref(jc);
    json_decref(uc);
    return rc;
}
