/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/frame.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/ratls.h"

static CL_MUST_USE cl_status frame_fd_write(void *arg, const uint8_t *p, size_t n)
{
    int fd = *(int *)arg;
    bool sock = true;
    while (n > 0) {
        /* send() with MSG_NOSIGNAL: a peer that has gone (an enclave killed mid-request) is an
         * error to report, not a SIGPIPE that kills the client; write() for what is no socket. */
        ssize_t w = sock ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
        if (w < 0 && errno == ENOTSOCK) {
            sock = false;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        CL_ENSURE(w > 0, CL_ERR_IO, "writing a frame: %s", w < 0 ? strerror(errno) : "the peer closed the stream");
        p += w;
        n -= (size_t)w;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status frame_fd_read(void *arg, uint8_t *p, size_t n, size_t *got)
{
    int fd = *(int *)arg;
    ssize_t r;
    do {
        r = read(fd, p, n);
    } while (r < 0 && errno == EINTR);
    /* SO_RCVTIMEO: a peer that sends nothing for that long (the worker's stalled clients). */
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        CL_FAIL(CL_ERR_EXPIRED, "reading a frame: the peer sent nothing in time (timed out)");
    CL_ENSURE(r >= 0, CL_ERR_IO, "reading a frame: %s", strerror(errno));
    *got = (size_t)r;
    return CL_OK;
}

static CL_MUST_USE cl_status frame_tls_write(void *arg, const uint8_t *p, size_t n)
{
    return cl_ratls_conn_write(arg, p, n);
}

static CL_MUST_USE cl_status frame_tls_read(void *arg, uint8_t *p, size_t n, size_t *got)
{
    return cl_ratls_conn_read(arg, p, n, got);
}

cl_frame_io cl_frame_io_fd(int *fd) { return (cl_frame_io){.read = frame_fd_read, .write = frame_fd_write, .arg = fd}; }

cl_frame_io cl_frame_io_tls(void *ratls_conn)
{
    return (cl_frame_io){.read = frame_tls_read, .write = frame_tls_write, .arg = ratls_conn};
}

/* Reads exactly n bytes; *got says how many arrived before the stream ended. */
static CL_MUST_USE cl_status frame_read_all(const cl_frame_io *io, uint8_t *p, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        size_t r = 0;
        CL_GUARD(io->read(io->arg, p + *got, n - *got, &r));
        if (r == 0) return CL_OK;
        *got += r;
    }
    return CL_OK;
}

cl_status cl_frame_write_io(const cl_frame_io *io, uint8_t type, const uint8_t *payload, size_t n)
{
    CL_ENSURE(type >= CL_FRAME_REQUEST && type <= CL_FRAME_TYPE_MAX, CL_ERR_USAGE, "unknown frame type %u", type);
    CL_ENSURE(n <= CL_FRAME_MAX, CL_ERR_LIMIT, "a frame of %zu bytes is over the limit of %zu", n, CL_FRAME_MAX);
    uint8_t hdr[5] = {type, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    CL_GUARD(io->write(io->arg, hdr, sizeof(hdr))); /* u8 type, u32be length */
    if (n > 0) CL_GUARD(io->write(io->arg, payload, n));
    return CL_OK;
}

cl_status cl_frame_write(int fd, uint8_t type, const uint8_t *payload, size_t n)
{
    cl_frame_io io = cl_frame_io_fd(&fd);
    return cl_frame_write_io(&io, type, payload, n);
}

cl_status cl_frame_read_io(const cl_frame_io *io, size_t max, uint8_t *type, cl_buf *out)
{
    uint8_t hdr[5];
    size_t got = 0;
    CL_GUARD(frame_read_all(io, hdr, sizeof(hdr), &got));
    CL_ENSURE(got > 0, CL_ERR_NOT_FOUND, "no frame: the peer closed the stream");
    CL_ENSURE(got == sizeof(hdr), CL_ERR_IO, "the stream ended inside a frame header (%zu of 5 bytes)", got);
    cl_reader r = cl_reader_make(hdr, sizeof(hdr));
    uint8_t t;
    uint32_t len;
    CL_GUARD(cl_reader_u8(&r, &t));
    CL_GUARD(cl_reader_u32be(&r, &len));
    CL_ENSURE(t >= CL_FRAME_REQUEST && t <= CL_FRAME_TYPE_MAX, CL_ERR_FORMAT, "unknown frame type %u", t);
    size_t n = len;
    if (max > CL_FRAME_MAX) max = CL_FRAME_MAX;
    CL_ENSURE(n <= max, CL_ERR_LIMIT, "a frame of %zu bytes is over the limit of %zu", n, max);
    if (n == 0) { /* an empty buffer may have no storage yet: no pointer arithmetic on it */
        *type = t;
        return CL_OK;
    }
    size_t base = out->len;
    CL_GUARD(cl_buf_resize(out, base + n));
    cl_status rc = frame_read_all(io, out->data + base, n, &got);
    if (rc != CL_OK || got != n) {
        cl_buf_truncate(out, base);
        if (rc != CL_OK) return rc;
        CL_FAIL(CL_ERR_IO, "the stream ended inside a frame (%zu of %zu bytes)", got, n);
    }
    *type = t;
    return CL_OK;
}

cl_status cl_frame_read(int fd, size_t max, uint8_t *type, cl_buf *out)
{
    cl_frame_io io = cl_frame_io_fd(&fd);
    return cl_frame_read_io(&io, max, type, out);
}

cl_status cl_frame_request_parse(const uint8_t *p, size_t n, const uint8_t **id, const uint8_t **sealed,
                                 size_t *sealed_len)
{
    cl_reader r = cl_reader_make(p, n);
    CL_ENSURE(n > CL_FRAME_REQUEST_ID_LEN, CL_ERR_FORMAT,
              "a request of %zu bytes is too short: it is a %d-byte request id and then a sealed envelope", n,
              CL_FRAME_REQUEST_ID_LEN);
    CL_GUARD(cl_reader_bytes(&r, CL_FRAME_REQUEST_ID_LEN, id));
    *sealed_len = n - CL_FRAME_REQUEST_ID_LEN;
    CL_GUARD(cl_reader_bytes(&r, *sealed_len, sealed));
    CL_GUARD(cl_reader_expect_end(&r));
    return CL_OK;
}

cl_status cl_frame_request_encode(const uint8_t id[CL_FRAME_REQUEST_ID_LEN], const uint8_t *sealed, size_t sealed_len,
                                  cl_buf *out)
{
    CL_ENSURE(sealed_len > 0, CL_ERR_USAGE, "an empty sealed input");
    CL_GUARD(cl_buf_append(out, id, CL_FRAME_REQUEST_ID_LEN));
    CL_GUARD(cl_buf_append(out, sealed, sealed_len));
    return CL_OK;
}
