/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one buffer type and the one reader type.
 *
 * cl_buf is an owned, growable byte buffer with a hard cap (after curl's
 * dynbuf): appending past `max` fails with CL_ERR_LIMIT instead of growing
 * without bound, so a peer cannot make us allocate what it likes. A secret
 * cl_buf lives in locked, guarded pages (cloister/mem.h) and is wiped whenever
 * its memory is released or reused. The contents are always followed by a NUL
 * byte that is not part of `len`, so text can be handed to C string APIs
 * without a copy; binary data may contain NULs.
 *
 * cl_reader is a bounded cursor over bytes we do not trust (after s2n-tls's
 * stuffer): every read checks the remaining length first, and a short read is
 * CL_ERR_FORMAT naming the offset. All parsing of untrusted input goes through
 * it; there is no unbounded string function on untrusted data.
 */
#ifndef CLOISTER_BUF_H
#define CLOISTER_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/error.h"

typedef struct cl_buf {
    uint8_t *data;
    size_t len;
    size_t cap; /* allocated bytes, including the trailing NUL */
    size_t max; /* largest len allowed */
    bool secret;
} cl_buf;

#define CL_BUF_MAX_DEFAULT ((size_t)64 << 20)

/* Initialisers never allocate; the first append does. */
void cl_buf_init(cl_buf *b, size_t max);
void cl_buf_init_secret(cl_buf *b, size_t max);
/* Wipes and releases the memory; the buffer can be reused after init. */
void cl_buf_free(cl_buf *b);
/* Wipes the contents and sets len to 0, keeping the allocation. */
void cl_buf_reset(cl_buf *b);

CL_MUST_USE cl_status cl_buf_reserve(cl_buf *b, size_t extra);
CL_MUST_USE cl_status cl_buf_append(cl_buf *b, const void *p, size_t n);
CL_MUST_USE cl_status cl_buf_append_str(cl_buf *b, const char *s);
CL_MUST_USE cl_status cl_buf_append_u8(cl_buf *b, uint8_t v);
CL_MUST_USE cl_status cl_buf_append_u16be(cl_buf *b, uint16_t v);
CL_MUST_USE cl_status cl_buf_append_u32be(cl_buf *b, uint32_t v);
CL_MUST_USE cl_status cl_buf_append_u64be(cl_buf *b, uint64_t v);
CL_MUST_USE cl_status cl_buf_printf(cl_buf *b, const char *fmt, ...) CL_PRINTF(2, 3);
/* Shrinks to n bytes (no-op if already shorter), wiping what is cut off. */
void cl_buf_truncate(cl_buf *b, size_t n);
/* Makes len = n, growing with zero bytes if needed (for in-place writers). */
CL_MUST_USE cl_status cl_buf_resize(cl_buf *b, size_t n);
/* Reads a whole file; fails with CL_ERR_LIMIT if it is larger than b->max. */
CL_MUST_USE cl_status cl_buf_read_file(cl_buf *b, const char *path);
/* Appends n lower-case hex digits of bytes. */
CL_MUST_USE cl_status cl_buf_append_hex(cl_buf *b, const uint8_t *p, size_t n);

/* Text view of the contents (always NUL-terminated; "" when empty). */
const char *cl_buf_cstr(const cl_buf *b);

typedef struct cl_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
} cl_reader;

cl_reader cl_reader_make(const void *data, size_t len);
size_t cl_reader_remaining(const cl_reader *r);
CL_MUST_USE cl_status cl_reader_u8(cl_reader *r, uint8_t *out);
CL_MUST_USE cl_status cl_reader_u16be(cl_reader *r, uint16_t *out);
CL_MUST_USE cl_status cl_reader_u32be(cl_reader *r, uint32_t *out);
CL_MUST_USE cl_status cl_reader_u64be(cl_reader *r, uint64_t *out);
/* Borrows n bytes in place (valid as long as the underlying data). */
CL_MUST_USE cl_status cl_reader_bytes(cl_reader *r, size_t n, const uint8_t **out);
CL_MUST_USE cl_status cl_reader_copy(cl_reader *r, void *dst, size_t n);
CL_MUST_USE cl_status cl_reader_skip(cl_reader *r, size_t n);
/* Fails with CL_ERR_FORMAT if bytes remain. */
CL_MUST_USE cl_status cl_reader_expect_end(const cl_reader *r);

/* Decodes hex (either case) into out; CL_ERR_FORMAT on odd length or a non-hex byte. */
CL_MUST_USE cl_status cl_hex_decode(const char *hex, size_t hex_len, cl_buf *out);

#endif
