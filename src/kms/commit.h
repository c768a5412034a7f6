/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's group commit, off the event loops (docs/kms.md, "Durability").
 *
 * Every answer still leaves only once its audit line is on disk (docs/security.md, finding
 * 2). What changes is who waits: a worker writes its requests' lines, asks the committer to
 * make them durable and goes back to its event loop to read, authenticate and answer the next
 * requests; the committer thread runs fdatasync and, when it returns, wakes the workers that
 * wait for it (event_active on each worker's commit event, which libevent makes thread-safe
 * with evthread_use_pthreads). While one fdatasync runs, the lines written meanwhile gather
 * for the next: the disk's latency bounds the latency of an answer, not the server's rate.
 */
#ifndef CLOISTER_KMS_COMMIT_H
#define CLOISTER_KMS_COMMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister/audit.h"
#include "cloister/error.h"

struct event;

/* At most this many event loops wait on one committer: the bound of --threads and "threads". */
#define KMS_COMMIT_MAX_WAITERS 256

typedef struct kms_committer kms_committer;

/* Starts the committer thread for the log a (which must outlive it). */
CL_MUST_USE cl_status kms_committer_start(cl_audit *a, kms_committer **out);

/* Asks that the log be durable up to `end` (an offset cl_audit_write returned); `ev` is
 * activated once it is, or once the sync has failed (kms_committer_state says which). A
 * waiter asks again for lines written later; one pending request per waiter is kept (the
 * highest end). Thread-safe; never blocks on the disk. */
void kms_committer_request(kms_committer *c, int waiter, uint64_t end, struct event *ev);

/* The offset up to which the log is known to be durable, and whether a sync failed (then no
 * later line becomes durable: the audit log refuses further lines, cl_audit_sync). */
uint64_t kms_committer_state(kms_committer *c, bool *failed);

/* Finishes the sync in progress, stops the thread and frees c (NULL is fine). Waiters still
 * pending are not woken: the workers stop first and sync what is left themselves. */
void kms_committer_stop(kms_committer *c);

#endif
