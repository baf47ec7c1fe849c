/*
 * graph: the start order of a manifest's services (contract: manifest.h).
 *
 * Up to MF_MAX_SERVICES nodes and MF_MAX_DEPS edges each: Kahn's algorithm with a min-heap,
 * O((n + e) log n). The order is stable: at each step the first service in file order whose
 * dependencies are all placed goes next, so a manifest read twice starts the same way and
 * independent services start in the order they are written.
 */
#include "manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int graph_fail(const manifest *m, const mf_service *s, char *err, size_t errlen, const char *msg)
{
    snprintf(err, errlen, "%s:%d:%d: %s", m->path != NULL ? m->path : "manifest", s->line, s->col, msg);
    return -1;
}

/* Every service left unplaced has an unplaced dependency; following those from the first one
 * must come back to a service already seen: that loop is a cycle. Reported from its first
 * service in file order, along the depends_on edges: "a -> b -> a" reads "a depends on b, which
 * depends on a". */
static int graph_cycle(const manifest *m, const int *placed, char *err, size_t errlen)
{
    int seen_at[MF_MAX_SERVICES], path[MF_MAX_SERVICES + 1]; /* 8 KB of stack at the cap */
    size_t len = 0, n = m->nservices;
    int cur = -1;
    char msg[4096];
    size_t off;
    for (size_t i = 0; i < n; i++) {
        seen_at[i] = -1;
        if (cur < 0 && !placed[i]) cur = (int)i;
    }
    while (cur >= 0 && seen_at[cur] < 0 && len < n) {
        const mf_service *s = &m->services[cur];
        int next = -1;
        seen_at[cur] = (int)len;
        path[len++] = cur;
        for (size_t j = 0; j < s->ndeps && next < 0; j++)
            if (!placed[s->deps[j].index]) next = s->deps[j].index;
        cur = next;
    }
    if (cur < 0 || seen_at[cur] < 0) /* cannot happen: every unplaced service has an unplaced dep */
        return graph_fail(m, &m->services[path[0]], err, errlen, "dependency cycle");
    /* the cycle is path[seen_at[cur] .. len-1]; start it at its first service in file order */
    size_t start = (size_t)seen_at[cur], clen = len - start, first = 0;
    for (size_t k = 1; k < clen; k++)
        if (path[start + k] < path[start + first]) first = k;
    off = (size_t)snprintf(msg, sizeof(msg), "dependency cycle: ");
    for (size_t k = 0; k <= clen && off < sizeof(msg); k++) {
        int idx = path[start + (first + k) % clen];
        off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s", k ? " -> " : "", m->services[idx].name);
    }
    return graph_fail(m, &m->services[path[start + first]], err, errlen, msg);
}

/* A binary min-heap of service indexes: the next service to place is always the first in file
 * order among those whose dependencies are placed. */
typedef struct minheap {
    int *v;
    size_t n;
} minheap;

static void heap_push(minheap *h, int x)
{
    size_t i = h->n++;
    while (i > 0 && h->v[(i - 1) / 2] > x) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = x;
}

static int heap_pop(minheap *h)
{
    int top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c]) c++;
        if (h->v[c] >= last) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

int graph_order(manifest *m, char *err, size_t errlen)
{
    size_t n = m->nservices, k = 0, nedges = 0;
    int rc = -1;
    /* Kahn's algorithm over the reversed edges (dependency -> dependents, kept as one CSR array)
     * with a min-heap for the stable order: O((n + e) log n). */
    int *missing = NULL, *first = NULL, *dependents = NULL, *placed = NULL;
    minheap h = {0};
    if (n > MF_MAX_SERVICES) {
        snprintf(err, errlen, "%s: too many services (at most %d)", m->path != NULL ? m->path : "manifest",
                 MF_MAX_SERVICES);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const mf_service *s = &m->services[i];
        for (size_t j = 0; j < s->ndeps; j++) {
            if (s->deps[j].index < 0 || (size_t)s->deps[j].index >= n) {
                snprintf(err, errlen, "%s:%d:%d: service '%s' depends on unknown service '%s'", m->path,
                         s->deps[j].line, s->deps[j].col, s->name, s->deps[j].name);
                return -1;
            }
        }
        nedges += s->ndeps;
    }
    missing = calloc(n + 1, sizeof(int));
    first = calloc(n + 2, sizeof(int));
    dependents = calloc(nedges + 1, sizeof(int));
    placed = calloc(n + 1, sizeof(int));
    h.v = calloc(n + 1, sizeof(int));
    if (missing == NULL || first == NULL || dependents == NULL || placed == NULL || h.v == NULL) {
        snprintf(err, errlen, "%s: out of memory", m->path != NULL ? m->path : "manifest");
        goto out;
    }
    /* first[d+1] counts the dependents of d, then prefix sums make first[d] their start */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < m->services[i].ndeps; j++)
            first[m->services[i].deps[j].index + 2]++;
    for (size_t d = 2; d <= n + 1; d++)
        first[d] += first[d - 1];
    for (size_t i = 0; i < n; i++) {
        const mf_service *s = &m->services[i];
        missing[i] = (int)s->ndeps;
        for (size_t j = 0; j < s->ndeps; j++)
            dependents[first[s->deps[j].index + 1]++] = (int)i;
        if (s->ndeps == 0) heap_push(&h, (int)i);
    }
    /* now first[d] .. first[d+1] are the dependents of d */
    while (h.n > 0) {
        int i = heap_pop(&h);
        placed[i] = 1;
        m->order[k++] = i;
        for (int e = first[i]; e < first[i + 1]; e++)
            if (--missing[dependents[e]] == 0) heap_push(&h, dependents[e]);
    }
    rc = k == n ? 0 : graph_cycle(m, placed, err, errlen);
out:
    free(missing);
    free(first);
    free(dependents);
    free(placed);
    free(h.v);
    return rc;
}
