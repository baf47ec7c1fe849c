/*
 * auth_pool: argon2 password checks on a few worker threads, so the event loop never hashes.
 *
 * The loop submits a job (auth_pool_submit); a worker runs auth_password_verify() and hands the
 * job back to the loop with h2o_multithread_send_message; the loop calls job->done(job). The
 * number of jobs in flight (queued + hashing) is bounded: submit fails at once beyond it, so a
 * login flood costs a quick 503, not memory or latency. Workers run at SCHED_IDLE so that the loop
 * (verify of logged-in users) always wins the CPU.
 */
#ifndef XT_AUTH_POOL_H
#define XT_AUTH_POOL_H

#include <h2o.h>

#include "auth.h"

typedef struct auth_job auth_job;

struct auth_job {
    h2o_multithread_message_t msg; /* private */
    auth_job *qnext;               /* private */
    char hash[AUTH_HASH_MAX + 1];  /* in: encoded hash */
    char pw[AUTH_PASSWORD_MAX + 1];
    size_t pwlen;                /* in: password (wiped after hashing) */
    int result;                  /* out: 1 match, 0 no, -1 bad hash */
    void (*done)(auth_job *job); /* called on the loop thread; owns the job from then on */
};

typedef struct auth_pool auth_pool;

/* Start `workers` threads; at most `max_in_flight` jobs at once. */
auth_pool *auth_pool_new(h2o_multithread_queue_t *queue, int workers, int max_in_flight);
/* Loop thread only. 0 queued (the pool owns the job until done runs), -1 the pool is full. */
int auth_pool_submit(auth_pool *p, auth_job *job);
size_t auth_pool_in_flight(const auth_pool *p);
/* Stop the workers (jobs still queued are dropped without done). */
void auth_pool_free(auth_pool *p);

#endif
