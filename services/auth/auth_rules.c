/*
 * auth_rules: Authelia's access_control. Ordered rules, first match wins; each rule matches on
 * domain (exact or "*." suffix), resources (regexes on path[?query]), methods and subject.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static const char *const method_names[] = {"GET",   "HEAD",     "POST",      "PUT",    "PATCH", "DELETE",
                                           "TRACE", "CONNECT",  "OPTIONS",   "COPY",   "LOCK",  "MKCOL",
                                           "MOVE",  "PROPFIND", "PROPPATCH", "UNLOCK", NULL};

static const struct {
    const char *name;
    auth_policy policy;
} policy_names[] = {{"bypass", AUTH_POLICY_BYPASS},
                    {"one_factor", AUTH_POLICY_ONE_FACTOR},
                    {"two_factor", AUTH_POLICY_TWO_FACTOR},
                    {"deny", AUTH_POLICY_DENY}};

unsigned auth_method_bit(const char *m, size_t len)
{
    unsigned i;
    for (i = 0; method_names[i]; i++)
        if (strlen(method_names[i]) == len && memcmp(method_names[i], m, len) == 0) return 1u << i;
    return 0;
}

static int parse_policy(const xt_doc *doc, const xt_node *n, const char *what, auth_policy *out, char *err,
                        size_t errlen)
{
    const char *s;
    size_t i;
    static const char *const cands[] = {"bypass", "one_factor", "two_factor", "deny", NULL};
    if (xt_conf_string(doc, n, what, &s, err, errlen) < 0) return -1;
    for (i = 0; i < sizeof(policy_names) / sizeof(policy_names[0]); i++)
        if (strcmp(s, policy_names[i].name) == 0) {
            *out = policy_names[i].policy;
            return 0;
        }
    {
        const char *sug = xt_suggest(s, cands);
        if (sug)
            return xt_conf_error(err, errlen, doc, n, "%s: unknown policy '%s' (did you mean '%s'?)", what, s,
                                 sug);
    }
    return xt_conf_error(err, errlen, doc, n,
                         "%s: unknown policy '%s' (bypass, one_factor, two_factor, deny)", what, s);
}

/* Go's regexp (Authelia) knows \d and \D; POSIX ERE does not: rewrite them outside brackets. */
static char *regex_translate(const char *in)
{
    size_t n = strlen(in), o = 0;
    char *out = malloc(n * 6 + 1);
    int inbr = 0;
    size_t i;
    if (!out) return NULL;
    for (i = 0; i < n; i++) {
        if (!inbr && in[i] == '\\' && (in[i + 1] == 'd' || in[i + 1] == 'D')) {
            const char *rep = in[i + 1] == 'd' ? "[0-9]" : "[^0-9]";
            memcpy(out + o, rep, strlen(rep));
            o += strlen(rep);
            i++;
            continue;
        }
        if (in[i] == '\\' && in[i + 1]) {
            out[o++] = in[i++];
            out[o++] = in[i];
            continue;
        }
        if (!inbr && in[i] == '[')
            inbr = 1;
        else if (inbr && in[i] == ']')
            inbr = 0;
        out[o++] = in[i];
    }
    out[o] = '\0';
    return out;
}

static int parse_term(const xt_doc *doc, const xt_node *n, auth_subject_term *t, char *err, size_t errlen)
{
    const char *s;
    if (xt_conf_string(doc, n, "subject", &s, err, errlen) < 0) return -1;
    if (strncmp(s, "user:", 5) == 0)
        t->is_group = 0, s += 5;
    else if (strncmp(s, "group:", 6) == 0)
        t->is_group = 1, s += 6;
    else
        return xt_conf_error(err, errlen, doc, n, "subject '%s' must start with 'user:' or 'group:'", s);
    if (*s == '\0' || strlen(s) > AUTH_NAME_MAX)
        return xt_conf_error(err, errlen, doc, n, "subject: empty or too long name");
    t->name = strdup(s);
    return t->name ? 0 : xt_conf_error(err, errlen, doc, n, "out of memory");
}

/* subject: "user:a" | ["user:a", "group:b"] (OR) | [["user:a", "group:b"], "group:c"] (OR of ANDs) */
static int parse_subject(const xt_doc *doc, const xt_node *n, auth_rule *r, char *err, size_t errlen)
{
    size_t i, j, count = n->kind == XT_NODE_SEQ ? n->len : 1;
    if (n->kind == XT_NODE_MAP)
        return xt_conf_error(err, errlen, doc, n, "subject must be a string or a list");
    if (count == 0) return xt_conf_error(err, errlen, doc, n, "subject: empty list");
    r->subjects = calloc(count, sizeof(*r->subjects));
    if (!r->subjects) return xt_conf_error(err, errlen, doc, n, "out of memory");
    r->nsubjects = count;
    for (i = 0; i < count; i++) {
        const xt_node *item = n->kind == XT_NODE_SEQ ? n->items[i] : n;
        size_t nt = item->kind == XT_NODE_SEQ ? item->len : 1;
        if (item->kind == XT_NODE_MAP || nt == 0)
            return xt_conf_error(err, errlen, doc, item, "subject: expected a string or a list of strings");
        r->subjects[i].terms = calloc(nt, sizeof(auth_subject_term));
        if (!r->subjects[i].terms) return xt_conf_error(err, errlen, doc, item, "out of memory");
        r->subjects[i].n = nt;
        for (j = 0; j < nt; j++) {
            const xt_node *tn = item->kind == XT_NODE_SEQ ? item->items[j] : item;
            if (tn->kind != XT_NODE_SCALAR)
                return xt_conf_error(err, errlen, doc, tn, "subject: lists nest only one level");
            if (parse_term(doc, tn, &r->subjects[i].terms[j], err, errlen) < 0) return -1;
        }
    }
    return 0;
}

static int parse_rule(const xt_doc *doc, const xt_node *n, size_t idx, auth_rule *r, char *err, size_t errlen)
{
    static const char *const keys[] = {"domain",  "domain_regex", "policy", "subject", "resources",
                                       "methods", "networks",     "query",  NULL};
    static const char *const unsupported[] = {"domain_regex", "networks", "query", NULL};
    char where[64];
    const xt_node *v;
    size_t i;

    snprintf(where, sizeof(where), "access_control rule #%zu", idx + 1);
    if (xt_conf_want_map(doc, n, where, err, errlen) < 0 ||
        xt_conf_check_keys(doc, n, keys, where, err, errlen) < 0)
        return -1;
    r->line = n->line;
    for (i = 0; unsupported[i]; i++)
        if (xt_map_get(n, unsupported[i]))
            return xt_conf_error(err, errlen, doc, xt_map_key(n, unsupported[i]),
                                 "%s: '%s' is not supported by xtask-auth (a rule is never relaxed silently)",
                                 where, unsupported[i]);
    v = xt_map_get(n, "domain");
    if (!v) return xt_conf_error(err, errlen, doc, n, "%s: 'domain' is required", where);
    if (xt_conf_strv(doc, v, "domain", 1, 1, &r->domains, err, errlen) < 0) return -1;
    for (i = 0; r->domains[i]; i++) {
        char *d = r->domains[i], *p;
        for (p = d; *p; p++) {
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
                  (*p == '*' && p == d && p[1] == '.')))
                return xt_conf_error(err, errlen, doc, v,
                                     "%s: bad domain '%s' (a host name, or '*.' and a host name)", where, d);
        }
        if (strlen(d) == 0 || strcmp(d, "*.") == 0)
            return xt_conf_error(err, errlen, doc, v, "%s: empty domain", where);
    }
    v = xt_map_get(n, "policy");
    if (!v) return xt_conf_error(err, errlen, doc, n, "%s: 'policy' is required", where);
    if (parse_policy(doc, v, "policy", &r->policy, err, errlen) < 0) return -1;
    if ((v = xt_map_get(n, "subject")) != NULL) {
        if (parse_subject(doc, v, r, err, errlen) < 0) return -1;
        if (r->policy == AUTH_POLICY_BYPASS)
            return xt_conf_error(err, errlen, doc, xt_map_get(n, "policy"),
                                 "%s: policy 'bypass' is not supported with 'subject' (as in Authelia)",
                                 where);
    }
    if ((v = xt_map_get(n, "resources")) != NULL) {
        char **res = NULL;
        if (xt_conf_strv(doc, v, "resources", 1, 1, &res, err, errlen) < 0) return -1;
        r->nresources = xt_strv_len(res);
        r->resources = calloc(r->nresources, sizeof(regex_t));
        if (!r->resources) {
            xt_strv_free(res);
            return xt_conf_error(err, errlen, doc, v, "out of memory");
        }
        for (i = 0; i < r->nresources; i++) {
            char *re = regex_translate(res[i]);
            int rc = re ? regcomp(&r->resources[i], re, REG_EXTENDED | REG_NOSUB) : REG_ESPACE;
            free(re);
            if (rc != 0) {
                char msg[128];
                const xt_node *at = v->kind == XT_NODE_SEQ ? v->items[i] : v;
                regerror(rc, NULL, msg, sizeof(msg));
                r->nresources = i; /* only the compiled ones are freed */
                xt_strv_free(res);
                return xt_conf_error(err, errlen, doc, at, "%s: bad resources regex: %s", where, msg);
            }
        }
        xt_strv_free(res);
    }
    if ((v = xt_map_get(n, "methods")) != NULL) {
        char **ms = NULL;
        if (xt_conf_strv(doc, v, "methods", 1, 1, &ms, err, errlen) < 0) return -1;
        for (i = 0; ms[i]; i++) {
            unsigned bit = auth_method_bit(ms[i], strlen(ms[i]));
            if (!bit) {
                const xt_node *at = v->kind == XT_NODE_SEQ ? v->items[i] : v;
                const char *sug = xt_suggest(ms[i], (const char *const *)method_names);
                xt_conf_error(err, errlen, doc, at, "%s: unknown method '%s'%s%s%s", where, ms[i],
                              sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
                xt_strv_free(ms);
                return -1;
            }
            r->methods |= bit;
        }
        xt_strv_free(ms);
    }
    return 0;
}

int auth_acl_parse(const xt_doc *doc, const xt_node *node, auth_acl *acl, char *err, size_t errlen)
{
    static const char *const keys[] = {"default_policy", "rules", "networks", NULL};
    const xt_node *v;
    size_t i;

    memset(acl, 0, sizeof(*acl));
    acl->default_policy = AUTH_POLICY_DENY;
    if (node == NULL) return 0;
    if (xt_conf_want_map(doc, node, "access_control", err, errlen) < 0 ||
        xt_conf_check_keys(doc, node, keys, "access_control", err, errlen) < 0)
        return -1;
    if (xt_map_get(node, "networks"))
        return xt_conf_error(err, errlen, doc, xt_map_key(node, "networks"),
                             "access_control: 'networks' is not supported by xtask-auth");
    if ((v = xt_map_get(node, "default_policy")) != NULL &&
        parse_policy(doc, v, "access_control.default_policy", &acl->default_policy, err, errlen) < 0)
        return -1;
    v = xt_map_get(node, "rules");
    if (v == NULL || v->is_null) return 0;
    if (v->kind != XT_NODE_SEQ)
        return xt_conf_error(err, errlen, doc, v, "access_control.rules must be a list");
    if (v->len > AUTH_MAX_RULES)
        return xt_conf_error(err, errlen, doc, v, "access_control.rules: more than %d rules", AUTH_MAX_RULES);
    acl->rules = calloc(v->len ? v->len : 1, sizeof(auth_rule));
    if (!acl->rules) return xt_conf_error(err, errlen, doc, v, "out of memory");
    for (i = 0; i < v->len; i++) {
        acl->nrules = i + 1;
        if (parse_rule(doc, v->items[i], i, &acl->rules[i], err, errlen) < 0) return -1;
    }
    return 0;
}

void auth_acl_free(auth_acl *acl)
{
    size_t i, j, k;
    if (!acl || !acl->rules) return;
    for (i = 0; i < acl->nrules; i++) {
        auth_rule *r = &acl->rules[i];
        xt_strv_free(r->domains);
        for (j = 0; j < r->nresources; j++)
            regfree(&r->resources[j]);
        free(r->resources);
        for (j = 0; j < r->nsubjects; j++) {
            for (k = 0; k < r->subjects[j].n; k++)
                free(r->subjects[j].terms[k].name);
            free(r->subjects[j].terms);
        }
        free(r->subjects);
    }
    free(acl->rules);
    acl->rules = NULL;
    acl->nrules = 0;
}

static int domain_match(const auth_rule *r, const char *host)
{
    size_t i, hl = strlen(host);
    for (i = 0; r->domains[i]; i++) {
        const char *d = r->domains[i];
        if (d[0] == '*') {
            size_t sl = strlen(d + 1); /* ".example.com" */
            if (hl > sl && strcmp(host + hl - sl, d + 1) == 0) return 1;
        } else if (strcmp(d, host) == 0) {
            return 1;
        }
    }
    return 0;
}

static int term_match(const auth_subject_term *t, const auth_object *o)
{
    size_t i;
    if (!t->is_group) return strcmp(t->name, o->user) == 0;
    for (i = 0; o->groups && o->groups[i]; i++)
        if (strcmp(t->name, o->groups[i]) == 0) return 1;
    return 0;
}

static int subject_match(const auth_rule *r, const auth_object *o)
{
    size_t i, j;
    if (r->nsubjects == 0 || o->user == NULL) /* Authelia: anonymous matches every subject rule */
        return 1;
    for (i = 0; i < r->nsubjects; i++) {
        for (j = 0; j < r->subjects[i].n; j++)
            if (!term_match(&r->subjects[i].terms[j], o)) break;
        if (j == r->subjects[i].n) return 1;
    }
    return 0;
}

auth_policy auth_acl_match(const auth_acl *acl, const auth_object *obj, int *rule_index, int *has_subjects)
{
    size_t i, j;
    *rule_index = -1;
    *has_subjects = 0;
    for (i = 0; i < acl->nrules; i++) {
        const auth_rule *r = &acl->rules[i];
        if (!domain_match(r, obj->host)) continue;
        if (r->nresources) {
            for (j = 0; j < r->nresources; j++)
                if (regexec(&r->resources[j], obj->path, 0, NULL, 0) == 0) break;
            if (j == r->nresources) continue;
        }
        if (r->methods && !(r->methods & obj->method)) continue;
        if (!subject_match(r, obj)) continue;
        *rule_index = (int)i;
        *has_subjects = r->nsubjects > 0;
        return r->policy;
    }
    return acl->default_policy;
}
