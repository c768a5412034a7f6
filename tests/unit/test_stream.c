/* SPDX-License-Identifier: Apache-2.0 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "cloister/stream.h"

#include "test_util.h"

static void test_memory_stream_reads_in_pieces(void **state)
{
    (void)state;
    cl_stream s = cl_stream_mem((const uint8_t *)"hello world", 11);
    uint8_t b[8];
    size_t got = 0;
    assert_ok(cl_stream_read_full(&s, b, sizeof(b), &got));
    assert_int_equal(got, 8);
    assert_memory_equal(b, "hello wo", 8);
    assert_ok(cl_stream_read_full(&s, b, sizeof(b), &got));
    assert_int_equal(got, 3);
    assert_ok(cl_stream_read_full(&s, b, sizeof(b), &got));
    assert_int_equal(got, 0);
    assert_fails(s.write(&s, b, 1), CL_ERR_INTERNAL, "not writable");
}

static void test_buffer_stream_respects_cap(void **state)
{
    (void)state;
    cl_buf out;
    cl_buf_init(&out, 4);
    cl_stream s = cl_stream_buf(&out);
    assert_ok(s.write(&s, (const uint8_t *)"abc", 3));
    assert_fails(s.write(&s, (const uint8_t *)"de", 2), CL_ERR_LIMIT, "limit");
    size_t got;
    uint8_t b[1];
    assert_fails(s.read(&s, b, 1, &got), CL_ERR_INTERNAL, "not readable");
    cl_buf_free(&out);
}

static void test_fd_stream_over_a_pipe(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    cl_stream w = cl_stream_fd(fds[1], "pipe");
    cl_stream r = cl_stream_fd(fds[0], "pipe");
    assert_ok(w.write(&w, (const uint8_t *)"12345", 5));
    close(fds[1]);
    uint8_t b[10];
    size_t got = 0;
    assert_ok(cl_stream_read_full(&r, b, sizeof(b), &got));
    assert_int_equal(got, 5);
    close(fds[0]);
    cl_stream bad = cl_stream_fd(-1, "closed.bin");
    assert_fails(bad.read(&bad, b, 1, &got), CL_ERR_IO, "cannot read closed.bin");
    assert_fails(bad.write(&bad, b, 1), CL_ERR_IO, "cannot write closed.bin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_stream_reads_in_pieces),
        cmocka_unit_test(test_buffer_stream_respects_cap),
        cmocka_unit_test(test_fd_stream_over_a_pipe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
