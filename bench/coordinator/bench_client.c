/*
 * xtask-bench-client: measures for bench/coordinator/run.sh. Prints one JSON line.
 *   xtask-bench-client req URL SUBJECT BODY N [THREADS]   request/reply round trips (sequential per
 *                                                        thread); p50/p99/mean in us and req/s
 *   xtask-bench-client gather URL SUBJECT BODY N EXPECT  time until EXPECT replies (scatter-gather)
 *   xtask-bench-client spawn N                           xr_run of `true` alone (spawn + wait + capture)
 */
#include <nats/nats.h>
#include <pthread.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xo_output.h"
#include "xr_run.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n, double wall_us)
{
    double sum = 0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    for (int i = 0; i < n; i++)
        sum += v[i];
    printf("{\"what\":\"%s\",\"n\":%d,\"p50_us\":%.1f,\"p99_us\":%.1f,\"mean_us\":%.1f,\"per_s\":%.1f}\n",
           what, n, v[n / 2], v[(int)(n * 0.99)], sum / n, n / (wall_us / 1e6));
}

typedef struct {
    natsConnection *nc;
    const char *subj, *body;
    int n;
    double *lat;
    int errors;
} req_arg;

static void *req_thread(void *p)
{
    req_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        natsMsg *m = NULL;
        double t0 = now_us();
        natsStatus st = natsConnection_RequestString(&m, a->nc, a->subj, a->body, 30000);
        a->lat[i] = now_us() - t0;
        if (st != NATS_OK || strstr(natsMsg_GetData(m) ? natsMsg_GetData(m) : "", "\"error\"")) a->errors++;
        natsMsg_Destroy(m);
    }
    return NULL;
}

static int do_req(const char *url, const char *subj, const char *body, int n, int threads)
{
    natsConnection *nc = NULL;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK) return 1;
    /* warm-up */
    for (int i = 0; i < 50; i++) {
        natsMsg *m = NULL;
        natsConnection_RequestString(&m, nc, subj, body, 30000);
        natsMsg_Destroy(m);
    }
    req_arg args[64];
    pthread_t th[64];
    double *all = calloc((size_t)n * (size_t)threads, sizeof *all);
    double t0 = now_us();
    for (int t = 0; t < threads; t++) {
        args[t] = (req_arg){nc, subj, body, n, all + (size_t)t * (size_t)n, 0};
        pthread_create(&th[t], NULL, req_thread, &args[t]);
    }
    int errors = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        errors += args[t].errors;
    }
    double wall = now_us() - t0;
    if (errors) fprintf(stderr, "bench: %d errors\n", errors);
    report(threads > 1 ? "req-parallel" : "req", all, n * threads, wall);
    free(all);
    natsConnection_Destroy(nc);
    return errors ? 1 : 0;
}

static int do_gather(const char *url, const char *subj, const char *body, int n, int expect)
{
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    char inbox[128];
    double *lat = calloc((size_t)n, sizeof *lat);
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK) return 1;
    double t_all = now_us();
    for (int i = 0; i < n; i++) {
        snprintf(inbox, sizeof inbox, "_INBOX.bench.%d", i);
        natsConnection_SubscribeSync(&sub, nc, inbox);
        double t0 = now_us();
        natsConnection_PublishRequestString(nc, subj, inbox, body);
        int got = 0;
        while (got < expect) {
            natsMsg *m = NULL;
            if (natsSubscription_NextMsg(&m, sub, 5000) != NATS_OK) break;
            got++;
            natsMsg_Destroy(m);
        }
        lat[i] = now_us() - t0;
        natsSubscription_Destroy(sub);
        if (got < expect) {
            fprintf(stderr, "bench: only %d of %d replies\n", got, expect);
            return 1;
        }
    }
    report("gather", lat, n, now_us() - t_all);
    free(lat);
    natsConnection_Destroy(nc);
    return 0;
}

static int do_spawn(int n)
{
    char *argv[] = {"true", NULL};
    double *lat = calloc((size_t)n, sizeof *lat);
    double t_all = now_us();
    for (int i = 0; i < n; i++) {
        xo_output out;
        xr_status st;
        xr_spec spec = {.argv = argv, .timeout_ms = 10000};
        xo_output_init(&out, 4096, 256 * 1024);
        double t0 = now_us();
        xr_run(&spec, &out, &st);
        lat[i] = now_us() - t0;
        xo_output_free(&out);
    }
    report("spawn", lat, n, now_us() - t_all);
    free(lat);
    return 0;
}

/* A positive count from the command line, or exit 2 naming it. */
static int count_arg(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 10000000) {
        fprintf(stderr, "bench_client: '%s' is not a positive count\n", s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc >= 6 && strcmp(argv[1], "req") == 0)
        rc = do_req(argv[2], argv[3], argv[4], count_arg(argv[5]), argc >= 7 ? count_arg(argv[6]) : 1);
    else if (argc == 7 && strcmp(argv[1], "gather") == 0)
        rc = do_gather(argv[2], argv[3], argv[4], count_arg(argv[5]), count_arg(argv[6]));
    else if (argc == 3 && strcmp(argv[1], "spawn") == 0)
        rc = do_spawn(count_arg(argv[2]));
    else
        fprintf(stderr, "usage: see the header of bench_client.c\n");
    nats_Close();
    return rc;
}
