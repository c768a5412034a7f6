/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
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

/* What cl_free_wiped hands to the allocator instead of free(): every byte must be zero. */
static size_t t_released, t_released_dirty, t_released_big;
static void t_release(void *p, size_t n)
{
    const uint8_t *b = p;
    bool dirty = false;
    for (size_t i = 0; i < n; i++) dirty |= b[i] != 0;
    t_released++;
    t_released_dirty += dirty;
    t_released_big += n >= 40;
    free(p);
}

/* Finding 11 in docs/security.md: jansson's strings (a decoded request, the response before it is
 * serialised) are wiped when jansson frees them, through the allocator cloister-kms installs. */
static void test_json_heap_wiped(void **state)
{
    (void)state;
    t_released = t_released_dirty = t_released_big = 0;
    cl_free_wiped_set_release(t_release);
    json_set_alloc_funcs(malloc, cl_free_wiped);
    static const char doc[] = "{\"Plaintext\": \"U0VDUkVULVBMQUlOVEVYVC0wMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OQ==\"}";
    json_t *j = json_loads(doc, 0, NULL);
    assert_non_null(j);
    json_object_set_new(j, "KeyId", json_string("1234abcd-12ab-34cd-56ef-1234567890ab"));
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    assert_non_null(strstr(text, "U0VDUkVULVBMQUlOVEVYVC0w"));
    json_decref(j);
    cl_free_wiped(text);
    json_set_alloc_funcs(malloc, free);
    cl_free_wiped_set_release(NULL);
    /* The parser's buffers, the object, its keys and strings, the dump's buffer and text. */
    assert_true(t_released >= 6);
    assert_true(t_released_big >= 2); /* the 60-byte string and the dumped text at least */
    assert_int_equal(t_released_dirty, 0);
}

static void test_realloc_wiped(void **state)
{
    (void)state;
    t_released = t_released_dirty = 0;
    cl_free_wiped_set_release(t_release);
    uint8_t *p = malloc(24);
    assert_non_null(p);
    memset(p, 'A', 24);
    uint8_t *q = cl_realloc_wiped(p, 4096); /* moves: the old block is wiped, then released */
    assert_non_null(q);
    for (int i = 0; i < 24; i++) assert_int_equal(q[i], 'A');
    assert_int_equal(t_released, 1);
    assert_ptr_equal(cl_realloc_wiped(q, 8), q); /* shrinking keeps the block */
    assert_null(cl_realloc_wiped(q, 0));         /* frees, wiped */
    assert_int_equal(t_released, 2);
    q = cl_realloc_wiped(NULL, 10);
    assert_non_null(q);
    cl_free_wiped(q);
    cl_free_wiped(NULL);
    cl_free_wiped_set_release(NULL);
    assert_int_equal(t_released, 3);
    assert_int_equal(t_released_dirty, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_is_usable_and_zeroed),
        cmocka_unit_test(test_guard_pages_fault),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_memzero),
        cmocka_unit_test(test_json_heap_wiped),
        cmocka_unit_test(test_realloc_wiped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
