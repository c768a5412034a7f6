/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/kms_client.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/crypto.h"
#include "cloister/http.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"
#include "cloister/recipient.h"
#include "cloister/sigv4.h"

#define CL_KMS_MAX_RESPONSE ((size_t)1 << 20)
#define CL_KMS_BACKOFF_BASE_MS 100
#define CL_KMS_BACKOFF_CAP_MS 20000

const cl_aws_json_service cl_aws_service_kms = {"KMS", "TrentService", "kms", "kms", "kms"};
const cl_aws_json_service cl_aws_service_sagemaker = {"SageMaker", "SageMaker", "sagemaker", "api.sagemaker",
                                                      "sagemaker"};
const cl_aws_json_service cl_aws_service_logs = {"CloudWatch Logs", "Logs_20140328", "logs", "logs", "cloudwatch_logs"};

struct cl_kms_client {
    const cl_aws_json_service *service;
    cl_http_client *http; /* one connection, kept alive between calls */
    char *endpoint;       /* as configured: named in error messages */
    char *host;           /* the Host header, signed (cl_http_url.authority) */
    char *region;
    char *access_key_id;
    cl_buf secret; /* secret buffer, NUL-terminated */
    char *session_token;
    int max_attempts;
};

static char *cl_dup(const char *s) { return s != NULL ? strdup(s) : NULL; }

void cl_kms_client_free(cl_kms_client *c)
{
    if (c == NULL) return;
    cl_http_client_free(c->http);
    free(c->endpoint);
    free(c->host);
    free(c->region);
    free(c->access_key_id);
    cl_buf_free(&c->secret);
    if (c->session_token) cl_memzero(c->session_token, strlen(c->session_token));
    free(c->session_token);
    free(c);
}

cl_status cl_kms_client_new(const cl_kms_client_config *cfg, cl_kms_client **out)
{
    CL_ENSURE(cfg->region != NULL && cfg->region[0] != '\0', CL_ERR_USAGE,
              "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION");
    CL_ENSURE(cfg->access_key_id != NULL && cfg->secret_access_key != NULL, CL_ERR_USAGE,
              "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    cl_status rc = CL_OK;
    cl_kms_client *c = calloc(1, sizeof(*c));
    CL_ENSURE(c != NULL, CL_ERR_NOMEM, "out of memory");
    cl_buf_init_secret(&c->secret, 4096);
    c->service = cfg->service != NULL ? cfg->service : &cl_aws_service_kms;
    char def[256];
    (void)snprintf(def, sizeof(def), "https://%s.%s.amazonaws.com/", c->service->endpoint_prefix, cfg->region);
    c->endpoint = cl_dup(cfg->endpoint != NULL && cfg->endpoint[0] ? cfg->endpoint : def);
    c->region = cl_dup(cfg->region);
    c->access_key_id = cl_dup(cfg->access_key_id);
    c->session_token = cl_dup(cfg->session_token);
    CL_ENSURE_GOTO(c->endpoint && c->region && c->access_key_id && (cfg->session_token == NULL || c->session_token),
                   CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(cl_buf_append_str(&c->secret, cfg->secret_access_key));
    cl_http_config hc = {.ca_file = cfg->ca_file,
                         .vsock_port = cfg->vsock_port,
                         .timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 30000,
                         .max_body = CL_KMS_MAX_RESPONSE};
    CL_GUARD_CTX_GOTO(cl_http_client_new(c->endpoint, &hc, &c->http), "%s endpoint %s", c->service->name, c->endpoint);
    c->host = strdup(cl_http_client_url(c->http)->authority);
    CL_ENSURE_GOTO(c->host != NULL, CL_ERR_NOMEM, "out of memory");
    c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
    *out = c;
out:
    if (rc != CL_OK) cl_kms_client_free(c);
    return rc;
}

/* The exception name of an AWS JSON error: "__type", possibly
 * "namespace#Name" (awsJson1_1 error shape), or the x-amzn-ErrorType header. */
static CL_MUST_USE cl_status cl_kms_remote_error(int status, const cl_buf *body, char *name, size_t cap)
{
    json_t *j = json_loadb((const char *)body->data, body->len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "__type"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (msg == NULL) msg = json_string_value(json_object_get(j, "Message"));
    if (type != NULL && strchr(type, '#') != NULL) type = strchr(type, '#') + 1;
    (void)snprintf(name, cap, "%s", type ? type : "");
    cl_status code = CL_ERR_REMOTE;
    if (type == NULL) {
        code = CL_ERR_REMOTE;
    } else if (strcmp(type, "AccessDeniedException") == 0) {
        code = CL_ERR_DENIED;
    } else if (strcmp(type, "NotFoundException") == 0) {
        code = CL_ERR_NOT_FOUND;
    } else if (strcmp(type, "DisabledException") == 0 || strcmp(type, "KMSInvalidStateException") == 0) {
        code = CL_ERR_STATE;
    } else if (strcmp(type, "InvalidCiphertextException") == 0) {
        code = CL_ERR_AUTH;
    }
    cl_status rc = CL_RAISE(code, "%s: %s (HTTP %d)", type ? type : "KMS error", msg ? msg : "no message", status);
    json_decref(j);
    return rc;
}

static bool cl_kms_retryable(int status, const char *exc)
{
    if (status >= 500) return true;
    return strcmp(exc, "ThrottlingException") == 0 || strcmp(exc, "LimitExceededException") == 0 ||
           strcmp(exc, "RequestLimitExceeded") == 0 || strcmp(exc, "KMSInternalException") == 0;
}

static void cl_kms_sleep_backoff(int attempt)
{
    long cap = CL_KMS_BACKOFF_BASE_MS << (attempt < 10 ? attempt : 10);
    if (cap > CL_KMS_BACKOFF_CAP_MS) cap = CL_KMS_BACKOFF_CAP_MS;
    uint32_t r = 0;
    if (cl_random(&r, sizeof(r)) != CL_OK) r = 0;
    long ms = (long)(r % (uint32_t)(cap + 1)); /* full jitter */
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One signed attempt. *retry says whether another attempt may help: a transport
 * failure (CL_ERR_IO from cloister/http.h) or an answer cl_kms_retryable names. */
static CL_MUST_USE cl_status cl_kms_attempt(cl_kms_client *c, const char *op, const char *body, cl_buf *resp,
                                            bool *retry)
{
    *retry = false;
    cl_status rc = CL_OK;
    const cl_http_url *url = cl_http_client_url(c->http);
    char date[17], target[160];
    cl_sigv4_format_amz_date((int64_t)time(NULL), date);
    (void)snprintf(target, sizeof(target), "%s.%s", c->service->target_prefix, op);
    uint8_t d[CL_SHA256_LEN];
    char ph[65];
    CL_GUARD(cl_sha256(body, strlen(body), d));
    (void)cl_hex_encode(d, sizeof(d), ph, sizeof(ph));
    /* The Host signed is the one the HTTP client sends (cl_http_url.authority). */
    cl_sigv4_header hdrs[5] = {{"Content-Type", "application/x-amz-json-1.1"},
                               {"Host", c->host},
                               {"X-Amz-Date", date},
                               {"X-Amz-Target", target},
                               {"X-Amz-Security-Token", c->session_token}};
    size_t nh = c->session_token ? 5 : 4;
    cl_sigv4_request sr = {.method = "POST",
                           .path = url->path,
                           .headers = hdrs,
                           .n_headers = nh,
                           .signed_headers = c->session_token ? "content-type;host;x-amz-date;x-amz-security-token;"
                                                                "x-amz-target"
                                                              : "content-type;host;x-amz-date;x-amz-target",
                           .payload_sha256_hex = ph,
                           .amz_date = date,
                           .region = c->region,
                           .service = c->service->signing_name};
    cl_buf auth;
    cl_buf_init(&auth, 4096);
    CL_GUARD_GOTO(cl_sigv4_authorization(c->access_key_id, cl_buf_cstr(&c->secret), &sr, &auth));
    cl_http_header send[6];
    size_t ns = 0;
    for (size_t i = 0; i < nh; i++)
        if (strcmp(hdrs[i].key, "Host") != 0) send[ns++] = (cl_http_header){hdrs[i].key, hdrs[i].value};
    send[ns++] = (cl_http_header){"Authorization", cl_buf_cstr(&auth)};
    int status = 0;
    rc = cl_http_post(c->http, send, ns, body, strlen(body), &status, resp);
    if (rc != CL_OK) {
        *retry = rc == CL_ERR_IO;
        (void)cl_error_wrap("%s request %s to %s failed", c->service->name, op, c->endpoint);
        goto out;
    }
    if (status != 200) {
        char exc[128];
        rc = cl_kms_remote_error(status, resp, exc, sizeof(exc));
        *retry = cl_kms_retryable(status, exc);
        goto out;
    }
out:
    cl_buf_free(&auth);
    return rc;
}

cl_status cl_kms_call(cl_kms_client *c, const char *op, const char *json_body, cl_buf *resp)
{
    size_t start = resp->len;
    for (int attempt = 0;; attempt++) {
        bool retry;
        cl_buf_truncate(resp, start);
        cl_status rc = cl_kms_attempt(c, op, json_body, resp, &retry);
        if (rc == CL_OK) return CL_OK;
        if (!retry || attempt + 1 >= c->max_attempts) {
            cl_buf_truncate(resp, start);
            return rc;
        }
        CL_LOG_INFO("%s %s: attempt %d failed (%s), retrying", c->service->name, op, attempt + 1, cl_error_message());
        cl_kms_sleep_backoff(attempt);
    }
}

static json_t *cl_kms_context_json(const cl_kvlist *ctx)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && ctx != NULL && i < ctx->count; i++)
        json_object_set_new(o, ctx->items[i].key, json_string(ctx->items[i].value));
    return o;
}

/* Decodes a base64 member of a response into out. */
static CL_MUST_USE cl_status cl_kms_member_blob(json_t *resp, const char *member, cl_buf *out)
{
    const char *v = json_string_value(json_object_get(resp, member));
    CL_ENSURE(v != NULL, CL_ERR_REMOTE, "KMS response has no %s", member);
    /* Decoded in a scratch secret buffer: the caller's may be capped at the
     * exact key size, which base64 decoding overshoots while it works. */
    cl_buf tmp;
    cl_buf_init_secret(&tmp, CL_KMS_MAX_RESPONSE);
    cl_status rc = cl_base64_decode(v, strlen(v), false, &tmp);
    if (rc == CL_OK) rc = cl_buf_append(out, tmp.data, tmp.len);
    cl_buf_free(&tmp);
    CL_GUARD_CTX(rc, "KMS response member %s", member);
    return CL_OK;
}

/* Runs op with req (consumed); parses the response into *out. The raw
 * response may hold a plaintext: it lives in a secret buffer. */
static CL_MUST_USE cl_status cl_kms_json_call(cl_kms_client *c, const char *op, json_t *req, json_t **out)
{
    cl_status rc = CL_OK;
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    cl_buf resp;
    cl_buf_init_secret(&resp, CL_KMS_MAX_RESPONSE);
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "cannot build the %s request", op);
    CL_GUARD_GOTO(cl_kms_call(c, op, body, &resp));
    *out = json_loadb((const char *)resp.data, resp.len, 0, NULL);
    CL_ENSURE_GOTO(json_is_object(*out), CL_ERR_REMOTE, "KMS %s response is not a JSON object", op);
out:
    free(body);
    cl_buf_free(&resp);
    return rc;
}

/* jansson keeps decoded strings in ordinary heap memory: wipe the plaintext
 * member before the object is released. */
static void cl_kms_wipe_member(json_t *resp, const char *member)
{
    json_t *v = json_object_get(resp, member);
    const char *s = json_string_value(v);
    if (s != NULL) cl_memzero(CL_UNCONST(s), strlen(s));
}

/* What every GenerateDataKey answer carries besides the key itself (already in data_key). */
static CL_MUST_USE cl_status cl_kms_data_key_rest(json_t *resp, const cl_buf *data_key, cl_buf *blob, cl_buf *key_arn)
{
    CL_ENSURE(data_key->len == CL_DATA_KEY_LEN, CL_ERR_REMOTE, "KMS returned a %zu-byte data key", data_key->len);
    CL_GUARD(cl_kms_member_blob(resp, "CiphertextBlob", blob));
    const char *arn = json_string_value(json_object_get(resp, "KeyId"));
    CL_ENSURE(arn != NULL, CL_ERR_REMOTE, "KMS GenerateDataKey response has no KeyId");
    return cl_buf_append_str(key_arn, arn);
}

cl_status cl_kms_generate_data_key(cl_kms_client *c, const char *key_id, const cl_kvlist *ctx, cl_buf *data_key,
                                   cl_buf *blob, cl_buf *key_arn)
{
    json_t *resp = NULL;
    cl_status rc = CL_OK;
    json_t *req = json_pack("{s:s, s:s, s:o}", "KeyId", key_id, "KeySpec", "AES_256", "EncryptionContext",
                            cl_kms_context_json(ctx));
    CL_GUARD_GOTO(cl_kms_json_call(c, "GenerateDataKey", req, &resp));
    CL_GUARD_GOTO(cl_kms_member_blob(resp, "Plaintext", data_key));
    CL_GUARD_GOTO(cl_kms_data_key_rest(resp, data_key, blob, key_arn));
out:
    if (rc != CL_OK) cl_buf_reset(data_key);
    cl_kms_wipe_member(resp, "Plaintext");
    json_decref(resp);
    return rc;
}

/* A Decrypt request: CiphertextBlob, EncryptionContext, and KeyId when given. */
static CL_MUST_USE cl_status cl_kms_decrypt_request(const char *key_id, const uint8_t *blob, size_t blob_len,
                                                    const cl_kvlist *ctx, json_t **out)
{
    cl_buf b64;
    cl_buf_init(&b64, 1 << 16);
    cl_status rc = cl_base64_encode(blob, blob_len, false, &b64);
    json_t *req = rc != CL_OK ? NULL
                              : json_pack("{s:s, s:o}", "CiphertextBlob", cl_buf_cstr(&b64), "EncryptionContext",
                                          cl_kms_context_json(ctx));
    cl_buf_free(&b64);
    CL_GUARD(rc);
    CL_ENSURE(req != NULL, CL_ERR_NOMEM, "cannot build the Decrypt request");
    if (key_id != NULL) json_object_set_new(req, "KeyId", json_string(key_id));
    *out = req;
    return CL_OK;
}

cl_status cl_kms_decrypt(cl_kms_client *c, const char *key_id, const uint8_t *blob, size_t blob_len,
                         const cl_kvlist *ctx, cl_buf *plaintext)
{
    json_t *resp = NULL, *req = NULL;
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(cl_kms_decrypt_request(key_id, blob, blob_len, ctx, &req));
    CL_GUARD_GOTO(cl_kms_json_call(c, "Decrypt", req, &resp));
    CL_GUARD_GOTO(cl_kms_member_blob(resp, "Plaintext", plaintext));
out:
    cl_kms_wipe_member(resp, "Plaintext");
    json_decref(resp);
    return rc;
}

/* --- Recipient: attested key release (cloister/recipient.h) --------------------- */

/* Adds Recipient {AttestationDocument, KeyEncryptionAlgorithm} exactly as botocore's
 * RecipientInfo shape names them. */
static CL_MUST_USE cl_status cl_kms_add_recipient(json_t *req, const uint8_t *doc, size_t doc_len)
{
    CL_ENSURE(req != NULL, CL_ERR_NOMEM, "cannot build the request");
    CL_ENSURE(doc != NULL && doc_len > 0, CL_ERR_USAGE, "no attestation document for Recipient");
    cl_buf b64;
    cl_buf_init(&b64, (size_t)1 << 20);
    cl_status rc = cl_base64_encode(doc, doc_len, false, &b64);
    if (rc == CL_OK) {
        json_t *r = json_pack("{s:s, s:s}", "AttestationDocument", cl_buf_cstr(&b64), "KeyEncryptionAlgorithm",
                              CL_RECIPIENT_KEY_ENCRYPTION_ALGORITHM);
        rc = r != NULL && json_object_set_new(req, "Recipient", r) == 0 ? CL_OK : CL_ERR_NOMEM;
    }
    cl_buf_free(&b64);
    CL_ENSURE(rc == CL_OK, rc, "cannot build the Recipient member");
    return CL_OK;
}

/* Opens CiphertextForRecipient into out; a Plaintext next to it is refused. */
static CL_MUST_USE cl_status cl_kms_open_for_recipient(json_t *resp, const cl_recipient *r, const char *op, cl_buf *out)
{
    const char *pt = json_string_value(json_object_get(resp, "Plaintext"));
    CL_ENSURE(pt == NULL || pt[0] == '\0', CL_ERR_REMOTE,
              "KMS %s answered a Plaintext to a Recipient request; refusing it (the endpoint does not do attested "
              "key release)",
              op);
    cl_buf cms;
    cl_buf_init(&cms, CL_RECIPIENT_MAX_CMS);
    cl_status rc = cl_kms_member_blob(resp, "CiphertextForRecipient", &cms);
    if (rc == CL_OK) rc = cl_recipient_open(r, cms.data, cms.len, out);
    cl_buf_free(&cms);
    CL_GUARD_CTX(rc, "KMS %s", op);
    return CL_OK;
}

cl_status cl_kms_decrypt_for_recipient(cl_kms_client *c, const cl_recipient *r, const uint8_t *doc, size_t doc_len,
                                       const char *key_id, const uint8_t *blob, size_t blob_len, const cl_kvlist *ctx,
                                       cl_buf *plaintext)
{
    json_t *resp = NULL, *req = NULL;
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(cl_kms_decrypt_request(key_id, blob, blob_len, ctx, &req));
    rc = cl_kms_add_recipient(req, doc, doc_len);
    if (rc != CL_OK) {
        json_decref(req);
        goto out;
    }
    CL_GUARD_GOTO(cl_kms_json_call(c, "Decrypt", req, &resp));
    CL_GUARD_GOTO(cl_kms_open_for_recipient(resp, r, "Decrypt", plaintext));
out:
    cl_kms_wipe_member(resp, "Plaintext");
    json_decref(resp);
    return rc;
}

cl_status cl_kms_generate_data_key_for_recipient(cl_kms_client *c, const cl_recipient *r, const uint8_t *doc,
                                                 size_t doc_len, const char *key_id, const cl_kvlist *ctx,
                                                 cl_buf *data_key, cl_buf *blob, cl_buf *key_arn)
{
    json_t *resp = NULL;
    cl_status rc = CL_OK;
    json_t *req = json_pack("{s:s, s:s, s:o}", "KeyId", key_id, "KeySpec", "AES_256", "EncryptionContext",
                            cl_kms_context_json(ctx));
    rc = cl_kms_add_recipient(req, doc, doc_len);
    if (rc != CL_OK) {
        json_decref(req);
        return rc;
    }
    CL_GUARD_GOTO(cl_kms_json_call(c, "GenerateDataKey", req, &resp));
    CL_GUARD_GOTO(cl_kms_open_for_recipient(resp, r, "GenerateDataKey", data_key));
    CL_GUARD_GOTO(cl_kms_data_key_rest(resp, data_key, blob, key_arn));
out:
    if (rc != CL_OK) cl_buf_reset(data_key);
    cl_kms_wipe_member(resp, "Plaintext");
    json_decref(resp);
    return rc;
}

cl_status cl_kms_generate_random_for_recipient(cl_kms_client *c, const cl_recipient *r, const uint8_t *doc,
                                               size_t doc_len, size_t n, cl_buf *out)
{
    CL_ENSURE(n >= 1 && n <= 1024, CL_ERR_USAGE, "GenerateRandom takes 1 to 1024 bytes, not %zu", n);
    json_t *resp = NULL;
    cl_status rc = CL_OK;
    json_t *req = json_pack("{s:I}", "NumberOfBytes", (json_int_t)n);
    rc = cl_kms_add_recipient(req, doc, doc_len);
    if (rc != CL_OK) {
        json_decref(req);
        return rc;
    }
    size_t before = out->len;
    CL_GUARD_GOTO(cl_kms_json_call(c, "GenerateRandom", req, &resp));
    CL_GUARD_GOTO(cl_kms_open_for_recipient(resp, r, "GenerateRandom", out));
    size_t got = out->len - before;
    if (got != n) {
        cl_buf_truncate(out, before);
        CL_FAIL_GOTO(CL_ERR_REMOTE, "KMS GenerateRandom returned %zu bytes, not %zu", got, n);
    }
out:
    cl_kms_wipe_member(resp, "Plaintext");
    json_decref(resp);
    return rc;
}

/* --- the kms key provider ----------------------------------------------------- */

typedef struct cl_kms_provider_state {
    cl_kms_client *client;
    char *key_id;
} cl_kms_provider_state;

static CL_MUST_USE cl_status cl_kms_provider_generate(cl_key_provider *kp, const cl_kvlist *ctx, cl_buf *data_key,
                                                      cl_buf *wrapped, cl_buf *key_id)
{
    cl_kms_provider_state *st = kp->state;
    CL_GUARD_CTX(cl_kms_generate_data_key(st->client, st->key_id, ctx, data_key, wrapped, key_id),
                 "generating a data key under %s", st->key_id);
    return CL_OK;
}

static CL_MUST_USE cl_status cl_kms_provider_unwrap(cl_key_provider *kp, const char *key_id, const uint8_t *wrapped,
                                                    size_t wrapped_len, const cl_kvlist *ctx, cl_buf *data_key)
{
    cl_kms_provider_state *st = kp->state;
    /* The header's key id goes to KMS as KeyId, so KMS itself checks that the
     * blob belongs to that key (IncorrectKeyException otherwise). */
    CL_GUARD_CTX(cl_kms_decrypt(st->client, key_id, wrapped, wrapped_len, ctx, data_key),
                 "decrypting the data key with %s", key_id);
    if (data_key->len != CL_DATA_KEY_LEN) {
        cl_buf_reset(data_key);
        CL_FAIL(CL_ERR_REMOTE, "KMS returned a data key of the wrong length");
    }
    return CL_OK;
}

static void cl_kms_provider_destroy(cl_key_provider *kp)
{
    cl_kms_provider_state *st = kp->state;
    if (st != NULL) {
        cl_kms_client_free(st->client);
        free(st->key_id);
    }
    free(st);
    free(kp);
}

cl_status cl_kms_provider_open(cl_kms_client *client, const char *key_id, cl_key_provider **out)
{
    cl_key_provider *kp = calloc(1, sizeof(*kp));
    cl_kms_provider_state *st = calloc(1, sizeof(*st));
    char *id = strdup(key_id);
    if (kp == NULL || st == NULL || id == NULL) {
        free(kp);
        free(st);
        free(id);
        cl_kms_client_free(client);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for a key provider");
    }
    st->client = client;
    st->key_id = id;
    kp->name = "kms";
    kp->generate = cl_kms_provider_generate;
    kp->unwrap = cl_kms_provider_unwrap;
    kp->destroy = cl_kms_provider_destroy;
    kp->state = st;
    *out = kp;
    return CL_OK;
}

/* --- the kms key provider with Recipient (inside an enclave) -------------------- */

typedef struct cl_kms_recipient_provider_state {
    cl_kms_client *client;    /* borrowed */
    const cl_recipient *rcpt; /* borrowed */
    cl_buf doc;
    char *key_id; /* NULL: unwrap only */
} cl_kms_recipient_provider_state;

static CL_MUST_USE cl_status cl_kms_recipient_provider_generate(cl_key_provider *kp, const cl_kvlist *ctx,
                                                                cl_buf *data_key, cl_buf *wrapped, cl_buf *key_id)
{
    cl_kms_recipient_provider_state *st = kp->state;
    CL_ENSURE(st->key_id != NULL, CL_ERR_USAGE, "this key provider only unwraps: it was opened without a key id");
    CL_GUARD_CTX(cl_kms_generate_data_key_for_recipient(st->client, st->rcpt, st->doc.data, st->doc.len, st->key_id,
                                                        ctx, data_key, wrapped, key_id),
                 "generating a data key under %s with Recipient", st->key_id);
    if (data_key->len != CL_DATA_KEY_LEN) {
        cl_buf_reset(data_key);
        CL_FAIL(CL_ERR_REMOTE, "KMS released a data key of %s of the wrong length", st->key_id);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status cl_kms_recipient_provider_unwrap(cl_key_provider *kp, const char *key_id,
                                                              const uint8_t *wrapped, size_t wrapped_len,
                                                              const cl_kvlist *ctx, cl_buf *data_key)
{
    cl_kms_recipient_provider_state *st = kp->state;
    /* As for the kms provider: the header's key id goes to KMS as KeyId, so KMS checks the blob is that key's. */
    CL_GUARD_CTX(cl_kms_decrypt_for_recipient(st->client, st->rcpt, st->doc.data, st->doc.len, key_id, wrapped,
                                              wrapped_len, ctx, data_key),
                 "decrypting the data key with %s with Recipient", key_id);
    if (data_key->len != CL_DATA_KEY_LEN) {
        cl_buf_reset(data_key);
        CL_FAIL(CL_ERR_REMOTE, "KMS released a data key of %s of the wrong length", key_id);
    }
    return CL_OK;
}

static void cl_kms_recipient_provider_destroy(cl_key_provider *kp)
{
    cl_kms_recipient_provider_state *st = kp->state;
    if (st != NULL) {
        cl_buf_free(&st->doc);
        free(st->key_id);
    }
    free(st);
    free(kp);
}

cl_status cl_kms_recipient_provider_open(cl_kms_client *client, const cl_recipient *r, const uint8_t *doc,
                                         size_t doc_len, const char *key_id, cl_key_provider **out)
{
    CL_ENSURE(client != NULL && r != NULL && doc != NULL && doc_len > 0, CL_ERR_USAGE,
              "a Recipient key provider needs a KMS client, a recipient key and an attestation document");
    cl_key_provider *kp = calloc(1, sizeof(*kp));
    cl_kms_recipient_provider_state *st = calloc(1, sizeof(*st));
    char *id = key_id != NULL ? strdup(key_id) : NULL;
    if (kp == NULL || st == NULL || (key_id != NULL && id == NULL)) {
        free(kp);
        free(st);
        free(id);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for a key provider");
    }
    cl_buf_init(&st->doc, doc_len);
    cl_status rc = cl_buf_append(&st->doc, doc, doc_len);
    if (rc != CL_OK) {
        cl_buf_free(&st->doc);
        free(kp);
        free(st);
        free(id);
        return rc;
    }
    st->client = client;
    st->rcpt = r;
    st->key_id = id;
    kp->name = "kms"; /* the same envelopes as `cloister seal --key alias/...` */
    kp->generate = cl_kms_recipient_provider_generate;
    kp->unwrap = cl_kms_recipient_provider_unwrap;
    kp->destroy = cl_kms_recipient_provider_destroy;
    kp->state = st;
    *out = kp;
    return CL_OK;
}
