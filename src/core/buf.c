/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/mem.h"

static const uint8_t cl_buf_empty[1] = {0};

void cl_buf_init(cl_buf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

void cl_buf_init_secret(cl_buf *b, size_t max)
{
    cl_buf_init(b, max);
    b->secret = true;
}

static void cl_buf_release(uint8_t *p, size_t cap, bool secret)
{
    if (p == NULL) return;
    if (secret) {
        cl_secure_free(p); /* wipes */
    } else {
        cl_memzero(p, cap);
        free(p);
    }
}

void cl_buf_free(cl_buf *b)
{
    cl_buf_release(b->data, b->cap, b->secret);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void cl_buf_reset(cl_buf *b)
{
    if (b->data != NULL) {
        cl_memzero(b->data, b->len);
        b->data[0] = 0;
    }
    b->len = 0;
}

cl_status cl_buf_reserve(cl_buf *b, size_t extra)
{
    CL_ENSURE(extra <= b->max && b->len <= b->max - extra, CL_ERR_LIMIT,
              "buffer limit of %zu bytes exceeded (have %zu, need %zu more)", b->max, b->len, extra);
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return CL_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1) cap = b->max + 1;
    uint8_t *p;
    if (b->secret) {
        /* Never realloc a secret: that could leave a stale copy behind. */
        p = cl_secure_alloc(cap);
        CL_ENSURE(p != NULL, CL_ERR_NOMEM, "cannot allocate %zu bytes of locked memory", cap);
        if (b->data != NULL) memcpy(p, b->data, b->len + 1);
        cl_buf_release(b->data, b->cap, true);
    } else {
        p = realloc(b->data, cap);
        CL_ENSURE(p != NULL, CL_ERR_NOMEM, "cannot allocate %zu bytes", cap);
    }
    if (b->data == NULL) p[0] = 0;
    b->data = p;
    b->cap = cap;
    return CL_OK;
}

cl_status cl_buf_append(cl_buf *b, const void *p, size_t n)
{
    CL_GUARD(cl_buf_reserve(b, n));
    if (n > 0) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return CL_OK;
}

cl_status cl_buf_append_str(cl_buf *b, const char *s) { return cl_buf_append(b, s, strlen(s)); }

cl_status cl_buf_append_u8(cl_buf *b, uint8_t v) { return cl_buf_append(b, &v, 1); }

cl_status cl_buf_append_u16be(cl_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    return cl_buf_append(b, t, sizeof(t));
}

cl_status cl_buf_append_u32be(cl_buf *b, uint32_t v)
{
    uint8_t t[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    return cl_buf_append(b, t, sizeof(t));
}

cl_status cl_buf_append_u64be(cl_buf *b, uint64_t v)
{
    CL_GUARD(cl_buf_append_u32be(b, (uint32_t)(v >> 32)));
    return cl_buf_append_u32be(b, (uint32_t)v);
}

cl_status cl_buf_printf(cl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    CL_ENSURE(n >= 0, CL_ERR_INTERNAL, "bad format string");
    CL_GUARD(cl_buf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    (void)vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return CL_OK;
}

void cl_buf_truncate(cl_buf *b, size_t n)
{
    if (n >= b->len) return;
    cl_memzero(b->data + n, b->len - n);
    b->len = n;
    b->data[n] = 0;
}

cl_status cl_buf_resize(cl_buf *b, size_t n)
{
    if (n > b->len) {
        size_t old = b->len;
        CL_GUARD(cl_buf_reserve(b, n - old));
        memset(b->data + old, 0, n - old);
    } else if (b->data != NULL) {
        cl_memzero(b->data + n, b->len - n);
    }
    b->len = n;
    if (b->data != NULL) b->data[n] = 0;
    return CL_OK;
}

cl_status cl_buf_read_file(cl_buf *b, const char *path)
{
    cl_status rc = CL_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", path);
    for (;;) {
        uint8_t chunk[16384];
        ssize_t got = read(fd, chunk, sizeof(chunk));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot read %s", path);
        if (got == 0) break;
        CL_GUARD_CTX_GOTO(cl_buf_append(b, chunk, (size_t)got), "reading %s", path);
        cl_memzero(chunk, (size_t)got);
    }
out:
    close(fd);
    return rc;
}

static const char cl_hex_digits[] = "0123456789abcdef";

const char *cl_hex_encode(const uint8_t *p, size_t n, char *out, size_t size)
{
    if (size == 0) return out;
    size_t k = n, o = 0;
    if (n > (size - 1) / 2) k = size > 4 ? (size - 4) / 2 : 0; /* cut: room for "..." */
    for (size_t i = 0; i < k; i++) {
        out[o++] = cl_hex_digits[p[i] >> 4];
        out[o++] = cl_hex_digits[p[i] & 15];
    }
    if (k < n && size > 4) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

cl_status cl_buf_append_hex(cl_buf *b, const uint8_t *p, size_t n)
{
    const char *digits = cl_hex_digits;
    CL_ENSURE(n <= SIZE_MAX / 2, CL_ERR_LIMIT, "hex input too large");
    CL_GUARD(cl_buf_reserve(b, 2 * n));
    for (size_t i = 0; i < n; i++) {
        b->data[b->len++] = (uint8_t)digits[p[i] >> 4];
        b->data[b->len++] = (uint8_t)digits[p[i] & 15];
    }
    b->data[b->len] = 0;
    return CL_OK;
}

cl_status cl_buf_add_space(cl_buf *b, size_t n, uint8_t **out)
{
    CL_GUARD(cl_buf_reserve(b, n)); /* allocates even for n == 0: *out is never NULL */
    CL_GUARD(cl_buf_resize(b, b->len + n));
    *out = b->data + b->len - n;
    return CL_OK;
}

cl_status cl_buf_append_u8_prefixed(cl_buf *b, const void *p, size_t n)
{
    CL_ENSURE(n <= UINT8_MAX, CL_ERR_LIMIT, "%zu bytes do not fit a 1-byte length prefix", n);
    CL_GUARD(cl_buf_append_u8(b, (uint8_t)n));
    return cl_buf_append(b, p, n);
}

cl_status cl_buf_append_u16be_prefixed(cl_buf *b, const void *p, size_t n)
{
    CL_ENSURE(n <= UINT16_MAX, CL_ERR_LIMIT, "%zu bytes do not fit a 2-byte length prefix", n);
    CL_GUARD(cl_buf_append_u16be(b, (uint16_t)n));
    return cl_buf_append(b, p, n);
}

cl_status cl_buf_append_u32be_prefixed(cl_buf *b, const void *p, size_t n)
{
    CL_ENSURE(n <= UINT32_MAX, CL_ERR_LIMIT, "%zu bytes do not fit a 4-byte length prefix", n);
    CL_GUARD(cl_buf_append_u32be(b, (uint32_t)n));
    return cl_buf_append(b, p, n);
}

cl_status cl_buf_put_u32be_at(cl_buf *b, size_t offset, uint32_t v)
{
    CL_ENSURE(offset <= b->len && b->len - offset >= 4, CL_ERR_INTERNAL,
              "cl_buf_put_u32be_at: offset %zu is not within %zu bytes", offset, b->len);
    b->data[offset] = (uint8_t)(v >> 24);
    b->data[offset + 1] = (uint8_t)(v >> 16);
    b->data[offset + 2] = (uint8_t)(v >> 8);
    b->data[offset + 3] = (uint8_t)v;
    return CL_OK;
}

void cl_buf_rstrip(cl_buf *b, const char *set)
{
    size_t n = b->len;
    while (n > 0 && strchr(set, b->data[n - 1]) != NULL && b->data[n - 1] != 0) n--;
    cl_buf_truncate(b, n);
}

bool cl_buf_chomp(cl_buf *b, uint8_t c)
{
    if (b->len == 0 || b->data[b->len - 1] != c) return false;
    cl_buf_truncate(b, b->len - 1);
    return true;
}

const char *cl_bytes_show(const uint8_t *p, size_t len, char *buf, size_t n)
{
    if (n == 0) return buf;
    size_t keep = len < n - 1 ? len : n - 1;
    bool cut = keep < len && n > 4;
    if (cut) keep = n - 4;
    for (size_t i = 0; i < keep; i++) buf[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    if (cut) {
        memcpy(buf + keep, "...", 3);
        keep += 3;
    }
    buf[keep] = '\0';
    return buf;
}

const char *cl_buf_cstr(const cl_buf *b) { return b->data ? (const char *)b->data : (const char *)cl_buf_empty; }

static int cl_hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

cl_status cl_hex_decode(const char *hex, size_t hex_len, cl_buf *out)
{
    CL_ENSURE(hex_len % 2 == 0, CL_ERR_FORMAT, "hex string has odd length %zu", hex_len);
    CL_GUARD(cl_buf_reserve(out, hex_len / 2));
    for (size_t i = 0; i < hex_len; i += 2) {
        int hi = cl_hex_value(hex[i]);
        int lo = cl_hex_value(hex[i + 1]);
        CL_ENSURE(hi >= 0 && lo >= 0, CL_ERR_FORMAT, "not a hex digit at position %zu", hi < 0 ? i : i + 1);
        out->data[out->len++] = (uint8_t)(hi << 4 | lo);
    }
    out->data[out->len] = 0;
    return CL_OK;
}

/* --- reader --------------------------------------------------------------- */

cl_reader cl_reader_make(const void *data, size_t len)
{
    cl_reader r = {.data = data, .len = data ? len : 0, .pos = 0};
    return r;
}

size_t cl_reader_remaining(const cl_reader *r) { return r->len - r->pos; }

size_t cl_reader_offset(const cl_reader *r) { return r->pos; }

void cl_reader_rest(const cl_reader *r, const uint8_t **p, size_t *n)
{
    *n = cl_reader_remaining(r);
    *p = (r->data != NULL && *n > 0) ? r->data + r->pos : NULL;
}

cl_status cl_reader_since(const cl_reader *mark, const cl_reader *r, const uint8_t **p, size_t *n)
{
    CL_ENSURE(mark->data == r->data && mark->len == r->len && mark->pos <= r->pos, CL_ERR_INTERNAL,
              "cl_reader_since: the mark is not an earlier state of this reader");
    *n = r->pos - mark->pos;
    *p = (r->data != NULL && *n > 0) ? r->data + mark->pos : NULL;
    return CL_OK;
}

bool cl_reader_peek_u8(const cl_reader *r, uint8_t *out)
{
    if (cl_reader_remaining(r) == 0) return false;
    *out = r->data[r->pos];
    return true;
}

bool cl_reader_next_is(const cl_reader *r, uint8_t c)
{
    uint8_t b = 0;
    return cl_reader_peek_u8(r, &b) && b == c;
}

bool cl_reader_starts_with(const cl_reader *r, const void *lit, size_t n)
{
    if (n == 0) return true;
    return cl_reader_remaining(r) >= n && memcmp(r->data + r->pos, lit, n) == 0;
}

/* Consumes n bytes as a sub-reader; n is at most what remains (callers check). */
static cl_reader cl_reader_take(cl_reader *r, size_t n)
{
    cl_reader out = cl_reader_make(n > 0 ? r->data + r->pos : NULL, n);
    r->pos += n;
    return out;
}

void cl_reader_until(cl_reader *r, uint8_t stop, cl_reader *out, bool *found)
{
    size_t rem = cl_reader_remaining(r);
    const uint8_t *at = rem > 0 ? memchr(r->data + r->pos, stop, rem) : NULL;
    *found = at != NULL;
    *out = cl_reader_take(r, at != NULL ? (size_t)(at - (r->data + r->pos)) : rem);
}

void cl_reader_until_any(cl_reader *r, const char *stops, cl_reader *out, bool *found)
{
    size_t n = 0, rem = cl_reader_remaining(r);
    while (n < rem && (r->data[r->pos + n] == 0 || strchr(stops, r->data[r->pos + n]) == NULL)) n++;
    *found = n < rem;
    *out = cl_reader_take(r, n);
}

size_t cl_reader_span(cl_reader *r, const char *set, cl_reader *out)
{
    size_t n = 0, rem = cl_reader_remaining(r);
    while (n < rem && r->data[r->pos + n] != 0 && strchr(set, r->data[r->pos + n]) != NULL) n++;
    *out = cl_reader_take(r, n);
    return n;
}

size_t cl_reader_skip_any(cl_reader *r, const char *set)
{
    cl_reader skipped;
    return cl_reader_span(r, set, &skipped);
}

void cl_reader_trim(cl_reader *r, const char *set)
{
    (void)cl_reader_skip_any(r, set);
    size_t end = r->len;
    while (end > r->pos && r->data[end - 1] != 0 && strchr(set, r->data[end - 1]) != NULL) end--;
    *r = cl_reader_make(end > r->pos ? r->data + r->pos : NULL, end - r->pos);
}

static uint8_t cl_ascii_lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c; }

bool cl_reader_equal(const cl_reader *a, const cl_reader *b, bool nocase)
{
    size_t n = cl_reader_remaining(a);
    if (cl_reader_remaining(b) != n) return false;
    if (n == 0) return true;
    if (!nocase) return memcmp(a->data + a->pos, b->data + b->pos, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (cl_ascii_lower(a->data[a->pos + i]) != cl_ascii_lower(b->data[b->pos + i])) return false;
    return true;
}

bool cl_reader_is(const cl_reader *r, const char *s, bool nocase)
{
    cl_reader lit = cl_reader_make(s, strlen(s));
    return cl_reader_equal(r, &lit, nocase);
}

cl_status cl_reader_sub(cl_reader *r, size_t n, cl_reader *out)
{
    CL_ENSURE(n <= cl_reader_remaining(r), CL_ERR_FORMAT, "truncated: need %zu bytes at offset %zu, only %zu remain", n,
              r->pos, cl_reader_remaining(r));
    *out = cl_reader_take(r, n);
    return CL_OK;
}

cl_status cl_reader_expect(cl_reader *r, const void *lit, size_t n, const char *what)
{
    CL_ENSURE(cl_reader_starts_with(r, lit, n), CL_ERR_FORMAT, "expected %s at offset %zu", what, r->pos);
    r->pos += n;
    return CL_OK;
}

cl_status cl_reader_decimal(cl_reader *r, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = 0, at = r->pos;
    uint8_t c = 0;
    while (cl_reader_peek_u8(r, &c) && c >= '0' && c <= '9') {
        uint64_t d = (uint64_t)(c - '0');
        CL_ENSURE(v < max / 10 || (v == max / 10 && d <= max % 10), CL_ERR_LIMIT, "number at offset %zu exceeds %llu",
                  at, (unsigned long long)max);
        v = v * 10 + d;
        r->pos++;
        n++;
    }
    CL_ENSURE(n > 0, CL_ERR_FORMAT, "expected a decimal number at offset %zu", at);
    *out = v;
    return CL_OK;
}

cl_status cl_reader_bytes(cl_reader *r, size_t n, const uint8_t **out)
{
    CL_ENSURE(n <= cl_reader_remaining(r), CL_ERR_FORMAT, "truncated: need %zu bytes at offset %zu, only %zu remain", n,
              r->pos, cl_reader_remaining(r));
    /* Only an empty reader may have no data; say so for the analyzer too. */
    CL_ENSURE(r->data != NULL || n == 0, CL_ERR_INTERNAL, "read from a reader without data");
    *out = r->data != NULL ? r->data + r->pos : NULL; /* NULL + 0 is undefined in C */
    r->pos += n;
    return CL_OK;
}

cl_status cl_reader_copy(cl_reader *r, void *dst, size_t n)
{
    const uint8_t *p = NULL;
    CL_GUARD(cl_reader_bytes(r, n, &p));
    if (n > 0) memcpy(dst, p, n);
    return CL_OK;
}

cl_status cl_reader_skip(cl_reader *r, size_t n)
{
    const uint8_t *p = NULL;
    return cl_reader_bytes(r, n, &p);
}

cl_status cl_reader_u8(cl_reader *r, uint8_t *out) { return cl_reader_copy(r, out, 1); }

cl_status cl_reader_u16be(cl_reader *r, uint16_t *out)
{
    const uint8_t *p = NULL;
    CL_GUARD(cl_reader_bytes(r, 2, &p));
    *out = (uint16_t)(p[0] << 8 | p[1]);
    return CL_OK;
}

cl_status cl_reader_u32be(cl_reader *r, uint32_t *out)
{
    const uint8_t *p = NULL;
    CL_GUARD(cl_reader_bytes(r, 4, &p));
    *out = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return CL_OK;
}

cl_status cl_reader_u64be(cl_reader *r, uint64_t *out)
{
    uint32_t hi, lo;
    CL_GUARD(cl_reader_u32be(r, &hi));
    CL_GUARD(cl_reader_u32be(r, &lo));
    *out = (uint64_t)hi << 32 | lo;
    return CL_OK;
}

cl_status cl_reader_u16le(cl_reader *r, uint16_t *out)
{
    const uint8_t *p = NULL;
    CL_GUARD(cl_reader_bytes(r, 2, &p));
    *out = (uint16_t)(p[0] | p[1] << 8);
    return CL_OK;
}

cl_status cl_reader_u32le(cl_reader *r, uint32_t *out)
{
    const uint8_t *p = NULL;
    CL_GUARD(cl_reader_bytes(r, 4, &p));
    *out = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return CL_OK;
}

cl_status cl_reader_u64le(cl_reader *r, uint64_t *out)
{
    uint32_t lo, hi;
    CL_GUARD(cl_reader_u32le(r, &lo));
    CL_GUARD(cl_reader_u32le(r, &hi));
    *out = (uint64_t)hi << 32 | lo;
    return CL_OK;
}

cl_status cl_reader_expect_end(const cl_reader *r)
{
    CL_ENSURE(r->pos == r->len, CL_ERR_FORMAT, "%zu unexpected trailing bytes at offset %zu", r->len - r->pos, r->pos);
    return CL_OK;
}

/* --- whole numbers in text ------------------------------------------------ */

cl_status cl_parse_uint(const char *s, uint64_t min, uint64_t max, const char *what, uint64_t *out)
{
    cl_reader r = cl_reader_make(s, s != NULL ? strlen(s) : 0);
    uint64_t v = 0;
    char shown[64];
    if (cl_reader_decimal(&r, max, &v) != CL_OK || cl_reader_remaining(&r) != 0 || v < min)
        CL_FAIL(CL_ERR_USAGE, "%s must be a whole number from %llu to %llu, not '%s'", what, (unsigned long long)min,
                (unsigned long long)max,
                cl_bytes_show((const uint8_t *)(s ? s : ""), s ? strlen(s) : 0, shown, sizeof(shown)));
    *out = v;
    return CL_OK;
}

cl_status cl_parse_int(const char *s, int64_t min, int64_t max, const char *what, int64_t *out)
{
    cl_reader r = cl_reader_make(s, s != NULL ? strlen(s) : 0);
    bool neg = cl_reader_next_is(&r, '-');
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    char shown[64];
    bool ok = (!neg || cl_reader_skip(&r, 1) == CL_OK) && cl_reader_decimal(&r, limit, &mag) == CL_OK &&
              cl_reader_remaining(&r) == 0;
    /* -2^63 has no positive counterpart: negate in unsigned arithmetic. */
    int64_t v = !ok ? 0 : neg ? (int64_t)(0 - mag) : (int64_t)mag;
    if (!ok || v < min || v > max)
        CL_FAIL(CL_ERR_USAGE, "%s must be a whole number from %lld to %lld, not '%s'", what, (long long)min,
                (long long)max, cl_bytes_show((const uint8_t *)(s ? s : ""), s ? strlen(s) : 0, shown, sizeof(shown)));
    *out = v;
    return CL_OK;
}
