/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The aws-chunked body of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD request ("Signature Calculations
 * for the Authorization Header: Transferring Payload in Multiple Chunks", Amazon S3 API
 * Reference, sigv4-streaming):
 *
 *   hex(chunk-size) ";chunk-signature=" signature \r\n chunk-data \r\n   (repeated)
 *   "0;chunk-signature=" signature \r\n \r\n                               (the final chunk)
 *
 * Untrusted bytes, parsed with a cl_reader: a size is 1..16 hex digits and no larger than what
 * is left; the decoded bytes must add up to x-amz-decoded-content-length; nothing may follow the
 * final chunk. Each chunk's signature is chained from the seed signature (the Authorization
 * header's) and checked in constant time before its bytes are kept.
 */
#ifndef CLOISTER_KMS_S3_CHUNKED_H
#define CLOISTER_KMS_S3_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/sigv4.h"

typedef struct kms_s3_chunk_keys {
    const uint8_t *signing_key; /* CL_SIGV4_KEY_LEN bytes */
    const char *amz_date;       /* the request's X-Amz-Date */
    const char *scope;          /* YYYYMMDD/region/s3/aws4_request */
    const char *seed_signature; /* the Authorization header's signature */
} kms_s3_chunk_keys;

/* Decodes body into out (appended), checking every chunk's signature with keys. CL_ERR_FORMAT
 * for bad framing or a length that is not decoded_len ("IncompleteBody"), CL_ERR_DENIED naming
 * the chunk whose signature does not match ("SignatureDoesNotMatch"). */
CL_MUST_USE cl_status kms_s3_chunked_decode(const uint8_t *body, size_t len, const kms_s3_chunk_keys *keys,
                                            uint64_t decoded_len, cl_buf *out);

#endif
