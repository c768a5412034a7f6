/* SPDX-License-Identifier: Apache-2.0 */
/* The loader: valid models load; every malformed or hostile one is refused
 * with an error that names what is wrong. */
#include <string.h>

#include "infer_test_util.h"
#include "test_util.h"

static const int64_t d23[2] = {2, 3}, d32[2] = {3, 2}, d2[1] = {2};
static const float w32[6] = {1, -1, 2, 0, 0.5f, 1}, b2[2] = {0.25f, -0.5f};

/* X[2,3] -> Gemm(W, B) -> Relu -> Y */
static tm_model *mlp(void)
{
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_init_f32(t, "W", 2, d32, w32, false);
    tm_init_f32(t, "B", 1, d2, b2, true);
    tm_node(t, "Gemm", "fc", "X,W,B", "H");
    tm_node(t, "Relu", "act", "H", "Y");
    tm_output(t, "Y");
    return t;
}

static CL_MUST_USE cl_status load(tm_model *t, size_t max_bytes, cl_infer_model **m)
{
    cl_buf b;
    tm_pack(t, &b);
    cl_infer_options o = {.max_bytes = max_bytes};
    cl_status rc = cl_infer_model_load(b.data, b.len, &o, m);
    cl_buf_free(&b);
    return rc;
}

static void test_valid_model_loads_and_runs(void **state)
{
    (void)state;
    tm_model *t = mlp();
    cl_infer_model *m = tm_load(t);
    assert_int_equal(cl_infer_model_input_count(m), 1);
    assert_int_equal(cl_infer_model_output_count(m), 1);
    const char *name;
    cl_infer_dtype dt;
    int rank;
    int64_t dims[CL_INFER_MAX_RANK];
    assert_ok(cl_infer_model_input_info(m, 0, &name, &dt, &rank, dims));
    assert_string_equal(name, "X");
    assert_int_equal(dt, CL_INFER_FLOAT);
    assert_int_equal(rank, 2);
    assert_int_equal(dims[1], 3);
    float x[6] = {1, 2, 3, -1, 0, 1};
    cl_infer_tensor in = tm_f32(2, d23, x), out;
    assert_ok(cl_infer_run(m, &in, 1, &out, 1));
    /* Hand computed: row0 = [1*1+2*2+3*0.5, -1+0+3] + B = [6.75, 1.5]; row1 = [-1+0+0.5, 1+0+1] + B = [-0.25, 1.5] ->
     * relu */
    const float want[4] = {6.75f, 1.5f, 0.0f, 1.5f};
    assert_int_equal(out.rank, 2);
    assert_int_equal(out.dims[0], 2);
    assert_int_equal(out.dims[1], 2);
    for (int i = 0; i < 4; i++) assert_float_equal(((float *)out.data)[i], want[i], 1e-6);
    cl_infer_tensor_free(&out);
    assert_true(cl_infer_model_peak_bytes(m) > 0);
    cl_infer_model_free(m);
    tm_free(t);
}

static void test_malformed_protobuf(void **state)
{
    (void)state;
    cl_infer_model *m = NULL;
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x3a, 0x80};
    assert_fails(cl_infer_model_load(junk, sizeof(junk), NULL, &m), CL_ERR_FORMAT, "not a valid ONNX model");
    assert_null(m);
    /* Every truncation of a valid model is refused or loads cleanly; none crashes. */
    tm_model *t = mlp();
    cl_buf b;
    tm_pack(t, &b);
    int refused = 0;
    for (size_t n = 0; n < b.len; n++) {
        if (cl_infer_model_load(b.data, n, NULL, &m) != CL_OK) refused++;
        cl_infer_model_free(m);
        m = NULL;
    }
    assert_true(refused > (int)b.len / 2);
    /* A length-delimited field running past the end. */
    assert_fails(cl_infer_model_load(b.data, b.len - 3, NULL, &m), CL_ERR_FORMAT, "not a valid ONNX model");
    cl_buf_free(&b);
    tm_free(t);
}

static void test_empty_model_refused(void **state)
{
    (void)state;
    cl_infer_model *m = NULL;
    assert_fails(cl_infer_model_load("", 0, NULL, &m), CL_ERR_UNSUPPORTED, "IR version");
    tm_model *t = mlp();
    tm_proto(t)->graph = NULL;
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "no graph");
    tm_free(t);
}

static void test_initializer_size_mismatch(void **state)
{
    (void)state;
    cl_infer_model *m = NULL;
    tm_model *t = mlp();
    Onnx__TensorProto *w = tm_proto(t)->graph->initializer[0];
    w->raw_data.len -= 4;
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "initializer 'W': raw_data holds 20 bytes");
    tm_free(t);
    t = mlp();
    Onnx__TensorProto *b = tm_proto(t)->graph->initializer[1];
    b->n_float_data = 1;
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "initializer 'B' holds 1 values but its shape needs 2");
    tm_free(t);
}

static void test_huge_dims_and_cap(void **state)
{
    (void)state;
    cl_infer_model *m = NULL;
    tm_model *t = mlp();
    Onnx__TensorProto *w = tm_proto(t)->graph->initializer[0];
    w->dims[0] = (int64_t)1 << 40;
    w->dims[1] = (int64_t)1 << 40;
    assert_fails(load(t, 0, &m), CL_ERR_LIMIT, "initializer 'W'");
    w->dims[0] = -3;
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "negative");
    tm_free(t);

    /* A 256 KiB weight against a 64 KiB cap. */
    t = tm_new(13);
    static float big[65536];
    const int64_t dbig[2] = {256, 256};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dbig);
    tm_init_f32(t, "W", 2, dbig, big, false);
    tm_node(t, "MatMul", "mm", "X,W", "Y");
    tm_output(t, "Y");
    assert_fails(load(t, 64 << 10, &m), CL_ERR_LIMIT, "memory cap");
    assert_null(m);
    assert_ok(load(t, 4 << 20, &m));
    cl_infer_model_free(m);
    tm_free(t);
}

static void test_cycle_and_order(void **state)
{
    (void)state;
    cl_infer_model *m = NULL;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_node(t, "Add", "a", "X,B", "A");
    tm_node(t, "Relu", "b", "A", "B");
    tm_output(t, "B");
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "node 'a' (Add): input 'B' is not produced by any earlier node");
    tm_free(t);
    /* A node reading its own output. */
    t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_node(t, "Add", "self", "X,Y", "Y");
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "topologically sorted");
    tm_free(t);
}

static void test_graph_errors_are_named(void **state)
{
    (void)state;
    cl_infer_model *m = NULL;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_node(t, "FancyOp", "mystery", "X", "Y");
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_UNSUPPORTED, "node 'mystery': op type 'FancyOp' is not supported");
    tm_free(t);

    t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_node(t, "Concat", "cat", "X,X", "Y");
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "node 'cat' (Concat) is missing the required attribute 'axis'");
    tm_free(t);

    t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    Onnx__NodeProto *n = tm_node(t, "Concat", "cat", "X,X", "Y");
    tm_attr_float(t, n, "axis", 1.0f);
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "attribute 'axis' is FLOAT, expected INT");
    tm_free(t);

    t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_node(t, "Relu", "r", "X,X", "Y");
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "node 'r' (Relu) has 2 inputs");
    tm_free(t);

    t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_node(t, "Relu", "r1", "X", "Y");
    tm_node(t, "Relu", "r2", "X", "Y");
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "node 'r2' (Relu): output 'Y' is already defined");
    tm_free(t);

    t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_node(t, "Relu", "r1", "X", "Y");
    tm_output(t, "Z");
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "graph output 'Z' is not produced");
    tm_free(t);

    t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    const float scales[2] = {2, 2};
    tm_init_f32(t, "S", 1, d2, scales, false);
    n = tm_node(t, "Resize", "up", "X,,S", "Y");
    tm_attr_string(t, n, "mode", "lanczos");
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_UNSUPPORTED, "node 'up' (Resize): mode 'lanczos' is not supported");
    tm_free(t);
}

static void test_opset_and_types(void **state)
{
    (void)state;
    cl_infer_model *m = NULL;
    tm_model *t = mlp();
    tm_proto(t)->opset_import[0]->version = 99;
    assert_fails(load(t, 0, &m), CL_ERR_UNSUPPORTED, "opset 99");
    tm_proto(t)->n_opset_import = 0;
    assert_fails(load(t, 0, &m), CL_ERR_FORMAT, "no default-domain");
    tm_free(t);

    t = tm_new(13);
    tm_input(t, "S", ONNX__TENSOR_PROTO__DATA_TYPE__STRING, 1, d2);
    tm_node(t, "Identity", "id", "S", "Y");
    tm_output(t, "Y");
    assert_fails(load(t, 0, &m), CL_ERR_UNSUPPORTED, "graph input 'S' has element type 8");
    tm_free(t);

    t = mlp();
    Onnx__TensorProto *w = tm_proto(t)->graph->initializer[0];
    w->has_data_location = 1;
    w->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    assert_fails(load(t, 0, &m), CL_ERR_UNSUPPORTED, "external file");
    tm_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_model_loads_and_runs), cmocka_unit_test(test_malformed_protobuf),
        cmocka_unit_test(test_empty_model_refused),        cmocka_unit_test(test_initializer_size_mismatch),
        cmocka_unit_test(test_huge_dims_and_cap),          cmocka_unit_test(test_cycle_and_order),
        cmocka_unit_test(test_graph_errors_are_named),     cmocka_unit_test(test_opset_and_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
