/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: what a key's grants allow (AWS KMS Developer Guide, "Grants in AWS KMS"
 * and "Creating grants"; API Reference, GrantConstraints and CreateGrant):
 *   - a grant lets its grantee principal call the operations it lists (the GrantOperation
 *     enum) on its key, under its constraints: EncryptionContextEquals (the request's
 *     context is exactly these pairs) and EncryptionContextSubset (it contains them);
 *     pairs match case-sensitively. Constraints apply to operations that take an encryption
 *     context; DescribeKey and RetireGrant have none and ignore them ("Grant constraints are
 *     not applied to ... management operations, such as DescribeKey or RetireGrant");
 *   - a grantee whose CreateGrant permission comes from a grant ("Granting CreateGrant
 *     permission") may create only grants that allow some or all of that grant's
 *     operations, with constraints at least as strict as that grant's;
 *   - a grant token identifies one grant. Here it is the grant id (the store is consistent,
 *     so a grant works the moment CreateGrant answers and the token adds no permission); a
 *     token that is not of that form, or names no grant (retired, revoked, never issued), is
 *     InvalidGrantTokenException.
 * Whether a grant may add to what the key policy decides is kms_key_authorize's
 * (key_access.h); the grant operations themselves are in ops_grants.c.
 */
#ifndef CLOISTER_KMS_GRANTS_H
#define CLOISTER_KMS_GRANTS_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister/error.h"
#include "cloister/kv.h"

#include "server.h"
#include "store.h"

#define KMS_GRANT_OPS_N 17      /* values of the GrantOperation enum */
#define KMS_GRANT_TOKENS_MAX 10 /* GrantTokenList */
#define KMS_GRANT_WHY_MAX 320

/* The GrantOperation value named op (a pointer into the enum table), or NULL. */
const char *kms_grant_op_find(const char *op);
/* Whether a stored operations list ("Decrypt,Encrypt") contains op. */
bool kms_grant_ops_contain(const char *list, const char *op);
/* Whether a grant to the caller on k allows op ("Decrypt") with the request's encryption
 * context ctx (NULL for an operation that has none). */
CL_MUST_USE cl_status kms_grant_allows(kms_call *c, const kms_key_rec *k, const char *op, const cl_kvlist *ctx,
                                       bool *granted);
/*
 * CreateGrant through a grant: whether a grant to the caller on k that allows CreateGrant
 * also allows every operation of ops (NULL-ended) and is no stricter than constraints (the
 * new grant's Constraints as JSON text, NULL or "" for none). When none does, why says
 * what the first grant allowing CreateGrant lacks ("" when the caller has no such grant).
 */
CL_MUST_USE cl_status kms_grant_allows_create(kms_call *c, const kms_key_rec *k, const char *const *ops,
                                              const char *constraints, bool *granted, char *why, size_t why_cap);
/* The request's GrantTokens member (GrantTokenList): a list of at most 10 tokens, each a
 * grant of this server's. */
CL_MUST_USE cl_status kms_grant_tokens_check(kms_call *c);
/* One grant token (RetireGrant's GrantToken): the grant it names into g. */
CL_MUST_USE cl_status kms_grant_token_find(kms_call *c, const char *token, kms_grant_rec *g);

#endif
