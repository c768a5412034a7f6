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

static void test_reader_little_endian_and_peek(void **state)
{
    (void)state;
    const uint8_t data[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e};
    cl_reader r = cl_reader_make(data, sizeof(data));
    uint8_t b = 0;
    assert_true(cl_reader_peek_u8(&r, &b));
    assert_int_equal(b, 1);
    assert_true(cl_reader_next_is(&r, 1));
    assert_false(cl_reader_next_is(&r, 2));
    assert_int_equal(cl_reader_offset(&r), 0); /* peeking consumes nothing */
    uint16_t v16;
    uint32_t v32;
    uint64_t v64;
    assert_ok(cl_reader_u16le(&r, &v16));
    assert_int_equal(v16, 0x0201);
    assert_ok(cl_reader_u32le(&r, &v32));
    assert_int_equal(v32, 0x06050403);
    assert_ok(cl_reader_u64le(&r, &v64));
    assert_true(v64 == 0x0e0d0c0b0a090807ull);
    assert_false(cl_reader_peek_u8(&r, &b));
    assert_fails(cl_reader_u16le(&r, &v16), CL_ERR_FORMAT, "need 2 bytes at offset 14");
}

static void test_reader_scanning(void **state)
{
    (void)state;
    const char *text = "  key=value, next";
    cl_reader r = cl_reader_make(text, strlen(text));
    assert_int_equal(cl_reader_skip_any(&r, " "), 2);
    assert_true(cl_reader_starts_with_str(&r, "key="));
    assert_false(cl_reader_starts_with_str(&r, "kez"));
    cl_reader key, rest, digits;
    bool found = false;
    cl_reader_until(&r, '=', &key, &found);
    assert_true(found);
    assert_int_equal(cl_reader_remaining(&key), 3);
    assert_true(cl_reader_starts_with_str(&key, "key"));
    assert_fails(cl_reader_expect(&r, ":", 1, "a colon"), CL_ERR_FORMAT, "expected a colon at offset 5");
    assert_int_equal(cl_reader_offset(&r), 5); /* nothing consumed by a failed expect */
    assert_ok(cl_reader_expect(&r, "=", 1, "'='"));
    cl_reader_until_any(&r, ",;", &rest, &found);
    assert_true(found);
    assert_int_equal(cl_reader_remaining(&rest), 5);
    cl_reader_until(&r, '#', &rest, &found); /* absent: the rest */
    assert_false(found);
    assert_int_equal(cl_reader_remaining(&rest), 6);
    assert_int_equal(cl_reader_remaining(&r), 0);

    cl_reader n = cl_reader_make("0123x", 5);
    assert_int_equal(cl_reader_span(&n, "0123456789", &digits), 4);
    assert_true(cl_reader_next_is(&n, 'x'));
    cl_reader sub;
    cl_reader all = cl_reader_make("abcdef", 6);
    assert_ok(cl_reader_sub(&all, 4, &sub));
    assert_int_equal(cl_reader_remaining(&sub), 4);
    assert_int_equal(cl_reader_remaining(&all), 2);
    assert_fails(cl_reader_sub(&all, 3, &sub), CL_ERR_FORMAT, "need 3 bytes at offset 4, only 2 remain");

    /* A copy is a mark: what was consumed since can be borrowed. */
    cl_reader m = cl_reader_make("header:body", 11);
    cl_reader mark = m;
    assert_ok(cl_reader_skip(&m, 7));
    const uint8_t *p;
    size_t len;
    assert_ok(cl_reader_since(&mark, &m, &p, &len));
    assert_int_equal(len, 7);
    assert_memory_equal(p, "header:", 7);
    assert_fails(cl_reader_since(&m, &mark, &p, &len), CL_ERR_INTERNAL, "not an earlier state");
    cl_reader_rest(&m, &p, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(p, "body", 4);
}

static void test_reader_decimal(void **state)
{
    (void)state;
    uint64_t v = 0;
    cl_reader r = cl_reader_make("18446744073709551615,", 21);
    assert_ok(cl_reader_decimal(&r, UINT64_MAX, &v));
    assert_true(v == UINT64_MAX);
    assert_true(cl_reader_next_is(&r, ','));
    r = cl_reader_make("18446744073709551616", 20); /* 2^64: no wrap-around */
    assert_fails(cl_reader_decimal(&r, UINT64_MAX, &v), CL_ERR_LIMIT, "exceeds 18446744073709551615");
    r = cl_reader_make("4294967298", 10); /* the --threads bug: 2^32 + 2 is not 2 */
    assert_fails(cl_reader_decimal(&r, 1024, &v), CL_ERR_LIMIT, "exceeds 1024");
    r = cl_reader_make("9", 1);
    assert_fails(cl_reader_decimal(&r, 5, &v), CL_ERR_LIMIT, "exceeds 5");
    r = cl_reader_make("x1", 2);
    assert_fails(cl_reader_decimal(&r, 5, &v), CL_ERR_FORMAT, "expected a decimal number at offset 0");
    r = cl_reader_make("", 0);
    assert_fails(cl_reader_decimal(&r, 5, &v), CL_ERR_FORMAT, "expected a decimal number");
}

static void test_parse_numbers(void **state)
{
    (void)state;
    uint64_t u = 0;
    int64_t i = 0;
    assert_ok(cl_parse_uint("16", 1, 1024, "--threads", &u));
    assert_int_equal(u, 16);
    assert_fails(cl_parse_uint("4294967298", 1, 1024, "--threads", &u), CL_ERR_USAGE,
                 "--threads must be a whole number from 1 to 1024, not '4294967298'");
    assert_fails(cl_parse_uint("0", 1, 1024, "--threads", &u), CL_ERR_USAGE, "from 1 to 1024, not '0'");
    assert_fails(cl_parse_uint("-3", 0, 9, "--seed", &u), CL_ERR_USAGE, "not '-3'");
    assert_fails(cl_parse_uint("+3", 0, 9, "--seed", &u), CL_ERR_USAGE, "not '+3'");
    assert_fails(cl_parse_uint(" 3", 0, 9, "--seed", &u), CL_ERR_USAGE, "not ' 3'");
    assert_fails(cl_parse_uint("3x", 0, 9, "--seed", &u), CL_ERR_USAGE, "not '3x'");
    assert_fails(cl_parse_uint("", 0, 9, "--seed", &u), CL_ERR_USAGE, "not ''");
    assert_fails(cl_parse_uint("18446744073709551616", 0, UINT64_MAX, "n", &u), CL_ERR_USAGE, "not '1844");
    assert_ok(cl_parse_uint("18446744073709551615", 0, UINT64_MAX, "n", &u));
    assert_true(u == UINT64_MAX);
    assert_ok(cl_parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, "t", &i));
    assert_true(i == INT64_MIN);
    assert_fails(cl_parse_int("-9223372036854775809", INT64_MIN, INT64_MAX, "t", &i), CL_ERR_USAGE, "not '-92");
    assert_ok(cl_parse_int("-5", -10, 10, "t", &i));
    assert_int_equal(i, -5);
    assert_fails(cl_parse_int("-", -10, 10, "t", &i), CL_ERR_USAGE, "from -10 to 10, not '-'");
    assert_fails(cl_parse_int("11", -10, 10, "t", &i), CL_ERR_USAGE, "not '11'");
}

static void test_length_prefixed_appends(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 1 << 20);
    assert_ok(cl_buf_append_u8_prefixed(&b, "ab", 2));
    assert_ok(cl_buf_append_u16be_prefixed(&b, "cde", 3));
    assert_ok(cl_buf_append_u32be_prefixed(&b, "", 0));
    const uint8_t want[] = {2, 'a', 'b', 0, 3, 'c', 'd', 'e', 0, 0, 0, 0};
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.data, want, sizeof(want));
    uint8_t big[300] = {0};
    assert_fails(cl_buf_append_u8_prefixed(&b, big, sizeof(big)), CL_ERR_LIMIT, "300 bytes do not fit a 1-byte");
    assert_int_equal(b.len, sizeof(want)); /* nothing appended */
    assert_ok(cl_buf_put_u32be_at(&b, 8, 0x01020304));
    assert_memory_equal(b.data + 8, "\x01\x02\x03\x04", 4);
    assert_fails(cl_buf_put_u32be_at(&b, 9, 1), CL_ERR_INTERNAL, "offset 9 is not within 12 bytes");
    assert_ok(cl_buf_append_str(&b, "x\r\n\n"));
    cl_buf_rstrip(&b, "\r\n");
    assert_ok(cl_buf_append_str(&b, "\r\n"));
    assert_true(cl_buf_chomp(&b, '\n'));
    assert_false(cl_buf_chomp(&b, '\n'));
    assert_true(cl_buf_chomp(&b, '\r'));
    assert_int_equal(b.len, sizeof(want) + 1);
    cl_buf_free(&b);
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

    /* The fixed-array form: whole, or cut at a byte boundary with "...". */
    const uint8_t bytes[4] = {0xde, 0xad, 0xbe, 0xef};
    char out[9], small[8], tiny[3];
    assert_string_equal(cl_hex_encode(bytes, 4, out, sizeof(out)), "deadbeef");
    assert_string_equal(cl_hex_encode(bytes, 4, small, sizeof(small)), "dead...");
    assert_string_equal(cl_hex_encode(bytes, 4, tiny, sizeof(tiny)), "");
    assert_string_equal(cl_hex_encode(NULL, 0, tiny, sizeof(tiny)), "");
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
        cmocka_unit_test(test_reader_little_endian_and_peek),
        cmocka_unit_test(test_reader_scanning),
        cmocka_unit_test(test_reader_decimal),
        cmocka_unit_test(test_length_prefixed_appends),
        cmocka_unit_test(test_parse_numbers),
        cmocka_unit_test(test_secret_buffer_grows_in_secure_memory),
        cmocka_unit_test(test_resize_and_truncate_wipe),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_read_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
