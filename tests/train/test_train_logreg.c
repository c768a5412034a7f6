/* SPDX-License-Identifier: Apache-2.0 */
/* The trainer: metrics against hand-worked values, the fit against its
 * optimality conditions, and the export against the runtime. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/infer.h"
#include "cloister/train.h"

#include "test_util.h"

static void test_metrics_hand_worked(void **state)
{
    (void)state;
    cl_train_metrics m;
    /* scikit-learn's roc_auc_score documentation example: 3 of 4 pairs ordered right. */
    const double p[] = {0.1, 0.4, 0.35, 0.8};
    const uint8_t y[] = {0, 0, 1, 1};
    assert_ok(cl_train_metrics_compute(p, y, 4, &m));
    assert_true(fabs(m.auc - 0.75) < 1e-12);
    /* At 0.5: 0.8 is a true positive, 0.35 a false negative, the rest true negatives. */
    assert_int_equal(m.tp, 1);
    assert_int_equal(m.fn, 1);
    assert_int_equal(m.tn, 2);
    assert_int_equal(m.fp, 0);
    assert_true(fabs(m.accuracy - 0.75) < 1e-12);
    /* Ties count half: one positive and one negative at the same score. */
    const double pt[] = {0.5, 0.5, 0.9};
    const uint8_t yt[] = {1, 0, 1};
    assert_ok(cl_train_metrics_compute(pt, yt, 3, &m));
    assert_true(fabs(m.auc - 0.75) < 1e-12); /* pairs: (0.5 vs 0.5) = 1/2, (0.9 vs 0.5) = 1 */
    assert_int_equal(m.fp, 1);               /* 0.5 counts as positive */
    /* Perfectly reversed. */
    const double pr[] = {0.9, 0.8, 0.2};
    const uint8_t yr[] = {0, 0, 1};
    assert_ok(cl_train_metrics_compute(pr, yr, 3, &m));
    assert_true(m.auc == 0.0);
    assert_fails(cl_train_metrics_compute(pr, yt + 2, 1, &m), CL_ERR_STATE, "needs both classes");
}

/* Two overlapping clusters in 3 features; feature 2 is constant. */
static void make_data(cl_train_dataset *d, bool duplicate_column)
{
    cl_buf b;
    cl_buf_init(&b, 1 << 20);
    assert_ok(cl_buf_append_str(&b, duplicate_column ? "a,b,c,diagnosis\n" : "a,b,k,diagnosis\n"));
    for (int i = 0; i < 60; i++) {
        int pos = i % 3 == 0;
        /* deterministic spread, classes overlap so the optimum is finite */
        double a = (pos ? 2.0 : 0.0) + (double)((i * 37) % 17) / 5.0;
        double bb = (pos ? -1.0 : 1.0) + (double)((i * 11) % 13) / 4.0;
        assert_ok(cl_buf_printf(&b, "%.6f,%.6f,%.6f,%s\n", a, bb, duplicate_column ? a : 7.0, pos ? "M" : "B"));
    }
    assert_ok(cl_train_csv_parse(b.data, b.len, "synthetic.csv", d));
    cl_buf_free(&b);
}

static size_t *all_rows(size_t n)
{
    size_t *r = calloc(n, sizeof(size_t));
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) r[i] = i;
    return r;
}

/* At the optimum of sum logloss + l2/2 |w|^2 the gradient vanishes:
 * sum (p_i - y_i) = 0 and sum (p_i - y_i) z_ij + l2 w_j = 0. Checked here from
 * the definitions, with the test's own standardisation. */
static void test_fit_meets_optimality_conditions(void **state)
{
    (void)state;
    cl_train_dataset d;
    make_data(&d, false);
    size_t *rows = all_rows(d.n_rows);
    cl_train_options o;
    cl_train_options_default(&o);
    o.l2 = 0.5;
    cl_train_logreg m;
    assert_ok(cl_train_logreg_fit(&d, rows, d.n_rows, &o, &m));
    assert_true(m.iterations >= 2 && m.iterations < 50);
    size_t p = d.n_features;
    for (size_t j = 0; j < p; j++) {
        double mu = 0, var = 0;
        for (size_t i = 0; i < d.n_rows; i++) mu += d.x[i * p + j];
        mu /= (double)d.n_rows;
        for (size_t i = 0; i < d.n_rows; i++) var += (d.x[i * p + j] - mu) * (d.x[i * p + j] - mu);
        double sd = sqrt(var / (double)d.n_rows);
        assert_true(fabs(m.mean[j] - mu) < 1e-9);
        if (j == 2) {
            assert_true(m.scale[j] == 1.0);   /* constant feature: left unscaled */
            assert_true(fabs(m.w[j]) < 1e-9); /* and it earns no weight */
        } else {
            assert_true(fabs(m.scale[j] - sd) < 1e-9);
        }
    }
    double g[4] = {0};
    for (size_t i = 0; i < d.n_rows; i++) {
        double s = m.b;
        double z[3];
        for (size_t j = 0; j < p; j++) {
            z[j] = (d.x[i * p + j] - m.mean[j]) / m.scale[j];
            s += m.w[j] * z[j];
        }
        double r = 1.0 / (1.0 + exp(-s)) - (double)d.y[i];
        assert_true(fabs(cl_train_logreg_predict(&m, d.x + i * p) - (r + d.y[i])) < 1e-12);
        g[0] += r;
        for (size_t j = 0; j < p; j++) g[1 + j] += r * z[j];
    }
    for (size_t j = 0; j < p; j++) g[1 + j] += o.l2 * m.w[j];
    for (size_t j = 0; j < 4; j++) assert_true(fabs(g[j]) < 1e-6);
    /* The classes are separated along a (positive) and b (negative). */
    assert_true(m.w[0] > 0.5 && m.w[1] < -0.5);
    cl_train_logreg_free(&m);
    free(rows);
    cl_train_dataset_free(&d);
}

static void test_fit_without_penalty_needs_a_unique_optimum(void **state)
{
    (void)state;
    cl_train_dataset d;
    make_data(&d, true); /* column c repeats column a */
    size_t *rows = all_rows(d.n_rows);
    cl_train_options o;
    cl_train_options_default(&o);
    o.l2 = 0;
    cl_train_logreg m;
    assert_fails(cl_train_logreg_fit(&d, rows, d.n_rows, &o, &m), CL_ERR_STATE, "train with --l2 greater than 0");
    assert_null(m.w);
    /* With a penalty the optimum is unique and splits the weight evenly between the twins. */
    o.l2 = 1.0;
    assert_ok(cl_train_logreg_fit(&d, rows, d.n_rows, &o, &m));
    assert_true(fabs(m.w[0] - m.w[2]) < 1e-6);
    cl_train_logreg_free(&m);
    o.l2 = -1;
    assert_fails(cl_train_logreg_fit(&d, rows, d.n_rows, &o, &m), CL_ERR_USAGE, "must be finite and >= 0");
    free(rows);
    cl_train_dataset_free(&d);
}

static void test_export_runs_in_the_runtime(void **state)
{
    (void)state;
    cl_train_dataset d;
    make_data(&d, false);
    cl_train_options o;
    cl_train_options_default(&o);
    o.seed = 7;
    cl_train_logreg m, m2;
    cl_train_report r, r2;
    assert_ok(cl_train_run(&d, &o, &m, &r));
    assert_int_equal(r.test.n + r.train.n, d.n_rows);
    cl_buf a, b;
    cl_buf_init(&a, 1 << 20);
    cl_buf_init(&b, 1 << 20);
    assert_ok(cl_train_onnx_export(&d, &m, &r, &a));
    /* Deterministic: the same data and options give the same bytes. */
    assert_ok(cl_train_run(&d, &o, &m2, &r2));
    assert_ok(cl_train_onnx_export(&d, &m2, &r2, &b));
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.data, b.data, a.len);
    double diff = 1;
    assert_ok(cl_train_onnx_verify(a.data, a.len, &d, &m, &diff));
    assert_true(diff < 1e-5);

    cl_infer_model *im;
    assert_ok(cl_infer_model_load(a.data, a.len, NULL, &im));
    assert_string_equal(cl_infer_model_metadata(im, CL_TRAIN_META_LABELS), "benign,malignant");
    assert_string_equal(cl_infer_model_metadata(im, CL_TRAIN_META_FEATURES), "a,b,k");
    assert_null(cl_infer_model_metadata(im, "no.such.key"));
    const char *name;
    int rank;
    int64_t dims[CL_INFER_MAX_RANK];
    assert_ok(cl_infer_model_input_info(im, 0, &name, NULL, &rank, dims));
    assert_string_equal(name, "features");
    assert_int_equal(rank, 2);
    assert_int_equal(dims[1], 3);
    /* One record through the classifier I/O: the label is the trainer's call. */
    cl_infer_classifier *c;
    assert_ok(cl_infer_classifier_from_model(im, &c));
    cl_buf out;
    cl_buf_init(&out, 4096);
    const char *rec = "{\"k\": 7, \"b\": -1, \"a\": 5}";
    assert_ok(cl_infer_classifier_run(im, c, CL_INFER_RECORD_JSON, rec, strlen(rec), &out));
    const double x[3] = {5, -1, 7};
    double pm = cl_train_logreg_predict(&m, x);
    assert_true(pm > 0.5);
    assert_non_null(strstr(cl_buf_cstr(&out), "{\"label\": \"malignant\", \"probabilities\": {\"benign\": "));
    cl_buf_free(&out);
    cl_infer_classifier_free(c);
    cl_infer_model_free(im);

    /* An export that is not the trained model is caught by the check: the
     * bytes are of m, the comparison against m with one weight moved. */
    m.w[0] += 0.5;
    assert_ok(cl_train_onnx_verify(a.data, a.len, &d, &m, &diff));
    assert_true(diff > 1e-3);
    assert_fails(cl_train_onnx_verify(a.data, 10, &d, &m, &diff), CL_ERR_FORMAT, "loading the exported model back");
    cl_buf_free(&a);
    cl_buf_free(&b);
    cl_train_logreg_free(&m);
    cl_train_logreg_free(&m2);
    cl_train_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_hand_worked),
        cmocka_unit_test(test_fit_meets_optimality_conditions),
        cmocka_unit_test(test_fit_without_penalty_needs_a_unique_optimum),
        cmocka_unit_test(test_export_runs_in_the_runtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
