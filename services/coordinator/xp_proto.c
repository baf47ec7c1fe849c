/* xp_proto: wire formats of the coordinator (see xp_proto.h, docs/PROTOCOL.md). */
#include "xp_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char *const err_names[XP_ERR__COUNT] = {
    [XP_ERR_BAD_REQUEST] = "bad_request",
    [XP_ERR_UNKNOWN_TASK] = "unknown_task",
    [XP_ERR_NOT_ALLOWED] = "not_allowed",
    [XP_ERR_PAYLOAD_TOO_LARGE] = "payload_too_large",
    [XP_ERR_TIMEOUT] = "timeout",
    [XP_ERR_BUSY] = "busy",
    [XP_ERR_INTERNAL] = "internal",
    [XP_ERR_NOT_FOUND] = "not_found",
    [XP_ERR_PATH_NOT_ALLOWED] = "path_not_allowed",
    [XP_ERR_DOWNLOAD_FAILED] = "download_failed",
    [XP_ERR_CHECKSUM_MISMATCH] = "checksum_mismatch",
    [XP_ERR_UNAVAILABLE] = "unavailable",
};

const char *xp_err_name(xp_err code)
{
    if ((int)code < 0 || code >= XP_ERR__COUNT) return "internal";
    return err_names[code];
}

/* Dump compactly; NULL-safe. */
static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

char *xp_error_json(xp_err code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dump(json_pack("{s:{s:s,s:s}}", "error", "code", xp_err_name(code), "message", msg));
}

int xp_error_parse(const char *json, size_t len, char *code, size_t codelen, char *msg, size_t msglen)
{
    json_t *o = json_loadb(json, len, 0, NULL);
    json_t *e = json_is_object(o) ? json_object_get(o, "error") : NULL;
    int is_err = json_is_object(e);
    if (is_err) {
        const char *c = json_string_value(json_object_get(e, "code"));
        const char *m = json_string_value(json_object_get(e, "message"));
        snprintf(code, codelen, "%s", c ? c : "internal");
        snprintf(msg, msglen, "%s", m ? m : "");
    }
    json_decref(o);
    return is_err;
}

static int is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int xp_token_valid(const char *s)
{
    size_t n = 0;
    if (!s || !*s) return 0;
    for (; s[n]; n++)
        if (!is_token_char(s[n]) || n >= XP_ID_MAX) return 0;
    return 1;
}

int xp_task_id_valid(const char *id)
{
    size_t n = 0;
    if (!id || id[0] != 't' || id[1] != '-') return 0;
    for (n = 2; id[n]; n++)
        if (n >= 18 || !((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f'))) return 0;
    return n == 18;
}

int xp_user_valid(const char *s)
{
    size_t n = 0;
    if (!s || !*s) return 0;
    for (; s[n]; n++)
        if (n >= XP_USER_MAX || (unsigned char)s[n] < 0x20 || (unsigned char)s[n] == 0x7f) return 0;
    return 1;
}

int xp_task_name_valid(const char *s)
{
    size_t n = 0;
    if (!s || !*s || s[0] == '-' || s[0] == '.' || s[0] == ':') return 0;
    for (; s[n]; n++)
        if ((!is_token_char(s[n]) && s[n] != ':' && s[n] != '.') || n >= XP_ID_MAX) return 0;
    return 1;
}

void xp_token_sanitize(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (; in && in[n] && n < XP_ID_MAX && n + 1 < outlen; n++)
        out[n] = is_token_char(in[n]) ? in[n] : '-';
    out[n] = '\0';
    if (n == 0) snprintf(out, outlen, "node");
}

int xp_node_id_reserved(const char *id)
{
    static const char *const reserved[] = {"nodes", "queue", "results", "broadcast", "logs", "events", NULL};
    for (size_t i = 0; reserved[i]; i++)
        if (strcmp(id, reserved[i]) == 0) return 1;
    return 0;
}

static const char *env_get(xp_getenv_fn fn, void *ud, const char *name)
{
    const char *v = fn ? fn(name, ud) : getenv(name);
    return v && *v ? v : NULL;
}

int xp_node_id(const char *flag, xp_getenv_fn getenv_fn, void *ud, const char *hostname, char *out,
               size_t outlen, char *err, size_t errlen)
{
    const char *explicit = flag && *flag ? flag : env_get(getenv_fn, ud, "XTASK_NODE_ID");
    if (explicit) {
        if (!xp_token_valid(explicit)) {
            snprintf(err, errlen, "node id '%s' is not valid: 1-%d characters of A-Z a-z 0-9 _ -", explicit,
                     XP_ID_MAX);
            return -1;
        }
        if (xp_node_id_reserved(explicit)) {
            snprintf(err, errlen, "node id '%s' is reserved (xtask.%s.> has another meaning)", explicit,
                     explicit);
            return -1;
        }
        snprintf(out, outlen, "%s", explicit);
        return 0;
    }
    const char *region = env_get(getenv_fn, ud, "FLY_REGION");
    const char *machine = env_get(getenv_fn, ud, "FLY_MACHINE_ID");
    if (region && machine) {
        char both[2 * XP_ID_MAX + 2];
        snprintf(both, sizeof both, "%s-%s", region, machine);
        xp_token_sanitize(both, out, outlen);
    } else {
        xp_token_sanitize(hostname, out, outlen);
    }
    if (xp_node_id_reserved(out)) {
        char tmp[XP_ID_MAX + 1];
        snprintf(tmp, sizeof tmp, "%s", out);
        snprintf(out, outlen, "n-%s", tmp);
    }
    return 0;
}

static json_t *strv_json(const char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

char *xp_node_json(const xp_node_info *n)
{
    json_t *o = json_pack("{s:s,s:s,s:o,s:{s:s,s:s,s:s},s:o,s:{s:i,s:i,s:f},s:s,s:I,s:I}", "id", n->id,
                          "region", n->region ? n->region : "", "capabilities", strv_json(n->capabilities),
                          "platform", "os", n->os ? n->os : "", "arch", n->arch ? n->arch : "", "hostname",
                          n->hostname ? n->hostname : "", "tasks", strv_json(n->tasks), "load", "running",
                          n->running, "queued", n->queued, "load1", n->load1, "version", XP_VERSION,
                          "started_ms", (json_int_t)n->started_ms, "ts_ms", (json_int_t)n->ts_ms);
    if (o && n->tags) json_object_set_new(o, "tags", strv_json(n->tags));
    if (o && n->task_info) json_object_set(o, "task_info", n->task_info);
    if (o && n->heartbeat_ms > 0) json_object_set_new(o, "heartbeat_ms", json_integer(n->heartbeat_ms));
    if (o && n->ttl_ms > 0) json_object_set_new(o, "ttl_ms", json_integer(n->ttl_ms));
    return dump(o);
}

json_t *xp_parse_object(const char *data, size_t len, int empty_ok, char *err, size_t errlen)
{
    json_error_t je;
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t'))
        i++;
    if (i == len) {
        if (empty_ok) return json_object();
        snprintf(err, errlen, "empty request: a JSON object is required");
        return NULL;
    }
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        snprintf(err, errlen, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        snprintf(err, errlen, "the request must be a JSON object");
        return NULL;
    }
    return o;
}

/* Copy an optional string member into buf (bounded); -1 on a wrong type or an oversized value. */
static int opt_str(json_t *o, const char *key, char *buf, size_t buflen, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        snprintf(err, errlen, "'%s' must be a string", key);
        return -1;
    }
    if (json_string_length(v) >= buflen) {
        snprintf(err, errlen, "'%s' is too long (max %zu bytes)", key, buflen - 1);
        return -1;
    }
    snprintf(buf, buflen, "%s", json_string_value(v));
    return 0;
}

int xp_filter_parse(const char *json, size_t len, xp_filter *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    json_t *o = xp_parse_object(json, len, 1, err, errlen);
    int rc = -1;
    if (!o) return -1;
    if (opt_str(o, "capability", f->capability, sizeof f->capability, err, errlen) ||
        opt_str(o, "platform", f->platform, sizeof f->platform, err, errlen) ||
        opt_str(o, "region", f->region, sizeof f->region, err, errlen) ||
        opt_str(o, "task", f->task, sizeof f->task, err, errlen))
        goto out;
    rc = 0;
out:
    json_decref(o);
    return rc;
}

static int strv_has(const char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0) return 1;
    return 0;
}

int xp_filter_match(const xp_filter *f, const xp_node_info *n)
{
    if (f->capability[0] && !strv_has(n->capabilities, f->capability)) return 0;
    if (f->region[0] && (!n->region || strcmp(f->region, n->region) != 0)) return 0;
    if (f->task[0] && !strv_has(n->tasks, f->task)) return 0;
    if (f->platform[0]) {
        const char *slash = strchr(f->platform, '/');
        if (!slash) {
            if (!n->os || strcmp(f->platform, n->os) != 0) return 0;
        } else {
            size_t oslen = (size_t)(slash - f->platform);
            if (!n->os || strlen(n->os) != oslen || strncmp(f->platform, n->os, oslen) != 0) return 0;
            if (!n->arch || strcmp(slash + 1, n->arch) != 0) return 0;
        }
    }
    return 1;
}

void xp_run_req_free(xp_run_req *r)
{
    for (size_t i = 0; i < r->nargs; i++)
        free(r->args[i]);
    r->nargs = 0;
    r->args[0] = NULL;
}

int xp_run_req_parse(const char *json, size_t len, xp_run_req *r, xp_err *code, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    snprintf(r->project, sizeof r->project, "default");
    *code = XP_ERR_BAD_REQUEST;
    json_t *o = xp_parse_object(json, len, 0, err, errlen);
    if (!o) return -1;
    int rc = -1;
    json_t *args = json_object_get(o, "args");
    if (!json_is_array(args) || json_array_size(args) == 0) {
        snprintf(err, errlen, "'args' must be a non-empty array of strings (args[0] is the task name)");
        goto out;
    }
    if (json_array_size(args) > XP_ARGS_MAX) {
        snprintf(err, errlen, "too many args (max %d)", XP_ARGS_MAX);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(args); i++) {
        json_t *a = json_array_get(args, i);
        if (!json_is_string(a)) {
            snprintf(err, errlen, "args[%zu] must be a string", i);
            goto out;
        }
        if (json_string_length(a) > XP_ARG_LEN_MAX || strlen(json_string_value(a)) != json_string_length(a)) {
            snprintf(err, errlen, "args[%zu] is too long or holds a NUL byte", i);
            goto out;
        }
        r->args[r->nargs] = strdup(json_string_value(a));
        if (!r->args[r->nargs]) {
            *code = XP_ERR_INTERNAL;
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        r->nargs++;
    }
    r->args[r->nargs] = NULL;
    if (!xp_task_name_valid(r->args[0])) {
        *code = XP_ERR_UNKNOWN_TASK;
        snprintf(err, errlen, "'%.64s' is not a valid task name", r->args[0]);
        goto out;
    }
    if (opt_str(o, "project", r->project, sizeof r->project, err, errlen) ||
        opt_str(o, "id", r->id, sizeof r->id, err, errlen) ||
        opt_str(o, "requested_by", r->requested_by, sizeof r->requested_by, err, errlen) ||
        opt_str(o, "via", r->via, sizeof r->via, err, errlen))
        goto out;
    if (!r->project[0]) snprintf(r->project, sizeof r->project, "default");
    if (!xp_token_valid(r->project)) {
        snprintf(err, errlen, "'project' must be 1-%d characters of A-Z a-z 0-9 _ -", XP_ID_MAX);
        goto out;
    }
    if (r->id[0] && !xp_task_id_valid(r->id)) {
        snprintf(err, errlen,
                 "'id' must be a task id made by the platform (t- and 16 hex digits); omit it "
                 "and the node makes one");
        goto out;
    }
    if (r->requested_by[0] && !xp_user_valid(r->requested_by)) {
        snprintf(err, errlen, "'requested_by' must be 1-%d bytes without control characters", XP_USER_MAX);
        goto out;
    }
    if (r->via[0] && !xp_token_valid(r->via)) {
        snprintf(err, errlen, "'via' must be a token (web, cli)");
        goto out;
    }
    json_t *t = json_object_get(o, "timeout_ms");
    if (t && !json_is_null(t)) {
        if (!json_is_integer(t) || json_integer_value(t) < 0) {
            snprintf(err, errlen, "'timeout_ms' must be a non-negative integer");
            goto out;
        }
        r->timeout_ms = json_integer_value(t);
    }
    rc = 0;
out:
    if (rc != 0) xp_run_req_free(r);
    json_decref(o);
    return rc;
}

char *xp_run_req_json(const xp_run_req *r)
{
    json_t *o = json_pack("{s:o,s:s}", "args", strv_json((const char *const *)r->args), "project",
                          r->project[0] ? r->project : "default");
    if (o && r->id[0]) json_object_set_new(o, "id", json_string(r->id));
    if (o && r->timeout_ms > 0) json_object_set_new(o, "timeout_ms", json_integer(r->timeout_ms));
    if (o && r->requested_by[0]) json_object_set_new(o, "requested_by", json_string(r->requested_by));
    if (o && r->via[0]) json_object_set_new(o, "via", json_string(r->via));
    return dump(o);
}

/* One attempt at the result with `tail_len`/`out_len` bytes kept (the last bytes of each). */
static char *result_try(const xp_result *r, int with_output, size_t tail_len, size_t out_len, int cut)
{
    const char *tail = r->tail ? r->tail + (r->tail_len - tail_len) : "";
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:I,s:b,s:s%,s:b}", "id", r->id, "node", r->node, "task",
                          r->task, "project", r->project ? r->project : "default", "exit_code", r->exit_code,
                          "signal", r->signal, "duration_ms", (json_int_t)r->duration_ms, "timed_out",
                          r->timed_out, "output_tail", tail, tail_len, "truncated", r->truncated || cut);
    if (o && r->requested_by && r->requested_by[0])
        json_object_set_new(o, "requested_by", json_string(r->requested_by));
    if (o && r->via && r->via[0]) json_object_set_new(o, "via", json_string(r->via));
    if (o && with_output) {
        const char *out = r->output ? r->output + (r->output_len - out_len) : "";
        json_object_set_new(o, "output", json_stringn(out, out_len));
        json_object_set_new(o, "started_ms", json_integer(r->started_ms));
        json_object_set_new(o, "finished_ms", json_integer(r->finished_ms));
    }
    return dump(o);
}

char *xp_result_json(const xp_result *r, int with_output, size_t max_bytes)
{
    size_t tail_len = r->tail ? r->tail_len : 0;
    size_t out_len = with_output && r->output ? r->output_len : 0;
    int cut = 0;
    for (;;) {
        char *s = result_try(r, with_output, tail_len, out_len, cut);
        if (!s || strlen(s) <= max_bytes || (tail_len == 0 && out_len == 0)) return s;
        free(s);
        cut = 1;
        if (out_len > 0)
            out_len /= 2;
        else
            tail_len /= 2;
    }
}

char *xp_log_json(const char *id, const char *task, const char *stream, const char *line, size_t len)
{
    return dump(json_pack("{s:s,s:s,s:s,s:s%}", "id", id, "task", task, "stream", stream, "line", line, len));
}

char *xp_event_json(const char *type, const char *id, const char *node, json_t *extra, int64_t ts_ms)
{
    json_t *o = json_pack("{s:s,s:s,s:I}", "type", type, "node", node, "ts_ms", (json_int_t)ts_ms);
    if (o && id) json_object_set_new(o, "id", json_string(id));
    if (o && extra) json_object_update(o, extra);
    json_decref(extra);
    return dump(o);
}

void xp_new_id(char *out, size_t outlen)
{
    unsigned char b[8];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* never fatal: fall back on time and address entropy */
        uint64_t x = (uint64_t)xp_mono_ms() ^ ((uint64_t)(uintptr_t)out << 17) ^ (uint64_t)xp_now_ms() << 3;
        memcpy(b, &x, sizeof b);
    }
    snprintf(out, outlen, "t-%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
             b[7]);
}

int64_t xp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t xp_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
