/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest side of cloister-kms's certificate and configuration service (docs/cas.md): what
 * a program inside an enclave calls at start to get its TLS certificate and its secrets, and
 * what renews them in the background.
 *
 * One issuance (cl_cas_obtain, cl_cas_renew):
 *   1. GET /v1/nonce from the service (single use, two minutes);
 *   2. a fresh key pair for the certificate (EC P-256 unless the session says otherwise) and an
 *      ephemeral RSA-2048 recipient key for the secrets (cloister/recipient.h), both in OpenSSL's
 *      secure heap;
 *   3. an attestation document from the device with nonce = the service's nonce, user_data =
 *      SHA-256 of the certificate key's DER SubjectPublicKeyInfo, public_key = the recipient key;
 *   4. a PKCS#10 request for the certificate key carrying that document
 *      (draft-ietf-lamps-csr-attestation, cloister/csr.h), POST /v1/certificate;
 *   5. the answer: the certificate chain (leaf, CA), checked to be for this key; the service's
 *      secrets, CMS EnvelopedData to the recipient key, opened into locked memory.
 * The certificate's private key never leaves the enclave; the CA's never leaves the service.
 *
 * Renewal (cl_cas_start_renewal): a thread renews at 2/3 of the certificate's lifetime (or
 * `renew_after` seconds after each issuance) with a new key and document, and swaps the new
 * identity in without a restart; connections accepted afterwards get the new certificate. A
 * refused renewal (the session no longer names this enclave's measurement, say) keeps the
 * current certificate and secrets until the certificate expires, is logged, and is retried
 * every `retry_after` seconds.
 *
 * Transport: the HTTP client of cloister/http.h; inside a sim enclave through the launcher's
 * proxy (vsock_port). Use an https:// endpoint with ca_file in the image, so that the host
 * relays ciphertext only: over plain HTTP a host could hand the enclave a certificate from a CA
 * of its own (clients trusting the session's CA then refuse the enclave) or other secrets.
 */
#ifndef CLOISTER_CAS_H
#define CLOISTER_CAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/csr.h"
#include "cloister/error.h"
#include "cloister/ratls.h"

#define CL_CAS_MAX_SECRETS 32
#define CL_CAS_RETRY_DEFAULT 60 /* seconds between attempts after a refused or failed renewal */

typedef struct cl_cas_config {
    const char *endpoint; /* the service: http(s)://HOST:PORT (cloister-kms) */
    const char *ca_file;  /* PEM CAs for an https:// endpoint; NULL: the system's store */
    uint32_t vsock_port;  /* nonzero: reach it through this parent vsock port (inside an enclave) */
    const char *session;
    const char *service;
    cl_key_type key_type; /* the certificate key's type; CL_KEY_NONE: EC_P256 */
    int nsm_fd;           /* the attestation device (cl_nsm_open) */
    /* Where documents come from instead of nsm_fd (NULL: the device directly): a program whose
     * other threads use the device too serialises the requests here (the device answers one at
     * a time). Appends the document to doc. */
    CL_MUST_USE cl_status (*attest)(void *arg, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
                                    size_t nonce_len, const uint8_t *public_key, size_t public_key_len, cl_buf *doc);
    void *attest_arg;
    int64_t renew_after; /* seconds after an issuance to renew; 0: at 2/3 of its lifetime */
    int64_t retry_after; /* seconds between attempts after a failure; 0: CL_CAS_RETRY_DEFAULT */
    long timeout_ms;     /* each HTTP exchange; 0: the HTTP client's default */
    /* Called by the renewal thread after each attempt (rc CL_OK: the new certificate is in use;
     * otherwise message says why it was refused). May be NULL. */
    void (*on_renewal)(void *arg, cl_status rc, const char *message);
    void *on_renewal_arg;
} cl_cas_config;

typedef struct cl_cas_identity cl_cas_identity;

/* Copies cfg (its strings too) and runs the first issuance. */
CL_MUST_USE cl_status cl_cas_obtain(const cl_cas_config *cfg, cl_cas_identity **out);
/* One issuance now; on success the new certificate, key and secrets replace the current ones.
 * On failure nothing changes: CL_ERR_DENIED for the service's refusals (the message has the
 * refusal's code and reason), CL_ERR_NOT_FOUND for an unknown session or service. */
CL_MUST_USE cl_status cl_cas_renew(cl_cas_identity *id);
/* Starts the renewal thread (once). */
CL_MUST_USE cl_status cl_cas_start_renewal(cl_cas_identity *id);
/* Makes the renewal thread try now instead of at its next time (an operator's signal, tests). */
void cl_cas_renew_soon(cl_cas_identity *id);
/* Stops the thread and wipes everything. NULL is fine. */
void cl_cas_identity_free(cl_cas_identity *id);

/* The current certificate chain (leaf then CA, PEM), appended to out. */
CL_MUST_USE cl_status cl_cas_chain_pem(cl_cas_identity *id, cl_buf *out);
/* The current certificate's end (Unix seconds) and serial (hex, for logs). */
int64_t cl_cas_not_after(cl_cas_identity *id);
CL_MUST_USE cl_status cl_cas_serial(cl_cas_identity *id, char *out, size_t size);
/* How many issuances succeeded (1 after cl_cas_obtain). */
unsigned cl_cas_generation(cl_cas_identity *id);
/* A secret the session gives the service, copied into out (a secret buffer); CL_ERR_NOT_FOUND. */
CL_MUST_USE cl_status cl_cas_secret(cl_cas_identity *id, const char *name, cl_buf *out);
/* The i-th secret's name and value (for programs that list them); CL_ERR_NOT_FOUND past the last. */
CL_MUST_USE cl_status cl_cas_secret_at(cl_cas_identity *id, size_t i, char *name, size_t name_size, cl_buf *out);
/* The current private key as PKCS#8 PEM, into a secret buffer (for programs that hand it to
 * another TLS stack; cloister cas get-cert writes it to a file). */
CL_MUST_USE cl_status cl_cas_key_pem(cl_cas_identity *id, cl_buf *out);

/* A TLS server handshake (TLS 1.2 or 1.3) on the connected socket fd with the current
 * certificate; frames then go through cl_ratls_conn_read/write/close as on RA-TLS. */
CL_MUST_USE cl_status cl_cas_tls_accept(cl_cas_identity *id, int fd, cl_ratls_conn *out);

#endif
