/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: grant operations: CreateGrant, ListGrants, ListRetirableGrants,
 * RetireGrant, RevokeGrant (ops.h), as the AWS KMS API Reference and "Grants in AWS KMS"
 * define them. What a grant allows is grants.c's; who may create one, key_access.c's. Uses
 * request.c, key_access.c, grants.c and policy.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"

#include "context.h"
#include "grants.h"
#include "key_access.h"
#include "ops.h"
#include "request.h"

static CL_MUST_USE cl_status kms_check_constraint_map(kms_call *c, json_t *m, const char *name)
{
    return kms_context_check_constraint(c, m, name); /* AWS's bounds on grant constraints (context.h) */
}

cl_status kms_op_create_grant(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id, *grantee, *retiring, *name;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    kms_grant_rec g;
    memset(&g, 0, sizeof(g));
    const char *opv[KMS_GRANT_OPS_N + 1] = {0};
    CL_GUARD_GOTO(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_req_str(c, "GranteePrincipal", true, 1, 256, &grantee));
    CL_GUARD_GOTO(kms_req_str(c, "RetiringPrincipal", false, 1, 256, &retiring));
    CL_GUARD_GOTO(kms_req_name(c, "Name", false, KMS_GRANT_NAME_MAX, &name));
    CL_GUARD_GOTO(kms_grant_tokens_check(c));
    json_t *ops = json_object_get(c->req, "Operations");
    if (ops == NULL || json_is_null(ops)) CL_GUARD_GOTO(kms_req_null(c, "Operations"));
    if (!json_is_array(ops)) KMS_FAIL_AS_GOTO(c, "SerializationException", CL_ERR_FORMAT, "Operations: a list");
    if (json_array_size(ops) == 0)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE, "Operations must name at least one operation");
    size_t i, nops = 0;
    json_t *v;
    json_array_foreach(ops, i, v)
    {
        const char *known = kms_grant_op_find(json_string_value(v));
        if (known == NULL)
            KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                             "1 validation error detected: Value at 'operations' failed to satisfy constraint: "
                             "Member must satisfy enum value set");
        if (kms_grant_ops_contain(g.operations, known)) continue;
        size_t used = strlen(g.operations);
        (void)snprintf(g.operations + used, sizeof(g.operations) - used, "%s%s", used ? "," : "", known);
        if (nops < sizeof(opv) / sizeof(opv[0]) - 1) opv[nops++] = known;
    }
    json_t *cons = json_object_get(c->req, "Constraints");
    if (cons != NULL && !json_is_null(cons)) {
        if (!json_is_object(cons))
            KMS_FAIL_AS_GOTO(c, "SerializationException", CL_ERR_FORMAT, "Constraints must be a structure");
        CL_GUARD_GOTO(
            kms_check_constraint_map(c, json_object_get(cons, "EncryptionContextSubset"), "EncryptionContextSubset"));
        CL_GUARD_GOTO(
            kms_check_constraint_map(c, json_object_get(cons, "EncryptionContextEquals"), "EncryptionContextEquals"));
        json_t *keep = json_object();
        if (json_object_get(cons, "EncryptionContextSubset"))
            json_object_set(keep, "EncryptionContextSubset", json_object_get(cons, "EncryptionContextSubset"));
        if (json_object_get(cons, "EncryptionContextEquals"))
            json_object_set(keep, "EncryptionContextEquals", json_object_get(cons, "EncryptionContextEquals"));
        g.constraints = json_dumps(keep, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(keep);
        CL_ENSURE_GOTO(g.constraints != NULL, CL_ERR_NOMEM, "out of memory");
    }
    CL_GUARD_GOTO(kms_key_load(c, id, 0, &k));
    CL_GUARD_GOTO(kms_key_authorize_create_grant(c, &k, opv, grantee, g.constraints));
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    uint8_t rnd[KMS_GRANT_ID_LEN / 2];
    CL_GUARD_GOTO(cl_random(rnd, sizeof(rnd)));
    (void)cl_hex_encode(rnd, sizeof(rnd), g.grant_id, sizeof(g.grant_id));
    (void)snprintf(g.key_id, sizeof(g.key_id), "%s", k.key_id);
    (void)snprintf(g.grantee, sizeof(g.grantee), "%s", grantee);
    (void)snprintf(g.retiring, sizeof(g.retiring), "%s", retiring ? retiring : "");
    (void)snprintf(g.issuing_account, sizeof(g.issuing_account), "%s", c->principal->account);
    (void)snprintf(g.region, sizeof(g.region), "%s", k.region);
    (void)snprintf(g.name, sizeof(g.name), "%s", name ? name : "");
    g.created = c->now;
    CL_GUARD_GOTO(c->kms->store->ops->create_grant(c->kms->store, &g));
    /* The store is consistent at once, so the grant works immediately; the token is the
     * grant id (grants.h). */
    json_object_set_new(c->resp, "GrantId", json_string(g.grant_id));
    json_object_set_new(c->resp, "GrantToken", json_string(g.grant_id));
out:
    kms_key_rec_clear(&k);
    kms_grant_rec_clear(&g);
    return rc;
}

static json_t *kms_grant_json(const kms_call *c, const kms_grant_rec *g)
{
    char arn[KMS_ARN_MAX + 1], issuer[64];
    kms_key_arn(c, g->issuing_account, g->key_id, arn, sizeof(arn));
    (void)snprintf(issuer, sizeof(issuer), "arn:aws:iam::%s:root", g->issuing_account);
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "KeyId", arn, "GrantId", g->grant_id, "CreationDate",
                          (json_int_t)g->created, "GranteePrincipal", g->grantee, "IssuingAccount", issuer);
    if (o == NULL) return NULL;
    if (g->name[0]) json_object_set_new(o, "Name", json_string(g->name));
    if (g->retiring[0]) json_object_set_new(o, "RetiringPrincipal", json_string(g->retiring));
    json_t *ops = json_array();
    for (const char *p = g->operations; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        json_array_append_new(ops, json_stringn(p, len));
        if (end == NULL) break;
        p = end + 1;
    }
    json_object_set_new(o, "Operations", ops);
    if (g->constraints != NULL && g->constraints[0])
        json_object_set_new(o, "Constraints", json_loads(g->constraints, 0, NULL));
    return o;
}

static CL_MUST_USE cl_status kms_list_grants(kms_call *c, const kms_grant_filter *f, const char *after, long long limit,
                                             const char *only_account)
{
    kms_grant_rec *gs = calloc((size_t)limit, sizeof(*gs));
    CL_ENSURE(gs != NULL, CL_ERR_NOMEM, "out of memory");
    size_t n = 0;
    bool more = false;
    cl_status rc = c->kms->store->ops->list_grants(c->kms->store, f, after, (size_t)limit, gs, &n, &more);
    if (rc == CL_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            if (only_account == NULL || strcmp(gs[i].issuing_account, only_account) == 0)
                json_array_append_new(arr, kms_grant_json(c, &gs[i]));
        json_object_set_new(c->resp, "Grants", arr);
        json_object_set_new(c->resp, "Truncated", json_boolean(more));
        if (more && n > 0) json_object_set_new(c->resp, "NextMarker", json_string(gs[n - 1].grant_id));
    }
    for (size_t i = 0; i < n; i++) kms_grant_rec_clear(&gs[i]);
    free(gs);
    return rc;
}

cl_status kms_op_list_grants(kms_call *c)
{
    const char *id, *after, *gid, *grantee;
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_req_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_req_marker(c, &after));
    CL_GUARD(kms_req_str(c, "GrantId", false, 1, 128, &gid));
    CL_GUARD(kms_req_str(c, "GranteePrincipal", false, 1, 256, &grantee));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = kms_key_authorize(c, &k, "kms:ListGrants", NULL);
    kms_grant_filter f = {.key_id = k.key_id, .grant_id = gid, .grantee = grantee};
    if (rc == CL_OK) rc = kms_list_grants(c, &f, after, limit, NULL);
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_list_retirable_grants(kms_call *c)
{
    const char *retiring, *after;
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    CL_GUARD(kms_req_str(c, "RetiringPrincipal", true, 1, 256, &retiring));
    CL_GUARD(kms_req_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_req_marker(c, &after));
    kms_grant_filter f = {.retiring = retiring, .region = c->region};
    /* Only grants on keys of the caller's account, in the request's region, are visible to it. */
    return kms_list_grants(c, &f, after, limit, c->principal->account);
}

cl_status kms_op_retire_grant(kms_call *c)
{
    const char *token, *id, *gid;
    CL_GUARD(kms_req_str(c, "GrantToken", false, 1, 8192, &token));
    CL_GUARD(kms_req_str(c, "KeyId", false, 1, 2048, &id));
    CL_GUARD(kms_req_str(c, "GrantId", false, 1, 128, &gid));
    if (token == NULL && (id == NULL || gid == NULL))
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "Specify a GrantToken, or both KeyId and GrantId");
    kms_grant_rec g;
    if (token != NULL) {
        CL_GUARD(kms_grant_token_find(c, token, &g));
    } else {
        cl_status rc = c->kms->store->ops->get_grant(c->kms->store, gid, &g);
        if (rc == CL_OK && strcmp(g.region, c->region) != 0) { /* a grant of another region is not here */
            kms_grant_rec_clear(&g);
            rc = CL_ERR_NOT_FOUND;
        }
        if (rc == CL_ERR_NOT_FOUND)
            KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Grant %s does not exist", gid);
        CL_GUARD(rc);
    }
    cl_status rc = CL_OK;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    CL_GUARD_GOTO(kms_key_load(c, g.key_id, 0, &k));
    if (id != NULL) {
        kms_key_rec named;
        CL_GUARD_GOTO(kms_key_load(c, id, 0, &named));
        bool same = strcmp(named.key_id, k.key_id) == 0;
        kms_key_rec_clear(&named);
        if (!same)
            KMS_FAIL_AS_GOTO(c, "NotFoundException", CL_ERR_NOT_FOUND, "Grant %s is not on key %s", g.grant_id, id);
    }
    /* Who may retire (API reference, RetireGrant): the retiring principal, the grantee when
     * the grant includes RetireGrant, or whom the key policy allows (a grant's RetireGrant
     * is for that grant only, so grants are not asked: kms_key_authorize). */
    const char *me = c->principal->arn, *role = c->principal->role_arn; /* a role's grants are its sessions' */
    bool is_retiring = strcmp(g.retiring, me) == 0 || (role[0] != '\0' && strcmp(g.retiring, role) == 0);
    bool is_grantee = strcmp(g.grantee, me) == 0 || (role[0] != '\0' && strcmp(g.grantee, role) == 0);
    bool may = is_retiring || (is_grantee && kms_grant_ops_contain(g.operations, "RetireGrant"));
    if (!may) CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:RetireGrant", NULL));
    CL_GUARD_GOTO(c->kms->store->ops->delete_grant(c->kms->store, g.grant_id));
out:
    kms_key_rec_clear(&k);
    kms_grant_rec_clear(&g);
    return rc;
}

cl_status kms_op_revoke_grant(kms_call *c)
{
    const char *id, *gid;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_req_str(c, "GrantId", true, 1, 128, &gid));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = CL_OK;
    kms_grant_rec g;
    memset(&g, 0, sizeof(g));
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:RevokeGrant", NULL));
    rc = c->kms->store->ops->get_grant(c->kms->store, gid, &g);
    if (rc == CL_ERR_NOT_FOUND || (rc == CL_OK && strcmp(g.key_id, k.key_id) != 0))
        KMS_FAIL_AS_GOTO(c, "NotFoundException", CL_ERR_NOT_FOUND, "Grant %s does not exist on %s", gid, k.arn);
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(c->kms->store->ops->delete_grant(c->kms->store, gid));
out:
    kms_grant_rec_clear(&g);
    kms_key_rec_clear(&k);
    return rc;
}
