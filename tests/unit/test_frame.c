/* SPDX-License-Identifier: Apache-2.0 */
/* The host-channel framing (src/core/frame.c): u8 type, u32 big-endian length, payload. */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cloister/frame.h"

#include "test_util.h"

static void pair(int sv[2]) { assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); }

static void put(int fd, const void *p, size_t n) { assert_int_equal(write(fd, p, n), (ssize_t)n); }

static void test_round_trip(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    assert_ok(cl_frame_write(sv[0], CL_FRAME_RESULT, (const uint8_t *)"sealed", 6));
    assert_ok(cl_frame_write(sv[0], CL_FRAME_ERROR, NULL, 0));
    close(sv[0]);
    /* The bytes on the wire, written out by hand from docs/worker.md. */
    uint8_t wire[16];
    assert_int_equal(read(sv[1], wire, 11), 11);
    const uint8_t want[11] = {2, 0, 0, 0, 6, 's', 'e', 'a', 'l', 'e', 'd'};
    assert_memory_equal(wire, want, sizeof(want));
    cl_buf b;
    cl_buf_init(&b, 1024);
    uint8_t type = 0;
    assert_ok(cl_frame_read(sv[1], 1024, &type, &b));
    assert_int_equal(type, CL_FRAME_ERROR);
    assert_int_equal(b.len, 0);
    assert_fails(cl_frame_read(sv[1], 1024, &type, &b), CL_ERR_NOT_FOUND, "no frame");
    cl_buf_free(&b);
    close(sv[1]);
}

static void test_read_parses_by_hand(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    const uint8_t f[] = {1, 0, 0, 0, 3, 'a', 'b', 'c'};
    put(sv[0], f, sizeof(f));
    close(sv[0]);
    cl_buf b;
    cl_buf_init(&b, 1024);
    uint8_t type = 0;
    assert_ok(cl_frame_read(sv[1], 1024, &type, &b));
    assert_int_equal(type, CL_FRAME_REQUEST);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "abc", 3);
    cl_buf_free(&b);
    close(sv[1]);
}

static void expect_bad(const uint8_t *f, size_t n, size_t max, cl_status code, const char *needle)
{
    int sv[2];
    pair(sv);
    put(sv[0], f, n);
    close(sv[0]);
    cl_buf b;
    cl_buf_init(&b, 1 << 20);
    uint8_t type = 0;
    assert_fails(cl_frame_read(sv[1], max, &type, &b), code, needle);
    assert_int_equal(b.len, 0);
    cl_buf_free(&b);
    close(sv[1]);
}

static void test_bad_frames(void **state)
{
    (void)state;
    const uint8_t unknown5[] = {5, 0, 0, 0, 0};
    expect_bad(unknown5, sizeof(unknown5), 1024, CL_ERR_FORMAT, "unknown frame type 5");
    const uint8_t unknown[] = {9, 0, 0, 0, 0};
    expect_bad(unknown, sizeof(unknown), 1024, CL_ERR_FORMAT, "unknown frame type 9");
    const uint8_t zero[] = {0, 0, 0, 0, 0};
    expect_bad(zero, sizeof(zero), 1024, CL_ERR_FORMAT, "unknown frame type 0");
    const uint8_t big[] = {1, 0, 0, 4, 1};
    expect_bad(big, sizeof(big), 1024, CL_ERR_LIMIT, "1025 bytes is over the limit of 1024");
    const uint8_t huge[] = {1, 0xff, 0xff, 0xff, 0xff};
    expect_bad(huge, sizeof(huge), SIZE_MAX, CL_ERR_LIMIT, "is over the limit of 16777216");
    const uint8_t short_hdr[] = {1, 0, 0};
    expect_bad(short_hdr, sizeof(short_hdr), 1024, CL_ERR_IO, "inside a frame header (3 of 5 bytes)");
    const uint8_t short_body[] = {1, 0, 0, 0, 4, 'a', 'b'};
    expect_bad(short_body, sizeof(short_body), 1024, CL_ERR_IO, "inside a frame (2 of 4 bytes)");
}

static void test_write_refuses(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    assert_fails(cl_frame_write(sv[0], 7, NULL, 0), CL_ERR_USAGE, "unknown frame type 7");
    assert_fails(cl_frame_write(sv[0], CL_FRAME_REQUEST, NULL, CL_FRAME_MAX + 1), CL_ERR_LIMIT, "over the limit");
    close(sv[1]);
    assert_fails(cl_frame_write(sv[0], CL_FRAME_REQUEST, (const uint8_t *)"x", 1), CL_ERR_IO, "writing a frame");
    close(sv[0]);
}

static void test_stop_frame(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    assert_ok(cl_frame_write(sv[0], CL_FRAME_STOP, NULL, 0));
    close(sv[0]);
    uint8_t wire[5];
    assert_int_equal(read(sv[1], wire, 5), 5);
    const uint8_t want[5] = {4, 0, 0, 0, 0}; /* docs/worker.md: type 4, empty */
    assert_memory_equal(wire, want, sizeof(want));
    close(sv[1]);
}

static void test_request_payload(void **state)
{
    (void)state;
    uint8_t id[CL_FRAME_REQUEST_ID_LEN];
    for (size_t i = 0; i < sizeof(id); i++) id[i] = (uint8_t)(0xa0 + i);
    cl_buf b;
    cl_buf_init(&b, 1024);
    assert_ok(cl_frame_request_encode(id, (const uint8_t *)"SEALED", 6, &b));
    assert_int_equal(b.len, 22);
    assert_memory_equal(b.data, id, sizeof(id)); /* the id first, then the envelope */
    assert_memory_equal(b.data + 16, "SEALED", 6);
    const uint8_t *pid = NULL, *sealed = NULL;
    size_t n = 0;
    assert_ok(cl_frame_request_parse(b.data, b.len, &pid, &sealed, &n));
    assert_ptr_equal(pid, b.data);
    assert_ptr_equal(sealed, b.data + 16);
    assert_int_equal(n, 6);
    /* Negative: nothing after the id, a short id, nothing at all. */
    assert_fails(cl_frame_request_parse(b.data, 16, &pid, &sealed, &n), CL_ERR_FORMAT,
                 "16 bytes is too short: it is a 16-byte request id and then a sealed envelope");
    assert_fails(cl_frame_request_parse(b.data, 5, &pid, &sealed, &n), CL_ERR_FORMAT, "5 bytes is too short");
    assert_fails(cl_frame_request_parse(NULL, 0, &pid, &sealed, &n), CL_ERR_FORMAT, "0 bytes is too short");
    assert_fails(cl_frame_request_encode(id, NULL, 0, &b), CL_ERR_USAGE, "empty sealed input");
    cl_buf_free(&b);
}

static void test_pipe_and_gone_peer(void **state)
{
    (void)state;
    int pp[2];
    assert_int_equal(pipe(pp), 0); /* not a socket: written with write() */
    assert_ok(cl_frame_write(pp[1], CL_FRAME_RESULT, (const uint8_t *)"r", 1));
    cl_buf b;
    cl_buf_init(&b, 1024);
    uint8_t type = 0;
    assert_ok(cl_frame_read(pp[0], 1024, &type, &b));
    assert_int_equal(type, CL_FRAME_RESULT);
    assert_int_equal(b.len, 1);
    close(pp[0]);
    close(pp[1]);
    /* A socket whose peer has gone: an error, and no SIGPIPE even when it is not ignored. */
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    int sv[2];
    pair(sv);
    close(sv[1]);
    assert_fails(cl_frame_write(sv[0], CL_FRAME_REQUEST, (const uint8_t *)"x", 1), CL_ERR_IO, "writing a frame");
    close(sv[0]);
    (void)signal(SIGPIPE, old);
    cl_buf_free(&b);
}

static void test_read_timeout(void **state)
{
    (void)state;
    int sv[2];
    pair(sv);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    cl_buf b;
    cl_buf_init(&b, 1024);
    uint8_t type = 0;
    /* A peer that sends nothing, and one that stops inside a frame. */
    assert_fails(cl_frame_read(sv[1], 1024, &type, &b), CL_ERR_EXPIRED, "sent nothing in time");
    const uint8_t part[] = {1, 0, 0, 0, 9, 'a'};
    put(sv[0], part, sizeof(part));
    assert_fails(cl_frame_read(sv[1], 1024, &type, &b), CL_ERR_EXPIRED, "timed out");
    assert_int_equal(b.len, 0);
    cl_buf_free(&b);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    (void)signal(SIGPIPE, SIG_IGN); /* the write-to-a-closed-peer case */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),         cmocka_unit_test(test_read_parses_by_hand),
        cmocka_unit_test(test_bad_frames),         cmocka_unit_test(test_write_refuses),
        cmocka_unit_test(test_stop_frame),         cmocka_unit_test(test_request_payload),
        cmocka_unit_test(test_pipe_and_gone_peer), cmocka_unit_test(test_read_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
