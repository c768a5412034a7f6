/* SPDX-License-Identifier: Apache-2.0 */
/* Classifier I/O: metadata, record parsing (negative cases first) and the result JSON. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cloister/infer.h"

#include "test_util.h"

static cl_infer_classifier *make3(void)
{
    cl_infer_classifier *c;
    assert_ok(cl_infer_classifier_make("benign,malignant", "radius,texture,area", 0, &c));
    return c;
}

static CL_MUST_USE cl_status parse(const cl_infer_classifier *c, cl_infer_record_format f, const char *s,
                                   cl_infer_tensor *t)
{
    return cl_infer_classifier_parse(c, f, s, strlen(s), t);
}

static void expect_values(const cl_infer_tensor *t, float a, float b, float c)
{
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->dims[0], 1);
    assert_int_equal(t->dims[1], 3);
    const float *x = t->data;
    assert_true(x[0] == a && x[1] == b && x[2] == c);
}

static void test_metadata_rejected(void **state)
{
    (void)state;
    cl_infer_classifier *c;
    assert_fails(cl_infer_classifier_make("benign", "a", 0, &c), CL_ERR_FORMAT, "names 1 class");
    assert_fails(cl_infer_classifier_make("a,,b", "x", 0, &c), CL_ERR_FORMAT, "labels metadata: name 2 is 0");
    assert_fails(cl_infer_classifier_make("a,b,a", "x", 0, &c), CL_ERR_FORMAT, "lists 'a' twice");
    assert_fails(cl_infer_classifier_make("a,b\"", "x", 0, &c), CL_ERR_FORMAT, "byte 0x22 in name 2");
    assert_fails(cl_infer_classifier_make("a,b", "x,y", 3, &c), CL_ERR_FORMAT,
                 "names 2 features, but its input takes 3");
    assert_fails(cl_infer_classifier_make("a,b", NULL, 0, &c), CL_ERR_FORMAT, "feature count 0");
    assert_fails(cl_infer_classifier_make("a,b", "", 0, &c), CL_ERR_FORMAT, "features metadata is empty");
    assert_null(c);
}

static void test_json_record(void **state)
{
    (void)state;
    cl_infer_classifier *c = make3();
    cl_infer_tensor t;
    assert_ok(parse(c, CL_INFER_RECORD_JSON, "{\"area\": 1001, \"radius\": 17.99, \"texture\": -1e-3}", &t));
    expect_values(&t, 17.99f, -1e-3f, 1001.0f);
    cl_infer_tensor_free(&t);
    assert_ok(parse(c, CL_INFER_RECORD_JSON, " [1, 2.5, 3] \n", &t));
    expect_values(&t, 1.0f, 2.5f, 3.0f);
    cl_infer_tensor_free(&t);
    cl_infer_classifier_free(c);
}

static void test_json_record_rejected(void **state)
{
    (void)state;
    cl_infer_classifier *c = make3();
    static const struct {
        const char *in;
        cl_status code;
        const char *needle;
    } bad[] = {
        {"", CL_ERR_FORMAT, "not valid JSON at line"},
        {"{\"radius\": 1, ", CL_ERR_FORMAT, "not valid JSON"},
        {"[1, 2, NaN]", CL_ERR_FORMAT, "not valid JSON"},
        {"[1, 2, 1e999]", CL_ERR_FORMAT, "not valid JSON"},
        {"[1, 2]", CL_ERR_FORMAT, "the JSON array has 2 values; the model takes 3 features"},
        {"[1, 2, 3, 4]", CL_ERR_FORMAT, "has 4 values"},
        {"[1, \"2\", 3]", CL_ERR_FORMAT, "feature 'texture' is a JSON string; give a number"},
        {"[1, null, 3]", CL_ERR_FORMAT, "feature 'texture' is a JSON null"},
        {"[1, true, 3]", CL_ERR_FORMAT, "is a JSON boolean"},
        {"[1, [2], 3]", CL_ERR_FORMAT, "is a JSON container"},
        {"[1, 2, 1e300]", CL_ERR_FORMAT, "feature 'area' is 1e+300, outside the range of a float32"},
        {"{\"radius\": 1, \"texture\": 2}", CL_ERR_FORMAT, "feature 'area' is missing"},
        {"{\"radius\": 1, \"texture\": 2, \"area\": 3, \"age\": 4}", CL_ERR_FORMAT,
         "'age' is not one of the model's 3 features"},
        {"{\"radius\": 1, \"radius\": 1, \"texture\": 2, \"area\": 3}", CL_ERR_FORMAT, "duplicate object key"},
        {"{\"ra\\u0000dius\": 1}", CL_ERR_FORMAT, "not valid JSON"},
        {"42", CL_ERR_FORMAT, "must be an object keyed by feature name or an array of 3 numbers"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_infer_tensor t;
        assert_fails(parse(c, CL_INFER_RECORD_JSON, bad[i].in, &t), bad[i].code, bad[i].needle);
        assert_null(t.data);
    }
    cl_infer_classifier_free(c);
    /* Without feature names only arrays can be matched to columns. */
    assert_ok(cl_infer_classifier_make("no,yes", NULL, 2, &c));
    cl_infer_tensor t;
    assert_fails(parse(c, CL_INFER_RECORD_JSON, "{\"a\": 1, \"b\": 2}", &t), CL_ERR_FORMAT, "names no features");
    assert_ok(parse(c, CL_INFER_RECORD_JSON, "[1, 2]", &t));
    cl_infer_tensor_free(&t);
    assert_fails(parse(c, CL_INFER_RECORD_JSON, "[1, \"x\"]", &t), CL_ERR_FORMAT, "feature '#2' is a JSON string");
    cl_infer_classifier_free(c);
}

static void test_csv_record(void **state)
{
    (void)state;
    cl_infer_classifier *c = make3();
    cl_infer_tensor t;
    assert_ok(parse(c, CL_INFER_RECORD_CSV, "17.99,10.38,1001\n", &t));
    expect_values(&t, 17.99f, 10.38f, 1001.0f);
    cl_infer_tensor_free(&t);
    /* A header maps columns by name, in any order. */
    assert_ok(parse(c, CL_INFER_RECORD_CSV, "area,radius,texture\r\n1001,17.99,10.38\r\n\r\n", &t));
    expect_values(&t, 17.99f, 10.38f, 1001.0f);
    cl_infer_tensor_free(&t);
    cl_infer_classifier_free(c);
}

static void test_csv_record_rejected(void **state)
{
    (void)state;
    cl_infer_classifier *c = make3();
    static const struct {
        const char *in;
        const char *needle;
    } bad[] = {
        {"", "the CSV input is empty"},
        {"1,2\n", "CSV input, line 1: 2 values; the model takes 3 features"},
        {"1,2,3,4\n", "CSV input, line 1: more than 3 columns"},
        {"1,x,3\n", "CSV input, line 1, column 2 (texture) ('x') is not a number"},
        {"1,nan,3\n", "line 1, column 2 (texture) is NaN"},
        {"Inf,2,3\n", "line 1, column 1 (radius) is infinite"},
        {"1,2,1e39\n", "feature 'area' is 1e+39, outside the range of a float32"},
        {"1,,3\n", "column 2 (texture) is empty"},
        {"1,2,3\n4,5,6\n", "line 2: a second row after the patient's on line 1"},
        {"radius,texture,area\n", "has a header but no row of values"},
        {"radius,texture,age\n1,2,3\n", "CSV input, line 1, column 3: 'age' is not one of the model's 3 features"},
        {"radius,radius,area\n1,2,3\n", "line 1, column 2: 'radius' is named twice"},
        {"radius,texture\n1,2\n", "the header has 2 columns; the model takes 3"},
        {"area,radius,texture\n1,2,x\n", "line 2, column 3 (texture) ('x') is not a number"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_infer_tensor t;
        assert_fails(parse(c, CL_INFER_RECORD_CSV, bad[i].in, &t), CL_ERR_FORMAT, bad[i].needle);
        assert_null(t.data);
    }
    cl_infer_tensor t;
    static char big[CL_INFER_CLASSIFIER_MAX_INPUT + 1];
    memset(big, ' ', sizeof(big));
    assert_fails(cl_infer_classifier_parse(c, CL_INFER_RECORD_CSV, big, sizeof(big), &t), CL_ERR_LIMIT,
                 "over the 1048576 allowed");
    cl_infer_classifier_free(c);
}

static void test_format(void **state)
{
    (void)state;
    cl_infer_classifier *c = make3();
    int64_t dims[2] = {1, 2};
    cl_infer_tensor p;
    assert_ok(cl_infer_tensor_alloc(&p, CL_INFER_FLOAT, 2, dims));
    float *v = p.data;
    v[0] = 0.25f;
    v[1] = 0.75f;
    cl_buf out;
    cl_buf_init(&out, 4096);
    assert_ok(cl_infer_classifier_format(c, &p, &out));
    assert_string_equal(cl_buf_cstr(&out), "{\"label\": \"malignant\", \"probabilities\": {\"benign\": 0.25, "
                                           "\"malignant\": 0.75}}");
    cl_buf_reset(&out);
    v[0] = 0.5f;
    v[1] = 0.5f; /* a tie goes to the first label */
    assert_ok(cl_infer_classifier_format(c, &p, &out));
    assert_non_null(strstr(cl_buf_cstr(&out), "\"label\": \"benign\""));
    v[0] = 2.0f; /* logits are not probabilities */
    v[1] = -1.0f;
    assert_fails(cl_infer_classifier_format(c, &p, &out), CL_ERR_FORMAT, "for label 'benign' is 2, not a probability");
    v[0] = 0.5f;
    v[1] = 0.4f;
    assert_fails(cl_infer_classifier_format(c, &p, &out), CL_ERR_FORMAT, "sum to 0.9");
    v[1] = NAN;
    assert_fails(cl_infer_classifier_format(c, &p, &out), CL_ERR_FORMAT, "not a probability");
    cl_infer_tensor_free(&p);
    int64_t dims3[2] = {1, 3};
    assert_ok(cl_infer_tensor_alloc(&p, CL_INFER_FLOAT, 2, dims3));
    assert_fails(cl_infer_classifier_format(c, &p, &out), CL_ERR_FORMAT, "not float32 [N, 2] probabilities");
    cl_infer_tensor_free(&p);
    cl_buf_free(&out);
    cl_infer_classifier_free(c);
}

static void test_model_without_metadata(void **state)
{
    (void)state;
    /* Any model from the runtime's own tests lacks the classifier metadata. */
    cl_buf b;
    cl_buf_init(&b, 1 << 20);
    assert_ok(cl_buf_read_file(&b, t_source_path("tests/fuzz/corpus/onnx_model/gemm_all_attributes.onnx")));
    cl_infer_model *m;
    assert_ok(cl_infer_model_load(b.data, b.len, NULL, &m));
    cl_infer_classifier *c;
    assert_fails(cl_infer_classifier_from_model(m, &c), CL_ERR_NOT_FOUND, "carries no 'cloister.classifier.labels'");
    cl_infer_model_free(m);
    cl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_rejected),      cmocka_unit_test(test_json_record),
        cmocka_unit_test(test_json_record_rejected),   cmocka_unit_test(test_csv_record),
        cmocka_unit_test(test_csv_record_rejected),    cmocka_unit_test(test_format),
        cmocka_unit_test(test_model_without_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
