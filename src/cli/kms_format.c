/* SPDX-License-Identifier: Apache-2.0 */
/* cloister kms: printing answers as the aws CLI prints them (kms_format.h). */
#include "kms_format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/mem.h"

/* The KMS API's timestamp members (the service model's shapes of type timestamp). */
static const char *const kms_timestamp_members[] = {
    "CreationDate", "DeletionDate",     "LastUpdatedDate",           "ParametersValidTo",
    "ValidTo",      "NextRotationDate", "OnDemandRotationStartDate", "RotationDate",
};

static bool kms_is_timestamp(const char *key)
{
    for (size_t i = 0; i < sizeof(kms_timestamp_members) / sizeof(kms_timestamp_members[0]); i++)
        if (strcmp(key, kms_timestamp_members[i]) == 0) return true;
    return false;
}

/* Python's datetime.fromtimestamp(t, tzlocal()).isoformat(): the fraction rounded to
 * microseconds (round half to even, as Python rounds), printed only when not zero. */
static CL_MUST_USE cl_status kms_iso_time(double t, char *out, size_t n)
{
    double whole = floor(t);
    long long us = (long long)nearbyint((t - whole) * 1e6);
    time_t secs = (time_t)whole;
    if (us >= 1000000) secs += 1, us -= 1000000;
    struct tm tm;
    CL_ENSURE(localtime_r(&secs, &tm) != NULL, CL_ERR_FORMAT, "timestamp %.3f is out of range", t);
    char date[32], frac[16] = "";
    CL_ENSURE(strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) > 0, CL_ERR_INTERNAL, "strftime failed");
    if (us != 0) (void)snprintf(frac, sizeof(frac), ".%06lld", us);
    long off = tm.tm_gmtoff;
    char sign = off < 0 ? '-' : '+';
    if (off < 0) off = -off;
    (void)snprintf(out, n, "%s%s%c%02ld:%02ld", date, frac, sign, off / 3600, (off % 3600) / 60);
    return CL_OK;
}

cl_status kms_format_timestamps(json_t *j)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) CL_GUARD(kms_format_timestamps(v));
        return CL_OK;
    }
    if (!json_is_object(j)) return CL_OK;
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        if (json_is_number(v) && kms_is_timestamp(key)) {
            char iso[64];
            CL_GUARD(kms_iso_time(json_number_value(v), iso, sizeof(iso)));
            CL_ENSURE(json_object_set_new(j, key, json_string(iso)) == 0, CL_ERR_NOMEM, "out of memory");
        } else {
            CL_GUARD(kms_format_timestamps(v));
        }
    }
    return CL_OK;
}

/* --- --query ----------------------------------------------------------------------- */

#define KMS_QUERY_HELP \
    "--query takes identifiers joined by '.', each with optional [N], [] or [*] " \
    "(KeyMetadata.KeyId, Keys[0].KeyId, Aliases[].AliasName); for other JMESPath use the aws CLI"

static bool kms_ident_char(uint8_t c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* One step of an expression: an identifier, or a bracket. *kind: 'i' identifier, 'n'
 * index, 'p' projection. */
static CL_MUST_USE cl_status kms_query_step(cl_reader *r, char *kind, cl_reader *ident, int64_t *index)
{
    uint8_t c = 0;
    if (cl_reader_next_is(r, '[')) {
        CL_GUARD(cl_reader_skip(r, 1));
        if (cl_reader_next_is(r, ']') || cl_reader_next_is(r, '*')) {
            if (cl_reader_next_is(r, '*')) CL_GUARD(cl_reader_skip(r, 1));
            *kind = 'p';
        } else {
            bool neg = cl_reader_next_is(r, '-');
            uint64_t v = 0;
            if (neg) CL_GUARD(cl_reader_skip(r, 1));
            CL_ENSURE(cl_reader_decimal(r, 1u << 30, &v) == CL_OK, CL_ERR_USAGE, KMS_QUERY_HELP);
            *index = neg ? -(int64_t)v : (int64_t)v;
            *kind = 'n';
        }
        CL_ENSURE(cl_reader_next_is(r, ']'), CL_ERR_USAGE, KMS_QUERY_HELP);
        return cl_reader_skip(r, 1);
    }
    CL_ENSURE(cl_reader_peek_u8(r, &c) && kms_ident_char(c, true), CL_ERR_USAGE, KMS_QUERY_HELP);
    cl_reader mark = *r;
    while (cl_reader_peek_u8(r, &c) && kms_ident_char(c, false)) CL_GUARD(cl_reader_skip(r, 1));
    const uint8_t *p;
    size_t n;
    CL_GUARD(cl_reader_since(&mark, r, &p, &n));
    *ident = cl_reader_make(p, n);
    *kind = 'i';
    return CL_OK;
}

/* After a step: the end, '.', or a bracket; '.' must be followed by an identifier. */
static CL_MUST_USE cl_status kms_query_sep(cl_reader *r)
{
    if (cl_reader_next_is(r, '.')) {
        CL_GUARD(cl_reader_skip(r, 1));
        uint8_t c = 0;
        CL_ENSURE(cl_reader_peek_u8(r, &c) && kms_ident_char(c, true), CL_ERR_USAGE, KMS_QUERY_HELP);
        return CL_OK;
    }
    CL_ENSURE(cl_reader_remaining(r) == 0 || cl_reader_next_is(r, '['), CL_ERR_USAGE, KMS_QUERY_HELP);
    return CL_OK;
}

cl_status kms_query_check(const char *expr)
{
    cl_reader r = cl_reader_make(expr, strlen(expr));
    CL_ENSURE(cl_reader_remaining(&r) > 0, CL_ERR_USAGE, KMS_QUERY_HELP);
    while (cl_reader_remaining(&r) > 0) {
        char kind = 0;
        cl_reader ident;
        int64_t index = 0;
        CL_GUARD(kms_query_step(&r, &kind, &ident, &index));
        CL_GUARD(kms_query_sep(&r));
    }
    return CL_OK;
}

/* Evaluates the rest of the expression in r on j (borrowed); *out is a new reference or NULL. */
static CL_MUST_USE cl_status kms_query_eval(json_t *j, cl_reader r, json_t **out)
{
    *out = NULL;
    if (j == NULL) return CL_OK;
    if (cl_reader_remaining(&r) == 0) {
        *out = json_incref(j);
        return CL_OK;
    }
    char kind = 0;
    cl_reader ident;
    int64_t index = 0;
    CL_GUARD(kms_query_step(&r, &kind, &ident, &index));
    CL_GUARD(kms_query_sep(&r));
    if (cl_reader_next_is(&r, '.')) CL_GUARD(cl_reader_skip(&r, 1));
    if (kind == 'i') {
        if (!json_is_object(j)) return CL_OK;
        const uint8_t *p;
        size_t n;
        cl_reader_rest(&ident, &p, &n);
        return kms_query_eval(json_object_getn(j, (const char *)p, n), r, out);
    }
    if (!json_is_array(j)) return CL_OK;
    if (kind == 'n') {
        int64_t size = (int64_t)json_array_size(j);
        if (index < 0) index += size;
        if (index < 0 || index >= size) return CL_OK;
        return kms_query_eval(json_array_get(j, (size_t)index), r, out);
    }
    json_t *list = json_array();
    CL_ENSURE(list != NULL, CL_ERR_NOMEM, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        json_t *got = NULL;
        cl_status rc = kms_query_eval(v, r, &got);
        if (rc != CL_OK) {
            json_decref(list);
            return rc;
        }
        if (got != NULL && !json_is_null(got))
            (void)json_array_append_new(list, got);
        else
            json_decref(got);
    }
    *out = list;
    return CL_OK;
}

cl_status kms_query(json_t *j, const char *expr, json_t **out)
{
    CL_GUARD(kms_query_check(expr));
    return kms_query_eval(j, cl_reader_make(expr, strlen(expr)), out);
}

/* --- --output text (awscli/text.py) ------------------------------------------------ */

static bool kms_is_scalar(const json_t *v) { return !json_is_object(v) && !json_is_array(v); }

/* Python's str() of a JSON scalar. */
static CL_MUST_USE cl_status kms_text_scalar(const json_t *v, cl_buf *out)
{
    if (v == NULL || json_is_null(v)) return cl_buf_append_str(out, "None");
    if (json_is_true(v)) return cl_buf_append_str(out, "True");
    if (json_is_false(v)) return cl_buf_append_str(out, "False");
    if (json_is_integer(v)) return cl_buf_printf(out, "%lld", (long long)json_integer_value(v));
    if (json_is_real(v)) return cl_buf_printf(out, "%.17g", json_real_value(v));
    return cl_buf_append(out, json_string_value(v), json_string_length(v));
}

static CL_MUST_USE cl_status kms_text_upper(const char *s, cl_buf *out)
{
    for (const char *c = s; *c != '\0'; c++)
        CL_GUARD(cl_buf_append_u8(out, (uint8_t)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c)));
    return CL_OK;
}

static int kms_cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The object's keys in sorted order (Python's sorted() on str is code point order, which
 * is UTF-8 byte order); *n of them, in a malloc'd array the caller frees. */
static CL_MUST_USE cl_status kms_sorted_keys(json_t *o, const char ***keys, size_t *n)
{
    *n = 0;
    *keys = calloc(json_object_size(o) + 1, sizeof(**keys));
    CL_ENSURE(*keys != NULL, CL_ERR_NOMEM, "out of memory");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)(*keys)[(*n)++] = k;
    qsort(*keys, *n, sizeof(**keys), kms_cmp_keys);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_text_item(json_t *item, const char *identifier, json_t *scalar_keys, cl_buf *out);

static CL_MUST_USE cl_status kms_text_scalar_list(json_t *elements, const char *identifier, cl_buf *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(elements, i, v)
    {
        if (identifier != NULL) {
            CL_GUARD(kms_text_upper(identifier, out));
            CL_GUARD(cl_buf_append_u8(out, '\t'));
            CL_GUARD(kms_text_scalar(v, out));
            CL_GUARD(cl_buf_append_u8(out, '\n'));
        } else {
            if (i > 0) CL_GUARD(cl_buf_append_u8(out, '\t'));
            CL_GUARD(kms_text_scalar(v, out));
        }
    }
    if (identifier == NULL) CL_GUARD(cl_buf_append_u8(out, '\n'));
    return CL_OK;
}

static CL_MUST_USE cl_status kms_text_list(json_t *item, const char *identifier, cl_buf *out)
{
    if (json_array_size(item) == 0) return CL_OK;
    bool any_dict = false, any_list = false;
    size_t i;
    json_t *v;
    json_array_foreach(item, i, v)
    {
        any_dict = any_dict || json_is_object(v);
        any_list = any_list || json_is_array(v);
    }
    cl_status rc = CL_OK;
    json_t *keys = NULL, *scalars = NULL;
    if (any_dict) {
        /* _all_scalar_keys: the sorted union of every element's scalar keys */
        keys = json_object();
        CL_ENSURE_GOTO(keys != NULL, CL_ERR_NOMEM, "out of memory");
        json_array_foreach(item, i, v)
        {
            const char *k;
            json_t *x;
            if (!json_is_object(v)) continue;
            json_object_foreach(v, k, x)
            {
                if (kms_is_scalar(x) && json_object_set(keys, k, json_null()) != 0)
                    CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory");
            }
        }
        json_array_foreach(item, i, v) CL_GUARD_GOTO(kms_text_item(v, identifier, keys, out));
    } else if (any_list) {
        scalars = json_array();
        CL_ENSURE_GOTO(scalars != NULL, CL_ERR_NOMEM, "out of memory");
        json_array_foreach(item, i, v)
        {
            if (kms_is_scalar(v) && json_array_append(scalars, v) != 0) CL_FAIL_GOTO(CL_ERR_NOMEM, "out of memory");
        }
        if (json_array_size(scalars) > 0) CL_GUARD_GOTO(kms_text_scalar_list(scalars, identifier, out));
        json_array_foreach(item, i, v)
        {
            if (!kms_is_scalar(v)) CL_GUARD_GOTO(kms_text_item(v, identifier, NULL, out));
        }
    } else {
        CL_GUARD_GOTO(kms_text_scalar_list(item, identifier, out));
    }
out:
    json_decref(keys);
    json_decref(scalars);
    return rc;
}

static CL_MUST_USE cl_status kms_text_dict(json_t *item, const char *identifier, json_t *scalar_keys, cl_buf *out)
{
    cl_status rc = CL_OK;
    const char **keys = NULL, **skeys = NULL;
    size_t n = 0, ns = 0, written = 0;
    CL_GUARD_GOTO(kms_sorted_keys(item, &keys, &n));
    if (scalar_keys != NULL) CL_GUARD_GOTO(kms_sorted_keys(scalar_keys, &skeys, &ns));
    /* The scalars: every scalar key in order, or the given keys (missing ones as ""). */
    if (scalar_keys == NULL) {
        for (size_t i = 0; i < n; i++) written += kms_is_scalar(json_object_get(item, keys[i]));
    } else {
        written = ns;
    }
    if (written > 0) {
        bool first = true;
        if (identifier != NULL) {
            CL_GUARD_GOTO(kms_text_upper(identifier, out));
            first = false;
        }
        size_t count = scalar_keys != NULL ? ns : n;
        for (size_t i = 0; i < count; i++) {
            const char *k = scalar_keys != NULL ? skeys[i] : keys[i];
            json_t *v = json_object_get(item, k);
            if (scalar_keys == NULL && !kms_is_scalar(v)) continue;
            if (!first) CL_GUARD_GOTO(cl_buf_append_u8(out, '\t'));
            first = false;
            if (v != NULL) CL_GUARD_GOTO(kms_text_scalar(v, out));
        }
        CL_GUARD_GOTO(cl_buf_append_u8(out, '\n'));
    }
    /* Then the rest, each under its key: the non-scalars, or every key not given. */
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(item, keys[i]);
        bool rest = scalar_keys != NULL ? json_object_get(scalar_keys, keys[i]) == NULL : !kms_is_scalar(v);
        if (rest) CL_GUARD_GOTO(kms_text_item(v, keys[i], NULL, out));
    }
out:
    free(keys);
    free(skeys);
    return rc;
}

static CL_MUST_USE cl_status kms_text_item(json_t *item, const char *identifier, json_t *scalar_keys, cl_buf *out)
{
    if (json_is_object(item)) return kms_text_dict(item, identifier, scalar_keys, out);
    if (json_is_array(item)) return kms_text_list(item, identifier, out);
    CL_GUARD(kms_text_scalar(item, out));
    return cl_buf_append_u8(out, '\n');
}

cl_status kms_format_text(json_t *j, cl_buf *out) { return kms_text_item(j, NULL, NULL, out); }

cl_status kms_format_json(json_t *j, cl_buf *out)
{
    char *s = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = cl_buf_append_str(out, s);
    cl_free_wiped(s); /* may hold a plaintext (Decrypt, GenerateDataKey) */
    CL_GUARD(rc);
    return cl_buf_append_u8(out, '\n');
}
