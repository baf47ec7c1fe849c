/* common/xt_conf.c, the YAML loader under every config file: xt_conf_load_mem() (positions,
 * ${VAR} expansion, anchors and aliases, duplicate keys), then the typed getters over every node. */
#include "fuzz.h"
#include "xt_conf.h"

static void walk(const xt_doc *d, const xt_node *n, int depth)
{
    char err[256], **v = NULL;
    const char *s;
    int b;
    long long ll;
    int64_t ms;
    if (n == NULL || depth > 64) return;
    if (n->line < 1 || n->col < 1) abort();
    switch (n->kind) {
    case XT_NODE_SCALAR:
        if (n->str == NULL || strlen(n->str) > n->str_len) abort();
        xt_conf_string(d, n, "x", &s, err, sizeof(err));
        xt_conf_bool(d, n, "x", &b, err, sizeof(err));
        xt_conf_int(d, n, "x", -1000, 1000000, &ll, err, sizeof(err));
        xt_conf_duration(d, n, "x", 0, INT64_MAX, &ms, err, sizeof(err));
        break;
    case XT_NODE_SEQ:
        for (size_t i = 0; i < n->len; i++)
            walk(d, n->items[i], depth + 1);
        if (xt_conf_strv(d, n, "x", 1, 0, &v, err, sizeof(err)) == 0) xt_strv_free(v);
        break;
    case XT_NODE_MAP: {
        static const char *const allowed[] = {"version", "services", "env", "name", NULL};
        xt_conf_check_keys(d, n, allowed, "x", err, sizeof(err));
        /* the loader refuses duplicate keys (a hash set past a few keys): check it the slow way */
        for (size_t i = 0; i < n->len && n->len <= 512; i++)
            for (size_t j = 0; j < i; j++)
                if (n->keys[i]->str_len == n->keys[j]->str_len &&
                    memcmp(n->keys[i]->str, n->keys[j]->str, n->keys[i]->str_len) == 0)
                    abort();
        for (size_t i = 0; i < n->len; i++) {
            if (n->keys[i]->kind != XT_NODE_SCALAR) abort();
            if (xt_map_get(n, n->keys[i]->str) == NULL &&
                memchr(n->keys[i]->str, 0, n->keys[i]->str_len) == NULL)
                abort();
            walk(d, n->items[i], depth + 1);
        }
        break;
    }
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xt_doc *d = NULL;
    char err[512] = "";
    if (xt_conf_load_mem("f.yaml", (const char *)data, size, fz_env, NULL, &d, err, sizeof(err)) == 0) {
        walk(d, d->root, 0);
        xt_doc_free(d);
    } else if (err[0] == '\0') {
        abort();
    }
    /* the same bytes as one scalar: ${VAR} expansion and durations */
    char *s = fz_str(data, size), *out = NULL;
    size_t off;
    if (xt_conf_expand(s, fz_env, NULL, &out, &off, err, sizeof(err)) == 0) free(out);
    int64_t ms;
    char buf[64];
    if (xt_duration_parse(s, &ms) == 0) {
        if (ms < 0) abort();
        xt_duration_format(ms, buf, sizeof(buf));
        int64_t back;
        if (xt_duration_parse(buf, &back) != 0 || back != ms) abort();
    }
    free(s);
    return 0;
}
