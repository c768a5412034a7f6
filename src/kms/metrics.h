/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms's counters for GET /metrics (docs/kms.md, "Operating the service").
 *
 * Each worker thread owns one kms_metrics shard and is the only thread that writes it, so a
 * request costs a few relaxed atomic loads and stores on memory no other thread writes: no
 * lock, no read-modify-write bus lock, no cache line bouncing between workers. The thread
 * that renders /metrics reads every shard with relaxed loads and adds them up; a scrape taken
 * while requests are answered may see one counter a request ahead of another, which
 * Prometheus's rates do not mind.
 *
 * Labels come only from fixed tables (the operation table of ops.c, the exception names
 * below), never from request text: a client cannot add series, and no key id, alias,
 * principal, address or encryption context ever becomes a label.
 */
#ifndef CLOISTER_KMS_METRICS_H
#define CLOISTER_KMS_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cloister/buf.h"
#include "cloister/error.h"

/* Who may GET /metrics (docs/kms.md, "Operating the service"). */
typedef enum kms_metrics_access {
    KMS_METRICS_LOOPBACK = 0, /* default: clients on 127.0.0.0/8 or ::1 */
    KMS_METRICS_ANY,
    KMS_METRICS_OFF,
} kms_metrics_access;

/* Whether a client at sa may read /metrics: loopback means 127.0.0.0/8 (RFC 1122, 3.2.1.3),
 * ::1, and 127.0.0.0/8 as an IPv4-mapped address (a dual-stack "::" listener's IPv4 clients). */
bool kms_metrics_peer_allowed(kms_metrics_access access, const struct sockaddr *sa);

/* Latency bucket upper bounds in seconds (Prometheus's le), then +Inf. */
#define KMS_METRICS_BUCKETS 14

typedef struct kms_metrics {
    size_t rows;                /* the operations of ops.c, then one row for requests naming none */
    _Atomic uint64_t *requests; /* rows x kms_metrics_outcome_count() */
    _Atomic uint64_t *buckets;  /* rows x (KMS_METRICS_BUCKETS + 1), not cumulative */
    _Atomic uint64_t *sum_ns;   /* rows */
    _Atomic int64_t open_connections;
    _Atomic uint64_t accepted;
    _Atomic uint64_t closed_cap;      /* evicted at max_connections */
    _Atomic uint64_t closed_deadline; /* request_timeout passed */
} kms_metrics;

CL_MUST_USE cl_status kms_metrics_init(kms_metrics *m);
void kms_metrics_free(kms_metrics *m);

/* The row of an operation name (X-Amz-Target's suffix), or the "unknown" row. */
size_t kms_metrics_op_row(const char *op);
/* The outcome of an answer: 0 for "ok", else the exception's index ("OtherException" for a
 * name the table lacks). */
size_t kms_metrics_outcome(const char *exception);
size_t kms_metrics_outcome_count(void);
const char *kms_metrics_outcome_name(size_t i);

/* Counts one answered request on the calling worker's own shard. */
void kms_metrics_request(kms_metrics *m, size_t row, size_t outcome, uint64_t latency_ns);
/* A single-writer counter: only the shard's worker thread calls these. */
void kms_metrics_add(_Atomic uint64_t *counter, uint64_t n);
void kms_metrics_connections(kms_metrics *m, int64_t delta);

/* The Prometheus text exposition (format 0.0.4) of the shards added up. */
CL_MUST_USE cl_status kms_metrics_render(kms_metrics *const *shards, size_t n, int64_t start_time, cl_buf *out);

#endif
