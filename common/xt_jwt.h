/*
 * xt_jwt: NATS JWT v2 (operator, account and user claims), signed with nkeys (xt_nkey), and the
 * .creds file nats.c and the nats CLI read.
 *
 * A JWT is base64url(header) "." base64url(claims) "." base64url(Ed25519 signature of the first two
 * parts), header {"typ":"JWT","alg":"ed25519-nkey"}. Claims: jti (hash of the claims), iat, iss
 * (the signer's public nkey), sub (the subject's public nkey), name, optional exp, and `nats`
 * (the type-specific part, with "type" and "version":2). nats-server checks the signature, that the
 * issuer may sign this type (operator -> account -> user), expiry and the account's revocations.
 */
#ifndef XT_JWT_H
#define XT_JWT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "xt_nkey.h"

/* Account limits. -1 = unlimited (NATS's NoLimit). JetStream is enabled for the account when
 * mem_storage or disk_storage is not 0. */
typedef struct xt_jwt_account_limits {
    int64_t subs, data, payload, imports, exports, conn, leaf;
    int64_t mem_storage, disk_storage, streams, consumer, max_ack_pending;
    int64_t mem_max_stream_bytes, disk_max_stream_bytes;
    int max_bytes_required; /* every stream must declare max_bytes */
} xt_jwt_account_limits;

/* Unlimited core limits, JetStream off. */
void xt_jwt_account_limits_default(xt_jwt_account_limits *lim);

/* Operator claims: `operator_pub` self-signed, naming the system account. New reference. */
json_t *xt_jwt_operator_claims(const char *name, const char *operator_pub, const char *system_account);

/* Account claims for `account_pub`. revocations: {"<user pubkey>": unix seconds} or NULL (borrowed,
 * copied); signing_keys: array of account public keys or NULL (borrowed, copied). New reference. */
json_t *xt_jwt_account_claims(const char *name, const char *account_pub, const xt_jwt_account_limits *lim,
                              json_t *revocations, json_t *signing_keys);

/* User claims for `user_pub`. permissions: {"pub":{allow,deny},"sub":{allow,deny},"resp":{max,ttl}}
 * (each part optional; borrowed, copied) merged into `nats`; expires: unix seconds, 0 = never;
 * issuer_account: the account's public key when a signing key signs, else NULL. subs/data/payload
 * limits are -1 (the account's apply) unless permissions carries them. New reference. */
json_t *xt_jwt_user_claims(const char *name, const char *user_pub, json_t *permissions, int64_t expires,
                           const char *issuer_account);

/* Sign claims with `issuer`: sets iss, iat (now, unless present) and jti in claims, then returns the
 * JWT (malloc'd, caller frees) or NULL with err filled. */
char *xt_jwt_encode(json_t *claims, const xt_nkey *issuer, char *err, size_t errlen);

/* Split and verify a JWT: header alg, the signature by its `iss`, and exp (expired -> refused when
 * now != 0; pass the current unix time). Returns the claims (new reference) or NULL with err. */
json_t *xt_jwt_decode(const char *jwt, int64_t now, char *err, size_t errlen);

/* A .creds file (user JWT + user seed, the delimited format of nsc) into out. Returns the length or
 * -1 if it does not fit. The result holds a secret. */
long xt_jwt_creds(const char *jwt, const char *seed, char *out, size_t outlen);

/* base64url without padding; returns text length or -1 if out is too small. */
long xt_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
/* returns byte count or -1 on a bad character or overflow. */
long xt_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outlen);

#endif
