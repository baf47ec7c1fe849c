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

/* Authelia compiles `resources` with Go's regexp (RE2 syntax); this service matches with POSIX ERE
 * (glibc, no REG_NEWLINE: `^`/`$` are the text's ends, as in RE2 without flags). regex_translate
 * rewrites each RE2 form that has an exact ERE equivalent and refuses the rest, so a rule never
 * loads with another meaning (`[\d]` was "\ or d", `[\w-]` "\, w or -", `\A`/`\z` were literals):
 *   \d \D \w \W \s \S        ->  [0-9] [^0-9] [0-9A-Za-z_] ... (also inside brackets)
 *   \A \z                    ->  ^ $
 *   \. \/ \- ... (punctuation) -> the literal; \t \n \r \f \v \a -> the byte
 *   [...]                    ->  the same set of bytes, written the POSIX way (']' first, '-' last)
 *   (?:x) (?P<n>x) (?<n>x)   ->  (x);  x*? x+? x?? x{n,m}?  ->  greedy (same match or no match)
 * Refused: flags and lookaround (?i) (?=..., \b \B \pN \x.. \Q \1 \z-like forms RE2 lacks, POSIX
 * classes in brackets, non-ASCII bytes in brackets, repeated operators (x** x*+). */

typedef struct {
    char *out;
    size_t o, cap;
} rx_buf;

static void rx_put(rx_buf *b, const char *s, size_t n)
{
    if (b->o + n < b->cap) {
        memcpy(b->out + b->o, s, n);
        b->o += n;
    }
}

static void rx_putc(rx_buf *b, char c)
{
    rx_put(b, &c, 1);
}

/* The byte an escape stands for (-1: none), for the escapes both engines read as one byte. */
static int rx_escape_byte(char e)
{
    static const char from[] = "tnrfva", to[] = "\t\n\r\f\v\a";
    const char *p = strchr(from, e);
    if (e && p) return (unsigned char)to[p - from];
    if ((unsigned char)e < 0x80 && e > 0x20 && !(e >= '0' && e <= '9') && !(e >= 'a' && e <= 'z') &&
        !(e >= 'A' && e <= 'Z'))
        return (unsigned char)e; /* escaped punctuation is the literal in RE2 */
    return -1;
}

/* Add a Perl class (\d \w \s, upper case: complement) to a byte set. 0, or -1 when e is not one. */
static int rx_class(char e, unsigned char *set)
{
    unsigned char cls[256] = {0};
    char lc = (char)(e >= 'A' && e <= 'Z' ? e + 32 : e);
    if (lc != 'd' && lc != 'w' && lc != 's') return -1;
    for (int c = 0; c < 128; c++)
        cls[c] = (unsigned char)(lc == 'd'   ? c >= '0' && c <= '9'
                                 : lc == 'w' ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                                                   (c >= 'A' && c <= 'Z') || c == '_'
                                             : c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' ');
    for (int c = 1; c < 256; c++)
        if (e == lc ? cls[c] : !cls[c]) set[c] = 1;
    return 0;
}

/* Write a byte set as a POSIX bracket expression: ']' first, '[' '^' '-' last (never misread as a
 * range, a class opener or a negation). NUL cannot be written and never occurs in a path. */
static void rx_put_set(rx_buf *b, const unsigned char *set, int neg)
{
    int any = 0, count = 0;
    for (int c = 1; c < 256; c++)
        count += set[c];
    if (!neg && count == 1 && set['^']) { /* "[^]" would read as a negation */
        rx_put(b, "\\^", 2);
        return;
    }
    rx_put(b, neg ? "[^" : "[", neg ? 2 : 1);
    if (set[']']) rx_putc(b, ']'), any = 1;
    for (int c = 1; c < 256; c++)
        if (set[c] && c != ']' && c != '[' && c != '^' && c != '-') rx_putc(b, (char)c), any = 1;
    if (set['[']) rx_putc(b, '['), any = 1;
    if (set['^'] && !any && set['-']) rx_putc(b, '-'), any = 2;
    if (set['^']) rx_putc(b, '^');
    if (set['-'] && any != 2) rx_putc(b, '-');
    rx_putc(b, ']');
}

/* One bracket expression of RE2 at in[*i] == '['; *i is left on its ']'. NULL or the reason. */
static const char *rx_bracket(const char *in, size_t *i, rx_buf *b)
{
    unsigned char set[256] = {0};
    size_t j = *i + 1;
    int neg = 0, first = 1;
    if (in[j] == '^') neg = 1, j++;
    for (;; first = 0) {
        int lo = -1, hi;
        if (in[j] == '\0') return "missing ]";
        if (in[j] == ']' && !first) break;
        if (in[j] == '[' && (in[j + 1] == ':' || in[j + 1] == '=' || in[j + 1] == '.'))
            return "POSIX classes in brackets are not supported here (use \\d, \\w, \\s or a range)";
        if (in[j] == '\\') {
            if (rx_class(in[j + 1], set) == 0) {
                j += 2;
                continue;
            }
            if ((lo = rx_escape_byte(in[j + 1])) < 0) return "an escape in brackets with no POSIX equivalent";
            j += 2;
        } else {
            lo = (unsigned char)in[j++];
        }
        if (lo >= 0x80) return "non-ASCII bytes in brackets (RE2 reads them as characters)";
        hi = lo;
        if (in[j] == '-' && in[j + 1] != ']' && in[j + 1] != '\0') {
            j++;
            if (in[j] == '\\') {
                if ((hi = rx_escape_byte(in[j + 1])) < 0) return "a bad range end in brackets";
                j += 2;
            } else {
                hi = (unsigned char)in[j++];
            }
            if (hi >= 0x80 || hi < lo) return "a bad range in brackets";
        }
        for (int c = lo; c <= hi; c++)
            if (c) set[c] = 1;
    }
    rx_put_set(b, set, neg);
    *i = j;
    return NULL;
}

/* RE2 -> POSIX ERE (see above). The translation (malloc'd) or NULL with *why. */
static char *regex_translate(const char *in, const char **why)
{
    size_t n = strlen(in);
    rx_buf b = {malloc(n * 264 + 16), 0, n * 264 + 16};
    *why = "out of memory";
    if (!b.out) return NULL;
    *why = NULL;
    for (size_t i = 0; i < n && !*why; i++) {
        char c = in[i];
        if (c == '\\') {
            char e = in[i + 1];
            unsigned char set[256] = {0};
            int byte;
            i++;
            if (e == 'A')
                rx_putc(&b, '^');
            else if (e == 'z')
                rx_putc(&b, '$');
            else if (rx_class(e, set) == 0)
                rx_put_set(&b, set, 0);
            else if ((byte = rx_escape_byte(e)) >= 0) {
                if (strchr(".[]()*+?{}|^$\\", byte)) rx_putc(&b, '\\');
                rx_putc(&b, (char)byte);
            } else
                *why = e ? "an escape with no POSIX equivalent (\\b, \\B, \\p, \\x, \\Q, back-references...)"
                         : "trailing backslash";
        } else if (c == '[') {
            *why = rx_bracket(in, &i, &b);
        } else if (c == '(' && in[i + 1] == '?') {
            if (in[i + 2] == ':') {
                i += 2;
            } else if ((in[i + 2] == 'P' && in[i + 3] == '<') || in[i + 2] == '<') {
                const char *gt = strchr(in + i, '>');
                if (!gt)
                    *why = "unterminated group name";
                else
                    i = (size_t)(gt - in);
            } else {
                *why = "flags and lookaround groups ((?i), (?=...)) are not supported here";
            }
            rx_putc(&b, '(');
        } else if ((c == '*' || c == '+' || c == '?') && (in[i + 1] == '*' || in[i + 1] == '+')) {
            *why = "a repeated repetition operator";
        } else if ((c == '*' || c == '+' || c == '?' || c == '}') && in[i + 1] == '?') {
            rx_putc(&b, c); /* lazy: matches what the greedy form matches */
            i++;
        } else {
            rx_putc(&b, c);
        }
    }
    if (!*why && b.o + 1 >= b.cap) *why = "too long";
    if (*why) {
        free(b.out);
        return NULL;
    }
    b.out[b.o] = '\0';
    return b.out;
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
            const char *why = NULL;
            char *re = regex_translate(res[i], &why);
            int rc = re ? regcomp(&r->resources[i], re, REG_EXTENDED | REG_NOSUB) : REG_BADPAT;
            free(re);
            if (rc != 0) {
                char msg[160];
                const xt_node *at = v->kind == XT_NODE_SEQ ? v->items[i] : v;
                if (why)
                    snprintf(msg, sizeof(msg), "%s", why);
                else
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
