/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Thin, typed wrappers over OpenSSL 3. No primitive here is implemented by
 * hand: each function names the EVP interface it uses.
 */
#ifndef CLOISTER_CRYPTO_H
#define CLOISTER_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_AES256_KEY_LEN 32
#define CL_GCM_NONCE_LEN 12
#define CL_GCM_TAG_LEN 16
#define CL_SHA256_LEN 32

/* CSPRNG (RAND_bytes); cl_random_secret draws from the private DRBG
 * (RAND_priv_bytes) and is for key material. */
CL_MUST_USE cl_status cl_random(void *out, size_t n);
CL_MUST_USE cl_status cl_random_secret(void *out, size_t n);
/* A random (version 4) UUID in its text form, 8-4-4-4-12 lower-case hex digits
 * (RFC 9562 section 5.4): KMS key ids, request ids. */
#define CL_UUID_TEXT_LEN 36
CL_MUST_USE cl_status cl_uuid4(char out[CL_UUID_TEXT_LEN + 1]);
/* The same from 16 random bytes the caller drew (it sets the version and variant bits in r):
 * for a caller that draws randomness for many ids at once. */
#define CL_UUID_RANDOM_LEN 16
void cl_uuid4_format(uint8_t r[CL_UUID_RANDOM_LEN], char out[CL_UUID_TEXT_LEN + 1]);

/* HKDF-SHA256, RFC 5869 (EVP_KDF "HKDF"). */
CL_MUST_USE cl_status cl_hkdf_sha256(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
                                     const uint8_t *info, size_t info_len, uint8_t *out, size_t out_len);

CL_MUST_USE cl_status cl_sha256(const void *data, size_t n, uint8_t out[CL_SHA256_LEN]);
CL_MUST_USE cl_status cl_hmac_sha256(const uint8_t *key, size_t key_len, const void *data, size_t n,
                                     uint8_t out[CL_SHA256_LEN]);

/*
 * AES-256-GCM with a key set once and many messages (EVP_CIPHER_CTX reused:
 * only the IV changes per message, which is what makes chunked streaming run
 * at the cipher's full speed). Callers own nonce uniqueness.
 */
typedef struct cl_gcm {
    void *ctx; /* EVP_CIPHER_CTX */
    bool encrypt;
} cl_gcm;

CL_MUST_USE cl_status cl_gcm_init(cl_gcm *g, const uint8_t key[CL_AES256_KEY_LEN], bool encrypt);
/* out may equal in. */
CL_MUST_USE cl_status cl_gcm_seal(cl_gcm *g, const uint8_t nonce[CL_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                                  const uint8_t *in, size_t n, uint8_t *out, uint8_t tag[CL_GCM_TAG_LEN]);
/* CL_ERR_AUTH when the tag does not verify; out then holds no plaintext. */
CL_MUST_USE cl_status cl_gcm_open(cl_gcm *g, const uint8_t nonce[CL_GCM_NONCE_LEN], const uint8_t *aad, size_t aad_len,
                                  const uint8_t *in, size_t n, const uint8_t tag[CL_GCM_TAG_LEN], uint8_t *out);
void cl_gcm_free(cl_gcm *g);

/* Base64 (RFC 4648 section 4) and base64url (section 5), padded. Decoding is
 * strict: only the alphabet's characters, correct padding, nothing after it. */
CL_MUST_USE cl_status cl_base64_encode(const uint8_t *in, size_t n, bool url, cl_buf *out);
CL_MUST_USE cl_status cl_base64_decode(const char *in, size_t n, bool url, cl_buf *out);

#endif
