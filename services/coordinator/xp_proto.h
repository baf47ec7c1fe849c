/*
 * xp_proto: the coordinator's wire formats (docs/PROTOCOL.md) as C: error replies, identifiers,
 * node records, discover filters, task.run requests and replies, log/event lines.
 *
 * Pure functions over jansson values and C strings: no NATS, no threads, no I/O, so that the unit
 * tests can check every encoding and decoding without a broker. Every `char *` returned by an
 * xp_*_json function is malloc'd and owned by the caller (free()).
 */
#ifndef XP_PROTO_H
#define XP_PROTO_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define XP_ID_MAX 64   /* task ids, node ids, project names, task names: bytes without NUL */
#define XP_ARGS_MAX 64 /* task.run args (task name included) */
#define XP_ARG_LEN_MAX 4096
#define XP_VERSION "0.1.0"
#define XP_USER_MAX 128 /* requested_by: bytes without NUL */
#define XP_VIA_MAX 16   /* via: "web", "cli" */

/* Error codes of the `{"error":{"code":..,"message":..}}` reply; the text names are the wire names. */
typedef enum {
    XP_ERR_BAD_REQUEST = 0,
    XP_ERR_UNKNOWN_TASK,
    XP_ERR_NOT_ALLOWED,
    XP_ERR_PAYLOAD_TOO_LARGE,
    XP_ERR_TIMEOUT,
    XP_ERR_BUSY,
    XP_ERR_INTERNAL,
    XP_ERR_NOT_FOUND,
    XP_ERR_PATH_NOT_ALLOWED,
    XP_ERR_DOWNLOAD_FAILED,
    XP_ERR_CHECKSUM_MISMATCH,
    XP_ERR_UNAVAILABLE,
    XP_ERR__COUNT
} xp_err;

/* The wire name of an error code ("bad_request"...). */
const char *xp_err_name(xp_err code);

/* `{"error":{"code":"<name>","message":"<printf>"}}` (malloc'd, never NULL on enough memory). */
char *xp_error_json(xp_err code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse an error reply: 1 and the code/message copied into the buffers when `json` is an error
 * object, 0 when it is not an error reply (or not JSON). */
int xp_error_parse(const char *json, size_t len, char *code, size_t codelen, char *msg, size_t msglen);

/* A token usable inside a NATS subject and as a key: 1..XP_ID_MAX chars of [A-Za-z0-9_-].
 * Returns 1 if valid. */
int xp_token_valid(const char *s);

/* 1 if `id` is a task id in the form the platform makes (xp_new_id: "t-" and 16 lower-case hex
 * digits). Task ids are made by the platform (the web API, the CLI, the node), never chosen by a
 * user: a request carrying any other id is refused. */
int xp_task_id_valid(const char *id);

/* 1 if `s` can name a requester: 1..XP_USER_MAX bytes, no control characters. */
int xp_user_valid(const char *s);

/* Like xp_token_valid, plus ':' and '.' inside (Taskfile names such as "go:build:native"), and a
 * first character that is not '-' (never an option to the `task` binary). */
int xp_task_name_valid(const char *s);

/* Copy `in` into out (size outlen > 1) replacing every char outside [A-Za-z0-9_-] with '-',
 * cut at XP_ID_MAX; an empty result becomes "node". */
void xp_token_sanitize(const char *in, char *out, size_t outlen);

/* 1 if `id` is a first subject token that xtask uses for something else (nodes, queue, results,
 * broadcast, logs, events): such a node id would put its request subjects under a stream. */
int xp_node_id_reserved(const char *id);

/* Environment lookup for xp_node_id (NULL = getenv). */
typedef const char *(*xp_getenv_fn)(const char *name, void *ud);

/*
 * The node id, decided the same way by the node and by `xtask ping`:
 *   1. `flag` (--node-id) if not NULL/empty, 2. XTASK_NODE_ID, 3. FLY_REGION "-" FLY_MACHINE_ID
 *   (both set), 4. `hostname` (sanitized), else "node".
 * An explicit id (1 or 2) must be a valid, non-reserved token: -1 and a message in err otherwise.
 * Derived ids (3, 4) are sanitized, and prefixed "n-" when reserved. Returns 0 and the id in out (outlen >=
 * XP_ID_MAX + 1).
 */
int xp_node_id(const char *flag, xp_getenv_fn getenv_fn, void *ud, const char *hostname, char *out,
               size_t outlen, char *err, size_t errlen);

/* What a node announces (register, heartbeat, discover reply, KV value). */
typedef struct {
    const char *id, *region;
    const char *const *capabilities; /* NULL-terminated */
    const char *os, *arch, *hostname;
    const char *const *tasks;     /* NULL-terminated, may be NULL */
    const char *const *tags;      /* NULL-terminated; NULL: no "tags" in the record (edge nodes have them) */
    json_t *task_info;            /* borrowed: {"task":{"description":"..","args":false}}; NULL: none */
    int64_t heartbeat_ms, ttl_ms; /* how often the node announces itself, and when its record expires */
    int running;                  /* tasks running now */
    int queued;                   /* requests waiting for a worker */
    double load1;
    int64_t started_ms, ts_ms;
} xp_node_info;

/* The node record as JSON (PROTOCOL.md "Node record"). */
char *xp_node_json(const xp_node_info *n);

/* A discover filter: every set field must match (NULL/empty = any). */
typedef struct {
    char capability[XP_ID_MAX + 1];
    char platform[2 * XP_ID_MAX + 2]; /* "linux" (os) or "linux/x86_64" (os/arch) */
    char region[XP_ID_MAX + 1];
    char task[XP_ID_MAX + 1]; /* the node allows this task */
} xp_filter;

/* Parse a discover request (empty payload = no filter). 0 on success; -1 with a message on bad JSON
 * or wrong types. */
int xp_filter_parse(const char *json, size_t len, xp_filter *f, char *err, size_t errlen);

/* 1 if node n matches every set field of f. */
int xp_filter_match(const xp_filter *f, const xp_node_info *n);

/* A task.run request. */
typedef struct {
    char *args[XP_ARGS_MAX + 1]; /* malloc'd, NULL-terminated; args[0] = task name */
    size_t nargs;
    char project[XP_ID_MAX + 1]; /* default "default" */
    char id[XP_ID_MAX + 1];      /* "" when the caller gave none; else xp_task_id_valid */
    int64_t timeout_ms;          /* 0 = the task's own */
    char
        requested_by[XP_USER_MAX + 1]; /* who asked: the signed-in user (web), the CLI's user; "" = unknown */
    char via[XP_VIA_MAX + 1];          /* "web", "cli" or "" (a token) */
} xp_run_req;

/* Parse a task.run body. On error: -1, the error code in *code and a message. On success the
 * caller frees with xp_run_req_free. */
int xp_run_req_parse(const char *json, size_t len, xp_run_req *r, xp_err *code, char *err, size_t errlen);

/* Encode a task.run body (for the client and the queue). */
char *xp_run_req_json(const xp_run_req *r);

void xp_run_req_free(xp_run_req *r);

/* The outcome of one task run. */
typedef struct {
    const char *id, *node, *task, *project;
    const char *requested_by, *via; /* may be NULL or "": omitted */
    int exit_code;                  /* -1 when killed by a signal */
    int signal;
    int timed_out;
    int64_t duration_ms;
    int64_t started_ms, finished_ms;
    const char *tail; /* output tail */
    size_t tail_len;
    int truncated;      /* the tail or the full output lost bytes */
    const char *output; /* full output (result only), may be NULL */
    size_t output_len;
} xp_result;

/* The task.run reply; with_output adds "output", "started_ms" and "finished_ms" (the stored
 * result). The result is cut (output first, then tail) so the encoding fits max_bytes. */
char *xp_result_json(const xp_result *r, int with_output, size_t max_bytes);

/* A live output line: `{"id":..,"task":..,"stream":..,"line":..}` for xtask.logs.{node}. */
char *xp_log_json(const char *id, const char *task, const char *stream, const char *line, size_t len);

/* An event for xtask.events.{project}.<type>; `extra` (may be NULL) is merged into the object and
 * stolen (decref'd). */
char *xp_event_json(const char *type, const char *id, const char *node, json_t *extra, int64_t ts_ms);

/* Generate a fresh task id "t-<16 hex>" into out (outlen >= 19). */
void xp_new_id(char *out, size_t outlen);

/* Wall-clock and monotonic milliseconds. */
int64_t xp_now_ms(void);
int64_t xp_mono_ms(void);

/* Parse a JSON object from a payload: NULL and a message when it is not a JSON object. An empty
 * payload parses as {} when empty_ok. Caller decrefs. */
json_t *xp_parse_object(const char *data, size_t len, int empty_ok, char *err, size_t errlen);

#endif
