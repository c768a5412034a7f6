/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key material of the specs in keyspec.h put to use, on OpenSSL 3's EVP interface only:
 * asymmetric keys (RSA, ECC) generated, stored (their private material wrapped under the root
 * key), signing and verifying, RSAES-OAEP encryption, ECDH key agreement, PKCS#8 export (data
 * key pairs); HMAC over the digest of an HMAC key spec.
 */
#ifndef CLOISTER_KMS_ASYM_H
#define CLOISTER_KMS_ASYM_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#include "keys.h"
#include "keyspec.h"

typedef enum kms_sig_scheme {
    KMS_SIG_RSA_PSS = 0,
    KMS_SIG_RSA_PKCS1,
    KMS_SIG_ECDSA,
} kms_sig_scheme;

typedef struct kms_sig_alg {
    const char *name; /* SigningAlgorithmSpec value */
    kms_sig_scheme scheme;
    const char *md; /* OpenSSL digest name */
    size_t md_len;
} kms_sig_alg;

/* A signing algorithm this build implements, or NULL. */
const kms_sig_alg *kms_sig_alg_find(const char *name);

/* An RSAES-OAEP EncryptionAlgorithmSpec: "RSA encryption with OAEP Padding using SHA-1 (or
 * SHA-256) for both the hash in the MGF1 function and the hash in the OAEP padding" (Key spec
 * reference; PKCS #1 v2.2, RFC 8017 section 7.1), with an empty label. */
typedef struct kms_enc_alg {
    const char *name; /* EncryptionAlgorithmSpec value */
    const char *md;   /* OpenSSL digest name */
    size_t md_len;
} kms_enc_alg;

/* An RSAES algorithm this build implements, or NULL (SYMMETRIC_DEFAULT is not one). */
const kms_enc_alg *kms_enc_alg_find(const char *name);
/* The longest plaintext alg encrypts under an RSA key of rsa_bits: k - 2 hLen - 2 (RFC 8017
 * 7.1.1), which gives the table of Encrypt in the API Reference (RSA_2048: 214 and 190 bytes). */
size_t kms_oaep_max(unsigned rsa_bits, const kms_enc_alg *alg);

#define KMS_PRIVATE_MAX 4096 /* DER of an RSA-4096 private key is ~2.4 KB, as PKCS#8 too */
#define KMS_PRIVATE_WRAPPED_MAX (CL_GCM_NONCE_LEN + KMS_PRIVATE_MAX + CL_GCM_TAG_LEN)
#define KMS_SIGNATURE_MAX 512    /* RSA-4096: 512 bytes; ECDSA P-521 DER: <= 139 */
#define KMS_PUBLIC_MAX 8192      /* PublicKeyType max length */
#define KMS_RSA_MAX_BYTES 512    /* an RSAES ciphertext, and the bound of its plaintext */
#define KMS_SHARED_SECRET_MAX 66 /* ECDH on P-521: the x-coordinate, 66 bytes */
#define KMS_MAC_MAX 64           /* HMAC_SHA_512 */

/* A fresh key pair of spec s (RSA or EC; CreateKey, GenerateDataKeyPair). */
CL_MUST_USE cl_status kms_asym_keygen(const kms_spec_info *s, EVP_PKEY **out);
/* A fresh private key of spec s (RSA or EC), as DER (RSAPrivateKey or
 * ECPrivateKey with its named curve) into der, a secret buffer. */
CL_MUST_USE cl_status kms_asym_generate(const kms_spec_info *s, cl_buf *der);
/* Parses the DER kms_asym_generate made; refuses a key of another spec. */
CL_MUST_USE cl_status kms_asym_load(const kms_spec_info *s, const uint8_t *der, size_t len, EVP_PKEY **out);
/* SubjectPublicKeyInfo DER (what GetPublicKey returns). */
CL_MUST_USE cl_status kms_asym_public_der(EVP_PKEY *pkey, cl_buf *out);
/* PKCS #8 PrivateKeyInfo DER (RFC 5958; GenerateDataKeyPair's PrivateKeyPlaintext) into der,
 * a secret buffer. */
CL_MUST_USE cl_status kms_asym_pkcs8(EVP_PKEY *pkey, cl_buf *der);

/* Signs a message (digest false: hashed here with alg's digest) or a digest
 * the caller computed (digest true: len must be alg->md_len). ECDSA
 * signatures are DER (ECDSA-Sig-Value); RSASSA-PSS uses MGF1 with the same
 * digest and a salt as long as the digest, as AWS KMS does. */
CL_MUST_USE cl_status kms_asym_sign(EVP_PKEY *pkey, const kms_sig_alg *alg, bool digest, const uint8_t *msg, size_t len,
                                    cl_buf *sig);
/* *valid false for any signature that does not verify, malformed ones included. */
CL_MUST_USE cl_status kms_asym_verify(EVP_PKEY *pkey, const kms_sig_alg *alg, bool digest, const uint8_t *msg,
                                      size_t len, const uint8_t *sig, size_t sig_len, bool *valid);

/* RSAES-OAEP of pt under an RSA key (CL_ERR_LIMIT past kms_oaep_max). The ciphertext is the
 * raw OAEP output, as long as the modulus, as AWS KMS returns it. */
CL_MUST_USE cl_status kms_asym_encrypt(EVP_PKEY *pkey, const kms_enc_alg *alg, const uint8_t *pt, size_t len,
                                       cl_buf *ct);
/* The inverse into pt, a secret buffer with room for KMS_RSA_MAX_BYTES; CL_ERR_AUTH for any
 * ciphertext that does not decrypt (wrong length, wrong key or algorithm, tampered). */
CL_MUST_USE cl_status kms_asym_decrypt(EVP_PKEY *pkey, const kms_enc_alg *alg, const uint8_t *ct, size_t len,
                                       cl_buf *pt);
/*
 * ECDH (SP 800-56A rev. 3 section 5.7.1.2, the cofactor primitive; every curve here has
 * cofactor 1) of an EC private key and a peer's DER SubjectPublicKeyInfo into secret, a secret
 * buffer: the x-coordinate of the shared point, as long as the field (32, 48, 66 bytes), what
 * AWS KMS's DeriveSharedSecret returns. CL_ERR_FORMAT when peer is not a SubjectPublicKeyInfo
 * of a valid point, CL_ERR_KEY when it is not an EC key on the private key's named curve.
 */
CL_MUST_USE cl_status kms_asym_derive(EVP_PKEY *pkey, const uint8_t *peer, size_t peer_len, cl_buf *secret);

/* HMAC (RFC 2104) of msg with digest md (an OpenSSL name) into mac, which has room for
 * KMS_MAC_MAX bytes; *mac_len its length. */
CL_MUST_USE cl_status kms_hmac(const char *md, const uint8_t *key, size_t key_len, const uint8_t *msg, size_t len,
                               uint8_t mac[KMS_MAC_MAX], size_t *mac_len);

/* Private key DER under the root key: nonce || ct || tag (AES-256-GCM), AAD
 * binding a label of its own, the key ARN and version, so a row cannot be
 * swapped between keys or read as symmetric material. The key of an HMAC
 * spec other than HMAC_256 (28, 48 or 64 bytes, not the 32 of keys.h's
 * material) is stored the same way. */
CL_MUST_USE cl_status kms_private_wrap(const kms_root_key *rk, const char *arn, uint32_t version, const uint8_t *der,
                                       size_t len, cl_buf *wrapped);
/* der must be a secret buffer. CL_ERR_AUTH when the row was altered. */
CL_MUST_USE cl_status kms_private_unwrap(const kms_root_key *rk, const char *arn, uint32_t version,
                                         const uint8_t *wrapped, size_t wrapped_len, cl_buf *der);

#endif
