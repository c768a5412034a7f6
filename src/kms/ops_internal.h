/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the operation files share: ops.c's request and key helpers (exported
 * through thin wrappers at the end of ops.c) and the signing / MAC
 * operations of ops_sign.c.
 */
#ifndef CLOISTER_KMS_OPS_INTERNAL_H
#define CLOISTER_KMS_OPS_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#include "asym.h"
#include "server.h"

/* --- ops.c ----------------------------------------------------------------- */

/* A string member of the request (NULL in *out when absent and optional). */
CL_MUST_USE cl_status kms_req_str(kms_call *c, const char *member, bool required, size_t min, size_t max,
                                  const char **out);
/* A base64 blob member of 1..max decoded bytes. */
CL_MUST_USE cl_status kms_req_blob(kms_call *c, const char *member, bool required, size_t max, cl_buf *out);
CL_MUST_USE cl_status kms_req_grant_tokens(kms_call *c);
/* Sets a base64 blob member of the response. */
CL_MUST_USE cl_status kms_resp_blob(kms_call *c, const char *member, const uint8_t *p, size_t n);
/* Any identifier form (key id, key ARN, alias name, alias ARN). */
CL_MUST_USE cl_status kms_key_load(kms_call *c, const char *id, kms_key_rec *k);
/* Key policy, then grants; AccessDeniedException otherwise. */
CL_MUST_USE cl_status kms_key_authorize(kms_call *c, const kms_key_rec *k, const char *action);
/* 32-byte material of a symmetric or HMAC key version, into a secret buffer. */
CL_MUST_USE cl_status kms_key_material_get(kms_call *c, const kms_key_rec *k, uint32_t version, cl_buf *material);

/* --- ops_sign.c ------------------------------------------------------------ */

CL_MUST_USE cl_status kms_op_sign(kms_call *c);
CL_MUST_USE cl_status kms_op_verify(kms_call *c);
CL_MUST_USE cl_status kms_op_get_public_key(kms_call *c);
CL_MUST_USE cl_status kms_op_generate_mac(kms_call *c);
CL_MUST_USE cl_status kms_op_verify_mac(kms_call *c);

/* CreateKey: the spec that KeySpec (or CustomerMasterKeySpec) and KeyUsage
 * ask for, with AWS's errors for invalid or unsupported combinations. */
CL_MUST_USE cl_status kms_keyspec_choose(kms_call *c, const char *usage, const char *spec, const char *cmk_spec,
                                         const kms_spec_info **out);
/* CreateKey: version-1 material of a new key of spec s, wrapped under the root key. */
CL_MUST_USE cl_status kms_keyspec_material(kms_call *c, const kms_spec_info *s, const char *arn, cl_buf *wrapped);
/* DescribeKey / CreateKey: the algorithm lists of a key's spec in its metadata. */
void kms_keyspec_describe(const kms_key_rec *k, json_t *meta);

#endif
