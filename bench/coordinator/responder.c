/*
 * xtask-bench-responder: the floor of the coordinator benchmark. A bare nats.c responder that
 * answers every request on SUBJECT with a fixed small JSON reply from its subscription callback:
 * what a NATS request/reply costs with no work at all.
 *   xtask-bench-responder URL SUBJECT        (runs until SIGTERM/SIGINT)
 */
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

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
    int sig;
    if (argc != 3) {
        fprintf(stderr, "usage: xtask-bench-responder URL SUBJECT\n");
        return 2;
    }
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    natsStatus st = natsConnection_ConnectTo(&nc, argv[1]);
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
