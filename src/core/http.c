/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 client for one endpoint (cloister/http.h): message syntax RFC 9112, the
 * semantics it needs RFC 9110; responses parsed by Node's http-parser 2.9
 * (https://github.com/nodejs/http-parser, Debian's libhttp-parser), TLS by OpenSSL 3.
 */
#include "cloister/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/nsm.h"

#include "http_internal.h"
#include "tls_socket_internal.h"

/* Our own request line and headers around the caller's: the caller's headers and body
 * come on top of this. */
#define HTTP_REQUEST_OVERHEAD ((size_t)64 << 10)
#define HTTP_READ_CHUNK 16384

struct cl_http_client {
    cl_http_url url;
    char *ca_file; /* NULL: the system's trust store */
    uint32_t vsock_port;
    long timeout_ms;
    size_t max_body;
    SSL_CTX *ctx; /* made at the first https connection */
    int fd;       /* -1: no connection */
    SSL *ssl;     /* NULL for http */
    unsigned connections;
};

/* --- the response parser ------------------------------------------------------------ */

static int on_message_begin(http_parser *p)
{
    cl_http_response *r = p->data;
    cl_buf_truncate(r->body, r->body_start); /* drop what an interim answer may have left */
    if (r->headers != NULL) cl_buf_truncate(r->headers, r->headers_start);
    r->in_value = false;
    return 0;
}

/* Header fields as "name\0value\0" pairs; http-parser may hand a name or a value over in
 * pieces (one per read), so a piece is appended to the last pair until the other kind comes.
 * Bounded by http-parser's HTTP_MAX_HEADER_SIZE and the buffer's own cap. */
static int on_header_field(http_parser *p, const char *at, size_t n)
{
    cl_http_response *r = p->data;
    if (r->headers == NULL) return 0;
    if (r->in_value && cl_buf_append_u8(r->headers, 0) != CL_OK) return -1;
    r->in_value = false;
    return cl_buf_append(r->headers, at, n) == CL_OK ? 0 : -1;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    cl_http_response *r = p->data;
    if (r->headers == NULL) return 0;
    if (!r->in_value && cl_buf_append_u8(r->headers, 0) != CL_OK) return -1;
    r->in_value = true;
    return cl_buf_append(r->headers, at, n) == CL_OK ? 0 : -1;
}

static int on_headers_complete(http_parser *p)
{
    cl_http_response *r = p->data;
    /* http-parser takes any 1 to 3 digits and any HTTP/d.d: we take HTTP/1.x (RFC 9112
     * section 2.3) and the status codes RFC 9110 section 15 defines, 100 to 599. */
    if (p->http_major != 1 || p->status_code < 100 || p->status_code > 599) {
        r->bad_start = true;
        return -1;
    }
    if (r->headers != NULL && r->in_value && cl_buf_append_u8(r->headers, 0) != CL_OK) return -1;
    r->in_value = false;
    /* The answer to a HEAD has no body, whatever its Content-Length (RFC 9110 section 9.3.2):
     * 1 tells http-parser so. Interim answers have none either way. */
    if (r->head && p->status_code >= 200) return 1;
    r->sinking = r->sink != NULL && p->status_code >= 200 && p->status_code <= 299;
    /* Refuse a declared length over the bound before reading any of it. */
    if (!r->sinking && (p->flags & F_CONTENTLENGTH) != 0 && p->content_length > r->max_body) {
        r->too_large = true;
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    cl_http_response *r = p->data;
    if (r->sinking) {
        r->sink_rc = r->sink(r->sink_arg, (const uint8_t *)at, n);
        if (r->sink_rc != CL_OK) return -1;
        r->sunk += n;
        return 0;
    }
    if (n > r->max_body - (r->body->len - r->body_start) || cl_buf_append(r->body, at, n) != CL_OK) {
        r->too_large = true;
        return -1;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    cl_http_response *r = p->data;
    /* An interim answer (RFC 9110 section 15.2: 100 Continue, 102, 103) precedes the final
     * one on the same stream; http-parser ends it as a message of its own. 101 switches
     * protocols, which we never ask for: it stays final and is refused by the caller. */
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        r->interim++;
        return r->interim > CL_HTTP_MAX_INTERIM ? -1 : 0;
    }
    r->status = (int)p->status_code;
    r->keep_alive = http_should_keep_alive(p) != 0;
    r->complete = true;
    http_parser_pause(p, 1); /* stop at the end of this answer: what follows is not ours */
    return 0;
}

static const http_parser_settings response_settings = {
    .on_message_begin = on_message_begin,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void cl_http_response_init(cl_http_response *r, cl_buf *body, size_t max_body)
{
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    r->body = body;
    r->body_start = body->len;
    /* The tighter of the caller's bound and what the buffer can still take. */
    r->max_body = body->max - body->len < max_body ? body->max - body->len : max_body;
}

static CL_MUST_USE cl_status response_fail(cl_http_response *r, cl_status code)
{
    cl_buf_truncate(r->body, r->body_start);
    if (r->headers != NULL) cl_buf_truncate(r->headers, r->headers_start);
    return code;
}

cl_status cl_http_response_feed(cl_http_response *r, const uint8_t *p, size_t n, size_t *used)
{
    *used = 0;
    CL_ENSURE(!r->complete, CL_ERR_INTERNAL, "HTTP response fed after its end");
    size_t got = http_parser_execute(&r->parser, &response_settings, (const char *)p, n);
    /* At the end of the stream (n == 0) in the middle of a message, http-parser 2.9 says
     * HPE_INVALID_EOF_STATE and returns 1: it consumed nothing (found by the fuzz target). */
    if (got > n) got = n;
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    uint64_t at = r->received + got;
    r->received = at;
    *used = got;
    if (r->sink_rc != CL_OK) return response_fail(r, r->sink_rc); /* the sink's own message stands */
    if (r->too_large)
        return response_fail(r, CL_RAISE(CL_ERR_LIMIT, "the HTTP response body is over %zu bytes", r->max_body));
    if (r->bad_start)
        return response_fail(r, CL_RAISE(CL_ERR_FORMAT,
                                         "malformed HTTP response: HTTP/%u.%u %u (HTTP/1.x and a status from 100 to "
                                         "599 expected)",
                                         r->parser.http_major, r->parser.http_minor, r->parser.status_code));
    if (e == HPE_CB_message_complete)
        return response_fail(
            r, CL_RAISE(CL_ERR_FORMAT, "the server sent more than %d interim (1xx) answers", CL_HTTP_MAX_INTERIM));
    if (e == HPE_HEADER_OVERFLOW)
        return response_fail(r, CL_RAISE(CL_ERR_LIMIT, "the HTTP response's status line and headers are over %d bytes",
                                         HTTP_MAX_HEADER_SIZE));
    if (e == HPE_INVALID_EOF_STATE)
        return response_fail(r, CL_RAISE(CL_ERR_IO,
                                         "the connection closed in the middle of the HTTP response "
                                         "(after %llu bytes)",
                                         (unsigned long long)at));
    if (e != HPE_OK && e != HPE_PAUSED)
        return response_fail(r, CL_RAISE(CL_ERR_FORMAT, "malformed HTTP response at byte %llu: %s (%s)",
                                         (unsigned long long)at, http_errno_description(e), http_errno_name(e)));
    if (r->complete && r->status == 101)
        return response_fail(r,
                             CL_RAISE(CL_ERR_FORMAT, "the server switched protocols (HTTP 101), which was not asked"));
    if (n == 0 && !r->complete) {
        if (at == 0) return response_fail(r, CL_RAISE(CL_ERR_IO, "the server closed the connection without answering"));
        return response_fail(r, CL_RAISE(CL_ERR_IO,
                                         "the connection closed in the middle of the HTTP response "
                                         "(after %llu bytes)",
                                         (unsigned long long)at));
    }
    return CL_OK;
}

/* --- URLs ------------------------------------------------------------------------- */

static bool is_ip_literal(const char *host)
{
    uint8_t a[16];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

cl_status cl_http_url_parse(const char *url, cl_http_url *out)
{
    memset(out, 0, sizeof(*out));
    size_t n = strnlen(url, CL_HTTP_MAX_URL);
    CL_ENSURE(n > 0 && n < CL_HTTP_MAX_URL, CL_ERR_USAGE, "a URL of 1 to %d bytes is needed", CL_HTTP_MAX_URL - 1);
    struct http_parser_url u;
    http_parser_url_init(&u);
    CL_ENSURE(http_parser_parse_url(url, n, 0, &u) == 0 && (u.field_set & (1U << UF_SCHEMA)) != 0 &&
                  (u.field_set & (1U << UF_HOST)) != 0,
              CL_ERR_USAGE, "not a URL (expected http://HOST[:PORT][/PATH] or https://...)");
    const char *scheme = url + u.field_data[UF_SCHEMA].off;
    size_t scheme_len = u.field_data[UF_SCHEMA].len;
    if (scheme_len == 5 && strncasecmp(scheme, "https", 5) == 0) {
        out->tls = true;
    } else {
        CL_ENSURE(scheme_len == 4 && strncasecmp(scheme, "http", 4) == 0, CL_ERR_USAGE,
                  "the scheme must be http:// or https://");
    }
    CL_ENSURE((u.field_set & ((1U << UF_USERINFO) | (1U << UF_QUERY) | (1U << UF_FRAGMENT))) == 0, CL_ERR_USAGE,
              "the URL may not carry a user, a query or a fragment");
    size_t host_len = u.field_data[UF_HOST].len;
    CL_ENSURE(host_len >= 1 && host_len < sizeof(out->host), CL_ERR_USAGE, "the host name is over %zu bytes",
              sizeof(out->host) - 1);
    (void)snprintf(out->host, sizeof(out->host), "%.*s", (int)host_len, url + u.field_data[UF_HOST].off);
    CL_ENSURE(strchr(out->host, '%') == NULL, CL_ERR_USAGE, "IPv6 zone identifiers are not supported in the host");
    bool v6 = strchr(out->host, ':') != NULL;
    const char *def = out->tls ? "443" : "80";
    if ((u.field_set & (1U << UF_PORT)) != 0) {
        CL_ENSURE(u.port >= 1, CL_ERR_USAGE, "the port must be 1 to 65535");
        (void)snprintf(out->port, sizeof(out->port), "%u", (unsigned)u.port);
    } else {
        (void)snprintf(out->port, sizeof(out->port), "%s", def);
    }
    bool port_shown = (u.field_set & (1U << UF_PORT)) != 0 && strcmp(out->port, def) != 0;
    (void)snprintf(out->authority, sizeof(out->authority), "%s%s%s%s%s", v6 ? "[" : "", out->host, v6 ? "]" : "",
                   port_shown ? ":" : "", port_shown ? out->port : "");
    if ((u.field_set & (1U << UF_PATH)) != 0)
        (void)snprintf(out->path, sizeof(out->path), "%.*s", (int)u.field_data[UF_PATH].len,
                       url + u.field_data[UF_PATH].off);
    else
        (void)snprintf(out->path, sizeof(out->path), "/");
    return CL_OK;
}

/* --- the client ------------------------------------------------------------------ */

cl_status cl_http_client_new(const char *url, const cl_http_config *cfg, cl_http_client **out)
{
    cl_status rc = CL_OK;
    cl_http_client *c = calloc(1, sizeof(*c));
    CL_ENSURE(c != NULL, CL_ERR_NOMEM, "out of memory");
    c->fd = -1;
    CL_GUARD_GOTO(cl_http_url_parse(url, &c->url));
    if (cfg->ca_file != NULL) {
        c->ca_file = strdup(cfg->ca_file);
        CL_ENSURE_GOTO(c->ca_file != NULL, CL_ERR_NOMEM, "out of memory");
    }
    c->vsock_port = cfg->vsock_port;
    c->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : CL_HTTP_DEFAULT_TIMEOUT_MS;
    c->max_body = cfg->max_body > 0 ? cfg->max_body : CL_HTTP_DEFAULT_MAX_BODY;
    *out = c;
out:
    if (rc != CL_OK) cl_http_client_free(c);
    return rc;
}

/* notify: the session is intact (not after a failure, when OpenSSL forbids
 * SSL_shutdown): send a close_notify, without waiting for the peer's. */
static void http_close(cl_http_client *c, bool notify)
{
    if (c->ssl != NULL) {
        if (notify && SSL_is_init_finished(c->ssl)) (void)SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) (void)close(c->fd);
    c->fd = -1;
    ERR_clear_error();
}

void cl_http_client_free(cl_http_client *c)
{
    if (c == NULL) return;
    http_close(c, true);
    SSL_CTX_free(c->ctx);
    free(c->ca_file);
    free(c);
}

const cl_http_url *cl_http_client_url(const cl_http_client *c) { return &c->url; }

unsigned cl_http_client_connections(const cl_http_client *c) { return c->connections; }

static int64_t now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for `events` or the deadline passes. */
static CL_MUST_USE cl_status wait_fd(const cl_http_client *c, int fd, short events, int64_t deadline, const char *doing)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            CL_FAIL(CL_ERR_IO, "%s port %s: timed out after %ld ms %s", c->url.host, c->url.port, c->timeout_ms, doing);
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (r > 0) return CL_OK; /* ready, or an error/hang-up the next call reports */
        if (r < 0 && errno != EINTR) CL_FAIL_ERRNO(CL_ERR_IO, "%s port %s: poll", c->url.host, c->url.port);
    }
}

static CL_MUST_USE cl_status set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "fcntl O_NONBLOCK");
    return CL_OK;
}

/* One address: a non-blocking connect finished by poll. */
static CL_MUST_USE cl_status connect_one(const cl_http_client *c, const struct addrinfo *ai, int64_t deadline, int *out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot connect to %s port %s: socket", c->url.host, c->url.port);
    cl_status rc = CL_OK;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (errno != EINPROGRESS)
            CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot connect to %s port %s", c->url.host, c->url.port);
        CL_GUARD_GOTO(wait_fd(c, fd, POLLOUT, deadline, "connecting"));
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) {
            errno = err;
            CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot connect to %s port %s", c->url.host, c->url.port);
        }
    }
    /* The request goes out in one write and the answer is awaited: no Nagle delay on
     * the last segment (what e7a03cf did for the server side). */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    *out = fd;
    fd = -1;
out:
    if (fd >= 0) (void)close(fd);
    return rc;
}

static CL_MUST_USE cl_status connect_tcp(const cl_http_client *c, int64_t deadline, int *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(c->url.host, c->url.port, &hints, &res);
    if (g != 0) {
        /* EAI_AGAIN is a resolver that did not answer now: the transport's kind of failure. */
        cl_status code = g == EAI_AGAIN ? CL_ERR_IO : CL_ERR_NOT_FOUND;
        return CL_RAISE(code, "cannot resolve %s: %s", c->url.host,
                        g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
    }
    cl_status rc = CL_RAISE(CL_ERR_IO, "cannot resolve %s: no address", c->url.host);
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        rc = connect_one(c, ai, deadline, out);
        if (rc == CL_OK) break; /* otherwise the last address's failure is reported */
    }
    freeaddrinfo(res);
    return rc;
}

static CL_MUST_USE cl_status tls_context(cl_http_client *c)
{
    if (c->ctx != NULL) return CL_OK;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) CL_FAIL_SSL(CL_ERR_CRYPTO, "TLS: SSL_CTX_new");
    cl_status rc = CL_OK;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "TLS: cannot require TLS 1.2");
    /* The peer is always verified: chain and name (set per connection). */
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    /* An answer may carry a plaintext key (Decrypt without Recipient): OpenSSL wipes its
     * record buffers once read, as cloister-kms's own context does. */
    (void)SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
    if (c->ca_file != NULL) {
        if (SSL_CTX_load_verify_file(ctx, c->ca_file) != 1)
            CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO,
                             "TLS: cannot load trusted CA certificates from %s (AWS_CA_BUNDLE: a PEM file of CAs)",
                             c->ca_file);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "TLS: cannot load the system's trusted CA certificates");
    }
    c->ctx = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    return rc;
}

/* What a failed SSL_* call on c->ssl means; raises and returns the status. */
static CL_MUST_USE cl_status tls_failure(const cl_http_client *c, int ret, const char *doing)
{
    int e = SSL_get_error(c->ssl, ret);
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK)
        return CL_RAISE(CL_ERR_AUTH, "TLS: the certificate of %s does not verify: %s (trusted CAs: %s)", c->url.host,
                        X509_verify_cert_error_string(v), c->ca_file != NULL ? c->ca_file : "the system's store");
    bool eof = e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
    if (eof || e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
        ERR_clear_error();
        if (errno != 0 && e == SSL_ERROR_SYSCALL)
            return CL_RAISE_ERRNO(CL_ERR_IO, "TLS with %s port %s: %s", c->url.host, c->url.port, doing);
        return CL_RAISE(CL_ERR_IO, "TLS with %s port %s: the connection closed while %s", c->url.host, c->url.port,
                        doing);
    }
    return CL_RAISE_SSL(CL_ERR_CRYPTO, "TLS with %s port %s failed while %s", c->url.host, c->url.port, doing);
}

/* Drives one non-blocking SSL call to completion. op returns SSL_* style results. */
typedef int (*tls_op)(SSL *ssl, void *arg);

static CL_MUST_USE cl_status tls_drive(cl_http_client *c, tls_op op, void *arg, int64_t deadline, const char *doing)
{
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = op(c->ssl, arg);
        if (r > 0) return CL_OK;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            CL_GUARD(wait_fd(c, c->fd, POLLIN, deadline, doing));
        } else if (e == SSL_ERROR_WANT_WRITE) {
            CL_GUARD(wait_fd(c, c->fd, POLLOUT, deadline, doing));
        } else {
            return tls_failure(c, r, doing);
        }
    }
}

static int op_connect(SSL *ssl, void *arg)
{
    (void)arg;
    return SSL_connect(ssl);
}

static CL_MUST_USE cl_status tls_start(cl_http_client *c, int64_t deadline)
{
    CL_GUARD(tls_context(c));
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "TLS: SSL_new");
    CL_GUARD(cl_tls_attach_socket(c->ssl, c->fd, "TLS"));
    if (is_ip_literal(c->url.host)) {
        /* RFC 6066 section 3: no SNI for an address; the certificate must name the address
         * (an iPAddress subjectAltName, RFC 6125 section 6.2.1). */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->url.host) != 1)
            CL_FAIL_SSL(CL_ERR_CRYPTO, "TLS: cannot check the address %s", c->url.host);
    } else {
        /* RFC 6125: a DNS-ID matching the name, wildcards only as a whole left-most label. */
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set_tlsext_host_name(c->ssl, c->url.host) != 1 || SSL_set1_host(c->ssl, c->url.host) != 1)
            CL_FAIL_SSL(CL_ERR_CRYPTO, "TLS: cannot set the server name %s", c->url.host);
    }
    CL_GUARD(tls_drive(c, op_connect, NULL, deadline, "in the handshake"));
    CL_ENSURE(SSL_get_verify_result(c->ssl) == X509_V_OK && SSL_get0_peer_certificate(c->ssl) != NULL, CL_ERR_AUTH,
              "TLS: %s presented no certificate that verifies", c->url.host);
    return CL_OK;
}

static CL_MUST_USE cl_status http_connect(cl_http_client *c, int64_t deadline)
{
    http_close(c, true);
    cl_status rc = CL_OK;
    if (c->vsock_port != 0) {
        /* Inside an enclave: the launcher (or vsock-proxy) connects the stream to the
         * endpoint; the name is never resolved here. */
        int fd = -1;
        CL_GUARD_CTX(cl_vsock_connect(cl_vsock_ctl(), c->vsock_port, &fd), "connecting to %s through vsock port %u",
                     c->url.host, c->vsock_port);
        c->fd = fd;
        CL_GUARD_GOTO(set_nonblocking(c->fd));
    } else {
        CL_GUARD_GOTO(connect_tcp(c, deadline, &c->fd));
    }
    c->connections++;
    if (c->url.tls) CL_GUARD_GOTO(tls_start(c, deadline));
out:
    if (rc != CL_OK) http_close(c, false);
    return rc;
}

/* A kept connection is worth reusing when nothing is waiting on it: the server sends
 * nothing unasked, so anything readable is its close (or garbage). */
static bool http_idle_alive(const cl_http_client *c)
{
    if (c->fd < 0 || (c->ssl != NULL && SSL_pending(c->ssl) > 0)) return false;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    return poll(&p, 1, 0) == 0;
}

typedef struct io_arg {
    const uint8_t *p;
    size_t n;
    size_t done;
} io_arg;

static int op_write(SSL *ssl, void *arg)
{
    io_arg *a = arg;
    return SSL_write_ex(ssl, a->p, a->n, &a->done);
}

static CL_MUST_USE cl_status send_all(cl_http_client *c, const uint8_t *data, size_t len, int64_t deadline)
{
    cl_reader r = cl_reader_make(data, len);
    while (cl_reader_remaining(&r) > 0) {
        const uint8_t *p = NULL;
        size_t n = 0;
        cl_reader_rest(&r, &p, &n);
        if (c->ssl != NULL) {
            io_arg a = {.p = p, .n = n};
            CL_GUARD(tls_drive(c, op_write, &a, deadline, "sending the request"));
            CL_GUARD(cl_reader_skip(&r, a.done));
            continue;
        }
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            CL_GUARD(wait_fd(c, c->fd, POLLOUT, deadline, "sending the request"));
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) CL_FAIL_ERRNO(CL_ERR_IO, "sending the request to %s port %s", c->url.host, c->url.port);
        CL_GUARD(cl_reader_skip(&r, (size_t)w));
    }
    return CL_OK;
}

/* Reads up to n bytes; *got == 0 is the end of the stream. */
static CL_MUST_USE cl_status recv_some(cl_http_client *c, uint8_t *buf, size_t n, int64_t deadline, size_t *got)
{
    *got = 0;
    for (;;) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            errno = 0;
            int r = SSL_read_ex(c->ssl, buf, n, got);
            if (r == 1) return CL_OK;
            int e = SSL_get_error(c->ssl, r);
            /* The peer's close_notify, or (OpenSSL 3) a close without one: the end of the
             * stream either way; the response's own framing tells whether it was whole. */
            if (e == SSL_ERROR_ZERO_RETURN ||
                (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
                ERR_clear_error();
                *got = 0;
                return CL_OK;
            }
            if (e == SSL_ERROR_WANT_READ) {
                CL_GUARD(wait_fd(c, c->fd, POLLIN, deadline, "waiting for the answer"));
            } else if (e == SSL_ERROR_WANT_WRITE) {
                CL_GUARD(wait_fd(c, c->fd, POLLOUT, deadline, "waiting for the answer"));
            } else {
                return tls_failure(c, r, "waiting for the answer");
            }
            continue;
        }
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r >= 0) {
            *got = (size_t)r;
            return CL_OK;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            CL_FAIL_ERRNO(CL_ERR_IO, "receiving the answer from %s port %s", c->url.host, c->url.port);
        CL_GUARD(wait_fd(c, c->fd, POLLIN, deadline, "waiting for the answer"));
    }
}

/* The streamed body, chunk by chunk, each in the deadline the last one moved on. */
static CL_MUST_USE cl_status send_source(cl_http_client *c, const cl_http_exchange *x, uint8_t *chunk,
                                         int64_t *deadline)
{
    uint64_t at = 0;
    while (at < x->source_len) {
        size_t want = x->source_len - at < HTTP_READ_CHUNK ? (size_t)(x->source_len - at) : HTTP_READ_CHUNK;
        size_t got = 0;
        CL_GUARD(x->source(x->source_arg, at, chunk, want, &got));
        CL_ENSURE(got > 0 && got <= want, CL_ERR_IO,
                  "the request body ended after %llu of the %llu bytes announced (did the file shrink?)",
                  (unsigned long long)at, (unsigned long long)x->source_len);
        CL_GUARD(send_all(c, chunk, got, *deadline));
        at += got;
        *deadline = now_ms() + c->timeout_ms;
    }
    return CL_OK;
}

/* Reads the answer into r until it is complete (or fails). */
static CL_MUST_USE cl_status read_answer(cl_http_client *c, cl_http_response *r, uint8_t *chunk, bool streaming,
                                         int64_t deadline, bool *answered)
{
    size_t got = 0;
    while (!r->complete) {
        CL_GUARD(recv_some(c, chunk, HTTP_READ_CHUNK, deadline, &got));
        if (got > 0) *answered = true;
        if (streaming) deadline = now_ms() + c->timeout_ms;
        size_t used = 0;
        CL_GUARD(cl_http_response_feed(r, chunk, got, &used));
        if (got == 0) break; /* feed reported an answer that the close did not complete */
        if (r->complete && used < got) r->keep_alive = false; /* bytes nobody asked for: drop the connection */
    }
    return CL_OK;
}

/* One request and its answer on the open connection. *answered: a byte came back. */
static CL_MUST_USE cl_status exchange(cl_http_client *c, const cl_buf *req, cl_http_exchange *x, int64_t deadline,
                                      bool *answered)
{
    *answered = false;
    bool streaming = x->source != NULL || x->sink != NULL;
    cl_status rc = CL_OK;
    uint8_t *chunk = malloc(HTTP_READ_CHUNK);
    CL_ENSURE(chunk != NULL, CL_ERR_NOMEM, "out of memory");
    cl_http_response r;
    cl_http_response_init(&r, x->resp, c->max_body);
    r.head = strcmp(x->method, "HEAD") == 0;
    r.headers = x->resp_headers;
    r.headers_start = x->resp_headers != NULL ? x->resp_headers->len : 0;
    r.sink = x->sink;
    r.sink_arg = x->sink_arg;
    cl_status sent = send_all(c, req->data, req->len, deadline);
    if (sent == CL_OK && x->source != NULL) sent = send_source(c, x, chunk, &deadline);
    if (sent != CL_OK) {
        /* A server may answer before the whole request has arrived and close (RFC 9112 section
         * 9.6: an early error, such as S3's AccessDenied to a large PUT): what it said is the
         * failure to report, when it is there to be read and is not a success. */
        if (sent != CL_ERR_IO) {
            rc = sent;
            goto out;
        }
        cl_error failed = *cl_error_last();
        bool early = false;
        if (read_answer(c, &r, chunk, streaming, now_ms() + c->timeout_ms, &early) == CL_OK && r.complete &&
            r.status >= 300) {
            *answered = true;
            r.keep_alive = false;
        } else {
            *answered = early;
            CL_FAIL_GOTO(failed.code, "%s", failed.msg);
        }
    } else {
        CL_GUARD_GOTO(read_answer(c, &r, chunk, streaming, deadline, answered));
    }
    x->status = r.status;
    x->sank = r.sinking;
    if (!r.keep_alive) http_close(c, true);
out:
    /* Bytes already given to the sink cannot be taken back: such a failure is not retried. */
    if (rc != CL_OK && r.sunk > 0) *answered = true;
    cl_memzero(chunk, HTTP_READ_CHUNK); /* may have held a plaintext */
    free(chunk);
    return rc;
}

/* RFC 9110 section 5.1 (field-name = token) and 5.5 (field-value: no CR, LF or NUL;
 * we also refuse the other controls but HTAB). */
static bool header_name_ok(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (s == NULL || *s == '\0') return false;
    for (; *s != '\0'; s++) {
        char ch = *s;
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && strchr(extra, ch) == NULL) return false;
    }
    return true;
}

static bool header_value_ok(const char *s)
{
    if (s == NULL) return false;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) return false;
    }
    return true;
}

/* A request path (RFC 9112 section 3.2.1, origin-form): '/' then printable ASCII without spaces. */
static bool path_ok(const char *s)
{
    if (s == NULL || s[0] != '/') return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return false;
    return true;
}

static CL_MUST_USE cl_status build_request(const cl_http_client *c, const char *method, const char *path,
                                           const cl_http_header *headers, size_t n_headers, const void *body,
                                           size_t body_len, uint64_t source_len, cl_buf *req)
{
    CL_ENSURE(strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                  strcmp(method, "HEAD") == 0 || strcmp(method, "DELETE") == 0,
              CL_ERR_USAGE, "HTTP method %s is not one this client sends (GET, HEAD, POST, PUT, DELETE)", method);
    if (path == NULL) path = c->url.path;
    CL_ENSURE(path_ok(path) && strlen(path) < CL_HTTP_MAX_URL, CL_ERR_USAGE,
              "HTTP request path must start with '/' and hold printable characters only");
    CL_GUARD(cl_buf_printf(req, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, c->url.authority));
    for (size_t i = 0; i < n_headers; i++) {
        CL_ENSURE(header_name_ok(headers[i].name), CL_ERR_USAGE, "HTTP header %zu has an invalid name", i);
        CL_ENSURE(strcasecmp(headers[i].name, "Host") != 0 && strcasecmp(headers[i].name, "Content-Length") != 0 &&
                      strcasecmp(headers[i].name, "Transfer-Encoding") != 0 &&
                      strcasecmp(headers[i].name, "Connection") != 0,
                  CL_ERR_USAGE, "HTTP header %s is the client's own", headers[i].name);
        CL_ENSURE(header_value_ok(headers[i].value), CL_ERR_USAGE,
                  "HTTP header %s has a control character in its value", headers[i].name);
        CL_GUARD(cl_buf_printf(req, "%s: %s\r\n", headers[i].name, headers[i].value));
    }
    /* A GET or HEAD carries no body, and no Content-Length (RFC 9110 section 8.6). */
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0) {
        CL_ENSURE(body_len == 0 && source_len == 0, CL_ERR_USAGE, "a %s request has no body", method);
        return cl_buf_append_str(req, "\r\n");
    }
    if (source_len > 0) return cl_buf_printf(req, "Content-Length: %llu\r\n\r\n", (unsigned long long)source_len);
    CL_GUARD(cl_buf_printf(req, "Content-Length: %zu\r\n\r\n", body_len));
    return cl_buf_append(req, body, body_len);
}

cl_status cl_http_post(cl_http_client *c, const cl_http_header *headers, size_t n_headers, const void *body,
                       size_t body_len, int *status, cl_buf *resp)
{
    return cl_http_request(c, "POST", NULL, headers, n_headers, body, body_len, status, resp);
}

cl_status cl_http_request(cl_http_client *c, const char *method, const char *path, const cl_http_header *headers,
                          size_t n_headers, const void *body, size_t body_len, int *status, cl_buf *resp)
{
    cl_http_exchange x = {.method = method,
                          .path = path,
                          .headers = headers,
                          .n_headers = n_headers,
                          .body = body,
                          .body_len = body_len,
                          .resp = resp};
    *status = 0;
    CL_GUARD(cl_http_exchange_run(c, &x));
    *status = x.status;
    return CL_OK;
}

cl_status cl_http_exchange_run(cl_http_client *c, cl_http_exchange *x)
{
    cl_status rc = CL_OK;
    CL_ENSURE(x->resp != NULL && x->method != NULL, CL_ERR_USAGE, "an HTTP exchange needs a method and a buffer");
    CL_ENSURE(x->source == NULL || x->body_len == 0, CL_ERR_USAGE, "an HTTP request has one body, not two");
    size_t start = x->resp->len;
    size_t hstart = x->resp_headers != NULL ? x->resp_headers->len : 0;
    x->status = 0;
    x->sank = false;
    cl_buf req;
    cl_buf_init_secret(&req, HTTP_REQUEST_OVERHEAD + x->body_len);
    CL_GUARD_GOTO(build_request(c, x->method, x->path, x->headers, x->n_headers, x->body, x->body_len,
                                x->source != NULL ? x->source_len : 0, &req));
    int64_t deadline = now_ms() + c->timeout_ms;
    for (int round = 0;; round++) {
        bool reused = c->fd >= 0 && http_idle_alive(c);
        if (!reused) CL_GUARD_GOTO(http_connect(c, deadline));
        bool answered = false;
        rc = exchange(c, &req, x, deadline, &answered);
        if (rc == CL_OK) break;
        http_close(c, false);
        cl_buf_truncate(x->resp, start);
        if (x->resp_headers != NULL) cl_buf_truncate(x->resp_headers, hstart);
        /* The server may close a kept connection just as we send on it (RFC 9112 section
         * 9.3.1): a request that got nothing back there goes once more on a fresh one. */
        if (!(reused && rc == CL_ERR_IO && !answered && round == 0)) goto out;
        CL_LOG_DEBUG("%s:%s: the kept connection was closed (%s); sending on a new one", c->url.host, c->url.port,
                     cl_error_message());
        deadline = now_ms() + c->timeout_ms;
    }
out:
    if (rc != CL_OK) {
        cl_buf_truncate(x->resp, start);
        if (x->resp_headers != NULL) cl_buf_truncate(x->resp_headers, hstart);
    }
    cl_buf_free(&req);
    return rc;
}

bool cl_http_header_find(const cl_buf *resp_headers, const char *name, cl_reader *value)
{
    if (resp_headers == NULL) return false;
    cl_reader r = cl_reader_make(resp_headers->data, resp_headers->len);
    while (cl_reader_remaining(&r) > 0) {
        cl_reader n, v;
        bool found = false;
        cl_reader_until(&r, 0, &n, &found);
        if (!found || cl_reader_skip(&r, 1) != CL_OK) return false;
        cl_reader_until(&r, 0, &v, &found);
        if (!found || cl_reader_skip(&r, 1) != CL_OK) return false;
        if (cl_reader_is(&n, name, true)) {
            cl_reader_trim(&v, " \t");
            *value = v;
            return true;
        }
    }
    return false;
}
