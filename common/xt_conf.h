/*
 * xt_conf: YAML configuration files with positions, for every xtask program.
 *
 * A file is parsed (libyaml) into a small tree whose every node knows its line and column, so that
 * each later check can say `configs/services.yaml:12:5: unknown key 'helth' in service 'nats'
 * (did you mean 'health'?)`. `${VAR}` and `${VAR:-default}` are expanded in every scalar value at
 * load time (`$$` is a literal `$`); an unset variable without a default is an error naming
 * file:line:col. Duplicate keys in a mapping are errors. Aliases (`*anchor`) resolve to the
 * anchored node.
 *
 * Every function that can fail returns 0 on success and -1 on failure, with a one-line message
 * "path:line:col: what was wrong" in the caller's `err` buffer (never NULL, errlen > 0).
 * All nodes and strings belong to the document and live until xt_doc_free().
 */
#ifndef XT_CONF_H
#define XT_CONF_H

#include <stddef.h>
#include <stdint.h>

typedef struct xt_node xt_node;
typedef struct xt_doc xt_doc;

typedef enum { XT_NODE_SCALAR = 1, XT_NODE_SEQ, XT_NODE_MAP } xt_node_kind;

/* One YAML node. Maps keep their pairs in file order. */
struct xt_node {
    xt_node_kind kind;
    int line, col;   /* 1-based position of the node's first character */
    char *str;       /* SCALAR: value after ${VAR} expansion, NUL-terminated */
    size_t str_len;  /* SCALAR: length of str (a value may hold no NUL) */
    int quoted;      /* SCALAR: written '...' or "..." or as a block (so never null/bool/number) */
    int is_null;     /* SCALAR: a plain `~`, `null` or empty value */
    size_t len;      /* SEQ: number of items; MAP: number of pairs */
    xt_node **items; /* SEQ: the items; MAP: the values */
    xt_node **keys;  /* MAP: the keys (always SCALAR nodes) */
};

/* A loaded document. */
struct xt_doc {
    char *path;    /* the name used in messages */
    xt_node *root; /* NULL for an empty file */
    void *arena;   /* private */
};

/* Environment lookup used for ${VAR}; NULL means getenv(). For tests and for renderers. */
typedef const char *(*xt_conf_getenv_fn)(const char *name, void *ud);

/* Parse the file at `path`. On success *out is a document the caller frees with xt_doc_free(). */
int xt_conf_load_file(const char *path, xt_doc **out, char *err, size_t errlen);

/* Parse `len` bytes of `buf`; `name` is used in messages. `getenv_fn` may be NULL. */
int xt_conf_load_mem(const char *name, const char *buf, size_t len, xt_conf_getenv_fn getenv_fn, void *ud,
                     xt_doc **out, char *err, size_t errlen);

/* Free a document and every node and string in it. Accepts NULL. */
void xt_doc_free(xt_doc *doc);

/* Expand ${VAR}, ${VAR:-default} and $$ in `in` into a malloc'd string (*out, caller frees).
 * On an unset variable or bad syntax: -1 and a message without position; *offset (if not NULL)
 * gets the byte offset of the offending `$`. */
int xt_conf_expand(const char *in, xt_conf_getenv_fn getenv_fn, void *ud, char **out, size_t *offset,
                   char *err, size_t errlen);

/* --- lookups ------------------------------------------------------------------------------ */

/* The value under `key` in a MAP node, or NULL (also when `map` is NULL or not a MAP). */
xt_node *xt_map_get(const xt_node *map, const char *key);

/* The key node for `key` (for the position of the key itself), or NULL. */
xt_node *xt_map_key(const xt_node *map, const char *key);

/* --- errors ------------------------------------------------------------------------------- */

/* Write "path:line:col: <fmt...>" for node `at` (or "path: ..." when at is NULL); returns -1. */
int xt_conf_error(char *err, size_t errlen, const xt_doc *doc, const xt_node *at, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The candidate closest to `word` by edit distance if it is close enough to be a likely typo
 * (distance <= max(1, strlen/3)), else NULL. `cands` is NULL-terminated. */
const char *xt_suggest(const char *word, const char *const *cands);

/* Check that every key of `map` is in `allowed` (NULL-terminated). On an unknown key: -1 and
 * "path:l:c: unknown key 'helth' in <where> (did you mean 'health'?)". `map` must be a MAP. */
int xt_conf_check_keys(const xt_doc *doc, const xt_node *map, const char *const *allowed, const char *where,
                       char *err, size_t errlen);

/* --- typed values: `what` names the setting in messages, e.g. "supervisor.stop_timeout" -- */

/* `n` must be a MAP. */
int xt_conf_want_map(const xt_doc *doc, const xt_node *n, const char *what, char *err, size_t errlen);

/* A non-empty string scalar (numbers are accepted as their text). *out points into the document. */
int xt_conf_string(const xt_doc *doc, const xt_node *n, const char *what, const char **out, char *err,
                   size_t errlen);

/* true/false (also yes/no/on/off, any case) as 1/0. */
int xt_conf_bool(const xt_doc *doc, const xt_node *n, const char *what, int *out, char *err, size_t errlen);

/* A decimal integer in [min, max]. */
int xt_conf_int(const xt_doc *doc, const xt_node *n, const char *what, long long min, long long max,
                long long *out, char *err, size_t errlen);

/* A duration ("100ms", "5s", "2m", "1h30m", "7d") in milliseconds, in [min_ms, max_ms]. */
int xt_conf_duration(const xt_doc *doc, const xt_node *n, const char *what, int64_t min_ms, int64_t max_ms,
                     int64_t *out_ms, char *err, size_t errlen);

/* A sequence of string scalars (or, when allow_scalar, one scalar) as a malloc'd NULL-terminated
 * array of malloc'd strings (*out; free with xt_strv_free). Empty sequences are refused when
 * nonempty is set. */
int xt_conf_strv(const xt_doc *doc, const xt_node *n, const char *what, int allow_scalar, int nonempty,
                 char ***out, char *err, size_t errlen);

/* Free a NULL-terminated string vector. Accepts NULL. */
void xt_strv_free(char **v);

/* Count the strings of a NULL-terminated vector. */
size_t xt_strv_len(char *const *v);

/* --- durations ---------------------------------------------------------------------------- */

/* Parse a duration: one or more <digits><unit> with units ms, s, m, h, d, w. 0 alone is allowed.
 * Returns 0 and *out_ms, or -1 (no message) on bad syntax or overflow. */
int xt_duration_parse(const char *s, int64_t *out_ms);

/* Format a duration the way users write it ("150ms", "5s", "2m", "1h30m") into buf. */
const char *xt_duration_format(int64_t ms, char *buf, size_t buflen);

#endif
