/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-infer: the worker inside the enclave image (docs/worker.md).
 * At start it reads its configuration from the image, makes an ephemeral recipient key, has
 * the model owner's KMS release the model's data key to its attestation document
 * (Recipient), unseals the model into a secret buffer and loads it. Then it accepts on two
 * vsock ports and hands the connections to the serving core (serve.c, cloister/worker.h):
 *  - the envelope path (listen_port): a sealed record in, the result sealed under a fresh data
 *    key of the record's KMS key out, whose provider this file makes (a fresh attestation
 *    document for each KMS exchange); a stop frame stops the worker;
 *  - the channel path (channel_port): RA-TLS (cloister/ratls.h), a fresh attestation document
 *    for the client's nonce per connection, then the core's frame loop inside TLS 1.3;
 *  - with "cas", the same frames over ordinary TLS (tls_port) with a certificate the certificate
 *    service issues to this enclave's measurement (cloister/cas.h, docs/cas.md), renewed in the
 *    background: clients trust the session's CA instead of checking attestation themselves.
 */
#include "cloister/worker.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloister/attestation.h"
#include "cloister/cas.h"
#include "cloister/envelope.h"
#include "cloister/frame.h"
#include "cloister/infer.h"
#include "cloister/kms_client.h"
#include "cloister/log.h"
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
#define WORKER_KMS_ATTEMPTS 4          /* the client backs off between them (kms_client.h) */
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
    /* "cas": the certificate service (docs/cas.md) and the TLS port it certifies; absent: none. */
    const char *cas_endpoint;
    const char *cas_ca_file;
    const char *cas_session;
    const char *cas_service;
    cl_key_type cas_key_type;
    uint32_t cas_vsock_port;
    long cas_renew_after; /* seconds; 0: at 2/3 of the certificate's lifetime */
    uint32_t tls_port;
} worker_config;

typedef struct worker {
    worker_config cfg;
    int nsm;
    pthread_mutex_t nsm_mu; /* the device answers one request at a time */
    cl_recipient rcpt;
    cl_infer_service *svc;
    bool have_channel;
    cl_ratls_server ratls;
    cl_cas_identity *cas; /* the TLS port's certificate and key, renewed in the background */
    cl_worker core;       /* the pool and the paths (serve.c) */
} worker;

/* Per pool thread (cl_worker_thread.ctx): KMS clients are not shared (one kept-alive connection each). */
typedef struct worker_kms {
    cl_kms_client *kms;
    cl_kms_client *data_kms; /* NULL: kms */
} worker_kms;

static CL_MUST_USE cl_status worker_config_string(json_t *root, const char *name, bool required, const char **out)
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
static CL_MUST_USE cl_status worker_config_uint(json_t *root, const char *name, bool required, long lo, long hi,
                                                long *out)
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
static CL_MUST_USE cl_status worker_config_bool(json_t *root, const char *name, bool *out)
{
    json_t *v = json_object_get(root, name);
    if (v == NULL) return CL_OK;
    CL_ENSURE(json_is_boolean(v), CL_ERR_FORMAT, "configuration: \"%s\" must be true or false", name);
    *out = json_is_true(v);
    return CL_OK;
}

static CL_MUST_USE cl_status worker_config_cas(worker_config *c);

static CL_MUST_USE cl_status worker_config_load(const char *path, worker_config *c)
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
    CL_GUARD_GOTO(worker_config_uint(c->root, "max_connections", false, 1, CL_WORKER_MAX_THREADS, &c->max_connections));
    CL_GUARD_GOTO(worker_config_uint(c->root, "threads", false, 0, 1024, &c->threads));
    CL_GUARD_GOTO(worker_config_bool(c->root, "direct_conv", &c->direct_conv));
    c->model_memory_mib = WORKER_MODEL_MIB_DEFAULT;
    CL_GUARD_GOTO(worker_config_uint(c->root, "model_memory_mib", false, 16, 65536, &c->model_memory_mib));
    CL_GUARD_GOTO(worker_config_uint(c->root, "read_timeout", false, 1, 3600, &c->read_timeout));
    CL_GUARD_GOTO(worker_config_uint(c->root, "start_attempts", false, 1, 10, &c->start_attempts));
    CL_GUARD_GOTO(worker_config_uint(c->root, "start_failure_report", false, 0, 3600, &c->start_failure_report));
    if (c->region == NULL) c->region = "us-east-1";
    CL_GUARD_GOTO(worker_config_cas(c));
out:
    cl_buf_free(&raw);
    return rc;
}

/* "cas": {"endpoint", "vsock_port", "ca_file", "session", "service", "key_type", "renew_after"}
 * and "tls_port", which go together. */
static CL_MUST_USE cl_status worker_config_cas(worker_config *c)
{
    json_t *cas = json_object_get(c->root, "cas");
    long port = 0;
    CL_GUARD(worker_config_uint(c->root, "tls_port", false, 1, 0xFFFFFFFFL, &port));
    c->tls_port = (uint32_t)port;
    if (cas == NULL) {
        CL_ENSURE(c->tls_port == 0, CL_ERR_FORMAT,
                  "configuration: \"tls_port\" needs \"cas\", the certificate service that certifies it");
        return CL_OK;
    }
    CL_ENSURE(json_is_object(cas), CL_ERR_FORMAT, "configuration: \"cas\" must be an object");
    static const char *const known[] = {"endpoint", "vsock_port", "ca_file",    "session",
                                        "service",  "key_type",   "renew_after"};
    const char *k;
    json_t *v;
    json_object_foreach(cas, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]) && !ok; i++) ok = strcmp(k, known[i]) == 0;
        CL_ENSURE(ok, CL_ERR_FORMAT, "configuration: \"cas\" has an unknown member \"%.64s\"", k);
    }
    CL_ENSURE(c->tls_port != 0, CL_ERR_FORMAT, "configuration: \"cas\" needs \"tls_port\", the port it certifies");
    CL_ENSURE(c->tls_port != c->listen_port && c->tls_port != c->channel_port, CL_ERR_FORMAT,
              "configuration: \"tls_port\" must differ from \"listen_port\" and \"channel_port\"");
    const char *kt = NULL;
    CL_GUARD_CTX(worker_config_string(cas, "endpoint", true, &c->cas_endpoint), "cas");
    CL_GUARD_CTX(worker_config_string(cas, "ca_file", false, &c->cas_ca_file), "cas");
    CL_GUARD_CTX(worker_config_string(cas, "session", true, &c->cas_session), "cas");
    CL_GUARD_CTX(worker_config_string(cas, "service", true, &c->cas_service), "cas");
    CL_GUARD_CTX(worker_config_string(cas, "key_type", false, &kt), "cas");
    c->cas_key_type = CL_KEY_EC_P256;
    CL_ENSURE(kt == NULL || cl_key_type_parse(kt, &c->cas_key_type), CL_ERR_FORMAT,
              "configuration: cas.key_type must be EC_P256, EC_P384, RSA_2048 or RSA_3072");
    port = 0;
    CL_GUARD_CTX(worker_config_uint(cas, "vsock_port", true, 1, 0xFFFFFFFFL, &port), "cas");
    c->cas_vsock_port = (uint32_t)port;
    CL_GUARD_CTX(worker_config_uint(cas, "renew_after", false, 1, 86400L * 365, &c->cas_renew_after), "cas");
    return CL_OK;
}

static CL_MUST_USE cl_status worker_kms_clients(const worker_config *cfg, cl_kms_client **kms, cl_kms_client **data_kms)
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
static CL_MUST_USE cl_status worker_provider(worker *w, cl_kms_client *kms, const char *key_id, cl_key_provider **out)
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

/* The core's provider hook: the thread's own KMS client for the records' keys. */
static CL_MUST_USE cl_status worker_hook_provider(cl_worker_thread *t, const char *key_id, cl_key_provider **out)
{
    const worker_kms *k = t->ctx;
    return worker_provider(t->w->hooks.arg, k->data_kms != NULL ? k->data_kms : k->kms, key_id, out);
}

/* The core's channel hooks: the RA-TLS handshake, then frames inside TLS. */
static CL_MUST_USE cl_status worker_hook_channel_open(cl_worker_thread *t, cl_worker_channel *ch)
{
    worker *w = t->w->hooks.arg;
    CL_GUARD(cl_ratls_server_accept(&w->ratls, ch->fd, &ch->conn));
    ch->io = cl_frame_io_tls(&ch->conn);
    return CL_OK;
}

static void worker_hook_channel_close(cl_worker_channel *ch) { cl_ratls_conn_close(&ch->conn); }

/* The TLS port's handshake: the certificate service's certificate, whichever is current. */
static CL_MUST_USE cl_status worker_hook_tls_open(cl_worker_thread *t, cl_worker_channel *ch)
{
    worker *w = t->w->hooks.arg;
    if (!ch->tls) return worker_hook_channel_open(t, ch);
    CL_GUARD(cl_cas_tls_accept(w->cas, ch->fd, &ch->conn));
    ch->io = cl_frame_io_tls(&ch->conn);
    return CL_OK;
}

/* The certificate service's documents: from the same device, one request at a time. */
static CL_MUST_USE cl_status worker_cas_attest(void *arg, const uint8_t *user_data, size_t user_data_len,
                                               const uint8_t *nonce, size_t nonce_len, const uint8_t *public_key,
                                               size_t public_key_len, cl_buf *doc)
{
    worker *w = arg;
    (void)pthread_mutex_lock(&w->nsm_mu);
    cl_status rc =
        cl_nsm_get_attestation_doc(w->nsm, user_data, user_data_len, nonce, nonce_len, public_key, public_key_len, doc);
    (void)pthread_mutex_unlock(&w->nsm_mu);
    return rc;
}

/* RA-TLS documents come from the same device as the KMS ones: one request at a time. */
static CL_MUST_USE cl_status worker_ratls_attest(void *arg, const uint8_t *user_data, size_t user_data_len,
                                                 const uint8_t *nonce, size_t nonce_len, cl_buf *doc)
{
    worker *w = arg;
    (void)pthread_mutex_lock(&w->nsm_mu);
    cl_status rc = cl_ratls_attest_nsm(&w->nsm, user_data, user_data_len, nonce, nonce_len, doc);
    (void)pthread_mutex_unlock(&w->nsm_mu);
    return rc;
}

/* Unseals the model, retrying with backoff (1 s, 2 s, 4 s, ...) while the KMS cannot be
 * reached; a refusal (access denied, a corrupt model) is final. */
static CL_MUST_USE cl_status worker_unseal_model(worker *w, cl_kms_client *kms, const cl_buf *sealed, cl_buf *model)
{
    cl_status rc = CL_OK;
    for (long attempt = 1;; attempt++) {
        cl_key_provider *kp = NULL;
        rc = worker_provider(w, kms, NULL, &kp);
        if (rc == CL_OK) rc = cl_envelope_unseal_mem(kp, NULL, sealed->data, sealed->len, model);
        cl_key_provider_destroy(kp);
        if (rc != CL_ERR_IO || attempt >= w->cfg.start_attempts) break;
        unsigned delay = 1U << (attempt - 1);
        CL_LOG_WARN("the model owner's KMS is unreachable (%s); retrying in %u s", cl_error_message(), delay);
        cl_buf_truncate(model, 0);
        struct timespec ts = {.tv_sec = delay, .tv_nsec = 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    if (rc != CL_OK) (void)cl_error_wrap("unsealing the model %s", w->cfg.model);
    return rc;
}

static CL_MUST_USE cl_status worker_start(worker *w, const char *config_path)
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
    if (w->cfg.cas_endpoint != NULL) {
        cl_cas_config cc = {.endpoint = w->cfg.cas_endpoint,
                            .ca_file = w->cfg.cas_ca_file,
                            .vsock_port = w->cfg.cas_vsock_port,
                            .session = w->cfg.cas_session,
                            .service = w->cfg.cas_service,
                            .key_type = w->cfg.cas_key_type,
                            .nsm_fd = w->nsm,
                            .attest = worker_cas_attest,
                            .attest_arg = w,
                            .renew_after = w->cfg.cas_renew_after};
        CL_GUARD_CTX_GOTO(cl_cas_obtain(&cc, &w->cas), "the TLS certificate from the certificate service");
        CL_GUARD_GOTO(cl_cas_start_renewal(w->cas));
    }
out:
    cl_kms_client_free(kms);
    cl_kms_client_free(data_kms);
    cl_buf_free(&sealed);
    cl_buf_free(&model); /* the plaintext model: wiped */
    return rc;
}

/* Accepts on both ports and hands connections to the pool until stopped; 0 or 1. */
static int worker_accept_loop(worker *w, int listener, int channel_listener, int tls_listener)
{
    int ec = 0;
    long accepted = 0;
    while (!cl_worker_stopping(&w->core)) {
        struct pollfd pf[4] = {{.fd = cl_worker_wake_fd(&w->core), .events = POLLIN},
                               {.fd = listener, .events = POLLIN},
                               {.fd = channel_listener, .events = POLLIN},
                               {.fd = tls_listener, .events = POLLIN}};
        int r = poll(pf, 4, -1); /* a negative fd is ignored */
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            CL_LOG_ERROR("poll: %s", strerror(errno));
            ec = 1;
            break;
        }
        if (pf[0].revents != 0) continue; /* stopping */
        for (int i = 1; i < 4; i++) {
            if (pf[i].fd < 0 || pf[i].revents == 0) continue;
            int fd = -1;
            if (cl_vsock_accept(pf[i].fd, &fd) != CL_OK) {
                CL_LOG_ERROR("accept: %s", cl_error_message());
                ec = 1;
                atomic_store(&w->core.stopping, true);
                break;
            }
            if (i == 3)
                cl_worker_enqueue_tls(&w->core, fd);
            else
                cl_worker_enqueue(&w->core, fd, i == 2);
            if (w->cfg.max_requests > 0 && ++accepted >= w->cfg.max_requests) {
                atomic_store(&w->core.stopping, true);
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
    CL_LOG_ERROR("reporting the failed start on vsock port %u for %ld s", w->cfg.listen_port,
                 w->cfg.start_failure_report);
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
        cl_worker_set_timeouts(fd, 5);
        cl_buf req;
        cl_buf_init(&req, CL_WORKER_REQUEST_MAX);
        uint8_t type = 0;
        if (cl_frame_read(fd, CL_WORKER_REQUEST_MAX, &type, &req) == CL_OK && type == CL_FRAME_STOP)
            stop = true;
        else if (cl_frame_write(fd, CL_FRAME_ERROR, (const uint8_t *)line, (size_t)m) != CL_OK)
            CL_LOG_ERROR("could not report the failed start: %s", cl_error_message());
        cl_buf_free(&req);
        (void)close(fd);
    }
    (void)close(listener);
    cl_error_clear();
}

int main(int argc, char **argv)
{
    (void)signal(SIGPIPE, SIG_IGN);
    /* The enclave's console is its operator's only view: what it serves and why it
     * stopped are shown unless CLOISTER_LOG says otherwise. */
    cl_log_set_level(CL_LOG_LEVEL_INFO);
    cl_log_init("cloister-infer");
    /* --help and --version for its operator (and help2man's manual page); the launcher
     * starts it with no argument. */
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        fputs("Usage: cloister-infer [CONFIG]\n"
              "\n"
              "The inference worker. It runs inside an enclave, packed into its image with\n"
              "'cloister enclave build --exe cloister-infer --file worker.json ...', and is started by the\n"
              "launcher: it attests, has its model's key released to it by the model owner's KMS, and\n"
              "serves the envelope path (vsock port listen_port) and the RA-TLS channel path\n"
              "(channel_port). CONFIG is its JSON configuration (default " WORKER_CONFIG_DEFAULT "); docs/worker.md\n"
              "describes it. It logs on its console (the enclave's, in debug mode) at info level;\n"
              "CLOISTER_LOG=debug|warn|error changes that.\n",
              stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("cloister-infer %s\n", CLOISTER_VERSION);
        return 0;
    }
    const char *config_path = argc > 1 ? argv[1] : WORKER_CONFIG_DEFAULT;
    static worker w; /* the replay memory is large: not on the stack */
    w.nsm = -1;
    (void)pthread_mutex_init(&w.nsm_mu, NULL);
    cl_recipient_init(&w.rcpt);
    cl_worker_thread threads[CL_WORKER_MAX_THREADS];
    static worker_kms kms[CL_WORKER_MAX_THREADS];
    memset(threads, 0, sizeof(threads));
    long started = 0;
    int listener = -1, channel_listener = -1, tls_listener = -1, ec = 0;
    bool core = false;
    if (cl_worker_init(&w.core) != CL_OK) {
        CL_LOG_ERROR("cannot start: %s", cl_error_message());
        ec = 1;
        goto out;
    }
    core = true;
    if (worker_start(&w, config_path) != CL_OK) {
        CL_LOG_ERROR("cannot start: %s", cl_error_message());
        worker_report_start_failure(&w, cl_error_message());
        ec = 1;
        goto out;
    }
    w.core.svc = w.svc;
    w.core.hooks = (cl_worker_hooks){.provider = worker_hook_provider,
                                     .channel_open = w.cas != NULL    ? worker_hook_tls_open
                                                     : w.have_channel ? worker_hook_channel_open
                                                                      : NULL,
                                     .channel_close = worker_hook_channel_close,
                                     .arg = &w};
    w.core.read_timeout = w.cfg.read_timeout;
    w.core.model_memory_mib = w.cfg.model_memory_mib;
    if (cl_vsock_listen(cl_vsock_ctl(), w.cfg.listen_port, &listener) != CL_OK ||
        (w.have_channel && cl_vsock_listen(cl_vsock_ctl(), w.cfg.channel_port, &channel_listener) != CL_OK) ||
        (w.cas != NULL && cl_vsock_listen(cl_vsock_ctl(), w.cfg.tls_port, &tls_listener) != CL_OK)) {
        CL_LOG_ERROR("cannot listen on vsock ports %u and %u: %s", w.cfg.listen_port, w.cfg.channel_port,
                     cl_error_message());
        ec = 1;
        goto out;
    }
    for (long i = 0; i < w.cfg.max_connections; i++) {
        threads[i].ctx = &kms[i];
        if (worker_kms_clients(&w.cfg, &kms[i].kms, &kms[i].data_kms) != CL_OK) {
            CL_LOG_ERROR("cannot start: serving thread %ld: %s", i + 1, cl_error_message());
            ec = 1;
            goto out;
        }
    }
    if (cl_worker_pool_start(&w.core, threads, w.cfg.max_connections, WORKER_STACK, &started) != CL_OK) {
        CL_LOG_ERROR("cannot start: %s", cl_error_message());
        ec = 1;
    }
    if (ec == 0) {
        /* A host relaying plain HTTP could answer GenerateDataKey with a key of its own,
         * encrypted to the public key it saw in the document (docs/threat-model.md). */
        if (strncmp(w.cfg.kms_endpoint, "http:", 5) == 0 ||
            (w.cfg.data_kms_endpoint != NULL && strncmp(w.cfg.data_kms_endpoint, "http:", 5) == 0))
            CL_LOG_WARN("a KMS endpoint is plain http://: the host can substitute the KMS's "
                        "answers; use https:// with kms_ca_file outside tests");
        char channel[48] = "";
        if (w.have_channel) (void)snprintf(channel, sizeof(channel), " and %u (channel)", w.cfg.channel_port);
        if (w.cas != NULL)
            CL_LOG_INFO("TLS on vsock port %u with the certificate of service %s of session %s (until %lld)",
                        w.cfg.tls_port, w.cfg.cas_service, w.cfg.cas_session, (long long)cl_cas_not_after(w.cas));
        char cores[32] = "all cores";
        if (w.cfg.threads > 0) (void)snprintf(cores, sizeof(cores), "%ld threads", w.cfg.threads);
        CL_LOG_INFO("%s model %s loaded; serving on vsock port %u (envelope)%s, %ld connections at a time; %s kernels, "
                    "%s",
                    cl_infer_kind_name(cl_infer_service_kind(w.svc)), w.cfg.model, w.cfg.listen_port, channel,
                    w.cfg.max_connections, cl_infer_onednn_available() ? "oneDNN" : "reference", cores);
        ec = worker_accept_loop(&w, listener, channel_listener, tls_listener);
    }
    /* Stop: no new connections; the pool serves what it holds, then exits. */
    cl_worker_pool_stop(&w.core, threads, started);
    if (ec == 0) CL_LOG_INFO("stopped after %ld connections", cl_worker_served(&w.core));
out:
    for (long i = 0; i < CL_WORKER_MAX_THREADS; i++) {
        cl_kms_client_free(kms[i].kms);
        cl_kms_client_free(kms[i].data_kms);
    }
    if (listener >= 0) (void)close(listener);
    if (channel_listener >= 0) (void)close(channel_listener);
    if (tls_listener >= 0) (void)close(tls_listener);
    cl_cas_identity_free(w.cas); /* stops its renewal thread */
    if (core) cl_worker_free(&w.core);
    if (w.have_channel) cl_ratls_server_free(&w.ratls);
    cl_infer_service_free(w.svc);
    cl_recipient_free(&w.rcpt);
    if (w.nsm >= 0) (void)close(w.nsm);
    json_decref(w.cfg.root); /* holds the KMS secret key: jansson frees it without wiping */
    return ec;
}
