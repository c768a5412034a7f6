/* SPDX-License-Identifier: Apache-2.0 */
/*
 * S3 over HTTP: addressing (path style /BUCKET/KEY and virtual-host style Host:
 * BUCKET.<s3_domain>), authentication (SigV4 in the Authorization header with
 * x-amz-content-sha256, presigned query strings, aws-chunked bodies), authorization (one hook:
 * kms_s3_authorize), routing to the operations, the audit line and S3's XML errors.
 *
 * References: Amazon S3 API Reference, "Authenticating Requests (AWS Signature Version 4)",
 * "Signature Calculations for the Authorization Header: Transferring Payload in a Single Chunk",
 * "Authenticating Requests: Using Query Parameters", "Virtual hosting of buckets", "Error
 * responses" (the codes and statuses below are that page's).
 */
#include <ctype.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cloister/audit.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/sigv4.h"

#include "identity.h"
#include "policy.h"
#include "route.h"
#include "s3.h"
#include "s3_chunked.h"
#include "s3_store.h"

#define KMS_S3_MAX_HEADERS 64
#define KMS_S3_PRESIGN_MAX_EXPIRES 604800 /* "X-Amz-Expires ... Maximum value: 604800 (seven days)" */

static const char kms_s3_unsigned[] = "UNSIGNED-PAYLOAD";
static const char kms_s3_streaming[] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";

/* --- authentication ----------------------------------------------------------------------------- */

/* The principal of an access key id (and its session token, for STS credentials), from the
 * store's identities (identity.h), as every service finds it; a copy in r, wiped when done. */
static CL_MUST_USE cl_status kms_s3_principal(kms_s3_req *r, const char *akid, const kms_principal **who)
{
    const char *token = evhttp_find_header(r->in, "X-Amz-Security-Token");
    if (token == NULL) token = kms_s3_query(r, "X-Amz-Security-Token");
    cl_status rc = kms_identity_find(r->kms, akid, token, r->now, &r->who_copy);
    if (rc == CL_ERR_EXPIRED) KMS_S3_FAIL(r, 400, "ExpiredToken", "The provided token has expired.");
    if (rc == CL_ERR_DENIED && token != NULL)
        KMS_S3_FAIL(r, 400, "InvalidToken", "The provided token is malformed or otherwise invalid.");
    if (rc == CL_ERR_DENIED)
        KMS_S3_FAIL(r, 403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
    CL_GUARD(rc);
    *who = &r->who_copy;
    return CL_OK;
}

static CL_MUST_USE cl_status kms_s3_headers(kms_s3_req *r, cl_sigv4_header *h, size_t *n)
{
    *n = 0;
    for (struct evkeyval *kv = r->in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        if (*n == KMS_S3_MAX_HEADERS)
            KMS_S3_FAIL(r, 400, "InvalidRequest", "too many headers (at most %d)", KMS_S3_MAX_HEADERS);
        h[*n].key = kv->key;
        h[*n].value = kv->value;
        (*n)++;
    }
    return CL_OK;
}

/* Checks the credential scope of a parsed Authorization (or presigned credential). */
static CL_MUST_USE cl_status kms_s3_scope(kms_s3_req *r, const cl_sigv4_auth *a, const char *date, const char *errcode)
{
    if (strcmp(a->service, "s3") != 0)
        KMS_S3_FAIL(r, 400, errcode, "Credential should be scoped to correct service: 's3'.");
    if (!kms_config_region_allowed(r->kms->cfg, a->region) || strlen(a->region) > KMS_REGION_MAX)
        KMS_S3_FAIL(r, 400, errcode, "the region '%s' is wrong; this server does not answer it", a->region);
    if (strncmp(a->date, date, 8) != 0)
        KMS_S3_FAIL(r, 400, errcode, "Credential should be scoped to a valid date: %s, not %s", a->date, date);
    (void)snprintf(r->region, sizeof(r->region), "%s", a->region);
    return CL_OK;
}

/* Header signature ("Authenticating Requests: Using the Authorization Header"). The payload hash
 * is x-amz-content-sha256, which S3 requires: a hash the body must match, UNSIGNED-PAYLOAD, or
 * the streaming marker (the body is then aws-chunked, each chunk signed). */
/* The request's signature recomputed with who's secret and compared in constant time with the
 * one sent (hex); the signing key is left in key (the caller wipes it: chunk signatures chain
 * from it). A mismatch is S3's SignatureDoesNotMatch. */
static CL_MUST_USE cl_status kms_s3_check_signature(kms_s3_req *r, const kms_principal *who, const cl_sigv4_request *sr,
                                                    const char *date8, const char *sent, uint8_t key[CL_SIGV4_KEY_LEN])
{
    char sig[CL_SIGV4_SIG_HEX_LEN + 1];
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(cl_sigv4_signing_key(who->secret, date8, sr->region, sr->service, key));
    if (cl_sigv4_s3_signature_with_key(key, sr, sig) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature you provided: %s",
                         cl_error_message());
    if (!cl_ct_equal(sig, sent, CL_SIGV4_SIG_HEX_LEN))
        KMS_S3_FAIL_GOTO(r, 403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match the signature you provided. Check your "
                         "key and signing method.");
out:
    return rc;
}

static CL_MUST_USE cl_status kms_s3_auth_header(kms_s3_req *r, const char *authz, const char *raw_path,
                                                const char *raw_query, const uint8_t *raw, size_t raw_len,
                                                cl_buf *decoded)
{
    cl_status rc = CL_OK;
    cl_sigv4_auth a;
    cl_buf uri, query;
    cl_buf_init(&uri, 16 << 10);
    cl_buf_init(&query, 64 << 10);
    uint8_t key[CL_SIGV4_KEY_LEN];
    cl_memzero(key, sizeof(key));
    if (strncmp(authz, "AWS ", 4) == 0)
        KMS_S3_FAIL_GOTO(r, 400, "InvalidRequest",
                         "The authorization mechanism you have provided is not supported. Please use "
                         "AWS4-HMAC-SHA256.");
    if (cl_sigv4_parse_authorization(authz, strlen(authz), &a) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 400, "AuthorizationHeaderMalformed", "The authorization header is malformed; %s",
                         cl_error_message());
    const char *date = evhttp_find_header(r->in, "X-Amz-Date");
    if (date == NULL)
        KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
    int64_t t;
    if (cl_sigv4_parse_amz_date(date, strlen(date), &t) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header");
    CL_GUARD_GOTO(kms_s3_scope(r, &a, date, "AuthorizationHeaderMalformed"));
    const kms_principal *who;
    CL_GUARD_GOTO(kms_s3_principal(r, a.access_key_id, &who));
    if (t < r->now - KMS_SIGNATURE_SKEW || t > r->now + KMS_SIGNATURE_SKEW)
        KMS_S3_FAIL_GOTO(r, 403, "RequestTimeTooSkewed",
                         "The difference between the request time and the current time is too large.");
    const char *sha = evhttp_find_header(r->in, "x-amz-content-sha256");
    if (sha == NULL)
        KMS_S3_FAIL_GOTO(r, 400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256");
    bool hex = strlen(sha) == 64 && strspn(sha, "0123456789abcdef") == 64;
    if (!hex && strcmp(sha, kms_s3_unsigned) != 0 && strcmp(sha, kms_s3_streaming) != 0) {
        if (strncmp(sha, "STREAMING-", 10) == 0)
            KMS_S3_FAIL_GOTO(r, 501, "NotImplemented",
                             "x-amz-content-sha256 %s is not implemented by this server: use "
                             "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, UNSIGNED-PAYLOAD or the body's SHA-256",
                             sha);
        KMS_S3_FAIL_GOTO(r, 400, "InvalidArgument",
                         "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a "
                         "valid sha256 value.");
    }
    cl_sigv4_header h[KMS_S3_MAX_HEADERS];
    size_t nh;
    CL_GUARD_GOTO(kms_s3_headers(r, h, &nh));
    if (cl_sigv4_check_signed_headers(h, nh, a.signed_headers) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "%s", cl_error_message());
    if (cl_sigv4_s3_canonical_uri(raw_path, &uri) != CL_OK || cl_sigv4_s3_canonical_query(raw_query, NULL, &query))
        KMS_S3_FAIL_GOTO(r, 400, "InvalidURI", "Couldn't parse the specified URI: %s", cl_error_message());
    cl_sigv4_request sr = {.method = r->method,
                           .path = cl_buf_cstr(&uri),
                           .query = cl_buf_cstr(&query),
                           .headers = h,
                           .n_headers = nh,
                           .signed_headers = a.signed_headers,
                           .payload_sha256_hex = sha,
                           .amz_date = date,
                           .region = a.region,
                           .service = a.service};
    CL_GUARD_GOTO(kms_s3_check_signature(r, who, &sr, a.date, a.signature, key));
    r->who = who;
    if (raw == NULL) goto out; /* headers only (kms_s3_preauth): the body is not here yet */
    if (hex) {
        uint8_t d[CL_SHA256_LEN];
        char ph[65];
        CL_GUARD_GOTO(cl_sha256(raw, raw_len, d));
        (void)cl_hex_encode(d, sizeof(d), ph, sizeof(ph));
        if (strcmp(ph, sha) != 0)
            KMS_S3_FAIL_GOTO(r, 400, "XAmzContentSHA256Mismatch",
                             "The provided 'x-amz-content-sha256' header does not match what was computed.");
    } else if (strcmp(sha, kms_s3_streaming) == 0) {
        const char *dl = evhttp_find_header(r->in, "x-amz-decoded-content-length");
        uint64_t decoded_len;
        if (dl == NULL || cl_parse_uint(dl, 0, (uint64_t)r->kms->cfg->s3_max_body, "x-amz-decoded-content-length",
                                        &decoded_len) != CL_OK)
            KMS_S3_FAIL_GOTO(r, 411, "MissingContentLength",
                             "You must provide the Content-Length HTTP header: x-amz-decoded-content-length, 0..%zu, "
                             "is required with STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                             r->kms->cfg->s3_max_body);
        char scope[CL_SIGV4_MAX_FIELD * 2 + 64];
        (void)snprintf(scope, sizeof(scope), "%.8s/%s/%s/aws4_request", a.date, a.region, a.service);
        kms_s3_chunk_keys ck = {.signing_key = key, .amz_date = date, .scope = scope, .seed_signature = a.signature};
        cl_status drc = kms_s3_chunked_decode(raw, raw_len, &ck, decoded_len, decoded);
        if (drc == CL_ERR_DENIED) KMS_S3_FAIL_GOTO(r, 403, "SignatureDoesNotMatch", "%s", cl_error_message());
        if (drc != CL_OK) KMS_S3_FAIL_GOTO(r, 400, "IncompleteBody", "%s", cl_error_message());
        r->body = decoded->data;
        r->body_len = decoded->len;
    }
out:
    cl_memzero(key, sizeof(key));
    cl_buf_free(&uri);
    cl_buf_free(&query);
    return rc;
}

/* A query parameter of a presigned URL, decoded into out. */
static CL_MUST_USE cl_status kms_s3_presign_param(kms_s3_req *r, const char *name, char *out, size_t cap)
{
    const char *v = kms_s3_query(r, name);
    if (v == NULL)
        KMS_S3_FAIL(r, 400, "AuthorizationQueryParametersError",
                    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters: %s is missing",
                    name);
    if (strlen(v) >= cap) KMS_S3_FAIL(r, 400, "AuthorizationQueryParametersError", "%s is too long", name);
    (void)snprintf(out, cap, "%s", v);
    return CL_OK;
}

/* "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)": the payload is
 * UNSIGNED-PAYLOAD, the canonical query string is every parameter but X-Amz-Signature. */
static CL_MUST_USE cl_status kms_s3_auth_presigned(kms_s3_req *r, const char *raw_path, const char *raw_query)
{
    cl_status rc = CL_OK;
    cl_buf uri, query, authz;
    cl_buf_init(&uri, 16 << 10);
    cl_buf_init(&query, 64 << 10);
    cl_buf_init(&authz, 8192);
    uint8_t key[CL_SIGV4_KEY_LEN];
    cl_memzero(key, sizeof(key));
    char alg[32], cred[600], date[20], expires[16], signed_headers[CL_SIGV4_MAX_SIGNED_HEADERS + 1], sigq[80];
    CL_GUARD_GOTO(kms_s3_presign_param(r, "X-Amz-Algorithm", alg, sizeof(alg)));
    if (strcmp(alg, CL_SIGV4_ALGORITHM) != 0)
        KMS_S3_FAIL_GOTO(r, 400, "AuthorizationQueryParametersError",
                         "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"");
    CL_GUARD_GOTO(kms_s3_presign_param(r, "X-Amz-Credential", cred, sizeof(cred)));
    CL_GUARD_GOTO(kms_s3_presign_param(r, "X-Amz-Date", date, sizeof(date)));
    CL_GUARD_GOTO(kms_s3_presign_param(r, "X-Amz-Expires", expires, sizeof(expires)));
    CL_GUARD_GOTO(kms_s3_presign_param(r, "X-Amz-SignedHeaders", signed_headers, sizeof(signed_headers)));
    CL_GUARD_GOTO(kms_s3_presign_param(r, "X-Amz-Signature", sigq, sizeof(sigq)));
    /* The credential and the rest through the Authorization header's (bounded) parser. */
    cl_sigv4_auth a;
    CL_GUARD_GOTO(cl_buf_printf(&authz, "%s Credential=%s, SignedHeaders=%s, Signature=%s", CL_SIGV4_ALGORITHM, cred,
                                signed_headers, sigq));
    if (cl_sigv4_parse_authorization((const char *)authz.data, authz.len, &a) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 400, "AuthorizationQueryParametersError", "%s", cl_error_message());
    int64_t t;
    if (cl_sigv4_parse_amz_date(date, strlen(date), &t) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 400, "AuthorizationQueryParametersError",
                         "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
    uint64_t exp;
    if (cl_parse_uint(expires, 0, UINT32_MAX, "X-Amz-Expires", &exp) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number");
    if (exp > KMS_S3_PRESIGN_MAX_EXPIRES)
        KMS_S3_FAIL_GOTO(r, 400, "AuthorizationQueryParametersError",
                         "X-Amz-Expires must be less than a week (in seconds) that is 604800");
    CL_GUARD_GOTO(kms_s3_scope(r, &a, date, "AuthorizationQueryParametersError"));
    const kms_principal *who;
    CL_GUARD_GOTO(kms_s3_principal(r, a.access_key_id, &who));
    if (r->now > t + (int64_t)exp) KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "Request has expired");
    if (t > r->now + KMS_SIGNATURE_SKEW) KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "Request is not valid yet");
    cl_sigv4_header h[KMS_S3_MAX_HEADERS];
    size_t nh;
    CL_GUARD_GOTO(kms_s3_headers(r, h, &nh));
    if (cl_sigv4_check_signed_headers(h, nh, a.signed_headers) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "%s", cl_error_message());
    if (cl_sigv4_s3_canonical_uri(raw_path, &uri) != CL_OK ||
        cl_sigv4_s3_canonical_query(raw_query, "X-Amz-Signature", &query) != CL_OK)
        KMS_S3_FAIL_GOTO(r, 400, "InvalidURI", "Couldn't parse the specified URI: %s", cl_error_message());
    const char *sha = evhttp_find_header(r->in, "x-amz-content-sha256");
    cl_sigv4_request sr = {.method = r->method,
                           .path = cl_buf_cstr(&uri),
                           .query = cl_buf_cstr(&query),
                           .headers = h,
                           .n_headers = nh,
                           .signed_headers = a.signed_headers,
                           .payload_sha256_hex =
                               sha != NULL && strcmp(sha, kms_s3_unsigned) == 0 ? sha : kms_s3_unsigned,
                           .amz_date = date,
                           .region = a.region,
                           .service = a.service};
    CL_GUARD_GOTO(kms_s3_check_signature(r, who, &sr, a.date, a.signature, key));
    r->who = who;
out:
    cl_memzero(key, sizeof(key));
    cl_buf_free(&uri);
    cl_buf_free(&query);
    cl_buf_free(&authz);
    return rc;
}

/* --- addressing and routing --------------------------------------------------------------------- */

/* "Bucket naming rules": 3..63 characters of a-z 0-9 . -, beginning and ending with a letter or
 * digit, no "..", not an IPv4 address. A name that passes is one safe path component. */
static bool kms_s3_bucket_name_ok(const char *b, size_t n)
{
    if (n < 3 || n > KMS_S3_BUCKET_MAX) return false;
    bool all_digits_dots = true;
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
        if (c != '.' && !(c >= '0' && c <= '9')) all_digits_dots = false;
        if (c == '.' && i + 1 < n && (b[i + 1] == '.' || b[i + 1] == '-')) return false;
        if (c == '-' && i + 1 < n && b[i + 1] == '.') return false;
    }
    if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1])) return false;
    return !all_digits_dots;
}

/* Bucket and key from the Host header and the path (S3 User Guide, "Virtual hosting of buckets"). */
static CL_MUST_USE cl_status kms_s3_address(kms_s3_req *r, const char *raw_path)
{
    size_t plen = 0;
    char *path = evhttp_uridecode(raw_path, 0, &plen);
    CL_ENSURE(path != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = CL_OK;
    if (plen != strlen(path)) KMS_S3_FAIL_GOTO(r, 400, "InvalidURI", "Couldn't parse the specified URI: a NUL byte");
    const char *host = evhttp_find_header(r->in, "Host");
    const char *domain = r->kms->cfg->s3_domain;
    size_t dn = strlen(domain);
    const char *rest = path[0] == '/' ? path + 1 : path;
    if (host != NULL) {
        size_t hn = strcspn(host, ":");
        if (host[0] == '[') hn = 0; /* an IPv6 literal is never a bucket's host */
        if (hn > dn + 1 && host[hn - dn - 1] == '.' && strncasecmp(host + hn - dn, domain, dn) == 0) {
            size_t bn = hn - dn - 1;
            if (!kms_s3_bucket_name_ok(host, bn) || bn > KMS_S3_BUCKET_MAX)
                KMS_S3_FAIL_GOTO(r, 400, "InvalidBucketName", "The specified bucket is not valid.");
            memcpy(r->bucket, host, bn);
            r->bucket[bn] = '\0';
            if (rest[0] != '\0') {
                r->key = strdup(rest);
                CL_ENSURE_GOTO(r->key != NULL, CL_ERR_NOMEM, "out of memory");
            }
            goto out;
        }
    }
    if (rest[0] == '\0') goto out; /* the service: ListBuckets */
    size_t bn = strcspn(rest, "/");
    if (!kms_s3_bucket_name_ok(rest, bn)) {
        /* CreateBucket hears it as InvalidBucketName; every other operation cannot find it. */
        if (strcmp(r->method, "PUT") == 0 && rest[bn] == '\0')
            KMS_S3_FAIL_GOTO(r, 400, "InvalidBucketName", "The specified bucket is not valid.");
        KMS_S3_FAIL_GOTO(r, 404, "NoSuchBucket", "The specified bucket does not exist");
    }
    memcpy(r->bucket, rest, bn);
    r->bucket[bn] = '\0';
    if (rest[bn] == '/' && rest[bn + 1] != '\0') {
        r->key = strdup(rest + bn + 1);
        CL_ENSURE_GOTO(r->key != NULL, CL_ERR_NOMEM, "out of memory");
    }
out:
    if (rc == CL_OK && r->key != NULL && strlen(r->key) > KMS_S3_KEY_MAX)
        KMS_S3_FAIL_GOTO(r, 400, "KeyTooLongError", "Your key is too long (at most %d bytes).", KMS_S3_KEY_MAX);
    free(path);
    return rc;
}

typedef struct kms_s3_route {
    const char *method;
    int target;              /* 0: service, 1: bucket, 2: object */
    const char *subresource; /* query parameter that selects it; NULL: none */
    const char *name;
    kms_s3_op fn;
    const char *action; /* IAM action ("Actions, resources, and condition keys for Amazon S3") */
} kms_s3_route;

/* First match wins: the rows with a subresource come before the plain one. */
static const kms_s3_route kms_s3_routes[] = {
    {"GET", 0, NULL, "ListBuckets", kms_s3_list_buckets, "s3:ListAllMyBuckets"},
    {"PUT", 1, "policy", "PutBucketPolicy", kms_s3_put_bucket_policy, "s3:PutBucketPolicy"},
    {"PUT", 1, "encryption", "PutBucketEncryption", kms_s3_put_bucket_encryption, "s3:PutEncryptionConfiguration"},
    {"PUT", 1, NULL, "CreateBucket", kms_s3_create_bucket, "s3:CreateBucket"},
    {"HEAD", 1, NULL, "HeadBucket", kms_s3_head_bucket, "s3:ListBucket"},
    {"GET", 1, "location", "GetBucketLocation", kms_s3_get_bucket_location, "s3:GetBucketLocation"},
    {"GET", 1, "policy", "GetBucketPolicy", kms_s3_get_bucket_policy, "s3:GetBucketPolicy"},
    {"GET", 1, "encryption", "GetBucketEncryption", kms_s3_get_bucket_encryption, "s3:GetEncryptionConfiguration"},
    {"GET", 1, "uploads", "ListMultipartUploads", kms_s3_list_multipart_uploads, "s3:ListBucketMultipartUploads"},
    {"GET", 1, "list-type", "ListObjectsV2", kms_s3_list_objects_v2, "s3:ListBucket"},
    {"GET", 1, NULL, "ListObjects", kms_s3_list_objects, "s3:ListBucket"},
    {"DELETE", 1, "policy", "DeleteBucketPolicy", kms_s3_delete_bucket_policy, "s3:DeleteBucketPolicy"},
    {"DELETE", 1, "encryption", "DeleteBucketEncryption", kms_s3_delete_bucket_encryption,
     "s3:PutEncryptionConfiguration"},
    {"DELETE", 1, NULL, "DeleteBucket", kms_s3_delete_bucket, "s3:DeleteBucket"},
    {"POST", 1, "delete", "DeleteObjects", kms_s3_delete_objects, "s3:DeleteObject"},
    {"PUT", 2, "uploadId", "UploadPart", kms_s3_upload_part, "s3:PutObject"},
    {"PUT", 2, NULL, "PutObject", kms_s3_put_object, "s3:PutObject"},
    {"GET", 2, "uploadId", "ListParts", kms_s3_list_parts, "s3:ListMultipartUploadParts"},
    {"GET", 2, NULL, "GetObject", kms_s3_get_object, "s3:GetObject"},
    {"HEAD", 2, NULL, "HeadObject", kms_s3_head_object, "s3:GetObject"},
    {"DELETE", 2, "uploadId", "AbortMultipartUpload", kms_s3_abort_multipart, "s3:AbortMultipartUpload"},
    {"DELETE", 2, NULL, "DeleteObject", kms_s3_delete_object, "s3:DeleteObject"},
    {"POST", 2, "uploads", "CreateMultipartUpload", kms_s3_create_multipart, "s3:PutObject"},
    {"POST", 2, "uploadId", "CompleteMultipartUpload", kms_s3_complete_multipart, "s3:PutObject"},
};

/* Subresources of S3 this server does not implement: answered NotImplemented rather than taken
 * for the plain operation (a GET ?acl must not return the object). */
static const char *const kms_s3_unimplemented[] = {
    "acl",          "tagging",           "versioning",        "versions",
    "cors",         "lifecycle",         "website",           "logging",
    "notification", "replication",       "accelerate",        "requestPayment",
    "object-lock",  "legal-hold",        "retention",         "restore",
    "select",       "torrent",           "analytics",         "inventory",
    "metrics",      "ownershipControls", "publicAccessBlock", "intelligent-tiering",
    "policyStatus", "attributes",
};

static const kms_s3_route *kms_s3_find_route(kms_s3_req *r, const char **unimplemented)
{
    int target = r->bucket[0] == '\0' ? 0 : r->key == NULL ? 1 : 2;
    *unimplemented = NULL;
    for (size_t i = 0; i < sizeof(kms_s3_unimplemented) / sizeof(kms_s3_unimplemented[0]); i++) {
        if (kms_s3_has_query(r, kms_s3_unimplemented[i])) {
            *unimplemented = kms_s3_unimplemented[i];
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof(kms_s3_routes) / sizeof(kms_s3_routes[0]); i++) {
        const kms_s3_route *rt = &kms_s3_routes[i];
        if (rt->target != target || strcmp(rt->method, r->method) != 0) continue;
        if (rt->subresource != NULL && !kms_s3_has_query(r, rt->subresource)) continue;
        return rt;
    }
    return NULL;
}

/* --- the request -------------------------------------------------------------------------------- */

/* The query string's parameters, decoded ('+' as a space, as in a form), a bare name as "" (S3's
 * subresources: ?uploads, ?location). evhttp_parse_query_str refuses bare names. */
static CL_MUST_USE cl_status kms_s3_parse_query(kms_s3_req *r, const char *raw)
{
    if (raw == NULL) return CL_OK;
    cl_reader rd = cl_reader_make(raw, strlen(raw));
    size_t count = 0;
    while (cl_reader_remaining(&rd) > 0) {
        cl_reader pair, name;
        bool found;
        cl_reader_until(&rd, '&', &pair, &found);
        if (found) CL_GUARD(cl_reader_skip(&rd, 1));
        if (cl_reader_remaining(&pair) == 0) continue;
        if (++count > 128) KMS_S3_FAIL(r, 400, "InvalidURI", "Couldn't parse the specified URI: over 128 parameters");
        cl_reader_until(&pair, '=', &name, &found);
        if (found) CL_GUARD(cl_reader_skip(&pair, 1));
        const uint8_t *np, *vp;
        size_t nn, vn;
        cl_reader_rest(&name, &np, &nn);
        cl_reader_rest(&pair, &vp, &vn);
        char *n = strndup(np != NULL ? (const char *)np : "", nn), *v = strndup(vp != NULL ? (const char *)vp : "", vn);
        size_t dn = 0, dv = 0;
        char *dname = n != NULL ? evhttp_uridecode(n, 1, &dn) : NULL,
             *dval = v != NULL ? evhttp_uridecode(v, 1, &dv) : NULL;
        bool ok = dname != NULL && dval != NULL && dn == strlen(dname) && dv == strlen(dval) && dname[0] != '\0';
        if (ok) ok = evhttp_add_header(&r->query, dname, dval) == 0;
        free(n);
        free(v);
        free(dname);
        free(dval);
        if (!ok) KMS_S3_FAIL(r, 400, "InvalidURI", "Couldn't parse the specified URI: its query string");
    }
    return CL_OK;
}

static const char *kms_s3_default_code(int status)
{
    switch (status) {
    case 403: return "AccessDenied";
    case 404: return "NoSuchKey";
    case 405: return "MethodNotAllowed";
    case 501: return "NotImplemented";
    default: return status >= 500 ? "InternalError" : "InvalidRequest";
    }
}

static void kms_s3_error_body(kms_s3_req *r, const char *code, const char *message)
{
    evbuffer_drain(r->resp, evbuffer_get_length(r->resp));
    /* Content-Range stays: a 416 names the object's size in it (RFC 7233 4.4). */
    char range[96] = "";
    const char *cr = evhttp_find_header(r->out, "Content-Range");
    if (cr != NULL && r->status == 416) (void)snprintf(range, sizeof(range), "%s", cr);
    evhttp_clear_headers(r->out);
    evhttp_add_header(r->out, "x-amz-request-id", r->request_id);
    if (range[0] != '\0') evhttp_add_header(r->out, "Content-Range", range);
    if (strcmp(r->method, "HEAD") == 0) {
        evhttp_add_header(r->out, "Content-Length", "0");
        return;
    }
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    evbuffer_add_printf(r->resp, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>%s</Code><Message>", code);
    kms_s3_xml_text(r->resp, message);
    evbuffer_add_printf(r->resp, "</Message>");
    if (r->bucket[0] != '\0') {
        evbuffer_add_printf(r->resp, "<BucketName>");
        kms_s3_xml_text(r->resp, r->bucket);
        evbuffer_add_printf(r->resp, "</BucketName>");
    }
    if (r->key != NULL) {
        evbuffer_add_printf(r->resp, "<Key>");
        kms_s3_xml_text(r->resp, r->key);
        evbuffer_add_printf(r->resp, "</Key>");
    }
    evbuffer_add_printf(r->resp, "<Resource>/");
    kms_s3_xml_text(r->resp, r->bucket);
    if (r->key != NULL) {
        evbuffer_add_printf(r->resp, "/");
        kms_s3_xml_text(r->resp, r->key);
    }
    evbuffer_add_printf(r->resp, "</Resource><RequestId>%s</RequestId></Error>", r->request_id);
}

static bool kms_s3_changes_state(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

void kms_s3_serve(kms_ctx *ctx, struct evhttp_request *req, const kms_policy_env *env, const char *request_id,
                  kms_s3_result *res)
{
    kms_s3_req r;
    memset(&r, 0, sizeof(r));
    memset(res, 0, sizeof(*res));
    r.query.tqh_first = NULL;
    r.query.tqh_last = &r.query.tqh_first; /* TAILQ_INIT */
    r.kms = ctx;
    r.req = req;
    r.in = evhttp_request_get_input_headers(req);
    r.out = evhttp_request_get_output_headers(req);
    r.env = *env;
    r.now = env->now;
    r.status = 200;
    r.operation = "Unknown";
    r.resp = evbuffer_new();
    cl_buf decoded;
    cl_buf_init(&decoded, ctx->cfg->s3_max_body + 1);
    (void)snprintf(r.request_id, sizeof(r.request_id), "%s", request_id);
    cl_status rc = CL_OK;
    const char *resource_arn = NULL;
    char arn[KMS_S3_KEY_MAX + KMS_S3_BUCKET_MAX + 32] = "";
    switch (evhttp_request_get_command(req)) {
    case EVHTTP_REQ_GET: r.method = "GET"; break;
    case EVHTTP_REQ_PUT: r.method = "PUT"; break;
    case EVHTTP_REQ_HEAD: r.method = "HEAD"; break;
    case EVHTTP_REQ_DELETE: r.method = "DELETE"; break;
    case EVHTTP_REQ_POST: r.method = "POST"; break;
    default: r.method = "OTHER"; break;
    }
    CL_ENSURE_GOTO(r.resp != NULL, CL_ERR_NOMEM, "out of memory");
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw_path = uri != NULL && evhttp_uri_get_path(uri) != NULL ? evhttp_uri_get_path(uri) : "/";
    const char *raw_query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    CL_GUARD_GOTO(kms_s3_parse_query(&r, raw_query));
    if (strcmp(r.method, "OTHER") == 0)
        KMS_S3_FAIL_GOTO(&r, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(ib);
    const uint8_t *raw = blen > 0 ? evbuffer_pullup(ib, -1) : (const uint8_t *)"";
    CL_ENSURE_GOTO(raw != NULL, CL_ERR_NOMEM, "out of memory for the request body");
    r.body = raw;
    r.body_len = blen;
    CL_GUARD_GOTO(kms_s3_address(&r, raw_path));
    const char *authz = evhttp_find_header(r.in, "Authorization");
    if (authz != NULL)
        CL_GUARD_GOTO(kms_s3_auth_header(&r, authz, raw_path, raw_query, raw, blen, &decoded));
    else if (kms_s3_has_query(&r, "X-Amz-Signature") || kms_s3_has_query(&r, "X-Amz-Credential"))
        CL_GUARD_GOTO(kms_s3_auth_presigned(&r, raw_path, raw_query));
    else if (kms_s3_has_query(&r, "AWSAccessKeyId") || kms_s3_has_query(&r, "Signature"))
        KMS_S3_FAIL_GOTO(&r, 400, "InvalidRequest",
                         "The authorization mechanism you have provided is not supported. Please use "
                         "AWS4-HMAC-SHA256 (a presigned URL of Signature Version 2: sign it with s3v4).");
    if (r.region[0] == '\0') (void)snprintf(r.region, sizeof(r.region), "%s", ctx->cfg->region);
    r.env.region = r.region;
    const char *unimplemented;
    const kms_s3_route *rt = kms_s3_find_route(&r, &unimplemented);
    if (unimplemented != NULL)
        KMS_S3_FAIL_GOTO(&r, 501, "NotImplemented",
                         "The ?%s subresource is not implemented by this server (docs/s3.md)", unimplemented);
    if (rt == NULL)
        KMS_S3_FAIL_GOTO(&r, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.");
    r.operation = rt->name;
    if (r.key != NULL)
        (void)snprintf(arn, sizeof(arn), "arn:aws:s3:::%s/%s", r.bucket, r.key);
    else if (r.bucket[0] != '\0')
        (void)snprintf(arn, sizeof(arn), "arn:aws:s3:::%s", r.bucket);
    resource_arn = arn[0] ? arn : NULL;
    CL_GUARD_GOTO(kms_s3_authorize(&r, rt->action, arn[0] ? arn : "*"));
    if (kms_s3_changes_state(r.method)) {
        /* Its record first, durable, as the KMS's state changes (docs/security.md, finding 2). */
        cl_audit_event ev = {.time = r.now,
                             .request_id = r.request_id,
                             .principal = r.who != NULL ? r.who->arn : "anonymous",
                             .operation = rt->name,
                             .resource = resource_arn,
                             .outcome = "started"};
        if (cl_audit_append(ctx->audit, &ev) != CL_OK) {
            CL_LOG_ERROR("%s %s: not run: %s", rt->name, r.request_id, cl_error_message());
            KMS_S3_FAIL_GOTO(&r, 500, "InternalError",
                             "The request was not run because its audit record could not be written; the server's "
                             "log says why.");
        }
    }
    rc = rt->fn(&r);
out:
    if (rc != CL_OK) {
        if (r.status < 300) r.status = 500;
        const char *code = r.code != NULL ? r.code : kms_s3_default_code(r.status);
        if (r.status >= 500 && r.status != 501)
            CL_LOG_ERROR("S3 %s %s: %s", r.operation, r.request_id, cl_error_message());
        kms_s3_error_body(&r, code,
                          r.status >= 500 && r.code == NULL ? "We encountered an internal error. Please try again."
                                                            : cl_error_message());
        (void)snprintf(res->outcome, sizeof(res->outcome), "%s", code);
    } else {
        (void)snprintf(res->outcome, sizeof(res->outcome), "ok");
        evhttp_add_header(r.out, "x-amz-request-id", r.request_id);
    }
    cl_audit_event ev = {.time = r.now,
                         .request_id = r.request_id,
                         .principal = r.who != NULL ? r.who->arn : "anonymous",
                         .operation = r.operation,
                         .key_arn = r.key_arn[0] ? r.key_arn : NULL,
                         .resource = resource_arn,
                         .outcome = res->outcome};
    if (cl_audit_write(ctx->audit, &ev, &res->audit_end) != CL_OK) {
        CL_LOG_ERROR("S3 %s %s: not answered: %s", r.operation, r.request_id, cl_error_message());
        r.status = 500;
        kms_s3_error_body(&r, "InternalError",
                          "The request was not answered because its audit record could not be written; the server's "
                          "log says why.");
        res->audit_end = 0;
        (void)snprintf(res->outcome, sizeof(res->outcome), "InternalError");
    }
    res->status = r.status;
    res->body = r.resp;
    (void)snprintf(res->request_id, sizeof(res->request_id), "%s", r.request_id);
    (void)snprintf(res->operation, sizeof(res->operation), "%s", r.operation);
    evhttp_clear_headers(&r.query);
    free(r.key);
    cl_buf_free(&decoded);
    cl_memzero(&r.who_copy, sizeof(r.who_copy)); /* holds the principal's secret */
    cl_error_clear();
}

/* --- the header block, before the body (server.c's read callback) ------------------------------- */

/* One line of the header block: up to LF, without the CR before it. */
static bool kms_s3_head_line(cl_reader *r, cl_reader *line)
{
    bool found;
    cl_reader_until(r, '\n', line, &found);
    if (!found || cl_reader_skip(r, 1) != CL_OK) return false;
    const uint8_t *p;
    size_t n;
    cl_reader_rest(line, &p, &n);
    if (n > 0 && p[n - 1] == '\r') *line = cl_reader_make(p, n - 1);
    return true;
}

static char *kms_s3_reader_dup(const cl_reader *r)
{
    const uint8_t *p;
    size_t n;
    cl_reader_rest(r, &p, &n);
    if (n > 0 && memchr(p, 0, n) != NULL) return NULL;
    return strndup(p != NULL ? (const char *)p : "", n);
}

bool kms_s3_head_end(const uint8_t *p, size_t n, size_t *end)
{
    cl_reader r = cl_reader_make(p, n), line;
    bool started = false;
    while (kms_s3_head_line(&r, &line)) {
        /* Empty lines before the request line are skipped (RFC 7230 3.5), as evhttp skips them. */
        if (cl_reader_remaining(&line) == 0) {
            if (!started) continue;
            *end = cl_reader_offset(&r);
            return true;
        }
        started = true;
    }
    return false;
}

bool kms_s3_preauth(kms_ctx *ctx, const uint8_t *head, size_t len, int64_t now)
{
    kms_s3_req r;
    memset(&r, 0, sizeof(r));
    struct evkeyvalq in;
    in.tqh_first = NULL;
    in.tqh_last = &in.tqh_first;
    r.query.tqh_first = NULL;
    r.query.tqh_last = &r.query.tqh_first;
    r.kms = ctx;
    r.in = &in;
    r.now = now;
    char *method = NULL, *target = NULL;
    struct evhttp_uri *uri = NULL;
    bool ok = false;
    cl_reader rd = cl_reader_make(head, len), line, word;
    bool found;
    while (cl_reader_starts_with(&rd, "\r\n", 2) || cl_reader_next_is(&rd, '\n')) /* RFC 7230 3.5 */
        if (cl_reader_skip(&rd, cl_reader_next_is(&rd, '\n') ? 1 : 2) != CL_OK) goto out;
    if (!kms_s3_head_line(&rd, &line)) goto out;
    cl_reader_until(&line, ' ', &word, &found);
    if (!found || cl_reader_skip(&line, 1) != CL_OK || (method = kms_s3_reader_dup(&word)) == NULL) goto out;
    cl_reader_until(&line, ' ', &word, &found);
    if (!found || (target = kms_s3_reader_dup(&word)) == NULL) goto out;
    /* Only a request with a body has anything to gain. */
    if (strcmp(method, "PUT") != 0 && strcmp(method, "POST") != 0) goto out;
    r.method = method;
    for (size_t n = 0;; n++) {
        if (n > KMS_S3_MAX_HEADERS || !kms_s3_head_line(&rd, &line)) goto out;
        if (cl_reader_remaining(&line) == 0) break;
        cl_reader name;
        cl_reader_until(&line, ':', &name, &found);
        if (!found || cl_reader_skip(&line, 1) != CL_OK) goto out;
        cl_reader_trim(&line, " \t");
        char *k = kms_s3_reader_dup(&name), *v = kms_s3_reader_dup(&line);
        bool added = k != NULL && v != NULL && k[0] != '\0' && strcspn(k, " \t") == strlen(k) &&
                     evhttp_add_header(&in, k, v) == 0;
        free(k);
        free(v);
        if (!added) goto out;
    }
    uri = evhttp_uri_parse_with_flags(target, EVHTTP_URI_NONCONFORMANT);
    if (uri == NULL) goto out;
    const char *path = evhttp_uri_get_path(uri) != NULL && evhttp_uri_get_path(uri)[0] ? evhttp_uri_get_path(uri) : "/";
    const char *query = evhttp_uri_get_query(uri);
    const char *authz = evhttp_find_header(&in, "Authorization");
    if (kms_route(method, path, query, authz, evhttp_find_header(&in, "X-Amz-Target")) != KMS_SERVICE_S3) goto out;
    if (kms_s3_parse_query(&r, query) != CL_OK) goto out;
    cl_status rc;
    if (authz != NULL)
        rc = kms_s3_auth_header(&r, authz, path, query, NULL, 0, NULL);
    else if (kms_s3_has_query(&r, "X-Amz-Signature"))
        rc = kms_s3_auth_presigned(&r, path, query);
    else
        goto out; /* anonymous: the KMS's max_body */
    ok = rc == CL_OK && r.who != NULL;
out:
    if (uri != NULL) evhttp_uri_free(uri);
    evhttp_clear_headers(&in);
    evhttp_clear_headers(&r.query);
    cl_memzero(&r.who_copy, sizeof(r.who_copy));
    free(method);
    free(target);
    cl_error_clear();
    return ok;
}
