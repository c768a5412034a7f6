/* SPDX-License-Identifier: Apache-2.0 */
/* The key spec table (src/kms/keyspec.c), against the service model's enums and the Key spec
 * reference, and against what asym.c implements. */
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <stdlib.h>
#include <string.h>

#include "asym.h"
#include "keyspec.h"
#include "test_util.h"

/* KeySpec enum of botocore's kms/2014-11-01/service-2.json (1.38), in its order: the
 * independent source of the names and of their order. */
static const char *const model_specs[] = {"RSA_2048",
                                          "RSA_3072",
                                          "RSA_4096",
                                          "ECC_NIST_P256",
                                          "ECC_NIST_P384",
                                          "ECC_NIST_P521",
                                          "ECC_SECG_P256K1",
                                          "SYMMETRIC_DEFAULT",
                                          "HMAC_224",
                                          "HMAC_256",
                                          "HMAC_384",
                                          "HMAC_512",
                                          "SM2",
                                          "ML_DSA_44",
                                          "ML_DSA_65",
                                          "ML_DSA_87",
                                          "ECC_NIST_EDWARDS25519",
                                          NULL};

static void test_names_are_the_model(void **state)
{
    (void)state;
    const char *names[32];
    kms_spec_names(false, names, 32);
    size_t n = 0;
    for (; names[n] != NULL; n++) {
        assert_non_null(model_specs[n]);
        assert_string_equal(names[n], model_specs[n]);
        assert_true(kms_spec_in_model(names[n]));
    }
    assert_null(model_specs[n]);
    /* Built: every spec AWS offers but SM2, and the ML-DSA and Ed25519 specs OpenSSL 3.0 lacks. */
    kms_spec_names(true, names, 32);
    for (n = 0; names[n] != NULL; n++) assert_non_null(kms_spec_find(names[n]));
    assert_int_equal(n, 12);
    assert_string_equal(names[11], "HMAC_512");
    for (size_t i = 12; model_specs[i] != NULL; i++) {
        assert_null(kms_spec_find(model_specs[i]));
        const kms_spec_info *row = kms_spec_row(model_specs[i]);
        assert_non_null(row);
        assert_non_null(row->why_not);
    }
    assert_non_null(strstr(kms_spec_row("SM2")->why_not, "China Regions"));
    assert_false(kms_spec_in_model("RSA_1024"));
    assert_false(kms_spec_in_model("rsa_2048"));
    assert_false(kms_spec_in_model(""));
    assert_null(kms_spec_row("HMAC_1024"));
    /* A short output array is cut, NUL-ended. */
    kms_spec_names(false, names, 3);
    assert_string_equal(names[1], "RSA_3072");
    assert_null(names[2]);
}

static void test_usages(void **state)
{
    (void)state;
    static const char *const usage_names[] = {"SIGN_VERIFY", "ENCRYPT_DECRYPT", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"};
    static const char *const members[] = {"SigningAlgorithms", "EncryptionAlgorithms", "MacAlgorithms",
                                          "KeyAgreementAlgorithms"};
    for (int u = 0; u < KMS_USAGE_N; u++) {
        assert_int_equal(kms_usage_find(usage_names[u]), u);
        assert_string_equal(kms_usage_name((kms_usage)u), usage_names[u]);
        assert_string_equal(kms_usage_algs_member((kms_usage)u), members[u]);
    }
    assert_int_equal(kms_usage_find("SIGN_ONLY"), KMS_USAGE_N);
    assert_int_equal(kms_usage_find("sign_verify"), KMS_USAGE_N);
    assert_null(kms_usage_algs_member(KMS_USAGE_N));
    /* CreateKey's KeyUsage: RSA encrypts or signs; NIST ECC signs or agrees keys; secp256k1 only
     * signs; HMAC only MACs; the symmetric default only encrypts. */
    static const struct {
        const char *spec;
        bool usage[KMS_USAGE_N];
    } cases[] = {
        {"RSA_2048", {true, true, false, false}},         {"RSA_4096", {true, true, false, false}},
        {"ECC_NIST_P256", {true, false, false, true}},    {"ECC_NIST_P521", {true, false, false, true}},
        {"ECC_SECG_P256K1", {true, false, false, false}}, {"SYMMETRIC_DEFAULT", {false, true, false, false}},
        {"HMAC_224", {false, false, true, false}},        {"HMAC_512", {false, false, true, false}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const kms_spec_info *s = kms_spec_find(cases[i].spec);
        assert_non_null(s);
        for (int u = 0; u < KMS_USAGE_N; u++) {
            assert_int_equal(kms_spec_has_usage(s, (kms_usage)u), cases[i].usage[u]);
            json_t *a = kms_spec_algs_json(s, (kms_usage)u);
            assert_int_equal(a != NULL, cases[i].usage[u]);
            json_decref(a);
        }
        assert_false(kms_spec_has_usage(s, KMS_USAGE_N));
    }
}

static void test_algorithms(void **state)
{
    (void)state;
    const kms_spec_info *p521 = kms_spec_find("ECC_NIST_P521"), *k1 = kms_spec_find("ECC_SECG_P256K1");
    const kms_spec_info *rsa = kms_spec_find("RSA_3072"), *h384 = kms_spec_find("HMAC_384");
    assert_true(kms_spec_allows(p521, KMS_USAGE_SIGN_VERIFY, "ECDSA_SHA_512"));
    assert_false(kms_spec_allows(p521, KMS_USAGE_SIGN_VERIFY, "ECDSA_SHA_384"));
    assert_true(kms_spec_allows(p521, KMS_USAGE_KEY_AGREEMENT, "ECDH"));
    assert_false(kms_spec_allows(p521, KMS_USAGE_SIGN_VERIFY, "ECDH"));
    assert_true(kms_spec_allows(k1, KMS_USAGE_SIGN_VERIFY, "ECDSA_SHA_256"));
    assert_false(kms_spec_allows(k1, KMS_USAGE_KEY_AGREEMENT, "ECDH"));
    assert_true(kms_spec_allows(rsa, KMS_USAGE_ENCRYPT_DECRYPT, "RSAES_OAEP_SHA_1"));
    assert_true(kms_spec_allows(rsa, KMS_USAGE_ENCRYPT_DECRYPT, "RSAES_OAEP_SHA_256"));
    assert_false(kms_spec_allows(rsa, KMS_USAGE_ENCRYPT_DECRYPT, "RSASSA_PSS_SHA_256"));
    assert_false(kms_spec_allows(rsa, KMS_USAGE_ENCRYPT_DECRYPT, "SYMMETRIC_DEFAULT"));
    assert_false(kms_spec_allows(rsa, KMS_USAGE_SIGN_VERIFY, "RSAES_OAEP_SHA_256"));
    assert_true(kms_spec_allows(rsa, KMS_USAGE_SIGN_VERIFY, "RSASSA_PKCS1_V1_5_SHA_512"));
    assert_true(kms_spec_allows(h384, KMS_USAGE_GENERATE_VERIFY_MAC, "HMAC_SHA_384"));
    assert_false(kms_spec_allows(h384, KMS_USAGE_GENERATE_VERIFY_MAC, "HMAC_SHA_256"));
    json_t *a = kms_spec_algs_json(rsa, KMS_USAGE_ENCRYPT_DECRYPT);
    assert_int_equal(json_array_size(a), 2);
    assert_string_equal(json_string_value(json_array_get(a, 0)), "RSAES_OAEP_SHA_1");
    json_decref(a);
    a = kms_spec_algs_json(rsa, KMS_USAGE_SIGN_VERIFY);
    assert_int_equal(json_array_size(a), 6);
    json_decref(a);
}

/* Every algorithm the table offers is one asym.c implements, for the key kind it is offered
 * with; every key's parameters are OpenSSL's. */
static void test_table_is_implemented(void **state)
{
    (void)state;
    const char *names[32];
    kms_spec_names(true, names, 32);
    for (size_t i = 0; names[i] != NULL; i++) {
        const kms_spec_info *s = kms_spec_find(names[i]);
        bool any = false;
        for (int u = 0; u < KMS_USAGE_N; u++) {
            for (size_t j = 0; s->algs[u] != NULL && s->algs[u][j] != NULL; j++) {
                const char *alg = s->algs[u][j];
                any = true;
                if (u == KMS_USAGE_SIGN_VERIFY) {
                    const kms_sig_alg *sa = kms_sig_alg_find(alg);
                    assert_non_null(sa);
                    assert_int_equal(sa->scheme == KMS_SIG_ECDSA, s->kind == KMS_KIND_EC);
                    EVP_MD *md = EVP_MD_fetch(NULL, sa->md, NULL);
                    assert_non_null(md);
                    assert_int_equal(EVP_MD_get_size(md), (int)sa->md_len);
                    EVP_MD_free(md);
                } else if (u == KMS_USAGE_ENCRYPT_DECRYPT) {
                    assert_true(s->kind == KMS_KIND_RSA ? kms_enc_alg_find(alg) != NULL
                                                        : strcmp(alg, "SYMMETRIC_DEFAULT") == 0);
                } else if (u == KMS_USAGE_KEY_AGREEMENT) {
                    assert_int_equal(s->kind, KMS_KIND_EC);
                    assert_string_equal(alg, "ECDH");
                }
            }
        }
        assert_true(any);
        if (s->kind == KMS_KIND_EC) assert_int_not_equal(OBJ_sn2nid(s->curve), NID_undef);
        if (s->kind == KMS_KIND_RSA) assert_int_equal(s->rsa_bits, (unsigned)strtoul(s->name + 4, NULL, 10));
        if (s->kind == KMS_KIND_HMAC) {
            /* HMAC_<n>: an n-bit key and MAC with SHA-<n>. */
            EVP_MD *md = EVP_MD_fetch(NULL, s->mac_md, NULL);
            assert_non_null(md);
            assert_int_equal(EVP_MD_get_size(md), (int)s->mac_len);
            assert_int_equal(8 * s->mac_len, (size_t)strtoul(s->name + 5, NULL, 10));
            EVP_MD_free(md);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_are_the_model),
        cmocka_unit_test(test_usages),
        cmocka_unit_test(test_algorithms),
        cmocka_unit_test(test_table_is_implemented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
