/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Patient records: the fields of the contract (docs/api.md), their validation, the record's
 * JSON, and its sealed form in the store (docs/formats/api-record.md).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/api.h"
#include "cloister/mem.h"

#define RECORD_AAD_LABEL "cloister-api record"
#define RECORD_NUMBER_TEXT_MAX 64

/* Sorted by name (bytewise): the record's JSON keys and the associated data follow this order.
 * Measurements carry their column in wdbc.csv (the classifier's input order). */
static const cl_api_field_def record_fields[] = {
    {"address", CL_API_FIELD_TEXT, -1},
    {"area_se", CL_API_FIELD_MEASUREMENT, 13},
    {"city", CL_API_FIELD_TEXT, -1},
    {"compactness_se", CL_API_FIELD_MEASUREMENT, 15},
    {"concave_points_se", CL_API_FIELD_MEASUREMENT, 17},
    {"concavity_se", CL_API_FIELD_MEASUREMENT, 16},
    {"contactphone", CL_API_FIELD_TEXT, -1},
    {"dateadmitted", CL_API_FIELD_TEXT, -1},
    {"dob", CL_API_FIELD_TEXT, -1},
    {"drugallergies", CL_API_FIELD_TEXT, -1},
    {"email", CL_API_FIELD_TEXT, -1},
    {"fname", CL_API_FIELD_TEXT, -1},
    {"fractal_dimension_se", CL_API_FIELD_MEASUREMENT, 19},
    {"insurancedetails", CL_API_FIELD_TEXT, -1},
    {"lname", CL_API_FIELD_TEXT, -1},
    {"mean_area", CL_API_FIELD_MEASUREMENT, 3},
    {"mean_compactness", CL_API_FIELD_MEASUREMENT, 5},
    {"mean_concave_points", CL_API_FIELD_MEASUREMENT, 7},
    {"mean_concavity", CL_API_FIELD_MEASUREMENT, 6},
    {"mean_fractal_dimension", CL_API_FIELD_MEASUREMENT, 9},
    {"mean_perimeter", CL_API_FIELD_MEASUREMENT, 2},
    {"mean_radius", CL_API_FIELD_MEASUREMENT, 0},
    {"mean_smoothness", CL_API_FIELD_MEASUREMENT, 4},
    {"mean_symmetry", CL_API_FIELD_MEASUREMENT, 8},
    {"mean_texture", CL_API_FIELD_MEASUREMENT, 1},
    {"perimeter_se", CL_API_FIELD_MEASUREMENT, 12},
    {"preexistingconditions", CL_API_FIELD_TEXT, -1},
    {"radius_se", CL_API_FIELD_MEASUREMENT, 10},
    {"smoothness_se", CL_API_FIELD_MEASUREMENT, 14},
    {"ssn", CL_API_FIELD_TEXT, -1},
    {"state", CL_API_FIELD_TEXT, -1},
    {"symmetry_se", CL_API_FIELD_MEASUREMENT, 18},
    {"texture_se", CL_API_FIELD_MEASUREMENT, 11},
    {"worst_area", CL_API_FIELD_MEASUREMENT, 23},
    {"worst_compactness", CL_API_FIELD_MEASUREMENT, 25},
    {"worst_concave_points", CL_API_FIELD_MEASUREMENT, 27},
    {"worst_concavity", CL_API_FIELD_MEASUREMENT, 26},
    {"worst_fractal_dimension", CL_API_FIELD_MEASUREMENT, 29},
    {"worst_perimeter", CL_API_FIELD_MEASUREMENT, 22},
    {"worst_radius", CL_API_FIELD_MEASUREMENT, 20},
    {"worst_smoothness", CL_API_FIELD_MEASUREMENT, 24},
    {"worst_symmetry", CL_API_FIELD_MEASUREMENT, 28},
    {"worst_texture", CL_API_FIELD_MEASUREMENT, 21},
};
#define RECORD_N_FIELDS (sizeof(record_fields) / sizeof(record_fields[0]))
_Static_assert(RECORD_N_FIELDS <= CL_API_MAX_FIELDS, "the field bitmap is 64 bits");

size_t cl_api_field_count(void) { return RECORD_N_FIELDS; }
const cl_api_field_def *cl_api_field(size_t i) { return i < RECORD_N_FIELDS ? &record_fields[i] : NULL; }

int cl_api_field_find(const char *name, size_t n)
{
    for (size_t i = 0; i < RECORD_N_FIELDS; i++)
        if (strlen(record_fields[i].name) == n && memcmp(record_fields[i].name, name, n) == 0) return (int)i;
    return -1;
}

bool cl_api_id_valid(const char *id, size_t n)
{
    if (n < 1 || n > CL_API_ID_MAX) return false;
    cl_reader r = cl_reader_make(id, n);
    uint8_t c;
    while (cl_reader_u8(&r, &c) == CL_OK)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '-'))
            return false;
    return true;
}

void cl_api_record_init(cl_api_record *r)
{
    memset(r, 0, sizeof(*r));
    for (size_t i = 0; i < CL_API_MAX_FIELDS; i++) cl_buf_init_secret(&r->text[i], CL_API_FIELD_MAX);
}

void cl_api_record_free(cl_api_record *r)
{
    for (size_t i = 0; i < CL_API_MAX_FIELDS; i++) cl_buf_free(&r->text[i]);
    cl_memzero(r->number, sizeof(r->number));
    r->present = 0;
}

/* A shown field name: printable, cut short (it comes from the client). */
static const char *record_show_name(const char *name, size_t n, char *out, size_t size)
{
    return cl_bytes_show((const uint8_t *)name, n, out, size);
}

/* A decimal number as JSON writes one (RFC 8259 section 6): -?int(.frac)?(e[+-]?digits)?, and finite. */
static CL_MUST_USE cl_status record_parse_number(const uint8_t *p, size_t n, double *out)
{
    char text[RECORD_NUMBER_TEXT_MAX + 1];
    CL_ENSURE(n >= 1 && n <= RECORD_NUMBER_TEXT_MAX, CL_ERR_FORMAT, "is not a decimal number");
    cl_reader r = cl_reader_make(p, n), digits;
    if (cl_reader_next_is(&r, '-')) CL_GUARD(cl_reader_skip(&r, 1));
    CL_ENSURE(cl_reader_span(&r, "0123456789", &digits) > 0, CL_ERR_FORMAT, "is not a decimal number");
    if (cl_reader_next_is(&r, '.')) {
        CL_GUARD(cl_reader_skip(&r, 1));
        CL_ENSURE(cl_reader_span(&r, "0123456789", &digits) > 0, CL_ERR_FORMAT, "is not a decimal number");
    }
    if (cl_reader_next_is(&r, 'e') || cl_reader_next_is(&r, 'E')) {
        CL_GUARD(cl_reader_skip(&r, 1));
        if (cl_reader_next_is(&r, '+') || cl_reader_next_is(&r, '-')) CL_GUARD(cl_reader_skip(&r, 1));
        CL_ENSURE(cl_reader_span(&r, "0123456789", &digits) > 0, CL_ERR_FORMAT, "is not a decimal number");
    }
    CL_ENSURE(cl_reader_remaining(&r) == 0, CL_ERR_FORMAT, "is not a decimal number");
    memcpy(text, p, n);
    text[n] = '\0';
    char *end = NULL;
    double v = strtod(text, &end);
    CL_ENSURE(end == text + n && isfinite(v), CL_ERR_FORMAT, "is not a finite decimal number");
    *out = v;
    return CL_OK;
}

static CL_MUST_USE cl_status record_field_index(cl_api_record *r, const char *name, size_t name_len, int *out)
{
    char shown[80];
    int i = cl_api_field_find(name, name_len);
    CL_ENSURE(i >= 0, CL_ERR_FORMAT,
              "unknown field \"%s\"; the fields are fname, lname, address, city, state, ssn, "
              "email, dob, contactphone, drugallergies, preexistingconditions, dateadmitted, insurancedetails and the "
              "30 measurements of wdbc.csv (mean_radius ... worst_fractal_dimension)",
              record_show_name(name, name_len, shown, sizeof(shown)));
    CL_ENSURE((r->present & (1ULL << i)) == 0, CL_ERR_FORMAT, "field \"%s\" is given twice", record_fields[i].name);
    *out = i;
    return CL_OK;
}

cl_status cl_api_record_set(cl_api_record *r, const char *name, size_t name_len, const uint8_t *value, size_t value_len)
{
    int i;
    CL_GUARD(record_field_index(r, name, name_len, &i));
    const cl_api_field_def *f = &record_fields[i];
    if (f->kind == CL_API_FIELD_MEASUREMENT) {
        cl_status rc = record_parse_number(value, value_len, &r->number[i]);
        CL_ENSURE(rc == CL_OK, CL_ERR_FORMAT, "field \"%s\" must be a decimal number (like 17.99)", f->name);
    } else {
        CL_ENSURE(value_len <= CL_API_FIELD_MAX, CL_ERR_FORMAT, "field \"%s\" is %zu bytes; at most %d are kept",
                  f->name, value_len, CL_API_FIELD_MAX);
        /* The record is JSON: its strings must be UTF-8 (jansson checks). */
        json_t *s = json_stringn((const char *)value, value_len);
        CL_ENSURE(s != NULL, CL_ERR_FORMAT, "field \"%s\" is not UTF-8 text", f->name);
        json_decref(s);
        CL_GUARD(cl_buf_append(&r->text[i], value, value_len));
    }
    r->present |= 1ULL << i;
    return CL_OK;
}

cl_status cl_api_record_set_number(cl_api_record *r, const char *name, size_t name_len, double v)
{
    int i;
    CL_GUARD(record_field_index(r, name, name_len, &i));
    CL_ENSURE(record_fields[i].kind == CL_API_FIELD_MEASUREMENT, CL_ERR_FORMAT, "field \"%s\" must be a string",
              record_fields[i].name);
    CL_ENSURE(isfinite(v), CL_ERR_FORMAT, "field \"%s\" must be a finite number", record_fields[i].name);
    r->number[i] = v;
    r->present |= 1ULL << i;
    return CL_OK;
}

bool cl_api_record_has_measurements(const cl_api_record *r)
{
    for (size_t i = 0; i < RECORD_N_FIELDS; i++)
        if (record_fields[i].kind == CL_API_FIELD_MEASUREMENT && (r->present & (1ULL << i)) != 0) return true;
    return false;
}

/* Measurements: all 30 or none. */
static CL_MUST_USE cl_status record_check_measurements(const cl_api_record *r)
{
    size_t have = 0;
    const char *missing = NULL;
    for (size_t i = 0; i < RECORD_N_FIELDS; i++) {
        if (record_fields[i].kind != CL_API_FIELD_MEASUREMENT) continue;
        if ((r->present & (1ULL << i)) != 0)
            have++;
        else if (missing == NULL)
            missing = record_fields[i].name;
    }
    CL_ENSURE(have == 0 || have == CL_API_N_MEASUREMENTS, CL_ERR_FORMAT,
              "the record has %zu of the 30 measurements (\"%s\" is missing); give all 30 or none", have, missing);
    return CL_OK;
}

static CL_MUST_USE cl_status record_from_json(cl_api_record *r, const uint8_t *body, size_t n)
{
    cl_status rc = CL_OK;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, n, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE(root != NULL, CL_ERR_FORMAT, "the body is not JSON (line %d: %s)", jerr.line, jerr.text);
    CL_ENSURE_GOTO(json_is_object(root), CL_ERR_FORMAT, "the JSON body must be an object of fields");
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        size_t klen = strlen(k);
        if (json_is_string(v)) {
            CL_GUARD_GOTO(cl_api_record_set(r, k, klen, (const uint8_t *)json_string_value(v), json_string_length(v)));
        } else if (json_is_number(v)) {
            CL_GUARD_GOTO(cl_api_record_set_number(r, k, klen, json_number_value(v)));
        } else {
            char shown[80];
            CL_FAIL_GOTO(CL_ERR_FORMAT, "field \"%s\" must be a string (or a number, for a measurement)",
                         record_show_name(k, klen, shown, sizeof(shown)));
        }
    }
out:
    json_decref(root);
    return rc;
}

cl_status cl_api_record_from_body(cl_api_record *r, const char *content_type, size_t ct_len, const uint8_t *body,
                                  size_t n)
{
    cl_reader ct = cl_reader_make(content_type, ct_len), type;
    bool found;
    cl_api_split(&ct, ';', &type, &found);
    cl_reader_trim(&type, " \t");
    if (cl_reader_is(&type, "application/json", true)) {
        CL_GUARD(record_from_json(r, body, n));
    } else if (cl_reader_is(&type, "application/x-www-form-urlencoded", true) || (ct_len == 0 && n == 0)) {
        cl_status rc = CL_OK;
        cl_api_form form;
        cl_api_form_init(&form);
        CL_GUARD_GOTO(cl_api_form_parse_urlencoded(body, n, &form));
        for (size_t i = 0; i < form.n; i++)
            CL_GUARD_GOTO(cl_api_record_set(r, form.pairs[i].name, form.pairs[i].name_len, form.pairs[i].value,
                                            form.pairs[i].value_len));
    out:
        cl_api_form_free(&form);
        CL_GUARD(rc);
    } else {
        CL_FAIL(CL_ERR_UNSUPPORTED,
                "a record is sent as application/x-www-form-urlencoded (curl -d) or application/json");
    }
    return record_check_measurements(r);
}

cl_status cl_api_record_model_input(const cl_api_record *r, cl_buf *out)
{
    char num[40];
    CL_GUARD(cl_buf_append_u8(out, '{'));
    bool first = true;
    for (size_t i = 0; i < RECORD_N_FIELDS; i++) {
        if (record_fields[i].kind != CL_API_FIELD_MEASUREMENT || (r->present & (1ULL << i)) == 0) continue;
        cl_api_format_double(r->number[i], num, sizeof(num));
        CL_GUARD(cl_buf_printf(out, "%s\"%s\": %s", first ? "" : ", ", record_fields[i].name, num));
        first = false;
    }
    return cl_buf_append_u8(out, '}');
}

void cl_api_format_double(double v, char *out, size_t size)
{
    for (int prec = 1; prec <= 17; prec++) {
        (void)snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    /* %g may print "1e+20" or "5": both are JSON numbers. */
}

/* A JSON string, escaped by jansson, appended to out without a heap copy. */
static CL_MUST_USE cl_status record_json_string(cl_buf *out, const uint8_t *p, size_t n)
{
    json_t *s = json_stringn((const char *)p, n);
    CL_ENSURE(s != NULL, CL_ERR_FORMAT, "a field is not UTF-8 text");
    size_t need = json_dumpb(s, NULL, 0, JSON_ENCODE_ANY);
    uint8_t *space = NULL;
    cl_status rc = cl_buf_add_space(out, need, &space);
    if (rc == CL_OK) (void)json_dumpb(s, (char *)space, need, JSON_ENCODE_ANY);
    json_decref(s);
    return rc;
}

cl_status cl_api_record_json(const cl_api_record *r, const char *id, bool has_score, double score, cl_buf *out)
{
    char num[40];
    bool first = true, id_done = false, score_done = false;
    CL_GUARD(cl_buf_append_u8(out, '{'));
    for (size_t i = 0; i <= RECORD_N_FIELDS; i++) {
        const char *name = i < RECORD_N_FIELDS ? record_fields[i].name : NULL;
        /* "id" and "score" take their places in the sorted order. */
        if (!id_done && (name == NULL || strcmp(name, "id") > 0)) {
            CL_GUARD(cl_buf_printf(out, "%s\"id\":", first ? "" : ","));
            CL_GUARD(record_json_string(out, (const uint8_t *)id, strlen(id)));
            first = false;
            id_done = true;
        }
        if (!score_done && (name == NULL || strcmp(name, "score") > 0)) {
            if (has_score) cl_api_format_double(score, num, sizeof(num));
            CL_GUARD(cl_buf_printf(out, "%s\"score\":%s", first ? "" : ",", has_score ? num : "null"));
            first = false;
            score_done = true;
        }
        if (name == NULL || (r->present & (1ULL << i)) == 0) continue;
        CL_GUARD(cl_buf_printf(out, "%s\"%s\":", first ? "" : ",", name));
        first = false;
        if (record_fields[i].kind == CL_API_FIELD_MEASUREMENT) {
            cl_api_format_double(r->number[i], num, sizeof(num));
            CL_GUARD(cl_buf_append_str(out, num));
        } else {
            CL_GUARD(record_json_string(out, r->text[i].data, r->text[i].len));
        }
    }
    return cl_buf_append_u8(out, '}');
}

/* "cloister-api record" 0x00 | version | u8 id length | id | u16be length | names joined by ','. */
static CL_MUST_USE cl_status record_aad(const char *id, uint64_t present, uint8_t version, cl_buf *aad)
{
    size_t id_len = strlen(id);
    CL_ENSURE(cl_api_id_valid(id, id_len), CL_ERR_FORMAT, "record id is not valid");
    cl_buf names;
    cl_buf_init(&names, 4096);
    cl_status rc = CL_OK;
    for (size_t i = 0; i < RECORD_N_FIELDS; i++) {
        if ((present & (1ULL << i)) == 0) continue;
        if (names.len > 0) CL_GUARD_GOTO(cl_buf_append_u8(&names, ','));
        CL_GUARD_GOTO(cl_buf_append_str(&names, record_fields[i].name));
    }
    CL_ENSURE_GOTO((present >> RECORD_N_FIELDS) == 0, CL_ERR_FORMAT, "the record's field set names unknown fields");
    CL_GUARD_GOTO(cl_buf_append(aad, RECORD_AAD_LABEL, sizeof(RECORD_AAD_LABEL))); /* with its NUL */
    CL_GUARD_GOTO(cl_buf_append_u8(aad, version));
    CL_GUARD_GOTO(cl_buf_append_u8_prefixed(aad, id, id_len));
    CL_GUARD_GOTO(cl_buf_append_u16be_prefixed(aad, names.data, names.len));
out:
    cl_buf_free(&names);
    return rc;
}

cl_status cl_api_record_seal(const uint8_t key[CL_AES256_KEY_LEN], const char *id, uint64_t present,
                             const uint8_t *json, size_t n, cl_buf *out)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 4096);
    uint8_t nonce[CL_GCM_NONCE_LEN], tag[CL_GCM_TAG_LEN], *ct = NULL;
    CL_GUARD_GOTO(record_aad(id, present, CL_API_BLOB_VERSION, &aad));
    /* A random nonce per write: with one key, 2^32 writes keep the collision chance under
     * 2^-32 (NIST SP 800-38D section 8.3); docs/formats/api-record.md. */
    CL_GUARD_GOTO(cl_random(nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_append(out, CL_API_BLOB_MAGIC, 4));
    CL_GUARD_GOTO(cl_buf_append_u8(out, CL_API_BLOB_VERSION));
    CL_GUARD_GOTO(cl_buf_append_u64be(out, present));
    CL_GUARD_GOTO(cl_buf_append(out, nonce, sizeof(nonce)));
    CL_GUARD_GOTO(cl_buf_add_space(out, n, &ct));
    CL_GUARD_GOTO(cl_gcm_init(&g, key, true));
    CL_GUARD_GOTO(cl_gcm_seal(&g, nonce, aad.data, aad.len, json, n, ct, tag));
    CL_GUARD_GOTO(cl_buf_append(out, tag, sizeof(tag)));
out:
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}

cl_status cl_api_record_open(const uint8_t key[CL_AES256_KEY_LEN], const char *id, const uint8_t *blob, size_t n,
                             cl_buf *out)
{
    cl_status rc = CL_OK;
    cl_gcm g = {0};
    cl_buf aad;
    cl_buf_init(&aad, 4096);
    cl_reader r = cl_reader_make(blob, n);
    uint8_t version = 0, nonce[CL_GCM_NONCE_LEN], *pt = NULL;
    uint64_t present = 0;
    const uint8_t *ct = NULL, *tag = NULL;
    size_t start = out->len;
    CL_ENSURE_GOTO(cl_reader_starts_with(&r, CL_API_BLOB_MAGIC, 4), CL_ERR_FORMAT,
                   "the stored record of %s is not a sealed record (no CLAR magic)", id);
    CL_GUARD_GOTO(cl_reader_skip(&r, 4));
    CL_GUARD_GOTO(cl_reader_u8(&r, &version));
    CL_ENSURE_GOTO(version == CL_API_BLOB_VERSION, CL_ERR_UNSUPPORTED,
                   "the stored record of %s is format version %u; this build reads %d", id, version,
                   CL_API_BLOB_VERSION);
    CL_GUARD_GOTO(cl_reader_u64be(&r, &present));
    CL_GUARD_GOTO(cl_reader_copy(&r, nonce, sizeof(nonce)));
    CL_ENSURE_GOTO(cl_reader_remaining(&r) >= CL_GCM_TAG_LEN, CL_ERR_FORMAT, "the stored record of %s is truncated",
                   id);
    size_t ct_len = cl_reader_remaining(&r) - CL_GCM_TAG_LEN;
    CL_GUARD_GOTO(cl_reader_bytes(&r, ct_len, &ct));
    CL_GUARD_GOTO(cl_reader_bytes(&r, CL_GCM_TAG_LEN, &tag));
    CL_GUARD_GOTO(record_aad(id, present, version, &aad));
    CL_GUARD_GOTO(cl_buf_add_space(out, ct_len, &pt));
    CL_GUARD_GOTO(cl_gcm_init(&g, key, false));
    rc = cl_gcm_open(&g, nonce, aad.data, aad.len, ct, ct_len, tag, pt);
    if (rc != CL_OK) {
        cl_buf_truncate(out, start);
        CL_FAIL_GOTO(CL_ERR_AUTH,
                     "the stored record of %s does not open under this API's data key (another key, another id, "
                     "or changed bytes)",
                     id);
    }
out:
    if (rc != CL_OK) cl_buf_truncate(out, start);
    cl_gcm_free(&g);
    cl_buf_free(&aad);
    return rc;
}
