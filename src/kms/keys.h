/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The root key, key material wrapped under it, and the ciphertext blob
 * (docs/formats/kms-ciphertext.md).
 */
#ifndef CLOISTER_KMS_KEYS_H
#define CLOISTER_KMS_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/crypto.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#include "store.h"

#define KMS_MATERIAL_LEN 32
#define KMS_WRAPPED_LEN (CL_GCM_NONCE_LEN + KMS_MATERIAL_LEN + CL_GCM_TAG_LEN)
#define KMS_BLOB_VERSION 1
#define KMS_PLAINTEXT_MAX 4096 /* AWS KMS Encrypt: Plaintext up to 4096 bytes */
#define KMS_BLOB_MAX 6144      /* CiphertextType max length in the service model */
#define KMS_BLOB_OVERHEAD (1 + 1 + KMS_KEY_ID_LEN + 4 + CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN)

typedef struct kms_root_key {
    uint8_t *key; /* secure memory, CL_AES256_KEY_LEN */
} kms_root_key;

/* Loads DIR's root key file, creating it (0600, fresh random key) when absent.
 * Refuses a file group or others can read. */
CL_MUST_USE cl_status kms_root_key_load(const char *path, kms_root_key *out);
void kms_root_key_free(kms_root_key *rk);

/* Key material under the root key: nonce || ct || tag, AAD binding the key ARN
 * and version so rows cannot be swapped between keys or versions. */
CL_MUST_USE cl_status kms_material_wrap(const kms_root_key *rk, const char *arn, uint32_t version,
                                        const uint8_t material[KMS_MATERIAL_LEN], cl_buf *wrapped);
/* material must be a secret buffer. CL_ERR_AUTH when the row was altered. */
CL_MUST_USE cl_status kms_material_unwrap(const kms_root_key *rk, const char *arn, uint32_t version,
                                          const uint8_t *wrapped, size_t wrapped_len, cl_buf *material);

/*
 * Unwrapped key material, cached per (key id, version). Material never
 * changes once written (rotation adds versions), so an entry cannot go
 * stale; deleting a key evicts its entries. One locked, guarded allocation
 * holds every slot (cl_secure_alloc), wiped on eviction and on free.
 * Thread-safe (a read-write lock: lookups run in parallel).
 */
typedef struct kms_material_cache kms_material_cache;
CL_MUST_USE cl_status kms_cache_new(size_t slots, kms_material_cache **out);
void kms_cache_free(kms_material_cache *mc);
/* Copies the material into out (KMS_MATERIAL_LEN bytes) if cached. */
bool kms_cache_get(kms_material_cache *mc, const char *key_id, uint32_t version, uint8_t *out);
void kms_cache_put(kms_material_cache *mc, const char *key_id, uint32_t version, const uint8_t *material);
void kms_cache_evict_key(kms_material_cache *mc, const char *key_id);

/* The parsed header of a ciphertext blob; pointers borrow the blob. */
typedef struct kms_blob {
    char key_id[KMS_KEY_ID_LEN + 1];
    uint32_t version;
    const uint8_t *header; /* bytes covered as AAD */
    size_t header_len;
    const uint8_t *nonce;
    const uint8_t *ct;
    size_t ct_len;
    const uint8_t *tag;
} kms_blob;

CL_MUST_USE cl_status kms_blob_parse(const uint8_t *blob, size_t len, kms_blob *out);
CL_MUST_USE cl_status kms_blob_seal(const uint8_t material[KMS_MATERIAL_LEN], const char *key_id, uint32_t version,
                                    const cl_kvlist *ctx, const uint8_t *pt, size_t pt_len, cl_buf *blob);
/* plaintext must be a secret buffer. CL_ERR_AUTH on a wrong context or a
 * tampered blob. */
CL_MUST_USE cl_status kms_blob_open(const uint8_t material[KMS_MATERIAL_LEN], const kms_blob *b, const cl_kvlist *ctx,
                                    cl_buf *plaintext);

#endif
