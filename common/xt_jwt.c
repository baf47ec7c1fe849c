/* xt_jwt: NATS JWT v2 claims, signing and .creds files (contract in xt_jwt.h). */
#include "xt_jwt.h"

#include "xt_radix.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char jwt_header[] = "{\"typ\":\"JWT\",\"alg\":\"ed25519-nkey\"}";

long xt_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outlen)
{
    return xt_radix_encode(in, len, b64url, 6, out, outlen);
}

long xt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    if (len % 4 == 1) return -1; /* 6 bits cannot end a byte */
    return xt_radix_decode(in, len, b64url, 6, out, outlen);
}

void xt_jwt_account_limits_default(xt_jwt_account_limits *lim)
{
    memset(lim, 0, sizeof(*lim));
    lim->subs = lim->data = lim->payload = lim->imports = lim->exports = lim->conn = lim->leaf = -1;
}

static json_t *claims_base(const char *name, const char *sub, const char *type, json_t **nats)
{
    json_t *c = json_object();
    *nats = json_object();
    json_object_set_new(c, "name", json_string(name));
    json_object_set_new(c, "sub", json_string(sub));
    json_object_set_new(*nats, "type", json_string(type));
    json_object_set_new(*nats, "version", json_integer(2));
    json_object_set_new(c, "nats", *nats);
    return c;
}

json_t *xt_jwt_operator_claims(const char *name, const char *operator_pub, const char *system_account)
{
    json_t *nats;
    json_t *c = claims_base(name, operator_pub, "operator", &nats);
    if (system_account) json_object_set_new(nats, "system_account", json_string(system_account));
    return c;
}

json_t *xt_jwt_account_claims(const char *name, const char *account_pub, const xt_jwt_account_limits *lim,
                              json_t *revocations, json_t *signing_keys)
{
    json_t *nats;
    json_t *c = claims_base(name, account_pub, "account", &nats);
    json_t *l = json_pack("{sI sI sI sI sI sb sI sI}", "subs", (json_int_t)lim->subs, "data",
                          (json_int_t)lim->data, "payload", (json_int_t)lim->payload, "imports",
                          (json_int_t)lim->imports, "exports", (json_int_t)lim->exports, "wildcards", 1,
                          "conn", (json_int_t)lim->conn, "leaf", (json_int_t)lim->leaf);
    if (lim->mem_storage != 0 || lim->disk_storage != 0) {
        json_object_set_new(l, "mem_storage", json_integer(lim->mem_storage));
        json_object_set_new(l, "disk_storage", json_integer(lim->disk_storage));
        json_object_set_new(l, "streams", json_integer(lim->streams));
        json_object_set_new(l, "consumer", json_integer(lim->consumer));
        json_object_set_new(l, "max_ack_pending", json_integer(lim->max_ack_pending));
        json_object_set_new(l, "mem_max_stream_bytes", json_integer(lim->mem_max_stream_bytes));
        json_object_set_new(l, "disk_max_stream_bytes", json_integer(lim->disk_max_stream_bytes));
        if (lim->max_bytes_required) json_object_set_new(l, "max_bytes_required", json_true());
    }
    json_object_set_new(nats, "limits", l);
    /* A user JWT without permissions gets these: nothing, so a forgotten permission fails closed. */
    json_object_set_new(nats, "default_permissions", json_pack("{s{} s{}}", "pub", "sub"));
    if (revocations && json_object_size(revocations) > 0)
        json_object_set_new(nats, "revocations", json_deep_copy(revocations));
    if (signing_keys && json_array_size(signing_keys) > 0)
        json_object_set_new(nats, "signing_keys", json_deep_copy(signing_keys));
    return c;
}

json_t *xt_jwt_user_claims(const char *name, const char *user_pub, json_t *permissions, int64_t expires,
                           const char *issuer_account)
{
    json_t *nats;
    json_t *c = claims_base(name, user_pub, "user", &nats);
    json_object_set_new(nats, "subs", json_integer(-1));
    json_object_set_new(nats, "data", json_integer(-1));
    json_object_set_new(nats, "payload", json_integer(-1));
    if (permissions) {
        const char *k;
        json_t *v;
        json_object_foreach(permissions, k, v) json_object_set_new(nats, k, json_deep_copy(v));
    }
    if (issuer_account) json_object_set_new(nats, "issuer_account", json_string(issuer_account));
    if (expires > 0) json_object_set_new(c, "exp", json_integer(expires));
    return c;
}

/* jti: base32 of SHA-512/256 of the claims without jti, as the Go jwt library makes it. */
static int claims_hash(json_t *claims, char *out, size_t outlen)
{
    int rc = -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    json_object_del(claims, "jti");
    char *text = json_dumps(claims, JSON_COMPACT);
    if (text == NULL) goto out;
    if (EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha512_256(), NULL) != 1) goto out;
    if (xt_base32_encode(md, mdlen, out, outlen) < 0) goto out;
    rc = 0;
out:
    free(text);
    return rc;
}

char *xt_jwt_encode(json_t *claims, const xt_nkey *issuer, char *err, size_t errlen)
{
    char iss[XT_NKEY_PUBLIC_LEN + 1], jti[64];
    char *payload = NULL, *jwt = NULL, *result = NULL;
    unsigned char sig[XT_NKEY_SIG_LEN];
    if (!json_is_object(claims) || xt_nkey_public_text(issuer, iss, sizeof(iss)) != 0) {
        snprintf(err, errlen, "jwt: bad claims or issuer key");
        goto out;
    }
    json_object_set_new(claims, "iss", json_string(iss));
    if (!json_is_integer(json_object_get(claims, "iat")))
        json_object_set_new(claims, "iat", json_integer((json_int_t)time(NULL)));
    if (claims_hash(claims, jti, sizeof(jti)) != 0) {
        snprintf(err, errlen, "jwt: cannot hash the claims");
        goto out;
    }
    json_object_set_new(claims, "jti", json_string(jti));
    payload = json_dumps(claims, JSON_COMPACT);
    if (payload == NULL) {
        snprintf(err, errlen, "jwt: cannot serialize the claims");
        goto out;
    }
    size_t hlen = (sizeof(jwt_header) - 1) * 4 / 3 + 4, plen = strlen(payload) * 4 / 3 + 4;
    size_t cap = hlen + plen + 2 + (XT_NKEY_SIG_LEN * 4 / 3 + 4);
    jwt = malloc(cap);
    if (jwt == NULL) {
        snprintf(err, errlen, "jwt: out of memory");
        goto out;
    }
    long h = xt_b64url_encode((const unsigned char *)jwt_header, sizeof(jwt_header) - 1, jwt, cap);
    jwt[h] = '.';
    long p =
        xt_b64url_encode((const unsigned char *)payload, strlen(payload), jwt + h + 1, cap - (size_t)h - 1);
    size_t signed_len = (size_t)h + 1 + (size_t)p;
    if (xt_nkey_sign(issuer, jwt, signed_len, sig, err, errlen) != 0) goto out;
    jwt[signed_len] = '.';
    if (xt_b64url_encode(sig, sizeof(sig), jwt + signed_len + 1, cap - signed_len - 1) < 0) {
        snprintf(err, errlen, "jwt: signature does not fit");
        goto out;
    }
    result = jwt;
    jwt = NULL;
out:
    free(payload);
    free(jwt);
    return result;
}

json_t *xt_jwt_decode(const char *jwt, int64_t now, char *err, size_t errlen)
{
    json_t *claims = NULL, *result = NULL;
    unsigned char *buf = NULL;
    unsigned char sig[XT_NKEY_SIG_LEN + 1];
    size_t len = jwt ? strnlen(jwt, 65536) : 0;
    const char *d1 = len ? memchr(jwt, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt)) : NULL;
    if (d1 == NULL || d2 == NULL || len >= 65536) {
        snprintf(err, errlen, "jwt: not three dot-separated parts");
        goto out;
    }
    buf = malloc(len + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "jwt: out of memory");
        goto out;
    }
    long n = xt_b64url_decode(jwt, (size_t)(d1 - jwt), buf, len);
    if (n < 0) {
        snprintf(err, errlen, "jwt: header is not base64url");
        goto out;
    }
    buf[n] = '\0';
    json_t *hdr = json_loads((const char *)buf, 0, NULL);
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    int alg_ok = alg && strcmp(alg, "ed25519-nkey") == 0;
    json_decref(hdr);
    if (!alg_ok) {
        snprintf(err, errlen, "jwt: header alg is not ed25519-nkey");
        goto out;
    }
    n = xt_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf, len);
    if (n < 0) {
        snprintf(err, errlen, "jwt: claims are not base64url");
        goto out;
    }
    buf[n] = '\0';
    json_error_t je;
    claims = json_loads((const char *)buf, 0, &je);
    if (!json_is_object(claims)) {
        snprintf(err, errlen, "jwt: claims are not a JSON object");
        goto out;
    }
    long sl = xt_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - jwt), sig, sizeof(sig));
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    if (sl != XT_NKEY_SIG_LEN || iss == NULL ||
        !xt_nkey_verify(iss, jwt, (size_t)(d2 - jwt), sig, (size_t)sl)) {
        snprintf(err, errlen, "jwt: signature does not verify with its issuer");
        goto out;
    }
    json_t *exp = json_object_get(claims, "exp");
    if (now != 0 && json_is_integer(exp) && json_integer_value(exp) <= now) {
        snprintf(err, errlen, "jwt: expired");
        goto out;
    }
    if (!json_is_object(json_object_get(claims, "nats"))) {
        snprintf(err, errlen, "jwt: no nats claims");
        goto out;
    }
    result = claims;
    claims = NULL;
out:
    free(buf);
    json_decref(claims);
    return result;
}

long xt_jwt_creds(const char *jwt, const char *seed, char *out, size_t outlen)
{
    int n = snprintf(out, outlen,
                     "-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n"
                     "************************* IMPORTANT *************************\n"
                     "NKEY Seed printed below can be used to sign and prove identity.\n"
                     "NKEYs are sensitive and should be treated as secrets.\n\n"
                     "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n\n"
                     "*************************************************************\n",
                     jwt, seed);
    if (n < 0 || (size_t)n >= outlen) {
        if (outlen > 0) OPENSSL_cleanse(out, outlen);
        return -1;
    }
    return n;
}
