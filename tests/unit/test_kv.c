/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "cloister/kv.h"

#include "test_util.h"

static void test_sorted_unique(void **state)
{
    (void)state;
    cl_kvlist l;
    cl_kvlist_init(&l);
    assert_ok(cl_kvlist_add_arg(&l, "zeta=1"));
    assert_ok(cl_kvlist_add_arg(&l, "alpha=2"));
    assert_ok(cl_kvlist_add_arg(&l, "Beta=x=y")); /* '=' in a value is kept */
    assert_int_equal(l.count, 3);
    assert_string_equal(l.items[0].key, "Beta"); /* byte order: 'B' < 'a' */
    assert_string_equal(l.items[1].key, "alpha");
    assert_string_equal(l.items[2].key, "zeta");
    assert_string_equal(cl_kvlist_get(&l, "Beta"), "x=y");
    assert_null(cl_kvlist_get(&l, "beta"));
    assert_fails(cl_kvlist_add_arg(&l, "alpha=3"), CL_ERR_USAGE, "given twice");
    assert_int_equal(l.count, 3);
    cl_kvlist_free(&l);
}

static void test_rejects_bad_entries(void **state)
{
    (void)state;
    cl_kvlist l;
    cl_kvlist_init(&l);
    assert_fails(cl_kvlist_add_arg(&l, "novalue"), CL_ERR_USAGE, "key=value");
    assert_fails(cl_kvlist_add_arg(&l, "=v"), CL_ERR_USAGE, "key=value");
    assert_fails(cl_kvlist_add(&l, "a\0b", 3, "v", 1), CL_ERR_FORMAT, "NUL");
    char big[CL_KV_MAX_ITEM + 2];
    memset(big, 'k', sizeof(big));
    assert_fails(cl_kvlist_add(&l, big, sizeof(big), "v", 1), CL_ERR_LIMIT, "longer than");
    for (int i = 0; i < CL_KV_MAX_COUNT; i++) {
        char k[16];
        (void)snprintf(k, sizeof(k), "k%03d", i);
        assert_ok(cl_kvlist_add(&l, k, strlen(k), "", 0));
    }
    assert_fails(cl_kvlist_add(&l, "more", 4, "", 0), CL_ERR_LIMIT, "entries");
    cl_kvlist_free(&l);
}

static void test_equal(void **state)
{
    (void)state;
    cl_kvlist a, b;
    cl_kvlist_init(&a);
    cl_kvlist_init(&b);
    assert_true(cl_kvlist_equal(&a, &b));
    assert_ok(cl_kvlist_add_arg(&a, "x=1"));
    assert_ok(cl_kvlist_add_arg(&a, "y=2"));
    assert_ok(cl_kvlist_add_arg(&b, "y=2"));
    assert_false(cl_kvlist_equal(&a, &b));
    assert_ok(cl_kvlist_add_arg(&b, "x=1"));
    assert_true(cl_kvlist_equal(&a, &b));
    cl_kvlist_free(&b);
    cl_kvlist_init(&b);
    assert_ok(cl_kvlist_add_arg(&b, "x=1"));
    assert_ok(cl_kvlist_add_arg(&b, "y=3"));
    assert_false(cl_kvlist_equal(&a, &b));
    cl_kvlist_free(&a);
    cl_kvlist_free(&b);
}

static void test_encode_is_canonical(void **state)
{
    (void)state;
    cl_kvlist a, b;
    cl_buf ea, eb;
    cl_kvlist_init(&a);
    cl_kvlist_init(&b);
    cl_buf_init(&ea, 1024);
    cl_buf_init(&eb, 1024);
    assert_ok(cl_kvlist_add(&a, "patient", 7, "1234", 4));
    assert_ok(cl_kvlist_add(&a, "dept", 4, "mri", 3));
    assert_ok(cl_kvlist_add(&b, "dept", 4, "mri", 3));
    assert_ok(cl_kvlist_add(&b, "patient", 7, "1234", 4));
    assert_ok(cl_kvlist_encode(&a, &ea));
    assert_ok(cl_kvlist_encode(&b, &eb));
    /* count 2; "dept"="mri"; "patient"="1234": key byte order, whatever the insertion order */
    static const uint8_t want[] = {0, 2,   0,   4,   'd', 'e', 'p', 't', 0, 3, 'm', 'r', 'i', 0,
                                   7, 'p', 'a', 't', 'i', 'e', 'n', 't', 0, 4, '1', '2', '3', '4'};
    assert_int_equal(ea.len, sizeof(want));
    assert_memory_equal(ea.data, want, sizeof(want));
    assert_int_equal(eb.len, ea.len);
    assert_memory_equal(eb.data, ea.data, ea.len);
    cl_buf_reset(&ea);
    assert_ok(cl_kvlist_encode(NULL, &ea)); /* no context: the empty list */
    assert_int_equal(ea.len, 2);
    assert_memory_equal(ea.data, "\0\0", 2);
    cl_buf_free(&ea);
    cl_buf_free(&eb);
    cl_kvlist_free(&a);
    cl_kvlist_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_is_canonical),
        cmocka_unit_test(test_sorted_unique),
        cmocka_unit_test(test_rejects_bad_entries),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
