/* SPDX-License-Identifier: Apache-2.0 */
/* Tensors: shape arithmetic, broadcasting, element conversion, TensorProto parsing. */
#include <string.h>

#include "infer_internal.h"
#include "infer_test_util.h"
#include "test_util.h"

static void test_shape_count(void **state)
{
    (void)state;
    size_t n;
    const int64_t a[3] = {2, 3, 4}, z[3] = {(int64_t)1 << 40, 0, (int64_t)1 << 40}, big[2] = {(int64_t)1 << 31, 4},
                  neg[2] = {2, -1};
    assert_ok(infer_shape_count(3, a, &n));
    assert_int_equal(n, 24);
    assert_ok(infer_shape_count(0, a, &n));
    assert_int_equal(n, 1);
    assert_fails(infer_shape_count(3, z, &n), CL_ERR_LIMIT, "more than");
    assert_fails(infer_shape_count(2, big, &n), CL_ERR_LIMIT, "more than");
    assert_fails(infer_shape_count(2, neg, &n), CL_ERR_FORMAT, "negative");
    assert_fails(infer_shape_count(9, a, &n), CL_ERR_LIMIT, "rank 9");
}

static void test_broadcast(void **state)
{
    (void)state;
    cl_infer_tensor a = {.rank = 3, .dims = {2, 1, 4}}, b = {.rank = 2, .dims = {3, 1}}, c = {.rank = 1, .dims = {5}};
    const cl_infer_tensor *ab[2] = {&a, &b}, *ac[2] = {&a, &c};
    int r;
    int64_t d[CL_INFER_MAX_RANK], s[CL_INFER_MAX_RANK];
    assert_ok(infer_broadcast_shape(ab, 2, &r, d));
    assert_int_equal(r, 3);
    assert_int_equal(d[0], 2);
    assert_int_equal(d[1], 3);
    assert_int_equal(d[2], 4);
    infer_broadcast_strides(&a, r, d, s);
    assert_int_equal(s[0], 4);
    assert_int_equal(s[1], 0);
    assert_int_equal(s[2], 1);
    infer_broadcast_strides(&b, r, d, s);
    assert_int_equal(s[0], 0);
    assert_int_equal(s[1], 1);
    assert_int_equal(s[2], 0);
    assert_fails(infer_broadcast_shape(ac, 2, &r, d), CL_ERR_FORMAT, "do not broadcast");
}

static void test_element_conversion(void **state)
{
    (void)state;
    cl_infer_tensor t;
    const int64_t d1[1] = {4};
    assert_ok(cl_infer_tensor_alloc(&t, CL_INFER_UINT8, 1, d1));
    infer_set_i64(&t, 0, 300); /* wraps like numpy astype */
    infer_set_f64(&t, 1, 7.9); /* truncates toward zero */
    infer_set_f64(&t, 2, 1e300);
    assert_int_equal(((uint8_t *)t.data)[0], 44);
    assert_int_equal(((uint8_t *)t.data)[1], 7);
    assert_int_equal(((uint8_t *)t.data)[2], 0);
    cl_infer_tensor_free(&t);
    assert_null(t.data);
    const int64_t huge[2] = {(int64_t)1 << 15, (int64_t)1 << 15};
    assert_fails(cl_infer_tensor_alloc(&t, CL_INFER_FLOAT, 2, huge), CL_ERR_LIMIT, "limit");
    assert_fails(cl_infer_tensor_alloc(&t, (cl_infer_dtype)8, 1, d1), CL_ERR_UNSUPPORTED, "element type 8");
}

static void test_tensor_parse(void **state)
{
    (void)state;
    Onnx__TensorProto p;
    onnx__tensor_proto__init(&p);
    int64_t dims[2] = {2, 2};
    int32_t vals[4] = {1, -2, 3, 400};
    p.n_dims = 2;
    p.dims = dims;
    p.has_data_type = 1;
    p.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT16;
    p.n_int32_data = 4;
    p.int32_data = vals;
    uint8_t buf[256];
    size_t n = onnx__tensor_proto__pack(&p, buf);
    cl_infer_tensor t;
    assert_ok(cl_infer_tensor_parse(buf, n, &t));
    assert_int_equal(t.dtype, CL_INFER_INT16);
    assert_int_equal(t.nbytes, 8);
    assert_int_equal(((int16_t *)t.data)[1], -2);
    assert_int_equal(((int16_t *)t.data)[3], 400);
    cl_infer_tensor_free(&t);
    p.n_int32_data = 3;
    n = onnx__tensor_proto__pack(&p, buf);
    assert_fails(cl_infer_tensor_parse(buf, n, &t), CL_ERR_FORMAT, "holds 3 values but its shape needs 4");
    assert_null(t.data);
    assert_fails(cl_infer_tensor_parse("\xff\xff", 2, &t), CL_ERR_FORMAT, "not a valid ONNX TensorProto");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_count),
        cmocka_unit_test(test_broadcast),
        cmocka_unit_test(test_element_conversion),
        cmocka_unit_test(test_tensor_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
