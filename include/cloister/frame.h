/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's host-channel framing (docs/worker.md): each frame is
 *   u8 type | u32 big-endian length | length bytes of payload
 * over a stream socket (vsock, or the sim launcher's Unix socket). The envelope path uses
 * one request frame and one answer frame per connection.
 */
#ifndef CLOISTER_FRAME_H
#define CLOISTER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_FRAME_REQUEST 1 /* client -> worker: a sealed envelope (the input) */
#define CL_FRAME_RESULT 2  /* worker -> client: a sealed envelope (the result) */
#define CL_FRAME_ERROR 3   /* worker -> client: one line of UTF-8 text saying what failed */
#define CL_FRAME_MAX ((size_t)16 << 20)

/* Writes one frame, all of it (retrying short writes and EINTR). */
CL_MUST_USE cl_status cl_frame_write(int fd, uint8_t type, const uint8_t *payload, size_t n);
/*
 * Reads one frame: its type into *type, its payload appended to out. A payload longer than
 * `max` (at most CL_FRAME_MAX) is CL_ERR_LIMIT and is not read; an unknown type is
 * CL_ERR_FORMAT; the stream ending before any byte is CL_ERR_NOT_FOUND ("no frame"), inside
 * a frame CL_ERR_IO naming how much arrived.
 */
CL_MUST_USE cl_status cl_frame_read(int fd, size_t max, uint8_t *type, cl_buf *out);

#endif
