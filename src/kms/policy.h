/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key policies, evaluated as IAM evaluates them (IAM User Guide, "Policy
 * evaluation logic"): an explicit Deny beats any Allow, an Allow beats the
 * default (implicit) deny. Statements carry Principal, Action/NotAction,
 * Resource/NotResource and Condition blocks with the IAM operators
 * (String*, Numeric*, Bool, Null, ...IfExists, ForAnyValue:/ForAllValues:).
 *
 * Condition keys come from the request: the standard KMS keys are built in
 * (kms:EncryptionContext:<k>, kms:EncryptionContextKeys, kms:CallerAccount,
 * aws:PrincipalArn, kms:GrantOperations, kms:GranteePrincipal, kms:ViaService
 * absent) and any other key (kms:RecipientAttestation:*) is asked of the
 * request's `lookup` callback, so the attestation work adds keys without
 * touching the evaluator.
 */
#ifndef CLOISTER_KMS_POLICY_H
#define CLOISTER_KMS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister/error.h"
#include "cloister/kv.h"

#define KMS_POLICY_MAX 32768 /* PolicyType max length in the service model */
#define KMS_COND_MAX_VALUES 64

typedef struct kms_policy kms_policy;

/* CL_ERR_FORMAT (MalformedPolicyDocumentException) names the fault. */
CL_MUST_USE cl_status kms_policy_parse(const char *text, size_t len, kms_policy **out);
void kms_policy_free(kms_policy *p);

/*
 * As kms_policy_parse, from a small per-thread cache keyed by the whole policy
 * text (so a changed policy is a different key: never stale). *out is
 * borrowed: do not free it; it stays valid until this thread's next call.
 */
CL_MUST_USE cl_status kms_policy_parse_cached(const char *text, size_t len, const kms_policy **out);

/* The values of one condition key in a request. */
typedef struct kms_cond_values {
    bool present;
    size_t n;
    const char *v[KMS_COND_MAX_VALUES];
} kms_cond_values;

typedef struct kms_policy_request {
    const char *principal_arn;     /* arn:aws:iam::111122223333:user/dev */
    const char *principal_account; /* 111122223333 */
    const char *action;            /* kms:Encrypt */
    const char *resource;          /* the key ARN */
    const cl_kvlist *encryption_context;
    const char *const *grant_operations; /* CreateGrant only; NULL-terminated */
    const char *grantee_principal;
    /* Other condition keys; returns false when the key is unknown. */
    bool (*lookup)(void *arg, const char *key, kms_cond_values *out);
    void *lookup_arg;
} kms_policy_request;

typedef enum kms_decision {
    KMS_DECISION_IMPLICIT_DENY = 0,
    KMS_DECISION_ALLOW,
    KMS_DECISION_EXPLICIT_DENY,
} kms_decision;

kms_decision kms_policy_evaluate(const kms_policy *p, const kms_policy_request *r);
/*
 * As kms_policy_evaluate; `why` (when not NULL) then says what decided a refusal: for an
 * implicit deny, the condition ("<Operator> <key>") that failed in the first Allow statement
 * matching the principal, action and resource ("" when none matched); for an explicit deny,
 * the denying statement's Sid.
 */
#define KMS_POLICY_WHY_MAX 320
kms_decision kms_policy_evaluate_why(const kms_policy *p, const kms_policy_request *r, char *why, size_t why_cap);

/* AWS's default key policy: the key's account root gets kms:*. */
CL_MUST_USE cl_status kms_policy_default(const char *account, char **out);

#endif
