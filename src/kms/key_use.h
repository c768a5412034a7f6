/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the material of a loaded key put to use by an operation, beyond the symmetric
 * keys of keys.h: the private key of an RSA or ECC key, the key of an HMAC key, whether an
 * algorithm suits the key (the key spec table, keyspec.h), and RSAES-OAEP encryption and
 * decryption under an RSA key for Encrypt, Decrypt and ReEncrypt. Errors are answered as the
 * AWS KMS API Reference gives them for each operation. Uses key_access.c, asym.c, keyspec.c,
 * request.c and attested_release.c; used by the operation files.
 */
#ifndef CLOISTER_KMS_KEY_USE_H
#define CLOISTER_KMS_KEY_USE_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#include "attested_release.h"
#include "keyspec.h"
#include "server.h"
#include "store.h"

/* The spec of a stored key (KMSInternalException for a spec this build does not make). */
CL_MUST_USE cl_status kms_key_spec(kms_call *c, const kms_key_rec *k, const kms_spec_info **s);
/* Whether k is an RSA or ECC key. */
bool kms_key_is_asymmetric(const kms_key_rec *k);
/* InvalidKeyUsageException "Algorithm X is incompatible with key spec Y." (AWS's words)
 * unless alg is one of the algorithms of k's spec for usage u. */
CL_MUST_USE cl_status kms_key_check_alg(kms_call *c, const kms_key_rec *k, kms_usage u, const char *alg);
/* DryRunOperationException when dry_run: call it once every other check has passed. */
CL_MUST_USE cl_status kms_dry_run(kms_call *c, bool dry_run);

/* The private key of an asymmetric key's current version. */
CL_MUST_USE cl_status kms_key_private(kms_call *c, const kms_key_rec *k, const kms_spec_info *s, EVP_PKEY **out);
/* The key of an HMAC key's current version (s->mac_len bytes) into key, a secret buffer. */
CL_MUST_USE cl_status kms_key_mac_secret(kms_call *c, const kms_key_rec *k, const kms_spec_info *s, cl_buf *key);

/* An EncryptionAlgorithmSpec member into *alg ("SYMMETRIC_DEFAULT" when absent):
 * ValidationException outside the model's enum, InvalidKeyUsageException for SM2PKE (no key
 * here is an SM2 key). */
CL_MUST_USE cl_status kms_req_encryption_alg(kms_call *c, const char *member, const char **alg);
/* Whether alg is an RSAES algorithm, whose ciphertexts name no key. */
bool kms_encryption_alg_is_rsa(const char *alg);
/* Encrypt (and ReEncrypt's destination) under an RSA key: an enabled ENCRYPT_DECRYPT key, an
 * RSAES algorithm of its spec, no encryption context, a plaintext within AWS's bound for the
 * spec and algorithm (ValidationException past it); ct gets the raw OAEP output. */
CL_MUST_USE cl_status kms_rsa_encrypt(kms_call *c, const kms_key_rec *k, const char *alg, const cl_kvlist *ctx,
                                      const uint8_t *pt, size_t len, cl_buf *ct);
/*
 * Decrypt (and ReEncrypt's source) of an RSAES ciphertext: the key is the one key_member
 * names (id; it is required, as the ciphertext names none), loaded into k and authorized for
 * action; an enabled ENCRYPT_DECRYPT RSA key, no encryption context. pt is a secret buffer
 * with room for KMS_RSA_MAX_BYTES. InvalidCiphertextException when it does not decrypt.
 */
CL_MUST_USE cl_status kms_rsa_decrypt(kms_call *c, const cl_buf *ct, const char *id, const char *key_member,
                                      const char *alg, const char *action, const cl_kvlist *ctx, kms_key_rec *k,
                                      cl_buf *pt);

/* A secret answer member (a plaintext, a private key, a shared secret): with a Recipient, only
 * as CiphertextForRecipient and the member left out, as the service model says of every
 * operation that takes a Recipient. */
CL_MUST_USE cl_status kms_answer_secret(kms_call *c, const kms_recipient *rcpt, const char *member, const uint8_t *p,
                                        size_t n);

#endif
