/* SPDX-License-Identifier: Apache-2.0 */
/* The certificate service's routes. See cas_http.h and docs/cas.md, "API". */
#include "cas_http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/buf.h"
#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "cas_issue.h"
#include "cas_store.h"

#define KMS_CAS_VALUES_PREFIX "/v1/values/session="
#define KMS_CAS_SESSIONS_PREFIX "/v1/sessions/"

bool kms_cas_path(const char *path) { return path != NULL && strncmp(path, "/v1/", 4) == 0; }

/* The NAME after `prefix` in path, when path is exactly prefix NAME with a valid name. */
static bool kms_cas_path_name(const char *path, const char *prefix, char out[KMS_CAS_NAME_MAX + 1])
{
    size_t plen = strlen(prefix);
    cl_reader r = cl_reader_make(path, strnlen(path, 4096));
    if (!cl_reader_starts_with(&r, prefix, plen) || cl_reader_skip(&r, plen) != CL_OK) return false;
    size_t n = cl_reader_remaining(&r);
    if (n == 0 || n > KMS_CAS_NAME_MAX) return false;
    if (cl_reader_copy(&r, out, n) != CL_OK) return false;
    out[n] = '\0';
    return true;
}

const char *kms_cas_route(const char *method, const char *path, kms_cas_access *access)
{
    char name[KMS_CAS_NAME_MAX + 1];
    *access = KMS_CAS_PUBLIC;
    if (strcmp(method, "GET") == 0 && kms_cas_path_name(path, KMS_CAS_VALUES_PREFIX, name)) return "cas:GetValues";
    if (strcmp(method, "GET") == 0 && strcmp(path, "/v1/nonce") == 0) return "cas:GetNonce";
    if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/certificate") == 0) {
        *access = KMS_CAS_ATTESTED;
        return "cas:IssueCertificate";
    }
    if (kms_cas_path_name(path, KMS_CAS_SESSIONS_PREFIX, name)) {
        if (strcmp(method, "GET") == 0) {
            *access = KMS_CAS_SIGNED;
            return "cas:GetSession";
        }
        if (strcmp(method, "PUT") == 0) {
            *access = KMS_CAS_SIGNED_WRITE;
            return "cas:PutSession";
        }
    }
    return NULL;
}

char *kms_cas_error_body(const char *code, const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "code", code, "message", message);
    char *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return body;
}

/* Answers an error: status, its code, and the thread's error message. */
static void kms_cas_fail(kms_cas_http *h, int status, const char *code)
{
    h->status = status;
    h->outcome = code;
    h->answer = kms_cas_error_body(code, cl_error_message());
}

/* Answers j (consumed) with status 200. */
static void kms_cas_ok(kms_cas_http *h, json_t *j)
{
    h->answer = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (h->answer == NULL) {
        (void)CL_RAISE(CL_ERR_NOMEM, "out of memory for the answer");
        kms_cas_fail(h, 500, "InternalError");
        return;
    }
    h->status = 200;
    h->outcome = "ok";
}

/* A store or record failure on the way to an answer: the session's absence, or a fault. */
static void kms_cas_fail_load(kms_cas_http *h, cl_status rc, const char *name)
{
    if (rc == CL_ERR_NOT_FOUND) {
        (void)CL_RAISE(CL_ERR_NOT_FOUND, "there is no session %s", name);
        kms_cas_fail(h, 404, "SessionNotFound");
        return;
    }
    CL_LOG_ERROR("cas: session %s: %s", name, cl_error_message());
    kms_cas_fail(h, 500, "InternalError");
}

/* GET /v1/values/session=NAME: {"values": {"NAME": {"value": TEXT}}} for the exported secrets,
 * nothing else: a CA's certificate (never its key), a value's text. */
static void kms_cas_values(kms_cas_http *h, const char *name)
{
    kms_cas_record rec;
    kms_cas_record_init(&rec);
    json_t *values = json_object();
    cl_buf pem;
    cl_buf_init(&pem, (size_t)64 << 10);
    cl_status rc = values != NULL ? kms_cas_record_load(h->kms->store, &h->kms->root, name, &rec) : CL_ERR_NOMEM;
    if (rc != CL_OK) {
        kms_cas_fail_load(h, rc, name);
        goto out;
    }
    for (size_t i = 0; i < rec.session->n_secrets && rc == CL_OK; i++) {
        const kms_cas_secret *s = &rec.session->secrets[i];
        if (!s->export_public) continue;
        json_t *v = NULL;
        if (s->kind == KMS_CAS_X509_CA) {
            cl_buf_reset(&pem);
            rc = kms_cas_record_ca(&rec, s->name, NULL, &pem);
            if (rc == CL_OK) v = json_pack("{s:s}", "value", cl_buf_cstr(&pem));
        } else {
            v = json_pack("{s:s%}", "value", s->value, s->value_len);
        }
        if (rc == CL_OK && (v == NULL || json_object_set_new(values, s->name, v) != 0))
            rc = CL_RAISE(CL_ERR_NOMEM, "out of memory");
    }
    if (rc != CL_OK) {
        kms_cas_fail_load(h, rc, name);
        goto out;
    }
    kms_cas_ok(h, json_pack("{s:O}", "values", values));
out:
    json_decref(values);
    cl_buf_free(&pem);
    kms_cas_record_free(&rec);
}

/* GET /v1/nonce: a nonce for the attestation document of the next POST /v1/certificate. */
static void kms_cas_nonce(kms_cas_http *h)
{
    uint8_t n[KMS_CAS_NONCE_LEN];
    char hex[2 * KMS_CAS_NONCE_LEN + 1];
    if (kms_cas_nonce_make(&h->kms->root, h->now_ms, n) != CL_OK) {
        kms_cas_fail(h, 500, "InternalError");
        return;
    }
    (void)cl_hex_encode(n, sizeof(n), hex, sizeof(hex));
    kms_cas_ok(h, json_pack("{s:s, s:i}", "nonce", hex, "expires_in", KMS_CAS_NONCE_LIFETIME_MS / 1000));
}

/* A string member of a request body, or NULL. */
static const char *kms_cas_member(json_t *o, const char *k, size_t *len)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v)) return NULL;
    if (len != NULL) *len = json_string_length(v);
    return json_string_value(v);
}

/* POST /v1/certificate {"session", "service", "csr"}. */
static void kms_cas_certificate(kms_cas_http *h)
{
    json_error_t jerr;
    json_t *req = json_loadb((const char *)h->body, h->body_len, JSON_REJECT_DUPLICATES, &jerr);
    const char *session = kms_cas_member(req, "session", NULL), *service = kms_cas_member(req, "service", NULL);
    size_t csr_len = 0;
    const char *csr = kms_cas_member(req, "csr", &csr_len);
    if (req == NULL || !json_is_object(req) || session == NULL || service == NULL || csr == NULL) {
        (void)CL_RAISE(CL_ERR_FORMAT,
                       "the body must be a JSON object {\"session\": NAME, \"service\": NAME, \"csr\": PEM "
                       "certificate request}");
        kms_cas_fail(h, 400, "InvalidRequest");
        goto out;
    }
    if (!kms_cas_name_ok(session) || !kms_cas_item_name_ok(service)) {
        (void)CL_RAISE(CL_ERR_FORMAT, "\"session\" or \"service\" is not a valid name");
        kms_cas_fail(h, 400, "InvalidRequest");
        goto out;
    }
    (void)snprintf(h->resource, sizeof(h->resource), "cas:session/%s/service/%s", session, service);
    kms_cas_issue_result res;
    cl_status rc = kms_cas_issue(h->kms, session, service, (const uint8_t *)csr, csr_len, h->now_ms, &res);
    (void)snprintf(h->module_id, sizeof(h->module_id), "%s", res.module_id);
    (void)snprintf(h->pcr0, sizeof(h->pcr0), "%s", res.pcr0);
    if (rc != CL_OK) {
        if (res.http >= 500)
            CL_LOG_ERROR("cas: issuing for %s: %s", h->resource, cl_error_message());
        else
            CL_LOG_INFO("cas: refused %s for %s (PCR0 %.16s...): %s", res.code, h->resource,
                        res.pcr0[0] ? res.pcr0 : "-", cl_error_message());
        kms_cas_fail(h, res.http, res.code);
        goto out;
    }
    kms_cas_ok(h, res.answer);
out:
    json_decref(req);
}

/* GET /v1/sessions/NAME: {"name", "hash", "session": the document as stored}. */
static void kms_cas_get_session(kms_cas_http *h, const char *name)
{
    kms_cas_record rec;
    kms_cas_record_init(&rec);
    cl_status rc = kms_cas_record_load(h->kms->store, &h->kms->root, name, &rec);
    if (rc != CL_OK) {
        kms_cas_fail_load(h, rc, name);
        goto out;
    }
    if (!kms_cas_may_read(rec.session, h->principal->arn)) {
        (void)CL_RAISE(CL_ERR_DENIED, "%s may not read session %s (not in its access.read or access.update)",
                       h->principal->arn, name);
        kms_cas_fail(h, 403, "AccessDenied");
        goto out;
    }
    kms_cas_ok(h, json_pack("{s:s, s:s, s:s%, s:I, s:I}", "name", name, "hash", rec.hash, "session",
                            (const char *)rec.doc.data, rec.doc.len, "created", (json_int_t)rec.created, "updated",
                            (json_int_t)rec.updated));
out:
    kms_cas_record_free(&rec);
}

/* PUT /v1/sessions/NAME with the document as the body. */
static void kms_cas_put_session(kms_cas_http *h, const char *name)
{
    kms_cas_put_result res;
    cl_status rc = kms_cas_record_put(h->kms->store, &h->kms->root, name, (const char *)h->body, h->body_len,
                                      h->principal->arn, h->now_ms / 1000, &res);
    switch (rc) {
    case CL_OK: break;
    case CL_ERR_FORMAT:
    case CL_ERR_LIMIT: kms_cas_fail(h, 400, "InvalidSession"); return;
    case CL_ERR_DENIED: kms_cas_fail(h, 403, "AccessDenied"); return;
    case CL_ERR_STATE:
    case CL_ERR_EXISTS: kms_cas_fail(h, 409, "PredecessorMismatch"); return;
    default:
        CL_LOG_ERROR("cas: putting session %s: %s", name, cl_error_message());
        kms_cas_fail(h, 500, "InternalError");
        return;
    }
    CL_LOG_INFO("cas: session %s %s by %s: hash %s (%zu secrets generated)", name, res.created ? "created" : "updated",
                h->principal->arn, res.hash, res.generated);
    kms_cas_ok(h, json_pack("{s:s, s:s, s:s?, s:b, s:I}", "name", name, "hash", res.hash, "predecessor",
                            res.created ? NULL : res.predecessor, "created", res.created, "generated",
                            (json_int_t)res.generated));
}

void kms_cas_handle(kms_cas_http *h)
{
    char name[KMS_CAS_NAME_MAX + 1];
    kms_cas_access access;
    h->status = 500;
    h->answer = NULL;
    h->outcome = "InternalError";
    h->resource[0] = h->module_id[0] = h->pcr0[0] = '\0';
    const char *op = kms_cas_route(h->method, h->path, &access);
    if (op == NULL) {
        bool known = strcmp(h->path, "/v1/nonce") == 0 || strcmp(h->path, "/v1/certificate") == 0 ||
                     kms_cas_path_name(h->path, KMS_CAS_VALUES_PREFIX, name) ||
                     kms_cas_path_name(h->path, KMS_CAS_SESSIONS_PREFIX, name);
        if (known)
            (void)CL_RAISE(CL_ERR_NOT_FOUND, "%s is not a method of this path (docs/cas.md, \"API\")", h->method);
        else
            (void)CL_RAISE(CL_ERR_NOT_FOUND,
                           "no such path: the certificate service has GET /v1/values/session=NAME, GET /v1/nonce, "
                           "POST /v1/certificate, GET and PUT /v1/sessions/NAME");
        kms_cas_fail(h, known ? 405 : 404, known ? "MethodNotAllowed" : "NotFound");
        return;
    }
    if (kms_cas_path_name(h->path, KMS_CAS_VALUES_PREFIX, name) ||
        kms_cas_path_name(h->path, KMS_CAS_SESSIONS_PREFIX, name)) {
        if (!kms_cas_name_ok(name)) {
            (void)CL_RAISE(CL_ERR_FORMAT, "a session name is 1 to %d of A-Z a-z 0-9 . _ - (not starting with '.')",
                           KMS_CAS_NAME_MAX);
            kms_cas_fail(h, 400, "InvalidSessionName");
            return;
        }
        (void)snprintf(h->resource, sizeof(h->resource), "cas:session/%s", name);
    }
    if (strcmp(op, "cas:GetValues") == 0) kms_cas_values(h, name);
    if (strcmp(op, "cas:GetNonce") == 0) kms_cas_nonce(h);
    if (strcmp(op, "cas:IssueCertificate") == 0) kms_cas_certificate(h);
    if (strcmp(op, "cas:GetSession") == 0) kms_cas_get_session(h, name);
    if (strcmp(op, "cas:PutSession") == 0) kms_cas_put_session(h, name);
}
