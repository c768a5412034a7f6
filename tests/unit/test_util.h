/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the unit tests. */
#ifndef CLOISTER_TEST_UTIL_H
#define CLOISTER_TEST_UTIL_H

// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on

#include "cloister/buf.h"
#include "cloister/error.h"

/* Asserts a call succeeded, printing the library's message if not. */
#define assert_ok(expr) \
    do { \
        cl_status t_rc_ = (expr); \
        if (t_rc_ != CL_OK) fail_msg("%s failed: %s: %s", #expr, cl_status_name(t_rc_), cl_error_message()); \
    } while (0)
/* Asserts a call failed with `code` and that its message mentions `needle`. */
#define assert_fails(expr, code, needle) \
    do { \
        cl_status t_rc_ = (expr); \
        if (t_rc_ != (code)) \
            fail_msg("%s: expected %s, got %s (%s)", #expr, cl_status_name(code), cl_status_name(t_rc_), \
                     cl_error_message()); \
        if (strstr(cl_error_message(), (needle)) == NULL) \
            fail_msg("%s: message \"%s\" does not mention \"%s\"", #expr, cl_error_message(), (needle)); \
    } while (0)

/* Decodes a hex literal into a fresh buffer (aborts the test on bad hex). */
void t_hex(cl_buf *out, const char *hex);
/* Path of a file under the source tree (CLOISTER_SOURCE_DIR). */
const char *t_source_path(const char *rel);
/* A fresh temporary directory for this test process. */
const char *t_tmpdir(void);

#endif
