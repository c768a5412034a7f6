/* SPDX-License-Identifier: Apache-2.0 */
/* L2-regularised logistic regression by Newton's method, and its metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/train.h"

#include "train_internal.h"

void cl_train_options_default(cl_train_options *o)
{
    o->seed = CL_TRAIN_SEED_DEFAULT;
    o->test_fraction = CL_TRAIN_TEST_FRACTION_DEFAULT;
    o->l2 = CL_TRAIN_L2_DEFAULT;
    o->max_iter = CL_TRAIN_MAX_ITER_DEFAULT;
}

double train_sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)); }

double train_softplus(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* Standardisation from the training rows only: statistics that saw the test
 * rows would leak them into the model and flatter the held-out figures. */
void train_standardize_stats(const cl_train_dataset *d, const size_t *rows, size_t n, double *mean, double *scale)
{
    size_t p = d->n_features;
    for (size_t j = 0; j < p; j++) {
        double m = 0, v = 0;
        for (size_t i = 0; i < n; i++) m += d->x[rows[i] * p + j];
        m /= (double)n;
        for (size_t i = 0; i < n; i++) {
            double t = d->x[rows[i] * p + j] - m;
            v += t * t;
        }
        double sd = sqrt(v / (double)n);
        mean[j] = m;
        /* A constant feature carries nothing; dividing by 1 keeps it at 0 (as scikit-learn's StandardScaler). */
        scale[j] = sd > 1e-12 * (fabs(m) + 1.0) ? sd : 1.0;
    }
}

/* Cholesky factorisation in place (lower triangle) and solve of H x = g.
 * Fails when H is not positive definite, which with l2 > 0 cannot happen
 * short of non-finite input. */
static CL_MUST_USE cl_status train_solve(double *h, const double *g, double *x, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        double s = h[j * n + j], diag = s;
        for (size_t k = 0; k < j; k++) s -= h[j * n + k] * h[j * n + k];
        /* A pivot that cancelled to rounding noise of its diagonal means a
         * direction of (numerically) zero curvature: no unique optimum. */
        CL_ENSURE(s > 1e-10 * diag && s > 0 && isfinite(s), CL_ERR_STATE,
                  "the Hessian is singular (pivot %zu is %g): without regularisation the classes are separable or a "
                  "feature is redundant; train with --l2 greater than 0",
                  j, s);
        double l = sqrt(s);
        h[j * n + j] = l;
        for (size_t i = j + 1; i < n; i++) {
            double t = h[i * n + j];
            for (size_t k = 0; k < j; k++) t -= h[i * n + k] * h[j * n + k];
            h[i * n + j] = t / l;
        }
    }
    for (size_t i = 0; i < n; i++) { /* L y = g */
        double t = g[i];
        for (size_t k = 0; k < i; k++) t -= h[i * n + k] * x[k];
        x[i] = t / h[i * n + i];
    }
    for (size_t i = n; i-- > 0;) { /* L^T x = y */
        double t = x[i];
        for (size_t k = i + 1; k < n; k++) t -= h[k * n + i] * x[k];
        x[i] = t / h[i * n + i];
    }
    return CL_OK;
}

/* Penalised loss sum_i [softplus(z_i) - y_i z_i] + l2/2 |w|^2, theta = (b, w). */
static double train_loss(const double *z, size_t n, size_t p, const uint8_t *y, const double *theta, double l2)
{
    double loss = 0;
    for (size_t i = 0; i < n; i++) {
        double s = theta[0];
        for (size_t j = 0; j < p; j++) s += theta[1 + j] * z[i * p + j];
        loss += train_softplus(s) - (double)y[i] * s;
    }
    for (size_t j = 0; j < p; j++) loss += 0.5 * l2 * theta[1 + j] * theta[1 + j];
    return loss;
}

cl_status cl_train_logreg_fit(const cl_train_dataset *d, const size_t *rows, size_t n, const cl_train_options *o,
                              cl_train_logreg *out)
{
    cl_status rc = CL_OK;
    memset(out, 0, sizeof(*out));
    size_t p = d->n_features, np = p + 1;
    CL_ENSURE(n >= 2 && p >= 1, CL_ERR_USAGE, "training needs at least 2 rows and 1 feature (got %zu, %zu)", n, p);
    CL_ENSURE(o->l2 >= 0 && isfinite(o->l2), CL_ERR_USAGE, "the L2 penalty %g must be finite and >= 0", o->l2);
    CL_ENSURE(o->max_iter >= 1, CL_ERR_USAGE, "max_iter %d must be at least 1", o->max_iter);
    double *z = calloc(n * p, sizeof(double));
    uint8_t *y = calloc(n, 1);
    double *theta = calloc(np, sizeof(double)), *trial = calloc(np, sizeof(double));
    double *g = calloc(np, sizeof(double)), *step = calloc(np, sizeof(double));
    double *h = calloc(np * np, sizeof(double));
    out->n_features = p;
    out->mean = calloc(p, sizeof(double));
    out->scale = calloc(p, sizeof(double));
    out->w = calloc(p, sizeof(double));
    CL_ENSURE_GOTO(z && y && theta && trial && g && step && h && out->mean && out->scale && out->w, CL_ERR_NOMEM,
                   "out of memory training on %zu rows x %zu features", n, p);

    train_standardize_stats(d, rows, n, out->mean, out->scale);
    for (size_t i = 0; i < n; i++) {
        y[i] = d->y[rows[i]];
        for (size_t j = 0; j < p; j++) z[i * p + j] = (d->x[rows[i] * p + j] - out->mean[j]) / out->scale[j];
    }

    double loss = train_loss(z, n, p, y, theta, o->l2);
    int it = 0;
    bool converged = false;
    for (it = 0; it < o->max_iter; it++) {
        memset(g, 0, np * sizeof(double));
        memset(h, 0, np * np * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            const double *zi = z + i * p;
            double s = theta[0];
            for (size_t j = 0; j < p; j++) s += theta[1 + j] * zi[j];
            double pr = train_sigmoid(s), r = pr - (double)y[i], wgt = pr * (1.0 - pr);
            g[0] += r;
            h[0] += wgt;
            for (size_t j = 0; j < p; j++) {
                g[1 + j] += r * zi[j];
                h[(1 + j) * np] += wgt * zi[j];
                for (size_t k = 0; k <= j; k++) h[(1 + j) * np + 1 + k] += wgt * zi[j] * zi[k];
            }
        }
        for (size_t j = 0; j < p; j++) {
            g[1 + j] += o->l2 * theta[1 + j];
            h[(1 + j) * np + 1 + j] += o->l2;
        }
        double gmax = 0;
        for (size_t j = 0; j < np; j++) gmax = fmax(gmax, fabs(g[j]));
        /* The gradient is a sum over rows: scale the tolerance with them. */
        if (gmax <= 1e-9 * (double)n) {
            converged = true;
            break;
        }
        CL_GUARD_GOTO(train_solve(h, g, step, np));
        /* Damped Newton: halve the step until the loss falls enough (Armijo),
         * so a far-off start cannot overshoot. */
        double slope = 0;
        for (size_t j = 0; j < np; j++) slope += g[j] * step[j];
        double t = 1.0, next = loss;
        for (int k = 0; k < 40; k++) {
            for (size_t j = 0; j < np; j++) trial[j] = theta[j] - t * step[j];
            next = train_loss(z, n, p, y, trial, o->l2);
            if (next <= loss - 1e-4 * t * slope) break;
            t *= 0.5;
        }
        if (!(next < loss)) { /* no decrease left to find: at the optimum to rounding */
            converged = true;
            break;
        }
        memcpy(theta, trial, np * sizeof(double));
        double prev = loss;
        loss = next;
        if (prev - loss <= 1e-14 * fmax(1.0, loss)) {
            converged = true;
            it++;
            break;
        }
    }
    if (!converged)
        CL_LOG_WARN("Newton's method did not converge in %d iterations (loss %g); the model may be poor -- raise the "
                    "L2 penalty",
                    o->max_iter, loss / (double)n);
    out->b = theta[0];
    memcpy(out->w, theta + 1, p * sizeof(double));
    out->iterations = it;
    out->loss = loss / (double)n;
out:
    if (z) cl_memzero(z, n * p * sizeof(double)); /* standardised patient rows */
    free(z);
    free(y);
    free(theta);
    free(trial);
    free(g);
    free(step);
    free(h);
    if (rc != CL_OK) cl_train_logreg_free(out);
    return rc;
}

double cl_train_logreg_predict(const cl_train_logreg *m, const double *x)
{
    double s = m->b;
    for (size_t j = 0; j < m->n_features; j++) s += m->w[j] * (x[j] - m->mean[j]) / m->scale[j];
    return train_sigmoid(s);
}

void cl_train_logreg_free(cl_train_logreg *m)
{
    free(m->mean);
    free(m->scale);
    free(m->w);
    memset(m, 0, sizeof(*m));
}

typedef struct train_scored {
    double p;
    uint8_t y;
} train_scored;

static int train_cmp_scored(const void *a, const void *b)
{
    double x = ((const train_scored *)a)->p, y = ((const train_scored *)b)->p;
    return x < y ? -1 : x > y;
}

cl_status cl_train_metrics_compute(const double *p, const uint8_t *y, size_t n, cl_train_metrics *out)
{
    memset(out, 0, sizeof(*out));
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        bool pred = p[i] >= 0.5;
        out->n_positive += y[i];
        if (pred && y[i]) out->tp++;
        if (!pred && !y[i]) out->tn++;
        if (pred && !y[i]) out->fp++;
        if (!pred && y[i]) out->fn++;
    }
    size_t n_neg = n - out->n_positive;
    CL_ENSURE(out->n_positive > 0 && n_neg > 0, CL_ERR_STATE,
              "ROC AUC needs both classes; the %zu rows have %zu positive", n, out->n_positive);
    out->accuracy = (double)(out->tp + out->tn) / (double)n;
    /* AUC = P(score of a random positive > score of a random negative), by the
     * Mann-Whitney U statistic on ranks (tied scores share their mean rank). */
    train_scored *s = calloc(n, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        s[i].p = p[i];
        s[i].y = y[i];
    }
    qsort(s, n, sizeof(*s), train_cmp_scored);
    double rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j].p == s[i].p) j++;
        double mid = ((double)i + 1.0 + (double)j) / 2.0; /* mean of ranks i+1 .. j */
        for (size_t k = i; k < j; k++)
            if (s[k].y) rank_sum += mid;
        i = j;
    }
    double np = (double)out->n_positive;
    out->auc = (rank_sum - np * (np + 1.0) / 2.0) / (np * (double)n_neg);
    free(s);
    return CL_OK;
}

static double train_logreg_predict_fn(const void *m, const double *x) { return cl_train_logreg_predict(m, x); }

cl_status train_measure(const cl_train_dataset *d, train_predict_fn fn, const void *model, const size_t *rows, size_t n,
                        cl_train_metrics *out)
{
    double *p = calloc(n, sizeof(double));
    uint8_t *y = calloc(n, 1);
    cl_status rc = CL_OK;
    CL_ENSURE_GOTO(p != NULL && y != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        p[i] = fn(model, d->x + rows[i] * d->n_features);
        y[i] = d->y[rows[i]];
    }
    CL_GUARD_GOTO(cl_train_metrics_compute(p, y, n, out));
out:
    free(p);
    free(y);
    return rc;
}

cl_status cl_train_run(const cl_train_dataset *d, const cl_train_options *o, cl_train_logreg *model,
                       cl_train_report *report)
{
    cl_status rc = CL_OK;
    cl_train_split s;
    memset(model, 0, sizeof(*model));
    memset(report, 0, sizeof(*report));
    report->opts = *o;
    CL_GUARD(cl_train_split_stratified(d, o->test_fraction, o->seed, &s));
    CL_GUARD_GOTO(cl_train_logreg_fit(d, s.train, s.n_train, o, model));
    CL_GUARD_GOTO(train_measure(d, train_logreg_predict_fn, model, s.train, s.n_train, &report->train));
    CL_GUARD_GOTO(train_measure(d, train_logreg_predict_fn, model, s.test, s.n_test, &report->test));
out:
    cl_train_split_free(&s);
    if (rc != CL_OK) cl_train_logreg_free(model);
    return rc;
}
