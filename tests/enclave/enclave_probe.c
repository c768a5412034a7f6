/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The test enclave program: built into images by tests/integration/enclave_run.py and
 * launched with `cloister enclave run`. What it does is chosen by the file /files/mode
 * in its image (so that each image differs only in data):
 *   probe   tries to reach past its isolation and prints one "RESULT name ok|FAIL why"
 *           line per attempt on its console (run with --debug)
 *   attest  asks the device for a document (nonce and user_data from /files/nonce) and
 *           sends it, length-prefixed, to vsock port 5000 (proxied by the test)
 *   listen  listens on vsock port 5005 and answers one host connection: "enclave:" + line
 *   deny    connects to vsock port 5001 (not proxied) and reports the refusal on port 5000
 *   echo    sends 1 MiB through the proxy on port 5000 to an echo server and checks
 *           that the same bytes come back (printed as RESULT lines; run with --debug)
 *   fork    starts threads, then up to 7 processes that each hold 160 MiB at once, and prints
 *           "FORK forked=N alive=N killed=N errno=E threads=ok|FAIL": run with --memory 256,
 *           a cgroup keeps at most one alive; without one, fork is refused (docs/security.md, finding 7)
 *   spin    waits forever (for describe / terminate)
 *   cpus    prints "CPUS n=N ids=A,B widen=ok|refused errno=E" (the CPUs its threads may run on,
 *           from a thread it starts, and whether it could widen them), then waits forever
 *           (run with --debug: for run-enclave --cpu-count and console)
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cloister/nsm.h"

static int failures;
static int nsm = -1, vsock = -1;

static void result(const char *name, int ok, const char *why)
{
    printf("RESULT %s %s%s%s\n", name, ok ? "ok" : "FAIL", why != NULL ? " " : "", why != NULL ? why : "");
    if (!ok) failures++;
    fflush(stdout);
}

static size_t read_small(const char *path, char *out, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    if (n < 0) n = 0;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) n--;
    out[n] = '\0';
    return (size_t)n;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int probe(void)
{
    /* The host's files are not there; the root is read-only. */
    result("host_passwd", open("/etc/passwd", O_RDONLY) < 0 && errno == ENOENT, NULL);
    struct stat sb;
    result("no_proc", stat("/proc", &sb) != 0, NULL);
    result("no_tmp", stat("/tmp", &sb) != 0, NULL);
    result("own_files", stat("/files/mode", &sb) == 0, NULL);
    int fd = open("/files/new", O_WRONLY | O_CREAT, 0644);
    result("read_only_root", fd < 0 && (errno == EROFS || errno == EACCES || errno == EPERM), strerror(errno));
    /* No network: socket() is refused by seccomp (and there is no interface anyway). */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    result("no_inet_socket", s < 0, strerror(errno));
    s = socket(AF_UNIX, SOCK_STREAM, 0);
    result("no_unix_socket", s < 0, strerror(errno));
    /* setsockopt: only the timeouts (the worker's per-connection read timeout), only on the
     * sockets it was given (the NSM device's socketpair end here). */
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    result("setsockopt_timeout", setsockopt(nsm, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, strerror(errno));
    tv.tv_sec = 0; /* back to no timeout: the device's answers may take their time */
    (void)setsockopt(nsm, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    result("no_other_setsockopt", setsockopt(nsm, SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)) != 0 && errno == EPERM,
           strerror(errno));
    /* No ptrace, no mount, no namespaces. */
    result("no_ptrace", ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0, strerror(errno));
    result("no_mount", mount("tmpfs", "/files", "tmpfs", 0, NULL) != 0, strerror(errno));
    result("no_unshare", unshare(CLONE_NEWUSER) != 0, strerror(errno));
    result("not_dumpable", prctl(PR_GET_DUMPABLE) == 0, NULL);
    result("uid", getuid() == 1000, NULL);
    /* Its own PID namespace: it is process 1 and no host process can be signalled. */
    result("pid_namespace", getpid() == 1, NULL);
    result("no_host_processes", kill(2, 0) != 0 && (errno == ESRCH || errno == EPERM), strerror(errno));
    char host[64] = "";
    gethostname(host, sizeof(host));
    result("hostname", strcmp(host, "enclave") == 0, host);
    /* The memory limit (the test runs with --memory 64). */
    void *big = malloc((size_t)128 << 20);
    result("memory_limit", big == NULL, NULL);
    free(big);
    /* The device: PCR0 is the launcher's and locked; PCR16 is ours. */
    uint8_t v[48];
    bool locked = false;
    char hx[97];
    cl_status rc = cl_nsm_describe_pcr(nsm, 0, v, &locked);
    hex(v, 48, hx);
    result("pcr0_locked", rc == CL_OK && locked, hx);
    printf("PCR0 %s\n", hx);
    rc = cl_nsm_extend_pcr(nsm, 0, (const uint8_t *)"x", 1, v);
    result("pcr0_read_only", rc == CL_ERR_REMOTE && strstr(cl_error_message(), "ReadOnlyIndex") != NULL,
           cl_error_message());
    rc = cl_nsm_extend_pcr(nsm, 16, (const uint8_t *)"abc", 3, v);
    hex(v, 48, hx);
    result("pcr16_extend", rc == CL_OK, hx);
    printf("PCR16 %s\n", hx);
    rc = cl_nsm_lock_pcr(nsm, 16);
    result("pcr16_lock", rc == CL_OK, NULL);
    rc = cl_nsm_extend_pcr(nsm, 16, (const uint8_t *)"abc", 3, v);
    result("pcr16_locked", rc == CL_ERR_REMOTE, NULL);
    rc = cl_nsm_describe_pcr(nsm, 32, v, &locked);
    result("pcr32_invalid", rc == CL_ERR_REMOTE && strstr(cl_error_message(), "InvalidIndex") != NULL, NULL);
    uint8_t rnd[300];
    memset(rnd, 0, sizeof(rnd));
    rc = cl_nsm_get_random(nsm, rnd, sizeof(rnd));
    int nonzero = 0;
    for (size_t i = 0; i < sizeof(rnd); i++) nonzero += rnd[i] != 0;
    result("get_random", rc == CL_OK && nonzero > 200, NULL);
    /* Raw garbage on the device is answered with an error, and the device keeps working. */
    ssize_t w = send(nsm, "\xff\x00garbage", 9, 0);
    uint8_t resp[256];
    ssize_t r = recv(nsm, resp, sizeof(resp), 0);
    result("garbage_answered", w == 9 && r > 0 && memmem(resp, (size_t)r, "InvalidArgument", 15) != NULL, NULL);
    rc = cl_nsm_describe_pcr(nsm, 1, v, &locked);
    result("device_alive", rc == CL_OK, NULL);
    printf("DONE %d\n", failures);
    fflush(stdout);
    return failures == 0 ? 0 : 1;
}

static int send_report(const uint8_t *p, size_t n)
{
    int fd = -1;
    if (cl_vsock_connect(vsock, 5000, &fd) != CL_OK) return 3;
    uint8_t len[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    if (write(fd, len, 4) != 4 || write(fd, p, n) != (ssize_t)n) return 4;
    shutdown(fd, SHUT_WR);
    char c;
    while (read(fd, &c, 1) > 0) {
    }
    close(fd);
    return 0;
}

static int attest(void)
{
    char nonce[256];
    size_t nl = read_small("/files/nonce", nonce, sizeof(nonce));
    cl_buf doc;
    cl_buf_init(&doc, 1 << 16);
    cl_status rc = cl_nsm_get_attestation_doc(nsm, (const uint8_t *)"probe-user-data", 15, (const uint8_t *)nonce, nl,
                                              NULL, 0, &doc);
    if (rc != CL_OK) {
        const char *m = cl_error_message();
        return send_report((const uint8_t *)m, strlen(m)) == 0 ? 2 : 5;
    }
    int ec = send_report(doc.data, doc.len);
    cl_buf_free(&doc);
    return ec;
}

static int listen_once(void)
{
    int l = -1, c = -1;
    if (cl_vsock_listen(vsock, 5005, &l) != CL_OK) return 3;
    if (cl_vsock_accept(l, &c) != CL_OK) return 4;
    char line[256];
    ssize_t n = read(c, line, sizeof(line));
    if (n <= 0) return 5;
    char out[300];
    int m = snprintf(out, sizeof(out), "enclave:%.*s", (int)n, line);
    if (write(c, out, (size_t)m) != m) return 6;
    close(c);
    return 0;
}

static int deny(void)
{
    int fd = -1;
    cl_status rc = cl_vsock_connect(vsock, 5001, &fd);
    const char *m = rc == CL_OK ? "CONNECTED" : cl_error_message();
    return send_report((const uint8_t *)m, strlen(m));
}

static int echo(void)
{
    enum { N = 1 << 20 };
    static uint8_t out[N], in[N];
    for (size_t i = 0; i < N; i++) out[i] = (uint8_t)(i * 7 + (i >> 11));
    int fd = -1;
    cl_status rc = cl_vsock_connect(vsock, 5000, &fd);
    result("echo_connect", rc == CL_OK, rc == CL_OK ? NULL : cl_error_message());
    if (rc != CL_OK) return 1;
    /* Write and read at once, so that neither side's buffers have to hold it all. */
    size_t sent = 0, got = 0;
    while (got < N) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < N ? POLLOUT : 0)};
        if (poll(&p, 1, 10000) <= 0) break;
        if ((p.revents & POLLOUT) && sent < N) {
            ssize_t w = write(fd, out + sent, N - sent > 65536 ? 65536 : N - sent);
            if (w <= 0) break;
            sent += (size_t)w;
            if (sent == N) shutdown(fd, SHUT_WR);
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t r = read(fd, in + got, N - got);
            if (r <= 0) break;
            got += (size_t)r;
        }
    }
    close(fd);
    result("echo_bytes", got == N && memcmp(in, out, N) == 0, NULL);
    printf("DONE %d\n", failures);
    fflush(stdout);
    return failures == 0 ? 0 : 1;
}

static void *thread_main(void *arg)
{
    *(int *)arg = 42;
    return NULL;
}

/* Seven processes held 1.2 GiB under --memory 256 when RLIMIT_AS was the only limit: each
 * child here touches 160 MiB (resident: there is no swap) and keeps it until every child has
 * been started; those still alive then all held theirs at the same time. */
static int forks(void)
{
    enum { N = 7, MIB = 160 };
    int v = 0;
    pthread_t t;
    bool threads = pthread_create(&t, NULL, thread_main, &v) == 0 && pthread_join(t, NULL) == 0 && v == 42;
    pid_t kids[N];
    int forked = 0, refused = 0, release[2];
    if (pipe2(release, O_CLOEXEC) != 0) return 2;
    for (int i = 0; i < N; i++) {
        int ready[2];
        if (pipe2(ready, O_CLOEXEC) != 0) return 2;
        pid_t p = fork();
        if (p < 0) {
            refused = errno;
            close(ready[0]);
            close(ready[1]);
            break;
        }
        if (p == 0) {
            close(ready[0]);
            close(release[1]);
            size_t n = (size_t)MIB << 20;
            volatile uint8_t *m = malloc(n);
            if (m == NULL) _exit(3);
            for (size_t k = 0; k < n; k += 4096) m[k] = 1;
            (void)!write(ready[1], "r", 1);
            char c;
            (void)!read(release[0], &c, 1); /* EOF once the parent has started them all */
            size_t sum = 0;
            for (size_t k = 0; k < n; k += 4096) sum += m[k];
            _exit(sum == n / 4096 ? 0 : 4);
        }
        close(ready[1]);
        char c;
        (void)!read(ready[0], &c, 1); /* 'r', or EOF: the child is gone (the OOM killer) */
        close(ready[0]);
        kids[forked++] = p;
    }
    close(release[0]);
    close(release[1]);
    int alive = 0, killed = 0;
    for (int i = 0; i < forked; i++) {
        int st = 0;
        if (waitpid(kids[i], &st, 0) != kids[i]) continue;
        alive += WIFEXITED(st) && WEXITSTATUS(st) == 0;
        killed += WIFSIGNALED(st);
    }
    printf("FORK forked=%d alive=%d killed=%d errno=%d threads=%s\n", forked, alive, killed, refused,
           threads ? "ok" : "FAIL");
    fflush(stdout);
    return 0;
}

static void *cpus_thread(void *arg)
{
    cpu_set_t *set = arg;
    CPU_ZERO(set);
    (void)sched_getaffinity(0, sizeof(*set), set);
    return NULL;
}

static int cpus(void)
{
    /* A thread's mask: what the launcher set is inherited by every thread the enclave makes. */
    cpu_set_t set;
    pthread_t t;
    if (pthread_create(&t, NULL, cpus_thread, &set) != 0 || pthread_join(t, NULL) != 0) return 71;
    char ids[512] = "";
    for (int cpu = 0, n = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set)) continue;
        size_t len = strlen(ids);
        snprintf(ids + len, sizeof(ids) - len, "%s%d", n++ ? "," : "", cpu);
    }
    cpu_set_t all;
    CPU_ZERO(&all);
    for (int cpu = 0; cpu < 64; cpu++) CPU_SET(cpu, &all);
    int r = sched_setaffinity(0, sizeof(all), &all);
    printf("CPUS n=%d ids=%s widen=%s errno=%d\n", CPU_COUNT(&set), ids, r == 0 ? "ok" : "refused", r == 0 ? 0 : errno);
    fflush(stdout);
    for (;;) pause();
}

int main(void)
{
    char mode[64];
    read_small("/files/mode", mode, sizeof(mode));
    /* The same calls a program makes on Nitro hardware: /dev/nsm and AF_VSOCK there. */
    if (cl_nsm_open(&nsm) != CL_OK) {
        printf("cl_nsm_open: %s\n", cl_error_message());
        return 70;
    }
    vsock = cl_vsock_ctl();
    if (strcmp(mode, "probe") == 0) return probe();
    if (strcmp(mode, "attest") == 0) return attest();
    if (strcmp(mode, "listen") == 0) return listen_once();
    if (strcmp(mode, "deny") == 0) return deny();
    if (strcmp(mode, "echo") == 0) return echo();
    if (strcmp(mode, "fork") == 0) return forks();
    if (strcmp(mode, "spin") == 0) {
        for (;;) pause();
    }
    if (strcmp(mode, "cpus") == 0) return cpus();
    printf("unknown mode '%s'\n", mode);
    return 64;
}
