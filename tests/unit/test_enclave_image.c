/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Enclave images (src/host/enclave_image.c): deterministic builds, the PCR definitions
 * computed independently here, and the parser's refusals of malformed images.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "cloister/enclave.h"

#include "test_util.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void sha384(const uint8_t *p, size_t n, uint8_t out[48])
{
    unsigned int l = 0;
    assert_int_equal(EVP_Digest(p, n, out, &l, EVP_sha384(), NULL), 1);
}

static void pcr_from_zero(const uint8_t *p, size_t n, uint8_t out[48])
{
    uint8_t both[96];
    memset(both, 0, 48);
    sha384(p, n, both + 48);
    sha384(both, 96, out);
}

/* An entry as the format lays it out. */
static void entry(cl_buf *b, uint8_t kind, uint16_t mode, const char *path, const char *data)
{
    assert_ok(cl_buf_append_u8(b, kind));
    assert_ok(cl_buf_append_u16be(b, mode));
    assert_ok(cl_buf_append_u16be(b, (uint16_t)strlen(path)));
    assert_ok(cl_buf_append_str(b, path));
    assert_ok(cl_buf_append_u64be(b, strlen(data)));
    assert_ok(cl_buf_append_str(b, data));
}

static void header(cl_buf *b, uint32_t count)
{
    cl_buf_reset(b);
    assert_ok(cl_buf_append_str(b, "CLENCIMG"));
    assert_ok(cl_buf_append_u32be(b, 1));
    assert_ok(cl_buf_append_u32be(b, count));
}

static void test_build_and_measure(void **state)
{
    (void)state;
    char exe[512], f1[512], f2[512];
    (void)snprintf(exe, sizeof(exe), "%s/prog", t_tmpdir());
    (void)snprintf(f1, sizeof(f1), "%s/model.onnx", t_tmpdir());
    (void)snprintf(f2, sizeof(f2), "%s/b.txt", t_tmpdir());
    write_file(exe, "#!program");
    write_file(f1, "weights");
    write_file(f2, "b");
    cl_image_input files[] = {{CL_IMAGE_FILE, f1, "/files/model.onnx"}, {CL_IMAGE_FILE, f2, "/etc/b.txt"}};
    cl_image_build_params p = {.exe = exe, .files = files, .file_count = 2};
    cl_image a, b;
    cl_image_init(&a);
    cl_image_init(&b);
    assert_ok(cl_image_build(&p, &a));
    assert_ok(cl_image_build(&p, &b));
    assert_int_equal(a.raw.len, b.raw.len);
    assert_memory_equal(a.raw.data, b.raw.data, a.raw.len);

    /* The same image written by hand, entries sorted by path. */
    cl_buf want;
    cl_buf_init(&want, 1 << 16);
    header(&want, 3);
    entry(&want, CL_IMAGE_EXE, 0555, "/app/prog", "#!program");
    entry(&want, CL_IMAGE_FILE, 0444, "/etc/b.txt", "b");
    entry(&want, CL_IMAGE_FILE, 0444, "/files/model.onnx", "weights");
    assert_int_equal(a.raw.len, want.len);
    assert_memory_equal(a.raw.data, want.data, want.len);
    assert_int_equal(a.count, 3);
    assert_string_equal(a.entries[a.exe].path, "/app/prog");

    uint8_t pcr[48];
    pcr_from_zero(want.data, want.len, pcr);
    assert_memory_equal(a.pcr0, pcr, 48);
    pcr_from_zero(want.data + 16, want.len - 16, pcr); /* PCR2: every application entry */
    assert_memory_equal(a.pcr2, pcr, 48);
    pcr_from_zero(NULL, 0, pcr); /* PCR1: no runtime entries */
    assert_memory_equal(a.pcr1, pcr, 48);
    assert_false(a.signed_);

    cl_buf json;
    cl_buf_init(&json, 4096);
    assert_ok(cl_image_measurements_json(&a, &json));
    assert_non_null(strstr(cl_buf_cstr(&json), "\"HashAlgorithm\": \"Sha384 { ... }\""));
    assert_null(strstr(cl_buf_cstr(&json), "PCR8"));

    /* Two entries for one path are refused. */
    cl_image_input dup[] = {{CL_IMAGE_FILE, f1, "/x"}, {CL_IMAGE_FILE, f2, "/x"}};
    p.files = dup;
    assert_fails(cl_image_build(&p, &b), CL_ERR_USAGE, "two entries for /x");
    cl_image_input bad[] = {{CL_IMAGE_FILE, f1, "/a/../etc/passwd"}};
    p.files = bad;
    p.file_count = 1;
    assert_fails(cl_image_build(&p, &b), CL_ERR_USAGE, "not a valid path");
    cl_buf_free(&json);
    cl_buf_free(&want);
    cl_image_free(&a);
    cl_image_free(&b);
}

static void parse_fails(const cl_buf *b, cl_status code, const char *needle)
{
    cl_image img;
    cl_image_init(&img);
    assert_fails(cl_image_parse(b->data, b->len, &img), code, needle);
    cl_image_free(&img);
}

static void test_parse_refusals(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 1 << 16);
    header(&b, 1);
    entry(&b, CL_IMAGE_EXE, 0555, "/app/p", "x");
    cl_image img;
    cl_image_init(&img);
    assert_ok(cl_image_parse(b.data, b.len, &img));
    cl_image_free(&img);

    b.data[0] = 'X';
    parse_fails(&b, CL_ERR_FORMAT, "bad magic");
    header(&b, 1);
    b.data[11] = 2; /* version 2 */
    parse_fails(&b, CL_ERR_UNSUPPORTED, "version 2");
    header(&b, 0);
    parse_fails(&b, CL_ERR_LIMIT, "0 entries");
    header(&b, 2);
    entry(&b, CL_IMAGE_EXE, 0555, "/app/p", "x");
    parse_fails(&b, CL_ERR_FORMAT, "entry 1");
    header(&b, 1);
    entry(&b, CL_IMAGE_EXE, 0755, "/app/p", "x");
    parse_fails(&b, CL_ERR_FORMAT, "normalised");
    header(&b, 1);
    entry(&b, 9, 0555, "/app/p", "x");
    parse_fails(&b, CL_ERR_FORMAT, "unknown kind");
    const char *bad_paths[] = {"app/p", "/app/../p", "/app//p", "/app/./p", "/app/p/", "/app/p q", "/"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        header(&b, 1);
        entry(&b, CL_IMAGE_EXE, 0555, bad_paths[i], "x");
        parse_fails(&b, CL_ERR_FORMAT, "invalid path");
    }
    header(&b, 2);
    entry(&b, CL_IMAGE_FILE, 0444, "/b", "x");
    entry(&b, CL_IMAGE_EXE, 0555, "/a", "x");
    parse_fails(&b, CL_ERR_FORMAT, "out of order");
    header(&b, 2);
    entry(&b, CL_IMAGE_EXE, 0555, "/a", "x");
    entry(&b, CL_IMAGE_EXE, 0555, "/a", "x");
    parse_fails(&b, CL_ERR_FORMAT, "repeated");
    header(&b, 2);
    entry(&b, CL_IMAGE_EXE, 0555, "/a", "x");
    entry(&b, CL_IMAGE_EXE, 0555, "/b", "x");
    parse_fails(&b, CL_ERR_FORMAT, "exactly one");
    header(&b, 1);
    entry(&b, CL_IMAGE_FILE, 0444, "/a", "x");
    parse_fails(&b, CL_ERR_FORMAT, "exactly one");
    /* size larger than what remains */
    header(&b, 1);
    entry(&b, CL_IMAGE_EXE, 0555, "/a", "xyz");
    cl_buf_truncate(&b, b.len - 1);
    parse_fails(&b, CL_ERR_FORMAT, "truncated");
    /* trailing bytes that are not a signature */
    header(&b, 1);
    entry(&b, CL_IMAGE_EXE, 0555, "/a", "x");
    assert_ok(cl_buf_append_str(&b, "junk"));
    parse_fails(&b, CL_ERR_FORMAT, "signature");
    /* a signature section with a non-certificate */
    header(&b, 1);
    entry(&b, CL_IMAGE_EXE, 0555, "/a", "x");
    assert_ok(cl_buf_append_str(&b, "CLENCSIG"));
    assert_ok(cl_buf_append_u32be(&b, 3));
    assert_ok(cl_buf_append_str(&b, "abc"));
    assert_ok(cl_buf_append_u32be(&b, 2));
    assert_ok(cl_buf_append_str(&b, "zz"));
    parse_fails(&b, CL_ERR_FORMAT, "certificate");
    cl_buf_free(&b);
}

static void test_extend(void **state)
{
    (void)state;
    uint8_t pcr[48] = {0}, want[48], both[96];
    assert_ok(cl_image_pcr_extend_digest(pcr, (const uint8_t *)"abc", 3));
    memset(both, 0, 48);
    sha384((const uint8_t *)"abc", 3, both + 48);
    sha384(both, 96, want);
    assert_memory_equal(pcr, want, 48);
}

static void test_list_libraries(void **state)
{
    (void)state;
    cl_buf libs;
    cl_buf_init(&libs, 1 << 16);
    /* /bin/sh is dynamically linked on Debian: libc and the loader. */
    assert_ok(cl_image_list_libraries("/bin/sh", &libs));
    assert_non_null(strstr(cl_buf_cstr(&libs), "libc.so.6\n"));
    assert_non_null(strstr(cl_buf_cstr(&libs), "/ld-linux"));
    assert_null(strstr(cl_buf_cstr(&libs), "vdso"));
    cl_buf_free(&libs);
}

/* What `enclave build` / `measure` print: the runtime entries with their sizes and total. */
static void summary_of(const cl_buf *raw, json_t **out)
{
    cl_image img;
    cl_image_init(&img);
    assert_ok(cl_image_parse(raw->data, raw->len, &img));
    cl_buf json;
    cl_buf_init(&json, 1 << 16);
    assert_ok(cl_image_summary_json(&img, &json));
    json_error_t err;
    *out = json_loadb((const char *)json.data, json.len, 0, &err);
    if (*out == NULL) fail_msg("not JSON (%s): %s", err.text, cl_buf_cstr(&json));
    cl_buf_free(&json);
    cl_image_free(&img);
}

static void test_summary(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 1 << 16);
    header(&b, 4);
    entry(&b, CL_IMAGE_EXE, 0555, "/app/prog", "#!program");
    entry(&b, CL_IMAGE_FILE, 0444, "/files/model", "weights");
    entry(&b, CL_IMAGE_RUNTIME, 0555, "/lib/x86_64-linux-gnu/libc.so.6", "libc");
    entry(&b, CL_IMAGE_RUNTIME, 0555, "/lib64/ld-linux-x86-64.so.2", "loader");
    json_t *j = NULL;
    summary_of(&b, &j);
    json_t *rt = json_object_get(j, "Runtime");
    json_t *libs = json_object_get(rt, "Libraries");
    assert_int_equal(json_array_size(libs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(libs, 0), "Path")),
                        "/lib/x86_64-linux-gnu/libc.so.6");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(libs, 0), "Bytes")), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(libs, 1), "Path")),
                        "/lib64/ld-linux-x86-64.so.2");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(libs, 1), "Bytes")), 6);
    assert_int_equal(json_integer_value(json_object_get(rt, "Count")), 2);
    assert_int_equal(json_integer_value(json_object_get(rt, "Bytes")), 10);
    assert_int_equal(json_integer_value(json_object_get(j, "ImageBytes")), (json_int_t)b.len);
    assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(j, "Measurements"), "PCR0"))), 96);
    json_decref(j);
    /* No runtime entries (--no-libs): an empty list, a zero total. */
    header(&b, 1);
    entry(&b, CL_IMAGE_EXE, 0555, "/app/static", "x");
    summary_of(&b, &j);
    rt = json_object_get(j, "Runtime");
    assert_int_equal(json_array_size(json_object_get(rt, "Libraries")), 0);
    assert_int_equal(json_integer_value(json_object_get(rt, "Count")), 0);
    assert_int_equal(json_integer_value(json_object_get(rt, "Bytes")), 0);
    json_decref(j);
    cl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_measure), cmocka_unit_test(test_parse_refusals), cmocka_unit_test(test_extend),
        cmocka_unit_test(test_list_libraries),    cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
