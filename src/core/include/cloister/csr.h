/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PKCS#10 certification requests (RFC 2986) that carry attestation evidence, as
 * draft-ietf-lamps-csr-attestation defines it (its ASN.1 module CSR-ATTESTATION-2025):
 *
 *   attr-attestation ATTRIBUTE ::= { TYPE AttestationBundle COUNTS MAX 1
 *                                    IDENTIFIED BY id-aa-attestation }   -- { id-aa 59 }
 *   AttestationBundle ::= SEQUENCE {
 *      attestations SEQUENCE SIZE (1..MAX) OF AttestationStatement,
 *      certs SEQUENCE SIZE (1..MAX) OF LimitedCertChoices OPTIONAL }
 *   AttestationStatement ::= SEQUENCE { type OBJECT IDENTIFIER, stmt ANY DEFINED BY type }
 *
 * id-aa 59 is 1.2.840.113549.1.9.16.2.59 (IANA's early allocation, first named id-aa-evidence).
 * The draft registers no statement type for an AWS Nitro Enclaves attestation document, so
 * ours is an OID under the UUID arc 2.25 (ITU-T X.667, no registration needed), and its stmt
 * is an OCTET STRING holding the document (COSE_Sign1) as the attestation device returned it.
 * `certs` is left out: the document carries its own certificate and cabundle. A reader accepts
 * a bundle with `certs` (and ignores it) and with statements of other types (and ignores them).
 *
 * Everything ASN.1 is OpenSSL's (X509_REQ, ASN1_SEQUENCE_ANY); nothing here parses DER by hand.
 * The document binds the request's key through its own fields (cloister-kms's certificate
 * service: user_data = SHA-256 of the request's DER SubjectPublicKeyInfo, docs/cas.md); the
 * request's signature proves possession of that key.
 */
#ifndef CLOISTER_CSR_H
#define CLOISTER_CSR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_CSR_ATTESTATION_ATTR_OID "1.2.840.113549.1.9.16.2.59"
/* UUID d819fe29-9d12-4f29-9ed6-22f35b897863: "an AWS Nitro Enclaves attestation document". */
#define CL_CSR_NITRO_DOC_OID "2.25.287248209540010470888479378136529205347"
#define CL_CSR_MAX ((size_t)64 << 10) /* a request, PEM or DER */
#define CL_CSR_MAX_CN 64              /* X.520 ub-common-name */

/* The key types a request may carry (and the certificate service issues for). */
typedef enum cl_key_type {
    CL_KEY_NONE = 0,
    CL_KEY_EC_P256,
    CL_KEY_EC_P384,
    CL_KEY_RSA_2048,
    CL_KEY_RSA_3072,
} cl_key_type;

/* "EC_P256", "EC_P384", "RSA_2048", "RSA_3072" (and "none"). */
const char *cl_key_type_name(cl_key_type t);
/* The reverse; false for anything else. */
bool cl_key_type_parse(const char *s, cl_key_type *out);

/* A fresh key pair of type t (EVP_PKEY in *pkey; free with cl_key_free). The private part lives in
 * OpenSSL's secure heap when it has one (cl_recipient_generate sets it up). */
CL_MUST_USE cl_status cl_key_generate(cl_key_type t, void **pkey);
void cl_key_free(void *pkey);
/* The key's DER SubjectPublicKeyInfo, appended to out. */
CL_MUST_USE cl_status cl_key_spki(const void *pkey, cl_buf *out);
/* The private key as unencrypted PKCS#8 PEM into out (a secret buffer). */
CL_MUST_USE cl_status cl_key_private_pem(const void *pkey, cl_buf *out);

/*
 * A request for `pkey` (subject CN=common_name, may be NULL for an empty subject) carrying the
 * attestation document `doc` in the attestation attribute, signed with pkey (SHA-256 for P-256
 * and RSA, SHA-384 for P-384); PEM appended to out.
 */
CL_MUST_USE cl_status cl_csr_make(const void *pkey, const char *common_name, const uint8_t *doc, size_t doc_len,
                                  cl_buf *out);

/* A parsed and self-verified request; every member is a copy. */
typedef struct cl_csr {
    cl_buf spki;          /* DER SubjectPublicKeyInfo */
    cl_key_type key_type; /* CL_KEY_NONE: a key of another kind (key_desc says which) */
    char key_desc[48];    /* "EC P-256", "RSA 4096 bits", "ED25519", ... for messages */
    bool has_evidence;    /* the attestation attribute holds a Nitro document */
    cl_buf evidence;      /* that document */
    void *pkey;           /* EVP_PKEY of the request (public only) */
} cl_csr;

void cl_csr_init(cl_csr *c);
void cl_csr_free(cl_csr *c);
/*
 * Reads a request (PEM "CERTIFICATE REQUEST", or DER) of at most CL_CSR_MAX bytes: untrusted
 * input. Refused: anything that is not one request, a version other than v1 (0), a signature
 * that does not verify with its own key (CL_ERR_AUTH), more than one attestation attribute or
 * value, a malformed bundle, more than one Nitro document (CL_ERR_FORMAT naming the part). A
 * request without the attribute parses, with has_evidence false.
 */
CL_MUST_USE cl_status cl_csr_parse(const uint8_t *p, size_t n, cl_csr *out);

#endif
