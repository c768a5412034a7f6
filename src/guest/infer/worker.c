/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-infer: the worker inside the enclave image (docs/worker.md, issue 6 items 1 and 2).
 * At start it reads its configuration from the image, makes an ephemeral recipient key, has
 * the model owner's KMS release the model's data key to its attestation document
 * (Recipient), unseals the model into a secret buffer and loads it. Then it serves two ports
 * with a small fixed pool of threads:
 *  - the envelope path (listen_port): one request frame (request id || a sealed record) in,
 *    one frame out: the result sealed under a fresh data key of the record's KMS key, bound
 *    to the request by its encryption context, or one line saying what failed. A stop frame
 *    on this port makes the worker finish what it is serving and exit 0.
 *  - the channel path (channel_port): RA-TLS (cloister/ratls.h), a fresh attestation document
 *    for the client's nonce per connection; inside TLS 1.3, plaintext request frames in and
 *    result frames out, as many as the client sends.
 * A bad request never stops it; a stalled client is dropped after read_timeout seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cloister/attestation.h"
#include "cloister/envelope.h"
#include "cloister/frame.h"
#include "cloister/infer.h"
#include "cloister/infer_client.h"
#include "cloister/kms_client.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"
#include "cloister/ratls.h"
#include "cloister/recipient.h"

#define WORKER_CONFIG_DEFAULT "/files/worker.json"
#define WORKER_CONFIG_MAX ((size_t)64 << 10)
#define WORKER_MODEL_MAX ((size_t)256 << 20)
/* What the loaded model may hold at once (weights, oneDNN's copies, the arena), in MiB,
 * unless the image's model_memory_mib says otherwise: the 256x256 U-Net needs 175 MiB with
 * Winograd, 88 without (docs/inference.md). */
#define WORKER_MODEL_MIB_DEFAULT 1024
/* One input in plaintext: a patient record (under 1 KiB) or an image slice (a 512 x 512
 * 16-bit RGB PNG is at most ~1.5 MiB). */
#define WORKER_INPUT_MAX ((size_t)8 << 20)
/* A sealed input: the plaintext bound plus the envelope's header and chunk tags. */
#define WORKER_SEALED_MAX (WORKER_INPUT_MAX + ((size_t)80 << 10))
#define WORKER_REQUEST_MAX (CL_FRAME_REQUEST_ID_LEN + WORKER_SEALED_MAX)
/* A result: the classifier's JSON, or a segmentation summary with its mask PNG in base64. */
#define WORKER_RESULT_MAX ((size_t)4 << 20)
#define WORKER_KMS_ATTEMPTS 4 /* the client backs off between them (kms_client.h) */
#define WORKER_REPLAY_SLOTS 4096
#define WORKER_SHA384_LEN 48
#define WORKER_MAX_THREADS 64
#define WORKER_QUEUE_MAX 64
#define WORKER_STACK ((size_t)8 << 20) /* per serving thread, counted in the enclave's RLIMIT_AS */

typedef struct worker_config {
    json_t *root;
    const char *model;
    const char *kms_endpoint;
    const char *region;
    const char *access_key_id;
    const char *secret_access_key;
    uint32_t kms_vsock_port;
    const char *kms_ca_file; /* in the image: who may certify an https:// KMS endpoint */
    /* The data owner's KMS (the records' keys); absent: the model owner's. */
    const char *data_kms_endpoint;
    const char *data_access_key_id;
    const char *data_secret_access_key;
    uint32_t data_kms_vsock_port;
    const char *data_kms_ca_file;
    uint32_t listen_port;
    uint32_t channel_port;     /* 0: no channel path */
    long max_requests;         /* 0: serve until stopped */
    long max_connections;      /* threads serving connections, both ports */
    long threads;              /* inference threads; 0: all cores the enclave has */
    bool direct_conv;          /* no Winograd: half the U-Net's memory, 1.4x its time */
    long model_memory_mib;     /* the model's memory cap */
    long read_timeout;         /* seconds a client may stay silent */
    long start_attempts;       /* tries to unseal the model while the KMS is unreachable */
    long start_failure_report; /* seconds to answer connections with the reason a start failed */
} worker_config;

/* SHA-384 of recently served sealed inputs, oldest overwritten first. Per worker start. */
typedef struct worker_replay {
    pthread_mutex_t mu;
    uint8_t digest[WORKER_REPLAY_SLOTS][WORKER_SHA384_LEN];
    size_t count, next;
} worker_replay;

typedef struct worker_job {
    int fd;
    bool channel;
} worker_job;

typedef struct worker {
    worker_config cfg;
    int nsm;
    pthread_mutex_t nsm_mu; /* the device answers one request at a time */
    cl_recipient rcpt;
    cl_infer_service *svc; /* the model; one inference at a time (it holds a run's intermediates) */
    bool have_channel;
    cl_ratls_server ratls;
    worker_replay replay;
    /* The connection queue between the accepting thread and the pool. */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    worker_job queue[WORKER_QUEUE_MAX];
    size_t q_head, q_len;
    bool q_closed;
    atomic_bool stopping;
    int wake[2]; /* a stop frame wakes the accepting thread */
    atomic_long served;
} worker;

/* Per pool thread: KMS clients are not shared (one curl handle each). */
typedef struct worker_thread {
    worker *w;
    pthread_t tid;
    cl_kms_client *kms;
    cl_kms_client *data_kms; /* NULL: kms */
} worker_thread;

static cl_status worker_config_string(json_t *root, const char *name, bool required, const char **out)
{
    json_t *v = json_object_get(root, name);
    *out = NULL;
    if (v == NULL && !required) return CL_OK;
    CL_ENSURE(v != NULL, CL_ERR_FORMAT, "configuration: \"%s\" is missing", name);
    CL_ENSURE(json_is_string(v), CL_ERR_FORMAT, "configuration: \"%s\" must be a string", name);
    *out = json_string_value(v);
    return CL_OK;
}

/* An integer field; absent and not required: *out keeps its default. */
static cl_status worker_config_uint(json_t *root, const char *name, bool required, long lo, long hi, long *out)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL && !required) return CL_OK;
    CL_ENSURE(v != NULL, CL_ERR_FORMAT, "configuration: \"%s\" is missing", name);
    CL_ENSURE(json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi, CL_ERR_FORMAT,
              "configuration: \"%s\" must be an integer from %ld to %ld", name, lo, hi);
    *out = (long)json_integer_value(v);
    return CL_OK;
}

/* A boolean field; absent: *out keeps its default. */
static cl_status worker_config_bool(json_t *root, const char *name, bool *out)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) return CL_OK;
    CL_ENSURE(json_is_boolean(v), CL_ERR_FORMAT, "configuration: \"%s\" must be true or false", name);
    *out = json_is_true(v);
    return CL_OK;
}

static cl_status worker_config_load(const char *path, worker_config *c)
{
    cl_status rc = CL_OK;
    cl_buf raw;
    cl_buf_init_secret(&raw, WORKER_CONFIG_MAX); /* it may hold the KMS secret key */
    json_error_t jerr;
    long port = 0;
    c->max_connections = 4;
    c->read_timeout = 30;
    c->start_attempts = 3;
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&raw, path), "reading the configuration");
    c->root = json_loadb((const char *)raw.data, raw.len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE_GOTO(c->root != NULL && json_is_object(c->root), CL_ERR_FORMAT,
                   "configuration %s is not a JSON object (line %d: %s)", path, jerr.line, jerr.text);
    CL_GUARD_GOTO(worker_config_string(c->root, "model", true, &c->model));
    CL_GUARD_GOTO(worker_config_string(c->root, "kms_endpoint", true, &c->kms_endpoint));
    CL_GUARD_GOTO(worker_config_string(c->root, "region", false, &c->region));
    CL_GUARD_GOTO(worker_config_string(c->root, "access_key_id", true, &c->access_key_id));
    CL_GUARD_GOTO(worker_config_string(c->root, "secret_access_key", true, &c->secret_access_key));
    CL_GUARD_GOTO(worker_config_uint(c->root, "kms_vsock_port", true, 1, 0xFFFFFFFFL, &port));
    c->kms_vsock_port = (uint32_t)port;
    CL_GUARD_GOTO(worker_config_string(c->root, "kms_ca_file", false, &c->kms_ca_file));
    CL_GUARD_GOTO(worker_config_string(c->root, "data_kms_endpoint", false, &c->data_kms_endpoint));
    if (c->data_kms_endpoint != NULL) {
        CL_GUARD_GOTO(worker_config_uint(c->root, "data_kms_vsock_port", true, 1, 0xFFFFFFFFL, &port));
        c->data_kms_vsock_port = (uint32_t)port;
        CL_GUARD_GOTO(worker_config_string(c->root, "data_access_key_id", false, &c->data_access_key_id));
        CL_GUARD_GOTO(worker_config_string(c->root, "data_secret_access_key", false, &c->data_secret_access_key));
        CL_GUARD_GOTO(worker_config_string(c->root, "data_kms_ca_file", false, &c->data_kms_ca_file));
        if (c->data_kms_ca_file == NULL) c->data_kms_ca_file = c->kms_ca_file;
        if (c->data_access_key_id == NULL) c->data_access_key_id = c->access_key_id;
        if (c->data_secret_access_key == NULL) c->data_secret_access_key = c->secret_access_key;
    }
    CL_GUARD_GOTO(worker_config_uint(c->root, "listen_port", true, 1, 0xFFFFFFFFL, &port));
    c->listen_port = (uint32_t)port;
    port = 0;
    CL_GUARD_GOTO(worker_config_uint(c->root, "channel_port", false, 1, 0xFFFFFFFFL, &port));
    c->channel_port = (uint32_t)port;
    CL_ENSURE_GOTO(c->channel_port != c->listen_port, CL_ERR_FORMAT,
                   "configuration: \"channel_port\" must differ from \"listen_port\"");
    CL_GUARD_GOTO(worker_config_uint(c->root, "max_requests", false, 0, 1000000000L, &c->max_requests));
    CL_GUARD_GOTO(worker_config_uint(c->root, "max_connections", false, 1, WORKER_MAX_THREADS, &c->max_connections));
    CL_GUARD_GOTO(worker_config_uint(c->root, "threads", false, 0, 1024, &c->threads));
    CL_GUARD_GOTO(worker_config_bool(c->root, "direct_conv", &c->direct_conv));
    c->model_memory_mib = WORKER_MODEL_MIB_DEFAULT;
    CL_GUARD_GOTO(worker_config_uint(c->root, "model_memory_mib", false, 16, 65536, &c->model_memory_mib));
    CL_GUARD_GOTO(worker_config_uint(c->root, "read_timeout", false, 1, 3600, &c->read_timeout));
    CL_GUARD_GOTO(worker_config_uint(c->root, "start_attempts", false, 1, 10, &c->start_attempts));
    CL_GUARD_GOTO(worker_config_uint(c->root, "start_failure_report", false, 0, 3600, &c->start_failure_report));
    if (c->region == NULL) c->region = "us-east-1";
out:
    cl_buf_free(&raw);
    return rc;
}

static cl_status worker_kms_clients(const worker_config *cfg, cl_kms_client **kms, cl_kms_client **data_kms)
{
    cl_kms_client_config kc = {.endpoint = cfg->kms_endpoint,
                               .region = cfg->region,
                               .access_key_id = cfg->access_key_id,
                               .secret_access_key = cfg->secret_access_key,
                               .max_attempts = WORKER_KMS_ATTEMPTS,
                               .vsock_port = cfg->kms_vsock_port,
                               .ca_file = cfg->kms_ca_file};
    CL_GUARD_CTX(cl_kms_client_new(&kc, kms), "the model owner's KMS");
    if (cfg->data_kms_endpoint != NULL) {
        cl_kms_client_config dc = {.endpoint = cfg->data_kms_endpoint,
                                   .region = cfg->region,
                                   .access_key_id = cfg->data_access_key_id,
                                   .secret_access_key = cfg->data_secret_access_key,
                                   .max_attempts = WORKER_KMS_ATTEMPTS,
                                   .vsock_port = cfg->data_kms_vsock_port,
                                   .ca_file = cfg->data_kms_ca_file};
        CL_GUARD_CTX(cl_kms_client_new(&dc, data_kms), "the data owner's KMS");
    }
    return CL_OK;
}

/* A fresh document for each KMS exchange, so that KMS sees a recent timestamp. */
static cl_status worker_provider(worker *w, cl_kms_client *kms, const char *key_id, cl_key_provider **out)
{
    cl_status rc = CL_OK;
    cl_buf doc;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    (void)pthread_mutex_lock(&w->nsm_mu);
    rc = cl_recipient_attest(&w->rcpt, w->nsm, NULL, 0, &doc);
    (void)pthread_mutex_unlock(&w->nsm_mu);
    CL_GUARD_CTX_GOTO(rc, "getting an attestation document");
    CL_GUARD_GOTO(cl_kms_recipient_provider_open(kms, &w->rcpt, doc.data, doc.len, key_id, out));
out:
    cl_buf_free(&doc);
    return rc;
}

/* RA-TLS documents come from the same device as the KMS ones: one request at a time. */
static cl_status worker_ratls_attest(void *arg, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
                                     size_t nonce_len, cl_buf *doc)
{
    worker *w = arg;
    (void)pthread_mutex_lock(&w->nsm_mu);
    cl_status rc = cl_ratls_attest_nsm(&w->nsm, user_data, user_data_len, nonce, nonce_len, doc);
    (void)pthread_mutex_unlock(&w->nsm_mu);
    return rc;
}

/* Unseals the model, retrying with backoff (1 s, 2 s, 4 s, ...) while the KMS cannot be
 * reached; a refusal (access denied, a corrupt model) is final. */
static cl_status worker_unseal_model(worker *w, cl_kms_client *kms, const cl_buf *sealed, cl_buf *model)
{
    cl_status rc = CL_OK;
    for (long attempt = 1;; attempt++) {
        cl_key_provider *kp = NULL;
        rc = worker_provider(w, kms, NULL, &kp);
        if (rc == CL_OK) rc = cl_envelope_unseal_mem(kp, NULL, sealed->data, sealed->len, model);
        cl_key_provider_destroy(kp);
        if (rc != CL_ERR_IO || attempt >= w->cfg.start_attempts) break;
        unsigned delay = 1U << (attempt - 1);
        printf("cloister-infer: the model owner's KMS is unreachable (%s); retrying in %u s\n", cl_error_message(),
               delay);
        (void)fflush(stdout);
        cl_buf_truncate(model, 0);
        struct timespec ts = {.tv_sec = delay, .tv_nsec = 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (rc != CL_OK) (void)cl_error_wrap("unsealing the model %s", w->cfg.model);
    return rc;
}

static cl_status worker_start(worker *w, const char *config_path)
{
    cl_status rc = CL_OK;
    cl_kms_client *kms = NULL, *data_kms = NULL;
    cl_buf sealed, model;
    cl_buf_init(&sealed, WORKER_MODEL_MAX);
    cl_buf_init_secret(&model, WORKER_MODEL_MAX);
    CL_GUARD_CTX_GOTO(worker_config_load(config_path, &w->cfg), "configuration %s", config_path);
    CL_GUARD_CTX_GOTO(cl_nsm_open(&w->nsm), "opening the attestation device");
    CL_GUARD_CTX_GOTO(cl_recipient_generate(&w->rcpt), "making the recipient key");
    /* Made once here so that a bad configuration stops the start, not every request. */
    CL_GUARD_GOTO(worker_kms_clients(&w->cfg, &kms, &data_kms));
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&sealed, w->cfg.model), "reading the sealed model");
    CL_GUARD_GOTO(worker_unseal_model(w, kms, &sealed, &model));
    /* oneDNN with an OpenMP pool when this build has it (docs/worker.md, "oneDNN in the
     * enclave"); the reference kernels otherwise. */
    cl_infer_options opts = {.max_bytes = (size_t)w->cfg.model_memory_mib << 20,
                             .threads = (int)w->cfg.threads,
                             .direct_conv = w->cfg.direct_conv,
                             .backend =
                                 cl_infer_onednn_available() ? CL_INFER_BACKEND_ONEDNN : CL_INFER_BACKEND_REFERENCE};
    CL_GUARD_CTX_GOTO(cl_infer_service_open(model.data, model.len, &opts, &w->svc), "loading the model %s",
                      w->cfg.model);
    if (w->cfg.channel_port != 0) {
        CL_GUARD_CTX_GOTO(cl_ratls_server_init(&w->ratls, worker_ratls_attest, w), "making the RA-TLS key");
        w->have_channel = true;
    }
out:
    cl_kms_client_free(kms);
    cl_kms_client_free(data_kms);
    cl_buf_free(&sealed);
    cl_buf_free(&model); /* the plaintext model: wiped */
    return rc;
}

/*
 * One decrypted input through the model, whatever path it came by (cl_infer_service_run
 * reads it as the model's kind says). From here on messages could quote the input, and the
 * envelope path's error frames cross the host in plaintext: say only which step refused it.
 */
static cl_status worker_infer(worker *w, const uint8_t *in, size_t n, cl_buf *result)
{
    cl_status st = cl_infer_service_run(w->svc, in, n, result);
    if (st != CL_OK) {
        cl_error_clear();
        /* Not the input's fault: saying so tells the host nothing the request's size does not. */
        if (st == CL_ERR_LIMIT || st == CL_ERR_NOMEM)
            CL_FAIL(st,
                    "the model ran out of memory on this request (its cap is %ld MiB: the image's model_memory_mib)",
                    w->cfg.model_memory_mib);
        if (st == CL_ERR_INTERNAL) CL_FAIL(st, "the model failed on this request (an internal error)");
        if (cl_infer_service_kind(w->svc) == CL_INFER_KIND_SEGMENTER)
            CL_FAIL(CL_ERR_FORMAT, "the decrypted request is not an image this model reads "
                                   "(a PNG slice; details are not sent in the clear)");
        CL_FAIL(CL_ERR_FORMAT, "the decrypted request is not a record this classifier reads "
                               "(one patient's measurements as JSON or CSV; details are not sent in the clear)");
    }
    return CL_OK;
}

/* The key the record was sealed under: the result is sealed under a fresh data key of it. */
static cl_status worker_request_key(const uint8_t *sealed, size_t n, char *key_id, size_t size)
{
    cl_status rc = CL_OK;
    uint32_t hlen = 0;
    cl_envelope_header h;
    memset(&h, 0, sizeof(h));
    CL_GUARD_CTX_GOTO(cl_envelope_header_length(sealed, n, &hlen), "the request is not a sealed envelope");
    CL_ENSURE_GOTO(hlen <= n, CL_ERR_FORMAT, "the request's envelope header is truncated");
    CL_GUARD_CTX_GOTO(cl_envelope_header_parse(sealed, hlen, &h), "the request's envelope header");
    CL_ENSURE_GOTO(h.provider_len == 3 && memcmp(h.provider, "kms", 3) == 0 && h.key_id_len < size, CL_ERR_KEY,
                   "the request must be sealed with a KMS key (cloister seal --key alias/...)");
    memcpy(key_id, h.key_id, h.key_id_len);
    key_id[h.key_id_len] = '\0';
out:
    cl_envelope_header_free(&h);
    return rc;
}

static bool worker_replay_seen_locked(const worker_replay *r, const uint8_t d[WORKER_SHA384_LEN])
{
    for (size_t i = 0; i < r->count; i++)
        if (cl_ct_equal(r->digest[i], d, WORKER_SHA384_LEN)) return true;
    return false;
}

/* record false: only asks; record true: remembers d unless it is there already. Either way
 * CL_ERR_DENIED when d was served before. */
static cl_status worker_replay_check(worker_replay *r, const uint8_t d[WORKER_SHA384_LEN], bool record)
{
    (void)pthread_mutex_lock(&r->mu);
    bool seen = worker_replay_seen_locked(r, d);
    if (!seen && record) {
        memcpy(r->digest[r->next], d, WORKER_SHA384_LEN);
        r->next = (r->next + 1) % WORKER_REPLAY_SLOTS;
        if (r->count < WORKER_REPLAY_SLOTS) r->count++;
    }
    (void)pthread_mutex_unlock(&r->mu);
    CL_ENSURE(!seen, CL_ERR_DENIED, CL_INFER_REPLAY_MESSAGE);
    return CL_OK;
}

/* The envelope path: request id || sealed record in, the sealed and bound result out. */
static cl_status worker_handle_envelope(worker_thread *t, const cl_buf *req, cl_buf *result)
{
    worker *w = t->w;
    cl_status rc = CL_OK;
    char key_id[CL_KEY_ID_MAX + 1];
    const uint8_t *id = NULL, *sealed = NULL;
    size_t sealed_len = 0;
    uint8_t digest[WORKER_SHA384_LEN];
    unsigned int dlen = 0;
    cl_key_provider *kp = NULL;
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    cl_buf pt, res;
    cl_buf_init_secret(&pt, WORKER_INPUT_MAX);
    cl_buf_init_secret(&res, WORKER_RESULT_MAX);
    CL_GUARD_GOTO(cl_frame_request_parse(req->data, req->len, &id, &sealed, &sealed_len));
    CL_ENSURE_GOTO(sealed_len <= WORKER_SEALED_MAX, CL_ERR_LIMIT, "a sealed input of %zu bytes is over %zu", sealed_len,
                   WORKER_SEALED_MAX);
    if (EVP_Digest(sealed, sealed_len, digest, &dlen, EVP_sha384(), NULL) != 1 || dlen != sizeof(digest))
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "SHA-384 of the request");
    CL_GUARD_GOTO(worker_replay_check(&w->replay, digest, false));
    CL_GUARD_GOTO(worker_request_key(sealed, sealed_len, key_id, sizeof(key_id)));
    CL_GUARD_GOTO(worker_provider(w, t->data_kms != NULL ? t->data_kms : t->kms, key_id, &kp));
    CL_GUARD_CTX_GOTO(cl_envelope_unseal_mem(kp, NULL, sealed, sealed_len, &pt), "unsealing the request");
    CL_GUARD_GOTO(worker_infer(w, pt.data, pt.len, &res));
    CL_GUARD_GOTO(cl_infer_binding_make(id, sealed, sealed_len, &ctx));
    CL_GUARD_CTX_GOTO(cl_envelope_seal_mem(kp, &ctx, res.data, res.len, result), "sealing the result under %s", key_id);
    /* Remembered only once served: a request that failed (KMS down) may be sent again. */
    CL_GUARD_GOTO(worker_replay_check(&w->replay, digest, true));
out:
    if (rc != CL_OK) cl_buf_truncate(result, 0);
    cl_key_provider_destroy(kp);
    cl_kvlist_free(&ctx);
    cl_buf_free(&pt);
    cl_buf_free(&res);
    return rc;
}

/* Sends the thread's last error as an error frame: one line, control bytes blanked. */
static void worker_send_error(const cl_frame_io *io, const char *what, long n)
{
    char line[1024];
    int m = snprintf(line, sizeof(line), "%s", cl_error_message());
    if (m < 0) m = 0;
    if ((size_t)m >= sizeof(line)) m = (int)sizeof(line) - 1;
    for (int i = 0; i < m; i++)
        if ((unsigned char)line[i] < 0x20) line[i] = ' ';
    printf("cloister-infer: %s request %ld refused: %s\n", what, n, line);
    if (cl_frame_write_io(io, CL_FRAME_ERROR, (const uint8_t *)line, (size_t)m) != CL_OK)
        printf("cloister-infer: %s request %ld: could not send the error: %s\n", what, n, cl_error_message());
}

static void worker_request_stop(worker *w)
{
    atomic_store(&w->stopping, true);
    const uint8_t one = 1;
    (void)!write(w->wake[1], &one, 1);
}

/* An envelope-port connection: one request frame and one answer, or a stop frame. */
static void worker_serve_envelope(worker_thread *t, int fd)
{
    worker *w = t->w;
    cl_frame_io io = cl_frame_io_fd(&fd);
    cl_buf req, result;
    cl_buf_init(&req, WORKER_REQUEST_MAX);
    cl_buf_init(&result, WORKER_REQUEST_MAX);
    uint8_t type = 0;
    long n = atomic_fetch_add(&w->served, 1) + 1;
    cl_status rc = cl_frame_read_io(&io, WORKER_REQUEST_MAX, &type, &req);
    if (rc == CL_OK && type == CL_FRAME_STOP) {
        /* From the host channel: the host can kill the enclave anyway (docs/worker.md). */
        printf("cloister-infer: stop requested; finishing the requests in flight\n");
        worker_request_stop(w);
        goto out;
    }
    if (rc == CL_OK && type != CL_FRAME_REQUEST) {
        CL_RAISE(CL_ERR_FORMAT, "expected a request frame (type 1), not type %u", type);
        rc = CL_ERR_FORMAT;
    }
    if (rc == CL_OK) rc = worker_handle_envelope(t, &req, &result);
    if (rc == CL_OK) {
        rc = cl_frame_write_io(&io, CL_FRAME_RESULT, result.data, result.len);
        printf("cloister-infer: envelope request %ld: %s\n", n, rc == CL_OK ? "served" : cl_error_message());
    } else {
        worker_send_error(&io, "envelope", n);
    }
out:
    (void)fflush(stdout);
    cl_buf_free(&req);
    cl_buf_free(&result);
}

/* A channel-port connection: the RA-TLS handshake, then request frames until the client
 * closes. Inputs and results are plaintext inside TLS, in secret buffers. */
static void worker_serve_channel(worker_thread *t, int fd)
{
    worker *w = t->w;
    cl_ratls_conn conn;
    memset(&conn, 0, sizeof(conn));
    long n = atomic_fetch_add(&w->served, 1) + 1;
    cl_buf in, res;
    cl_buf_init_secret(&in, WORKER_INPUT_MAX);
    cl_buf_init_secret(&res, WORKER_RESULT_MAX);
    if (cl_ratls_server_accept(&w->ratls, fd, &conn) != CL_OK) {
        printf("cloister-infer: channel connection %ld: handshake failed: %s\n", n, cl_error_message());
        goto out;
    }
    cl_frame_io io = cl_frame_io_tls(&conn);
    for (long k = 1; !atomic_load(&w->stopping); k++) {
        uint8_t type = 0;
        cl_buf_truncate(&in, 0);
        cl_buf_truncate(&res, 0);
        cl_status rc = cl_frame_read_io(&io, WORKER_INPUT_MAX, &type, &in);
        if (rc == CL_ERR_NOT_FOUND) break; /* the client is done */
        if (rc != CL_OK) {
            printf("cloister-infer: channel connection %ld: %s\n", n, cl_error_message());
            break;
        }
        if (type != CL_FRAME_REQUEST) {
            CL_RAISE(CL_ERR_FORMAT, "expected a request frame (type 1), not type %u", type);
            worker_send_error(&io, "channel", n);
            continue;
        }
        if (worker_infer(w, in.data, in.len, &res) != CL_OK) {
            worker_send_error(&io, "channel", n);
            continue;
        }
        rc = cl_frame_write_io(&io, CL_FRAME_RESULT, res.data, res.len);
        printf("cloister-infer: channel connection %ld request %ld: %s\n", n, k,
               rc == CL_OK ? "served" : cl_error_message());
        if (rc != CL_OK) break;
    }
    cl_ratls_conn_close(&conn);
out:
    (void)fflush(stdout);
    cl_buf_free(&in);
    cl_buf_free(&res);
}

/* A stalled client may not pin a thread: reads and writes give up after read_timeout. */
static void worker_set_timeouts(int fd, long seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        printf("cloister-infer: cannot set the connection's timeout: %s\n", strerror(errno));
}

static void *worker_pool_main(void *arg)
{
    worker_thread *t = arg;
    worker *w = t->w;
    for (;;) {
        (void)pthread_mutex_lock(&w->q_mu);
        while (w->q_len == 0 && !w->q_closed) (void)pthread_cond_wait(&w->q_cv, &w->q_mu);
        if (w->q_len == 0) { /* closed and drained */
            (void)pthread_mutex_unlock(&w->q_mu);
            break;
        }
        worker_job job = w->queue[w->q_head];
        w->q_head = (w->q_head + 1) % WORKER_QUEUE_MAX;
        w->q_len--;
        (void)pthread_cond_broadcast(&w->q_cv);
        (void)pthread_mutex_unlock(&w->q_mu);
        worker_set_timeouts(job.fd, w->cfg.read_timeout);
        if (job.channel)
            worker_serve_channel(t, job.fd);
        else
            worker_serve_envelope(t, job.fd);
        (void)close(job.fd);
        cl_error_clear();
    }
    return NULL;
}

static void worker_enqueue(worker *w, int fd, bool channel)
{
    (void)pthread_mutex_lock(&w->q_mu);
    while (w->q_len == WORKER_QUEUE_MAX) (void)pthread_cond_wait(&w->q_cv, &w->q_mu);
    w->queue[(w->q_head + w->q_len) % WORKER_QUEUE_MAX] = (worker_job){.fd = fd, .channel = channel};
    w->q_len++;
    (void)pthread_cond_broadcast(&w->q_cv);
    (void)pthread_mutex_unlock(&w->q_mu);
}

/* Accepts on both ports and hands connections to the pool until stopped; 0 or 1. */
static int worker_accept_loop(worker *w, int listener, int channel_listener)
{
    int ec = 0;
    long accepted = 0;
    while (!atomic_load(&w->stopping)) {
        struct pollfd pf[3] = {{.fd = w->wake[0], .events = POLLIN},
                               {.fd = listener, .events = POLLIN},
                               {.fd = channel_listener, .events = POLLIN}};
        int r = poll(pf, channel_listener >= 0 ? 3 : 2, -1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            printf("cloister-infer: poll: %s\n", strerror(errno));
            ec = 1;
            break;
        }
        if (pf[0].revents != 0) continue; /* stopping */
        for (int i = 1; i < 3; i++) {
            if (pf[i].fd < 0 || pf[i].revents == 0) continue;
            int fd = -1;
            if (cl_vsock_accept(pf[i].fd, &fd) != CL_OK) {
                printf("cloister-infer: accept: %s\n", cl_error_message());
                ec = 1;
                atomic_store(&w->stopping, true);
                break;
            }
            worker_enqueue(w, fd, i == 2);
            if (w->cfg.max_requests > 0 && ++accepted >= w->cfg.max_requests) {
                atomic_store(&w->stopping, true);
                break;
            }
        }
    }
    return ec;
}

/*
 * A start that failed after the configuration was read: for start_failure_report seconds the
 * envelope port answers every connection with an error frame carrying the reason (what the
 * console shows only for --debug enclaves), until then or a stop frame. The reason names KMS
 * keys, endpoints and refusals, never the configuration's secrets: a configuration that does
 * not parse is never reported here (its listen_port is not known).
 */
static void worker_report_start_failure(worker *w, const char *reason)
{
    int listener = -1;
    if (w->cfg.listen_port == 0 || w->cfg.start_failure_report == 0) return;
    char line[1024]; /* copied first: reason is the thread's last error, which later calls replace */
    int m = snprintf(line, sizeof(line), "the worker could not start: %s", reason);
    if (m < 0) m = 0;
    if ((size_t)m >= sizeof(line)) m = (int)sizeof(line) - 1;
    for (int i = 0; i < m; i++)
        if ((unsigned char)line[i] < 0x20) line[i] = ' ';
    if (cl_vsock_listen(cl_vsock_ctl(), w->cfg.listen_port, &listener) != CL_OK) return;
    printf("cloister-infer: reporting the failed start on vsock port %u for %ld s\n", w->cfg.listen_port,
           w->cfg.start_failure_report);
    (void)fflush(stdout);
    struct timespec start;
    (void)clock_gettime(CLOCK_MONOTONIC, &start);
    for (bool stop = false; !stop;) {
        struct timespec now;
        (void)clock_gettime(CLOCK_MONOTONIC, &now);
        long left_ms = w->cfg.start_failure_report * 1000 -
                       ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        struct pollfd pf = {.fd = listener, .events = POLLIN};
        if (left_ms <= 0 || poll(&pf, 1, (int)left_ms) <= 0) break;
        int fd = -1;
        if (cl_vsock_accept(listener, &fd) != CL_OK) break;
        worker_set_timeouts(fd, 5);
        cl_buf req;
        cl_buf_init(&req, WORKER_REQUEST_MAX);
        uint8_t type = 0;
        if (cl_frame_read(fd, WORKER_REQUEST_MAX, &type, &req) == CL_OK && type == CL_FRAME_STOP)
            stop = true;
        else if (cl_frame_write(fd, CL_FRAME_ERROR, (const uint8_t *)line, (size_t)m) != CL_OK)
            printf("cloister-infer: could not report the failed start: %s\n", cl_error_message());
        cl_buf_free(&req);
        (void)close(fd);
    }
    (void)close(listener);
    cl_error_clear();
}

int main(int argc, char **argv)
{
    (void)signal(SIGPIPE, SIG_IGN);
    cl_log_init("cloister-infer");
    const char *config_path = argc > 1 ? argv[1] : WORKER_CONFIG_DEFAULT;
    static worker w; /* the replay memory is large: not on the stack */
    w.nsm = -1;
    w.wake[0] = w.wake[1] = -1;
    (void)pthread_mutex_init(&w.nsm_mu, NULL);
    (void)pthread_mutex_init(&w.replay.mu, NULL);
    (void)pthread_mutex_init(&w.q_mu, NULL);
    (void)pthread_cond_init(&w.q_cv, NULL);
    cl_recipient_init(&w.rcpt);
    worker_thread threads[WORKER_MAX_THREADS];
    memset(threads, 0, sizeof(threads));
    long started = 0;
    int listener = -1, channel_listener = -1, ec = 0;
    if (worker_start(&w, config_path) != CL_OK) {
        printf("cloister-infer: cannot start: %s\n", cl_error_message());
        (void)fflush(stdout);
        worker_report_start_failure(&w, cl_error_message());
        ec = 1;
        goto out;
    }
    if (pipe2(w.wake, O_CLOEXEC) != 0) {
        printf("cloister-infer: cannot start: pipe: %s\n", strerror(errno));
        ec = 1;
        goto out;
    }
    if (cl_vsock_listen(cl_vsock_ctl(), w.cfg.listen_port, &listener) != CL_OK ||
        (w.have_channel && cl_vsock_listen(cl_vsock_ctl(), w.cfg.channel_port, &channel_listener) != CL_OK)) {
        printf("cloister-infer: cannot listen on vsock ports %u and %u: %s\n", w.cfg.listen_port, w.cfg.channel_port,
               cl_error_message());
        ec = 1;
        goto out;
    }
    pthread_attr_t attr;
    (void)pthread_attr_init(&attr);
    (void)pthread_attr_setstacksize(&attr, WORKER_STACK);
    for (; started < w.cfg.max_connections; started++) {
        worker_thread *t = &threads[started];
        t->w = &w;
        if (worker_kms_clients(&w.cfg, &t->kms, &t->data_kms) != CL_OK ||
            pthread_create(&t->tid, &attr, worker_pool_main, t) != 0) {
            printf("cloister-infer: cannot start: serving thread %ld: %s\n", started + 1, cl_error_message());
            ec = 1;
            break;
        }
    }
    (void)pthread_attr_destroy(&attr);
    if (ec == 0) {
        /* A host relaying plain HTTP could answer GenerateDataKey with a key of its own,
         * encrypted to the public key it saw in the document (docs/threat-model.md). */
        if (strncmp(w.cfg.kms_endpoint, "http:", 5) == 0 ||
            (w.cfg.data_kms_endpoint != NULL && strncmp(w.cfg.data_kms_endpoint, "http:", 5) == 0))
            printf("cloister-infer: warning: a KMS endpoint is plain http://: the host can substitute the KMS's "
                   "answers; use https:// with kms_ca_file outside tests\n");
        printf("cloister-infer: %s model %s loaded; serving on vsock port %u (envelope)",
               cl_infer_kind_name(cl_infer_service_kind(w.svc)), w.cfg.model, w.cfg.listen_port);
        if (w.have_channel) printf(" and %u (channel)", w.cfg.channel_port);
        printf(", %ld connections at a time; %s kernels, ", w.cfg.max_connections,
               cl_infer_onednn_available() ? "oneDNN" : "reference");
        if (w.cfg.threads > 0)
            printf("%ld threads\n", w.cfg.threads);
        else
            printf("all cores\n");
        (void)fflush(stdout);
        ec = worker_accept_loop(&w, listener, channel_listener);
    }
    /* Stop: no new connections; the pool serves what it holds, then exits. */
    (void)pthread_mutex_lock(&w.q_mu);
    w.q_closed = true;
    (void)pthread_cond_broadcast(&w.q_cv);
    (void)pthread_mutex_unlock(&w.q_mu);
    for (long i = 0; i < started; i++) (void)pthread_join(threads[i].tid, NULL);
    if (ec == 0) printf("cloister-infer: stopped after %ld connections\n", atomic_load(&w.served));
out:
    (void)fflush(stdout);
    for (long i = 0; i < WORKER_MAX_THREADS; i++) {
        cl_kms_client_free(threads[i].kms);
        cl_kms_client_free(threads[i].data_kms);
    }
    if (listener >= 0) (void)close(listener);
    if (channel_listener >= 0) (void)close(channel_listener);
    if (w.wake[0] >= 0) (void)close(w.wake[0]);
    if (w.wake[1] >= 0) (void)close(w.wake[1]);
    if (w.have_channel) cl_ratls_server_free(&w.ratls);
    cl_infer_service_free(w.svc);
    cl_recipient_free(&w.rcpt);
    if (w.nsm >= 0) (void)close(w.nsm);
    json_decref(w.cfg.root); /* holds the KMS secret key: jansson frees it without wiping */
    return ec;
}
