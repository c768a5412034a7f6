/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-infer: the worker inside the enclave image (docs/worker.md, issue 6 items 1 and 2,
 * envelope path). At start it reads its configuration from the image, makes an ephemeral
 * recipient key, has the model owner's KMS release the model's data key to its attestation
 * document (Recipient), unseals the model into a secret buffer and loads it. Then it serves
 * the host channel, one connection after another: one request frame (a sealed patient
 * record) in, one frame out (the classifier's result sealed under a fresh data key of the
 * record's KMS key, or one line saying what failed). A bad request never stops it.
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cloister/attestation.h"
#include "cloister/envelope.h"
#include "cloister/frame.h"
#include "cloister/infer.h"
#include "cloister/kms_client.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"
#include "cloister/recipient.h"

#define WORKER_CONFIG_DEFAULT "/files/worker.json"
#define WORKER_CONFIG_MAX ((size_t)64 << 10)
#define WORKER_MODEL_MAX ((size_t)256 << 20)
#define WORKER_MODEL_BYTES ((size_t)128 << 20)
/* A sealed record: the classifier's input bound plus the envelope's header and chunk tags. */
#define WORKER_REQUEST_MAX (CL_INFER_CLASSIFIER_MAX_INPUT + ((size_t)80 << 10))
#define WORKER_RESULT_MAX ((size_t)64 << 10)
#define WORKER_KMS_ATTEMPTS 4 /* the client backs off between them (kms_client.h) */

typedef struct worker_config {
    json_t *root;
    const char *model;
    const char *kms_endpoint;
    const char *region;
    const char *access_key_id;
    const char *secret_access_key;
    uint32_t kms_vsock_port;
    /* The data owner's KMS (the records' keys); absent: the model owner's. */
    const char *data_kms_endpoint;
    const char *data_access_key_id;
    const char *data_secret_access_key;
    uint32_t data_kms_vsock_port;
    uint32_t listen_port;
    long max_requests; /* 0: serve until killed */
} worker_config;

typedef struct worker {
    worker_config cfg;
    int nsm;
    cl_recipient rcpt;
    cl_kms_client *kms;
    cl_kms_client *data_kms; /* NULL: kms */
    cl_infer_model *model;
    cl_infer_classifier *cls;
} worker;

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

static cl_status worker_config_uint(json_t *root, const char *name, long lo, long hi, long *out)
{
    json_t *v = json_object_get(root, name);
    CL_ENSURE(v != NULL, CL_ERR_FORMAT, "configuration: \"%s\" is missing", name);
    CL_ENSURE(json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi, CL_ERR_FORMAT,
              "configuration: \"%s\" must be an integer from %ld to %ld", name, lo, hi);
    *out = (long)json_integer_value(v);
    return CL_OK;
}

static cl_status worker_config_load(const char *path, worker_config *c)
{
    cl_status rc = CL_OK;
    cl_buf raw;
    cl_buf_init_secret(&raw, WORKER_CONFIG_MAX); /* it may hold the KMS secret key */
    json_error_t jerr;
    long port = 0;
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&raw, path), "reading the configuration");
    c->root = json_loadb((const char *)raw.data, raw.len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE_GOTO(c->root != NULL && json_is_object(c->root), CL_ERR_FORMAT,
                   "configuration %s is not a JSON object (line %d: %s)", path, jerr.line, jerr.text);
    CL_GUARD_GOTO(worker_config_string(c->root, "model", true, &c->model));
    CL_GUARD_GOTO(worker_config_string(c->root, "kms_endpoint", true, &c->kms_endpoint));
    CL_GUARD_GOTO(worker_config_string(c->root, "region", false, &c->region));
    CL_GUARD_GOTO(worker_config_string(c->root, "access_key_id", true, &c->access_key_id));
    CL_GUARD_GOTO(worker_config_string(c->root, "secret_access_key", true, &c->secret_access_key));
    CL_GUARD_GOTO(worker_config_uint(c->root, "kms_vsock_port", 1, 0xFFFFFFFFL, &port));
    c->kms_vsock_port = (uint32_t)port;
    CL_GUARD_GOTO(worker_config_string(c->root, "data_kms_endpoint", false, &c->data_kms_endpoint));
    if (c->data_kms_endpoint != NULL) {
        CL_GUARD_GOTO(worker_config_uint(c->root, "data_kms_vsock_port", 1, 0xFFFFFFFFL, &port));
        c->data_kms_vsock_port = (uint32_t)port;
        CL_GUARD_GOTO(worker_config_string(c->root, "data_access_key_id", false, &c->data_access_key_id));
        CL_GUARD_GOTO(worker_config_string(c->root, "data_secret_access_key", false, &c->data_secret_access_key));
        if (c->data_access_key_id == NULL) c->data_access_key_id = c->access_key_id;
        if (c->data_secret_access_key == NULL) c->data_secret_access_key = c->secret_access_key;
    }
    CL_GUARD_GOTO(worker_config_uint(c->root, "listen_port", 1, 0xFFFFFFFFL, &port));
    c->listen_port = (uint32_t)port;
    if (json_object_get(c->root, "max_requests") != NULL)
        CL_GUARD_GOTO(worker_config_uint(c->root, "max_requests", 0, 1000000000L, &c->max_requests));
    if (c->region == NULL) c->region = "us-east-1";
out:
    cl_buf_free(&raw);
    return rc;
}

/* A fresh document for each KMS exchange, so that KMS sees a recent timestamp. */
static cl_status worker_provider(worker *w, cl_kms_client *kms, const char *key_id, cl_key_provider **out)
{
    cl_status rc = CL_OK;
    cl_buf doc;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    CL_GUARD_CTX_GOTO(cl_recipient_attest(&w->rcpt, w->nsm, NULL, 0, &doc), "getting an attestation document");
    CL_GUARD_GOTO(cl_kms_recipient_provider_open(kms, &w->rcpt, doc.data, doc.len, key_id, out));
out:
    cl_buf_free(&doc);
    return rc;
}

static cl_status worker_start(worker *w, const char *config_path)
{
    cl_status rc = CL_OK;
    cl_key_provider *kp = NULL;
    cl_buf sealed, model;
    cl_buf_init(&sealed, WORKER_MODEL_MAX);
    cl_buf_init_secret(&model, WORKER_MODEL_MAX);
    CL_GUARD_CTX_GOTO(worker_config_load(config_path, &w->cfg), "configuration %s", config_path);
    CL_GUARD_CTX_GOTO(cl_nsm_open(&w->nsm), "opening the attestation device");
    CL_GUARD_CTX_GOTO(cl_recipient_generate(&w->rcpt), "making the recipient key");
    cl_kms_client_config kc = {.endpoint = w->cfg.kms_endpoint,
                               .region = w->cfg.region,
                               .access_key_id = w->cfg.access_key_id,
                               .secret_access_key = w->cfg.secret_access_key,
                               .max_attempts = WORKER_KMS_ATTEMPTS,
                               .vsock_port = w->cfg.kms_vsock_port};
    CL_GUARD_CTX_GOTO(cl_kms_client_new(&kc, &w->kms), "the model owner's KMS");
    if (w->cfg.data_kms_endpoint != NULL) {
        cl_kms_client_config dc = {.endpoint = w->cfg.data_kms_endpoint,
                                   .region = w->cfg.region,
                                   .access_key_id = w->cfg.data_access_key_id,
                                   .secret_access_key = w->cfg.data_secret_access_key,
                                   .max_attempts = WORKER_KMS_ATTEMPTS,
                                   .vsock_port = w->cfg.data_kms_vsock_port};
        CL_GUARD_CTX_GOTO(cl_kms_client_new(&dc, &w->data_kms), "the data owner's KMS");
    }
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&sealed, w->cfg.model), "reading the sealed model");
    CL_GUARD_GOTO(worker_provider(w, w->kms, NULL, &kp));
    CL_GUARD_CTX_GOTO(cl_envelope_unseal_mem(kp, NULL, sealed.data, sealed.len, &model), "unsealing the model %s",
                      w->cfg.model);
    cl_infer_options opts = {.max_bytes = WORKER_MODEL_BYTES, .threads = 1, .backend = CL_INFER_BACKEND_REFERENCE};
    CL_GUARD_CTX_GOTO(cl_infer_model_load(model.data, model.len, &opts, &w->model), "loading the model %s",
                      w->cfg.model);
    CL_GUARD_CTX_GOTO(cl_infer_classifier_from_model(w->model, &w->cls), "model %s", w->cfg.model);
out:
    cl_key_provider_destroy(kp);
    cl_buf_free(&sealed);
    cl_buf_free(&model); /* the plaintext model: wiped */
    return rc;
}

/* The record format: JSON when the first non-blank byte opens an object or array, else CSV. */
static cl_infer_record_format worker_record_format(const cl_buf *pt)
{
    for (size_t i = 0; i < pt->len; i++) {
        uint8_t c = pt->data[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        return c == '{' || c == '[' ? CL_INFER_RECORD_JSON : CL_INFER_RECORD_CSV;
    }
    return CL_INFER_RECORD_CSV;
}

/* The key the record was sealed under: the result is sealed under a fresh data key of it. */
static cl_status worker_request_key(const cl_buf *req, char *key_id, size_t size)
{
    uint32_t hlen = 0;
    cl_envelope_header h;
    memset(&h, 0, sizeof(h));
    CL_GUARD_CTX(cl_envelope_header_length(req->data, req->len, &hlen), "the request is not a sealed envelope");
    CL_ENSURE(hlen <= req->len, CL_ERR_FORMAT, "the request's envelope header is truncated");
    CL_GUARD_CTX(cl_envelope_header_parse(req->data, hlen, &h), "the request's envelope header");
    cl_status rc = CL_OK;
    if (h.provider_len != 3 || memcmp(h.provider, "kms", 3) != 0 || h.key_id_len >= size) {
        cl_error_set(CL_ERR_KEY, __FILE__, __LINE__,
                     "the request must be sealed with a KMS key (cloister seal --key alias/...)");
        rc = CL_ERR_KEY;
    } else {
        memcpy(key_id, h.key_id, h.key_id_len);
        key_id[h.key_id_len] = '\0';
    }
    cl_envelope_header_free(&h);
    return rc;
}

static cl_status worker_handle(worker *w, const cl_buf *req, cl_buf *result)
{
    cl_status rc = CL_OK;
    char key_id[CL_KEY_ID_MAX + 1];
    cl_key_provider *kp = NULL;
    cl_buf pt, res;
    cl_buf_init_secret(&pt, CL_INFER_CLASSIFIER_MAX_INPUT);
    cl_buf_init_secret(&res, WORKER_RESULT_MAX);
    CL_GUARD_GOTO(worker_request_key(req, key_id, sizeof(key_id)));
    CL_GUARD_GOTO(worker_provider(w, w->data_kms != NULL ? w->data_kms : w->kms, key_id, &kp));
    CL_GUARD_CTX_GOTO(cl_envelope_unseal_mem(kp, NULL, req->data, req->len, &pt), "unsealing the request");
    /* From here on the messages could quote the record, and the answer crosses the host in
     * plaintext: say only which step refused it. */
    if (cl_infer_classifier_run(w->model, w->cls, worker_record_format(&pt), pt.data, pt.len, &res) != CL_OK) {
        cl_error_clear();
        CL_FAIL_GOTO(CL_ERR_FORMAT, "the decrypted request is not a record this classifier reads "
                                    "(one patient's measurements as JSON or CSV; details are not sent in the clear)");
    }
    CL_GUARD_CTX_GOTO(cl_envelope_seal_mem(kp, NULL, res.data, res.len, result), "sealing the result under %s", key_id);
out:
    cl_key_provider_destroy(kp);
    cl_buf_free(&pt);
    cl_buf_free(&res);
    return rc;
}

/* One connection: one request frame, one answer frame. */
static void worker_serve_one(worker *w, int fd, long n)
{
    cl_buf req, result;
    cl_buf_init(&req, WORKER_REQUEST_MAX);
    cl_buf_init(&result, WORKER_REQUEST_MAX);
    uint8_t type = 0;
    cl_status rc = cl_frame_read(fd, WORKER_REQUEST_MAX, &type, &req);
    if (rc == CL_OK && type != CL_FRAME_REQUEST) {
        cl_error_set(CL_ERR_FORMAT, __FILE__, __LINE__, "expected a request frame (type 1), not type %u", type);
        rc = CL_ERR_FORMAT;
    }
    if (rc == CL_OK) rc = worker_handle(w, &req, &result);
    if (rc == CL_OK) {
        rc = cl_frame_write(fd, CL_FRAME_RESULT, result.data, result.len);
        printf("cloister-infer: request %ld: %s\n", n, rc == CL_OK ? "served" : cl_error_message());
    } else {
        char line[1024];
        int m = snprintf(line, sizeof(line), "%s", cl_error_message());
        if (m < 0) m = 0;
        if ((size_t)m >= sizeof(line)) m = (int)sizeof(line) - 1;
        for (int i = 0; i < m; i++)
            if ((unsigned char)line[i] < 0x20) line[i] = ' ';
        printf("cloister-infer: request %ld refused: %s\n", n, line);
        if (cl_frame_write(fd, CL_FRAME_ERROR, (const uint8_t *)line, (size_t)m) != CL_OK)
            printf("cloister-infer: request %ld: could not send the error: %s\n", n, cl_error_message());
    }
    (void)fflush(stdout);
    cl_buf_free(&req);
    cl_buf_free(&result);
}

int main(int argc, char **argv)
{
    (void)signal(SIGPIPE, SIG_IGN);
    cl_log_init("cloister-infer");
    const char *config_path = argc > 1 ? argv[1] : WORKER_CONFIG_DEFAULT;
    worker w;
    memset(&w, 0, sizeof(w));
    w.nsm = -1;
    cl_recipient_init(&w.rcpt);
    int listener = -1, ec = 0;
    if (worker_start(&w, config_path) != CL_OK) {
        printf("cloister-infer: cannot start: %s\n", cl_error_message());
        ec = 1;
        goto out;
    }
    if (cl_vsock_listen(cl_vsock_ctl(), w.cfg.listen_port, &listener) != CL_OK) {
        printf("cloister-infer: cannot listen on vsock port %u: %s\n", w.cfg.listen_port, cl_error_message());
        ec = 1;
        goto out;
    }
    printf("cloister-infer: model %s loaded; serving on vsock port %u\n", w.cfg.model, w.cfg.listen_port);
    (void)fflush(stdout);
    for (long n = 1; w.cfg.max_requests == 0 || n <= w.cfg.max_requests; n++) {
        int fd = -1;
        if (cl_vsock_accept(listener, &fd) != CL_OK) {
            printf("cloister-infer: accept: %s\n", cl_error_message());
            ec = 1;
            break;
        }
        worker_serve_one(&w, fd, n);
        (void)close(fd);
    }
out:
    (void)fflush(stdout);
    if (listener >= 0) (void)close(listener);
    cl_infer_classifier_free(w.cls);
    cl_infer_model_free(w.model);
    cl_kms_client_free(w.data_kms);
    cl_kms_client_free(w.kms);
    cl_recipient_free(&w.rcpt);
    if (w.nsm >= 0) (void)close(w.nsm);
    json_decref(w.cfg.root); /* holds the KMS secret key: jansson frees it without wiping */
    return ec;
}
