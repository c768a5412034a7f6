/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit log's committer (src/kms/commit.c) with a real audit log and a real libevent loop:
 * a worker's event fires once the lines it asked for are durable, at once when they already are,
 * and the loop that asked never waited for the disk (it was free to run meanwhile).
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <unistd.h>

#include "commit.h"
#include "test_util.h"

static void t_woken(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (*(int *)arg)++;
}

static void t_line(cl_audit *a, const char *request_id, uint64_t *end)
{
    cl_audit_event ev = {.time = 1,
                         .request_id = request_id,
                         .principal = "arn:aws:iam::111122223333:user/t",
                         .operation = "Decrypt",
                         .outcome = "success"};
    assert_ok(cl_audit_write(a, &ev, end));
}

static void test_wakes_when_durable(void **state)
{
    (void)state;
    char path[1024];
    (void)snprintf(path, sizeof(path), "%s/commit-%d.log", t_tmpdir(), (int)getpid());
    unlink(path);
    assert_int_equal(evthread_use_pthreads(), 0);
    cl_audit *a = NULL;
    assert_ok(cl_audit_open(path, &a));
    kms_committer *c = NULL;
    assert_ok(kms_committer_start(a, &c));
    struct event_base *base = event_base_new();
    assert_non_null(base);
    int woken = 0;
    struct event *ev = event_new(base, -1, 0, t_woken, &woken);
    assert_non_null(ev);

    uint64_t end1 = 0, end2 = 0;
    t_line(a, "r1", &end1);
    t_line(a, "r2", &end2);
    assert_true(end2 > end1);
    kms_committer_request(c, 3, end2, ev);
    /* The loop blocks until the committer activates the event: no sleep, no polling. */
    assert_int_equal(event_base_loop(base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY), 0);
    assert_int_equal(woken, 1);
    bool failed = true;
    assert_true(kms_committer_state(c, &failed) >= end2);
    assert_false(failed);
    /* Already durable: activated at once, within the request. */
    kms_committer_request(c, 3, end1, ev);
    assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY), 0);
    assert_int_equal(woken, 2);
    /* Lines the log holds are what the committer made durable: the chain verifies. */
    size_t lines = 0;
    char last[CL_AUDIT_HASH_HEX + 1];
    assert_ok(cl_audit_verify(path, &lines, last));
    assert_int_equal(lines, 2);

    kms_committer_stop(c);
    event_free(ev);
    event_base_free(base);
    cl_audit_close(a);
    unlink(path);
}

static void test_stop_without_requests(void **state)
{
    (void)state;
    char path[1024];
    (void)snprintf(path, sizeof(path), "%s/commit-idle-%d.log", t_tmpdir(), (int)getpid());
    unlink(path);
    cl_audit *a = NULL;
    assert_ok(cl_audit_open(path, &a));
    kms_committer *c = NULL;
    assert_ok(kms_committer_start(a, &c));
    bool failed = true;
    assert_int_equal(kms_committer_state(c, &failed), 0);
    assert_false(failed);
    kms_committer_stop(c); /* returns: the thread was waiting, not syncing */
    kms_committer_stop(NULL);
    cl_audit_close(a);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wakes_when_durable),
        cmocka_unit_test(test_stop_without_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
