/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attested key release: the enclave side of AWS KMS's `Recipient` parameter, and the
 * CMS envelope both sides share.
 *
 * The flow (AWS KMS Developer Guide, "Cryptographic attestation support in AWS KMS"):
 *   1. the enclave makes an ephemeral RSA-2048 key pair (cl_recipient_generate);
 *   2. it asks its attestation device for a document whose public_key is that key's DER
 *      SubjectPublicKeyInfo (cl_recipient_attest);
 *   3. it calls Decrypt, GenerateDataKey or GenerateRandom with
 *      Recipient {AttestationDocument, KeyEncryptionAlgorithm: "RSAES_OAEP_SHA_256"};
 *   4. KMS verifies the document, evaluates kms:RecipientAttestation:* in the key policy, and
 *      answers CiphertextForRecipient instead of Plaintext: a CMS EnvelopedData (RFC 5652
 *      section 6) with one KeyTransRecipientInfo (section 6.2.1) whose rid is the
 *      subjectKeyIdentifier of the document's key (RFC 5280 section 4.2.1.2, method 1), key
 *      transport RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 8017 section 7.1; RFC 4055
 *      for the algorithm identifiers), content AES-256-CBC (RFC 3565);
 *   5. the enclave opens it with its private key (cl_recipient_open) into a secret buffer.
 * Everything CMS is OpenSSL's CMS API; nothing here encrypts by hand.
 *
 * The private key is generated in OpenSSL's secure heap (CRYPTO_secure_malloc: locked
 * pages, excluded from core dumps, guard pages), never exported, and freed (wiped) by
 * cl_recipient_free on every path.
 */
#ifndef CLOISTER_RECIPIENT_H
#define CLOISTER_RECIPIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kms_client.h"
#include "cloister/kv.h"

#define CL_RECIPIENT_KEY_ENCRYPTION_ALGORITHM "RSAES_OAEP_SHA_256"
#define CL_RECIPIENT_RSA_BITS 2048
#define CL_RECIPIENT_MAX_CMS ((size_t)64 << 10) /* far above what 4 KiB of plaintext needs */
#define CL_RECIPIENT_MAX_PLAINTEXT ((size_t)8192)

typedef struct cl_recipient {
    void *pkey;  /* EVP_PKEY, RSA-2048, private part in the secure heap */
    cl_buf spki; /* DER SubjectPublicKeyInfo of the public key */
} cl_recipient;

void cl_recipient_init(cl_recipient *r);
/* Wipes and frees the key. Safe on an initialised or freed recipient. */
void cl_recipient_free(cl_recipient *r);
/* Makes a fresh RSA-2048 key pair. */
CL_MUST_USE cl_status cl_recipient_generate(cl_recipient *r);
/* Loads a PEM private key (tests and the openssl interop test use this); must be RSA >= 2048 bits. */
CL_MUST_USE cl_status cl_recipient_load_pem(cl_recipient *r, const uint8_t *pem, size_t n);
/* The private key as PKCS#8 PEM into a secret buffer (only for tests that hand it to `openssl cms`). */
CL_MUST_USE cl_status cl_recipient_private_pem(const cl_recipient *r, cl_buf *out);

/* Asks the attestation device `nsm_fd` (cl_nsm_open) for a document carrying r's public key. */
CL_MUST_USE cl_status cl_recipient_attest(const cl_recipient *r, int nsm_fd, const uint8_t *nonce, size_t nonce_len,
                                          cl_buf *doc);

/* The KMS side: CL_OK when `spki` is a key cl_recipient_seal can encrypt to. */
CL_MUST_USE cl_status cl_recipient_check_public_key(const uint8_t *spki, size_t spki_len);
/*
 * The KMS side: encrypts `pt` to the RSA public key `spki` (DER SubjectPublicKeyInfo, as in a
 * document's public_key) as described at the top of this file; DER ContentInfo into out.
 * CL_ERR_UNSUPPORTED when the key is not RSA of 2048 to 4096 bits.
 */
CL_MUST_USE cl_status cl_recipient_seal(const uint8_t *spki, size_t spki_len, const uint8_t *pt, size_t n, cl_buf *out);

/*
 * The enclave side: opens a CiphertextForRecipient (DER ContentInfo). Refused unless it is
 * exactly an EnvelopedData with one KeyTransRecipientInfo naming r's key by
 * subjectKeyIdentifier, RSAES-OAEP SHA-256/MGF1-SHA-256 and AES-256-CBC content:
 * CL_ERR_FORMAT (not CMS / wrong shape), CL_ERR_UNSUPPORTED (another algorithm),
 * CL_ERR_KEY (for another key), CL_ERR_AUTH (does not decrypt). `plaintext` should be a
 * secret buffer; on failure it is left as it was.
 */
CL_MUST_USE cl_status cl_recipient_open(const cl_recipient *r, const uint8_t *cms, size_t n, cl_buf *plaintext);

/*
 * KMS calls with Recipient {doc, RSAES_OAEP_SHA_256}: CiphertextForRecipient is opened with
 * r into the caller's secret buffer. A response that carries a Plaintext as well is refused
 * (CL_ERR_REMOTE): the point of Recipient is that no plaintext crosses the network.
 */
CL_MUST_USE cl_status cl_kms_decrypt_for_recipient(cl_kms_client *c, const cl_recipient *r, const uint8_t *doc,
                                                   size_t doc_len, const char *key_id, const uint8_t *blob,
                                                   size_t blob_len, const cl_kvlist *ctx, cl_buf *plaintext);
CL_MUST_USE cl_status cl_kms_generate_data_key_for_recipient(cl_kms_client *c, const cl_recipient *r,
                                                             const uint8_t *doc, size_t doc_len, const char *key_id,
                                                             const cl_kvlist *ctx, cl_buf *data_key, cl_buf *blob,
                                                             cl_buf *key_arn);
/*
 * The `kms` key provider of sealed envelopes as an enclave uses it: data keys released with
 * Recipient {doc} (Decrypt to unwrap, GenerateDataKey under key_id to seal), opened with r.
 * Envelopes are the same as the plain kms provider's (`cloister seal/unseal --key alias/...`).
 * key_id may be NULL for a provider that only unwraps. Borrows client and r (they must
 * outlive the provider); copies doc.
 */
CL_MUST_USE cl_status cl_kms_recipient_provider_open(cl_kms_client *client, const cl_recipient *r, const uint8_t *doc,
                                                     size_t doc_len, const char *key_id, cl_key_provider **out);
CL_MUST_USE cl_status cl_kms_generate_random_for_recipient(cl_kms_client *c, const cl_recipient *r, const uint8_t *doc,
                                                           size_t doc_len, size_t n, cl_buf *out);

#endif
