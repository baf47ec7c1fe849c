/*
 * xt_conf: YAML documents with positions (see xt_conf.h for the contract).
 *
 * The loader walks libyaml's event stream recursively (depth-bounded) into nodes allocated from
 * one arena per document, so freeing a document is one walk over a block list and aliases can
 * share nodes without reference counting.
 */
#include "xt_conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <yaml.h>

#define CONF_MAX_DEPTH 64
#define CONF_MAX_FILE (8u << 20) /* a config file larger than 8 MiB is a mistake */
#define CONF_MAX_ANCHORS 256
#define CONF_VAR_MAX 128 /* longest variable name */
#define CONF_EXPAND_DEPTH 8
#define CONF_KEYSET_MIN 8 /* mappings with at most this many keys are checked by a plain scan */

/* --- arena -------------------------------------------------------------------------------- */

typedef struct arena_block {
    struct arena_block *next;
    size_t used, size;
    max_align_t data[];
} arena_block;

typedef struct arena {
    arena_block *head;
} arena;

static void *arena_alloc(arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (a->head == NULL || a->head->size - a->head->used < n) {
        size_t size = n > 16384 ? n : 16384;
        arena_block *b = malloc(sizeof(*b) + size);
        if (b == NULL) return NULL;
        b->next = a->head;
        b->used = 0;
        b->size = size;
        a->head = b;
    }
    void *p = (char *)a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

static char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void arena_free(arena *a)
{
    if (a == NULL) return;
    arena_block *b = a->head;
    while (b != NULL) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

/* --- errors ------------------------------------------------------------------------------- */

static int verror(char *err, size_t errlen, const char *path, int line, int col, const char *fmt, va_list ap)
{
    int n;
    if (line > 0)
        n = snprintf(err, errlen, "%s:%d:%d: ", path, line, col);
    else
        n = snprintf(err, errlen, "%s: ", path);
    if (n >= 0 && (size_t)n < errlen) vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    return -1;
}

static int perror_at(char *err, size_t errlen, const char *path, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int perror_at(char *err, size_t errlen, const char *path, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(err, errlen, path, line, col, fmt, ap);
    va_end(ap);
    return -1;
}

int xt_conf_error(char *err, size_t errlen, const xt_doc *doc, const xt_node *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(err, errlen, doc != NULL ? doc->path : "?", at != NULL ? at->line : 0, at != NULL ? at->col : 0,
           fmt, ap);
    va_end(ap);
    return -1;
}

/* --- ${VAR} expansion --------------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf;

static int sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > CONF_MAX_FILE) return -1;
        char *p = realloc(b->p, cap);
        if (p == NULL) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static const char *lookup(const char *name, xt_conf_getenv_fn fn, void *ud)
{
    return fn != NULL ? fn(name, ud) : getenv(name);
}

/* Find the '}' closing a "${" whose body starts at s, honouring nested ${...} in defaults. */
static const char *closing_brace(const char *s)
{
    int depth = 1;
    for (; *s != '\0'; s++) {
        if (s[0] == '$' && s[1] == '{') {
            depth++;
            s++;
        } else if (*s == '}' && --depth == 0) {
            return s;
        }
    }
    return NULL;
}

static int expand_into(sbuf *b, const char *in, size_t inlen, xt_conf_getenv_fn fn, void *ud, int depth,
                       size_t *offset, char *err, size_t errlen)
{
    const char *p = in, *end = in + inlen;
    if (depth > CONF_EXPAND_DEPTH) {
        snprintf(err, errlen, "variable defaults nested too deeply");
        return -1;
    }
    while (p < end) {
        const char *dollar = memchr(p, '$', (size_t)(end - p));
        if (dollar == NULL) return sbuf_add(b, p, (size_t)(end - p));
        if (sbuf_add(b, p, (size_t)(dollar - p)) != 0) goto nomem;
        if (dollar + 1 < end && dollar[1] == '$') {
            if (sbuf_add(b, "$", 1) != 0) goto nomem;
            p = dollar + 2;
            continue;
        }
        if (dollar + 1 >= end || dollar[1] != '{') { /* a lone '$' is literal (nats.conf uses $VAR) */
            if (sbuf_add(b, "$", 1) != 0) goto nomem;
            p = dollar + 1;
            continue;
        }
        *offset = (size_t)(dollar - in);
        const char *name = dollar + 2;
        const char *close = closing_brace(name);
        if (close == NULL || close > end) {
            snprintf(err, errlen, "unterminated '${' (write '$$' for a literal '$')");
            return -1;
        }
        size_t nlen = 0;
        while (name + nlen < close && (isalnum((unsigned char)name[nlen]) || name[nlen] == '_'))
            nlen++;
        if (nlen == 0 || nlen >= CONF_VAR_MAX || isdigit((unsigned char)name[0])) {
            snprintf(err, errlen, "bad variable name in '%.*s'", (int)(close - dollar + 1), dollar);
            return -1;
        }
        char var[CONF_VAR_MAX];
        memcpy(var, name, nlen);
        var[nlen] = '\0';
        const char *rest = name + nlen;
        const char *val = lookup(var, fn, ud);
        if (rest == close) {
            if (val == NULL) {
                snprintf(err, errlen,
                         "environment variable '%s' is not set (use ${%s:-default} to give a default)", var,
                         var);
                return -1;
            }
            if (sbuf_add(b, val, strlen(val)) != 0) goto nomem;
        } else if (rest + 1 < close && rest[0] == ':' && rest[1] == '-') {
            if (val != NULL && val[0] != '\0') {
                if (sbuf_add(b, val, strlen(val)) != 0) goto nomem;
            } else {
                size_t inner_off = 0;
                if (expand_into(b, rest + 2, (size_t)(close - rest - 2), fn, ud, depth + 1, &inner_off, err,
                                errlen) != 0) {
                    *offset = (size_t)(rest + 2 - in) + inner_off;
                    return -1;
                }
            }
        } else {
            snprintf(err, errlen, "bad expansion '%.*s' (forms: ${VAR} and ${VAR:-default})",
                     (int)(close - dollar + 1), dollar);
            return -1;
        }
        p = close + 1;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory expanding a value");
    return -1;
}

int xt_conf_expand(const char *in, xt_conf_getenv_fn getenv_fn, void *ud, char **out, size_t *offset,
                   char *err, size_t errlen)
{
    sbuf b = {0};
    size_t off = 0;
    *out = NULL;
    if (expand_into(&b, in, strlen(in), getenv_fn, ud, 0, &off, err, errlen) != 0) {
        free(b.p);
        if (offset != NULL) *offset = off;
        return -1;
    }
    if (b.p == NULL && sbuf_add(&b, "", 0) != 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *out = b.p;
    return 0;
}

/* --- loader ------------------------------------------------------------------------------- */

typedef struct loader {
    yaml_parser_t parser;
    arena *ar;
    const char *path;
    xt_conf_getenv_fn getenv_fn;
    void *ud;
    struct {
        char *name;
        xt_node *node;
    } anchors[CONF_MAX_ANCHORS];
    size_t nanchors;
    uint64_t seed; /* per-load hash seed: key collisions cannot be precomputed */
    char *err;
    size_t errlen;
} loader;

static int load_node(loader *ld, yaml_event_t *ev, int depth, xt_node **out);

static int next_event(loader *ld, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&ld->parser, ev)) {
        const yaml_parser_t *p = &ld->parser;
        const yaml_mark_t *m =
            p->problem_mark.line || p->problem_mark.column ? &p->problem_mark : &p->context_mark;
        return perror_at(ld->err, ld->errlen, ld->path, (int)m->line + 1, (int)m->column + 1,
                         "YAML syntax error: %s%s%s", p->problem ? p->problem : "unknown problem",
                         p->context ? " " : "", p->context ? p->context : "");
    }
    return 0;
}

static xt_node *new_node(loader *ld, xt_node_kind kind, const yaml_mark_t *m)
{
    xt_node *n = arena_alloc(ld->ar, sizeof(*n));
    if (n != NULL) {
        n->kind = kind;
        n->line = (int)m->line + 1;
        n->col = (int)m->column + 1;
    }
    return n;
}

static int remember_anchor(loader *ld, const yaml_char_t *anchor, xt_node *n, const yaml_mark_t *m)
{
    if (anchor == NULL) return 0;
    if (ld->nanchors == CONF_MAX_ANCHORS)
        return perror_at(ld->err, ld->errlen, ld->path, (int)m->line + 1, (int)m->column + 1,
                         "more than %d anchors", CONF_MAX_ANCHORS);
    ld->anchors[ld->nanchors].name =
        arena_strndup(ld->ar, (const char *)anchor, strlen((const char *)anchor));
    ld->anchors[ld->nanchors].node = n;
    ld->nanchors++;
    return 0;
}

static int is_null_text(const char *s)
{
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

static int load_scalar(loader *ld, yaml_event_t *ev, xt_node **out, int expand)
{
    xt_node *n = new_node(ld, XT_NODE_SCALAR, &ev->start_mark);
    if (n == NULL) goto nomem;
    const char *raw = (const char *)ev->data.scalar.value;
    size_t rawlen = ev->data.scalar.length;
    yaml_scalar_style_t style = ev->data.scalar.style;
    n->quoted = style != YAML_PLAIN_SCALAR_STYLE && style != YAML_ANY_SCALAR_STYLE;
    if (memchr(raw, '\0', rawlen) != NULL)
        return perror_at(ld->err, ld->errlen, ld->path, n->line, n->col, "a NUL byte in a value");
    if (expand && memchr(raw, '$', rawlen) != NULL) {
        char *val = NULL, msg[512];
        size_t off = 0;
        if (xt_conf_expand(raw, ld->getenv_fn, ld->ud, &val, &off, msg, sizeof(msg)) != 0) {
            /* point at the '$' when the scalar is on one line */
            int col = n->col;
            if (memchr(raw, '\n', rawlen) == NULL &&
                (style == YAML_PLAIN_SCALAR_STYLE || style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                 style == YAML_DOUBLE_QUOTED_SCALAR_STYLE))
                col += (int)off + (style == YAML_PLAIN_SCALAR_STYLE ? 0 : 1);
            return perror_at(ld->err, ld->errlen, ld->path, n->line, col, "%s", msg);
        }
        n->str_len = strlen(val);
        n->str = arena_strndup(ld->ar, val, n->str_len);
        free(val);
    } else {
        n->str_len = rawlen;
        n->str = arena_strndup(ld->ar, raw, rawlen);
    }
    if (n->str == NULL) goto nomem;
    n->is_null = !n->quoted && is_null_text(raw);
    if (remember_anchor(ld, ev->data.scalar.anchor, n, &ev->start_mark) != 0) return -1;
    *out = n;
    return 0;
nomem:
    return perror_at(ld->err, ld->errlen, ld->path, 0, 0, "out of memory");
}

/* --- duplicate keys --------------------------------------------------------------------------
 * The keys already seen in one mapping: an open-addressing set of indexes into the mapping's key
 * vector (index + 1; 0 is empty), at most half full, so checking a mapping of n keys costs O(n)
 * instead of the O(n^2) of comparing each key with all before it (80,000 keys: 21 s before).
 * Its size is bounded by the number of keys, which the file size bounds (CONF_MAX_FILE). Small
 * mappings, nearly all of them, keep the plain scan and allocate nothing. */

typedef struct keyset {
    uint32_t *slot;
    size_t cap; /* a power of two, or 0 while the mapping is small */
} keyset;

/* FNV-1a over the bytes, started from the per-load seed, then a splitmix64 finalizer so that
 * the low bits used as the slot index depend on every byte. */
static uint64_t key_hash(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static int key_equal(const xt_node *a, const xt_node *b)
{
    return a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0;
}

/* The slot holding a key equal to `key`, or the empty slot where it would go. */
static size_t keyset_find(const keyset *ks, xt_node *const *keys, uint64_t seed, const xt_node *key)
{
    size_t mask = ks->cap - 1;
    size_t i = (size_t)key_hash(seed, key->str, key->str_len) & mask;
    while (ks->slot[i] != 0 && !key_equal(keys[ks->slot[i] - 1], key))
        i = (i + 1) & mask;
    return i;
}

/* Make room for n + 1 keys (the n in keys[] so far, all distinct, and one more). */
static int keyset_reserve(keyset *ks, xt_node *const *keys, size_t n, uint64_t seed)
{
    if ((n + 1) * 2 <= ks->cap) return 0;
    size_t cap = ks->cap ? ks->cap : 4 * CONF_KEYSET_MIN;
    while ((n + 1) * 2 > cap)
        cap *= 2;
    if (cap > UINT32_MAX) return -1;
    uint32_t *slot = calloc(cap, sizeof(*slot));
    if (slot == NULL) return -1;
    free(ks->slot);
    ks->slot = slot;
    ks->cap = cap;
    for (size_t k = 0; k < n; k++)
        ks->slot[keyset_find(ks, keys, seed, keys[k])] = (uint32_t)(k + 1);
    return 0;
}

/* The earlier key equal to keys[n] (NULL if none), remembering keys[n] as seen. -1 in *rc when
 * out of memory. */
static const xt_node *keyset_check_add(keyset *ks, xt_node *const *keys, size_t n, uint64_t seed, int *rc)
{
    const xt_node *key = keys[n];
    *rc = 0;
    if (n < CONF_KEYSET_MIN) {
        for (size_t i = 0; i < n; i++)
            if (key_equal(keys[i], key)) return keys[i];
        return NULL;
    }
    if (keyset_reserve(ks, keys, n, seed) != 0) {
        *rc = -1;
        return NULL;
    }
    size_t i = keyset_find(ks, keys, seed, key);
    if (ks->slot[i] != 0) return keys[ks->slot[i] - 1];
    ks->slot[i] = (uint32_t)(n + 1);
    return NULL;
}

/* Append to a growing array of node pointers kept in malloc memory during the build. */
typedef struct nvec {
    xt_node **v;
    size_t len, cap;
} nvec;

static int nvec_push(nvec *a, xt_node *n)
{
    if (a->len == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        xt_node **v = realloc(a->v, cap * sizeof(*v));
        if (v == NULL) return -1;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->len++] = n;
    return 0;
}

static xt_node **nvec_to_arena(loader *ld, nvec *a)
{
    xt_node **v = arena_alloc(ld->ar, (a->len ? a->len : 1) * sizeof(*v));
    if (v != NULL && a->len) memcpy(v, a->v, a->len * sizeof(*v));
    free(a->v);
    a->v = NULL;
    return v;
}

static int load_seq(loader *ld, yaml_event_t *start, int depth, xt_node **out)
{
    xt_node *n = new_node(ld, XT_NODE_SEQ, &start->start_mark);
    nvec items = {0};
    int rc = -1;
    if (n == NULL || remember_anchor(ld, start->data.sequence_start.anchor, n, &start->start_mark) != 0)
        goto out;
    for (;;) {
        yaml_event_t ev;
        if (next_event(ld, &ev) != 0) goto out;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        xt_node *item = NULL;
        int r = load_node(ld, &ev, depth + 1, &item);
        yaml_event_delete(&ev);
        if (r != 0) goto out;
        if (nvec_push(&items, item) != 0) goto out;
    }
    n->len = items.len;
    n->items = nvec_to_arena(ld, &items);
    *out = n;
    rc = 0;
out:
    free(items.v);
    return rc;
}

static int load_map(loader *ld, yaml_event_t *start, int depth, xt_node **out)
{
    xt_node *n = new_node(ld, XT_NODE_MAP, &start->start_mark);
    nvec keys = {0}, vals = {0};
    keyset seen = {0};
    int rc = -1;
    if (n == NULL || remember_anchor(ld, start->data.mapping_start.anchor, n, &start->start_mark) != 0)
        goto out;
    for (;;) {
        yaml_event_t ev;
        if (next_event(ld, &ev) != 0) goto out;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            perror_at(ld->err, ld->errlen, ld->path, (int)ev.start_mark.line + 1,
                      (int)ev.start_mark.column + 1, "a mapping key must be a plain string");
            yaml_event_delete(&ev);
            goto out;
        }
        xt_node *key = NULL;
        int r = load_scalar(ld, &ev, &key, 0);
        yaml_event_delete(&ev);
        if (r != 0) goto out;
        if (nvec_push(&keys, key) != 0) goto nomem;
        const xt_node *first = keyset_check_add(&seen, keys.v, keys.len - 1, ld->seed, &r);
        if (r != 0) goto nomem;
        if (first != NULL) {
            perror_at(ld->err, ld->errlen, ld->path, key->line, key->col,
                      "duplicate key '%s' (first defined at line %d)", key->str, first->line);
            goto out;
        }
        if (next_event(ld, &ev) != 0) goto out;
        xt_node *val = NULL;
        r = load_node(ld, &ev, depth + 1, &val);
        yaml_event_delete(&ev);
        if (r != 0) goto out;
        if (nvec_push(&vals, val) != 0) goto nomem;
    }
    n->len = keys.len;
    n->keys = nvec_to_arena(ld, &keys);
    n->items = nvec_to_arena(ld, &vals);
    *out = n;
    rc = 0;
    goto out;
nomem:
    perror_at(ld->err, ld->errlen, ld->path, 0, 0, "out of memory");
out:
    free(seen.slot);
    free(keys.v);
    free(vals.v);
    return rc;
}

static int load_node(loader *ld, yaml_event_t *ev, int depth, xt_node **out)
{
    if (depth > CONF_MAX_DEPTH)
        return perror_at(ld->err, ld->errlen, ld->path, (int)ev->start_mark.line + 1,
                         (int)ev->start_mark.column + 1, "nesting deeper than %d levels", CONF_MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return load_scalar(ld, ev, out, 1);
    case YAML_SEQUENCE_START_EVENT:
        return load_seq(ld, ev, depth, out);
    case YAML_MAPPING_START_EVENT:
        return load_map(ld, ev, depth, out);
    case YAML_ALIAS_EVENT:
        for (size_t i = ld->nanchors; i-- > 0;) {
            if (strcmp(ld->anchors[i].name, (const char *)ev->data.alias.anchor) == 0) {
                *out = ld->anchors[i].node;
                return 0;
            }
        }
        return perror_at(ld->err, ld->errlen, ld->path, (int)ev->start_mark.line + 1,
                         (int)ev->start_mark.column + 1, "unknown anchor '*%s'", ev->data.alias.anchor);
    default:
        return perror_at(ld->err, ld->errlen, ld->path, (int)ev->start_mark.line + 1,
                         (int)ev->start_mark.column + 1, "unexpected YAML event");
    }
}

int xt_conf_load_mem(const char *name, const char *buf, size_t len, xt_conf_getenv_fn getenv_fn, void *ud,
                     xt_doc **out, char *err, size_t errlen)
{
    loader ld;
    xt_doc *doc = NULL;
    int rc = -1, parser_ok = 0, stage = 0; /* stage: 0 stream, 1 document, 2 after root */
    memset(&ld, 0, sizeof(ld));
    ld.path = name;
    ld.getenv_fn = getenv_fn;
    ld.ud = ud;
    ld.err = err;
    ld.errlen = errlen;
    if (getrandom(&ld.seed, sizeof(ld.seed), GRND_NONBLOCK) != (ssize_t)sizeof(ld.seed))
        ld.seed = (uint64_t)(uintptr_t)&ld ^ (uint64_t)len; /* no entropy yet: ASLR bits */
    *out = NULL;
    err[0] = '\0';

    if (len > CONF_MAX_FILE)
        return perror_at(err, errlen, name, 0, 0, "file larger than %u bytes", CONF_MAX_FILE);
    doc = calloc(1, sizeof(*doc));
    if (doc == NULL || (doc->path = strdup(name)) == NULL || (ld.ar = calloc(1, sizeof(arena))) == NULL) {
        perror_at(err, errlen, name, 0, 0, "out of memory");
        goto out;
    }
    doc->arena = ld.ar;
    ld.path = doc->path;
    if (!yaml_parser_initialize(&ld.parser)) {
        perror_at(err, errlen, name, 0, 0, "cannot initialize the YAML parser");
        goto out;
    }
    parser_ok = 1;
    yaml_parser_set_input_string(&ld.parser, (const unsigned char *)buf, len);
    for (;;) {
        yaml_event_t ev;
        if (next_event(&ld, &ev) != 0) goto out;
        yaml_event_type_t t = ev.type;
        int r = 0;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        } else if (t == YAML_DOCUMENT_START_EVENT) {
            if (stage == 2)
                r = perror_at(err, errlen, ld.path, (int)ev.start_mark.line + 1,
                              (int)ev.start_mark.column + 1, "more than one YAML document in the file");
            stage = 1;
        } else if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_END_EVENT) {
            /* nothing */
        } else if (stage == 1) {
            r = load_node(&ld, &ev, 0, &doc->root);
            stage = 2;
        }
        yaml_event_delete(&ev);
        if (r != 0) goto out;
    }
    if (doc->root != NULL && doc->root->kind == XT_NODE_SCALAR && doc->root->is_null) doc->root = NULL;
    *out = doc;
    doc = NULL;
    rc = 0;
out:
    if (parser_ok) yaml_parser_delete(&ld.parser);
    xt_doc_free(doc);
    return rc;
}

int xt_conf_load_file(const char *path, xt_doc **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    int rc = -1;
    *out = NULL;
    if (f == NULL) return perror_at(err, errlen, path, 0, 0, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        perror_at(err, errlen, path, 0, 0, "not a regular file");
        goto out;
    }
    if ((unsigned long long)st.st_size > CONF_MAX_FILE) {
        perror_at(err, errlen, path, 0, 0, "file larger than %u bytes", CONF_MAX_FILE);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        perror_at(err, errlen, path, 0, 0, "out of memory");
        goto out;
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    if (ferror(f)) {
        perror_at(err, errlen, path, 0, 0, "read error: %s", strerror(errno));
        goto out;
    }
    rc = xt_conf_load_mem(path, buf, n, NULL, NULL, out, err, errlen);
out:
    free(buf);
    fclose(f);
    return rc;
}

void xt_doc_free(xt_doc *doc)
{
    if (doc == NULL) return;
    arena_free(doc->arena);
    free(doc->path);
    free(doc);
}

/* --- lookups ------------------------------------------------------------------------------ */

xt_node *xt_map_get(const xt_node *map, const char *key)
{
    if (map == NULL || map->kind != XT_NODE_MAP) return NULL;
    for (size_t i = 0; i < map->len; i++)
        if (strcmp(map->keys[i]->str, key) == 0) return map->items[i];
    return NULL;
}

xt_node *xt_map_key(const xt_node *map, const char *key)
{
    if (map == NULL || map->kind != XT_NODE_MAP) return NULL;
    for (size_t i = 0; i < map->len; i++)
        if (strcmp(map->keys[i]->str, key) == 0) return map->keys[i];
    return NULL;
}

/* --- did you mean ------------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]) ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *xt_suggest(const char *word, const char *const *cands)
{
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    size_t limit = strlen(word) / 3;
    if (limit < 1) limit = 1;
    if (limit > 3) limit = 3;
    for (size_t i = 0; cands[i] != NULL; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = cands[i];
        }
    }
    return bestd <= limit ? best : NULL;
}

int xt_conf_check_keys(const xt_doc *doc, const xt_node *map, const char *const *allowed, const char *where,
                       char *err, size_t errlen)
{
    if (map == NULL || map->kind != XT_NODE_MAP)
        return xt_conf_error(err, errlen, doc, map, "%s: expected a mapping", where);
    for (size_t i = 0; i < map->len; i++) {
        const char *k = map->keys[i]->str;
        size_t j;
        for (j = 0; allowed[j] != NULL; j++)
            if (strcmp(allowed[j], k) == 0) break;
        if (allowed[j] != NULL) continue;
        const char *s = xt_suggest(k, allowed);
        if (s != NULL)
            return xt_conf_error(err, errlen, doc, map->keys[i],
                                 "unknown key '%s' in %s (did you mean '%s'?)", k, where, s);
        char list[512];
        size_t n = 0;
        list[0] = '\0';
        for (j = 0; allowed[j] != NULL && n < sizeof(list); j++)
            n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", j ? ", " : "", allowed[j]);
        return xt_conf_error(err, errlen, doc, map->keys[i], "unknown key '%s' in %s (known keys: %s)", k,
                             where, list);
    }
    return 0;
}

/* --- typed values ------------------------------------------------------------------------- */

static const char *kind_name(const xt_node *n)
{
    if (n == NULL) return "nothing";
    switch (n->kind) {
    case XT_NODE_MAP:
        return "a mapping";
    case XT_NODE_SEQ:
        return "a list";
    default:
        return n->is_null ? "null" : "a string";
    }
}

int xt_conf_want_map(const xt_doc *doc, const xt_node *n, const char *what, char *err, size_t errlen)
{
    if (n == NULL || n->kind != XT_NODE_MAP)
        return xt_conf_error(err, errlen, doc, n, "%s: expected a mapping, got %s", what, kind_name(n));
    return 0;
}

int xt_conf_string(const xt_doc *doc, const xt_node *n, const char *what, const char **out, char *err,
                   size_t errlen)
{
    if (n == NULL || n->kind != XT_NODE_SCALAR || n->is_null)
        return xt_conf_error(err, errlen, doc, n, "%s: expected a string, got %s", what, kind_name(n));
    if (n->str[0] == '\0') return xt_conf_error(err, errlen, doc, n, "%s: must not be empty", what);
    *out = n->str;
    return 0;
}

int xt_conf_bool(const xt_doc *doc, const xt_node *n, const char *what, int *out, char *err, size_t errlen)
{
    static const char *const yes[] = {"true", "yes", "on", NULL}, *const no[] = {"false", "no", "off", NULL};
    if (n != NULL && n->kind == XT_NODE_SCALAR) {
        for (int i = 0; yes[i] != NULL; i++) {
            if (strcasecmp(n->str, yes[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcasecmp(n->str, no[i]) == 0) {
                *out = 0;
                return 0;
            }
        }
    }
    return xt_conf_error(
        err, errlen, doc, n, "%s: expected true or false, got %s%s%s%s", what,
        n && n->kind == XT_NODE_SCALAR ? "'" : "", n && n->kind == XT_NODE_SCALAR ? n->str : "",
        n && n->kind == XT_NODE_SCALAR ? "'" : "", n && n->kind == XT_NODE_SCALAR ? "" : kind_name(n));
}

int xt_conf_int(const xt_doc *doc, const xt_node *n, const char *what, long long min, long long max,
                long long *out, char *err, size_t errlen)
{
    if (n == NULL || n->kind != XT_NODE_SCALAR || n->is_null)
        return xt_conf_error(err, errlen, doc, n, "%s: expected a number, got %s", what, kind_name(n));
    char *end = NULL;
    errno = 0;
    long long v = strtoll(n->str, &end, 10);
    if (errno != 0 || end == n->str || *end != '\0' || isspace((unsigned char)n->str[0]))
        return xt_conf_error(err, errlen, doc, n, "%s: '%s' is not a whole number", what, n->str);
    if (v < min || v > max)
        return xt_conf_error(err, errlen, doc, n, "%s: %lld is out of range (%lld to %lld)", what, v, min,
                             max);
    *out = v;
    return 0;
}

int xt_conf_duration(const xt_doc *doc, const xt_node *n, const char *what, int64_t min_ms, int64_t max_ms,
                     int64_t *out_ms, char *err, size_t errlen)
{
    if (n == NULL || n->kind != XT_NODE_SCALAR || n->is_null)
        return xt_conf_error(err, errlen, doc, n, "%s: expected a duration like 100ms, 5s or 2m, got %s",
                             what, kind_name(n));
    int64_t v;
    if (xt_duration_parse(n->str, &v) != 0) {
        const char *s = n->str;
        while (isdigit((unsigned char)*s))
            s++;
        if (*s == '\0' && s != n->str)
            return xt_conf_error(err, errlen, doc, n, "%s: '%s' needs a unit (ms, s, m, h, d), e.g. '%ss'",
                                 what, n->str, n->str);
        return xt_conf_error(err, errlen, doc, n, "%s: '%s' is not a duration (e.g. 100ms, 5s, 2m, 1h30m)",
                             what, n->str);
    }
    char a[32], b[32];
    if (v < min_ms)
        return xt_conf_error(err, errlen, doc, n, "%s: %s is too short (at least %s)", what, n->str,
                             xt_duration_format(min_ms, a, sizeof(a)));
    if (v > max_ms)
        return xt_conf_error(err, errlen, doc, n, "%s: %s is too long (at most %s)", what, n->str,
                             xt_duration_format(max_ms, b, sizeof(b)));
    *out_ms = v;
    return 0;
}

void xt_strv_free(char **v)
{
    if (v == NULL) return;
    for (size_t i = 0; v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

size_t xt_strv_len(char *const *v)
{
    size_t n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

int xt_conf_strv(const xt_doc *doc, const xt_node *n, const char *what, int allow_scalar, int nonempty,
                 char ***out, char *err, size_t errlen)
{
    const xt_node *const *items;
    size_t len;
    *out = NULL;
    if (n != NULL && n->kind == XT_NODE_SCALAR && allow_scalar && !n->is_null) {
        items = (const xt_node *const *)&n;
        len = 1;
    } else if (n != NULL && n->kind == XT_NODE_SEQ) {
        items = (const xt_node *const *)n->items;
        len = n->len;
    } else {
        return xt_conf_error(err, errlen, doc, n, "%s: expected a list%s, got %s", what,
                             allow_scalar ? " or a string" : "", kind_name(n));
    }
    if (nonempty && len == 0)
        return xt_conf_error(err, errlen, doc, n, "%s: must not be an empty list", what);
    char **v = calloc(len + 1, sizeof(*v));
    if (v == NULL) return xt_conf_error(err, errlen, doc, n, "out of memory");
    for (size_t i = 0; i < len; i++) {
        const xt_node *it = items[i];
        if (it->kind != XT_NODE_SCALAR || it->is_null) {
            xt_strv_free(v);
            return xt_conf_error(err, errlen, doc, it, "%s: item %zu: expected a string, got %s", what, i + 1,
                                 kind_name(it));
        }
        if ((v[i] = strdup(it->str)) == NULL) {
            xt_strv_free(v);
            return xt_conf_error(err, errlen, doc, it, "out of memory");
        }
    }
    *out = v;
    return 0;
}

/* --- durations ---------------------------------------------------------------------------- */

int xt_duration_parse(const char *s, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
    int64_t total = 0;
    if (s == NULL || *s == '\0') return -1;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return 0;
    }
    while (*s != '\0') {
        if (!isdigit((unsigned char)*s)) return -1;
        int64_t v = 0;
        while (isdigit((unsigned char)*s)) {
            if (v > (INT64_MAX - 9) / 10) return -1;
            v = v * 10 + (*s++ - '0');
        }
        size_t ulen = 0;
        while (isalpha((unsigned char)s[ulen]))
            ulen++;
        size_t i;
        for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (strlen(units[i].unit) == ulen && strncmp(s, units[i].unit, ulen) == 0) break;
        if (i == sizeof(units) / sizeof(units[0])) return -1;
        if (v > (INT64_MAX - total) / units[i].ms) return -1;
        total += v * units[i].ms;
        s += ulen;
    }
    *out_ms = total;
    return 0;
}

const char *xt_duration_format(int64_t ms, char *buf, size_t buflen)
{
    size_t n = 0;
    if (ms <= 0 || ms % 1000 != 0) {
        snprintf(buf, buflen, "%lldms", (long long)ms);
        return buf;
    }
    int64_t s = ms / 1000;
    buf[0] = '\0';
    static const struct {
        int64_t secs;
        char unit;
    } parts[] = {{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
    for (size_t i = 0; i < 4 && n < buflen; i++) {
        if (s >= parts[i].secs) {
            n += (size_t)snprintf(buf + n, buflen - n, "%lld%c", (long long)(s / parts[i].secs),
                                  parts[i].unit);
            s %= parts[i].secs;
        }
    }
    return buf;
}
