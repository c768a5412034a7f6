/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The S3 REST API in cloister-kms (docs/s3.md): one request at a time through kms_s3_serve,
 * which authenticates it (SigV4 in the Authorization header, a presigned query string, or an
 * aws-chunked body: s3_http.c), routes it to the operation (s3_bucket.c, s3_object.c,
 * s3_multipart.c, s3_list.c), writes its audit line, and leaves the answer for server.c to send
 * once the line is on disk. Objects are files under DATA_DIR/s3 (s3_store.c); SSE-KMS objects
 * are sealed under a data key of a KMS key of this server (s3_sse.c).
 *
 * Wire protocol: "Amazon S3 REST API" (S3 API Reference), XML bodies and errors
 * (<Error><Code/><Message/><Resource/><RequestId/></Error>, "Error responses").
 */
#ifndef CLOISTER_KMS_S3_H
#define CLOISTER_KMS_S3_H

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/crypto.h"
#include "cloister/error.h"

#include "server.h"

#define KMS_S3_DOMAIN_DEFAULT "s3.localhost"
#define KMS_S3_MAX_BODY_DEFAULT ((size_t)64 << 20)
#define KMS_S3_BUCKET_MAX 63   /* "Bucket naming rules" */
#define KMS_S3_KEY_MAX 1024    /* "Creating object key names": up to 1,024 bytes of UTF-8 */
#define KMS_S3_META_MAX 2048   /* "Working with object metadata": user-defined metadata is limited to 2 KB */
#define KMS_S3_PARTS_MAX 10000 /* "Amazon S3 multipart upload limits" */
#define KMS_S3_PART_MIN ((uint64_t)5 << 20)
#define KMS_S3_LIST_MAX 1000
#define KMS_S3_SSE_CHUNK 65536 /* plaintext bytes per AES-256-GCM chunk of an SSE-KMS object */

/* One S3 request in progress. */
typedef struct kms_s3_req {
    kms_ctx *kms;
    struct evhttp_request *req;
    struct evkeyvalq *in;  /* request headers */
    struct evkeyvalq *out; /* response headers */
    const char *method;    /* GET, PUT, HEAD, DELETE, POST */
    char bucket[KMS_S3_BUCKET_MAX + 1];
    char *key; /* decoded object key (malloc'd); NULL: none */
    struct evkeyvalq query;
    const uint8_t *body; /* the payload (aws-chunked decoded) */
    size_t body_len;
    const kms_principal *who; /* NULL: anonymous; else &who_copy */
    kms_principal who_copy;   /* kms_identity_find's copy (with the secret: wiped when done) */
    char region[KMS_REGION_MAX + 1];
    char request_id[CL_UUID_TEXT_LEN + 1];
    int64_t now;
    kms_policy_env env;
    /* The answer: status, headers on `out`, body in `resp`. */
    int status;
    struct evbuffer *resp;
    /* The failure's S3 error code (NULL: from the status) and the resource it names. */
    const char *code;
    const char *operation;     /* "PutObject": the audit line's operation */
    char key_arn[KMS_ARN_MAX]; /* the SSE-KMS key used (audit) */
} kms_s3_req;

/* Raises an S3 error: HTTP status, error code ("NoSuchKey"), message. */
#define KMS_S3_FAIL(r, st, errcode, ...) \
    do { \
        (r)->status = (st); \
        (r)->code = (errcode); \
        CL_FAIL(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)
#define KMS_S3_FAIL_GOTO(r, st, errcode, ...) \
    do { \
        (r)->status = (st); \
        (r)->code = (errcode); \
        CL_FAIL_GOTO(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)

/* What server.c sends once the audit line (ending at audit_end; 0: none) is durable. */
typedef struct kms_s3_result {
    int status;
    struct evbuffer *body; /* owned: freed by whoever sends it */
    uint64_t audit_end;
    char request_id[CL_UUID_TEXT_LEN + 1];
    char outcome[64]; /* "ok" or the error code */
    char operation[48];
} kms_s3_result;

/*
 * Whether a request's header block (head: the request line and headers up to the empty line) is a
 * PUT or POST for S3 whose SigV4 signature (header or presigned) verifies from the headers alone:
 * server.c then lets its body be up to s3_max_body instead of max_body (docs/s3.md, "Limits").
 * Never fails; anything it cannot parse is "no" (evhttp then parses and answers it).
 */
bool kms_s3_preauth(kms_ctx *ctx, const uint8_t *head, size_t len, int64_t now);
/* Whether p holds a whole header block (request line, headers, the empty line; CRLF or LF line
 * ends); *end is its length. */
bool kms_s3_head_end(const uint8_t *p, size_t n, size_t *end);

/* Serves one request (s3_http.c). Never fails: every failure is an S3 error answer in res. */
void kms_s3_serve(kms_ctx *ctx, struct evhttp_request *req, const kms_policy_env *env, const char *request_id,
                  kms_s3_result *res);

/* --- helpers shared by the operation files (s3_util.c) -------------------------------------- */
const char *kms_s3_query(const kms_s3_req *r, const char *name); /* NULL: absent */
bool kms_s3_has_query(const kms_s3_req *r, const char *name);
void kms_s3_xml_text(struct evbuffer *b, const char *s);
/* Request XML (bounded, untrusted): the text of the next <tag>...</tag> after r's position,
 * entity-decoded into out (cap bytes). false when there is none. */
bool kms_s3_xml_next(cl_reader *r, const char *tag, cl_reader *content);
CL_MUST_USE cl_status kms_s3_xml_value(const cl_reader *content, char *out, size_t cap);
void kms_s3_http_date(int64_t t, char out[40]);
void kms_s3_iso_date(int64_t t, char out[32]);
/* (s3_authz.c) The one hook of authorization (docs/s3.md, "Authorization"): may r's caller do action on
 * resource_arn? AccessDenied otherwise (identity and bucket policies through kms_authorize). */
CL_MUST_USE cl_status kms_s3_authorize(kms_s3_req *r, const char *action, const char *resource_arn);

/* --- operations ----------------------------------------------------------------------------- */
typedef CL_MUST_USE cl_status (*kms_s3_op)(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_list_buckets(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_create_bucket(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_head_bucket(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_delete_bucket(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_get_bucket_location(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_put_bucket_policy(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_get_bucket_policy(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_delete_bucket_policy(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_put_bucket_encryption(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_get_bucket_encryption(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_delete_bucket_encryption(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_put_object(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_get_object(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_head_object(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_delete_object(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_delete_objects(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_copy_object(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_list_objects(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_list_objects_v2(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_create_multipart(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_upload_part(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_complete_multipart(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_abort_multipart(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_list_parts(kms_s3_req *r);
CL_MUST_USE cl_status kms_s3_list_multipart_uploads(kms_s3_req *r);

#endif
