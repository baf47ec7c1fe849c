/*
 * bus-probe: a nats.c client for the bus tests. It reads .creds files the way every xtask program
 * does (natsOptions_SetUserCredentialsFromFiles), so a test that passes here proves nats.c accepts
 * what xtask-bus writes.
 *
 *   bus-probe --url URL [--creds FILE] [--tls-ca FILE] [--timeout-ms N] MODE [ARG]
 *     connect            connect and flush; prints "connected"
 *     pubsub SUBJECT     subscribe, publish, receive; prints "roundtrip ok"
 *     request SUBJECT    one request with an empty body; prints the reply
 *     pub SUBJECT DATA   publish once and flush
 *     sub SUBJECT        subscribe, print "subscribed", wait for one message, print "got DATA"
 *     hold               connect, print "connected", then wait (up to --timeout-ms) for the server to
 *                        close the connection; prints "closed after N ms: <last error>"
 * Exit 0 on success, 1 on failure (the nats.c error on stderr), 2 on usage.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
    (void)nc, (void)sub, (void)arg;
    fprintf(stderr, "async error: %s\n", natsStatus_GetText(err));
}

int main(int argc, char **argv)
{
    const char *url = NULL, *creds = NULL, *ca = NULL, *mode = NULL, *arg = NULL, *data = NULL;
    long timeout = 5000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--creds") == 0 && i + 1 < argc)
            creds = argv[++i];
        else if (strcmp(argv[i], "--tls-ca") == 0 && i + 1 < argc)
            ca = argv[++i];
        else if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc)
            timeout = strtol(argv[++i], NULL, 10);
        else if (mode == NULL)
            mode = argv[i];
        else if (arg == NULL)
            arg = argv[i];
        else if (data == NULL)
            data = argv[i];
        else
            mode = NULL, i = argc;
    }
    if (url == NULL || mode == NULL || timeout <= 0) {
        fprintf(stderr, "usage: bus-probe --url URL [--creds FILE] [--tls-ca FILE] [--timeout-ms N] "
                        "connect|pubsub SUBJ|request SUBJ|pub SUBJ DATA|sub SUBJ|hold\n");
        return 2;
    }
    natsOptions *opts = NULL;
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    natsMsg *msg = NULL;
    natsStatus s = nats_Open(-1);
    int rc = 1;
    if (s == NATS_OK) s = natsOptions_Create(&opts);
    if (s == NATS_OK) s = natsOptions_SetURL(opts, url);
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 3000);
    if (s == NATS_OK) s = natsOptions_SetAllowReconnect(opts, false);
    if (s == NATS_OK) s = natsOptions_SetSendAsap(opts, true);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(opts, on_error, NULL);
    if (s == NATS_OK && creds) s = natsOptions_SetUserCredentialsFromFiles(opts, creds, NULL);
    if (s == NATS_OK && ca) s = natsOptions_LoadCATrustedCertificates(opts, ca);
    if (s == NATS_OK && ca) s = natsOptions_SetSecure(opts, true);
    if (s == NATS_OK) s = natsConnection_Connect(&nc, opts);
    if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, timeout);
    if (s != NATS_OK) {
        fprintf(stderr, "bus-probe: %s: %s\n", natsStatus_GetText(s), nats_GetLastError(NULL));
        goto out;
    }
    if (strcmp(mode, "connect") == 0) {
        printf("connected\n");
        rc = 0;
    } else if (strcmp(mode, "pubsub") == 0 && arg) {
        s = natsConnection_SubscribeSync(&sub, nc, arg);
        if (s == NATS_OK) s = natsConnection_Flush(nc);
        if (s == NATS_OK) s = natsConnection_PublishString(nc, arg, "probe");
        if (s == NATS_OK) s = natsSubscription_NextMsg(&msg, sub, timeout);
        if (s == NATS_OK) {
            printf("roundtrip ok\n");
            rc = 0;
        }
    } else if (strcmp(mode, "request") == 0 && arg) {
        s = natsConnection_Request(&msg, nc, arg, "", 0, timeout);
        if (s == NATS_OK) {
            printf("%.*s\n", natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
            rc = 0;
        }
    } else if (strcmp(mode, "pub") == 0 && arg && data) {
        s = natsConnection_PublishString(nc, arg, data);
        if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, timeout);
        if (s == NATS_OK) rc = 0;
    } else if (strcmp(mode, "sub") == 0 && arg) {
        s = natsConnection_SubscribeSync(&sub, nc, arg);
        if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, timeout);
        if (s == NATS_OK) {
            printf("subscribed\n");
            fflush(stdout);
            s = natsSubscription_NextMsg(&msg, sub, timeout);
        }
        if (s == NATS_OK) {
            printf("got %.*s\n", natsMsg_GetDataLength(msg), natsMsg_GetData(msg));
            rc = 0;
        }
    } else if (strcmp(mode, "hold") == 0) {
        printf("connected\n");
        fflush(stdout);
        int64_t t0 = now_ms();
        struct timespec tick = {0, 5 * 1000 * 1000};
        /* polls the connection state: the probe is a test tool, 5 ms is its resolution */
        while (!natsConnection_IsClosed(nc) && now_ms() - t0 < timeout)
            nanosleep(&tick, NULL);
        if (natsConnection_IsClosed(nc)) {
            const char *last = NULL;
            natsConnection_GetLastError(nc, &last);
            printf("closed after %lld ms: %s\n", (long long)(now_ms() - t0), last ? last : "");
            rc = 0;
        } else {
            printf("still connected after %ld ms\n", timeout);
        }
    } else {
        fprintf(stderr, "bus-probe: unknown mode %s\n", mode);
        rc = 2;
    }
    if (rc == 1 && s != NATS_OK)
        fprintf(stderr, "bus-probe: %s: %s\n", natsStatus_GetText(s), nats_GetLastError(NULL));
out:
    fflush(stdout);
    natsMsg_Destroy(msg);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    nats_Close();
    return rc;
}
