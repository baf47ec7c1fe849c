/* bus_pki: platform CA and leaf server certificate with OpenSSL 3.0 (contract in bus_pki.h). */
#include "bus_pki.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int fail(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char ossl[160] = "";
    if (e) ERR_error_string_n(e, ossl, sizeof(ossl));
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", ossl);
    ERR_clear_error();
    return -1;
}

static EVP_PKEY *new_p256(void)
{
    return EVP_EC_gen("P-256");
}

/* A BIO's contents as a malloc'd string. */
static char *bio_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) {
        memcpy(s, data, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

static int to_pem(EVP_PKEY *key, X509 *cert, char **key_pem, char **cert_pem)
{
    int rc = -1;
    BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
    if (!kb || !cb || PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
        PEM_write_bio_X509(cb, cert) != 1)
        goto out;
    *key_pem = bio_string(kb);
    *cert_pem = bio_string(cb);
    if (*key_pem && *cert_pem) rc = 0;
out:
    BIO_free_all(kb); /* the memory BIO clears nothing: the key text lived only in our process */
    BIO_free_all(cb);
    return rc;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int ok = ex && X509_add_ext(cert, ex, -1) == 1;
    X509_EXTENSION_free(ex);
    return ok ? 0 : -1;
}

/* A certificate with a random serial, `days` valid from one hour ago (clock skew between regions). */
static X509 *new_cert(EVP_PKEY *key, const char *cn, int days)
{
    X509 *c = X509_new();
    ASN1_INTEGER *serial = ASN1_INTEGER_new();
    BIGNUM *bn = BN_new();
    if (!c || !serial || !bn || BN_rand(bn, 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        !BN_to_ASN1_INTEGER(bn, serial) || X509_set_version(c, 2) != 1 ||
        X509_set_serialNumber(c, serial) != 1 || !X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
        !X509_gmtime_adj(X509_getm_notAfter(c), (long)days * 86400) || X509_set_pubkey(c, key) != 1) {
        X509_free(c);
        c = NULL;
    } else {
        X509_NAME *n = X509_get_subject_name(c);
        X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"xtask", -1, -1, 0);
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    }
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    return c;
}

int bus_pki_make_ca(const char *cn, int days, char **key_pem, char **cert_pem, char *err, size_t errlen)
{
    int rc = -1;
    EVP_PKEY *key = new_p256();
    X509 *c = key ? new_cert(key, cn, days) : NULL;
    if (!c) {
        rc = fail(err, errlen, "CA key/certificate");
        goto out;
    }
    X509_set_issuer_name(c, X509_get_subject_name(c));
    if (add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        add_ext(c, c, NID_subject_key_identifier, "hash") || X509_sign(c, key, EVP_sha256()) == 0 ||
        to_pem(key, c, key_pem, cert_pem) != 0) {
        rc = fail(err, errlen, "CA certificate");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(key);
    X509_free(c);
    return rc;
}

int bus_pki_want_sans(const char *const *dns, size_t ndns, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ndns + 1; i++) {
        const char *d = i < ndns ? dns[i] : "localhost";
        int dup = 0;
        for (size_t j = 0; j < i && j < ndns; j++)
            dup |= strcmp(dns[j], d) == 0;
        if (dup || d[0] == '\0') continue;
        int n = snprintf(out + o, outlen - o, "%sDNS:%s", o ? "," : "", d);
        if (n < 0 || (size_t)n >= outlen - o) return -1;
        o += (size_t)n;
    }
    return 0;
}

static EVP_PKEY *read_key(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

static X509 *read_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return c;
}

int bus_pki_make_server(const char *ca_key_pem, const char *ca_cert_pem, const char *const *dns, size_t ndns,
                        int days, char **key_pem, char **cert_pem, char *err, size_t errlen)
{
    int rc = -1;
    char sans[2048];
    EVP_PKEY *cakey = read_key(ca_key_pem), *key = NULL;
    X509 *cacert = read_cert(ca_cert_pem), *c = NULL;
    if (!cakey || !cacert) {
        rc = fail(err, errlen, "CA key or certificate unreadable");
        goto out;
    }
    size_t sl;
    if (bus_pki_want_sans(dns, ndns, sans, sizeof(sans)) != 0 ||
        (sl = strlen(sans),
         snprintf(sans + sl, sizeof(sans) - sl, ",IP:127.0.0.1,IP:::1") >= (int)(sizeof(sans) - sl))) {
        snprintf(err, errlen, "too many or too long domain names");
        goto out;
    }
    key = new_p256();
    c = key ? new_cert(key, ndns ? dns[0] : "localhost", days) : NULL;
    if (!c || X509_set_issuer_name(c, X509_get_subject_name(cacert)) != 1 ||
        add_ext(c, cacert, NID_basic_constraints, "critical,CA:FALSE") ||
        add_ext(c, cacert, NID_key_usage, "critical,digitalSignature,keyAgreement") ||
        add_ext(c, cacert, NID_ext_key_usage, "serverAuth") ||
        add_ext(c, cacert, NID_subject_alt_name, sans) ||
        add_ext(c, cacert, NID_authority_key_identifier, "keyid:always") ||
        X509_sign(c, cakey, EVP_sha256()) == 0 || to_pem(key, c, key_pem, cert_pem) != 0) {
        rc = fail(err, errlen, "server certificate");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_free(cakey);
    EVP_PKEY_free(key);
    X509_free(cacert);
    X509_free(c);
    return rc;
}

int bus_pki_cert_info(const char *cert_pem, const char *ca_cert_pem, char *sans, size_t sanslen,
                      long long *not_after, int *signed_by_ca, char *err, size_t errlen)
{
    int rc = -1;
    X509 *c = read_cert(cert_pem), *ca = ca_cert_pem ? read_cert(ca_cert_pem) : NULL;
    GENERAL_NAMES *gens = NULL;
    if (!c) {
        rc = fail(err, errlen, "certificate unreadable");
        goto out;
    }
    size_t o = 0;
    sans[0] = '\0';
    gens = X509_get_ext_d2i(c, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char v[300] = "";
        const char *kind = NULL;
        if (g->type == GEN_DNS) {
            kind = "DNS";
            snprintf(v, sizeof(v), "%.*s", ASN1_STRING_length(g->d.dNSName),
                     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        }
        if (!kind) continue;
        int n = snprintf(sans + o, sanslen - o, "%s%s:%s", o ? "," : "", kind, v);
        if (n < 0 || (size_t)n >= sanslen - o) break;
        o += (size_t)n;
    }
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(c), &tm) != 1) {
        rc = fail(err, errlen, "certificate expiry unreadable");
        goto out;
    }
    *not_after = (long long)timegm(&tm);
    *signed_by_ca = 0;
    if (ca) {
        EVP_PKEY *capub = X509_get0_pubkey(ca);
        *signed_by_ca = capub && X509_verify(c, capub) == 1;
    }
    ERR_clear_error();
    rc = 0;
out:
    GENERAL_NAMES_free(gens);
    X509_free(c);
    X509_free(ca);
    return rc;
}
