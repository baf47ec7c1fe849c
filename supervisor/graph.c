/*
 * graph: the start order of a manifest's services (contract: manifest.h).
 *
 * At most MF_MAX_SERVICES nodes and MF_MAX_DEPS edges each, so plain arrays and quadratic loops
 * are enough. The order is stable: at each step the first service in file order whose
 * dependencies are all placed goes next, so a manifest read twice starts the same way and
 * independent services start in the order they are written.
 */
#include "manifest.h"

#include <stdio.h>
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
    int seen_at[MF_MAX_SERVICES], path[MF_MAX_SERVICES + 1];
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

int graph_order(manifest *m, char *err, size_t errlen)
{
    int placed[MF_MAX_SERVICES] = {0};
    size_t n = m->nservices, k = 0;
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
    }
    while (k < n) {
        size_t i;
        for (i = 0; i < n; i++) {
            const mf_service *s = &m->services[i];
            size_t j;
            if (placed[i]) continue;
            for (j = 0; j < s->ndeps && placed[s->deps[j].index]; j++)
                ;
            if (j == s->ndeps) break;
        }
        if (i == n) return graph_cycle(m, placed, err, errlen);
        placed[i] = 1;
        m->order[k++] = (int)i;
    }
    return 0;
}
