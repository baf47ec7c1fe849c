/*
 * xt_log: one line per call, one write(2) per line, so lines from threads never interleave.
 */
#include "xt_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static xt_log_level log_min = XT_LOG_INFO;
static int log_json;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int xt_log_level_parse(const char *s)
{
    if (s == NULL) return -1;
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0) return i;
    if (strcasecmp(s, "warning") == 0) return XT_LOG_WARN;
    return -1;
}

void xt_log_init(xt_log_level min_level, int json)
{
    log_min = min_level;
    log_json = json;
    int l = xt_log_level_parse(getenv("XT_LOG_LEVEL"));
    if (l >= 0) log_min = (xt_log_level)l;
    const char *f = getenv("XT_LOG_FORMAT");
    if (f != NULL) log_json = strcasecmp(f, "json") == 0;
}

/* Append s as a JSON string body (no quotes) to buf at *n, bounded. */
static void json_escape(char *buf, size_t cap, size_t *n, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0' && *n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = (char)c;
        } else if (c == '\n') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = 'n';
        } else if (c < 0x20) {
            memcpy(buf + *n, "\\u00", 4);
            *n += 4;
            buf[(*n)++] = hex[c >> 4];
            buf[(*n)++] = hex[c & 15];
        } else {
            buf[(*n)++] = (char)c;
        }
    }
}

void xt_log(xt_log_level level, const char *fmt, ...)
{
    char msg[XT_LOG_LINE_MAX], line[XT_LOG_LINE_MAX + 64];
    size_t n = 0;
    if (level < log_min) return;
    if ((unsigned)level > XT_LOG_ERROR) level = XT_LOG_ERROR;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = strlen(msg);
    while (mlen > 0 && msg[mlen - 1] == '\n')
        msg[--mlen] = '\0';
    if (log_json) {
        n = (size_t)snprintf(line, sizeof(line), "{\"level\":\"%s\",\"msg\":\"", level_names[level]);
        json_escape(line, sizeof(line) - 4, &n, msg);
        memcpy(line + n, "\"}\n", 3);
        n += 3;
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %s\n", level_names[level], msg);
        if (n >= sizeof(line)) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
    }
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}
