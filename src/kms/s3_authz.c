/* SPDX-License-Identifier: Apache-2.0 */
/* Who may do what to a bucket or object (s3.h, kms_s3_authorize; docs/s3.md, "Authorization"). */
#include <stdio.h>
#include <string.h>

#include "authorize.h"
#include "policy.h"
#include "s3.h"
#include "s3_store.h"

/*
 * The one place an S3 request is allowed or refused, with AWS's evaluation logic ("Policy
 * evaluation logic"; S3 User Guide, "How Amazon S3 authorizes a request"): an explicit Deny in
 * the caller's identity policies or the bucket policy refuses; within the bucket owner's account
 * an Allow of either allows (kms_authorize, authorize.h); a caller of another account needs both
 * its identity policies and the bucket policy to allow (cross-account access). An anonymous
 * caller has no identity policies: only a bucket policy statement with "Principal": "*" allows
 * it. S3 ARNs name no account, so the bucket's owner (bucket.json) decides which case applies.
 * A bucket that does not exist is judged as one of the caller's own account (the operation then
 * answers NoSuchBucket, or CreateBucket makes it).
 */
cl_status kms_s3_authorize(kms_s3_req *r, const char *action, const char *resource_arn)
{
    cl_status rc = CL_OK;
    json_t *info = NULL;
    cl_buf pol;
    cl_buf_init(&pol, KMS_POLICY_MAX + 1);
    const char *policy = NULL;
    bool same_account = true;
    kms_decision d = KMS_DECISION_IMPLICIT_DENY;
    /* CreateBucket is the caller's own act on a name: the operation answers whether it is taken. */
    bool create = strcmp(action, "s3:CreateBucket") == 0;
    if (!create && r->bucket[0] != '\0' && kms_s3_bucket_load(r->kms, r->bucket, &info) == CL_OK) {
        const char *owner = json_string_value(json_object_get(info, "owner"));
        same_account = r->who != NULL && owner != NULL && strcmp(owner, r->who->account) == 0;
        char path[KMS_PATH_MAX + 128];
        CL_GUARD_GOTO(kms_s3_path(r->kms, r->bucket, "policy.json", path, sizeof(path)));
        if (kms_s3_file_get(path, KMS_POLICY_MAX, &pol) == CL_OK) policy = cl_buf_cstr(&pol);
    }
    cl_error_clear();
    if (r->who == NULL) {
        if (policy != NULL) {
            const kms_policy *p = NULL;
            CL_GUARD_GOTO(kms_policy_parse_cached(policy, pol.len, &p));
            kms_policy_request pr = {.action = action, .resource = resource_arn, .env = &r->env};
            d = kms_policy_evaluate(p, &pr);
        }
    } else if (same_account) {
        CL_GUARD_GOTO(kms_authorize(r->kms, r->who, action, resource_arn, policy, &r->env, &d));
    } else {
        kms_decision id = KMS_DECISION_IMPLICIT_DENY, bp = KMS_DECISION_IMPLICIT_DENY;
        CL_GUARD_GOTO(kms_authorize(r->kms, r->who, action, resource_arn, NULL, &r->env, &id));
        if (policy != NULL) {
            const kms_policy *p = NULL;
            CL_GUARD_GOTO(kms_policy_parse_cached(policy, pol.len, &p));
            kms_policy_request pr = {.action = action, .resource = resource_arn, .env = &r->env};
            kms_policy_request_principal(r->who, &pr);
            bp = kms_policy_evaluate(p, &pr);
        }
        d = id == KMS_DECISION_EXPLICIT_DENY || bp == KMS_DECISION_EXPLICIT_DENY ? KMS_DECISION_EXPLICIT_DENY
            : id == KMS_DECISION_ALLOW && bp == KMS_DECISION_ALLOW               ? KMS_DECISION_ALLOW
                                                                                 : KMS_DECISION_IMPLICIT_DENY;
    }
    if (d != KMS_DECISION_ALLOW) KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "Access Denied");
out:
    json_decref(info);
    cl_buf_free(&pol);
    return rc;
}
