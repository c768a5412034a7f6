/* SPDX-License-Identifier: Apache-2.0 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <string.h>

#include "test_util.h"

static CL_MUST_USE cl_status raise_limit(int n) { CL_FAIL(CL_ERR_LIMIT, "value %d is over the limit", n); }

static CL_MUST_USE cl_status propagate(int n)
{
    CL_GUARD(raise_limit(n));
    return CL_OK;
}

static CL_MUST_USE cl_status propagate_ctx(int n)
{
    CL_GUARD_CTX(raise_limit(n), "reading item %d", n);
    return CL_OK;
}

static int cleanup_runs;

static CL_MUST_USE cl_status with_cleanup(bool fail)
{
    cl_status rc = CL_OK;
    CL_ENSURE_GOTO(!fail, CL_ERR_FORMAT, "bad input");
out:
    cleanup_runs++;
    return rc;
}

static void test_fail_records_message_and_location(void **state)
{
    (void)state;
    cl_error_clear();
    assert_int_equal(raise_limit(7), CL_ERR_LIMIT);
    const cl_error *e = cl_error_last();
    assert_int_equal(e->code, CL_ERR_LIMIT);
    assert_string_equal(e->msg, "value 7 is over the limit");
    assert_non_null(strstr(e->file, "test_error.c"));
    assert_true(e->line > 0);
}

static void test_guard_propagates_unchanged(void **state)
{
    (void)state;
    assert_int_equal(propagate(3), CL_ERR_LIMIT);
    assert_string_equal(cl_error_message(), "value 3 is over the limit");
}

static void test_guard_ctx_prefixes(void **state)
{
    (void)state;
    assert_int_equal(propagate_ctx(4), CL_ERR_LIMIT);
    assert_string_equal(cl_error_message(), "reading item 4: value 4 is over the limit");
}

static void test_goto_form_runs_cleanup_once(void **state)
{
    (void)state;
    cleanup_runs = 0;
    assert_int_equal(with_cleanup(true), CL_ERR_FORMAT);
    assert_int_equal(with_cleanup(false), CL_OK);
    assert_int_equal(cleanup_runs, 2);
}

static void test_errno_appended(void **state)
{
    (void)state;
    errno = ENOENT;
    assert_int_equal(cl_error_set_errno(CL_ERR_IO, __FILE__, __LINE__, "cannot open %s", "x"), CL_ERR_IO);
    assert_non_null(strstr(cl_error_message(), "cannot open x: No such file or directory"));
}

static void test_openssl_queue_appended_and_drained(void **state)
{
    (void)state;
    /* A real OpenSSL failure: an unknown cipher name. */
    EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, "no-such-cipher", NULL);
    assert_null(c);
    assert_int_equal(cl_error_set_ssl(CL_ERR_CRYPTO, __FILE__, __LINE__, "fetch"), CL_ERR_CRYPTO);
    assert_non_null(strstr(cl_error_message(), "fetch (OpenSSL: "));
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_long_messages_truncate_safely(void **state)
{
    (void)state;
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    (void)cl_error_set(CL_ERR_FORMAT, __FILE__, __LINE__, "%s", big);
    assert_int_equal(strlen(cl_error_message()), sizeof(cl_error_last()->msg) - 1);
    (void)cl_error_wrap("%s", big);
    assert_int_equal(strlen(cl_error_message()), sizeof(cl_error_last()->msg) - 1);
}

/* Re-raising the last message under another code (an operation answering a parser's error with
 * its own exception) keeps the message: it was once formatted over itself and came out empty. */
static void test_reraise_keeps_message(void **state)
{
    (void)state;
    (void)cl_error_set(CL_ERR_FORMAT, __FILE__, __LINE__, "statement %d: condition key %s is bad", 1, "aws:X");
    (void)cl_error_set(CL_ERR_USAGE, __FILE__, __LINE__, "%s", cl_error_message());
    assert_string_equal(cl_error_message(), "statement 1: condition key aws:X is bad");
    (void)cl_error_set(CL_ERR_USAGE, __FILE__, __LINE__, "invalid policy: %s", cl_error_message());
    assert_string_equal(cl_error_message(), "invalid policy: statement 1: condition key aws:X is bad");
}

static void test_status_names(void **state)
{
    (void)state;
    for (int s = 0; s < CL_STATUS_COUNT; s++) assert_non_null(cl_status_name((cl_status)s));
    assert_string_equal(cl_status_name(CL_ERR_AUTH), "authentication failed");
    assert_string_equal(cl_status_name((cl_status)999), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_records_message_and_location),
        cmocka_unit_test(test_guard_propagates_unchanged),
        cmocka_unit_test(test_guard_ctx_prefixes),
        cmocka_unit_test(test_goto_form_runs_cleanup_once),
        cmocka_unit_test(test_errno_appended),
        cmocka_unit_test(test_openssl_queue_appended_and_drained),
        cmocka_unit_test(test_long_messages_truncate_safely),
        cmocka_unit_test(test_reraise_keeps_message),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
