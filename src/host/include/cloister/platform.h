/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sim backend's attestation platform (host side): the local PKI on disk
 * and the documents the attestation device signs with it for an enclave.
 * On Nitro this role is the hypervisor's; the formats are in cloister/attestation.h.
 */
#ifndef CLOISTER_PLATFORM_H
#define CLOISTER_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister/attestation.h"
#include "cloister/buf.h"
#include "cloister/error.h"

/* --- the sim platform: the attestation PKI on disk, and documents signed with it --- */

/* Lifetime of an enclave's signing certificate, as Nitro's (about three hours). */
#define CL_ATTEST_LEAF_SECONDS ((int64_t)3 * 3600)

/*
 * Creates DIR (0700 if missing) with root.pem + root.key (a self-signed P-384 root CA,
 * valid root_days from now - 1 h) and platform.pem + platform.key (a platform CA issued by
 * the root, pathlen 0, platform_days). Keys are PKCS#8 PEM, mode 0600. CL_ERR_EXISTS if a
 * file exists and !force. This is what `cloister enclave init-root` runs.
 */
CL_MUST_USE cl_status cl_attest_pki_create(const char *dir, int64_t now, int root_days, int platform_days, bool force);

typedef struct cl_attest_platform {
    cl_attest_key ca_key; /* the platform CA's key */
    cl_buf root, ca;      /* DER */
    char enclave[65];     /* name of the enclave the signing certificate is for */
    cl_attest_key leaf_key;
    cl_buf leaf; /* DER; empty until an enclave is started */
    int64_t leaf_not_before, leaf_not_after;
} cl_attest_platform;

void cl_attest_platform_init(cl_attest_platform *p);
void cl_attest_platform_free(cl_attest_platform *p);
/* Loads DIR/root.pem, DIR/platform.pem and DIR/platform.key, checking that the
 * platform certificate is issued by the root and matches the key. */
CL_MUST_USE cl_status cl_attest_platform_load(cl_attest_platform *p, const char *dir);
/* Makes a fresh signing key and certificate (CN=name, end entity, digitalSignature)
 * for one enclave, valid from now - 60 s for CL_ATTEST_LEAF_SECONDS. */
CL_MUST_USE cl_status cl_attest_platform_start_enclave(cl_attest_platform *p, const char *name, int64_t now);
/*
 * Signs a document: `params` gives module_id, timestamp, PCRs, public_key, user_data
 * and nonce; the platform fills in certificate and cabundle [root, platform CA]. The
 * signing certificate is renewed first when the timestamp is within 5 minutes of its
 * end (as Nitro rotates its own).
 */
CL_MUST_USE cl_status cl_attest_platform_sign(cl_attest_platform *p, const cl_attest_create_params *params,
                                              cl_buf *out);

#endif
