/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: what a key's grants allow (AWS KMS Developer Guide, "Grants in AWS KMS"):
 * the GrantOperation enum, grant constraints (GrantConstraints: EncryptionContextEquals,
 * EncryptionContextSubset) and grant tokens. The grant operations (CreateGrant, ListGrants,
 * RetireGrant, ...) are in ops_grants.c; the decision that combines grants with the key
 * policy is kms_key_authorize (key_access.h).
 */
#ifndef CLOISTER_KMS_GRANTS_H
#define CLOISTER_KMS_GRANTS_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister/error.h"
#include "cloister/kv.h"

#include "server.h"
#include "store.h"

#define KMS_GRANT_OPS_N 17 /* values of the GrantOperation enum */

/* The GrantOperation value named op (a pointer into the enum table), or NULL. */
const char *kms_grant_op_find(const char *op);
/* Whether a stored operations list ("Decrypt,Encrypt") contains op. */
bool kms_grant_ops_contain(const char *list, const char *op);
/* Whether a grant to the caller on k allows op ("Decrypt") with the request's encryption
 * context ctx. */
CL_MUST_USE cl_status kms_grant_allows(kms_call *c, const kms_key_rec *k, const char *op, const cl_kvlist *ctx,
                                       bool *granted);
/* The request's GrantTokens member (GrantTokenList). */
CL_MUST_USE cl_status kms_grant_tokens_check(kms_call *c);

#endif
