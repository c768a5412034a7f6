/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AWS Signature Version 4 (HMAC-SHA256), one implementation for both sides:
 * the KMS client signs with it and cloister-kms verifies with it, so the two
 * can never disagree on a canonicalisation rule.
 *
 * Steps follow "Create a signed AWS API request" (AWS IAM User Guide,
 * reference_sigv-create-signed-request): 1. canonical request, 2. hash it,
 * 3. string to sign, 4. derive the signing key, 5. signature. The
 * canonicalisation matches botocore's SigV4Auth for non-S3 services (path
 * URI-encoded once more, query pairs sorted as sent, header values trimmed
 * and inner runs of spaces collapsed).
 */
#ifndef CLOISTER_SIGV4_H
#define CLOISTER_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#define CL_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define CL_SIGV4_SIG_HEX_LEN 64
#define CL_SIGV4_KEY_LEN 32    /* a signing key: HMAC-SHA256 output */
#define CL_SIGV4_MAX_FIELD 256 /* access key id, region, service */
#define CL_SIGV4_MAX_SIGNED_HEADERS 1024

/* One header of a request, borrowed (the request's own strings, or literals). */
typedef struct cl_sigv4_header {
    const char *key;
    const char *value;
} cl_sigv4_header;

/* One request as it goes on the wire. Header names in any case; a name may
 * appear more than once (values are then joined with ',' in list order). */
typedef struct cl_sigv4_request {
    const char *method;
    const char *path;  /* as sent, e.g. "/"; NULL or "" means "/" */
    const char *query; /* as sent, without '?'; NULL when none */
    const cl_sigv4_header *headers;
    size_t n_headers;
    const char *signed_headers;     /* "host;x-amz-date": lower case, ';'-separated, sorted */
    const char *payload_sha256_hex; /* 64 lower-case hex digits of SHA-256(body) */
    const char *amz_date;           /* X-Amz-Date: YYYYMMDD'T'HHMMSS'Z' */
    const char *region;
    const char *service;
} cl_sigv4_request;

/* Step 1 (canonical request) and step 3 (string to sign), exposed for tests
 * and for diagnostics on a signature mismatch. */
CL_MUST_USE cl_status cl_sigv4_canonical_request(const cl_sigv4_request *req, cl_buf *out);
CL_MUST_USE cl_status cl_sigv4_string_to_sign(const cl_sigv4_request *req, cl_buf *out);
/* Steps 1-5: the signature as 64 hex digits plus NUL. */
CL_MUST_USE cl_status cl_sigv4_signature(const char *secret, const cl_sigv4_request *req,
                                         char out[CL_SIGV4_SIG_HEX_LEN + 1]);
/* Step 4 alone: the signing key of a credential scope (secret, its YYYYMMDD date, region,
 * service). It is the same for every request of that scope on that day, so a verifier may keep
 * it (in locked memory: it signs as the principal, for that scope and day) and compute only
 * step 5 per request, as the AWS SDKs do when they sign. */
CL_MUST_USE cl_status cl_sigv4_signing_key(const char *secret, const char *date8, const char *region,
                                           const char *service, uint8_t out[CL_SIGV4_KEY_LEN]);
/* Steps 1-3 and 5 with a signing key from cl_sigv4_signing_key. */
CL_MUST_USE cl_status cl_sigv4_signature_with_key(const uint8_t signing_key[CL_SIGV4_KEY_LEN],
                                                  const cl_sigv4_request *req, char out[CL_SIGV4_SIG_HEX_LEN + 1]);
/* What a verifier checks of SignedHeaders before it recomputes the signature: `host` is
 * named, and so is every `x-amz-*` header the request carries (X-Amz-Date, X-Amz-Target,
 * X-Amz-Security-Token, ...), each matched as a whole name, case-insensitively. A header
 * left out would be one an intermediary could add or change under a valid signature.
 * CL_ERR_DENIED naming the first header at fault. */
CL_MUST_USE cl_status cl_sigv4_check_signed_headers(const cl_sigv4_header *headers, size_t n_headers,
                                                    const char *signed_headers);
/* The Authorization header value a client sends. */
CL_MUST_USE cl_status cl_sigv4_authorization(const char *access_key_id, const char *secret, const cl_sigv4_request *req,
                                             cl_buf *out);

/* A parsed Authorization header:
 * AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/region/service/aws4_request,
 * SignedHeaders=a;b, Signature=hex */
typedef struct cl_sigv4_auth {
    char access_key_id[CL_SIGV4_MAX_FIELD + 1];
    char date[9];
    char region[CL_SIGV4_MAX_FIELD + 1];
    char service[CL_SIGV4_MAX_FIELD + 1];
    char signed_headers[CL_SIGV4_MAX_SIGNED_HEADERS + 1];
    char signature[CL_SIGV4_SIG_HEX_LEN + 1];
} cl_sigv4_auth;

/* Parses untrusted header bytes; CL_ERR_FORMAT names what is wrong. */
CL_MUST_USE cl_status cl_sigv4_parse_authorization(const char *value, size_t len, cl_sigv4_auth *out);
/* Parses an X-Amz-Date (basic ISO 8601, UTC) into seconds since the epoch. */
CL_MUST_USE cl_status cl_sigv4_parse_amz_date(const char *s, size_t len, int64_t *epoch);
/* Formats an epoch time as X-Amz-Date. */
void cl_sigv4_format_amz_date(int64_t epoch, char out[17]);

/*
 * Amazon S3's canonicalisation ("Authenticating Requests: Using the Authorization Header (AWS
 * Signature Version 4)", Amazon S3 API Reference; botocore's S3SigV4Auth): the CanonicalURI is
 * the path as sent, URI-encoded once by the client and not a second time as for the other
 * services (and "." and ".." segments are kept as they are). Everything else is as above; the
 * payload hash is what x-amz-content-sha256 carries, "UNSIGNED-PAYLOAD" and
 * "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" included.
 */
CL_MUST_USE cl_status cl_sigv4_s3_canonical_request(const cl_sigv4_request *req, cl_buf *out);
CL_MUST_USE cl_status cl_sigv4_s3_signature_with_key(const uint8_t signing_key[CL_SIGV4_KEY_LEN],
                                                     const cl_sigv4_request *req, char out[CL_SIGV4_SIG_HEX_LEN + 1]);

/*
 * What a verifier of S3 requests (cloister-kms) canonicalises of what it received, before
 * cl_sigv4_s3_signature_with_key (whose path is then that canonical URI, and query that query):
 *  - cl_sigv4_s3_canonical_uri: the raw path percent-decoded and encoded again by AWS's UriEncode
 *    ('/' kept), so "a b", "a%20b" and "a%20%62" canonicalise alike;
 *  - cl_sigv4_s3_canonical_query: the raw query the same way, sorted, without the parameter
 *    named `skip` (a presigned URL's X-Amz-Signature; NULL: none left out).
 * CL_ERR_FORMAT for a malformed percent-escape.
 */
CL_MUST_USE cl_status cl_sigv4_s3_canonical_uri(const char *raw_path, cl_buf *out);
CL_MUST_USE cl_status cl_sigv4_s3_canonical_query(const char *raw_query, const char *skip, cl_buf *out);
/* The signature of one chunk of an aws-chunked body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): scope is
 * "YYYYMMDD/region/s3/aws4_request", previous_signature the seed signature (the Authorization
 * header's) for the first chunk, else the previous chunk's. */
CL_MUST_USE cl_status cl_sigv4_chunk_signature(const uint8_t signing_key[CL_SIGV4_KEY_LEN], const char *amz_date,
                                               const char *scope, const char *previous_signature, const uint8_t *data,
                                               size_t len, char out[CL_SIGV4_SIG_HEX_LEN + 1]);

#endif
