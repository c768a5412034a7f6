/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-api's serving core: a fixed pool of threads, each serving one connection at a time for
 * as long as its client keeps it alive (request, answer, request, ...), fed by the accepting thread
 * through a bounded queue. What the connection's bytes go through (TLS with the certificate
 * service's certificate, in the program) is a hook, so that tests/api drives the pool over
 * socketpairs in a plain process, under the sanitizers and ThreadSanitizer.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cloister/api.h"
#include "cloister/log.h"

static CL_MUST_USE cl_status serve_plain_open(void *arg, cl_api_stream *s)
{
    (void)arg;
    s->io = cl_frame_io_fd(&s->fd);
    return CL_OK;
}

/*
 * A connection the server ends while its client may still be sending (a body refused on its
 * Content-Length, before it was read): closing a socket with unread input makes the kernel reset
 * it, and a client still writing its body then gets an error instead of the answer already sent
 * (RFC 9112, 9.6: "a server ... SHOULD ... half-close ... and continue reading"; nginx's and
 * Apache's lingering close). So: no more writes, then read and drop what comes, for at most 2
 * seconds and 8 MiB, before the close.
 */
static void serve_linger(int fd)
{
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)shutdown(fd, SHUT_WR);
    uint8_t drop[16384];
    for (size_t total = 0; total < ((size_t)8 << 20);) {
        ssize_t n = recv(fd, drop, sizeof(drop), 0);
        if (n <= 0) break;
        total += (size_t)n;
    }
}

static void serve_connection(cl_api_server *srv, int fd)
{
    cl_api_stream s = {.fd = fd};
    cl_api_conn c;
    cl_api_request req;
    cl_api_response resp;
    bool have_conn = false;
    /* Each read and write of this connection, the TLS handshake's too, waits at most this long. */
    struct timeval tv = {.tv_sec = srv->read_timeout, .tv_usec = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    cl_status rc = srv->open != NULL ? srv->open(srv->hook_arg, &s) : serve_plain_open(NULL, &s);
    if (rc != CL_OK) {
        CL_LOG_INFO("connection refused in its handshake: %s", cl_error_message());
        cl_error_clear();
        (void)close(fd);
        return;
    }
    cl_api_request_init(&req);
    cl_api_response_init(&resp);
    if (cl_api_conn_init(&c, s.io) == CL_OK) {
        have_conn = true;
        for (;;) {
            bool got = false;
            if (cl_api_read_request(&c, &req, &got) != CL_OK) {
                CL_LOG_DEBUG("connection dropped: %s", cl_error_message());
                break;
            }
            if (!got) break;
            cl_api_handle(srv->ctx, &req, &resp);
            CL_LOG_DEBUG("%s %.*s %d", req.method_name, (int)(req.url.len > 80 ? 80 : req.url.len),
                         (const char *)req.url.data, resp.status);
            if (cl_api_write_response(&c, &req, &resp) != CL_OK || !req.keep_alive || resp.close ||
                atomic_load(&srv->stopping))
                break;
        }
    }
    bool linger = have_conn && resp.close;
    if (have_conn) cl_api_conn_free(&c);
    cl_api_request_free(&req);
    cl_api_response_free(&resp);
    cl_error_clear();
    if (srv->close != NULL) srv->close(&s);
    if (linger) serve_linger(fd);
    (void)close(fd);
    atomic_fetch_add(&srv->served, 1);
}

static void *serve_thread(void *arg)
{
    cl_api_server *srv = arg;
    for (;;) {
        (void)pthread_mutex_lock(&srv->mu);
        while (srv->q_len == 0 && !atomic_load(&srv->stopping)) (void)pthread_cond_wait(&srv->cv, &srv->mu);
        if (srv->q_len == 0) {
            (void)pthread_mutex_unlock(&srv->mu);
            return NULL;
        }
        int fd = srv->queue[srv->q_head];
        srv->q_head = (srv->q_head + 1) % CL_API_QUEUE_MAX;
        srv->q_len--;
        (void)pthread_mutex_unlock(&srv->mu);
        serve_connection(srv, fd);
    }
}

cl_status cl_api_server_start(cl_api_server *srv, long threads, size_t stack)
{
    CL_ENSURE(threads >= 1 && threads <= CL_API_MAX_THREADS, CL_ERR_USAGE, "%ld serving threads: give 1 to %d", threads,
              CL_API_MAX_THREADS);
    (void)pthread_mutex_init(&srv->mu, NULL);
    (void)pthread_cond_init(&srv->cv, NULL);
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->served, 0);
    srv->q_head = srv->q_len = 0;
    srv->started = 0;
    pthread_attr_t attr;
    (void)pthread_attr_init(&attr);
    if (stack > 0) (void)pthread_attr_setstacksize(&attr, stack);
    for (; srv->started < threads; srv->started++)
        if (pthread_create(&srv->threads[srv->started], &attr, serve_thread, srv) != 0) break;
    (void)pthread_attr_destroy(&attr);
    if (srv->started == 0) CL_FAIL(CL_ERR_NOMEM, "cannot start a serving thread");
    if (srv->started < threads) CL_LOG_WARN("started %ld of %ld serving threads", srv->started, threads);
    return CL_OK;
}

bool cl_api_server_enqueue(cl_api_server *srv, int fd)
{
    (void)pthread_mutex_lock(&srv->mu);
    bool ok = srv->q_len < CL_API_QUEUE_MAX && !atomic_load(&srv->stopping);
    if (ok) {
        srv->queue[(srv->q_head + srv->q_len) % CL_API_QUEUE_MAX] = fd;
        srv->q_len++;
        (void)pthread_cond_signal(&srv->cv);
    }
    (void)pthread_mutex_unlock(&srv->mu);
    if (!ok) {
        /* Every thread busy and the queue full: refuse at once rather than hold the socket. */
        CL_LOG_WARN("connection refused: %ld connections in service and %d waiting (max_connections)", srv->started,
                    CL_API_QUEUE_MAX);
        (void)close(fd);
    }
    return ok;
}

void cl_api_server_stop(cl_api_server *srv)
{
    (void)pthread_mutex_lock(&srv->mu);
    atomic_store(&srv->stopping, true);
    (void)pthread_cond_broadcast(&srv->cv);
    (void)pthread_mutex_unlock(&srv->mu);
    for (long i = 0; i < srv->started; i++) (void)pthread_join(srv->threads[i], NULL);
    srv->started = 0;
    (void)pthread_mutex_destroy(&srv->mu);
    (void)pthread_cond_destroy(&srv->cv);
}
