/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: loading, authorizing and unwrapping a key (key_access.h). Uses the store,
 * the policy evaluator (policy.h), the grants (grants.h) and the Recipient's condition keys
 * (attested_release.h); used by the operation files.
 */
#include "key_access.h"

#include <stdio.h>
#include <string.h>

#include "cloister/crypto.h"

#include "attested_release.h"
#include "grants.h"
#include "policy.h"

void kms_key_arn(const kms_call *c, const char *account, const char *key_id, char *out, size_t cap)
{
    (void)snprintf(out, cap, "arn:aws:kms:%s:%s:key/%s", c->kms->cfg->region, account, key_id);
}

static bool kms_is_key_id(const char *s)
{
    if (strlen(s) != KMS_KEY_ID_LEN) return false;
    for (size_t i = 0; i < KMS_KEY_ID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f');
        if (dash ? s[i] != '-' : !hex) return false;
    }
    return true;
}

static CL_MUST_USE cl_status kms_not_found_key(kms_call *c, const char *id)
{
    KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Key '%s' does not exist", id);
}

/* Old versions stay, so every earlier ciphertext still decrypts (the blob names its version). */
cl_status kms_key_rotate(kms_call *c, kms_key_rec *k, bool on_demand)
{
    cl_buf material, wrapped;
    cl_buf_init_secret(&material, KMS_MATERIAL_LEN);
    cl_buf_init(&wrapped, 4096);
    cl_status rc = cl_buf_resize(&material, KMS_MATERIAL_LEN);
    if (rc == CL_OK) rc = cl_random_secret(material.data, KMS_MATERIAL_LEN);
    if (rc == CL_OK) rc = kms_material_wrap(&c->kms->root, k->arn, k->current_version + 1, material.data, &wrapped);
    if (rc == CL_OK)
        rc = c->kms->store->ops->add_version(c->kms->store, k->key_id, k->current_version, wrapped.data, wrapped.len,
                                             c->now, on_demand);
    if (rc == CL_OK) {
        k->current_version++;
        k->last_rotated = c->now;
    }
    cl_buf_free(&material);
    cl_buf_free(&wrapped);
    return rc;
}

/* A key pending deletion whose date has passed is deleted here, so it is gone as soon as it
 * is due; automatic rotation happens when the key is next used after it is due. */
cl_status kms_key_load(kms_call *c, const char *id, unsigned flags, kms_key_rec *k)
{
    bool allow_alias = (flags & KMS_KEY_ALIAS_OK) != 0;
    bool any_account = (flags & KMS_KEY_ANY_ACCOUNT) != 0;
    const char *account = c->principal->account;
    char arn_prefix[128];
    (void)snprintf(arn_prefix, sizeof(arn_prefix), "arn:aws:kms:%s:", c->kms->cfg->region);
    size_t plen = strlen(arn_prefix);
    char arn_account[KMS_ACCOUNT_LEN + 1];
    const char *key_id = NULL;
    kms_alias_rec alias;
    char alias_name[KMS_ALIAS_MAX + 1];
    const char *aname = NULL;
    if (strncmp(id, "alias/", 6) == 0) {
        aname = id;
    } else if (strncmp(id, arn_prefix, plen) == 0) {
        /* arn:aws:kms:REGION:ACCOUNT:key/ID or :alias/NAME; ACCOUNT is 12 digits. */
        const char *a = id + plen;
        size_t alen = strspn(a, "0123456789");
        if (alen != 12 || a[alen] != ':') KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Invalid arn %s", id);
        (void)snprintf(arn_account, sizeof(arn_account), "%.*s", (int)alen, a);
        account = arn_account;
        any_account = false;
        if (strncmp(a + alen + 1, "alias/", 6) == 0)
            aname = a + alen + 1;
        else if (strncmp(a + alen + 1, "key/", 4) == 0)
            key_id = a + alen + 5;
        else
            KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Invalid arn %s", id);
    } else if (strncmp(id, "arn:", 4) == 0) {
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Invalid arn %s", id);
    } else {
        key_id = id;
    }
    if (aname != NULL) {
        if (!allow_alias) KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Invalid keyId %s", id);
        (void)snprintf(alias_name, sizeof(alias_name), "%s", aname);
        cl_status rc = c->kms->store->ops->get_alias(c->kms->store, account, alias_name, &alias);
        if (rc == CL_ERR_NOT_FOUND)
            KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Alias %s%s:%s is not found.", arn_prefix, account,
                        alias_name);
        CL_GUARD(rc);
        key_id = alias.key_id;
    }
    if (!kms_is_key_id(key_id)) return kms_not_found_key(c, id);
    cl_status rc = c->kms->store->ops->get_key(c->kms->store, key_id, k);
    if (rc == CL_ERR_NOT_FOUND) {
        char arn[KMS_ARN_MAX + 1];
        kms_key_arn(c, account, key_id, arn, sizeof(arn));
        return kms_not_found_key(c, arn);
    }
    CL_GUARD(rc);
    if (!any_account && strcmp(k->account, account) != 0) {
        kms_key_rec_clear(k);
        return kms_not_found_key(c, id);
    }
    if (k->state == KMS_KEY_PENDING_DELETION && k->deletion_date <= c->now) {
        char arn[KMS_ARN_MAX + 1];
        (void)snprintf(arn, sizeof(arn), "%s", k->arn);
        kms_key_rec_clear(k);
        CL_GUARD(c->kms->store->ops->delete_key(c->kms->store, key_id));
        if (c->kms->cache != NULL) kms_cache_evict_key(c->kms->cache, key_id);
        return kms_not_found_key(c, arn);
    }
    if (k->rotation_enabled && k->state == KMS_KEY_ENABLED &&
        c->now >= k->last_rotated + (int64_t)k->rotation_period_days * KMS_DAY) {
        cl_status rr = kms_key_rotate(c, k, false);
        if (rr == CL_ERR_STATE) {
            /* Another request rotated it first: use what it made current. */
            kms_key_rec_clear(k);
            CL_GUARD(c->kms->store->ops->get_key(c->kms->store, key_id, k));
        } else {
            CL_GUARD(rr);
        }
    }
    (void)snprintf(c->key_arn, sizeof(c->key_arn), "%s", k->arn);
    return CL_OK;
}

/* The key policy's decision on r (no IAM policies here: a key policy granting the account
 * root stands for every principal of the account); why as kms_policy_evaluate_why's. */
static CL_MUST_USE cl_status kms_policy_decide(kms_call *c, const kms_key_rec *k, kms_policy_request *r,
                                               kms_decision *d, char *why, size_t why_cap)
{
    const kms_policy *p = NULL;
    if (kms_policy_parse_cached(k->policy, strlen(k->policy), &p) != CL_OK)
        KMS_FAIL_AS(c, "KMSInternalException", CL_ERR_INTERNAL, "stored policy of %s does not parse", k->arn);
    r->principal_arn = c->principal->arn;
    r->principal_account = c->principal->account;
    r->resource = k->arn;
    r->env = &c->env;
    r->lookup = kms_recipient_lookup;
    r->lookup_arg = CL_UNCONST(c->recipient);
    *d = kms_policy_evaluate_why(p, r, why, why_cap);
    return CL_OK;
}

/* AWS's message, then what decided the refusal (AWS does not say; naming the failed
 * condition key, never the expected value, is what makes a refused attestation debuggable). */
static CL_MUST_USE cl_status kms_denied(kms_call *c, const kms_key_rec *k, const char *action, kms_decision d,
                                        const char *why, const char *grant_why)
{
    char suffix[KMS_POLICY_WHY_MAX + KMS_GRANT_WHY_MAX + 160] = "";
    if (why[0] != '\0')
        (void)snprintf(suffix, sizeof(suffix), " (%s%s)", d == KMS_DECISION_IMPLICIT_DENY ? "failed condition: " : "",
                       why);
    if (d == KMS_DECISION_IMPLICIT_DENY && grant_why != NULL && grant_why[0] != '\0') {
        size_t used = strlen(suffix);
        (void)snprintf(suffix + used, sizeof(suffix) - used,
                       "; a grant allows %s, but a grant created through a grant may allow only operations of that "
                       "grant, with constraints at least as strict: %s",
                       action, grant_why);
    }
    KMS_FAIL_AS(c, "AccessDeniedException", CL_ERR_DENIED,
                "User: %s is not authorized to perform: %s on resource: %s because %s%s", c->principal->arn, action,
                k->arn,
                d == KMS_DECISION_EXPLICIT_DENY ? "of an explicit deny in the key policy"
                                                : "no resource-based policy allows the action",
                suffix);
}

/*
 * Grants add to the key policy; they never override its explicit Deny. AWS evaluates a
 * key's policy, IAM policies and grants together, and "a caller can be denied access by an
 * explicit DENY statement ... in the key policy, IAM policy, or grant" (Developer Guide,
 * "Troubleshooting key access"); an explicit deny beats any allow (IAM User Guide, "Policy
 * evaluation logic"). So a grant is consulted only when the policy neither allows nor denies.
 * RetireGrant is not decided by grants here: a grant lets its grantee retire that grant
 * only (ops_grants.c), not the key's other grants; CreateGrant has its own rule
 * (kms_key_authorize_create_grant).
 */
cl_status kms_key_authorize(kms_call *c, const kms_key_rec *k, const char *action, const cl_kvlist *ctx)
{
    kms_policy_request r = {.action = action, .encryption_context = ctx};
    kms_decision d;
    char why[KMS_POLICY_WHY_MAX] = "";
    CL_GUARD(kms_policy_decide(c, k, &r, &d, why, sizeof(why)));
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    const char *op = strncmp(action, "kms:", 4) == 0 ? kms_grant_op_find(action + 4) : NULL;
    if (d == KMS_DECISION_IMPLICIT_DENY && op != NULL && strcmp(op, "RetireGrant") != 0 &&
        strcmp(op, "CreateGrant") != 0) {
        bool granted = false;
        CL_GUARD(kms_grant_allows(c, k, op, ctx, &granted));
        if (granted) return CL_OK;
    }
    return kms_denied(c, k, action, d, why, NULL);
}

cl_status kms_key_authorize_create_grant(kms_call *c, const kms_key_rec *k, const char *const *ops, const char *grantee,
                                         const char *constraints)
{
    /* kms:GrantOperations and kms:GranteePrincipal are CreateGrant's condition keys. They are
     * evaluated whatever then allows the call, so a Deny on them holds on the grant path too. */
    kms_policy_request r = {.action = "kms:CreateGrant", .grant_operations = ops, .grantee_principal = grantee};
    kms_decision d;
    char why[KMS_POLICY_WHY_MAX] = "", grant_why[KMS_GRANT_WHY_MAX] = "";
    CL_GUARD(kms_policy_decide(c, k, &r, &d, why, sizeof(why)));
    /* "These limitations don't apply to principals who get CreateGrant permission from a
     * policy" (Developer Guide, "Granting CreateGrant permission"). */
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    if (d == KMS_DECISION_IMPLICIT_DENY) {
        bool granted = false;
        CL_GUARD(kms_grant_allows_create(c, k, ops, constraints, &granted, grant_why, sizeof(grant_why)));
        if (granted) return CL_OK;
    }
    return kms_denied(c, k, "kms:CreateGrant", d, why, grant_why);
}

/* The messages are AWS's ("<arn> key usage is SIGN_VERIFY which is not valid for Encrypt.";
 * "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_4096." for an RSA key given
 * to an operation of symmetric keys). */
cl_status kms_key_require_usage(kms_call *c, const kms_key_rec *k, const char *usage)
{
    if (k->state == KMS_KEY_DISABLED) KMS_FAIL_AS(c, "DisabledException", CL_ERR_STATE, "%s is disabled.", k->arn);
    if (k->state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k->arn);
    if (strcmp(k->key_usage, usage) != 0)
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_STATE, "%s key usage is %s which is not valid for %s.",
                    k->arn, k->key_usage, c->operation);
    return CL_OK;
}

cl_status kms_key_require_enabled(kms_call *c, const kms_key_rec *k)
{
    CL_GUARD(kms_key_require_usage(c, k, "ENCRYPT_DECRYPT"));
    if (strcmp(k->key_spec, "SYMMETRIC_DEFAULT") != 0)
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_STATE,
                    "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec %s.", k->key_spec);
    return CL_OK;
}

cl_status kms_key_material(kms_call *c, const kms_key_rec *k, uint32_t version, cl_buf *material)
{
    kms_material_cache *mc = c->kms->cache;
    if (mc != NULL) {
        CL_GUARD(cl_buf_resize(material, KMS_MATERIAL_LEN));
        if (kms_cache_get(mc, k->key_id, version, material->data)) return CL_OK;
        cl_buf_reset(material);
    }
    cl_buf wrapped;
    cl_buf_init(&wrapped, 4096);
    cl_status rc = c->kms->store->ops->get_material(c->kms->store, k->key_id, version, &wrapped);
    if (rc == CL_ERR_NOT_FOUND) {
        c->exception = "InvalidCiphertextException";
    } else if (rc == CL_OK) {
        rc = kms_material_unwrap(&c->kms->root, k->arn, version, wrapped.data, wrapped.len, material);
        if (rc != CL_OK) c->exception = "KMSInternalException";
        if (rc == CL_OK && mc != NULL) kms_cache_put(mc, k->key_id, version, material->data);
    }
    cl_buf_free(&wrapped);
    return rc;
}
