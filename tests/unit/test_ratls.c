/* SPDX-License-Identifier: Apache-2.0 */
/*
 * RA-TLS (src/core/ratls.c): an in-process server and client over a socketpair, the
 * server's documents from the sim attestation device (src/host/device.c) reached
 * through the NSM protocol, as inside an enclave. The happy path, then each thing the
 * client must refuse, each before any application byte is sent; the extension parser's
 * negative cases; plain TLS peers on either side.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/enclave.h"
#include "cloister/ratls.h"

#include "test_util.h"

#define T_NOW 1767229200 /* 2026-01-01T01:00:00Z */

/* --- the attestation device, served on a SOCK_SEQPACKET socket as the launcher does */

static int64_t g_device_ms = (int64_t)T_NOW * 1000 + 5;
static int64_t device_clock(void) { return g_device_ms; }
static int64_t client_clock(void) { return T_NOW + 1; }
static int64_t server_clock(void) { return T_NOW; }

typedef struct t_world {
    cl_attest_platform plat;
    cl_image img;
    cl_nsm_device dev;
    int nsm[2]; /* [0]: the enclave's device fd, [1]: the device's end */
    pthread_t device_thread;
    cl_attest_roots roots, other_roots;
    cl_attest_pcr pcr0;
} t_world;

static t_world W;

static void *device_main(void *arg)
{
    (void)arg;
    static uint8_t req[CL_NSM_MAX_REQUEST + 1];
    cl_buf resp;
    cl_buf_init(&resp, CL_NSM_MAX_RESPONSE);
    for (;;) {
        ssize_t n = recv(W.nsm[1], req, sizeof(req), 0);
        if (n <= 0) break;
        cl_buf_reset(&resp);
        if (cl_nsm_device_handle(&W.dev, req, (size_t)n, &resp) != CL_OK) break;
        if (send(W.nsm[1], resp.data, resp.len, MSG_NOSIGNAL) != (ssize_t)resp.len) break;
    }
    cl_buf_free(&resp);
    return NULL;
}

static int world_setup(void **state)
{
    (void)state;
    char a[512], b[512], path[600];
    (void)snprintf(a, sizeof(a), "%s/pki-a", t_tmpdir());
    (void)snprintf(b, sizeof(b), "%s/pki-b", t_tmpdir());
    if (cl_attest_pki_create(a, T_NOW, 3650, 365, true) != CL_OK) return -1;
    if (cl_attest_pki_create(b, T_NOW, 3650, 365, true) != CL_OK) return -1;
    cl_attest_platform_init(&W.plat);
    if (cl_attest_platform_load(&W.plat, a) != CL_OK) return -1;
    if (cl_attest_platform_start_enclave(&W.plat, "i-ratls-test", T_NOW) != CL_OK) return -1;
    cl_image_init(&W.img);
    memset(W.img.pcr0, 0xa0, 48);
    memset(W.img.pcr1, 0xa1, 48);
    memset(W.img.pcr2, 0xa2, 48);
    cl_nsm_device_init(&W.dev, &W.img, false, "i-ratls-test", &W.plat);
    W.dev.now_ms = device_clock;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, W.nsm) != 0) return -1;
    if (pthread_create(&W.device_thread, NULL, device_main, NULL) != 0) return -1;
    cl_attest_roots_init(&W.roots);
    cl_attest_roots_init(&W.other_roots);
    (void)snprintf(path, sizeof(path), "%s/root.pem", a);
    if (cl_attest_roots_add_file(&W.roots, path) != CL_OK) return -1;
    (void)snprintf(path, sizeof(path), "%s/root.pem", b);
    if (cl_attest_roots_add_file(&W.other_roots, path) != CL_OK) return -1;
    W.pcr0.index = 0;
    memset(W.pcr0.value, 0xa0, 48);
    return 0;
}

static int world_teardown(void **state)
{
    (void)state;
    (void)close(W.nsm[0]);
    (void)pthread_join(W.device_thread, NULL);
    (void)close(W.nsm[1]);
    cl_attest_roots_free(&W.roots);
    cl_attest_roots_free(&W.other_roots);
    cl_image_free(&W.img);
    cl_attest_platform_free(&W.plat);
    return 0;
}

/* --- attestation sources: the device's, and ones that misbehave -------------- */

static CL_MUST_USE cl_status attest_device(void *arg, const uint8_t *ud, size_t ud_len, const uint8_t *nonce,
                                           size_t nonce_len, cl_buf *doc)
{
    (void)arg;
    return cl_ratls_attest_nsm(&W.nsm[0], ud, ud_len, nonce, nonce_len, doc);
}

/* Binds some other key than the certificate's. */
static CL_MUST_USE cl_status attest_other_key(void *arg, const uint8_t *ud, size_t ud_len, const uint8_t *nonce,
                                              size_t nonce_len, cl_buf *doc)
{
    uint8_t other[CL_RATLS_BINDING_LEN];
    static const uint8_t fake_spki[] = "not the certificate's key";
    CL_GUARD(cl_ratls_binding_make(fake_spki, sizeof(fake_spki), other));
    return attest_device(arg, other, sizeof(other), nonce, nonce_len, doc);
}

/* Returns the first document it got, whatever the nonce: a replay. */
static cl_buf g_replay;
static CL_MUST_USE cl_status attest_replay(void *arg, const uint8_t *ud, size_t ud_len, const uint8_t *nonce,
                                           size_t nonce_len, cl_buf *doc)
{
    if (g_replay.len == 0) CL_GUARD(attest_device(arg, ud, ud_len, nonce, nonce_len, &g_replay));
    return cl_buf_append(doc, g_replay.data, g_replay.len);
}

/* Flips one bit of the document's signature. */
static CL_MUST_USE cl_status attest_tamper(void *arg, const uint8_t *ud, size_t ud_len, const uint8_t *nonce,
                                           size_t nonce_len, cl_buf *doc)
{
    CL_GUARD(attest_device(arg, ud, ud_len, nonce, nonce_len, doc));
    doc->data[doc->len - 10] ^= 0x01;
    return CL_OK;
}

static CL_MUST_USE cl_status attest_broken(void *arg, const uint8_t *ud, size_t ud_len, const uint8_t *nonce,
                                           size_t nonce_len, cl_buf *doc)
{
    CL_FAIL(CL_ERR_IO, "the attestation device is gone");
}

/* --- peers ------------------------------------------------------------------------ */

typedef struct t_server {
    cl_ratls_server *ratls; /* NULL: plain OpenSSL with `plain` */
    SSL_CTX *plain;
    int fd;
    cl_status rc;
    char msg[1024];
    size_t got;  /* application bytes the server received */
    bool hangup; /* close right after the handshake */
    bool drop;   /* and without close_notify */
    pthread_t thread;
} t_server;

static void *server_main(void *arg)
{
    t_server *t = arg;
    uint8_t buf[256];
    if (t->ratls != NULL) {
        cl_ratls_conn conn;
        t->rc = cl_ratls_server_accept(t->ratls, t->fd, &conn);
        if (t->rc == CL_OK && t->hangup) {
            if (t->drop) (void)shutdown(t->fd, SHUT_RDWR);
            cl_ratls_conn_close(&conn);
            (void)shutdown(t->fd, SHUT_RDWR);
        } else if (t->rc == CL_OK) {
            size_t n = 0;
            t->rc = cl_ratls_conn_read(&conn, buf, sizeof(buf), &n);
            t->got = n;
            if (t->rc == CL_OK && n > 0) t->rc = cl_ratls_conn_write(&conn, buf, n);
            cl_ratls_conn_close(&conn);
        }
        (void)snprintf(t->msg, sizeof(t->msg), "%s", t->rc == CL_OK ? "" : cl_error_message());
    } else {
        SSL *ssl = SSL_new(t->plain);
        size_t n = 0;
        (void)SSL_set_fd(ssl, t->fd);
        if (SSL_accept(ssl) == 1 && SSL_read_ex(ssl, buf, sizeof(buf), &n) == 1) t->got = n;
        SSL_free(ssl);
        ERR_clear_error();
    }
    return NULL;
}

static int start_server(t_server *t)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    t->fd = sv[1];
    t->rc = CL_OK;
    t->got = 0;
    assert_int_equal(pthread_create(&t->thread, NULL, server_main, t), 0);
    return sv[0];
}

static void join_server(t_server *t, int client_fd)
{
    (void)close(client_fd);
    (void)pthread_join(t->thread, NULL);
    (void)close(t->fd);
}

static void client_make(cl_ratls_client *c, const cl_attest_roots *roots, const cl_attest_pcr *pcr)
{
    cl_ratls_client_config cfg = {.roots = roots, .pcrs = pcr, .pcr_count = 1, .now = client_clock};
    assert_ok(cl_ratls_client_init(c, &cfg));
}

static void server_make(cl_ratls_server *s, cl_ratls_attest_fn fn)
{
    assert_ok(cl_ratls_server_init(s, fn, NULL));
    s->now = server_clock;
}

/* Connects a RA-TLS client to a RA-TLS server whose documents come from `fn` and
 * expects the client to refuse with `code` and `needle`; the server gets no byte. */
static void expect_refused(cl_ratls_attest_fn fn, const cl_attest_roots *roots, const cl_attest_pcr *pcr,
                           cl_status code, const char *needle)
{
    cl_ratls_server s;
    server_make(&s, fn);
    cl_ratls_client c;
    client_make(&c, roots, pcr);
    t_server t = {.ratls = &s};
    int fd = start_server(&t);
    cl_ratls_conn conn = {.ssl = (void *)1};
    cl_attest_doc doc;
    cl_attest_doc_init(&doc);
    assert_fails(cl_ratls_client_connect(&c, fd, &conn, &doc), code, needle);
    assert_null(conn.ssl);
    assert_int_equal(doc.payload.len, 0); /* nothing left behind */
    join_server(&t, fd);
    assert_int_equal(t.rc, CL_ERR_DENIED);
    assert_non_null(strstr(t.msg, "the client refused this server's certificate"));
    assert_int_equal(t.got, 0);
    cl_ratls_client_free(&c);
    cl_ratls_server_free(&s);
}

/* --- tests ------------------------------------------------------------------------ */

static void test_happy_path(void **state)
{
    (void)state;
    cl_ratls_server s;
    server_make(&s, attest_device);
    cl_ratls_client c;
    client_make(&c, &W.roots, &W.pcr0);
    uint8_t first_nonce[CL_RATLS_NONCE_LEN];
    for (int round = 0; round < 2; round++) {
        t_server t = {.ratls = &s};
        int fd = start_server(&t);
        cl_ratls_conn conn;
        cl_attest_doc doc;
        cl_attest_doc_init(&doc);
        if (cl_ratls_client_connect(&c, fd, &conn, &doc) != CL_OK) {
            join_server(&t, fd);
            fail_msg("client: %s; server: %s", cl_error_message(), t.msg);
        }
        /* the document: the enclave's PCR0, our nonce, the server key's binding */
        assert_memory_equal(doc.pcrs[0], W.pcr0.value, 48);
        assert_true(doc.has_nonce);
        assert_int_equal(doc.nonce.len, CL_RATLS_NONCE_LEN);
        assert_true(doc.has_user_data);
        assert_int_equal(doc.user_data.len, CL_RATLS_BINDING_LEN);
        assert_memory_equal(doc.user_data.data, s.binding, CL_RATLS_BINDING_LEN);
        assert_false(doc.has_public_key);
        /* the binding, recomputed here from the peer certificate */
        X509 *peer = SSL_get1_peer_certificate(conn.ssl);
        assert_non_null(peer);
        unsigned char *spki = NULL;
        int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(peer), &spki);
        uint8_t h[48];
        unsigned int hl = 0;
        assert_int_equal(EVP_Digest(spki, (size_t)spki_len, h, &hl, EVP_sha384(), NULL), 1);
        assert_memory_equal(doc.user_data.data, "cloister-ratls/1", 16);
        assert_memory_equal(doc.user_data.data + 16, h, 48);
        OPENSSL_free(spki);
        X509_free(peer);
        /* a fresh nonce per connection */
        if (round == 0)
            memcpy(first_nonce, doc.nonce.data, CL_RATLS_NONCE_LEN);
        else
            assert_memory_not_equal(first_nonce, doc.nonce.data, CL_RATLS_NONCE_LEN);
        /* TLS 1.3, a full handshake, nothing to resume with */
        assert_int_equal(SSL_version(conn.ssl), TLS1_3_VERSION);
        assert_false(SSL_session_reused(conn.ssl));
        assert_ok(cl_ratls_conn_write(&conn, "hello", 5));
        char back[16] = {0};
        size_t n = 0;
        assert_ok(cl_ratls_conn_read(&conn, back, sizeof(back), &n));
        assert_int_equal(n, 5);
        assert_memory_equal(back, "hello", 5);
        SSL_SESSION *sess = SSL_get1_session(conn.ssl);
        assert_true(sess == NULL || !SSL_SESSION_is_resumable(sess));
        SSL_SESSION_free(sess);
        assert_ok(cl_ratls_conn_read(&conn, back, sizeof(back), &n));
        assert_int_equal(n, 0); /* close_notify */
        cl_ratls_conn_close(&conn);
        join_server(&t, fd);
        assert_ok(t.rc);
        assert_int_equal(t.got, 5);
        cl_attest_doc_free(&doc);
    }
    cl_ratls_client_free(&c);
    cl_ratls_server_free(&s);
}

/* A peer that has gone: writing fails with an error, it does not raise SIGPIPE. */
static void test_peer_gone(void **state)
{
    (void)state;
    cl_ratls_server s;
    server_make(&s, attest_device);
    cl_ratls_client c;
    client_make(&c, &W.roots, &W.pcr0);
    t_server t = {.ratls = &s, .hangup = true};
    int fd = start_server(&t);
    cl_ratls_conn conn;
    assert_ok(cl_ratls_client_connect(&c, fd, &conn, NULL));
    (void)pthread_join(t.thread, NULL);
    (void)close(t.fd);
    static uint8_t block[1 << 16];
    cl_status rc = CL_OK;
    for (int i = 0; i < 64 && rc == CL_OK; i++) rc = cl_ratls_conn_write(&conn, block, sizeof(block));
    assert_int_equal(rc, CL_ERR_IO);
    assert_non_null(strstr(cl_error_message(), "RA-TLS write of 65536 bytes failed"));
    cl_ratls_conn_close(&conn);
    (void)close(fd);
    cl_ratls_client_free(&c);
    cl_ratls_server_free(&s);
}

/* A server that goes away without close_notify, and one that closes before any handshake. */
static void test_truncation(void **state)
{
    (void)state;
    cl_ratls_server s;
    server_make(&s, attest_device);
    cl_ratls_client c;
    client_make(&c, &W.roots, &W.pcr0);
    t_server t = {.ratls = &s, .hangup = true};
    int fd = start_server(&t);
    cl_ratls_conn conn;
    assert_ok(cl_ratls_client_connect(&c, fd, &conn, NULL));
    (void)pthread_join(t.thread, NULL);
    (void)close(t.fd);
    uint8_t b[16];
    size_t n = 1;
    /* the hangup sent close_notify: a clean end */
    assert_ok(cl_ratls_conn_read(&conn, b, sizeof(b), &n));
    assert_int_equal(n, 0);
    cl_ratls_conn_close(&conn);
    (void)close(fd);

    t = (t_server){.ratls = &s, .hangup = true, .drop = true};
    fd = start_server(&t);
    assert_ok(cl_ratls_client_connect(&c, fd, &conn, NULL));
    (void)pthread_join(t.thread, NULL);
    (void)close(t.fd);
    assert_fails(cl_ratls_conn_read(&conn, b, sizeof(b), &n), CL_ERR_IO, "without close_notify");
    cl_ratls_conn_close(&conn);
    (void)close(fd);

    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    (void)close(sv[1]);
    assert_fails(cl_ratls_client_connect(&c, sv[0], &conn, NULL), CL_ERR_IO,
                 "RA-TLS client handshake: the peer closed the connection");
    (void)close(sv[0]);
    cl_ratls_client_free(&c);
    cl_ratls_server_free(&s);
}

static void test_wrong_pcr0(void **state)
{
    (void)state;
    cl_attest_pcr want = {.index = 0};
    memset(want.value, 0x11, 48);
    char needle[300];
    /* both values in full */
    (void)snprintf(needle, sizeof(needle), "PCR0 is %s, expected %s",
                   "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0",
                   "111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111");
    expect_refused(attest_device, &W.roots, &want, CL_ERR_DENIED, needle);
}

static void test_other_platform_root(void **state)
{
    (void)state;
    expect_refused(attest_device, &W.other_roots, &W.pcr0, CL_ERR_AUTH, "is not a configured attestation root");
}

static void test_key_not_bound(void **state)
{
    (void)state;
    expect_refused(attest_other_key, &W.roots, &W.pcr0, CL_ERR_AUTH,
                   "the attestation document does not bind the certificate's key");
}

static void test_stale_document(void **state)
{
    (void)state;
    g_device_ms = ((int64_t)T_NOW - 3600) * 1000;
    expect_refused(attest_device, &W.roots, &W.pcr0, CL_ERR_EXPIRED, "document is too old");
    g_device_ms = (int64_t)T_NOW * 1000 + 5;
}

static void test_replayed_nonce(void **state)
{
    (void)state;
    cl_buf_init(&g_replay, CL_ATTEST_MAX_DOC_LEN);
    /* the first connection gets the document made for it, the second a replay of it */
    cl_ratls_server s;
    server_make(&s, attest_replay);
    cl_ratls_client c;
    client_make(&c, &W.roots, &W.pcr0);
    t_server t = {.ratls = &s};
    int fd = start_server(&t);
    cl_ratls_conn conn;
    assert_ok(cl_ratls_client_connect(&c, fd, &conn, NULL));
    cl_ratls_conn_close(&conn);
    join_server(&t, fd);
    cl_ratls_client_free(&c);
    cl_ratls_server_free(&s);
    expect_refused(attest_replay, &W.roots, &W.pcr0, CL_ERR_DENIED, "nonce mismatch: the document's nonce is ");
    cl_buf_free(&g_replay);
}

static void test_tampered_document(void **state)
{
    (void)state;
    expect_refused(attest_tamper, &W.roots, &W.pcr0, CL_ERR_AUTH, "signature");
}

static void test_server_attestation_fails(void **state)
{
    (void)state;
    cl_ratls_server s;
    server_make(&s, attest_broken);
    cl_ratls_client c;
    client_make(&c, &W.roots, &W.pcr0);
    t_server t = {.ratls = &s};
    int fd = start_server(&t);
    cl_ratls_conn conn;
    assert_fails(cl_ratls_client_connect(&c, fd, &conn, NULL), CL_ERR_AUTH, "RA-TLS client handshake failed");
    join_server(&t, fd);
    assert_int_equal(t.rc, CL_ERR_IO);
    assert_non_null(strstr(t.msg, "getting an attestation document: the attestation device is gone"));
    cl_ratls_client_free(&c);
    cl_ratls_server_free(&s);
}

/* A self-signed P-256 certificate for `key` with `ext` (NULL: none) as the RA-TLS extension. */
static X509 *make_cert(EVP_PKEY *key, const uint8_t *ext, size_t ext_len, int copies)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 7), 1);
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"plain", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    time_t now = T_NOW;
    assert_non_null(X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, &now));
    assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), 1, 0, &now));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    for (int i = 0; ext != NULL && i < copies; i++) {
        ASN1_OBJECT *oid = OBJ_txt2obj(CL_RATLS_OID, 1);
        ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
        assert_int_equal(ASN1_OCTET_STRING_set(val, ext, (int)ext_len), 1);
        X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, oid, 0, val);
        assert_int_equal(X509_add_ext(x, e, -1), 1);
        X509_EXTENSION_free(e);
        ASN1_OCTET_STRING_free(val);
        ASN1_OBJECT_free(oid);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static SSL_CTX *plain_server_ctx(EVP_PKEY *key, X509 *cert, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
    assert_int_equal(SSL_CTX_use_certificate(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(ctx, key), 1);
    return ctx;
}

/* A plain TLS server with `cert`; the RA-TLS client must refuse it. */
static void expect_plain_refused(EVP_PKEY *key, X509 *cert, int max_version, cl_status code, const char *needle)
{
    SSL_CTX *ctx = plain_server_ctx(key, cert, max_version);
    cl_ratls_client c;
    client_make(&c, &W.roots, &W.pcr0);
    t_server t = {.plain = ctx};
    int fd = start_server(&t);
    cl_ratls_conn conn;
    assert_fails(cl_ratls_client_connect(&c, fd, &conn, NULL), code, needle);
    join_server(&t, fd);
    assert_int_equal(t.got, 0);
    cl_ratls_client_free(&c);
    SSL_CTX_free(ctx);
}

static void test_plain_tls_servers(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(key);
    X509 *plain = make_cert(key, NULL, 0, 0);
    expect_plain_refused(key, plain, TLS1_3_VERSION, CL_ERR_AUTH,
                         "carries no attestation document (no extension " CL_RATLS_OID "): not an RA-TLS enclave");
    /* a TLS 1.2 server is refused before any certificate is looked at */
    expect_plain_refused(key, plain, TLS1_2_VERSION, CL_ERR_UNSUPPORTED, "does not speak TLS 1.3");
    /* well-formed evidence around a genuine document, in a certificate of another key */
    cl_buf doc, ev;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    cl_buf_init(&ev, CL_ATTEST_MAX_DOC_LEN + 16);
    static const uint8_t nonce[CL_RATLS_NONCE_LEN] = {1};
    uint8_t binding[CL_RATLS_BINDING_LEN] = {0};
    assert_ok(attest_device(NULL, binding, sizeof(binding), nonce, sizeof(nonce), &doc));
    assert_ok(cl_ratls_evidence_encode(doc.data, doc.len, &ev));
    X509 *pasted = make_cert(key, ev.data, ev.len, 1);
    expect_plain_refused(key, pasted, TLS1_3_VERSION, CL_ERR_DENIED, "nonce mismatch");
    /* tampered evidence: version 2 */
    ev.data[2 + ((ev.data[1] & 0x80) ? (ev.data[1] & 0x7f) : 0) + 2] = 2;
    X509 *v2 = make_cert(key, ev.data, ev.len, 1);
    expect_plain_refused(key, v2, TLS1_3_VERSION, CL_ERR_UNSUPPORTED,
                         "RA-TLS evidence version 2; this build reads version 1");
    X509_free(v2);
    X509_free(pasted);
    X509_free(plain);
    EVP_PKEY_free(key);
    cl_buf_free(&ev);
    cl_buf_free(&doc);
}

/* A plain TLS client against the RA-TLS server, at `max_version`: no byte gets through. */
static void expect_plain_client_refused(int max_version, cl_status code, const char *needle)
{
    cl_ratls_server s;
    server_make(&s, attest_device);
    t_server t = {.ratls = &s};
    int fd = start_server(&t);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
    SSL *ssl = SSL_new(ctx);
    assert_int_equal(SSL_set_fd(ssl, fd), 1);
    assert_int_not_equal(SSL_connect(ssl), 1);
    size_t w = 0;
    assert_int_not_equal(SSL_write_ex(ssl, "x", 1, &w), 1);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    join_server(&t, fd);
    assert_int_equal(t.rc, code);
    assert_non_null(strstr(t.msg, needle));
    assert_int_equal(t.got, 0);
    cl_ratls_server_free(&s);
}

static void test_plain_tls_clients(void **state)
{
    (void)state;
    expect_plain_client_refused(TLS1_2_VERSION, CL_ERR_UNSUPPORTED, "does not speak TLS 1.3");
    expect_plain_client_refused(TLS1_3_VERSION, CL_ERR_DENIED, "the client sent no nonce (TLS extension 0xffc1)");
}

static void test_cert_check(void **state)
{
    (void)state;
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(key);
    static const uint8_t nonce[CL_RATLS_NONCE_LEN] = {9};
    cl_buf doc, ev, spki;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    cl_buf_init(&ev, CL_ATTEST_MAX_DOC_LEN + 16);
    cl_buf_init(&spki, 4096);
    unsigned char *p = NULL;
    int n = i2d_PUBKEY(key, &p);
    assert_ok(cl_buf_append(&spki, p, (size_t)n));
    OPENSSL_free(p);
    uint8_t binding[CL_RATLS_BINDING_LEN];
    assert_ok(cl_ratls_binding_make(spki.data, spki.len, binding));
    assert_ok(attest_device(NULL, binding, sizeof(binding), nonce, sizeof(nonce), &doc));
    assert_ok(cl_ratls_evidence_encode(doc.data, doc.len, &ev));
    cl_ratls_client_config cfg = {.roots = &W.roots, .pcrs = &W.pcr0, .pcr_count = 1};

    X509 *good = make_cert(key, ev.data, ev.len, 1);
    unsigned char *der = NULL;
    int der_len = i2d_X509(good, &der);
    assert_ok(cl_ratls_cert_check(der, (size_t)der_len, &cfg, T_NOW + 1, nonce, sizeof(nonce), NULL));
    /* checked at the verification time given: a minute and a second later is too old */
    assert_fails(cl_ratls_cert_check(der, (size_t)der_len, &cfg, T_NOW + 62, nonce, sizeof(nonce), NULL),
                 CL_ERR_EXPIRED, "maximum age 60000 ms");
    cfg.max_age_ms = 120000;
    assert_ok(cl_ratls_cert_check(der, (size_t)der_len, &cfg, T_NOW + 62, nonce, sizeof(nonce), NULL));
    /* trailing bytes after the certificate */
    uint8_t *longer = malloc((size_t)der_len + 1);
    memcpy(longer, der, (size_t)der_len);
    longer[der_len] = 0;
    assert_fails(cl_ratls_cert_check(longer, (size_t)der_len + 1, &cfg, T_NOW + 1, nonce, sizeof(nonce), NULL),
                 CL_ERR_FORMAT, "1 bytes after its end");
    free(longer);
    assert_fails(cl_ratls_cert_check(der, 10, &cfg, T_NOW + 1, nonce, sizeof(nonce), NULL), CL_ERR_FORMAT,
                 "not DER X.509");
    assert_fails(cl_ratls_cert_check(der, (size_t)der_len, &cfg, T_NOW + 1, nonce, 8, NULL), CL_ERR_USAGE,
                 "the nonce must be 16 to 64 bytes");
    cl_ratls_client_config none = {.roots = &W.roots};
    assert_fails(cl_ratls_cert_check(der, (size_t)der_len, &none, T_NOW + 1, nonce, sizeof(nonce), NULL), CL_ERR_USAGE,
                 "no expected PCRs");
    OPENSSL_free(der);
    X509_free(good);

    X509 *twice = make_cert(key, ev.data, ev.len, 2);
    der = NULL;
    der_len = i2d_X509(twice, &der);
    assert_fails(cl_ratls_cert_check(der, (size_t)der_len, &cfg, T_NOW + 1, nonce, sizeof(nonce), NULL), CL_ERR_FORMAT,
                 "carries the RA-TLS extension twice");
    OPENSSL_free(der);
    X509_free(twice);

    /* the extension's value is not evidence at all: the raw document */
    X509 *raw = make_cert(key, doc.data, doc.len, 1);
    der = NULL;
    der_len = i2d_X509(raw, &der);
    assert_fails(cl_ratls_cert_check(der, (size_t)der_len, &cfg, T_NOW + 1, nonce, sizeof(nonce), NULL), CL_ERR_FORMAT,
                 "RA-TLS evidence: expected SEQUENCE (tag 0x30) at offset 0");
    OPENSSL_free(der);
    X509_free(raw);

    cl_buf_free(&spki);
    cl_buf_free(&ev);
    cl_buf_free(&doc);
    EVP_PKEY_free(key);
}

static void test_evidence_parser(void **state)
{
    (void)state;
    const uint8_t *d;
    size_t n;
    cl_buf ev, in;
    cl_buf_init(&ev, 1 << 16);
    /* round trips at each length form */
    static uint8_t doc[300];
    for (size_t i = 0; i < sizeof(doc); i++) doc[i] = (uint8_t)i;
    static const size_t lens[] = {1, 100, 127, 128, 200, 255, 256, 300};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        cl_buf_reset(&ev);
        assert_ok(cl_ratls_evidence_encode(doc, lens[i], &ev));
        assert_ok(cl_ratls_evidence_parse(ev.data, ev.len, &d, &n));
        assert_int_equal(n, lens[i]);
        assert_ptr_equal(d, ev.data + ev.len - lens[i]);
    }
    /* the DER, spelled out (X.690): 30 06 02 01 01 04 01 ab */
    cl_buf_reset(&ev);
    assert_ok(cl_ratls_evidence_encode((const uint8_t *)"\xab", 1, &ev));
    cl_buf want;
    t_hex(&want, "3006020101"
                 "0401ab");
    assert_int_equal(ev.len, want.len);
    assert_memory_equal(ev.data, want.data, want.len);
    cl_buf_free(&want);

    static const struct {
        const char *hex;
        cl_status code;
        const char *needle;
    } bad[] = {
        {"", CL_ERR_FORMAT, "RA-TLS evidence is empty"},
        {"3106020101"
         "0401ab",
         CL_ERR_FORMAT, "expected SEQUENCE (tag 0x30) at offset 0, found tag 0x31"},
        {"3080020101"
         "0401ab0000",
         CL_ERR_FORMAT, "indefinite length"},
        {"308106020101"
         "0401ab",
         CL_ERR_FORMAT, "not in its shortest form"},
        {"30830000060201010401ab", CL_ERR_LIMIT, "length takes 3 octets"},
        {"3007020101"
         "0401ab",
         CL_ERR_FORMAT, "the SEQUENCE holds 7 bytes but 6 follow"},
        {"3007020101"
         "0401ab00",
         CL_ERR_FORMAT, "the document OCTET STRING holds 1 bytes but 2 remain"},
        {"3006020102"
         "0401ab",
         CL_ERR_UNSUPPORTED, "RA-TLS evidence version 2; this build reads version 1"},
        {"300702020001"
         "0401ab",
         CL_ERR_FORMAT, "the version INTEGER has 2 octets"},
        {"3006040101"
         "0401ab",
         CL_ERR_FORMAT, "expected version INTEGER (tag 0x02) at offset 2"},
        {"3005020101"
         "0400",
         CL_ERR_FORMAT, "the attestation document is empty"},
        {"3003020101", CL_ERR_FORMAT, "document OCTET STRING"},
        {"3006020101"
         "0402ab",
         CL_ERR_FORMAT, "the document OCTET STRING holds 2 bytes but 1 remain"},
        {"30", CL_ERR_FORMAT, "length of the SEQUENCE"},
        {"3081", CL_ERR_FORMAT, "length of the SEQUENCE"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t_hex(&in, bad[i].hex);
        d = (const uint8_t *)"x";
        n = 7;
        assert_fails(cl_ratls_evidence_parse(in.len ? in.data : (const uint8_t *)"", in.len, &d, &n), bad[i].code,
                     bad[i].needle);
        assert_null(d);
        assert_int_equal(n, 0);
        cl_buf_free(&in);
    }
    static uint8_t huge[CL_ATTEST_MAX_DOC_LEN + 17];
    cl_buf_reset(&ev);
    assert_fails(cl_ratls_evidence_encode(huge, CL_ATTEST_MAX_DOC_LEN + 1, &ev), CL_ERR_LIMIT, "is over 32768");
    assert_fails(cl_ratls_evidence_parse(huge, sizeof(huge), &d, &n), CL_ERR_LIMIT, "is over");
    cl_buf_free(&ev);
}

static void test_config_errors(void **state)
{
    (void)state;
    cl_ratls_client c;
    cl_attest_roots empty;
    cl_attest_roots_init(&empty);
    cl_ratls_client_config cfg = {.roots = &empty, .pcrs = &W.pcr0, .pcr_count = 1};
    assert_fails(cl_ratls_client_init(&c, &cfg), CL_ERR_USAGE, "no attestation roots configured");
    cfg.roots = &W.roots;
    cfg.pcr_count = 0;
    assert_fails(cl_ratls_client_init(&c, &cfg), CL_ERR_USAGE, "no expected PCRs");
    cl_attest_pcr bad = {.index = 32};
    cfg.pcrs = &bad;
    cfg.pcr_count = 1;
    assert_fails(cl_ratls_client_init(&c, &cfg), CL_ERR_USAGE, "expected PCR index 32 is out of range");
    cl_ratls_server s;
    assert_fails(cl_ratls_server_init(&s, NULL, NULL), CL_ERR_USAGE, "no attestation source");
    cl_ratls_conn conn = {0};
    size_t got;
    uint8_t one[1];
    assert_fails(cl_ratls_conn_read(&conn, one, sizeof(one), &got), CL_ERR_STATE, "not established");
    assert_fails(cl_ratls_conn_write(&conn, "x", 1), CL_ERR_STATE, "not established");
    cl_attest_roots_free(&empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_happy_path),          cmocka_unit_test(test_peer_gone),
        cmocka_unit_test(test_truncation),          cmocka_unit_test(test_wrong_pcr0),
        cmocka_unit_test(test_other_platform_root), cmocka_unit_test(test_key_not_bound),
        cmocka_unit_test(test_stale_document),      cmocka_unit_test(test_replayed_nonce),
        cmocka_unit_test(test_tampered_document),   cmocka_unit_test(test_server_attestation_fails),
        cmocka_unit_test(test_plain_tls_servers),   cmocka_unit_test(test_plain_tls_clients),
        cmocka_unit_test(test_cert_check),          cmocka_unit_test(test_evidence_parser),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
