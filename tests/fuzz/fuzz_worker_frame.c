/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the cloister-infer worker reads from a client (docs/worker.md), on arbitrary bytes: a
 * stream of frames (cl_frame_read_io over an in-memory stream), and for each request frame
 * the envelope path's payload (cl_frame_request_parse: request id || sealed envelope) and
 * the sealed envelope's header, as the worker parses them before any key is asked for.
 * What the parsers promise: request id and envelope lie inside the payload and cover it, and
 * re-encoding gives the payload back. Seeds: a request, a stop frame, an error frame.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cloister/envelope.h"
#include "cloister/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct mem_stream {
    const uint8_t *p;
    size_t n, off;
} mem_stream;

static CL_MUST_USE cl_status mem_read(void *arg, uint8_t *p, size_t n, size_t *got)
{
    mem_stream *m = arg;
    size_t k = m->n - m->off;
    if (k > n) k = n;
    if (k > 7) k = 7; /* short reads, as a socket gives them */
    if (k > 0) memcpy(p, m->p + m->off, k);
    m->off += k;
    *got = k;
    return CL_OK;
}

static CL_MUST_USE cl_status mem_write(void *arg, const uint8_t *p, size_t n)
{
    (void)arg;
    (void)p;
    (void)n;
    return CL_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mem_stream m = {.p = data, .n = size, .off = 0};
    cl_frame_io io = {.read = mem_read, .write = mem_write, .arg = &m};
    cl_buf payload, again;
    cl_buf_init(&payload, 1 << 20);
    cl_buf_init(&again, 1 << 20);
    for (int i = 0; i < 16; i++) {
        uint8_t type = 0;
        cl_buf_truncate(&payload, 0);
        if (cl_frame_read_io(&io, 1 << 20, &type, &payload) != CL_OK) break;
        if (type < CL_FRAME_REQUEST || type > CL_FRAME_TYPE_MAX) __builtin_trap();
        if (type != CL_FRAME_REQUEST) continue;
        const uint8_t *id = NULL, *sealed = NULL;
        size_t sealed_len = 0;
        if (cl_frame_request_parse(payload.data, payload.len, &id, &sealed, &sealed_len) != CL_OK) continue;
        if (id != payload.data || sealed != id + CL_FRAME_REQUEST_ID_LEN ||
            sealed + sealed_len != payload.data + payload.len)
            __builtin_trap();
        cl_buf_truncate(&again, 0);
        if (cl_frame_request_encode(id, sealed, sealed_len, &again) != CL_OK || again.len != payload.len ||
            memcmp(again.data, payload.data, payload.len) != 0)
            __builtin_trap();
        uint32_t hlen = 0;
        if (cl_envelope_header_length(sealed, sealed_len, &hlen) == CL_OK && hlen <= sealed_len) {
            cl_envelope_header h;
            memset(&h, 0, sizeof(h));
            if (cl_envelope_header_parse(sealed, hlen, &h) == CL_OK) cl_envelope_header_free(&h);
        }
    }
    cl_buf_free(&payload);
    cl_buf_free(&again);
    return 0;
}
