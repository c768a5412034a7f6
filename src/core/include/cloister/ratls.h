/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RA-TLS: TLS 1.3 whose server certificate carries an attestation document
 * (docs/formats/ratls.md). The enclave serves, the client verifies the enclave's
 * identity as part of the handshake, before any application byte is sent.
 *
 *   client                                         server (in the enclave)
 *   ClientHello + extension 0xffc1: nonce (32 B)  ->
 *                                                   document = NSM Attestation(
 *                                                     nonce = client's nonce,
 *                                                     user_data = "cloister-ratls/1" ||
 *                                                                 SHA-384(SubjectPublicKeyInfo))
 *                                                   certificate, self-signed with the per-start
 *                                                     P-256 key, extension 2.25.2183...:
 *                                                     RatlsEvidence {1, document}
 *                             <- ServerHello ... Certificate, CertificateVerify, Finished
 *   verifies the document (roots, PCRs, nonce, age) and that user_data binds the
 *   certificate's key; TLS 1.3's CertificateVerify proves the server holds that key.
 *
 * TLS 1.3 only (RFC 8446), every handshake a full one with ephemeral (EC)DHE: no
 * session tickets, no resumption, no 0-RTT, so each connection has its own traffic keys.
 */
#ifndef CLOISTER_RATLS_H
#define CLOISTER_RATLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/attestation.h"
#include "cloister/buf.h"
#include "cloister/error.h"

/* The certificate extension: an OID under the UUID arc 2.25 (ITU-T X.667), which needs
 * no registration; UUID a447273a-9244-4c26-8e99-4c4f7a4a757e. */
#define CL_RATLS_OID "2.25.218362840040157522161082613134457992574"
/* The ClientHello extension carrying the client's nonce: a codepoint from the TLS
 * ExtensionType registry's private-use range (RFC 8446 section 11). */
#define CL_RATLS_TLS_EXT 0xffc1
#define CL_RATLS_NONCE_LEN 32 /* what the client sends */
#define CL_RATLS_NONCE_MIN 16 /* what the server accepts */
#define CL_RATLS_NONCE_MAX 64
#define CL_RATLS_BINDING_TAG "cloister-ratls/1"
#define CL_RATLS_BINDING_TAG_LEN 16
#define CL_RATLS_BINDING_LEN (CL_RATLS_BINDING_TAG_LEN + 48) /* tag || SHA-384(SPKI) */
#define CL_RATLS_EVIDENCE_VERSION 1
#define CL_RATLS_DEFAULT_MAX_AGE_MS ((uint64_t)60000)
#define CL_RATLS_MAX_CERT_LEN ((size_t)48 << 10)

/* --- the pieces (exposed for tests, fuzzing and other transports) ---------- */

/* user_data binding a DER SubjectPublicKeyInfo: tag || SHA-384(spki). */
CL_MUST_USE cl_status cl_ratls_binding_make(const uint8_t *spki, size_t spki_len, uint8_t out[CL_RATLS_BINDING_LEN]);
/* The extension's value: DER of RatlsEvidence ::= SEQUENCE { version INTEGER (1), document OCTET STRING }. */
CL_MUST_USE cl_status cl_ratls_evidence_encode(const uint8_t *doc, size_t doc_len, cl_buf *out);
/* Parses an extension value (untrusted bytes); *doc borrows from p. */
CL_MUST_USE cl_status cl_ratls_evidence_parse(const uint8_t *p, size_t n, const uint8_t **doc, size_t *doc_len);

/* What a client accepts. */
typedef struct cl_ratls_client_config {
    const cl_attest_roots *roots; /* the attestation roots (sim root.pem, AWS Nitro Root-G1) */
    const cl_attest_pcr *pcrs;    /* expected PCRs: at least one (PCR0, normally) */
    size_t pcr_count;
    uint64_t max_age_ms;  /* 0: CL_RATLS_DEFAULT_MAX_AGE_MS */
    int64_t (*now)(void); /* Unix seconds to verify at; NULL: the wall clock */
} cl_ratls_client_config;

/*
 * Everything the client checks, on a DER certificate: the extension is present once
 * and parses; the document verifies against cfg->roots at `verify_at` with the
 * expected PCRs, `nonce` and maximum age; its user_data is the binding of this
 * certificate's public key. CL_ERR_FORMAT / CL_ERR_AUTH / CL_ERR_EXPIRED /
 * CL_ERR_DENIED saying which. `out` (may be NULL) receives the document.
 */
CL_MUST_USE cl_status cl_ratls_cert_check(const uint8_t *der, size_t der_len, const cl_ratls_client_config *cfg,
                                          int64_t verify_at, const uint8_t *nonce, size_t nonce_len,
                                          cl_attest_doc *out);

/* --- connections -------------------------------------------------------------- */

/* One established TLS 1.3 connection over a socket the caller owns. */
typedef struct cl_ratls_conn {
    void *ssl; /* SSL */
    int fd;
} cl_ratls_conn;

/* Writes all n bytes. */
CL_MUST_USE cl_status cl_ratls_conn_write(cl_ratls_conn *c, const void *p, size_t n);
/* Reads up to n bytes; *got 0 means the peer closed the connection cleanly. */
CL_MUST_USE cl_status cl_ratls_conn_read(cl_ratls_conn *c, void *p, size_t n, size_t *got);
/* Sends close_notify (best effort) and frees the TLS state; does not close the socket. */
void cl_ratls_conn_close(cl_ratls_conn *c);

/* --- server --------------------------------------------------------------------- */

/*
 * Where the server gets its documents: asks the attestation device for a document
 * with this user_data and nonce (no public_key) and appends it to `doc`.
 * cl_ratls_attest_nsm is the device's (arg: a pointer to the fd from cl_nsm_open).
 */
typedef CL_MUST_USE cl_status (*cl_ratls_attest_fn)(void *arg, const uint8_t *user_data, size_t user_data_len,
                                                    const uint8_t *nonce, size_t nonce_len, cl_buf *doc);
CL_MUST_USE cl_status cl_ratls_attest_nsm(void *arg, const uint8_t *user_data, size_t user_data_len,
                                          const uint8_t *nonce, size_t nonce_len, cl_buf *doc);

typedef struct cl_ratls_server {
    void *ctx;  /* SSL_CTX */
    void *pkey; /* EVP_PKEY: the P-256 key made at init, never leaves this process */
    uint8_t binding[CL_RATLS_BINDING_LEN];
    cl_ratls_attest_fn attest;
    void *attest_arg;
    int64_t (*now)(void); /* certificate validity; NULL: the wall clock */
} cl_ratls_server;

/* Makes a fresh key pair and the TLS 1.3-only context. One server is safe to share
 * between threads accepting connections. */
CL_MUST_USE cl_status cl_ratls_server_init(cl_ratls_server *s, cl_ratls_attest_fn attest, void *attest_arg);
/* Frees the context and the key (OpenSSL clears the private scalar). */
void cl_ratls_server_free(cl_ratls_server *s);
/* Runs the handshake on the connected socket fd: one document and one certificate
 * for this connection's nonce. On failure the connection is unusable and *out empty. */
CL_MUST_USE cl_status cl_ratls_server_accept(cl_ratls_server *s, int fd, cl_ratls_conn *out);

/* --- client --------------------------------------------------------------------- */

typedef struct cl_ratls_client {
    void *ctx; /* SSL_CTX */
    cl_ratls_client_config cfg;
    cl_attest_pcr pcrs[CL_ATTEST_MAX_PCRS];
} cl_ratls_client;

/* Copies cfg (the roots are borrowed and must outlive the client). */
CL_MUST_USE cl_status cl_ratls_client_init(cl_ratls_client *c, const cl_ratls_client_config *cfg);
void cl_ratls_client_free(cl_ratls_client *c);
/*
 * Runs the handshake on the connected socket fd with a fresh nonce and the checks of
 * cl_ratls_cert_check. On failure nothing was sent but the handshake, and the
 * message says why the enclave was refused. `doc` (may be NULL; initialised with
 * cl_attest_doc_init) receives the verified document, and is left empty on failure.
 */
CL_MUST_USE cl_status cl_ratls_client_connect(cl_ratls_client *c, int fd, cl_ratls_conn *out, cl_attest_doc *doc);

#endif
