/* SPDX-License-Identifier: Apache-2.0 */
/* Who may do what to a bucket or object (s3.h, kms_s3_authorize; docs/s3.md, "Authorization"). */
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "s3.h"
#include "s3_store.h"

/*
 * The one place a decision is made (docs/s3.md, "Authorization"). Until the IAM engineer's
 * kms_authorize exists, the rule is: the bucket's owner account's principals are allowed
 * (as if an identity policy granted them s3:*), unless the bucket policy explicitly denies; any
 * other caller, and an anonymous one, needs an Allow of the bucket policy (Principal "*" for the
 * anonymous), evaluated with policy.c's evaluator ("Policy evaluation logic": explicit deny >
 * allow > implicit deny). ListBuckets and CreateBucket name no bucket: any authenticated caller.
 */
cl_status kms_s3_authorize(kms_s3_req *r, const char *action, const char *resource_arn)
{
    cl_status rc = CL_OK;
    json_t *info = NULL;
    cl_buf pol;
    cl_buf_init(&pol, KMS_POLICY_MAX + 1);
    bool owner = false;
    kms_decision d = KMS_DECISION_IMPLICIT_DENY;
    /* CreateBucket is the caller's own act on a name: the operation answers whether it is taken. */
    bool create = strcmp(action, "s3:CreateBucket") == 0;
    if (!create && r->bucket[0] != '\0' && kms_s3_bucket_load(r->kms, r->bucket, &info) == CL_OK) {
        owner = r->who != NULL && strcmp(json_string_value(json_object_get(info, "owner")), r->who->account) == 0;
        char path[KMS_PATH_MAX + 128];
        CL_GUARD_GOTO(kms_s3_path(r->kms, r->bucket, "policy.json", path, sizeof(path)));
        if (kms_s3_file_get(path, KMS_POLICY_MAX, &pol) == CL_OK) {
            const kms_policy *p = NULL;
            CL_GUARD_GOTO(kms_policy_parse_cached((const char *)pol.data, pol.len, &p));
            kms_policy_request pr = {.principal_arn = r->who != NULL ? r->who->arn : NULL,
                                     .principal_account = r->who != NULL ? r->who->account : NULL,
                                     .action = action,
                                     .resource = resource_arn,
                                     .env = &r->env};
            d = kms_policy_evaluate(p, &pr);
        }
    } else {
        /* No bucket named, or none of that name: an authenticated caller goes on (CreateBucket,
         * ListBuckets, or the operation's NoSuchBucket); an anonymous one learns nothing. */
        owner = r->who != NULL;
    }
    cl_error_clear();
    if (d == KMS_DECISION_EXPLICIT_DENY || (!owner && d != KMS_DECISION_ALLOW))
        KMS_S3_FAIL_GOTO(r, 403, "AccessDenied", "Access Denied");
out:
    json_decref(info);
    cl_buf_free(&pol);
    return rc;
}
