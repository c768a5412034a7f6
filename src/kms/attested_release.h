/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the Recipient parameter of Decrypt, GenerateDataKey and GenerateRandom
 * (botocore kms/2014-11-01 RecipientInfo: AttestationDocument blob, KeyEncryptionAlgorithm
 * RSAES_OAEP_SHA_256), as AWS KMS implements it (KMS Developer Guide, "Cryptographic
 * attestation support in AWS KMS" and "Condition keys for AWS Nitro Enclaves"):
 *   - the document is verified against the configured roots at the request's time, and
 *     refused when older than the configured maximum age (5 minutes by default);
 *   - its PCRs become the condition keys kms:RecipientAttestation:PCR<n> and
 *     kms:RecipientAttestation:ImageSha384 (= PCR0), lower-case hex;
 *   - the answer carries CiphertextForRecipient (cloister/recipient.h) and no Plaintext.
 */
#ifndef CLOISTER_KMS_RECIPIENT_H
#define CLOISTER_KMS_RECIPIENT_H

#include <stdbool.h>

#include "cloister/attestation.h"

#include "policy.h"
#include "server.h"

typedef struct kms_recipient {
    bool present;
    cl_attest_doc doc; /* verified */
    char pcr_hex[CL_ATTEST_MAX_PCRS][2 * CL_ATTEST_PCR_LEN + 1];
} kms_recipient;

void kms_recipient_init(kms_recipient *r);
void kms_recipient_free(kms_recipient *r);
/*
 * Reads and verifies the request's Recipient member (absent: r->present stays false).
 * Failures are answered as AWS does: ValidationException for a wrong algorithm, a
 * missing, malformed, unverifiable or too old document.
 */
CL_MUST_USE cl_status kms_recipient_read(kms_call *c, kms_recipient *r);
/* The policy lookup for kms:RecipientAttestation:* (kms_policy_request.lookup). */
bool kms_recipient_lookup(void *arg, const char *key, kms_cond_values *out);
/* Encrypts pt for the document's public key into out (DER CMS EnvelopedData). */
CL_MUST_USE cl_status kms_recipient_seal(kms_call *c, const kms_recipient *r, const uint8_t *pt, size_t n, cl_buf *out);

#endif
