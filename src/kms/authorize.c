/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: identity policies with resource policies (authorize.h). */
#include "authorize.h"

#include <string.h>

#include "identity.h"

void kms_policy_request_principal(const kms_principal *p, kms_policy_request *r)
{
    r->principal_arn = p->arn;
    r->principal_account = p->account;
    r->role_arn = p->role_arn[0] != '\0' ? p->role_arn : NULL;
}

typedef struct kms_identity_eval {
    kms_policy_request *r;
    bool allow, deny;
    char *why;
    size_t why_cap;
} kms_identity_eval;

static CL_MUST_USE cl_status kms_identity_one(void *arg, const char *source, const char *text)
{
    kms_identity_eval *e = arg;
    const kms_policy *p = NULL;
    CL_GUARD_CTX(kms_policy_parse_cached_as(text, strlen(text), KMS_POLICY_IDENTITY, &p), "identity policy %s", source);
    char why[KMS_POLICY_WHY_MAX] = "";
    kms_decision d = kms_policy_evaluate_why(p, e->r, why, sizeof(why));
    if (d == KMS_DECISION_EXPLICIT_DENY && !e->deny) {
        e->deny = true;
        if (e->why != NULL) (void)snprintf(e->why, e->why_cap, "%s (in %s)", why, source);
    }
    if (d == KMS_DECISION_ALLOW) e->allow = true;
    return CL_OK;
}

cl_status kms_identity_decide(kms_ctx *ctx, const kms_principal *p, kms_policy_request *r, kms_decision *out, char *why,
                              size_t why_cap)
{
    kms_policy_request_principal(p, r);
    if (why != NULL && why_cap > 0) why[0] = '\0';
    if (p->kind == KMS_PRINCIPAL_ROOT) {
        /* "The root user ... has complete access to all AWS services and resources in the
         * account" (IAM User Guide, "AWS account root user"). */
        *out = KMS_DECISION_ALLOW;
        return CL_OK;
    }
    kms_identity_eval e = {.r = r, .why = why, .why_cap = why_cap};
    CL_GUARD(kms_identity_policies(ctx, p, kms_identity_one, &e));
    *out = e.deny ? KMS_DECISION_EXPLICIT_DENY : e.allow ? KMS_DECISION_ALLOW : KMS_DECISION_IMPLICIT_DENY;
    return CL_OK;
}

/* The account of an ARN (its fifth field), "" when it has none (an S3 ARN). */
static void kms_arn_account(const char *arn, char out[KMS_ACCOUNT_LEN + 1])
{
    out[0] = '\0';
    const char *p = arn;
    for (int i = 0; i < 4 && p != NULL; i++) {
        p = strchr(p, ':');
        if (p != NULL) p++;
    }
    if (p == NULL) return;
    const char *end = strchr(p, ':');
    if (end != NULL && end - p == KMS_ACCOUNT_LEN) (void)snprintf(out, KMS_ACCOUNT_LEN + 1, "%.*s", KMS_ACCOUNT_LEN, p);
}

cl_status kms_authorize(kms_ctx *ctx, const kms_principal *p, const char *action, const char *resource_arn,
                        const char *resource_policy_json, const kms_policy_env *env, kms_decision *out)
{
    kms_policy_request r = {.action = action, .resource = resource_arn, .env = env};
    kms_decision id;
    CL_GUARD(kms_identity_decide(ctx, p, &r, &id, NULL, 0));
    kms_decision all = KMS_DECISION_IMPLICIT_DENY, direct = KMS_DECISION_IMPLICIT_DENY;
    if (resource_policy_json != NULL) {
        const kms_policy *rp = NULL;
        CL_GUARD_CTX(kms_policy_parse_cached(resource_policy_json, strlen(resource_policy_json), &rp),
                     "the policy of %s", resource_arn);
        all = kms_policy_evaluate(rp, &r);
        r.account_delegates = p->kind != KMS_PRINCIPAL_ROOT;
        direct = kms_policy_evaluate(rp, &r);
    }
    char acct[KMS_ACCOUNT_LEN + 1];
    kms_arn_account(resource_arn, acct);
    bool same_account = acct[0] == '\0' || strcmp(acct, p->account) == 0;
    bool allow = same_account ? (id == KMS_DECISION_ALLOW || direct == KMS_DECISION_ALLOW)
                              : (id == KMS_DECISION_ALLOW && all == KMS_DECISION_ALLOW);
    if (id == KMS_DECISION_EXPLICIT_DENY || all == KMS_DECISION_EXPLICIT_DENY)
        *out = KMS_DECISION_EXPLICIT_DENY;
    else
        *out = allow ? KMS_DECISION_ALLOW : KMS_DECISION_IMPLICIT_DENY;
    return CL_OK;
}
