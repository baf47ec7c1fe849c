/*
 * status: what `status`, `status --json`, /status.json, /metrics and /healthz show. Rendered into a
 * caller's bounded buffer; the JSON format is the one in docs/PROTOCOL.md ("Supervisor status").
 */
#include "sv.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "xt_conf.h"

/* The probe whose result to show: liveness once it has one, else readiness. */
static const sv_probe *shown_probe(const svc *s)
{
    if (s->live.has_result) return &s->live;
    if (s->ready.has_result) return &s->ready;
    return NULL;
}

static int svc_ready(const svc *s)
{
    return s->state == SVC_READY || (s->state == SVC_EXITED && s->completed);
}

int status_healthy(sv_ctx *sv)
{
    if (sv->stopping) return 0;
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *s = &sv->slots[i];
        if (s->used && s->def->essential && !svc_ready(s)) return 0;
    }
    return 1;
}

int status_check(sv_ctx *sv, char *why, size_t len)
{
    size_t n = 0;
    why[0] = '\0';
    if (sv->stopping) {
        snprintf(why, len, "stopping");
        return 0;
    }
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *s = &sv->slots[i];
        if (!s->used || !s->def->essential || svc_ready(s)) continue;
        if (n < len) {
            int k =
                snprintf(why + n, len - n, "%s%s %s", n > 0 ? ", " : "", s->name, svc_state_name(s->state));
            n = k < 0 ? len : n + (size_t)k;
        }
    }
    return n == 0;
}

void status_json(sv_ctx *sv, sv_buf *b)
{
    int64_t now = sv_now_ms();
    sv_buf_printf(b, "{\"supervisor\":{\"pid\":%d,\"version\":\"%s\",\"uptime_ms\":%lld,\"state\":\"%s\"},",
                  (int)sv->self, SV_VERSION, (long long)(now - sv->start_ms),
                  sv->stopping ? "stopping" : "running");
    sv_buf_puts(b, "\"services\":[");
    int first = 1;
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *s = &sv->slots[i];
        if (!s->used) continue;
        sv_buf_printf(b, "%s{\"name\":\"", first ? "" : ",");
        first = 0;
        sv_buf_json_str(b, s->name, strlen(s->name));
        sv_buf_printf(b, "\",\"state\":\"%s\",", svc_state_name(s->state));
        if (s->pid > 0)
            sv_buf_printf(b, "\"pid\":%d,\"uptime_ms\":%lld,", (int)s->pid, (long long)(now - s->spawn_ms));
        else
            sv_buf_puts(b, "\"pid\":null,\"uptime_ms\":null,");
        sv_buf_printf(b, "\"restarts\":%d,", s->restarts);
        if (s->has_exit) {
            if (s->last_sig)
                sv_buf_printf(b, "\"last_exit\":{\"code\":null,\"signal\":%d,\"at_ms\":%lld},", s->last_sig,
                              (long long)(now - s->last_exit_ms));
            else
                sv_buf_printf(b, "\"last_exit\":{\"code\":%d,\"signal\":null,\"at_ms\":%lld},", s->last_code,
                              (long long)(now - s->last_exit_ms));
        } else {
            sv_buf_puts(b, "\"last_exit\":{\"code\":null,\"signal\":null,\"at_ms\":null},");
        }
        sv_buf_printf(b, "\"essential\":%s,\"ready\":%s,\"dropped_lines\":%llu,",
                      s->def->essential ? "true" : "false", svc_ready(s) ? "true" : "false",
                      (unsigned long long)s->dropped);
        if (s->def->ready.kind == PROBE_SD_NOTIFY) { /* sd_notify's STATUS=, null before one */
            if (s->c->sd_status[0] == '\0') {
                sv_buf_puts(b, "\"status_text\":null,");
            } else {
                sv_buf_puts(b, "\"status_text\":\"");
                sv_buf_json_str(b, s->c->sd_status, strlen(s->c->sd_status));
                sv_buf_puts(b, "\",");
            }
        }
        const sv_probe *p = shown_probe(s);
        if (p == NULL) {
            sv_buf_puts(b, "\"probe\":null}");
            continue;
        }
        sv_buf_printf(b, "\"probe\":{\"kind\":\"%s\",\"ok\":%s,\"latency_ms\":%.1f,\"message\":\"",
                      mf_probe_kinds[p->def->kind].name, p->ok ? "true" : "false", p->latency_ms);
        sv_buf_json_str(b, p->msg, strlen(p->msg));
        sv_buf_puts(b, "\"}}");
    }
    sv_buf_puts(b, "]}");
}

void status_table(sv_ctx *sv, sv_buf *b)
{
    int64_t now = sv_now_ms();
    int w = (int)(sv->name_width < 4 ? 4 : sv->name_width);
    sv_buf_printf(b, "%-*s  %-8s  %7s  %8s  %8s  %-9s  %-5s  %s\n", w, "NAME", "STATE", "PID", "UPTIME",
                  "RESTARTS", "LAST-EXIT", "READY", "PROBE");
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *s = &sv->slots[i];
        if (!s->used) continue;
        char pid[16] = "-", up[32] = "-", ex[24] = "-", pr[320] = "-";
        if (s->pid > 0) {
            snprintf(pid, sizeof(pid), "%d", (int)s->pid);
            xt_duration_format((now - s->spawn_ms) / 1000 * 1000, up, sizeof(up));
        }
        if (s->has_exit) {
            if (s->last_sig)
                snprintf(ex, sizeof(ex), "sig %d", s->last_sig);
            else
                snprintf(ex, sizeof(ex), "code %d", s->last_code);
        }
        const sv_probe *p = shown_probe(s);
        if (p != NULL)
            snprintf(pr, sizeof(pr), "%s %s %.1fms %s%s%s", mf_probe_kinds[p->def->kind].name,
                     p->ok ? "ok" : "FAIL", p->latency_ms, p->msg, s->c->sd_status[0] ? "; status: " : "",
                     s->c->sd_status);
        sv_buf_printf(b, "%-*s  %-8s  %7s  %8s  %8d  %-9s  %-5s  %s\n", w, s->name, svc_state_name(s->state),
                      pid, up, s->restarts, ex, svc_ready(s) ? "yes" : "no", pr);
    }
}

void status_metrics(sv_ctx *sv, sv_buf *b)
{
    int64_t now = sv_now_ms();
    sv_buf_puts(b, "# HELP xtask_supervisor_uptime_seconds Time since the supervisor started.\n"
                   "# TYPE xtask_supervisor_uptime_seconds gauge\n");
    sv_buf_printf(b, "xtask_supervisor_uptime_seconds %.3f\n", (double)(now - sv->start_ms) / 1000.0);
    sv_buf_puts(b, "# HELP xtask_supervisor_service_state 1 for the state the service is in.\n"
                   "# TYPE xtask_supervisor_service_state gauge\n");
    for (size_t i = 0; i < sv->nslots; i++) {
        const svc *s = &sv->slots[i];
        if (!s->used) continue;
        for (int st = 0; st < SVC_NSTATES; st++)
            sv_buf_printf(b, "xtask_supervisor_service_state{service=\"%s\",state=\"%s\"} %d\n", s->name,
                          svc_state_name((svc_state)st), s->state == (svc_state)st);
    }
    static const struct {
        const char *name, *type, *help;
    } m[] = {
        {"xtask_supervisor_service_ready", "gauge", "1 when the service is ready."},
        {"xtask_supervisor_service_restarts_total", "counter", "Restarts since the supervisor started."},
        {"xtask_supervisor_probe_latency_seconds", "gauge", "Latency of the last probe."},
        {"xtask_supervisor_probe_ok", "gauge", "1 when the last probe passed."},
        {"xtask_supervisor_dropped_lines_total", "counter",
         "Output lines dropped because stdout was not read."},
    };
    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        sv_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name, m[k].type);
        for (size_t i = 0; i < sv->nslots; i++) {
            const svc *s = &sv->slots[i];
            if (!s->used) continue;
            const sv_probe *p = shown_probe(s);
            switch (k) {
            case 0:
                sv_buf_printf(b, "%s{service=\"%s\"} %d\n", m[k].name, s->name, svc_ready(s));
                break;
            case 1:
                sv_buf_printf(b, "%s{service=\"%s\"} %d\n", m[k].name, s->name, s->restarts);
                break;
            case 2:
                if (p != NULL)
                    sv_buf_printf(b, "%s{service=\"%s\"} %.6f\n", m[k].name, s->name, p->latency_ms / 1000.0);
                break;
            case 3:
                if (p != NULL) sv_buf_printf(b, "%s{service=\"%s\"} %d\n", m[k].name, s->name, p->ok);
                break;
            default:
                sv_buf_printf(b, "%s{service=\"%s\"} %llu\n", m[k].name, s->name,
                              (unsigned long long)s->dropped);
                break;
            }
        }
    }
}
