/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SSE-KMS (S3 User Guide, "Using server-side encryption with AWS KMS keys"): each object gets a
 * data key from GenerateDataKey of the named KMS key, with the encryption context S3 uses,
 * {"aws:s3:arn": "arn:aws:s3:::BUCKET/KEY"}, asked for as the caller (the key policy and grants
 * must allow the caller kms:GenerateDataKey, and kms:Decrypt to read the object back, as in AWS).
 * The KMS is called in-process, the same operation functions a KMS request runs, with
 * kms:ViaService s3.REGION.amazonaws.com; each call has its own audit line.
 *
 * The object's data is AES-256-GCM in chunks of KMS_S3_SSE_CHUNK plaintext bytes, each followed by
 * its tag, so a Range read decrypts only the chunks it covers. Chunk i's nonce is
 * u32be(prefix) || u64be(i) (prefix 0 for an object, the part number for a multipart part, so
 * that one upload key never repeats a nonce) and its AAD "cloister-s3-sse-1" || u64be(i) ||
 * u64be(total plaintext size): a chunk moved, dropped or a size changed in the header fails.
 * The header keeps the wrapped data key (CiphertextBlob) and the key's ARN; no plaintext, and
 * no hash of it, is on disk (the ETag of an SSE-KMS object is the MD5 of its stored bytes).
 */
#ifndef CLOISTER_KMS_S3_SSE_H
#define CLOISTER_KMS_S3_SSE_H

#include <event2/buffer.h>
#include <jansson.h>
#include <stdint.h>

#include "cloister/crypto.h"
#include "cloister/error.h"

#include "s3.h"

/* Bytes on disk of `plain` bytes of plaintext. */
uint64_t kms_s3_sse_stored_size(uint64_t plain);

/* A new data key of key_id for the object at ctx_arn: *sse gets {"key_id": ARN, "blob": base64}
 * for the header, key the plaintext data key (wipe it). */
CL_MUST_USE cl_status kms_s3_sse_new(kms_s3_req *r, const char *key_id, const char *ctx_arn, json_t **sse,
                                     uint8_t key[CL_AES256_KEY_LEN]);
/* The data key of an object's header "sse" member (Decrypt as the caller). */
CL_MUST_USE cl_status kms_s3_sse_key(kms_s3_req *r, json_t *sse, const char *ctx_arn, uint8_t key[CL_AES256_KEY_LEN]);
/* Seals n plaintext bytes (a whole object or part) and writes them to fd. */
CL_MUST_USE cl_status kms_s3_sse_write(const uint8_t key[CL_AES256_KEY_LEN], uint32_t prefix, const uint8_t *pt,
                                       uint64_t n, int fd);
/* Decrypts plaintext bytes [start, start+len) of a sealed stream of `total` plaintext bytes at
 * data_off of fd into out. CL_ERR_AUTH when a chunk does not verify. */
CL_MUST_USE cl_status kms_s3_sse_read(const uint8_t key[CL_AES256_KEY_LEN], uint32_t prefix, int fd, uint64_t data_off,
                                      uint64_t total, uint64_t start, uint64_t len, struct evbuffer *out);
/* CompleteMultipartUpload of an SSE-KMS upload: each part (sealed with its part number as the
 * nonce prefix) decrypted and sealed again on the object's chunk grid (prefix 0), to dst. */
typedef struct kms_s3_resealer {
    cl_gcm enc, dec;
    bool have_enc, have_dec;
    uint8_t *acc, *pt, *ct;
    size_t acc_len;
    uint64_t index, total;
    int dst;
} kms_s3_resealer;
CL_MUST_USE cl_status kms_s3_reseal_begin(kms_s3_resealer *rs, const uint8_t key[CL_AES256_KEY_LEN], int dst,
                                          uint64_t total);
CL_MUST_USE cl_status kms_s3_reseal_part(kms_s3_resealer *rs, uint32_t prefix, int src, uint64_t data_off,
                                         uint64_t part_total);
CL_MUST_USE cl_status kms_s3_reseal_end(kms_s3_resealer *rs);
void kms_s3_reseal_free(kms_s3_resealer *rs);

#endif
