/* SPDX-License-Identifier: Apache-2.0 */
/* Classifier I/O: a record of named measurements in, labelled probabilities out (see cloister/infer.h). */
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/csv.h"

#include "infer_internal.h"
#include "onnx.pb-c.h"

#define CLASSIFY_META_LABELS "cloister.classifier.labels"
#define CLASSIFY_META_FEATURES "cloister.classifier.features"
#define CLASSIFY_META_INPUT "cloister.classifier.input"
/* Longest metadata value read: 4096 names of 64 bytes and their commas. */
#define CLASSIFY_META_MAX ((size_t)CL_INFER_CLASSIFIER_MAX_FEATURES * (CL_INFER_CLASSIFIER_MAX_NAME + 1))
/* A probability row may miss 1 by float rounding of a softmax; more is not a probability vector. */
#define CLASSIFY_SUM_TOLERANCE 1e-3

typedef struct classify_names {
    char *text; /* the metadata value with commas replaced by NULs */
    const char **name;
    size_t n;
} classify_names;

struct cl_infer_classifier {
    classify_names labels;
    classify_names features; /* n = 0 when the model names none */
    size_t n_features;
};

const char *cl_infer_model_metadata(const cl_infer_model *m, const char *key)
{
    const Onnx__ModelProto *mp = m->proto;
    for (size_t i = 0; mp != NULL && i < mp->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *e = mp->metadata_props[i];
        if (e != NULL && e->key != NULL && e->value != NULL && strcmp(e->key, key) == 0) return e->value;
    }
    return NULL;
}

static bool classify_name_char(uint8_t b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_' || b == '.' ||
           b == '-';
}

/* Splits "a,b,c" into names of 1-64 of [A-Za-z0-9_.-], distinct: they become
 * JSON keys and message text, so nothing in them needs escaping. */
static CL_MUST_USE cl_status classify_names_parse(const char *what, const char *value, size_t max, classify_names *out)
{
    memset(out, 0, sizeof(*out));
    size_t len = strnlen(value, CLASSIFY_META_MAX + 1);
    CL_ENSURE(len <= CLASSIFY_META_MAX, CL_ERR_LIMIT, "the model's %s metadata is over %zu bytes", what,
              CLASSIFY_META_MAX);
    CL_ENSURE(len > 0, CL_ERR_FORMAT, "the model's %s metadata is empty", what);
    out->text = malloc(len + 1);
    out->name = calloc(max, sizeof(*out->name));
    CL_ENSURE(out->text != NULL && out->name != NULL, CL_ERR_NOMEM, "out of memory");
    memcpy(out->text, value, len + 1);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && out->text[i] != ',') {
            CL_ENSURE(classify_name_char((uint8_t)out->text[i]), CL_ERR_FORMAT,
                      "the model's %s metadata has byte 0x%02x in name %zu; names are A-Z a-z 0-9 _ . -", what,
                      (uint8_t)out->text[i], out->n + 1);
            continue;
        }
        size_t nl = i - start;
        CL_ENSURE(nl >= 1 && nl <= CL_INFER_CLASSIFIER_MAX_NAME, CL_ERR_FORMAT,
                  "the model's %s metadata: name %zu is %zu characters; names are 1 to %d", what, out->n + 1, nl,
                  CL_INFER_CLASSIFIER_MAX_NAME);
        CL_ENSURE(out->n < max, CL_ERR_LIMIT, "the model's %s metadata lists more than %zu names", what, max);
        out->text[i] = '\0';
        out->name[out->n] = out->text + start;
        for (size_t j = 0; j < out->n; j++)
            CL_ENSURE(strcmp(out->name[j], out->name[out->n]) != 0, CL_ERR_FORMAT,
                      "the model's %s metadata lists '%s' twice", what, out->name[j]);
        out->n++;
        start = i + 1;
    }
    return CL_OK;
}

static void classify_names_free(classify_names *n)
{
    free(n->text);
    free(n->name);
    memset(n, 0, sizeof(*n));
}

void cl_infer_classifier_free(cl_infer_classifier *c)
{
    if (c == NULL) return;
    classify_names_free(&c->labels);
    classify_names_free(&c->features);
    free(c);
}

cl_status cl_infer_classifier_make(const char *labels, const char *features, size_t n_features,
                                   cl_infer_classifier **out)
{
    cl_status rc = CL_OK;
    *out = NULL;
    CL_ENSURE(labels != NULL, CL_ERR_USAGE, "no labels given");
    cl_infer_classifier *c = calloc(1, sizeof(*c));
    CL_ENSURE(c != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(classify_names_parse("labels", labels, CL_INFER_CLASSIFIER_MAX_LABELS, &c->labels));
    CL_ENSURE_GOTO(c->labels.n >= 2, CL_ERR_FORMAT,
                   "the model's labels metadata names %zu class; a classifier has 2 "
                   "or more",
                   c->labels.n);
    if (features != NULL) {
        CL_GUARD_GOTO(classify_names_parse("features", features, CL_INFER_CLASSIFIER_MAX_FEATURES, &c->features));
        CL_ENSURE_GOTO(n_features == 0 || n_features == c->features.n, CL_ERR_FORMAT,
                       "the model's features metadata names %zu features, but its input takes %zu", c->features.n,
                       n_features);
        c->n_features = c->features.n;
    } else {
        CL_ENSURE_GOTO(n_features >= 1 && n_features <= CL_INFER_CLASSIFIER_MAX_FEATURES, CL_ERR_FORMAT,
                       "the classifier's feature count %zu is not 1 to %d (and no feature names say otherwise)",
                       n_features, CL_INFER_CLASSIFIER_MAX_FEATURES);
        c->n_features = n_features;
    }
    *out = c;
    c = NULL;
out:
    cl_infer_classifier_free(c);
    return rc;
}

cl_status cl_infer_classifier_from_model(const cl_infer_model *m, cl_infer_classifier **out)
{
    *out = NULL;
    const char *labels = cl_infer_model_metadata(m, CLASSIFY_META_LABELS);
    CL_ENSURE(labels != NULL, CL_ERR_NOT_FOUND,
              "the model carries no '%s' metadata, so it does not say it is a classifier (train it with cloister "
              "train-local, or add the metadata)",
              CLASSIFY_META_LABELS);
    CL_ENSURE(cl_infer_model_input_count(m) == 1, CL_ERR_FORMAT, "the classifier model takes %zu inputs, not 1",
              cl_infer_model_input_count(m));
    cl_infer_dtype dt;
    int rank;
    int64_t dims[CL_INFER_MAX_RANK];
    const char *in_name = NULL;
    CL_GUARD(cl_infer_model_input_info(m, 0, &in_name, &dt, &rank, dims));
    /* The metadata describes one input; if it names it, it must be this one,
     * or the feature list may describe a different graph than the one shipped. */
    const char *meta_in = cl_infer_model_metadata(m, CLASSIFY_META_INPUT);
    CL_ENSURE(meta_in == NULL || (in_name != NULL && strcmp(meta_in, in_name) == 0), CL_ERR_FORMAT,
              "the model's metadata describes input '%.64s', but its input is '%.64s'", meta_in,
              in_name ? in_name : "");
    CL_ENSURE(dt == CL_INFER_FLOAT && rank == 2, CL_ERR_FORMAT,
              "the classifier model's input is not float32 [N, features] (dtype %s, rank %d)", cl_infer_dtype_name(dt),
              rank);
    size_t nf = dims[1] > 0 ? (size_t)dims[1] : 0;
    return cl_infer_classifier_make(labels, cl_infer_model_metadata(m, CLASSIFY_META_FEATURES), nf, out);
}

size_t cl_infer_classifier_feature_count(const cl_infer_classifier *c) { return c->n_features; }

/* A double that must also be a float32: casting an out-of-range double to
 * float is undefined behaviour, and an overflow to inf is no measurement. */
static CL_MUST_USE cl_status classify_store(const char *feature, double v, float *dst)
{
    CL_ENSURE(isfinite(v) && fabs(v) <= FLT_MAX, CL_ERR_FORMAT,
              "feature '%s' is %g, outside the range of a float32 measurement", feature, v);
    *dst = (float)v;
    return CL_OK;
}

static const char *classify_feature_name(const cl_infer_classifier *c, size_t i, char *buf, size_t n)
{
    if (c->features.n > 0) return c->features.name[i];
    snprintf(buf, n, "#%zu", i + 1);
    return buf;
}

static CL_MUST_USE cl_status classify_find(const cl_infer_classifier *c, const uint8_t *p, size_t len, size_t *idx)
{
    for (size_t i = 0; i < c->features.n; i++) {
        const char *nm = c->features.name[i];
        if (strnlen(nm, CL_INFER_CLASSIFIER_MAX_NAME + 1) == len && memcmp(nm, p, len) == 0) {
            *idx = i;
            return CL_OK;
        }
    }
    char show[80];
    CL_FAIL(CL_ERR_FORMAT, "'%s' is not one of the model's %zu features (the first is '%s')",
            cl_bytes_show(p, len, show, sizeof(show)), c->features.n, c->features.name[0]);
}

static CL_MUST_USE cl_status classify_json_value(const cl_infer_classifier *c, size_t i, const json_t *v, float *dst)
{
    char nb[24];
    const char *name = classify_feature_name(c, i, nb, sizeof(nb));
    CL_ENSURE(json_is_number(v), CL_ERR_FORMAT, "feature '%s' is a JSON %s; give a number", name,
              json_is_string(v)    ? "string"
              : json_is_null(v)    ? "null"
              : json_is_boolean(v) ? "boolean"
                                   : "container");
    return classify_store(name, json_number_value(v), dst);
}

static CL_MUST_USE cl_status classify_parse_json(const cl_infer_classifier *c, const void *bytes, size_t len, float *x)
{
    cl_status rc = CL_OK;
    json_error_t err;
    char show[100];
    bool *seen = calloc(c->n_features, 1);
    CL_ENSURE(seen != NULL, CL_ERR_NOMEM, "out of memory");
    /* jansson parses with an explicit length, rejects NaN/Infinity literals
     * and number overflow, and bounds nesting depth. */
    json_t *j = json_loadb(bytes, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (j == NULL) {
        size_t tl = strnlen(err.text, sizeof(err.text));
        CL_FAIL_GOTO(CL_ERR_FORMAT, "not valid JSON at line %d, column %d: %s", err.line, err.column,
                     cl_bytes_show((const uint8_t *)err.text, tl, show, sizeof(show)));
    }
    if (json_is_array(j)) {
        CL_ENSURE_GOTO(json_array_size(j) == c->n_features, CL_ERR_FORMAT,
                       "the JSON array has %zu values; the model takes %zu features", json_array_size(j),
                       c->n_features);
        for (size_t i = 0; i < c->n_features; i++)
            CL_GUARD_GOTO(classify_json_value(c, i, json_array_get(j, i), &x[i]));
    } else if (json_is_object(j)) {
        CL_ENSURE_GOTO(c->features.n > 0, CL_ERR_FORMAT,
                       "the model names no features, so the input must be a JSON array of %zu numbers", c->n_features);
        const char *key;
        json_t *v;
        json_object_foreach(j, key, v)
        {
            size_t idx;
            CL_GUARD_GOTO(classify_find(c, (const uint8_t *)key, strnlen(key, CL_INFER_CLASSIFIER_MAX_INPUT), &idx));
            CL_GUARD_GOTO(classify_json_value(c, idx, v, &x[idx]));
            seen[idx] = true;
        }
        for (size_t i = 0; i < c->n_features; i++)
            CL_ENSURE_GOTO(seen[i], CL_ERR_FORMAT, "feature '%s' is missing (the model takes %zu named features)",
                           c->features.name[i], c->n_features);
    } else {
        CL_FAIL_GOTO(CL_ERR_FORMAT, "the JSON input must be an object keyed by feature name or an array of %zu numbers",
                     c->n_features);
    }
out:
    json_decref(j);
    free(seen);
    return rc;
}

/* A first field that cannot start a number is a header row. */
static bool classify_is_header(const cl_csv_field *f)
{
    if (f->len == 0) return false;
    uint8_t b = f->p[0];
    if ((b >= '0' && b <= '9') || b == '+' || b == '-' || b == '.') return false;
    /* NaN and Inf start with letters but are (rejected) values, reported as such. */
    char low[4] = {0};
    for (size_t i = 0; i < 3 && i < f->len; i++) low[i] = (char)(f->p[i] | 0x20);
    return strcmp(low, "nan") != 0 && strcmp(low, "inf") != 0;
}

static CL_MUST_USE cl_status classify_parse_csv(const cl_infer_classifier *c, const void *bytes, size_t len, float *x)
{
    cl_status rc = CL_OK;
    size_t n = c->n_features, nf = 0;
    cl_csv_field *fields = calloc(n, sizeof(*fields));
    size_t *col_of = calloc(n, sizeof(size_t)); /* column -> feature index */
    bool *seen = calloc(n, 1);
    CL_ENSURE_GOTO(fields != NULL && col_of != NULL && seen != NULL, CL_ERR_NOMEM, "out of memory");
    cl_csv csv = cl_csv_make(bytes, len, "CSV input");
    bool eof;
    CL_GUARD_GOTO(cl_csv_record(&csv, fields, n, &nf, &eof));
    CL_ENSURE_GOTO(!eof, CL_ERR_FORMAT, "the CSV input is empty; give one row of %zu numbers", n);
    bool header = classify_is_header(&fields[0]);
    for (size_t i = 0; i < n; i++) col_of[i] = i;
    if (header) {
        CL_ENSURE_GOTO(c->features.n > 0, CL_ERR_FORMAT,
                       "CSV input, line %zu: a header row, but the model names no features; give only the %zu "
                       "numbers",
                       csv.line, n);
        CL_ENSURE_GOTO(nf == n, CL_ERR_FORMAT, "CSV input, line %zu: the header has %zu columns; the model takes %zu",
                       csv.line, nf, n);
        for (size_t i = 0; i < nf; i++) {
            size_t idx;
            CL_GUARD_CTX_GOTO(classify_find(c, fields[i].p, fields[i].len, &idx), "CSV input, line %zu, column %zu",
                              csv.line, i + 1);
            CL_ENSURE_GOTO(!seen[idx], CL_ERR_FORMAT, "CSV input, line %zu, column %zu: '%s' is named twice", csv.line,
                           i + 1, c->features.name[idx]);
            seen[idx] = true;
            col_of[i] = idx;
        }
        CL_GUARD_GOTO(cl_csv_record(&csv, fields, n, &nf, &eof));
        CL_ENSURE_GOTO(!eof, CL_ERR_FORMAT, "the CSV input has a header but no row of values");
    }
    CL_ENSURE_GOTO(nf == n, CL_ERR_FORMAT, "CSV input, line %zu: %zu values; the model takes %zu features", csv.line,
                   nf, n);
    for (size_t i = 0; i < n; i++) {
        char nb[24];
        const char *name = classify_feature_name(c, col_of[i], nb, sizeof(nb));
        double v;
        CL_GUARD_GOTO(cl_csv_field_double(&csv, &fields[i], i + 1, name, &v));
        CL_GUARD_GOTO(classify_store(name, v, &x[col_of[i]]));
    }
    size_t line = csv.line;
    CL_GUARD_GOTO(cl_csv_record(&csv, fields, n, &nf, &eof));
    CL_ENSURE_GOTO(eof, CL_ERR_FORMAT,
                   "CSV input, line %zu: a second row after the patient's on line %zu; give one record per request",
                   csv.line, line);
out:
    free(fields);
    free(col_of);
    free(seen);
    return rc;
}

cl_status cl_infer_classifier_parse(const cl_infer_classifier *c, cl_infer_record_format fmt, const void *bytes,
                                    size_t len, cl_infer_tensor *out)
{
    memset(out, 0, sizeof(*out));
    CL_ENSURE(bytes != NULL || len == 0, CL_ERR_USAGE, "no input bytes given");
    CL_ENSURE(len <= CL_INFER_CLASSIFIER_MAX_INPUT, CL_ERR_LIMIT, "the input record is %zu bytes, over the %zu allowed",
              len, CL_INFER_CLASSIFIER_MAX_INPUT);
    int64_t dims[2] = {1, (int64_t)c->n_features};
    CL_GUARD(cl_infer_tensor_alloc(out, CL_INFER_FLOAT, 2, dims));
    cl_status rc = CL_OK;
    switch (fmt) {
    case CL_INFER_RECORD_JSON: CL_GUARD_GOTO(classify_parse_json(c, bytes, len, out->data)); break;
    case CL_INFER_RECORD_CSV: CL_GUARD_GOTO(classify_parse_csv(c, bytes, len, out->data)); break;
    default: CL_FAIL_GOTO(CL_ERR_USAGE, "unknown record format %d", (int)fmt);
    }
out:
    if (rc != CL_OK) cl_infer_tensor_free(out);
    return rc;
}

cl_status cl_infer_classifier_format(const cl_infer_classifier *c, const cl_infer_tensor *probs, cl_buf *out)
{
    cl_status rc = CL_OK;
    size_t k = c->labels.n;
    CL_ENSURE(probs->dtype == CL_INFER_FLOAT && probs->rank == 2 && probs->dims[0] >= 1 && probs->dims[1] == (int64_t)k,
              CL_ERR_FORMAT, "the model's output is not float32 [N, %zu] probabilities for its %zu labels", k, k);
    const float *p = probs->data;
    size_t best = 0;
    double sum = 0;
    for (size_t i = 0; i < k; i++) {
        CL_ENSURE(isfinite(p[i]) && p[i] >= 0.0f && p[i] <= 1.0f, CL_ERR_FORMAT,
                  "the model's output for label '%s' is %g, not a probability", c->labels.name[i], (double)p[i]);
        sum += p[i];
        if (p[i] > p[best]) best = i;
    }
    CL_ENSURE(fabs(sum - 1.0) <= CLASSIFY_SUM_TOLERANCE, CL_ERR_FORMAT,
              "the model's outputs sum to %g, not 1: they are not class probabilities", sum);
    json_t *probj = json_object();
    json_t *j = json_object();
    char *s = NULL;
    CL_ENSURE_GOTO(probj != NULL && j != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < k; i++)
        CL_ENSURE_GOTO(json_object_set_new(probj, c->labels.name[i], json_real((double)p[i])) == 0, CL_ERR_NOMEM,
                       "out of memory");
    CL_ENSURE_GOTO(json_object_set_new(j, "label", json_string(c->labels.name[best])) == 0 &&
                       json_object_set(j, "probabilities", probj) == 0,
                   CL_ERR_NOMEM, "out of memory");
    /* 9 significant digits print every float32 exactly (it round-trips). */
    s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
    CL_ENSURE_GOTO(s != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(cl_buf_append_str(out, s));
out:
    free(s);
    json_decref(j);
    json_decref(probj);
    return rc;
}

cl_status cl_infer_classifier_run(cl_infer_model *m, const cl_infer_classifier *c, cl_infer_record_format fmt,
                                  const void *bytes, size_t len, cl_buf *out)
{
    cl_status rc = CL_OK;
    cl_infer_tensor in = {0};
    size_t n_out = cl_infer_model_output_count(m);
    cl_infer_tensor *outs = calloc(n_out ? n_out : 1, sizeof(*outs));
    CL_ENSURE(outs != NULL, CL_ERR_NOMEM, "out of memory");
    CL_ENSURE_GOTO(n_out >= 1, CL_ERR_FORMAT, "the model has no outputs");
    CL_GUARD_GOTO(cl_infer_classifier_parse(c, fmt, bytes, len, &in));
    CL_GUARD_GOTO(cl_infer_run(m, &in, 1, outs, n_out));
    CL_GUARD_GOTO(cl_infer_classifier_format(c, &outs[0], out));
out:
    for (size_t i = 0; i < n_out; i++) cl_infer_tensor_free(&outs[i]);
    free(outs);
    cl_infer_tensor_free(&in); /* a patient's measurements: wiped */
    return rc;
}
