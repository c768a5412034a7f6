/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attestation documents in the AWS Nitro Enclaves format: create and verify.
 *
 * A document is a COSE_Sign1 (RFC 8152 section 4.2), tagged 18 or untagged,
 *   [protected: bstr {1: -35 (ES384)}, unprotected: {}, payload: bstr, signature: bstr r||s]
 * whose payload is the CBOR map of the AWS specification
 * (aws/aws-nitro-enclaves-nsm-api docs/attestation_process.md, section 2.2):
 *   module_id, digest "SHA384", timestamp (ms), pcrs {index: 48 bytes},
 *   certificate (DER), cabundle [root, intermediates...], ? public_key, ? user_data, ? nonce
 *
 * Verification (section 3 of that document) checks, in order: the COSE and payload
 * syntax; that cabundle[0] is one of the pinned roots; the chain
 * root -> cabundle[1..] -> certificate, every certificate valid at the verification
 * time, CA certificates with basicConstraints CA and keyCertSign, the leaf with
 * digitalSignature and not a CA; the ES384 signature over the Sig_structure
 * (RFC 8152 section 4.4); then the caller's policy: expected PCRs, nonce, maximum age.
 * The verification time is always a parameter: nothing here reads the wall clock.
 *
 * Where real documents differ from a literal reading of the specification, we
 * accept what they contain: absent optional fields encoded as CBOR null,
 * indefinite-length payload maps, user_data and nonce up to 1024 bytes, high-S
 * signatures. See tests/vectors/nitro/README.md.
 */
#ifndef CLOISTER_ATTESTATION_H
#define CLOISTER_ATTESTATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_ATTEST_MAX_DOC_LEN ((size_t)32 << 10) /* whole COSE_Sign1; the payload alone is at most 16384 */
#define CL_ATTEST_MAX_PAYLOAD_LEN 16384
#define CL_ATTEST_MAX_PCRS 32 /* indexes 0..31 */
#define CL_ATTEST_PCR_LEN 48  /* SHA-384 */
#define CL_ATTEST_MAX_CERT_LEN 1024
#define CL_ATTEST_MAX_CABUNDLE 8
#define CL_ATTEST_MAX_FIELD_LEN 1024 /* public_key, user_data, nonce */
#define CL_ATTEST_MAX_MODULE_ID 255
#define CL_ATTEST_SIG_LEN 96 /* ES384 r||s */
#define CL_ATTEST_MAX_ROOTS 8
/* A document's timestamp may be this far after the verification time (clock skew
 * between the signer and the verifier) before it is refused as from the future. */
#define CL_ATTEST_CLOCK_SKEW_MS ((uint64_t)60000)
/* Latest verification time accepted (9999-12-31T23:59:59Z), so that milliseconds never overflow. */
#define CL_ATTEST_MAX_TIME ((int64_t)253402300799)

/* A decoded document. Everything is copied out of the input. */
typedef struct cl_attest_doc {
    bool tagged; /* the COSE_Sign1 carried tag 18 */
    char module_id[CL_ATTEST_MAX_MODULE_ID + 1];
    char digest[8];
    uint64_t timestamp_ms;
    uint32_t pcr_mask; /* bit i set: pcrs[i] present */
    uint8_t pcrs[CL_ATTEST_MAX_PCRS][CL_ATTEST_PCR_LEN];
    cl_buf certificate; /* DER */
    size_t cabundle_len;
    cl_buf cabundle[CL_ATTEST_MAX_CABUNDLE]; /* DER; [0] is the root */
    bool has_public_key, has_user_data, has_nonce;
    cl_buf public_key, user_data, nonce;
    /* What the signature covers. */
    cl_buf protected_header;
    cl_buf payload;
    uint8_t signature[CL_ATTEST_SIG_LEN];
} cl_attest_doc;

void cl_attest_doc_init(cl_attest_doc *doc);
void cl_attest_doc_free(cl_attest_doc *doc);

/* Decodes and syntactically validates a document (no signature, chain or time
 * checks): CL_ERR_FORMAT / CL_ERR_LIMIT / CL_ERR_UNSUPPORTED naming the field. */
CL_MUST_USE cl_status cl_attest_doc_parse(const uint8_t *p, size_t n, cl_attest_doc *doc);

/* The pinned roots a document's chain must end in (the sim root, AWS's Root-G1, ...). */
typedef struct cl_attest_roots {
    void *store; /* X509_STORE */
    size_t count;
    void *certs[CL_ATTEST_MAX_ROOTS]; /* X509 */
    void *cache;                      /* verified chains, when enabled */
} cl_attest_roots;

void cl_attest_roots_init(cl_attest_roots *r);
void cl_attest_roots_free(cl_attest_roots *r);
/* Adds every certificate of a PEM text (or one DER certificate). */
CL_MUST_USE cl_status cl_attest_roots_add(cl_attest_roots *r, const uint8_t *p, size_t n);
CL_MUST_USE cl_status cl_attest_roots_add_file(cl_attest_roots *r, const char *path);
/*
 * Remembers up to `entries` verified chains (keyed by SHA-256 of the certificate and
 * cabundle, with the window in which all their certificates are valid), so that a
 * document from an already verified chain costs one signature check instead of five.
 * The result is the same as without the cache: a chain is reused only at a time inside
 * its window, and the roots can only be added to. Safe to share between threads.
 */
CL_MUST_USE cl_status cl_attest_roots_enable_cache(cl_attest_roots *r, size_t entries);
/* How many verifications the cache has answered. */
uint64_t cl_attest_roots_cache_hits(const cl_attest_roots *r);

typedef struct cl_attest_pcr {
    unsigned index;
    uint8_t value[CL_ATTEST_PCR_LEN];
} cl_attest_pcr;

typedef struct cl_attest_policy {
    int64_t verify_at;         /* Unix seconds: the time certificates and age are judged at */
    const cl_attest_pcr *pcrs; /* expected PCR values (may be NULL) */
    size_t pcr_count;
    const uint8_t *nonce; /* expected nonce; NULL: not checked */
    size_t nonce_len;
    uint64_t max_age_ms; /* 0: not checked */
} cl_attest_policy;

/*
 * Parses and verifies a document (see the top of this file). On success `out`
 * (when not NULL) holds the decoded document. Failures: CL_ERR_FORMAT and friends
 * for syntax, CL_ERR_AUTH for the chain and the signature, CL_ERR_EXPIRED for
 * certificates outside their validity and documents too old or from the future,
 * CL_ERR_DENIED for PCR and nonce mismatches; the message says which.
 */
CL_MUST_USE cl_status cl_attest_verify(const uint8_t *p, size_t n, const cl_attest_roots *roots,
                                       const cl_attest_policy *policy, cl_attest_doc *out);

/* Checks the policy alone against an already verified document. */
CL_MUST_USE cl_status cl_attest_check_policy(const cl_attest_doc *doc, const cl_attest_policy *policy);

/* --- creating documents (the sim backend's platform) ---------------------- */

/* A P-384 key (EVP_PKEY). */
typedef struct cl_attest_key {
    void *pkey;
} cl_attest_key;

CL_MUST_USE cl_status cl_attest_key_generate(cl_attest_key *k);
/* Loads a PEM private key (PKCS#8 or SEC1); it must be EC P-384. */
CL_MUST_USE cl_status cl_attest_key_load_pem(cl_attest_key *k, const uint8_t *pem, size_t n);
/* PKCS#8 PEM, unencrypted; `out` should be a secret buffer. */
CL_MUST_USE cl_status cl_attest_key_to_pem(const cl_attest_key *k, cl_buf *out);
void cl_attest_key_free(cl_attest_key *k);

typedef struct cl_attest_cert_params {
    const char *common_name;
    int64_t not_before, not_after; /* Unix seconds */
    bool ca;
    int path_len; /* CA only; -1: no limit */
} cl_attest_cert_params;

/*
 * Issues an X.509 v3 certificate for `subject`'s public key, signed with ECDSA
 * SHA-384 by `issuer` (issuer_der NULL: self-signed by `subject`). Extensions as
 * Nitro's certificates carry them: basicConstraints critical (CA with path length,
 * or not CA), keyUsage critical (CA: keyCertSign, cRLSign, digitalSignature; leaf:
 * digitalSignature), subject and authority key identifiers. Output is DER.
 */
CL_MUST_USE cl_status cl_attest_cert_issue(const cl_attest_key *subject, const cl_attest_cert_params *params,
                                           const cl_attest_key *issuer, const uint8_t *issuer_der, size_t issuer_len,
                                           cl_buf *out);
/* DER certificate -> PEM text. */
CL_MUST_USE cl_status cl_attest_cert_to_pem(const uint8_t *der, size_t n, cl_buf *out);

typedef struct cl_attest_blob {
    const uint8_t *data;
    size_t len;
} cl_attest_blob;

typedef struct cl_attest_create_params {
    const char *module_id;
    uint64_t timestamp_ms;
    const uint8_t (*pcrs)[CL_ATTEST_PCR_LEN]; /* PCRs 0..pcr_count-1 */
    size_t pcr_count;
    cl_attest_blob certificate;     /* DER of the signing key's certificate */
    const cl_attest_blob *cabundle; /* [root, intermediates...] */
    size_t cabundle_len;
    const cl_attest_blob *public_key; /* NULL: encoded as null, as Nitro does */
    const cl_attest_blob *user_data;
    const cl_attest_blob *nonce;
} cl_attest_create_params;

/* Signs a document with `key` (whose certificate is params->certificate):
 * untagged COSE_Sign1, ES384, definite-length payload map. */
CL_MUST_USE cl_status cl_attest_doc_create(const cl_attest_create_params *params, const cl_attest_key *key,
                                           cl_buf *out);

#endif
