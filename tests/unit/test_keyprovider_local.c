/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cloister/keyprovider.h"

#include "test_util.h"

static void key_path(char *out, size_t n, const char *name) { (void)snprintf(out, n, "%s/%s", t_tmpdir(), name); }

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_create_open_wrap_unwrap(void **state)
{
    (void)state;
    char path[512];
    key_path(path, sizeof(path), "a.key");
    cl_buf id;
    cl_buf_init(&id, 64);
    assert_ok(cl_local_key_create(path, &id));
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 22 + 64 + 1);
    assert_fails(cl_local_key_create(path, NULL), CL_ERR_EXISTS, "never overwritten");

    cl_key_provider *kp = NULL;
    assert_ok(cl_local_provider_open(path, &kp));
    assert_string_equal(cl_local_provider_key_id(kp), cl_buf_cstr(&id));
    assert_int_equal(strncmp(cl_buf_cstr(&id), "local:", 6), 0);

    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_ok(cl_kvlist_add_arg(&ctx, "patient=7"));
    cl_buf dk, wrapped, kid, back;
    cl_buf_init_secret(&dk, 32);
    cl_buf_init(&wrapped, 4096);
    cl_buf_init(&kid, 4096);
    cl_buf_init_secret(&back, 32);
    assert_ok(kp->generate(kp, &ctx, &dk, &wrapped, &kid));
    assert_int_equal(dk.len, 32);
    assert_int_equal(wrapped.len, 60);
    assert_string_equal(cl_buf_cstr(&kid), cl_buf_cstr(&id));
    assert_ok(kp->unwrap(kp, cl_buf_cstr(&kid), wrapped.data, wrapped.len, &ctx, &back));
    assert_memory_equal(back.data, dk.data, 32);

    /* Another context, a flipped bit, a wrong length, another key id: all refused, no key out. */
    cl_kvlist other;
    cl_kvlist_init(&other);
    assert_ok(cl_kvlist_add_arg(&other, "patient=8"));
    cl_buf_reset(&back);
    assert_fails(kp->unwrap(kp, cl_buf_cstr(&kid), wrapped.data, wrapped.len, &other, &back), CL_ERR_AUTH,
                 "cannot unwrap");
    assert_int_equal(back.len, 0);
    wrapped.data[20] ^= 1;
    assert_fails(kp->unwrap(kp, cl_buf_cstr(&kid), wrapped.data, wrapped.len, &ctx, &back), CL_ERR_AUTH,
                 "cannot unwrap");
    wrapped.data[20] ^= 1;
    assert_fails(kp->unwrap(kp, cl_buf_cstr(&kid), wrapped.data, 59, &ctx, &back), CL_ERR_FORMAT, "59 bytes");
    assert_fails(kp->unwrap(kp, "local:0000000000000000", wrapped.data, wrapped.len, &ctx, &back), CL_ERR_KEY,
                 "sealed with key local:0000000000000000");
    cl_key_provider_destroy(kp);
    cl_kvlist_free(&ctx);
    cl_kvlist_free(&other);
    cl_buf_free(&dk);
    cl_buf_free(&wrapped);
    cl_buf_free(&kid);
    cl_buf_free(&back);
    cl_buf_free(&id);
}

static void test_bad_key_files(void **state)
{
    (void)state;
    char path[512];
    cl_key_provider *kp = NULL;
    key_path(path, sizeof(path), "missing.key");
    assert_fails(cl_local_provider_open(path, &kp), CL_ERR_IO, "cannot open key file");

    key_path(path, sizeof(path), "open.key");
    write_file(path,
               "CLOISTER-LOCAL-KEY-V1 "
               "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
               0644);
    assert_fails(cl_local_provider_open(path, &kp), CL_ERR_DENIED, "chmod 600");
    assert_int_equal(chmod(path, 0600), 0);
    assert_ok(cl_local_provider_open(path, &kp));
    cl_key_provider_destroy(kp);

    key_path(path, sizeof(path), "short.key");
    write_file(path, "CLOISTER-LOCAL-KEY-V1 0011\n", 0600);
    assert_fails(cl_local_provider_open(path, &kp), CL_ERR_FORMAT, "not a cloister local key file");

    key_path(path, sizeof(path), "nothex.key");
    write_file(path,
               "CLOISTER-LOCAL-KEY-V1 "
               "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
               0600);
    assert_fails(cl_local_provider_open(path, &kp), CL_ERR_FORMAT, "64 hex digits");

    key_path(path, sizeof(path), "fernet.key");
    write_file(path, "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=\n", 0600);
    assert_fails(cl_local_provider_open(path, &kp), CL_ERR_FORMAT, "not a cloister local key file");

    assert_fails(cl_local_provider_open(t_tmpdir(), &kp), CL_ERR_USAGE, "not a regular file");
}

static void test_key_id_is_stable(void **state)
{
    (void)state;
    uint8_t k[32] = {0};
    cl_key_provider *a = NULL, *b = NULL;
    assert_ok(cl_local_provider_from_key(k, &a));
    assert_ok(cl_local_provider_from_key(k, &b));
    assert_string_equal(cl_local_provider_key_id(a), cl_local_provider_key_id(b));
    k[31] = 1;
    cl_key_provider_destroy(b);
    assert_ok(cl_local_provider_from_key(k, &b));
    assert_string_not_equal(cl_local_provider_key_id(a), cl_local_provider_key_id(b));
    cl_key_provider_destroy(a);
    cl_key_provider_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_open_wrap_unwrap),
        cmocka_unit_test(test_bad_key_files),
        cmocka_unit_test(test_key_id_is_stable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
