/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases (ops.h). An
 * alias and its key are in the same account, and each key it points to (the old and the
 * new one) must allow the action (AWS KMS Developer Guide, "Controlling access to
 * aliases"). Aliases are named within an account and a region. Uses request.c and key_access.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "key_access.h"
#include "ops.h"
#include "request.h"

/* AliasName: AliasNameType (^[a-zA-Z0-9:/_-]+$, 1..256; checked first, as the model is), then
 * the "alias/" prefix in AWS's words (recorded against AWS in LocalStack's
 * tests/aws/services/kms/test_kms.snapshot.json, test_create_alias); "alias/aws/" is reserved
 * for AWS managed keys (CreateAlias, API Reference). */
static CL_MUST_USE cl_status kms_alias_name(kms_call *c, const char **name)
{
    CL_GUARD(kms_req_name(c, "AliasName", true, KMS_ALIAS_MAX, name));
    if (strncmp(*name, "alias/", 6) != 0 || (*name)[6] == '\0')
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "Alias must start with the prefix \"alias/\". Please see "
                    "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html");
    if (strncmp(*name, "alias/aws/", 10) == 0)
        KMS_FAIL_AS(c, "NotAuthorizedException", CL_ERR_DENIED,
                    "Cannot create, update or delete alias %s: the prefix "
                    "alias/aws/ is reserved for AWS managed keys",
                    *name);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_alias_target(kms_call *c, const char *action, kms_key_rec *k)
{
    const char *target;
    CL_GUARD(kms_req_str(c, "TargetKeyId", true, 1, 2048, &target));
    if (strncmp(target, "alias/", 6) == 0 || strstr(target, ":alias/") != NULL)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "Aliases must refer to keys. Not aliases");
    CL_GUARD(kms_key_load(c, target, 0, k));
    /* An alias and its key are in the same account and region (AWS KMS, CreateAlias): kms_key_load
     * finds keys of the request's region only. */
    if (strcmp(k->account, c->principal->account) != 0) {
        kms_key_rec_clear(k);
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Key '%s' does not exist", target);
    }
    cl_status rc = kms_key_authorize(c, k, action, NULL);
    if (rc == CL_OK && k->state == KMS_KEY_PENDING_DELETION) {
        c->exception = "KMSInvalidStateException";
        rc = CL_RAISE(CL_ERR_STATE, "%s is pending deletion.", k->arn);
    }
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

cl_status kms_op_create_alias(kms_call *c)
{
    const char *name;
    CL_GUARD(kms_alias_name(c, &name));
    kms_key_rec k;
    CL_GUARD(kms_alias_target(c, "kms:CreateAlias", &k));
    kms_alias_rec a;
    memset(&a, 0, sizeof(a));
    (void)snprintf(a.name, sizeof(a.name), "%s", name);
    (void)snprintf(a.key_id, sizeof(a.key_id), "%s", k.key_id);
    a.created = a.updated = c->now;
    cl_status rc = c->kms->store->ops->create_alias(c->kms->store, c->principal->account, c->region, &a);
    if (rc == CL_ERR_EXISTS) {
        char arn[KMS_ARN_MAX + 1];
        kms_alias_arn(c, c->principal->account, name, arn, sizeof(arn));
        c->exception = "AlreadyExistsException";
        rc = CL_RAISE(CL_ERR_EXISTS, "An alias with the name %s already exists", arn);
    }
    kms_key_rec_clear(&k);
    return rc;
}

/* AliasName from the request, checked, and its record (NotFoundException when the account
 * has no such alias in the request's region, in AWS's words: "Alias ALIAS_ARN is not found."). */
static CL_MUST_USE cl_status kms_alias_existing(kms_call *c, const char **name, kms_alias_rec *a)
{
    CL_GUARD(kms_alias_name(c, name));
    cl_status rc = c->kms->store->ops->get_alias(c->kms->store, c->principal->account, c->region, *name, a);
    if (rc == CL_ERR_NOT_FOUND) {
        char arn[KMS_ARN_MAX + 1];
        kms_alias_arn(c, c->principal->account, *name, arn, sizeof(arn));
        KMS_FAIL_AS(c, "NotFoundException", CL_ERR_NOT_FOUND, "Alias %s is not found.", arn);
    }
    return rc;
}

/* The key an alias points to now must allow `action` as well, when that key
 * still exists (a deleted key has no say). */
static CL_MUST_USE cl_status kms_alias_authorize_current(kms_call *c, const char *key_id, const char *action)
{
    kms_key_rec k;
    if (kms_key_load(c, key_id, 0, &k) == CL_OK) {
        cl_status rc = kms_key_authorize(c, &k, action, NULL);
        kms_key_rec_clear(&k);
        CL_GUARD(rc);
    }
    c->exception = NULL;
    cl_error_clear();
    return CL_OK;
}

cl_status kms_op_update_alias(kms_call *c)
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
    cl_status rc = c->kms->store->ops->update_alias(c->kms->store, c->principal->account, c->region, &a);
    kms_key_rec_clear(&k);
    return rc;
}

cl_status kms_op_delete_alias(kms_call *c)
{
    const char *name;
    kms_alias_rec a;
    CL_GUARD(kms_alias_existing(c, &name, &a));
    CL_GUARD(kms_alias_authorize_current(c, a.key_id, "kms:DeleteAlias"));
    return c->kms->store->ops->delete_alias(c->kms->store, c->principal->account, c->region, name);
}

cl_status kms_op_list_aliases(kms_call *c)
{
    long long limit = KMS_LIST_DEFAULT;
    bool have;
    const char *after, *id;
    CL_GUARD(kms_req_int(c, "Limit", &have, 1, KMS_LIST_MAX, &limit));
    CL_GUARD(kms_req_marker(c, &after));
    CL_GUARD(kms_req_str(c, "KeyId", false, 1, 2048, &id));
    char key_id[KMS_KEY_ID_LEN + 1] = "";
    if (id != NULL) {
        kms_key_rec k;
        CL_GUARD(kms_key_load(c, id, 0, &k));
        (void)snprintf(key_id, sizeof(key_id), "%s", k.key_id);
        kms_key_rec_clear(&k);
    }
    kms_alias_rec *as = calloc((size_t)limit, sizeof(*as));
    CL_ENSURE(as != NULL, CL_ERR_NOMEM, "out of memory");
    size_t n;
    bool more;
    cl_status rc = c->kms->store->ops->list_aliases(c->kms->store, c->principal->account, c->region, id ? key_id : NULL,
                                                    after, (size_t)limit, as, &n, &more);
    if (rc == CL_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            char arn[KMS_ARN_MAX + 1];
            kms_alias_arn(c, c->principal->account, as[i].name, arn, sizeof(arn));
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
