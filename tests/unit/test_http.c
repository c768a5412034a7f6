/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 client (src/core/http.c) against a scripted server on 127.0.0.1 (a port
 * the kernel picks) that answers each request with bytes the test chose: well-formed
 * answers, keep-alive and its failures, and the hostile ones (garbage, bodies over the
 * bound, chunked bodies cut short, headers over 80 KiB, Content-Length together with
 * chunked, endless interim answers), over plain TCP and over TLS with a certificate made
 * here (the wrong name, an untrusted issuer). The response parser alone is fuzzed by
 * tests/fuzz/fuzz_http_response.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/http.h"

#include "http_internal.h"
#include "test_util.h"

/* --- a scripted server ------------------------------------------------------------ */

typedef enum after { KEEP, CLOSE, HOLD, DROP } after;

typedef struct answer {
    const char *bytes; /* what the server writes (NULL: nothing) */
    size_t len;        /* 0: strlen(bytes) */
    after then;        /* KEEP the connection, CLOSE it, HOLD it silent, or DROP it unanswered */
} answer;

typedef struct server {
    int listen_fd;
    int port;
    int stop[2]; /* the test writes a byte to stop the server */
    pthread_t thread;
    const answer *script;
    size_t script_len;
    int requests; /* requests read, over all connections */
    int accepts;
    char last_request[8192];
    SSL_CTX *tls; /* non-NULL: TLS */
} server;

/* Reads one request (head, then Content-Length bytes of body); 0 at the end of the stream.
 * Bytes that are not an HTTP request (a TLS ClientHello) count as one at once. */
static int read_request(server *s, int fd, SSL *ssl, char *buf, size_t cap)
{
    size_t n = 0;
    size_t need = 0;
    for (;;) {
        if (n + 1 >= cap) return -1;
        int r = ssl != NULL ? SSL_read(ssl, buf + n, (int)(cap - 1 - n)) : (int)read(fd, buf + n, cap - 1 - n);
        if (r <= 0) return n == 0 ? 0 : -1;
        n += (size_t)r;
        buf[n] = '\0';
        if (n >= 5 && strncmp(buf, "POST ", 5) != 0) break;
        const char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL) continue;
        if (need == 0) {
            const char *cl = strstr(buf, "Content-Length: ");
            size_t body = cl != NULL ? strtoul(cl + 16, NULL, 10) : 0;
            need = (size_t)(end - buf) + 4 + body;
        }
        if (n >= need) break;
    }
    (void)snprintf(s->last_request, sizeof(s->last_request), "%s", buf);
    return 1;
}

static void write_all(int fd, SSL *ssl, const char *p, size_t n)
{
    while (n > 0) {
        int w = ssl != NULL ? SSL_write(ssl, p, (int)n) : (int)send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

/* Waits for the connection's next bytes or the stop byte: false when stopping. */
static bool wait_readable(server *s, int fd)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = s->stop[0], .events = POLLIN}};
    while (poll(p, 2, -1) < 0 && errno == EINTR) {
    }
    return (p[1].revents & POLLIN) == 0;
}

static void *server_main(void *arg)
{
    server *s = arg;
    char *buf = malloc(1 << 16);
    for (;;) {
        if (!wait_readable(s, s->listen_fd)) break;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0) continue;
        s->accepts++;
        SSL *ssl = NULL;
        if (s->tls != NULL) {
            ssl = SSL_new(s->tls);
            SSL_set_fd(ssl, fd);
            if (SSL_accept(ssl) != 1) { /* the client refused our certificate */
                SSL_free(ssl);
                close(fd);
                continue;
            }
        }
        bool open = true;
        while (open && wait_readable(s, fd)) {
            if (read_request(s, fd, ssl, buf, 1 << 16) != 1) break;
            const answer *a = (size_t)s->requests < s->script_len ? &s->script[s->requests] : NULL;
            s->requests++;
            if (a == NULL || a->then == DROP) break;
            if (a->bytes != NULL) write_all(fd, ssl, a->bytes, a->len ? a->len : strlen(a->bytes));
            if (a->then == CLOSE) open = false;
            if (a->then == HOLD) {
                /* silent until the client gives up and closes, or the test ends */
                while (wait_readable(s, fd) && read(fd, buf, 1 << 16) > 0) {
                }
                open = false;
            }
        }
        if (ssl != NULL) SSL_free(ssl);
        close(fd);
    }
    free(buf);
    return NULL;
}

static void server_start(server *s, const answer *script, size_t n, SSL_CTX *tls)
{
    memset(s, 0, sizeof(*s));
    s->script = script;
    s->script_len = n;
    s->tls = tls;
    assert_int_equal(pipe(s->stop), 0);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->listen_fd, 8), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(server *s)
{
    assert_int_equal(write(s->stop[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    close(s->stop[0]);
    close(s->stop[1]);
}

static cl_http_client *client_for(const server *s, const char *scheme, const char *host, const cl_http_config *cfg)
{
    char url[128];
    (void)snprintf(url, sizeof(url), "%s://%s:%d/", scheme, host, s->port);
    cl_http_config dflt = {.timeout_ms = 10000};
    cl_http_client *c = NULL;
    assert_ok(cl_http_client_new(url, cfg != NULL ? cfg : &dflt, &c));
    return c;
}

static const cl_http_header hdrs[] = {{"Content-Type", "application/x-amz-json-1.1"},
                                      {"X-Amz-Target", "TrentService.ListKeys"}};

static CL_MUST_USE cl_status post(cl_http_client *c, int *status, cl_buf *resp)
{
    return cl_http_post(c, hdrs, 2, "{}", 2, status, resp);
}

#define OK_ANSWER "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"Keys\":[]}"

/* --- URLs --------------------------------------------------------------------------- */

static void test_url_parse(void **state)
{
    (void)state;
    cl_http_url u;
    assert_ok(cl_http_url_parse("http://127.0.0.1:4599", &u));
    assert_false(u.tls);
    assert_string_equal(u.host, "127.0.0.1");
    assert_string_equal(u.port, "4599");
    assert_string_equal(u.authority, "127.0.0.1:4599");
    assert_string_equal(u.path, "/");
    /* botocore's canonical host: the scheme's default port is not part of Host. */
    assert_ok(cl_http_url_parse("HTTPS://kms.eu-west-1.amazonaws.com:443/", &u));
    assert_true(u.tls);
    assert_string_equal(u.authority, "kms.eu-west-1.amazonaws.com");
    assert_string_equal(u.port, "443");
    assert_ok(cl_http_url_parse("https://[::1]:8443/kms", &u));
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.authority, "[::1]:8443");
    assert_string_equal(u.path, "/kms");
    assert_fails(cl_http_url_parse("ftp://x", &u), CL_ERR_USAGE, "http:// or https://");
    assert_fails(cl_http_url_parse("::not a url", &u), CL_ERR_USAGE, "not a URL");
    assert_fails(cl_http_url_parse("http://h:0/", &u), CL_ERR_USAGE, "1 to 65535");
    assert_fails(cl_http_url_parse("http://h:70000/", &u), CL_ERR_USAGE, "not a URL");
    assert_fails(cl_http_url_parse("http://user:pw@h/", &u), CL_ERR_USAGE, "user, a query or a fragment");
    assert_fails(cl_http_url_parse("http://h/?Action=x", &u), CL_ERR_USAGE, "user, a query or a fragment");
    assert_fails(cl_http_url_parse("http://[fe80::1%25eth0]:1/", &u), CL_ERR_USAGE, "zone");
    assert_fails(cl_http_url_parse("", &u), CL_ERR_USAGE, "URL of 1 to");
}

/* --- well-formed exchanges and keep-alive ----------------------------------------- */

static void test_keep_alive_reuses_one_connection(void **state)
{
    (void)state;
    const answer script[] = {{OK_ANSWER, 0, KEEP}, {OK_ANSWER, 0, KEEP}, {OK_ANSWER, 0, KEEP}};
    server s;
    server_start(&s, script, 3, NULL);
    cl_http_client *c = client_for(&s, "http", "127.0.0.1", NULL);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    for (int i = 0; i < 3; i++) {
        int status = 0;
        cl_buf_reset(&resp);
        assert_ok(post(c, &status, &resp));
        assert_int_equal(status, 200);
        assert_string_equal(cl_buf_cstr(&resp), "{\"Keys\":[]}");
    }
    assert_int_equal(cl_http_client_connections(c), 1);
    /* What went out: our request line, Host as signed, the caller's headers, the length. */
    assert_non_null(strstr(s.last_request, "POST / HTTP/1.1\r\n"));
    char host[64];
    (void)snprintf(host, sizeof(host), "\r\nHost: 127.0.0.1:%d\r\n", s.port);
    assert_non_null(strstr(s.last_request, host));
    assert_non_null(strstr(s.last_request, "\r\nX-Amz-Target: TrentService.ListKeys\r\n"));
    assert_non_null(strstr(s.last_request, "\r\nContent-Length: 2\r\n\r\n{}"));
    cl_buf_free(&resp);
    cl_http_client_free(c);
    server_stop(&s);
    assert_int_equal(s.accepts, 1);
}

static void test_connection_close_and_closed_connections_reconnect(void **state)
{
    (void)state;
    /* 1: "Connection: close". 2: kept, but 3 is dropped unanswered on that kept connection,
     * so the client sends it again on a new one (4). 5: read until the server closes. */
    const answer script[] = {
        {"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0, CLOSE},
        {OK_ANSWER, 0, KEEP},
        {NULL, 0, DROP},
        {OK_ANSWER, 0, KEEP},
        {"HTTP/1.0 200 OK\r\n\r\nuntil the end", 0, CLOSE},
        {OK_ANSWER, 0, KEEP},
    };
    server s;
    server_start(&s, script, 6, NULL);
    cl_http_client *c = client_for(&s, "http", "127.0.0.1", NULL);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    int status = 0;
    assert_ok(post(c, &status, &resp));
    assert_string_equal(cl_buf_cstr(&resp), "ok");
    cl_buf_reset(&resp);
    assert_ok(post(c, &status, &resp));
    assert_int_equal(cl_http_client_connections(c), 2);
    cl_buf_reset(&resp);
    assert_ok(post(c, &status, &resp)); /* dropped once, answered on the retry */
    assert_string_equal(cl_buf_cstr(&resp), "{\"Keys\":[]}");
    assert_int_equal(cl_http_client_connections(c), 3);
    cl_buf_reset(&resp);
    assert_ok(post(c, &status, &resp));
    assert_string_equal(cl_buf_cstr(&resp), "until the end");
    cl_buf_reset(&resp);
    assert_ok(post(c, &status, &resp));
    assert_int_equal(cl_http_client_connections(c), 4);
    cl_buf_free(&resp);
    cl_http_client_free(c);
    server_stop(&s);
    assert_int_equal(s.requests, 6); /* the dropped request went twice, the others once */
}

static void test_interim_answers_are_skipped(void **state)
{
    (void)state;
    const answer script[] = {
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" OK_ANSWER, 0, KEEP}};
    server s;
    server_start(&s, script, 1, NULL);
    cl_http_client *c = client_for(&s, "http", "127.0.0.1", NULL);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    int status = 0;
    assert_ok(post(c, &status, &resp));
    assert_int_equal(status, 200);
    assert_string_equal(cl_buf_cstr(&resp), "{\"Keys\":[]}");
    cl_buf_free(&resp);
    cl_http_client_free(c);
    server_stop(&s);
}

static void test_bytes_after_the_answer_drop_the_connection(void **state)
{
    (void)state;
    const answer script[] = {{OK_ANSWER "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, KEEP}, {OK_ANSWER, 0, KEEP}};
    server s;
    server_start(&s, script, 2, NULL);
    cl_http_client *c = client_for(&s, "http", "127.0.0.1", NULL);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    int status = 0;
    assert_ok(post(c, &status, &resp));
    assert_string_equal(cl_buf_cstr(&resp), "{\"Keys\":[]}"); /* the unasked answer is not taken */
    cl_buf_reset(&resp);
    assert_ok(post(c, &status, &resp));
    assert_int_equal(cl_http_client_connections(c), 2);
    cl_buf_free(&resp);
    cl_http_client_free(c);
    server_stop(&s);
}

/* --- hostile and broken answers ----------------------------------------------------- */

/* One request against one scripted answer; checks the failure and that resp kept its bytes. */
static void expect_failure(const answer *a, const cl_http_config *cfg, cl_status code, const char *needle)
{
    server s;
    server_start(&s, a, 1, NULL);
    cl_http_client *c = client_for(&s, "http", "127.0.0.1", cfg);
    cl_buf resp;
    cl_buf_init(&resp, (size_t)4 << 20);
    assert_ok(cl_buf_append_str(&resp, "before"));
    int status = 0;
    assert_fails(post(c, &status, &resp), code, needle);
    assert_string_equal(cl_buf_cstr(&resp), "before"); /* nothing of a failed answer is kept */
    cl_buf_free(&resp);
    cl_http_client_free(c);
    server_stop(&s);
    assert_int_equal(s.accepts, 1); /* not sent again: the connection was fresh */
}

static void test_garbage_is_refused(void **state)
{
    (void)state;
    const answer a = {"SSH-2.0-OpenSSH_9.2\r\n\r\n", 0, KEEP};
    expect_failure(&a, NULL, CL_ERR_FORMAT, "malformed HTTP response at byte");
    const answer b = {"HTTP/1.1 2000 OK\r\n\r\n", 0, KEEP};
    expect_failure(&b, NULL, CL_ERR_FORMAT, "invalid HTTP status code");
    const answer short_status = {"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", 0, KEEP};
    expect_failure(&short_status, NULL, CL_ERR_FORMAT, "HTTP/1.1 20 (HTTP/1.x and a status from 100 to 599 expected)");
    const answer version = {"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0, KEEP};
    expect_failure(&version, NULL, CL_ERR_FORMAT, "HTTP/2.0 200");
    const answer bad_len = {"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", 0, KEEP};
    expect_failure(&bad_len, NULL, CL_ERR_FORMAT, "content-length");
}

static void test_oversize_bodies_are_refused(void **state)
{
    (void)state;
    /* Declared: refused at the headers, before a byte of the body is read. */
    const answer declared = {"HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n", 0, HOLD};
    expect_failure(&declared, NULL, CL_ERR_LIMIT, "body is over 1048576 bytes");
    /* Chunked: counted as it comes. */
    const answer chunked = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
                            "40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n0\r\n\r\n",
                            0, KEEP};
    cl_http_config small = {.timeout_ms = 10000, .max_body = 100};
    expect_failure(&chunked, &small, CL_ERR_LIMIT, "body is over 100 bytes");
    /* Until close: the same. */
    const answer eof = {"HTTP/1.0 200 OK\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123"
                        "0123456789012345678901234567890123456789012345678901234567890123",
                        0, CLOSE};
    expect_failure(&eof, &small, CL_ERR_LIMIT, "body is over 100 bytes");
}

static void test_truncated_bodies_are_refused(void **state)
{
    (void)state;
    const answer chunked = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123", 0, CLOSE};
    expect_failure(&chunked, NULL, CL_ERR_IO, "closed in the middle of the HTTP response");
    const answer no_last_chunk = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n", 0, CLOSE};
    expect_failure(&no_last_chunk, NULL, CL_ERR_IO, "closed in the middle of the HTTP response");
    const answer length = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", 0, CLOSE};
    expect_failure(&length, NULL, CL_ERR_IO, "closed in the middle of the HTTP response");
    /* The count is what was received: http-parser's 1 for the end of the stream is not a byte. */
    const answer head = {"HTTP/1.1 200 OK\r\nContent-Le", 0, CLOSE};
    expect_failure(&head, NULL, CL_ERR_IO, "closed in the middle of the HTTP response (after 27 bytes)");
    const answer nothing = {NULL, 0, DROP};
    expect_failure(&nothing, NULL, CL_ERR_IO, "closed the connection without answering");
}

static void test_header_overflow_is_refused(void **state)
{
    (void)state;
    size_t n = 100 << 10;
    char *big = malloc(n + 64);
    assert_non_null(big);
    int off = snprintf(big, n + 64, "HTTP/1.1 200 OK\r\nX-Pad: ");
    memset(big + off, 'a', n);
    (void)snprintf(big + off + n, 64, "\r\nContent-Length: 0\r\n\r\n");
    const answer a = {big, 0, KEEP};
    expect_failure(&a, NULL, CL_ERR_LIMIT, "status line and headers are over 81920 bytes");
    free(big);
}

static void test_smuggling_shapes_are_refused(void **state)
{
    (void)state;
    /* RFC 9112 section 6.3: both framings at once is a smuggling attempt. */
    const answer both = {"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0,
                         KEEP};
    expect_failure(&both, NULL, CL_ERR_FORMAT, "malformed HTTP response");
    const answer two = {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc", 0, KEEP};
    expect_failure(&two, NULL, CL_ERR_FORMAT, "malformed HTTP response");
    const answer lf = {"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n", 0, KEEP};
    expect_failure(&lf, NULL, CL_ERR_FORMAT, "malformed HTTP response");
    const answer interim = {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
                            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" OK_ANSWER,
                            0, KEEP};
    expect_failure(&interim, NULL, CL_ERR_FORMAT, "more than 4 interim (1xx) answers");
    const answer upgrade = {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", 0, KEEP};
    expect_failure(&upgrade, NULL, CL_ERR_FORMAT, "switched protocols");
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    const answer a = {NULL, 0, HOLD};
    cl_http_config quick = {.timeout_ms = 300};
    expect_failure(&a, &quick, CL_ERR_IO, "timed out after 300 ms waiting for the answer");
    const answer slow_body = {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", 0, HOLD};
    expect_failure(&slow_body, &quick, CL_ERR_IO, "timed out after 300 ms");
}

static void test_bad_requests_are_not_sent(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL, 0, NULL);
    cl_http_client *c = client_for(&s, "http", "127.0.0.1", NULL);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    int status = 0;
    const cl_http_header split[] = {{"X-Amz-Security-Token", "t\r\nX-Injected: 1"}};
    assert_fails(cl_http_post(c, split, 1, "{}", 2, &status, &resp), CL_ERR_USAGE,
                 "X-Amz-Security-Token has a control character");
    const cl_http_header name[] = {{"Bad Name", "v"}};
    assert_fails(cl_http_post(c, name, 1, "{}", 2, &status, &resp), CL_ERR_USAGE, "invalid name");
    const cl_http_header own[] = {{"content-length", "5"}};
    assert_fails(cl_http_post(c, own, 1, "{}", 2, &status, &resp), CL_ERR_USAGE, "the client's own");
    assert_int_equal(cl_http_client_connections(c), 0);
    cl_buf_free(&resp);
    cl_http_client_free(c);
    server_stop(&s);
    assert_int_equal(s.accepts, 0);
}

static void test_refused_connection(void **state)
{
    (void)state;
    server s;
    server_start(&s, NULL, 0, NULL);
    int port = s.port;
    server_stop(&s); /* nothing listens there now */
    char url[64];
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    cl_http_config cfg = {0};
    cl_http_client *c = NULL;
    assert_ok(cl_http_client_new(url, &cfg, &c));
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    int status = 0;
    char needle[64];
    (void)snprintf(needle, sizeof(needle), "cannot connect to 127.0.0.1 port %d", port);
    assert_fails(post(c, &status, &resp), CL_ERR_IO, needle);
    cl_buf_free(&resp);
    cl_http_client_free(c);
}

/* --- TLS ------------------------------------------------------------------------------ */

typedef struct tls_fixture {
    SSL_CTX *ctx;
    char ca[512]; /* the certificate, as a CA file */
    char key[512];
} tls_fixture;

/* A self-signed P-256 certificate naming only the address 127.0.0.1 (as tests/integration/
 * kms_cli.py makes with openssl req), the server context that presents it, and its file. */
static void tls_fixture_make(tls_fixture *f)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    assert_non_null(pk);
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    assert_int_equal(X509_set_pubkey(x, pk), 1);
    X509_NAME *n = X509_get_subject_name(x);
    assert_int_equal(
        X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"cloister http test", -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x, n), 1);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    static const struct {
        int nid;
        const char *value;
    } exts[] = {{NID_subject_alt_name, "IP:127.0.0.1"}, {NID_basic_constraints, "critical,CA:TRUE"}};
    for (size_t i = 0; i < 2; i++) {
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, exts[i].nid, exts[i].value);
        assert_non_null(e);
        assert_int_equal(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    (void)snprintf(f->ca, sizeof(f->ca), "%s/http-ca.pem", t_tmpdir());
    FILE *fp = fopen(f->ca, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_X509(fp, x), 1);
    assert_int_equal(fclose(fp), 0);
    (void)snprintf(f->key, sizeof(f->key), "%s/http-key.pem", t_tmpdir());
    fp = fopen(f->key, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(fp), 0);
    f->ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(f->ctx);
    assert_int_equal(SSL_CTX_use_certificate(f->ctx, x), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(f->ctx, pk), 1);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static void test_tls_verifies_chain_and_name(void **state)
{
    (void)state;
    tls_fixture f;
    tls_fixture_make(&f);
    const answer script[] = {{OK_ANSWER, 0, KEEP}, {OK_ANSWER, 0, KEEP}, {OK_ANSWER, 0, KEEP}};
    server s;
    server_start(&s, script, 3, f.ctx);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    int status = 0;

    /* The certificate names 127.0.0.1: trusted through the CA file, kept alive. */
    cl_http_config cfg = {.ca_file = f.ca, .timeout_ms = 10000};
    cl_http_client *c = client_for(&s, "https", "127.0.0.1", &cfg);
    assert_ok(post(c, &status, &resp));
    assert_int_equal(status, 200);
    assert_string_equal(cl_buf_cstr(&resp), "{\"Keys\":[]}");
    assert_ok(post(c, &status, &resp));
    assert_int_equal(cl_http_client_connections(c), 1);
    cl_http_client_free(c);

    /* The same server under another name: the chain verifies, the name does not. */
    c = client_for(&s, "https", "localhost", &cfg);
    cl_buf_reset(&resp);
    assert_fails(post(c, &status, &resp), CL_ERR_AUTH,
                 "the certificate of localhost does not verify: hostname "
                 "mismatch");
    assert_int_equal(resp.len, 0);
    cl_http_client_free(c);

    /* The system's store does not know this issuer. */
    cl_http_config system = {.timeout_ms = 10000};
    c = client_for(&s, "https", "127.0.0.1", &system);
    assert_fails(post(c, &status, &resp), CL_ERR_AUTH, "self-signed certificate (trusted CAs: the system's store)");
    cl_http_client_free(c);

    /* A CA file that holds no certificate (the key). */
    cl_http_config bad = {.ca_file = f.key, .timeout_ms = 10000};
    c = client_for(&s, "https", "127.0.0.1", &bad);
    assert_fails(post(c, &status, &resp), CL_ERR_CRYPTO, "cannot load trusted CA certificates from");
    cl_http_client_free(c);

    /* A TLS client against a plain HTTP server. */
    server plain;
    server_start(&plain, script, 3, NULL);
    c = client_for(&plain, "https", "127.0.0.1", &cfg);
    assert_fails(post(c, &status, &resp), CL_ERR_CRYPTO, "TLS with 127.0.0.1 port");
    cl_http_client_free(c);
    server_stop(&plain);

    cl_buf_free(&resp);
    server_stop(&s);
    SSL_CTX_free(f.ctx);
}

/* --- the parser alone ----------------------------------------------------------------- */

static void test_parser_byte_by_byte(void **state)
{
    (void)state;
    static const char in[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nEXTRA";
    cl_buf body;
    cl_buf_init(&body, 64);
    cl_http_response r;
    cl_http_response_init(&r, &body, 64);
    size_t i = 0, used = 0;
    while (!r.complete && i < sizeof(in) - 1) {
        assert_ok(cl_http_response_feed(&r, (const uint8_t *)in + i, 1, &used));
        i += used;
    }
    assert_true(r.complete);
    assert_true(r.keep_alive);
    assert_int_equal(r.status, 200);
    assert_string_equal(cl_buf_cstr(&body), "hello world");
    assert_string_equal(in + i, "EXTRA"); /* not consumed */
    cl_buf_free(&body);

    /* The bound is also what the caller's buffer can still take. */
    static const char big[] = "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world";
    cl_buf_init(&body, 12);
    assert_ok(cl_buf_append_str(&body, "ab"));
    cl_http_response_init(&r, &body, 1 << 20);
    assert_fails(cl_http_response_feed(&r, (const uint8_t *)big, sizeof(big) - 1, &used), CL_ERR_LIMIT,
                 "body is over 10 bytes");
    assert_string_equal(cl_buf_cstr(&body), "ab");
    cl_buf_free(&body);
}

typedef struct sink_seen {
    cl_buf got;
    bool refuse;
} sink_seen;

static CL_MUST_USE cl_status test_sink(void *arg, const uint8_t *p, size_t n)
{
    sink_seen *s = arg;
    if (s->refuse) return CL_RAISE(CL_ERR_IO, "the disk is full");
    return cl_buf_append(&s->got, p, n);
}

/* The answer's headers, kept as name/value pairs even when they arrive a byte at a time; a HEAD's
 * answer without a body whatever its Content-Length; a 2xx body to the sink, any other to the
 * buffer; the sink's own failure passed up. */
static void test_parser_headers_head_and_sink(void **state)
{
    (void)state;
    static const char in[] = "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nX-Empty:\r\nContent-Length: 5\r\n"
                             "Content-Range: bytes 0-4/9\r\n\r\nhello";
    cl_buf body, h;
    cl_buf_init(&body, 64);
    cl_buf_init(&h, 4096);
    cl_http_response r;
    cl_http_response_init(&r, &body, 64);
    r.headers = &h;
    size_t i = 0, used = 0;
    while (!r.complete && i < sizeof(in) - 1) {
        assert_ok(cl_http_response_feed(&r, (const uint8_t *)in + i, 1, &used));
        i += used;
    }
    assert_true(r.complete);
    assert_string_equal(cl_buf_cstr(&body), "hello");
    cl_reader v;
    assert_true(cl_http_header_find(&h, "etag", &v));
    assert_true(cl_reader_is(&v, "\"abc\"", false));
    assert_true(cl_http_header_find(&h, "X-Empty", &v));
    assert_int_equal(cl_reader_remaining(&v), 0);
    assert_true(cl_http_header_find(&h, "Content-Range", &v));
    assert_true(cl_reader_is(&v, "bytes 0-4/9", false));
    assert_false(cl_http_header_find(&h, "Content-Type", &v));

    /* HEAD: Content-Length 5 and no body; the next answer on the stream is not eaten. */
    static const char head[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK";
    cl_buf_reset(&body);
    cl_buf_reset(&h);
    cl_http_response_init(&r, &body, 64);
    r.head = true;
    r.headers = &h;
    assert_ok(cl_http_response_feed(&r, (const uint8_t *)head, sizeof(head) - 1, &used));
    assert_true(r.complete);
    assert_int_equal(r.status, 404);
    assert_int_equal(body.len, 0);
    assert_string_equal(head + used, "HTTP/1.1 200 OK");

    /* A 2xx body goes to the sink, past the buffer's bound; a 404's to the buffer. */
    sink_seen seen = {.refuse = false};
    cl_buf_init(&seen.got, 1 << 20);
    static const char ok[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789";
    cl_buf_reset(&body);
    cl_http_response_init(&r, &body, 8);
    r.sink = test_sink;
    r.sink_arg = &seen;
    assert_ok(cl_http_response_feed(&r, (const uint8_t *)ok, sizeof(ok) - 1, &used));
    assert_true(r.complete && r.sinking);
    assert_int_equal(seen.got.len, 100);
    assert_int_equal(body.len, 0);
    static const char nf[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\n<Error>";
    cl_buf_reset(&seen.got);
    cl_http_response_init(&r, &body, 64);
    r.sink = test_sink;
    r.sink_arg = &seen;
    assert_ok(cl_http_response_feed(&r, (const uint8_t *)nf, sizeof(nf) - 1, &used));
    assert_false(r.sinking);
    assert_string_equal(cl_buf_cstr(&body), "<Error>");
    assert_int_equal(seen.got.len, 0);
    seen.refuse = true;
    cl_buf_reset(&body);
    cl_http_response_init(&r, &body, 8);
    r.sink = test_sink;
    r.sink_arg = &seen;
    assert_fails(cl_http_response_feed(&r, (const uint8_t *)ok, sizeof(ok) - 1, &used), CL_ERR_IO, "the disk is full");
    cl_buf_free(&seen.got);
    cl_buf_free(&body);
    cl_buf_free(&h);
}

/* A streamed body of `len` pseudo-random bytes, by position. */
static CL_MUST_USE cl_status pattern_source(void *arg, uint64_t at, uint8_t *buf, size_t n, size_t *got)
{
    (void)arg;
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)((at + i) * 131 % 251);
    *got = n;
    return CL_OK;
}

/* A PUT streamed from a source, answered early: the server reads the head and the first bytes,
 * answers 403 and closes with the rest unread (the client's send then fails): the answer is what
 * the client reports, not the broken pipe. */
static void test_early_answer_to_a_streamed_put(void **state)
{
    (void)state;
    static const char forbidden[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 25\r\n\r\n<Error>AccessDenied</Err>";
    const answer script[] = {{forbidden, 0, CLOSE}};
    server s;
    server_start(&s, script, 1, NULL);
    cl_http_client *c = client_for(&s, "http", "127.0.0.1", NULL);
    cl_buf resp, h;
    cl_buf_init(&resp, 4096);
    cl_buf_init(&h, 4096);
    cl_http_exchange x = {.method = "PUT",
                          .path = "/bucket/key",
                          .source = pattern_source,
                          .source_len = (uint64_t)64 << 20,
                          .resp = &resp,
                          .resp_headers = &h};
    assert_ok(cl_http_exchange_run(c, &x));
    assert_int_equal(x.status, 403);
    assert_string_equal(cl_buf_cstr(&resp), "<Error>AccessDenied</Err>");
    assert_true(strncmp(s.last_request, "PUT /bucket/key HTTP/1.1\r\n", 26) == 0);
    assert_non_null(strstr(s.last_request, "Content-Length: 67108864\r\n"));
    cl_buf_free(&resp);
    cl_buf_free(&h);
    cl_http_client_free(c);
    server_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_keep_alive_reuses_one_connection),
        cmocka_unit_test(test_connection_close_and_closed_connections_reconnect),
        cmocka_unit_test(test_interim_answers_are_skipped),
        cmocka_unit_test(test_bytes_after_the_answer_drop_the_connection),
        cmocka_unit_test(test_garbage_is_refused),
        cmocka_unit_test(test_oversize_bodies_are_refused),
        cmocka_unit_test(test_truncated_bodies_are_refused),
        cmocka_unit_test(test_header_overflow_is_refused),
        cmocka_unit_test(test_smuggling_shapes_are_refused),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_bad_requests_are_not_sent),
        cmocka_unit_test(test_refused_connection),
        cmocka_unit_test(test_tls_verifies_chain_and_name),
        cmocka_unit_test(test_parser_byte_by_byte),
        cmocka_unit_test(test_parser_headers_head_and_sink),
        cmocka_unit_test(test_early_answer_to_a_streamed_put),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
