/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the decision AWS's policy evaluation logic makes for one request within one
 * account (IAM User Guide, "Policy evaluation logic" and "Determining whether a request is
 * allowed or denied within an account"): an explicit Deny in any policy wins; otherwise an
 * Allow in an identity policy (attached managed and inline policies of the user, or of the role
 * for a role session) or in the resource's policy allows; otherwise the request is implicitly
 * denied. A resource policy statement naming the account (its root ARN or id) allows nothing
 * by itself: it delegates to the identity policies. An account's root is allowed everything
 * in its account; the configuration's principals are administrators (identity.h).
 */
#ifndef CLOISTER_KMS_AUTHORIZE_H
#define CLOISTER_KMS_AUTHORIZE_H

#include "policy.h"
#include "server.h"

/* The identity policies' decision on r for p, r's principal fields filled from p. An account
 * root is allowed. why as kms_policy_evaluate_why's. */
CL_MUST_USE cl_status kms_identity_decide(kms_ctx *ctx, const kms_principal *p, kms_policy_request *r,
                                          kms_decision *out, char *why, size_t why_cap);

/* Fills r's principal fields from p. */
void kms_policy_request_principal(const kms_principal *p, kms_policy_request *r);

/*
 * May p perform action ("iam:CreateRole", "s3:GetObject") on resource_arn? resource_policy_json
 * is the resource's own policy (a bucket's), NULL if it has none; env the request's transport
 * keys. The resource in another account than p's needs both an identity policy and the
 * resource policy to allow (cross-account access). CL_OK with *out the decision; a failure
 * only when a policy could not be read.
 */
CL_MUST_USE cl_status kms_authorize(kms_ctx *ctx, const kms_principal *p, const char *action, const char *resource_arn,
                                    const char *resource_policy_json, const kms_policy_env *env, kms_decision *out);

#endif
