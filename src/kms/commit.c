/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The committer thread (commit.h). One mutex guards the requests and the durable offset; the
 * fdatasync itself runs without it, inside cl_audit_sync, so a worker asking for the next
 * sync never waits for the disk.
 */
#include "commit.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "cloister/log.h"

struct kms_committer {
    cl_audit *audit;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    bool failed;
    uint64_t durable;   /* every line before this offset is on disk */
    uint64_t requested; /* the highest end any waiter asked for */
    struct {
        uint64_t end; /* 0: not waiting */
        struct event *ev;
    } waiters[KMS_COMMIT_MAX_WAITERS];
};

static void *kms_committer_main(void *arg)
{
    kms_committer *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && !c->failed && c->requested <= c->durable) pthread_cond_wait(&c->cv, &c->mu);
        if (c->stop || c->failed) break;
        uint64_t target = c->requested;
        pthread_mutex_unlock(&c->mu);
        /* cl_audit_sync covers every line written before its fdatasync began: target and
         * possibly more, but only target is known to be durable when it returns. */
        cl_status rc = cl_audit_sync(c->audit, target);
        if (rc != CL_OK) CL_LOG_ERROR("audit log: %s", cl_error_message());
        cl_error_clear();
        pthread_mutex_lock(&c->mu);
        if (rc == CL_OK) {
            if (target > c->durable) c->durable = target;
        } else {
            c->failed = true;
        }
        /* Wake those whose lines are now on disk, or all of them when nothing will be. */
        for (int i = 0; i < KMS_COMMIT_MAX_WAITERS; i++) {
            if (c->waiters[i].end == 0 || (!c->failed && c->waiters[i].end > c->durable)) continue;
            c->waiters[i].end = 0;
            event_active(c->waiters[i].ev, EV_READ, 0);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

cl_status kms_committer_start(cl_audit *a, kms_committer **out)
{
    kms_committer *c = calloc(1, sizeof(*c));
    CL_ENSURE(c != NULL, CL_ERR_NOMEM, "out of memory for the audit log's committer");
    c->audit = a;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, kms_committer_main, c) != 0) {
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
        CL_FAIL(CL_ERR_INTERNAL, "cannot start the audit log's committer thread");
    }
    *out = c;
    return CL_OK;
}

void kms_committer_request(kms_committer *c, int waiter, uint64_t end, struct event *ev)
{
    pthread_mutex_lock(&c->mu);
    if (end <= c->durable || c->failed) {
        /* Already durable, or never will be: the waiter learns which at once. */
        event_active(ev, EV_READ, 0);
    } else {
        if (end > c->waiters[waiter].end) c->waiters[waiter].end = end;
        c->waiters[waiter].ev = ev;
        if (end > c->requested) c->requested = end;
        pthread_cond_signal(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

uint64_t kms_committer_state(kms_committer *c, bool *failed)
{
    pthread_mutex_lock(&c->mu);
    uint64_t durable = c->durable;
    *failed = c->failed;
    pthread_mutex_unlock(&c->mu);
    return durable;
}

void kms_committer_stop(kms_committer *c)
{
    if (c == NULL) return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
