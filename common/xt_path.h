/*
 * xt_path: the one normalized form of a request path that routing, access rules and upstreams see.
 *
 * Used by the front (routing, forward-auth's X-Forwarded-Uri, the upstream request) and by the auth
 * service (rule matching), so both agree on what a path is.
 */
#ifndef XT_PATH_H
#define XT_PATH_H

#include <stddef.h>

/* Normalize the path part of a request target (no query: stop at '?' yourself, or pass the whole
 * target and the query is copied through unchanged after normalization).
 *  - must start with '/';
 *  - percent-escapes of unreserved characters (A-Z a-z 0-9 - . _ ~) are decoded; other escapes are
 *    kept with upper-case hex;
 *  - refused: %00 and raw control bytes, %2F and %5C (encoded slashes), raw '\', bytes >= 0x80 not
 *    percent-encoded are encoded;
 *  - "//" collapses to "/", "." segments go, ".." removes the previous segment (never above "/");
 *  - a ';' is an ordinary character (so "/health;/../nats" is "/nats"), except that segments
 *    starting ".;" or "..;" are refused (servlet-style upstreams read them as "." and "..");
 * Writes the NUL-terminated result to out and returns its length, or -1 if refused or if the result
 * does not fit in outlen. */
long xt_path_normalize(const char *in, size_t len, char *out, size_t outlen);

/* Decode %XX escapes of a query-string value (and '+' as space when plus_is_space) into out
 * (NUL-terminated). Returns the length, or -1 on a bad escape, %00 or a raw NUL byte, or overflow. */
long xt_url_decode(const char *in, size_t len, int plus_is_space, char *out, size_t outlen);

/* Find `name` in a query string ("a=1&rd=x"; no leading '?') and decode its value into out.
 * Returns the length, -1 if absent, -2 if malformed or too long. */
long xt_query_get(const char *query, size_t len, const char *name, char *out, size_t outlen);

#endif
