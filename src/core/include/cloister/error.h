/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one error idiom of libcloister.
 *
 * Every fallible function returns a cl_status and is declared CL_MUST_USE, static
 * functions and function pointers too, so ignoring a failure is a compiler
 * warning (an error in CI); scripts/check-banned refuses a declaration without it. The status says
 * what kind of failure it was; the thread's last error record says what failed,
 * on what input, and what to do about it, plus the file and line that raised it
 * (after s2n-tls's s2n_errno.h, which carries a debug location with each error).
 *
 * Raise with CL_FAIL / CL_ENSURE; propagate with CL_GUARD (or CL_GUARD_CTX to add
 * what the caller was doing). In functions that own resources, use the _GOTO
 * forms, which set a local `rc` and jump to a single `out:` label where
 * everything is released once: no cleanup copied into failure branches.
 */
#ifndef CLOISTER_ERROR_H
#define CLOISTER_ERROR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CL_MUST_USE __attribute__((warn_unused_result))
#define CL_PRINTF(fmt_idx, args_idx) __attribute__((format(printf, fmt_idx, args_idx)))
/* Drops const where a C API takes a non-const pointer it only reads (OpenSSL's
 * OSSL_PARAM and GCM tag, oneDNN's memory objects, protobuf-c's messages, exec's
 * argv, libpq's PGresult), or where we wipe a secret a library hands out as const
 * (jansson's strings). The one way to drop it: -Wcast-qual refuses any other. */
#define CL_UNCONST(p) ((void *)(uintptr_t)(const void *)(p))

typedef enum cl_status {
    CL_OK = 0,
    CL_ERR_USAGE,       /* the caller asked for something invalid (bad argument, bad option) */
    CL_ERR_IO,          /* a file or socket operation failed */
    CL_ERR_NOMEM,       /* out of memory */
    CL_ERR_FORMAT,      /* input is malformed: not what it claims to be */
    CL_ERR_AUTH,        /* authentication failed: tampered, truncated, or wrong key */
    CL_ERR_KEY,         /* the key given is not the key this input needs */
    CL_ERR_LIMIT,       /* input exceeds a documented bound */
    CL_ERR_CRYPTO,      /* the crypto library reported a failure */
    CL_ERR_EXISTS,      /* the target already exists */
    CL_ERR_NOT_FOUND,   /* the thing named does not exist */
    CL_ERR_EXPIRED,     /* the input is valid but too old (or from the future) */
    CL_ERR_UNSUPPORTED, /* a version, algorithm or feature this build does not handle */
    CL_ERR_STATE,       /* the object is not in a state that allows this */
    CL_ERR_REMOTE,      /* a remote service answered with an error */
    CL_ERR_DENIED,      /* a policy refused the operation */
    CL_ERR_INTERNAL,    /* a bug: an invariant did not hold */
    CL_STATUS_COUNT
} cl_status;

/* The last error raised on this thread. */
typedef struct cl_error {
    cl_status code;
    const char *file;
    int line;
    char msg[1024];
} cl_error;

const cl_error *cl_error_last(void);
const char *cl_error_message(void);
const char *cl_status_name(cl_status s);
void cl_error_clear(void);

/* Records an error and returns `code`, so raising is one statement. */
cl_status cl_error_set(cl_status code, const char *file, int line, const char *fmt, ...) CL_PRINTF(4, 5);
/* As cl_error_set, then appends the OpenSSL error queue (and empties it). */
cl_status cl_error_set_ssl(cl_status code, const char *file, int line, const char *fmt, ...) CL_PRINTF(4, 5);
/* As cl_error_set, then appends strerror(errno). */
cl_status cl_error_set_errno(cl_status code, const char *file, int line, const char *fmt, ...) CL_PRINTF(4, 5);
/* Prefixes the current message with what the caller was doing ("ctx: msg");
 * returns the current code unchanged. */
cl_status cl_error_wrap(const char *fmt, ...) CL_PRINTF(1, 2);

/* --- raise, as an expression ---------------------------------------------- */
/* Records the error (with this file and line) and evaluates to `code`, for the
 * places where raising is part of an expression: `rc = CL_RAISE(...)`,
 * `return report(CL_RAISE(...))`, a ternary. Prefer the statement forms below. */
#define CL_RAISE(code, ...) cl_error_set((code), __FILE__, __LINE__, __VA_ARGS__)
#define CL_RAISE_SSL(code, ...) cl_error_set_ssl((code), __FILE__, __LINE__, __VA_ARGS__)
#define CL_RAISE_ERRNO(code, ...) cl_error_set_errno((code), __FILE__, __LINE__, __VA_ARGS__)

/* --- raise and return ------------------------------------------------------ */
/* The code is returned as written (not via the setter's result) so that static
 * analysis sees a failure path return a failure. */
#define CL_FAIL(code, ...) return ((void)cl_error_set((code), __FILE__, __LINE__, __VA_ARGS__), (code))
#define CL_FAIL_SSL(code, ...) return ((void)cl_error_set_ssl((code), __FILE__, __LINE__, __VA_ARGS__), (code))
#define CL_FAIL_ERRNO(code, ...) return ((void)cl_error_set_errno((code), __FILE__, __LINE__, __VA_ARGS__), (code))
#define CL_ENSURE(cond, code, ...) \
    do { \
        if (!(cond)) CL_FAIL((code), __VA_ARGS__); \
    } while (0)
#define CL_GUARD(expr) \
    do { \
        cl_status cl_guard_s_ = (expr); \
        if (cl_guard_s_ != CL_OK) return cl_guard_s_; \
    } while (0)
#define CL_GUARD_CTX(expr, ...) \
    do { \
        if ((expr) != CL_OK) return cl_error_wrap(__VA_ARGS__); \
    } while (0)

/* --- raise and jump to `out:` (the function declares `cl_status rc`) ------- */
#define CL_FAIL_GOTO(code, ...) \
    do { \
        (void)cl_error_set((code), __FILE__, __LINE__, __VA_ARGS__); \
        rc = (code); \
        goto out; \
    } while (0)
#define CL_FAIL_SSL_GOTO(code, ...) \
    do { \
        (void)cl_error_set_ssl((code), __FILE__, __LINE__, __VA_ARGS__); \
        rc = (code); \
        goto out; \
    } while (0)
#define CL_FAIL_ERRNO_GOTO(code, ...) \
    do { \
        (void)cl_error_set_errno((code), __FILE__, __LINE__, __VA_ARGS__); \
        rc = (code); \
        goto out; \
    } while (0)
#define CL_ENSURE_GOTO(cond, code, ...) \
    do { \
        if (!(cond)) CL_FAIL_GOTO((code), __VA_ARGS__); \
    } while (0)
#define CL_GUARD_GOTO(expr) \
    do { \
        rc = (expr); \
        if (rc != CL_OK) goto out; \
    } while (0)
#define CL_GUARD_CTX_GOTO(expr, ...) \
    do { \
        rc = (expr); \
        if (rc != CL_OK) { \
            rc = cl_error_wrap(__VA_ARGS__); \
            goto out; \
        } \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
