/* SPDX-License-Identifier: Apache-2.0 */
/* PKCS#10 requests with the attestation attribute of draft-ietf-lamps-csr-attestation (csr.c):
 * what cl_csr_make writes cl_csr_parse reads back (and OpenSSL verifies); a request altered after
 * signing, one without the attribute, and bytes that are no request are told apart. */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>

#include "cloister/csr.h"

#include "test_util.h"

static const uint8_t t_doc[] = "not really a COSE_Sign1, but bytes the attribute carries as they are";

static void t_roundtrip(cl_key_type t, const char *desc)
{
    void *k = NULL;
    cl_buf pem, spki;
    cl_buf_init(&pem, CL_CSR_MAX);
    cl_buf_init(&spki, 16384);
    assert_ok(cl_key_generate(t, &k));
    assert_ok(cl_key_spki(k, &spki));
    assert_ok(cl_csr_make(k, "api", t_doc, sizeof(t_doc), &pem));
    assert_non_null(strstr(cl_buf_cstr(&pem), "-----BEGIN CERTIFICATE REQUEST-----"));
    /* OpenSSL reads it and checks its signature on its own. */
    BIO *b = BIO_new_mem_buf(pem.data, (int)pem.len);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    assert_non_null(req);
    assert_int_equal(X509_REQ_verify(req, X509_REQ_get0_pubkey(req)), 1);
    X509_REQ_free(req);
    BIO_free(b);
    cl_csr c;
    cl_csr_init(&c);
    assert_ok(cl_csr_parse(pem.data, pem.len, &c));
    assert_true(c.has_evidence);
    assert_int_equal(c.evidence.len, sizeof(t_doc));
    assert_memory_equal(c.evidence.data, t_doc, sizeof(t_doc));
    assert_int_equal(c.key_type, t);
    assert_string_equal(c.key_desc, desc);
    assert_int_equal(c.spki.len, spki.len);
    assert_memory_equal(c.spki.data, spki.data, spki.len);
    cl_csr_free(&c);
    cl_buf_free(&pem);
    cl_buf_free(&spki);
    cl_key_free(k);
}

static void test_roundtrip(void **state)
{
    (void)state;
    t_roundtrip(CL_KEY_EC_P256, "EC prime256v1");
    t_roundtrip(CL_KEY_EC_P384, "EC secp384r1");
    t_roundtrip(CL_KEY_RSA_2048, "RSA 2048 bits");
}

static void test_refusals(void **state)
{
    (void)state;
    void *k = NULL;
    cl_buf pem;
    cl_buf_init(&pem, CL_CSR_MAX);
    assert_ok(cl_key_generate(CL_KEY_EC_P256, &k));
    assert_ok(cl_csr_make(k, "api", t_doc, sizeof(t_doc), &pem));
    /* The DER, its document changed after signing: the signature no longer verifies. */
    BIO *b = BIO_new_mem_buf(pem.data, (int)pem.len);
    X509_REQ *req = PEM_read_bio_X509_REQ(b, NULL, NULL, NULL);
    unsigned char *der = NULL;
    int len = i2d_X509_REQ(req, &der);
    assert_true(len > 0);
    uint8_t *hit = memmem(der, (size_t)len, "really", 6);
    assert_non_null(hit);
    hit[0] = 'R';
    cl_csr c;
    cl_csr_init(&c);
    assert_fails(cl_csr_parse(der, (size_t)len, &c), CL_ERR_AUTH, "signature does not verify");
    assert_false(c.has_evidence);
    /* A request without the attribute parses, without evidence. */
    X509_REQ *plain = X509_REQ_new();
    assert_int_equal(X509_REQ_set_pubkey(plain, k), 1);
    assert_true(X509_REQ_sign(plain, k, EVP_sha256()) > 0);
    unsigned char *pder = NULL;
    int plen = i2d_X509_REQ(plain, &pder);
    assert_ok(cl_csr_parse(pder, (size_t)plen, &c));
    assert_false(c.has_evidence);
    cl_csr_free(&c);
    cl_csr_init(&c);
    assert_fails(cl_csr_parse((const uint8_t *)"hello", 5, &c), CL_ERR_FORMAT, "neither PEM nor DER PKCS#10");
    assert_fails(cl_csr_parse((const uint8_t *)"-----BEGIN X-----\n", 18, &c), CL_ERR_FORMAT,
                 "is not PEM \"CERTIFICATE REQUEST\"");
    assert_fails(cl_csr_parse(pem.data, 0, &c), CL_ERR_FORMAT, "empty");
    assert_fails(cl_csr_make(k, "api", NULL, 0, &pem), CL_ERR_USAGE, "needs an attestation document");
    cl_csr_free(&c);
    OPENSSL_free(der);
    OPENSSL_free(pder);
    X509_REQ_free(req);
    X509_REQ_free(plain);
    BIO_free(b);
    cl_buf_free(&pem);
    cl_key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
