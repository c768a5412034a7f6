/* SPDX-License-Identifier: Apache-2.0 */
/* The worker clients' request binding (src/lib/infer_client.c): the encryption context a
 * result must carry, and the check of a result's context against it. */
#include <string.h>

#include "cloister/infer_client.h"

#include "test_util.h"

/* SHA-384("abc"), FIPS 180-2 appendix D.1. */
#define ABC_SHA384 \
    "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163" \
    "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"

static void make(cl_kvlist *l, uint8_t first)
{
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    for (size_t i = 0; i < sizeof(id); i++) id[i] = (uint8_t)(first + i);
    cl_kvlist_init(l);
    assert_ok(cl_infer_binding_make(id, (const uint8_t *)"abc", 3, l));
}

static void test_binding_make(void **state)
{
    (void)state;
    cl_kvlist l;
    make(&l, 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(cl_kvlist_get(&l, "cloister:request-id"), "000102030405060708090a0b0c0d0e0f");
    assert_string_equal(cl_kvlist_get(&l, "cloister:input-sha384"), ABC_SHA384);
    assert_ok(cl_infer_binding_check(&l, &l));
    cl_kvlist_free(&l);
}

static void test_binding_check_refuses(void **state)
{
    (void)state;
    cl_kvlist want, other, none, extra, half;
    make(&want, 0);
    make(&other, 1);
    cl_kvlist_init(&none);
    make(&extra, 0);
    assert_ok(cl_kvlist_add(&extra, "purpose", 7, "x", 1));
    cl_kvlist_init(&half);
    assert_ok(cl_kvlist_add(&half, "cloister:request-id", 19, "000102030405060708090a0b0c0d0e0f", 32));
    assert_fails(cl_infer_binding_check(&other, &want), CL_ERR_AUTH,
                 "bound to another request: its cloister:request-id is 0102");
    assert_fails(cl_infer_binding_check(&none, &want), CL_ERR_AUTH,
                 "not bound to a request: its encryption context has no cloister:request-id");
    assert_fails(cl_infer_binding_check(&half, &want), CL_ERR_AUTH, "has no cloister:input-sha384");
    assert_fails(cl_infer_binding_check(&extra, &want), CL_ERR_AUTH, "has 3 entries; the binding has 2");
    assert_fails(cl_infer_binding_check(&want, &none), CL_ERR_USAGE, "the expected binding has no");
    /* Same id, another input. */
    cl_kvlist_free(&other);
    cl_kvlist_init(&other);
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    for (size_t i = 0; i < sizeof(id); i++) id[i] = (uint8_t)i;
    assert_ok(cl_infer_binding_make(id, (const uint8_t *)"abd", 3, &other));
    assert_fails(cl_infer_binding_check(&other, &want), CL_ERR_AUTH, "its cloister:input-sha384 is");
    cl_kvlist_free(&want);
    cl_kvlist_free(&other);
    cl_kvlist_free(&none);
    cl_kvlist_free(&extra);
    cl_kvlist_free(&half);
}

static void test_connect_refuses(void **state)
{
    (void)state;
    int fd = -1;
    assert_fails(cl_infer_connect("/nonexistent/cloister-test.sock", &fd), CL_ERR_IO, "cannot reach the enclave at");
    char long_path[200];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    assert_fails(cl_infer_connect(long_path, &fd), CL_ERR_USAGE, "is too long");
    cl_buf out;
    cl_buf_init(&out, 1024);
    assert_fails(cl_infer_client_stop("/nonexistent/cloister-test.sock"), CL_ERR_IO, "cannot reach the enclave");
    cl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding_make),
        cmocka_unit_test(test_binding_check_refuses),
        cmocka_unit_test(test_connect_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
