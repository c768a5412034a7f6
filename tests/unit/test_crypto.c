/* SPDX-License-Identifier: Apache-2.0 */
/* Known-answer tests from the primitives' own specifications. */
#include <string.h>

#include "cloister/crypto.h"

#include "test_util.h"

static void test_sha256_fips180(void **state)
{
    (void)state;
    uint8_t out[32];
    cl_buf want;
    t_hex(&want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_ok(cl_sha256("abc", 3, out));
    assert_memory_equal(out, want.data, 32);
    cl_buf_free(&want);
}

static void test_hmac_rfc4231_case2(void **state)
{
    (void)state;
    uint8_t out[32];
    cl_buf want;
    t_hex(&want, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    const char *data = "what do ya want for nothing?";
    assert_ok(cl_hmac_sha256((const uint8_t *)"Jefe", 4, data, strlen(data), out));
    assert_memory_equal(out, want.data, 32);
    cl_buf_free(&want);
}

static void test_hkdf_rfc5869_case1(void **state)
{
    (void)state;
    cl_buf ikm, salt, info, okm;
    t_hex(&ikm, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
    t_hex(&salt, "000102030405060708090a0b0c");
    t_hex(&info, "f0f1f2f3f4f5f6f7f8f9");
    t_hex(&okm, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    uint8_t out[42];
    assert_ok(cl_hkdf_sha256(ikm.data, ikm.len, salt.data, salt.len, info.data, info.len, out, sizeof(out)));
    assert_memory_equal(out, okm.data, 42);
    cl_buf_free(&ikm);
    cl_buf_free(&salt);
    cl_buf_free(&info);
    cl_buf_free(&okm);
}

/* "The Galois/Counter Mode of Operation (GCM)", McGrew and Viega, test case 16. */
static void test_gcm_mcgrew_viega_case16(void **state)
{
    (void)state;
    cl_buf k, p, a, iv, c, t;
    t_hex(&k, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
    t_hex(&p, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5"
              "aa0de657ba637b39");
    t_hex(&a, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
    t_hex(&iv, "cafebabefacedbaddecaf888");
    t_hex(&c, "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e63"
              "93ba7a0abcc9f662");
    t_hex(&t, "76fc6ece0f4e1768cddf8853bb2d551b");
    uint8_t out[64], tag[16], back[64];
    cl_gcm enc, dec;
    assert_ok(cl_gcm_init(&enc, k.data, true));
    assert_ok(cl_gcm_seal(&enc, iv.data, a.data, a.len, p.data, p.len, out, tag));
    assert_memory_equal(out, c.data, c.len);
    assert_memory_equal(tag, t.data, 16);
    /* The same context serves a second message (only the IV is reset). */
    assert_ok(cl_gcm_seal(&enc, iv.data, a.data, a.len, p.data, p.len, out, tag));
    assert_memory_equal(tag, t.data, 16);
    assert_ok(cl_gcm_init(&dec, k.data, false));
    assert_ok(cl_gcm_open(&dec, iv.data, a.data, a.len, c.data, c.len, t.data, back));
    assert_memory_equal(back, p.data, p.len);
    /* Any changed bit in ciphertext, AAD or tag fails, and leaves no plaintext. */
    c.data[5] ^= 1;
    assert_fails(cl_gcm_open(&dec, iv.data, a.data, a.len, c.data, c.len, t.data, back), CL_ERR_AUTH, "tag");
    for (size_t i = 0; i < c.len; i++) assert_int_equal(back[i], 0);
    c.data[5] ^= 1;
    a.data[0] ^= 0x80;
    assert_fails(cl_gcm_open(&dec, iv.data, a.data, a.len, c.data, c.len, t.data, back), CL_ERR_AUTH, "tag");
    a.data[0] ^= 0x80;
    t.data[15] ^= 1;
    assert_fails(cl_gcm_open(&dec, iv.data, a.data, a.len, c.data, c.len, t.data, back), CL_ERR_AUTH, "tag");
    t.data[15] ^= 1;
    assert_ok(cl_gcm_open(&dec, iv.data, a.data, a.len, c.data, c.len, t.data, back));
    /* A context is for one direction only. */
    assert_fails(cl_gcm_open(&enc, iv.data, a.data, a.len, c.data, c.len, t.data, back), CL_ERR_INTERNAL, "encryption");
    cl_gcm_free(&enc);
    cl_gcm_free(&dec);
    cl_buf_free(&k);
    cl_buf_free(&p);
    cl_buf_free(&a);
    cl_buf_free(&iv);
    cl_buf_free(&c);
    cl_buf_free(&t);
}

/* RFC 4648 section 10. */
static void test_base64_rfc4648(void **state)
{
    (void)state;
    static const char *const vec[][2] = {{"", ""},
                                         {"f", "Zg=="},
                                         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},
                                         {"foob", "Zm9vYg=="},
                                         {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        cl_buf enc, dec;
        cl_buf_init(&enc, 100);
        cl_buf_init(&dec, 100);
        assert_ok(cl_base64_encode((const uint8_t *)vec[i][0], strlen(vec[i][0]), false, &enc));
        assert_string_equal(cl_buf_cstr(&enc), vec[i][1]);
        assert_ok(cl_base64_decode(vec[i][1], strlen(vec[i][1]), false, &dec));
        assert_int_equal(dec.len, strlen(vec[i][0]));
        assert_memory_equal(dec.data, vec[i][0], dec.len);
        cl_buf_free(&enc);
        cl_buf_free(&dec);
    }
}

/* A buffer capped at exactly the decoded length takes it (the padding needs no room), one
 * byte more is refused: 4096 and 4097 bytes, KMS's Plaintext bound (docs/security.md, finding 14). */
static void test_base64_decode_exact_cap(void **state)
{
    (void)state;
    uint8_t raw[4097];
    for (size_t i = 0; i < sizeof(raw); i++) raw[i] = (uint8_t)(i * 7);
    for (size_t n = 4094; n <= 4096; n++) { /* padding of 1, 2 and 0 bytes */
        cl_buf enc, dec;
        cl_buf_init(&enc, 8192);
        cl_buf_init(&dec, n);
        assert_ok(cl_base64_encode(raw, n, false, &enc));
        assert_ok(cl_base64_decode((const char *)enc.data, enc.len, false, &dec));
        assert_int_equal(dec.len, n);
        assert_memory_equal(dec.data, raw, n);
        cl_buf_free(&enc);
        cl_buf_free(&dec);
    }
    cl_buf enc, dec;
    cl_buf_init(&enc, 8192);
    cl_buf_init(&dec, 4096);
    assert_ok(cl_base64_encode(raw, 4097, false, &enc));
    assert_fails(cl_base64_decode((const char *)enc.data, enc.len, false, &dec), CL_ERR_LIMIT, "limit of 4096");
    cl_buf_free(&enc);
    cl_buf_free(&dec);
}

static void test_base64url_alphabet_and_strictness(void **state)
{
    (void)state;
    const uint8_t raw[] = {0xfb, 0xff, 0xbf};
    cl_buf b;
    cl_buf_init(&b, 100);
    assert_ok(cl_base64_encode(raw, 3, true, &b));
    assert_string_equal(cl_buf_cstr(&b), "-_-_");
    cl_buf_reset(&b);
    assert_ok(cl_base64_encode(raw, 3, false, &b));
    assert_string_equal(cl_buf_cstr(&b), "+/+/");
    cl_buf_reset(&b);
    assert_ok(cl_base64_decode("-_-_", 4, true, &b));
    assert_memory_equal(b.data, raw, 3);
    cl_buf_reset(&b);
    assert_fails(cl_base64_decode("+/+/", 4, true, &b), CL_ERR_FORMAT, "invalid base64url character at position 0");
    assert_fails(cl_base64_decode("-_-_", 4, false, &b), CL_ERR_FORMAT, "invalid base64 character");
    assert_fails(cl_base64_decode("Zm9", 3, false, &b), CL_ERR_FORMAT, "multiple of 4");
    assert_fails(cl_base64_decode("Zm=v", 4, false, &b), CL_ERR_FORMAT, "position 2");
    assert_fails(cl_base64_decode("Z===", 4, false, &b), CL_ERR_FORMAT, "invalid");
    assert_fails(cl_base64_decode("Zm9v\n", 5, false, &b), CL_ERR_FORMAT, "multiple of 4");
    assert_fails(cl_base64_decode("Zh==", 4, false, &b), CL_ERR_FORMAT, "non-canonical"); /* "Zg==" is canonical */
    assert_int_equal(b.len, 0);
    cl_buf_free(&b);
}

static void test_uuid4_form(void **state)
{
    (void)state;
    char a[CL_UUID_TEXT_LEN + 1], b[CL_UUID_TEXT_LEN + 1];
    assert_ok(cl_uuid4(a));
    assert_ok(cl_uuid4(b));
    assert_int_equal(strlen(a), 36);
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            assert_int_equal(a[i], '-');
        else
            assert_non_null(strchr("0123456789abcdef", a[i]));
    }
    assert_int_equal(a[14], '4');           /* version 4 */
    assert_non_null(strchr("89ab", a[19])); /* RFC 9562 variant */
    assert_true(strcmp(a, b) != 0);
}

static void test_random_differs(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    assert_ok(cl_random(a, sizeof(a)));
    assert_ok(cl_random_secret(b, sizeof(b)));
    assert_memory_not_equal(a, b, sizeof(a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips180),
        cmocka_unit_test(test_hmac_rfc4231_case2),
        cmocka_unit_test(test_hkdf_rfc5869_case1),
        cmocka_unit_test(test_gcm_mcgrew_viega_case16),
        cmocka_unit_test(test_base64_rfc4648),
        cmocka_unit_test(test_base64url_alphabet_and_strictness),
        cmocka_unit_test(test_base64_decode_exact_cap),
        cmocka_unit_test(test_random_differs),
        cmocka_unit_test(test_uuid4_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
