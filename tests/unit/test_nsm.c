/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NSM codec (src/core/nsm.c): byte-exact serde encodings of nsm-api's Request and
 * Response, round trips, the request parser's refusals, the client and the vsock
 * emulation's descriptor passing over socketpairs.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cloister/nsm.h"

#include "test_util.h"

static void encode_req(const cl_nsm_request *req, cl_buf *out)
{
    cl_buf_reset(out);
    assert_ok(cl_nsm_request_encode(req, out));
}

static void test_request_bytes(void **state)
{
    (void)state;
    cl_buf b, want;
    cl_buf_init(&b, 8192);
    cl_buf_init(&want, 8192);
    /* serde_cbor of Request::DescribePCR { index: 0 }: {"DescribePCR": {"index": 0}} */
    cl_nsm_request req = {.op = CL_NSM_OP_DESCRIBE_PCR, .index = 0};
    encode_req(&req, &b);
    t_hex(&want, "a16b4465736372696265504352a165696e64657800");
    assert_int_equal(b.len, want.len);
    assert_memory_equal(b.data, want.data, b.len);
    /* Unit variants are bare strings: "GetRandom" */
    req = (cl_nsm_request){.op = CL_NSM_OP_GET_RANDOM};
    encode_req(&req, &b);
    cl_buf_free(&want); /* t_hex makes a fresh buffer */
    t_hex(&want, "6947657452616e646f6d");
    assert_int_equal(b.len, want.len);
    assert_memory_equal(b.data, want.data, b.len);
    cl_buf_free(&b);
    cl_buf_free(&want);
}

static void test_request_round_trip(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 8192);
    static cl_nsm_request req, got;
    const cl_nsm_op ops[] = {CL_NSM_OP_DESCRIBE_PCR, CL_NSM_OP_EXTEND_PCR,  CL_NSM_OP_LOCK_PCR,  CL_NSM_OP_LOCK_PCRS,
                             CL_NSM_OP_DESCRIBE_NSM, CL_NSM_OP_ATTESTATION, CL_NSM_OP_GET_RANDOM};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        memset(&req, 0, sizeof(req));
        req.op = ops[i];
        req.index = (uint16_t)(7 + i);
        if (ops[i] == CL_NSM_OP_EXTEND_PCR) {
            req.data.present = true;
            req.data.len = 1024;
            memset(req.data.data, 0xab, 1024);
        }
        if (ops[i] == CL_NSM_OP_ATTESTATION) {
            req.nonce.present = true;
            req.nonce.len = 5;
            memcpy(req.nonce.data, "nonce", 5);
            req.public_key.present = true; /* present but empty */
        }
        encode_req(&req, &b);
        assert_ok(cl_nsm_request_parse(b.data, b.len, &got));
        assert_int_equal(got.op, req.op);
        if (ops[i] <= CL_NSM_OP_LOCK_PCRS) assert_int_equal(got.index, req.index);
        if (ops[i] == CL_NSM_OP_EXTEND_PCR) {
            assert_int_equal(got.data.len, 1024);
            assert_memory_equal(got.data.data, req.data.data, 1024);
        }
        if (ops[i] == CL_NSM_OP_ATTESTATION) {
            assert_false(got.user_data.present);
            assert_true(got.nonce.present && got.nonce.len == 5);
            assert_true(got.public_key.present && got.public_key.len == 0);
        }
    }
    cl_buf_free(&b);
}

static void parse_hex_fails(const char *hex, cl_status code, const char *needle)
{
    cl_buf b;
    cl_buf_init(&b, 1 << 16);
    t_hex(&b, hex);
    static cl_nsm_request req;
    assert_fails(cl_nsm_request_parse(b.data, b.len, &req), code, needle);
    assert_int_equal(req.op, CL_NSM_OP_NONE);
    cl_buf_free(&b);
}

static void test_request_refusals(void **state)
{
    (void)state;
    /* unknown unit variant "Reboot" */
    parse_hex_fails("665265626f6f74", CL_ERR_FORMAT, "unknown operation");
    /* {"DescribePCR": {"index": 0, "x": 1}}: unknown argument */
    parse_hex_fails("a16b4465736372696265504352a265696e646578006178"
                    "01",
                    CL_ERR_FORMAT, "unknown");
    /* {"DescribePCR": {"index": -1}} */
    parse_hex_fails("a16b4465736372696265504352a165696e64657820", CL_ERR_FORMAT, "not an unsigned");
    /* {"DescribePCR": {"index": 65536}} */
    parse_hex_fails("a16b4465736372696265504352a165696e6465781a00010000", CL_ERR_FORMAT, "u16");
    /* {"DescribePCR": {}} */
    parse_hex_fails("a16b4465736372696265504352a0", CL_ERR_FORMAT, "missing");
    /* truncated */
    parse_hex_fails("a16b44657363726962655043", CL_ERR_FORMAT, "only 10 remain");
    /* trailing byte */
    parse_hex_fails("6947657452616e646f6d00", CL_ERR_FORMAT, "after");
    /* two operations */
    parse_hex_fails("a26947657452616e646f6d006b4465736372696265504352a0", CL_ERR_FORMAT, "one entry");
    /* a number */
    parse_hex_fails("01", CL_ERR_FORMAT, "string or a map");
    /* a float at the top (libcbor 0.8's cbor_is_null aborts on these) */
    parse_hex_fails("fb3ff0000000000000", CL_ERR_FORMAT, "string or a map");
    /* nesting deeper than the bounded check allows */
    parse_hex_fails("818181818181818181818181818101", CL_ERR_LIMIT, "nested deeper");
    /* {"Attestation": {"nonce": 1}} */
    parse_hex_fails("a16b4174746573746174696f6ea1656e6f6e636501", CL_ERR_FORMAT, "byte string");
    /* {"ExtendPCR": {"index": 16, "data": null}}: data is not optional */
    parse_hex_fails("a169457874656e64504352a265696e646578106464617461f6", CL_ERR_FORMAT, "byte string");

    /* user_data of 1025 bytes: over the NSM's bound */
    static cl_nsm_request req;
    cl_buf b;
    cl_buf_init(&b, 1 << 16);
    assert_ok(cl_buf_append_str(&b, "\xa1\x6b"
                                    "Attestation"
                                    "\xa1\x69"
                                    "user_data"
                                    "\x59\x04\x01"));
    for (int i = 0; i < 1025; i++) assert_ok(cl_buf_append_u8(&b, 'u'));
    assert_fails(cl_nsm_request_parse(b.data, b.len, &req), CL_ERR_LIMIT, "more than 1024");
    /* a request over 4096 bytes */
    cl_buf_reset(&b);
    for (int i = 0; i < 4097; i++) assert_ok(cl_buf_append_u8(&b, 0));
    assert_fails(cl_nsm_request_parse(b.data, b.len, &req), CL_ERR_LIMIT, "4096");
    cl_buf_free(&b);
}

static void test_response_round_trip(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, CL_NSM_MAX_RESPONSE);
    cl_nsm_response r, got;
    cl_nsm_response_init(&r);
    cl_nsm_response_init(&got);
    const cl_nsm_op ops[] = {CL_NSM_OP_DESCRIBE_PCR, CL_NSM_OP_EXTEND_PCR,  CL_NSM_OP_LOCK_PCR,   CL_NSM_OP_LOCK_PCRS,
                             CL_NSM_OP_DESCRIBE_NSM, CL_NSM_OP_ATTESTATION, CL_NSM_OP_GET_RANDOM, CL_NSM_OP_ERROR};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        cl_buf_reset(&r.data);
        r.op = ops[i];
        r.lock = true;
        r.error = CL_NSM_READONLY_INDEX;
        r.max_pcrs = 32;
        r.locked_mask = 0x1000fU;
        r.version[0] = 1;
        (void)snprintf(r.module_id, sizeof(r.module_id), "i-sim-enc00");
        assert_ok(cl_buf_append(&r.data, "0123456789abcdef0123456789abcdef0123456789abcdef", 48));
        cl_buf_reset(&b);
        assert_ok(cl_nsm_response_encode(&r, &b));
        assert_ok(cl_nsm_response_parse(b.data, b.len, &got));
        assert_int_equal(got.op, r.op);
        if (ops[i] == CL_NSM_OP_ERROR) assert_int_equal(got.error, CL_NSM_READONLY_INDEX);
        if (ops[i] == CL_NSM_OP_DESCRIBE_PCR) assert_true(got.lock);
        if (ops[i] == CL_NSM_OP_DESCRIBE_PCR || ops[i] == CL_NSM_OP_EXTEND_PCR || ops[i] == CL_NSM_OP_ATTESTATION ||
            ops[i] == CL_NSM_OP_GET_RANDOM) {
            assert_int_equal(got.data.len, 48);
            assert_memory_equal(got.data.data, r.data.data, 48);
        }
        if (ops[i] == CL_NSM_OP_DESCRIBE_NSM) {
            assert_int_equal(got.locked_mask, 0x1000fU);
            assert_int_equal(got.max_pcrs, 32);
            assert_string_equal(got.module_id, "i-sim-enc00");
        }
    }
    assert_string_equal(cl_nsm_error_name(CL_NSM_INPUT_TOO_LARGE), "InputTooLarge");
    cl_nsm_response_free(&r);
    cl_nsm_response_free(&got);
    cl_buf_free(&b);
}

/* A reused response says only what the latest answer says (fuzz_nsm_response found DescribeNSM's
 * locked PCRs, version and module id carried over); a module id with a NUL in it is refused. */
static void test_response_reused(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, CL_NSM_MAX_RESPONSE);
    cl_nsm_response r, got;
    cl_nsm_response_init(&r);
    cl_nsm_response_init(&got);
    r.op = CL_NSM_OP_DESCRIBE_NSM;
    r.locked_mask = 0xffffU;
    r.max_pcrs = 32;
    r.version[1] = 7;
    (void)snprintf(r.module_id, sizeof(r.module_id), "first");
    assert_ok(cl_nsm_response_encode(&r, &b));
    assert_ok(cl_nsm_response_parse(b.data, b.len, &got));
    assert_int_equal(got.locked_mask, 0xffffU);
    /* The second answer: another module, PCR 0 locked only, no version. */
    static const uint8_t second[] = {0xa1, 0x6b, 'D', 'e', 's', 'c', 'r', 'i', 'b', 'e', 'N',  'S', 'M',  0xa2,
                                     0x6b, 'l',  'o', 'c', 'k', 'e', 'd', '_', 'p', 'c', 'r',  's', 0x81, 0x00,
                                     0x69, 'm',  'o', 'd', 'u', 'l', 'e', '_', 'i', 'd', 0x61, 'x'};
    assert_ok(cl_nsm_response_parse(second, sizeof(second), &got));
    assert_int_equal(got.op, CL_NSM_OP_DESCRIBE_NSM);
    assert_int_equal(got.locked_mask, 1U);
    assert_int_equal(got.version[1], 0);
    assert_int_equal(got.max_pcrs, 0);
    assert_string_equal(got.module_id, "x");
    uint8_t nul[sizeof(second) + 2];
    memcpy(nul, second, sizeof(second) - 2);
    memcpy(nul + sizeof(second) - 2, (const uint8_t[]){0x63, 'x', 0x00, 'y'}, 4);
    assert_fails(cl_nsm_response_parse(nul, sizeof(nul), &got), CL_ERR_FORMAT, "bad module_id");
    cl_nsm_response_free(&r);
    cl_nsm_response_free(&got);
    cl_buf_free(&b);
}

/* A fake device on the other end of a socketpair: answers each request with a fixed response. */
typedef struct fake {
    int fd;
    int requests;
} fake;

static void *fake_device(void *arg)
{
    fake *f = arg;
    uint8_t in[CL_NSM_MAX_REQUEST];
    for (;;) {
        ssize_t n = recv(f->fd, in, sizeof(in), 0);
        if (n <= 0) break;
        cl_nsm_request req;
        cl_nsm_response r;
        cl_nsm_response_init(&r);
        cl_buf out;
        cl_buf_init(&out, CL_NSM_MAX_RESPONSE);
        if (cl_nsm_request_parse(in, (size_t)n, &req) != CL_OK) {
            r.op = CL_NSM_OP_ERROR;
            r.error = CL_NSM_INVALID_ARGUMENT;
        } else if (req.op == CL_NSM_OP_LOCK_PCR) {
            r.op = CL_NSM_OP_ERROR;
            r.error = CL_NSM_INVALID_INDEX;
        } else if (req.op == CL_NSM_OP_DESCRIBE_NSM) {
            r.op = CL_NSM_OP_GET_RANDOM; /* the wrong answer */
        } else {
            r.op = req.op;
            uint8_t fill[CL_NSM_RANDOM_LEN];
            memset(fill, 0x42, sizeof(fill));
            if (cl_buf_append(&r.data, fill, req.op == CL_NSM_OP_GET_RANDOM ? sizeof(fill) : 48) != CL_OK) break;
        }
        if (cl_nsm_response_encode(&r, &out) == CL_OK) (void)send(f->fd, out.data, out.len, 0);
        f->requests++;
        cl_nsm_response_free(&r);
        cl_buf_free(&out);
    }
    return NULL;
}

static void test_client(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    fake f = {.fd = sv[1]};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fake_device, &f), 0);
    uint8_t v[48];
    bool locked = false;
    assert_ok(cl_nsm_describe_pcr(sv[0], 3, v, &locked));
    assert_int_equal(v[0], 0x42);
    uint8_t rnd[600];
    assert_ok(cl_nsm_get_random(sv[0], rnd, sizeof(rnd)));
    assert_int_equal(rnd[599], 0x42);
    assert_fails(cl_nsm_lock_pcr(sv[0], 40), CL_ERR_REMOTE, "InvalidIndex");
    cl_nsm_request req = {.op = CL_NSM_OP_DESCRIBE_NSM};
    cl_nsm_response resp;
    cl_nsm_response_init(&resp);
    assert_fails(cl_nsm_call(sv[0], &req, &resp), CL_ERR_FORMAT, "another operation");
    cl_nsm_response_free(&resp);
    static uint8_t big[1025];
    cl_buf doc;
    cl_buf_init(&doc, 1 << 16);
    assert_fails(cl_nsm_get_attestation_doc(sv[0], big, sizeof(big), NULL, 0, NULL, 0, &doc), CL_ERR_LIMIT,
                 "user_data");
    cl_buf_free(&doc);
    (void)shutdown(sv[0], SHUT_RDWR);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(f.requests, 6);
    (void)close(sv[0]);
    (void)close(sv[1]);
}

static void test_vsock_fd_passing(void **state)
{
    (void)state;
    int ctl[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, ctl), 0);
    /* listen: the launcher side gets 'L' + port + a descriptor, and hands connections over it */
    int listener = -1;
    assert_ok(cl_vsock_listen(ctl[0], 5005, &listener));
    uint8_t msg[16];
    size_t len = sizeof(msg);
    int got = -1;
    assert_ok(cl_fd_recv(ctl[1], msg, &len, &got));
    assert_int_equal(len, 5);
    assert_int_equal(msg[0], 'L');
    assert_int_equal(msg[4] | msg[3] << 8, 5005);
    assert_true(got >= 0);
    int conn[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, conn), 0);
    assert_ok(cl_fd_send(got, "A", 1, conn[1]));
    int accepted = -1;
    assert_ok(cl_vsock_accept(listener, &accepted));
    assert_int_equal(write(conn[0], "hi", 2), 2);
    char buf[4] = {0};
    assert_int_equal(read(accepted, buf, 2), 2);
    assert_string_equal(buf, "hi");
    /* a message without a descriptor is not a connection */
    assert_ok(cl_fd_send(got, "A", 1, -1));
    assert_fails(cl_vsock_accept(listener, &accepted), CL_ERR_FORMAT, "unexpected");
    int fds[] = {listener, got, conn[0], conn[1], accepted, ctl[0], ctl[1]};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) (void)close(fds[i]);
}

static void test_open_outside_an_enclave(void **state)
{
    (void)state;
    int fd = -1;
    assert_int_equal(unsetenv("CLOISTER_ENCLAVE"), 0);
    assert_int_equal(cl_vsock_ctl(), -1);
    if (access("/dev/nsm", F_OK) != 0) assert_fails(cl_nsm_open(&fd), CL_ERR_NOT_FOUND, "/dev/nsm");
    /* CLOISTER_ENCLAVE=sim without the launcher's socket at descriptor 3 */
    assert_int_equal(setenv("CLOISTER_ENCLAVE", "sim", 1), 0);
    assert_int_equal(cl_vsock_ctl(), CL_VSOCK_FD);
    int saved = dup(CL_NSM_FD); /* whatever the test runner left there */
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_true(dup2(p[0], CL_NSM_FD) == CL_NSM_FD);
    assert_fails(cl_nsm_open(&fd), CL_ERR_NOT_FOUND, "not the launcher's device socket");
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    assert_true(dup2(sv[0], CL_NSM_FD) == CL_NSM_FD);
    assert_ok(cl_nsm_open(&fd));
    assert_int_equal(fd, CL_NSM_FD);
    if (saved >= 0) {
        assert_true(dup2(saved, CL_NSM_FD) == CL_NSM_FD);
        (void)close(saved);
    } else {
        (void)close(CL_NSM_FD);
    }
    int fds[] = {p[0], p[1], sv[0], sv[1]};
    for (size_t i = 0; i < 4; i++) (void)close(fds[i]);
    assert_int_equal(unsetenv("CLOISTER_ENCLAVE"), 0);
}

static void test_real_vsock(void **state)
{
    (void)state;
    /* Outside a VM the parent CID does not answer (or AF_VSOCK is missing): a clear
     * failure, never a hang or a crash. */
    int fd = -1;
    cl_status rc = cl_vsock_connect(-1, 5000, &fd);
    assert_true(rc == CL_ERR_IO || rc == CL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cl_error_message(), "vsock"));
    /* accept on a stream listener is a plain accept (the AF_VSOCK path) */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_fails(cl_vsock_accept(sv[0], &fd), CL_ERR_IO, "vsock accept");
    (void)close(sv[0]);
    (void)close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_bytes),    cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_request_refusals), cmocka_unit_test(test_response_round_trip),
        cmocka_unit_test(test_response_reused),  cmocka_unit_test(test_client),
        cmocka_unit_test(test_vsock_fd_passing), cmocka_unit_test(test_open_outside_an_enclave),
        cmocka_unit_test(test_real_vsock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
