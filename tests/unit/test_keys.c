/* SPDX-License-Identifier: Apache-2.0 */
/* Root key file, key material under the root key, the ciphertext blob. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keys.h"
#include "test_util.h"

#define ARN1 "arn:aws:kms:us-east-1:111122223333:key/8e28b0e3-7804-4034-8195-9843a308fa81"
#define ARN2 "arn:aws:kms:us-east-1:111122223333:key/00000000-7804-4034-8195-9843a308fa81"
#define KID "8e28b0e3-7804-4034-8195-9843a308fa81"

static void test_root_key_file(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/root.key", t_tmpdir());
    unlink(path);
    kms_root_key a = {0}, b = {0};
    assert_ok(kms_root_key_load(path, &a));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 32);
    assert_ok(kms_root_key_load(path, &b)); /* second start reads the same key */
    assert_memory_equal(a.key, b.key, 32);
    kms_root_key_free(&b);
    assert_int_equal(chmod(path, 0644), 0);
    assert_fails(kms_root_key_load(path, &b), CL_ERR_DENIED, "readable");
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(truncate(path, 31), 0);
    assert_fails(kms_root_key_load(path, &b), CL_ERR_FORMAT, "31 bytes");
    kms_root_key_free(&a);
    unlink(path);
}

static void t_root(kms_root_key *rk)
{
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/root-%d.key", t_tmpdir(), (int)getpid());
    unlink(path);
    assert_ok(kms_root_key_load(path, rk));
    unlink(path);
}

static void test_material_bound_to_arn_and_version(void **state)
{
    (void)state;
    kms_root_key rk = {0};
    t_root(&rk);
    uint8_t m[KMS_MATERIAL_LEN];
    memset(m, 0x5a, sizeof(m));
    cl_buf w, out;
    cl_buf_init(&w, 4096);
    cl_buf_init_secret(&out, KMS_MATERIAL_LEN);
    assert_ok(kms_material_wrap(&rk, ARN1, 3, m, &w));
    assert_int_equal(w.len, KMS_WRAPPED_LEN);
    assert_ok(kms_material_unwrap(&rk, ARN1, 3, w.data, w.len, &out));
    assert_memory_equal(out.data, m, sizeof(m));
    assert_fails(kms_material_unwrap(&rk, ARN2, 3, w.data, w.len, &out), CL_ERR_AUTH, "does not verify");
    assert_fails(kms_material_unwrap(&rk, ARN1, 2, w.data, w.len, &out), CL_ERR_AUTH, "does not verify");
    w.data[20] ^= 1;
    assert_fails(kms_material_unwrap(&rk, ARN1, 3, w.data, w.len, &out), CL_ERR_AUTH, "does not verify");
    assert_fails(kms_material_unwrap(&rk, ARN1, 3, w.data, w.len - 1, &out), CL_ERR_FORMAT, "bytes");
    cl_buf_free(&w);
    cl_buf_free(&out);
    kms_root_key_free(&rk);
}

/* Version 2: the key id and its region in the header (docs/formats/kms-ciphertext.md). */
static void test_blob_round_trip_and_context(void **state)
{
    (void)state;
    uint8_t m[KMS_MATERIAL_LEN];
    memset(m, 7, sizeof(m));
    cl_kvlist ctx, other;
    cl_kvlist_init(&ctx);
    cl_kvlist_init(&other);
    assert_ok(cl_kvlist_add_arg(&ctx, "tenant=h1"));
    assert_ok(cl_kvlist_add_arg(&other, "tenant=h2"));
    cl_buf blob, pt;
    cl_buf_init(&blob, KMS_BLOB_MAX);
    cl_buf_init_secret(&pt, KMS_BLOB_MAX);
    assert_ok(kms_blob_seal(m, KID, "eu-central-1", 2, &ctx, (const uint8_t *)"hello", 5, &blob));
    assert_int_equal(blob.len, KMS_BLOB_OVERHEAD(12) + 5);
    assert_int_equal(blob.data[0], 2);
    assert_int_equal(blob.data[1], 36);
    assert_memory_equal(blob.data + 2, KID, 36);
    assert_int_equal(blob.data[38], 12);
    assert_memory_equal(blob.data + 39, "eu-central-1", 12);
    assert_memory_equal(blob.data + 51, "\0\0\0\2", 4);
    kms_blob b;
    assert_ok(kms_blob_parse(blob.data, blob.len, &b));
    assert_int_equal(b.format, 2);
    assert_string_equal(b.key_id, KID);
    assert_string_equal(b.region, "eu-central-1");
    assert_int_equal(b.version, 2);
    assert_int_equal(b.header_len, 55 + 12);
    assert_ok(kms_blob_open(m, &b, &ctx, &pt));
    assert_memory_equal(pt.data, "hello", 5);
    assert_fails(kms_blob_open(m, &b, &other, &pt), CL_ERR_AUTH, "encryption context");
    assert_fails(kms_blob_open(m, &b, NULL, &pt), CL_ERR_AUTH, "encryption context");
    /* The header is authenticated: a changed version or region fails even though it parses. */
    blob.data[54] = 3;
    assert_ok(kms_blob_parse(blob.data, blob.len, &b));
    assert_fails(kms_blob_open(m, &b, &ctx, &pt), CL_ERR_AUTH, "altered");
    blob.data[54] = 2;
    blob.data[39] = 'a'; /* "au-central-1" */
    assert_ok(kms_blob_parse(blob.data, blob.len, &b));
    assert_string_equal(b.region, "au-central-1");
    assert_fails(kms_blob_open(m, &b, &ctx, &pt), CL_ERR_AUTH, "altered");
    /* Empty plaintext (GenerateDataKey never asks, Encrypt forbids; the format allows). */
    cl_buf_reset(&blob);
    assert_ok(kms_blob_seal(m, KID, "us-east-1", 1, NULL, NULL, 0, &blob));
    assert_ok(kms_blob_parse(blob.data, blob.len, &b));
    assert_ok(kms_blob_open(m, &b, NULL, &pt));
    assert_int_equal(pt.len, 0);
    uint8_t big[KMS_PLAINTEXT_MAX + 1] = {0};
    assert_fails(kms_blob_seal(m, KID, "us-east-1", 1, NULL, big, sizeof(big), &blob), CL_ERR_LIMIT, "4096");
    assert_fails(kms_blob_seal(m, KID, "", 1, NULL, big, 1, &blob), CL_ERR_INTERNAL, "region");
    cl_buf_free(&blob);
    cl_buf_free(&pt);
    cl_kvlist_free(&ctx);
    cl_kvlist_free(&other);
}

/* A version-1 blob (before regions: no region in its header), made here as the format
 * describes it, not by kms_blob_seal: it still parses (region "") and opens. */
static void test_blob_version_1_still_opens(void **state)
{
    (void)state;
    uint8_t m[KMS_MATERIAL_LEN];
    memset(m, 9, sizeof(m));
    uint8_t blob[54 + 5 + 16];
    blob[0] = 1;
    blob[1] = 36;
    memcpy(blob + 2, KID, 36);
    memcpy(blob + 38, "\0\0\0\1", 4);
    memset(blob + 42, 0x5a, 12); /* nonce */
    /* AAD: the label and its NUL, the 54-byte header, u16 0 (no context). */
    static const char label[] = "cloister-kms/ciphertext/v1";
    uint8_t aad[sizeof(label) + 54 + 2];
    memcpy(aad, label, sizeof(label));
    memcpy(aad + sizeof(label), blob, 54);
    aad[sizeof(label) + 54] = 0;
    aad[sizeof(label) + 55] = 0;
    cl_gcm g = {0};
    assert_ok(cl_gcm_init(&g, m, true));
    assert_ok(cl_gcm_seal(&g, blob + 42, aad, sizeof(aad), (const uint8_t *)"older", 5, blob + 54, blob + 59));
    cl_gcm_free(&g);
    kms_blob b;
    assert_ok(kms_blob_parse(blob, sizeof(blob), &b));
    assert_int_equal(b.format, 1);
    assert_string_equal(b.region, "");
    assert_int_equal(b.version, 1);
    cl_buf pt;
    cl_buf_init_secret(&pt, 64);
    assert_ok(kms_blob_open(m, &b, NULL, &pt));
    assert_memory_equal(pt.data, "older", 5);
    cl_buf_free(&pt);
}

static void test_blob_parse_rejects(void **state)
{
    (void)state;
    uint8_t m[KMS_MATERIAL_LEN] = {0};
    cl_buf blob;
    cl_buf_init(&blob, KMS_BLOB_MAX);
    assert_ok(kms_blob_seal(m, KID, "us-east-1", 1, NULL, (const uint8_t *)"x", 1, &blob));
    kms_blob b;
    for (size_t n = 0; n < KMS_BLOB_OVERHEAD(9); n++) assert_int_equal(kms_blob_parse(blob.data, n, &b), CL_ERR_FORMAT);
    uint8_t copy[128];
    memcpy(copy, blob.data, blob.len);
    copy[0] = 3;
    assert_fails(kms_blob_parse(copy, blob.len, &b), CL_ERR_FORMAT, "version 3 is not 2 (or 1)");
    memcpy(copy, blob.data, blob.len);
    copy[1] = 35;
    assert_fails(kms_blob_parse(copy, blob.len, &b), CL_ERR_FORMAT, "length");
    memcpy(copy, blob.data, blob.len);
    copy[5] = 'Z';
    assert_fails(kms_blob_parse(copy, blob.len, &b), CL_ERR_FORMAT, "not a key id");
    memcpy(copy, blob.data, blob.len);
    copy[38] = 0;
    assert_fails(kms_blob_parse(copy, blob.len, &b), CL_ERR_FORMAT, "region length 0 is not 1..31");
    memcpy(copy, blob.data, blob.len);
    copy[38] = 32;
    assert_fails(kms_blob_parse(copy, blob.len, &b), CL_ERR_FORMAT, "region length 32");
    memcpy(copy, blob.data, blob.len);
    copy[40] = 'S'; /* "uS-east-1" */
    assert_fails(kms_blob_parse(copy, blob.len, &b), CL_ERR_FORMAT, "region is not a region name");
    memcpy(copy, blob.data, blob.len);
    memset(copy + 48, 0, 4);
    assert_fails(kms_blob_parse(copy, blob.len, &b), CL_ERR_FORMAT, "version 0");
    cl_buf_free(&blob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_key_file),
        cmocka_unit_test(test_material_bound_to_arn_and_version),
        cmocka_unit_test(test_blob_round_trip_and_context),
        cmocka_unit_test(test_blob_version_1_still_opens),
        cmocka_unit_test(test_blob_parse_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
