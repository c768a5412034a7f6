/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: what grants allow (grants.h). Uses the store; used by key_access.c and
 * ops_grants.c. */
#include "grants.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GrantOperation enum of the service model. */
static const char *const kms_grant_ops[KMS_GRANT_OPS_N] = {
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
};

const char *kms_grant_op_find(const char *op)
{
    for (size_t j = 0; op != NULL && j < KMS_GRANT_OPS_N; j++)
        if (strcmp(op, kms_grant_ops[j]) == 0) return kms_grant_ops[j];
    return NULL;
}

bool kms_grant_ops_contain(const char *list, const char *op)
{
    size_t n = strlen(op);
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, op, n) == 0) return true;
        if (end == NULL) break;
        p = end + 1;
    }
    return false;
}

/* Grant constraints (GrantConstraints): EncryptionContextEquals must equal the
 * request's context exactly; every pair of EncryptionContextSubset must be in it. */
static bool kms_grant_constraints_hold(const char *constraints, const cl_kvlist *ctx)
{
    if (constraints == NULL || constraints[0] == '\0') return true;
    json_t *j = json_loads(constraints, 0, NULL);
    if (j == NULL) return false;
    bool ok = true;
    json_t *eq = json_object_get(j, "EncryptionContextEquals");
    json_t *sub = json_object_get(j, "EncryptionContextSubset");
    size_t have = ctx != NULL ? ctx->count : 0;
    if (eq != NULL) ok = json_object_size(eq) == have;
    json_t *maps[2] = {eq, sub};
    for (int m = 0; m < 2 && ok; m++) {
        const char *key;
        json_t *v;
        if (maps[m] == NULL) continue;
        json_object_foreach(maps[m], key, v)
        {
            const char *got = ctx != NULL ? cl_kvlist_get(ctx, key) : NULL;
            if (got == NULL || !json_is_string(v) || strcmp(got, json_string_value(v)) != 0) ok = false;
        }
    }
    json_decref(j);
    return ok;
}

cl_status kms_grant_allows(kms_call *c, const kms_key_rec *k, const char *op, const cl_kvlist *ctx, bool *granted)
{
    *granted = false;
    kms_grant_filter f = {.key_id = k->key_id, .grantee = c->principal->arn};
    enum { page = 32 };
    kms_grant_rec *gs = calloc(page, sizeof(*gs));
    CL_ENSURE(gs != NULL, CL_ERR_NOMEM, "out of memory");
    char after[KMS_GRANT_ID_LEN + 1] = "";
    cl_status rc = CL_OK;
    bool more = true;
    while (more && !*granted && rc == CL_OK) {
        size_t n = 0;
        rc = c->kms->store->ops->list_grants(c->kms->store, &f, after, page, gs, &n, &more);
        for (size_t i = 0; rc == CL_OK && i < n; i++) {
            if (kms_grant_ops_contain(gs[i].operations, op) && kms_grant_constraints_hold(gs[i].constraints, ctx))
                *granted = true;
        }
        if (n > 0) (void)snprintf(after, sizeof(after), "%s", gs[n - 1].grant_id);
        for (size_t i = 0; i < n; i++) kms_grant_rec_clear(&gs[i]);
    }
    free(gs);
    return rc;
}

cl_status kms_grant_tokens_check(kms_call *c)
{
    json_t *t = json_object_get(c->req, "GrantTokens");
    if (t == NULL || json_is_null(t)) return CL_OK;
    if (!json_is_array(t)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "GrantTokens must be a list");
    if (json_array_size(t) > 10)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "GrantTokens: at most 10 grant tokens");
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
    {
        if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > 8192)
            KMS_FAIL_AS(c, "InvalidGrantTokenException", CL_ERR_USAGE, "The grant token is not valid");
    }
    return CL_OK;
}
