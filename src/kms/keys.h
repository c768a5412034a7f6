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
/* Version 2 records the key's region; version 1 (before regions) is still read: its key's
 * region is its region (docs/formats/kms-ciphertext.md). */
#define KMS_BLOB_VERSION 2
#define KMS_BLOB_VERSION_V1 1
#define KMS_PLAINTEXT_MAX 4096 /* AWS KMS Encrypt: Plaintext up to 4096 bytes */
#define KMS_BLOB_MAX 6144      /* CiphertextType max length in the service model */
/* Bytes of a blob besides its ciphertext, for a region name of region_len bytes. */
#define KMS_BLOB_OVERHEAD(region_len) \
    (1 + 1 + KMS_KEY_ID_LEN + 1 + (region_len) + 4 + CL_GCM_NONCE_LEN + CL_GCM_TAG_LEN)

typedef struct kms_root_key {
    uint8_t *key; /* secure memory, CL_AES256_KEY_LEN */
} kms_root_key;

/* Loads DIR's root key file, creating it (0600, fresh random key) when absent.
 * Refuses a file group or others can read. */
CL_MUST_USE cl_status kms_root_key_load(const char *path, kms_root_key *out);
void kms_root_key_free(kms_root_key *rk);

/* Root key from a passphrase: scrypt (RFC 7914) with the parameters and salt
 * of kdf_path, a small JSON file created (0600, fresh 32-byte salt, N =
 * 2^log2_n, r = 8, p = 1) on first start. The file also holds a check value
 * (HMAC-SHA256 of a fixed label under the derived key), so a wrong passphrase
 * is refused at start (CL_ERR_AUTH) rather than failing every request. */
#define KMS_SCRYPT_LOG2_N_DEFAULT 17 /* 128 MiB with r = 8 */
#define KMS_PASSPHRASE_MIN 8
#define KMS_PASSPHRASE_MAX 1024
CL_MUST_USE cl_status kms_root_key_derive(const uint8_t *pass, size_t pass_len, const char *kdf_path, unsigned log2_n,
                                          kms_root_key *out);

typedef struct kms_kdf_params {
    uint64_t n;
    uint32_t r, p;
    uint8_t salt[64];
    size_t salt_len;
    uint8_t check[32];
} kms_kdf_params;
/* Parses root.kdf: exactly the members kdf ("scrypt"), n (a power of two,
 * 2^14..2^20), r (1..32), p (1..16), salt (16..64 bytes, base64), check (32
 * bytes, base64); at most 4 KiB. */
CL_MUST_USE cl_status kms_kdf_parse(const char *text, size_t len, kms_kdf_params *out);
/* scrypt into out (EVP_KDF "SCRYPT"). */
CL_MUST_USE cl_status kms_scrypt(const uint8_t *pass, size_t pass_len, const uint8_t *salt, size_t salt_len, uint64_t n,
                                 uint32_t r, uint32_t p, uint8_t *out, size_t out_len);

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
    unsigned format; /* KMS_BLOB_VERSION or KMS_BLOB_VERSION_V1 */
    char key_id[KMS_KEY_ID_LEN + 1];
    char region[KMS_REGION_MAX + 1]; /* "" in a version-1 blob: its key's region */
    uint32_t version;
    const uint8_t *header; /* bytes covered as AAD */
    size_t header_len;
    const uint8_t *nonce;
    const uint8_t *ct;
    size_t ct_len;
    const uint8_t *tag;
} kms_blob;

CL_MUST_USE cl_status kms_blob_parse(const uint8_t *blob, size_t len, kms_blob *out);
/* A version-2 blob: key_id and its region (that of the key's record) are in the header. */
CL_MUST_USE cl_status kms_blob_seal(const uint8_t material[KMS_MATERIAL_LEN], const char *key_id, const char *region,
                                    uint32_t version, const cl_kvlist *ctx, const uint8_t *pt, size_t pt_len,
                                    cl_buf *blob);
/* plaintext must be a secret buffer. CL_ERR_AUTH on a wrong context or a
 * tampered blob. */
CL_MUST_USE cl_status kms_blob_open(const uint8_t material[KMS_MATERIAL_LEN], const kms_blob *b, const cl_kvlist *ctx,
                                    cl_buf *plaintext);

#endif
