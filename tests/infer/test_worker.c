/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's serving core (src/guest/infer/serve.c) driven over socketpairs, as the
 * accepting thread hands it connections: the envelope path (a sealed PNG in, the result sealed
 * and bound to the request out), its refusals and their messages, the replay memory, the
 * channel path's frame loop, a stop frame, and many clients at once on a pool of four threads.
 * The model is a one-node segmenter; the "KMS" key is a local key whose provider calls itself
 * kms, as the worker requires of a record. Built with the sanitizers in the sanitize pass and
 * run by the ThreadSanitizer pass (ctest -L tsan); cloister-infer itself stays a guest build.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/envelope.h"
#include "cloister/infer_client.h"
#include "cloister/worker.h"

#include "infer_test_util.h"
#include "test_util.h"

#define T_THREADS 4

static uint8_t g_key[CL_DATA_KEY_LEN];
static atomic_bool g_deny;       /* the provider hook refuses, as a KMS would */
static atomic_bool g_no_channel; /* the channel hook's handshake fails */
static cl_worker g_w;
static cl_worker_thread g_threads[T_THREADS];
static long g_started;
static cl_infer_service *g_svc;
static cl_buf g_png, g_expected;

/* A provider named "kms" over the local key: what the worker asks the KMS for, here. */
static CL_MUST_USE cl_status provider_named(const char *name, cl_key_provider **out)
{
    CL_GUARD(cl_local_provider_from_key(g_key, out));
    (*out)->name = name;
    return CL_OK;
}

/* The hooks run on the pool's threads: no cmocka assertion there (it is not thread-safe). */
static CL_MUST_USE cl_status hook_provider(cl_worker_thread *t, const char *key_id, cl_key_provider **out)
{
    CL_ENSURE(t->w == &g_w && key_id != NULL && strncmp(key_id, "local:", 6) == 0, CL_ERR_INTERNAL,
              "the hook got another worker or key");
    if (atomic_load(&g_deny))
        CL_FAIL(CL_ERR_DENIED, "AccessDeniedException: the key policy does not allow this caller (test)");
    return provider_named("kms", out);
}

/* The channel path without RA-TLS: frames straight over the socket. */
static CL_MUST_USE cl_status hook_channel_open(cl_worker_thread *t, cl_worker_channel *ch)
{
    (void)t;
    if (atomic_load(&g_no_channel)) CL_FAIL(CL_ERR_AUTH, "the client's handshake failed (test)");
    ch->io = cl_frame_io_fd(&ch->fd);
    return CL_OK;
}

static void hook_channel_close(cl_worker_channel *ch) { (void)ch; }

static int setup(void **state)
{
    (void)state;
    tm_model *tm = tm_new(13);
    int64_t d[4] = {1, 1, 12, 16};
    tm_input(tm, "x", CL_INFER_FLOAT, 4, d);
    tm_output(tm, "y");
    tm_node(tm, "Sigmoid", "n", "x", "y");
    tm_metadata(tm, "cloister.kind", "segmentation");
    tm_metadata(tm, "cloister.name", "square");
    cl_buf model;
    tm_pack(tm, &model);
    tm_free(tm);
    cl_infer_options opts = {.backend = CL_INFER_BACKEND_REFERENCE, .max_bytes = (size_t)64 << 20};
    assert_ok(cl_infer_service_open(model.data, model.len, &opts, &g_svc));
    cl_buf_free(&model);
    tm_square_png(&g_png);
    cl_buf_init(&g_expected, CL_WORKER_RESULT_MAX);
    assert_ok(cl_infer_service_run(g_svc, g_png.data, g_png.len, &g_expected));
    assert_ok(cl_random(g_key, sizeof(g_key)));
    assert_ok(cl_worker_init(&g_w));
    g_w.svc = g_svc;
    g_w.hooks = (cl_worker_hooks){
        .provider = hook_provider, .channel_open = hook_channel_open, .channel_close = hook_channel_close};
    g_w.read_timeout = 60;
    g_w.model_memory_mib = 64;
    assert_ok(cl_worker_pool_start(&g_w, g_threads, T_THREADS, (size_t)1 << 20, &g_started));
    assert_int_equal(g_started, T_THREADS);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cl_worker_pool_stop(&g_w, g_threads, g_started);
    cl_worker_free(&g_w);
    cl_infer_service_free(g_svc);
    cl_buf_free(&g_png);
    cl_buf_free(&g_expected);
    return 0;
}

/* A connection to the pool: our end back. */
static int connect_pool(bool channel)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cl_worker_enqueue(&g_w, sv[1], channel);
    return sv[0];
}

/* Seals plain as the hospital would (under provider `name`) into a request frame's payload. */
static void sealed_request(const char *name, const uint8_t *plain, size_t n, uint8_t id[CL_FRAME_REQUEST_ID_LEN],
                           cl_buf *sealed, cl_buf *payload)
{
    cl_key_provider *kp = NULL;
    assert_ok(provider_named(name, &kp));
    cl_buf_init(sealed, CL_WORKER_SEALED_MAX);
    cl_buf_init(payload, CL_WORKER_REQUEST_MAX);
    assert_ok(cl_envelope_seal_mem(kp, NULL, plain, n, sealed));
    cl_key_provider_destroy(kp);
    assert_ok(cl_random(id, CL_FRAME_REQUEST_ID_LEN));
    assert_ok(cl_frame_request_encode(id, sealed->data, sealed->len, payload));
}

/* One envelope exchange: the answer's type (0: none) and payload; then the worker closes the
 * connection (one answer per connection). No assertion: client threads call it too. */
static uint8_t exchange_raw(uint8_t type, const cl_buf *payload, cl_buf *answer, bool *closed)
{
    int fd = connect_pool(false);
    uint8_t got = 0, t2 = 0;
    cl_buf_init(answer, CL_WORKER_REQUEST_MAX);
    cl_buf more;
    cl_buf_init(&more, 64);
    if (cl_frame_write(fd, type, payload->data, payload->len) != CL_OK ||
        cl_frame_read(fd, CL_WORKER_REQUEST_MAX, &got, answer) != CL_OK)
        got = 0;
    *closed = cl_frame_read(fd, 64, &t2, &more) == CL_ERR_NOT_FOUND;
    cl_buf_free(&more);
    (void)close(fd);
    return got;
}

static uint8_t exchange(uint8_t type, const cl_buf *payload, cl_buf *answer)
{
    bool closed = false;
    uint8_t got = exchange_raw(type, payload, answer, &closed);
    assert_true(closed);
    return got;
}

/* Whether the result opens with the binding the client checks (request id and input digest),
 * holds what the model says of the input, and does not open under another request id. */
static bool result_ok(const uint8_t id[CL_FRAME_REQUEST_ID_LEN], const cl_buf *sealed, const cl_buf *answer)
{
    cl_kvlist want, wrong;
    cl_kvlist_init(&want);
    cl_kvlist_init(&wrong);
    cl_key_provider *kp = NULL;
    cl_buf result;
    cl_buf_init(&result, CL_WORKER_RESULT_MAX);
    uint8_t other[CL_FRAME_REQUEST_ID_LEN];
    memcpy(other, id, sizeof(other));
    other[0] ^= 1;
    bool ok = cl_infer_binding_make(id, sealed->data, sealed->len, &want) == CL_OK &&
              cl_infer_binding_make(other, sealed->data, sealed->len, &wrong) == CL_OK &&
              provider_named("kms", &kp) == CL_OK &&
              cl_envelope_unseal_mem(kp, &want, answer->data, answer->len, &result) == CL_OK &&
              result.len == g_expected.len && memcmp(result.data, g_expected.data, result.len) == 0;
    cl_buf_reset(&result);
    ok = ok && cl_envelope_unseal_mem(kp, &wrong, answer->data, answer->len, &result) == CL_ERR_AUTH &&
         strstr(cl_error_message(), "wrong encryption context") != NULL;
    cl_kvlist_free(&want);
    cl_kvlist_free(&wrong);
    cl_key_provider_destroy(kp);
    cl_buf_free(&result);
    return ok;
}

static void check_result(const uint8_t id[CL_FRAME_REQUEST_ID_LEN], const cl_buf *sealed, const cl_buf *answer)
{
    if (!result_ok(id, sealed, answer))
        fail_msg("the result is not the model's, bound to the request: %s", cl_error_message());
}

static void expect_error(uint8_t type, const cl_buf *answer, const char *needle)
{
    assert_int_equal(type, CL_FRAME_ERROR);
    if (strstr(cl_buf_cstr(answer), needle) == NULL)
        fail_msg("error frame '%s' lacks '%s'", cl_buf_cstr(answer), needle);
    for (size_t i = 0; i < answer->len; i++) assert_true(answer->data[i] >= 0x20); /* one line */
}

static void test_envelope_served_then_replay_refused(void **state)
{
    (void)state;
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    cl_buf sealed, payload, answer;
    sealed_request("kms", g_png.data, g_png.len, id, &sealed, &payload);
    assert_int_equal(exchange(CL_FRAME_REQUEST, &payload, &answer), CL_FRAME_RESULT);
    check_result(id, &sealed, &answer);
    cl_buf_free(&answer);
    /* The same sealed input again, even under a new request id. */
    cl_buf_reset(&payload);
    id[0] ^= 0xff;
    assert_ok(cl_frame_request_encode(id, sealed.data, sealed.len, &payload));
    expect_error(exchange(CL_FRAME_REQUEST, &payload, &answer), &answer, CL_INFER_REPLAY_MESSAGE);
    cl_buf_free(&answer);
    cl_buf_free(&sealed);
    cl_buf_free(&payload);
}

static void test_envelope_refusals(void **state)
{
    (void)state;
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    cl_buf sealed, payload, answer;
    sealed_request("kms", g_png.data, g_png.len, id, &sealed, &payload);
    /* Not a request frame. */
    expect_error(exchange(CL_FRAME_RESULT, &payload, &answer), &answer,
                 "expected a request frame (type 1), not type 2");
    cl_buf_free(&answer);
    /* A request shorter than its id. */
    cl_buf small;
    cl_buf_init(&small, 16);
    assert_ok(cl_buf_append(&small, "short", 5));
    expect_error(exchange(CL_FRAME_REQUEST, &small, &answer), &answer, "a request of 5 bytes is too short");
    cl_buf_free(&answer);
    /* Not an envelope after the id. */
    cl_buf junk;
    cl_buf_init(&junk, 1024);
    assert_ok(cl_frame_request_encode(id, (const uint8_t *)"plain text, not sealed", 22, &junk));
    expect_error(exchange(CL_FRAME_REQUEST, &junk, &answer), &answer, "the request is not a sealed envelope");
    cl_buf_free(&answer);
    /* Sealed, but not under a KMS key. */
    cl_buf sealed2, payload2;
    sealed_request("local", g_png.data, g_png.len, id, &sealed2, &payload2);
    expect_error(exchange(CL_FRAME_REQUEST, &payload2, &answer), &answer, "the request must be sealed with a KMS key");
    cl_buf_free(&answer);
    cl_buf_free(&sealed2);
    cl_buf_free(&payload2);
    /* The KMS refuses the key: its message, and the request may come again later. */
    atomic_store(&g_deny, true);
    expect_error(exchange(CL_FRAME_REQUEST, &payload, &answer), &answer, "AccessDeniedException");
    cl_buf_free(&answer);
    atomic_store(&g_deny, false);
    assert_int_equal(exchange(CL_FRAME_REQUEST, &payload, &answer), CL_FRAME_RESULT);
    cl_buf_free(&answer);
    /* Decrypted, but not an image: the step is named, the input is not quoted. */
    static const char record[] = "{\"secret-diagnosis\": 1}";
    sealed_request("kms", (const uint8_t *)record, sizeof(record) - 1, id, &sealed2, &payload2);
    expect_error(exchange(CL_FRAME_REQUEST, &payload2, &answer), &answer,
                 "the decrypted request is not an image this model reads");
    assert_null(strstr(cl_buf_cstr(&answer), "secret-diagnosis"));
    cl_buf_free(&answer);
    cl_buf_free(&sealed2);
    cl_buf_free(&payload2);
    /* A client that sends nothing and leaves: no answer, and the pool goes on. */
    int fd = connect_pool(false);
    assert_int_equal(close(fd), 0);
    sealed_request("kms", g_png.data, g_png.len, id, &sealed2, &payload2);
    assert_int_equal(exchange(CL_FRAME_REQUEST, &payload2, &answer), CL_FRAME_RESULT);
    check_result(id, &sealed2, &answer);
    cl_buf_free(&answer);
    cl_buf_free(&sealed2);
    cl_buf_free(&payload2);
    cl_buf_free(&small);
    cl_buf_free(&junk);
    cl_buf_free(&sealed);
    cl_buf_free(&payload);
}

static void test_channel_frames(void **state)
{
    (void)state;
    int fd = connect_pool(true);
    cl_buf out;
    cl_buf_init(&out, CL_WORKER_RESULT_MAX);
    uint8_t type = 0;
    for (int i = 0; i < 3; i++) { /* as many requests as the client sends */
        assert_ok(cl_frame_write(fd, CL_FRAME_REQUEST, g_png.data, g_png.len));
        cl_buf_reset(&out);
        assert_ok(cl_frame_read(fd, CL_WORKER_RESULT_MAX, &type, &out));
        assert_int_equal(type, CL_FRAME_RESULT);
        assert_int_equal(out.len, g_expected.len);
        assert_memory_equal(out.data, g_expected.data, out.len);
    }
    /* A bad frame or input is answered and the connection goes on. */
    assert_ok(cl_frame_write(fd, CL_FRAME_STOP, NULL, 0));
    cl_buf_reset(&out);
    assert_ok(cl_frame_read(fd, CL_WORKER_RESULT_MAX, &type, &out));
    expect_error(type, &out, "expected a request frame (type 1), not type 4");
    assert_ok(cl_frame_write(fd, CL_FRAME_REQUEST, (const uint8_t *)"GIF89a", 6));
    cl_buf_reset(&out);
    assert_ok(cl_frame_read(fd, CL_WORKER_RESULT_MAX, &type, &out));
    expect_error(type, &out, "not an image this model reads");
    assert_false(cl_worker_stopping(&g_w)); /* a stop frame counts on the envelope port only */
    assert_ok(cl_frame_write(fd, CL_FRAME_REQUEST, g_png.data, g_png.len));
    cl_buf_reset(&out);
    assert_ok(cl_frame_read(fd, CL_WORKER_RESULT_MAX, &type, &out));
    assert_int_equal(type, CL_FRAME_RESULT);
    assert_int_equal(close(fd), 0);
    /* A failed handshake: the connection is closed without a frame. */
    atomic_store(&g_no_channel, true);
    fd = connect_pool(true);
    cl_buf_reset(&out);
    assert_fails(cl_frame_read(fd, CL_WORKER_RESULT_MAX, &type, &out), CL_ERR_NOT_FOUND, "no frame");
    assert_int_equal(close(fd), 0);
    atomic_store(&g_no_channel, false);
    cl_buf_free(&out);
}

/* Many clients at once, more than the pool has threads: every one gets its own result. */
typedef struct t_client {
    pthread_t tid;
    bool ok;
} t_client;

static void *client_main(void *arg)
{
    t_client *c = arg;
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    cl_buf sealed, payload, answer;
    bool closed = false;
    cl_buf_init(&sealed, CL_WORKER_SEALED_MAX);
    cl_buf_init(&payload, CL_WORKER_REQUEST_MAX);
    cl_key_provider *kp = NULL;
    c->ok = provider_named("kms", &kp) == CL_OK &&
            cl_envelope_seal_mem(kp, NULL, g_png.data, g_png.len, &sealed) == CL_OK &&
            cl_random(id, sizeof(id)) == CL_OK &&
            cl_frame_request_encode(id, sealed.data, sealed.len, &payload) == CL_OK;
    cl_key_provider_destroy(kp);
    c->ok = c->ok && exchange_raw(CL_FRAME_REQUEST, &payload, &answer, &closed) == CL_FRAME_RESULT && closed &&
            result_ok(id, &sealed, &answer);
    cl_buf_free(&answer);
    cl_buf_free(&sealed);
    cl_buf_free(&payload);
    return NULL;
}

static void test_concurrent_clients(void **state)
{
    (void)state;
    long before = cl_worker_served(&g_w);
    t_client c[16];
    for (size_t i = 0; i < 16; i++) assert_int_equal(pthread_create(&c[i].tid, NULL, client_main, &c[i]), 0);
    for (size_t i = 0; i < 16; i++) {
        assert_int_equal(pthread_join(c[i].tid, NULL), 0);
        assert_true(c[i].ok);
    }
    assert_int_equal(cl_worker_served(&g_w) - before, 16);
}

/* Last: a stop frame marks the worker stopping and wakes whoever polls the wake descriptor. */
static void test_stop_frame(void **state)
{
    (void)state;
    struct pollfd p = {.fd = cl_worker_wake_fd(&g_w), .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
    cl_buf none, answer;
    cl_buf_init(&none, 16);
    int fd = connect_pool(false);
    assert_ok(cl_frame_write(fd, CL_FRAME_STOP, NULL, 0));
    uint8_t type = 0;
    cl_buf_init(&answer, 64);
    assert_fails(cl_frame_read(fd, 64, &type, &answer), CL_ERR_NOT_FOUND, "no frame"); /* closed once handled */
    assert_true(cl_worker_stopping(&g_w));
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_int_equal(close(fd), 0);
    cl_buf_free(&none);
    cl_buf_free(&answer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_served_then_replay_refused),
        cmocka_unit_test(test_envelope_refusals),
        cmocka_unit_test(test_channel_frames),
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_stop_frame),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
