/* SPDX-License-Identifier: Apache-2.0 */
/* Encryption contexts in requests: shape, bounds, case duplicates. See context.h. */
#include "context.h"

#include <string.h>
#include <strings.h>

_Static_assert(KMS_CONTEXT_MAX_PAIRS <= CL_KV_MAX_COUNT, "a context the server accepts must fit a cl_kvlist");

/* Characters of a UTF-8 string (jansson hands us valid UTF-8): bytes that do not continue one. */
static size_t kms_utf8_chars(const char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++) chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    return chars;
}

/* Shape and bounds of a context map, all checked before any of it is used. max_value_chars 0:
 * no bound per value. */
static CL_MUST_USE cl_status kms_context_check(kms_call *c, json_t *map, const char *member, size_t max_pairs,
                                               size_t max_value_chars)
{
    if (json_object_size(map) > max_pairs)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_LIMIT, "%s has %zu pairs; at most %zu are accepted", member,
                    json_object_size(map), max_pairs);
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(map, k, v)
    {
        if (!json_is_string(v))
            KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s values must be strings", member);
        size_t klen = strlen(k), vlen = json_string_length(v);
        if (klen == 0) KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "%s has an empty key", member);
        if (max_value_chars > 0 && kms_utf8_chars(json_string_value(v), vlen) > max_value_chars)
            KMS_FAIL_AS(c, "ValidationException", CL_ERR_LIMIT,
                        "%s: the value of \"%.64s\" has %zu characters; at most %zu are accepted", member, k,
                        kms_utf8_chars(json_string_value(v), vlen), max_value_chars);
        total += klen + vlen;
    }
    if (total > KMS_CONTEXT_MAX_BYTES)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_LIMIT,
                    "%s holds %zu bytes of keys and values; at most %d are accepted (it is evaluated against the "
                    "key policy and its keys are logged: keep it to short identifiers)",
                    member, total, KMS_CONTEXT_MAX_BYTES);
    /* Bounded above: at most 64 keys of at most 8192 bytes in all. */
    const char *k2;
    json_t *v2;
    json_object_foreach(map, k, v)
    {
        json_object_foreach(map, k2, v2)
        {
            if (k2 == k) break;
            if (strcasecmp(k, k2) == 0)
                KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                            "%s keys \"%.64s\" and \"%.64s\" differ only by case; policy conditions name context "
                            "keys without regard to case, so cloister-kms refuses such contexts: use one spelling",
                            member, k2, k);
        }
    }
    return CL_OK;
}

cl_status kms_context_read(kms_call *c, const char *member, cl_kvlist *out)
{
    json_t *v = json_object_get(c->req, member);
    if (v == NULL || json_is_null(v)) return CL_OK;
    if (!json_is_object(v))
        KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a map of strings", member);
    CL_GUARD(kms_context_check(c, v, member, KMS_CONTEXT_MAX_PAIRS, 0));
    const char *k;
    json_t *val;
    json_object_foreach(v, k, val)
    {
        if (cl_kvlist_add(out, k, strlen(k), json_string_value(val), json_string_length(val)) != CL_OK)
            KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE, "invalid %s: %s", member, cl_error_message());
    }
    return CL_OK;
}

cl_status kms_context_check_constraint(kms_call *c, json_t *map, const char *name)
{
    if (map == NULL) return CL_OK;
    if (!json_is_object(map)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a map", name);
    return kms_context_check(c, map, name, KMS_CONSTRAINT_MAX_PAIRS, KMS_CONSTRAINT_MAX_VALUE);
}
