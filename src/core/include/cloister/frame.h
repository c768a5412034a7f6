/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's framing (docs/worker.md): each frame is
 *   u8 type | u32 big-endian length | length bytes of payload
 * over a stream: the host channel's socket (vsock, or the sim launcher's Unix socket) for the
 * envelope path, or an RA-TLS connection (cloister/ratls.h) for the channel path.
 */
#ifndef CLOISTER_FRAME_H
#define CLOISTER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_FRAME_REQUEST 1 /* client -> worker: the input (envelope path: request id || sealed envelope) */
#define CL_FRAME_RESULT 2  /* worker -> client: the result (envelope path: a sealed envelope) */
#define CL_FRAME_ERROR 3   /* worker -> client: one line of UTF-8 text saying what failed */
#define CL_FRAME_STOP 4    /* host -> worker, envelope port only: finish in-flight requests and exit 0 */
#define CL_FRAME_TYPE_MAX CL_FRAME_STOP
#define CL_FRAME_MAX ((size_t)16 << 20)
/* The envelope path's request: a fresh random id the result's encryption context must carry. */
#define CL_FRAME_REQUEST_ID_LEN 16

/* Where frames go: a socket, or a TLS connection. read sets *got to 0 at the end of the stream. */
typedef struct cl_frame_io {
    CL_MUST_USE cl_status (*read)(void *arg, uint8_t *p, size_t n, size_t *got);
    CL_MUST_USE cl_status (*write)(void *arg, const uint8_t *p, size_t n);
    void *arg;
} cl_frame_io;

/* Frames over a socket or pipe; `fd` must outlive the io. A read that times out (SO_RCVTIMEO)
 * is CL_ERR_EXPIRED. */
cl_frame_io cl_frame_io_fd(int *fd);
/* Frames over an established RA-TLS connection (a cl_ratls_conn *). */
cl_frame_io cl_frame_io_tls(void *ratls_conn);

/* Writes one frame, all of it (retrying short writes and EINTR). */
CL_MUST_USE cl_status cl_frame_write(int fd, uint8_t type, const uint8_t *payload, size_t n);
CL_MUST_USE cl_status cl_frame_write_io(const cl_frame_io *io, uint8_t type, const uint8_t *payload, size_t n);
/*
 * Reads one frame: its type into *type, its payload appended to out. A payload longer than
 * `max` (at most CL_FRAME_MAX) is CL_ERR_LIMIT and is not read; an unknown type is
 * CL_ERR_FORMAT; the stream ending before any byte is CL_ERR_NOT_FOUND ("no frame"), inside
 * a frame CL_ERR_IO naming how much arrived.
 */
CL_MUST_USE cl_status cl_frame_read(int fd, size_t max, uint8_t *type, cl_buf *out);
CL_MUST_USE cl_status cl_frame_read_io(const cl_frame_io *io, size_t max, uint8_t *type, cl_buf *out);

/*
 * The envelope path's request payload: request id (CL_FRAME_REQUEST_ID_LEN bytes) || sealed
 * envelope (untrusted bytes; the envelope itself is checked when it is unsealed). *id and
 * *sealed borrow from p.
 */
CL_MUST_USE cl_status cl_frame_request_parse(const uint8_t *p, size_t n, const uint8_t **id, const uint8_t **sealed,
                                             size_t *sealed_len);
/* Appends the request payload to out. */
CL_MUST_USE cl_status cl_frame_request_encode(const uint8_t id[CL_FRAME_REQUEST_ID_LEN], const uint8_t *sealed,
                                              size_t sealed_len, cl_buf *out);

#endif
