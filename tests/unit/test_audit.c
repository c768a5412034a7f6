/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloister/audit.h"

#include "test_util.h"

static void t_write(const char *path, const char *data)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
}

static char *t_read(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_chain(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/audit.log", t_tmpdir());
    unlink(path);
    cl_audit *a = NULL;
    assert_ok(cl_audit_open(path, &a));
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_ok(cl_kvlist_add_arg(&ctx, "patient=SECRET-VALUE"));
    for (int i = 0; i < 4; i++) {
        cl_audit_event ev = {.time = 1000 + i,
                             .request_id = "r",
                             .principal = "p",
                             .operation = "Decrypt",
                             .key_arn = i % 2 ? "arn:k" : NULL,
                             .context = &ctx,
                             .outcome = "ok"};
        assert_ok(cl_audit_append(a, &ev));
    }
    cl_audit_close(a);
    /* Reopening continues the chain. */
    assert_ok(cl_audit_open(path, &a));
    cl_audit_event ev = {.time = 2000, .operation = "Encrypt", .outcome = "DisabledException"};
    assert_ok(cl_audit_append(a, &ev));
    cl_audit_close(a);
    size_t lines;
    char last[CL_AUDIT_HASH_HEX + 1];
    assert_ok(cl_audit_verify(path, &lines, last));
    assert_int_equal(lines, 5);
    char *text = t_read(path);
    assert_null(strstr(text, "SECRET-VALUE"));
    assert_non_null(strstr(text, "\"context_keys\":[\"patient\"]"));

    char *orig = strdup(text);
    char *edited = strdup(orig);
    char *p = strstr(edited, "\"time\":1002");
    assert_non_null(p);
    p[10] = '9';
    t_write(path, edited);
    assert_fails(cl_audit_verify(path, &lines, last), CL_ERR_AUTH, "line 3 was altered");
    /* A broken chain is not extended. */
    assert_fails(cl_audit_open(path, &a), CL_ERR_AUTH, "altered");
    char *second = strchr(orig, '\n') + 1;
    char *third = strchr(second, '\n') + 1;
    char *removed = malloc(strlen(orig) + 1);
    memcpy(removed, orig, (size_t)(second - orig));
    memcpy(removed + (second - orig), third, strlen(third) + 1);
    t_write(path, removed);
    assert_fails(cl_audit_verify(path, &lines, last), CL_ERR_AUTH, "chain broken at line 2");
    t_write(path, "{\"x\":1}\n");
    assert_fails(cl_audit_verify(path, &lines, last), CL_ERR_AUTH, "line 1");
    free(orig);
    free(edited);
    free(removed);
    cl_kvlist_free(&ctx);
    unlink(path);
}

static void test_torn_last_line(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/torn.log", t_tmpdir());
    unlink(path);
    cl_audit *a = NULL;
    assert_ok(cl_audit_open(path, &a));
    cl_audit_event ev = {.time = 1, .operation = "CreateKey", .outcome = "ok"};
    assert_ok(cl_audit_append(a, &ev));
    assert_ok(cl_audit_append(a, &ev));
    cl_audit_close(a);
    /* A crash in the middle of the third line's write. */
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("{\"context_keys\":[],\"key_a", f);
    fclose(f);
    size_t lines;
    char last[CL_AUDIT_HASH_HEX + 1];
    assert_fails(cl_audit_verify(path, &lines, last), CL_ERR_AUTH, "line 3 is incomplete");
    /* Reopening cuts the torn tail off and continues the chain. */
    assert_ok(cl_audit_open(path, &a));
    assert_ok(cl_audit_append(a, &ev));
    cl_audit_close(a);
    assert_ok(cl_audit_verify(path, &lines, last));
    assert_int_equal(lines, 3);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_chain), cmocka_unit_test(test_torn_last_line)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
