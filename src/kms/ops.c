/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KMS operations. Request and response members are those of botocore's
 * kms/2014-11-01/service-2.json; limits and key-state rules are those of the
 * AWS KMS API Reference ("Key states of AWS KMS keys").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"
#include "cloister/recipient.h"

#include "attested_release.h"
#include "context.h"
#include "ops_internal.h"
#include "policy.h"
#include "server.h"

#define KMS_LIST_MAX 1000
#define KMS_LIST_DEFAULT 100
#define KMS_RANDOM_MAX 1024
#define KMS_DAY 86400
#define KMS_ROTATION_DEFAULT_DAYS 365 /* RotationPeriodInDaysType: 90..2560, default 365 */
#define KMS_ROTATION_MIN_DAYS 90
#define KMS_ROTATION_MAX_DAYS 2560

/* --- request members ---------------------------------------------------- */

static cl_status kms_null_member(kms_call *c, const char *member)
{
    KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                "1 validation error detected: Value null at '%c%s' failed to satisfy constraint: Member must not be "
                "null",
                member[0] + ('a' - 'A'), member + 1);
}

/* A string member: NULL in *out when absent and optional. */
static cl_status kms_str(kms_call *c, const char *member, bool required, size_t min, size_t max, const char **out)
{
    json_t *v = json_object_get(c->req, member);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required) return kms_null_member(c, member);
        return CL_OK;
    }
    if (!json_is_string(v)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a string", member);
    size_t len = json_string_length(v);
    if (len < min || len > max || strlen(json_string_value(v)) != len)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
                    "between %zu and %zu",
                    member, min, max);
    *out = json_string_value(v);
    return CL_OK;
}

static cl_status kms_int(kms_call *c, const char *member, bool *present, long long min, long long max, long long *out)
{
    json_t *v = json_object_get(c->req, member);
    *present = v != NULL && !json_is_null(v);
    if (!*present) return CL_OK;
    if (!json_is_integer(v)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be an integer", member);
    *out = json_integer_value(v);
    if (*out < min || *out > max)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value '%lld' at '%s' failed to satisfy constraint: Member must have "
                    "value between %lld and %lld",
                    *out, member, min, max);
    return CL_OK;
}

/* A blob member (base64 on the wire). */
static cl_status kms_blob_member(kms_call *c, const char *member, bool required, size_t max, cl_buf *out)
{
    const char *b64;
    CL_GUARD(kms_str(c, member, required, 0, max * 2, &b64));
    if (b64 == NULL) return CL_OK;
    size_t b64_len = strlen(b64);
    cl_status rc = cl_buf_reserve(out, b64_len / 4 * 3 + 3 <= max ? b64_len / 4 * 3 + 3 : max);
    if (rc == CL_OK) rc = cl_base64_decode(b64, b64_len, false, out);
    if (rc != CL_OK && rc != CL_ERR_LIMIT)
        KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s is not valid base64", member);
    if (rc == CL_ERR_LIMIT || out->len < 1 || out->len > max)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value at '%s' failed to satisfy constraint: Member must have length "
                    "between 1 and %zu",
                    member, max);
    return CL_OK;
}

/* EncryptionContextType: a map of string to string, bounded (context.h). */
static cl_status kms_context(kms_call *c, const char *member, cl_kvlist *out)
{
    return kms_context_read(c, member, out);
}

static cl_status kms_set_blob(kms_call *c, const char *member, const uint8_t *p, size_t n)
{
    cl_buf b64;
    cl_buf_init_secret(&b64, 1 << 20);
    /* Exact size up front: a secret buffer that grows is reallocated in new
     * locked pages each time. */
    cl_status rc = cl_buf_reserve(&b64, 4 * ((n + 2) / 3) + 1);
    if (rc == CL_OK) rc = cl_base64_encode(p, n, false, &b64);
    if (rc == CL_OK) {
        json_t *s = json_stringn((const char *)b64.data, b64.len);
        rc = s != NULL && json_object_set_new(c->resp, member, s) == 0 ? CL_OK : CL_ERR_NOMEM;
    }
    cl_buf_free(&b64);
    CL_ENSURE(rc == CL_OK, rc, "cannot encode %s", member);
    return CL_OK;
}

/* --- keys ----------------------------------------------------------------- */

static void kms_key_arn(const kms_call *c, const char *account, const char *key_id, char *out, size_t cap)
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

static const char *kms_state_name(kms_key_state s)
{
    switch (s) {
    case KMS_KEY_ENABLED: return "Enabled";
    case KMS_KEY_DISABLED: return "Disabled";
    case KMS_KEY_PENDING_DELETION: return "PendingDeletion";
    }
    return "Unavailable";
}

static cl_status kms_not_found_key(kms_call *c, const char *id)
{
    KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Key '%s' does not exist", id);
}

/* Adds a fresh key version and makes it current. Old versions stay, so
 * every earlier ciphertext still decrypts (the blob names its version). */
static cl_status kms_rotate(kms_call *c, kms_key_rec *k, bool on_demand)
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

/* Resolves every identifier form AWS accepts (KeyIdType: key id, key ARN,
 * alias name, alias ARN) to a key of the caller's account. A key pending
 * deletion whose date has passed is deleted here, so it is gone as soon as
 * it is due. */
/*
 * A key by any identifier AWS accepts. A bare key id or alias name is looked up in the
 * caller's account; a key or alias ARN may name another account, as in AWS KMS ("to use a
 * KMS key in a different account, use its key ARN or alias ARN"), and so may the key id a
 * ciphertext blob carries (any_account): whether the caller may use it is then the key
 * policy's decision, which names principals of other accounts explicitly.
 */
static cl_status kms_load_key_from(kms_call *c, const char *id, bool allow_alias, bool any_account, kms_key_rec *k)
{
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
    /* Automatic rotation happens when the key is next used after it is due. */
    if (k->rotation_enabled && k->state == KMS_KEY_ENABLED &&
        c->now >= k->last_rotated + (int64_t)k->rotation_period_days * KMS_DAY) {
        cl_status rr = kms_rotate(c, k, false);
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

static cl_status kms_load_key(kms_call *c, const char *id, bool allow_alias, kms_key_rec *k)
{
    return kms_load_key_from(c, id, allow_alias, false, k);
}

/* --- grants --------------------------------------------------------------------- */

/* GrantOperation enum of the service model. */
static const char *const kms_grant_ops[] = {
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

static bool kms_ops_contain(const char *list, const char *op)
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

static cl_status kms_grant_allows(kms_call *c, const kms_key_rec *k, const char *op, const cl_kvlist *ctx,
                                  bool *granted)
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
            if (kms_ops_contain(gs[i].operations, op) && kms_grant_constraints_hold(gs[i].constraints, ctx))
                *granted = true;
        }
        if (n > 0) (void)snprintf(after, sizeof(after), "%s", gs[n - 1].grant_id);
        for (size_t i = 0; i < n; i++) kms_grant_rec_clear(&gs[i]);
    }
    free(gs);
    return rc;
}

/* The key policy decides (no IAM policies here: a key policy granting the
 * account root stands for every principal of the account). */
static cl_status kms_authorize(kms_call *c, const kms_key_rec *k, const char *action, const cl_kvlist *ctx)
{
    const kms_policy *p = NULL;
    if (kms_policy_parse_cached(k->policy, strlen(k->policy), &p) != CL_OK)
        KMS_FAIL_AS(c, "KMSInternalException", CL_ERR_INTERNAL, "stored policy of %s does not parse", k->arn);
    kms_policy_request r = {.principal_arn = c->principal->arn,
                            .principal_account = c->principal->account,
                            .action = action,
                            .resource = k->arn,
                            .encryption_context = ctx,
                            .env = &c->env,
                            .lookup = kms_recipient_lookup,
                            .lookup_arg = (void *)c->recipient};
    char why[KMS_POLICY_WHY_MAX] = "";
    kms_decision d = kms_policy_evaluate_why(p, &r, why, sizeof(why));
    /* Grants add permissions; they cannot override an explicit deny. */
    if (d == KMS_DECISION_IMPLICIT_DENY && strncmp(action, "kms:", 4) == 0) {
        bool granted = false;
        CL_GUARD(kms_grant_allows(c, k, action + 4, ctx, &granted));
        if (granted) return CL_OK;
    }
    /* AWS's message, then what decided the refusal (AWS does not say; naming the failed
     * condition key, never the expected value, is what makes a refused attestation debuggable). */
    if (d != KMS_DECISION_ALLOW) {
        char suffix[KMS_POLICY_WHY_MAX + 32] = "";
        if (why[0] != '\0')
            (void)snprintf(suffix, sizeof(suffix), " (%s%s)",
                           d == KMS_DECISION_IMPLICIT_DENY ? "failed condition: " : "", why);
        KMS_FAIL_AS(c, "AccessDeniedException", CL_ERR_DENIED,
                    "User: %s is not authorized to perform: %s on resource: %s because %s%s", c->principal->arn, action,
                    k->arn,
                    d == KMS_DECISION_EXPLICIT_DENY ? "of an explicit deny in the key policy"
                                                    : "no resource-based policy allows the action",
                    suffix);
    }
    return CL_OK;
}

/* Cryptographic operations need an enabled key. */
static cl_status kms_require_enabled(kms_call *c, const kms_key_rec *k)
{
    if (k->state == KMS_KEY_DISABLED) KMS_FAIL_AS(c, "DisabledException", CL_ERR_STATE, "%s is disabled.", k->arn);
    if (k->state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k->arn);
    if (strcmp(k->key_usage, "ENCRYPT_DECRYPT") != 0)
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_STATE, "%s key usage is %s, not ENCRYPT_DECRYPT", k->arn,
                    k->key_usage);
    return CL_OK;
}

static cl_status kms_material(kms_call *c, const kms_key_rec *k, uint32_t version, cl_buf *material)
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

static cl_status kms_key_metadata(kms_call *c, const kms_key_rec *k, json_t **out)
{
    json_t *m =
        json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:[s], s:b}", "AWSAccountId",
                  k->account, "KeyId", k->key_id, "Arn", k->arn, "CreationDate", (json_int_t)k->created, "Enabled",
                  k->state == KMS_KEY_ENABLED, "Description", k->description, "KeyUsage", k->key_usage, "KeyState",
                  kms_state_name(k->state), "Origin", "AWS_KMS", "KeyManager", "CUSTOMER", "CustomerMasterKeySpec",
                  k->key_spec, "KeySpec", k->key_spec, "EncryptionAlgorithms", "SYMMETRIC_DEFAULT", "MultiRegion", 0);
    CL_ENSURE(m != NULL, CL_ERR_NOMEM, "out of memory");
    kms_keyspec_describe(k, m);
    if (k->state == KMS_KEY_PENDING_DELETION) {
        json_object_set_new(m, "DeletionDate", json_integer(k->deletion_date));
        json_object_set_new(m, "PendingDeletionWindowInDays", json_integer(k->pending_days));
    }
    *out = m;
    return CL_OK;
}

static cl_status kms_new_key_id(char out[KMS_KEY_ID_LEN + 1])
{
    uint8_t r[16];
    CL_GUARD(cl_random(r, sizeof(r)));
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    (void)snprintf(out, KMS_KEY_ID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                   r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
                   r[15]);
    return CL_OK;
}

/* --- tags ---------------------------------------------------------------------- */

#define KMS_MAX_TAGS 50

/* TagList: [{"TagKey": 1..128 chars, "TagValue": 0..256 chars}]; keys
 * beginning "aws:" are reserved for AWS (TagException). */
static cl_status kms_tags_member(kms_call *c, const char *member, cl_kvlist *out)
{
    json_t *t = json_object_get(c->req, member);
    if (t == NULL || json_is_null(t)) return CL_OK;
    if (!json_is_array(t)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a list", member);
    if (json_array_size(t) > KMS_MAX_TAGS)
        KMS_FAIL_AS(c, "TagException", CL_ERR_LIMIT, "at most %d tags per request", KMS_MAX_TAGS);
    size_t i;
    json_t *e;
    json_array_foreach(t, i, e)
    {
        json_t *k = json_object_get(e, "TagKey"), *v = json_object_get(e, "TagValue");
        if (!json_is_string(k) || !json_is_string(v))
            KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "a tag needs TagKey and TagValue strings");
        size_t kl = json_string_length(k), vl = json_string_length(v);
        if (kl < 1 || kl > 128 || vl > 256)
            KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "TagKey must be 1-128 characters, TagValue 0-256");
        if (strncmp(json_string_value(k), "aws:", 4) == 0)
            KMS_FAIL_AS(c, "TagException", CL_ERR_USAGE, "Tag keys beginning with aws: are reserved");
        if (cl_kvlist_add(out, json_string_value(k), kl, json_string_value(v), vl) != CL_OK)
            KMS_FAIL_AS(c, "TagException", CL_ERR_USAGE, "invalid tag: %s", cl_error_message());
    }
    return CL_OK;
}

static cl_status kms_store_tags(kms_call *c, const char *key_id, const cl_kvlist *tags)
{
    if (tags->count == 0) return CL_OK;
    cl_status rc = c->kms->store->ops->tag(c->kms->store, key_id, tags, KMS_MAX_TAGS);
    if (rc == CL_ERR_LIMIT) c->exception = "LimitExceededException";
    return rc;
}

/* --- operations ------------------------------------------------------------- */

static cl_status kms_op_create_key(kms_call *c)
{
    cl_status rc = CL_OK;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf wrapped;
    cl_buf_init(&wrapped, KMS_PRIVATE_WRAPPED_MAX);
    const kms_spec_info *si = NULL;
    kms_policy *pol = NULL;
    json_t *meta = NULL;
    cl_kvlist tags;
    cl_kvlist_init(&tags);
    const char *policy, *desc, *usage, *spec, *cmk_spec, *origin;
    CL_GUARD_GOTO(kms_str(c, "Policy", false, 1, KMS_POLICY_MAX, &policy));
    CL_GUARD_GOTO(kms_str(c, "Description", false, 0, KMS_DESCRIPTION_MAX, &desc));
    CL_GUARD_GOTO(kms_str(c, "KeyUsage", false, 1, 64, &usage));
    CL_GUARD_GOTO(kms_str(c, "KeySpec", false, 1, 64, &spec));
    CL_GUARD_GOTO(kms_str(c, "CustomerMasterKeySpec", false, 1, 64, &cmk_spec));
    CL_GUARD_GOTO(kms_str(c, "Origin", false, 1, 64, &origin));
    CL_GUARD_GOTO(kms_tags_member(c, "Tags", &tags));
    CL_GUARD_GOTO(kms_keyspec_choose(c, usage, spec, cmk_spec, &si));
    if (origin != NULL && strcmp(origin, "AWS_KMS") != 0)
        KMS_FAIL_AS_GOTO(c, "UnsupportedOperationException", CL_ERR_UNSUPPORTED, "Origin %s is not supported", origin);
    if (policy != NULL) {
        if (kms_policy_parse(policy, strlen(policy), &pol) != CL_OK)
            KMS_FAIL_AS_GOTO(c, "MalformedPolicyDocumentException", CL_ERR_FORMAT, "%s", cl_error_message());
        k.policy = strdup(policy);
        CL_ENSURE_GOTO(k.policy != NULL, CL_ERR_NOMEM, "out of memory");
    } else {
        CL_GUARD_GOTO(kms_policy_default(c->principal->account, &k.policy));
    }
    CL_GUARD_GOTO(kms_new_key_id(k.key_id));
    (void)snprintf(k.account, sizeof(k.account), "%s", c->principal->account);
    kms_key_arn(c, k.account, k.key_id, k.arn, sizeof(k.arn));
    k.created = c->now;
    k.state = KMS_KEY_ENABLED;
    (void)snprintf(k.description, sizeof(k.description), "%s", desc ? desc : "");
    (void)snprintf(k.key_usage, sizeof(k.key_usage), "%s", si->usage);
    (void)snprintf(k.key_spec, sizeof(k.key_spec), "%s", si->name);
    k.current_version = 1;
    k.rotation_period_days = KMS_ROTATION_DEFAULT_DAYS;
    k.last_rotated = c->now;
    CL_GUARD_GOTO(kms_keyspec_material(c, si, k.arn, &wrapped));
    CL_GUARD_GOTO(c->kms->store->ops->create_key(c->kms->store, &k, wrapped.data, wrapped.len));
    (void)snprintf(c->key_arn, sizeof(c->key_arn), "%s", k.arn);
    CL_GUARD_GOTO(kms_store_tags(c, k.key_id, &tags));
    CL_GUARD_GOTO(kms_key_metadata(c, &k, &meta));
    json_object_set_new(c->resp, "KeyMetadata", meta);
out:
    cl_kvlist_free(&tags);
    kms_policy_free(pol);
    kms_key_rec_clear(&k);
    cl_buf_free(&wrapped);
    return rc;
}

static cl_status kms_op_describe_key(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, true, &k));
    cl_status rc = kms_authorize(c, &k, "kms:DescribeKey", NULL);
    json_t *meta = NULL;
    if (rc == CL_OK) rc = kms_key_metadata(c, &k, &meta);
    if (rc == CL_OK) json_object_set_new(c->resp, "KeyMetadata", meta);
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_marker(kms_call *c, const char **after)
{
    CL_GUARD(kms_str(c, "Marker", false, 1, 1024, after));
    if (*after == NULL) *after = "";
    return CL_OK;
}

static cl_status kms_op_list_keys(kms_call *c)
{
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    const char *after;
    CL_GUARD(kms_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_marker(c, &after));
    char(*ids)[KMS_KEY_ID_LEN + 1] = calloc((size_t)limit, sizeof(*ids));
    CL_ENSURE(ids != NULL, CL_ERR_NOMEM, "out of memory");
    size_t n;
    bool more;
    cl_status rc =
        c->kms->store->ops->list_keys(c->kms->store, c->principal->account, after, (size_t)limit, ids, &n, &more);
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

static cl_status kms_set_state(kms_call *c, const char *action, kms_key_state to)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_authorize(c, &k, action, NULL));
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    k.state = to;
    CL_GUARD_GOTO(c->kms->store->ops->update_key(c->kms->store, &k));
out:
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_enable_key(kms_call *c) { return kms_set_state(c, "kms:EnableKey", KMS_KEY_ENABLED); }
static cl_status kms_op_disable_key(kms_call *c) { return kms_set_state(c, "kms:DisableKey", KMS_KEY_DISABLED); }

static cl_status kms_op_schedule_key_deletion(kms_call *c)
{
    const char *id;
    long long days = 30;
    bool have;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_int(c, "PendingWindowInDays", &have, 7, 30, &days));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_authorize(c, &k, "kms:ScheduleKeyDeletion", NULL));
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

static cl_status kms_op_cancel_key_deletion(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_authorize(c, &k, "kms:CancelKeyDeletion", NULL));
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

/* Encrypts under a key's current version into blob. */
static cl_status kms_encrypt_with(kms_call *c, const kms_key_rec *k, const cl_kvlist *ctx, const uint8_t *pt,
                                  size_t pt_len, cl_buf *blob)
{
    cl_buf material;
    cl_buf_init_secret(&material, KMS_MATERIAL_LEN);
    cl_status rc = kms_material(c, k, k->current_version, &material);
    if (rc == CL_OK) rc = kms_blob_seal(material.data, k->key_id, k->current_version, ctx, pt, pt_len, blob);
    cl_buf_free(&material);
    return rc;
}

/* Decrypts a blob: finds its key (checking KeyId when given), authorizes
 * `action`, checks state, opens. k is filled for the caller. */
static cl_status kms_decrypt_blob(kms_call *c, const cl_buf *blob, const char *expect_key, const char *action,
                                  const cl_kvlist *ctx, kms_key_rec *k, cl_buf *pt)
{
    kms_blob b;
    if (kms_blob_parse(blob->data, blob->len, &b) != CL_OK)
        KMS_FAIL_AS(c, "InvalidCiphertextException", CL_ERR_AUTH, "The ciphertext is not a valid ciphertext blob");
    /* The blob names the key; it may be another account's (the key policy decides). */
    CL_GUARD(kms_load_key_from(c, b.key_id, false, true, k));
    cl_status rc = CL_OK;
    cl_buf material;
    cl_buf_init_secret(&material, KMS_MATERIAL_LEN);
    if (expect_key != NULL) {
        kms_key_rec want;
        char saved[KMS_ARN_MAX + 1];
        (void)snprintf(saved, sizeof(saved), "%s", c->key_arn);
        CL_GUARD_GOTO(kms_load_key(c, expect_key, true, &want));
        bool same = strcmp(want.key_id, k->key_id) == 0;
        kms_key_rec_clear(&want);
        (void)snprintf(c->key_arn, sizeof(c->key_arn), "%s", saved);
        if (!same)
            KMS_FAIL_AS_GOTO(c, "IncorrectKeyException", CL_ERR_KEY,
                             "The key ID in the request does not identify a KMS key that can perform this operation.");
    }
    CL_GUARD_GOTO(kms_authorize(c, k, action, ctx));
    CL_GUARD_GOTO(kms_require_enabled(c, k));
    CL_GUARD_GOTO(kms_material(c, k, b.version, &material));
    rc = kms_blob_open(material.data, &b, ctx, pt);
    if (rc != CL_OK) c->exception = "InvalidCiphertextException";
out:
    cl_buf_free(&material);
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

static cl_status kms_check_algorithm(kms_call *c, const char *member)
{
    const char *alg;
    CL_GUARD(kms_str(c, member, false, 1, 64, &alg));
    if (alg != NULL && strcmp(alg, "SYMMETRIC_DEFAULT") != 0)
        KMS_FAIL_AS(c, "InvalidKeyUsageException", CL_ERR_UNSUPPORTED,
                    "%s %s is not valid for a symmetric encryption key", member, alg);
    return CL_OK;
}

static cl_status kms_op_encrypt(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf pt, blob;
    cl_buf_init_secret(&pt, KMS_PLAINTEXT_MAX);
    cl_buf_init(&blob, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_blob_member(c, "Plaintext", true, KMS_PLAINTEXT_MAX, &pt));
    CL_GUARD_GOTO(kms_context(c, "EncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_check_algorithm(c, "EncryptionAlgorithm"));
    CL_GUARD_GOTO(kms_load_key(c, id, true, &k));
    CL_GUARD_GOTO(kms_authorize(c, &k, "kms:Encrypt", &c->audit_ctx));
    CL_GUARD_GOTO(kms_require_enabled(c, &k));
    CL_GUARD_GOTO(kms_encrypt_with(c, &k, &c->audit_ctx, pt.data, pt.len, &blob));
    CL_GUARD_GOTO(kms_set_blob(c, "CiphertextBlob", blob.data, blob.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "EncryptionAlgorithm", json_string("SYMMETRIC_DEFAULT"));
out:
    kms_key_rec_clear(&k);
    cl_buf_free(&pt);
    cl_buf_free(&blob);
    return rc;
}

/* With a Recipient, the plaintext goes out only as CiphertextForRecipient and the Plaintext
 * member is left out ("If the response includes the CiphertextForRecipient field, the
 * Plaintext field is null or empty", DecryptResponse in the service model). */
static cl_status kms_answer_plaintext(kms_call *c, const kms_recipient *rcpt, const uint8_t *pt, size_t n)
{
    if (!rcpt->present) return kms_set_blob(c, "Plaintext", pt, n);
    cl_buf cms;
    cl_buf_init(&cms, CL_RECIPIENT_MAX_CMS);
    cl_status rc = kms_recipient_seal(c, rcpt, pt, n, &cms);
    if (rc == CL_OK) rc = kms_set_blob(c, "CiphertextForRecipient", cms.data, cms.len);
    cl_buf_free(&cms);
    return rc;
}

static cl_status kms_op_decrypt(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id;
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf blob, pt;
    cl_buf_init(&blob, KMS_BLOB_MAX);
    cl_buf_init_secret(&pt, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_blob_member(c, "CiphertextBlob", true, KMS_BLOB_MAX, &blob));
    CL_GUARD_GOTO(kms_context(c, "EncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_str(c, "KeyId", false, 1, 2048, &id));
    CL_GUARD_GOTO(kms_check_algorithm(c, "EncryptionAlgorithm"));
    CL_GUARD_GOTO(kms_recipient_read(c, &rcpt));
    CL_GUARD_GOTO(kms_decrypt_blob(c, &blob, id, "kms:Decrypt", &c->audit_ctx, &k, &pt));
    CL_GUARD_GOTO(kms_answer_plaintext(c, &rcpt, pt.data, pt.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    json_object_set_new(c->resp, "EncryptionAlgorithm", json_string("SYMMETRIC_DEFAULT"));
out:
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    kms_key_rec_clear(&k);
    cl_buf_free(&blob);
    cl_buf_free(&pt);
    return rc;
}

static cl_status kms_op_re_encrypt(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *src_id, *dst_id;
    kms_key_rec src, dst;
    memset(&src, 0, sizeof(src));
    memset(&dst, 0, sizeof(dst));
    cl_kvlist dctx;
    cl_kvlist_init(&dctx);
    cl_buf blob, pt, out_blob;
    cl_buf_init(&blob, KMS_BLOB_MAX);
    cl_buf_init_secret(&pt, KMS_BLOB_MAX);
    cl_buf_init(&out_blob, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_blob_member(c, "CiphertextBlob", true, KMS_BLOB_MAX, &blob));
    CL_GUARD_GOTO(kms_context(c, "SourceEncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_str(c, "SourceKeyId", false, 1, 2048, &src_id));
    CL_GUARD_GOTO(kms_str(c, "DestinationKeyId", true, 1, 2048, &dst_id));
    CL_GUARD_GOTO(kms_context(c, "DestinationEncryptionContext", &dctx));
    CL_GUARD_GOTO(kms_check_algorithm(c, "SourceEncryptionAlgorithm"));
    CL_GUARD_GOTO(kms_check_algorithm(c, "DestinationEncryptionAlgorithm"));
    CL_GUARD_GOTO(kms_decrypt_blob(c, &blob, src_id, "kms:ReEncryptFrom", &c->audit_ctx, &src, &pt));
    CL_GUARD_GOTO(kms_load_key(c, dst_id, true, &dst));
    CL_GUARD_GOTO(kms_authorize(c, &dst, "kms:ReEncryptTo", &dctx));
    CL_GUARD_GOTO(kms_require_enabled(c, &dst));
    CL_GUARD_GOTO(kms_encrypt_with(c, &dst, &dctx, pt.data, pt.len, &out_blob));
    CL_GUARD_GOTO(kms_set_blob(c, "CiphertextBlob", out_blob.data, out_blob.len));
    json_object_set_new(c->resp, "SourceKeyId", json_string(src.arn));
    json_object_set_new(c->resp, "KeyId", json_string(dst.arn));
    json_object_set_new(c->resp, "SourceEncryptionAlgorithm", json_string("SYMMETRIC_DEFAULT"));
    json_object_set_new(c->resp, "DestinationEncryptionAlgorithm", json_string("SYMMETRIC_DEFAULT"));
out:
    kms_key_rec_clear(&src);
    kms_key_rec_clear(&dst);
    cl_kvlist_free(&dctx);
    cl_buf_free(&blob);
    cl_buf_free(&pt);
    cl_buf_free(&out_blob);
    return rc;
}

static cl_status kms_generate_data_key(kms_call *c, bool with_plaintext)
{
    cl_status rc = CL_OK;
    const char *id, *spec;
    long long nbytes = 0;
    bool have_n;
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_buf dk, blob;
    cl_buf_init_secret(&dk, KMS_RANDOM_MAX);
    cl_buf_init(&blob, KMS_BLOB_MAX);
    CL_GUARD_GOTO(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_context(c, "EncryptionContext", &c->audit_ctx));
    CL_GUARD_GOTO(kms_str(c, "KeySpec", false, 1, 32, &spec));
    CL_GUARD_GOTO(kms_int(c, "NumberOfBytes", &have_n, 1, KMS_RANDOM_MAX, &nbytes));
    if (!with_plaintext && json_object_get(c->req, "Recipient") != NULL)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                         "GenerateDataKeyWithoutPlaintext has no Recipient parameter");
    /* Exactly one of KeySpec and NumberOfBytes (API reference, GenerateDataKey). */
    if ((spec != NULL) == have_n)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE, "Please specify either number of bytes or key spec.");
    if (spec != NULL) {
        if (strcmp(spec, "AES_256") == 0) {
            nbytes = 32;
        } else if (strcmp(spec, "AES_128") == 0) {
            nbytes = 16;
        } else {
            KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                             "1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: "
                             "Member must satisfy enum value set: [AES_256, AES_128]",
                             spec);
        }
    }
    if (with_plaintext) CL_GUARD_GOTO(kms_recipient_read(c, &rcpt));
    CL_GUARD_GOTO(kms_load_key(c, id, true, &k));
    CL_GUARD_GOTO(kms_authorize(c, &k, with_plaintext ? "kms:GenerateDataKey" : "kms:GenerateDataKeyWithoutPlaintext",
                                &c->audit_ctx));
    CL_GUARD_GOTO(kms_require_enabled(c, &k));
    CL_GUARD_GOTO(cl_buf_resize(&dk, (size_t)nbytes));
    CL_GUARD_GOTO(cl_random_secret(dk.data, dk.len));
    CL_GUARD_GOTO(kms_encrypt_with(c, &k, &c->audit_ctx, dk.data, dk.len, &blob));
    CL_GUARD_GOTO(kms_set_blob(c, "CiphertextBlob", blob.data, blob.len));
    if (with_plaintext) CL_GUARD_GOTO(kms_answer_plaintext(c, &rcpt, dk.data, dk.len));
    json_object_set_new(c->resp, "KeyId", json_string(k.arn));
out:
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    kms_key_rec_clear(&k);
    cl_buf_free(&dk);
    cl_buf_free(&blob);
    return rc;
}

static cl_status kms_op_generate_data_key(kms_call *c) { return kms_generate_data_key(c, true); }
static cl_status kms_op_generate_data_key_wo(kms_call *c) { return kms_generate_data_key(c, false); }

static cl_status kms_op_generate_random(kms_call *c)
{
    long long n = 0;
    bool have;
    CL_GUARD(kms_int(c, "NumberOfBytes", &have, 1, KMS_RANDOM_MAX, &n));
    if (!have) return kms_null_member(c, "NumberOfBytes");
    /* No key, so no key policy: a valid document is all GenerateRandom asks of a Recipient. */
    kms_recipient rcpt;
    kms_recipient_init(&rcpt);
    cl_buf r;
    cl_buf_init_secret(&r, KMS_RANDOM_MAX);
    cl_status rc = kms_recipient_read(c, &rcpt);
    if (rc == CL_OK) rc = cl_buf_resize(&r, (size_t)n);
    if (rc == CL_OK) rc = cl_random_secret(r.data, r.len);
    if (rc == CL_OK) rc = kms_answer_plaintext(c, &rcpt, r.data, r.len);
    c->recipient = NULL;
    kms_recipient_free(&rcpt);
    cl_buf_free(&r);
    return rc;
}

/* --- aliases ------------------------------------------------------------------ */

/* AliasNameType: ^[a-zA-Z0-9:/_-]+$, 1..256, "alias/" prefix; "alias/aws/"
 * is reserved for AWS managed keys. */
static cl_status kms_check_alias_name(kms_call *c, const char *name)
{
    bool ok = strncmp(name, "alias/", 6) == 0 && strlen(name) > 6;
    for (const char *p = name; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == ':' ||
             *p == '/' || *p == '_' || *p == '-';
    if (!ok)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "Alias must start with the prefix \"alias/\" and "
                    "contain only [a-zA-Z0-9:/_-].");
    if (strncmp(name, "alias/aws/", 10) == 0)
        KMS_FAIL_AS(c, "NotAuthorizedException", CL_ERR_DENIED,
                    "Cannot create, update or delete alias %s: the prefix "
                    "alias/aws/ is reserved for AWS managed keys",
                    name);
    return CL_OK;
}

static cl_status kms_alias_target(kms_call *c, const char *action, kms_key_rec *k)
{
    const char *target;
    CL_GUARD(kms_str(c, "TargetKeyId", true, 1, 2048, &target));
    if (strncmp(target, "alias/", 6) == 0 || strstr(target, ":alias/") != NULL)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "Aliases must refer to keys. Not aliases");
    CL_GUARD(kms_load_key(c, target, false, k));
    /* An alias and its key are in the same account (AWS KMS, CreateAlias). */
    if (strcmp(k->account, c->principal->account) != 0) {
        kms_key_rec_clear(k);
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Key '%s' does not exist", target);
    }
    cl_status rc = kms_authorize(c, k, action, NULL);
    if (rc == CL_OK && k->state == KMS_KEY_PENDING_DELETION) {
        c->exception = "KMSInvalidStateException";
        rc = CL_RAISE(CL_ERR_STATE, "%s is pending deletion.", k->arn);
    }
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

static cl_status kms_op_create_alias(kms_call *c)
{
    const char *name;
    CL_GUARD(kms_str(c, "AliasName", true, 1, KMS_ALIAS_MAX, &name));
    CL_GUARD(kms_check_alias_name(c, name));
    kms_key_rec k;
    CL_GUARD(kms_alias_target(c, "kms:CreateAlias", &k));
    kms_alias_rec a;
    memset(&a, 0, sizeof(a));
    (void)snprintf(a.name, sizeof(a.name), "%s", name);
    (void)snprintf(a.key_id, sizeof(a.key_id), "%s", k.key_id);
    a.created = a.updated = c->now;
    cl_status rc = c->kms->store->ops->create_alias(c->kms->store, c->principal->account, &a);
    if (rc == CL_ERR_EXISTS) {
        c->exception = "AlreadyExistsException";
        rc = CL_RAISE(CL_ERR_EXISTS, "An alias with the name arn:aws:kms:%s:%s:%s already exists", c->kms->cfg->region,
                      c->principal->account, name);
    }
    kms_key_rec_clear(&k);
    return rc;
}

/* AliasName from the request, checked, and its record (NotFoundException when
 * the account has no such alias). */
static cl_status kms_alias_existing(kms_call *c, const char **name, kms_alias_rec *a)
{
    CL_GUARD(kms_str(c, "AliasName", true, 1, KMS_ALIAS_MAX, name));
    CL_GUARD(kms_check_alias_name(c, *name));
    cl_status rc = c->kms->store->ops->get_alias(c->kms->store, c->principal->account, *name, a);
    if (rc == CL_ERR_NOT_FOUND)
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Alias arn:aws:kms:%s:%s:%s is not found.",
                    c->kms->cfg->region, c->principal->account, *name);
    return rc;
}

/* The key an alias points to now must allow `action` as well, when that key
 * still exists (a deleted key has no say). */
static cl_status kms_alias_authorize_current(kms_call *c, const char *key_id, const char *action)
{
    kms_key_rec k;
    if (kms_load_key(c, key_id, false, &k) == CL_OK) {
        cl_status rc = kms_authorize(c, &k, action, NULL);
        kms_key_rec_clear(&k);
        CL_GUARD(rc);
    }
    c->exception = NULL;
    cl_error_clear();
    return CL_OK;
}

static cl_status kms_op_update_alias(kms_call *c)
{
    const char *name;
    kms_alias_rec a;
    CL_GUARD(kms_alias_existing(c, &name, &a));
    /* Both the old and the new key must allow it (kms:UpdateAlias on each). */
    CL_GUARD(kms_alias_authorize_current(c, a.key_id, "kms:UpdateAlias"));
    kms_key_rec k;
    CL_GUARD(kms_alias_target(c, "kms:UpdateAlias", &k));
    (void)snprintf(a.key_id, sizeof(a.key_id), "%s", k.key_id);
    a.updated = c->now;
    cl_status rc = c->kms->store->ops->update_alias(c->kms->store, c->principal->account, &a);
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_delete_alias(kms_call *c)
{
    const char *name;
    kms_alias_rec a;
    CL_GUARD(kms_alias_existing(c, &name, &a));
    CL_GUARD(kms_alias_authorize_current(c, a.key_id, "kms:DeleteAlias"));
    return c->kms->store->ops->delete_alias(c->kms->store, c->principal->account, name);
}

static cl_status kms_op_list_aliases(kms_call *c)
{
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    const char *after, *id;
    CL_GUARD(kms_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_marker(c, &after));
    CL_GUARD(kms_str(c, "KeyId", false, 1, 2048, &id));
    char key_id[KMS_KEY_ID_LEN + 1] = "";
    if (id != NULL) {
        kms_key_rec k;
        CL_GUARD(kms_load_key(c, id, false, &k));
        (void)snprintf(key_id, sizeof(key_id), "%s", k.key_id);
        kms_key_rec_clear(&k);
    }
    kms_alias_rec *as = calloc((size_t)limit, sizeof(*as));
    CL_ENSURE(as != NULL, CL_ERR_NOMEM, "out of memory");
    size_t n;
    bool more;
    cl_status rc = c->kms->store->ops->list_aliases(c->kms->store, c->principal->account, id ? key_id : NULL, after,
                                                    (size_t)limit, as, &n, &more);
    if (rc == CL_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            char arn[KMS_ARN_MAX + 1];
            (void)snprintf(arn, sizeof(arn), "arn:aws:kms:%s:%s:%s", c->kms->cfg->region, c->principal->account,
                           as[i].name);
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:I, s:I}", "AliasName", as[i].name, "AliasArn", arn,
                                                 "TargetKeyId", as[i].key_id, "CreationDate", (json_int_t)as[i].created,
                                                 "LastUpdatedDate", (json_int_t)as[i].updated));
        }
        json_object_set_new(c->resp, "Aliases", arr);
        json_object_set_new(c->resp, "Truncated", json_boolean(more));
        if (more && n > 0) json_object_set_new(c->resp, "NextMarker", json_string(as[n - 1].name));
    }
    free(as);
    return rc;
}

/* --- key policies ---------------------------------------------------------------- */

static cl_status kms_policy_name(kms_call *c)
{
    const char *name;
    CL_GUARD(kms_str(c, "PolicyName", false, 1, 128, &name));
    if (name != NULL && strcmp(name, "default") != 0)
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "No such policy exists");
    return CL_OK;
}

static cl_status kms_op_get_key_policy(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_policy_name(c));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = kms_authorize(c, &k, "kms:GetKeyPolicy", NULL);
    if (rc == CL_OK) {
        json_object_set_new(c->resp, "Policy", json_string(k.policy));
        json_object_set_new(c->resp, "PolicyName", json_string("default"));
    }
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_put_key_policy(kms_call *c)
{
    const char *id, *policy;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_policy_name(c));
    CL_GUARD(kms_str(c, "Policy", true, 1, KMS_POLICY_MAX, &policy));
    kms_policy *p = NULL;
    if (kms_policy_parse(policy, strlen(policy), &p) != CL_OK)
        KMS_FAIL_AS(c, "MalformedPolicyDocumentException", CL_ERR_FORMAT, "%s", cl_error_message());
    kms_policy_free(p);
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(kms_authorize(c, &k, "kms:PutKeyPolicy", NULL));
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    free(k.policy);
    k.policy = strdup(policy);
    CL_ENSURE_GOTO(k.policy != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(c->kms->store->ops->update_key(c->kms->store, &k));
out:
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_list_key_policies(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = kms_authorize(c, &k, "kms:ListKeyPolicies", NULL);
    if (rc == CL_OK) {
        json_object_set_new(c->resp, "PolicyNames", json_pack("[s]", "default"));
        json_object_set_new(c->resp, "Truncated", json_false());
    }
    kms_key_rec_clear(&k);
    return rc;
}

/* --- rotation ------------------------------------------------------------------ */

/* Rotation settings need an enabled key (AWS: DisabledException for a
 * disabled key, KMSInvalidStateException pending deletion). */
static cl_status kms_rotation_key(kms_call *c, const char *action, kms_key_rec *k)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_load_key(c, id, false, k));
    cl_status rc = kms_authorize(c, k, action, NULL);
    /* AWS rotates symmetric encryption keys only. */
    if (rc == CL_OK && strcmp(k->key_spec, "SYMMETRIC_DEFAULT") != 0) {
        c->exception = "UnsupportedOperationException";
        rc = CL_RAISE(CL_ERR_UNSUPPORTED, "%s is a %s key: only symmetric encryption keys rotate", k->arn, k->key_spec);
    }
    if (rc == CL_OK) rc = kms_require_enabled(c, k);
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

static cl_status kms_op_enable_key_rotation(kms_call *c)
{
    long long days = KMS_ROTATION_DEFAULT_DAYS;
    bool have;
    CL_GUARD(kms_int(c, "RotationPeriodInDays", &have, KMS_ROTATION_MIN_DAYS, KMS_ROTATION_MAX_DAYS, &days));
    kms_key_rec k;
    CL_GUARD(kms_rotation_key(c, "kms:EnableKeyRotation", &k));
    if (!k.rotation_enabled) {
        /* The period counts from when rotation is turned on. */
        k.last_rotated = c->now;
    }
    k.rotation_enabled = true;
    k.rotation_period_days = (int)days;
    cl_status rc = c->kms->store->ops->update_key(c->kms->store, &k);
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_disable_key_rotation(kms_call *c)
{
    kms_key_rec k;
    CL_GUARD(kms_rotation_key(c, "kms:DisableKeyRotation", &k));
    k.rotation_enabled = false;
    cl_status rc = c->kms->store->ops->update_key(c->kms->store, &k);
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_get_key_rotation_status(kms_call *c)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = kms_authorize(c, &k, "kms:GetKeyRotationStatus", NULL);
    if (rc == CL_OK) {
        json_object_set_new(c->resp, "KeyRotationEnabled", json_boolean(k.rotation_enabled));
        json_object_set_new(c->resp, "KeyId", json_string(k.arn));
        if (k.rotation_enabled) {
            json_object_set_new(c->resp, "RotationPeriodInDays", json_integer(k.rotation_period_days));
            json_object_set_new(c->resp, "NextRotationDate",
                                json_integer(k.last_rotated + (int64_t)k.rotation_period_days * KMS_DAY));
        }
    }
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_rotate_key_on_demand(kms_call *c)
{
    kms_key_rec k;
    CL_GUARD(kms_rotation_key(c, "kms:RotateKeyOnDemand", &k));
    cl_status rc = kms_rotate(c, &k, true);
    if (rc == CL_ERR_STATE) {
        c->exception = "ConflictException";
        rc = CL_RAISE(CL_ERR_STATE, "%s is already being rotated", k.arn);
    }
    if (rc == CL_OK) json_object_set_new(c->resp, "KeyId", json_string(k.arn));
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_list_key_rotations(kms_call *c)
{
    const char *id, *marker;
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_marker(c, &marker));
    /* The marker is the last version returned; version 1 is never listed (it
     * is the original material, not a rotation). */
    uint32_t after = 1;
    if (marker[0] != '\0') {
        char *end = NULL;
        unsigned long v = strtoul(marker, &end, 10);
        if (end == marker || *end != '\0' || v < 1 || v > UINT32_MAX)
            KMS_FAIL_AS(c, "InvalidMarkerException", CL_ERR_USAGE, "Marker %s is not valid", marker);
        after = (uint32_t)v;
    }
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = CL_OK;
    uint32_t *vers = calloc((size_t)limit, sizeof(*vers));
    int64_t *when = calloc((size_t)limit, sizeof(*when));
    bool *od = calloc((size_t)limit, sizeof(*od));
    CL_ENSURE_GOTO(vers && when && od, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_authorize(c, &k, "kms:ListKeyRotations", NULL));
    size_t n;
    bool more;
    CL_GUARD_GOTO(
        c->kms->store->ops->list_versions(c->kms->store, k.key_id, after, (size_t)limit, vers, when, od, &n, &more));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "KeyId", k.key_id, "RotationDate", (json_int_t)when[i],
                                             "RotationType", od[i] ? "ON_DEMAND" : "AUTOMATIC"));
    json_object_set_new(c->resp, "Rotations", arr);
    json_object_set_new(c->resp, "Truncated", json_boolean(more));
    if (more && n > 0) {
        char m[16];
        (void)snprintf(m, sizeof(m), "%u", vers[n - 1]);
        json_object_set_new(c->resp, "NextMarker", json_string(m));
    }
out:
    free(vers);
    free(when);
    free(od);
    kms_key_rec_clear(&k);
    return rc;
}

/* --- grant operations ------------------------------------------------------------- */

static cl_status kms_grant_tokens(kms_call *c)
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

static cl_status kms_check_constraint_map(kms_call *c, json_t *m, const char *name)
{
    return kms_context_check_constraint(c, m, name);
}

static cl_status kms_op_create_grant(kms_call *c)
{
    cl_status rc = CL_OK;
    const char *id, *grantee, *retiring, *name;
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    kms_grant_rec g;
    memset(&g, 0, sizeof(g));
    const char *opv[sizeof(kms_grant_ops) / sizeof(kms_grant_ops[0]) + 1] = {0};
    CL_GUARD_GOTO(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD_GOTO(kms_str(c, "GranteePrincipal", true, 1, 256, &grantee));
    CL_GUARD_GOTO(kms_str(c, "RetiringPrincipal", false, 1, 256, &retiring));
    CL_GUARD_GOTO(kms_str(c, "Name", false, 1, KMS_GRANT_NAME_MAX, &name));
    CL_GUARD_GOTO(kms_grant_tokens(c));
    json_t *ops = json_object_get(c->req, "Operations");
    if (ops == NULL || json_is_null(ops)) CL_GUARD_GOTO(kms_null_member(c, "Operations"));
    if (!json_is_array(ops)) KMS_FAIL_AS_GOTO(c, "SerializationException", CL_ERR_FORMAT, "Operations: a list");
    if (json_array_size(ops) == 0)
        KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE, "Operations must name at least one operation");
    size_t i, nops = 0;
    json_t *v;
    json_array_foreach(ops, i, v)
    {
        const char *o = json_string_value(v);
        const char *known = NULL;
        for (size_t j = 0; o != NULL && j < sizeof(kms_grant_ops) / sizeof(kms_grant_ops[0]); j++)
            if (strcmp(o, kms_grant_ops[j]) == 0) known = kms_grant_ops[j];
        if (known == NULL)
            KMS_FAIL_AS_GOTO(c, "ValidationException", CL_ERR_USAGE,
                             "1 validation error detected: Value at 'operations' failed to satisfy constraint: "
                             "Member must satisfy enum value set");
        if (kms_ops_contain(g.operations, known)) continue;
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
    CL_GUARD_GOTO(kms_load_key(c, id, false, &k));
    /* kms:GrantOperations and kms:GranteePrincipal are condition keys of CreateGrant. */
    kms_policy *p = NULL;
    if (kms_policy_parse(k.policy, strlen(k.policy), &p) != CL_OK)
        KMS_FAIL_AS_GOTO(c, "KMSInternalException", CL_ERR_INTERNAL, "stored policy does not parse");
    kms_policy_request r = {.principal_arn = c->principal->arn,
                            .principal_account = c->principal->account,
                            .action = "kms:CreateGrant",
                            .resource = k.arn,
                            .grant_operations = opv,
                            .grantee_principal = grantee,
                            .env = &c->env};
    kms_decision d = kms_policy_evaluate(p, &r);
    kms_policy_free(p);
    bool granted = false;
    if (d == KMS_DECISION_IMPLICIT_DENY) CL_GUARD_GOTO(kms_grant_allows(c, &k, "CreateGrant", NULL, &granted));
    if (d != KMS_DECISION_ALLOW && !granted)
        KMS_FAIL_AS_GOTO(c, "AccessDeniedException", CL_ERR_DENIED,
                         "User: %s is not authorized to perform: kms:CreateGrant on resource: %s", c->principal->arn,
                         k.arn);
    if (k.state == KMS_KEY_PENDING_DELETION)
        KMS_FAIL_AS_GOTO(c, "KMSInvalidStateException", CL_ERR_STATE, "%s is pending deletion.", k.arn);
    uint8_t rnd[KMS_GRANT_ID_LEN / 2];
    CL_GUARD_GOTO(cl_random(rnd, sizeof(rnd)));
    for (size_t j = 0; j < sizeof(rnd); j++) (void)snprintf(g.grant_id + 2 * j, 3, "%02x", rnd[j]);
    (void)snprintf(g.key_id, sizeof(g.key_id), "%s", k.key_id);
    (void)snprintf(g.grantee, sizeof(g.grantee), "%s", grantee);
    (void)snprintf(g.retiring, sizeof(g.retiring), "%s", retiring ? retiring : "");
    (void)snprintf(g.issuing_account, sizeof(g.issuing_account), "%s", c->principal->account);
    (void)snprintf(g.name, sizeof(g.name), "%s", name ? name : "");
    g.created = c->now;
    CL_GUARD_GOTO(c->kms->store->ops->create_grant(c->kms->store, &g));
    /* The store is consistent at once, so the grant works immediately; the
     * token is only a handle for RetireGrant. */
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

static cl_status kms_list_grants(kms_call *c, const kms_grant_filter *f, const char *after, long long limit,
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

static cl_status kms_op_list_grants(kms_call *c)
{
    const char *id, *after, *gid, *grantee;
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_marker(c, &after));
    CL_GUARD(kms_str(c, "GrantId", false, 1, 128, &gid));
    CL_GUARD(kms_str(c, "GranteePrincipal", false, 1, 256, &grantee));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = kms_authorize(c, &k, "kms:ListGrants", NULL);
    kms_grant_filter f = {.key_id = k.key_id, .grant_id = gid, .grantee = grantee};
    if (rc == CL_OK) rc = kms_list_grants(c, &f, after, limit, NULL);
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_list_retirable_grants(kms_call *c)
{
    const char *retiring, *after;
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    CL_GUARD(kms_str(c, "RetiringPrincipal", true, 1, 256, &retiring));
    CL_GUARD(kms_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_marker(c, &after));
    kms_grant_filter f = {.retiring = retiring};
    /* Only grants on keys of the caller's account are visible to it. */
    return kms_list_grants(c, &f, after, limit, c->principal->account);
}

static cl_status kms_op_retire_grant(kms_call *c)
{
    const char *token, *id, *gid;
    CL_GUARD(kms_str(c, "GrantToken", false, 1, 8192, &token));
    CL_GUARD(kms_str(c, "KeyId", false, 1, 2048, &id));
    CL_GUARD(kms_str(c, "GrantId", false, 1, 128, &gid));
    if (token == NULL && (id == NULL || gid == NULL))
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "Specify a GrantToken, or both KeyId and GrantId");
    kms_grant_rec g;
    cl_status rc = c->kms->store->ops->get_grant(c->kms->store, token != NULL ? token : gid, &g);
    if (rc == CL_ERR_NOT_FOUND) {
        if (token != NULL) KMS_FAIL_AS(c, "InvalidGrantTokenException", CL_ERR_USAGE, "The grant token is not valid");
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Grant %s does not exist", gid);
    }
    CL_GUARD(rc);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    CL_GUARD_GOTO(kms_load_key(c, g.key_id, false, &k));
    if (id != NULL) {
        kms_key_rec named;
        CL_GUARD_GOTO(kms_load_key(c, id, false, &named));
        bool same = strcmp(named.key_id, k.key_id) == 0;
        kms_key_rec_clear(&named);
        if (!same) KMS_FAIL_AS_GOTO(c, "NotFoundException", CL_ERR_NOT_FOUND, "Grant %s is not on key %s", gid, id);
    }
    /* Who may retire (API reference, RetireGrant): the retiring principal, the
     * grantee when the grant includes RetireGrant, or whom the key policy allows. */
    const char *me = c->principal->arn;
    bool may =
        strcmp(g.retiring, me) == 0 || (strcmp(g.grantee, me) == 0 && kms_ops_contain(g.operations, "RetireGrant"));
    if (!may) CL_GUARD_GOTO(kms_authorize(c, &k, "kms:RetireGrant", NULL));
    CL_GUARD_GOTO(c->kms->store->ops->delete_grant(c->kms->store, g.grant_id));
out:
    kms_key_rec_clear(&k);
    kms_grant_rec_clear(&g);
    return rc;
}

static cl_status kms_op_revoke_grant(kms_call *c)
{
    const char *id, *gid;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_str(c, "GrantId", true, 1, 128, &gid));
    kms_key_rec k;
    CL_GUARD(kms_load_key(c, id, false, &k));
    cl_status rc = CL_OK;
    kms_grant_rec g;
    memset(&g, 0, sizeof(g));
    CL_GUARD_GOTO(kms_authorize(c, &k, "kms:RevokeGrant", NULL));
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

/* --- tag operations ---------------------------------------------------------------- */

static cl_status kms_tag_key(kms_call *c, const char *action, kms_key_rec *k)
{
    const char *id;
    CL_GUARD(kms_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_load_key(c, id, false, k));
    cl_status rc = kms_authorize(c, k, action, NULL);
    if (rc == CL_OK && k->state == KMS_KEY_PENDING_DELETION && strcmp(action, "kms:ListResourceTags") != 0) {
        c->exception = "KMSInvalidStateException";
        rc = CL_RAISE(CL_ERR_STATE, "%s is pending deletion.", k->arn);
    }
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

static cl_status kms_op_tag_resource(kms_call *c)
{
    cl_kvlist tags;
    cl_kvlist_init(&tags);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_status rc = CL_OK;
    if (json_object_get(c->req, "Tags") == NULL) CL_GUARD_GOTO(kms_null_member(c, "Tags"));
    CL_GUARD_GOTO(kms_tags_member(c, "Tags", &tags));
    CL_GUARD_GOTO(kms_tag_key(c, "kms:TagResource", &k));
    CL_GUARD_GOTO(kms_store_tags(c, k.key_id, &tags));
out:
    kms_key_rec_clear(&k);
    cl_kvlist_free(&tags);
    return rc;
}

static cl_status kms_op_untag_resource(kms_call *c)
{
    json_t *keys = json_object_get(c->req, "TagKeys");
    if (keys == NULL || json_is_null(keys)) return kms_null_member(c, "TagKeys");
    if (!json_is_array(keys)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "TagKeys must be a list");
    if (json_array_size(keys) > KMS_MAX_TAGS)
        KMS_FAIL_AS(c, "TagException", CL_ERR_LIMIT, "at most %d tag keys", KMS_MAX_TAGS);
    const char *names[KMS_MAX_TAGS];
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(keys, i, e)
    {
        if (!json_is_string(e)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "TagKeys: strings");
        names[n++] = json_string_value(e);
    }
    kms_key_rec k;
    CL_GUARD(kms_tag_key(c, "kms:UntagResource", &k));
    cl_status rc = c->kms->store->ops->untag(c->kms->store, k.key_id, names, n);
    kms_key_rec_clear(&k);
    return rc;
}

static cl_status kms_op_list_resource_tags(kms_call *c)
{
    long long limit = KMS_MAX_TAGS;
    bool have;
    const char *after;
    CL_GUARD(kms_int(c, "Limit", &have, 1, KMS_MAX_TAGS, &limit));
    CL_GUARD(kms_marker(c, &after));
    kms_key_rec k;
    CL_GUARD(kms_tag_key(c, "kms:ListResourceTags", &k));
    cl_kvlist tags;
    cl_kvlist_init(&tags);
    bool more = false;
    cl_status rc = c->kms->store->ops->list_tags(c->kms->store, k.key_id, after, (size_t)limit, &tags, &more);
    if (rc == CL_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < tags.count; i++)
            json_array_append_new(
                arr, json_pack("{s:s, s:s}", "TagKey", tags.items[i].key, "TagValue", tags.items[i].value));
        json_object_set_new(c->resp, "Tags", arr);
        json_object_set_new(c->resp, "Truncated", json_boolean(more));
        if (more && tags.count > 0)
            json_object_set_new(c->resp, "NextMarker", json_string(tags.items[tags.count - 1].key));
    }
    cl_kvlist_free(&tags);
    kms_key_rec_clear(&k);
    return rc;
}

static const struct {
    const char *name;
    kms_op_fn fn;
} kms_op_table[] = {
    {"CancelKeyDeletion", kms_op_cancel_key_deletion},
    {"CreateAlias", kms_op_create_alias},
    {"CreateGrant", kms_op_create_grant},
    {"CreateKey", kms_op_create_key},
    {"Decrypt", kms_op_decrypt},
    {"DeleteAlias", kms_op_delete_alias},
    {"DescribeKey", kms_op_describe_key},
    {"DisableKey", kms_op_disable_key},
    {"DisableKeyRotation", kms_op_disable_key_rotation},
    {"EnableKey", kms_op_enable_key},
    {"EnableKeyRotation", kms_op_enable_key_rotation},
    {"Encrypt", kms_op_encrypt},
    {"GenerateDataKey", kms_op_generate_data_key},
    {"GenerateDataKeyWithoutPlaintext", kms_op_generate_data_key_wo},
    {"GenerateMac", kms_op_generate_mac},
    {"GenerateRandom", kms_op_generate_random},
    {"GetKeyPolicy", kms_op_get_key_policy},
    {"GetKeyRotationStatus", kms_op_get_key_rotation_status},
    {"GetPublicKey", kms_op_get_public_key},
    {"ListAliases", kms_op_list_aliases},
    {"ListGrants", kms_op_list_grants},
    {"ListKeyPolicies", kms_op_list_key_policies},
    {"ListKeyRotations", kms_op_list_key_rotations},
    {"ListKeys", kms_op_list_keys},
    {"ListResourceTags", kms_op_list_resource_tags},
    {"ListRetirableGrants", kms_op_list_retirable_grants},
    {"PutKeyPolicy", kms_op_put_key_policy},
    {"ReEncrypt", kms_op_re_encrypt},
    {"RetireGrant", kms_op_retire_grant},
    {"RevokeGrant", kms_op_revoke_grant},
    {"RotateKeyOnDemand", kms_op_rotate_key_on_demand},
    {"ScheduleKeyDeletion", kms_op_schedule_key_deletion},
    {"Sign", kms_op_sign},
    {"TagResource", kms_op_tag_resource},
    {"UntagResource", kms_op_untag_resource},
    {"UpdateAlias", kms_op_update_alias},
    {"Verify", kms_op_verify},
    {"VerifyMac", kms_op_verify_mac},
};

kms_op_fn kms_op_find(const char *name)
{
    for (size_t i = 0; i < sizeof(kms_op_table) / sizeof(kms_op_table[0]); i++)
        if (strcmp(kms_op_table[i].name, name) == 0) return kms_op_table[i].fn;
    return NULL;
}

/* --- shared with ops_sign.c (ops_internal.h) -------------------------------------- */

cl_status kms_req_str(kms_call *c, const char *member, bool required, size_t min, size_t max, const char **out)
{
    return kms_str(c, member, required, min, max, out);
}

cl_status kms_req_blob(kms_call *c, const char *member, bool required, size_t max, cl_buf *out)
{
    return kms_blob_member(c, member, required, max, out);
}

cl_status kms_req_grant_tokens(kms_call *c) { return kms_grant_tokens(c); }

cl_status kms_resp_blob(kms_call *c, const char *member, const uint8_t *p, size_t n)
{
    return kms_set_blob(c, member, p, n);
}

cl_status kms_key_load(kms_call *c, const char *id, kms_key_rec *k) { return kms_load_key(c, id, true, k); }

cl_status kms_key_authorize(kms_call *c, const kms_key_rec *k, const char *action)
{
    return kms_authorize(c, k, action, NULL);
}

cl_status kms_key_material_get(kms_call *c, const kms_key_rec *k, uint32_t version, cl_buf *material)
{
    return kms_material(c, k, version, material);
}
