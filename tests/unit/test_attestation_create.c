/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Documents we create (the sim platform): they verify with our verifier and
 * with an independent one (tests/integration/attest_ref.py, Python
 * `cryptography`), in every shape real Nitro documents take; and our verifier
 * refuses documents whose certificates or payload break the rules, even when
 * correctly signed.
 */
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/attestation.h"

#include "attestation_internal.h"
#include "test_util.h"

#define T_ROOT_FROM 1577836800  /* 2020-01-01 */
#define T_ROOT_UNTIL 2208988800 /* 2040-01-01 */
#define T_LEAF_FROM 1767225600  /* 2026-01-01T00:00:00Z */
#define T_LEAF_UNTIL 1767236400 /* 2026-01-01T03:00:00Z */
#define T_AT 1767229200         /* 2026-01-01T01:00:00Z */

typedef struct sim_pki {
    cl_attest_key root_key, inter_key, leaf_key;
    cl_buf root, inter, leaf; /* DER */
    cl_attest_roots roots;
} sim_pki;

static void pki_init(sim_pki *k, bool leaf_ca, bool inter_ca)
{
    cl_buf_init(&k->root, 4096);
    cl_buf_init(&k->inter, 4096);
    cl_buf_init(&k->leaf, 4096);
    assert_ok(cl_attest_key_generate(&k->root_key));
    assert_ok(cl_attest_key_generate(&k->inter_key));
    assert_ok(cl_attest_key_generate(&k->leaf_key));
    cl_attest_cert_params rp = {"cloister-sim-root", T_ROOT_FROM, T_ROOT_UNTIL, true, -1};
    cl_attest_cert_params ip = {"cloister-sim-platform-ca", T_ROOT_FROM, T_ROOT_UNTIL, inter_ca, 0};
    cl_attest_cert_params lp = {"cloister-sim-enclave", T_LEAF_FROM, T_LEAF_UNTIL, leaf_ca, -1};
    assert_ok(cl_attest_cert_issue(&k->root_key, &rp, NULL, NULL, 0, &k->root));
    assert_ok(cl_attest_cert_issue(&k->inter_key, &ip, &k->root_key, k->root.data, k->root.len, &k->inter));
    assert_ok(cl_attest_cert_issue(&k->leaf_key, &lp, &k->inter_key, k->inter.data, k->inter.len, &k->leaf));
    cl_attest_roots_init(&k->roots);
    assert_ok(cl_attest_roots_add(&k->roots, k->root.data, k->root.len));
}

static void pki_free(sim_pki *k)
{
    cl_attest_key_free(&k->root_key);
    cl_attest_key_free(&k->inter_key);
    cl_attest_key_free(&k->leaf_key);
    cl_buf_free(&k->root);
    cl_buf_free(&k->inter);
    cl_buf_free(&k->leaf);
    cl_attest_roots_free(&k->roots);
}

typedef struct doc_inputs {
    uint8_t pcrs[16][CL_ATTEST_PCR_LEN];
    uint8_t pk[294], ud[1024], nonce[32];
    cl_attest_blob cab[2], pk_b, ud_b, nonce_b;
    cl_attest_create_params p;
} doc_inputs;

static void inputs_init(doc_inputs *in, const sim_pki *k, bool with_optional)
{
    memset(in, 0, sizeof(*in));
    for (int i = 0; i < 16; i++) memset(in->pcrs[i], 0x10 + i, CL_ATTEST_PCR_LEN);
    for (size_t i = 0; i < sizeof(in->pk); i++) in->pk[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof(in->ud); i++) in->ud[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < sizeof(in->nonce); i++) in->nonce[i] = (uint8_t)(0xa0 + i);
    in->cab[0] = (cl_attest_blob){k->root.data, k->root.len};
    in->cab[1] = (cl_attest_blob){k->inter.data, k->inter.len};
    in->pk_b = (cl_attest_blob){in->pk, sizeof(in->pk)};
    in->ud_b = (cl_attest_blob){in->ud, sizeof(in->ud)};
    in->nonce_b = (cl_attest_blob){in->nonce, sizeof(in->nonce)};
    in->p.module_id = "i-sim0000000000000000-enc0000000000000001";
    in->p.timestamp_ms = (uint64_t)T_AT * 1000 - 1234;
    in->p.pcrs = (const uint8_t(*)[CL_ATTEST_PCR_LEN])in->pcrs;
    in->p.pcr_count = 16;
    in->p.certificate = (cl_attest_blob){k->leaf.data, k->leaf.len};
    in->p.cabundle = in->cab;
    in->p.cabundle_len = 2;
    in->p.public_key = with_optional ? &in->pk_b : NULL;
    in->p.user_data = with_optional ? &in->ud_b : NULL;
    in->p.nonce = with_optional ? &in->nonce_b : NULL;
}

static CL_MUST_USE cl_status verify_sim(const sim_pki *k, const cl_buf *doc, int64_t at, cl_attest_doc *out)
{
    cl_attest_policy pol = {.verify_at = at};
    return cl_attest_verify(doc->data, doc->len, &k->roots, &pol, out);
}

static void test_create_and_verify(void **state)
{
    (void)state;
    sim_pki k;
    doc_inputs in;
    cl_buf doc;
    cl_attest_doc d;
    pki_init(&k, false, true);
    inputs_init(&in, &k, true);
    cl_buf_init(&doc, 1 << 16);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    static const uint8_t nitro_start[] = {0x84, 0x44, 0xa1, 0x01, 0x38, 0x22, 0xa0};
    assert_memory_equal(doc.data, nitro_start, sizeof(nitro_start));
    cl_attest_doc_init(&d);
    assert_ok(verify_sim(&k, &doc, T_AT, &d));
    assert_false(d.tagged);
    assert_string_equal(d.module_id, in.p.module_id);
    assert_string_equal(d.digest, "SHA384");
    assert_int_equal(d.timestamp_ms, in.p.timestamp_ms);
    assert_int_equal(d.pcr_mask, 0xffff);
    assert_memory_equal(d.pcrs, in.pcrs, sizeof(in.pcrs));
    assert_int_equal(d.cabundle_len, 2);
    assert_memory_equal(d.cabundle[1].data, k.inter.data, k.inter.len);
    assert_memory_equal(d.certificate.data, k.leaf.data, k.leaf.len);
    assert_true(d.has_public_key && d.has_user_data && d.has_nonce);
    assert_memory_equal(d.public_key.data, in.pk, sizeof(in.pk));
    assert_int_equal(d.user_data.len, 1024);
    assert_memory_equal(d.user_data.data, in.ud, sizeof(in.ud));
    assert_memory_equal(d.nonce.data, in.nonce, sizeof(in.nonce));
    /* policy on our own document */
    cl_attest_pcr want = {.index = 3};
    memcpy(want.value, in.pcrs[3], CL_ATTEST_PCR_LEN);
    cl_attest_policy pol = {.verify_at = T_AT,
                            .pcrs = &want,
                            .pcr_count = 1,
                            .nonce = in.nonce,
                            .nonce_len = sizeof(in.nonce),
                            .max_age_ms = 1234};
    assert_ok(cl_attest_check_policy(&d, &pol));
    pol.max_age_ms = 1233;
    assert_fails(cl_attest_check_policy(&d, &pol), CL_ERR_EXPIRED, "maximum age 1233 ms");
    /* the leaf's window */
    assert_fails(verify_sim(&k, &doc, T_LEAF_UNTIL + 1, NULL), CL_ERR_EXPIRED,
                 "the document's certificate (CN=cloister-sim-enclave) expired at 2026-01-01T03:00:00Z");
    assert_fails(verify_sim(&k, &doc, T_LEAF_FROM - 1, NULL), CL_ERR_EXPIRED,
                 "is not valid before 2026-01-01T00:00:00Z");
    /* a document from the future (beyond the allowed skew) */
    assert_fails(
        verify_sim(&k, &doc, T_AT - 62, NULL), CL_ERR_EXPIRED,
        "document timestamp 2026-01-01T00:59:58Z is 60766 ms after the verification time 2026-01-01T00:58:58Z");
    assert_ok(verify_sim(&k, &doc, T_AT - 61, NULL));
    cl_attest_doc_free(&d);
    cl_buf_free(&doc);
    pki_free(&k);
}

static void test_null_fields_and_nonce(void **state)
{
    (void)state;
    sim_pki k;
    doc_inputs in;
    cl_buf doc;
    cl_attest_doc d;
    pki_init(&k, false, true);
    inputs_init(&in, &k, false);
    cl_buf_init(&doc, 1 << 16);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    cl_attest_doc_init(&d);
    assert_ok(verify_sim(&k, &doc, T_AT, &d));
    assert_false(d.has_public_key || d.has_user_data || d.has_nonce);
    cl_attest_policy pol = {.verify_at = T_AT, .nonce = in.nonce, .nonce_len = 4};
    assert_fails(cl_attest_check_policy(&d, &pol), CL_ERR_DENIED, "nonce mismatch: the document carries no nonce");
    /* an empty nonce is a nonce */
    cl_attest_blob empty = {in.nonce, 0};
    in.p.nonce = &empty;
    cl_buf_reset(&doc);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    pol.nonce_len = 0;
    assert_ok(cl_attest_verify(doc.data, doc.len, &k.roots, &pol, &d));
    assert_true(d.has_nonce);
    assert_int_equal(d.nonce.len, 0);
    cl_attest_doc_free(&d);
    cl_buf_free(&doc);
    pki_free(&k);
}

/* Real documents come with indefinite-length payload maps and with tag 18: both verify. */
static void indefinite_tagged(const sim_pki *k, const doc_inputs *in, cl_buf *out)
{
    cl_buf payload;
    cl_buf_init(&payload, 1 << 16);
    assert_ok(cl_attest_payload_encode(&in->p, &payload));
    assert_int_equal(payload.data[0], 0xa9);
    payload.data[0] = 0xbf;
    assert_ok(cl_buf_append_u8(&payload, 0xff));
    assert_ok(cl_attest_cose_sign(&k->leaf_key, payload.data, payload.len, true, out));
    cl_buf_free(&payload);
}

static void test_indefinite_and_tagged(void **state)
{
    (void)state;
    sim_pki k;
    doc_inputs in;
    cl_buf doc;
    cl_attest_doc d;
    pki_init(&k, false, true);
    inputs_init(&in, &k, true);
    cl_buf_init(&doc, 1 << 16);
    indefinite_tagged(&k, &in, &doc);
    assert_int_equal(doc.data[0], 0xd2);
    cl_attest_doc_init(&d);
    assert_ok(verify_sim(&k, &doc, T_AT, &d));
    assert_true(d.tagged);
    assert_memory_equal(d.nonce.data, in.nonce, sizeof(in.nonce));
    cl_attest_doc_free(&d);
    cl_buf_free(&doc);
    pki_free(&k);
}

static void test_bad_certificates(void **state)
{
    (void)state;
    sim_pki k;
    doc_inputs in;
    cl_buf doc;
    cl_buf_init(&doc, 1 << 16);
    /* the signing certificate is a CA */
    pki_init(&k, true, true);
    inputs_init(&in, &k, true);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    assert_fails(verify_sim(&k, &doc, T_AT, NULL), CL_ERR_AUTH,
                 "the document's certificate (CN=cloister-sim-enclave) is a CA certificate");
    pki_free(&k);
    /* the intermediate is not a CA */
    pki_init(&k, false, false);
    inputs_init(&in, &k, true);
    cl_buf_reset(&doc);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    assert_fails(verify_sim(&k, &doc, T_AT, NULL), CL_ERR_AUTH, "invalid CA certificate");
    /* signing with a key that is not the certificate's */
    cl_buf_reset(&doc);
    assert_fails(cl_attest_doc_create(&in.p, &k.inter_key, &doc), CL_ERR_KEY,
                 "the signing key does not match the signing certificate");
    /* the same document signed by another key (splice the platform CA's signature) */
    pki_free(&k);
    pki_init(&k, false, true);
    inputs_init(&in, &k, true);
    cl_buf payload;
    cl_buf_init(&payload, 1 << 16);
    assert_ok(cl_attest_payload_encode(&in.p, &payload));
    cl_buf_reset(&doc);
    assert_ok(cl_attest_cose_sign(&k.inter_key, payload.data, payload.len, false, &doc));
    assert_fails(verify_sim(&k, &doc, T_AT, NULL), CL_ERR_AUTH, "COSE signature does not verify");
    cl_buf_free(&payload);
    cl_buf_free(&doc);
    pki_free(&k);
}

/* A leaf made with OpenSSL directly, for certificates our issuer would never make. */
static void raw_leaf(EVP_PKEY *subject, const char *key_usage, const sim_pki *k, cl_buf *out)
{
    X509 *x = X509_new();
    const uint8_t *q = k->inter.data;
    X509 *iss = d2i_X509(NULL, &q, (long)k->inter.len);
    assert_non_null(x);
    assert_non_null(iss);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), T_LEAF_FROM));
    assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), T_LEAF_UNTIL));
    X509_NAME *nm = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"raw-leaf", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(iss)), 1);
    assert_int_equal(X509_set_pubkey(x, subject), 1);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, iss, x, NULL, NULL, 0);
    X509_EXTENSION *bc = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:FALSE");
    X509_EXTENSION *ku = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, key_usage);
    assert_non_null(bc);
    assert_non_null(ku);
    assert_int_equal(X509_add_ext(x, bc, -1), 1);
    assert_int_equal(X509_add_ext(x, ku, -1), 1);
    assert_true(X509_sign(x, k->inter_key.pkey, EVP_sha384()) > 0);
    uint8_t *der = NULL;
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    cl_buf_reset(out);
    assert_ok(cl_buf_append(out, der, (size_t)len));
    OPENSSL_free(der);
    X509_EXTENSION_free(bc);
    X509_EXTENSION_free(ku);
    X509_free(iss);
    X509_free(x);
}

static void test_leaf_rules(void **state)
{
    (void)state;
    sim_pki k;
    doc_inputs in;
    cl_buf doc;
    cl_buf_init(&doc, 1 << 16);
    pki_init(&k, false, true);
    /* a leaf without digitalSignature (3.2.3.3) */
    raw_leaf(k.leaf_key.pkey, "critical,keyAgreement", &k, &k.leaf);
    inputs_init(&in, &k, true);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    assert_fails(verify_sim(&k, &doc, T_AT, NULL), CL_ERR_AUTH,
                 "the document's certificate (CN=raw-leaf) lacks the digitalSignature key usage");
    /* a P-256 leaf: ES384 needs P-384 */
    EVP_PKEY *p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(p256);
    raw_leaf(p256, "critical,digitalSignature", &k, &k.leaf);
    inputs_init(&in, &k, true);
    cl_buf payload;
    cl_buf_init(&payload, 1 << 16);
    assert_ok(cl_attest_payload_encode(&in.p, &payload));
    cl_buf_reset(&doc);
    assert_ok(cl_attest_cose_sign(&k.leaf_key, payload.data, payload.len, false, &doc));
    assert_fails(verify_sim(&k, &doc, T_AT, NULL), CL_ERR_AUTH, "does not hold an EC P-384 key");
    EVP_PKEY_free(p256);
    cl_buf_free(&payload);
    pki_free(&k);
    /* a path longer than the platform CA's pathlen 0 allows (3.2.3.2) */
    pki_init(&k, false, true);
    cl_attest_key sub;
    cl_buf sub_der;
    cl_buf_init(&sub_der, 4096);
    assert_ok(cl_attest_key_generate(&sub));
    cl_attest_cert_params sp = {"cloister-sim-sub-ca", T_ROOT_FROM, T_ROOT_UNTIL, true, -1};
    cl_attest_cert_params lp = {"cloister-sim-enclave", T_LEAF_FROM, T_LEAF_UNTIL, false, -1};
    assert_ok(cl_attest_cert_issue(&sub, &sp, &k.inter_key, k.inter.data, k.inter.len, &sub_der));
    cl_buf_reset(&k.leaf);
    assert_ok(cl_attest_cert_issue(&k.leaf_key, &lp, &sub, sub_der.data, sub_der.len, &k.leaf));
    inputs_init(&in, &k, true);
    cl_attest_blob cab3[3] = {in.cab[0], in.cab[1], {sub_der.data, sub_der.len}};
    in.p.cabundle = cab3;
    in.p.cabundle_len = 3;
    cl_buf_reset(&doc);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    assert_fails(verify_sim(&k, &doc, T_AT, NULL), CL_ERR_AUTH, "path length constraint exceeded");
    cl_attest_key_free(&sub);
    cl_buf_free(&sub_der);
    cl_buf_free(&doc);
    pki_free(&k);
}

static void test_keys(void **state)
{
    (void)state;
    cl_attest_key k, k2;
    cl_buf pem;
    assert_ok(cl_attest_key_generate(&k));
    cl_buf_init_secret(&pem, 4096);
    assert_ok(cl_attest_key_to_pem(&k, &pem));
    assert_non_null(strstr(cl_buf_cstr(&pem), "-----BEGIN PRIVATE KEY-----"));
    assert_ok(cl_attest_key_load_pem(&k2, pem.data, pem.len));
    cl_buf a, b;
    cl_attest_cert_params p = {"x", T_ROOT_FROM, T_ROOT_UNTIL, true, -1};
    cl_buf_init(&a, 4096);
    cl_buf_init(&b, 4096);
    /* a certificate for k2 issued (signed) by k: it matches k's self-signed one as issuer */
    assert_ok(cl_attest_cert_issue(&k, &p, NULL, NULL, 0, &a));
    assert_ok(cl_attest_cert_issue(&k2, &p, &k2, a.data, a.len, &b)); /* k2 is k, reloaded */
    cl_buf pemc;
    cl_buf_init(&pemc, 8192);
    assert_ok(cl_attest_cert_to_pem(a.data, a.len, &pemc));
    assert_non_null(strstr(cl_buf_cstr(&pemc), "-----BEGIN CERTIFICATE-----"));
    static const char p256[] = "-----BEGIN PRIVATE KEY-----\n"
                               "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\n"
                               "OF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n"
                               "1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n"
                               "-----END PRIVATE KEY-----\n";
    cl_attest_key bad;
    assert_fails(cl_attest_key_load_pem(&bad, (const uint8_t *)p256, sizeof(p256) - 1), CL_ERR_KEY,
                 "the private key is not an EC P-384 key");
    cl_buf_free(&pemc);
    cl_buf_free(&a);
    cl_buf_free(&b);
    cl_buf_free(&pem);
    cl_attest_key_free(&k);
    cl_attest_key_free(&k2);
}

/* --- payload syntax, on correctly signed documents ------------------------ */

static void put_text(cl_buf *b, const char *s)
{
    assert_ok(cl_attest_cbor_head(b, 3, strlen(s)));
    assert_ok(cl_buf_append(b, s, strlen(s)));
}

static void put_bytes(cl_buf *b, const uint8_t *p, size_t n)
{
    assert_ok(cl_attest_cbor_head(b, 2, n));
    if (n) assert_ok(cl_buf_append(b, p, n));
}

/* Builds a payload, with a twist. */
enum twist {
    TW_NONE,
    TW_UNKNOWN,
    TW_DUP,
    TW_NO_PCRS,
    TW_PCR32,
    TW_PCR_SHORT,
    TW_NONCE_1025,
    TW_TS_TEXT,
    TW_EMPTY_CAB,
    TW_BAD_UTF,
    TW_NO_CERT
};

static void twisted_payload(const sim_pki *k, enum twist tw, cl_buf *b)
{
    uint8_t pcr[64] = {0}, big[1025] = {0};
    size_t fields = 9 + (tw == TW_UNKNOWN || tw == TW_DUP) - (tw == TW_NO_PCRS || tw == TW_NO_CERT);
    assert_ok(cl_attest_cbor_head(b, 5, fields));
    put_text(b, "module_id");
    put_text(b, tw == TW_BAD_UTF ? "i-\x01" : "i-sim");
    put_text(b, "digest");
    put_text(b, "SHA384");
    put_text(b, "timestamp");
    if (tw == TW_TS_TEXT)
        put_text(b, "1767229200000");
    else
        assert_ok(cl_attest_cbor_head(b, 0, (uint64_t)T_AT * 1000));
    if (tw != TW_NO_PCRS) {
        put_text(b, "pcrs");
        assert_ok(cl_attest_cbor_head(b, 5, 1));
        assert_ok(cl_attest_cbor_head(b, 0, tw == TW_PCR32 ? 32 : 0));
        put_bytes(b, pcr, tw == TW_PCR_SHORT ? 32 : 48);
    }
    if (tw != TW_NO_CERT) {
        put_text(b, "certificate");
        put_bytes(b, k->leaf.data, k->leaf.len);
    }
    put_text(b, "cabundle");
    if (tw == TW_EMPTY_CAB) {
        assert_ok(cl_attest_cbor_head(b, 4, 0));
    } else {
        assert_ok(cl_attest_cbor_head(b, 4, 2));
        put_bytes(b, k->root.data, k->root.len);
        put_bytes(b, k->inter.data, k->inter.len);
    }
    put_text(b, "public_key");
    assert_ok(cl_attest_cbor_head(b, 7, 0));
    put_text(b, "user_data");
    assert_ok(cl_attest_cbor_head(b, 7, 0));
    put_text(b, "nonce");
    put_bytes(b, big, tw == TW_NONCE_1025 ? 1025 : 8);
    if (tw == TW_UNKNOWN) {
        put_text(b, "debug");
        assert_ok(cl_attest_cbor_head(b, 0, 1));
    }
    if (tw == TW_DUP) {
        put_text(b, "nonce");
        put_bytes(b, big, 8);
    }
}

static void test_payload_syntax(void **state)
{
    (void)state;
    static const struct {
        enum twist tw;
        cl_status code;
        const char *msg;
    } cases[] = {
        {TW_NONE, CL_OK, ""},
        {TW_UNKNOWN, CL_ERR_FORMAT, "payload has an unknown field \"debug\""},
        {TW_DUP, CL_ERR_FORMAT, "payload field nonce appears twice"},
        {TW_NO_PCRS, CL_ERR_FORMAT, "payload lacks the mandatory field pcrs"},
        {TW_PCR32, CL_ERR_FORMAT, "PCR index 32 is out of range 0 to 31"},
        {TW_PCR_SHORT, CL_ERR_FORMAT, "PCR0 is 32 bytes, expected 48 (SHA384)"},
        {TW_NONCE_1025, CL_ERR_FORMAT, "nonce is 1025 bytes, expected 0 to 1024"},
        {TW_TS_TEXT, CL_ERR_FORMAT, "timestamp is a text string, expected an unsigned integer"},
        {TW_EMPTY_CAB, CL_ERR_FORMAT, "cabundle is empty"},
        {TW_BAD_UTF, CL_ERR_FORMAT, "module_id contains a byte 0x01"},
        {TW_NO_CERT, CL_ERR_FORMAT, "payload lacks the mandatory field certificate"},
    };
    sim_pki k;
    pki_init(&k, false, true);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cl_buf payload, doc;
        cl_buf_init(&payload, 1 << 16);
        cl_buf_init(&doc, 1 << 16);
        twisted_payload(&k, cases[i].tw, &payload);
        assert_ok(cl_attest_cose_sign(&k.leaf_key, payload.data, payload.len, false, &doc));
        cl_status rc = verify_sim(&k, &doc, T_AT, NULL);
        if (rc != cases[i].code || (rc != CL_OK && strstr(cl_error_message(), cases[i].msg) == NULL))
            fail_msg("case %zu: %s: %s", i, cl_status_name(rc), cl_error_message());
        cl_buf_free(&payload);
        cl_buf_free(&doc);
    }
    pki_free(&k);
}

/* --- an independent verifier ----------------------------------------------- */

static void write_file(const char *dir, const char *name, const cl_buf *b)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    assert_int_equal(fclose(f), 0);
}

static void test_python_reference_verifier(void **state)
{
    (void)state;
    const char *py = getenv("PYTHON3");
    if (py == NULL) py = "python3";
    const char *dir = t_tmpdir();
    sim_pki k;
    doc_inputs in;
    cl_buf doc, pem;
    pki_init(&k, false, true);
    cl_buf_init(&doc, 1 << 16);
    cl_buf_init(&pem, 8192);
    assert_ok(cl_attest_cert_to_pem(k.root.data, k.root.len, &pem));
    write_file(dir, "root.pem", &pem);
    inputs_init(&in, &k, true);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    write_file(dir, "full.cbor", &doc);
    cl_buf_reset(&doc);
    inputs_init(&in, &k, false);
    assert_ok(cl_attest_doc_create(&in.p, &k.leaf_key, &doc));
    write_file(dir, "nulls.cbor", &doc);
    cl_buf_reset(&doc);
    indefinite_tagged(&k, &in, &doc);
    write_file(dir, "indef-tagged.cbor", &doc);
    /* a tampered one, to show the reference verifier does refuse */
    doc.data[doc.len - 1] ^= 1;
    write_file(dir, "tampered.cbor", &doc);

    char cmd[2048];
    (void)snprintf(cmd, sizeof(cmd),
                   "'%s' '%s' --root '%s/root.pem' --at %d '%s/full.cbor' '%s/nulls.cbor' '%s/indef-tagged.cbor' "
                   ">'%s/ref.out' 2>&1",
                   py, t_source_path("tests/integration/attest_ref.py"), dir, T_AT, dir, dir, dir, dir);
    int st = system(cmd);
    if (st != 0) {
        cl_buf out;
        char p[512];
        (void)snprintf(p, sizeof(p), "%s/ref.out", dir);
        cl_buf_init(&out, 1 << 20);
        if (cl_buf_read_file(&out, p) != CL_OK) cl_buf_reset(&out);
        fail_msg("reference verifier refused our documents (status %d):\n%s", st, cl_buf_cstr(&out));
    }
    (void)snprintf(cmd, sizeof(cmd), "'%s' '%s' --root '%s/root.pem' --at %d '%s/tampered.cbor' >/dev/null 2>&1", py,
                   t_source_path("tests/integration/attest_ref.py"), dir, T_AT, dir);
    assert_int_not_equal(system(cmd), 0);
    (void)snprintf(cmd, sizeof(cmd), "'%s' '%s' --root '%s/root.pem' --at %d '%s/full.cbor' >/dev/null 2>&1", py,
                   t_source_path("tests/integration/attest_ref.py"), dir, T_LEAF_UNTIL + 10, dir);
    assert_int_not_equal(system(cmd), 0);
    cl_buf_free(&pem);
    cl_buf_free(&doc);
    pki_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_verify),
        cmocka_unit_test(test_null_fields_and_nonce),
        cmocka_unit_test(test_indefinite_and_tagged),
        cmocka_unit_test(test_bad_certificates),
        cmocka_unit_test(test_leaf_rules),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_payload_syntax),
        cmocka_unit_test(test_python_reference_verifier),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
