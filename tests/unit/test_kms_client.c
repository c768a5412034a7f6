/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The KMS client's retry policy and error mapping, against a scripted HTTP
 * server (libevent evhttp on 127.0.0.1, a port the kernel picks). Interop
 * with real servers is tested by tests/integration/kms_cli.py (cloister-kms
 * and moto_server).
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/kms_client.h"

#include "test_util.h"

typedef struct fake {
    struct event_base *base;
    struct evhttp *http;
    int port;
    pthread_t thread;
    int calls;
    int fail_first; /* answer this many requests with fail_status/fail_type */
    int fail_status;
    const char *fail_type;
    char last_target[128];
    int saw_authorization;
    struct evhttp_connection *conns[8]; /* the distinct connections requests came on */
    int n_conns;
} fake;

static void fake_cb(struct evhttp_request *req, void *arg)
{
    fake *f = arg;
    f->calls++;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    bool seen = false;
    for (int i = 0; i < f->n_conns; i++) seen = seen || f->conns[i] == conn;
    if (!seen && f->n_conns < 8) f->conns[f->n_conns++] = conn;
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *t = evhttp_find_header(in, "X-Amz-Target");
    (void)snprintf(f->last_target, sizeof(f->last_target), "%s", t ? t : "");
    const char *a = evhttp_find_header(in, "Authorization");
    f->saw_authorization = a != NULL && strncmp(a, "AWS4-HMAC-SHA256 Credential=AKID/", 33) == 0;
    struct evbuffer *b = evbuffer_new();
    if (f->calls <= f->fail_first) {
        evbuffer_add_printf(b, "{\"__type\":\"%s\",\"message\":\"scripted failure\"}", f->fail_type);
        evhttp_send_reply(req, f->fail_status, "Error", b);
    } else {
        evbuffer_add_printf(b, "{\"Plaintext\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\","
                               "\"CiphertextBlob\":\"AQID\",\"KeyId\":\"arn:aws:kms:us-east-1:1:key/x\"}");
        evhttp_send_reply(req, 200, "OK", b);
    }
    evbuffer_free(b);
}

static void *fake_main(void *arg)
{
    fake *f = arg;
    event_base_dispatch(f->base);
    return NULL;
}

static void fake_start(fake *f)
{
    assert_int_equal(evthread_use_pthreads(), 0);
    f->base = event_base_new();
    f->http = evhttp_new(f->base);
    evhttp_set_gencb(f->http, fake_cb, f);
    struct evhttp_bound_socket *h = evhttp_bind_socket_with_handle(f->http, "127.0.0.1", 0);
    assert_non_null(h);
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(h), (struct sockaddr *)&ss, &len), 0);
    f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static void fake_stop(fake *f)
{
    event_base_loopexit(f->base, NULL); /* also stops a loop not yet dispatching */
    pthread_join(f->thread, NULL);
    evhttp_free(f->http);
    event_base_free(f->base);
}

static cl_kms_client *client_for(const fake *f, int attempts)
{
    char url[64];
    (void)snprintf(url, sizeof(url), "http://127.0.0.1:%d", f->port);
    cl_kms_client_config cfg = {.endpoint = url,
                                .region = "us-east-1",
                                .access_key_id = "AKID",
                                .secret_access_key = "SECRET",
                                .max_attempts = attempts,
                                .timeout_ms = 5000};
    cl_kms_client *c = NULL;
    assert_ok(cl_kms_client_new(&cfg, &c));
    return c;
}

static void test_retries_throttling_then_succeeds(void **state)
{
    (void)state;
    fake f = {.fail_first = 2, .fail_status = 400, .fail_type = "ThrottlingException"};
    fake_start(&f);
    cl_kms_client *c = client_for(&f, 3);
    cl_buf dk, blob, arn;
    cl_buf_init_secret(&dk, 32);
    cl_buf_init(&blob, 4096);
    cl_buf_init(&arn, 4096);
    assert_ok(cl_kms_generate_data_key(c, "alias/x", NULL, &dk, &blob, &arn));
    assert_int_equal(f.calls, 3);
    assert_int_equal(dk.len, 32);
    assert_int_equal(dk.data[31], 31);
    assert_int_equal(blob.len, 3);
    assert_string_equal(cl_buf_cstr(&arn), "arn:aws:kms:us-east-1:1:key/x");
    assert_string_equal(f.last_target, "TrentService.GenerateDataKey");
    assert_true(f.saw_authorization);
    cl_buf_free(&dk);
    cl_buf_free(&blob);
    cl_buf_free(&arn);
    cl_kms_client_free(c);
    fake_stop(&f);
}

static void test_gives_up_after_max_attempts(void **state)
{
    (void)state;
    fake f = {.fail_first = 100, .fail_status = 503, .fail_type = "KMSInternalException"};
    fake_start(&f);
    cl_kms_client *c = client_for(&f, 3);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    assert_fails(cl_kms_call(c, "ListKeys", "{}", &resp), CL_ERR_REMOTE, "KMSInternalException");
    assert_int_equal(f.calls, 3);
    assert_int_equal(resp.len, 0);
    cl_buf_free(&resp);
    cl_kms_client_free(c);
    fake_stop(&f);
}

static void test_no_retry_on_client_errors(void **state)
{
    (void)state;
    static const struct {
        const char *type;
        cl_status code;
    } cases[] = {{"AccessDeniedException", CL_ERR_DENIED},
                 {"NotFoundException", CL_ERR_NOT_FOUND},
                 {"DisabledException", CL_ERR_STATE},
                 {"InvalidCiphertextException", CL_ERR_AUTH},
                 {"com.amazonaws.kms#ValidationException", CL_ERR_REMOTE}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake f = {.fail_first = 100, .fail_status = 400, .fail_type = cases[i].type};
        fake_start(&f);
        cl_kms_client *c = client_for(&f, 3);
        cl_buf pt;
        cl_buf_init_secret(&pt, 4096);
        const uint8_t blob[3] = {1, 2, 3};
        cl_status rc = cl_kms_decrypt(c, NULL, blob, sizeof(blob), NULL, &pt);
        if (rc != cases[i].code) fail_msg("%s: got %s", cases[i].type, cl_status_name(rc));
        assert_int_equal(f.calls, 1);
        assert_int_equal(pt.len, 0);
        cl_buf_free(&pt);
        cl_kms_client_free(c);
        fake_stop(&f);
    }
}

static void test_connection_refused_is_retried_then_reported(void **state)
{
    (void)state;
    fake f = {0};
    fake_start(&f);
    int port = f.port;
    fake_stop(&f); /* nothing listens there now */
    f.port = port;
    cl_kms_client *c = client_for(&f, 2);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    /* The message names the operation, the endpoint and what failed. */
    char needle[128];
    (void)snprintf(needle, sizeof(needle), "KMS request ListKeys to http://127.0.0.1:%d failed: cannot connect", port);
    assert_fails(cl_kms_call(c, "ListKeys", "{}", &resp), CL_ERR_IO, needle);
    cl_buf_free(&resp);
    cl_kms_client_free(c);
}

/* The client keeps its connection between calls (as its libcurl handle did), also
 * across error answers and retries. */
static void test_calls_share_one_connection(void **state)
{
    (void)state;
    fake f = {.fail_first = 1, .fail_status = 400, .fail_type = "ThrottlingException"};
    fake_start(&f);
    cl_kms_client *c = client_for(&f, 3);
    cl_buf resp;
    cl_buf_init(&resp, 4096);
    for (int i = 0; i < 3; i++) {
        cl_buf_reset(&resp);
        assert_ok(cl_kms_call(c, "ListKeys", "{}", &resp));
    }
    cl_kms_client_free(c);
    fake_stop(&f);
    assert_int_equal(f.calls, 4);
    assert_int_equal(f.n_conns, 1);
    cl_buf_free(&resp);
}

static void test_config_errors(void **state)
{
    (void)state;
    cl_kms_client *c = NULL;
    cl_kms_client_config cfg = {.region = "us-east-1", .access_key_id = "a"};
    assert_fails(cl_kms_client_new(&cfg, &c), CL_ERR_USAGE, "AWS_SECRET_ACCESS_KEY");
    cfg.secret_access_key = "s";
    cfg.region = NULL;
    assert_fails(cl_kms_client_new(&cfg, &c), CL_ERR_USAGE, "AWS_REGION");
    cfg.region = "us-east-1";
    cfg.endpoint = "ftp://x";
    assert_fails(cl_kms_client_new(&cfg, &c), CL_ERR_USAGE, "http");
    cfg.endpoint = "::not a url";
    assert_fails(cl_kms_client_new(&cfg, &c), CL_ERR_USAGE, "not a URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retries_throttling_then_succeeds),
        cmocka_unit_test(test_gives_up_after_max_attempts),
        cmocka_unit_test(test_no_retry_on_client_errors),
        cmocka_unit_test(test_connection_refused_is_retried_then_reported),
        cmocka_unit_test(test_calls_share_one_connection),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
