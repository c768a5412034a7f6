/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key policies, evaluated as IAM evaluates them (IAM User Guide, "Policy
 * evaluation logic"): an explicit Deny beats any Allow, an Allow beats the
 * default (implicit) deny. Statements carry Principal, Action/NotAction,
 * Resource/NotResource and Condition blocks with the IAM operators
 * (String*, Numeric*, Date*, Bool, IpAddress/NotIpAddress, Arn*, Null,
 * ...IfExists, ForAnyValue:/ForAllValues:).
 *
 * A policy is compiled when it is parsed: every condition key must be one this
 * evaluator answers (docs/kms.md, "Key policies"), or the policy is refused,
 * because a key it never answers would make an Allow never apply and, worse, a
 * Deny never fire. Values are parsed once (numbers, dates, CIDRs, wildcard
 * patterns), and evaluation does bounded work: Deny statements first, each stops
 * at its first failing element, each condition at its first decisive value, and
 * wildcards go through wildcard.h's matcher. tests/unit/test_policy.c times the
 * worst policy and request the limits allow.
 *
 * Condition keys come from the request: the KMS and global keys are built in
 * (kms:EncryptionContext:<k>, kms:EncryptionContextKeys, kms:CallerAccount,
 * kms:GrantOperations, kms:GranteePrincipal, kms:GrantIsForAWSResource,
 * kms:ViaService, aws:PrincipalArn, aws:PrincipalAccount, aws:username,
 * aws:SecureTransport, aws:SourceIp, aws:CurrentTime, aws:EpochTime,
 * aws:RequestedRegion, aws:PrincipalIsAWSService, aws:ViaAWSService, iam:PassedToService), and the
 * attestation keys (kms:RecipientAttestation:PCR<n>, :ImageSha384) are asked of
 * the request's `lookup` callback, so the attestation code supplies their values
 * without touching the evaluator.
 */
#ifndef CLOISTER_KMS_POLICY_H
#define CLOISTER_KMS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/error.h"
#include "cloister/kv.h"

/* AWS KMS Developer Guide, "Resource quotas": key policy document size 32 KB (32,768 bytes). */
#define KMS_POLICY_MAX 32768
#define KMS_COND_MAX_VALUES 64

typedef struct kms_policy kms_policy;

/* What a policy document is: a key's (every statement names its Principal), an identity's
 * (IAM user or role: no Principal, it applies to its holder) or a role's trust policy (names
 * its Principal, no Resource). */
typedef enum kms_policy_kind {
    KMS_POLICY_KEY = 0,
    KMS_POLICY_IDENTITY,
    KMS_POLICY_TRUST,
} kms_policy_kind;

/* CL_ERR_FORMAT (MalformedPolicyDocumentException) names the fault: the statement, and the
 * element, operator, condition key or value that is wrong. */
CL_MUST_USE cl_status kms_policy_parse(const char *text, size_t len, kms_policy **out);
CL_MUST_USE cl_status kms_policy_parse_as(const char *text, size_t len, kms_policy_kind kind, kms_policy **out);
void kms_policy_free(kms_policy *p);

/*
 * As kms_policy_parse, from a small per-thread cache keyed by the whole policy
 * text (so a changed policy is a different key: never stale). *out is
 * borrowed: do not free it; it stays valid until this thread's next call.
 *
 * This is how a key's stored policy is read, and it is lenient about what an
 * older build accepted and this one refuses (a condition key it does not
 * evaluate, a value its operator cannot compare): such a condition fails closed,
 * holding in a Deny statement and failing in an Allow statement, so the key is
 * not locked out and its administrators (an Allow without such conditions) can
 * replace the policy. Anything else malformed is still refused.
 */
CL_MUST_USE cl_status kms_policy_parse_cached(const char *text, size_t len, const kms_policy **out);
CL_MUST_USE cl_status kms_policy_parse_cached_as(const char *text, size_t len, kms_policy_kind kind,
                                                 const kms_policy **out);

/* The values of one condition key in a request. */
typedef struct kms_cond_values {
    bool present;
    size_t n;
    const char *v[KMS_COND_MAX_VALUES];
} kms_cond_values;

#define KMS_SOURCE_IP_MAX 46 /* INET6_ADDRSTRLEN */

/* What the server knows about how a request arrived: the global condition keys. */
typedef struct kms_policy_env {
    bool secure_transport;             /* aws:SecureTransport: the request came over TLS */
    char source_ip[KMS_SOURCE_IP_MAX]; /* aws:SourceIp: the TCP peer's address; "" if unknown */
    int64_t now;                       /* aws:CurrentTime, aws:EpochTime (seconds) */
    const char *region;                /* aws:RequestedRegion */
    /* kms:ViaService: the Cloister service that made this request on the caller's behalf;
     * NULL for a call the caller made itself, which is every call today. It also decides
     * kms:GrantIsForAWSResource and aws:ViaAWSService. */
    const char *via_service;
} kms_policy_env;

typedef struct kms_policy_request {
    const char *principal_arn;     /* arn:aws:iam::111122223333:user/dev */
    const char *principal_account; /* 111122223333 */
    /* A role session's role (arn:aws:iam::111122223333:role/NAME): a Principal entry naming it
     * matches the session; NULL for a user or root. */
    const char *role_arn;
    /* Principal entries naming the account (its root ARN or its id) match only the root
     * itself: the caller evaluates the identity policies the account delegates to. */
    bool account_delegates;
    /* The AWS service principal ("sagemaker.amazonaws.com") making this request in-process, as
     * the training-job supervisor does when it assumes a job's role (sagemaker.h); then the
     * principal fields above are NULL and only Principal "*" or a {"Service": ...} entry naming
     * it matches. NULL for every request that arrived over HTTP: no SigV4 request can be a
     * service principal. */
    const char *service_principal;
    /* iam:PassedToService: the service a role is passed to (iam:PassRole checks only). */
    const char *passed_to_service;
    const char *external_id;       /* sts:ExternalId; NULL when the request has none */
    const char *role_session_name; /* sts:RoleSessionName */
    const char *action;            /* kms:Encrypt */
    const char *resource;          /* the key ARN */
    const cl_kvlist *encryption_context;
    const char *const *grant_operations; /* CreateGrant only; NULL-terminated */
    const char *grantee_principal;
    /* The transport's keys. A policy that uses one (aws:SecureTransport, aws:SourceIp,
     * aws:CurrentTime, aws:EpochTime, aws:RequestedRegion) refuses a request without it:
     * a condition that cannot be judged must not let a Deny go unfired. */
    const kms_policy_env *env;
    /* Other condition keys (kms:RecipientAttestation:*); returns false when the key is unknown. */
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

/*
 * The name after "kms:RecipientAttestation:" (AWS KMS Developer Guide, "Condition keys for
 * AWS Nitro Enclaves"): "ImageSha384" (PCR0) or "PCR<n>", n decimal 0..31 without leading
 * zeros, case-insensitive. Sets *pcr; false for any other name.
 */
bool kms_policy_attestation_key(const char *name, unsigned *pcr);

#endif
