/*
 * stack-yaml2json: print a YAML file as JSON, through the project's own loader (common/xt_conf).
 *
 * The stack tests use it to read configs/services.yaml, Taskfile.yml and docker-compose.yml from
 * Python, which has no YAML module in a fresh Debian. `${VAR}` and `${VAR:-default}` expand from the
 * environment as every xtask program does; with --raw an unset variable without default becomes the
 * literal text "${VAR}" instead of an error (compose and go-task files expand their own).
 *
 *   stack-yaml2json [--raw] FILE     exit 0 and JSON on stdout; 2 and "file:line:col: ..." on error
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xt_conf.h"

#define RAW_SLOTS 64
#define RAW_NAME_MAX 128

/* --raw lookup: the environment, else "${NAME}" kept verbatim (a small ring of buffers). */
typedef struct {
    char buf[RAW_SLOTS][RAW_NAME_MAX + 4];
    int next;
} raw_ctx;

static const char *raw_getenv(const char *name, void *ud)
{
    raw_ctx *rc = ud;
    const char *v = getenv(name);
    if (v != NULL) return v;
    char *slot = rc->buf[rc->next];
    rc->next = (rc->next + 1) % RAW_SLOTS;
    snprintf(slot, sizeof(rc->buf[0]), "${%s}", name);
    return slot;
}

static json_t *to_json(const xt_node *n)
{
    if (n == NULL) return json_null();
    switch (n->kind) {
    case XT_NODE_SCALAR:
        if (n->is_null) return json_null();
        return json_stringn(n->str, n->str_len);
    case XT_NODE_SEQ: {
        json_t *a = json_array();
        for (size_t i = 0; i < n->len; i++)
            json_array_append_new(a, to_json(n->items[i]));
        return a;
    }
    case XT_NODE_MAP: {
        json_t *o = json_object();
        for (size_t i = 0; i < n->len; i++)
            json_object_setn_new(o, n->keys[i]->str, n->keys[i]->str_len, to_json(n->items[i]));
        return o;
    }
    }
    return json_null();
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (f == NULL) return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    int raw = argc == 3 && strcmp(argv[1], "--raw") == 0;
    if (argc != 2 && !raw) {
        fprintf(stderr, "usage: stack-yaml2json [--raw] FILE\n");
        return 2;
    }
    const char *path = argv[argc - 1];
    char err[512];
    size_t len = 0;
    char *text = slurp(path, &len);
    if (text == NULL) {
        fprintf(stderr, "%s: cannot read\n", path);
        return 2;
    }
    static raw_ctx rc;
    xt_doc *doc = NULL;
    int rcode = xt_conf_load_mem(path, text, len, raw ? raw_getenv : NULL, &rc, &doc, err, sizeof(err));
    free(text);
    if (rcode != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    json_t *j = to_json(doc->root);
    char *out = json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    xt_doc_free(doc);
    if (out == NULL) return 1;
    puts(out);
    free(out);
    return 0;
}
