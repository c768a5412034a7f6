/* SPDX-License-Identifier: Apache-2.0 */
/* The Fernet specification's own vectors, then our edge cases. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cloister/fernet.h"

#include "test_util.h"

/* "1985-10-26T01:20:00-07:00" -> Unix seconds. */
static uint64_t parse_time(const char *s)
{
    int y, mo, d, h, mi, sec, oh, om;
    char sign;
    if (sscanf(s, "%d-%d-%dT%d:%d:%d%c%d:%d", &y, &mo, &d, &h, &mi, &sec, &sign, &oh, &om) != 9)
        fail_msg("bad time %s", s);
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
    long off = (oh * 3600L + om * 60L) * (sign == '-' ? -1 : 1);
    return (uint64_t)(timegm(&tm) - off);
}

static json_t *load(const char *name)
{
    char rel[128];
    json_error_t err;
    (void)snprintf(rel, sizeof(rel), "tests/vectors/fernet/%s", name);
    json_t *root = json_load_file(t_source_path(rel), 0, &err);
    if (root == NULL) fail_msg("cannot load %s: %s", rel, err.text);
    return root;
}

static void key_of(json_t *v, cl_buf *key)
{
    const char *s = json_string_value(json_object_get(v, "secret"));
    cl_buf_init_secret(key, 64);
    assert_ok(cl_fernet_key_decode(s, strlen(s), key));
}

static void test_spec_generate(void **state)
{
    (void)state;
    json_t *root = load("generate.json");
    size_t i, j;
    json_t *v, *b;
    assert_true(json_array_size(root) > 0);
    json_array_foreach(root, i, v)
    {
        cl_buf key, token;
        uint8_t iv[16];
        key_of(v, &key);
        json_array_foreach(json_object_get(v, "iv"), j, b) iv[j] = (uint8_t)json_integer_value(b);
        const char *src = json_string_value(json_object_get(v, "src"));
        cl_buf_init(&token, 1 << 20);
        assert_ok(cl_fernet_encrypt(key.data, (const uint8_t *)src, strlen(src),
                                    parse_time(json_string_value(json_object_get(v, "now"))), iv, &token));
        assert_string_equal(cl_buf_cstr(&token), json_string_value(json_object_get(v, "token")));
        cl_buf_free(&key);
        cl_buf_free(&token);
    }
    json_decref(root);
}

static void test_spec_verify(void **state)
{
    (void)state;
    json_t *root = load("verify.json");
    size_t i;
    json_t *v;
    assert_true(json_array_size(root) > 0);
    json_array_foreach(root, i, v)
    {
        cl_buf key, pt;
        key_of(v, &key);
        cl_buf_init(&pt, 1 << 20);
        const char *tok = json_string_value(json_object_get(v, "token"));
        assert_ok(cl_fernet_decrypt(key.data, tok, strlen(tok),
                                    parse_time(json_string_value(json_object_get(v, "now"))),
                                    json_integer_value(json_object_get(v, "ttl_sec")), &pt));
        assert_string_equal(cl_buf_cstr(&pt), json_string_value(json_object_get(v, "src")));
        cl_buf_free(&key);
        cl_buf_free(&pt);
    }
    json_decref(root);
}

static void test_spec_invalid(void **state)
{
    (void)state;
    json_t *root = load("invalid.json");
    size_t i;
    json_t *v;
    assert_true(json_array_size(root) >= 11);
    json_array_foreach(root, i, v)
    {
        cl_buf key, pt;
        key_of(v, &key);
        cl_buf_init(&pt, 1 << 20);
        const char *tok = json_string_value(json_object_get(v, "token"));
        cl_status rc =
            cl_fernet_decrypt(key.data, tok, strlen(tok), parse_time(json_string_value(json_object_get(v, "now"))),
                              json_integer_value(json_object_get(v, "ttl_sec")), &pt);
        if (rc == CL_OK) fail_msg("invalid vector accepted: %s", json_string_value(json_object_get(v, "desc")));
        assert_int_equal(pt.len, 0);
        cl_buf_free(&key);
        cl_buf_free(&pt);
    }
    json_decref(root);
}

static void test_round_trip_and_errors(void **state)
{
    (void)state;
    cl_buf keytext, key, other, token, pt;
    cl_buf_init_secret(&keytext, 64);
    cl_buf_init_secret(&key, 64);
    cl_buf_init_secret(&other, 64);
    assert_ok(cl_fernet_key_generate(&keytext));
    assert_int_equal(keytext.len, 44);
    assert_ok(cl_fernet_key_decode((const char *)keytext.data, keytext.len, &key));
    assert_ok(cl_fernet_key_decode("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n", 45, &other));
    cl_buf_init(&token, 1 << 20);
    cl_buf_init(&pt, 1 << 20);
    const size_t sizes[] = {0, 1, 15, 16, 17, 1000};
    uint8_t msg[1000];
    for (size_t i = 0; i < sizeof(msg); i++) msg[i] = (uint8_t)i;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        cl_buf_reset(&token);
        cl_buf_reset(&pt);
        assert_ok(cl_fernet_encrypt(key.data, msg, sizes[s], 1000, NULL, &token));
        assert_ok(cl_fernet_decrypt(key.data, (const char *)token.data, token.len, 1000, CL_FERNET_NO_TTL, &pt));
        assert_int_equal(pt.len, sizes[s]);
        if (sizes[s]) assert_memory_equal(pt.data, msg, sizes[s]);
    }
    uint64_t ts = 0;
    assert_ok(cl_fernet_timestamp(key.data, (const char *)token.data, token.len, &ts));
    assert_int_equal(ts, 1000);
    cl_buf_reset(&pt);
    /* Wrong key; TTL boundaries (ts + ttl == now is still valid); clock skew. */
    assert_fails(cl_fernet_decrypt(other.data, (const char *)token.data, token.len, 1000, -1, &pt), CL_ERR_AUTH,
                 "wrong key or tampered");
    assert_ok(cl_fernet_decrypt(key.data, (const char *)token.data, token.len, 1060, 60, &pt));
    cl_buf_reset(&pt);
    assert_fails(cl_fernet_decrypt(key.data, (const char *)token.data, token.len, 1061, 60, &pt), CL_ERR_EXPIRED,
                 "expired");
    assert_ok(cl_fernet_decrypt(key.data, (const char *)token.data, token.len, 940, 60, &pt));
    cl_buf_reset(&pt);
    assert_fails(cl_fernet_decrypt(key.data, (const char *)token.data, token.len, 939, 60, &pt), CL_ERR_EXPIRED,
                 "from the future");
    assert_fails(cl_fernet_decrypt(key.data, (const char *)token.data, token.len, 939, -1, &pt), CL_ERR_EXPIRED,
                 "from the future");
    /* Wrong version byte: 0x80 encodes as "gA"; "gQ" is 0x81. */
    token.data[1] = 'Q';
    assert_fails(cl_fernet_decrypt(key.data, (const char *)token.data, token.len, 1000, -1, &pt), CL_ERR_FORMAT,
                 "version byte 0x81");
    assert_int_equal(pt.len, 0);
    assert_fails(cl_fernet_key_decode("short", 5, &other), CL_ERR_FORMAT, "44 characters");
    assert_fails(cl_fernet_key_decode("", 0, &other), CL_ERR_FORMAT, "44 characters");
    cl_buf_free(&keytext);
    cl_buf_free(&key);
    cl_buf_free(&other);
    cl_buf_free(&token);
    cl_buf_free(&pt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_generate),
        cmocka_unit_test(test_spec_verify),
        cmocka_unit_test(test_spec_invalid),
        cmocka_unit_test(test_round_trip_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
