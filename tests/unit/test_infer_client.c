/* SPDX-License-Identifier: Apache-2.0 */
/* The worker clients' request binding (src/core/infer_client.c): the encryption context a
 * result must carry, and the check of a result's context against it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cloister/envelope.h"
#include "cloister/infer_client.h"

#include "test_util.h"

/* SHA-384("abc"), FIPS 180-2 appendix D.1. */
#define ABC_SHA384 \
    "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded163" \
    "1a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"

static void make(cl_kvlist *l, uint8_t first)
{
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    for (size_t i = 0; i < sizeof(id); i++) id[i] = (uint8_t)(first + i);
    cl_kvlist_init(l);
    assert_ok(cl_infer_binding_make(id, (const uint8_t *)"abc", 3, l));
}

static void test_binding_make(void **state)
{
    (void)state;
    cl_kvlist l;
    make(&l, 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(cl_kvlist_get(&l, "cloister:request-id"), "000102030405060708090a0b0c0d0e0f");
    assert_string_equal(cl_kvlist_get(&l, "cloister:input-sha384"), ABC_SHA384);
    assert_ok(cl_infer_binding_check(&l, &l));
    cl_kvlist_free(&l);
}

static void test_binding_check_refuses(void **state)
{
    (void)state;
    cl_kvlist want, other, none, extra, half;
    make(&want, 0);
    make(&other, 1);
    cl_kvlist_init(&none);
    make(&extra, 0);
    assert_ok(cl_kvlist_add(&extra, "purpose", 7, "x", 1));
    cl_kvlist_init(&half);
    assert_ok(cl_kvlist_add(&half, "cloister:request-id", 19, "000102030405060708090a0b0c0d0e0f", 32));
    assert_fails(cl_infer_binding_check(&other, &want), CL_ERR_AUTH,
                 "bound to another request: its cloister:request-id is 0102");
    assert_fails(cl_infer_binding_check(&none, &want), CL_ERR_AUTH,
                 "not bound to a request: its encryption context has no cloister:request-id");
    assert_fails(cl_infer_binding_check(&half, &want), CL_ERR_AUTH, "has no cloister:input-sha384");
    assert_fails(cl_infer_binding_check(&extra, &want), CL_ERR_AUTH, "has 3 entries; the binding has 2");
    assert_fails(cl_infer_binding_check(&want, &none), CL_ERR_USAGE, "the expected binding has no");
    /* Same id, another input. */
    cl_kvlist_free(&other);
    cl_kvlist_init(&other);
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    for (size_t i = 0; i < sizeof(id); i++) id[i] = (uint8_t)i;
    assert_ok(cl_infer_binding_make(id, (const uint8_t *)"abd", 3, &other));
    assert_fails(cl_infer_binding_check(&other, &want), CL_ERR_AUTH, "its cloister:input-sha384 is");
    cl_kvlist_free(&want);
    cl_kvlist_free(&other);
    cl_kvlist_free(&none);
    cl_kvlist_free(&extra);
    cl_kvlist_free(&half);
}

static void test_connect_refuses(void **state)
{
    (void)state;
    int fd = -1;
    assert_fails(cl_infer_connect("/nonexistent/cloister-test.sock", &fd), CL_ERR_IO, "cannot reach the enclave at");
    char long_path[200];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    assert_fails(cl_infer_connect(long_path, &fd), CL_ERR_USAGE, "is too long");
    assert_fails(cl_infer_client_stop("/nonexistent/cloister-test.sock"), CL_ERR_IO, "cannot reach the enclave");
}

/* --- cl_infer_client_envelope against a fake worker ------------------------------------ */

/* A local key dressed as a KMS key: the client only reads the provider's name and key id
 * from headers, and with keep_sealed it never unwraps. */
static cl_key_provider *fake_kms_key(uint8_t fill)
{
    uint8_t key[CL_DATA_KEY_LEN];
    memset(key, fill, sizeof(key));
    cl_key_provider *kp = NULL;
    assert_ok(cl_local_provider_from_key(key, &kp));
    kp->name = "kms";
    return kp;
}

enum fake_mode { FAKE_GOOD, FAKE_ERROR, FAKE_EOF, FAKE_OTHER_ID, FAKE_OTHER_KEY, FAKE_UNBOUND, FAKE_STOP };

typedef struct fake_worker {
    int listener;
    enum fake_mode mode;
    cl_key_provider *kp, *other;
} fake_worker;

static void *fake_worker_main(void *arg)
{
    fake_worker *f = arg;
    int fd = accept(f->listener, NULL, NULL);
    assert_true(fd >= 0);
    cl_buf req, res;
    cl_buf_init(&req, 1 << 20);
    cl_buf_init(&res, 1 << 20);
    uint8_t type = 0;
    assert_ok(cl_frame_read(fd, 1 << 20, &type, &req));
    assert_int_equal(type, CL_FRAME_REQUEST);
    const uint8_t *id = NULL, *sealed = NULL;
    size_t n = 0;
    assert_ok(cl_frame_request_parse(req.data, req.len, &id, &sealed, &n));
    uint8_t other_id[CL_FRAME_REQUEST_ID_LEN];
    memcpy(other_id, id, sizeof(other_id));
    other_id[0] ^= 1;
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_ok(cl_infer_binding_make(f->mode == FAKE_OTHER_ID ? other_id : id, sealed, n, &ctx));
    cl_key_provider *kp = f->mode == FAKE_OTHER_KEY ? f->other : f->kp;
    switch (f->mode) {
    case FAKE_ERROR: assert_ok(cl_frame_write(fd, CL_FRAME_ERROR, (const uint8_t *)"nope\x01", 5)); break;
    case FAKE_EOF: break;
    case FAKE_STOP: assert_ok(cl_frame_write(fd, CL_FRAME_STOP, NULL, 0)); break;
    default:
        assert_ok(cl_envelope_seal_mem(kp, f->mode == FAKE_UNBOUND ? NULL : &ctx, (const uint8_t *)"{}", 2, &res));
        assert_ok(cl_frame_write(fd, CL_FRAME_RESULT, res.data, res.len));
    }
    cl_kvlist_free(&ctx);
    cl_buf_free(&req);
    cl_buf_free(&res);
    close(fd);
    return NULL;
}

/* One request through a fake worker answering as `mode`; returns the client's status. */
static CL_MUST_USE cl_status fake_round(enum fake_mode mode, cl_buf *out)
{
    char dir[] = "/tmp/cloister-infer-client-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[108];
    (void)snprintf(path, sizeof(path), "%s/w.sock", dir);
    fake_worker f = {.mode = mode, .kp = fake_kms_key(1), .other = fake_kms_key(2)};
    f.listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    assert_int_equal(bind(f.listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(f.listener, 1), 0);
    cl_buf input;
    cl_buf_init(&input, 1 << 20);
    assert_ok(cl_envelope_seal_mem(f.kp, NULL, (const uint8_t *)"record", 6, &input));
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fake_worker_main, &f), 0);
    cl_infer_envelope_opts o = {.keep_sealed = true};
    cl_status rc = cl_infer_client_envelope(path, input.data, input.len, &o, out);
    assert_int_equal(pthread_join(t, NULL), 0);
    close(f.listener);
    unlink(path);
    rmdir(dir);
    cl_key_provider_destroy(f.kp);
    cl_key_provider_destroy(f.other);
    cl_buf_free(&input);
    return rc;
}

static void test_envelope_client(void **state)
{
    (void)state;
    cl_buf out;
    cl_buf_init(&out, 1 << 20);
    assert_ok(fake_round(FAKE_GOOD, &out));
    assert_true(out.len > 8 && memcmp(out.data, CL_ENVELOPE_MAGIC, CL_ENVELOPE_MAGIC_LEN) == 0);
    cl_buf_truncate(&out, 0);
    assert_fails(fake_round(FAKE_ERROR, &out), CL_ERR_REMOTE, "the enclave refused the request: nope?");
    assert_fails(fake_round(FAKE_EOF, &out), CL_ERR_IO, "closed the connection without an answer");
    assert_fails(fake_round(FAKE_STOP, &out), CL_ERR_FORMAT, "answered a frame of type 4, not a result");
    assert_fails(fake_round(FAKE_OTHER_ID, &out), CL_ERR_AUTH,
                 "the result is bound to another request: its cloister:request-id is");
    assert_fails(fake_round(FAKE_UNBOUND, &out), CL_ERR_AUTH, "the result is not bound to a request");
    assert_fails(fake_round(FAKE_OTHER_KEY, &out), CL_ERR_AUTH, "not under the input's key");
    assert_int_equal(out.len, 0); /* nothing of a refused answer is handed out */
    cl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binding_make),
        cmocka_unit_test(test_binding_check_refuses),
        cmocka_unit_test(test_connect_refuses),
        cmocka_unit_test(test_envelope_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
