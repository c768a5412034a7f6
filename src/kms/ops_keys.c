/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: key lifecycle and key policies: CreateKey, DescribeKey, ListKeys,
 * EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion, GetKeyPolicy,
 * PutKeyPolicy, ListKeyPolicies (ops.h). Members are those of botocore's
 * kms/2014-11-01/service-2.json; key states and their errors those of the AWS KMS API
 * Reference ("Key states of AWS KMS keys"). Uses request.c, key_access.c, keyspec.c, asym.c,
 * policy.c and the tag members of ops_tags.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"

#include "asym.h"
#include "authorize.h"
#include "key_access.h"
#include "keyspec.h"
#include "ops.h"
#include "policy.h"
#include "request.h"

static const char *kms_state_name(kms_key_state s)
{
    switch (s) {
    case KMS_KEY_ENABLED: return "Enabled";
    case KMS_KEY_DISABLED: return "Disabled";
    case KMS_KEY_PENDING_DELETION: return "PendingDeletion";
    case KMS_KEY_PENDING_IMPORT: return "PendingImport";
    }
    return "Unavailable";
}

/* DescribeKey / CreateKey: a key lists the algorithms of its usage (keyspec.h), in
 * EncryptionAlgorithms, SigningAlgorithms, MacAlgorithms or KeyAgreementAlgorithms. */
static void kms_keyspec_describe(const kms_key_rec *k, json_t *meta)
{
    const kms_spec_info *s = kms_spec_find(k->key_spec);
    kms_usage u = kms_usage_find(k->key_usage);
    json_t *algs = s != NULL ? kms_spec_algs_json(s, u) : NULL;
    if (algs == NULL) return;
    json_object_del(meta, "EncryptionAlgorithms");
    json_object_set_new(meta, kms_usage_algs_member(u), algs);
}

static CL_MUST_USE cl_status kms_key_metadata(const kms_key_rec *k, json_t **out)
{
    json_t *m = json_pack(
        "{s:s, s:s, s:s, s:I, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:b}", "AWSAccountId", k->account, "KeyId",
        k->key_id, "Arn", k->arn, "CreationDate", (json_int_t)k->created, "Enabled", k->state == KMS_KEY_ENABLED,
        "Description", k->description, "KeyUsage", k->key_usage, "KeyState", kms_state_name(k->state), "Origin",
        k->external ? "EXTERNAL" : "AWS_KMS", "KeyManager", "CUSTOMER", "CustomerMasterKeySpec", k->key_spec, "KeySpec",
        k->key_spec, "EncryptionAlgorithms", "SYMMETRIC_DEFAULT", "MultiRegion", 0);
    CL_ENSURE(m != NULL, CL_ERR_NOMEM, "out of memory");
    kms_keyspec_describe(k, m);
    if (k->external && k->imported) {
        /* KeyMetadata's ExpirationModel and ValidTo: "present only when Origin is EXTERNAL". */
        json_object_set_new(
            m, "ExpirationModel",
            json_string(k->material_valid_to != 0 ? "KEY_MATERIAL_EXPIRES" : "KEY_MATERIAL_DOES_NOT_EXPIRE"));
        if (k->material_valid_to != 0) json_object_set_new(m, "ValidTo", json_integer(k->material_valid_to));
    }
    if (k->state == KMS_KEY_PENDING_DELETION) {
        json_object_set_new(m, "DeletionDate", json_integer(k->deletion_date));
        json_object_set_new(m, "PendingDeletionWindowInDays", json_integer(k->pending_days));
    }
    *out = m;
    return CL_OK;
}

static CL_MUST_USE cl_status kms_new_key_id(char out[KMS_KEY_ID_LEN + 1])
{
    _Static_assert(KMS_KEY_ID_LEN == CL_UUID_TEXT_LEN, "a key id is a UUID");
    return cl_uuid4(out);
}

/* CreateKey: the spec that KeySpec (or CustomerMasterKeySpec) and KeyUsage ask for, with
 * AWS's errors for invalid or unsupported combinations (CreateKey's KeySpec and KeyUsage in
 * the API Reference; the messages are AWS's where known). */
static CL_MUST_USE cl_status kms_keyspec_choose(kms_call *c, const char *usage, const char *spec, const char *cmk_spec,
                                                const kms_spec_info **out, kms_usage *out_usage)
{
    *out = NULL;
    if (spec != NULL && cmk_spec != NULL && strcmp(spec, cmk_spec) != 0)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "KeySpec %s and CustomerMasterKeySpec %s disagree; use KeySpec only", spec, cmk_spec);
    if (spec == NULL) spec = cmk_spec != NULL ? cmk_spec : "SYMMETRIC_DEFAULT";
    const char *names[32];
    if (!kms_spec_in_model(spec)) {
        kms_spec_names(false, names, sizeof(names) / sizeof(names[0]));
        return kms_req_enum_fail(c, "KeySpec", spec, names);
    }
    kms_usage u = usage != NULL ? kms_usage_find(usage) : KMS_USAGE_ENCRYPT_DECRYPT;
    if (u == KMS_USAGE_N) {
        const char *usages[KMS_USAGE_N + 1];
        for (int i = 0; i <= KMS_USAGE_N; i++) usages[i] = i < KMS_USAGE_N ? kms_usage_name((kms_usage)i) : NULL;
        return kms_req_enum_fail(c, "KeyUsage", usage, usages);
    }
    const kms_spec_info *s = kms_spec_row(spec);
    if (!s->built)
        KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED, "KeySpec %s is not supported: %s", spec,
                    s->why_not);
    /* "This parameter is optional when you are creating a symmetric encryption KMS key;
     * otherwise, it is required." */
    if (usage == NULL && s->kind != KMS_KIND_SYMMETRIC)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.");
    if (!kms_spec_has_usage(s, u))
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "KeyUsage %s is not compatible with KeySpec %s",
                    kms_usage_name(u), spec);
    *out = s;
    *out_usage = u;
    return CL_OK;
}

/* CreateKey: version-1 material of a new key of spec s, wrapped under the root key. */
static CL_MUST_USE cl_status kms_keyspec_material(kms_call *c, const kms_spec_info *s, const char *arn, cl_buf *wrapped)
{
    cl_status rc = CL_OK;
    cl_buf secret;
    if (s->kind == KMS_KIND_SYMMETRIC || (s->kind == KMS_KIND_HMAC && s->mac_len == KMS_MATERIAL_LEN)) {
        /* HMAC_256 material is 256 bits, wrapped exactly as symmetric material. */
        cl_buf_init_secret(&secret, KMS_MATERIAL_LEN);
        CL_GUARD_GOTO(cl_buf_resize(&secret, KMS_MATERIAL_LEN));
        CL_GUARD_GOTO(cl_random_secret(secret.data, KMS_MATERIAL_LEN));
        CL_GUARD_GOTO(kms_material_wrap(&c->kms->root, arn, 1, secret.data, wrapped));
    } else if (s->kind == KMS_KIND_HMAC) {
        /* The other HMAC specs' keys are as long as their digest (HMAC_224: 224 bits, ...),
         * stored as private keys are (key_use.c reads them back). */
        cl_buf_init_secret(&secret, s->mac_len);
        CL_GUARD_GOTO(cl_buf_resize(&secret, s->mac_len));
        CL_GUARD_GOTO(cl_random_secret(secret.data, s->mac_len));
        CL_GUARD_GOTO(kms_private_wrap(&c->kms->root, arn, 1, secret.data, secret.len, wrapped));
    } else {
        cl_buf_init_secret(&secret, KMS_PRIVATE_MAX);
        CL_GUARD_GOTO(kms_asym_generate(s, &secret));
        CL_GUARD_GOTO(kms_private_wrap(&c->kms->root, arn, 1, secret.data, secret.len, wrapped));
    }
out:
    cl_buf_free(&secret);
    return rc;
}

/*
 * The key policy lockout safety check. "The key policy must allow the calling principal to
 * make a subsequent PutKeyPolicy request on the KMS key. This reduces the risk that the KMS
 * key becomes unmanageable. (To omit this condition, set BypassPolicyLockoutSafetyCheck to
 * true.)" (Policy member of CreateKey and PutKeyPolicy, service model). The new policy is
 * evaluated for the caller, action kms:PutKeyPolicy on the key; anything but an Allow is
 * refused with AWS's MalformedPolicyDocumentException message.
 */
static CL_MUST_USE cl_status kms_policy_lockout_check(kms_call *c, const kms_policy *p, const char *key_arn,
                                                      bool bypass)
{
    if (bypass) return CL_OK;
    kms_policy_request r = {.action = "kms:PutKeyPolicy", .resource = key_arn, .env = &c->env};
    kms_policy_request_principal(c->principal, &r); /* a role session: its role's statements too */
    if (kms_policy_evaluate(p, &r) == KMS_DECISION_ALLOW) return CL_OK;
    KMS_FAIL_AS(c, "MalformedPolicyDocumentException", CL_ERR_USAGE,
                "The new key policy will not allow you to update the key policy in the future. (It must allow %s "
                "kms:PutKeyPolicy on the key; to lock yourself out on purpose, set BypassPolicyLockoutSafetyCheck "
                "to true.)",
                c->principal->arn);
}

/* OriginType of the service model. */
static const char *const kms_model_origins[] = {"AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE", NULL};

/*
 * CreateKey's members that put a key elsewhere than in this server's own store: a custom key store
 * (CloudHSM or external, CustomKeyStoreId, XksKeyId, Origin AWS_CLOUDHSM / EXTERNAL_KEY_STORE) or
 * several Regions (MultiRegion). This server is one key store in one place; AWS would answer a
 * CustomKeyStoreId it does not know with CustomKeyStoreNotFoundException and create a multi-Region
 * key (docs/kms.md, "Operations").
 */
static CL_MUST_USE cl_status kms_create_key_where(kms_call *c, const char *origin, const char *store_id,
                                                  const char *xks_key, bool multi_region)
{
    if (origin != NULL && !kms_str_in(kms_model_origins, origin))
        return kms_req_enum_fail(c, "Origin", origin, kms_model_origins);
    if (origin != NULL && (strcmp(origin, "AWS_CLOUDHSM") == 0 || strcmp(origin, "EXTERNAL_KEY_STORE") == 0))
        KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                    "Origin %s is not supported by this server: it has no custom key stores (CloudHSM or external); "
                    "its keys live in its own store (Origin AWS_KMS, or EXTERNAL for imported key material)",
                    origin);
    if (store_id != NULL || xks_key != NULL)
        KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                    "%s is not supported by this server: it has no custom key stores (CloudHSM or external); omit it "
                    "to create the key in this server's own store",
                    store_id != NULL ? "CustomKeyStoreId" : "XksKeyId");
    if (multi_region)
        KMS_FAIL_AS(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                    "MultiRegion true is not supported by this server: it is one server, and a key of one Region is "
                    "not replicated into another; omit MultiRegion or set it to false");
    return CL_OK;
}

cl_status kms_op_create_key(kms_call *c)
{
    cl_status rc = CL_OK;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf wrapped;
    cl_buf_init(&wrapped, KMS_PRIVATE_WRAPPED_MAX);
    const kms_spec_info *si = NULL;
    kms_usage usage_chosen = KMS_USAGE_N;
    kms_policy *pol = NULL;
    json_t *meta = NULL;
    cl_kvlist tags;
    cl_kvlist_init(&tags);
    const char *policy, *desc, *usage, *spec, *cmk_spec, *origin, *store_id, *xks_key;
    bool bypass, multi_region;
    CL_GUARD_GOTO(kms_req_str(c, "Policy", false, 1, KMS_POLICY_MAX, &policy));
    CL_GUARD_GOTO(kms_req_bool(c, "BypassPolicyLockoutSafetyCheck", &bypass));
    CL_GUARD_GOTO(kms_req_str(c, "Description", false, 0, KMS_DESCRIPTION_MAX, &desc));
    CL_GUARD_GOTO(kms_req_str(c, "KeyUsage", false, 1, 64, &usage));
    CL_GUARD_GOTO(kms_req_str(c, "KeySpec", false, 1, 64, &spec));
    CL_GUARD_GOTO(kms_req_str(c, "CustomerMasterKeySpec", false, 1, 64, &cmk_spec));
    CL_GUARD_GOTO(kms_req_str(c, "Origin", false, 1, 64, &origin));
    CL_GUARD_GOTO(kms_req_str(c, "CustomKeyStoreId", false, 1, 64, &store_id));
    CL_GUARD_GOTO(kms_req_str(c, "XksKeyId", false, 1, 128, &xks_key));
    CL_GUARD_GOTO(kms_req_bool(c, "MultiRegion", &multi_region));
    CL_GUARD_GOTO(kms_tags_member(c, "Tags", &tags));
    CL_GUARD_GOTO(kms_create_key_where(c, origin, store_id, xks_key, multi_region));
    CL_GUARD_GOTO(kms_keyspec_choose(c, usage, spec, cmk_spec, &si, &usage_chosen));
    CL_ENSURE_GOTO(si != NULL, CL_ERR_INTERNAL, "no key spec was chosen");
    bool external = origin != NULL && strcmp(origin, "EXTERNAL") == 0;
    if (external && si->kind != KMS_KIND_SYMMETRIC)
        KMS_FAIL_AS_GOTO(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED,
                         "Origin EXTERNAL with KeySpec %s is not supported by this server: it imports key material "
                         "into SYMMETRIC_DEFAULT keys only",
                         si->name);
    CL_GUARD_GOTO(kms_new_key_id(k.key_id));
    (void)snprintf(k.account, sizeof(k.account), "%s", c->principal->account);
    (void)snprintf(k.region, sizeof(k.region), "%s", c->region);
    kms_key_arn(c, k.account, k.key_id, k.arn, sizeof(k.arn));
    if (policy != NULL) {
        if (kms_policy_parse(policy, strlen(policy), &pol) != CL_OK)
            KMS_FAIL_AS_GOTO(c, "MalformedPolicyDocumentException", CL_ERR_FORMAT, "%s", cl_error_message());
        CL_GUARD_GOTO(kms_policy_lockout_check(c, pol, k.arn, bypass));
        k.policy = strdup(policy);
        CL_ENSURE_GOTO(k.policy != NULL, CL_ERR_NOMEM, "out of memory");
    } else {
        /* AWS's default policy gives the account root kms:*, the caller's account included. */
        CL_GUARD_GOTO(kms_policy_default(c->principal->account, &k.policy));
    }
    k.created = c->now;
    /* "Keys with imported key material are created in the PendingImport state" (Key states). */
    k.state = external ? KMS_KEY_PENDING_IMPORT : KMS_KEY_ENABLED;
    k.external = external;
    (void)snprintf(k.description, sizeof(k.description), "%s", desc ? desc : "");
    (void)snprintf(k.key_usage, sizeof(k.key_usage), "%s", kms_usage_name(usage_chosen));
    (void)snprintf(k.key_spec, sizeof(k.key_spec), "%s", si->name);
    k.current_version = 1;
    k.rotation_period_days = KMS_ROTATION_DEFAULT_DAYS;
    k.last_rotated = c->now;
    if (!external) CL_GUARD_GOTO(kms_keyspec_material(c, si, k.arn, &wrapped));
    CL_GUARD_GOTO(c->kms->store->ops->create_key(c->kms->store, &k, external ? NULL : wrapped.data, wrapped.len));
    (void)snprintf(c->key_arn, sizeof(c->key_arn), "%s", k.arn);
    CL_GUARD_GOTO(kms_tags_store(c, k.key_id, &tags));
    CL_GUARD_GOTO(kms_key_metadata(&k, &meta));
    json_object_set_new(c->resp, "KeyMetadata", meta);
out:
    cl_kvlist_free(&tags);
    kms_policy_free(pol);
    kms_key_rec_clear(&k);
    cl_buf_free(&wrapped);
    return rc;
}

cl_status kms_op_describe_key(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, KMS_KEY_ALIAS_OK, &k));
    cl_status rc = kms_key_authorize(c, &k, "kms:DescribeKey", NULL);
    json_t *meta = NULL;
    if (rc == CL_OK) rc = kms_key_metadata(&k, &meta);
    if (rc == CL_OK) json_object_set_new(c->resp, "KeyMetadata", meta);
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_list_keys(kms_call *c)
{
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    const char *after;
    CL_GUARD(kms_req_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_req_marker(c, &after));
    char(*ids)[KMS_KEY_ID_LEN + 1] = calloc((size_t)limit, sizeof(*ids));
    CL_ENSURE(ids != NULL, CL_ERR_NOMEM, "out of memory");
    size_t n;
    bool more;
    cl_status rc = c->kms->store->ops->list_keys(c->kms->store, c->principal->account, c->region, after, (size_t)limit,
                                                 ids, &n, &more);
    if (rc == CL_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            char arn[KMS_ARN_MAX + 1];
            kms_key_arn(c, c->principal->account, ids[i], arn, sizeof(arn));
            json_array_append_new(arr, json_pack("{s:s, s:s}", "KeyId", ids[i], "KeyArn", arn));
        }
        json_object_set_new(c->resp, "Keys", arr);
        json_object_set_new(c->resp, "Truncated", json_boolean(more));
        if (more && n > 0) json_object_set_new(c->resp, "NextMarker", json_string(ids[n - 1]));
    }
    free(ids);
    return rc;
}

static CL_MUST_USE cl_status kms_set_state(kms_call *c, const char *action, kms_key_state to)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_key_authorize(c, &k, action, NULL));
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    if (k.state == KMS_KEY_PENDING_IMPORT)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE,
                         "%s is pending import: import its key material first (ImportKeyMaterial).", k.arn);
    k.state = to;
    CL_GUARD_GOTO(c->kms->store->ops->update_key(c->kms->store, &k));
out:
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_enable_key(kms_call *c) { return kms_set_state(c, "kms:EnableKey", KMS_KEY_ENABLED); }
cl_status kms_op_disable_key(kms_call *c) { return kms_set_state(c, "kms:DisableKey", KMS_KEY_DISABLED); }

cl_status kms_op_schedule_key_deletion(kms_call *c)
{
    const char *id;
    long long days = 30;
    bool have;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_req_int(c, "PendingWindowInDays", &have, 7, 30, &days));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:ScheduleKeyDeletion", NULL));
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    k.state = KMS_KEY_PENDING_DELETION;
    k.pending_days = (int)days;
    k.deletion_date = c->now + days * KMS_DAY;
    CL_GUARD_GOTO(c->kms->store->ops->update_key(c->kms->store, &k));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "DeletionDate", json_integer(k.deletion_date));
    json_object_set_new(c->resp, "KeyState", json_string("PendingDeletion"));
    json_object_set_new(c->resp, "PendingWindowInDays", json_integer(days));
out:
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_cancel_key_deletion(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:CancelKeyDeletion", NULL));
    if (k.state != KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is not pending deletion.", k.arn);
    /* AWS leaves a cancelled key Disabled. */
    k.state = KMS_KEY_DISABLED;
    k.deletion_date = 0;
    k.pending_days = 0;
    CL_GUARD_GOTO(c->kms->store->ops->update_key(c->kms->store, &k));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
out:
    kms_key_rec_clear(&k);
    return rc;
}

/* --- key policies ------------------------------------------------------------ */

static CL_MUST_USE cl_status kms_policy_name(kms_call *c)
{
    const char *name;
    CL_GUARD(kms_req_str(c, "PolicyName", false, 1, 128, &name));
    if (name != NULL && strcmp(name, "default") != 0)
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "No such policy exists");
    return CL_OK;
}

cl_status kms_op_get_key_policy(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_policy_name(c));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = kms_key_authorize(c, &k, "kms:GetKeyPolicy", NULL);
    if (rc == CL_OK) {
        json_object_set_new(c->resp, "Policy", json_string(k.policy));
        json_object_set_new(c->resp, "PolicyName", json_string("default"));
    }
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_put_key_policy(kms_call *c)
{
    const char *id, *policy;
    bool bypass;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_policy_name(c));
    CL_GUARD(kms_req_str(c, "Policy", true, 1, KMS_POLICY_MAX, &policy));
    CL_GUARD(kms_req_bool(c, "BypassPolicyLockoutSafetyCheck", &bypass));
    kms_policy *p = NULL;
    if (kms_policy_parse(policy, strlen(policy), &p) != CL_OK)
        KMS_FAIL_AS(c, "MalformedPolicyDocumentException", CL_ERR_FORMAT, "%s", cl_error_message());
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_key_load(c, id, 0, &k));
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:PutKeyPolicy", NULL));
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    CL_GUARD_GOTO(kms_policy_lockout_check(c, p, k.arn, bypass));
    free(k.policy);
    k.policy = strdup(policy);
    CL_ENSURE_GOTO(k.policy != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(c->kms->store->ops->update_key(c->kms->store, &k));
out:
    kms_policy_free(p);
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_list_key_policies(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = kms_key_authorize(c, &k, "kms:ListKeyPolicies", NULL);
    if (rc == CL_OK) {
        json_object_set_new(c->resp, "PolicyNames", json_pack("[s]", "default"));
        json_object_set_new(c->resp, "Truncated", json_false());
    }
    kms_key_rec_clear(&k);
    return rc;
}

/* UpdateKeyDescription: any key state but PendingDeletion (AWS's key state table). */
cl_status kms_op_update_key_description(kms_call *c)
{
    const char *id, *desc;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_req_str(c, "Description", true, 0, KMS_DESCRIPTION_MAX, &desc));
    kms_key_rec k;
    CL_GUARD(kms_key_load(c, id, 0, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_key_authorize(c, &k, "kms:UpdateKeyDescription", NULL));
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    (void)snprintf(k.description, sizeof(k.description), "%s", desc);
    CL_GUARD_GOTO(c->kms->store->ops->update_key(c->kms->store, &k));
out:
    kms_key_rec_clear(&k);
    return rc;
}
