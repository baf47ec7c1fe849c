/*
 * xtask-bench-responder: the floor of the coordinator benchmark. A bare nats.c responder that
 * answers every request on SUBJECT with a fixed small JSON reply from its subscription callback:
 * what a NATS request/reply costs with no work at all. It connects as the platform does (xt_nats:
 * send-asap), or with nats.c's defaults (--nats-default: replies wait for the library's flusher).
 *   xtask-bench-responder [--nats-default] URL SUBJECT        (runs until SIGTERM/SIGINT)
 */
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "xt_nats.h"

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    const char *reply = natsMsg_GetReply(m);
    if (reply) natsConnection_PublishString(nc, reply, "{\"ok\":true}");
    natsMsg_Destroy(m);
}

int main(int argc, char **argv)
{
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    sigset_t s;
    int sig, nats_default = argc == 4 && strcmp(argv[1], "--nats-default") == 0;
    char err[1024];
    if (nats_default) {
        argv++;
        argc--;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: xtask-bench-responder [--nats-default] URL SUBJECT\n");
        return 2;
    }
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    natsStatus st = NATS_OK;
    if (nats_default) {
        st = natsConnection_ConnectTo(&nc, argv[1]);
    } else {
        xt_nats_conf c = {0};
        xt_nats_params p = {.cli = 1, .name = "xtask-bench-responder"};
        if (xt_nats_conf_env(&c, err, sizeof err) != 0 ||
            xt_nats_conf_set(&c, "url", argv[1], "URL", err, sizeof err) != 0 ||
            xt_nats_connect(&c, &p, &nc, err, sizeof err) != 0) {
            fprintf(stderr, "responder: %s\n", err);
            st = NATS_ERR;
        }
        xt_nats_conf_free(&c);
    }
    if (st == NATS_OK) st = natsConnection_Subscribe(&sub, nc, argv[2], on_msg, NULL);
    if (st == NATS_OK) st = natsConnection_Flush(nc);
    if (st != NATS_OK) {
        fprintf(stderr, "responder: %s\n", natsStatus_GetText(st));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    sigwait(&s, &sig);
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
    nats_Close();
    return 0;
}
