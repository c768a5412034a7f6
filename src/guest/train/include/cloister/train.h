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

/* ---- The training entry point: model choice, hyperparameters, fit, measure, export ---- */

/* The MLP's shape bounds, and the work a job may ask for: a hostile or mistaken
 * hyperparameter map must not make the enclave allocate or compute without
 * limit. A network's parameters (weights and biases, all layers) are at most
 * CL_TRAIN_MAX_PARAMS (8 MiB of doubles, 32 MiB with Adam's moments and the
 * gradient); epochs x training rows x parameters at most CL_TRAIN_MAX_WORK
 * (about 3 multiply-adds each for forward, backward and the epoch's measuring
 * pass: about 40 s of one core at the rate docs/training.md measured). */
#define CL_TRAIN_MAX_LAYERS 4
#define CL_TRAIN_MAX_UNITS 1024
#define CL_TRAIN_MAX_PARAMS ((size_t)1 << 20)
#define CL_TRAIN_MAX_WORK 2e10
#define CL_TRAIN_MAX_EPOCHS 10000
#define CL_TRAIN_MAX_LEARNING_RATE 10.0
#define CL_TRAIN_MAX_MAX_ITER 1000

typedef enum cl_train_model_kind { CL_TRAIN_MODEL_LOGREG = 0, CL_TRAIN_MODEL_MLP = 1 } cl_train_model_kind;
typedef enum cl_train_activation {
    CL_TRAIN_ACTIVATION_RELU = 0,
    CL_TRAIN_ACTIVATION_TANH = 1,
    CL_TRAIN_ACTIVATION_SIGMOID = 2,
} cl_train_activation;

/* The MLP's defaults (docs/training.md, "The MLP"): on WDBC they reach the
 * logistic model's held-out accuracy. */
#define CL_TRAIN_HIDDEN_DEFAULT \
    { \
        16, 8 \
    }
#define CL_TRAIN_N_HIDDEN_DEFAULT 2
#define CL_TRAIN_EPOCHS_DEFAULT 100
#define CL_TRAIN_LEARNING_RATE_DEFAULT 0.01
#define CL_TRAIN_BATCH_SIZE_DEFAULT 32

typedef struct cl_train_params { /* every field set by cl_train_params_default */
    cl_train_model_kind model;
    cl_train_options opts; /* seed, test_fraction, l2 (both models), max_iter (logreg) */
    size_t hidden[CL_TRAIN_MAX_LAYERS];
    size_t n_hidden;                /* mlp: 1..CL_TRAIN_MAX_LAYERS layers of 1..CL_TRAIN_MAX_UNITS units */
    cl_train_activation activation; /* mlp: of the hidden layers */
    uint32_t epochs;                /* mlp: passes over the training rows, 1..CL_TRAIN_MAX_EPOCHS */
    double learning_rate;           /* mlp: Adam's step size, (0, CL_TRAIN_MAX_LEARNING_RATE] */
    size_t batch_size;              /* mlp: rows per step, 1..training rows */
} cl_train_params;

void cl_train_params_default(cl_train_params *p);
const char *cl_train_model_name(cl_train_model_kind k);
const char *cl_train_activation_name(cl_train_activation a);
/* "relu" -> CL_TRAIN_ACTIVATION_RELU...; CL_ERR_USAGE naming `what` and the accepted values. */
CL_MUST_USE cl_status cl_train_activation_parse(const char *s, const char *what, cl_train_activation *out);
/* "16,8" -> hidden {16, 8}, n 2; CL_ERR_USAGE naming `what` and the accepted range. */
CL_MUST_USE cl_status cl_train_hidden_parse(const char *s, const char *what, size_t hidden[CL_TRAIN_MAX_LAYERS],
                                            size_t *n);

/* Name of the hyperparameter the trainer (not the library) consumes. */
#define CL_TRAIN_HP_ENCRYPTED_DATA_KEY "encrypted_data_key"

/* SageMaker's HyperParameters (string -> string; CreateTrainingJob's map): model,
 * seed, test_fraction, l2, max_iter (logreg), hidden_layers, activation, epochs,
 * learning_rate, batch_size (mlp). Unknown names, a name given twice, bad values
 * and a hyperparameter of the other model are refused (CL_ERR_USAGE) naming the
 * hyperparameter and the accepted range; `encrypted_data_key` is ignored (the
 * trainer's). out starts from cl_train_params_default. */
CL_MUST_USE cl_status cl_train_params_from_strings(const char *const *names, const char *const *values, size_t n,
                                                   cl_train_params *out);

/* The same, for `cloister train-local`: names are the options' ("learning-rate")
 * and messages name the option ("--learning-rate must be ..."). */
CL_MUST_USE cl_status cl_train_params_from_options(const char *const *names, const char *const *values, size_t n,
                                                   cl_train_params *out);

/* A NumPy .npy file (format 1.0-3.0, numpy/lib/format.py): a 2-D array of '<f8'
 * or '<f4' in C order whose last column is the label, 0 (benign) or 1 (malignant);
 * the other columns are features f0, f1, ... At most CL_TRAIN_MAX_ROWS rows and
 * CL_TRAIN_MAX_FEATURES features, every value finite. An object array ('O': a
 * pickle) is refused: "pickled Python objects are refused: unpickling runs
 * code; ...". `what` names the file in errors; sha256 is of the file's bytes. */
CL_MUST_USE cl_status cl_train_npy_parse(const void *bytes, size_t len, const char *what, cl_train_dataset *out);

/* Progress: one line, aggregate only (counts, losses, metrics; never a row). */
typedef void (*cl_train_progress_fn)(void *arg, const char *line);

/* Split, fit, measure, export and verify (the exported model, run by the
 * inference runtime on every row, gives the trainer's probabilities to 1e-4,
 * or nothing is returned). Appends the ONNX ModelProto to onnx (make it a
 * secret buffer: the model is the owner's IP) and the metrics document to
 * metrics_json (docs/training.md, "metrics.json"): aggregate only, with
 * "final_metrics": [{"MetricName": "train:accuracy", "Value": ...},
 * {"MetricName": "test:accuracy", ...}, {"MetricName": "test:roc_auc", ...}]
 * in the shape of SageMaker's FinalMetricDataList. On failure both buffers are
 * as they were. fn may be NULL. */
CL_MUST_USE cl_status cl_train_fit(const cl_train_dataset *d, const cl_train_params *p, cl_train_progress_fn fn,
                                   void *arg, cl_buf *onnx, cl_buf *metrics_json);

/* The MLP itself: p(positive | x) = sigmoid(out(h_L)), h_0 = (x - mean) / scale,
 * h_l = act(W_l h_{l-1} + b_l). Weights are [in x out] row-major per layer,
 * layer n_hidden the single-logit output. */
typedef struct cl_train_mlp {
    size_t n_features;
    size_t n_layers;                       /* hidden layers + the output layer */
    size_t units[CL_TRAIN_MAX_LAYERS + 2]; /* units[0] = features, units[n_layers] = 1 */
    cl_train_activation activation;
    double *mean, *scale;
    double *params; /* all layers: W_0, b_0, W_1, b_1, ... */
    size_t n_params;
    double loss; /* final mean training log loss */
} cl_train_mlp;

double cl_train_mlp_predict(const cl_train_mlp *m, const double *x);
void cl_train_mlp_free(cl_train_mlp *m);

#ifdef __cplusplus
}
#endif
#endif
