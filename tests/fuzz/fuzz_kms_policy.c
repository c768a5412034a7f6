/* SPDX-License-Identifier: Apache-2.0 */
/* The key-policy parser and compiler, then the evaluator (with every kind of condition key) on
 * whatever parses. */
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kms_policy *p = NULL;
    if (kms_policy_parse((const char *)data, size, &p) != CL_OK) return 0;
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    if (cl_kvlist_add_arg(&ctx, "tenant=h1") != CL_OK) __builtin_trap();
    if (cl_kvlist_add_arg(&ctx, "file=scans/a/b.png") != CL_OK) __builtin_trap();
    static const char *const ops[] = {"CreateGrant", NULL};
    kms_policy_env env = {
        .secure_transport = size % 2 == 0, .source_ip = "198.51.100.7", .now = 1767225600, .region = "us-east-1"};
    kms_policy_request r = {.principal_arn = "arn:aws:iam::111122223333:user/dev",
                            .principal_account = "111122223333",
                            .action = "kms:Decrypt",
                            .resource = "arn:aws:kms:us-east-1:111122223333:key/8e28b0e3-7804-4034-8195-9843a308fa81",
                            .encryption_context = &ctx,
                            .grant_operations = ops,
                            .grantee_principal = "arn:aws:iam::111122223333:role/x",
                            .env = &env};
    kms_decision d = kms_policy_evaluate(p, &r);
    if (d != KMS_DECISION_ALLOW && d != KMS_DECISION_IMPLICIT_DENY && d != KMS_DECISION_EXPLICIT_DENY) __builtin_trap();
    cl_kvlist_free(&ctx);
    kms_policy_free(p);
    return 0;
}
