/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The training job (docs/architecture.md, workflow 3): a binary classifier trained in
 * plain C from a CSV table, deterministic for a given seed, exported as a
 * standard ONNX graph the inference runtime (cloister/infer.h) runs.
 *
 * Method (docs/training.md): stratified train/test split, standardisation
 * statistics from the training rows only, L2-regularised logistic regression
 * fitted by Newton's method (iteratively reweighted least squares) with a
 * step-halving line search, held-out accuracy and ROC AUC.
 *
 * The data is a table with a header row: one column named `diagnosis` holding
 * M (malignant, the positive class) or B (benign), every other column a
 * numeric feature -- the layout of data/wdbc/wdbc.csv.
 */
#ifndef CLOISTER_TRAIN_H
#define CLOISTER_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds on the table, so hostile input cannot make the trainer allocate or
 * compute without limit (the Hessian is features^2, one pass is rows x features^2). */
#define CL_TRAIN_MAX_FEATURES 256
#define CL_TRAIN_MAX_ROWS 200000
#define CL_TRAIN_MAX_NAME 64
/* The two classes, negative first: the order of the model's probabilities. */
#define CL_TRAIN_LABEL_NEGATIVE "benign"
#define CL_TRAIN_LABEL_POSITIVE "malignant"

typedef struct cl_train_dataset {
    size_t n_rows;
    size_t n_features;
    char (*feature_names)[CL_TRAIN_MAX_NAME + 1];
    double *x;          /* n_rows x n_features, row-major */
    uint8_t *y;         /* 1 = positive (malignant), 0 = negative (benign) */
    size_t n_positive;  /* rows with y = 1 */
    uint8_t sha256[32]; /* of the CSV bytes, recorded in the model */
} cl_train_dataset;

/* Parses the CSV table. `what` names it in error messages (line and column
 * are added). Feature names must be 1-64 of [A-Za-z0-9_.-] and distinct. */
CL_MUST_USE cl_status cl_train_csv_parse(const void *bytes, size_t len, const char *what, cl_train_dataset *out);
void cl_train_dataset_free(cl_train_dataset *d);

typedef struct cl_train_options {
    uint64_t seed;        /* shuffles the split; same seed, same model */
    double test_fraction; /* share of each class held out, in (0, 1) */
    double l2;            /* penalty (l2/2)*|w|^2 on the weights (not the bias), >= 0 */
    int max_iter;         /* Newton iterations */
} cl_train_options;

#define CL_TRAIN_SEED_DEFAULT 42
#define CL_TRAIN_TEST_FRACTION_DEFAULT 0.2
#define CL_TRAIN_L2_DEFAULT 1.0
#define CL_TRAIN_MAX_ITER_DEFAULT 100

void cl_train_options_default(cl_train_options *o);

/* Row indices of a stratified split, each list ascending. */
typedef struct cl_train_split {
    size_t *train;
    size_t n_train;
    size_t *test;
    size_t n_test;
} cl_train_split;

/* Holds out round(test_fraction * n_c) rows of each class c (at least one,
 * leaving at least one), chosen by a Fisher-Yates shuffle seeded with `seed`. */
CL_MUST_USE cl_status cl_train_split_stratified(const cl_train_dataset *d, double test_fraction, uint64_t seed,
                                                cl_train_split *out);
void cl_train_split_free(cl_train_split *s);

/* A fitted model: p(positive | x) = sigmoid(b + w . ((x - mean) / scale)). */
typedef struct cl_train_logreg {
    size_t n_features;
    double *mean;  /* training-split mean per feature */
    double *scale; /* training-split standard deviation (population), 1 for a constant feature */
    double *w;
    double b;
    int iterations;
    double loss; /* final penalised log loss, per training row */
} cl_train_logreg;

CL_MUST_USE cl_status cl_train_logreg_fit(const cl_train_dataset *d, const size_t *rows, size_t n_rows,
                                          const cl_train_options *o, cl_train_logreg *out);
/* p(positive) for one row of raw (unstandardised) features. */
double cl_train_logreg_predict(const cl_train_logreg *m, const double *x);
void cl_train_logreg_free(cl_train_logreg *m);

typedef struct cl_train_metrics {
    size_t n, n_positive;
    size_t tp, tn, fp, fn; /* at threshold 0.5 */
    double accuracy;
    double auc; /* ROC AUC (Mann-Whitney, ties counted half) */
} cl_train_metrics;

/* Fails if either class is absent (AUC is undefined). */
CL_MUST_USE cl_status cl_train_metrics_compute(const double *p, const uint8_t *y, size_t n, cl_train_metrics *out);

typedef struct cl_train_report {
    cl_train_options opts;
    cl_train_metrics train;
    cl_train_metrics test;
} cl_train_report;

/* Split, fit on the training rows, measure both splits. */
CL_MUST_USE cl_status cl_train_run(const cl_train_dataset *d, const cl_train_options *o, cl_train_logreg *model,
                                   cl_train_report *report);

/* Metadata keys the exported model carries; the classifier I/O of the
 * inference runtime (cl_infer_classifier_*) reads the first three. */
#define CL_TRAIN_META_LABELS "cloister.classifier.labels"
#define CL_TRAIN_META_FEATURES "cloister.classifier.features"
#define CL_TRAIN_META_INPUT "cloister.classifier.input"
#define CL_TRAIN_META_DATA_SHA256 "cloister.train.data_sha256"
#define CL_TRAIN_META_METRICS "cloister.train.metrics"
#define CL_TRAIN_META_METHOD "cloister.train.method"

/* Appends the model as a serialised ONNX ModelProto (IR 8, opset 13):
 * features float[N, F] -> Sub(mean) -> Div(scale) -> Gemm(W [F, 2], B [2])
 * -> Softmax(axis 1) -> probabilities float[N, 2] = [benign, malignant],
 * where column 0 of W and B is zero, so softmax([0, t]) = [1 - sigmoid(t), sigmoid(t)]. */
CL_MUST_USE cl_status cl_train_onnx_export(const cl_train_dataset *d, const cl_train_logreg *m,
                                           const cl_train_report *r, cl_buf *out);

/* Loads the exported bytes with the inference runtime, runs every row of the
 * data through it and sets *max_diff to the largest |p_onnx - p_trainer| of
 * the malignant probability: the model that leaves is the model measured. */
CL_MUST_USE cl_status cl_train_onnx_verify(const void *onnx, size_t len, const cl_train_dataset *d,
                                           const cl_train_logreg *m, double *max_diff);

#ifdef __cplusplus
}
#endif
#endif
