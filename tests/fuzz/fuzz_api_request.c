/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What cloister-api reads from a client before anything else (src/guest/api/http.c): a stream of
 * HTTP/1.1 requests, in short reads as a socket gives them, parsed with their bounds (headers,
 * bodies by route, pipelining). What the reader promises: a request it returns has a body within
 * its route's bound and a target within CL_API_URL_MAX, or is refused with a status.
 * Seeds: the walk-through's POST, a pipelined GET pair, a chunked body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/api.h"

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
    if (k > 13) k = 13;
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
    mem_stream m = {data, size, 0};
    cl_api_conn c;
    cl_api_request req;
    if (cl_api_conn_init(&c, (cl_frame_io){.read = mem_read, .write = mem_write, .arg = &m}) != CL_OK) return 0;
    cl_api_request_init(&req);
    for (int i = 0; i < 64; i++) {
        bool got = false;
        if (cl_api_read_request(&c, &req, &got) != CL_OK || !got) break;
        if (req.refuse_status == 0 && (req.body.len > CL_API_DELINEATE_BODY_MAX || req.url.len > CL_API_URL_MAX))
            abort();
        if (req.refuse_status != 0) break;
    }
    cl_api_request_free(&req);
    cl_api_conn_free(&c);
    cl_error_clear();
    return 0;
}
