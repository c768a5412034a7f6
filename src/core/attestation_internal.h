/* SPDX-License-Identifier: Apache-2.0 */
/* Shared between attestation.c and attestation_create.c (and their tests). */
#ifndef CLOISTER_ATTESTATION_INTERNAL_H
#define CLOISTER_ATTESTATION_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister/attestation.h"
#include "cloister/buf.h"
#include "cloister/error.h"

/* Bounded CBOR well-formedness check of exactly one item filling p[0..n). */
CL_MUST_USE cl_status cl_attest_cbor_check(const uint8_t *p, size_t n, const char *what);
/* Appends a CBOR head (major type 0-6; 7 appends null) with libcbor's encoders. */
CL_MUST_USE cl_status cl_attest_cbor_head(cl_buf *b, unsigned major, uint64_t v);
/* RFC 8152 section 4.4 Sig_structure for COSE_Sign1 with empty external_aad. */
CL_MUST_USE cl_status cl_attest_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                                              size_t payload_len, cl_buf *out);
/* The payload map of cl_attest_doc_create (definite length, Nitro's key order). */
CL_MUST_USE cl_status cl_attest_payload_encode(const cl_attest_create_params *p, cl_buf *b);
/* Assembles a COSE_Sign1 from its parts (tests use it to splice tampered payloads). */
CL_MUST_USE cl_status cl_attest_cose_encode(const uint8_t *prot, size_t prot_len, const uint8_t *payload,
                                            size_t payload_len, const uint8_t sig[CL_ATTEST_SIG_LEN], bool tagged,
                                            cl_buf *out);
/* Signs any payload bytes as an ES384 COSE_Sign1 with the protected header {1: -35}. */
CL_MUST_USE cl_status cl_attest_cose_sign(const cl_attest_key *key, const uint8_t *payload, size_t payload_len,
                                          bool tagged, cl_buf *out);
/* Unix seconds -> "YYYY-MM-DDTHH:MM:SSZ". */
void cl_attest_fmt_time(int64_t t, char *out, size_t size);

#endif
