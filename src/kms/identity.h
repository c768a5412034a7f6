/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: who is calling, for every service of the endpoint (KMS, STS, IAM, S3).
 *
 * Identities live in the store (store.h's iam_* rows): IAM users and their access keys, roles
 * and their trust policies, customer managed policies, inline policies and attachments. An
 * access key's secret is stored sealed under a key derived from the root key (AES-256-GCM,
 * the access key id as associated data), never in clear. The configuration's principals (and
 * --dev's test/test) seed users with their access keys, administrators of their account
 * (AdministratorAccess attached); a seeded key whose principal left the configuration is
 * deleted at the next start.
 *
 * STS's temporary credentials are not stored: the session token is the session itself, sealed
 * (AES-256-GCM under a key derived from the root key with HKDF, "cloister sts session token
 * v1"): access key id, secret, role, session name, expiry. It is opaque to its holder and
 * cannot be forged or altered without the root key; it is accepted until it expires.
 */
#ifndef CLOISTER_KMS_IDENTITY_H
#define CLOISTER_KMS_IDENTITY_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#include "server.h"

/* Store kinds (store.h's iam_* rows). */
#define KMS_IAM_USER "user"     /* ACCOUNT/NAME */
#define KMS_IAM_AKEY "akey"     /* ACCESS_KEY_ID */
#define KMS_IAM_ROLE "role"     /* ACCOUNT/NAME */
#define KMS_IAM_POLICY "policy" /* ACCOUNT/NAME: a customer managed policy */
#define KMS_IAM_INLINE "inline" /* ENTITY|NAME: an inline policy of a user or role */
#define KMS_IAM_ATTACH "attach" /* ENTITY|POLICY_ARN: a managed policy attached */

#define KMS_ADMIN_POLICY_ARN "arn:aws:iam::aws:policy/AdministratorAccess"

/* Seeds the configuration's principals (see above). */
CL_MUST_USE cl_status kms_identity_seed(kms_ctx *ctx, int64_t now);

/*
 * The principal of access key id (with session_token for STS credentials, NULL otherwise)
 * into *out, a copy holding its secret (wipe it when done). CL_ERR_DENIED "The security token
 * included in the request is invalid." for an unknown key, a token that does not open or names
 * another key id, or an ASIA key without its token; CL_ERR_EXPIRED "The security token included
 * in the request is expired" once the session has ended.
 */
CL_MUST_USE cl_status kms_identity_find(kms_ctx *ctx, const char *access_key_id, const char *session_token, int64_t now,
                                        kms_principal *out);

/* Seals secret (an access key's) for the store, as base64 text appended to out. */
CL_MUST_USE cl_status kms_identity_seal_secret(kms_ctx *ctx, const char *access_key_id, const char *secret,
                                               cl_buf *out);

/* A new key id (prefix "AKIA" or "ASIA", 16 more upper-case letters and digits) and secret
 * (40 base64 characters, as AWS's). */
CL_MUST_USE cl_status kms_identity_new_key(const char *prefix, char id[21], char secret[41]);

/* The session token of a role session: s's access key id, secret, account, role, session name
 * and expiry, sealed; base64 text appended to token. */
CL_MUST_USE cl_status kms_session_token_seal(kms_ctx *ctx, const kms_principal *s, cl_buf *token);

/* "ACCOUNT/user/NAME" or "ACCOUNT/role/NAME" of an IAM ARN (arn:aws:iam::ACCOUNT:user/PATH/NAME),
 * false for anything else (a root ARN, an STS ARN). */
bool kms_identity_entity(const char *arn, char *out, size_t cap);

/* The text of an AWS managed policy this server knows (docs/iam.md), NULL for any other ARN. */
const char *kms_managed_policy(const char *arn);

/* Calls fn with the text of each identity policy of p (its entity's attached managed policies
 * and inline policies; for a role session, its role's), stopping at the first failure. fn must
 * not call the store. */
typedef CL_MUST_USE cl_status (*kms_policy_text_fn)(void *arg, const char *source, const char *text);
CL_MUST_USE cl_status kms_identity_policies(kms_ctx *ctx, const kms_principal *p, kms_policy_text_fn fn, void *arg);

#endif
