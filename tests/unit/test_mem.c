/* SPDX-License-Identifier: Apache-2.0 */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cloister/mem.h"

#include "test_util.h"

static void test_alloc_is_usable_and_zeroed(void **state)
{
    (void)state;
    uint8_t *p = cl_secure_alloc(100);
    assert_non_null(p);
    for (int i = 0; i < 100; i++) assert_int_equal(p[i], 0);
    memset(p, 0xAB, 100);
    cl_secure_free(p);
    cl_secure_free(NULL);
    p = cl_secure_alloc(0);
    assert_non_null(p);
    cl_secure_free(p);
    assert_null(cl_secure_alloc(SIZE_MAX - 10));
}

/* Runs fn in a child; returns 1 if the child died (signal or non-zero exit). */
static int child_dies(void (*fn)(uint8_t *), uint8_t *p)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn(p);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void touch_after_end(uint8_t *p)
{
    long page = sysconf(_SC_PAGESIZE);
    volatile uint8_t *q = p + page; /* a 1-page allocation: this is the guard */
    *q = 1;
}

static void touch_before_start(uint8_t *p)
{
    volatile uint8_t *q = p - 1;
    *q = 1;
}

static void touch_inside(uint8_t *p)
{
    volatile uint8_t *q = p + 10;
    *q = 1;
}

static void test_guard_pages_fault(void **state)
{
    (void)state;
    uint8_t *p = cl_secure_alloc(100);
    assert_non_null(p);
    assert_false(child_dies(touch_inside, p)); /* the control: in bounds is fine */
    assert_true(child_dies(touch_after_end, p));
    assert_true(child_dies(touch_before_start, p));
    cl_secure_free(p);
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_true(cl_ct_equal("abcd", "abcd", 4));
    assert_false(cl_ct_equal("abcd", "abce", 4));
    assert_true(cl_ct_equal("x", "y", 0));
}

static void test_memzero(void **state)
{
    (void)state;
    uint8_t b[16];
    memset(b, 0x55, sizeof(b));
    cl_memzero(b, sizeof(b));
    for (size_t i = 0; i < sizeof(b); i++) assert_int_equal(b[i], 0);
    cl_memzero(NULL, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_is_usable_and_zeroed),
        cmocka_unit_test(test_guard_pages_fault),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_memzero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
