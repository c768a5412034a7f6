/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP response parser of http.c, on its own for tests/unit/test_http.c and
 * tests/fuzz/fuzz_http_response.c. */
#ifndef CLOISTER_HTTP_INTERNAL_H
#define CLOISTER_HTTP_INTERNAL_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/http.h"

/* Interim (1xx) answers skipped before the final one; more is a misbehaving server. */
#define CL_HTTP_MAX_INTERIM 4

/* One response read from a stream: http-parser's state and where the body goes. */
typedef struct cl_http_response {
    http_parser parser;
    cl_buf *body;      /* the body is appended here */
    size_t body_start; /* body->len before the response */
    size_t max_body;   /* the bound, within what body can still take */
    uint64_t received; /* bytes consumed so far */
    int status;        /* of the final answer, once complete */
    unsigned interim;  /* 1xx answers skipped */
    bool complete;
    bool keep_alive; /* the connection may carry another request (once complete) */
    bool too_large;
    bool bad_start; /* not HTTP/1.x, or a status outside 100..599 */
    /* Set after cl_http_response_init, for cl_http_exchange_run: */
    bool head;            /* the answer to a HEAD: no body whatever the headers say */
    cl_buf *headers;      /* NULL, or where the header fields go ("name\0value\0") */
    size_t headers_start; /* headers->len before the response */
    bool in_value;        /* the last header callback was a value */
    cl_http_sink_fn sink; /* NULL, or where a 2xx answer's body goes */
    void *sink_arg;
    bool sinking;      /* this answer's body goes to the sink */
    cl_status sink_rc; /* the sink's failure, whose error stands */
    uint64_t sunk;     /* bytes given to the sink */
} cl_http_response;

void cl_http_response_init(cl_http_response *r, cl_buf *body, size_t max_body);
/*
 * Parses the next n bytes of the stream; n == 0 says the peer closed it. *used is
 * how many bytes belong to the response: once it is complete, bytes after it are
 * not consumed (a caller that got more than *used must not reuse the connection).
 * On failure the body is cut back to what it was before the response.
 */
CL_MUST_USE cl_status cl_http_response_feed(cl_http_response *r, const uint8_t *p, size_t n, size_t *used);

#endif
