/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A training table as a NumPy .npy file. The format (numpy/lib/format.py,
 * NEP 1) is read by the inference runtime's bounded parser (cl_infer_npy_parse:
 * one parser of .npy headers in the tree); this file adds what a table needs:
 * two dimensions, a float type, a 0/1 label column, finite values, the table bounds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/infer.h"
#include "cloister/mem.h"
#include "cloister/train.h"

cl_status cl_train_npy_parse(const void *bytes, size_t len, const char *what, cl_train_dataset *out)
{
    cl_status rc = CL_OK;
    cl_infer_tensor t = {0};
    size_t rows = 0, cols = 0, f = 0;
    memset(out, 0, sizeof(*out));
    CL_GUARD_CTX(cl_infer_npy_parse(bytes, len, &t), "%s", what);
    CL_ENSURE_GOTO(t.dtype == CL_INFER_DOUBLE || t.dtype == CL_INFER_FLOAT, CL_ERR_UNSUPPORTED,
                   "%s: the array's elements are %s; a training table is float64 ('<f8') or float32 ('<f4')", what,
                   cl_infer_dtype_name(t.dtype));
    CL_ENSURE_GOTO(t.rank == 2, CL_ERR_FORMAT,
                   "%s: the array has %d dimensions; a training table has 2 (rows, features + the label last)", what,
                   t.rank);
    rows = (size_t)t.dims[0];
    cols = (size_t)t.dims[1];
    CL_ENSURE_GOTO(rows >= 1, CL_ERR_FORMAT, "%s has no rows", what);
    CL_ENSURE_GOTO(rows <= CL_TRAIN_MAX_ROWS, CL_ERR_LIMIT, "%s: %zu rows; at most %d are accepted", what, rows,
                   CL_TRAIN_MAX_ROWS);
    CL_ENSURE_GOTO(cols >= 2, CL_ERR_FORMAT,
                   "%s: %zu column; a training table has at least one feature column and the label column last", what,
                   cols);
    CL_ENSURE_GOTO(cols - 1 <= CL_TRAIN_MAX_FEATURES, CL_ERR_LIMIT, "%s: %zu features; at most %d are accepted", what,
                   cols - 1, CL_TRAIN_MAX_FEATURES);
    f = cols - 1;
    out->n_features = f;
    out->feature_names = calloc(f, sizeof(*out->feature_names));
    out->x = calloc(rows * f, sizeof(double));
    out->y = calloc(rows, 1);
    CL_ENSURE_GOTO(out->feature_names && out->x && out->y, CL_ERR_NOMEM, "out of memory for %zu rows", rows);
    /* An array has no column names: f0, f1, ... (the model's feature metadata). */
    for (size_t j = 0; j < f; j++) (void)snprintf(out->feature_names[j], sizeof(out->feature_names[j]), "f%zu", j);
    for (size_t i = 0; i < rows; i++) {
        for (size_t j = 0; j < cols; j++) {
            size_t k = i * cols + j;
            double v = t.dtype == CL_INFER_DOUBLE ? ((const double *)t.data)[k] : (double)((const float *)t.data)[k];
            /* Row and column only, never the value: the table is patient data. */
            CL_ENSURE_GOTO(isfinite(v), CL_ERR_FORMAT, "%s, row %zu, column %zu: not a finite number", what, i, j);
            if (j < f) {
                out->x[i * f + j] = v;
                continue;
            }
            CL_ENSURE_GOTO(v == 0.0 || v == 1.0, CL_ERR_FORMAT,
                           "%s, row %zu: the label (last column) must be 0 (benign) or 1 (malignant)", what, i);
            out->y[i] = v == 1.0;
            out->n_positive += out->y[i];
        }
        out->n_rows = i + 1;
    }
    CL_GUARD_GOTO(cl_sha256(bytes, len, out->sha256));
out:
    cl_infer_tensor_free(&t); /* wipes the copy */
    if (rc != CL_OK) {
        if (out->x) cl_memzero(out->x, rows * f * sizeof(double));
        out->n_rows = 0;
        cl_train_dataset_free(out);
    }
    return rc;
}
