/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of cloister-kms: libevent's evhttp parses HTTP (no parser of
 * our own); each worker thread runs its own event loop and evhttp instance
 * accepting on the one shared listening socket. Keep-alive is evhttp's.
 *
 * What a client that never authenticates can hold is bounded here (docs/kms.md, "Limits"):
 * each worker tracks its connections (kms_conn), at most its share of max_connections; one
 * over it closes the connection that has waited longest for a complete request. A request
 * (headers and body, or the TLS handshake before them) must arrive whole within
 * request_timeout of the connection's accept or previous answer, however slowly it trickles.
 * accept() failing for lack of descriptors pauses accepting with a growing delay instead of
 * spinning, and says so at most every 10 s.
 *
 * Every answer waits for its audit line to be on disk (fail closed, docs/security.md, finding 2):
 * the worker hands the answer's audit offset to the committer thread (commit.h), which runs the
 * fdatasync, and goes on serving; the answers leave when the committer says their lines are
 * durable (group commit, without the event loops ever waiting for the disk). A request that changes state first has a
 * "started" line made durable, so that no change happens without a record even when the line of its outcome cannot be
 * written.
 *
 * Wire protocol: the AWS JSON 1.1 protocol as KMS uses it (botocore
 * kms/2014-11-01/service-2.json metadata: protocol "json", jsonVersion 1.1,
 * targetPrefix "TrentService"): POST /, X-Amz-Target: TrentService.<Op>,
 * errors as {"__type": "<Name>Exception", "message": "..."}.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/sigv4.h"

#include "cas_http.h"
#include "commit.h"
#include "iam.h"
#include "identity.h"
#include "key_cache.h"
#include "last_use.h"
#include "metrics.h"
#include "query.h"
#include "route.h"
#include "s3.h"
#include "sagemaker.h"

#define KMS_MAX_HEADERS 64
/* Connections accepted in one go before the worker catches up (tracking slots beyond the cap). */
#define KMS_ACCEPT_BATCH 64
/* Descriptors kept for what is not a connection: the store and its WAL, the audit log, the
 * listening socket, event and signal descriptors, TLS files, PostgreSQL connections. */
#define KMS_FD_RESERVE 64
/* Answers of one loop turn wait for one fdatasync; past this many, sync and answer at once. */
#define KMS_PENDING_MAX 256
#define KMS_ACCEPT_BACKOFF_MIN_MS 10
#define KMS_ACCEPT_BACKOFF_MAX_MS 1000
#define KMS_ACCEPT_LOG_EVERY_MS 10000
/* GET /healthz asks the store at most this often; between, it answers what the last probe
 * found, so that unauthenticated probes cannot load the store (or a PostgreSQL behind it). */
#define KMS_HEALTH_PROBE_EVERY_MS 1000

struct kms_worker;

typedef enum kms_conn_state {
    KMS_CONN_FREE = 0,
    KMS_CONN_PENDING, /* accepted; evhttp's connection object not known yet */
    KMS_CONN_WAITING, /* waiting for a complete request: the deadline runs, may be evicted */
    KMS_CONN_SERVING, /* a request was delivered; its answer is not written yet */
} kms_conn_state;

/* One accepted connection, tracked from accept (evhttp's bufferevent callback) to close
 * (evhttp's close callback). evhttp exposes no hook between the two, so a new connection
 * is "adopted" just after the accept: its evhttp_connection is the bufferevent's callback
 * argument, and a reference on the bufferevent keeps it valid until then. */
typedef struct kms_conn {
    struct kms_worker *w;
    kms_conn_state state;
    struct bufferevent *bev;
    struct evhttp_connection *evcon;
    int64_t since_ms; /* monotonic: accept, or the end of the previous answer */
    uint64_t seq;     /* the same order, without ties: the worker's count of such events */
    bool doomed;      /* to be closed once adopted (its TLS state could not be made) */
    bool peeking;     /* its next request's header block is looked at before evhttp reads it */
} kms_conn;

/* What is counted and logged of an answer once it leaves (kms_answer_done). */
typedef struct kms_answer {
    size_t op_row;    /* kms_metrics_op_row */
    size_t outcome;   /* kms_metrics_outcome */
    int64_t start_ns; /* the request arrived whole (monotonic) */
    char *who;        /* the request log's "principal=... key=... source=..." (malloc'd), NULL
                       * when info lines are not logged */
    /* The answer's Content-Type; NULL: the KMS's application/x-amz-json-1.1. */
    const char *content_type;
} kms_answer;

/* A SigV4 signing key this worker derived: one per access key, day, region and service seen
 * lately, so that a request costs one HMAC instead of five (cl_sigv4_signing_key). A slot is
 * named by the access key id and its secret (compared in constant time), so that a key deleted
 * or given another secret (a restart with another configuration, a new session) never reuses
 * what was derived from the old one. */
#define KMS_SIGNING_KEYS 16
typedef struct kms_signing_key {
    char access_key_id[129]; /* "": an empty slot */
    char secret[129];
    char date[9];
    char region[KMS_REGION_MAX + 1];
    char service[16]; /* "sagemaker" the longest */
    uint8_t key[CL_SIGV4_KEY_LEN];
} kms_signing_key;

/* An answer waiting for its audit line to be on disk. */
typedef struct kms_reply {
    struct kms_reply *next;
    struct evhttp_request *req;
    uint64_t audit_end;
    int status;
    char request_id[CL_UUID_TEXT_LEN + 1];
    char *body; /* malloc'd; wiped when freed */
    /* An S3 answer instead: its headers are on the request already, its body here (owned). */
    struct evbuffer *payload;
    kms_answer answer;
} kms_reply;

typedef struct kms_worker {
    kms_server *srv;
    struct event_base *base;
    struct evhttp *http;
    struct evconnlistener *listener;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    /* connections */
    kms_conn *conns;
    size_t n_slots, n_used, cap;
    uint64_t seq;
    size_t *free_slots, n_free;             /* a stack of free slot numbers */
    size_t *pending_slots, n_pending_slots; /* accepted, not adopted yet */
    size_t *by_evcon, by_evcon_mask;        /* evhttp_connection -> slot number + 1 (open addressing) */
    struct event *adopt_ev, *deadline_ev, *backoff_ev;
    bool full;        /* accepting paused: no free slot */
    bool backing_off; /* accepting paused: accept() failed */
    int backoff_ms;
    int64_t accept_log_ms;
    unsigned long accept_errors;
    /* answers of this loop turn */
    kms_reply *replies, **replies_tail;
    size_t n_replies;
    int index;                     /* this worker's number: its waiter slot in the committer */
    kms_signing_key *signing_keys; /* KMS_SIGNING_KEYS of them, in locked memory */
    unsigned next_signing_key;     /* the slot replaced next (round robin) */
    struct event *commit_ev;       /* activated by the committer: some of the answers may leave */
    /* The header block look-ahead (kms_conn_peek): evhttp's own read callback, and the connections
     * answered this loop turn, whose next request is looked at once evhttp waits for it. */
    bufferevent_data_cb evhttp_readcb;
    size_t *rewrap, n_rewrap;
    struct event *rewrap_ev;
    kms_metrics metrics; /* written by this worker only (metrics.h) */
} kms_worker;

struct kms_server {
    kms_config cfg;
    kms_ctx ctx;
    SSL_CTX *tls; /* NULL: plain HTTP */
    int listen_fd;
    int lock_fd; /* the data directory's lock, held while running */
    kms_worker *workers;
    int n_workers;
    int max_connections;                 /* after fitting RLIMIT_NOFILE */
    char listen_text[KMS_HOST_MAX + 16]; /* the bound address: 127.0.0.1:4599, [::1]:4599 */
    int64_t start_time;                  /* seconds since the epoch */
    kms_metrics **shards;                /* each worker's, for /metrics */
    kms_committer *committer;            /* the audit log's fdatasync thread */
    /* GET /healthz: the last store probe (at most one every KMS_HEALTH_PROBE_EVERY_MS, by
     * whichever worker takes the flag), and whether the audit log failed last time it was
     * written or synced (every answer then is KMSInternalException). */
    _Atomic int64_t store_checked_ms;
    atomic_bool store_ok;
    atomic_flag store_probing;
    atomic_bool audit_failing;
};

/* The worker whose loop runs on this thread (for callbacks whose argument is libevent's). */
static _Thread_local kms_worker *kms_this_worker;

static int64_t kms_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t kms_now_ms(void) { return kms_now_ns() / 1000000; }

/* Randomness for request ids, drawn 64 ids at a time: one RAND_bytes call (with its DRBG lock
 * and fork check) per request cost more than the rest of making the id. A request id names a
 * request in logs and answers; it is not a secret, so the pool is ordinary memory. */
static _Thread_local struct {
    uint8_t bytes[64 * CL_UUID_RANDOM_LEN];
    size_t used;
} kms_id_pool = {.used = sizeof(kms_id_pool.bytes)};

static void kms_request_id(char out[CL_UUID_TEXT_LEN + 1])
{
    if (kms_id_pool.used == sizeof(kms_id_pool.bytes)) {
        if (cl_random(kms_id_pool.bytes, sizeof(kms_id_pool.bytes)) != CL_OK) {
            /* An all-zero id beats no answer. */
            cl_error_clear();
            (void)snprintf(out, CL_UUID_TEXT_LEN + 1, "00000000-0000-4000-8000-000000000000");
            return;
        }
        kms_id_pool.used = 0;
    }
    cl_uuid4_format(kms_id_pool.bytes + kms_id_pool.used, out);
    kms_id_pool.used += CL_UUID_RANDOM_LEN;
}

static const char *kms_status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 416: return "Range Not Satisfiable";
    case 501: return "Not Implemented";
    case 500: return "Internal Server Error";
    default: return "Bad Request";
    }
}

static void kms_send(struct evhttp_request *req, int status, const char *request_id, const char *body,
                     const char *content_type)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", content_type != NULL ? content_type : "application/x-amz-json-1.1");
    evhttp_add_header(out, "x-amzn-RequestId", request_id);
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(buf, body, strlen(body));
    evhttp_send_reply(req, status, kms_status_reason(status), buf);
    evbuffer_free(buf); /* its chains were moved to the connection; freed wiped once written */
}

/* {"__type": exception, "message": message}, malloc'd (NULL when out of memory). */
static char *kms_error_body(const char *exception, const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "__type", exception, "message", message);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return body;
}

static void kms_body_free(char *body)
{
    if (body != NULL) cl_free_wiped(body); /* may hold plaintext (Decrypt, GenerateDataKey, GenerateRandom) */
}

/* The refusal of a credential scope's region this server does not answer: AWS's words for a
 * wrong region ("Credential should be scoped to a valid region, not 'REGION'."), then which
 * regions it answers. */
static CL_MUST_USE cl_status kms_region_refused(const kms_config *cfg, const char *region)
{
    char list[KMS_REGIONS_MAX * (KMS_REGION_MAX + 2) + 1] = "";
    size_t used = 0;
    for (size_t i = 0; i < cfg->n_regions && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", cfg->regions[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    if (cfg->n_regions > 0)
        CL_FAIL(CL_ERR_DENIED,
                "Credential should be scoped to a valid region, not '%s'. This server answers the regions %s.", region,
                list);
    if (kms_region_is_aws(cfg->region))
        CL_FAIL(CL_ERR_DENIED,
                "Credential should be scoped to a valid region, not '%s'. This server answers every AWS region "
                "(a name like us-east-1, eu-central-1 or ap-northeast-1).",
                region);
    CL_FAIL(CL_ERR_DENIED,
            "Credential should be scoped to a valid region, not '%s'. This server answers every AWS region (a name "
            "like us-east-1, eu-central-1 or ap-northeast-1) and %s.",
            region, cfg->region);
}

/* The request's signature as principal p computes it, with w's signing key for its scope
 * (derived and kept when w has none yet; w NULL: derived for this request only). */
static CL_MUST_USE cl_status kms_signature(kms_worker *w, const kms_principal *p, const cl_sigv4_request *sr,
                                           char sig[CL_SIGV4_SIG_HEX_LEN + 1])
{
    if (w == NULL || w->signing_keys == NULL || strlen(sr->region) > KMS_REGION_MAX ||
        strlen(sr->service) >= sizeof(w->signing_keys[0].service))
        return cl_sigv4_signature(p->secret, sr, sig);
    for (unsigned i = 0; i < KMS_SIGNING_KEYS; i++) {
        kms_signing_key *k = &w->signing_keys[i];
        if (k->access_key_id[0] != '\0' && strcmp(k->access_key_id, p->access_key_id) == 0 &&
            cl_ct_equal(k->secret, p->secret, sizeof(k->secret)) && strncmp(k->date, sr->amz_date, 8) == 0 &&
            strcmp(k->region, sr->region) == 0 && strcmp(k->service, sr->service) == 0)
            return cl_sigv4_signature_with_key(k->key, sr, sig);
    }
    kms_signing_key *k = &w->signing_keys[w->next_signing_key++ % KMS_SIGNING_KEYS];
    cl_memzero(k, sizeof(*k));
    CL_GUARD(cl_sigv4_signing_key(p->secret, sr->amz_date, sr->region, sr->service, k->key));
    memcpy(k->access_key_id, p->access_key_id, sizeof(k->access_key_id));
    memcpy(k->secret, p->secret, sizeof(k->secret));
    memcpy(k->date, sr->amz_date, 8);
    (void)snprintf(k->region, sizeof(k->region), "%s", sr->region);
    (void)snprintf(k->service, sizeof(k->service), "%s", sr->service);
    return cl_sigv4_signature_with_key(k->key, sr, sig);
}

/* Authenticates a request signed for service ("kms", "sts", "iam") into *who, a copy holding
 * the principal's secret (the caller wipes it). *exc names KMS's exception on failure. */
static CL_MUST_USE cl_status kms_authenticate(kms_server *s, struct evhttp_request *req, const char *method,
                                              const uint8_t *body, size_t body_len, kms_principal *who, char *region,
                                              const char **exc, int64_t now, const char *service)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *authz = evhttp_find_header(in, "Authorization");
    *exc = "MissingAuthenticationTokenException";
    CL_ENSURE(authz != NULL, CL_ERR_DENIED, "Missing Authentication Token");
    cl_sigv4_auth a;
    *exc = "IncompleteSignatureException";
    CL_GUARD(cl_sigv4_parse_authorization(authz, strlen(authz), &a));
    const char *date = evhttp_find_header(in, "X-Amz-Date");
    CL_ENSURE(date != NULL, CL_ERR_DENIED,
              "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.");
    int64_t t;
    CL_GUARD(cl_sigv4_parse_amz_date(date, strlen(date), &t));
    CL_ENSURE(strncmp(a.date, date, 8) == 0, CL_ERR_DENIED, "Credential should be scoped to a valid date");
    cl_sigv4_header hdrs[KMS_MAX_HEADERS];
    size_t nh = 0;
    struct evkeyval *kv;
    for (kv = in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        CL_ENSURE(nh < KMS_MAX_HEADERS, CL_ERR_DENIED, "too many headers (at most %d)", KMS_MAX_HEADERS);
        hdrs[nh].key = kv->key;
        hdrs[nh].value = kv->value;
        nh++;
    }
    /* host and every x-amz-* header of the request must be signed, by exact name. */
    CL_GUARD(cl_sigv4_check_signed_headers(hdrs, nh, a.signed_headers));
    /* STS's temporary credentials come with their session token (signed, as every x-amz-*). */
    const char *token = evhttp_find_header(in, "X-Amz-Security-Token");
    const kms_principal *p = who;
    cl_status frc = kms_identity_find(&s->ctx, a.access_key_id, token, now, who);
    if (frc != CL_OK) {
        *exc = frc == CL_ERR_EXPIRED  ? "ExpiredTokenException"
               : frc == CL_ERR_DENIED ? "UnrecognizedClientException"
                                      : NULL;
        return frc;
    }
    *exc = "InvalidSignatureException";
    /* Every region this server answers (kms_config_region_allowed) is at most KMS_REGION_MAX long. */
    if (!kms_config_region_allowed(&s->cfg, a.region)) return kms_region_refused(&s->cfg, a.region);
    CL_ENSURE(strcmp(a.service, service) == 0, CL_ERR_DENIED, "Credential should be scoped to correct service: '%s'.",
              service);
    if (t < now - KMS_SIGNATURE_SKEW || t > now + KMS_SIGNATURE_SKEW) {
        char nowtxt[17];
        cl_sigv4_format_amz_date(now, nowtxt);
        CL_FAIL(CL_ERR_EXPIRED, "Signature expired: %s is now earlier than %s (%s - 15 min.)", date, nowtxt, nowtxt);
    }
    /* Recompute over the request as received. */
    uint8_t d[CL_SHA256_LEN];
    char ph[65];
    CL_GUARD(cl_sha256(body, body_len, d));
    (void)cl_hex_encode(d, sizeof(d), ph, sizeof(ph));
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    cl_sigv4_request sr = {.method = method,
                           .path = uri ? evhttp_uri_get_path(uri) : "/",
                           .query = uri ? evhttp_uri_get_query(uri) : NULL,
                           .headers = hdrs,
                           .n_headers = nh,
                           .signed_headers = a.signed_headers,
                           .payload_sha256_hex = ph,
                           .amz_date = date,
                           .region = a.region,
                           .service = a.service};
    char sig[CL_SIGV4_SIG_HEX_LEN + 1];
    CL_GUARD(kms_signature(kms_this_worker, p, &sr, sig));
    CL_ENSURE(cl_ct_equal(sig, a.signature, CL_SIGV4_SIG_HEX_LEN), CL_ERR_DENIED,
              "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
              "Access Key and signing method. Consult the service documentation for details.");
    (void)snprintf(region, KMS_REGION_MAX + 1, "%s", a.region);
    *exc = NULL;
    return CL_OK;
}

/* The answer a client gets when its request's audit line cannot be written. */
#define KMS_AUDIT_FAILED_MESSAGE \
    "The request was not answered because its audit record could not be written; the server's log says why."

/* Writes the request's audit line (not yet durable: the caller syncs to *end). */
static CL_MUST_USE cl_status kms_audit(kms_server *s, const kms_call *c, const char *principal, const char *op,
                                       const char *outcome, bool with_context, uint64_t *end)
{
    cl_audit_event ev = {.time = c->now,
                         .request_id = c->request_id,
                         .principal = principal,
                         .operation = op,
                         .key_arn = c->key_arn[0] ? c->key_arn : NULL,
                         .context = with_context ? &c->audit_ctx : NULL,
                         .outcome = outcome,
                         .attested_module_id = c->audit_module_id[0] ? c->audit_module_id : NULL,
                         .attested_pcr0 = c->audit_pcr0[0] ? c->audit_pcr0 : NULL};
    return cl_audit_write(s->ctx.audit, &ev, end);
}

/* The peer's address (AF_INET or AF_INET6 in *family), NULL when unknown. An IPv4 client of a
 * dual-stack IPv6 socket ("::") arrives as ::ffff:a.b.c.d: it is given as the IPv4 address it
 * is, so that aws:SourceIp conditions and the loopback test see 127.0.0.1, not ::ffff:127.0.0.1. */
static const void *kms_peer_addr(struct evhttp_request *req, int *family)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    const struct sockaddr *sa = conn != NULL ? evhttp_connection_get_addr(conn) : NULL;
    if (sa == NULL) return NULL;
    *family = sa->sa_family;
    if (sa->sa_family == AF_INET) return &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    if (sa->sa_family != AF_INET6) return NULL;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6)) {
        *family = AF_INET;
        return &a6->s6_addr[12];
    }
    return a6;
}

/* What the key policy's global condition keys see of a request: every connection of a TLS
 * listener is TLS (aws:SecureTransport); aws:SourceIp is the TCP peer, which is a proxy's
 * address when one relays the request (the launcher's, for an enclave). */
static void kms_request_env(const kms_server *s, struct evhttp_request *req, int64_t now, kms_policy_env *env)
{
    env->secure_transport = s->tls != NULL;
    env->now = now;
    env->region = NULL;      /* aws:RequestedRegion: the request's, once authenticated (kms_handle) */
    env->via_service = NULL; /* no Cloister service calls on a caller's behalf yet */
    env->source_ip[0] = '\0';
    int family = 0;
    const void *addr = kms_peer_addr(req, &family);
    if (addr == NULL || inet_ntop(family, addr, env->source_ip, sizeof(env->source_ip)) == NULL)
        env->source_ip[0] = '\0'; /* unknown: aws:SourceIp is absent */
}

/*
 * The operations that change nothing in the store; every other operation (and any added
 * later) gets a "started" line on disk before it runs. Lazy housekeeping on read (a due
 * deletion, a due automatic rotation) is the key's schedule, as in AWS, not the caller's act.
 */
static bool kms_op_changes_state(const char *op)
{
    static const char *const read_only[] = {
        "Decrypt",
        "DeriveSharedSecret",
        "DescribeKey",
        "Encrypt",
        "GenerateDataKey",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateMac",
        "GenerateRandom",
        "GetKeyLastUsage",
        "GetKeyPolicy",
        "GetKeyRotationStatus",
        "GetPublicKey",
        "ListAliases",
        "ListGrants",
        "ListKeyPolicies",
        "ListKeyRotations",
        "ListKeys",
        "ListResourceTags",
        "ListRetirableGrants",
        "ReEncrypt",
        "Sign",
        "Verify",
        "VerifyMac",
    };
    for (size_t i = 0; i < sizeof(read_only) / sizeof(read_only[0]); i++)
        if (strcmp(op, read_only[i]) == 0) return false;
    return true;
}

/* The index from evhttp_connection to slot: linear probing in a table of at least twice the
 * slots, deletion by backward shift (no tombstones), so that finding the connection of each
 * request costs a probe or two, not a walk over thousands of slots. */
static size_t kms_conn_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL; /* MurmurHash3's fmix64 */
    x ^= x >> 33;
    return (size_t)x;
}

static void kms_conn_index_add(kms_worker *w, size_t slot)
{
    size_t i = kms_conn_hash(w->conns[slot].evcon) & w->by_evcon_mask;
    while (w->by_evcon[i] != 0) i = (i + 1) & w->by_evcon_mask;
    w->by_evcon[i] = slot + 1;
}

static size_t kms_conn_index_find(const kms_worker *w, const struct evhttp_connection *evcon)
{
    for (size_t i = kms_conn_hash(evcon) & w->by_evcon_mask; w->by_evcon[i] != 0; i = (i + 1) & w->by_evcon_mask)
        if (w->conns[w->by_evcon[i] - 1].evcon == evcon) return i;
    return SIZE_MAX;
}

static void kms_conn_index_remove(kms_worker *w, const struct evhttp_connection *evcon)
{
    size_t i = kms_conn_index_find(w, evcon);
    if (i == SIZE_MAX) return;
    size_t j = i;
    for (;;) {
        j = (j + 1) & w->by_evcon_mask;
        if (w->by_evcon[j] == 0) break;
        size_t k = kms_conn_hash(w->conns[w->by_evcon[j] - 1].evcon) & w->by_evcon_mask;
        /* Move j's entry into the hole at i unless its home k lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            w->by_evcon[i] = w->by_evcon[j];
            i = j;
        }
    }
    w->by_evcon[i] = 0;
}

/* The connection a request came on (NULL if untracked: its slot could not be had). */
static kms_conn *kms_conn_of(kms_worker *w, struct evhttp_connection *evcon)
{
    size_t i = evcon != NULL ? kms_conn_index_find(w, evcon) : SIZE_MAX;
    return i == SIZE_MAX ? NULL : &w->conns[w->by_evcon[i] - 1];
}

static void kms_conn_release(kms_worker *w, kms_conn *c)
{
    if (c->evcon != NULL) kms_conn_index_remove(w, c->evcon);
    c->state = KMS_CONN_FREE;
    c->bev = NULL;
    c->evcon = NULL;
    w->free_slots[w->n_free++] = (size_t)(c - w->conns);
    w->n_used--;
    kms_metrics_connections(&w->metrics, -1);
}

static void kms_conn_arm_deadline(kms_worker *w);
static void kms_conn_wrap(kms_worker *w, kms_conn *c);

/* The answer is written: the connection waits for its next request, with a fresh deadline. */
static void kms_conn_answered(struct evhttp_request *req, void *arg)
{
    kms_worker *w = arg;
    kms_conn *c = kms_conn_of(w, evhttp_request_get_connection(req));
    if (c == NULL || c->state != KMS_CONN_SERVING) return;
    c->state = KMS_CONN_WAITING;
    c->since_ms = kms_now_ms();
    c->seq = ++w->seq;
    kms_conn_arm_deadline(w);
    /* The next request starts at the KMS's limit; its header block is looked at once evhttp has
     * set the connection up to read it (after this callback returns). */
    evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)w->srv->cfg.max_body);
    if (w->n_rewrap < w->n_slots) {
        w->rewrap[w->n_rewrap++] = (size_t)(c - w->conns);
        event_active(w->rewrap_ev, EV_TIMEOUT, 1);
    }
}

static void kms_s3_payload_failed(kms_reply *r);
static void kms_conn_rewrap(evutil_socket_t fd, short what, void *arg);
static void kms_flush(kms_worker *w);

/* Answers now, or after the next fdatasync of the audit log (audit_end > 0). */
static void kms_reply_queue(kms_worker *w, struct evhttp_request *req, int status, const char *request_id, char *body,
                            uint64_t audit_end, kms_answer *answer);

/* An answer is leaving: count it on this worker's shard and, at info level, log its one line.
 * The line holds names, ARNs, the peer's address and numbers only: never a body, a context
 * value, a signature or anything else a request carries in its payload or Authorization
 * header (docs/kms.md, "Request log"). */
static void kms_answer_done(kms_worker *w, const char *request_id, int status, kms_answer *a)
{
    int64_t ns = kms_now_ns() - a->start_ns;
    if (ns < 0) ns = 0;
    kms_metrics_request(&w->metrics, a->op_row, a->outcome, (uint64_t)ns);
    if (a->who != NULL) {
        const char *op = a->op_row < kms_op_count() ? kms_op_name(a->op_row) : "unknown";
        CL_LOG_INFO("request %s %s %s outcome=%s status=%d latency_ms=%.3f", request_id, op, a->who,
                    kms_metrics_outcome_name(a->outcome), status, (double)ns / 1e6);
        free(a->who);
        a->who = NULL;
    }
}

/* The answer of a request whose answer failed to be written to the audit log. */
static void kms_answer_failed(kms_answer *a) { a->outcome = kms_metrics_outcome("KMSInternalException"); }

static void kms_send_text(struct evhttp_request *req, int status, const char *reason, const char *content_type,
                          const char *body, size_t len)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", content_type);
    evhttp_add_header(out, "Cache-Control", "no-store");
    struct evbuffer *buf = evbuffer_new();
    if (buf == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    evbuffer_add(buf, body, len);
    evhttp_send_reply(req, status, reason, buf);
    evbuffer_free(buf);
}

/*
 * GET /healthz, for load balancers and service managers: no authentication, no audit line,
 * a small JSON answer, 200 when the store answers and the audit log is being written, else
 * 503. The store is asked at most once per KMS_HEALTH_PROBE_EVERY_MS (a one-row key listing,
 * read only); the other probes get the last result. What failed goes to the server's log,
 * not to the unauthenticated caller.
 */
static void kms_handle_healthz(kms_worker *w, struct evhttp_request *req)
{
    kms_server *s = w->srv;
    int64_t now = kms_now_ms();
    if (now - atomic_load(&s->store_checked_ms) >= KMS_HEALTH_PROBE_EVERY_MS &&
        !atomic_flag_test_and_set(&s->store_probing)) {
        char ids[1][KMS_KEY_ID_LEN + 1];
        size_t n = 0;
        bool more = false;
        cl_status rc = s->ctx.store->ops->list_keys(s->ctx.store, "000000000000", s->cfg.region, "", 1, ids, &n, &more);
        if (rc != CL_OK) CL_LOG_WARN("health check: the key store did not answer: %s", cl_error_message());
        if (rc == CL_OK && !atomic_load(&s->store_ok)) CL_LOG_INFO("health check: the key store answers again");
        atomic_store(&s->store_ok, rc == CL_OK);
        atomic_store(&s->store_checked_ms, now);
        atomic_flag_clear(&s->store_probing);
        cl_error_clear();
    }
    bool store_ok = atomic_load(&s->store_ok), audit_ok = !atomic_load(&s->audit_failing);
    char body[256];
    int len = snprintf(body, sizeof(body),
                       "{\"status\":\"%s\",\"version\":\"%s\",\"store\":\"%s\",\"audit_log\":\"%s\","
                       "\"uptime_seconds\":%lld}\n",
                       store_ok && audit_ok ? "ok" : "unavailable", CLOISTER_VERSION, store_ok ? "ok" : "unavailable",
                       audit_ok ? "ok" : "failing", (long long)(time(NULL) - s->start_time));
    bool up = store_ok && audit_ok;
    kms_send_text(req, up ? 200 : 503, up ? "OK" : "Service Unavailable", "application/json", body, (size_t)len);
}

/*
 * GET /metrics, Prometheus's text format. Its labels are operation and outcome names from
 * fixed tables (metrics.h): no key id, alias or principal. The counts still show who-knows-
 * what activity (when keys are used, how often access is denied), so by default only
 * loopback clients (a Prometheus or node agent on the same host) get them; the config key
 * "metrics" (--metrics) opens them to every client, or turns them off.
 */
static void kms_handle_metrics(kms_worker *w, struct evhttp_request *req)
{
    kms_server *s = w->srv;
    static const char refused[] =
        "/metrics is served to loopback clients only; the server's \"metrics\": \"any\" setting serves it to "
        "every client\n";
    if (s->cfg.metrics == KMS_METRICS_OFF) {
        static const char off[] = "/metrics is turned off (\"metrics\": \"off\")\n";
        kms_send_text(req, 404, "Not Found", "text/plain; charset=utf-8", off, sizeof(off) - 1);
        return;
    }
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    if (!kms_metrics_peer_allowed(s->cfg.metrics, conn != NULL ? evhttp_connection_get_addr(conn) : NULL)) {
        kms_send_text(req, 403, "Forbidden", "text/plain; charset=utf-8", refused, sizeof(refused) - 1);
        return;
    }
    cl_buf out;
    cl_buf_init(&out, (size_t)4 << 20);
    if (kms_metrics_render(s->shards, (size_t)s->n_workers, s->start_time, &out) == CL_OK)
        kms_send_text(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", cl_buf_cstr(&out), out.len);
    else
        evhttp_send_error(req, 500, NULL);
    cl_buf_free(&out);
    cl_error_clear();
}

/*
 * A request to the certificate service (cas_http.h): authenticated here for its signed routes,
 * with the KMS's principals and SigV4 verifier (credential scope service "kms": it is this
 * endpoint's service; any region the KMS answers, refused as the KMS refuses one it does not).
 * Sessions are global, not per region, so the scope's region selects nothing here. Answered, as
 * the KMS's, only once its audit line is on disk; a route that changes the store has its
 * "started" line on disk before it runs. The public routes (the exported values, a nonce) write
 * no line, like /healthz.
 */
static void kms_handle_cas(kms_worker *w, struct evhttp_request *req, const char *path, kms_answer *answer)
{
    kms_server *s = w->srv;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *method = cmd == EVHTTP_REQ_GET ? "GET" : cmd == EVHTTP_REQ_POST ? "POST" : "PUT";
    char request_id[CL_UUID_TEXT_LEN + 1];
    kms_request_id(request_id);
    int64_t now = (int64_t)time(NULL);
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(ib);
    uint8_t *body = blen ? evbuffer_pullup(ib, -1) : NULL; /* wiped below: a session holds secrets */
    kms_cas_access access = KMS_CAS_PUBLIC;
    const char *op = kms_cas_route(method, path, &access);
    kms_cas_http h = {.kms = &s->ctx,
                      .method = method,
                      .path = path,
                      .body = body != NULL ? body : (const uint8_t *)"",
                      .body_len = blen,
                      .now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000};
    kms_principal who_buf; /* a copy with its secret: wiped below */
    memset(&who_buf, 0, sizeof(who_buf));
    const kms_principal *who = NULL;
    const char *exc = NULL;
    char region[KMS_REGION_MAX + 1] = ""; /* the signature's; sessions do not belong to one */
    uint64_t end = 0;
    answer->content_type = "application/json";
    if (blen > 0 && body == NULL) {
        (void)CL_RAISE(CL_ERR_NOMEM, "out of memory for the request body");
        h.status = 500;
        h.outcome = "InternalError";
        h.answer = kms_cas_error_body(h.outcome, cl_error_message());
    } else if (op != NULL && access >= KMS_CAS_SIGNED &&
               kms_authenticate(s, req, method, h.body, blen, &who_buf, region, &exc, now, "kms") != CL_OK) {
        h.status = exc != NULL && strcmp(exc, "MissingAuthenticationTokenException") == 0 ? 403 : 400;
        h.outcome = exc != NULL ? exc : "InternalError";
        h.answer = kms_cas_error_body(h.outcome, cl_error_message());
    } else {
        if (op != NULL && access >= KMS_CAS_SIGNED) who = &who_buf;
        cl_audit_event started = {.time = now,
                                  .request_id = request_id,
                                  .principal = who != NULL ? who->arn : "",
                                  .operation = op,
                                  .outcome = "started"};
        if (access == KMS_CAS_SIGNED_WRITE && cl_audit_append(s->ctx.audit, &started) != CL_OK) {
            CL_LOG_ERROR("%s %s: not run: %s", op, request_id, cl_error_message());
            h.status = 500;
            h.outcome = "InternalError";
            h.answer = kms_cas_error_body(h.outcome, KMS_AUDIT_FAILED_MESSAGE);
        } else {
            h.principal = who;
            kms_cas_handle(&h);
        }
    }
    if (op != NULL && access != KMS_CAS_PUBLIC) {
        cl_audit_event ev = {.time = now,
                             .request_id = request_id,
                             .principal = who != NULL ? who->arn : "",
                             .operation = op,
                             .outcome = h.outcome,
                             .resource = h.resource[0] ? h.resource : NULL,
                             .attested_module_id = h.module_id[0] ? h.module_id : NULL,
                             .attested_pcr0 = h.pcr0[0] ? h.pcr0 : NULL};
        if (cl_audit_write(s->ctx.audit, &ev, &end) != CL_OK) {
            CL_LOG_ERROR("%s %s: not answered: %s", op, request_id, cl_error_message());
            kms_body_free(h.answer);
            h.answer = kms_cas_error_body("InternalError", KMS_AUDIT_FAILED_MESSAGE);
            h.status = 500;
            end = 0;
        }
    }
    if (body != NULL) cl_memzero(body, blen);
    cl_memzero(&who_buf, sizeof(who_buf));
    answer->outcome = kms_metrics_outcome(h.status == 200 ? NULL : h.outcome);
    cl_error_clear();
    if (h.answer != NULL) {
        kms_reply_queue(w, req, h.status, request_id, h.answer, end, answer);
    } else {
        kms_answer_failed(answer);
        kms_answer_done(w, request_id, 500, answer);
        evhttp_send_error(req, 500, NULL);
    }
}

/* The query protocol's answer to a failed authentication: the code and status STS and IAM give
 * (STS API Reference, "Common Errors") for what KMS calls exc. */
static const char *kms_query_auth_code(const char *exc, int *status)
{
    *status = 403;
    if (exc == NULL) {
        *status = 500;
        return "InternalFailure";
    }
    if (strcmp(exc, "MissingAuthenticationTokenException") == 0) return "MissingAuthenticationToken";
    if (strcmp(exc, "UnrecognizedClientException") == 0) return "InvalidClientTokenId";
    if (strcmp(exc, "ExpiredTokenException") == 0) {
        *status = 400;
        return "ExpiredToken";
    }
    if (strcmp(exc, "IncompleteSignatureException") == 0) {
        *status = 400;
        return "IncompleteSignature";
    }
    return "SignatureDoesNotMatch";
}

/*
 * A request to STS or IAM (iam.h): POST / with a form body, signed for "sts" or "iam".
 * Authenticated as KMS's requests are; a state-changing action gets its "started" line first;
 * answered, in XML, once its audit line is on disk. The form (which may hold a policy or an
 * external id) is never logged; the audit line has the action, the principal, the resource.
 */
static void kms_handle_query(kms_worker *w, struct evhttp_request *req, kms_service svc, kms_answer *answer)
{
    kms_server *s = w->srv;
    char request_id[CL_UUID_TEXT_LEN + 1];
    kms_request_id(request_id);
    int64_t now = (int64_t)time(NULL);
    kms_policy_env env;
    kms_request_env(s, req, now, &env);
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(ib);
    uint8_t *body = blen ? evbuffer_pullup(ib, -1) : NULL;
    kms_principal who; /* a copy with its secret: wiped below */
    memset(&who, 0, sizeof(who));
    char region[KMS_REGION_MAX + 1] = "";
    const char *exc = NULL;
    json_t *form = NULL;
    cl_buf xml;
    cl_buf_init(&xml, (size_t)8 << 20);
    kms_query_call q = {.kms = &s->ctx,
                        .service = svc,
                        .principal = &who,
                        .form = NULL,
                        .now = now,
                        .env = &env,
                        .request_id = request_id,
                        .status = 200,
                        .xml = &xml};
    char op[96] = "";
    bool authenticated = false;
    answer->content_type = "text/xml";
    if (blen > 0 && body == NULL) {
        q.status = 500;
        q.code = "InternalFailure";
        kms_query_error(&xml, "Receiver", q.code, "out of memory for the request body", request_id);
    } else if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        q.status = 400;
        q.code = "InvalidAction";
        kms_query_error(&xml, "Sender", q.code, "STS and IAM are answered for POST / with a form body here",
                        request_id);
    } else if (kms_authenticate(s, req, "POST", body ? body : (const uint8_t *)"", blen, &who, region, &exc, now,
                                kms_service_name(svc)) != CL_OK) {
        q.code = kms_query_auth_code(exc, &q.status);
        kms_query_error(&xml, q.status >= 500 ? "Receiver" : "Sender", q.code, cl_error_message(), request_id);
    } else if (kms_form_parse(body ? body : (const uint8_t *)"", blen, &form) != CL_OK) {
        authenticated = true;
        q.status = 400;
        q.code = "MalformedQueryString";
        kms_query_error(&xml, "Sender", q.code, cl_error_message(), request_id);
    } else {
        authenticated = true;
        env.region = region;
        q.form = form;
        const char *action = json_string_value(json_object_get(form, "Action"));
        (void)snprintf(op, sizeof(op), "%s:%.64s", kms_service_name(svc), action != NULL ? action : "");
        cl_audit_event started = {
            .time = now, .request_id = request_id, .principal = who.arn, .operation = op, .outcome = "started"};
        if (action != NULL && kms_query_changes_state(svc, action) &&
            cl_audit_append(s->ctx.audit, &started) != CL_OK) {
            CL_LOG_ERROR("%s %s: not run: %s", op, request_id, cl_error_message());
            q.status = 500;
            q.code = "InternalFailure";
            kms_query_error(&xml, "Receiver", q.code, KMS_AUDIT_FAILED_MESSAGE, request_id);
        } else {
            kms_query_handle(&q);
        }
    }
    uint64_t end = 0;
    cl_audit_event ev = {.time = now,
                         .request_id = request_id,
                         .principal = authenticated ? who.arn : "",
                         .operation = op[0] ? op : kms_service_name(svc),
                         .outcome = q.code != NULL ? q.code : "ok",
                         .resource = q.resource[0] ? q.resource : NULL};
    if (cl_audit_write(s->ctx.audit, &ev, &end) != CL_OK) {
        atomic_store(&s->audit_failing, true);
        CL_LOG_ERROR("%s %s: not answered: %s", op, request_id, cl_error_message());
        q.status = 500;
        q.code = "InternalFailure";
        kms_query_error(&xml, "Receiver", q.code, KMS_AUDIT_FAILED_MESSAGE, request_id);
        end = 0;
    }
    if (cl_log_enabled(CL_LOG_LEVEL_INFO)) {
        char line[64 + KMS_ARN_MAX + sizeof(env.source_ip)];
        (void)snprintf(line, sizeof(line), "principal=%s action=%s source=%s", authenticated ? who.arn : "-",
                       ev.operation, env.source_ip[0] ? env.source_ip : "-");
        answer->who = strdup(line);
    }
    if (body != NULL) cl_memzero(body, blen);
    cl_memzero(&who, sizeof(who));
    json_decref(form);
    answer->outcome = kms_metrics_outcome(q.code);
    char *out = strdup(cl_buf_cstr(&xml));
    cl_buf_free(&xml); /* wiped: CreateAccessKey's and AssumeRole's answers hold secrets */
    cl_error_clear();
    if (out != NULL) {
        kms_reply_queue(w, req, q.status, request_id, out, end, answer);
    } else {
        kms_answer_failed(answer);
        kms_answer_done(w, request_id, 500, answer);
        evhttp_send_error(req, 500, NULL);
    }
}

/*
 * A request to SageMaker's training-job API or CloudWatch Logs (sagemaker.h): the AWS JSON 1.1
 * protocol as KMS's (POST /, X-Amz-Target PREFIX.Op, a JSON body), authenticated as KMS's
 * requests are, signed for "sagemaker" or "logs". A state-changing operation gets its "started"
 * line first; the answer leaves once its audit line is on disk. The body (hyperparameters) is never
 * logged; the audit line has the operation, the principal and the job's ARN.
 */
static void kms_handle_json(kms_worker *w, struct evhttp_request *req, kms_service svc, kms_answer *answer)
{
    kms_server *s = w->srv;
    char request_id[CL_UUID_TEXT_LEN + 1];
    kms_request_id(request_id);
    int64_t now = (int64_t)time(NULL);
    kms_policy_env env;
    kms_request_env(s, req, now, &env);
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(ib);
    uint8_t *body = blen ? evbuffer_pullup(ib, -1) : NULL;
    kms_principal who; /* a copy with its secret: wiped below */
    memset(&who, 0, sizeof(who));
    char region[KMS_REGION_MAX + 1] = "";
    const char *svc_name = kms_service_name(svc);
    const char *prefix = svc == KMS_SERVICE_SAGEMAKER ? "SageMaker." : "Logs_20140328.";
    kms_json_call c = {
        .kms = &s->ctx, .principal = &who, .region = region, .now = now, .env = &env, .request_id = request_id};
    char op[96] = "", audit_op[112] = "";
    int status = 400;
    bool authenticated = false;
    cl_status rc = CL_OK;
    char *out = NULL;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *target = evhttp_find_header(in, "X-Amz-Target");
    if (target != NULL && strncmp(target, prefix, strlen(prefix)) == 0 && strlen(target + strlen(prefix)) < sizeof(op))
        (void)snprintf(op, sizeof(op), "%s", target + strlen(prefix));
    if (blen > 0 && body == NULL) {
        c.exception = "InternalFailure";
        status = 500;
        CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory for the request body");
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        c.exception = "UnknownOperationException";
        CL_FAIL_GOTO(CL_ERR_USAGE, "%s is answered for POST / with X-Amz-Target %sOPERATION here", svc_name, prefix);
    }
    rc = kms_authenticate(s, req, "POST", body ? body : (const uint8_t *)"", blen, &who, region, &c.exception, now,
                          svc_name);
    if (rc != CL_OK) {
        if (c.exception == NULL) status = 500;
        goto out;
    }
    authenticated = true;
    env.region = region;
    if (op[0] == '\0') {
        c.exception = "UnknownOperationException";
        CL_FAIL_GOTO(CL_ERR_USAGE, "Unknown operation %s", target != NULL ? target : "(no X-Amz-Target)");
    }
    (void)snprintf(audit_op, sizeof(audit_op), "%s:%s", svc_name, op);
    c.operation = op;
    json_error_t jerr;
    c.req = json_loadb(body ? (const char *)body : "{}", blen ? blen : 2, JSON_REJECT_DUPLICATES, &jerr);
    if (c.req == NULL || !json_is_object(c.req)) {
        c.exception = "SerializationException";
        CL_FAIL_GOTO(CL_ERR_FORMAT, "Start of structure or map found where not expected.");
    }
    c.resp = json_object();
    CL_ENSURE_GOTO(c.resp != NULL, CL_ERR_NOMEM, "out of memory");
    if (svc == KMS_SERVICE_SAGEMAKER && kms_sagemaker_changes_state(op)) {
        cl_audit_event started = {
            .time = now, .request_id = request_id, .principal = who.arn, .operation = audit_op, .outcome = "started"};
        if (cl_audit_append(s->ctx.audit, &started) != CL_OK) {
            CL_LOG_ERROR("%s %s: not run: %s", audit_op, request_id, cl_error_message());
            c.exception = "InternalFailure";
            status = 500;
            CL_FAIL_GOTO(CL_ERR_IO, KMS_AUDIT_FAILED_MESSAGE);
        }
    }
    rc = svc == KMS_SERVICE_SAGEMAKER ? kms_sagemaker_handle(&c) : kms_logs_handle(&c);
    if (rc != CL_OK) goto out;
    out = json_dumps(c.resp, JSON_COMPACT);
    CL_ENSURE_GOTO(out != NULL, CL_ERR_NOMEM, "cannot serialise the response");
    status = 200;
out:;
    const char *outcome = "ok";
    if (rc != CL_OK) {
        if (c.exception == NULL) {
            c.exception = "InternalFailure";
            status = 500;
        } else if (strcmp(c.exception, "MissingAuthenticationTokenException") == 0) {
            status = 403;
        }
        if (status >= 500) CL_LOG_ERROR("%s %s: %s", audit_op[0] ? audit_op : svc_name, request_id, cl_error_message());
        outcome = c.exception;
        out = kms_error_body(c.exception, status >= 500 && strcmp(cl_error_message(), KMS_AUDIT_FAILED_MESSAGE) != 0
                                              ? "The service could not answer; its log says why."
                                              : cl_error_message());
    }
    uint64_t end = 0;
    cl_audit_event ev = {.time = now,
                         .request_id = request_id,
                         .principal = authenticated ? who.arn : "",
                         .operation = audit_op[0] ? audit_op : svc_name,
                         .outcome = outcome,
                         .resource = c.resource[0] ? c.resource : NULL};
    if (cl_audit_write(s->ctx.audit, &ev, &end) != CL_OK) {
        atomic_store(&s->audit_failing, true);
        CL_LOG_ERROR("%s %s: not answered: %s", ev.operation, request_id, cl_error_message());
        kms_body_free(out);
        out = kms_error_body("InternalFailure", KMS_AUDIT_FAILED_MESSAGE);
        status = 500;
        end = 0;
        outcome = "InternalFailure";
    }
    if (cl_log_enabled(CL_LOG_LEVEL_INFO)) {
        char line[64 + 2 * KMS_ARN_MAX + sizeof(env.source_ip)];
        (void)snprintf(line, sizeof(line), "principal=%s action=%s resource=%s source=%s",
                       authenticated ? who.arn : "-", ev.operation, c.resource[0] ? c.resource : "-",
                       env.source_ip[0] ? env.source_ip : "-");
        answer->who = strdup(line);
    }
    if (body != NULL) cl_memzero(body, blen);
    cl_memzero(&who, sizeof(who));
    json_decref(c.req);
    json_decref(c.resp);
    answer->outcome = kms_metrics_outcome(rc == CL_OK && strcmp(outcome, "ok") == 0 ? NULL : outcome);
    cl_error_clear();
    if (out != NULL) {
        kms_reply_queue(w, req, status, request_id, out, end, answer);
    } else {
        kms_answer_failed(answer);
        kms_answer_done(w, request_id, 500, answer);
        evhttp_send_error(req, 500, NULL);
    }
}

/* GetKeyLastUsage's record (usage.h): a cryptographic operation on a key that succeeded and
 * whose audit line was written, in this worker's shard. The key is c->key_arn (the store's ARN of
 * the key the operation loaded last); ReEncrypt uses two, and "usage information is recorded for
 * both keys": its source is the answer's SourceKeyId, also the store's ARN. */
static void kms_note_usage(kms_worker *w, const kms_call *c, const char *op)
{
    const char *name = kms_last_use_operation(op);
    if (name == NULL || w->srv->ctx.usage == NULL) return;
    const char *arns[2] = {c->key_arn, NULL};
    if (strcmp(name, "ReEncrypt") == 0) arns[1] = json_string_value(json_object_get(c->resp, "SourceKeyId"));
    for (size_t i = 0; i < 2; i++) {
        size_t len = arns[i] != NULL ? strlen(arns[i]) : 0;
        if (len < KMS_KEY_ID_LEN) continue;
        const char *key_id = arns[i] + (len - KMS_KEY_ID_LEN); /* a key ARN ends in key/KEY_ID */
        if (kms_last_use_record(w->srv->ctx.usage, (size_t)(w - w->srv->workers), key_id, name, c->now,
                                c->request_id) != CL_OK)
            CL_LOG_WARN("%s %s: its use of %s is not recorded for GetKeyLastUsage: %s", op, c->request_id, arns[i],
                        cl_error_message());
    }
}

/*
 * An S3 request (s3.h): served by kms_s3_serve, which writes its audit line; the answer (its
 * headers already on the request, its body an evbuffer, a file's bytes sent from the page cache)
 * leaves once that line is on disk, as the KMS's do.
 */
static void kms_handle_s3(kms_worker *w, struct evhttp_request *req, kms_answer *answer)
{
    kms_policy_env env;
    kms_request_env(w->srv, req, (int64_t)time(NULL), &env);
    kms_s3_result res;
    char request_id[CL_UUID_TEXT_LEN + 1];
    kms_request_id(request_id);
    kms_s3_serve(&w->srv->ctx, req, &env, request_id, &res);
    answer->content_type = "application/xml";
    answer->outcome = kms_metrics_outcome(strcmp(res.outcome, "ok") == 0 ? NULL : res.outcome);
    kms_reply *r = res.body != NULL ? calloc(1, sizeof(*r)) : NULL;
    if (r == NULL) {
        if (res.body != NULL) evbuffer_free(res.body);
        kms_answer_failed(answer);
        kms_answer_done(w, res.request_id, 500, answer);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    r->req = req;
    r->audit_end = res.audit_end;
    r->status = res.status;
    (void)snprintf(r->request_id, sizeof(r->request_id), "%s", res.request_id);
    r->payload = res.body;
    r->answer = *answer;
    if (res.audit_end == 0) {
        /* Nothing to wait for: answered now (kms_flush_answers' path for one reply). */
        kms_answer_done(w, r->request_id, r->status, &r->answer);
        evhttp_send_reply(req, r->status, kms_status_reason(r->status), r->payload);
        evbuffer_free(r->payload);
        free(r);
        return;
    }
    *w->replies_tail = r;
    w->replies_tail = &r->next;
    if (++w->n_replies >= KMS_PENDING_MAX) kms_flush(w);
}

static void kms_handle(struct evhttp_request *req, void *arg)
{
    kms_worker *w = arg;
    kms_server *s = w->srv;
    kms_conn *conn = kms_conn_of(w, evhttp_request_get_connection(req));
    if (conn != NULL) conn->state = KMS_CONN_SERVING; /* delivered whole: no deadline, not evicted */
    evhttp_request_set_on_complete_cb(req, kms_conn_answered, w);
    kms_answer answer = {.start_ns = kms_now_ns(), .op_row = kms_op_count()};
    if (evhttp_request_get_command(req) == EVHTTP_REQ_GET) {
        /* The two service endpoints; any other GET is answered as KMS answers it, below. */
        const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
        const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
        if (path != NULL && strcmp(path, "/healthz") == 0) {
            kms_handle_healthz(w, req);
            return;
        }
        if (path != NULL && strcmp(path, "/metrics") == 0) {
            kms_handle_metrics(w, req);
            return;
        }
    }
    /* The certificate service (cas_http.h) has paths under /v1/; the KMS API is POST /. */
    const struct evhttp_uri *req_uri = evhttp_request_get_evhttp_uri(req);
    if (req_uri != NULL && kms_cas_path(evhttp_uri_get_path(req_uri))) {
        kms_handle_cas(w, req, evhttp_uri_get_path(req_uri), &answer);
        return;
    }
    /* One endpoint, four services: the credential scope's service decides (route.h). */
    {
        enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
        struct evkeyvalq *hin = evhttp_request_get_input_headers(req);
        kms_service svc = kms_route(cmd == EVHTTP_REQ_POST  ? "POST"
                                    : cmd == EVHTTP_REQ_GET ? "GET"
                                                            : "OTHER",
                                    req_uri != NULL ? evhttp_uri_get_path(req_uri) : NULL,
                                    req_uri != NULL ? evhttp_uri_get_query(req_uri) : NULL,
                                    evhttp_find_header(hin, "Authorization"), evhttp_find_header(hin, "X-Amz-Target"));
        switch (svc) {
        case KMS_SERVICE_STS:
        case KMS_SERVICE_IAM: kms_handle_query(w, req, svc, &answer); return;
        case KMS_SERVICE_S3: kms_handle_s3(w, req, &answer); return;
        case KMS_SERVICE_SAGEMAKER:
        case KMS_SERVICE_LOGS: kms_handle_json(w, req, svc, &answer); return;
        default: break; /* KMS */
        }
    }
    kms_principal who; /* a copy with its secret: wiped below */
    memset(&who, 0, sizeof(who));
    kms_call c;
    memset(&c, 0, sizeof(c));
    cl_kvlist_init(&c.audit_ctx);
    c.kms = &s->ctx;
    c.now = (int64_t)time(NULL);
    kms_request_env(s, req, c.now, &c.env);
    kms_request_id(c.request_id);
    char op[128] = "";
    const char *principal = "";
    const char *exc = NULL;
    char *out = NULL;
    int status = 400;
    bool logged = false; /* the failure was logged where it happened */
    cl_status rc = CL_OK;

    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(ib);
    /* One contiguous copy, in the request's own buffer: wiped below once answered. */
    uint8_t *body = blen ? evbuffer_pullup(ib, -1) : NULL;
    if (blen > 0 && body == NULL) {
        exc = "KMSInternalException";
        status = 500;
        CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory for the request body");
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        exc = "UnknownOperationException";
        CL_FAIL_GOTO(CL_ERR_USAGE, "KMS accepts POST only");
    }
    const char *target = evhttp_find_header(in, "X-Amz-Target");
    kms_op_fn fn = NULL;
    if (target != NULL && strncmp(target, "TrentService.", 13) == 0 && strlen(target + 13) < sizeof(op)) {
        (void)snprintf(op, sizeof(op), "%s", target + 13);
        fn = kms_op_lookup(op, &answer.op_row);
    }
    rc = kms_authenticate(s, req, "POST", body ? body : (const uint8_t *)"", blen, &who, c.region, &exc, c.now, "kms");
    if (rc != CL_OK) goto out;
    principal = who.arn;
    c.principal = &who;
    c.env.region = c.region;
    if (fn == NULL) {
        exc = "UnknownOperationException";
        CL_FAIL_GOTO(CL_ERR_USAGE, "Unknown operation %s", target ? target : "(no X-Amz-Target)");
    }
    c.operation = op;
    json_error_t jerr;
    c.req = json_loadb(body ? (const char *)body : "", blen, JSON_REJECT_DUPLICATES, &jerr);
    if (c.req == NULL || !json_is_object(c.req)) {
        exc = "SerializationException";
        CL_FAIL_GOTO(CL_ERR_FORMAT, "Start of structure or map found where not expected.");
    }
    c.resp = json_object();
    CL_ENSURE_GOTO(c.resp != NULL, CL_ERR_NOMEM, "out of memory");
    if (kms_op_changes_state(op)) {
        /* Its record first: if the line of its outcome cannot be written later, the change is
         * still on record (who, what, when, under this request id). */
        cl_audit_event ev = {
            .time = c.now, .request_id = c.request_id, .principal = principal, .operation = op, .outcome = "started"};
        rc = cl_audit_append(s->ctx.audit, &ev);
        if (rc != CL_OK) {
            CL_LOG_ERROR("%s %s: not run: %s", op, c.request_id, cl_error_message());
            exc = "KMSInternalException";
            status = 500;
            logged = true;
            CL_FAIL_GOTO(CL_ERR_IO, KMS_AUDIT_FAILED_MESSAGE);
        }
    }
    rc = fn(&c);
    if (rc != CL_OK) goto out;
    out = json_dumps(c.resp, JSON_COMPACT);
    CL_ENSURE_GOTO(out != NULL, CL_ERR_NOMEM, "cannot serialise the response");
    status = 200;
out:;
    const char *outcome = "ok";
    if (rc != CL_OK) {
        const char *name = exc != NULL ? exc : kms_exception_for(&c, rc, &status);
        if (exc != NULL && strcmp(exc, "MissingAuthenticationTokenException") == 0) status = 403;
        if (exc != NULL &&
            (strcmp(exc, "UnrecognizedClientException") == 0 || strcmp(exc, "InvalidSignatureException") == 0 ||
             strcmp(exc, "IncompleteSignatureException") == 0))
            status = 400;
        if (status >= 500 && !logged) CL_LOG_ERROR("%s %s: %s", op, c.request_id, cl_error_message());
        outcome = name;
        out = kms_error_body(name, cl_error_message());
    }
    answer.outcome = kms_metrics_outcome(rc == CL_OK ? NULL : outcome);
    /* No answer leaves without its line in the log: one that cannot be written turns the
     * answer into KMSInternalException, and the plaintext it held is wiped unsent. */
    uint64_t end = 0;
    cl_status arc = kms_audit(s, &c, principal, op, outcome, true, &end);
    if (arc != CL_OK) {
        if (arc != CL_ERR_LIMIT) atomic_store(&s->audit_failing, true);
        kms_answer_failed(&answer);
        CL_LOG_ERROR("%s %s: not answered: %s", op, c.request_id, cl_error_message());
        kms_body_free(out);
        out = kms_error_body("KMSInternalException", KMS_AUDIT_FAILED_MESSAGE);
        status = 500;
        end = 0;
        /* A line too long for the log (its context keys) is recorded without them. */
        if (arc == CL_ERR_LIMIT && kms_audit(s, &c, principal, op, "KMSInternalException", false, &end) != CL_OK) {
            CL_LOG_ERROR("%s %s: %s", op, c.request_id, cl_error_message());
            end = 0;
        }
    }
    if (rc == CL_OK && arc == CL_OK) kms_note_usage(w, &c, op);
    /* The response object can hold plaintext (Decrypt, GenerateDataKey, GenerateRandom), and
     * so can the request (Encrypt): jansson frees through cl_free_wiped, and the request's
     * bytes are wiped here in libevent's buffer, before the answer is handed over (which may
     * free the request). */
    if (body != NULL) cl_memzero(body, blen);
    /* Names and the peer only (kms_answer_done); the principal and key ARNs come from the
     * configuration and the store, not from request text. */
    if (cl_log_enabled(CL_LOG_LEVEL_INFO)) {
        char line[64 + 2 * KMS_ARN_MAX + sizeof(c.env.source_ip)];
        (void)snprintf(line, sizeof(line), "principal=%s key=%s source=%s", principal[0] ? principal : "-",
                       c.key_arn[0] ? c.key_arn : "-", c.env.source_ip[0] ? c.env.source_ip : "-");
        answer.who = strdup(line);
    }
    json_decref(c.req);
    json_decref(c.resp);
    cl_kvlist_free(&c.audit_ctx);
    cl_memzero(&who, sizeof(who));
    if (out == NULL) out = strdup("{\"__type\":\"KMSInternalException\"}");
    if (out != NULL) {
        kms_reply_queue(w, req, status, c.request_id, out, end, &answer);
    } else {
        kms_answer_failed(&answer);
        kms_answer_done(w, c.request_id, 500, &answer);
        evhttp_send_error(req, 500, NULL);
    }
    cl_error_clear();
}

/* Sends the answers whose audit lines are on disk and asks the committer for the others; with
 * wait, first waits until all of them are (when the worker stops). Never blocks otherwise. If
 * the log cannot be synced, none of the waiting answers leaves: each becomes
 * KMSInternalException. */
static void kms_flush_answers(kms_worker *w, bool wait)
{
    if (w->replies == NULL) return;
    bool failed = false;
    uint64_t durable;
    if (wait) {
        uint64_t last = 0;
        for (kms_reply *r = w->replies; r != NULL; r = r->next)
            if (r->audit_end > last) last = r->audit_end;
        failed = cl_audit_sync(w->srv->ctx.audit, last) != CL_OK;
        durable = last;
    } else {
        durable = kms_committer_state(w->srv->committer, &failed);
    }
    /* Written only when it changes: every worker flushes every loop turn. */
    if (atomic_load_explicit(&w->srv->audit_failing, memory_order_relaxed) != failed)
        atomic_store(&w->srv->audit_failing, failed);
    size_t sent = 0;
    /* A worker writes its lines one after the other, so its answers wait in the order of their
     * offsets: those ready are a prefix of the list. */
    while (w->replies != NULL && (failed || w->replies->audit_end <= durable)) {
        kms_reply *r = w->replies;
        w->replies = r->next;
        w->n_replies--;
        sent++;
        if (failed) {
            kms_body_free(r->body);
            r->body = kms_error_body("KMSInternalException", KMS_AUDIT_FAILED_MESSAGE);
            r->status = 500;
            kms_answer_failed(&r->answer);
        }
        if (r->payload != NULL) {
            if (failed) kms_s3_payload_failed(r);
            kms_answer_done(w, r->request_id, r->status, &r->answer);
            evhttp_send_reply(r->req, r->status, kms_status_reason(r->status), r->payload);
            evbuffer_free(r->payload);
            free(r);
            continue;
        }
        /* Counted and logged before it is handed over, so that whoever has the answer can
         * already see it in /metrics. */
        if (r->body == NULL) {
            r->status = 500;
            kms_answer_failed(&r->answer);
        }
        kms_answer_done(w, r->request_id, r->status, &r->answer);
        if (r->body != NULL)
            kms_send(r->req, r->status, r->request_id, r->body, r->answer.content_type);
        else
            evhttp_send_error(r->req, 500, NULL);
        kms_body_free(r->body);
        free(r);
    }
    if (failed && sent > 0) CL_LOG_ERROR("%zu answers not sent: the audit log cannot be synced", sent);
    cl_error_clear();
    if (w->replies == NULL) {
        w->replies_tail = &w->replies;
        return;
    }
    uint64_t last = 0;
    for (kms_reply *r = w->replies; r != NULL; r = r->next)
        if (r->audit_end > last) last = r->audit_end;
    kms_committer_request(w->srv->committer, w->index, last, w->commit_ev);
}

static void kms_flush(kms_worker *w) { kms_flush_answers(w, false); }

/* An S3 answer whose audit line could not be made durable: an S3 InternalError instead. */
static void kms_s3_payload_failed(kms_reply *r)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
    evhttp_clear_headers(out);
    evbuffer_drain(r->payload, evbuffer_get_length(r->payload));
    evhttp_add_header(out, "Content-Type", "application/xml");
    evhttp_add_header(out, "x-amz-request-id", r->request_id);
    if (evhttp_request_get_command(r->req) == EVHTTP_REQ_HEAD)
        evhttp_add_header(out, "Content-Length", "0");
    else
        evbuffer_add_printf(r->payload,
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>%s"
                            "</Message><RequestId>%s</RequestId></Error>",
                            KMS_AUDIT_FAILED_MESSAGE, r->request_id);
    r->status = 500;
    kms_answer_failed(&r->answer);
}

/* The committer's wake-up: the loop turn it ends calls kms_flush. */
static void kms_commit_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void kms_reply_queue(kms_worker *w, struct evhttp_request *req, int status, const char *request_id, char *body,
                            uint64_t audit_end, kms_answer *answer)
{
    kms_reply *r = audit_end > 0 ? calloc(1, sizeof(*r)) : NULL;
    if (r == NULL) {
        /* Nothing to wait for (no line: the answer is an error), or no memory to wait with. */
        if (audit_end > 0 && cl_audit_sync(w->srv->ctx.audit, audit_end) != CL_OK) {
            atomic_store(&w->srv->audit_failing, true);
            CL_LOG_ERROR("%s: not answered: %s", request_id, cl_error_message());
            kms_body_free(body);
            body = kms_error_body("KMSInternalException", KMS_AUDIT_FAILED_MESSAGE);
            status = 500;
            kms_answer_failed(answer);
        }
        if (body == NULL) {
            status = 500;
            kms_answer_failed(answer);
        }
        kms_answer_done(w, request_id, status, answer);
        if (body != NULL)
            kms_send(req, status, request_id, body, answer->content_type);
        else
            evhttp_send_error(req, 500, NULL);
        kms_body_free(body);
        return;
    }
    r->req = req;
    r->audit_end = audit_end;
    r->status = status;
    (void)snprintf(r->request_id, sizeof(r->request_id), "%s", request_id);
    r->body = body;
    r->answer = *answer;
    *w->replies_tail = r;
    w->replies_tail = &r->next;
    if (++w->n_replies >= KMS_PENDING_MAX) kms_flush(w);
}

/* --- connections ---------------------------------------------------------------------- */

/* evhttp is done with the connection (closed by the client, a timeout, an error, or us). */
static void kms_conn_closed(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    kms_conn *c = arg;
    kms_worker *w = c->w;
    kms_conn_release(w, c);
    if (w->full && !w->backing_off) {
        w->full = false;
        (void)evconnlistener_enable(w->listener);
    }
}

/* Closes the connection that has waited longest for a complete request. */
static bool kms_conn_evict_oldest(kms_worker *w)
{
    kms_conn *oldest = NULL;
    for (size_t i = 0; i < w->n_slots; i++) {
        kms_conn *c = &w->conns[i];
        if (c->state == KMS_CONN_WAITING && (oldest == NULL || c->seq < oldest->seq)) oldest = c;
    }
    if (oldest == NULL) return false;
    evhttp_connection_free(oldest->evcon); /* calls kms_conn_closed */
    kms_metrics_add(&w->metrics.closed_cap, 1);
    return true;
}

/* Arms the deadline timer for the earliest waiting connection, unless it is armed already
 * (every later deadline comes after the armed one: they are all since + request_timeout). */
static void kms_conn_arm_deadline(kms_worker *w)
{
    if (evtimer_pending(w->deadline_ev, NULL)) return;
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < w->n_slots; i++)
        if (w->conns[i].state == KMS_CONN_WAITING && w->conns[i].since_ms < first) first = w->conns[i].since_ms;
    if (first == INT64_MAX) return;
    int64_t wait = first + (int64_t)w->srv->cfg.request_timeout * 1000 - kms_now_ms();
    if (wait < 0) wait = 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / 1000), .tv_usec = (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(w->deadline_ev, &tv);
}

/* A request (or the TLS handshake and the request) that has not arrived whole by its
 * deadline: the connection is closed, without an answer, however recently it sent a byte. */
static void kms_conn_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kms_worker *w = arg;
    int64_t limit = kms_now_ms() - (int64_t)w->srv->cfg.request_timeout * 1000;
    size_t closed = 0;
    for (size_t i = 0; i < w->n_slots; i++) {
        kms_conn *c = &w->conns[i];
        if (c->state == KMS_CONN_WAITING && c->since_ms <= limit) {
            evhttp_connection_free(c->evcon);
            closed++;
        }
    }
    if (closed > 0) {
        kms_metrics_add(&w->metrics.closed_deadline, closed);
        CL_LOG_DEBUG("closed %zu connections past the request deadline", closed);
    }
    kms_conn_arm_deadline(w);
}

/* evhttp asks for each accepted connection's bufferevent: TLS or plain, tracked from here. */
static struct bufferevent *kms_conn_bev(struct event_base *base, void *arg)
{
    kms_worker *w = arg;
    kms_server *s = w->srv;
    struct bufferevent *bev = NULL;
    bool doomed = false;
    if (s->tls != NULL) {
        SSL *ssl = SSL_new(s->tls);
        bev = ssl != NULL
                  ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)
                  : NULL;
        if (bev != NULL) {
            /* Clients that close without close_notify (most HTTP clients) are not an error. */
            bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
        } else {
            /* Out of memory. evhttp would make a plain bufferevent of its own for a NULL, and
             * serve this connection without TLS: make one here instead, and close it at once. */
            SSL_free(ssl);
            doomed = true;
        }
    }
    if (bev == NULL) bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) return NULL;
    w->backoff_ms = 0;
    if (w->n_free == 0) return bev; /* cannot happen: accepting pauses when the last slot is taken */
    size_t slot = w->free_slots[--w->n_free];
    kms_conn *c = &w->conns[slot];
    w->pending_slots[w->n_pending_slots++] = slot;
    c->w = w;
    c->state = KMS_CONN_PENDING;
    c->bev = bev;
    c->evcon = NULL;
    c->since_ms = kms_now_ms();
    c->seq = ++w->seq;
    c->doomed = doomed;
    kms_metrics_connections(&w->metrics, 1);
    kms_metrics_add(&w->metrics.accepted, 1);
    bufferevent_incref(bev); /* valid until adopted, even if evhttp frees it first */
    if (++w->n_used == w->n_slots) {
        w->full = true;
        (void)evconnlistener_disable(w->listener);
    }
    event_active(w->adopt_ev, EV_TIMEOUT, 1);
    return bev;
}

/*
 * The header block before the body. evhttp (libevent 2.1.12) reads a request's headers and then,
 * from Content-Length, refuses a body over the connection's max_body with 413 before reading it;
 * it has no callback between the two (2.2's evhttp_set_newreqcb), so a body's limit cannot depend
 * on who sent it. Here the connection's read callback is wrapped: while a request's header block
 * has not arrived whole, the bytes stay in the bufferevent (evhttp is not called: it would consume
 * the lines); once it has (or 16 KiB + 8 KiB came without one: evhttp then refuses them), the block
 * is parsed and, if it is an S3 PUT or POST whose SigV4 signature verifies from the headers alone
 * (kms_s3_preauth: the payload's hash is a header, x-amz-content-sha256, or UNSIGNED-PAYLOAD), this
 * connection's limit for this request is raised to s3_max_body; then evhttp's own callback runs.
 * The limit goes back to max_body when the request is answered. So a client without credentials
 * can make the server hold at most max_body per connection, as before S3 (docs/s3.md, "Limits").
 * evhttp sets its callbacks again for each request (evhttp_start_read_), after the answer's
 * completion callback: the wrapper goes back on from an event activated there (kms_conn_rewrap).
 * A pipelined request evhttp reads before that gets max_body: safe, merely small.
 */
#define KMS_PEEK_MAX (16384 + 8192)

static void kms_conn_peek(struct bufferevent *bev, void *arg)
{
    kms_worker *w = kms_this_worker;
    kms_conn *c = w != NULL ? kms_conn_of(w, arg) : NULL;
    if (c != NULL && c->peeking) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t have = evbuffer_get_length(in), n = have < KMS_PEEK_MAX ? have : KMS_PEEK_MAX, end = 0;
        const uint8_t *head = evbuffer_pullup(in, (ev_ssize_t)n);
        bool whole = head != NULL && kms_s3_head_end(head, n, &end);
        if (!whole && have <= KMS_PEEK_MAX && head != NULL) return; /* the rest of the block is on its way */
        c->peeking = false;
        if (whole && kms_s3_preauth(&w->srv->ctx, head, end, (int64_t)time(NULL)))
            evhttp_connection_set_max_body_size(arg, (ev_ssize_t)w->srv->cfg.s3_max_body);
    }
    if (w != NULL && w->evhttp_readcb != NULL) w->evhttp_readcb(bev, arg);
}

/* Puts kms_conn_peek in front of evhttp's read callback of c (when evhttp's is the one set). */
static void kms_conn_wrap(kms_worker *w, kms_conn *c)
{
    if (c->evcon == NULL || w->srv->cfg.s3_max_body <= w->srv->cfg.max_body) return;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);
    bufferevent_data_cb rd = NULL, wr = NULL;
    bufferevent_event_cb ev = NULL;
    void *arg = NULL;
    bufferevent_getcb(bev, &rd, &wr, &ev, &arg);
    if (rd == NULL || rd == kms_conn_peek || arg != c->evcon) return;
    if (w->evhttp_readcb == NULL) w->evhttp_readcb = rd;
    if (rd != w->evhttp_readcb) return;
    c->peeking = true;
    bufferevent_setcb(bev, kms_conn_peek, wr, ev, arg);
    /* Bytes already waiting (a request sent right behind the answer): look at them now. */
    if (evbuffer_get_length(bufferevent_get_input(bev)) > 0) kms_conn_peek(bev, arg);
}

static void kms_conn_rewrap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kms_worker *w = arg;
    size_t n = w->n_rewrap;
    w->n_rewrap = 0;
    for (size_t i = 0; i < n; i++) {
        kms_conn *c = &w->conns[w->rewrap[i]];
        if (c->state == KMS_CONN_WAITING && c->evcon != NULL) kms_conn_wrap(w, c);
    }
}

/* Just after the accepts of this loop turn: learn each new connection's evhttp_connection
 * (the bufferevent's callback argument evhttp set), then hold the cap. */
static void kms_conn_adopt(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kms_worker *w = arg;
    for (size_t p = 0; p < w->n_pending_slots; p++) {
        kms_conn *c = &w->conns[w->pending_slots[p]];
        struct bufferevent *bev = c->bev;
        bufferevent_event_cb errorcb = NULL;
        void *cbarg = NULL;
        bufferevent_getcb(bev, NULL, NULL, &errorcb, &cbarg);
        if (errorcb == NULL || cbarg == NULL) {
            /* evhttp freed it already (bufferevent_free clears the callbacks). */
            kms_conn_release(w, c);
        } else {
            c->evcon = cbarg;
            c->state = KMS_CONN_WAITING;
            kms_conn_index_add(w, (size_t)(c - w->conns));
            evhttp_connection_set_closecb(c->evcon, kms_conn_closed, c);
            kms_conn_wrap(w, c);
        }
        bufferevent_decref(bev);
        if (c->state == KMS_CONN_WAITING && c->doomed) evhttp_connection_free(c->evcon); /* kms_conn_closed */
    }
    w->n_pending_slots = 0;
    size_t evicted = 0;
    while (w->n_used > w->cap && kms_conn_evict_oldest(w)) evicted++;
    if (evicted > 0)
        CL_LOG_INFO("%zu connections closed: at the cap of %zu connections per worker thread (max_connections)",
                    evicted, w->cap);
    if (w->full && w->n_used < w->n_slots && !w->backing_off) {
        w->full = false;
        (void)evconnlistener_enable(w->listener);
    }
    kms_conn_arm_deadline(w);
}

static void kms_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    kms_worker *w = arg;
    w->backing_off = false;
    if (!w->full) (void)evconnlistener_enable(w->listener);
}

/*
 * accept() failed with something other than EAGAIN/EINTR, typically EMFILE or ENFILE: the
 * pending connection stays in the kernel's queue, so the listening socket stays readable and
 * retrying at once would spin a core. Stop accepting for a while (10 ms, doubling up to 1 s
 * while it keeps failing), free a descriptor by closing the connection that has waited
 * longest for a request, and say so at most every 10 s.
 */
static void kms_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)arg; /* the listener's argument is evhttp's (evhttp_bind_listener sets it) */
    kms_worker *w = kms_this_worker;
    if (w == NULL || w->listener != lev) {
        (void)evconnlistener_disable(lev);
        return;
    }
    int err = EVUTIL_SOCKET_ERROR();
    (void)evconnlistener_disable(lev);
    w->backing_off = true;
    w->backoff_ms = w->backoff_ms == 0 ? KMS_ACCEPT_BACKOFF_MIN_MS : w->backoff_ms * 2;
    if (w->backoff_ms > KMS_ACCEPT_BACKOFF_MAX_MS) w->backoff_ms = KMS_ACCEPT_BACKOFF_MAX_MS;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) (void)kms_conn_evict_oldest(w);
    w->accept_errors++;
    int64_t now = kms_now_ms();
    if (w->accept_log_ms == 0 || now - w->accept_log_ms >= KMS_ACCEPT_LOG_EVERY_MS) {
        CL_LOG_ERROR("cannot accept connections: %s (%lu times since the last message); pausing accepts, %zu "
                     "connections open on this thread: raise RLIMIT_NOFILE (ulimit -n, LimitNOFILE=) or lower "
                     "max_connections",
                     strerror(err), w->accept_errors, w->n_used);
        w->accept_log_ms = now;
        w->accept_errors = 0;
    }
    struct timeval tv = {.tv_sec = w->backoff_ms / 1000, .tv_usec = (suseconds_t)(w->backoff_ms % 1000) * 1000};
    evtimer_add(w->backoff_ev, &tv);
}

/* One turn of the event loop at a time: what the turn answered leaves after one fdatasync. */
static void *kms_worker_main(void *arg)
{
    kms_worker *w = arg;
    kms_this_worker = w;
    while (!atomic_load(&w->stop)) {
        if (event_base_loop(w->base, EVLOOP_ONCE) < 0) break;
        kms_flush(w);
    }
    kms_flush_answers(w, true);
    return NULL;
}

/*
 * The listening socket: cfg.host is an IPv4 or IPv6 address or a host name (kms_config_parse_listen
 * took the brackets off an IPv6 address). A name is resolved with getaddrinfo and the server
 * listens on the first address that binds (for "localhost", usually ::1 then 127.0.0.1, in the
 * order of RFC 6724 as glibc sorts them); to listen on every address of the host, give "::"
 * (IPv6 and, unless net.ipv6.bindv6only is set, IPv4 too) or 0.0.0.0.
 */
static CL_MUST_USE cl_status kms_listen(kms_server *s)
{
    char port[8];
    (void)snprintf(port, sizeof(port), "%d", s->cfg.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV},
                    *res = NULL;
    int gai = getaddrinfo(s->cfg.host, port, &hints, &res);
    if (gai != 0)
        CL_FAIL(CL_ERR_USAGE,
                "listen address %s: %s (give an IPv4 address, [IPv6]:PORT or a host name this machine "
                "resolves)",
                s->cfg.host, gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* Inherited by every accepted connection (Linux). Over TLS an answer leaves as several
         * records, one write each; with Nagle's algorithm the last waits for the client's delayed
         * ACK: 40 ms per request. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 1024) != 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        errno = err;
        CL_FAIL_ERRNO(CL_ERR_IO, "cannot listen on %s port %d", s->cfg.host, s->cfg.port);
    }
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof(sa));
    socklen_t len = sizeof(sa);
    char text[INET6_ADDRSTRLEN] = "?";
    (void)snprintf(s->listen_text, sizeof(s->listen_text), "%s:%d", s->cfg.host, s->cfg.port);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0) {
        if (sa.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)(const void *)&sa;
            (void)inet_ntop(AF_INET6, &a6->sin6_addr, text, sizeof(text));
            s->cfg.port = ntohs(a6->sin6_port);
            (void)snprintf(s->listen_text, sizeof(s->listen_text), "[%s]:%d", text, s->cfg.port);
        } else {
            const struct sockaddr_in *a4 = (const struct sockaddr_in *)(const void *)&sa;
            (void)inet_ntop(AF_INET, &a4->sin_addr, text, sizeof(text));
            s->cfg.port = ntohs(a4->sin_port);
            (void)snprintf(s->listen_text, sizeof(s->listen_text), "%s:%d", text, s->cfg.port);
        }
    }
    s->listen_fd = fd;
    return CL_OK;
}

/* Encrypted PEM keys are refused rather than prompted for on a terminal. */
static int kms_tls_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* TLS 1.2 and 1.3 only (RFC 8996 deprecates 1.0 and 1.1), OpenSSL's default
 * cipher suites, the certificate chain and key of the config file. */
static CL_MUST_USE cl_status kms_tls_setup(kms_server *s)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot create a TLS context");
    cl_status rc = CL_OK;
    SSL_CTX_set_default_passwd_cb(ctx, kms_tls_no_password);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot require TLS 1.2");
    /* CLEANSE_PLAINTEXT: OpenSSL keeps the decrypted record (a request body) in its read
     * buffer unless told to wipe it once consumed (OpenSSL 3.0, SSL_CTX_set_options(3)). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CLEANSE_PLAINTEXT);
    if (SSL_CTX_use_certificate_chain_file(ctx, s->cfg.tls_cert) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "cannot load the TLS certificate chain %s (tls.cert, PEM)", s->cfg.tls_cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, s->cfg.tls_key, SSL_FILETYPE_PEM) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_FORMAT, "cannot load the TLS private key %s (tls.key, unencrypted PEM)",
                         s->cfg.tls_key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_KEY, "TLS key %s does not match certificate %s", s->cfg.tls_key, s->cfg.tls_cert);
    s->tls = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return rc;
}

/*
 * A worker's event base. EPOLL_USE_CHANGELIST folds the add/del of read and
 * write interest that evhttp does around every keep-alive request into at most
 * one epoll_ctl per fd per loop turn (strace under wrk: four epoll_ctl per
 * Decrypt without it). Its caveat, fds dup()ed under the base, does not apply:
 * evhttp owns its sockets. The base keeps its lock: kms_server_free calls
 * event_base_loopexit from another thread.
 */
static struct event_base *kms_worker_base(void)
{
    struct event_config *ec = event_config_new();
    if (ec == NULL) return NULL;
    (void)event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *b = event_base_new_with_config(ec);
    event_config_free(ec);
    return b != NULL ? b : event_base_new();
}

/* The root key: a key file, or a passphrase through scrypt. */
static CL_MUST_USE cl_status kms_root_key_open(kms_server *s)
{
    const kms_config *cfg = &s->cfg;
    char path[KMS_PATH_MAX + 16];
    if (cfg->passphrase_file[0] == '\0' && cfg->passphrase_env[0] == '\0') {
        if (cfg->root_key_file[0] != '\0')
            (void)snprintf(path, sizeof(path), "%s", cfg->root_key_file);
        else
            (void)snprintf(path, sizeof(path), "%s/root.key", cfg->data_dir);
        return kms_root_key_load(path, &s->ctx.root);
    }
    cl_buf pass;
    cl_buf_init_secret(&pass, KMS_PASSPHRASE_MAX + 2);
    (void)snprintf(path, sizeof(path), "%s/root.kdf", cfg->data_dir);
    cl_status rc = kms_passphrase_read(cfg, &pass);
    if (rc == CL_OK) rc = kms_root_key_derive(pass.data, pass.len, path, cfg->scrypt_log2_n, &s->ctx.root);
    cl_buf_free(&pass);
    return rc;
}

/*
 * One server per data directory: a second one would extend the audit chain from its own idea
 * of the last line, and the log would no longer verify (docs/security.md, finding 13). The lock is an
 * flock on DATA/kms.lock, released by the kernel however the process ends; the file holds the
 * holder's pid for the message a second server prints.
 */
static CL_MUST_USE cl_status kms_data_dir_lock(kms_server *s)
{
    char path[KMS_PATH_MAX + 16];
    (void)snprintf(path, sizeof(path), "%s/kms.lock", s->cfg.data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        close(fd);
        if (err != EWOULDBLOCK) {
            errno = err;
            CL_FAIL_ERRNO(CL_ERR_IO, "cannot lock %s", path);
        }
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        CL_FAIL(CL_ERR_STATE,
                "data directory %s is in use by another cloister-kms (pid %s, lock %s): two servers on one data "
                "directory would break its audit chain; stop the other one, or give this one its own --data / "
                "data_dir",
                s->cfg.data_dir, pid[0] ? pid : "unknown", path);
    }
    char pid[24];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        cl_status rc = CL_RAISE_ERRNO(CL_ERR_IO, "cannot write %s", path);
        close(fd);
        return rc;
    }
    s->lock_fd = fd;
    return CL_OK;
}

/*
 * Every connection is a descriptor: make the soft RLIMIT_NOFILE (often 1024) room for
 * max_connections plus what the server holds otherwise. Where the hard limit does not allow
 * it, fewer connections are accepted, and the message says how to raise it.
 */
static void kms_fit_fd_limit(kms_server *s)
{
    int want = s->cfg.max_connections > 0 ? s->cfg.max_connections : KMS_MAX_CONNECTIONS_DEFAULT;
    rlim_t need = (rlim_t)want + KMS_FD_RESERVE + (rlim_t)s->n_workers * 4;
    struct rlimit rl;
    s->max_connections = want;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        struct rlimit nl = rl;
        nl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0) rl = nl;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t room = rl.rlim_cur > need - (rlim_t)want ? rl.rlim_cur - (need - (rlim_t)want) : 0;
        s->max_connections = room < 16 ? 16 : (int)room;
        CL_LOG_WARN("RLIMIT_NOFILE allows %llu descriptors, not the %llu that max_connections %d needs: accepting at "
                    "most %d connections; raise the limit (ulimit -Hn, LimitNOFILE=) or lower max_connections",
                    (unsigned long long)rl.rlim_cur, (unsigned long long)need, want, s->max_connections);
    }
}

/* A worker's event loop, its HTTP server and the accounting of its connections. */
static CL_MUST_USE cl_status kms_worker_init(kms_server *s, kms_worker *w)
{
    const kms_config *cfg = &s->cfg;
    w->srv = s;
    w->replies_tail = &w->replies;
    atomic_init(&w->stop, false);
    CL_GUARD(kms_metrics_init(&w->metrics));
    w->cap = ((size_t)s->max_connections + (size_t)s->n_workers - 1) / (size_t)s->n_workers;
    w->n_slots = w->cap + KMS_ACCEPT_BATCH;
    size_t index = 4;
    while (index < 2 * w->n_slots) index *= 2;
    w->by_evcon_mask = index - 1;
    w->conns = calloc(w->n_slots, sizeof(*w->conns));
    w->free_slots = calloc(w->n_slots, sizeof(*w->free_slots));
    w->pending_slots = calloc(w->n_slots, sizeof(*w->pending_slots));
    w->by_evcon = calloc(index, sizeof(*w->by_evcon));
    CL_ENSURE(w->conns != NULL && w->free_slots != NULL && w->pending_slots != NULL && w->by_evcon != NULL,
              CL_ERR_NOMEM, "out of memory for %zu connections", w->n_slots);
    for (size_t i = 0; i < w->n_slots; i++) w->free_slots[i] = w->n_slots - 1 - i;
    w->n_free = w->n_slots;
    w->base = kms_worker_base();
    w->http = w->base ? evhttp_new(w->base) : NULL;
    CL_ENSURE(w->http != NULL, CL_ERR_NOMEM, "cannot create an HTTP server");
    w->adopt_ev = event_new(w->base, -1, 0, kms_conn_adopt, w);
    w->deadline_ev = evtimer_new(w->base, kms_conn_deadline, w);
    w->backoff_ev = evtimer_new(w->base, kms_accept_resume, w);
    w->commit_ev = event_new(w->base, -1, 0, kms_commit_wake, w);
    w->rewrap_ev = event_new(w->base, -1, 0, kms_conn_rewrap, w);
    w->rewrap = calloc(w->n_slots, sizeof(*w->rewrap));
    CL_ENSURE(w->rewrap_ev != NULL && w->rewrap != NULL, CL_ERR_NOMEM, "out of memory for a worker's events");
    w->signing_keys = cl_secure_alloc(KMS_SIGNING_KEYS * sizeof(*w->signing_keys));
    CL_ENSURE(w->signing_keys != NULL, CL_ERR_NOMEM, "out of locked memory for a worker's SigV4 signing keys");
    memset(w->signing_keys, 0, KMS_SIGNING_KEYS * sizeof(*w->signing_keys));
    CL_ENSURE(w->adopt_ev != NULL && w->deadline_ev != NULL && w->backoff_ev != NULL && w->commit_ev != NULL,
              CL_ERR_NOMEM, "out of memory for a worker's events");
    /* Bodies over the limit get 413 from evhttp before we see them. A request whose header block
     * carries a valid S3 signature gets s3_max_body instead (kms_conn_peek). */
    evhttp_set_max_body_size(w->http, (ev_ssize_t)cfg->max_body);
    evhttp_set_max_headers_size(w->http, 16384);
    /* Between bytes, and for writing an answer; the whole request has its own deadline. */
    evhttp_set_timeout(w->http, cfg->request_timeout > 60 ? cfg->request_timeout : 60);
    /* PUT: cas_http.h and S3; HEAD, DELETE: S3. */
    evhttp_set_allowed_methods(w->http,
                               EVHTTP_REQ_POST | EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(w->http, kms_handle, w);
    evhttp_set_bevcb(w->http, kms_conn_bev, w);
    /* Our own listener on the shared socket, so that its accept errors are ours to handle;
     * it does not close the socket when freed (the other workers share it). */
    w->listener = evconnlistener_new(w->base, NULL, NULL, LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE, 0, s->listen_fd);
    CL_ENSURE(w->listener != NULL, CL_ERR_IO, "cannot accept on the socket");
    evconnlistener_set_error_cb(w->listener, kms_accept_error);
    if (evhttp_bind_listener(w->http, w->listener) == NULL) {
        evconnlistener_free(w->listener);
        w->listener = NULL;
        CL_FAIL(CL_ERR_NOMEM, "cannot accept on the socket");
    }
    return CL_OK;
}

void kms_wipe_library_heaps(void)
{
    (void)event_set_mem_functions(malloc, cl_realloc_wiped, cl_free_wiped);
    json_set_alloc_funcs(malloc, cl_free_wiped);
}

cl_status kms_server_start(const kms_config *cfg, kms_server **out)
{
    cl_status rc = CL_OK;
    kms_server *s = calloc(1, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    s->cfg = *cfg;
    s->listen_fd = -1;
    s->lock_fd = -1;
    s->ctx.cfg = &s->cfg;
    if (s->cfg.request_timeout <= 0) s->cfg.request_timeout = KMS_REQUEST_TIMEOUT_DEFAULT;
    if (s->cfg.s3_max_body == 0) s->cfg.s3_max_body = KMS_S3_MAX_BODY_DEFAULT;
    if (s->cfg.s3_domain[0] == '\0')
        (void)snprintf(s->cfg.s3_domain, sizeof(s->cfg.s3_domain), "%s", KMS_S3_DOMAIN_DEFAULT);
    s->n_workers = cfg->threads > 0 ? cfg->threads : 2;
    s->start_time = (int64_t)time(NULL);
    atomic_init(&s->store_ok, true); /* it opened: the first probe says more */
    atomic_init(&s->store_checked_ms, kms_now_ms());
    atomic_flag_clear(&s->store_probing);
    atomic_init(&s->audit_failing, false);
    char path[KMS_PATH_MAX + 16];
    CL_GUARD_GOTO(kms_data_dir_lock(s));
    CL_GUARD_CTX_GOTO(kms_root_key_open(s), "loading the root key");
    if (cfg->tls_cert[0] != '\0') CL_GUARD_GOTO(kms_tls_setup(s));
    if (cfg->store_conninfo[0] != '\0') {
        /* One connection per worker: each runs one request at a time. */
        CL_GUARD_GOTO(kms_store_open_pg(cfg->store_conninfo, (size_t)s->n_workers, cfg->region, &s->ctx.store));
    } else {
        if (cfg->store_path[0] != '\0')
            (void)snprintf(path, sizeof(path), "%s", cfg->store_path);
        else
            (void)snprintf(path, sizeof(path), "%s/keys.db", cfg->data_dir);
        CL_GUARD_GOTO(kms_store_open_sqlite(path, cfg->region, &s->ctx.store));
    }
    CL_GUARD_CTX_GOTO(kms_identity_seed(&s->ctx, s->start_time),
                      "seeding the configuration's principals into the store");
    CL_GUARD_GOTO(kms_cache_new(4096, &s->ctx.cache));
    CL_GUARD_GOTO(kms_key_cache_new(4096, &s->ctx.records));
    CL_GUARD_GOTO(kms_last_use_new((size_t)s->n_workers, s->start_time, &s->ctx.usage));
    if (cfg->audit_path[0] != '\0')
        (void)snprintf(path, sizeof(path), "%s", cfg->audit_path);
    else
        (void)snprintf(path, sizeof(path), "%s/audit.log", cfg->data_dir);
    CL_GUARD_GOTO(cl_audit_open(path, &s->ctx.audit));
    CL_GUARD_GOTO(kms_committer_start(s->ctx.audit, &s->committer));
    kms_fit_fd_limit(s);
    CL_GUARD_GOTO(kms_listen(s));
    /* After listening: the default training.endpoint is the bound address. */
    CL_GUARD_CTX_GOTO(kms_training_start(&s->ctx, &s->cfg, s->listen_text, s->tls != NULL, &s->ctx.training),
                      "starting the training jobs' supervisor");
    CL_ENSURE_GOTO(evthread_use_pthreads() == 0, CL_ERR_INTERNAL, "libevent has no pthreads support");
    s->workers = calloc((size_t)s->n_workers, sizeof(*s->workers));
    s->shards = calloc((size_t)s->n_workers, sizeof(kms_metrics *));
    CL_ENSURE_GOTO(s->workers != NULL && s->shards != NULL, CL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < s->n_workers; i++) {
        s->workers[i].index = i;
        CL_GUARD_GOTO(kms_worker_init(s, &s->workers[i]));
        s->shards[i] = &s->workers[i].metrics;
    }
    for (int i = 0; i < s->n_workers; i++) {
        CL_ENSURE_GOTO(pthread_create(&s->workers[i].thread, NULL, kms_worker_main, &s->workers[i]) == 0,
                       CL_ERR_INTERNAL, "cannot start a worker thread");
        s->workers[i].started = true;
    }
    *out = s;
out:
    if (rc != CL_OK) kms_server_free(s);
    return rc;
}

static void kms_on_signal(evutil_socket_t sig, short ev, void *arg)
{
    (void)sig;
    (void)ev;
    event_base_loopbreak(arg);
}

cl_status kms_server_run(kms_server *s)
{
    /* No colon in what follows the address: scripts read the port after the last one. */
    char regions[KMS_REGIONS_MAX * (KMS_REGION_MAX + 1) + 32] = "every AWS region";
    for (size_t i = 0, used = 0; i < s->cfg.n_regions && used < sizeof(regions); i++) {
        int n = snprintf(regions + used, sizeof(regions) - used, "%s%s", i ? " " : "regions ", s->cfg.regions[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    printf("cloister-kms listening on %s://%s (version %s, %s, default region %s, %d worker threads)\n",
           s->tls ? "https" : "http", s->listen_text, CLOISTER_VERSION, regions, s->cfg.region, s->n_workers);
    fflush(stdout);
    struct event_base *base = event_base_new();
    CL_ENSURE(base != NULL, CL_ERR_NOMEM, "out of memory");
    struct event *si = evsignal_new(base, SIGINT, kms_on_signal, base);
    struct event *st = evsignal_new(base, SIGTERM, kms_on_signal, base);
    if (si) event_add(si, NULL);
    if (st) event_add(st, NULL);
    event_base_dispatch(base);
    CL_LOG_INFO("stopping");
    if (si) event_free(si);
    if (st) event_free(st);
    event_base_free(base);
    return CL_OK;
}

void kms_server_free(kms_server *s)
{
    if (s == NULL) return;
    for (int i = 0; s->workers != NULL && i < s->n_workers; i++) {
        if (s->workers[i].started) {
            /* The flag, then loopexit to wake the loop: an event, so it also stops a loop
             * that has not started dispatching yet. */
            atomic_store(&s->workers[i].stop, true);
            event_base_loopexit(s->workers[i].base, NULL);
            pthread_join(s->workers[i].thread, NULL);
        }
    }
    /* After the workers (they synced what they had left) and before their events are freed:
     * the committer may still activate one. */
    kms_committer_stop(s->committer);
    /* No request can reach the supervisor now; its runners are killed (their jobs fail at the next
     * start). */
    kms_training_free(s->ctx.training);
    s->ctx.training = NULL;
    for (int i = 0; s->workers != NULL && i < s->n_workers; i++) {
        kms_worker *w = &s->workers[i];
        if (w->http) evhttp_free(w->http); /* closes the connections (kms_conn_closed) */
        if (w->adopt_ev) event_free(w->adopt_ev);
        if (w->deadline_ev) event_free(w->deadline_ev);
        if (w->backoff_ev) event_free(w->backoff_ev);
        if (w->commit_ev) event_free(w->commit_ev);
        if (w->rewrap_ev) event_free(w->rewrap_ev);
        free(w->rewrap);
        if (w->signing_keys) cl_memzero(w->signing_keys, KMS_SIGNING_KEYS * sizeof(*w->signing_keys));
        cl_secure_free(w->signing_keys);
        /* Adopted or not, drop the references taken at accept. */
        for (size_t j = 0; w->conns != NULL && j < w->n_pending_slots; j++)
            bufferevent_decref(w->conns[w->pending_slots[j]].bev);
        if (w->base) event_base_free(w->base);
        free(w->conns);
        free(w->free_slots);
        free(w->pending_slots);
        free(w->by_evcon);
        kms_metrics_free(&w->metrics);
    }
    free(s->workers);
    free(s->shards);
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the data directory */
    cl_audit_close(s->ctx.audit);
    kms_store_close(s->ctx.store);
    kms_cache_free(s->ctx.cache);
    kms_key_cache_free(s->ctx.records);
    kms_last_use_free(s->ctx.usage);
    kms_root_key_free(&s->ctx.root);
    SSL_CTX_free(s->tls);
    cl_memzero(s->cfg.store_conninfo, sizeof(s->cfg.store_conninfo)); /* may hold a password */
    free(s);
}
