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
#include "cloister/log.h"

#include "attested_release.h"
#include "authorize.h"
#include "grants.h"
#include "key_cache.h"
#include "policy.h"

void kms_key_arn(const kms_call *c, const char *account, const char *key_id, char *out, size_t cap)
{
    (void)snprintf(out, cap, "arn:%s:kms:%s:%s:key/%s", kms_region_partition(c->region), c->region, account, key_id);
}

void kms_alias_arn(const kms_call *c, const char *account, const char *name, char *out, size_t cap)
{
    (void)snprintf(out, cap, "arn:%s:kms:%s:%s:%s", kms_region_partition(c->region), c->region, account, name);
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

/* AWS's NotFoundException texts, as AWS KMS answers them (recorded against AWS in LocalStack's
 * tests/aws/services/kms/test_kms.snapshot.json: test_get_key_in_different_region,
 * test_get_key_does_not_exist, test_get_key_invalid_uuid): "Key 'ARN' does not exist" for a key
 * id of no key here, "Invalid keyId 'ID'" for what is no key id, "Invalid arn REGION" for a key
 * ARN of another region. */
static CL_MUST_USE cl_status kms_not_found_key(kms_call *c, const char *arn)
{
    KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Key '%s' does not exist", arn);
}

static CL_MUST_USE cl_status kms_invalid_key_id(kms_call *c, const char *id)
{
    KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Invalid keyId '%s'", id);
}

static CL_MUST_USE cl_status kms_invalid_arn(kms_call *c, const char *arn)
{
    KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Invalid arn %s", arn);
}

/* What an identifier names: a key id or an alias name, in an account (the caller's, or the
 * one an ARN names), and the key ARN given, if one was. */
typedef struct kms_key_ref {
    const char *key_id, *alias;
    const char *key_arn;
    const char *account;
    char arn_account[KMS_ACCOUNT_LEN + 1];
} kms_key_ref;

/* A key or alias ARN: arn:PARTITION:kms:REGION:ACCOUNT:key/ID or :alias/NAME, of the request's
 * region (ACCOUNT is 12 digits). */
static CL_MUST_USE cl_status kms_key_ref_arn(kms_call *c, const char *id, kms_key_ref *ref)
{
    kms_arn_parts a;
    if (!kms_arn_split(id, &a) || !cl_reader_is(&a.service, "kms", false)) return kms_invalid_arn(c, id);
    if (!cl_reader_is(&a.region, c->region, false)) {
        const uint8_t *r;
        size_t n;
        cl_reader_rest(&a.region, &r, &n);
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Invalid arn %.*s", (int)(n < 64 ? n : 64),
                    n > 0 ? (const char *)r : "");
    }
    cl_reader digits = a.account;
    if (cl_reader_remaining(&a.account) != KMS_ACCOUNT_LEN ||
        cl_reader_skip_any(&digits, "0123456789") != KMS_ACCOUNT_LEN)
        return kms_invalid_arn(c, id);
    CL_GUARD(cl_reader_copy(&a.account, ref->arn_account, KMS_ACCOUNT_LEN));
    ref->arn_account[KMS_ACCOUNT_LEN] = '\0';
    ref->account = ref->arn_account;
    const uint8_t *res;
    size_t res_len;
    cl_reader_rest(&a.resource, &res, &res_len);
    if (res_len == 0) return kms_invalid_arn(c, id);
    if (cl_reader_starts_with_str(&a.resource, "alias/")) {
        /* An alias ARN is not stored: it is the partition of its region or nothing. */
        if (!cl_reader_is(&a.partition, kms_region_partition(c->region), false)) return kms_invalid_arn(c, id);
        ref->alias = (const char *)res; /* runs to the end of id */
    } else if (cl_reader_starts_with_str(&a.resource, "key/")) {
        cl_reader key = a.resource;
        const uint8_t *kid;
        size_t kid_len;
        CL_GUARD(cl_reader_skip(&key, 4));
        cl_reader_rest(&key, &kid, &kid_len);
        ref->key_id = kid_len > 0 ? (const char *)kid : ""; /* runs to the end of id */
        ref->key_arn = id;                                  /* compared whole with the key's stored ARN */
    } else {
        return kms_invalid_arn(c, id);
    }
    return CL_OK;
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

/*
 * The state of a key of Origin EXTERNAL as AWS gives it ("Key states of AWS KMS keys"): without
 * live material it is PendingImport (unless PendingDeletion). Material whose ValidTo has passed
 * is deleted here, when the key is next loaded: "When the key material expires, AWS KMS deletes
 * the key material and the KMS key becomes unusable" (ImportKeyMaterial, API Reference). A
 * stored PendingImport with live material is what a write racing an import left behind: the
 * import won, so the key is Enabled.
 */
static CL_MUST_USE cl_status kms_key_import_state(kms_call *c, kms_key_rec *k)
{
    if (!k->external) return CL_OK;
    if (k->imported && k->material_valid_to != 0 && c->now >= k->material_valid_to) {
        bool deleted = false;
        CL_GUARD(c->kms->store->ops->delete_material(c->kms->store, k->key_id, k->material_valid_to, &deleted));
        if (deleted) {
            if (c->kms->cache != NULL) kms_cache_evict_key(c->kms->cache, k->key_id);
            CL_LOG_INFO("key %s: its imported key material expired and was deleted", k->arn);
            k->imported = false;
            k->material_valid_to = 0;
        } else {
            /* Reimported (or deleted) meanwhile: what the store has now decides. */
            char id[KMS_KEY_ID_LEN + 1];
            (void)snprintf(id, sizeof(id), "%s", k->key_id);
            kms_key_rec_clear(k);
            CL_GUARD(c->kms->store->ops->get_key(c->kms->store, id, k));
            if (k->imported && k->material_valid_to != 0 && c->now >= k->material_valid_to) k->imported = false;
        }
    }
    if (k->state == KMS_KEY_PENDING_DELETION) return CL_OK;
    if (!k->imported)
        k->state = KMS_KEY_PENDING_IMPORT;
    else if (k->state == KMS_KEY_PENDING_IMPORT)
        k->state = KMS_KEY_ENABLED;
    return CL_OK;
}

/* A key pending deletion whose date has passed is deleted here, so it is gone as soon as it
 * is due; automatic rotation happens when the key is next used after it is due. */
cl_status kms_key_load(kms_call *c, const char *id, unsigned flags, kms_key_rec *k)
{
    bool any_account = (flags & KMS_KEY_ANY_ACCOUNT) != 0;
    kms_key_ref ref = {.account = c->principal->account};
    kms_alias_rec alias;
    char alias_name[KMS_ALIAS_MAX + 1], arn[KMS_ARN_MAX + 1];
    memset(k, 0, sizeof(*k));
    if (strncmp(id, "alias/", 6) == 0) {
        ref.alias = id;
    } else if (strncmp(id, "arn:", 4) == 0) {
        CL_GUARD(kms_key_ref_arn(c, id, &ref));
        any_account = false;
    } else {
        ref.key_id = id;
    }
    if (ref.alias != NULL) {
        if ((flags & KMS_KEY_ALIAS_OK) == 0) return kms_invalid_key_id(c, id);
        (void)snprintf(alias_name, sizeof(alias_name), "%s", ref.alias);
        cl_status rc = c->kms->store->ops->get_alias(c->kms->store, ref.account, c->region, alias_name, &alias);
        if (rc == CL_ERR_NOT_FOUND) {
            kms_alias_arn(c, ref.account, alias_name, arn, sizeof(arn));
            KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Alias %s is not found.", arn);
        }
        CL_GUARD(rc);
        ref.key_id = alias.key_id;
    }
    if (!kms_is_key_id(ref.key_id)) return kms_invalid_key_id(c, ref.key_id);
    /* What a refusal names: the ARN given, or the one the key would have here. */
    if (ref.key_arn != NULL)
        (void)snprintf(arn, sizeof(arn), "%s", ref.key_arn);
    else
        kms_key_arn(c, ref.account, ref.key_id, arn, sizeof(arn));
    cl_status rc = kms_key_cache_get(c->kms->records, c->kms->store, ref.key_id, k);
    if (rc == CL_ERR_NOT_FOUND) return kms_not_found_key(c, arn);
    CL_GUARD(rc);
    bool here = (ref.key_arn == NULL || strcmp(k->arn, ref.key_arn) == 0) &&
                (any_account || strcmp(k->account, ref.account) == 0) &&
                ((flags & KMS_KEY_ANY_REGION) != 0 || strcmp(k->region, c->region) == 0);
    if (!here) {
        kms_key_rec_clear(k);
        return kms_not_found_key(c, arn);
    }
    char key_id[KMS_KEY_ID_LEN + 1];
    (void)snprintf(key_id, sizeof(key_id), "%s", k->key_id);
    if (k->state == KMS_KEY_PENDING_DELETION && k->deletion_date <= c->now) {
        (void)snprintf(arn, sizeof(arn), "%s", k->arn);
        kms_key_rec_clear(k);
        CL_GUARD(c->kms->store->ops->delete_key(c->kms->store, key_id));
        if (c->kms->cache != NULL) kms_cache_evict_key(c->kms->cache, key_id);
        return kms_not_found_key(c, arn);
    }
    cl_status irc = kms_key_import_state(c, k);
    if (irc != CL_OK) {
        kms_key_rec_clear(k);
        return irc;
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

cl_status kms_key_load_blob(kms_call *c, const kms_blob *b, kms_key_rec *k)
{
    /* AWS KMS keys are regional: "every ciphertext can be decrypted by only one key" (Developer
     * Guide, "Security considerations for multi-Region keys"), which lives in one region; a
     * ciphertext sent to another region's endpoint is InvalidCiphertextException there. */
    if (b->region[0] != '\0' && strcmp(b->region, c->region) != 0)
        KMS_FAIL_AS(c, "InvalidCiphertextException", CL_ERR_AUTH,
                    "The ciphertext was made in region %s, not %s: decrypt it in %s (a KMS key and its ciphertexts "
                    "belong to one region)",
                    b->region, c->region, b->region);
    CL_GUARD(kms_key_load(c, b->key_id, KMS_KEY_ANY_ACCOUNT | KMS_KEY_ANY_REGION, k));
    /* A blob of before regions has its key's region; a blob of this region naming a key of
     * another was altered (its header is authenticated, but that is checked later). */
    if (strcmp(k->region, c->region) != 0) {
        kms_key_rec_clear(k);
        KMS_FAIL_AS(c, "InvalidCiphertextException", CL_ERR_AUTH,
                    "The ciphertext's key is not in region %s: decrypt it in the region it was made in (a KMS key "
                    "and its ciphertexts belong to one region)",
                    c->region);
    }
    return CL_OK;
}

/* Which policy a refusal comes from (its message names it). */
typedef enum kms_refusal {
    KMS_REFUSED_BY_KEY_POLICY = 0,
    KMS_REFUSED_BY_IDENTITY_POLICY,
} kms_refusal;

/*
 * The key policy's decision on r together with the caller's identity policies, as AWS KMS
 * makes it (Developer Guide, "Key policies in AWS KMS": "Unless the key policy explicitly
 * allows it, you cannot use IAM policies to allow access to a KMS key"; the default statement
 * naming the account root, "Enable IAM User Permissions", lets IAM policies allow it): an
 * explicit Deny in either decides; a statement naming the caller (or its role, for a role
 * session) allows; a statement naming the account allows when an identity policy does too.
 * *how says which policy refused: an identity policy's explicit deny, or the key policy delegating
 * to identity policies none of which allowed; the key policy otherwise.
 * why as kms_policy_evaluate_why's.
 */
static CL_MUST_USE cl_status kms_policy_decide(kms_call *c, const kms_key_rec *k, kms_policy_request *r,
                                               kms_decision *d, kms_refusal *how, char *why, size_t why_cap)
{
    const kms_policy *p = NULL;
    *how = KMS_REFUSED_BY_KEY_POLICY;
    if (kms_policy_parse_cached(k->policy, strlen(k->policy), &p) != CL_OK)
        KMS_FAIL_AS(c, "KMSInternalException", CL_ERR_INTERNAL, "stored policy of %s does not parse", k->arn);
    kms_policy_request_principal(c->principal, r);
    r->resource = k->arn;
    r->env = &c->env;
    r->lookup = kms_recipient_lookup;
    r->lookup_arg = CL_UNCONST(c->recipient);
    r->account_delegates = false;
    kms_decision all = kms_policy_evaluate_why(p, r, why, why_cap);
    if (all == KMS_DECISION_EXPLICIT_DENY) {
        *d = all;
        return CL_OK;
    }
    kms_decision id;
    char id_why[KMS_POLICY_WHY_MAX] = "";
    CL_GUARD(kms_identity_decide(c->kms, c->principal, r, &id, id_why, sizeof(id_why)));
    if (id == KMS_DECISION_EXPLICIT_DENY) {
        *d = id;
        *how = KMS_REFUSED_BY_IDENTITY_POLICY;
        (void)snprintf(why, why_cap, "%s", id_why);
        return CL_OK;
    }
    if (all == KMS_DECISION_ALLOW && (id == KMS_DECISION_ALLOW || c->principal->kind == KMS_PRINCIPAL_ROOT)) {
        *d = KMS_DECISION_ALLOW;
        return CL_OK;
    }
    r->account_delegates = true;
    kms_decision direct = kms_policy_evaluate_why(p, r, NULL, 0);
    r->account_delegates = false;
    *d = direct == KMS_DECISION_ALLOW ? KMS_DECISION_ALLOW : KMS_DECISION_IMPLICIT_DENY;
    if (*d != KMS_DECISION_ALLOW && all == KMS_DECISION_ALLOW) *how = KMS_REFUSED_BY_IDENTITY_POLICY;
    return CL_OK;
}

/* AWS's message, then what decided the refusal (AWS does not say; naming the failed
 * condition key, never the expected value, is what makes a refused attestation debuggable). */
static CL_MUST_USE cl_status kms_denied(kms_call *c, const kms_key_rec *k, const char *action, kms_decision d,
                                        kms_refusal how, const char *why, const char *grant_why)
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
                d == KMS_DECISION_EXPLICIT_DENY
                    ? (how == KMS_REFUSED_BY_IDENTITY_POLICY ? "of an explicit deny in an identity-based policy"
                                                             : "of an explicit deny in the key policy")
                : how == KMS_REFUSED_BY_IDENTITY_POLICY
                    ? "no identity-based policy allows the action (the key policy delegates to IAM policies; attach "
                      "one, or ask the key's owner for a grant)"
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
    kms_refusal how;
    char why[KMS_POLICY_WHY_MAX] = "";
    CL_GUARD(kms_policy_decide(c, k, &r, &d, &how, why, sizeof(why)));
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    const char *op = strncmp(action, "kms:", 4) == 0 ? kms_grant_op_find(action + 4) : NULL;
    if (d == KMS_DECISION_IMPLICIT_DENY && op != NULL && strcmp(op, "RetireGrant") != 0 &&
        strcmp(op, "CreateGrant") != 0) {
        bool granted = false;
        CL_GUARD(kms_grant_allows(c, k, op, ctx, &granted));
        if (granted) return CL_OK;
    }
    return kms_denied(c, k, action, d, how, why, NULL);
}

cl_status kms_key_authorize_create_grant(kms_call *c, const kms_key_rec *k, const char *const *ops, const char *grantee,
                                         const char *constraints)
{
    /* kms:GrantOperations and kms:GranteePrincipal are CreateGrant's condition keys. They are
     * evaluated whatever then allows the call, so a Deny on them holds on the grant path too. */
    kms_policy_request r = {.action = "kms:CreateGrant", .grant_operations = ops, .grantee_principal = grantee};
    kms_decision d;
    kms_refusal how;
    char why[KMS_POLICY_WHY_MAX] = "", grant_why[KMS_GRANT_WHY_MAX] = "";
    CL_GUARD(kms_policy_decide(c, k, &r, &d, &how, why, sizeof(why)));
    /* "These limitations don't apply to principals who get CreateGrant permission from a
     * policy" (Developer Guide, "Granting CreateGrant permission"). */
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    if (d == KMS_DECISION_IMPLICIT_DENY) {
        bool granted = false;
        CL_GUARD(kms_grant_allows_create(c, k, ops, constraints, &granted, grant_why, sizeof(grant_why)));
        if (granted) return CL_OK;
    }
    return kms_denied(c, k, "kms:CreateGrant", d, how, why, grant_why);
}

/* The messages are AWS's ("<arn> key usage is SIGN_VERIFY which is not valid for Encrypt.";
 * "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_4096." for an RSA key given
 * to an operation of symmetric keys). */
cl_status kms_key_require_usage(kms_call *c, const kms_key_rec *k, const char *usage)
{
    if (k->state == KMS_KEY_DISABLED) KMS_FAIL_AS(c, "DisabledException", CL_ERR_STATE, "%s is disabled.", k->arn);
    if (k->state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k->arn);
    if (k->state == KMS_KEY_PENDING_IMPORT)
        KMS_FAIL_AS(c, "KMSInvalidStateException", CL_ERR_STATE,
                    "%s is pending import: it has no key material (import it with GetParametersForImport and "
                    "ImportKeyMaterial).",
                    k->arn);
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
