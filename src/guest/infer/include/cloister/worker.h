/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The serving core of cloister-infer, the worker inside the enclave (docs/worker.md;
 * src/guest/infer/serve.c): a fixed pool of threads serving the connections handed to it,
 *  - the envelope path: one request frame (request id || a sealed record) in, one frame out:
 *    the result sealed under a fresh data key of the record's KMS key, bound to the request by
 *    its encryption context, or one line saying what failed; a stop frame stops the worker;
 *  - the channel path's frame loop: plaintext request frames in and result frames out, as many
 *    as the client sends, over a connection the channel hook has opened (RA-TLS in the worker);
 *  - the replay memory, and every message a client sees.
 * What reaches outside the enclave (attestation, the KMSs, the RA-TLS handshake, vsock) comes
 * in through hooks, so that tests drive all of this over socketpairs, under the sanitizers
 * (tests/infer/test_worker.c).
 */
#ifndef CLOISTER_WORKER_H
#define CLOISTER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/error.h"
#include "cloister/frame.h"
#include "cloister/infer.h"
#include "cloister/keyprovider.h"
#include "cloister/ratls.h"

/* One input in plaintext: a patient record (under 1 KiB) or an image slice (a 512 x 512
 * 16-bit RGB PNG is at most ~1.5 MiB). */
#define CL_WORKER_INPUT_MAX ((size_t)8 << 20)
/* A sealed input: the plaintext bound plus the envelope's header and chunk tags. */
#define CL_WORKER_SEALED_MAX (CL_WORKER_INPUT_MAX + ((size_t)80 << 10))
#define CL_WORKER_REQUEST_MAX (CL_FRAME_REQUEST_ID_LEN + CL_WORKER_SEALED_MAX)
/* A result: the classifier's JSON, or a segmentation summary with its mask PNG in base64. */
#define CL_WORKER_RESULT_MAX ((size_t)4 << 20)
#define CL_WORKER_REPLAY_SLOTS 4096
#define CL_WORKER_SHA384_LEN 48
#define CL_WORKER_MAX_THREADS 64
#define CL_WORKER_QUEUE_MAX 64

typedef struct cl_worker cl_worker;

/* A pool thread; ctx is the program's (the thread's own KMS clients). */
typedef struct cl_worker_thread {
    cl_worker *w;
    pthread_t tid;
    void *ctx;
} cl_worker_thread;

/* A channel-path connection, as the channel hook opened it: frames go through io. tls: it came
 * on the TLS port (a certificate from the certificate service, docs/cas.md), not RA-TLS's. */
typedef struct cl_worker_channel {
    int fd;
    bool tls;
    cl_ratls_conn conn;
    cl_frame_io io;
} cl_worker_channel;

typedef struct cl_worker_hooks {
    /* The key provider of a request sealed under key_id, on thread t. */
    CL_MUST_USE cl_status (*provider)(cl_worker_thread *t, const char *key_id, cl_key_provider **out);
    /* Opens the channel path on ch->fd (the handshake) and sets ch->io. */
    CL_MUST_USE cl_status (*channel_open)(cl_worker_thread *t, cl_worker_channel *ch);
    void (*channel_close)(cl_worker_channel *ch);
    void *arg; /* the program's, for its hooks */
} cl_worker_hooks;

/* SHA-384 of recently served sealed inputs, oldest overwritten first. Per worker start. */
typedef struct cl_worker_replay {
    pthread_mutex_t mu;
    uint8_t digest[CL_WORKER_REPLAY_SLOTS][CL_WORKER_SHA384_LEN];
    size_t count, next;
} cl_worker_replay;

typedef struct cl_worker_job {
    int fd;
    bool channel;
    bool tls; /* a channel connection of the TLS port */
} cl_worker_job;

struct cl_worker {
    /* Set by the caller before cl_worker_pool_start. */
    cl_infer_service *svc; /* the model; one inference at a time */
    cl_worker_hooks hooks;
    long read_timeout;     /* seconds a client may stay silent */
    long model_memory_mib; /* the model's cap, for the message of a run out of memory */
    /* The pool's. */
    cl_worker_replay replay;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    cl_worker_job queue[CL_WORKER_QUEUE_MAX];
    size_t q_head, q_len;
    bool q_closed;
    atomic_bool stopping;
    int wake[2]; /* a stop frame wakes whoever polls cl_worker_wake_fd */
    atomic_long served;
};

/* Prepares the queue, the replay memory and the wake pipe; the caller then sets svc, hooks,
 * read_timeout and model_memory_mib. */
CL_MUST_USE cl_status cl_worker_init(cl_worker *w);
/* Releases what cl_worker_init made (not svc). The pool must be stopped. */
void cl_worker_free(cl_worker *w);
/* Starts n pool threads (threads[i].ctx set by the caller), each with `stack` bytes of stack;
 * *started says how many run, also on failure. */
CL_MUST_USE cl_status cl_worker_pool_start(cl_worker *w, cl_worker_thread *threads, long n, size_t stack,
                                           long *started);
/* Hands a connection to the pool, which closes it when served. Blocks while the queue is full. */
void cl_worker_enqueue(cl_worker *w, int fd, bool channel);
/* The same for a connection of the TLS port: the channel path's frames after the channel hook's
 * handshake with cl_worker_channel.tls set. */
void cl_worker_enqueue_tls(cl_worker *w, int fd);
/* Closes the queue: the pool serves what it holds, then its threads end and are joined. */
void cl_worker_pool_stop(cl_worker *w, cl_worker_thread *threads, long started);
/* What a stop frame does: marks the worker stopping and wakes cl_worker_wake_fd. */
void cl_worker_request_stop(cl_worker *w);
bool cl_worker_stopping(cl_worker *w);
/* Readable once a stop was requested. */
int cl_worker_wake_fd(const cl_worker *w);
/* Connections taken by the pool so far. */
long cl_worker_served(cl_worker *w);
/* Reads and writes on fd give up after `seconds` (SO_RCVTIMEO, SO_SNDTIMEO): a stalled client
 * may not pin a thread. */
void cl_worker_set_timeouts(int fd, long seconds);

#endif
