/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Byte streams for the streaming formats: a file descriptor or memory behind
 * one interface, so the same sealing code serves files, records and requests.
 */
#ifndef CLOISTER_STREAM_H
#define CLOISTER_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

typedef struct cl_stream cl_stream;
struct cl_stream {
    /* Reads up to n bytes; *got == 0 means the end of the stream. */
    CL_MUST_USE cl_status (*read)(cl_stream *s, uint8_t *p, size_t n, size_t *got);
    /* Writes all n bytes or fails. */
    CL_MUST_USE cl_status (*write)(cl_stream *s, const uint8_t *p, size_t n);
    const char *name; /* for error messages: a path, or "<memory>" */
    int fd;
    cl_reader mem;
    cl_buf *out;
};

cl_stream cl_stream_fd(int fd, const char *name);
cl_stream cl_stream_mem(const uint8_t *data, size_t len);
cl_stream cl_stream_buf(cl_buf *out);

/* Reads until n bytes or the end of the stream; *got says how many. */
CL_MUST_USE cl_status cl_stream_read_full(cl_stream *s, uint8_t *p, size_t n, size_t *got);

#endif
