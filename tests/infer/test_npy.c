/* SPDX-License-Identifier: Apache-2.0 */
/* .npy reading and writing against bytes numpy 1.24 wrote (np.save). */
#include <string.h>

#include "infer_test_util.h"
#include "test_util.h"

/* np.save(f, np.array([[1.5,-2],[3,0.25],[5,6]], dtype=np.float32)) */
static const char npy_f32[] =
    "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c202773686170"
    "65273a2028332c2032292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020"
    "2020202020202020202020202020200a0000c03f000000c0000040400000803e0000a0400000c040";
/* np.save(f, np.array(7, dtype=np.int64)) */
static const char npy_i64_scalar[] =
    "934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c202773686170"
    "65273a2028292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020"
    "2020202020202020202020202020200a0700000000000000";

static void test_read_numpy_files(void **state)
{
    (void)state;
    cl_buf b;
    cl_infer_tensor t;
    t_hex(&b, npy_f32);
    assert_ok(cl_infer_npy_parse(b.data, b.len, &t));
    assert_int_equal(t.dtype, CL_INFER_FLOAT);
    assert_int_equal(t.rank, 2);
    assert_int_equal(t.dims[0], 3);
    assert_int_equal(t.dims[1], 2);
    const float want[6] = {1.5f, -2, 3, 0.25f, 5, 6};
    assert_memory_equal(t.data, want, sizeof(want));
    /* Writing it back gives numpy's bytes exactly (same header layout and padding). */
    cl_buf w;
    cl_buf_init(&w, 1 << 20);
    assert_ok(cl_infer_npy_write(&t, &w));
    assert_int_equal(w.len, b.len);
    assert_memory_equal(w.data, b.data, b.len);
    cl_infer_tensor_free(&t);
    cl_buf_free(&w);
    cl_buf_free(&b);

    t_hex(&b, npy_i64_scalar);
    assert_ok(cl_infer_npy_parse(b.data, b.len, &t));
    assert_int_equal(t.dtype, CL_INFER_INT64);
    assert_int_equal(t.rank, 0);
    assert_int_equal(*(int64_t *)t.data, 7);
    cl_buf_init(&w, 1 << 20);
    assert_ok(cl_infer_npy_write(&t, &w));
    assert_memory_equal(w.data, b.data, b.len);
    cl_infer_tensor_free(&t);
    cl_buf_free(&w);
    cl_buf_free(&b);
}

static void test_reject_malformed(void **state)
{
    (void)state;
    cl_buf b;
    cl_infer_tensor t;
    t_hex(&b, npy_f32);
    assert_fails(cl_infer_npy_parse(b.data, b.len - 1, &t), CL_ERR_FORMAT, "data holds 23 bytes; its shape needs 24");
    assert_null(t.data);
    assert_fails(cl_infer_npy_parse(b.data, 20, &t), CL_ERR_FORMAT, "header");
    b.data[0] = 'X';
    assert_fails(cl_infer_npy_parse(b.data, b.len, &t), CL_ERR_FORMAT, "bad magic");
    b.data[0] = 0x93;
    char *h = strstr((char *)b.data + 10, "False");
    memcpy(h, "True ", 5);
    assert_fails(cl_infer_npy_parse(b.data, b.len, &t), CL_ERR_UNSUPPORTED, "Fortran order");
    memcpy(h, "False", 5);
    char *d = strstr((char *)b.data + 10, "<f4");
    d[0] = '>';
    assert_fails(cl_infer_npy_parse(b.data, b.len, &t), CL_ERR_UNSUPPORTED, "element type");
    d[0] = '<';
    char *s = strstr((char *)b.data + 10, "(3, 2)");
    memcpy(s, "(3, x)", 6);
    assert_fails(cl_infer_npy_parse(b.data, b.len, &t), CL_ERR_FORMAT, "non-number");
    memcpy(s, "(3, 2 ", 6);
    /* The ')' is gone: the shape runs to the end of the header. */
    assert_fails(cl_infer_npy_parse(b.data, b.len, &t), CL_ERR_FORMAT, "");
    cl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_numpy_files),
        cmocka_unit_test(test_reject_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
