/*
 * xt_log: one-line logs on stderr for every xtask program.
 *
 * Text:  "info listening on 127.0.0.1:9091"  (the supervisor prefixes "name | " itself)
 * JSON:  {"level":"info","msg":"listening on 127.0.0.1:9091"}
 * Lines are cut at XT_LOG_LINE_MAX bytes. Never log secrets: passwords, session ids, cookies,
 * Authorization values, generated secrets.
 */
#ifndef XT_LOG_H
#define XT_LOG_H

#define XT_LOG_LINE_MAX 2048

typedef enum { XT_LOG_DEBUG = 0, XT_LOG_INFO, XT_LOG_WARN, XT_LOG_ERROR } xt_log_level;

/* Set the minimum level and the format (json != 0 for JSON lines). Defaults: info, text.
 * XT_LOG_LEVEL (debug|info|warn|error) and XT_LOG_FORMAT (text|json) in the environment override. */
void xt_log_init(xt_log_level min_level, int json);

/* Parse "debug", "info", "warn"/"warning", "error"; -1 if unknown. */
int xt_log_level_parse(const char *s);

/* Log one line at `level` (format as printf; a trailing newline is not needed). Thread-safe:
 * one write(2) per line. */
void xt_log(xt_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define xt_debug(...) xt_log(XT_LOG_DEBUG, __VA_ARGS__)
#define xt_info(...) xt_log(XT_LOG_INFO, __VA_ARGS__)
#define xt_warn(...) xt_log(XT_LOG_WARN, __VA_ARGS__)
#define xt_error(...) xt_log(XT_LOG_ERROR, __VA_ARGS__)

#endif
