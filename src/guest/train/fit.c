/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The training entry point: hyperparameters from SageMaker's string map
 * (CreateTrainingJob's HyperParameters: "string to string", at most 100
 * entries, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTrainingJob.html),
 * then split, fit, measure, export, verify, and the metrics document.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"
#include "cloister/train.h"

#include "train_internal.h"

/* The runtime computes in float32, the trainer in double: they agree to
 * rounding (about 1e-7); anything near this bound is a bug in the export. */
#define FIT_VERIFY_TOLERANCE 1e-4
/* At most this many progress lines (and "epochs" entries) per run. */
#define FIT_MAX_EPOCH_LINES 100
#define FIT_MAX_VALUE 64

void cl_train_params_default(cl_train_params *p)
{
    static const size_t hidden[] = CL_TRAIN_HIDDEN_DEFAULT;
    memset(p, 0, sizeof(*p));
    p->model = CL_TRAIN_MODEL_LOGREG;
    cl_train_options_default(&p->opts);
    p->n_hidden = CL_TRAIN_N_HIDDEN_DEFAULT;
    for (size_t i = 0; i < CL_TRAIN_N_HIDDEN_DEFAULT; i++) p->hidden[i] = hidden[i];
    p->activation = CL_TRAIN_ACTIVATION_RELU;
    p->epochs = CL_TRAIN_EPOCHS_DEFAULT;
    p->learning_rate = CL_TRAIN_LEARNING_RATE_DEFAULT;
    p->batch_size = CL_TRAIN_BATCH_SIZE_DEFAULT;
}

const char *cl_train_model_name(cl_train_model_kind k) { return k == CL_TRAIN_MODEL_MLP ? "mlp" : "logreg"; }

const char *cl_train_activation_name(cl_train_activation a)
{
    switch (a) {
    case CL_TRAIN_ACTIVATION_TANH: return "tanh";
    case CL_TRAIN_ACTIVATION_SIGMOID: return "sigmoid";
    case CL_TRAIN_ACTIVATION_RELU: break;
    }
    return "relu";
}

static const char *fit_show(const char *s, char *buf, size_t n)
{
    return cl_bytes_show((const uint8_t *)s, strlen(s), buf, n);
}

cl_status cl_train_activation_parse(const char *s, const char *what, cl_train_activation *out)
{
    char shown[48];
    static const cl_train_activation all[] = {CL_TRAIN_ACTIVATION_RELU, CL_TRAIN_ACTIVATION_TANH,
                                              CL_TRAIN_ACTIVATION_SIGMOID};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(s, cl_train_activation_name(all[i])) == 0) {
            *out = all[i];
            return CL_OK;
        }
    CL_FAIL(CL_ERR_USAGE, "%s must be relu, tanh or sigmoid, not '%s'", what, fit_show(s, shown, sizeof(shown)));
}

cl_status cl_train_hidden_parse(const char *s, const char *what, size_t hidden[CL_TRAIN_MAX_LAYERS], size_t *n)
{
    char shown[48];
    cl_reader r = cl_reader_make(s, strlen(s));
    size_t k = 0;
    for (;;) {
        uint64_t v = 0;
        bool ok = k < CL_TRAIN_MAX_LAYERS && cl_reader_decimal(&r, CL_TRAIN_MAX_UNITS, &v) == CL_OK && v >= 1;
        CL_ENSURE(ok, CL_ERR_USAGE,
                  "%s must be 1 to %d comma-separated layer widths, each a whole number from 1 to %d (e.g. 16,8), "
                  "not '%s'",
                  what, CL_TRAIN_MAX_LAYERS, CL_TRAIN_MAX_UNITS, fit_show(s, shown, sizeof(shown)));
        hidden[k++] = (size_t)v;
        if (cl_reader_remaining(&r) == 0) break;
        CL_ENSURE(cl_reader_next_is(&r, ',') && cl_reader_skip(&r, 1) == CL_OK && cl_reader_remaining(&r) > 0,
                  CL_ERR_USAGE,
                  "%s must be 1 to %d comma-separated layer widths, each a whole number from 1 to %d (e.g. 16,8), "
                  "not '%s'",
                  what, CL_TRAIN_MAX_LAYERS, CL_TRAIN_MAX_UNITS, fit_show(s, shown, sizeof(shown)));
    }
    *n = k;
    return CL_OK;
}

/* A plain decimal number (digits, '.', exponent): strtod alone would also take
 * hex floats, "inf" and "nan". */
static CL_MUST_USE cl_status fit_double(const char *s, const char *what, double lo, double hi, bool open_lo,
                                        bool open_hi, const char *range, double *out)
{
    char shown[48], *end = NULL;
    bool ok = s[0] != '\0' && strlen(s) <= FIT_MAX_VALUE && strspn(s, "0123456789.eE+-") == strlen(s);
    double v = ok ? strtod(s, &end) : NAN;
    ok = ok && end != NULL && *end == '\0' && isfinite(v) && (open_lo ? v > lo : v >= lo) &&
         (open_hi ? v < hi : v <= hi);
    CL_ENSURE(ok, CL_ERR_USAGE, "%s must be a number %s, not '%s'", what, range, fit_show(s, shown, sizeof(shown)));
    *out = v;
    return CL_OK;
}

enum {
    HP_MODEL,
    HP_SEED,
    HP_TEST_FRACTION,
    HP_L2,
    HP_MAX_ITER,
    HP_HIDDEN_LAYERS,
    HP_ACTIVATION,
    HP_EPOCHS,
    HP_LEARNING_RATE,
    HP_BATCH_SIZE,
    HP_COUNT
};
static const char *const fit_hp_names[HP_COUNT] = {"model",         "seed",          "test_fraction", "l2",
                                                   "max_iter",      "hidden_layers", "activation",    "epochs",
                                                   "learning_rate", "batch_size"};

/* `hp` as the caller spells it: "hyperparameter 'learning_rate'" or "--learning-rate". */
static void fit_hp_display(int hp, bool cli, char *buf, size_t n)
{
    if (!cli) {
        (void)snprintf(buf, n, "hyperparameter '%s'", fit_hp_names[hp]);
        return;
    }
    int w = snprintf(buf, n, "--%s", fit_hp_names[hp]);
    for (int i = 2; i < w && (size_t)i < n; i++)
        if (buf[i] == '_') buf[i] = '-';
}

static CL_MUST_USE cl_status fit_hp_set(int hp, const char *v, const char *what, cl_train_params *o)
{
    uint64_t u = 0;
    switch (hp) {
    case HP_MODEL: {
        char shown[48];
        if (strcmp(v, "logreg") == 0)
            o->model = CL_TRAIN_MODEL_LOGREG;
        else if (strcmp(v, "mlp") == 0)
            o->model = CL_TRAIN_MODEL_MLP;
        else
            CL_FAIL(CL_ERR_USAGE, "%s must be logreg or mlp, not '%s'", what, fit_show(v, shown, sizeof(shown)));
        return CL_OK;
    }
    case HP_SEED:
        CL_GUARD(cl_parse_uint(v, 0, UINT64_MAX, what, &u));
        o->opts.seed = u;
        return CL_OK;
    case HP_TEST_FRACTION:
        return fit_double(v, what, 0.0, 1.0, true, true, "between 0 and 1 (exclusive)", &o->opts.test_fraction);
    case HP_L2: return fit_double(v, what, 0.0, 1e12, false, false, "from 0 to 1e12", &o->opts.l2);
    case HP_MAX_ITER:
        CL_GUARD(cl_parse_uint(v, 1, CL_TRAIN_MAX_MAX_ITER, what, &u));
        o->opts.max_iter = (int)u;
        return CL_OK;
    case HP_HIDDEN_LAYERS: return cl_train_hidden_parse(v, what, o->hidden, &o->n_hidden);
    case HP_ACTIVATION: return cl_train_activation_parse(v, what, &o->activation);
    case HP_EPOCHS:
        CL_GUARD(cl_parse_uint(v, 1, CL_TRAIN_MAX_EPOCHS, what, &u));
        o->epochs = (uint32_t)u;
        return CL_OK;
    case HP_LEARNING_RATE:
        return fit_double(v, what, 0.0, CL_TRAIN_MAX_LEARNING_RATE, true, false, "greater than 0 and at most 10",
                          &o->learning_rate);
    case HP_BATCH_SIZE:
        CL_GUARD(cl_parse_uint(v, 1, CL_TRAIN_MAX_ROWS, what, &u));
        o->batch_size = (size_t)u;
        return CL_OK;
    default: break;
    }
    CL_FAIL(CL_ERR_INTERNAL, "hyperparameter %d has no parser", hp);
}

static CL_MUST_USE cl_status fit_params_parse(const char *const *names, const char *const *values, size_t n, bool cli,
                                              cl_train_params *out)
{
    cl_train_params p;
    cl_train_params_default(&p);
    bool seen[HP_COUNT] = {false};
    char what[48], shown[48];
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i] ? names[i] : "";
        if (!cli && strcmp(name, CL_TRAIN_HP_ENCRYPTED_DATA_KEY) == 0) continue; /* the trainer's */
        int hp = -1;
        for (int k = 0; k < HP_COUNT; k++) {
            char opt[32];
            fit_hp_display(k, true, opt, sizeof(opt));
            if (strcmp(name, cli ? opt + 2 : fit_hp_names[k]) == 0) hp = k;
        }
        CL_ENSURE(
            hp >= 0, CL_ERR_USAGE,
            "unknown hyperparameter '%s'; accepted: model, seed, test_fraction, l2, max_iter (logreg), "
            "hidden_layers, activation, epochs, learning_rate, batch_size (mlp), and " CL_TRAIN_HP_ENCRYPTED_DATA_KEY,
            fit_show(name, shown, sizeof(shown)));
        fit_hp_display(hp, cli, what, sizeof(what));
        CL_ENSURE(!seen[hp], CL_ERR_USAGE, "%s is given twice", what);
        seen[hp] = true;
        CL_ENSURE(values[i] != NULL, CL_ERR_USAGE, "%s has no value", what);
        CL_GUARD(fit_hp_set(hp, values[i], what, &p));
    }
    /* A setting of the other model is a mistake the owner should hear of, not a silent no-op. */
    for (int k = 0; k < HP_COUNT; k++) {
        if (!seen[k]) continue;
        bool mlp_only = k >= HP_HIDDEN_LAYERS, logreg_only = k == HP_MAX_ITER;
        fit_hp_display(k, cli, what, sizeof(what));
        CL_ENSURE(!(mlp_only && p.model != CL_TRAIN_MODEL_MLP), CL_ERR_USAGE,
                  "%s applies to model mlp only; remove it or set model to mlp", what);
        CL_ENSURE(!(logreg_only && p.model != CL_TRAIN_MODEL_LOGREG), CL_ERR_USAGE,
                  "%s applies to model logreg only (the mlp trains for epochs); remove it", what);
    }
    *out = p;
    return CL_OK;
}

cl_status cl_train_params_from_strings(const char *const *names, const char *const *values, size_t n,
                                       cl_train_params *out)
{
    return fit_params_parse(names, values, n, false, out);
}

cl_status cl_train_params_from_options(const char *const *names, const char *const *values, size_t n,
                                       cl_train_params *out)
{
    return fit_params_parse(names, values, n, true, out);
}

/* The checks that need the data: the network's size and the work it asks for. */
static CL_MUST_USE cl_status fit_params_check(const cl_train_params *p, size_t n_features, size_t n_train)
{
    CL_ENSURE(p->model == CL_TRAIN_MODEL_LOGREG || p->model == CL_TRAIN_MODEL_MLP, CL_ERR_USAGE,
              "model must be logreg or mlp");
    CL_ENSURE(p->opts.test_fraction > 0 && p->opts.test_fraction < 1, CL_ERR_USAGE,
              "test_fraction %g is not between 0 and 1", p->opts.test_fraction);
    CL_ENSURE(p->opts.l2 >= 0 && p->opts.l2 <= 1e12, CL_ERR_USAGE, "l2 %g is not from 0 to 1e12", p->opts.l2);
    if (p->model == CL_TRAIN_MODEL_LOGREG) {
        CL_ENSURE(p->opts.max_iter >= 1 && p->opts.max_iter <= CL_TRAIN_MAX_MAX_ITER, CL_ERR_USAGE,
                  "max_iter %d is not from 1 to %d", p->opts.max_iter, CL_TRAIN_MAX_MAX_ITER);
        return CL_OK;
    }
    CL_ENSURE(p->n_hidden >= 1 && p->n_hidden <= CL_TRAIN_MAX_LAYERS, CL_ERR_USAGE,
              "hidden_layers has %zu layers; 1 to %d are accepted", p->n_hidden, CL_TRAIN_MAX_LAYERS);
    for (size_t l = 0; l < p->n_hidden; l++)
        CL_ENSURE(p->hidden[l] >= 1 && p->hidden[l] <= CL_TRAIN_MAX_UNITS, CL_ERR_USAGE,
                  "hidden_layers: layer %zu has %zu units; 1 to %d are accepted", l + 1, p->hidden[l],
                  CL_TRAIN_MAX_UNITS);
    CL_ENSURE(p->activation <= CL_TRAIN_ACTIVATION_SIGMOID, CL_ERR_USAGE, "activation must be relu, tanh or sigmoid");
    CL_ENSURE(p->epochs >= 1 && p->epochs <= CL_TRAIN_MAX_EPOCHS, CL_ERR_USAGE, "epochs %u is not from 1 to %d",
              p->epochs, CL_TRAIN_MAX_EPOCHS);
    CL_ENSURE(p->learning_rate > 0 && p->learning_rate <= CL_TRAIN_MAX_LEARNING_RATE, CL_ERR_USAGE,
              "learning_rate %g is not greater than 0 and at most %g", p->learning_rate, CL_TRAIN_MAX_LEARNING_RATE);
    CL_ENSURE(p->batch_size >= 1 && p->batch_size <= n_train, CL_ERR_USAGE,
              "batch_size %zu must be from 1 to the %zu training rows", p->batch_size, n_train);
    size_t params = train_mlp_param_count(n_features, p);
    CL_ENSURE(params <= CL_TRAIN_MAX_PARAMS, CL_ERR_LIMIT,
              "hidden_layers gives a network of %zu parameters for %zu features; at most %zu are accepted: use "
              "fewer or narrower layers",
              params, n_features, CL_TRAIN_MAX_PARAMS);
    double work = (double)p->epochs * (double)n_train * (double)params;
    CL_ENSURE(work <= CL_TRAIN_MAX_WORK, CL_ERR_LIMIT,
              "epochs x training rows x parameters is %u x %zu x %zu = %.3g, over the ceiling of %.3g: lower epochs "
              "or use a smaller network",
              p->epochs, n_train, params, work, CL_TRAIN_MAX_WORK);
    return CL_OK;
}

typedef struct fit_progress {
    cl_train_progress_fn fn;
    void *arg;
    uint32_t epochs, stride;
    json_t *log; /* the reported epochs */
    bool nomem;
} fit_progress;

static void fit_say(const fit_progress *pr, const char *fmt, ...) CL_PRINTF(2, 3);
static void fit_say(const fit_progress *pr, const char *fmt, ...)
{
    if (pr->fn == NULL) return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    pr->fn(pr->arg, line);
}

static void fit_epoch(void *ctx, uint32_t e, double loss, double acc)
{
    fit_progress *pr = ctx;
    if (e != 1 && e != pr->epochs && e % pr->stride != 0) return;
    fit_say(pr, "epoch %u/%u loss %.4f train accuracy %.4f", e, pr->epochs, loss, acc);
    json_t *j = json_pack("{s:I, s:f, s:f}", "epoch", (json_int_t)e, "loss", loss, "train_accuracy", acc);
    if (j == NULL || json_array_append_new(pr->log, j) != 0) pr->nomem = true;
}

static json_t *fit_metrics_obj(const cl_train_metrics *m, bool with_loss, double loss)
{
    json_t *j =
        json_pack("{s:f, s:f, s:{s:I, s:I, s:I, s:I}}", "accuracy", m->accuracy, "roc_auc", m->auc, "confusion", "tp",
                  (json_int_t)m->tp, "tn", (json_int_t)m->tn, "fp", (json_int_t)m->fp, "fn", (json_int_t)m->fn);
    if (j != NULL && with_loss && json_object_set_new(j, "loss", json_real(loss)) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* JSON integers are signed 64-bit (jansson's json_int_t): a seed above 2^63-1 is written as its decimal string. */
static json_t *fit_seed(uint64_t seed)
{
    if (seed <= INT64_MAX) return json_integer((json_int_t)seed);
    char s[24];
    (void)snprintf(s, sizeof(s), "%" PRIu64, seed);
    return json_string(s);
}

static json_t *fit_hyperparameters(const cl_train_params *p)
{
    if (p->model == CL_TRAIN_MODEL_LOGREG)
        return json_pack("{s:s, s:o, s:f, s:f, s:i}", "model", "logreg", "seed", fit_seed(p->opts.seed),
                         "test_fraction", p->opts.test_fraction, "l2", p->opts.l2, "max_iter", p->opts.max_iter);
    char hidden[CL_TRAIN_MAX_LAYERS * 6];
    size_t at = 0;
    for (size_t l = 0; l < p->n_hidden; l++)
        at += (size_t)snprintf(hidden + at, sizeof(hidden) - at, "%s%zu", l ? "," : "", p->hidden[l]);
    return json_pack("{s:s, s:o, s:f, s:f, s:s, s:s, s:I, s:f, s:I}", "model", "mlp", "seed", fit_seed(p->opts.seed),
                     "test_fraction", p->opts.test_fraction, "l2", p->opts.l2, "hidden_layers", hidden, "activation",
                     cl_train_activation_name(p->activation), "epochs", (json_int_t)p->epochs, "learning_rate",
                     p->learning_rate, "batch_size", (json_int_t)p->batch_size);
}

/* The metrics document without "epochs" and "final_metrics" (the model's metadata copy). */
static json_t *fit_document(const cl_train_dataset *d, const cl_train_params *p, const cl_train_report *r,
                            double train_loss, size_t n_params, int iterations)
{
    char hex[65];
    for (size_t i = 0; i < 32; i++) (void)snprintf(hex + 2 * i, 3, "%02x", d->sha256[i]);
    json_t *j = json_pack("{s:s, s:o, s:I, s:{s:I, s:I}, s:o, s:o, s:s}", "model", cl_train_model_name(p->model),
                          "hyperparameters", fit_hyperparameters(p), "features", (json_int_t)d->n_features, "rows",
                          "train", (json_int_t)r->train.n, "test", (json_int_t)r->test.n, "train",
                          fit_metrics_obj(&r->train, true, train_loss), "test", fit_metrics_obj(&r->test, false, 0),
                          "data_sha256", hex);
    if (j == NULL) return NULL;
    int bad = p->model == CL_TRAIN_MODEL_MLP ? json_object_set_new(j, "parameters", json_integer((json_int_t)n_params))
                                             : json_object_set_new(j, "iterations", json_integer(iterations));
    if (bad != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static CL_MUST_USE cl_status fit_dump(const json_t *j, cl_buf *out)
{
    char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(10));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory writing the metrics");
    cl_status rc = cl_buf_append_str(out, s);
    free(s);
    return rc;
}

static double fit_mlp_predict(const void *m, const double *x) { return cl_train_mlp_predict(m, x); }

/* The MLP's part of cl_train_fit: fit, measure, export. */
static CL_MUST_USE cl_status fit_mlp(const cl_train_dataset *d, const cl_train_params *p, const cl_train_split *s,
                                     fit_progress *pr, cl_train_mlp *m, cl_train_report *r, json_t **doc, cl_buf *onnx)
{
    cl_status rc = CL_OK;
    char *meta = NULL;
    cl_buf desc, hidden;
    cl_buf_init(&desc, 4096);
    cl_buf_init(&hidden, 64);
    CL_GUARD_GOTO(train_mlp_fit(d, s->train, s->n_train, p, fit_epoch, pr, m));
    CL_ENSURE_GOTO(!pr->nomem, CL_ERR_NOMEM, "out of memory recording the epochs");
    CL_GUARD_GOTO(train_measure(d, fit_mlp_predict, m, s->train, s->n_train, &r->train));
    CL_GUARD_GOTO(train_measure(d, fit_mlp_predict, m, s->test, s->n_test, &r->test));
    *doc = fit_document(d, p, r, m->loss, m->n_params, 0);
    CL_ENSURE_GOTO(*doc != NULL, CL_ERR_NOMEM, "out of memory writing the metrics");
    meta = json_dumps(*doc, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(10));
    CL_ENSURE_GOTO(meta != NULL, CL_ERR_NOMEM, "out of memory writing the metrics");
    for (size_t l = 0; l < p->n_hidden; l++) CL_GUARD_GOTO(cl_buf_printf(&hidden, "%s%zu", l ? "," : "", p->hidden[l]));
    CL_GUARD_GOTO(cl_buf_printf(
        &desc,
        "Binary classifier trained by Cloister: a multilayer perceptron (hidden layers %s, %s, a sigmoid output "
        "written as Softmax over [0, t]; %zu parameters) trained by mini-batch Adam (%u epochs, learning rate %g, "
        "batch size %zu, l2 %g) on %zu of %zu rows (stratified split, seed %" PRIu64 ", test fraction %g). Input: "
        "%zu raw measurements per row, standardised inside the graph with training-split statistics. Output: "
        "probabilities of [%s, %s]. Held-out accuracy %.4f, ROC AUC %.4f on %zu rows.",
        cl_buf_cstr(&hidden), cl_train_activation_name(p->activation), m->n_params, p->epochs, p->learning_rate,
        p->batch_size, p->opts.l2, r->train.n, d->n_rows, p->opts.seed, p->opts.test_fraction, d->n_features,
        CL_TRAIN_LABEL_NEGATIVE, CL_TRAIN_LABEL_POSITIVE, r->test.accuracy, r->test.auc, r->test.n));
    train_layer layers[CL_TRAIN_MAX_LAYERS + 1];
    size_t off = 0;
    for (size_t l = 0; l < m->n_layers; l++) {
        size_t ni = m->units[l], no = m->units[l + 1];
        layers[l] = (train_layer){.w = m->params + off, .b = m->params + off + ni * no, .in = ni, .out = no};
        off += ni * no + no;
    }
    train_graph g = {
        .name = "cloister_mlp",
        .method = "multilayer perceptron, mini-batch Adam; standardisation from the training split",
        .doc = cl_buf_cstr(&desc),
        .metrics = meta,
        .mean = m->mean,
        .scale = m->scale,
        .layers = layers,
        .n_layers = m->n_layers,
        .activation = p->activation,
    };
    CL_GUARD_GOTO(train_onnx_write(d, &g, onnx));
out:
    free(meta);
    cl_buf_free(&desc);
    cl_buf_free(&hidden);
    return rc;
}

cl_status cl_train_fit(const cl_train_dataset *d, const cl_train_params *p, cl_train_progress_fn fn, void *arg,
                       cl_buf *onnx, cl_buf *metrics_json)
{
    cl_status rc = CL_OK;
    cl_train_split s = {0};
    cl_train_logreg lr = {0};
    cl_train_mlp mlp = {0};
    cl_train_report r;
    json_t *doc = NULL;
    fit_progress pr = {.fn = fn, .arg = arg, .epochs = p->epochs, .log = json_array()};
    cl_buf model, metrics;
    /* Built apart and appended at the end: on failure the caller's buffers are untouched. */
    cl_buf_init_secret(&model, (size_t)64 << 20);
    cl_buf_init(&metrics, (size_t)1 << 20);
    memset(&r, 0, sizeof(r));
    r.opts = p->opts;
    CL_ENSURE_GOTO(pr.log != NULL, CL_ERR_NOMEM, "out of memory");
    pr.stride = p->epochs > FIT_MAX_EPOCH_LINES ? (p->epochs + FIT_MAX_EPOCH_LINES - 1) / FIT_MAX_EPOCH_LINES : 1;
    CL_GUARD_GOTO(cl_train_split_stratified(d, p->opts.test_fraction, p->opts.seed, &s));
    CL_GUARD_GOTO(fit_params_check(p, d->n_features, s.n_train));
    fit_say(&pr,
            "data: %zu rows (%zu malignant, %zu benign), %zu features; split %zu train / %zu test (seed %" PRIu64 ")",
            d->n_rows, d->n_positive, d->n_rows - d->n_positive, d->n_features, s.n_train, s.n_test, p->opts.seed);
    double diff = INFINITY;
    if (p->model == CL_TRAIN_MODEL_LOGREG) {
        CL_GUARD_GOTO(cl_train_run(d, &p->opts, &lr, &r));
        fit_say(&pr, "logreg: Newton's method, %d iterations, train loss %.6f", lr.iterations, lr.loss);
        doc = fit_document(d, p, &r, lr.loss, 0, lr.iterations);
        CL_ENSURE_GOTO(doc != NULL, CL_ERR_NOMEM, "out of memory writing the metrics");
        CL_GUARD_GOTO(cl_train_onnx_export(d, &lr, &r, &model));
        CL_GUARD_GOTO(cl_train_onnx_verify(model.data, model.len, d, &lr, &diff));
    } else {
        char hidden[CL_TRAIN_MAX_LAYERS * 6] = "";
        size_t at = 0;
        for (size_t l = 0; l < p->n_hidden && at < sizeof(hidden); l++)
            at += (size_t)snprintf(hidden + at, sizeof(hidden) - at, "%s%zu", l ? "," : "", p->hidden[l]);
        fit_say(&pr, "mlp: hidden layers %s, %s, %zu parameters; Adam, %u epochs, learning rate %g, batch size %zu",
                hidden, cl_train_activation_name(p->activation), train_mlp_param_count(d->n_features, p), p->epochs,
                p->learning_rate, p->batch_size);
        CL_GUARD_GOTO(fit_mlp(d, p, &s, &pr, &mlp, &r, &doc, &model));
        CL_GUARD_GOTO(train_onnx_verify(model.data, model.len, d, fit_mlp_predict, &mlp, &diff));
        CL_ENSURE_GOTO(json_object_set(doc, "epochs", pr.log) == 0, CL_ERR_NOMEM, "out of memory");
    }
    CL_ENSURE_GOTO(diff <= FIT_VERIFY_TOLERANCE, CL_ERR_INTERNAL,
                   "the exported model's probabilities differ from the trainer's by %g (over %g); not returning it",
                   diff, FIT_VERIFY_TOLERANCE);
    json_t *final =
        json_pack("[{s:s, s:f}, {s:s, s:f}, {s:s, s:f}, {s:s, s:f}]", "MetricName", "train:accuracy", "Value",
                  r.train.accuracy, "MetricName", "train:roc_auc", "Value", r.train.auc, "MetricName", "test:accuracy",
                  "Value", r.test.accuracy, "MetricName", "test:roc_auc", "Value", r.test.auc);
    CL_ENSURE_GOTO(final != NULL && json_object_set_new(doc, "final_metrics", final) == 0, CL_ERR_NOMEM,
                   "out of memory");
    CL_GUARD_GOTO(fit_dump(doc, &metrics));
    /* The lines train-local printed before cl_train_fit (README.md shows them). */
    const cl_train_metrics *ms[2] = {&r.train, &r.test};
    for (int i = 0; i < 2; i++)
        fit_say(&pr, "%s: accuracy %.4f  roc_auc %.4f  (n=%zu, %zu malignant; tp %zu tn %zu fp %zu fn %zu)",
                i ? "test" : "train", ms[i]->accuracy, ms[i]->auc, ms[i]->n, ms[i]->n_positive, ms[i]->tp, ms[i]->tn,
                ms[i]->fp, ms[i]->fn);
    fit_say(&pr, "model: %zu bytes of ONNX; the runtime reproduces the trainer's probabilities on all %zu rows to %.1e",
            model.len, d->n_rows, diff);
    CL_GUARD_GOTO(cl_buf_reserve(onnx, model.len));
    CL_GUARD_GOTO(cl_buf_reserve(metrics_json, metrics.len));
    CL_GUARD_GOTO(cl_buf_append(onnx, model.data, model.len));
    CL_GUARD_GOTO(cl_buf_append(metrics_json, metrics.data, metrics.len));
out:
    json_decref(doc);
    json_decref(pr.log);
    cl_train_split_free(&s);
    cl_train_logreg_free(&lr);
    cl_train_mlp_free(&mlp);
    cl_buf_free(&model);
    cl_buf_free(&metrics);
    return rc;
}
