/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister train-job run: the host side of one training job (docs/training-jobs.md, "The
 * runner"). It reads the job document on stdin (never argv: it holds the role session's
 * secret), starts the cloister-train image with the launcher, a vsock proxy for each endpoint
 * the document names, hands the document to the job over vsock, and relays the job's reports as
 * JSON lines on stdout, ending with exactly one result line. It enforces --max-runtime
 * (Stopped, MaxRuntimeExceeded, as SageMaker's StoppingCondition) and SIGTERM (Stopped), names
 * the enclave's memory limit when the enclave is killed, and always stops the enclave it started.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cloister/enclave.h"
#include "cloister/frame.h"
#include "cloister/mem.h"

#include "cli.h"

#define RUN_DOC_MAX ((size_t)64 << 10)
#define RUN_JOB_PORT 5100 /* cloister-train's JOB_VSOCK_PORT */
#define RUN_FIRST_PROXY 8000
#define RUN_EVENT_MAX ((size_t)4 << 10)
#define RUN_STOP_MS 10000

static const char run_usage[] =
    "Usage: cloister train-job run --image IMAGE [--memory MiB] [--max-runtime SECONDS] [--pki DIR]\n"
    "                              [--state-dir DIR] [--cgroup DIR|none]  < JOB.json\n"
    "\n"
    "Runs one training job: starts IMAGE (cloister-train's enclave image) with the launcher,\n"
    "a vsock proxy for each of the job document's Endpoints, sends it the job document read on\n"
    "stdin (at most 64 KiB; it holds the role's session, so never an argument), and prints the\n"
    "job's events as JSON lines, the last one the result (docs/training-jobs.md).\n"
    "  --memory MiB        the enclave's memory (default 1024)\n"
    "  --max-runtime S     stop the job after S seconds: Stopped, MaxRuntimeExceeded (default 86400)\n"
    "Exit status: 0 Completed, 1 Failed or Stopped, 2 usage error.\n";

typedef struct run_state {
    cl_enclave_config cfg;
    char proxy_hosts[CL_ENCLAVE_MAX_PROXIES][300];
    size_t n_hosts;
    int64_t t_start;
    int64_t enclave_start_ms;
    pid_t launcher;
    char id[CL_ENCLAVE_ID_MAX + 1];
    int sigfd;
    int sock;
    int result; /* 0: none yet; 1: Failed or Stopped; 2: Completed */
} run_state;

static int64_t run_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One event line on stdout (consumed), at most RUN_EVENT_MAX bytes: escaping to ASCII can make
 * a line longer than the job's frame, so the free-text members are cut until it fits. */
static void run_emit(json_t *ev)
{
    static const char *const text[] = {"message", "StatusMessage", "FailureReason"};
    char *s = NULL;
    for (size_t cap = 2048;; cap /= 2) {
        s = json_dumps(ev, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s == NULL || strlen(s) < RUN_EVENT_MAX || cap < 64) break;
        free(s);
        s = NULL;
        for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
            json_t *v = json_object_get(ev, text[i]);
            if (!json_is_string(v) || json_string_length(v) <= cap) continue;
            /* Cut where a UTF-8 sequence starts (RFC 3629: continuation bytes are 10xxxxxx). */
            const unsigned char *u = (const unsigned char *)json_string_value(v);
            size_t n = cap;
            while (n > 0 && (u[n] & 0xC0) == 0x80) n--;
            (void)json_object_set_new(ev, text[i], json_stringn((const char *)u, n));
        }
    }
    json_decref(ev);
    if (s == NULL || strlen(s) >= RUN_EVENT_MAX) {
        free(s);
        return;
    }
    printf("%s\n", s);
    (void)fflush(stdout);
    free(s);
}

static void run_result(run_state *st, const char *status, const char *secondary, const char *reason, json_t *timings)
{
    json_t *ev = json_pack("{s:s, s:s, s:s, s:s}", "event", "result", "TrainingJobStatus", status, "SecondaryStatus",
                           secondary, "FailureReason", reason);
    if (timings == NULL) timings = json_object();
    (void)json_object_set_new(timings, "enclave_start_ms", json_integer(st->enclave_start_ms));
    (void)json_object_set_new(timings, "total_ms", json_integer(run_now_ms() - st->t_start));
    (void)json_object_set_new(ev, "Timings", timings);
    run_emit(ev);
    st->result = 1;
}

/* Endpoints.NAME: http(s)://HOST[:PORT] -> the vsock port of its proxy (one per distinct HOST:PORT). */
static CL_MUST_USE cl_status run_endpoint(run_state *st, json_t *root, const char *name, json_t *ports)
{
    json_t *v = json_object_get(json_object_get(root, "Endpoints"), name);
    CL_ENSURE(json_is_string(v), CL_ERR_FORMAT, "the job document's Endpoints.%s must be an http(s):// URL", name);
    const char *url = json_string_value(v);
    bool tls = strncmp(url, "https://", 8) == 0;
    CL_ENSURE(tls || strncmp(url, "http://", 7) == 0, CL_ERR_FORMAT,
              "the job document's Endpoints.%s '%.200s' must be an http:// or https:// URL", name, url);
    const char *hp = url + (tls ? 8 : 7);
    size_t n = strcspn(hp, "/");
    CL_ENSURE(n > 0 && n < 256 && hp[n] == '\0', CL_ERR_FORMAT,
              "the job document's Endpoints.%s '%.200s' must be a scheme and HOST[:PORT], no path", name, url);
    char host[300];
    (void)snprintf(host, sizeof(host), "%.*s%s", (int)n, hp,
                   memchr(hp, ':', n) != NULL || (n > 0 && hp[n - 1] == ']') ? "" : (tls ? ":443" : ":80"));
    size_t i = 0;
    while (i < st->n_hosts && strcmp(st->proxy_hosts[i], host) != 0) i++;
    if (i == st->n_hosts) {
        CL_ENSURE(i < CL_ENCLAVE_MAX_PROXIES, CL_ERR_LIMIT, "too many endpoints");
        char spec[320];
        (void)snprintf(st->proxy_hosts[i], sizeof(st->proxy_hosts[i]), "%s", host);
        (void)snprintf(spec, sizeof(spec), "%u=%s", (unsigned)(RUN_FIRST_PROXY + i), host);
        CL_GUARD_CTX(cl_enclave_parse_proxy(spec, &st->cfg.proxies[i]), "Endpoints.%s", name);
        st->n_hosts++;
        st->cfg.proxy_count = st->n_hosts;
    }
    (void)json_object_set_new(ports, name, json_integer(RUN_FIRST_PROXY + (json_int_t)i));
    return CL_OK;
}

/* Reads the job document from stdin into `doc` (secret), adds VsockPorts and MemoryMiB, and
 * sets the enclave's proxies; the result replaces doc's contents. */
static CL_MUST_USE cl_status run_document(run_state *st, cl_buf *doc)
{
    cl_status rc = CL_OK;
    json_error_t jerr;
    json_t *root = NULL;
    uint8_t chunk[4096];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "reading the job document on stdin");
        if (n == 0) break;
        CL_ENSURE_GOTO(doc->len + (size_t)n <= RUN_DOC_MAX, CL_ERR_LIMIT, "the job document on stdin is over %zu bytes",
                       RUN_DOC_MAX);
        CL_GUARD_GOTO(cl_buf_append(doc, chunk, (size_t)n));
    }
    root = json_loadb((const char *)doc->data, doc->len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE_GOTO(root != NULL && json_is_object(root), CL_ERR_FORMAT,
                   "the job document on stdin is not a JSON object (line %d, column %d)", jerr.line, jerr.column);
    json_t *ports = json_object();
    (void)json_object_set_new(root, "VsockPorts", ports);
    CL_GUARD_GOTO(run_endpoint(st, root, "kms", ports));
    CL_GUARD_GOTO(run_endpoint(st, root, "s3", ports));
    (void)json_object_set_new(root, "MemoryMiB", json_integer((json_int_t)st->cfg.memory_mib));
    size_t need = json_dumpb(root, NULL, 0, JSON_COMPACT);
    CL_ENSURE_GOTO(need > 0 && need <= RUN_DOC_MAX, CL_ERR_LIMIT, "the job document is over %zu bytes", RUN_DOC_MAX);
    cl_buf_reset(doc);
    CL_GUARD_GOTO(cl_buf_resize(doc, need));
    CL_ENSURE_GOTO(json_dumpb(root, (char *)doc->data, need, JSON_COMPACT) == need, CL_ERR_INTERNAL,
                   "the job document could not be re-encoded");
out:
    if (root != NULL) {
        /* jansson's copy of the session's secret: wiped before it goes back to the heap. */
        json_t *cr = json_object_get(root, "Credentials");
        const char *names[] = {"SecretAccessKey", "SessionToken"};
        for (size_t i = 0; i < 2; i++) {
            json_t *v = json_object_get(cr, names[i]);
            if (json_is_string(v)) cl_memzero(CL_UNCONST(json_string_value(v)), json_string_length(v));
        }
        json_decref(root);
    }
    cl_memzero(chunk, sizeof(chunk));
    return rc;
}

/* Why an enclave ended without a result, from its launcher's exit status (the program's). */
static void run_exit_reason(const run_state *st, int status, char *out, size_t n)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    if (code == 128 + SIGKILL)
        (void)snprintf(out, n,
                       "the training enclave was killed (SIGKILL) before it reported a result: it went over its "
                       "memory limit of %llu MiB (the launcher's --memory); give the job more memory",
                       (unsigned long long)st->cfg.memory_mib);
    else
        (void)snprintf(out, n, "the training enclave ended (exit status %d) without reporting a result", code);
}

static void run_launcher_reason(run_state *st, char *out, size_t n)
{
    int status = 0;
    pid_t p;
    while ((p = waitpid(st->launcher, &status, 0)) < 0 && errno == EINTR) {
    }
    if (p == st->launcher) st->launcher = 0;
    run_exit_reason(st, status, out, n);
}

/* Connects to the job's vsock port once it listens (STATE/ID/vsock-PORT.sock), while the
 * enclave runs, until the deadline. */
static CL_MUST_USE cl_status run_connect(run_state *st, int64_t deadline, bool *stopped)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int m = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/vsock-%d.sock", st->cfg.state_dir, st->id, RUN_JOB_PORT);
    CL_ENSURE(m > 0 && (size_t)m < sizeof(sa.sun_path), CL_ERR_LIMIT, "the state directory's path is too long");
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            st->sock = fd;
            return CL_OK;
        }
        int e = errno;
        (void)close(fd);
        if (e != ENOENT && e != ECONNREFUSED) {
            errno = e;
            CL_FAIL_ERRNO(CL_ERR_IO, "connecting to the job at %s", sa.sun_path);
        }
        int status;
        if (waitpid(st->launcher, &status, WNOHANG) == st->launcher) {
            char why[400];
            st->launcher = 0;
            run_exit_reason(st, status, why, sizeof(why));
            CL_FAIL(CL_ERR_STATE, "%s", why);
        }
        int64_t left = deadline - run_now_ms();
        if (left <= 0) CL_FAIL(CL_ERR_EXPIRED, "max runtime");
        /* The job listens within moments of starting: look again in 10 ms, or on a signal. */
        struct pollfd pf = {.fd = st->sigfd, .events = POLLIN};
        if (poll(&pf, 1, left < 10 ? (int)left : 10) > 0) {
            *stopped = true;
            return CL_OK;
        }
    }
}

/* Relays the job's events until its result, the deadline or a signal. */
static void run_relay(run_state *st, int64_t deadline)
{
    cl_buf frame;
    cl_buf_init(&frame, RUN_EVENT_MAX);
    char reason[512];
    for (;;) {
        int64_t left = deadline - run_now_ms();
        if (left <= 0) {
            run_result(st, "Stopped", "MaxRuntimeExceeded", "the job ran over its maximum runtime (--max-runtime)",
                       NULL);
            break;
        }
        struct pollfd pf[2] = {{.fd = st->sock, .events = POLLIN}, {.fd = st->sigfd, .events = POLLIN}};
        int r = poll(pf, 2, left > 1000000 ? 1000000 : (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (pf[1].revents & POLLIN) {
            run_result(st, "Stopped", "Stopped", "the job was stopped (SIGTERM)", NULL);
            break;
        }
        if (r <= 0 || !(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        uint8_t type = 0;
        cl_buf_reset(&frame);
        cl_status rc = cl_frame_read(st->sock, RUN_EVENT_MAX, &type, &frame);
        if (rc != CL_OK) {
            if (rc == CL_ERR_NOT_FOUND) {
                run_launcher_reason(st, reason, sizeof(reason));
            } else {
                (void)snprintf(reason, sizeof(reason), "the job's report could not be read: %s", cl_error_message());
            }
            run_result(st, "Failed", "Failed", reason, NULL);
            break;
        }
        json_error_t jerr;
        json_t *ev = json_loadb((const char *)frame.data, frame.len, JSON_REJECT_DUPLICATES, &jerr);
        const char *kind = json_string_value(json_object_get(ev, "event"));
        if (type != CL_FRAME_RESULT || kind == NULL ||
            (strcmp(kind, "status") != 0 && strcmp(kind, "log") != 0 && strcmp(kind, "metric") != 0 &&
             strcmp(kind, "result") != 0)) {
            json_decref(ev);
            run_result(st, "Failed", "Failed", "the job sent a report that is not an event", NULL);
            break;
        }
        if (strcmp(kind, "result") == 0) {
            json_t *t = json_object_get(ev, "Timings");
            if (!json_is_object(t)) (void)json_object_set_new(ev, "Timings", t = json_object());
            (void)json_object_set_new(t, "enclave_start_ms", json_integer(st->enclave_start_ms));
            (void)json_object_set_new(t, "total_ms", json_integer(run_now_ms() - st->t_start));
            const char *s = json_string_value(json_object_get(ev, "TrainingJobStatus"));
            bool ok = s != NULL && strcmp(s, "Completed") == 0;
            run_emit(ev);
            st->result = ok ? 2 : 1;
            break;
        }
        run_emit(ev);
    }
    cl_buf_free(&frame);
}

/* Stops the enclave (SIGTERM to its launcher, which ends it and removes its state), then
 * SIGKILL if it has not ended in RUN_STOP_MS. */
static void run_stop(run_state *st)
{
    if (st->launcher <= 0) return;
    (void)kill(st->launcher, SIGTERM);
    int64_t until = run_now_ms() + RUN_STOP_MS;
    int status;
    while (waitpid(st->launcher, &status, WNOHANG) == 0) {
        if (run_now_ms() > until) {
            (void)kill(st->launcher, SIGKILL);
            (void)waitpid(st->launcher, &status, 0);
            break;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10000000L};
        (void)nanosleep(&ts, NULL);
    }
    st->launcher = 0;
}

int cmd_train_job_run(int argc, char **argv)
{
    static const char *cmd = "train-job run";
    enum { O_IMAGE = 1000, O_MEMORY, O_RUNTIME, O_PKI, O_STATE, O_CGROUP };
    static const struct option opts[] = {
        {"image", required_argument, NULL, O_IMAGE},
        {"memory", required_argument, NULL, O_MEMORY},
        {"max-runtime", required_argument, NULL, O_RUNTIME},
        {"pki", required_argument, NULL, O_PKI},
        {"state-dir", required_argument, NULL, O_STATE},
        {"cgroup", required_argument, NULL, O_CGROUP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static run_state st;
    memset(&st, 0, sizeof(st));
    st.sigfd = st.sock = -1;
    st.t_start = run_now_ms();
    st.cfg.memory_mib = 1024;
    uint64_t max_runtime = 86400, v = 0;
    const char *state = NULL;
    int c, ec;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_IMAGE: st.cfg.image_path = optarg; break;
        case O_MEMORY:
            if ((ec = cli_uint_option(cmd, "--memory (MiB)", optarg, 16, (uint64_t)1 << 20, &v)) != CLI_EXIT_OK)
                return ec;
            st.cfg.memory_mib = v;
            break;
        case O_RUNTIME:
            /* SageMaker's MaxRuntimeInSeconds: 1 to 28 days (StoppingCondition, API Reference). */
            if ((ec = cli_uint_option(cmd, "--max-runtime (seconds)", optarg, 1, 2419200, &max_runtime)) != CLI_EXIT_OK)
                return ec;
            break;
        case O_PKI: st.cfg.pki_dir = optarg; break;
        case O_STATE: state = optarg; break;
        case O_CGROUP:
            if (optarg[0] != '/' && strcmp(optarg, "none") != 0)
                return cli_usage_error(cmd, "--cgroup takes an absolute cgroup v2 directory, or none");
            st.cfg.cgroup = optarg;
            break;
        case 'h': fputs(run_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (st.cfg.image_path == NULL || optind != argc)
        return cli_usage_error(cmd, "give --image IMAGE and the job document on stdin, nothing else");
    cl_buf doc, sd, info;
    cl_buf_init_secret(&doc, RUN_DOC_MAX + 1);
    cl_buf_init(&sd, 4096);
    cl_buf_init(&info, 1 << 16);
    sigset_t mask, old;
    (void)sigemptyset(&mask);
    (void)sigaddset(&mask, SIGTERM);
    (void)sigaddset(&mask, SIGINT);
    (void)sigprocmask(SIG_BLOCK, &mask, &old);
    st.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    json_t *info_json = NULL;
    int64_t deadline = st.t_start + (int64_t)max_runtime * 1000;
    bool stopped = false;
    cl_status rc = st.sigfd >= 0 ? CL_OK : CL_RAISE_ERRNO(CL_ERR_IO, "signalfd");
    if (rc == CL_OK) rc = run_document(&st, &doc);
    if (rc != CL_OK) {
        ec = cli_report(rc); /* no job ran: a usage or document error, no result line */
        goto out;
    }
    rc = state != NULL ? cl_buf_append_str(&sd, state) : cl_enclave_default_state_dir(&sd);
    st.cfg.state_dir = cl_buf_cstr(&sd);
    st.cfg.quiet = true;
    st.cfg.stop_with_parent = true; /* the supervisor may SIGKILL the runner: the enclave goes too */
    run_emit(json_pack("{s:s, s:s, s:s}", "event", "status", "SecondaryStatus", "Starting", "StatusMessage",
                       "Starting the training enclave"));
    int64_t t0 = run_now_ms();
    if (rc == CL_OK) rc = cl_enclave_start(&st.cfg, &info, &st.launcher);
    st.enclave_start_ms = run_now_ms() - t0;
    if (rc == CL_OK) {
        json_error_t jerr;
        info_json = json_loadb((const char *)info.data, info.len, 0, &jerr);
        const char *id = json_string_value(json_object_get(info_json, "EnclaveID"));
        if (id == NULL || cl_enclave_check_id(id) != CL_OK)
            rc = CL_RAISE(CL_ERR_FORMAT, "the launcher did not say which enclave it started");
        else
            (void)snprintf(st.id, sizeof(st.id), "%s", id);
    }
    if (rc == CL_OK) rc = run_connect(&st, deadline, &stopped);
    if (rc == CL_OK && !stopped) rc = cl_frame_write(st.sock, CL_FRAME_REQUEST, doc.data, doc.len);
    cl_buf_free(&doc); /* the session's secret: wiped once the job has it */
    if (stopped) {
        run_result(&st, "Stopped", "Stopped", "the job was stopped (SIGTERM)", NULL);
    } else if (rc == CL_ERR_EXPIRED) {
        run_result(&st, "Stopped", "MaxRuntimeExceeded", "the job ran over its maximum runtime (--max-runtime)", NULL);
    } else if (rc != CL_OK) {
        char reason[1100];
        (void)snprintf(reason, sizeof(reason), "the training enclave could not start: %s", cl_error_message());
        run_result(&st, "Failed", "Failed", reason, NULL);
    } else {
        run_relay(&st, deadline);
    }
    ec = st.result == 2 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
out:
    if (st.sock >= 0) (void)close(st.sock);
    run_stop(&st);
    if (st.sigfd >= 0) {
        /* A SIGTERM that stopped the job is taken here, not delivered once unblocked: the runner
         * has reported it, and exits 1 as for any stopped job. */
        struct signalfd_siginfo si;
        while (read(st.sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        }
        (void)close(st.sigfd);
    }
    (void)sigprocmask(SIG_SETMASK, &old, NULL);
    json_decref(info_json);
    cl_buf_free(&doc);
    cl_buf_free(&sd);
    cl_buf_free(&info);
    return ec;
}
