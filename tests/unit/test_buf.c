/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>

#include "test_util.h"

static void test_append_grows_and_terminates(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 1000);
    assert_string_equal(cl_buf_cstr(&b), "");
    for (int i = 0; i < 100; i++) assert_ok(cl_buf_append_str(&b, "abc"));
    assert_int_equal(b.len, 300);
    assert_int_equal(b.data[300], 0);
    assert_ok(cl_buf_printf(&b, "%d-%s", 42, "x"));
    assert_int_equal(b.len, 304);
    assert_string_equal(cl_buf_cstr(&b) + 300, "42-x");
    cl_buf_free(&b);
    assert_null(b.data);
}

static void test_cap_is_enforced(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 10);
    assert_ok(cl_buf_append(&b, "0123456789", 10));
    assert_fails(cl_buf_append_u8(&b, 'x'), CL_ERR_LIMIT, "limit of 10 bytes");
    assert_int_equal(b.len, 10); /* nothing changed */
    assert_fails(cl_buf_reserve(&b, SIZE_MAX), CL_ERR_LIMIT, "limit");
    assert_fails(cl_buf_printf(&b, "%s", "y"), CL_ERR_LIMIT, "limit");
    cl_buf_free(&b);
}

static void test_integers_big_endian(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 64);
    assert_ok(cl_buf_append_u16be(&b, 0x0102));
    assert_ok(cl_buf_append_u32be(&b, 0x03040506));
    assert_ok(cl_buf_append_u64be(&b, 0x0708090a0b0c0d0eULL));
    const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    cl_reader r = cl_reader_make(b.data, b.len);
    uint16_t a;
    uint32_t c;
    uint64_t d;
    assert_ok(cl_reader_u16be(&r, &a));
    assert_ok(cl_reader_u32be(&r, &c));
    assert_ok(cl_reader_u64be(&r, &d));
    assert_int_equal(a, 0x0102);
    assert_int_equal(c, 0x03040506);
    assert_true(d == 0x0708090a0b0c0d0eULL);
    assert_ok(cl_reader_expect_end(&r));
    cl_buf_free(&b);
}

static void test_reader_never_reads_past_end(void **state)
{
    (void)state;
    const uint8_t data[3] = {1, 2, 3};
    cl_reader r = cl_reader_make(data, sizeof(data));
    uint32_t v;
    assert_fails(cl_reader_u32be(&r, &v), CL_ERR_FORMAT, "need 4 bytes at offset 0, only 3 remain");
    assert_int_equal(r.pos, 0); /* a failed read consumes nothing */
    const uint8_t *p;
    assert_ok(cl_reader_bytes(&r, 2, &p));
    assert_ptr_equal(p, data);
    assert_fails(cl_reader_expect_end(&r), CL_ERR_FORMAT, "1 unexpected trailing bytes");
    assert_fails(cl_reader_skip(&r, SIZE_MAX), CL_ERR_FORMAT, "truncated");
    uint8_t u;
    assert_ok(cl_reader_u8(&r, &u));
    assert_int_equal(u, 3);
    assert_fails(cl_reader_u8(&r, &u), CL_ERR_FORMAT, "truncated");
    cl_reader empty = cl_reader_make(NULL, 5);
    assert_int_equal(cl_reader_remaining(&empty), 0);
}

static void test_secret_buffer_grows_in_secure_memory(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init_secret(&b, 1 << 20);
    assert_ok(cl_buf_append(&b, "secret", 6));
    for (int i = 0; i < 5000; i++) assert_ok(cl_buf_append_u8(&b, (uint8_t)i));
    assert_memory_equal(b.data, "secret", 6);
    assert_int_equal(b.len, 5006);
    cl_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.data[3], 0); /* reset wipes, it does not just forget */
    cl_buf_free(&b);
}

static void test_resize_and_truncate_wipe(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 100);
    assert_ok(cl_buf_resize(&b, 8));
    assert_memory_equal(b.data, "\0\0\0\0\0\0\0\0", 8);
    memcpy(b.data, "abcdefgh", 8);
    cl_buf_truncate(&b, 3);
    assert_int_equal(b.len, 3);
    assert_int_equal(b.data[4], 0);
    cl_buf_truncate(&b, 50); /* growing is not truncating */
    assert_int_equal(b.len, 3);
    assert_fails(cl_buf_resize(&b, 101), CL_ERR_LIMIT, "limit");
    cl_buf_free(&b);
}

static void test_hex(void **state)
{
    (void)state;
    cl_buf b, h;
    cl_buf_init(&b, 100);
    cl_buf_init(&h, 100);
    assert_ok(cl_hex_decode("00fFa5", 6, &b));
    assert_memory_equal(b.data, "\x00\xff\xa5", 3);
    assert_ok(cl_buf_append_hex(&h, b.data, b.len));
    assert_string_equal(cl_buf_cstr(&h), "00ffa5");
    cl_buf_reset(&b);
    assert_fails(cl_hex_decode("abc", 3, &b), CL_ERR_FORMAT, "odd length");
    assert_fails(cl_hex_decode("zz", 2, &b), CL_ERR_FORMAT, "position 0");
    assert_fails(cl_hex_decode("0g", 2, &b), CL_ERR_FORMAT, "position 1");
    cl_buf_free(&b);
    cl_buf_free(&h);
}

static void test_read_file(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 4);
    assert_fails(cl_buf_read_file(&b, "/nonexistent/file"), CL_ERR_IO, "cannot open /nonexistent/file");
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/five", t_tmpdir());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("12345", f);
    fclose(f);
    assert_fails(cl_buf_read_file(&b, path), CL_ERR_LIMIT, "reading");
    cl_buf_free(&b);
    cl_buf_init(&b, 5);
    assert_ok(cl_buf_read_file(&b, path));
    assert_string_equal(cl_buf_cstr(&b), "12345");
    cl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grows_and_terminates),
        cmocka_unit_test(test_cap_is_enforced),
        cmocka_unit_test(test_integers_big_endian),
        cmocka_unit_test(test_reader_never_reads_past_end),
        cmocka_unit_test(test_secret_buffer_grows_in_secure_memory),
        cmocka_unit_test(test_resize_and_truncate_wipe),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
