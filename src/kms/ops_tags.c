/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: tags: TagResource, UntagResource, ListResourceTags, and the TagList member
 * CreateKey shares (ops.h). Limits are AWS's (AWS KMS Developer Guide, "Tagging keys"): at
 * most 50 tags per key, keys of 1..128 and values of 0..256 characters, the "aws:" prefix
 * reserved. Uses request.c and key_access.c.
 */
#include <string.h>

#include "key_access.h"
#include "ops.h"
#include "request.h"

#define KMS_MAX_TAGS 50

cl_status kms_tags_member(kms_call *c, const char *member, cl_kvlist *out)
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

cl_status kms_tags_store(kms_call *c, const char *key_id, const cl_kvlist *tags)
{
    if (tags->count == 0) return CL_OK;
    cl_status rc = c->kms->store->ops->tag(c->kms->store, key_id, tags, KMS_MAX_TAGS);
    if (rc == CL_ERR_LIMIT) c->exception = "LimitExceededException";
    return rc;
}

static CL_MUST_USE cl_status kms_tag_key(kms_call *c, const char *action, kms_key_rec *k)
{
    const char *id;
    CL_GUARD(kms_req_str(c, "KeyId", true, 1, 2048, &id));
    CL_GUARD(kms_key_load(c, id, 0, k));
    cl_status rc = kms_key_authorize(c, k, action, NULL);
    if (rc == CL_OK && k->state == KMS_KEY_PENDING_DELETION && strcmp(action, "kms:ListResourceTags") != 0) {
        c->exception = "KMSInvalidStateException";
        rc = CL_RAISE(CL_ERR_STATE, "%s is pending deletion.", k->arn);
    }
    if (rc != CL_OK) kms_key_rec_clear(k);
    return rc;
}

cl_status kms_op_tag_resource(kms_call *c)
{
    cl_kvlist tags;
    cl_kvlist_init(&tags);
    kms_key_rec k;
    memset(&k, 0, sizeof(k));
    cl_status rc = CL_OK;
    if (json_object_get(c->req, "Tags") == NULL) CL_GUARD_GOTO(kms_req_null(c, "Tags"));
    CL_GUARD_GOTO(kms_tags_member(c, "Tags", &tags));
    CL_GUARD_GOTO(kms_tag_key(c, "kms:TagResource", &k));
    CL_GUARD_GOTO(kms_tags_store(c, k.key_id, &tags));
out:
    kms_key_rec_clear(&k);
    cl_kvlist_free(&tags);
    return rc;
}

cl_status kms_op_untag_resource(kms_call *c)
{
    json_t *keys = json_object_get(c->req, "TagKeys");
    if (keys == NULL || json_is_null(keys)) return kms_req_null(c, "TagKeys");
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

cl_status kms_op_list_resource_tags(kms_call *c)
{
    long long limit = KMS_MAX_TAGS;
    bool have;
    const char *after;
    CL_GUARD(kms_req_int(c, "Limit", &have, 1, KMS_MAX_TAGS, &limit));
    CL_GUARD(kms_req_marker(c, &after));
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
