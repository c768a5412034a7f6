/* SPDX-License-Identifier: Apache-2.0 */
/* The executor: input checks, output hand-over, memory accounting, errors naming the node. */
#include <string.h>

#include "infer_internal.h"
#include "infer_test_util.h"
#include "test_util.h"

static const int64_t d23[2] = {2, 3}, dN3[2] = {-1, 3};

static void test_input_checks(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dN3);
    tm_node(t, "Relu", "r", "X", "Y");
    tm_output(t, "Y");
    cl_infer_model *m = tm_load(t);
    float x[12] = {-1, 2, -3, 4, -5, 6, 7, -8, 9, -10, 11, -12};
    cl_infer_tensor out[2];
    /* The symbolic batch dimension takes any size. */
    const int64_t d43[2] = {4, 3}, d34[2] = {3, 4};
    cl_infer_tensor in = tm_f32(2, d43, x);
    assert_ok(cl_infer_run(m, &in, 1, out, 1));
    assert_int_equal(out[0].dims[0], 4);
    assert_float_equal(((float *)out[0].data)[11], 0.0f, 0);
    assert_float_equal(((float *)out[0].data)[10], 11.0f, 0);
    cl_infer_tensor_free(&out[0]);
    in = tm_f32(2, d34, x);
    assert_fails(cl_infer_run(m, &in, 1, out, 1), CL_ERR_USAGE, "input 'X' has shape [3,4]; the model declares [-1,3]");
    in = tm_f32(2, d43, x);
    in.dtype = CL_INFER_INT32;
    assert_fails(cl_infer_run(m, &in, 1, out, 1), CL_ERR_USAGE, "input 'X' is int32; the model expects float32");
    in = tm_f32(2, d43, x);
    in.nbytes = 8;
    assert_fails(cl_infer_run(m, &in, 1, out, 1), CL_ERR_USAGE, "holds 8 bytes");
    in = tm_f32(2, d43, x);
    assert_fails(cl_infer_run(m, &in, 0, out, 1), CL_ERR_USAGE, "takes 1 inputs");
    assert_fails(cl_infer_run(m, &in, 1, out, 2), CL_ERR_USAGE, "has 1 outputs");
    cl_infer_model_free(m);
    tm_free(t);
}

/* Intermediates are released after their last reader: after a run only the
 * weights, the parsed graph and the memory plan's arena remain accounted for.
 * X's shape is declared, so the plan is made at load, unless the options
 * leave it to the first run. */
static void test_memory_returns_to_baseline(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    const int64_t d1[1] = {3};
    const float b[3] = {1, 2, 3};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_init_f32(t, "B", 1, d1, b, false);
    tm_node(t, "Add", "a1", "X,B", "A");
    tm_node(t, "Mul", "m1", "A,A", "M");
    tm_node(t, "Sub", "s1", "M,X", "Y");
    tm_node(t, "Relu", "unused", "A", "U");
    tm_output(t, "Y");
    tm_output(t, "X");
    for (int lazy = 0; lazy < 2; lazy++) {
        cl_buf pb;
        tm_pack(t, &pb);
        cl_infer_options o = {.plan_on_first_run = lazy != 0};
        cl_infer_model *m = NULL;
        assert_ok(cl_infer_model_load(pb.data, pb.len, &o, &m));
        cl_buf_free(&pb);
        assert_int_equal(m->plan.ready, !lazy);
        assert_int_equal(m->plan.arena_bytes > 0, !lazy);
        size_t base = m->mem.used - m->plan.arena_bytes;
        float x[6] = {0, 1, 2, -1, -2, -3};
        cl_infer_tensor in = tm_f32(2, d23, x), out[2];
        assert_ok(cl_infer_run(m, &in, 1, out, 2));
        assert_true(m->plan.ready);
        assert_int_equal(m->mem.used - m->mem.pooled - m->plan.arena_bytes, base);
        assert_true(cl_infer_model_peak_bytes(m) >= base + 2 * sizeof(x));
        /* (x + b)^2 - x */
        for (int i = 0; i < 6; i++) {
            float a = x[i] + b[i % 3];
            assert_float_equal(((float *)out[0].data)[i], a * a - x[i], 1e-6);
        }
        /* An output that is a graph input is a copy, not the caller's buffer. */
        assert_ptr_not_equal(out[1].data, x);
        assert_memory_equal(out[1].data, x, sizeof(x));
        cl_infer_tensor_free(&out[0]);
        cl_infer_tensor_free(&out[1]);
        cl_infer_model_free(m);
    }
    tm_free(t);
}

static void test_runtime_error_names_node(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    const int64_t d4[1] = {4};
    const float b[4] = {1, 2, 3, 4};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d23);
    tm_init_f32(t, "B", 1, d4, b, false);
    tm_node(t, "Add", "bad_add", "X,B", "Y");
    tm_output(t, "Y");
    cl_infer_model *m = tm_load(t);
    float x[6] = {0};
    cl_infer_tensor in = tm_f32(2, d23, x), out;
    assert_fails(cl_infer_run(m, &in, 1, &out, 1), CL_ERR_FORMAT, "node 'bad_add' (Add): shapes do not broadcast");
    assert_null(out.data);
    cl_infer_model_free(m);
    tm_free(t);
}

/* A run that would exceed the cap fails cleanly and leaves the model usable. */
static void test_run_respects_cap(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    const int64_t dx[2] = {-1, 1024};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dx);
    tm_node(t, "Relu", "r", "X", "Y");
    tm_output(t, "Y");
    cl_buf b;
    tm_pack(t, &b);
    cl_infer_options o = {.max_bytes = 64 << 10};
    cl_infer_model *m = NULL;
    assert_ok(cl_infer_model_load(b.data, b.len, &o, &m));
    static float x[32 * 1024];
    const int64_t big[2] = {32, 1024}, small[2] = {2, 1024};
    cl_infer_tensor in = tm_f32(2, big, x), out;
    assert_fails(cl_infer_run(m, &in, 1, &out, 1), CL_ERR_LIMIT, "memory cap");
    in = tm_f32(2, small, x);
    assert_ok(cl_infer_run(m, &in, 1, &out, 1));
    cl_infer_tensor_free(&out);
    cl_infer_model_free(m);
    cl_buf_free(&b);
    tm_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_checks),
        cmocka_unit_test(test_memory_returns_to_baseline),
        cmocka_unit_test(test_runtime_error_names_node),
        cmocka_unit_test(test_run_respects_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
