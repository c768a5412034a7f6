/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The launcher's helpers (src/host/launcher.c). The launcher itself is exercised
 * end to end, from inside the enclave, by tests/integration/enclave_run.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cloister/enclave.h"

#include "test_util.h"

static void test_parse_proxy(void **state)
{
    (void)state;
    cl_enclave_proxy p;
    assert_ok(cl_enclave_parse_proxy("8000=kms.example:443", &p));
    assert_int_equal(p.port, 8000);
    assert_string_equal(p.host, "kms.example");
    assert_string_equal(p.service, "443");
    assert_ok(cl_enclave_parse_proxy("1=[::1]:8443", &p));
    assert_string_equal(p.host, "::1");
    assert_string_equal(p.service, "8443");
    const char *bad[] = {"8000", "8000=host", "=h:1", "0=h:1", "x=h:1", "8000=:443", "8000=h:", "99999999999=h:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_fails(cl_enclave_parse_proxy(bad[i], &p), CL_ERR_USAGE, "VSOCKPORT=HOST:PORT");
}

static void test_state_dir(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 4096);
    assert_int_equal(setenv("CLOISTER_STATE_DIR", "/x/y", 1), 0);
    assert_ok(cl_enclave_default_state_dir(&b));
    assert_string_equal(cl_buf_cstr(&b), "/x/y");
    assert_int_equal(unsetenv("CLOISTER_STATE_DIR"), 0);
    assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/5", 1), 0);
    cl_buf_reset(&b);
    assert_ok(cl_enclave_default_state_dir(&b));
    assert_string_equal(cl_buf_cstr(&b), "/run/user/5/cloister/enclaves");
    cl_buf_free(&b);
}

static void test_run_refusals(void **state)
{
    (void)state;
    cl_enclave_config cfg = {.image_path = "/nonexistent.img", .state_dir = t_tmpdir(), .memory_mib = 8};
    int code = 0;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_USAGE, "--memory");
    cfg.memory_mib = 64;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_IO, "/nonexistent.img");

    /* A state directory others can write is refused before anything starts. */
    char exe[512], img_path[512], shared[512];
    (void)snprintf(exe, sizeof(exe), "%s/prog", t_tmpdir());
    (void)snprintf(img_path, sizeof(img_path), "%s/prog.img", t_tmpdir());
    (void)snprintf(shared, sizeof(shared), "%s/shared", t_tmpdir());
    FILE *f = fopen(exe, "w");
    assert_non_null(f);
    assert_int_equal(fputs("x", f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    cl_image img;
    cl_image_init(&img);
    cl_image_build_params p = {.exe = exe};
    assert_ok(cl_image_build(&p, &img));
    f = fopen(img_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(img.raw.data, 1, img.raw.len, f), img.raw.len);
    assert_int_equal(fclose(f), 0);
    cl_image_free(&img);
    assert_int_equal(mkdir(shared, 0700), 0);
    assert_int_equal(chmod(shared, 0777), 0);
    cfg.image_path = img_path;
    cfg.state_dir = shared;
    assert_fails(cl_enclave_run(&cfg, &code), CL_ERR_DENIED, "only we can write");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_proxy),
        cmocka_unit_test(test_state_dir),
        cmocka_unit_test(test_run_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
