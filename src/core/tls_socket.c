/* SPDX-License-Identifier: Apache-2.0 */
/* The socket BIO of core's TLS connections (tls_socket_internal.h). */
#include <errno.h>
#include <openssl/bio.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tls_socket_internal.h"

static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

static int sock_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }

static int sock_write_ex(BIO *b, const char *p, size_t n, size_t *written)
{
    ssize_t r;
    BIO_clear_retry_flags(b);
    do {
        r = send(sock_fd(b), p, n, MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
        *written = 0;
        return 0;
    }
    *written = (size_t)r;
    return 1;
}

static int sock_read_ex(BIO *b, char *p, size_t n, size_t *got)
{
    ssize_t r;
    BIO_clear_retry_flags(b);
    do {
        r = recv(sock_fd(b), p, n, 0);
    } while (r < 0 && errno == EINTR);
    *got = r > 0 ? (size_t)r : 0;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
    if (r == 0) BIO_set_flags(b, BIO_FLAGS_IN_EOF);
    return r > 0 ? 1 : 0;
}

static long sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    if (cmd == BIO_CTRL_FLUSH) return 1;
    if (cmd == BIO_CTRL_EOF) return BIO_test_flags(b, BIO_FLAGS_IN_EOF) != 0;
    return 0;
}

static void sock_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "cloister socket");
    if (m == NULL || BIO_meth_set_write_ex(m, sock_write_ex) != 1 || BIO_meth_set_read_ex(m, sock_read_ex) != 1 ||
        BIO_meth_set_ctrl(m, sock_ctrl) != 1) {
        BIO_meth_free(m);
        return;
    }
    sock_method = m;
}

cl_status cl_tls_attach_socket(SSL *ssl, int fd, const char *who)
{
    CL_ENSURE(fd >= 0, CL_ERR_USAGE, "%s: no socket given", who);
    (void)pthread_once(&sock_method_once, sock_method_make);
    BIO *b = sock_method != NULL ? BIO_new(sock_method) : NULL;
    if (b == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "%s: socket BIO", who);
    BIO_set_data(b, (void *)(intptr_t)fd);
    BIO_set_init(b, 1);
    SSL_set_bio(ssl, b, b); /* one reference, owned by ssl */
    return CL_OK;
}
