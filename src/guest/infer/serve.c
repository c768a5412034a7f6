/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's serving core (cloister/worker.h): the pool, the queue between the accepting
 * thread and the pool, the envelope path, the channel path's frame loop, the replay memory.
 * A bad request never stops the worker; a stalled client is dropped after read_timeout.
 * Every line a client or the console sees is printed here (docs/worker.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cloister/envelope.h"
#include "cloister/infer_client.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/worker.h"

/*
 * One decrypted input through the model, whatever path it came by (cl_infer_service_run
 * reads it as the model's kind says). From here on messages could quote the input, and the
 * envelope path's error frames cross the host in plaintext: say only which step refused it.
 */
static CL_MUST_USE cl_status worker_infer(cl_worker *w, const uint8_t *in, size_t n, cl_buf *result)
{
    cl_status st = cl_infer_service_run(w->svc, in, n, result);
    if (st != CL_OK) {
        cl_error_clear();
        /* Not the input's fault: saying so tells the host nothing the request's size does not. */
        if (st == CL_ERR_LIMIT || st == CL_ERR_NOMEM)
            CL_FAIL(st,
                    "the model ran out of memory on this request (its cap is %ld MiB: the image's model_memory_mib)",
                    w->model_memory_mib);
        if (st == CL_ERR_INTERNAL) CL_FAIL(st, "the model failed on this request (an internal error)");
        if (cl_infer_service_kind(w->svc) == CL_INFER_KIND_SEGMENTER)
            CL_FAIL(CL_ERR_FORMAT, "the decrypted request is not an image this model reads "
                                   "(a PNG slice; details are not sent in the clear)");
        CL_FAIL(CL_ERR_FORMAT, "the decrypted request is not a record this classifier reads "
                               "(one patient's measurements as JSON or CSV; details are not sent in the clear)");
    }
    return CL_OK;
}

/* The key the record was sealed under: the result is sealed under a fresh data key of it. */
static CL_MUST_USE cl_status worker_request_key(const uint8_t *sealed, size_t n, char *key_id, size_t size)
{
    cl_status rc = CL_OK;
    uint32_t hlen = 0;
    cl_envelope_header h;
    memset(&h, 0, sizeof(h));
    CL_GUARD_CTX_GOTO(cl_envelope_header_length(sealed, n, &hlen), "the request is not a sealed envelope");
    CL_ENSURE_GOTO(hlen <= n, CL_ERR_FORMAT, "the request's envelope header is truncated");
    CL_GUARD_CTX_GOTO(cl_envelope_header_parse(sealed, hlen, &h), "the request's envelope header");
    CL_ENSURE_GOTO(h.provider_len == 3 && memcmp(h.provider, "kms", 3) == 0 && h.key_id_len < size, CL_ERR_KEY,
                   "the request must be sealed with a KMS key (cloister seal --key alias/...)");
    memcpy(key_id, h.key_id, h.key_id_len);
    key_id[h.key_id_len] = '\0';
out:
    cl_envelope_header_free(&h);
    return rc;
}

static bool worker_replay_seen_locked(const cl_worker_replay *r, const uint8_t d[CL_WORKER_SHA384_LEN])
{
    for (size_t i = 0; i < r->count; i++)
        if (cl_ct_equal(r->digest[i], d, CL_WORKER_SHA384_LEN)) return true;
    return false;
}

/* record false: only asks; record true: remembers d unless it is there already. Either way
 * CL_ERR_DENIED when d was served before. */
static CL_MUST_USE cl_status worker_replay_check(cl_worker_replay *r, const uint8_t d[CL_WORKER_SHA384_LEN],
                                                 bool record)
{
    (void)pthread_mutex_lock(&r->mu);
    bool seen = worker_replay_seen_locked(r, d);
    if (!seen && record) {
        memcpy(r->digest[r->next], d, CL_WORKER_SHA384_LEN);
        r->next = (r->next + 1) % CL_WORKER_REPLAY_SLOTS;
        if (r->count < CL_WORKER_REPLAY_SLOTS) r->count++;
    }
    (void)pthread_mutex_unlock(&r->mu);
    CL_ENSURE(!seen, CL_ERR_DENIED, CL_INFER_REPLAY_MESSAGE);
    return CL_OK;
}

/* The envelope path: request id || sealed record in, the sealed and bound result out. */
static CL_MUST_USE cl_status worker_handle_envelope(cl_worker_thread *t, const cl_buf *req, cl_buf *result)
{
    cl_worker *w = t->w;
    cl_status rc = CL_OK;
    char key_id[CL_KEY_ID_MAX + 1];
    const uint8_t *id = NULL, *sealed = NULL;
    size_t sealed_len = 0;
    uint8_t digest[CL_WORKER_SHA384_LEN];
    unsigned int dlen = 0;
    cl_key_provider *kp = NULL;
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    cl_buf pt, res;
    cl_buf_init_secret(&pt, CL_WORKER_INPUT_MAX);
    cl_buf_init_secret(&res, CL_WORKER_RESULT_MAX);
    CL_GUARD_GOTO(cl_frame_request_parse(req->data, req->len, &id, &sealed, &sealed_len));
    CL_ENSURE_GOTO(sealed_len <= CL_WORKER_SEALED_MAX, CL_ERR_LIMIT, "a sealed input of %zu bytes is over %zu",
                   sealed_len, CL_WORKER_SEALED_MAX);
    if (EVP_Digest(sealed, sealed_len, digest, &dlen, EVP_sha384(), NULL) != 1 || dlen != sizeof(digest))
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "SHA-384 of the request");
    CL_GUARD_GOTO(worker_replay_check(&w->replay, digest, false));
    CL_GUARD_GOTO(worker_request_key(sealed, sealed_len, key_id, sizeof(key_id)));
    CL_GUARD_GOTO(w->hooks.provider(t, key_id, &kp));
    CL_GUARD_CTX_GOTO(cl_envelope_unseal_mem(kp, NULL, sealed, sealed_len, &pt), "unsealing the request");
    CL_GUARD_GOTO(worker_infer(w, pt.data, pt.len, &res));
    CL_GUARD_GOTO(cl_infer_binding_make(id, sealed, sealed_len, &ctx));
    CL_GUARD_CTX_GOTO(cl_envelope_seal_mem(kp, &ctx, res.data, res.len, result), "sealing the result under %s", key_id);
    /* Remembered only once served: a request that failed (KMS down) may be sent again. */
    CL_GUARD_GOTO(worker_replay_check(&w->replay, digest, true));
out:
    if (rc != CL_OK) cl_buf_truncate(result, 0);
    cl_key_provider_destroy(kp);
    cl_kvlist_free(&ctx);
    cl_buf_free(&pt);
    cl_buf_free(&res);
    return rc;
}

/* Sends the thread's last error as an error frame: one line, control bytes blanked. */
static void worker_send_error(const cl_frame_io *io, const char *what, long n)
{
    char line[1024];
    int m = snprintf(line, sizeof(line), "%s", cl_error_message());
    if (m < 0) m = 0;
    if ((size_t)m >= sizeof(line)) m = (int)sizeof(line) - 1;
    for (int i = 0; i < m; i++)
        if ((unsigned char)line[i] < 0x20) line[i] = ' ';
    CL_LOG_WARN("%s request %ld refused: %s", what, n, line);
    if (cl_frame_write_io(io, CL_FRAME_ERROR, (const uint8_t *)line, (size_t)m) != CL_OK)
        CL_LOG_WARN("%s request %ld: could not send the error: %s", what, n, cl_error_message());
}

void cl_worker_request_stop(cl_worker *w)
{
    atomic_store(&w->stopping, true);
    /* Non-blocking: once one byte is in the pipe, the poller is woken whatever else fails. */
    const uint8_t one = 1;
    if (write(w->wake[1], &one, 1) != 1 && errno != EAGAIN)
        CL_LOG_ERROR("cannot wake the accepting thread: %s", strerror(errno));
}

bool cl_worker_stopping(cl_worker *w) { return atomic_load(&w->stopping); }

int cl_worker_wake_fd(const cl_worker *w) { return w->wake[0]; }

long cl_worker_served(cl_worker *w) { return atomic_load(&w->served); }

/* An envelope-port connection: one request frame and one answer, or a stop frame. */
static void worker_serve_envelope(cl_worker_thread *t, int fd)
{
    cl_worker *w = t->w;
    cl_frame_io io = cl_frame_io_fd(&fd);
    cl_buf req, result;
    cl_buf_init(&req, CL_WORKER_REQUEST_MAX);
    cl_buf_init(&result, CL_WORKER_REQUEST_MAX);
    uint8_t type = 0;
    long n = atomic_fetch_add(&w->served, 1) + 1;
    cl_status rc = cl_frame_read_io(&io, CL_WORKER_REQUEST_MAX, &type, &req);
    if (rc == CL_OK && type == CL_FRAME_STOP) {
        /* From the host channel: the host can kill the enclave anyway (docs/worker.md). */
        CL_LOG_INFO("stop requested; finishing the requests in flight");
        cl_worker_request_stop(w);
        goto out;
    }
    if (rc == CL_OK && type != CL_FRAME_REQUEST)
        rc = CL_RAISE(CL_ERR_FORMAT, "expected a request frame (type 1), not type %u", type);
    if (rc == CL_OK) rc = worker_handle_envelope(t, &req, &result);
    if (rc == CL_OK) {
        rc = cl_frame_write_io(&io, CL_FRAME_RESULT, result.data, result.len);
        CL_LOG_INFO("envelope request %ld: %s", n, rc == CL_OK ? "served" : cl_error_message());
    } else {
        worker_send_error(&io, "envelope", n);
    }
out:
    cl_buf_free(&req);
    cl_buf_free(&result);
}

/* A channel-port connection: the hook's handshake, then request frames until the client
 * closes. Inputs and results are plaintext here, in secret buffers. */
static void worker_serve_channel(cl_worker_thread *t, int fd, bool tls)
{
    cl_worker *w = t->w;
    cl_worker_channel ch;
    memset(&ch, 0, sizeof(ch));
    ch.fd = fd;
    ch.tls = tls;
    long n = atomic_fetch_add(&w->served, 1) + 1;
    cl_buf in, res;
    cl_buf_init_secret(&in, CL_WORKER_INPUT_MAX);
    cl_buf_init_secret(&res, CL_WORKER_RESULT_MAX);
    if (w->hooks.channel_open == NULL || w->hooks.channel_open(t, &ch) != CL_OK) {
        CL_LOG_WARN("channel connection %ld: handshake failed: %s", n,
                    w->hooks.channel_open == NULL ? "this worker has no channel path" : cl_error_message());
        goto out;
    }
    for (long k = 1; !atomic_load(&w->stopping); k++) {
        uint8_t type = 0;
        cl_buf_truncate(&in, 0);
        cl_buf_truncate(&res, 0);
        cl_status rc = cl_frame_read_io(&ch.io, CL_WORKER_INPUT_MAX, &type, &in);
        if (rc == CL_ERR_NOT_FOUND) break; /* the client is done */
        if (rc != CL_OK) {
            CL_LOG_WARN("channel connection %ld: %s", n, cl_error_message());
            break;
        }
        rc = type == CL_FRAME_REQUEST ? worker_infer(w, in.data, in.len, &res)
                                      : CL_RAISE(CL_ERR_FORMAT, "expected a request frame (type 1), not type %u", type);
        if (rc != CL_OK) {
            worker_send_error(&ch.io, "channel", n);
            continue;
        }
        rc = cl_frame_write_io(&ch.io, CL_FRAME_RESULT, res.data, res.len);
        CL_LOG_INFO("channel connection %ld request %ld: %s", n, k, rc == CL_OK ? "served" : cl_error_message());
        if (rc != CL_OK) break;
    }
    if (w->hooks.channel_close != NULL) w->hooks.channel_close(&ch);
out:
    cl_buf_free(&in);
    cl_buf_free(&res);
}

/* A stalled client may not pin a thread: reads and writes give up after read_timeout. */
void cl_worker_set_timeouts(int fd, long seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        CL_LOG_ERROR("cannot set the connection's timeout: %s", strerror(errno));
}

static void *worker_pool_main(void *arg)
{
    cl_worker_thread *t = arg;
    cl_worker *w = t->w;
    for (;;) {
        (void)pthread_mutex_lock(&w->q_mu);
        while (w->q_len == 0 && !w->q_closed) (void)pthread_cond_wait(&w->q_cv, &w->q_mu);
        if (w->q_len == 0) { /* closed and drained */
            (void)pthread_mutex_unlock(&w->q_mu);
            break;
        }
        cl_worker_job job = w->queue[w->q_head];
        w->q_head = (w->q_head + 1) % CL_WORKER_QUEUE_MAX;
        w->q_len--;
        (void)pthread_cond_broadcast(&w->q_cv);
        (void)pthread_mutex_unlock(&w->q_mu);
        cl_worker_set_timeouts(job.fd, w->read_timeout);
        if (job.channel)
            worker_serve_channel(t, job.fd, job.tls);
        else
            worker_serve_envelope(t, job.fd);
        (void)close(job.fd);
        cl_error_clear();
    }
    return NULL;
}

static void worker_enqueue_job(cl_worker *w, cl_worker_job job)
{
    (void)pthread_mutex_lock(&w->q_mu);
    while (w->q_len == CL_WORKER_QUEUE_MAX) (void)pthread_cond_wait(&w->q_cv, &w->q_mu);
    w->queue[(w->q_head + w->q_len) % CL_WORKER_QUEUE_MAX] = job;
    w->q_len++;
    (void)pthread_cond_broadcast(&w->q_cv);
    (void)pthread_mutex_unlock(&w->q_mu);
}

void cl_worker_enqueue(cl_worker *w, int fd, bool channel)
{
    worker_enqueue_job(w, (cl_worker_job){.fd = fd, .channel = channel});
}

void cl_worker_enqueue_tls(cl_worker *w, int fd)
{
    worker_enqueue_job(w, (cl_worker_job){.fd = fd, .channel = true, .tls = true});
}

cl_status cl_worker_init(cl_worker *w)
{
    memset(w, 0, sizeof(*w));
    w->wake[0] = w->wake[1] = -1;
    w->read_timeout = 30;
    CL_ENSURE(pthread_mutex_init(&w->replay.mu, NULL) == 0 && pthread_mutex_init(&w->q_mu, NULL) == 0 &&
                  pthread_cond_init(&w->q_cv, NULL) == 0,
              CL_ERR_INTERNAL, "the worker's locks could not be made");
    if (pipe2(w->wake, O_CLOEXEC | O_NONBLOCK) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "the worker's wake pipe");
    return CL_OK;
}

void cl_worker_free(cl_worker *w)
{
    for (int i = 0; i < 2; i++)
        if (w->wake[i] >= 0) (void)close(w->wake[i]);
    w->wake[0] = w->wake[1] = -1;
    (void)pthread_mutex_destroy(&w->replay.mu);
    (void)pthread_mutex_destroy(&w->q_mu);
    (void)pthread_cond_destroy(&w->q_cv);
}

cl_status cl_worker_pool_start(cl_worker *w, cl_worker_thread *threads, long n, size_t stack, long *started)
{
    *started = 0;
    CL_ENSURE(n >= 1 && n <= CL_WORKER_MAX_THREADS && w->svc != NULL && w->hooks.provider != NULL, CL_ERR_USAGE,
              "the pool needs a model, a key provider and 1 to %d threads", CL_WORKER_MAX_THREADS);
    pthread_attr_t attr;
    CL_ENSURE(pthread_attr_init(&attr) == 0, CL_ERR_INTERNAL, "pthread_attr_init");
    cl_status rc = CL_OK;
    if (pthread_attr_setstacksize(&attr, stack) != 0)
        rc = CL_RAISE(CL_ERR_USAGE, "a serving thread's stack of %zu bytes is refused", stack);
    for (; rc == CL_OK && *started < n; (*started)++) {
        cl_worker_thread *t = &threads[*started];
        t->w = w;
        int e = pthread_create(&t->tid, &attr, worker_pool_main, t);
        if (e != 0) {
            errno = e;
            rc = CL_RAISE_ERRNO(CL_ERR_NOMEM, "serving thread %ld", *started + 1);
            break;
        }
    }
    (void)pthread_attr_destroy(&attr);
    return rc;
}

void cl_worker_pool_stop(cl_worker *w, cl_worker_thread *threads, long started)
{
    (void)pthread_mutex_lock(&w->q_mu);
    w->q_closed = true;
    (void)pthread_cond_broadcast(&w->q_cv);
    (void)pthread_mutex_unlock(&w->q_mu);
    for (long i = 0; i < started; i++) (void)pthread_join(threads[i].tid, NULL);
}
