/* SPDX-License-Identifier: Apache-2.0 */
/* aws-chunked bodies (s3_chunked.h). */
#include "s3_chunked.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cloister/mem.h"

#define KMS_S3_CHUNK_SIG_PREFIX ";chunk-signature="

static int kms_s3_hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* hex(chunk-size): 1..16 digits. */
static CL_MUST_USE cl_status kms_s3_chunk_size(cl_reader *r, size_t index, uint64_t *size)
{
    uint64_t v = 0;
    size_t digits = 0;
    uint8_t c;
    while (cl_reader_peek_u8(r, &c) && kms_s3_hex_digit(c) >= 0) {
        CL_ENSURE(digits < 16, CL_ERR_FORMAT, "aws-chunked body: chunk %zu's size has more than 16 hex digits", index);
        CL_GUARD(cl_reader_skip(r, 1));
        v = v << 4 | (uint64_t)kms_s3_hex_digit(c);
        digits++;
    }
    CL_ENSURE(digits > 0, CL_ERR_FORMAT, "aws-chunked body: chunk %zu does not start with a hex size (offset %zu)",
              index, cl_reader_offset(r));
    *size = v;
    return CL_OK;
}

cl_status kms_s3_chunked_decode(const uint8_t *body, size_t len, const kms_s3_chunk_keys *keys, uint64_t decoded_len,
                                cl_buf *out)
{
    cl_reader r = cl_reader_make(body, len);
    char prev[CL_SIGV4_SIG_HEX_LEN + 1];
    (void)snprintf(prev, sizeof(prev), "%s", keys->seed_signature);
    uint64_t total = 0;
    for (size_t index = 0;; index++) {
        uint64_t size;
        CL_GUARD(kms_s3_chunk_size(&r, index, &size));
        if (cl_reader_expect(&r, KMS_S3_CHUNK_SIG_PREFIX, strlen(KMS_S3_CHUNK_SIG_PREFIX), "chunk-signature") != CL_OK)
            CL_FAIL(CL_ERR_FORMAT, "aws-chunked body: chunk %zu's size is not followed by ;chunk-signature=", index);
        const uint8_t *sig;
        if (cl_reader_bytes(&r, CL_SIGV4_SIG_HEX_LEN, &sig) != CL_OK ||
            cl_reader_expect(&r, "\r\n", 2, "CRLF") != CL_OK)
            CL_FAIL(CL_ERR_FORMAT, "aws-chunked body: chunk %zu's signature is not 64 hex digits and CRLF", index);
        CL_ENSURE(size <= cl_reader_remaining(&r), CL_ERR_FORMAT,
                  "aws-chunked body: chunk %zu says %llu bytes, %zu remain (IncompleteBody)", index,
                  (unsigned long long)size, cl_reader_remaining(&r));
        CL_ENSURE(size <= decoded_len - total, CL_ERR_FORMAT,
                  "aws-chunked body: the chunks hold more than x-amz-decoded-content-length (%llu bytes)",
                  (unsigned long long)decoded_len);
        const uint8_t *data = NULL;
        if (size > 0) CL_GUARD(cl_reader_bytes(&r, (size_t)size, &data));
        char want[CL_SIGV4_SIG_HEX_LEN + 1];
        CL_GUARD(
            cl_sigv4_chunk_signature(keys->signing_key, keys->amz_date, keys->scope, prev, data, (size_t)size, want));
        CL_ENSURE(cl_ct_equal(want, sig, CL_SIGV4_SIG_HEX_LEN), CL_ERR_DENIED,
                  "The request signature we calculated does not match the signature you provided: chunk %zu of the "
                  "aws-chunked body",
                  index);
        memcpy(prev, want, sizeof(prev));
        if (cl_reader_expect(&r, "\r\n", 2, "CRLF") != CL_OK)
            CL_FAIL(CL_ERR_FORMAT, "aws-chunked body: chunk %zu's data is not followed by CRLF", index);
        if (size == 0) break;
        CL_GUARD(cl_buf_append(out, data, (size_t)size));
        total += size;
    }
    CL_ENSURE(cl_reader_remaining(&r) == 0, CL_ERR_FORMAT, "aws-chunked body: %zu bytes follow the final chunk",
              cl_reader_remaining(&r));
    CL_ENSURE(total == decoded_len, CL_ERR_FORMAT,
              "aws-chunked body: the chunks hold %llu bytes, x-amz-decoded-content-length says %llu (IncompleteBody)",
              (unsigned long long)total, (unsigned long long)decoded_len);
    return CL_OK;
}
