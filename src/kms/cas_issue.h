/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attested issuance (docs/cas.md, "Issuance"): a guest sends a PKCS#10 request whose
 * attestation attribute (cloister/csr.h, draft-ietf-lamps-csr-attestation) holds a fresh
 * attestation document; the service checks, in this order, and refuses with the first reason
 * that applies:
 *   the request parses and is signed by its key          InvalidCsr (400)
 *   it carries a document                                 NoEvidence (400)
 *   the session and its service exist                     SessionNotFound, ServiceNotFound (404)
 *   the document chains to a configured root              UntrustedRoot (403)
 *   its signature and certificates verify                 InvalidAttestation (403)
 *   it is not older than attestation_max_age              StaleDocument (403)
 *   user_data = SHA-256 of the request's SPKI             KeyNotBound (403)
 *   its nonce is one this service issued, unexpired       NonceInvalid, NonceExpired (403)
 *   it is not a debug-mode document (PCR0 all zero)       DebugModeRefused (403), unless allow_debug
 *   PCR0 is one of the service's image_sha384             MeasurementNotInSession (403)
 *   the request's key is the certificate's key_type      KeyTypeMismatch (403)
 *   it has a public_key when secrets are to be sent       NoRecipientKey (403)
 *   its nonce was not used before (marked used now)       NonceReused (403)
 * then signs the leaf with the session's CA and seals the service's secrets to the document's
 * public_key as CMS EnvelopedData (the shape of KMS's CiphertextForRecipient).
 */
#ifndef CLOISTER_KMS_CAS_ISSUE_H
#define CLOISTER_KMS_CAS_ISSUE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/attestation.h"
#include "cloister/error.h"

#include "server.h"

typedef struct kms_cas_issue_result {
    const char *code; /* the refusal's name; NULL when issued */
    int http;         /* the answer's status */
    /* The verified document's module id and PCR0 (hex), for the audit line; "" before it verified. */
    char module_id[CL_ATTEST_MAX_MODULE_ID + 1];
    char pcr0[2 * CL_ATTEST_PCR_LEN + 1];
    json_t *answer; /* when issued: the answer's members (docs/cas.md) */
} kms_cas_issue_result;

/* The checks and issuance above, at time now_ms. CL_OK with res->answer when issued; otherwise
 * the failure, res->code and res->http say which refusal, and the thread's error says why. */
CL_MUST_USE cl_status kms_cas_issue(kms_ctx *kms, const char *session, const char *service, const uint8_t *csr,
                                    size_t csr_len, int64_t now_ms, kms_cas_issue_result *res);

#endif
