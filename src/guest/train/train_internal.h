/* SPDX-License-Identifier: Apache-2.0 */
/* Shared inside guest/train: the seeded generator, standardisation, the ONNX writer and its check. */
#ifndef CLOISTER_TRAIN_INTERNAL_H
#define CLOISTER_TRAIN_INTERNAL_H

#include "cloister/train.h"

/* splitmix64 (Steele, Lea, Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014): the split, the MLP's initial weights and its batch
 * order must be reproducible from the seed on every platform, which a CSPRNG is
 * not meant to be. Nothing secret depends on it. */
static inline uint64_t train_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias (rejection of the short last interval). */
static inline size_t train_rng_below(uint64_t *s, size_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do v = train_rng_next(s);
    while (v >= limit);
    return (size_t)(v % n);
}

/* Uniform in [-1, 1): the top 53 bits as a double in [0, 1), exactly. */
static inline double train_rng_sym(uint64_t *s) { return 2.0 * (double)(train_rng_next(s) >> 11) * 0x1p-53 - 1.0; }

double train_sigmoid(double z);
/* log(1 + e^z) without overflow for large |z|. */
double train_softplus(double z);

/* Mean and population standard deviation per feature over `rows` (a constant
 * feature gets scale 1, as scikit-learn's StandardScaler). */
void train_standardize_stats(const cl_train_dataset *d, const size_t *rows, size_t n, double *mean, double *scale);

/* One dense layer of the exported graph: W [in, out] row-major, b [out]. The
 * last layer has out = 1 (the malignant logit) and is written as [in, 2] with
 * a zero benign column, so Softmax gives [1 - sigmoid(t), sigmoid(t)]. */
typedef struct train_layer {
    const double *w, *b;
    size_t in, out;
} train_layer;

typedef struct train_graph {
    const char *name;    /* the GraphProto's */
    const char *method;  /* CL_TRAIN_META_METHOD */
    const char *doc;     /* the ModelProto's doc_string */
    const char *metrics; /* CL_TRAIN_META_METRICS, JSON */
    const double *mean, *scale;
    const train_layer *layers;
    size_t n_layers;
    cl_train_activation activation; /* between hidden layers */
} train_graph;

CL_MUST_USE cl_status train_onnx_write(const cl_train_dataset *d, const train_graph *g, cl_buf *out);

typedef double (*train_predict_fn)(const void *model, const double *x);
CL_MUST_USE cl_status train_onnx_verify(const void *onnx, size_t len, const cl_train_dataset *d, train_predict_fn fn,
                                        const void *model, double *max_diff);

/* The malignant probability of every listed row, and its metrics. */
CL_MUST_USE cl_status train_measure(const cl_train_dataset *d, train_predict_fn fn, const void *model,
                                    const size_t *rows, size_t n, cl_train_metrics *out);

/* The MLP's number of weights and biases for d's features and p's layers. */
size_t train_mlp_param_count(size_t n_features, const cl_train_params *p);

/* After each epoch: the mean training log loss and accuracy. */
typedef void (*train_epoch_fn)(void *ctx, uint32_t epoch, double loss, double accuracy);

/* Mini-batch Adam on the listed rows (docs/training.md, "The MLP"); p is
 * already validated (cl_train_fit). */
CL_MUST_USE cl_status train_mlp_fit(const cl_train_dataset *d, const size_t *rows, size_t n, const cl_train_params *p,
                                    train_epoch_fn fn, void *ctx, cl_train_mlp *out);

#endif
