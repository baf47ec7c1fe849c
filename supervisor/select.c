/*
 * select: `xtask-supervisor run --only a,b`: the named services and everything they depend on,
 * transitively. The rest of the manifest is read and validated as usual but not supervised (not
 * started, not in `status`, not in /healthz). The container entrypoint maps its modes onto it.
 */
#include "sv.h"

#include <stdio.h>
#include <string.h>

#include "xt_conf.h"

/* Mark service i and its dependencies (iteratively: depth is bounded by the service count). */
static void select_mark(const manifest *m, int i, unsigned char *keep)
{
    int stack[MF_MAX_SERVICES], n = 0;
    if (keep[i]) return;
    keep[i] = 1;
    stack[n++] = i;
    while (n > 0) {
        const mf_service *d = &m->services[stack[--n]];
        for (size_t k = 0; k < d->ndeps; k++) {
            int j = d->deps[k].index;
            if (j < 0 || (size_t)j >= m->nservices || keep[j]) continue;
            keep[j] = 1;
            stack[n++] = j; /* each service is pushed once: n stays below MF_MAX_SERVICES */
        }
    }
}

/* xt_suggest allows one edit for short words, so "wbe" finds nothing: service names are short,
 * and swapped letters are the usual typo. 1 if a and b differ by one swap of neighbours. */
static int one_swap(const char *a, const char *b)
{
    size_t n = strlen(a), i = 0;
    if (n != strlen(b) || n < 2) return 0;
    while (i < n && a[i] == b[i])
        i++;
    return i + 1 < n && a[i] == b[i + 1] && a[i + 1] == b[i] && strcmp(a + i + 2, b + i + 2) == 0;
}

static const char *select_suggest(const char *word, const char *const *names)
{
    const char *hint = xt_suggest(word, names);
    for (size_t k = 0; hint == NULL && names[k] != NULL; k++)
        if (one_swap(word, names[k])) hint = names[k];
    return hint;
}

int sv_select(const manifest *m, const char *list, unsigned char keep[MF_MAX_SERVICES], char *err,
              size_t errlen)
{
    const char *names[MF_MAX_SERVICES + 1];
    int count = 0;
    memset(keep, 0, MF_MAX_SERVICES);
    for (size_t i = 0; i < m->nservices; i++)
        names[i] = m->services[i].name;
    names[m->nservices] = NULL;
    const char *p = list;
    int nwords = 0;
    while (*p != '\0') {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        if (*p == '\0') break;
        size_t n = strcspn(p, ", \t");
        char name[MF_NAME_MAX + 1];
        if (n > MF_NAME_MAX) {
            snprintf(err, errlen, "--only: service name too long: '%.*s...'", 20, p);
            return -1;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        p += n;
        nwords++;
        int i = manifest_find(m, name);
        if (i < 0) {
            const char *hint = select_suggest(name, names);
            if (hint != NULL)
                snprintf(err, errlen, "--only: unknown service '%s' (did you mean '%s'?)", name, hint);
            else {
                size_t off = (size_t)snprintf(err, errlen, "--only: unknown service '%s' (services:", name);
                for (size_t k = 0; k < m->nservices && off < errlen; k++)
                    off += (size_t)snprintf(err + off, errlen - off, " %s", names[k]);
                if (off < errlen) snprintf(err + off, errlen - off, ")");
            }
            return -1;
        }
        select_mark(m, i, keep);
    }
    if (nwords == 0) {
        snprintf(err, errlen, "--only: no service named (--only NAME[,NAME...])");
        return -1;
    }
    for (size_t i = 0; i < m->nservices; i++)
        count += keep[i];
    return count;
}
