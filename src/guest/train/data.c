/* SPDX-License-Identifier: Apache-2.0 */
/* The training table: CSV parsing and the stratified split. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/csv.h"
#include "cloister/mem.h"
#include "cloister/train.h"

#include "train_internal.h"

#define TRAIN_LABEL_COLUMN "diagnosis"

static bool train_name_ok(const cl_csv_field *f)
{
    if (f->len == 0 || f->len > CL_TRAIN_MAX_NAME) return false;
    for (size_t i = 0; i < f->len; i++) {
        uint8_t b = f->p[i];
        bool ok = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_' || b == '.' ||
                  b == '-';
        if (!ok) return false;
    }
    return true;
}

/* The header: names become the model's feature names (metadata, JSON keys),
 * hence the narrow character set. */
static CL_MUST_USE cl_status train_header(cl_csv *c, cl_csv_field *fields, size_t nf, cl_train_dataset *d,
                                          size_t *label_col)
{
    char show[80];
    *label_col = SIZE_MAX;
    for (size_t i = 0; i < nf; i++) {
        if (cl_csv_field_is(&fields[i], TRAIN_LABEL_COLUMN)) {
            CL_ENSURE(*label_col == SIZE_MAX, CL_ERR_FORMAT, "%s, line %zu: columns %zu and %zu are both named '%s'",
                      c->what, c->line, *label_col + 1, i + 1, TRAIN_LABEL_COLUMN);
            *label_col = i;
        }
    }
    CL_ENSURE(*label_col != SIZE_MAX, CL_ERR_FORMAT,
              "%s, line %zu: no column named '%s'; the header must name the label column (values M or B)", c->what,
              c->line, TRAIN_LABEL_COLUMN);
    CL_ENSURE(nf >= 2, CL_ERR_FORMAT, "%s, line %zu: no feature columns besides '%s'", c->what, c->line,
              TRAIN_LABEL_COLUMN);
    d->n_features = nf - 1;
    d->feature_names = calloc(d->n_features, sizeof(*d->feature_names));
    CL_ENSURE(d->feature_names != NULL, CL_ERR_NOMEM, "out of memory for %zu feature names", d->n_features);
    size_t k = 0;
    for (size_t i = 0; i < nf; i++) {
        if (i == *label_col) continue;
        CL_ENSURE(train_name_ok(&fields[i]), CL_ERR_FORMAT,
                  "%s, line %zu, column %zu: feature name '%s' must be 1-%d characters of A-Z a-z 0-9 _ . -", c->what,
                  c->line, i + 1, cl_bytes_show(fields[i].p, fields[i].len, show, sizeof(show)), CL_TRAIN_MAX_NAME);
        memcpy(d->feature_names[k], fields[i].p, fields[i].len);
        d->feature_names[k][fields[i].len] = '\0';
        for (size_t j = 0; j < k; j++)
            CL_ENSURE(strcmp(d->feature_names[j], d->feature_names[k]) != 0, CL_ERR_FORMAT,
                      "%s, line %zu, column %zu: feature '%s' is named twice", c->what, c->line, i + 1,
                      d->feature_names[k]);
        k++;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status train_label(const cl_csv *c, const cl_csv_field *f, size_t col, uint8_t *y)
{
    char show[40];
    if (cl_csv_field_is(f, "M") || cl_csv_field_is(f, CL_TRAIN_LABEL_POSITIVE)) {
        *y = 1;
        return CL_OK;
    }
    if (cl_csv_field_is(f, "B") || cl_csv_field_is(f, CL_TRAIN_LABEL_NEGATIVE)) {
        *y = 0;
        return CL_OK;
    }
    CL_FAIL(CL_ERR_FORMAT, "%s, line %zu, column %zu (%s): unknown label '%s'; expected M (malignant) or B (benign)",
            c->what, c->line, col, TRAIN_LABEL_COLUMN, cl_bytes_show(f->p, f->len, show, sizeof(show)));
}

/* Grows the row arrays geometrically up to the row cap. */
static CL_MUST_USE cl_status train_grow(cl_train_dataset *d, size_t *cap)
{
    size_t ncap = *cap ? *cap * 2 : 1024;
    if (ncap > CL_TRAIN_MAX_ROWS) ncap = CL_TRAIN_MAX_ROWS;
    double *x = calloc(ncap * d->n_features, sizeof(double));
    uint8_t *y = calloc(ncap, 1);
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for %zu rows", ncap);
    }
    if (d->n_rows) {
        memcpy(x, d->x, d->n_rows * d->n_features * sizeof(double));
        memcpy(y, d->y, d->n_rows);
    }
    /* The rows are patient data: the old copy is wiped, not just freed. */
    if (d->x) cl_memzero(d->x, *cap * d->n_features * sizeof(double));
    free(d->x);
    free(d->y);
    d->x = x;
    d->y = y;
    *cap = ncap;
    return CL_OK;
}

cl_status cl_train_csv_parse(const void *bytes, size_t len, const char *what, cl_train_dataset *out)
{
    cl_status rc = CL_OK;
    memset(out, 0, sizeof(*out));
    cl_csv_field *fields = calloc(CL_TRAIN_MAX_FEATURES + 1, sizeof(*fields));
    CL_ENSURE(fields != NULL, CL_ERR_NOMEM, "out of memory");
    cl_csv c = cl_csv_make(bytes, len, what);
    size_t nf = 0, label_col = 0, cap = 0;
    bool eof = false;
    CL_GUARD_GOTO(cl_sha256(bytes, len, out->sha256));
    CL_GUARD_GOTO(cl_csv_record(&c, fields, CL_TRAIN_MAX_FEATURES + 1, &nf, &eof));
    CL_ENSURE_GOTO(!eof, CL_ERR_FORMAT, "%s is empty: expected a header row and data rows", c.what);
    CL_GUARD_GOTO(train_header(&c, fields, nf, out, &label_col));
    size_t ncols = nf;
    for (;;) {
        CL_GUARD_GOTO(cl_csv_record(&c, fields, CL_TRAIN_MAX_FEATURES + 1, &nf, &eof));
        if (eof) break;
        CL_ENSURE_GOTO(nf == ncols, CL_ERR_FORMAT, "%s, line %zu: %zu columns, but the header has %zu", c.what, c.line,
                       nf, ncols);
        CL_ENSURE_GOTO(out->n_rows < CL_TRAIN_MAX_ROWS, CL_ERR_LIMIT, "%s: more than %d data rows", c.what,
                       CL_TRAIN_MAX_ROWS);
        if (out->n_rows == cap) CL_GUARD_GOTO(train_grow(out, &cap));
        double *row = out->x + out->n_rows * out->n_features;
        size_t k = 0;
        for (size_t i = 0; i < nf; i++) {
            if (i == label_col) {
                CL_GUARD_GOTO(train_label(&c, &fields[i], i + 1, &out->y[out->n_rows]));
                continue;
            }
            CL_GUARD_GOTO(cl_csv_field_double(&c, &fields[i], i + 1, out->feature_names[k], &row[k]));
            k++;
        }
        out->n_positive += out->y[out->n_rows];
        out->n_rows++;
    }
    CL_ENSURE_GOTO(out->n_rows > 0, CL_ERR_FORMAT, "%s has a header but no data rows", c.what);
out:
    free(fields);
    /* A row may be half written: wipe the whole allocation before it goes. */
    if (rc != CL_OK && out->x != NULL) cl_memzero(out->x, cap * out->n_features * sizeof(double));
    if (rc != CL_OK) cl_train_dataset_free(out);
    return rc;
}

void cl_train_dataset_free(cl_train_dataset *d)
{
    if (d->x) cl_memzero(d->x, d->n_rows * d->n_features * sizeof(double));
    free(d->x);
    free(d->y);
    free(d->feature_names);
    memset(d, 0, sizeof(*d));
}

static int train_cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

cl_status cl_train_split_stratified(const cl_train_dataset *d, double test_fraction, uint64_t seed, cl_train_split *out)
{
    cl_status rc = CL_OK;
    memset(out, 0, sizeof(*out));
    CL_ENSURE(test_fraction > 0.0 && test_fraction < 1.0, CL_ERR_USAGE, "the test fraction %g is not between 0 and 1",
              test_fraction);
    size_t n = d->n_rows, n_class[2] = {n - d->n_positive, d->n_positive};
    CL_ENSURE(n_class[0] >= 2 && n_class[1] >= 2, CL_ERR_FORMAT,
              "the data has %zu benign and %zu malignant rows; a split needs at least 2 of each", n_class[0],
              n_class[1]);
    size_t *idx = calloc(n, sizeof(size_t));
    out->train = calloc(n, sizeof(size_t));
    out->test = calloc(n, sizeof(size_t));
    CL_ENSURE_GOTO(idx != NULL && out->train != NULL && out->test != NULL, CL_ERR_NOMEM, "out of memory");
    uint64_t state = seed;
    for (int cls = 0; cls < 2; cls++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (d->y[i] == cls) idx[m++] = i;
        for (size_t i = m - 1; i > 0; i--) {
            size_t j = train_rng_below(&state, i + 1);
            size_t t = idx[i];
            idx[i] = idx[j];
            idx[j] = t;
        }
        size_t k = (size_t)llround(test_fraction * (double)m);
        if (k < 1) k = 1;
        if (k > m - 1) k = m - 1;
        for (size_t i = 0; i < m; i++) {
            if (i < k)
                out->test[out->n_test++] = idx[i];
            else
                out->train[out->n_train++] = idx[i];
        }
    }
    qsort(out->train, out->n_train, sizeof(size_t), train_cmp_size);
    qsort(out->test, out->n_test, sizeof(size_t), train_cmp_size);
out:
    free(idx);
    if (rc != CL_OK) cl_train_split_free(out);
    return rc;
}

void cl_train_split_free(cl_train_split *s)
{
    free(s->train);
    free(s->test);
    memset(s, 0, sizeof(*s));
}
