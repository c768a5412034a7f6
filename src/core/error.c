/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/error.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local cl_error cl_last_error;

static const char *const cl_status_names[CL_STATUS_COUNT] = {
    [CL_OK] = "ok",
    [CL_ERR_USAGE] = "usage error",
    [CL_ERR_IO] = "I/O error",
    [CL_ERR_NOMEM] = "out of memory",
    [CL_ERR_FORMAT] = "malformed input",
    [CL_ERR_AUTH] = "authentication failed",
    [CL_ERR_KEY] = "wrong key",
    [CL_ERR_LIMIT] = "limit exceeded",
    [CL_ERR_CRYPTO] = "crypto library failure",
    [CL_ERR_EXISTS] = "already exists",
    [CL_ERR_NOT_FOUND] = "not found",
    [CL_ERR_EXPIRED] = "expired",
    [CL_ERR_UNSUPPORTED] = "unsupported",
    [CL_ERR_STATE] = "invalid state",
    [CL_ERR_REMOTE] = "remote service error",
    [CL_ERR_DENIED] = "access denied",
    [CL_ERR_INTERNAL] = "internal error",
};

const char *cl_status_name(cl_status s)
{
    if ((unsigned)s >= CL_STATUS_COUNT) return "unknown status";
    return cl_status_names[s];
}

const cl_error *cl_error_last(void) { return &cl_last_error; }

const char *cl_error_message(void)
{
    if (cl_last_error.msg[0] == '\0') return cl_status_name(cl_last_error.code);
    return cl_last_error.msg;
}

void cl_error_clear(void) { memset(&cl_last_error, 0, sizeof(cl_last_error)); }

/* Formats into a copy first: a message built from the previous one ("%s", cl_error_message(),
 * as an operation does to re-raise a parser's error under its own exception) must not have
 * vsnprintf read the buffer it is writing (undefined; glibc left it empty). */
CL_PRINTF(4, 0)
static void cl_error_vset(cl_status code, const char *file, int line, const char *fmt, va_list ap)
{
    char msg[sizeof(cl_last_error.msg)];
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    cl_last_error.code = code;
    cl_last_error.file = file;
    cl_last_error.line = line;
    memcpy(cl_last_error.msg, msg, sizeof(msg));
}

/* Appends to the message, truncating silently: the start of a message is the
 * part a user reads. */
static void cl_error_append(const char *text)
{
    size_t used = strnlen(cl_last_error.msg, sizeof(cl_last_error.msg));
    if (used + 1 >= sizeof(cl_last_error.msg)) return;
    (void)snprintf(cl_last_error.msg + used, sizeof(cl_last_error.msg) - used, "%s", text);
}

cl_status cl_error_set(cl_status code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_error_vset(code, file, line, fmt, ap);
    va_end(ap);
    return code;
}

cl_status cl_error_set_ssl(cl_status code, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cl_error_vset(code, file, line, fmt, ap);
    va_end(ap);
    unsigned long e;
    int first = 1;
    while ((e = ERR_get_error()) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        cl_error_append(first ? " (OpenSSL: " : "; ");
        cl_error_append(buf);
        first = 0;
    }
    if (!first) cl_error_append(")");
    return code;
}

cl_status cl_error_set_errno(cl_status code, const char *file, int line, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    cl_error_vset(code, file, line, fmt, ap);
    va_end(ap);
    char buf[128];
    /* GNU strerror_r may return a static string instead of filling buf. */
    const char *s = strerror_r(saved, buf, sizeof(buf));
    cl_error_append(": ");
    cl_error_append(s);
    errno = saved;
    return code;
}

cl_status cl_error_wrap(const char *fmt, ...)
{
    char prefix[512];
    char old[sizeof(cl_last_error.msg)];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, cl_last_error.msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    (void)snprintf(cl_last_error.msg, sizeof(cl_last_error.msg), "%s: %s", prefix, old);
    if (cl_last_error.code == CL_OK) cl_last_error.code = CL_ERR_INTERNAL;
    return cl_last_error.code;
}
