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
 * stuffer and BoringSSL's CBS): every read checks the remaining length first,
 * and a short read is CL_ERR_FORMAT naming the offset. All parsing of untrusted
 * input goes through it, with no index arithmetic of its own: peek, scan and
 * split into sub-readers instead (scripts/check-banned refuses `.pos` and
 * `->data[` outside buf.c). A copy of a reader is a mark to come back to.
 */
#ifndef CLOISTER_BUF_H
#define CLOISTER_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
/* Grows len by n and gives the new (zeroed) bytes to a writer that fills them in
 * place, such as a codec of the crypto library (after BoringSSL's CBB_add_space).
 * The byte after them is the buffer's NUL, so a writer that terminates its output
 * (EVP_EncodeBlock) may write it. A writer that wrote fewer bytes gives the rest
 * back with cl_buf_truncate. */
CL_MUST_USE cl_status cl_buf_add_space(cl_buf *b, size_t n, uint8_t **out);
/* Shrinks to n bytes (no-op if already shorter), wiping what is cut off. */
void cl_buf_truncate(cl_buf *b, size_t n);
/* Makes len = n, growing with zero bytes if needed (for in-place writers). */
CL_MUST_USE cl_status cl_buf_resize(cl_buf *b, size_t n);
/* Reads a whole file; fails with CL_ERR_LIMIT if it is larger than b->max. */
CL_MUST_USE cl_status cl_buf_read_file(cl_buf *b, const char *path);
/* Appends the 2n lower-case hex digits of n bytes. */
CL_MUST_USE cl_status cl_buf_append_hex(cl_buf *b, const uint8_t *p, size_t n);
/* The same digits into a fixed array of `size` bytes (NUL included): all of them
 * when size > 2n, else as many whole bytes as fit followed by "..." (for messages).
 * Returns out. The one hex encoder: there is no other. */
const char *cl_hex_encode(const uint8_t *p, size_t n, char *out, size_t size);
/*
 * Length-prefixed appends (after BoringSSL's CBB_add_u*_length_prefixed): a
 * big-endian length of 1, 2 or 4 bytes, then the bytes. CL_ERR_LIMIT when n
 * does not fit the prefix.
 */
CL_MUST_USE cl_status cl_buf_append_u8_prefixed(cl_buf *b, const void *p, size_t n);
CL_MUST_USE cl_status cl_buf_append_u16be_prefixed(cl_buf *b, const void *p, size_t n);
CL_MUST_USE cl_status cl_buf_append_u32be_prefixed(cl_buf *b, const void *p, size_t n);
/* Overwrites 4 bytes at `offset` (which must lie within len) with v, big-endian:
 * for a length written before the bytes it counts were known. */
CL_MUST_USE cl_status cl_buf_put_u32be_at(cl_buf *b, size_t offset, uint32_t v);
/* Cuts bytes in `set` off the end (wiping them), e.g. cl_buf_rstrip(b, "\r\n"). */
void cl_buf_rstrip(cl_buf *b, const char *set);
/* Cuts one trailing byte c, if the last byte is c (wiping it); says whether it did. */
bool cl_buf_chomp(cl_buf *b, uint8_t c);

/* Writes at most n-1 bytes of untrusted input into buf for a message: printable
 * ASCII kept, anything else as '?', "..." when cut. Returns buf. */
const char *cl_bytes_show(const uint8_t *p, size_t len, char *buf, size_t n);

/* Text view of the contents (always NUL-terminated; "" when empty). */
const char *cl_buf_cstr(const cl_buf *b);

typedef struct cl_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
} cl_reader;

cl_reader cl_reader_make(const void *data, size_t len);
size_t cl_reader_remaining(const cl_reader *r);
/* Bytes consumed so far: for error messages ("at offset %zu"). */
size_t cl_reader_offset(const cl_reader *r);
/* The bytes not yet read, without consuming them (p is NULL when none remain). */
void cl_reader_rest(const cl_reader *r, const uint8_t **p, size_t *n);
/* The bytes consumed between `mark` (an earlier copy of the same reader) and r,
 * e.g. to hash what was just parsed. CL_ERR_INTERNAL if mark is not r's past. */
CL_MUST_USE cl_status cl_reader_since(const cl_reader *mark, const cl_reader *r, const uint8_t **p, size_t *n);

/* --- looking ahead: these never consume and never fail ---------------------- */
/* The next byte in *out; false at the end. */
bool cl_reader_peek_u8(const cl_reader *r, uint8_t *out);
/* True when the next byte is c. */
bool cl_reader_next_is(const cl_reader *r, uint8_t c);
/* True when the remaining bytes begin with the n bytes of lit. */
bool cl_reader_starts_with(const cl_reader *r, const void *lit, size_t n);
#define cl_reader_starts_with_str(r, s) cl_reader_starts_with((r), (s), strlen(s))

/* --- scanning ------------------------------------------------------------- */
/* Consumes bytes up to (not including) the first byte equal to `stop`, as a sub-reader
 * in *out; *found says whether `stop` occurs (if not, *out holds all the rest). */
void cl_reader_until(cl_reader *r, uint8_t stop, cl_reader *out, bool *found);
/* As cl_reader_until with any byte of the NUL-terminated `stops`. */
void cl_reader_until_any(cl_reader *r, const char *stops, cl_reader *out, bool *found);
/* Consumes the longest run of bytes that are in the NUL-terminated `set`, as a
 * sub-reader in *out (may be empty); returns its length. */
size_t cl_reader_span(cl_reader *r, const char *set, cl_reader *out);
/* Consumes bytes while they are in `set`; returns how many. */
size_t cl_reader_skip_any(cl_reader *r, const char *set);
/* Narrows r to its remaining bytes without the leading and trailing bytes that are in
 * `set` (e.g. " \t\r" around a line's value). */
void cl_reader_trim(cl_reader *r, const char *set);
/* True when the remaining bytes of a and b are the same; nocase: ASCII letters compare
 * without case. Never consumes. */
bool cl_reader_equal(const cl_reader *a, const cl_reader *b, bool nocase);
/* The same against the NUL-terminated s. */
bool cl_reader_is(const cl_reader *r, const char *s, bool nocase);
/* Consumes the next n bytes as a sub-reader. */
CL_MUST_USE cl_status cl_reader_sub(cl_reader *r, size_t n, cl_reader *out);
/* Consumes exactly the n bytes of lit; CL_ERR_FORMAT "expected <what>" otherwise
 * (nothing consumed). */
CL_MUST_USE cl_status cl_reader_expect(cl_reader *r, const void *lit, size_t n, const char *what);
/* Consumes one or more ASCII decimal digits as an unsigned integer of at most
 * `max`: CL_ERR_FORMAT without a digit, CL_ERR_LIMIT above max (no wrap-around). */
CL_MUST_USE cl_status cl_reader_decimal(cl_reader *r, uint64_t max, uint64_t *out);
CL_MUST_USE cl_status cl_reader_u8(cl_reader *r, uint8_t *out);
CL_MUST_USE cl_status cl_reader_u16be(cl_reader *r, uint16_t *out);
CL_MUST_USE cl_status cl_reader_u32be(cl_reader *r, uint32_t *out);
CL_MUST_USE cl_status cl_reader_u64be(cl_reader *r, uint64_t *out);
CL_MUST_USE cl_status cl_reader_u16le(cl_reader *r, uint16_t *out);
CL_MUST_USE cl_status cl_reader_u32le(cl_reader *r, uint32_t *out);
CL_MUST_USE cl_status cl_reader_u64le(cl_reader *r, uint64_t *out);
/* Borrows n bytes in place (valid as long as the underlying data). */
CL_MUST_USE cl_status cl_reader_bytes(cl_reader *r, size_t n, const uint8_t **out);
CL_MUST_USE cl_status cl_reader_copy(cl_reader *r, void *dst, size_t n);
CL_MUST_USE cl_status cl_reader_skip(cl_reader *r, size_t n);
/* Fails with CL_ERR_FORMAT if bytes remain. */
CL_MUST_USE cl_status cl_reader_expect_end(const cl_reader *r);

/*
 * The one parser of a whole decimal string (a command-line option, a config value, a
 * request member): optional '-' (cl_parse_int only), digits, nothing else; no
 * leading '+' or spaces, no wrap-around. CL_ERR_USAGE "<what> must be a whole
 * number from <min> to <max>, not '<s>'" otherwise.
 */
CL_MUST_USE cl_status cl_parse_uint(const char *s, uint64_t min, uint64_t max, const char *what, uint64_t *out);
CL_MUST_USE cl_status cl_parse_int(const char *s, int64_t min, int64_t max, const char *what, int64_t *out);

/* Decodes hex (either case) into out; CL_ERR_FORMAT on odd length or a non-hex byte. */
CL_MUST_USE cl_status cl_hex_decode(const char *hex, size_t hex_len, cl_buf *out);

#endif
