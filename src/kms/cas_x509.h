/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The certificate service's X.509 (RFC 5280), all through OpenSSL's X509 API: a session's CA
 * (made once, its key kept by the service only) and the leaf certificates it signs for attested
 * services' requests.
 */
#ifndef CLOISTER_KMS_CAS_X509_H
#define CLOISTER_KMS_CAS_X509_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define KMS_CAS_SERIAL_HEX 32 /* 16 random bytes (RFC 5280 4.1.2.2: at most 20 octets, positive) */

/* A CA: a fresh EC P-384 key (PKCS#8 PEM into key_pem, a secret buffer) and its self-signed
 * certificate (PEM): subject CN=common_name, basicConstraints critical CA:TRUE pathlen:0,
 * keyUsage critical keyCertSign and cRLSign, subject key identifier; ECDSA with SHA-384. */
CL_MUST_USE cl_status kms_cas_ca_make(const char *common_name, int64_t not_before, int64_t not_after, cl_buf *key_pem,
                                      cl_buf *cert_pem);

typedef struct kms_cas_leaf_params {
    const char *common_name;
    const char *const *dns; /* subjectAltName dNSName entries */
    size_t n_dns;
    int64_t not_before, not_after; /* not_after is cut to the CA's own */
} kms_cas_leaf_params;

/*
 * Signs a TLS server (and client) certificate for subject_pkey (EVP_PKEY, the request's) with the
 * CA: basicConstraints critical CA:FALSE, keyUsage critical digitalSignature (and
 * keyEncipherment for RSA), extendedKeyUsage serverAuth and clientAuth, subjectAltName, subject
 * and authority key identifiers; a random serial. PEM into leaf_pem; *not_after what it got.
 */
CL_MUST_USE cl_status kms_cas_leaf_sign(const cl_buf *ca_key_pem, const cl_buf *ca_cert_pem, const void *subject_pkey,
                                        const kms_cas_leaf_params *p, cl_buf *leaf_pem,
                                        char serial[KMS_CAS_SERIAL_HEX + 1], int64_t *not_after);

#endif
