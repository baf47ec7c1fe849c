/*
 * rules.c: who may send which verb through the web API (web.yaml `api.rules`), Authelia-style.
 *
 * The front's forward-auth gives every API request the signed-in user (Remote-User) and groups
 * (Remote-Groups, comma-separated), copied from the auth service's answer; client-supplied values
 * are stripped by the front. Rules are tried in order and the first one that matches decides
 * (`policy: allow`, the default, or `deny`); a request that no rule matches is denied. A rule
 * matches when
 *   - its subject matches: the user is in `users` or one of the user's groups is in `groups`
 *     (a rule with neither matches every signed-in user),
 *   - the verb is in `verbs` (task.run, which.check, got.download, silent.exec, kill-port,
 *     audit.read),
 *   - and, for task.run, the task name matches one of `tasks` (shell patterns: "*", "deploy:*";
 *     a task.run rule without `tasks` matches every task).
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "web.h"

static const char *const rule_keys[] = {"policy", "users", "groups", "verbs", "tasks", NULL};
const char *const web_api_verbs[] = {"task.run",   "which.check", "got.download", "silent.exec", "kill-port",
                                     "audit.read", NULL};

static int in_list(const char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0) return 1;
    return 0;
}

/* A task pattern: the characters of task names plus the shell wildcards * ? [ ]. */
static int task_pattern_ok(const char *p)
{
    if (!*p || strlen(p) > 64) return 0;
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == ':' || *p == '.' || *p == '*' || *p == '?' || *p == '[' || *p == ']'))
            return 0;
    return 1;
}

static int load_rule(const xt_doc *d, const xt_node *n, web_api_rule *r, char *err, size_t errlen)
{
    const xt_node *v;
    const char *s;
    r->line = n->line;
    r->col = n->col;
    if (xt_conf_want_map(d, n, "api.rules[]", err, errlen) != 0 ||
        xt_conf_check_keys(d, n, rule_keys, "api rule", err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(n, "policy")) != NULL) {
        if (xt_conf_string(d, v, "api rule policy", &s, err, errlen) != 0) return -1;
        if (strcmp(s, "allow") != 0 && strcmp(s, "deny") != 0)
            return xt_conf_error(err, errlen, d, v, "api rule policy: '%s' is not allow or deny", s);
        r->deny = strcmp(s, "deny") == 0;
    }
    if ((v = xt_map_get(n, "users")) != NULL &&
        xt_conf_strv(d, v, "api rule users", 1, 1, &r->users, err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(n, "groups")) != NULL &&
        xt_conf_strv(d, v, "api rule groups", 1, 1, &r->groups, err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(n, "verbs")) == NULL)
        return xt_conf_error(err, errlen, d, n,
                             "api rule: missing 'verbs' (some of task.run, which.check, "
                             "got.download, silent.exec, kill-port, audit.read)");
    if (xt_conf_strv(d, v, "api rule verbs", 1, 1, &r->verbs, err, errlen) != 0) return -1;
    for (size_t i = 0; r->verbs[i]; i++) {
        if (!in_list(web_api_verbs, r->verbs[i])) {
            const char *sug = xt_suggest(r->verbs[i], web_api_verbs);
            return xt_conf_error(err, errlen, d, v->kind == XT_NODE_SEQ ? v->items[i] : v,
                                 "api rule verbs: unknown verb '%s'%s%s%s (one of task.run, which.check, "
                                 "got.download, silent.exec, kill-port, audit.read)",
                                 r->verbs[i], sug ? " (did you mean '" : "", sug ? sug : "",
                                 sug ? "'?)" : "");
        }
    }
    if ((v = xt_map_get(n, "tasks")) != NULL) {
        if (!in_list((const char *const *)r->verbs, "task.run"))
            return xt_conf_error(err, errlen, d, v, "api rule tasks: only meaningful with the verb task.run");
        if (xt_conf_strv(d, v, "api rule tasks", 1, 1, &r->tasks, err, errlen) != 0) return -1;
        for (size_t i = 0; r->tasks[i]; i++)
            if (!task_pattern_ok(r->tasks[i]))
                return xt_conf_error(err, errlen, d, v->kind == XT_NODE_SEQ ? v->items[i] : v,
                                     "api rule tasks: '%s' is not a task name or pattern", r->tasks[i]);
    }
    return 0;
}

/* api.projects: {name: {users: [..], groups: [..]}} */
static int load_projects(const xt_doc *d, const xt_node *m, web_conf *c, char *err, size_t errlen)
{
    static const char *const k[] = {"users", "groups", NULL};
    if (xt_conf_want_map(d, m, "api.projects", err, errlen) != 0) return -1;
    if (m->len > WEB_MAX_PROJECTS)
        return xt_conf_error(err, errlen, d, m, "api.projects: at most %d", WEB_MAX_PROJECTS);
    for (size_t i = 0; i < m->len; i++) {
        const xt_node *key = m->keys[i], *p = m->items[i], *v;
        const char *name = key->str;
        size_t n = 0;
        for (const char *s = name; s && *s; s++, n++)
            if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                  *s == '-' || *s == '_'))
                n = WEB_PROJECT_MAX + 1;
        if (n == 0 || n > WEB_PROJECT_MAX)
            return xt_conf_error(err, errlen, d, key,
                                 "api.projects: '%s' is not a project name (1-64 of A-Z a-z 0-9 _ -)",
                                 name ? name : "");
        web_project *pr = &c->projects[c->nprojects++];
        pr->name = strdup(name);
        if (!pr->name) return xt_conf_error(err, errlen, d, key, "out of memory");
        if (p->kind == XT_NODE_SCALAR && p->is_null) continue; /* "name:" alone: everyone */
        if (xt_conf_want_map(d, p, "api.projects entry", err, errlen) != 0 ||
            xt_conf_check_keys(d, p, k, "api.projects entry", err, errlen) != 0)
            return -1;
        if ((v = xt_map_get(p, "users")) != NULL &&
            xt_conf_strv(d, v, "api.projects users", 1, 1, &pr->users, err, errlen) != 0)
            return -1;
        if ((v = xt_map_get(p, "groups")) != NULL &&
            xt_conf_strv(d, v, "api.projects groups", 1, 1, &pr->groups, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int web_rules_load(const xt_doc *d, const xt_node *api, web_conf *c, char *err, size_t errlen)
{
    static const char *const k[] = {"rules", "projects", NULL};
    const xt_node *v;
    if (xt_conf_want_map(d, api, "api", err, errlen) != 0 ||
        xt_conf_check_keys(d, api, k, "api", err, errlen) != 0)
        return -1;
    if ((v = xt_map_get(api, "projects")) != NULL && load_projects(d, v, c, err, errlen) != 0) return -1;
    if ((v = xt_map_get(api, "rules")) == NULL) return 0;
    if (v->kind != XT_NODE_SEQ) return xt_conf_error(err, errlen, d, v, "api.rules: a list of rules");
    if (v->len > WEB_MAX_RULES)
        return xt_conf_error(err, errlen, d, v, "api.rules: at most %d", WEB_MAX_RULES);
    for (size_t i = 0; i < v->len; i++) {
        if (load_rule(d, v->items[i], &c->api_rules[i], err, errlen) != 0) {
            c->napi_rules = i + 1; /* freed with the rest */
            return -1;
        }
        c->napi_rules = i + 1;
    }
    return 0;
}

void web_rules_free(web_conf *c)
{
    for (size_t i = 0; i < c->napi_rules; i++) {
        xt_strv_free(c->api_rules[i].users);
        xt_strv_free(c->api_rules[i].groups);
        xt_strv_free(c->api_rules[i].verbs);
        xt_strv_free(c->api_rules[i].tasks);
    }
    c->napi_rules = 0;
    for (size_t i = 0; i < c->nprojects; i++) {
        free(c->projects[i].name);
        xt_strv_free(c->projects[i].users);
        xt_strv_free(c->projects[i].groups);
    }
    c->nprojects = 0;
}

/* 1 if `groups` (comma-separated, blanks around names ignored) holds one of `want`. */
static int groups_match(const char *groups, char *const *want)
{
    const char *p = groups;
    while (p && *p) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ",");
        size_t t = n;
        while (t > 0 && p[t - 1] == ' ')
            t--;
        for (size_t i = 0; t && want[i]; i++)
            if (strlen(want[i]) == t && memcmp(want[i], p, t) == 0) return 1;
        p += n;
    }
    return 0;
}

int web_rules_allow(const web_conf *c, const char *user, const char *groups, const char *verb,
                    const char *task, int *rule)
{
    *rule = -1;
    if (!user || !*user) return 0;
    for (size_t i = 0; i < c->napi_rules; i++) {
        const web_api_rule *r = &c->api_rules[i];
        int subject = (!r->users && !r->groups) ||
                      (r->users && in_list((const char *const *)r->users, user)) ||
                      (r->groups && groups && groups_match(groups, r->groups));
        if (!subject || !in_list((const char *const *)r->verbs, verb)) continue;
        if (strcmp(verb, "task.run") == 0 && r->tasks) {
            size_t k = 0;
            for (; r->tasks[k]; k++)
                if (task && fnmatch(r->tasks[k], task, 0) == 0) break;
            if (!r->tasks[k]) continue;
        }
        *rule = (int)i;
        return !r->deny;
    }
    return 0;
}

int web_project_allowed(const web_conf *c, const char *user, const char *groups, const char *project)
{
    if (!user || !*user) return 0;
    if (c->nprojects == 0) return 1;
    for (size_t i = 0; i < c->nprojects; i++) {
        const web_project *p = &c->projects[i];
        if (strcmp(p->name, project) != 0) continue;
        return (!p->users && !p->groups) || (p->users && in_list((const char *const *)p->users, user)) ||
               (p->groups && groups && groups_match(groups, p->groups));
    }
    return 0; /* a project the configuration does not name: nobody's */
}
