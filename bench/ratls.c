/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/ratls: the cost of RA-TLS's attestation per connection, next to a plain
 * TLS 1.3 handshake with the same settings measured in the same run.
 *
 *   build/bench/ratls [--count N]
 *
 * Both run over a Unix socketpair in one process (server on a thread), TLS 1.3 only,
 * no tickets, P-256 server key, X25519 key exchange:
 *   plain   a self-signed certificate the client pins (one ECDSA verification);
 *   ratls   a document per connection from the sim attestation device (served over
 *           SOCK_SEQPACKET on a thread, as the launcher serves it), a certificate
 *           issued per connection, the client's full check (chain of three P-384
 *           certificates, the COSE signature, policy, binding);
 *   ratls+cache  the same with the client's verified-chain cache
 *           (cl_attest_roots_enable_cache): one P-384 verification instead of four.
 * Also the two pieces alone: the device's document, and cl_ratls_cert_check.
 */
#include "cloister/ratls.h"

#include <getopt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cloister/enclave.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static cl_nsm_device dev;
static int nsm[2];

static void *device_main(void *arg)
{
    (void)arg;
    static uint8_t req[CL_NSM_MAX_REQUEST + 1];
    cl_buf resp;
    cl_buf_init(&resp, CL_NSM_MAX_RESPONSE);
    for (;;) {
        ssize_t n = recv(nsm[1], req, sizeof(req), 0);
        if (n <= 0) break;
        cl_buf_reset(&resp);
        if (cl_nsm_device_handle(&dev, req, (size_t)n, &resp) != CL_OK) break;
        if (send(nsm[1], resp.data, resp.len, MSG_NOSIGNAL) != (ssize_t)resp.len) break;
    }
    cl_buf_free(&resp);
    return NULL;
}

typedef struct side {
    cl_ratls_server *ratls;
    SSL_CTX *plain;
    int fd;
    int ok;
} side;

static void *server_main(void *arg)
{
    side *s = arg;
    uint8_t b[1];
    if (s->ratls != NULL) {
        cl_ratls_conn c;
        size_t n;
        s->ok = cl_ratls_server_accept(s->ratls, s->fd, &c) == CL_OK && cl_ratls_conn_read(&c, b, 1, &n) == CL_OK;
        cl_ratls_conn_close(&c);
    } else {
        SSL *ssl = SSL_new(s->plain);
        size_t n;
        (void)SSL_set_fd(ssl, s->fd);
        s->ok = SSL_accept(ssl) == 1 && SSL_read_ex(ssl, b, 1, &n) == 1;
        SSL_free(ssl);
    }
    return NULL;
}

static void die(const char *what)
{
    fprintf(stderr, "bench/ratls: %s: %s\n", what, cl_error_message());
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* One connection: handshake, one application byte, close. */
static void one(cl_ratls_server *rs, SSL_CTX *ps, cl_ratls_client *rc, SSL_CTX *pc)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
    side s = {.ratls = rs, .plain = ps, .fd = sv[1]};
    pthread_t t;
    if (pthread_create(&t, NULL, server_main, &s) != 0) die("pthread_create");
    int ok;
    if (rc != NULL) {
        cl_ratls_conn c;
        ok = cl_ratls_client_connect(rc, sv[0], &c, NULL) == CL_OK && cl_ratls_conn_write(&c, "x", 1) == CL_OK;
        cl_ratls_conn_close(&c);
    } else {
        SSL *ssl = SSL_new(pc);
        size_t w;
        (void)SSL_set_fd(ssl, sv[0]);
        ok = SSL_connect(ssl) == 1 && SSL_write_ex(ssl, "x", 1, &w) == 1;
        (void)SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    (void)close(sv[0]);
    (void)pthread_join(t, NULL);
    (void)close(sv[1]);
    if (!ok || !s.ok) die("handshake");
}

static void tls13_only(SSL_CTX *ctx)
{
    (void)SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    (void)SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    (void)SSL_CTX_set_num_tickets(ctx, 0);
    (void)SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
}

int main(int argc, char **argv)
{
    int count = 200;
    static const struct option opts[] = {{"count", required_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    for (int o; (o = getopt_long(argc, argv, "n:", opts, NULL)) != -1;) {
        if (o != 'n') return 2;
        uint64_t v = 0;
        if (cl_parse_uint(optarg, 1, 100000, "--count", &v) != CL_OK) {
            fprintf(stderr, "bench/ratls: %s\n", cl_error_message());
            return 2;
        }
        count = (int)v;
    }
    char dir[] = "/tmp/cloister-bench-ratls-XXXXXX", root[128];
    if (mkdtemp(dir) == NULL) die("mkdtemp");
    int64_t t0 = (int64_t)time(NULL);
    cl_attest_platform plat;
    cl_attest_platform_init(&plat);
    if (cl_attest_pki_create(dir, t0, 30, 10, false) != CL_OK || cl_attest_platform_load(&plat, dir) != CL_OK ||
        cl_attest_platform_start_enclave(&plat, "bench", t0) != CL_OK)
        die("sim PKI");
    cl_image img;
    cl_image_init(&img);
    memset(img.pcr0, 0x42, 48);
    cl_nsm_device_init(&dev, &img, false, "i-bench", &plat);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, nsm) != 0) die("socketpair");
    pthread_t devt;
    if (pthread_create(&devt, NULL, device_main, NULL) != 0) die("pthread_create");
    cl_attest_roots roots, cached;
    cl_attest_roots_init(&roots);
    cl_attest_roots_init(&cached);
    (void)snprintf(root, sizeof(root), "%s/root.pem", dir);
    if (cl_attest_roots_add_file(&roots, root) != CL_OK || cl_attest_roots_add_file(&cached, root) != CL_OK ||
        cl_attest_roots_enable_cache(&cached, 16) != CL_OK)
        die("roots");
    static const char *files[] = {"root.pem", "root.key", "platform.pem", "platform.key"};
    for (size_t i = 0; i < 4; i++) {
        char p[160];
        (void)snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
        (void)unlink(p);
    }
    (void)rmdir(dir);

    cl_attest_pcr pcr0 = {.index = 0};
    memset(pcr0.value, 0x42, 48);
    cl_ratls_server rs;
    cl_ratls_client rc, rcc;
    cl_ratls_client_config cfg = {.roots = &roots, .pcrs = &pcr0, .pcr_count = 1};
    if (cl_ratls_server_init(&rs, cl_ratls_attest_nsm, &nsm[0]) != CL_OK || cl_ratls_client_init(&rc, &cfg) != CL_OK)
        die("RA-TLS init");
    cfg.roots = &cached;
    if (cl_ratls_client_init(&rcc, &cfg) != CL_OK) die("RA-TLS init");

    /* the plain peer: the same kind of key, a self-signed certificate the client pins */
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *nm = X509_get_subject_name(x);
    time_t now = (time_t)t0;
    if (key == NULL || x == NULL || X509_set_version(x, X509_VERSION_3) != 1 ||
        X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"plain", -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, nm) != 1 || X509_time_adj_ex(X509_getm_notBefore(x), 0, -60, &now) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), 1, 0, &now) == NULL || X509_set_pubkey(x, key) != 1 ||
        X509_sign(x, key, EVP_sha256()) <= 0)
        die("plain certificate");
    SSL_CTX *ps = SSL_CTX_new(TLS_server_method()), *pc = SSL_CTX_new(TLS_client_method());
    tls13_only(ps);
    tls13_only(pc);
    if (SSL_CTX_use_certificate(ps, x) != 1 || SSL_CTX_use_PrivateKey(ps, key) != 1 ||
        X509_STORE_add_cert(SSL_CTX_get_cert_store(pc), x) != 1)
        die("plain TLS");
    SSL_CTX_set_verify(pc, SSL_VERIFY_PEER, NULL);

    /* warm up, then measure each kind in turn, three rounds, keeping the best */
    one(NULL, ps, NULL, pc);
    one(&rs, NULL, &rc, NULL);
    one(&rs, NULL, &rcc, NULL);
    /* one connection's certificate and nonce, for the client's check alone */
    cl_buf cert;
    cl_buf_init(&cert, CL_RATLS_MAX_CERT_LEN);
    uint8_t cnonce[CL_RATLS_NONCE_LEN];
    {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
        side s = {.ratls = &rs, .fd = sv[1]};
        pthread_t t;
        if (pthread_create(&t, NULL, server_main, &s) != 0) die("pthread_create");
        cl_ratls_conn c;
        cl_attest_doc d;
        cl_attest_doc_init(&d);
        if (cl_ratls_client_connect(&rc, sv[0], &c, &d) != CL_OK) die("connect");
        X509 *peer = SSL_get1_peer_certificate(c.ssl);
        unsigned char *der = NULL;
        int len = i2d_X509(peer, &der);
        if (len <= 0 || cl_buf_append(&cert, der, (size_t)len) != CL_OK || d.nonce.len != sizeof(cnonce)) die("cert");
        memcpy(cnonce, d.nonce.data, sizeof(cnonce));
        OPENSSL_free(der);
        X509_free(peer);
        cl_attest_doc_free(&d);
        if (cl_ratls_conn_write(&c, "x", 1) != CL_OK) die("write");
        cl_ratls_conn_close(&c);
        (void)close(sv[0]);
        (void)pthread_join(t, NULL);
        (void)close(sv[1]);
    }
    double best[6] = {1e9, 1e9, 1e9, 1e9, 1e9, 1e9};
    cl_buf doc;
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN);
    for (int round = 0; round < 3; round++) {
        double a = now_s();
        for (int i = 0; i < count; i++) one(NULL, ps, NULL, pc);
        double b = now_s();
        for (int i = 0; i < count; i++) one(&rs, NULL, &rc, NULL);
        double c = now_s();
        for (int i = 0; i < count; i++) one(&rs, NULL, &rcc, NULL);
        double d = now_s();
        static const uint8_t nonce[CL_RATLS_NONCE_LEN] = {1};
        for (int i = 0; i < count; i++) {
            cl_buf_reset(&doc);
            if (cl_ratls_attest_nsm(&nsm[0], rs.binding, sizeof(rs.binding), nonce, sizeof(nonce), &doc) != CL_OK)
                die("document");
        }
        double e = now_s();
        for (int i = 0; i < count; i++)
            if (cl_ratls_cert_check(cert.data, cert.len, &rc.cfg, (int64_t)time(NULL), cnonce, sizeof(cnonce), NULL) !=
                CL_OK)
                die("check");
        double f = now_s();
        for (int i = 0; i < count; i++)
            if (cl_ratls_cert_check(cert.data, cert.len, &rcc.cfg, (int64_t)time(NULL), cnonce, sizeof(cnonce), NULL) !=
                CL_OK)
                die("check");
        double g = now_s();
        double v[6] = {b - a, c - b, d - c, e - d, f - e, g - f};
        for (int k = 0; k < 6; k++)
            if (v[k] < best[k]) best[k] = v[k];
    }
    printf("bench/ratls: %d connections per kind, best of 3 rounds, one process, socketpair\n", count);
    printf("  plain TLS 1.3 (pinned self-signed P-256)   %8.3f ms per connection\n", best[0] * 1e3 / count);
    printf("  RA-TLS (document per connection)           %8.3f ms per connection  (%.2fx plain)\n",
           best[1] * 1e3 / count, best[1] / best[0]);
    printf("  RA-TLS, client chain cache                 %8.3f ms per connection  (%.2fx plain)\n",
           best[2] * 1e3 / count, best[2] / best[0]);
    printf("  of which: sim device document alone        %8.3f ms\n", best[3] * 1e3 / count);
    printf("  of which: client's check alone             %8.3f ms (with the chain cache %.3f ms)\n",
           best[4] * 1e3 / count, best[5] * 1e3 / count);
    printf("  document size %zu bytes, certificate %zu bytes\n", doc.len, cert.len);
    cl_buf_free(&cert);
    cl_buf_free(&doc);
    (void)close(nsm[0]);
    (void)pthread_join(devt, NULL);
    (void)close(nsm[1]);
    X509_free(x);
    EVP_PKEY_free(key);
    SSL_CTX_free(ps);
    SSL_CTX_free(pc);
    cl_ratls_client_free(&rc);
    cl_ratls_client_free(&rcc);
    cl_ratls_server_free(&rs);
    cl_attest_roots_free(&roots);
    cl_attest_roots_free(&cached);
    cl_image_free(&img);
    cl_attest_platform_free(&plat);
    return 0;
}
