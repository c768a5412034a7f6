/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-api's library (src/guest/api, cloister/api.h) without an enclave, under the sanitizers:
 * the HTTP reader's bounds, the form and multipart parsers, records (validation, JSON, sealing),
 * the routes with their authentication over an in-memory store, and the SQLite store.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/api.h"
#include "cloister/crypto.h"

#include "test_util.h"

/* --- HTTP ------------------------------------------------------------------------------------------- */

static void parse(const char *text, cl_api_request *req, bool *got)
{
    cl_api_request_init(req);
    assert_ok(cl_api_parse_request_bytes((const uint8_t *)text, strlen(text), req, got));
}

static void test_http_request(void **state)
{
    (void)state;
    cl_api_request req;
    bool got;
    parse("POST /patient/a?x=1 HTTP/1.1\r\nHost: api\r\nauthorization: Bearer t\r\nContent-Type: application/json\r\n"
          "Content-Length: 2\r\n\r\n{}",
          &req, &got);
    assert_true(got);
    assert_int_equal(req.method, CL_API_POST);
    assert_int_equal(req.refuse_status, 0);
    assert_string_equal(cl_buf_cstr(&req.url), "/patient/a?x=1");
    assert_string_equal(cl_buf_cstr(&req.authorization), "Bearer t");
    assert_string_equal(cl_buf_cstr(&req.body), "{}");
    assert_true(req.keep_alive);
    cl_api_request_free(&req);

    parse("GET / HTTP/1.0\r\n\r\n", &req, &got);
    assert_true(got && !req.keep_alive); /* HTTP/1.0 without keep-alive */
    cl_api_request_free(&req);
}

static void test_http_refusals(void **state)
{
    (void)state;
    cl_api_request req;
    bool got;
    char big[20000];
    parse("POST /patient/a HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", &req, &got);
    assert_int_equal(req.refuse_status, 413);
    assert_non_null(strstr(req.refuse_reason, "at most 65536"));
    cl_api_request_free(&req);
    /* /delineate takes 4 MiB and its framing. */
    parse("POST /delineate HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", &req, &got);
    assert_int_equal(req.refuse_status, 0);
    cl_api_request_free(&req);
    (void)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n", 17000, 0);
    parse(big, &req, &got);
    assert_int_equal(req.refuse_status, 431);
    cl_api_request_free(&req);
    parse("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n", &req, &got);
    assert_int_equal(req.refuse_status, 400);
    assert_non_null(strstr(req.refuse_reason, "given twice"));
    cl_api_request_free(&req);
    parse("GET / HTTP/9.9\r\n\r\n", &req, &got);
    assert_int_equal(req.refuse_status, 505);
    assert_string_equal(req.refuse_reason, "only HTTP/1.0 and HTTP/1.1 are served");
    cl_api_request_free(&req);
    parse("NOT HTTP AT ALL\r\n\r\n", &req, &got);
    assert_int_equal(req.refuse_status, 400);
    assert_non_null(strstr(req.refuse_reason, "not valid HTTP/1.1"));
    cl_api_request_free(&req);
    /* A chunked body past the bound, as it arrives. */
    char chunked[80000];
    int n = snprintf(chunked, sizeof(chunked), "POST /patient/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n",
                     66000);
    memset(chunked + n, 'a', 66000);
    chunked[n + 66000] = '\0';
    parse(chunked, &req, &got);
    assert_int_equal(req.refuse_status, 413);
    cl_api_request_free(&req);
}

/* --- forms ------------------------------------------------------------------------------------------ */

static void test_form_urlencoded(void **state)
{
    (void)state;
    cl_api_form f;
    cl_api_form_init(&f);
    const char *body = "a=1+2&b=%27x%27&&c=d=e&address='123 Main Street'&empty=";
    assert_ok(cl_api_form_parse_urlencoded((const uint8_t *)body, strlen(body), &f));
    assert_int_equal(f.n, 5);
    assert_memory_equal(f.pairs[0].value, "1 2", 3);
    assert_memory_equal(f.pairs[1].value, "'x'", 3);
    assert_int_equal(f.pairs[2].value_len, 3); /* "d=e": only the first '=' splits */
    assert_memory_equal(f.pairs[2].value, "d=e", 3);
    assert_memory_equal(f.pairs[3].value, "'123 Main Street'", 17);
    assert_int_equal(f.pairs[4].value_len, 0);
    cl_api_form_free(&f);
    cl_api_form_init(&f);
    assert_fails(cl_api_form_parse_urlencoded((const uint8_t *)"a=%4", 4, &f), CL_ERR_FORMAT,
                 "not followed by two hex digits");
    cl_api_form_free(&f);
}

static void test_form_multipart(void **state)
{
    (void)state;
    char boundary[80];
    const char *ct = "multipart/form-data; boundary=\"----x y\"";
    assert_ok(cl_api_multipart_boundary(ct, strlen(ct), boundary, sizeof(boundary)));
    assert_string_equal(boundary, "----x y");
    assert_fails(cl_api_multipart_boundary("text/plain", 10, boundary, sizeof(boundary)), CL_ERR_FORMAT,
                 "not multipart/form-data");
    assert_fails(cl_api_multipart_boundary("multipart/form-data", 19, boundary, sizeof(boundary)), CL_ERR_FORMAT,
                 "no boundary");
    const char *body = "preamble\r\n--B\r\nContent-Disposition: form-data; name=\"img\"; filename=\"a.png\"\r\n"
                       "Content-Type: image/png\r\n\r\nPNG\r\n--B\r\n\r\nbytes\r\n--B--\r\nepilogue";
    cl_api_form f;
    cl_api_form_init(&f);
    /* The second part has no Content-Disposition. */
    assert_fails(cl_api_form_parse_multipart((const uint8_t *)body, strlen(body), "B", &f), CL_ERR_FORMAT,
                 "no Content-Disposition");
    cl_api_form_free(&f);
    body = "--B\r\nContent-Disposition: form-data; name=\"img\"\r\n\r\nP\r\nNG\r\n--B\r\n"
           "Content-Disposition: form-data; name=x\r\n\r\n\r\n--B--";
    cl_api_form_init(&f);
    assert_ok(cl_api_form_parse_multipart((const uint8_t *)body, strlen(body), "B", &f));
    assert_int_equal(f.n, 2);
    assert_int_equal(f.pairs[0].name_len, 3);
    assert_int_equal(f.pairs[0].value_len, 5);
    assert_memory_equal(f.pairs[0].value, "P\r\nNG", 5);
    assert_int_equal(f.pairs[1].value_len, 0);
    assert_non_null(f.pairs[1].value); /* "" not NULL: the fuzzer's finding */
    cl_api_form_free(&f);
    body = "--B\r\nContent-Disposition: form-data; name=\"\"\r\n\r\n\r\n--B--";
    cl_api_form_init(&f);
    assert_ok(cl_api_form_parse_multipart((const uint8_t *)body, strlen(body), "B", &f));
    assert_int_equal(f.n, 1);
    assert_int_equal(f.pairs[0].name_len, 0);
    assert_non_null(f.pairs[0].name);
    assert_non_null(f.pairs[0].value);
    cl_api_form_free(&f);
    cl_api_form_init(&f);
    body = "--B\r\nContent-Disposition: form-data; name=\"img\"\r\n\r\nunterminated";
    assert_fails(cl_api_form_parse_multipart((const uint8_t *)body, strlen(body), "B", &f), CL_ERR_FORMAT,
                 "without its closing delimiter");
    cl_api_form_free(&f);
}

/* --- records ------------------------------------------------------------------------------------------ */

static const uint8_t test_key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                     17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void test_record_fields(void **state)
{
    (void)state;
    cl_api_record r;
    cl_api_record_init(&r);
    assert_true(cl_api_id_valid("patient_3", 9));
    assert_false(cl_api_id_valid("a/b", 3));
    assert_false(cl_api_id_valid("", 0));
    const char *ct = "application/x-www-form-urlencoded";
    const char *body = "fname=Jane&address='1 Main St'";
    assert_ok(cl_api_record_from_body(&r, ct, strlen(ct), (const uint8_t *)body, strlen(body)));
    cl_buf json;
    cl_buf_init(&json, CL_API_RECORD_MAX);
    assert_ok(cl_api_record_json(&r, "p", false, 0, &json));
    assert_string_equal(cl_buf_cstr(&json),
                        "{\"address\":\"'1 Main St'\",\"fname\":\"Jane\",\"id\":\"p\",\"score\":null}");
    cl_buf_truncate(&json, 0);
    assert_ok(cl_api_record_json(&r, "p", true, 0.2781606437899131, &json));
    assert_non_null(strstr(cl_buf_cstr(&json), "\"score\":0.2781606437899131"));
    cl_buf_free(&json);
    cl_api_record_free(&r);
    cl_api_record_init(&r);
    assert_fails(cl_api_record_set(&r, "mean_radius", 11, (const uint8_t *)"1e999", 5), CL_ERR_FORMAT,
                 "decimal number");
    assert_fails(cl_api_record_set(&r, "mean_radius", 11, (const uint8_t *)"0x10", 4), CL_ERR_FORMAT, "decimal number");
    assert_fails(cl_api_record_set(&r, "fname", 5, (const uint8_t *)"\xff", 1), CL_ERR_FORMAT, "not UTF-8");
    assert_fails(cl_api_record_set(&r, "nope", 4, (const uint8_t *)"x", 1), CL_ERR_FORMAT, "unknown field \"nope\"");
    body = "{\"fname\": [1]}";
    ct = "application/json";
    assert_fails(cl_api_record_from_body(&r, ct, strlen(ct), (const uint8_t *)body, strlen(body)), CL_ERR_FORMAT,
                 "must be a string");
    cl_api_record_free(&r);
    char num[40];
    cl_api_format_double(17.99, num, sizeof(num));
    assert_string_equal(num, "17.99");
    cl_api_format_double(0.1 + 0.2, num, sizeof(num));
    assert_string_equal(num, "0.30000000000000004");
}

static void test_record_seal(void **state)
{
    (void)state;
    const char *json = "{\"fname\":\"Jane\",\"id\":\"p1\",\"score\":null}";
    uint64_t present = 1ULL << (unsigned)cl_api_field_find("fname", 5);
    cl_buf blob, out;
    cl_buf_init(&blob, 4096);
    cl_buf_init_secret(&out, 4096);
    assert_ok(cl_api_record_seal(test_key, "p1", present, (const uint8_t *)json, strlen(json), &blob));
    assert_null(memmem(blob.data, blob.len, "Jane", 4));
    assert_ok(cl_api_record_open(test_key, "p1", blob.data, blob.len, &out));
    assert_string_equal(cl_buf_cstr(&out), json);
    cl_buf_truncate(&out, 0);
    /* Another id, another key, a changed field set, a flipped byte: none opens. */
    assert_fails(cl_api_record_open(test_key, "p2", blob.data, blob.len, &out), CL_ERR_AUTH, "does not open");
    uint8_t other[32];
    memcpy(other, test_key, 32);
    other[0] ^= 1;
    assert_fails(cl_api_record_open(other, "p1", blob.data, blob.len, &out), CL_ERR_AUTH, "does not open");
    cl_buf copy;
    cl_buf_init(&copy, 4096);
    assert_ok(cl_buf_append(&copy, blob.data, blob.len));
    uint8_t *p = copy.data;
    p[12] ^= 1; /* the bitmap's last byte */
    assert_fails(cl_api_record_open(test_key, "p1", copy.data, copy.len, &out), CL_ERR_AUTH, "does not open");
    p[12] ^= 1;
    p[copy.len - 1] ^= 1;
    assert_fails(cl_api_record_open(test_key, "p1", copy.data, copy.len, &out), CL_ERR_AUTH, "does not open");
    p[4] = 2;
    assert_fails(cl_api_record_open(test_key, "p1", copy.data, copy.len, &out), CL_ERR_UNSUPPORTED, "version 2");
    assert_fails(cl_api_record_open(test_key, "p1", copy.data, 10, &out), CL_ERR_UNSUPPORTED, "version 2");
    assert_int_equal(out.len, 0);
    cl_buf_free(&copy);
    cl_buf_free(&blob);
    cl_buf_free(&out);
}

/* --- the routes over an in-memory store --------------------------------------------------------------- */

#define MEM_MAX 64
typedef struct mem_store {
    cl_api_store base;
    pthread_mutex_t mu;
    char ids[MEM_MAX][CL_API_ID_MAX + 1];
    cl_buf blobs[MEM_MAX];
    size_t n;
} mem_store;

static int mem_find(mem_store *m, const char *id)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->ids[i], id) == 0) return (int)i;
    return -1;
}

static CL_MUST_USE cl_status mem_get(cl_api_store *s, const char *id, cl_buf *out)
{
    mem_store *m = (mem_store *)s;
    (void)pthread_mutex_lock(&m->mu);
    int i = mem_find(m, id);
    cl_status rc = i >= 0 ? cl_buf_append(out, m->blobs[i].data, m->blobs[i].len)
                          : CL_RAISE(CL_ERR_NOT_FOUND, "%s is not in the store", id);
    (void)pthread_mutex_unlock(&m->mu);
    return rc;
}

static CL_MUST_USE cl_status mem_put(cl_api_store *s, const char *id, const uint8_t *blob, size_t n, bool *existed)
{
    mem_store *m = (mem_store *)s;
    cl_status rc = CL_OK;
    (void)pthread_mutex_lock(&m->mu);
    int i = mem_find(m, id);
    *existed = i >= 0;
    if (i < 0 && m->n < MEM_MAX) {
        i = (int)m->n++;
        (void)snprintf(m->ids[i], sizeof(m->ids[i]), "%s", id);
        cl_buf_init(&m->blobs[i], 1 << 20);
    }
    if (i < 0) rc = CL_RAISE(CL_ERR_LIMIT, "full");
    if (rc == CL_OK) {
        cl_buf_truncate(&m->blobs[i], 0);
        rc = cl_buf_append(&m->blobs[i], blob, n);
    }
    (void)pthread_mutex_unlock(&m->mu);
    return rc;
}

static CL_MUST_USE cl_status mem_del(cl_api_store *s, const char *id, bool *existed)
{
    mem_store *m = (mem_store *)s;
    (void)pthread_mutex_lock(&m->mu);
    int i = mem_find(m, id);
    *existed = i >= 0;
    if (i >= 0) m->ids[i][0] = '\0';
    (void)pthread_mutex_unlock(&m->mu);
    return CL_OK;
}

static int mem_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static CL_MUST_USE cl_status mem_list(cl_api_store *s, const char *after, size_t limit, cl_buf *out, size_t *count)
{
    mem_store *m = (mem_store *)s;
    char *sorted[MEM_MAX];
    size_t k = 0;
    cl_status rc = CL_OK;
    (void)pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++)
        if (m->ids[i][0] != '\0' && (after == NULL || strcmp(m->ids[i], after) > 0)) sorted[k++] = m->ids[i];
    qsort(sorted, k, sizeof(sorted[0]), mem_cmp);
    *count = 0;
    for (size_t i = 0; i < k && i <= limit && rc == CL_OK; i++) {
        rc = cl_buf_append(out, sorted[i], strlen(sorted[i]) + 1);
        (*count)++;
    }
    (void)pthread_mutex_unlock(&m->mu);
    return rc;
}

static CL_MUST_USE cl_status mem_meta_get(cl_api_store *s, const char *name, cl_buf *out)
{
    (void)s;
    (void)out;
    CL_FAIL(CL_ERR_NOT_FOUND, "%s", name);
}

static CL_MUST_USE cl_status mem_meta_put(cl_api_store *s, const char *name, const uint8_t *v, size_t n)
{
    (void)s;
    (void)name;
    (void)v;
    (void)n;
    return CL_OK;
}

static void mem_free(cl_api_store *s)
{
    mem_store *m = (mem_store *)s;
    for (size_t i = 0; i < m->n; i++) cl_buf_free(&m->blobs[i]);
}

static const cl_api_store_ops mem_ops = {mem_get, mem_put, mem_del, mem_list, mem_meta_get, mem_meta_put, mem_free};

static CL_MUST_USE cl_status fake_score(cl_api_ctx *ctx, const uint8_t *input, size_t n, double *out)
{
    (void)ctx;
    CL_ENSURE(memmem(input, n, "\"mean_radius\": 17.99", 20) != NULL, CL_ERR_REMOTE, "the classifier got %.*s", (int)n,
              (const char *)input);
    *out = 0.25;
    return CL_OK;
}

static void call(cl_api_ctx *ctx, const char *http, cl_api_response *resp)
{
    cl_api_request req;
    bool got;
    parse(http, &req, &got);
    assert_true(got);
    cl_api_handle(ctx, &req, resp);
    cl_api_request_free(&req);
}

static void token_hash(const char *token, unsigned scopes, cl_api_token *t)
{
    assert_ok(cl_sha256(token, strlen(token), t->sha256));
    t->scopes = scopes;
}

static mem_store m;
static cl_api_ctx ctx;

static void ctx_setup(void)
{
    memset(&m, 0, sizeof(m));
    memset(&ctx, 0, sizeof(ctx));
    (void)pthread_mutex_init(&m.mu, NULL);
    m.base.ops = &mem_ops;
    m.base.kind = "memory";
    ctx.store = &m.base;
    memcpy(ctx.key, test_key, 32);
    token_hash("rw-token", CL_API_SCOPE_READ | CL_API_SCOPE_WRITE, &ctx.tokens[0]);
    token_hash("ro-token", CL_API_SCOPE_READ, &ctx.tokens[1]);
    ctx.n_tokens = 2;
    ctx.hooks.score = fake_score;
}

static void test_routes(void **state)
{
    (void)state;
    ctx_setup();
    cl_api_response resp;
    cl_api_response_init(&resp);

    call(&ctx, "GET /patient/a HTTP/1.1\r\n\r\n", &resp);
    assert_int_equal(resp.status, 401);
    assert_non_null(strstr(cl_buf_cstr(&resp.headers), "WWW-Authenticate: Bearer realm=\"cloister-api\""));
    call(&ctx, "GET /patient/a HTTP/1.1\r\nAuthorization: Bearer rw-tokeX\r\n\r\n", &resp);
    assert_int_equal(resp.status, 401);
    call(&ctx, "POST /patient/a HTTP/1.1\r\nAuthorization: bearer ro-token\r\nContent-Length: 7\r\n\r\nfname=x", &resp);
    assert_int_equal(resp.status, 403);
    assert_string_equal(cl_buf_cstr(&resp.body), "{\"error\":\"Forbidden\",\"reason\":\"this token has scope read; "
                                                 "POST /patient needs write\"}");
    call(&ctx,
         "POST /patient/a HTTP/1.1\r\nAuthorization: Bearer rw-token\r\nContent-Type: application/x-www-form-urlencoded"
         "\r\nContent-Length: 7\r\n\r\nfname=x",
         &resp);
    assert_int_equal(resp.status, 201);
    call(&ctx, "GET /patient/a HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n", &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(cl_buf_cstr(&resp.body), "{\"fname\":\"x\",\"id\":\"a\",\"score\":null}");
    assert_null(memmem(m.blobs[0].data, m.blobs[0].len, "fname\":\"x", 9)); /* sealed in the store */
    call(&ctx, "GET /score/a HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n", &resp);
    assert_int_equal(resp.status, 422);
    /* A JSON record with all 30 measurements: scored through the hook. */
    char body[4096] = "{\"fname\":\"m\"";
    for (size_t i = 0; i < cl_api_field_count(); i++)
        if (cl_api_field(i)->kind == CL_API_FIELD_MEASUREMENT)
            (void)snprintf(body + strlen(body), sizeof(body) - strlen(body), ",\"%s\":%s", cl_api_field(i)->name,
                           strcmp(cl_api_field(i)->name, "mean_radius") == 0 ? "17.99" : "\"1.5\"");
    (void)snprintf(body + strlen(body), sizeof(body) - strlen(body), "}");
    char http[8192];
    (void)snprintf(http, sizeof(http),
                   "POST /patient/b HTTP/1.1\r\nAuthorization: Bearer rw-token\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   strlen(body), body);
    call(&ctx, http, &resp);
    assert_int_equal(resp.status, 201);
    assert_non_null(strstr(cl_buf_cstr(&resp.body), "\"score\":0.25"));
    call(&ctx, "GET /score/b HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n", &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(cl_buf_cstr(&resp.body), "{\"id\":\"b\",\"score\":0.25}");
    call(&ctx, "GET /patients?limit=1 HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n", &resp);
    assert_string_equal(cl_buf_cstr(&resp.body), "{\"ids\":[\"a\"],\"next\":\"a\"}");
    call(&ctx, "GET /patients?limit=1&after=a HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n", &resp);
    assert_string_equal(cl_buf_cstr(&resp.body), "{\"ids\":[\"b\"],\"next\":null}");
    call(&ctx, "GET /patients?sort=desc HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n", &resp);
    assert_int_equal(resp.status, 400);
    call(&ctx, "DELETE /patient/a HTTP/1.1\r\nAuthorization: Bearer rw-token\r\n\r\n", &resp);
    assert_int_equal(resp.status, 200);
    call(&ctx, "GET /patient/a HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n", &resp);
    assert_int_equal(resp.status, 404);
    call(&ctx, "PATCH /patient/a HTTP/1.1\r\nAuthorization: Bearer rw-token\r\n\r\n", &resp);
    assert_int_equal(resp.status, 405);
    call(&ctx, "POST /delineate HTTP/1.1\r\nAuthorization: Bearer ro-token\r\nContent-Type: text/plain\r\n\r\n", &resp);
    assert_int_equal(resp.status, 415);
    /* No static directory: nothing but the routes. */
    call(&ctx, "GET /index.html HTTP/1.1\r\n\r\n", &resp);
    assert_int_equal(resp.status, 404);
    cl_api_response_free(&resp);
    mem_free(&m.base);
}

/* --- the pool over socketpairs: keep-alive, pipelining, several clients at once ----------------------- */

typedef struct client {
    cl_api_server *srv;
    int n;
    bool ok;
    char detail[256];
} client;

static void *client_run(void *arg)
{
    client *c = arg;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || !cl_api_server_enqueue(c->srv, sv[1])) {
        (void)snprintf(c->detail, sizeof(c->detail), "no connection");
        return NULL;
    }
    char req[1024];
    /* Three requests in one write (pipelined), the last one closing. */
    int len = snprintf(req, sizeof(req),
                       "POST /patient/c%d HTTP/1.1\r\nAuthorization: Bearer rw-token\r\nContent-Type: "
                       "application/x-www-form-urlencoded\r\nContent-Length: 8\r\n\r\nfname=c%d"
                       "GET /patient/c%d HTTP/1.1\r\nAuthorization: Bearer ro-token\r\n\r\n"
                       "GET /patient/c%d HTTP/1.1\r\nConnection: close\r\n\r\n",
                       c->n, c->n % 10, c->n, c->n);
    if (write(sv[0], req, (size_t)len) != len) return NULL;
    char got[8192];
    size_t have = 0;
    ssize_t r;
    while (have < sizeof(got) - 1 && (r = read(sv[0], got + have, sizeof(got) - 1 - have)) > 0) have += (size_t)r;
    got[have] = '\0';
    (void)close(sv[0]);
    char want[64];
    (void)snprintf(want, sizeof(want), "\"fname\":\"c%d\",\"id\":\"c%d\"", c->n % 10, c->n);
    const char *first = strstr(got, "HTTP/1.1 201 Created"),
               *second = first ? strstr(first + 1, "HTTP/1.1 200 OK") : NULL,
               *third = second ? strstr(second + 1, "HTTP/1.1 401 Unauthorized") : NULL;
    c->ok = first != NULL && second != NULL && third != NULL && strstr(got, want) != NULL &&
            strstr(third, "Connection: close") != NULL;
    (void)snprintf(c->detail, sizeof(c->detail), "%.200s", got);
    return NULL;
}

/* What cl_api_write_response sends goes into a buffer. */
static CL_MUST_USE cl_status sink_write(void *arg, const uint8_t *p, size_t n) { return cl_buf_append(arg, p, n); }
static CL_MUST_USE cl_status sink_read(void *arg, uint8_t *p, size_t n, size_t *got)
{
    (void)arg;
    (void)p;
    (void)n;
    *got = 0;
    return CL_OK;
}

/* Every body size goes out whole: the page's app.js (9.6 KiB) used to overflow the 8 KiB buffer the
 * headers and a small body share, and the connection was dropped without an answer. */
static void test_write_response_sizes(void **state)
{
    (void)state;
    const size_t sizes[] = {0, 100, 8 << 10, 9620, 32 << 10, (32 << 10) + 1, 200 << 10};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        cl_buf out;
        cl_buf_init(&out, 1 << 20);
        cl_api_conn c;
        assert_ok(cl_api_conn_init(&c, (cl_frame_io){.read = sink_read, .write = sink_write, .arg = &out}));
        cl_api_request req;
        bool got;
        parse("GET /app.js HTTP/1.1\r\nHost: api\r\n\r\n", &req, &got);
        cl_api_response resp;
        cl_api_response_init(&resp);
        resp.status = 200;
        resp.content_type = "text/javascript; charset=utf-8";
        for (size_t k = 0; k < sizes[i]; k++) assert_ok(cl_buf_append_u8(&resp.body, (uint8_t)('a' + k % 26)));
        assert_ok(cl_api_write_response(&c, &req, &resp));
        char want[64];
        (void)snprintf(want, sizeof(want), "Content-Length: %zu\r\n", sizes[i]);
        const char *text = (const char *)out.data;
        const char *end = memmem(out.data, out.len, "\r\n\r\n", 4);
        assert_non_null(end);
        assert_non_null(memmem(out.data, (size_t)(end - text), want, strlen(want)));
        assert_int_equal(out.len - (size_t)(end + 4 - text), sizes[i]);
        assert_memory_equal(end + 4, resp.body.data, sizes[i]);
        cl_api_response_free(&resp);
        cl_api_request_free(&req);
        cl_api_conn_free(&c);
        cl_buf_free(&out);
    }
}

static void test_serve(void **state)
{
    (void)state;
    ctx_setup();
    static cl_api_server srv;
    memset(&srv, 0, sizeof(srv));
    srv.ctx = &ctx;
    srv.read_timeout = 30;
    assert_ok(cl_api_server_start(&srv, 4, 0));
    enum { N = 12 };
    static client clients[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        clients[i] = (client){.srv = &srv, .n = i};
        assert_int_equal(pthread_create(&t[i], NULL, client_run, &clients[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (!clients[i].ok) fail_msg("client %d: %s", i, clients[i].detail);
    }
    cl_api_server_stop(&srv);
    assert_int_equal(atomic_load(&srv.served), N);
    assert_int_equal(m.n, N);
    mem_free(&m.base);
}

/* --- the SQLite store ------------------------------------------------------------------------------------ */

static void test_store_sqlite(void **state)
{
    (void)state;
    cl_api_store *s = NULL;
    bool existed = true;
    cl_buf out;
    cl_buf_init(&out, 4096);
    size_t count = 0;
    assert_ok(cl_api_store_sqlite_open(t_tmpdir(), &s));
    assert_ok(s->ops->put(s, "b", (const uint8_t *)"1", 1, &existed));
    assert_false(existed);
    assert_ok(s->ops->put(s, "b", (const uint8_t *)"22", 2, &existed));
    assert_true(existed);
    assert_ok(s->ops->put(s, "a", (const uint8_t *)"3", 1, &existed));
    assert_false(existed);
    assert_ok(s->ops->get(s, "b", &out));
    assert_string_equal(cl_buf_cstr(&out), "22");
    cl_buf_truncate(&out, 0);
    assert_ok(s->ops->list(s, NULL, 10, &out, &count));
    assert_int_equal(count, 2);
    assert_memory_equal(out.data, "a\0b\0", 4);
    cl_buf_truncate(&out, 0);
    assert_ok(s->ops->del(s, "a", &existed));
    assert_true(existed);
    assert_ok(s->ops->del(s, "a", &existed));
    assert_false(existed);
    assert_fails(s->ops->get(s, "a", &out), CL_ERR_NOT_FOUND, "not in the store");
    assert_ok(s->ops->meta_put_new(s, "data_key", (const uint8_t *)"k", 1));
    assert_fails(s->ops->meta_put_new(s, "data_key", (const uint8_t *)"k2", 2), CL_ERR_EXISTS, "already");
    assert_ok(s->ops->meta_get(s, "data_key", &out));
    assert_string_equal(cl_buf_cstr(&out), "k");
    cl_api_store_free(s);
    assert_fails(cl_api_store_sqlite_open("/nonexistent/dir", &s), CL_ERR_IO, "--data HOSTDIR");
    cl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_request),    cmocka_unit_test(test_http_refusals),
        cmocka_unit_test(test_form_urlencoded), cmocka_unit_test(test_form_multipart),
        cmocka_unit_test(test_record_fields),   cmocka_unit_test(test_record_seal),
        cmocka_unit_test(test_routes),          cmocka_unit_test(test_write_response_sizes),
        cmocka_unit_test(test_serve),           cmocka_unit_test(test_store_sqlite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
