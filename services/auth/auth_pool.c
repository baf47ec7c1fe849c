/* auth_pool: see auth_pool.h. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth_pool.h"
#include "xt_log.h"

struct auth_pool {
    h2o_multithread_receiver_t receiver;
    h2o_multithread_queue_t *queue;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    auth_job *head, *tail;
    int stopping;
    pthread_t *threads;
    int nthreads;
    size_t in_flight, max_in_flight; /* loop thread only */
};

static void *worker_main(void *arg)
{
    auth_pool *p = arg;
    /* hashing yields to the event loop: a login flood must not slow /api/verify. SCHED_IDLE: the
     * kernel preempts these threads at once when the loop wakes up (a nice level only lowers their
     * share, and each preemption then comes late). Fall back to nice 19 if refused. */
    struct sched_param sp = {0};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) != 0 &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0)
        xt_warn("hashing threads: cannot lower their priority: %s", strerror(errno));
    for (;;) {
        auth_job *j;
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        j = p->head;
        p->head = j->qnext;
        if (!p->head) p->tail = NULL;
        pthread_mutex_unlock(&p->mu);

        j->result = auth_password_verify(j->hash, j->pw, j->pwlen);
        OPENSSL_cleanse(j->pw, sizeof(j->pw));
        h2o_multithread_send_message(&p->receiver, &j->msg);
    }
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    auth_pool *p = H2O_STRUCT_FROM_MEMBER(auth_pool, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        auth_job *j = H2O_STRUCT_FROM_MEMBER(auth_job, msg, m);
        h2o_linklist_unlink(&m->link);
        p->in_flight--;
        j->done(j);
    }
}

auth_pool *auth_pool_new(h2o_multithread_queue_t *queue, int workers, int max_in_flight)
{
    auth_pool *p = calloc(1, sizeof(*p));
    int i;
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_in_flight = (size_t)max_in_flight;
    p->queue = queue;
    h2o_multithread_register_receiver(queue, &p->receiver, on_messages);
    p->threads = calloc((size_t)workers, sizeof(pthread_t));
    if (!p->threads) {
        auth_pool_free(p);
        return NULL;
    }
    for (i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main, p) != 0) {
            auth_pool_free(p);
            return NULL;
        }
        p->nthreads++;
    }
    return p;
}

int auth_pool_submit(auth_pool *p, auth_job *job)
{
    if (p->in_flight >= p->max_in_flight) return -1;
    p->in_flight++;
    memset(&job->msg, 0, sizeof(job->msg));
    job->qnext = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->qnext = job;
    else
        p->head = job;
    p->tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

size_t auth_pool_in_flight(const auth_pool *p)
{
    return p->in_flight;
}

void auth_pool_free(auth_pool *p)
{
    int i;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    /* messages still queued for the loop: the receiver must stay registered (process exit) */
    if (!h2o_linklist_is_empty(&p->receiver._messages)) return;
    h2o_multithread_unregister_receiver(p->queue, &p->receiver);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}
