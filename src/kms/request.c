/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: request and answer members (request.h). Uses only the call (server.h) and
 * libcloister; used by every operation file.
 */
#include "request.h"

#include <stdio.h>
#include <string.h>

#include "cloister/crypto.h"

#include "context.h"

/* The model's member names are UpperCamel; AWS's validation messages name them lowerCamel. */
static char kms_lower_first(const char *member) { return (char)(member[0] + ('a' - 'A')); }

cl_status kms_req_null(kms_call *c, const char *member)
{
    KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                "1 validation error detected: Value null at '%c%s' failed to satisfy constraint: Member must not be "
                "null",
                kms_lower_first(member), member + 1);
}

/* The value as a validation message quotes it: whole up to KMS_QUOTE_MAX bytes (AWS quotes it
 * whole; ours stays within one error message, and its constraint, the part that says what to
 * do, is not cut off), else its start and "...". */
#define KMS_QUOTE_MAX 256

/*
 * AWS's message for a string outside its model length, one constraint at a time as AWS names
 * them: "1 validation error detected: Value 'V' at 'keyId' failed to satisfy constraint: Member
 * must have length less than or equal to 2048" (or "greater than or equal to 1"); recorded
 * against AWS in LocalStack's tests/aws/services/kms/test_kms.snapshot.json (tags.1.member.tagKey,
 * ...), and the shape of every "1 validation error detected" of the AWS JSON protocols.
 */
static CL_MUST_USE cl_status kms_str_length_fail(kms_call *c, const char *member, const char *value, size_t len,
                                                 size_t min, size_t max)
{
    bool long_ = len > max;
    KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                "1 validation error detected: Value '%.*s%s' at '%c%s' failed to satisfy constraint: Member must "
                "have length %s %zu",
                (int)(len < KMS_QUOTE_MAX ? len : KMS_QUOTE_MAX), value, len > KMS_QUOTE_MAX ? "..." : "",
                kms_lower_first(member), member + 1, long_ ? "less than or equal to" : "greater than or equal to",
                long_ ? max : min);
}

cl_status kms_req_str(kms_call *c, const char *member, bool required, size_t min, size_t max, const char **out)
{
    json_t *v = json_object_get(c->req, member);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        if (required) return kms_req_null(c, member);
        return CL_OK;
    }
    if (!json_is_string(v)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a string", member);
    size_t len = json_string_length(v);
    /* A NUL inside is no text this server stores or compares; AWS's models have no such strings. */
    if (strlen(json_string_value(v)) != len)
        KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s holds a NUL character", member);
    if (len < min || len > max) return kms_str_length_fail(c, member, json_string_value(v), len, min, max);
    *out = json_string_value(v);
    return CL_OK;
}

cl_status kms_req_name(kms_call *c, const char *member, bool required, size_t max, const char **out)
{
    CL_GUARD(kms_req_str(c, member, required, 1, max, out));
    bool ok = true;
    for (const char *p = *out; ok && p != NULL && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == ':' ||
             *p == '/' || *p == '_' || *p == '-';
    if (!ok)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value '%.*s' at '%c%s' failed to satisfy constraint: Member must "
                    "satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
                    KMS_QUOTE_MAX, *out, kms_lower_first(member), member + 1);
    return CL_OK;
}

cl_status kms_req_int(kms_call *c, const char *member, bool *present, long long min, long long max, long long *out)
{
    json_t *v = json_object_get(c->req, member);
    *present = v != NULL && !json_is_null(v);
    if (!*present) return CL_OK;
    if (!json_is_integer(v)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be an integer", member);
    *out = json_integer_value(v);
    /* AWS's words, one bound at a time ("Value '0' at 'numberOfBytes' ... Member must have value
     * greater than or equal to 1", LocalStack's AWS-recorded snapshot, test_generate_random). */
    if (*out < min || *out > max)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value '%lld' at '%c%s' failed to satisfy constraint: Member must "
                    "have value %s %lld",
                    *out, kms_lower_first(member), member + 1,
                    *out > max ? "less than or equal to" : "greater than or equal to", *out > max ? max : min);
    return CL_OK;
}

cl_status kms_req_bool(kms_call *c, const char *member, bool *out)
{
    json_t *v = json_object_get(c->req, member);
    *out = false;
    if (v == NULL || json_is_null(v)) return CL_OK;
    if (!json_is_boolean(v)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a boolean", member);
    *out = json_is_true(v);
    return CL_OK;
}

/* AWS's message for a blob outside its model length (the value itself is not quoted: blobs
 * such as Plaintext are "sensitive" in the model). */
static CL_MUST_USE cl_status kms_blob_length_fail(kms_call *c, const char *member, bool too_long, size_t max)
{
    if (too_long)
        KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                    "1 validation error detected: Value at '%c%s' failed to satisfy constraint: Member must have "
                    "length less than or equal to %zu",
                    kms_lower_first(member), member + 1, max);
    KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                "1 validation error detected: Value at '%c%s' failed to satisfy constraint: Member must have length "
                "greater than or equal to 1",
                kms_lower_first(member), member + 1);
}

cl_status kms_req_blob(kms_call *c, const char *member, bool required, size_t max, cl_buf *out)
{
    json_t *v = json_object_get(c->req, member);
    if (v == NULL || json_is_null(v)) return required ? kms_req_null(c, member) : CL_OK;
    if (!json_is_string(v)) KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s must be a string", member);
    const char *b64 = json_string_value(v);
    size_t b64_len = json_string_length(v);
    if (strlen(b64) != b64_len)
        KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s is not valid base64", member);
    /* 1..max bytes are 4..4*ceil(max/3) base64 characters: longer is refused before decoding. */
    if (b64_len > 4 * ((max + 2) / 3)) return kms_blob_length_fail(c, member, true, max);
    cl_status rc = cl_buf_reserve(out, b64_len / 4 * 3 <= max ? b64_len / 4 * 3 : max);
    if (rc == CL_OK) rc = cl_base64_decode(b64, b64_len, false, out);
    if (rc != CL_OK && rc != CL_ERR_LIMIT)
        KMS_FAIL_AS(c, "SerializationException", CL_ERR_FORMAT, "%s is not valid base64", member);
    if (rc == CL_ERR_LIMIT || out->len > max) return kms_blob_length_fail(c, member, true, max);
    if (out->len < 1) return kms_blob_length_fail(c, member, false, max);
    return CL_OK;
}

cl_status kms_req_context(kms_call *c, const char *member, cl_kvlist *out)
{
    return kms_context_read(c, member, out); /* bounded, case duplicates refused (context.h) */
}

cl_status kms_req_marker(kms_call *c, const char **after)
{
    CL_GUARD(kms_req_str(c, "Marker", false, 1, 1024, after));
    if (*after == NULL) *after = "";
    return CL_OK;
}

bool kms_str_in(const char *const *set, const char *v)
{
    for (size_t i = 0; set[i] != NULL; i++)
        if (strcmp(set[i], v) == 0) return true;
    return false;
}

cl_status kms_req_enum_fail(kms_call *c, const char *member, const char *value, const char *const *set)
{
    char list[512] = "";
    size_t used = 0;
    for (size_t i = 0; set[i] != NULL && used < sizeof(list); i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", set[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    KMS_FAIL_AS(c, "ValidationException", CL_ERR_USAGE,
                "1 validation error detected: Value '%s' at '%c%s' failed to satisfy constraint: Member must satisfy "
                "enum value set: [%s]",
                value, kms_lower_first(member), member + 1, list);
}

cl_status kms_resp_blob(kms_call *c, const char *member, const uint8_t *p, size_t n)
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
