/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 requests in, answers out, over one connection (RFC 9112): Node's http-parser reads
 * the bytes (no parser of our own), this file bounds them. The request line and headers
 * together at most CL_API_HEADER_MAX (431 past it), the body at most what its route takes
 * (64 KiB for records, 4 MiB and its framing for /delineate; 413 past it, from Content-Length
 * before any body byte is read, or as chunks arrive). Keep-alive as the client asks
 * (http_should_keep_alive: HTTP/1.1 unless "Connection: close", HTTP/1.0 only with
 * "keep-alive"); bytes after a request stay for the next one (pipelining).
 */
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cloister/api.h"

#define API_READ_CHUNK ((size_t)16 << 10)
#define API_HEADER_VALUE_MAX ((size_t)8 << 10)

typedef struct api_parse {
    cl_api_request *req;
    size_t header_bytes;
    size_t body_max;
    char field[32]; /* the current header's name, lower case, cut short (only a few are kept) */
    size_t field_len;
    bool in_value;
    cl_buf *target; /* where the current header's value goes, or NULL */
    bool started, complete;
    bool headers_done; /* the body (if any) comes next */
} api_parse;

static void api_set_refusal(api_parse *st, int status, const char *reason)
{
    if (st->req->refuse_status == 0) {
        st->req->refuse_status = status;
        (void)snprintf(st->req->refuse_reason, sizeof(st->req->refuse_reason), "%s", reason);
    }
}

/* From a callback: the answer to send, and the parser stops here. */
static void api_refuse(api_parse *st, http_parser *p, int status, const char *reason)
{
    api_set_refusal(st, status, reason);
    http_parser_pause(p, 1);
}

static bool api_count_header(api_parse *st, http_parser *p, size_t n)
{
    st->header_bytes += n;
    if (st->header_bytes <= CL_API_HEADER_MAX) return true;
    api_refuse(st, p, 431, "the request's headers are over 16 KiB; send fewer or shorter headers");
    return false;
}

static int api_on_message_begin(http_parser *p)
{
    api_parse *st = p->data;
    st->started = true;
    return 0;
}

static int api_on_url(http_parser *p, const char *at, size_t n)
{
    api_parse *st = p->data;
    if (!api_count_header(st, p, n)) return 0;
    if (cl_buf_append(&st->req->url, at, n) != CL_OK) api_refuse(st, p, 414, "the request target is over 2048 bytes");
    return 0;
}

/* Where the value of the header just named goes (NULL: a header the API does not read);
 * *dup when it was given before. */
static cl_buf *api_header_target(api_parse *st, bool *dup)
{
    static const char *const names[] = {"authorization", "content-type", "accept", "origin", "expect"};
    cl_buf *bufs[] = {&st->req->authorization, &st->req->content_type, &st->req->accept, &st->req->origin,
                      &st->req->expect};
    *dup = false;
    if (st->field_len > sizeof(st->field)) return NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (st->field_len == strlen(names[i]) && memcmp(st->field, names[i], st->field_len) == 0) {
            *dup = bufs[i]->len > 0;
            return bufs[i];
        }
    return NULL;
}

static int api_on_header_field(http_parser *p, const char *at, size_t n)
{
    api_parse *st = p->data;
    if (!api_count_header(st, p, n)) return 0;
    if (st->in_value) {
        st->in_value = false;
        st->field_len = 0;
    }
    cl_reader r = cl_reader_make(at, n);
    uint8_t c;
    while (cl_reader_u8(&r, &c) == CL_OK) {
        if (st->field_len < sizeof(st->field)) st->field[st->field_len] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        if (st->field_len <= sizeof(st->field)) st->field_len++;
    }
    return 0;
}

static int api_on_header_value(http_parser *p, const char *at, size_t n)
{
    api_parse *st = p->data;
    if (!api_count_header(st, p, n)) return 0;
    if (!st->in_value) {
        bool dup;
        st->in_value = true;
        st->target = api_header_target(st, &dup);
        /* Given twice, the values would be joined: refuse instead (one credential, one type). */
        if (dup) {
            api_refuse(st, p, 400,
                       "a header the API reads (Authorization, Content-Type, Accept, Origin) is given twice; "
                       "send it once");
            return 0;
        }
    }
    if (st->target != NULL && cl_buf_append(st->target, at, n) != CL_OK)
        api_refuse(st, p, 431, "a header's value is over 8 KiB");
    return 0;
}

static int api_on_headers_complete(http_parser *p)
{
    api_parse *st = p->data;
    cl_api_request *req = st->req;
    switch (p->method) {
    case HTTP_GET: req->method = CL_API_GET; break;
    case HTTP_HEAD: req->method = CL_API_HEAD; break;
    case HTTP_POST: req->method = CL_API_POST; break;
    case HTTP_DELETE: req->method = CL_API_DELETE; break;
    case HTTP_OPTIONS: req->method = CL_API_OPTIONS; break;
    default: req->method = CL_API_OTHER; break;
    }
    (void)snprintf(req->method_name, sizeof(req->method_name), "%s", http_method_str((enum http_method)p->method));
    /* The body's bound by route: only /delineate takes an image. */
    cl_reader url = cl_reader_make(req->url.data, req->url.len);
    st->body_max = cl_reader_starts_with_str(&url, "/delineate") ? CL_API_DELINEATE_BODY_MAX : CL_API_RECORD_BODY_MAX;
    st->headers_done = true;
    if (p->http_major != 1 || p->http_minor > 1) {
        api_refuse(st, p, 505, "only HTTP/1.0 and HTTP/1.1 are served");
        return 0;
    }
    if ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > st->body_max) {
        char reason[160];
        (void)snprintf(reason, sizeof(reason), "the body is %llu bytes; this route takes at most %zu",
                       (unsigned long long)p->content_length, st->body_max);
        api_refuse(st, p, 413, reason);
        return 0;
    }
    /* The body's size is known: one allocation of it (a secret buffer grows by doubling, which
     * would hold up to twice a 4 MiB upload per connection). */
    if ((p->flags & F_CONTENTLENGTH) != 0 && p->content_length > 0 &&
        cl_buf_reserve(&req->body, (size_t)p->content_length) != CL_OK)
        api_refuse(st, p, 503, "out of memory for the body; try again later");
    return 0;
}

static int api_on_body(http_parser *p, const char *at, size_t n)
{
    api_parse *st = p->data;
    if (st->req->body.len + n > st->body_max) {
        char reason[160];
        (void)snprintf(reason, sizeof(reason), "the body is over %zu bytes, what this route takes", st->body_max);
        api_refuse(st, p, 413, reason);
        return 0;
    }
    if (cl_buf_append(&st->req->body, at, n) != CL_OK) api_refuse(st, p, 413, "the body is too large");
    return 0;
}

static int api_on_message_complete(http_parser *p)
{
    api_parse *st = p->data;
    st->complete = true;
    st->req->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1); /* what follows is the next request */
    return 0;
}

static const http_parser_settings api_settings = {
    .on_message_begin = api_on_message_begin,
    .on_url = api_on_url,
    .on_header_field = api_on_header_field,
    .on_header_value = api_on_header_value,
    .on_headers_complete = api_on_headers_complete,
    .on_body = api_on_body,
    .on_message_complete = api_on_message_complete,
};

void cl_api_request_init(cl_api_request *r)
{
    memset(r, 0, sizeof(*r));
    cl_buf_init(&r->url, CL_API_URL_MAX);
    cl_buf_init_secret(&r->authorization, API_HEADER_VALUE_MAX);
    cl_buf_init(&r->content_type, API_HEADER_VALUE_MAX);
    cl_buf_init(&r->accept, API_HEADER_VALUE_MAX);
    cl_buf_init(&r->origin, API_HEADER_VALUE_MAX);
    cl_buf_init(&r->expect, API_HEADER_VALUE_MAX);
    cl_buf_init_secret(&r->body, CL_API_DELINEATE_BODY_MAX);
}

void cl_api_request_free(cl_api_request *r)
{
    cl_buf_free(&r->url);
    cl_buf_free(&r->authorization);
    cl_buf_free(&r->content_type);
    cl_buf_free(&r->accept);
    cl_buf_free(&r->origin);
    cl_buf_free(&r->expect);
    cl_buf_free(&r->body);
}

static void api_request_reset(cl_api_request *r)
{
    cl_buf_truncate(&r->url, 0);
    cl_buf_truncate(&r->authorization, 0);
    cl_buf_truncate(&r->content_type, 0);
    cl_buf_truncate(&r->accept, 0);
    cl_buf_truncate(&r->origin, 0);
    cl_buf_truncate(&r->expect, 0);
    cl_buf_truncate(&r->body, 0);
    r->method = CL_API_OTHER;
    r->method_name[0] = '\0';
    r->keep_alive = false;
    r->refuse_status = 0;
    r->refuse_reason[0] = '\0';
}

void cl_api_response_init(cl_api_response *r)
{
    memset(r, 0, sizeof(*r));
    cl_buf_init_secret(&r->body, (size_t)16 << 20);
    cl_buf_init(&r->headers, (size_t)4 << 10);
}

void cl_api_response_reset(cl_api_response *r)
{
    r->status = 0;
    r->content_type = NULL;
    r->close = false;
    cl_buf_truncate(&r->body, 0);
    cl_buf_truncate(&r->headers, 0);
}

void cl_api_response_free(cl_api_response *r)
{
    cl_buf_free(&r->body);
    cl_buf_free(&r->headers);
}

cl_status cl_api_conn_init(cl_api_conn *c, cl_frame_io io)
{
    memset(c, 0, sizeof(*c));
    c->io = io;
    cl_buf_init_secret(&c->in, CL_API_DELINEATE_BODY_MAX + CL_API_HEADER_MAX + API_READ_CHUNK);
    c->parser = calloc(1, sizeof(http_parser));
    CL_ENSURE(c->parser != NULL, CL_ERR_NOMEM, "out of memory for a connection");
    return CL_OK;
}

void cl_api_conn_free(cl_api_conn *c)
{
    cl_buf_free(&c->in);
    free(c->parser);
    c->parser = NULL;
}

/* Feeds what is buffered; *done when the request is complete or refused. */
static CL_MUST_USE cl_status api_feed(cl_api_conn *c, api_parse *st, bool *done)
{
    http_parser *p = c->parser;
    size_t used = http_parser_execute(p, &api_settings, (const char *)c->in.data, c->in.len);
    enum http_errno e = HTTP_PARSER_ERRNO(p);
    if (e == HPE_PAUSED) {
        http_parser_pause(p, 0);
    } else if (e != HPE_OK) {
        char reason[160];
        if (e == HPE_HEADER_OVERFLOW)
            api_set_refusal(st, 431, "the request's headers are over 16 KiB; send fewer or shorter headers");
        else if (e == HPE_INVALID_VERSION)
            api_set_refusal(st, 505, "only HTTP/1.0 and HTTP/1.1 are served");
        else {
            (void)snprintf(reason, sizeof(reason), "the request is not valid HTTP/1.1 (%s)", http_errno_description(e));
            api_set_refusal(st, 400, reason);
        }
    }
    if (used > c->in.len) used = c->in.len;
    /* Keep what was not consumed (the next pipelined request) at the start of the buffer. */
    if (used > 0) {
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        cl_buf_truncate(&c->in, c->in.len - used);
    }
    *done = st->complete || st->req->refuse_status != 0;
    return CL_OK;
}

cl_status cl_api_read_request(cl_api_conn *c, cl_api_request *req, bool *got)
{
    http_parser *p = c->parser;
    api_parse st = {.req = req, .body_max = CL_API_RECORD_BODY_MAX};
    api_request_reset(req);
    http_parser_init(p, HTTP_REQUEST);
    p->data = &st;
    *got = false;
    bool done = false;
    if (c->in.len > 0) CL_GUARD(api_feed(c, &st, &done));
    bool continued = false;
    while (!done) {
        /* RFC 9110 section 10.1.1: a client that sent "Expect: 100-continue" (curl does for large
         * uploads) waits for an interim 100 before the body; the headers were accepted. */
        cl_reader ex = cl_reader_make(req->expect.data, req->expect.len);
        if (st.headers_done && !continued && cl_reader_is(&ex, "100-continue", true)) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            CL_GUARD(c->io.write(c->io.arg, (const uint8_t *)cont, sizeof(cont) - 1));
            continued = true;
        }
        uint8_t *space;
        size_t before = c->in.len, n = 0;
        CL_GUARD(cl_buf_add_space(&c->in, API_READ_CHUNK, &space));
        cl_status rc = c->io.read(c->io.arg, space, API_READ_CHUNK, &n);
        cl_buf_truncate(&c->in, before + (rc == CL_OK ? n : 0));
        CL_GUARD(rc);
        if (n == 0) {
            if (!st.started && c->in.len == 0) return CL_OK; /* closed between requests */
            CL_FAIL(CL_ERR_IO, "the client closed the connection in the middle of a request");
        }
        CL_GUARD(api_feed(c, &st, &done));
    }
    *got = true;
    if (req->refuse_status != 0) req->keep_alive = false;
    return CL_OK;
}

cl_status cl_api_parse_request_bytes(const uint8_t *data, size_t n, cl_api_request *req, bool *got)
{
    cl_status rc = CL_OK;
    cl_api_conn c;
    CL_GUARD(cl_api_conn_init(&c, (cl_frame_io){0}));
    http_parser *p = c.parser;
    api_parse st = {.req = req, .body_max = CL_API_RECORD_BODY_MAX};
    api_request_reset(req);
    http_parser_init(p, HTTP_REQUEST);
    p->data = &st;
    bool done = false;
    *got = false;
    CL_GUARD_GOTO(cl_buf_append(&c.in, data, n));
    CL_GUARD_GOTO(api_feed(&c, &st, &done));
    *got = done;
out:
    cl_api_conn_free(&c);
    return rc;
}

static const char *api_reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

cl_status cl_api_write_response(cl_api_conn *c, const cl_api_request *req, const cl_api_response *resp)
{
    cl_status rc = CL_OK;
    /* The status line and headers (at most 8 KiB), and the body with them when it is small. */
    const size_t inline_body_max = (size_t)32 << 10;
    cl_buf head;
    cl_buf_init(&head, ((size_t)8 << 10) + inline_body_max);
    bool close = resp->close || !req->keep_alive;
    CL_GUARD_GOTO(cl_buf_printf(&head, "HTTP/1.1 %d %s\r\n", resp->status, api_reason_phrase(resp->status)));
    if (resp->content_type != NULL) CL_GUARD_GOTO(cl_buf_printf(&head, "Content-Type: %s\r\n", resp->content_type));
    CL_GUARD_GOTO(cl_buf_printf(&head,
                                "Content-Length: %zu\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                                "Connection: %s\r\n",
                                resp->body.len, close ? "close" : "keep-alive"));
    CL_GUARD_GOTO(cl_buf_append(&head, resp->headers.data, resp->headers.len));
    CL_GUARD_GOTO(cl_buf_append_str(&head, "\r\n"));
    bool body = req->method != CL_API_HEAD && resp->body.len > 0;
    /* One write (one TLS record) for the usual small answer. */
    if (body && resp->body.len <= inline_body_max) {
        CL_GUARD_GOTO(cl_buf_append(&head, resp->body.data, resp->body.len));
        body = false;
    }
    CL_GUARD_GOTO(c->io.write(c->io.arg, head.data, head.len));
    if (body) CL_GUARD_GOTO(c->io.write(c->io.arg, resp->body.data, resp->body.len));
out:
    cl_buf_free(&head);
    return rc;
}
