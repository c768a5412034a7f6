/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms's counters and their Prometheus text exposition (metrics.h says why each
 * worker writes only its own shard). Format: "Exposition formats", text-based format 0.0.4,
 * https://prometheus.io/docs/instrumenting/exposition_formats/ : one "# HELP" and "# TYPE" line
 * per metric family, then one sample per line; a histogram as cumulative _bucket{le=...}
 * samples ending with le="+Inf", then _sum and _count.
 */
#include "metrics.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* Every exception name src/kms answers with (test_metrics checks the sources against this
 * list, so a new one cannot be counted as "OtherException" unnoticed). */
static const char *const kms_outcomes[] = {
    "ok",
    "AccessDeniedException",
    "AlreadyExistsException",
    "ConflictException",
    "DisabledException",
    "DryRunOperationException",
    "ExpiredImportTokenException",
    "IllegalLocationConstraintException", /* S3's CreateBucket (s3_bucket.c) */
    "ExpiredTokenException",              /* an STS session that has ended (identity.h) */
    "IncompleteSignatureException",
    "IncorrectKeyException",
    "IncorrectKeyMaterialException",
    "InvalidCiphertextException",
    "InvalidGrantTokenException",
    "InvalidImportTokenException",
    "InvalidKeyUsageException",
    "InvalidMarkerException",
    "InvalidSignatureException",
    "KMSInternalException",
    "KMSInvalidMacException",
    "KMSInvalidSignatureException",
    "KMSInvalidStateException",
    "LimitExceededException",
    "MalformedPolicyDocumentException",
    "MissingAuthenticationTokenException",
    "NotAuthorizedException",
    "NotFoundException",
    "SerializationException",
    "TagException",
    "UnknownOperationException",
    "UnrecognizedClientException",
    "UnsupportedOperationException",
    "ValidationException",
    /* SageMaker's and CloudWatch Logs' (sagemaker.h) */
    "InvalidParameterException",
    "ResourceNotFoundException",
    "ResourceInUse",
    "ResourceLimitExceeded",
    "ResourceNotFound",
    "OtherException",
};
#define KMS_OUTCOMES (sizeof(kms_outcomes) / sizeof(kms_outcomes[0]))

/* Seconds: from a cached Decrypt (about 0.1 ms of work, plus the audit group commit) to a
 * request stuck behind a slow store. */
static const double kms_bucket_le[KMS_METRICS_BUCKETS] = {0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                          0.05,    0.1,    0.25,  0.5,    1,     2.5,  5};
static const uint64_t kms_bucket_ns[KMS_METRICS_BUCKETS] = {
    250000ULL,   500000ULL,    1000000ULL,   2500000ULL,   5000000ULL,    10000000ULL,   25000000ULL,
    50000000ULL, 100000000ULL, 250000000ULL, 500000000ULL, 1000000000ULL, 2500000000ULL, 5000000000ULL};

bool kms_metrics_peer_allowed(kms_metrics_access access, const struct sockaddr *sa)
{
    if (access == KMS_METRICS_ANY) return true;
    if (access != KMS_METRICS_LOOPBACK || sa == NULL) return false;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family != AF_INET6) return false;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

size_t kms_metrics_outcome_count(void) { return KMS_OUTCOMES; }

const char *kms_metrics_outcome_name(size_t i) { return i < KMS_OUTCOMES ? kms_outcomes[i] : NULL; }

size_t kms_metrics_outcome(const char *exception)
{
    if (exception == NULL) return 0;
    for (size_t i = 1; i < KMS_OUTCOMES; i++)
        if (strcmp(kms_outcomes[i], exception) == 0) return i;
    return KMS_OUTCOMES - 1;
}

size_t kms_metrics_op_row(const char *op)
{
    size_t i = kms_op_count();
    if (op != NULL && kms_op_lookup(op, &i) == NULL) i = kms_op_count();
    return i;
}

cl_status kms_metrics_init(kms_metrics *m)
{
    memset(m, 0, sizeof(*m));
    m->rows = kms_op_count() + 1;
    m->requests = calloc(m->rows * KMS_OUTCOMES, sizeof(*m->requests));
    m->buckets = calloc(m->rows * (KMS_METRICS_BUCKETS + 1), sizeof(*m->buckets));
    m->sum_ns = calloc(m->rows, sizeof(*m->sum_ns));
    if (m->requests == NULL || m->buckets == NULL || m->sum_ns == NULL) {
        kms_metrics_free(m);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for the request counters");
    }
    return CL_OK;
}

void kms_metrics_free(kms_metrics *m)
{
    free(m->requests);
    free(m->buckets);
    free(m->sum_ns);
    m->requests = m->buckets = m->sum_ns = NULL;
}

/* Only the shard's own worker writes it: a load and a store, not a locked read-modify-write. */
void kms_metrics_add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n, memory_order_relaxed);
}

void kms_metrics_connections(kms_metrics *m, int64_t delta)
{
    atomic_store_explicit(&m->open_connections,
                          atomic_load_explicit(&m->open_connections, memory_order_relaxed) + delta,
                          memory_order_relaxed);
}

void kms_metrics_request(kms_metrics *m, size_t row, size_t outcome, uint64_t latency_ns)
{
    if (row >= m->rows || outcome >= KMS_OUTCOMES) return;
    size_t b = 0;
    while (b < KMS_METRICS_BUCKETS && latency_ns > kms_bucket_ns[b]) b++;
    kms_metrics_add(&m->requests[row * KMS_OUTCOMES + outcome], 1);
    kms_metrics_add(&m->buckets[row * (KMS_METRICS_BUCKETS + 1) + b], 1);
    kms_metrics_add(&m->sum_ns[row], latency_ns);
}

typedef enum kms_field { KMS_FIELD_REQUESTS, KMS_FIELD_BUCKETS, KMS_FIELD_SUM } kms_field;

/* One counter added up over the shards. */
static uint64_t kms_sum(kms_metrics *const *shards, size_t n, kms_field field, size_t index)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        _Atomic uint64_t *arr = field == KMS_FIELD_REQUESTS  ? shards[i]->requests
                                : field == KMS_FIELD_BUCKETS ? shards[i]->buckets
                                                             : shards[i]->sum_ns;
        total += atomic_load_explicit(&arr[index], memory_order_relaxed);
    }
    return total;
}

static const char *kms_row_name(size_t row) { return row < kms_op_count() ? kms_op_name(row) : "unknown"; }

cl_status kms_metrics_render(kms_metrics *const *shards, size_t n, int64_t start_time, cl_buf *out)
{
    size_t rows = kms_op_count() + 1;
    CL_GUARD(cl_buf_append_str(out, "# HELP cloister_kms_build_info The version of this cloister-kms.\n"
                                    "# TYPE cloister_kms_build_info gauge\n"));
    CL_GUARD(cl_buf_printf(out, "cloister_kms_build_info{version=\"%s\"} 1\n", CLOISTER_VERSION));
    CL_GUARD(cl_buf_printf(out,
                           "# HELP cloister_kms_start_time_seconds When this cloister-kms started, in seconds "
                           "since the epoch.\n"
                           "# TYPE cloister_kms_start_time_seconds gauge\n"
                           "cloister_kms_start_time_seconds %lld\n",
                           (long long)start_time));

    CL_GUARD(cl_buf_append_str(out, "# HELP cloister_kms_requests_total KMS API requests answered, by operation "
                                    "and outcome (ok, or the AWS exception answered).\n"
                                    "# TYPE cloister_kms_requests_total counter\n"));
    for (size_t r = 0; r < rows; r++) {
        for (size_t o = 0; o < KMS_OUTCOMES; o++) {
            uint64_t v = kms_sum(shards, n, KMS_FIELD_REQUESTS, r * KMS_OUTCOMES + o);
            if (v == 0) continue;
            CL_GUARD(cl_buf_printf(out, "cloister_kms_requests_total{operation=\"%s\",outcome=\"%s\"} %llu\n",
                                   kms_row_name(r), kms_outcomes[o], (unsigned long long)v));
        }
    }

    CL_GUARD(cl_buf_append_str(out, "# HELP cloister_kms_request_duration_seconds Time from a request's last byte "
                                    "to its answer being handed to the connection, the audit log's fdatasync "
                                    "included.\n"
                                    "# TYPE cloister_kms_request_duration_seconds histogram\n"));
    for (size_t r = 0; r < rows; r++) {
        uint64_t counts[KMS_METRICS_BUCKETS + 1], total = 0;
        for (size_t b = 0; b <= KMS_METRICS_BUCKETS; b++) {
            counts[b] = kms_sum(shards, n, KMS_FIELD_BUCKETS, r * (KMS_METRICS_BUCKETS + 1) + b);
            total += counts[b];
        }
        if (total == 0) continue;
        /* _count is the +Inf bucket of the same reading, so that the buckets and the count agree. */
        uint64_t cumulative = 0;
        for (size_t b = 0; b < KMS_METRICS_BUCKETS; b++) {
            cumulative += counts[b];
            CL_GUARD(cl_buf_printf(out,
                                   "cloister_kms_request_duration_seconds_bucket{operation=\"%s\",le=\"%g\"} %llu\n",
                                   kms_row_name(r), kms_bucket_le[b], (unsigned long long)cumulative));
        }
        uint64_t sum_ns = kms_sum(shards, n, KMS_FIELD_SUM, r);
        CL_GUARD(cl_buf_printf(
            out,
            "cloister_kms_request_duration_seconds_bucket{operation=\"%s\",le=\"+Inf\"} %llu\n"
            "cloister_kms_request_duration_seconds_sum{operation=\"%s\"} %llu.%09llu\n"
            "cloister_kms_request_duration_seconds_count{operation=\"%s\"} %llu\n",
            kms_row_name(r), (unsigned long long)total, kms_row_name(r), (unsigned long long)(sum_ns / 1000000000ULL),
            (unsigned long long)(sum_ns % 1000000000ULL), kms_row_name(r), (unsigned long long)total));
    }

    int64_t open = 0;
    uint64_t accepted = 0, cap = 0, deadline = 0;
    for (size_t i = 0; i < n; i++) {
        open += atomic_load_explicit(&shards[i]->open_connections, memory_order_relaxed);
        accepted += atomic_load_explicit(&shards[i]->accepted, memory_order_relaxed);
        cap += atomic_load_explicit(&shards[i]->closed_cap, memory_order_relaxed);
        deadline += atomic_load_explicit(&shards[i]->closed_deadline, memory_order_relaxed);
    }
    return cl_buf_printf(out,
                         "# HELP cloister_kms_open_connections Client connections open now.\n"
                         "# TYPE cloister_kms_open_connections gauge\n"
                         "cloister_kms_open_connections %lld\n"
                         "# HELP cloister_kms_connections_accepted_total Client connections accepted.\n"
                         "# TYPE cloister_kms_connections_accepted_total counter\n"
                         "cloister_kms_connections_accepted_total %llu\n"
                         "# HELP cloister_kms_connections_closed_total Connections the server closed before an "
                         "answer: at max_connections (cap), or when a request did not arrive whole within "
                         "request_timeout (deadline).\n"
                         "# TYPE cloister_kms_connections_closed_total counter\n"
                         "cloister_kms_connections_closed_total{reason=\"cap\"} %llu\n"
                         "cloister_kms_connections_closed_total{reason=\"deadline\"} %llu\n",
                         (long long)(open > 0 ? open : 0), (unsigned long long)accepted, (unsigned long long)cap,
                         (unsigned long long)deadline);
}
