/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/stream.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

static CL_MUST_USE cl_status cl_stream_fd_read(cl_stream *s, uint8_t *p, size_t n, size_t *got)
{
    for (;;) {
        ssize_t r = read(s->fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot read %s", s->name);
        *got = (size_t)r;
        return CL_OK;
    }
}

static CL_MUST_USE cl_status cl_stream_fd_write(cl_stream *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(s->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot write %s", s->name);
        p += w;
        n -= (size_t)w;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status cl_stream_mem_read(cl_stream *s, uint8_t *p, size_t n, size_t *got)
{
    size_t take = cl_reader_remaining(&s->mem);
    if (take > n) take = n;
    CL_GUARD(cl_reader_copy(&s->mem, p, take));
    *got = take;
    return CL_OK;
}

static CL_MUST_USE cl_status cl_stream_buf_write(cl_stream *s, const uint8_t *p, size_t n)
{
    return cl_buf_append(s->out, p, n);
}

static CL_MUST_USE cl_status cl_stream_no_read(cl_stream *s, uint8_t *p, size_t n, size_t *got)
{
    (void)p;
    (void)n;
    (void)got;
    CL_FAIL(CL_ERR_INTERNAL, "%s is not readable", s->name);
}

static CL_MUST_USE cl_status cl_stream_no_write(cl_stream *s, const uint8_t *p, size_t n)
{
    (void)p;
    (void)n;
    CL_FAIL(CL_ERR_INTERNAL, "%s is not writable", s->name);
}

cl_stream cl_stream_fd(int fd, const char *name)
{
    cl_stream s;
    memset(&s, 0, sizeof(s));
    s.read = cl_stream_fd_read;
    s.write = cl_stream_fd_write;
    s.name = name;
    s.fd = fd;
    return s;
}

cl_stream cl_stream_mem(const uint8_t *data, size_t len)
{
    cl_stream s;
    memset(&s, 0, sizeof(s));
    s.read = cl_stream_mem_read;
    s.write = cl_stream_no_write;
    s.name = "<memory>";
    s.fd = -1;
    s.mem = cl_reader_make(data, len);
    return s;
}

cl_stream cl_stream_buf(cl_buf *out)
{
    cl_stream s;
    memset(&s, 0, sizeof(s));
    s.read = cl_stream_no_read;
    s.write = cl_stream_buf_write;
    s.name = "<memory>";
    s.fd = -1;
    s.out = out;
    return s;
}

cl_status cl_stream_read_full(cl_stream *s, uint8_t *p, size_t n, size_t *got)
{
    size_t total = 0;
    while (total < n) {
        size_t g = 0;
        CL_GUARD(s->read(s, p + total, n - total, &g));
        if (g == 0) break;
        total += g;
    }
    *got = total;
    return CL_OK;
}
