/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small HTTP/1.1 client (RFC 9112) for one endpoint, made for the KMS client
 * (cloister/kms_client.h), which runs inside enclaves too: so it brings no library
 * beyond OpenSSL and Node's http-parser (Debian's libhttp-parser, linked in), no DNS
 * inside an enclave, no proxies, no redirects, no cookies.
 *
 * - Transports: plain TCP; TLS 1.2+ (OpenSSL) with the peer's chain verified against a
 *   CA file (AWS_CA_BUNDLE) or the system's store and its name (or IP address) checked;
 *   or a stream already connected by the vsock emulation (cl_vsock_connect: inside an
 *   enclave, where there is neither socket() nor a resolver). The URL still names the
 *   host for the Host header, SNI and the certificate check.
 * - One connection, kept alive between requests as long as the server allows it
 *   (RFC 9112 section 9.3); a kept connection the server has closed meanwhile is
 *   noticed before use, and a request that got no byte back on a reused connection is
 *   sent once more on a fresh one (as libcurl does).
 * - Bounds: each exchange, connecting included, has a deadline (resolving the name
 *   with getaddrinfo excepted: outside enclaves only, it has none of its own); the
 *   status line and headers at most 80 KiB (http-parser's HTTP_MAX_HEADER_SIZE); the
 *   body at most max_body bytes (and what resp can take), whatever its framing
 *   (Content-Length, chunked, or until close).
 *
 * Failures, by kind: CL_ERR_IO the transport's (cannot connect, send or receive, the
 * deadline passed, the peer closed before the end of the answer): another attempt
 * may succeed. CL_ERR_FORMAT a malformed answer; CL_ERR_LIMIT an answer over the
 * bounds; CL_ERR_AUTH a TLS peer whose certificate does not verify; CL_ERR_CRYPTO
 * another TLS failure; CL_ERR_NOT_FOUND a host name that does not resolve; CL_ERR_USAGE
 * a bad URL or header. Messages name the host and port, never a header's value.
 */
#ifndef CLOISTER_HTTP_H
#define CLOISTER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_HTTP_MAX_URL 2048
#define CL_HTTP_DEFAULT_TIMEOUT_MS 30000L
#define CL_HTTP_DEFAULT_MAX_BODY ((size_t)1 << 20)

/* An http:// or https:// URL, split. */
typedef struct cl_http_url {
    bool tls;       /* https */
    char host[256]; /* a name, an IPv4 address or an IPv6 address (without brackets) */
    char port[6];   /* decimal; the scheme's default when the URL names none */
    /* The Host header (RFC 9110 section 7.2), which SigV4 signs: the host as the URL
     * writes it, with ":PORT" when the URL names a port other than the scheme's
     * default (botocore's SigV4Auth._canonical_host). */
    char authority[264];
    char path[CL_HTTP_MAX_URL]; /* "/" when the URL has none */
} cl_http_url;

/* Parses url with http-parser's URL parser: scheme http or https, a host, an optional
 * port 1..65535 and path; no user, query or fragment. */
CL_MUST_USE cl_status cl_http_url_parse(const char *url, cl_http_url *out);

typedef struct cl_http_config {
    const char *ca_file; /* PEM CAs for https; NULL: the system's trust store */
    uint32_t vsock_port; /* nonzero: connect with cl_vsock_connect(cl_vsock_ctl(), vsock_port) */
    long timeout_ms;     /* each exchange, connecting included; 0: CL_HTTP_DEFAULT_TIMEOUT_MS */
    size_t max_body;     /* 0: CL_HTTP_DEFAULT_MAX_BODY */
} cl_http_config;

typedef struct cl_http_client cl_http_client;

typedef struct cl_http_header {
    const char *name;
    const char *value;
} cl_http_header;

/* Checks the URL; connects only when the first request is made. */
CL_MUST_USE cl_status cl_http_client_new(const char *url, const cl_http_config *cfg, cl_http_client **out);
void cl_http_client_free(cl_http_client *c);
const cl_http_url *cl_http_client_url(const cl_http_client *c);
/* How many connections the client has opened so far (keep-alive shows as 1 for many requests). */
unsigned cl_http_client_connections(const cl_http_client *c);

/*
 * POSTs body to the URL's path with the given headers; Host and Content-Length are
 * added. Header names are tokens and values have no control characters (RFC 9110
 * section 5.5), else CL_ERR_USAGE. An answer of any status is CL_OK, with the status
 * in *status and the body appended to resp (nothing is appended on failure). The
 * request is built in a secret buffer (it carries credentials, and may carry a
 * plaintext); resp should be one when the answer may.
 */
CL_MUST_USE cl_status cl_http_post(cl_http_client *c, const cl_http_header *headers, size_t n_headers, const void *body,
                                   size_t body_len, int *status, cl_buf *resp);
/* The same with another method (GET, POST or PUT) and path (NULL: the URL's; else "/..." in
 * origin-form, printable ASCII without spaces, as the caller encoded it). A GET has no body. */
CL_MUST_USE cl_status cl_http_request(cl_http_client *c, const char *method, const char *path,
                                      const cl_http_header *headers, size_t n_headers, const void *body,
                                      size_t body_len, int *status, cl_buf *resp);

/*
 * The general form, for the S3 client (cloister/s3_client.h): any of GET, HEAD, PUT, POST and
 * DELETE; a body from memory or streamed from a source of a known length; the answer's headers
 * kept; a successful (2xx) answer's body streamed to a sink instead of a buffer. Neither a
 * streamed body nor a streamed answer is held in memory. With a source or a sink, the
 * deadline is one of inactivity: it moves on with every chunk sent or received, so a large
 * object takes the time it takes while a stalled peer is still given up on.
 */
/* Fills buf with up to n bytes of the body from offset `at` (*got 0 only at its end). By
 * position, so that a request sent once more on a fresh connection reads its body again. */
typedef CL_MUST_USE cl_status (*cl_http_source_fn)(void *arg, uint64_t at, uint8_t *buf, size_t n, size_t *got);
/* Takes the next n bytes of a 2xx answer's body. */
typedef CL_MUST_USE cl_status (*cl_http_sink_fn)(void *arg, const uint8_t *p, size_t n);

typedef struct cl_http_exchange {
    const char *method; /* GET, HEAD, PUT, POST or DELETE */
    const char *path;   /* as in cl_http_request; NULL: the URL's */
    const cl_http_header *headers;
    size_t n_headers;
    const void *body; /* a body in memory (body_len bytes), or... */
    size_t body_len;
    cl_http_source_fn source; /* ...one streamed from source (source_len bytes) */
    void *source_arg;
    uint64_t source_len;
    cl_buf *resp;         /* the answer's body, unless it goes to the sink (bounded as in cl_http_request) */
    cl_http_sink_fn sink; /* NULL: none; else a 2xx answer's body goes here, any other to resp */
    void *sink_arg;
    cl_buf *resp_headers; /* NULL: not kept; else the answer's header fields as "name\0value\0" pairs */
    int status;           /* out: the answer's status */
    bool sank;            /* out: the body went to the sink */
} cl_http_exchange;

CL_MUST_USE cl_status cl_http_exchange_run(cl_http_client *c, cl_http_exchange *x);
/* The value of the first header field called `name` (any case) in resp_headers, in *value
 * (borrowed); false when the answer has none. */
bool cl_http_header_find(const cl_buf *resp_headers, const char *name, cl_reader *value);

#endif
