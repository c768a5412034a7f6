/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KMS client's HTTP response parser (src/core/http.c: cl_http_response_feed over
 * http-parser) on arbitrary bytes, as a KMS endpoint, or whoever sits on the path to one,
 * can send them. The first byte picks the size of the pieces the stream arrives in (as
 * recv gives them), the rest is the stream; its end is the peer's close. What the
 * wrapper promises: it never consumes more than it was given; the body stays within
 * max_body and is empty after a failure; a complete answer is HTTP/1.x with a
 * status from 100 to 599, never 101.
 * Seeds: a KMS answer, a chunked one with trailers, an error answer, an interim answer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cloister/buf.h"

#include "http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t piece = (size_t)data[0] % 64 + 1;
    cl_reader in = cl_reader_make(data + 1, size - 1);
    cl_buf body;
    cl_buf_init(&body, MAX_BODY);
    cl_http_response r;
    cl_http_response_init(&r, &body, MAX_BODY);
    cl_status rc = CL_OK;
    while (rc == CL_OK && !r.complete) {
        size_t n = cl_reader_remaining(&in);
        if (n > piece) n = piece;
        const uint8_t *p = NULL;
        if (cl_reader_bytes(&in, n, &p) != CL_OK) abort();
        size_t used = 0;
        rc = cl_http_response_feed(&r, p, n, &used);
        if (used > n) abort();
        if (n == 0) break; /* the close has been fed */
    }
    if (body.len > MAX_BODY) abort();
    if (rc != CL_OK && body.len != 0) abort();
    if (rc == CL_OK && r.complete && (r.status < 100 || r.status > 599 || r.status == 101)) abort();
    if (rc == CL_OK && r.complete && r.parser.http_major != 1) abort();
    cl_buf_free(&body);
    return 0;
}
