/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small multilayer perceptron for the binary classifier, in plain C doubles:
 * standardised inputs, 1-4 hidden layers (ReLU, tanh or logistic sigmoid), one
 * output logit t with p(malignant) = sigmoid(t), trained on the mean log loss
 * plus (l2 / n) / 2 |W|^2 (the logistic model's objective per row) by
 * mini-batch Adam (Kingma, Ba, "Adam: A Method for Stochastic Optimization",
 * ICLR 2015, Algorithm 1, with its defaults beta1 0.9, beta2 0.999, eps 1e-8).
 *
 * Adam rather than SGD with momentum: its per-parameter step is scale-free, so
 * one learning rate suits every layer width and activation the hyperparameters
 * allow, where SGD's would need tuning per shape; the job owner gets a working
 * model from the defaults.
 *
 * Deterministic for a seed: the initial weights (He-uniform for ReLU layers,
 * Glorot-uniform otherwise: Glorot, Bengio 2010; He et al. 2015) and every
 * epoch's batch order come from splitmix64, and the arithmetic runs in one
 * fixed order on one thread.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"
#include "cloister/train.h"

#include "train_internal.h"

#define MLP_BETA1 0.9
#define MLP_BETA2 0.999
#define MLP_EPS 1e-8
/* The generator's stream for the weights and batch order, apart from the split's ("mlp-init"). */
#define MLP_SEED_TWEAK 0x6d6c702d696e6974ULL

static void mlp_units(size_t n_features, const cl_train_params *p, size_t *units, size_t *n_layers)
{
    units[0] = n_features;
    for (size_t l = 0; l < p->n_hidden; l++) units[l + 1] = p->hidden[l];
    units[p->n_hidden + 1] = 1;
    *n_layers = p->n_hidden + 1;
}

size_t train_mlp_param_count(size_t n_features, const cl_train_params *p)
{
    size_t units[CL_TRAIN_MAX_LAYERS + 2], nl, total = 0;
    mlp_units(n_features, p, units, &nl);
    /* At most 1024 x 1024 + 1024 per layer, 5 layers: no overflow. */
    for (size_t l = 0; l < nl; l++) total += units[l] * units[l + 1] + units[l + 1];
    return total;
}

static double mlp_act(cl_train_activation a, double z)
{
    switch (a) {
    case CL_TRAIN_ACTIVATION_TANH: return tanh(z);
    case CL_TRAIN_ACTIVATION_SIGMOID: return train_sigmoid(z);
    case CL_TRAIN_ACTIVATION_RELU: break;
    }
    return z > 0 ? z : 0;
}

/* The activation's derivative from its output a = act(z). */
static double mlp_act_grad(cl_train_activation a, double out)
{
    switch (a) {
    case CL_TRAIN_ACTIVATION_TANH: return 1.0 - out * out;
    case CL_TRAIN_ACTIVATION_SIGMOID: return out * (1.0 - out);
    case CL_TRAIN_ACTIVATION_RELU: break;
    }
    return out > 0 ? 1.0 : 0.0;
}

/* One layer for `rows` rows: out[r, k] = b[k] + sum_i in[r, i] W[i, k] (then the activation unless last). */
static void mlp_layer(const cl_train_mlp *m, size_t l, const double *w, const double *in, double *out, size_t rows)
{
    size_t ni = m->units[l], no = m->units[l + 1];
    const double *b = w + ni * no;
    bool last = l + 1 == m->n_layers;
    for (size_t r = 0; r < rows; r++) {
        double *o = out + r * no;
        for (size_t k = 0; k < no; k++) o[k] = b[k];
        for (size_t i = 0; i < ni; i++) {
            double v = in[r * ni + i];
            const double *wi = w + i * no;
            for (size_t k = 0; k < no; k++) o[k] += v * wi[k];
        }
        if (!last)
            for (size_t k = 0; k < no; k++) o[k] = mlp_act(m->activation, o[k]);
    }
}

static size_t mlp_layer_offset(const cl_train_mlp *m, size_t l)
{
    size_t off = 0;
    for (size_t i = 0; i < l; i++) off += m->units[i] * m->units[i + 1] + m->units[i + 1];
    return off;
}

/* The output logit for one standardised row; scratch holds 2 x CL_TRAIN_MAX_UNITS. */
static double mlp_logit(const cl_train_mlp *m, const double *z, double *scratch)
{
    double *a = scratch, *b = scratch + CL_TRAIN_MAX_UNITS;
    const double *in = z;
    if (m->n_layers == 0) return 0.0; /* never: a model has at least its output layer */
    for (size_t l = 0; l < m->n_layers; l++) {
        mlp_layer(m, l, m->params + mlp_layer_offset(m, l), in, a, 1);
        in = a;
        double *t = a;
        a = b;
        b = t;
    }
    return in[0];
}

double cl_train_mlp_predict(const cl_train_mlp *m, const double *x)
{
    double z[CL_TRAIN_MAX_FEATURES], scratch[2 * CL_TRAIN_MAX_UNITS];
    for (size_t j = 0; j < m->n_features; j++) z[j] = (x[j] - m->mean[j]) / m->scale[j];
    double p = train_sigmoid(mlp_logit(m, z, scratch));
    cl_memzero(z, sizeof(z));
    cl_memzero(scratch, sizeof(scratch));
    return p;
}

void cl_train_mlp_free(cl_train_mlp *m)
{
    if (m->params) cl_memzero(m->params, m->n_params * sizeof(double));
    free(m->params);
    free(m->mean);
    free(m->scale);
    memset(m, 0, sizeof(*m));
}

/* The scratch of one training run. */
typedef struct mlp_work {
    double *z;        /* n x F standardised training rows, in the order of `rows` */
    uint8_t *y;       /* their labels */
    size_t *order;    /* the epoch's row order */
    double *act;      /* the batch's activations, layer after layer */
    double *delta[2]; /* the batch's back-propagated errors */
    double *grad, *m1, *m2;
    size_t act_len, delta_len;
} mlp_work;

static void mlp_work_free(mlp_work *w, size_t n, size_t f, size_t n_params)
{
    /* Everything here derives from patient rows or is the model: wiped. */
    if (w->z) cl_memzero(w->z, n * f * sizeof(double));
    if (w->act) cl_memzero(w->act, w->act_len * sizeof(double));
    for (int i = 0; i < 2; i++)
        if (w->delta[i]) cl_memzero(w->delta[i], w->delta_len * sizeof(double));
    if (w->grad) cl_memzero(w->grad, n_params * sizeof(double));
    if (w->m1) cl_memzero(w->m1, n_params * sizeof(double));
    if (w->m2) cl_memzero(w->m2, n_params * sizeof(double));
    free(w->z);
    free(w->y);
    free(w->order);
    free(w->act);
    free(w->delta[0]);
    free(w->delta[1]);
    free(w->grad);
    free(w->m1);
    free(w->m2);
}

/* Forward and backward over one batch: grad = d(mean log loss)/d(params) over the batch. */
/* One step's gradient over the bs rows w->order[at .. at + bs). */
static void mlp_batch(const cl_train_mlp *m, mlp_work *w, size_t at, size_t bs)
{
    const size_t *batch = w->order + at;
    size_t f = m->n_features, nl = m->n_layers;
    double *a[CL_TRAIN_MAX_LAYERS + 2];
    a[0] = w->act;
    for (size_t l = 0; l < nl; l++) a[l + 1] = a[l] + bs * m->units[l];
    for (size_t r = 0; r < bs; r++) memcpy(a[0] + r * f, w->z + batch[r] * f, f * sizeof(double));
    for (size_t l = 0; l < nl; l++) mlp_layer(m, l, m->params + mlp_layer_offset(m, l), a[l], a[l + 1], bs);
    /* d loss / d logit = sigmoid(t) - y, averaged over the batch. */
    double *d = w->delta[0], *dprev = w->delta[1];
    for (size_t r = 0; r < bs; r++) d[r] = (train_sigmoid(a[nl][r]) - (double)w->y[batch[r]]) / (double)bs;
    memset(w->grad, 0, m->n_params * sizeof(double));
    for (size_t l = nl; l-- > 0;) {
        size_t ni = m->units[l], no = m->units[l + 1], off = mlp_layer_offset(m, l);
        const double *wl = m->params + off;
        double *gw = w->grad + off, *gb = gw + ni * no;
        for (size_t r = 0; r < bs; r++) {
            const double *ar = a[l] + r * ni, *dr = d + r * no;
            for (size_t i = 0; i < ni; i++) {
                double v = ar[i];
                for (size_t k = 0; k < no; k++) gw[i * no + k] += v * dr[k];
            }
            for (size_t k = 0; k < no; k++) gb[k] += dr[k];
        }
        if (l == 0) break;
        /* Error into layer l's inputs, through its activation. */
        for (size_t r = 0; r < bs; r++) {
            const double *dr = d + r * no, *ar = a[l] + r * ni;
            double *pr = dprev + r * ni;
            for (size_t i = 0; i < ni; i++) {
                double s = 0;
                for (size_t k = 0; k < no; k++) s += wl[i * no + k] * dr[k];
                pr[i] = s * mlp_act_grad(m->activation, ar[i]);
            }
        }
        double *t = d;
        d = dprev;
        dprev = t;
    }
}

/* Mean log loss and accuracy (p >= 0.5) over the training rows. */
static void mlp_measure(const cl_train_mlp *m, const mlp_work *w, size_t n, double *loss, double *acc)
{
    double scratch[2 * CL_TRAIN_MAX_UNITS], sum = 0;
    size_t right = 0;
    for (size_t i = 0; i < n; i++) {
        double t = mlp_logit(m, w->z + i * m->n_features, scratch);
        uint8_t yi = w->y[i];
        sum += train_softplus(t) - (double)yi * t;
        right += (t >= 0) == (yi == 1);
    }
    cl_memzero(scratch, sizeof(scratch));
    *loss = sum / (double)n;
    *acc = (double)right / (double)n;
}

cl_status train_mlp_fit(const cl_train_dataset *d, const size_t *rows, size_t n, const cl_train_params *p,
                        train_epoch_fn fn, void *ctx, cl_train_mlp *out)
{
    cl_status rc = CL_OK;
    mlp_work w = {0};
    memset(out, 0, sizeof(*out));
    size_t f = d->n_features;
    CL_ENSURE(n >= 2 && f >= 1 && f <= CL_TRAIN_MAX_FEATURES, CL_ERR_USAGE,
              "training needs at least 2 rows and 1 feature (got %zu, %zu)", n, f);
    out->n_features = f;
    out->activation = p->activation;
    mlp_units(f, p, out->units, &out->n_layers);
    out->n_params = train_mlp_param_count(f, p);
    CL_ENSURE(out->n_layers >= 1 && out->n_params > 0, CL_ERR_INTERNAL, "an MLP of no layers (%zu) or no weights (%zu)",
              out->n_layers, out->n_params);
    size_t bs = p->batch_size, max_units = f;
    for (size_t l = 1; l <= out->n_layers; l++) max_units = out->units[l] > max_units ? out->units[l] : max_units;
    w.act_len = 0;
    for (size_t l = 0; l <= out->n_layers; l++) w.act_len += bs * out->units[l];
    w.delta_len = bs * max_units;
    out->mean = calloc(f, sizeof(double));
    out->scale = calloc(f, sizeof(double));
    out->params = calloc(out->n_params, sizeof(double));
    w.z = calloc(n * f, sizeof(double));
    w.y = calloc(n, 1);
    w.order = calloc(n, sizeof(size_t));
    w.act = calloc(w.act_len, sizeof(double));
    w.delta[0] = calloc(w.delta_len, sizeof(double));
    w.delta[1] = calloc(w.delta_len, sizeof(double));
    w.grad = calloc(out->n_params, sizeof(double));
    w.m1 = calloc(out->n_params, sizeof(double));
    w.m2 = calloc(out->n_params, sizeof(double));
    CL_ENSURE_GOTO(out->mean && out->scale && out->params && w.z && w.y && w.order && w.act && w.delta[0] &&
                       w.delta[1] && w.grad && w.m1 && w.m2,
                   CL_ERR_NOMEM, "out of memory for an MLP of %zu parameters on %zu rows", out->n_params, n);

    train_standardize_stats(d, rows, n, out->mean, out->scale);
    for (size_t i = 0; i < n; i++) {
        w.y[i] = d->y[rows[i]];
        for (size_t j = 0; j < f; j++) w.z[i * f + j] = (d->x[rows[i] * f + j] - out->mean[j]) / out->scale[j];
    }

    uint64_t state = p->opts.seed ^ MLP_SEED_TWEAK;
    for (size_t l = 0; l < out->n_layers; l++) {
        size_t ni = out->units[l], no = out->units[l + 1];
        bool relu = l + 1 < out->n_layers && p->activation == CL_TRAIN_ACTIVATION_RELU;
        double limit = relu ? sqrt(6.0 / (double)ni) : sqrt(6.0 / (double)(ni + no));
        double *wl = out->params + mlp_layer_offset(out, l);
        for (size_t i = 0; i < ni * no; i++) wl[i] = limit * train_rng_sym(&state);
        /* biases start at 0 (calloc) */
    }

    double decay = p->opts.l2 / (double)n;
    uint64_t step = 0;
    for (uint32_t e = 1; e <= p->epochs; e++) {
        for (size_t i = 0; i < n; i++) w.order[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = train_rng_below(&state, i + 1);
            size_t t = w.order[i];
            w.order[i] = w.order[j];
            w.order[j] = t;
        }
        for (size_t at = 0; at < n; at += bs) {
            size_t b = n - at < bs ? n - at : bs;
            mlp_batch(out, &w, at, b);
            step++;
            double c1 = 1.0 - pow(MLP_BETA1, (double)step), c2 = 1.0 - pow(MLP_BETA2, (double)step);
            for (size_t l = 0; l < out->n_layers; l++) {
                size_t off = mlp_layer_offset(out, l), nw = out->units[l] * out->units[l + 1];
                for (size_t k = 0; k < nw; k++) w.grad[off + k] += decay * out->params[off + k];
            }
            for (size_t k = 0; k < out->n_params; k++) {
                double g = w.grad[k];
                w.m1[k] = MLP_BETA1 * w.m1[k] + (1.0 - MLP_BETA1) * g;
                w.m2[k] = MLP_BETA2 * w.m2[k] + (1.0 - MLP_BETA2) * g * g;
                out->params[k] -= p->learning_rate * (w.m1[k] / c1) / (sqrt(w.m2[k] / c2) + MLP_EPS);
            }
        }
        double loss, acc;
        mlp_measure(out, &w, n, &loss, &acc);
        CL_ENSURE_GOTO(isfinite(loss), CL_ERR_STATE,
                       "training diverged at epoch %u (the loss is not finite); lower learning_rate (now %g)", e,
                       p->learning_rate);
        out->loss = loss;
        if (fn) fn(ctx, e, loss, acc);
    }
out:
    mlp_work_free(&w, n, f, out->n_params);
    if (rc != CL_OK) cl_train_mlp_free(out);
    return rc;
}
