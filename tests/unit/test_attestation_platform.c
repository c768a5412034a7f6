/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sim attestation platform: the PKI on disk (init-root), enclave signing
 * certificates, and the documents it signs verified against root.pem.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cloister/platform.h"

#include "test_util.h"

#define T_NOW 1767229200 /* 2026-01-01T01:00:00Z */

static void pki_dir(const char *name, char *out, size_t size) { (void)snprintf(out, size, "%s/%s", t_tmpdir(), name); }

static void sign_at(cl_attest_platform *p, int64_t t, const uint8_t *nonce, size_t nonce_len, cl_buf *out)
{
    static uint8_t pcrs[16][CL_ATTEST_PCR_LEN];
    for (int i = 0; i < 16; i++) memset(pcrs[i], i == 0 ? 0x5a : 0, CL_ATTEST_PCR_LEN);
    cl_attest_blob n = {nonce, nonce_len};
    cl_attest_create_params params = {.module_id = "sim-enclave-1",
                                      .timestamp_ms = (uint64_t)t * 1000 + 250,
                                      .pcrs = (const uint8_t(*)[CL_ATTEST_PCR_LEN])pcrs,
                                      .pcr_count = 16,
                                      .nonce = nonce != NULL ? &n : NULL};
    cl_buf_reset(out);
    assert_ok(cl_attest_platform_sign(p, &params, out));
}

static void test_pki_and_platform(void **state)
{
    (void)state;
    char dir[512], path[600];
    pki_dir("pki", dir, sizeof(dir));
    assert_ok(cl_attest_pki_create(dir, T_NOW, 3650, 365, false));
    struct stat sb;
    (void)snprintf(path, sizeof(path), "%s/platform.key", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_fails(cl_attest_pki_create(dir, T_NOW, 3650, 365, false), CL_ERR_EXISTS, "root.key already exists");
    assert_fails(cl_attest_pki_create(dir, T_NOW, 10, 365, true), CL_ERR_USAGE, "cannot outlive");

    cl_attest_platform p;
    cl_attest_platform_init(&p);
    assert_ok(cl_attest_platform_load(&p, dir));
    cl_buf doc;
    cl_buf_init(&doc, 1 << 16);
    static const uint8_t nonce[] = {1, 2, 3, 4};
    cl_attest_create_params none = {.module_id = "x"};
    assert_fails(cl_attest_platform_sign(&p, &none, &doc), CL_ERR_STATE, "no enclave started");
    assert_ok(cl_attest_platform_start_enclave(&p, "enclave-1", T_NOW));
    sign_at(&p, T_NOW, nonce, sizeof(nonce), &doc);

    /* verifies against root.pem alone, with the platform's chain */
    cl_attest_roots roots;
    cl_attest_roots_init(&roots);
    (void)snprintf(path, sizeof(path), "%s/root.pem", dir);
    assert_ok(cl_attest_roots_add_file(&roots, path));
    cl_attest_pcr want = {.index = 0};
    memset(want.value, 0x5a, CL_ATTEST_PCR_LEN);
    cl_attest_policy pol = {.verify_at = T_NOW + 1,
                            .pcrs = &want,
                            .pcr_count = 1,
                            .nonce = nonce,
                            .nonce_len = sizeof(nonce),
                            .max_age_ms = 5000};
    cl_attest_doc d;
    cl_attest_doc_init(&d);
    assert_ok(cl_attest_verify(doc.data, doc.len, &roots, &pol, &d));
    assert_int_equal(d.cabundle_len, 2);
    assert_memory_equal(d.cabundle[0].data, p.root.data, p.root.len);
    assert_memory_equal(d.cabundle[1].data, p.ca.data, p.ca.len);
    assert_memory_equal(d.certificate.data, p.leaf.data, p.leaf.len);
    /* the enclave certificate lives three hours, like Nitro's */
    pol.verify_at = T_NOW + CL_ATTEST_LEAF_SECONDS;
    pol.max_age_ms = 0;
    assert_fails(cl_attest_verify(doc.data, doc.len, &roots, &pol, NULL), CL_ERR_EXPIRED,
                 "the document's certificate (CN=enclave-1) expired at 2026-01-01T04:00:00Z");

    /* signing later renews the enclave certificate */
    cl_buf first_leaf;
    cl_buf_init(&first_leaf, 4096);
    assert_ok(cl_buf_append(&first_leaf, p.leaf.data, p.leaf.len));
    sign_at(&p, T_NOW + CL_ATTEST_LEAF_SECONDS - 10, NULL, 0, &doc);
    assert_false(p.leaf.len == first_leaf.len && memcmp(p.leaf.data, first_leaf.data, p.leaf.len) == 0);
    pol.verify_at = T_NOW + CL_ATTEST_LEAF_SECONDS;
    pol.nonce = NULL;
    assert_ok(cl_attest_verify(doc.data, doc.len, &roots, &pol, &d));
    assert_false(d.has_nonce);

    cl_buf_free(&first_leaf);
    cl_attest_doc_free(&d);
    cl_attest_roots_free(&roots);
    cl_buf_free(&doc);
    cl_attest_platform_free(&p);
}

static void test_platform_load_errors(void **state)
{
    (void)state;
    char a[512], b[512], src[700], dst[700];
    pki_dir("pki-a", a, sizeof(a));
    pki_dir("pki-b", b, sizeof(b));
    assert_ok(cl_attest_pki_create(a, T_NOW, 3650, 365, false));
    assert_ok(cl_attest_pki_create(b, T_NOW, 3650, 365, false));
    cl_attest_platform p;
    cl_attest_platform_init(&p);
    char missing[600];
    pki_dir("nowhere", missing, sizeof(missing));
    assert_fails(cl_attest_platform_load(&p, missing), CL_ERR_IO, "nowhere/root.pem: No such file or directory");
    assert_fails(cl_attest_platform_load(&p, missing), CL_ERR_IO, "(made by: cloister enclave init-root -o ");
    /* b's platform under a's root */
    (void)snprintf(src, sizeof(src), "%s/root.pem", a);
    (void)snprintf(dst, sizeof(dst), "%s/root.pem", b);
    assert_int_equal(rename(src, dst), 0);
    assert_fails(cl_attest_platform_load(&p, b), CL_ERR_KEY, "platform.pem is not issued by");
    /* a's platform certificate with a's root key in place of its own */
    pki_dir("pki-c", a, sizeof(a));
    assert_ok(cl_attest_pki_create(a, T_NOW, 3650, 365, false));
    (void)snprintf(src, sizeof(src), "%s/root.key", a);
    (void)snprintf(dst, sizeof(dst), "%s/platform.key", a);
    assert_int_equal(rename(src, dst), 0);
    assert_fails(cl_attest_platform_load(&p, a), CL_ERR_KEY, "platform.key is not the key of");
    assert_fails(cl_attest_platform_start_enclave(&p, "e", T_NOW), CL_ERR_STATE, "not loaded");
    cl_attest_platform_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pki_and_platform),
        cmocka_unit_test(test_platform_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
