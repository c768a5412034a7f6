/* SPDX-License-Identifier: Apache-2.0 */
/* The training entry point: hyperparameters from strings (every refusal and its
 * message), .npy tables (accepted and refused), cl_train_fit for both models
 * (determinism, metrics document, the export run through the runtime). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/infer.h"
#include "cloister/train.h"

#include "test_util.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static CL_MUST_USE cl_status from1(const char *name, const char *value, cl_train_params *p)
{
    const char *n[] = {name}, *v[] = {value};
    return cl_train_params_from_strings(n, v, 1, p);
}

static CL_MUST_USE cl_status from2(const char *n0, const char *v0, const char *n1, const char *v1, cl_train_params *p)
{
    const char *n[] = {n0, n1}, *v[] = {v0, v1};
    return cl_train_params_from_strings(n, v, 2, p);
}

static void test_params_accepted(void **state)
{
    (void)state;
    cl_train_params p, def;
    cl_train_params_default(&def);
    assert_int_equal(def.model, CL_TRAIN_MODEL_LOGREG);
    assert_int_equal(def.n_hidden, 2);
    assert_int_equal(def.hidden[0], 16);
    assert_int_equal(def.hidden[1], 8);
    assert_ok(cl_train_params_from_strings(NULL, NULL, 0, &p));
    assert_memory_equal(&p, &def, sizeof(p));
    const char *n[] = {"model",      "seed",   "test_fraction", "l2",         "hidden_layers",
                       "activation", "epochs", "learning_rate", "batch_size", "encrypted_data_key"};
    const char *v[] = {"mlp", "18446744073709551615",     "0.25", "0", "1024,1,3,4", "tanh", "10000", "10",
                       "1",   "AQICAHh...not parsed here"};
    assert_ok(cl_train_params_from_strings(n, v, N_OF(n), &p));
    assert_int_equal(p.model, CL_TRAIN_MODEL_MLP);
    assert_true(p.opts.seed == UINT64_MAX);
    assert_true(p.opts.test_fraction == 0.25 && p.opts.l2 == 0.0);
    assert_int_equal(p.n_hidden, 4);
    assert_int_equal(p.hidden[0], 1024);
    assert_int_equal(p.hidden[3], 4);
    assert_int_equal(p.activation, CL_TRAIN_ACTIVATION_TANH);
    assert_int_equal(p.epochs, 10000);
    assert_true(p.learning_rate == 10.0);
    assert_int_equal(p.batch_size, 1);
    assert_ok(from2("model", "logreg", "max_iter", "1000", &p));
    assert_int_equal(p.opts.max_iter, 1000);
}

static void test_params_refused(void **state)
{
    (void)state;
    cl_train_params p;
    cl_train_params_default(&p);
    cl_train_params before = p;
    assert_fails(from1("epoch", "3", &p), CL_ERR_USAGE, "unknown hyperparameter 'epoch'; accepted: model, seed");
    assert_fails(from1("model", "svm", &p), CL_ERR_USAGE, "hyperparameter 'model' must be logreg or mlp, not 'svm'");
    assert_fails(from1("seed", "-1", &p), CL_ERR_USAGE,
                 "hyperparameter 'seed' must be a whole number from 0 to 18446744073709551615, not '-1'");
    assert_fails(from1("seed", "18446744073709551616", &p), CL_ERR_USAGE, "hyperparameter 'seed' must be");
    assert_fails(from1("test_fraction", "1", &p), CL_ERR_USAGE,
                 "hyperparameter 'test_fraction' must be a number between 0 and 1 (exclusive), not '1'");
    assert_fails(from1("test_fraction", "0", &p), CL_ERR_USAGE, "'test_fraction' must be a number between 0 and 1");
    assert_fails(from1("l2", "-0.5", &p), CL_ERR_USAGE, "hyperparameter 'l2' must be a number from 0 to 1e12");
    assert_fails(from1("l2", "nan", &p), CL_ERR_USAGE, "'l2' must be a number from 0 to 1e12, not 'nan'");
    assert_fails(from1("l2", "0x1p3", &p), CL_ERR_USAGE, "not '0x1p3'");
    assert_fails(from1("l2", "", &p), CL_ERR_USAGE, "'l2' must be a number");
    assert_fails(from1("max_iter", "0", &p), CL_ERR_USAGE, "'max_iter' must be a whole number from 1 to 1000");
    assert_fails(from2("model", "mlp", "hidden_layers", "16,,8", &p), CL_ERR_USAGE,
                 "hyperparameter 'hidden_layers' must be 1 to 4 comma-separated layer widths, each a whole number "
                 "from 1 to 1024 (e.g. 16,8), not '16,,8'");
    assert_fails(from2("model", "mlp", "hidden_layers", "1,2,3,4,5", &p), CL_ERR_USAGE, "must be 1 to 4");
    assert_fails(from2("model", "mlp", "hidden_layers", "1025", &p), CL_ERR_USAGE, "from 1 to 1024");
    assert_fails(from2("model", "mlp", "hidden_layers", "0", &p), CL_ERR_USAGE, "from 1 to 1024");
    assert_fails(from2("model", "mlp", "hidden_layers", "16,", &p), CL_ERR_USAGE, "not '16,'");
    assert_fails(from2("model", "mlp", "hidden_layers", "", &p), CL_ERR_USAGE, "not ''");
    assert_fails(from2("model", "mlp", "activation", "gelu", &p), CL_ERR_USAGE,
                 "hyperparameter 'activation' must be relu, tanh or sigmoid, not 'gelu'");
    assert_fails(from2("model", "mlp", "epochs", "10001", &p), CL_ERR_USAGE,
                 "hyperparameter 'epochs' must be a whole number from 1 to 10000, not '10001'");
    assert_fails(from2("model", "mlp", "learning_rate", "0", &p), CL_ERR_USAGE,
                 "hyperparameter 'learning_rate' must be a number greater than 0 and at most 10, not '0'");
    assert_fails(from2("model", "mlp", "learning_rate", "10.5", &p), CL_ERR_USAGE, "at most 10, not '10.5'");
    assert_fails(from2("model", "mlp", "batch_size", "0", &p), CL_ERR_USAGE,
                 "hyperparameter 'batch_size' must be a whole number from 1 to 200000");
    assert_fails(from1("epochs", "5", &p), CL_ERR_USAGE,
                 "hyperparameter 'epochs' applies to model mlp only; remove it or set model to mlp");
    assert_fails(from2("model", "mlp", "max_iter", "5", &p), CL_ERR_USAGE,
                 "hyperparameter 'max_iter' applies to model logreg only");
    assert_fails(from2("seed", "1", "seed", "2", &p), CL_ERR_USAGE, "hyperparameter 'seed' is given twice");
    const char *n[] = {"seed"}, *v[] = {NULL};
    assert_fails(cl_train_params_from_strings(n, v, 1, &p), CL_ERR_USAGE, "hyperparameter 'seed' has no value");
    /* Refusals change nothing. */
    assert_memory_equal(&p, &before, sizeof(p));
    /* The CLI's spelling. */
    const char *on[] = {"learning-rate"}, *ov[] = {"-1"};
    assert_fails(cl_train_params_from_options(on, ov, 1, &p), CL_ERR_USAGE,
                 "--learning-rate must be a number greater than 0");
}

/* A .npy file as numpy.save writes it (format 1.0, header padded to 64 bytes). */
static void npy_make(cl_buf *b, const char *descr, const char *shape, const void *data, size_t n, int major)
{
    char hdr[256];
    int h = snprintf(hdr, sizeof(hdr), "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t pre = major == 1 ? 10 : 12, total = pre + (size_t)h + 1, pad = (64 - total % 64) % 64;
    memset(hdr + h, ' ', pad);
    hdr[(size_t)h + pad] = '\n';
    size_t hlen = (size_t)h + pad + 1;
    cl_buf_init(b, (size_t)8 << 20);
    assert_ok(cl_buf_append(b, "\x93NUMPY", 6));
    assert_ok(cl_buf_append_u8(b, (uint8_t)major));
    assert_ok(cl_buf_append_u8(b, 0));
    assert_ok(cl_buf_append_u8(b, (uint8_t)(hlen & 0xff)));
    assert_ok(cl_buf_append_u8(b, (uint8_t)(hlen >> 8)));
    if (major != 1) {
        assert_ok(cl_buf_append_u8(b, 0));
        assert_ok(cl_buf_append_u8(b, 0));
    }
    assert_ok(cl_buf_append(b, hdr, hlen));
    assert_ok(cl_buf_append(b, data, n));
}

static void test_npy_accepted(void **state)
{
    (void)state;
    const double x[] = {1.5, -2, 0, 3, 4.25, 1, 0.5, 0.5, 1};
    cl_buf b;
    cl_train_dataset d;
    npy_make(&b, "<f8", "(3, 3)", x, sizeof(x), 1);
    assert_ok(cl_train_npy_parse(b.data, b.len, "t.npy", &d));
    assert_int_equal(d.n_rows, 3);
    assert_int_equal(d.n_features, 2);
    assert_int_equal(d.n_positive, 2);
    assert_string_equal(d.feature_names[1], "f1");
    assert_true(d.x[2] == 3 && d.x[3] == 4.25 && d.y[0] == 0 && d.y[1] == 1);
    cl_train_dataset_free(&d);
    cl_buf_free(&b);
    const float xf[] = {1.5f, 1, 2.5f, 0};
    npy_make(&b, "<f4", "(2, 2)", xf, sizeof(xf), 3);
    assert_ok(cl_train_npy_parse(b.data, b.len, "t.npy", &d));
    assert_true(d.n_rows == 2 && d.n_features == 1 && d.x[1] == 2.5 && d.y[0] == 1);
    cl_train_dataset_free(&d);
    cl_buf_free(&b);
}

static void test_npy_refused(void **state)
{
    (void)state;
    const double x[] = {1, 0, 2, 1, 3, 0.5};
    const double inf[] = {1, 0, INFINITY, 1};
    const float xf[] = {1, 0, 2, 1};
    cl_buf b;
    cl_train_dataset d;
    struct {
        const char *descr, *shape;
        const void *data;
        size_t n;
        cl_status code;
        const char *needle;
    } cases[] = {
        {"|O", "(2, 2)", x, 16, CL_ERR_UNSUPPORTED,
         "t.npy: the .npy array holds Python objects (dtype 'O'): pickled Python objects are refused: unpickling runs "
         "code; write CSV or numpy.save(..., allow_pickle=False)"},
        {"<i8", "(2, 2)", x, 32, CL_ERR_UNSUPPORTED,
         "t.npy: the array's elements are int64; a training table is float64 ('<f8') or float32 ('<f4')"},
        {">f8", "(2, 2)", x, 32, CL_ERR_UNSUPPORTED, "t.npy: .npy element type is not supported"},
        {"<f8", "(6,)", x, 48, CL_ERR_FORMAT, "t.npy: the array has 1 dimensions; a training table has 2"},
        {"<f8", "(3, 2)", x, 48, CL_ERR_FORMAT, "t.npy, row 2: the label (last column) must be 0 (benign) or 1"},
        {"<f8", "(2, 2)", inf, 32, CL_ERR_FORMAT, "t.npy, row 1, column 0: not a finite number"},
        {"<f8", "(6, 1)", x, 48, CL_ERR_FORMAT, "t.npy: 1 column; a training table has at least one feature"},
        {"<f8", "(0, 2)", x, 0, CL_ERR_FORMAT, "t.npy has no rows"},
        {"<f8", "(2, 258)", NULL, 0, CL_ERR_FORMAT, "t.npy: .npy data holds 0 bytes; its shape needs 4128"},
        {"<f4", "(2, 2)", xf, 12, CL_ERR_FORMAT, "t.npy: .npy data holds 12 bytes; its shape needs 16"},
        {"<f8", "(200001, 2)", NULL, 0, CL_ERR_FORMAT, "t.npy: .npy data holds 0 bytes"},
    };
    for (size_t i = 0; i < N_OF(cases); i++) {
        npy_make(&b, cases[i].descr, cases[i].shape, cases[i].data, cases[i].n, 1);
        assert_fails(cl_train_npy_parse(b.data, b.len, "t.npy", &d), cases[i].code, cases[i].needle);
        assert_null(d.x);
        cl_buf_free(&b);
    }
    /* Bounds on the table, with data of the right size (zeros: labels 0 are fine). */
    double *big = calloc((size_t)2 * 258, sizeof(double));
    assert_non_null(big);
    npy_make(&b, "<f8", "(2, 258)", big, (size_t)2 * 258 * sizeof(double), 2);
    assert_fails(cl_train_npy_parse(b.data, b.len, "t.npy", &d), CL_ERR_LIMIT, "t.npy: 257 features; at most 256");
    cl_buf_free(&b);
    free(big);
    big = calloc((size_t)200001 * 2, sizeof(double));
    assert_non_null(big);
    npy_make(&b, "<f8", "(200001, 2)", big, (size_t)200001 * 2 * sizeof(double), 1);
    assert_fails(cl_train_npy_parse(b.data, b.len, "t.npy", &d), CL_ERR_LIMIT, "t.npy: 200001 rows; at most 200000");
    cl_buf_free(&b);
    free(big);
    assert_fails(cl_train_npy_parse("\x80\x04\x95", 3, "t.npy", &d), CL_ERR_FORMAT, "t.npy: not a .npy file");
}

/* WDBC from the source tree. */
static void load_wdbc(cl_train_dataset *d)
{
    cl_buf raw;
    cl_buf_init(&raw, (size_t)16 << 20);
    assert_ok(cl_buf_read_file(&raw, t_source_path("data/wdbc/wdbc.csv")));
    assert_ok(cl_train_csv_parse(raw.data, raw.len, "wdbc.csv", d));
    cl_buf_free(&raw);
}

typedef struct lines {
    size_t n, epochs;
    char last[256];
} lines;

static void count_line(void *arg, const char *line)
{
    lines *l = arg;
    l->n++;
    if (strncmp(line, "epoch ", 6) == 0) l->epochs++;
    (void)snprintf(l->last, sizeof(l->last), "%s", line);
}

static double final_metric(json_t *doc, const char *name)
{
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "final_metrics"), i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "MetricName")), name) == 0)
            return json_real_value(json_object_get(m, "Value"));
    }
    fail_msg("final metric %s is missing", name);
    return NAN;
}

static void test_fit_mlp_wdbc(void **state)
{
    (void)state;
    cl_train_dataset d;
    load_wdbc(&d);
    cl_train_params p;
    const char *n[] = {"model", "epochs"}, *v[] = {"mlp", "250"};
    assert_ok(cl_train_params_from_strings(n, v, 2, &p));
    cl_buf onnx, onnx2, metrics, metrics2;
    cl_buf_init_secret(&onnx, 1 << 24);
    cl_buf_init_secret(&onnx2, 1 << 24);
    cl_buf_init(&metrics, 1 << 20);
    cl_buf_init(&metrics2, 1 << 20);
    lines l = {0};
    assert_ok(cl_train_fit(&d, &p, count_line, &l, &onnx, &metrics));
    /* 250 epochs report every 3rd (at most 100 lines) plus the first and last. */
    assert_int_equal(l.epochs, 1 + 250 / 3 + 1);
    assert_ok(cl_train_fit(&d, &p, NULL, NULL, &onnx2, &metrics2));
    /* Same seed and data: the same bytes. */
    assert_int_equal(onnx.len, onnx2.len);
    assert_memory_equal(onnx.data, onnx2.data, onnx.len);
    assert_int_equal(metrics.len, metrics2.len);
    assert_memory_equal(metrics.data, metrics2.data, metrics.len);
    /* Another seed: another model. */
    cl_buf_free(&onnx2);
    cl_buf_init_secret(&onnx2, 1 << 24);
    cl_buf_free(&metrics2);
    cl_buf_init(&metrics2, 1 << 20);
    p.opts.seed = 7;
    assert_ok(cl_train_fit(&d, &p, NULL, NULL, &onnx2, &metrics2));
    assert_true(onnx.len != onnx2.len || memcmp(onnx.data, onnx2.data, onnx.len) != 0);

    json_error_t err;
    json_t *doc = json_loadb((const char *)metrics.data, metrics.len, 0, &err);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "model")), "mlp");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "rows"), "test")), 113);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "hyperparameters"), "hidden_layers")),
                        "16,8");
    assert_int_equal(json_array_size(json_object_get(doc, "epochs")), l.epochs);
    double acc = final_metric(doc, "test:accuracy"), auc = final_metric(doc, "test:roc_auc");
    assert_true(acc >= 0.95);
    assert_true(auc >= 0.97);
    assert_true(final_metric(doc, "train:accuracy") >= acc - 0.05);
    print_message("mlp on WDBC: held-out accuracy %.4f, ROC AUC %.4f\n", acc, auc);
    json_decref(doc);

    /* The runtime reads it as the same classifier as the logistic model. */
    cl_infer_model *m = NULL;
    assert_ok(cl_infer_model_load(onnx.data, onnx.len, NULL, &m));
    cl_infer_classifier *c = NULL;
    assert_ok(cl_infer_classifier_from_model(m, &c));
    cl_infer_classifier_free(c);
    cl_infer_model_free(m);

    cl_buf_free(&onnx);
    cl_buf_free(&onnx2);
    cl_buf_free(&metrics);
    cl_buf_free(&metrics2);
    cl_train_dataset_free(&d);
}

static void test_fit_refusals(void **state)
{
    (void)state;
    cl_train_dataset d;
    load_wdbc(&d);
    cl_train_params p;
    cl_train_params_default(&p);
    p.model = CL_TRAIN_MODEL_MLP;
    cl_buf onnx, metrics;
    cl_buf_init_secret(&onnx, 1 << 24);
    cl_buf_init(&metrics, 1 << 20);
    assert_ok(cl_buf_append_str(&metrics, "kept"));
    p.batch_size = 457;
    assert_fails(cl_train_fit(&d, &p, NULL, NULL, &onnx, &metrics), CL_ERR_USAGE,
                 "batch_size 457 must be from 1 to the 456 training rows");
    p.batch_size = 32;
    p.hidden[0] = 1024;
    p.hidden[1] = 1024;
    p.hidden[2] = 1024;
    p.n_hidden = 3;
    assert_fails(cl_train_fit(&d, &p, NULL, NULL, &onnx, &metrics), CL_ERR_LIMIT,
                 "hidden_layers gives a network of 2131969 parameters for 30 features; at most 1048576");
    p.n_hidden = 1;
    p.epochs = 10000;
    assert_fails(cl_train_fit(&d, &p, NULL, NULL, &onnx, &metrics), CL_ERR_LIMIT,
                 "epochs x training rows x parameters is 10000 x 456 x 32769 = 1.49e+11, over the ceiling of 2e+10");
    p.epochs = 3;
    p.learning_rate = 0;
    assert_fails(cl_train_fit(&d, &p, NULL, NULL, &onnx, &metrics), CL_ERR_USAGE, "learning_rate 0 is not greater");
    /* A failure leaves the caller's buffers as they were. */
    assert_int_equal(onnx.len, 0);
    assert_int_equal(metrics.len, 4);
    cl_buf_free(&onnx);
    cl_buf_free(&metrics);
    cl_train_dataset_free(&d);
}

static void test_fit_logreg_is_train_local(void **state)
{
    (void)state;
    cl_train_dataset d;
    load_wdbc(&d);
    cl_train_params p;
    cl_train_params_default(&p);
    cl_buf onnx, old, metrics;
    cl_buf_init_secret(&onnx, 1 << 24);
    cl_buf_init(&old, 1 << 24);
    cl_buf_init(&metrics, 1 << 20);
    lines l = {0};
    assert_ok(cl_train_fit(&d, &p, count_line, &l, &onnx, &metrics));
    assert_int_equal(l.epochs, 0);
    assert_non_null(strstr(l.last, "model: 2489 bytes of ONNX"));
    /* The same model as the logistic-regression functions make (train-local before cl_train_fit). */
    cl_train_logreg m;
    cl_train_report r;
    assert_ok(cl_train_run(&d, &p.opts, &m, &r));
    assert_ok(cl_train_onnx_export(&d, &m, &r, &old));
    assert_int_equal(onnx.len, old.len);
    assert_memory_equal(onnx.data, old.data, old.len);
    json_t *doc = json_loadb((const char *)metrics.data, metrics.len, 0, NULL);
    assert_non_null(doc);
    assert_true(fabs(final_metric(doc, "test:accuracy") - r.test.accuracy) < 1e-9);
    assert_true(fabs(final_metric(doc, "test:roc_auc") - r.test.auc) < 1e-9);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(json_object_get(doc, "test"), "confusion"), "fn")),
        r.test.fn);
    assert_null(json_object_get(doc, "epochs"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "hyperparameters"), "seed")), 42);
    json_decref(doc);
    /* A seed past JSON's signed 64-bit integers is written as a string. */
    p.opts.seed = UINT64_MAX;
    cl_buf_free(&metrics);
    cl_buf_init(&metrics, 1 << 20);
    assert_ok(cl_train_fit(&d, &p, NULL, NULL, &old, &metrics));
    doc = json_loadb((const char *)metrics.data, metrics.len, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "hyperparameters"), "seed")),
                        "18446744073709551615");
    json_decref(doc);
    cl_train_logreg_free(&m);
    cl_buf_free(&onnx);
    cl_buf_free(&old);
    cl_buf_free(&metrics);
    cl_train_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_accepted),
        cmocka_unit_test(test_params_refused),
        cmocka_unit_test(test_npy_accepted),
        cmocka_unit_test(test_npy_refused),
        cmocka_unit_test(test_fit_mlp_wdbc),
        cmocka_unit_test(test_fit_refusals),
        cmocka_unit_test(test_fit_logreg_is_train_local),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
