/* SPDX-License-Identifier: Apache-2.0 */
/* SSE-KMS objects (s3_sse.h). */
#include "s3_sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/audit.h"
#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "s3_store.h"

#define KMS_S3_SSE_AAD "cloister-s3-sse-1"

uint64_t kms_s3_sse_stored_size(uint64_t plain)
{
    uint64_t chunks = (plain + KMS_S3_SSE_CHUNK - 1) / KMS_S3_SSE_CHUNK;
    return plain + chunks * CL_GCM_TAG_LEN;
}

static void kms_s3_sse_nonce(uint32_t prefix, uint64_t i, uint8_t nonce[CL_GCM_NONCE_LEN])
{
    for (int b = 0; b < 4; b++) nonce[b] = (uint8_t)(prefix >> (24 - 8 * b));
    for (int b = 0; b < 8; b++) nonce[4 + b] = (uint8_t)(i >> (56 - 8 * b));
}

static size_t kms_s3_sse_aad(uint64_t i, uint64_t total, uint8_t aad[64])
{
    static const char label[] = KMS_S3_SSE_AAD;
    size_t n = sizeof(label) - 1;
    for (size_t b = 0; b < n; b++) aad[b] = (uint8_t)label[b];
    for (int b = 0; b < 8; b++) aad[n + (size_t)b] = (uint8_t)(i >> (56 - 8 * b));
    for (int b = 0; b < 8; b++) aad[n + 8 + (size_t)b] = (uint8_t)(total >> (56 - 8 * b));
    return n + 16;
}

/* One KMS operation as the S3 caller, in-process, with its own audit line. */
static CL_MUST_USE cl_status kms_s3_kms_call(kms_s3_req *r, const char *op, json_t *req, json_t **resp)
{
    cl_status rc = CL_OK;
    kms_call c;
    memset(&c, 0, sizeof(c));
    cl_kvlist_init(&c.audit_ctx);
    char via[KMS_REGION_MAX + 32];
    (void)snprintf(via, sizeof(via), "s3.%s.amazonaws.com", r->region);
    c.kms = r->kms;
    c.principal = r->who;
    c.operation = op;
    c.req = req;
    c.resp = json_object();
    c.now = r->now;
    c.env = r->env;
    c.env.via_service = via; /* kms:ViaService, as when S3 calls KMS for the caller */
    (void)snprintf(c.region, sizeof(c.region), "%s", r->region);
    (void)snprintf(c.request_id, sizeof(c.request_id), "%s", r->request_id);
    CL_ENSURE_GOTO(c.resp != NULL, CL_ERR_NOMEM, "out of memory");
    kms_op_fn fn = kms_op_find(op);
    CL_ENSURE_GOTO(fn != NULL, CL_ERR_INTERNAL, "no KMS operation %s", op);
    rc = fn(&c);
    cl_status keep = rc;
    char msg[1024];
    (void)snprintf(msg, sizeof(msg), "%s", rc != CL_OK ? cl_error_message() : "");
    int http = 400;
    const char *exc = rc != CL_OK ? kms_exception_for(&c, rc, &http) : NULL;
    cl_audit_event ev = {.time = r->now,
                         .request_id = r->request_id,
                         .principal = r->who->arn,
                         .operation = op,
                         .key_arn = c.key_arn[0] ? c.key_arn : NULL,
                         .context = &c.audit_ctx,
                         .outcome = exc != NULL ? exc : "ok"};
    uint64_t end;
    if (cl_audit_write(r->kms->audit, &ev, &end) != CL_OK) {
        CL_LOG_ERROR("S3 %s %s: %s not run: %s", r->operation, r->request_id, op, cl_error_message());
        KMS_S3_FAIL_GOTO(r, 500, "InternalError",
                         "The request was not answered because its audit record could not be written; the server's "
                         "log says why.");
    }
    if (c.key_arn[0] != '\0') (void)snprintf(r->key_arn, sizeof(r->key_arn), "%s", c.key_arn);
    if (keep != CL_OK) {
        /* S3 passes the KMS's refusal on: AccessDenied for a policy, KMS.<Exception> otherwise. */
        if (exc != NULL && strcmp(exc, "AccessDeniedException") == 0)
            KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "%s: %s", op, msg);
        static _Thread_local char code[96];
        (void)snprintf(code, sizeof(code), "KMS.%s", exc != NULL ? exc : "KMSInternalException");
        KMS_S3_FAIL_GOTO(r, 400, code, "%s: %s", op, msg);
    }
    *resp = c.resp;
    c.resp = NULL;
out:
    json_decref(c.resp);
    cl_kvlist_free(&c.audit_ctx);
    return rc;
}

static CL_MUST_USE cl_status kms_s3_sse_plain_key(json_t *resp, uint8_t key[CL_AES256_KEY_LEN])
{
    const char *pt = json_string_value(json_object_get(resp, "Plaintext"));
    CL_ENSURE(pt != NULL, CL_ERR_INTERNAL, "the KMS answered no Plaintext");
    cl_buf k;
    cl_buf_init_secret(&k, 64);
    cl_status rc = cl_base64_decode(pt, strlen(pt), false, &k);
    if (rc == CL_OK && k.len != CL_AES256_KEY_LEN) rc = CL_RAISE(CL_ERR_INTERNAL, "the data key is not 32 bytes");
    if (rc == CL_OK) memcpy(key, k.data, CL_AES256_KEY_LEN);
    cl_memzero(CL_UNCONST(pt), strlen(pt));
    cl_buf_free(&k);
    return rc;
}

cl_status kms_s3_sse_new(kms_s3_req *r, const char *key_id, const char *ctx_arn, json_t **sse,
                         uint8_t key[CL_AES256_KEY_LEN])
{
    if (r->who == NULL)
        KMS_S3_FAIL(r, 403, "AccessDenied",
                    "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature "
                    "Version 4.");
    json_t *req = json_pack("{s:s, s:s, s:{s:s}}", "KeyId", key_id, "KeySpec", "AES_256", "EncryptionContext",
                            "aws:s3:arn", ctx_arn);
    CL_ENSURE(req != NULL, CL_ERR_NOMEM, "out of memory");
    json_t *resp = NULL;
    cl_status rc = kms_s3_kms_call(r, "GenerateDataKey", req, &resp);
    json_decref(req);
    CL_GUARD(rc);
    rc = kms_s3_sse_plain_key(resp, key);
    if (rc == CL_OK) {
        *sse = json_pack("{s:s, s:s}", "key_id", json_string_value(json_object_get(resp, "KeyId")), "blob",
                         json_string_value(json_object_get(resp, "CiphertextBlob")));
        if (*sse == NULL) rc = CL_RAISE(CL_ERR_NOMEM, "out of memory");
    }
    json_decref(resp);
    return rc;
}

cl_status kms_s3_sse_key(kms_s3_req *r, json_t *sse, const char *ctx_arn, uint8_t key[CL_AES256_KEY_LEN])
{
    if (r->who == NULL)
        KMS_S3_FAIL(r, 403, "AccessDenied",
                    "Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature "
                    "Version 4.");
    const char *blob = json_string_value(json_object_get(sse, "blob"));
    CL_ENSURE(blob != NULL, CL_ERR_FORMAT, "the object's SSE record has no wrapped key");
    json_t *req =
        json_pack("{s:s, s:s, s:{s:s}}", "CiphertextBlob", blob, "KeyId",
                  json_string_value(json_object_get(sse, "key_id")), "EncryptionContext", "aws:s3:arn", ctx_arn);
    CL_ENSURE(req != NULL, CL_ERR_NOMEM, "out of memory");
    json_t *resp = NULL;
    cl_status rc = kms_s3_kms_call(r, "Decrypt", req, &resp);
    json_decref(req);
    CL_GUARD(rc);
    rc = kms_s3_sse_plain_key(resp, key);
    json_decref(resp);
    return rc;
}

cl_status kms_s3_sse_write(const uint8_t key[CL_AES256_KEY_LEN], uint32_t prefix, const uint8_t *pt, uint64_t n, int fd)
{
    cl_gcm g;
    CL_GUARD(cl_gcm_init(&g, key, true));
    cl_status rc = CL_OK;
    uint8_t *ct = malloc(KMS_S3_SSE_CHUNK + CL_GCM_TAG_LEN);
    CL_ENSURE_GOTO(ct != NULL, CL_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0, off = 0; off < n; i++) {
        size_t len = n - off < KMS_S3_SSE_CHUNK ? (size_t)(n - off) : KMS_S3_SSE_CHUNK;
        uint8_t nonce[CL_GCM_NONCE_LEN], aad[64];
        kms_s3_sse_nonce(prefix, i, nonce);
        size_t an = kms_s3_sse_aad(i, n, aad);
        CL_GUARD_GOTO(cl_gcm_seal(&g, nonce, aad, an, pt + off, len, ct, ct + len));
        CL_GUARD_GOTO(kms_s3_write_all(fd, ct, len + CL_GCM_TAG_LEN, "an SSE-KMS object"));
        off += len;
    }
out:
    free(ct);
    cl_gcm_free(&g);
    return rc;
}

cl_status kms_s3_sse_read(const uint8_t key[CL_AES256_KEY_LEN], uint32_t prefix, int fd, uint64_t data_off,
                          uint64_t total, uint64_t start, uint64_t len, struct evbuffer *out)
{
    if (len == 0) return CL_OK;
    cl_gcm g;
    CL_GUARD(cl_gcm_init(&g, key, false));
    cl_status rc = CL_OK;
    uint8_t *ct = malloc(KMS_S3_SSE_CHUNK + CL_GCM_TAG_LEN);
    uint8_t *pt = cl_secure_alloc(KMS_S3_SSE_CHUNK);
    CL_ENSURE_GOTO(ct != NULL && pt != NULL, CL_ERR_NOMEM, "out of memory");
    uint64_t end = start + len;
    for (uint64_t i = start / KMS_S3_SSE_CHUNK; i * KMS_S3_SSE_CHUNK < end; i++) {
        uint64_t off = i * KMS_S3_SSE_CHUNK;
        size_t clen = total - off < KMS_S3_SSE_CHUNK ? (size_t)(total - off) : KMS_S3_SSE_CHUNK;
        uint8_t nonce[CL_GCM_NONCE_LEN], aad[64];
        kms_s3_sse_nonce(prefix, i, nonce);
        size_t an = kms_s3_sse_aad(i, total, aad);
        CL_GUARD_GOTO(
            kms_s3_read_at(fd, data_off + i * (KMS_S3_SSE_CHUNK + CL_GCM_TAG_LEN), ct, clen + CL_GCM_TAG_LEN));
        if (cl_gcm_open(&g, nonce, aad, an, ct, clen, ct + clen, pt) != CL_OK)
            CL_FAIL_GOTO(CL_ERR_AUTH, "chunk %llu of an SSE-KMS object does not verify (damaged or moved)",
                         (unsigned long long)i);
        uint64_t from = start > off ? start - off : 0;
        uint64_t to = end < off + clen ? end - off : clen;
        if (out != NULL) evbuffer_add(out, pt + from, (size_t)(to - from));
    }
out:
    if (pt != NULL) cl_memzero(pt, KMS_S3_SSE_CHUNK);
    cl_secure_free(pt);
    free(ct);
    cl_gcm_free(&g);
    return rc;
}

/* Seals the accumulated plaintext as the object's next chunk. */
static CL_MUST_USE cl_status kms_s3_reseal_flush(kms_s3_resealer *rs)
{
    if (rs->acc_len == 0) return CL_OK;
    uint8_t nonce[CL_GCM_NONCE_LEN], aad[64];
    kms_s3_sse_nonce(0, rs->index, nonce);
    size_t an = kms_s3_sse_aad(rs->index, rs->total, aad);
    CL_GUARD(cl_gcm_seal(&rs->enc, nonce, aad, an, rs->acc, rs->acc_len, rs->ct, rs->ct + rs->acc_len));
    CL_GUARD(kms_s3_write_all(rs->dst, rs->ct, rs->acc_len + CL_GCM_TAG_LEN, "an SSE-KMS object"));
    cl_memzero(rs->acc, rs->acc_len);
    rs->acc_len = 0;
    rs->index++;
    return CL_OK;
}

cl_status kms_s3_reseal_begin(kms_s3_resealer *rs, const uint8_t key[CL_AES256_KEY_LEN], int dst, uint64_t total)
{
    memset(rs, 0, sizeof(*rs));
    rs->dst = dst;
    rs->total = total;
    rs->acc = cl_secure_alloc(KMS_S3_SSE_CHUNK);
    rs->pt = cl_secure_alloc(KMS_S3_SSE_CHUNK);
    rs->ct = malloc(KMS_S3_SSE_CHUNK + CL_GCM_TAG_LEN);
    CL_ENSURE(rs->acc != NULL && rs->pt != NULL && rs->ct != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD(cl_gcm_init(&rs->enc, key, true));
    rs->have_enc = true;
    CL_GUARD(cl_gcm_init(&rs->dec, key, false));
    rs->have_dec = true;
    return CL_OK;
}

cl_status kms_s3_reseal_part(kms_s3_resealer *rs, uint32_t prefix, int src, uint64_t data_off, uint64_t part_total)
{
    for (uint64_t i = 0, off = 0; off < part_total; i++) {
        size_t clen = part_total - off < KMS_S3_SSE_CHUNK ? (size_t)(part_total - off) : KMS_S3_SSE_CHUNK;
        uint8_t nonce[CL_GCM_NONCE_LEN], aad[64];
        kms_s3_sse_nonce(prefix, i, nonce);
        size_t an = kms_s3_sse_aad(i, part_total, aad);
        CL_GUARD(
            kms_s3_read_at(src, data_off + i * (KMS_S3_SSE_CHUNK + CL_GCM_TAG_LEN), rs->ct, clen + CL_GCM_TAG_LEN));
        if (cl_gcm_open(&rs->dec, nonce, aad, an, rs->ct, clen, rs->ct + clen, rs->pt) != CL_OK)
            CL_FAIL(CL_ERR_AUTH, "chunk %llu of part %u does not verify (damaged)", (unsigned long long)i, prefix);
        /* Re-chunked on the object's grid: a part need not be a multiple of the chunk size. */
        for (size_t used = 0; used < clen;) {
            size_t take = KMS_S3_SSE_CHUNK - rs->acc_len;
            if (take > clen - used) take = clen - used;
            memcpy(rs->acc + rs->acc_len, rs->pt + used, take);
            rs->acc_len += take;
            used += take;
            if (rs->acc_len == KMS_S3_SSE_CHUNK) CL_GUARD(kms_s3_reseal_flush(rs));
        }
        off += clen;
    }
    return CL_OK;
}

cl_status kms_s3_reseal_end(kms_s3_resealer *rs) { return kms_s3_reseal_flush(rs); }

void kms_s3_reseal_free(kms_s3_resealer *rs)
{
    if (rs->acc != NULL) cl_memzero(rs->acc, KMS_S3_SSE_CHUNK);
    if (rs->pt != NULL) cl_memzero(rs->pt, KMS_S3_SSE_CHUNK);
    cl_secure_free(rs->acc);
    cl_secure_free(rs->pt);
    free(rs->ct);
    if (rs->have_enc) cl_gcm_free(&rs->enc);
    if (rs->have_dec) cl_gcm_free(&rs->dec);
    memset(rs, 0, sizeof(*rs));
}
