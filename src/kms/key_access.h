/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: a key as an operation reaches it. Loading a key by any identifier AWS
 * accepts (and deleting it when its deletion date has passed, rotating it when rotation is
 * due); deciding whether the caller may perform an action on it (the key policy, then the
 * grants of grants.h: "Grants in AWS KMS" and IAM's policy evaluation logic); the key state
 * a cryptographic operation needs; its material, through the cache. Key states and errors
 * are those of the AWS KMS API Reference ("Key states of AWS KMS keys").
 */
#ifndef CLOISTER_KMS_KEY_ACCESS_H
#define CLOISTER_KMS_KEY_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/kv.h"

#include "server.h"
#include "store.h"

#define KMS_DAY 86400
#define KMS_ROTATION_DEFAULT_DAYS 365 /* RotationPeriodInDaysType: 90..2560, default 365 */

/* kms_key_load flags. */
#define KMS_KEY_ALIAS_OK 1u    /* an alias name or alias ARN may name the key */
#define KMS_KEY_ANY_ACCOUNT 2u /* a bare key id may be another account's (the key id a ciphertext names) */
#define KMS_KEY_ANY_REGION 4u  /* a bare key id may be another region's (the caller then says what that means) */

/*
 * A key by any identifier AWS accepts (KeyIdType: key id, key ARN, alias name, alias ARN;
 * aliases only with KMS_KEY_ALIAS_OK), in the request's region: a key or alias of another
 * region is not found, as in AWS KMS, whose keys are regional. A bare key id or alias name is
 * looked up in the caller's account; a key or alias ARN may name another account, as in AWS
 * KMS ("to use a KMS key in a different account, use its key ARN or alias ARN"): whether the
 * caller may use it is then the key policy's decision. NotFoundException otherwise, in AWS's
 * words: "Invalid keyId 'ID'", "Key 'ARN' does not exist", "Alias ARN is not found.",
 * "Invalid arn REGION" (an ARN naming another region). Sets c->key_arn.
 */
CL_MUST_USE cl_status kms_key_load(kms_call *c, const char *id, unsigned flags, kms_key_rec *k);
/* The key a ciphertext blob names (of any account: the key policy decides), which must be in
 * the request's region: a blob made in another region, or whose key is in one, is
 * InvalidCiphertextException, as AWS answers a ciphertext taken to another region. */
CL_MUST_USE cl_status kms_key_load_blob(kms_call *c, const kms_blob *b, kms_key_rec *k);
/* arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID in the request's region. */
void kms_key_arn(const kms_call *c, const char *account, const char *key_id, char *out, size_t cap);
/* arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME in the request's region (name is "alias/NAME"). */
void kms_alias_arn(const kms_call *c, const char *account, const char *name, char *out, size_t cap);
/* Adds a fresh key version and makes it current (CL_ERR_STATE when another request did first). */
CL_MUST_USE cl_status kms_key_rotate(kms_call *c, kms_key_rec *k, bool on_demand);
/*
 * May the caller perform action ("kms:Encrypt") on k? ctx is the request's encryption
 * context, NULL for an operation that has none. The key policy decides; when it neither
 * allows nor denies, a grant to the caller for the operation may allow (an explicit Deny
 * always holds). AccessDeniedException naming what decided otherwise.
 */
CL_MUST_USE cl_status kms_key_authorize(kms_call *c, const kms_key_rec *k, const char *action, const cl_kvlist *ctx);
/*
 * May the caller create a grant on k allowing ops (NULL-ended GrantOperation values) to
 * grantee, with constraints (the new grant's Constraints as JSON text, NULL for none)? The
 * key policy decides with the condition keys kms:GrantOperations and kms:GranteePrincipal;
 * when it neither allows nor denies, a grant to the caller that allows CreateGrant may,
 * for a new grant within that grant (grants.h, kms_grant_allows_create).
 */
CL_MUST_USE cl_status kms_key_authorize_create_grant(kms_call *c, const kms_key_rec *k, const char *const *ops,
                                                     const char *grantee, const char *constraints);
/* A key that is enabled, of this KeyUsage (DisabledException, KMSInvalidStateException,
 * InvalidKeyUsageException otherwise). */
CL_MUST_USE cl_status kms_key_require_usage(kms_call *c, const kms_key_rec *k, const char *usage);
/* A symmetric encryption key that is enabled (DisabledException, KMSInvalidStateException,
 * InvalidKeyUsageException otherwise). */
CL_MUST_USE cl_status kms_key_require_enabled(kms_call *c, const kms_key_rec *k);
/* The 32-byte material of a symmetric or HMAC key version into material, a secret buffer. */
CL_MUST_USE cl_status kms_key_material(kms_call *c, const kms_key_rec *k, uint32_t version, cl_buf *material);

#endif
