/* SPDX-License-Identifier: Apache-2.0 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

static long t_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* Finding 2 in docs/security.md: a line over the cap (64 context keys of 4096 bytes that JSON
 * escapes six-fold) is refused before anything is written, and the chain goes on. */
static void test_line_over_cap(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/cap.log", t_tmpdir());
    unlink(path);
    cl_audit *a = NULL;
    assert_ok(cl_audit_open(path, &a));
    cl_audit_event ev = {.time = 1, .operation = "Decrypt", .outcome = "ok"};
    assert_ok(cl_audit_append(a, &ev));
    long before = t_size(path);
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    char key[CL_KV_MAX_ITEM];
    for (int i = 0; i < CL_KV_MAX_COUNT; i++) {
        memset(key, 1, sizeof(key)); /* \u0001: six bytes of JSON each */
        (void)snprintf(key, 8, "k%02d", i);
        key[3] = 1;
        assert_ok(cl_kvlist_add(&ctx, key, sizeof(key), "v", 1));
    }
    ev.context = &ctx;
    assert_fails(cl_audit_append(a, &ev), CL_ERR_LIMIT, "over the 1048576-byte limit of a line (64 encryption");
    assert_int_equal(t_size(path), before);
    ev.context = NULL;
    assert_ok(cl_audit_append(a, &ev));
    cl_audit_close(a);
    size_t lines;
    char last[CL_AUDIT_HASH_HEX + 1];
    assert_ok(cl_audit_verify(path, &lines, last));
    assert_int_equal(lines, 2);
    cl_kvlist_free(&ctx);
    unlink(path);
}

/* A write that stops short (RLIMIT_FSIZE here; a full disk alike) fails, and the part of the
 * line that reached the file is cut off again: the file still verifies, and once there is room
 * the chain continues from the last complete line. */
static void test_short_write_cut_off(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/fsize.log", t_tmpdir());
    unlink(path);
    cl_audit *a = NULL;
    assert_ok(cl_audit_open(path, &a));
    cl_audit_event ev = {.time = 1, .operation = "Decrypt", .outcome = "ok"};
    assert_ok(cl_audit_append(a, &ev));
    long before = t_size(path);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)before + 40; /* the next line is ~250 bytes: 40 of them get written */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    cl_status rc = cl_audit_append(a, &ev);
    long after = t_size(path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    (void)signal(SIGXFSZ, prev);
    assert_int_equal(rc, CL_ERR_IO);
    assert_non_null(strstr(cl_error_message(), "cannot write the audit log"));
    assert_non_null(strstr(cl_error_message(), "File too large"));
    assert_int_equal(after, before);
    assert_ok(cl_audit_append(a, &ev));
    cl_audit_close(a);
    size_t lines;
    char last[CL_AUDIT_HASH_HEX + 1];
    assert_ok(cl_audit_verify(path, &lines, last));
    assert_int_equal(lines, 2);
    unlink(path);
}

/* Finding 13 in docs/security.md: one writer per log. */
static void test_second_writer_refused(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/locked.log", t_tmpdir());
    unlink(path);
    cl_audit *a = NULL, *b = NULL;
    assert_ok(cl_audit_open(path, &a));
    assert_fails(cl_audit_open(path, &b), CL_ERR_STATE, "is in use by another process");
    assert_null(b);
    cl_audit_close(a);
    assert_ok(cl_audit_open(path, &b)); /* released on close */
    cl_audit_close(b);
    unlink(path);
}

/* Writers on several threads, each waiting for its line to be on disk (group commit): every
 * line is there once, the chain intact. Run under ThreadSanitizer too (ctest -L tsan). */
#define T_THREADS 4
#define T_LINES 50
static void *t_writer(void *arg)
{
    cl_audit *a = arg;
    for (int i = 0; i < T_LINES; i++) {
        cl_audit_event ev = {.time = i, .operation = "Decrypt", .outcome = "ok"};
        uint64_t end = 0;
        if (i % 2 == 0) {
            if (cl_audit_append(a, &ev) != CL_OK) return (void *)1;
        } else if (cl_audit_write(a, &ev, &end) != CL_OK || cl_audit_sync(a, end) != CL_OK) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    (void)state;
    char path[512];
    (void)snprintf(path, sizeof(path), "%s/threads.log", t_tmpdir());
    unlink(path);
    cl_audit *a = NULL;
    assert_ok(cl_audit_open(path, &a));
    pthread_t th[T_THREADS];
    for (int i = 0; i < T_THREADS; i++) assert_int_equal(pthread_create(&th[i], NULL, t_writer, a), 0);
    for (int i = 0; i < T_THREADS; i++) {
        void *r = NULL;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_null(r);
    }
    cl_audit_close(a);
    size_t lines;
    char last[CL_AUDIT_HASH_HEX + 1];
    assert_ok(cl_audit_verify(path, &lines, last));
    assert_int_equal(lines, T_THREADS * T_LINES);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_chain),
                                       cmocka_unit_test(test_torn_last_line),
                                       cmocka_unit_test(test_line_over_cap),
                                       cmocka_unit_test(test_short_write_cut_off),
                                       cmocka_unit_test(test_second_writer_refused),
                                       cmocka_unit_test(test_concurrent_writers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
