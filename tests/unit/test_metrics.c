/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms's counters and their Prometheus text (src/kms/metrics.c). */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "server.h"
#include "test_util.h"

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return true;
    return false;
}

static void expect_line(const char *text, const char *line)
{
    if (!has_line(text, line)) fail_msg("no line \"%s\" in:\n%s", line, text);
}

/* What two workers counted, added up: requests by operation and outcome, the cumulative
 * histogram, the connection gauges; nothing for an operation never seen. */
static void test_render(void **state)
{
    (void)state;
    kms_metrics a, b;
    assert_ok(kms_metrics_init(&a));
    assert_ok(kms_metrics_init(&b));
    size_t decrypt = kms_metrics_op_row("Decrypt");
    size_t unknown = kms_metrics_op_row("NoSuchOperation");
    assert_int_equal(unknown, kms_op_count());
    assert_true(decrypt < kms_op_count());
    kms_metrics_request(&a, decrypt, kms_metrics_outcome(NULL), 300000);                       /* 0.3 ms */
    kms_metrics_request(&b, decrypt, kms_metrics_outcome(NULL), 2000000);                      /* 2 ms */
    kms_metrics_request(&a, decrypt, kms_metrics_outcome("NotFoundException"), 7000000000ULL); /* 7 s */
    kms_metrics_request(&b, unknown, kms_metrics_outcome("MissingAuthenticationTokenException"), 1000);
    kms_metrics_connections(&a, 3);
    kms_metrics_connections(&a, -1);
    kms_metrics_connections(&b, 1);
    kms_metrics_add(&a.accepted, 4);
    kms_metrics_add(&b.closed_cap, 2);
    kms_metrics_add(&a.closed_deadline, 5);
    kms_metrics *shards[] = {&a, &b};
    cl_buf out;
    cl_buf_init(&out, 1 << 20);
    assert_ok(kms_metrics_render(shards, 2, 1700000000, &out));
    const char *t = cl_buf_cstr(&out);
    expect_line(t, "# TYPE cloister_kms_requests_total counter");
    expect_line(t, "cloister_kms_requests_total{operation=\"Decrypt\",outcome=\"ok\"} 2");
    expect_line(t, "cloister_kms_requests_total{operation=\"Decrypt\",outcome=\"NotFoundException\"} 1");
    expect_line(t,
                "cloister_kms_requests_total{operation=\"unknown\",outcome=\"MissingAuthenticationTokenException\"} 1");
    expect_line(t, "# TYPE cloister_kms_request_duration_seconds histogram");
    expect_line(t, "cloister_kms_request_duration_seconds_bucket{operation=\"Decrypt\",le=\"0.00025\"} 0");
    expect_line(t, "cloister_kms_request_duration_seconds_bucket{operation=\"Decrypt\",le=\"0.0005\"} 1");
    expect_line(t, "cloister_kms_request_duration_seconds_bucket{operation=\"Decrypt\",le=\"0.001\"} 1");
    expect_line(t, "cloister_kms_request_duration_seconds_bucket{operation=\"Decrypt\",le=\"0.0025\"} 2");
    expect_line(t, "cloister_kms_request_duration_seconds_bucket{operation=\"Decrypt\",le=\"5\"} 2");
    expect_line(t, "cloister_kms_request_duration_seconds_bucket{operation=\"Decrypt\",le=\"+Inf\"} 3");
    expect_line(t, "cloister_kms_request_duration_seconds_sum{operation=\"Decrypt\"} 7.002300000");
    expect_line(t, "cloister_kms_request_duration_seconds_count{operation=\"Decrypt\"} 3");
    expect_line(t, "cloister_kms_request_duration_seconds_count{operation=\"unknown\"} 1");
    expect_line(t, "cloister_kms_open_connections 3");
    expect_line(t, "cloister_kms_connections_accepted_total 4");
    expect_line(t, "cloister_kms_connections_closed_total{reason=\"cap\"} 2");
    expect_line(t, "cloister_kms_connections_closed_total{reason=\"deadline\"} 5");
    expect_line(t, "cloister_kms_start_time_seconds 1700000000");
    char build[64];
    (void)snprintf(build, sizeof(build), "cloister_kms_build_info{version=\"%s\"} 1", CLOISTER_VERSION);
    expect_line(t, build);
    assert_null(strstr(t, "operation=\"Encrypt\""));
    /* Every sample line is NAME{LABELS} VALUE (the format's grammar, as far as we use it). */
    for (const char *line = t; *line != '\0';) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        if (line[0] != '#') {
            size_t name = strspn(line, "abcdefghijklmnopqrstuvwxyz_");
            assert_true(name > 0);
            const char *v = line + name;
            if (*v == '{') v = strchr(v, '}') + 1;
            assert_true(*v == ' ');
            v++;
            assert_true(strspn(v, "0123456789.") == (size_t)(end - v));
        }
        line = end + 1;
    }
    cl_buf_free(&out);
    kms_metrics_free(&a);
    kms_metrics_free(&b);
}

/* A label is never request text: a name the table lacks becomes "unknown" / OtherException,
 * whatever it holds (a quote and a newline here would forge a sample). */
static void test_labels_from_tables(void **state)
{
    (void)state;
    assert_int_equal(kms_metrics_op_row("Decrypt\"} 9\ncloister_kms_open_connections 1"), kms_op_count());
    assert_int_equal(kms_metrics_op_row(NULL), kms_op_count());
    size_t other = kms_metrics_outcome("Forged\"} 1\nException");
    assert_string_equal(kms_metrics_outcome_name(other), "OtherException");
    assert_string_equal(kms_metrics_outcome_name(kms_metrics_outcome(NULL)), "ok");
    assert_string_equal(kms_metrics_outcome_name(kms_metrics_outcome("ValidationException")), "ValidationException");
    assert_null(kms_metrics_outcome_name(kms_metrics_outcome_count()));
}

/* Every exception name src/kms answers with has its own outcome: none is counted as
 * OtherException unnoticed when an operation learns a new one. */
static void test_every_exception_counted(void **state)
{
    (void)state;
    const char *dir = t_source_path("src/kms");
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    size_t seen = 0;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 3 || strcmp(de->d_name + n - 2, ".c") != 0 || strcmp(de->d_name, "metrics.c") == 0) continue;
        char path[2048];
        (void)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        cl_buf text;
        cl_buf_init(&text, 1 << 22);
        assert_ok(cl_buf_read_file(&text, path));
        const char *s = cl_buf_cstr(&text);
        for (const char *q = s; (q = strstr(q, "Exception\"")) != NULL; q++) {
            const char *start = q;
            while (start > s && ((start[-1] >= 'A' && start[-1] <= 'Z') || (start[-1] >= 'a' && start[-1] <= 'z')))
                start--;
            if (start == s || start[-1] != '"' || start == q) continue;
            char name[128];
            (void)snprintf(name, sizeof(name), "%.*s", (int)(q - start) + 9, start);
            if (strcmp(kms_metrics_outcome_name(kms_metrics_outcome(name)), name) != 0)
                fail_msg("%s answers %s, which metrics.c's outcome table lacks", de->d_name, name);
            seen++;
        }
        cl_buf_free(&text);
    }
    (void)closedir(d);
    assert_true(seen > 50); /* the scan found the sources' exceptions */
}

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s = (struct sockaddr_in *)(void *)&ss;
    s->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, a, &s->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)(void *)&ss;
    s->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, a, &s->sin6_addr), 1);
    return ss;
}

/* /metrics by default to loopback clients only; "any" to all; "off" to none. */
static void test_peer_allowed(void **state)
{
    (void)state;
    static const struct {
        const char *addr;
        bool loopback;
    } cases[] = {
        {"127.0.0.1", true},        {"127.8.9.10", true},   {"::1", true},
        {"::ffff:127.0.0.1", true}, {"10.0.0.1", false},    {"128.0.0.1", false},
        {"::ffff:10.1.2.3", false}, {"2001:db8::1", false}, {"::", false},
        {"0.0.0.0", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss = strchr(cases[i].addr, ':') != NULL ? v6(cases[i].addr) : v4(cases[i].addr);
        const struct sockaddr *sa = (const struct sockaddr *)(const void *)&ss;
        if (kms_metrics_peer_allowed(KMS_METRICS_LOOPBACK, sa) != cases[i].loopback)
            fail_msg("%s: loopback should be %d", cases[i].addr, cases[i].loopback);
        assert_true(kms_metrics_peer_allowed(KMS_METRICS_ANY, sa));
        assert_false(kms_metrics_peer_allowed(KMS_METRICS_OFF, sa));
    }
    assert_false(kms_metrics_peer_allowed(KMS_METRICS_LOOPBACK, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_labels_from_tables),
        cmocka_unit_test(test_every_exception_counted),
        cmocka_unit_test(test_peer_allowed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
