/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asymmetric keys of the specs in keyspec.h (RSA and NIST-curve signing keys):
 * the signing algorithms, their private material wrapped under the root key,
 * and the sign / verify primitives on OpenSSL 3's EVP interface.
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

#define KMS_PRIVATE_MAX 4096 /* DER of an RSA-3072 private key is ~1.8 KB */
#define KMS_PRIVATE_WRAPPED_MAX (CL_GCM_NONCE_LEN + KMS_PRIVATE_MAX + CL_GCM_TAG_LEN)
#define KMS_SIGNATURE_MAX 512 /* RSA-3072: 384 bytes; ECDSA P-384 DER: <= 104 */
#define KMS_PUBLIC_MAX 8192   /* PublicKeyType max length */

/* A fresh private key of spec s (RSA or EC), as DER (RSAPrivateKey or
 * ECPrivateKey with its named curve) into der, a secret buffer. */
CL_MUST_USE cl_status kms_asym_generate(const kms_spec_info *s, cl_buf *der);
/* Parses the DER kms_asym_generate made; refuses a key of another spec. */
CL_MUST_USE cl_status kms_asym_load(const kms_spec_info *s, const uint8_t *der, size_t len, EVP_PKEY **out);
/* SubjectPublicKeyInfo DER (what GetPublicKey returns). */
CL_MUST_USE cl_status kms_asym_public_der(EVP_PKEY *pkey, cl_buf *out);

/* Signs a message (digest false: hashed here with alg's digest) or a digest
 * the caller computed (digest true: len must be alg->md_len). ECDSA
 * signatures are DER (ECDSA-Sig-Value); RSASSA-PSS uses MGF1 with the same
 * digest and a salt as long as the digest, as AWS KMS does. */
CL_MUST_USE cl_status kms_asym_sign(EVP_PKEY *pkey, const kms_sig_alg *alg, bool digest, const uint8_t *msg, size_t len,
                                    cl_buf *sig);
/* *valid false for any signature that does not verify, malformed ones included. */
CL_MUST_USE cl_status kms_asym_verify(EVP_PKEY *pkey, const kms_sig_alg *alg, bool digest, const uint8_t *msg,
                                      size_t len, const uint8_t *sig, size_t sig_len, bool *valid);

/* Private key DER under the root key: nonce || ct || tag (AES-256-GCM), AAD
 * binding a label of its own, the key ARN and version, so a row cannot be
 * swapped between keys or read as symmetric material. */
CL_MUST_USE cl_status kms_private_wrap(const kms_root_key *rk, const char *arn, uint32_t version, const uint8_t *der,
                                       size_t len, cl_buf *wrapped);
/* der must be a secret buffer. CL_ERR_AUTH when the row was altered. */
CL_MUST_USE cl_status kms_private_unwrap(const kms_root_key *rk, const char *arn, uint32_t version,
                                         const uint8_t *wrapped, size_t wrapped_len, cl_buf *der);

#endif
