/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CiphertextForRecipient envelope (src/core/recipient_cms.c): what we seal opens, and
 * everything AWS KMS would not send is refused with a precise reason. The negative
 * envelopes are made here with OpenSSL's CMS API directly (other algorithms, other
 * recipients), not with the code under test. Interop with the openssl CLI and boto3 is
 * tests/integration/kms_recipient.py.
 */
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <string.h>

#include "cloister/recipient.h"

#include "test_util.h"

static cl_recipient key_a, key_b;

static int setup(void **state)
{
    (void)state;
    cl_recipient_init(&key_a);
    cl_recipient_init(&key_b);
    if (cl_recipient_generate(&key_a) != CL_OK || cl_recipient_generate(&key_b) != CL_OK) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cl_recipient_free(&key_a);
    cl_recipient_free(&key_b);
    return 0;
}

/* A self-signed certificate for k with a subjectKeyIdentifier, to build envelopes with. */
static X509 *cert_for(const cl_recipient *k)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    X509_NAME *n = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"t", -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x, n), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    assert_int_equal(X509_set_pubkey(x, k->pkey), 1);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_key_identifier, "hash");
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
    assert_true(X509_sign(x, k->pkey, EVP_sha256()) > 0);
    return x;
}

typedef struct env_opts {
    const EVP_CIPHER *cipher;
    int padding;               /* RSA_PKCS1_OAEP_PADDING or RSA_PKCS1_PADDING */
    const EVP_MD *md;          /* OAEP hash; NULL: default (SHA-1) */
    unsigned id_flags;         /* CMS_USE_KEYID or 0 (issuerAndSerialNumber) */
    const cl_recipient *extra; /* a second recipient */
} env_opts;

static void make_env(const cl_recipient *to, const env_opts *o, const void *pt, size_t n, cl_buf *out)
{
    X509 *x = cert_for(to);
    CMS_ContentInfo *cms = CMS_EnvelopedData_create(o->cipher);
    assert_non_null(cms);
    CMS_RecipientInfo *ri = CMS_add1_recipient_cert(cms, x, o->id_flags | CMS_KEY_PARAM);
    assert_non_null(ri);
    EVP_PKEY_CTX *pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
    assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, o->padding) > 0);
    if (o->md != NULL) {
        assert_true(EVP_PKEY_CTX_set_rsa_oaep_md(pctx, o->md) > 0);
        assert_true(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, o->md) > 0);
    }
    X509 *x2 = NULL;
    if (o->extra != NULL) {
        x2 = cert_for(o->extra);
        assert_non_null(CMS_add1_recipient_cert(cms, x2, CMS_USE_KEYID));
    }
    assert_int_equal(CMS_set_detached(cms, 0), 1);
    BIO *in = BIO_new_mem_buf(pt, (int)n);
    assert_int_equal(CMS_final(cms, in, NULL, CMS_BINARY), 1);
    unsigned char *der = NULL;
    int len = i2d_CMS_ContentInfo(cms, &der);
    assert_true(len > 0);
    assert_ok(cl_buf_append(out, der, (size_t)len));
    OPENSSL_free(der);
    BIO_free(in);
    CMS_ContentInfo_free(cms);
    X509_free(x);
    X509_free(x2);
}

static const uint8_t secret32[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void test_seal_open_round_trip(void **state)
{
    (void)state;
    cl_buf env, pt;
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    cl_buf_init_secret(&pt, 64);
    assert_ok(cl_recipient_seal(key_a.spki.data, key_a.spki.len, secret32, sizeof(secret32), &env));
    assert_ok(cl_recipient_open(&key_a, env.data, env.len, &pt));
    assert_int_equal(pt.len, 32);
    assert_memory_equal(pt.data, secret32, 32);
    /* Fresh content key and IV each time. */
    cl_buf env2;
    cl_buf_init(&env2, CL_RECIPIENT_MAX_CMS);
    assert_ok(cl_recipient_seal(key_a.spki.data, key_a.spki.len, secret32, sizeof(secret32), &env2));
    assert_true(env.len != env2.len || memcmp(env.data, env2.data, env.len) != 0);
    cl_buf_free(&env);
    cl_buf_free(&env2);
    cl_buf_free(&pt);
}

/* An envelope made by OpenSSL directly with AWS's parameters opens: the checks accept the real shape. */
static void test_opens_reference_envelope(void **state)
{
    (void)state;
    env_opts o = {EVP_aes_256_cbc(), RSA_PKCS1_OAEP_PADDING, EVP_sha256(), CMS_USE_KEYID, NULL};
    cl_buf env, pt;
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    cl_buf_init_secret(&pt, 64);
    make_env(&key_a, &o, "hello", 5, &env);
    assert_ok(cl_recipient_open(&key_a, env.data, env.len, &pt));
    assert_int_equal(pt.len, 5);
    assert_memory_equal(pt.data, "hello", 5);
    cl_buf_free(&env);
    cl_buf_free(&pt);
}

static void expect_refused(const env_opts *o, cl_status code, const char *needle)
{
    cl_buf env, pt;
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    cl_buf_init_secret(&pt, 64);
    make_env(&key_a, o, secret32, 32, &env);
    assert_fails(cl_recipient_open(&key_a, env.data, env.len, &pt), code, needle);
    assert_int_equal(pt.len, 0);
    cl_buf_free(&env);
    cl_buf_free(&pt);
}

static void test_wrong_algorithms_refused(void **state)
{
    (void)state;
    env_opts pkcs1 = {EVP_aes_256_cbc(), RSA_PKCS1_PADDING, NULL, CMS_USE_KEYID, NULL};
    expect_refused(&pkcs1, CL_ERR_UNSUPPORTED, "RSAES_OAEP_SHA_256");
    env_opts sha1 = {EVP_aes_256_cbc(), RSA_PKCS1_OAEP_PADDING, NULL, CMS_USE_KEYID, NULL};
    expect_refused(&sha1, CL_ERR_UNSUPPORTED, "SHA-256");
    env_opts sha384 = {EVP_aes_256_cbc(), RSA_PKCS1_OAEP_PADDING, EVP_sha384(), CMS_USE_KEYID, NULL};
    expect_refused(&sha384, CL_ERR_UNSUPPORTED, "not SHA-256");
    env_opts aes128 = {EVP_aes_128_cbc(), RSA_PKCS1_OAEP_PADDING, EVP_sha256(), CMS_USE_KEYID, NULL};
    expect_refused(&aes128, CL_ERR_UNSUPPORTED, "AES-256-CBC");
    env_opts gcm_like = {EVP_aes_256_ofb(), RSA_PKCS1_OAEP_PADDING, EVP_sha256(), CMS_USE_KEYID, NULL};
    expect_refused(&gcm_like, CL_ERR_UNSUPPORTED, "AES-256-CBC");
}

static void test_wrong_recipient_shapes_refused(void **state)
{
    (void)state;
    env_opts by_issuer = {EVP_aes_256_cbc(), RSA_PKCS1_OAEP_PADDING, EVP_sha256(), 0, NULL};
    expect_refused(&by_issuer, CL_ERR_FORMAT, "subjectKeyIdentifier");
    env_opts two = {EVP_aes_256_cbc(), RSA_PKCS1_OAEP_PADDING, EVP_sha256(), CMS_USE_KEYID, &key_b};
    expect_refused(&two, CL_ERR_FORMAT, "2 recipients");
}

static void test_wrong_key_refused(void **state)
{
    (void)state;
    cl_buf env, pt;
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    cl_buf_init_secret(&pt, 64);
    assert_ok(cl_recipient_seal(key_b.spki.data, key_b.spki.len, secret32, 32, &env));
    assert_fails(cl_recipient_open(&key_a, env.data, env.len, &pt), CL_ERR_KEY, "another key");
    assert_int_equal(pt.len, 0);
    cl_buf_free(&env);
    cl_buf_free(&pt);
}

/* Finds the 256-byte encryptedKey OCTET STRING (04 82 01 00) of an RSA-2048 recipient. */
static size_t find_encrypted_key(const cl_buf *env)
{
    for (size_t i = 0; i + 4 + 256 <= env->len; i++)
        if (env->data[i] == 0x04 && env->data[i + 1] == 0x82 && env->data[i + 2] == 0x01 && env->data[i + 3] == 0x00)
            return i + 4;
    fail_msg("no encryptedKey in the envelope");
    return 0;
}

static void test_tampered_refused(void **state)
{
    (void)state;
    cl_buf env, pt;
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    cl_buf_init_secret(&pt, 64);
    assert_ok(cl_recipient_seal(key_a.spki.data, key_a.spki.len, secret32, 32, &env));
    size_t ek = find_encrypted_key(&env);
    /* Every bit of the OAEP block matters. */
    for (size_t i = 0; i < 256; i += 37) {
        env.data[ek + i] ^= 0x01;
        assert_fails(cl_recipient_open(&key_a, env.data, env.len, &pt), CL_ERR_AUTH, "does not decrypt");
        assert_int_equal(pt.len, 0);
        env.data[ek + i] ^= 0x01;
    }
    /* The last ciphertext block changed: CBC padding no longer checks (no integrity beyond that in
     * this format; TLS to KMS is what protects the answer in transit, as AWS documents). */
    env.data[env.len - 1] ^= 0x80;
    cl_status rc = cl_recipient_open(&key_a, env.data, env.len, &pt);
    assert_true(rc == CL_ERR_AUTH || (rc == CL_OK && (pt.len != 32 || memcmp(pt.data, secret32, 32) != 0)));
    cl_buf_reset(&pt);
    env.data[env.len - 1] ^= 0x80;
    /* Truncated, trailing bytes, garbage, empty. */
    assert_fails(cl_recipient_open(&key_a, env.data, env.len - 1, &pt), CL_ERR_FORMAT, "not a CMS");
    assert_ok(cl_buf_append_u8(&env, 0));
    assert_fails(cl_recipient_open(&key_a, env.data, env.len, &pt), CL_ERR_FORMAT, "after the CMS");
    assert_fails(cl_recipient_open(&key_a, (const uint8_t *)"\x30\x03\x02\x01\x00", 5, &pt), CL_ERR_FORMAT,
                 "not a CMS");
    assert_fails(cl_recipient_open(&key_a, env.data, 0, &pt), CL_ERR_LIMIT, "out of range");
    assert_int_equal(pt.len, 0);
    cl_buf_free(&env);
    cl_buf_free(&pt);
}

static void test_seal_refuses_non_rsa_and_garbage(void **state)
{
    (void)state;
    cl_buf env;
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    EVP_PKEY *ec = EVP_EC_gen("P-384");
    assert_non_null(ec);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(ec, &der);
    assert_true(n > 0);
    assert_fails(cl_recipient_seal(der, (size_t)n, secret32, 32, &env), CL_ERR_UNSUPPORTED, "not an RSA key");
    OPENSSL_free(der);
    EVP_PKEY_free(ec);
    assert_fails(cl_recipient_seal((const uint8_t *)"\x30\x00", 2, secret32, 32, &env), CL_ERR_FORMAT,
                 "SubjectPublicKeyInfo");
    assert_int_equal(env.len, 0);
    cl_buf_free(&env);
}

static void test_pem_round_trip(void **state)
{
    (void)state;
    cl_buf pem, env, pt;
    cl_buf_init_secret(&pem, 8192);
    cl_buf_init(&env, CL_RECIPIENT_MAX_CMS);
    cl_buf_init_secret(&pt, 64);
    assert_ok(cl_recipient_private_pem(&key_a, &pem));
    cl_recipient k;
    cl_recipient_init(&k);
    assert_ok(cl_recipient_load_pem(&k, pem.data, pem.len));
    assert_int_equal(k.spki.len, key_a.spki.len);
    assert_memory_equal(k.spki.data, key_a.spki.data, k.spki.len);
    assert_ok(cl_recipient_seal(key_a.spki.data, key_a.spki.len, secret32, 32, &env));
    assert_ok(cl_recipient_open(&k, env.data, env.len, &pt));
    assert_memory_equal(pt.data, secret32, 32);
    cl_recipient_free(&k);
    cl_recipient_free(&k); /* idempotent */
    cl_buf_free(&pem);
    cl_buf_free(&env);
    cl_buf_free(&pt);
}

/* The Recipient key provider's own refusals; its KMS exchanges run in worker_envelope.py. */
static void test_recipient_provider_refusals(void **state)
{
    (void)state;
    cl_recipient r;
    cl_recipient_init(&r);
    assert_ok(cl_recipient_generate(&r));
    cl_kms_client *kms = NULL;
    cl_kms_client_config cfg = {.endpoint = "http://127.0.0.1:9",
                                .region = "us-east-1",
                                .access_key_id = "a",
                                .secret_access_key = "b",
                                .max_attempts = 1};
    assert_ok(cl_kms_client_new(&cfg, &kms));
    cl_key_provider *kp = NULL;
    const uint8_t doc[] = {1, 2, 3};
    assert_fails(cl_kms_recipient_provider_open(kms, &r, NULL, 0, NULL, &kp), CL_ERR_USAGE,
                 "needs a KMS client, a recipient key and an attestation document");
    assert_fails(cl_kms_recipient_provider_open(NULL, &r, doc, sizeof(doc), NULL, &kp), CL_ERR_USAGE,
                 "needs a KMS client");
    assert_null(kp);
    assert_ok(cl_kms_recipient_provider_open(kms, &r, doc, sizeof(doc), NULL, &kp));
    assert_string_equal(kp->name, "kms");
    cl_buf dk, wrapped, key_id;
    cl_buf_init_secret(&dk, 64);
    cl_buf_init(&wrapped, 4096);
    cl_buf_init(&key_id, 2048);
    assert_fails(kp->generate(kp, NULL, &dk, &wrapped, &key_id), CL_ERR_USAGE, "only unwraps");
    assert_int_equal(dk.len, 0);
    cl_buf_free(&dk);
    cl_buf_free(&wrapped);
    cl_buf_free(&key_id);
    cl_key_provider_destroy(kp);
    cl_kms_client_free(kms);
    cl_recipient_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open_round_trip),
        cmocka_unit_test(test_opens_reference_envelope),
        cmocka_unit_test(test_wrong_algorithms_refused),
        cmocka_unit_test(test_wrong_recipient_shapes_refused),
        cmocka_unit_test(test_wrong_key_refused),
        cmocka_unit_test(test_tampered_refused),
        cmocka_unit_test(test_seal_refuses_non_rsa_and_garbage),
        cmocka_unit_test(test_pem_round_trip),
        cmocka_unit_test(test_recipient_provider_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
