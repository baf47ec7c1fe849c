/*
 * xtask-auth: an Authelia-compatible authentication service for forward-auth.
 *
 * Library first: every module below is usable (and unit-tested) without the HTTP server.
 * The server (auth_server.c) owns one h2o event loop; every table here is touched only from that
 * loop thread, except the hashing worker pool (auth_pool.c) and the optional NATS KV store
 * (auth_kv.c), which cross into the loop by h2o_multithread messages.
 *
 * Conventions: functions that can fail return 0 (or a length) on success and -1 on failure, with a
 * human message in the caller's `err` buffer where one is taken. Times are milliseconds on the
 * wall clock (ms since the epoch) unless a name says otherwise; the clock is always passed in, so
 * tests can inject it.
 */
#ifndef XT_AUTH_H
#define XT_AUTH_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "xt_conf.h"
#include "xt_nats.h"

/* --- bounds ------------------------------------------------------------------------------- */

#define AUTH_NAME_MAX 64      /* user name, group name */
#define AUTH_URL_MAX 2048     /* rd, target URL, portal URL */
#define AUTH_HOST_MAX 256     /* X-Forwarded-Host */
#define AUTH_PASSWORD_MAX 256 /* a password (argon2 input) */
#define AUTH_HASH_MAX 256     /* an encoded $argon2id$ hash */
#define AUTH_SID_BYTES 32     /* 256-bit session ids */
#define AUTH_SID_HEX (2 * AUTH_SID_BYTES)
#define AUTH_MAX_RULES 256
#define AUTH_PWTAG_BYTES 8      /* auth_user.pwtag */
#define AUTH_MAX_RETRIES_MAX 32 /* regulation.max_retries upper bound (ring size) */
#define AUTH_BODY_MAX (64 * 1024)

typedef struct auth_config auth_config;

/* --- auth_util.c ---------------------------------------------------------------------------- */

/* Authelia durations: "90" (seconds), "5m", "1h30m", "2d", "1w", "1M" (30 days), "1y" (365 days),
 * "250ms". "-1" gives -1 when allow_neg (remember_me: disabled). -1 on bad syntax or overflow. */
int auth_duration_parse(const char *s, int allow_neg, int64_t *out_ms);

/* RFC 4648 base32 (no padding written; padding and lower case accepted on input). */
long auth_base32_encode(const uint8_t *in, size_t len, char *out, size_t outlen);
long auth_base32_decode(const char *in, size_t len, uint8_t *out, size_t outlen);

/* Lower-case hex of `len` bytes into out (2*len+1 bytes). */
void auth_hex_encode(const uint8_t *in, size_t len, char *out);
/* Exactly 2*outlen hex digits (any case) into outlen bytes; -1 otherwise. */
int auth_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen);

/* Constant-time equality of two byte strings (length leaks, content does not). */
int auth_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Milliseconds since the epoch (CLOCK_REALTIME) and monotonic milliseconds. */
int64_t auth_now_ms(void);
int64_t auth_mono_ms(void);

/* --- auth_rules.c: access_control --------------------------------------------------------- */

/* Authelia's levels, ordered as Authelia orders them. */
typedef enum {
    AUTH_POLICY_BYPASS = 0,
    AUTH_POLICY_ONE_FACTOR,
    AUTH_POLICY_TWO_FACTOR,
    AUTH_POLICY_DENY
} auth_policy;

/* Authentication level of a request (Authelia's authentication.Level). */
typedef enum { AUTH_LEVEL_NONE = 0, AUTH_LEVEL_ONE = 1, AUTH_LEVEL_TWO = 2 } auth_level;

/* One subject term: `user:NAME` or `group:NAME`. */
typedef struct {
    int is_group;
    char *name;
} auth_subject_term;

/* Terms that must all hold (Authelia's inner list). */
typedef struct {
    auth_subject_term *terms;
    size_t n;
} auth_subject_and;

/* One access_control rule; every present criterion must match. */
typedef struct {
    char **domains;     /* lower-case; "*.example.com" matches strict subdomains */
    regex_t *resources; /* precompiled REG_EXTENDED|REG_NOSUB, matched on path[?query] */
    size_t nresources;
    auth_subject_and *subjects; /* OR of ANDs; none = any subject */
    size_t nsubjects;
    unsigned methods; /* bit set of AUTH_METHOD_*; 0 = any */
    auth_policy policy;
    int line; /* where the rule starts in the config (for logs) */
} auth_rule;

typedef struct {
    auth_policy default_policy;
    auth_rule *rules;
    size_t nrules;
} auth_acl;

/* What a rule is matched against. user == NULL is the anonymous subject. */
typedef struct {
    const char *host; /* lower-case, without port */
    const char *path; /* normalized path, with "?query" if any */
    unsigned method;  /* one AUTH_METHOD_* bit */
    const char *user;
    char *const *groups; /* NULL-terminated; may be NULL */
} auth_object;

/* The method bit for an HTTP method name (case-sensitive, as Authelia), or 0 if unknown. */
unsigned auth_method_bit(const char *m, size_t len);

/* Parse the `access_control` node into acl (caller frees with auth_acl_free). */
int auth_acl_parse(const xt_doc *doc, const xt_node *node, auth_acl *acl, char *err, size_t errlen);
void auth_acl_free(auth_acl *acl);

/* First matching rule wins (its index in *rule_index, -1 for the default policy). As in Authelia,
 * the anonymous subject matches every subject criterion (so a subject rule asks for a login);
 * *has_subjects tells whether the matching rule had subjects. */
auth_policy auth_acl_match(const auth_acl *acl, const auth_object *obj, int *rule_index, int *has_subjects);

/* --- auth_regulation.c ---------------------------------------------------------------------- */

typedef struct auth_regulation auth_regulation;

#define AUTH_REG_USER 1u /* regulation.modes: per user name */
#define AUTH_REG_IP 2u   /* per client address, across every name it tries */

/* max_retries 0 disables. capacity bounds the number of user names tracked (oldest evicted). */
auth_regulation *auth_regulation_new(int max_retries, int64_t find_time_ms, int64_t ban_time_ms,
                                     size_t capacity);
void auth_regulation_free(auth_regulation *r);
/* Authelia's Regulate(): 1 and *until_ms when `user` is banned at now_ms, else 0. */
int auth_regulation_banned(auth_regulation *r, const char *user, int64_t now_ms, int64_t *until_ms);
/* Authelia's Mark(): record one attempt. Attempts made while banned are not counted. */
void auth_regulation_mark(auth_regulation *r, const char *user, int success, int banned, int64_t now_ms);
/* Count an attempt before checking it: 1 and *until_ms when `user` is banned (nothing recorded),
 * else 0 and a failed attempt recorded now, whose *ticket auth_regulation_succeed() turns into a
 * success once the check passed. Concurrent attempts are therefore each counted. */
int auth_regulation_begin(auth_regulation *r, const char *user, int64_t now_ms, int64_t *until_ms,
                          uint64_t *ticket);
void auth_regulation_succeed(auth_regulation *r, const char *user, uint64_t ticket);
/* The attempt of `ticket` was right but must not end the count (an address's ring: an attacker's own
 * successful sign-in between guesses at other names): it is left out of the count instead. */
void auth_regulation_forget(auth_regulation *r, const char *user, uint64_t ticket);

/* --- auth_totp.c ---------------------------------------------------------------------------- */

typedef enum { AUTH_TOTP_SHA1 = 0, AUTH_TOTP_SHA256, AUTH_TOTP_SHA512 } auth_totp_algo;

/* HOTP (RFC 4226) value for one counter, `digits` long. */
uint32_t auth_hotp(const uint8_t *key, size_t keylen, uint64_t counter, int digits, auth_totp_algo algo);

/* What auth_totp_check found. */
enum { AUTH_TOTP_WRONG = 0, AUTH_TOTP_OK = 1, AUTH_TOTP_REUSED = 2 };

/* Check a code against the time steps now-skew..now+skew. A step at or before *last_step is
 * refused (a code is usable once); on success *last_step is updated. Returns AUTH_TOTP_OK,
 * AUTH_TOTP_REUSED (the code of a step already used, and no unused step matched) or AUTH_TOTP_WRONG. */
int auth_totp_check(const uint8_t *key, size_t keylen, const char *code, int64_t now_s, int period, int skew,
                    int digits, auth_totp_algo algo, int64_t *last_step);

/* otpauth://totp/ISSUER:USER?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30 */
int auth_totp_uri(const char *issuer, const char *user, const char *secret_b32, auth_totp_algo algo,
                  int digits, int period, char *out, size_t outlen);

/* The TOTP store: a YAML map `user: BASE32SECRET`, written 0600. */
typedef struct {
    char name[AUTH_NAME_MAX + 1];
    uint8_t key[64];
    size_t keylen;
    int64_t last_step; /* in memory only: last accepted time step */
} auth_totp_entry;

typedef struct {
    auth_totp_entry *v;
    size_t n;
} auth_totp_store;

/* A missing file is an empty store. */
int auth_totp_store_load(const char *path, auth_totp_store *st, char *err, size_t errlen);
void auth_totp_store_free(auth_totp_store *st);
auth_totp_entry *auth_totp_store_find(auth_totp_store *st, const char *user);
/* Add or replace user's secret in the file at path (atomically, 0600). */
int auth_totp_store_set(const char *path, const char *user, const char *secret_b32, char *err, size_t errlen);

/* --- auth_users.c --------------------------------------------------------------------------- */

typedef struct {
    char *name;
    char *displayname;
    char *password; /* encoded hash */
    char *email;
    char **groups; /* NULL-terminated */
    char *groups_csv;
    int disabled;
    uint8_t pwtag[AUTH_PWTAG_BYTES]; /* SHA-256 of `password`, truncated: a reload that changes it
                                        ends the user's sessions (auth_server.c reload_users) */
} auth_user;

typedef struct {
    auth_user *v; /* sorted by name */
    size_t n;
    xt_doc *doc; /* owns the strings */
} auth_users;

typedef struct {
    int variant; /* Argon2_id etc. (argon2.h) */
    uint32_t t_cost, m_kib, parallelism, salt_len, key_len;
} auth_argon2_params;

/* Load an Authelia users database. */
int auth_users_load(const char *path, auth_users **out, char *err, size_t errlen);
void auth_users_free(auth_users *u);
const auth_user *auth_users_find(const auth_users *u, const char *name);

/* 1 the password matches, 0 it does not, -1 the hash is malformed or out of bounds. */
int auth_password_verify(const char *encoded, const char *pw, size_t pwlen);
/* Hash with a random salt into out ($argon2id$v=19$m=...,t=...,p=...$salt$hash). */
int auth_password_hash(const auth_argon2_params *p, const char *pw, size_t pwlen, char *out, size_t outlen);

/* --- auth_http.c: request parsing helpers (pure) ------------------------------------------ */

/* The value of cookie `name` in one Cookie header value; length or -1. */
long auth_cookie_get(const char *hdr, size_t len, const char *name, char *out, size_t outlen);
/* "Basic base64(user:pass)": 0 and the parts, -1 if malformed (or not Basic). */
int auth_basic_parse(const char *hdr, size_t len, char *user, size_t ulen, char *pw, size_t plen);
/* Authelia's AcceptsMIME("text/html"): text/html anywhere, or star/star first. */
int auth_accepts_html(const char *accept, size_t len);
/* Lower-case a Host value and drop its port; refuses empty, bad characters, bad port. */
long auth_host_normalize(const char *in, size_t len, char *out, size_t outlen);
/* 1 when host is `domain` or a subdomain of it. */
int auth_host_under(const char *host, const char *domain);
/* A redirect target is safe: absolute https (http when allow_http) URL whose host is under domain,
 * with no userinfo, no backslash, no whitespace or control bytes, no escapes in the authority. */
int auth_rd_safe(const char *url, size_t len, const char *domain, int allow_http);
/* A form (application/x-www-form-urlencoded) field, decoded; length, -1 absent, -2 malformed. */
long auth_form_get(const char *body, size_t len, const char *name, char *out, size_t outlen);
/* Percent-encode for a query value (RFC 3986 unreserved kept). Length or -1. */
long auth_url_encode(const char *in, size_t len, char *out, size_t outlen);

/* --- auth_session.c ------------------------------------------------------------------------- */

typedef struct {
    uint8_t id[AUTH_SID_BYTES];
    char user[AUTH_NAME_MAX + 1];
    uint8_t level; /* auth_level */
    uint8_t remember;
    uint8_t in_use;
    int64_t created_ms, last_ms, expires_ms;
    int64_t synced_ms; /* last write to the shared store */
    int32_t next;      /* chain */
} auth_session;

typedef struct auth_sessions auth_sessions;

auth_sessions *auth_sessions_new(size_t capacity);
void auth_sessions_free(auth_sessions *t);
auth_session *auth_sessions_find(auth_sessions *t, const uint8_t id[AUTH_SID_BYTES]);
/* A new session with a fresh random id (RAND_bytes). When full: expired ones are swept, then the
 * one closest to expiry is evicted. NULL only when the random source fails. */
auth_session *auth_sessions_create(auth_sessions *t, int64_t now_ms);
/* Insert a session with a given id (from the shared store); replaces an existing one. */
auth_session *auth_sessions_put(auth_sessions *t, const auth_session *s);
void auth_sessions_remove(auth_sessions *t, auth_session *s);
/* Valid now? (expires_ms, and inactivity unless remember) */
int auth_session_alive(const auth_session *s, int64_t now_ms, int64_t inactivity_ms);
/* Remove every session that is no longer alive; returns how many. */
size_t auth_sessions_sweep(auth_sessions *t, int64_t now_ms, int64_t inactivity_ms);
/* Slot i (0 <= i < auth_sessions_capacity) if it holds a session, else NULL: a walk over every
 * session that may remove the one it is on (auth_sessions_remove). */
size_t auth_sessions_capacity(const auth_sessions *t);
auth_session *auth_sessions_slot(auth_sessions *t, size_t i);
size_t auth_sessions_count(const auth_sessions *t);

/* --- auth_config.c -------------------------------------------------------------------------- */

/* --- auth_authz.c: server.endpoints.authz (Authelia 4.38) ------------------------------------ */

typedef enum {
    AUTH_AUTHZ_LEGACY = 0,
    AUTH_AUTHZ_FORWARD_AUTH,
    AUTH_AUTHZ_AUTH_REQUEST,
    AUTH_AUTHZ_EXT_AUTHZ
} auth_authz_impl;
typedef enum {
    AUTH_AUTHN_COOKIE = 0,
    AUTH_AUTHN_HEADER_AUTHORIZATION,
    AUTH_AUTHN_HEADER_PROXY_AUTHORIZATION,
    AUTH_AUTHN_HEADER_AUTHREQUEST_PROXY_AUTHORIZATION,
    AUTH_AUTHN_HEADER_LEGACY
} auth_authn_kind;
#define AUTH_AUTHZ_MAX 16
#define AUTH_AUTHN_MAX 5
#define AUTH_AUTHZ_NAME_MAX 64

typedef struct {
    char path[AUTH_AUTHZ_NAME_MAX + 16]; /* /api/verify or /api/authz/<name> */
    auth_authz_impl impl;
    int prefix;     /* also answers <path>/<anything> (ExtAuthz, Legacy) */
    int any_method; /* 0: GET and HEAD only */
    size_t nstrat;
    auth_authn_kind strat[AUTH_AUTHN_MAX]; /* tried in order */
} auth_authz_endpoint;

typedef struct {
    size_t n;
    auth_authz_endpoint ep[AUTH_AUTHZ_MAX];
} auth_authz;

/* Today's endpoints (the key absent): legacy (/api/verify, GET/HEAD) and forward-auth. */
void auth_authz_defaults(auth_authz *a);
/* Parse server.endpoints.authz (n may be NULL: the defaults). Errors read "file:line:col: ...". */
int auth_authz_parse(const xt_doc *doc, const xt_node *n, auth_authz *a, char *err, size_t errlen);
/* The endpoint answering `path` (no query), or NULL; *suffix: where the path after it starts. */
const auth_authz_endpoint *auth_authz_find(const auth_authz *a, const char *path, size_t len, size_t *suffix);

struct auth_config {
    xt_doc *doc; /* owns every string below unless noted */
    char listen_host[64];
    int port;
    int log_level, log_json;
    int hash_workers, hash_queue;
    int64_t failure_delay_ms;

    const char *totp_issuer;
    auth_totp_algo totp_algo;
    int totp_digits, totp_period, totp_skew;
    char *totp_path; /* malloc'd */

    char *users_path; /* malloc'd, resolved */
    int users_watch;
    auth_argon2_params argon2;

    auth_acl acl;
    auth_authz authz; /* server.endpoints.authz */

    const char *cookie_name, *domain, *same_site, *secret;
    const char *portal_url;              /* session.authelia_url: the login portal, may be NULL */
    const char *default_redirection_url; /* may be NULL */
    int64_t expiration_ms, inactivity_ms, remember_me_ms; /* remember_me_ms -1: disabled */
    int allow_http;
    int max_sessions;

    int reg_max_retries;
    int64_t reg_find_time_ms, reg_ban_time_ms;
    unsigned reg_modes; /* AUTH_REG_USER | AUTH_REG_IP (regulation.modes, Authelia 4.39) */

    int kv_enabled;
    xt_nats_conf kv_nats; /* session.nats: url (alias `servers`), creds, tls_*, inbox_prefix, name */
    const char *kv_bucket;
    int kv_replicas;              /* session.nats.replicas: the bucket's replicas (1..5) */
    int64_t kv_lookup_timeout_ms; /* session.nats.lookup_timeout: bound of a lookup on a local miss */
    int64_t kv_resync_ms;         /* session.nats.resync_interval: re-read the bucket's logouts */

    char *notify_path; /* notifier.filesystem.filename (malloc'd), NULL: no notifier, no enrolment from
                          the portal (auth_enrol.c) */

    /* audit (an xtask extension): sign-ins, failures, logouts and bans to xtask.audit.auth.<region> */
    int audit_enabled;
    const char *audit_url;    /* audit.servers: overrides session.nats.url (same creds, TLS); may be NULL */
    const char *audit_region; /* a NATS token; default $FLY_REGION, else "local" */
};

/* Load and validate. Errors read "file:line:col: message". */
int auth_config_load(const char *path, auth_config *cfg, char *err, size_t errlen);
int auth_config_load_mem(const char *name, const char *text, xt_conf_getenv_fn getenv_fn, void *ud,
                         auth_config *cfg, char *err, size_t errlen);
void auth_config_free(auth_config *cfg);

/* --- auth_notify.c: notifier.filesystem --------------------------------------------------- */

/* The `notifier` node: *filename (malloc'd) for filesystem.filename, NULL without one; smtp refused. */
int auth_notify_parse(const xt_doc *doc, const xt_node *n, char **filename, char *err, size_t errlen);
/* Replace the file with one message (0600, atomically). */
int auth_notify_send(const char *filename, const char *to, const char *subject, const char *body, char *err,
                     size_t errlen);

/* --- auth_enrol.c: TOTP enrolment behind an identity verification ------------------------- */

typedef struct auth_enrol auth_enrol;
enum { AUTH_ENROL_NONE = 0, AUTH_ENROL_CODE_SENT = 1, AUTH_ENROL_ELEVATED = 2 };

auth_enrol *auth_enrol_new(void);
void auth_enrol_free(auth_enrol *e);
/* A new one-time code (8 characters, 5 minutes) for user's session sid into code (>= 9 bytes). */
int auth_enrol_new_code(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], int64_t now,
                        char *code, size_t codelen);
/* 1 the code is right (the session is elevated for 5 minutes and a new secret drawn), 0 wrong,
 * -1 no code, expired or out of tries. */
int auth_enrol_elevate(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], const char *code,
                       int64_t now);
/* Where the session is (AUTH_ENROL_*); when elevated, the pending secret in base32. */
int auth_enrol_stage(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], int64_t now,
                     char *secret_b32, size_t b32len);
/* A code from the pending secret: AUTH_TOTP_OK (the secret in base32 and the step used are given
 * back for the store, the enrolment ends), AUTH_TOTP_WRONG, AUTH_TOTP_REUSED, or -1 not elevated. */
int auth_enrol_confirm(auth_enrol *e, const char *user, const uint8_t sid[AUTH_SID_BYTES], const char *token,
                       int64_t now, const auth_config *cfg, char *secret_b32, size_t b32len, int64_t *step);
/* The QR code of text as an inline SVG document (malloc'd, *len), `scale` pixels a module. */
char *auth_enrol_qr_svg(const char *text, int scale, size_t *len);

/* --- auth_server.c -------------------------------------------------------------------------- */

/* Run the service until SIGINT/SIGTERM. Returns the process exit code. */
int auth_server_run(auth_config *cfg);

/* --- auth_portal.c -------------------------------------------------------------------------- */

/* The login portal page: which form to show, for whom, and an optional message. rd is passed through
 * (already validated or empty). The page is always the answer to a GET: every form posts, then is
 * redirected (303) to the portal with a message code in the query (post/redirect/get), so Back and
 * reload never resubmit a form. */
typedef enum { AUTH_PORTAL_LOGIN, AUTH_PORTAL_TOTP, AUTH_PORTAL_DONE, AUTH_PORTAL_ENROL } auth_portal_view;
typedef struct {
    auth_portal_view view;
    const char *user;   /* the signed-in user (TOTP, DONE), or the name kept in the login form */
    const char *rd;     /* the target to go on to; may be NULL */
    const char *error;  /* shown as an alert; may be NULL */
    const char *notice; /* shown as a status line; may be NULL */
    int can_enrol;      /* TOTP, DONE: link to the enrolment page */
    int enrol_stage;    /* ENROL: AUTH_ENROL_* ; -1: no notifier configured */
    const char *qr_svg; /* ENROL, elevated: the QR code (inline SVG) */
    const char *secret; /* ENROL, elevated: the base32 secret, for typing in */
} auth_portal_page;
/* A malloc'd HTML document (its length in *len), NULL when out of memory. */
char *auth_portal_render(const auth_portal_page *pg, size_t *len);

/* The portal's message codes (the `m` query parameter of a redirect after a form): the text for
 * `code` into out, and whether it is an error (1) or a notice (0); -1 for an unknown code. `left_ms`
 * is the time left of a lock-out (code "locked"), 0 when it has ended. */
int auth_portal_message(const char *code, int64_t left_ms, char *out, size_t outlen);

#endif
