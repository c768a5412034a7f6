/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/frame.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static cl_status cl_frame_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        CL_ENSURE(w > 0, CL_ERR_IO, "writing a frame: %s", w < 0 ? strerror(errno) : "the peer closed the stream");
        p += w;
        n -= (size_t)w;
    }
    return CL_OK;
}

/* Reads exactly n bytes; *got says how many arrived before the stream ended. */
static cl_status cl_frame_read_all(int fd, uint8_t *p, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t r = read(fd, p + *got, n - *got);
        if (r < 0 && errno == EINTR) continue;
        CL_ENSURE(r >= 0, CL_ERR_IO, "reading a frame: %s", strerror(errno));
        if (r == 0) return CL_OK;
        *got += (size_t)r;
    }
    return CL_OK;
}

cl_status cl_frame_write(int fd, uint8_t type, const uint8_t *payload, size_t n)
{
    CL_ENSURE(type >= CL_FRAME_REQUEST && type <= CL_FRAME_ERROR, CL_ERR_USAGE, "unknown frame type %u", type);
    CL_ENSURE(n <= CL_FRAME_MAX, CL_ERR_LIMIT, "a frame of %zu bytes is over the limit of %zu", n, CL_FRAME_MAX);
    uint8_t hdr[5] = {type, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    CL_GUARD(cl_frame_write_all(fd, hdr, sizeof(hdr))); /* u8 type, u32be length */
    if (n > 0) CL_GUARD(cl_frame_write_all(fd, payload, n));
    return CL_OK;
}

cl_status cl_frame_read(int fd, size_t max, uint8_t *type, cl_buf *out)
{
    uint8_t hdr[5];
    size_t got = 0;
    CL_GUARD(cl_frame_read_all(fd, hdr, sizeof(hdr), &got));
    CL_ENSURE(got > 0, CL_ERR_NOT_FOUND, "no frame: the peer closed the stream");
    CL_ENSURE(got == sizeof(hdr), CL_ERR_IO, "the stream ended inside a frame header (%zu of 5 bytes)", got);
    cl_reader r = cl_reader_make(hdr, sizeof(hdr));
    uint8_t t;
    uint32_t len;
    CL_GUARD(cl_reader_u8(&r, &t));
    CL_GUARD(cl_reader_u32be(&r, &len));
    CL_ENSURE(t >= CL_FRAME_REQUEST && t <= CL_FRAME_ERROR, CL_ERR_FORMAT, "unknown frame type %u", t);
    size_t n = len;
    if (max > CL_FRAME_MAX) max = CL_FRAME_MAX;
    CL_ENSURE(n <= max, CL_ERR_LIMIT, "a frame of %zu bytes is over the limit of %zu", n, max);
    if (n == 0) { /* an empty buffer may have no storage yet: no pointer arithmetic on it */
        *type = t;
        return CL_OK;
    }
    size_t base = out->len;
    CL_GUARD(cl_buf_resize(out, base + n));
    CL_GUARD(cl_frame_read_all(fd, out->data + base, n, &got));
    if (got != n) {
        cl_buf_truncate(out, base);
        CL_FAIL(CL_ERR_IO, "the stream ended inside a frame (%zu of %zu bytes)", got, n);
    }
    *type = t;
    return CL_OK;
}
