/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: the training jobs' supervisor (sagemaker_run.h, sagemaker.h). */
#include "sagemaker_run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cloister/buf.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "identity.h"
#include "sagemaker.h"
#include "sagemaker_job.h"

extern char **environ;

#define KMS_RUN_LINE_MAX 4096      /* a runner's event line, at most (the contract's bound) */
#define KMS_RUN_ERR_TAIL 4096      /* the runner's stderr kept for a failure reason */
#define KMS_RUN_DOC_MAX (64 << 10) /* the job document, at most */
#define KMS_RUN_QUOTE 200          /* bytes of an unparseable line quoted in the failure reason */

typedef struct kms_job_run {
    struct kms_job_run *next;
    kms_training *t;
    char account[KMS_ACCOUNT_LEN + 1];
    char name[KMS_JOB_NAME_MAX + 1];
    pid_t pid;
    int in_fd, out_fd, err_fd, pid_fd;
    int wake[2];
    cl_buf doc; /* secret: the job document, until written (then wiped) */
    size_t doc_off;
    int64_t max_runtime_ms;
    int64_t start_ms; /* monotonic */
    atomic_bool stop; /* StopTrainingJob asked */
    int64_t term_ms;  /* when SIGTERM went to the group (monotonic); 0: not yet */
    bool max_exceeded, killed, ended;
    char line[KMS_RUN_LINE_MAX + 1];
    size_t line_len;
    bool line_overflow;
    char err_tail[KMS_RUN_ERR_TAIL];
    size_t err_len;
} kms_job_run;

struct kms_training {
    kms_ctx *ctx;
    kms_training_config cfg;
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when a job thread ends */
    kms_job_run *runs;   /* running, under mu */
    int n_threads;       /* job threads alive, under mu */
    int reserved;        /* slots taken (running or being started), under mu */
    bool shutting;
};

static int64_t kms_run_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const kms_training_config *kms_training_settings(const kms_training *t) { return &t->cfg; }

/* Printable ASCII of at most cap - 1 bytes of (p, n): what a failure reason may quote of bytes
 * the runner wrote (no control character, nothing that is not ASCII). */
static void kms_run_sanitise(const char *p, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    cl_reader r = cl_reader_make(p, n);
    uint8_t ch;
    while (k + 1 < cap && cl_reader_u8(&r, &ch) == CL_OK) out[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    cl_error_clear();
    out[k] = '\0';
}

/* --- the job document's edits ---------------------------------------------------------- */

typedef struct kms_run_edit {
    const char *status, *secondary, *reason, *message;
    json_t *event;
} kms_run_edit;

static CL_MUST_USE cl_status kms_run_finish_edit(void *arg, json_t *doc)
{
    kms_run_edit *e = arg;
    return kms_job_finish(doc, e->status, e->secondary, e->reason, kms_job_now());
}

static void kms_run_finish(kms_job_run *r, const char *status, const char *secondary, const char *reason)
{
    kms_run_edit e = {.status = status, .secondary = secondary, .reason = reason};
    kms_store *s = r->t->ctx->store;
    if (kms_job_update(s, r->account, r->name, kms_run_finish_edit, &e) != CL_OK) {
        CL_LOG_ERROR("training job %s of %s: its end (%s) is not recorded: %s", r->name, r->account, status,
                     cl_error_message());
        cl_error_clear();
    }
    r->ended = true;
}

static bool kms_run_one_of(const char *v, const char *const *set)
{
    for (size_t i = 0; v != NULL && set[i] != NULL; i++)
        if (strcmp(v, set[i]) == 0) return true;
    return false;
}

static CL_MUST_USE cl_status kms_run_status_edit(void *arg, json_t *doc)
{
    kms_run_edit *e = arg;
    if (!kms_job_running(doc)) return CL_OK;
    double now = kms_job_now();
    CL_GUARD(kms_job_transition(doc, e->secondary, e->message, now));
    if (strcmp(e->secondary, "Training") == 0 && json_object_get(doc, "TrainingStartTime") == NULL)
        CL_ENSURE(json_object_set_new(doc, "TrainingStartTime", json_real(now)) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

static CL_MUST_USE cl_status kms_run_metric_edit(void *arg, json_t *doc)
{
    kms_run_edit *e = arg;
    json_t *m = json_object_get(doc, "cl:Metrics");
    if (!json_is_object(m)) {
        CL_ENSURE(json_object_set_new(doc, "cl:Metrics", json_object()) == 0, CL_ERR_NOMEM, "out of memory");
        m = json_object_get(doc, "cl:Metrics");
    }
    const char *name = json_string_value(json_object_get(e->event, "MetricName"));
    /* FinalMetricDataList holds at most 40 metrics (the model's bound). */
    if (json_object_size(m) >= 40 && json_object_get(m, name) == NULL) return CL_OK;
    json_t *v = json_pack("{s:O, s:s, s:f}", "Value", json_object_get(e->event, "Value"), "MetricName", name,
                          "Timestamp", kms_job_now());
    CL_ENSURE(v != NULL && json_object_set_new(m, name, v) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

/* The runner's result: its statuses, reason, artifacts and final metrics (those it reported as
 * metric events first, the result's own replacing them by name). */
static CL_MUST_USE cl_status kms_run_result_edit(void *arg, json_t *doc)
{
    kms_run_edit *e = arg;
    if (!kms_job_running(doc)) return CL_OK;
    json_t *ev = e->event;
    json_t *art = json_object_get(json_object_get(ev, "ModelArtifacts"), "S3ModelArtifacts");
    if (json_is_string(art) && strcmp(e->status, "Completed") == 0)
        CL_ENSURE(json_object_set_new(doc, "ModelArtifacts", json_pack("{s:O}", "S3ModelArtifacts", art)) == 0,
                  CL_ERR_NOMEM, "out of memory");
    json_t *m = json_object_get(doc, "cl:Metrics");
    json_t *list = json_array();
    CL_ENSURE(list != NULL, CL_ERR_NOMEM, "out of memory");
    json_t *fin = json_object_get(ev, "FinalMetricDataList");
    size_t i;
    json_t *x;
    json_array_foreach(fin, i, x)
    {
        const char *name = json_string_value(json_object_get(x, "MetricName"));
        json_t *val = json_object_get(x, "Value");
        if (name == NULL || !json_is_number(val) || strlen(name) > 255 || json_array_size(list) >= 40) continue;
        if (json_is_object(m)) (void)json_object_del(m, name);
        (void)json_array_append_new(
            list, json_pack("{s:s, s:O, s:f}", "MetricName", name, "Value", val, "Timestamp", kms_job_now()));
    }
    const char *key;
    json_object_foreach(m, key, x)
    {
        if (json_array_size(list) < 40) (void)json_array_append(list, x);
    }
    CL_ENSURE(json_object_set_new(doc, "FinalMetricDataList", list) == 0, CL_ERR_NOMEM, "out of memory");
    return kms_job_finish(doc, e->status, e->secondary, e->reason, kms_job_now());
}

/* --- the runner's events --------------------------------------------------------------- */

/* The runner broke the protocol: the job fails quoting what it wrote, and the runner is stopped. */
static void kms_run_garbage(kms_job_run *r, const char *what, const char *p, size_t n)
{
    if (r->ended) return;
    char quote[KMS_RUN_QUOTE + 1], reason[512];
    kms_run_sanitise(p, n, quote, sizeof(quote));
    (void)snprintf(reason, sizeof(reason), "the training runner broke its event protocol (%s): \"%s\"", what, quote);
    CL_LOG_WARN("training job %s of %s: %s", r->name, r->account, reason);
    kms_run_finish(r, "Failed", "Failed", reason);
    if (r->term_ms == 0) {
        (void)killpg(r->pid, SIGTERM);
        r->term_ms = kms_run_ms();
    }
}

static void kms_run_event(kms_job_run *r, const char *p, size_t n)
{
    static const char *const secondaries[] = {"Starting",
                                              "LaunchingMLInstances",
                                              "PreparingTrainingStack",
                                              "Downloading",
                                              "DownloadingTrainingImage",
                                              "Training",
                                              "Uploading",
                                              NULL};
    static const char *const ends[] = {"Completed", "Failed", "Stopped", NULL};
    static const char *const end_secondaries[] = {"Completed", "Failed", "Stopped", "MaxRuntimeExceeded", NULL};
    if (r->ended) return; /* after the result (or a fault), nothing more is recorded */
    json_error_t jerr;
    json_t *ev = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    const char *kind = json_string_value(json_object_get(ev, "event"));
    kms_store *s = r->t->ctx->store;
    kms_run_edit e = {.event = ev};
    cl_status rc = CL_OK;
    if (!json_is_object(ev) || kind == NULL) {
        kms_run_garbage(r, "not a JSON object with an \"event\"", p, n);
    } else if (strcmp(kind, "status") == 0) {
        e.secondary = json_string_value(json_object_get(ev, "SecondaryStatus"));
        e.message = json_string_value(json_object_get(ev, "StatusMessage"));
        if (!kms_run_one_of(e.secondary, secondaries))
            kms_run_garbage(r, "a status event's SecondaryStatus is not one of SageMaker's", p, n);
        else
            rc = kms_job_update(s, r->account, r->name, kms_run_status_edit, &e);
    } else if (strcmp(kind, "log") == 0) {
        const char *msg = json_string_value(json_object_get(ev, "message"));
        if (msg == NULL) {
            kms_run_garbage(r, "a log event without its message", p, n);
        } else {
            char clean[KMS_RUN_LINE_MAX + 1];
            kms_run_sanitise(msg, json_string_length(json_object_get(ev, "message")), clean, sizeof(clean));
            rc = kms_job_log(s, r->account, r->name, clean);
        }
    } else if (strcmp(kind, "metric") == 0) {
        const char *name = json_string_value(json_object_get(ev, "MetricName"));
        if (name == NULL || name[0] == '\0' || strlen(name) > 255 || !json_is_number(json_object_get(ev, "Value")))
            kms_run_garbage(r, "a metric event needs MetricName (1..255 characters) and a numeric Value", p, n);
        else
            rc = kms_job_update(s, r->account, r->name, kms_run_metric_edit, &e);
    } else if (strcmp(kind, "result") == 0) {
        e.status = json_string_value(json_object_get(ev, "TrainingJobStatus"));
        e.secondary = json_string_value(json_object_get(ev, "SecondaryStatus"));
        e.reason = json_string_value(json_object_get(ev, "FailureReason"));
        if (!kms_run_one_of(e.status, ends) || !kms_run_one_of(e.secondary, end_secondaries)) {
            kms_run_garbage(r, "a result's TrainingJobStatus or SecondaryStatus is not one of SageMaker's", p, n);
        } else {
            json_t *tm = json_object_get(ev, "Timings");
            if (json_is_object(tm)) {
                /* Numbers only: the split of the job's time, for docs/performance.md. */
                cl_buf line;
                cl_buf_init(&line, 1024);
                const char *k;
                json_t *v;
                cl_status lrc = cl_buf_append_str(&line, "timings:");
                json_object_foreach(tm, k, v)
                {
                    if (lrc == CL_OK && json_is_number(v) && strlen(k) <= 32 &&
                        strspn(k, "abcdefghijklmnopqrstuvwxyz_") == strlen(k))
                        lrc = cl_buf_printf(&line, " %s=%.0f", k, json_number_value(v));
                }
                if (lrc == CL_OK) lrc = kms_job_log(s, r->account, r->name, cl_buf_cstr(&line));
                if (lrc != CL_OK) cl_error_clear();
                cl_buf_free(&line);
            }
            rc = kms_job_update(s, r->account, r->name, kms_run_result_edit, &e);
            r->ended = true;
        }
    } else {
        kms_run_garbage(r, "an unknown event", p, n);
    }
    if (rc != CL_OK) {
        CL_LOG_ERROR("training job %s of %s: a report is not recorded: %s", r->name, r->account, cl_error_message());
        cl_error_clear();
    }
    json_decref(ev);
}

/* Splits what the runner wrote on stdout into lines of at most KMS_RUN_LINE_MAX bytes. */
static void kms_run_stdout(kms_job_run *r, const char *buf, size_t n)
{
    cl_reader rd = cl_reader_make(buf, n), part;
    bool nl = true;
    while (cl_reader_remaining(&rd) > 0) {
        cl_reader_until(&rd, '\n', &part, &nl);
        size_t len = cl_reader_remaining(&part);
        if (!r->line_overflow && r->line_len + len <= KMS_RUN_LINE_MAX) {
            if (cl_reader_copy(&part, r->line + r->line_len, len) != CL_OK) cl_error_clear();
            r->line_len += len;
        } else if (!r->line_overflow) {
            /* Quoted from its start: what fits of this piece after what came before. */
            size_t room = KMS_RUN_LINE_MAX - r->line_len;
            if (cl_reader_copy(&part, r->line + r->line_len, room < len ? room : len) != CL_OK) cl_error_clear();
            r->line_overflow = true;
            kms_run_garbage(r, "a line longer than 4096 bytes", r->line, KMS_RUN_LINE_MAX);
        }
        if (!nl) break;
        if (cl_reader_skip(&rd, 1) != CL_OK) cl_error_clear();
        if (!r->line_overflow && r->line_len > 0) kms_run_event(r, r->line, r->line_len);
        r->line_len = 0;
        r->line_overflow = false;
    }
}

static void kms_run_stderr(kms_job_run *r, const char *buf, size_t n)
{
    if (n >= KMS_RUN_ERR_TAIL) {
        memcpy(r->err_tail, buf + (n - KMS_RUN_ERR_TAIL), KMS_RUN_ERR_TAIL);
        r->err_len = KMS_RUN_ERR_TAIL;
        return;
    }
    if (r->err_len + n > KMS_RUN_ERR_TAIL) {
        size_t drop = r->err_len + n - KMS_RUN_ERR_TAIL;
        memmove(r->err_tail, r->err_tail + drop, r->err_len - drop);
        r->err_len -= drop;
    }
    memcpy(r->err_tail + r->err_len, buf, n);
    r->err_len += n;
}

/* The last non-empty line of the runner's stderr, sanitised, into out ("" when none). */
static void kms_run_last_err_line(const kms_job_run *r, char *out, size_t cap)
{
    size_t end = r->err_len;
    while (end > 0 && (r->err_tail[end - 1] == '\n' || r->err_tail[end - 1] == '\r')) end--;
    size_t start = end;
    while (start > 0 && r->err_tail[start - 1] != '\n') start--;
    kms_run_sanitise(r->err_tail + start, end - start, out, cap);
}

/* Reads what fd has now (non-blocking); false at its end (or a read error). */
static bool kms_run_read(kms_job_run *r, int fd, bool is_stdout)
{
    char buf[8192];
    for (;;) {
        ssize_t got = read(fd, buf, sizeof(buf));
        if (got > 0) {
            if (is_stdout)
                kms_run_stdout(r, buf, (size_t)got);
            else
                kms_run_stderr(r, buf, (size_t)got);
            continue;
        }
        if (got < 0 && errno == EINTR) continue;
        return got < 0 && errno == EAGAIN;
    }
}

static void kms_run_close(int *fd)
{
    if (*fd >= 0) (void)close(*fd);
    *fd = -1;
}

/* The job's end when the runner exited without its result. */
static void kms_run_exited(kms_job_run *r, int status)
{
    if (r->ended) return;
    if (atomic_load(&r->stop)) {
        kms_run_finish(r, "Stopped", "Stopped", NULL);
        return;
    }
    if (r->max_exceeded) {
        /* SageMaker's words for a job stopped at MaxRuntimeInSeconds. */
        kms_run_finish(r, "Stopped", "MaxRuntimeExceeded",
                       "Training job runtime exceeded MaxRuntimeInSeconds provided");
        return;
    }
    char how[64], err[600], reason[KMS_JOB_FAILURE_REASON_MAX];
    if (WIFEXITED(status))
        (void)snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
    else
        (void)snprintf(how, sizeof(how), "was killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    kms_run_last_err_line(r, err, sizeof(err));
    (void)snprintf(reason, sizeof(reason), "the training runner %s without reporting a result%s%s", how,
                   err[0] ? ": " : " (it wrote nothing on stderr)", err);
    kms_run_finish(r, "Failed", "Failed", reason);
}

static void *kms_run_thread(void *arg)
{
    kms_job_run *r = arg;
    kms_training *t = r->t;
    int64_t grace_ms = (int64_t)t->cfg.stop_grace * 1000;
    int status = 0;
    bool exited = false;
    while (!exited) {
        int64_t now = kms_run_ms();
        bool shutting;
        pthread_mutex_lock(&t->mu);
        shutting = t->shutting;
        pthread_mutex_unlock(&t->mu);
        if (shutting) {
            (void)killpg(r->pid, SIGKILL);
            r->killed = true;
        }
        /* StopTrainingJob, or MaxRuntimeInSeconds overstayed by the grace period: SIGTERM (the
         * runner stops the enclave and reports Stopped); a grace period later, SIGKILL. */
        if (r->term_ms == 0 && atomic_load(&r->stop)) {
            (void)killpg(r->pid, SIGTERM);
            r->term_ms = now;
        }
        if (r->term_ms == 0 && now >= r->start_ms + r->max_runtime_ms + grace_ms) {
            CL_LOG_WARN("training job %s of %s: its runner overstayed MaxRuntimeInSeconds by %d s: stopping it",
                        r->name, r->account, t->cfg.stop_grace);
            r->max_exceeded = true;
            (void)killpg(r->pid, SIGTERM);
            r->term_ms = now;
        }
        if (r->term_ms != 0 && !r->killed && now >= r->term_ms + grace_ms) {
            CL_LOG_WARN("training job %s of %s: its runner did not stop %d s after SIGTERM: killing it", r->name,
                        r->account, t->cfg.stop_grace);
            (void)killpg(r->pid, SIGKILL);
            r->killed = true;
        }
        int64_t next = r->term_ms == 0 ? r->start_ms + r->max_runtime_ms + grace_ms : r->term_ms + grace_ms;
        int timeout = r->killed ? -1 : next - now > INT_MAX ? INT_MAX : next - now < 0 ? 0 : (int)(next - now);
        struct pollfd p[5];
        nfds_t np = 0;
        int i_in = -1, i_out = -1, i_err = -1;
        p[np++] = (struct pollfd){.fd = r->pid_fd, .events = POLLIN};
        p[np++] = (struct pollfd){.fd = r->wake[0], .events = POLLIN};
        if (r->in_fd >= 0) {
            i_in = (int)np;
            p[np++] = (struct pollfd){.fd = r->in_fd, .events = POLLOUT};
        }
        if (r->out_fd >= 0) {
            i_out = (int)np;
            p[np++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
        }
        if (r->err_fd >= 0) {
            i_err = (int)np;
            p[np++] = (struct pollfd){.fd = r->err_fd, .events = POLLIN};
        }
        int got = poll(p, np, timeout);
        if (got < 0 && errno != EINTR) {
            CL_LOG_ERROR("training job %s: poll: %s; killing its runner", r->name, strerror(errno));
            (void)killpg(r->pid, SIGKILL);
            r->killed = true;
        }
        if (got <= 0) continue;
        if (p[1].revents != 0) {
            char drain[64];
            while (read(r->wake[0], drain, sizeof(drain)) > 0) {
            }
        }
        if (i_in >= 0 && p[i_in].revents != 0) {
            ssize_t w = write(r->in_fd, r->doc.data + r->doc_off, r->doc.len - r->doc_off);
            if (w > 0) r->doc_off += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || r->doc_off == r->doc.len) {
                /* Written (or the runner closed its stdin): the credentials leave our memory. */
                kms_run_close(&r->in_fd);
                cl_buf_free(&r->doc);
            }
        }
        if (i_out >= 0 && p[i_out].revents != 0 && !kms_run_read(r, r->out_fd, true)) kms_run_close(&r->out_fd);
        if (i_err >= 0 && p[i_err].revents != 0 && !kms_run_read(r, r->err_fd, false)) kms_run_close(&r->err_fd);
        /* The pidfd is readable once the runner has exited; it stays a zombie until waitpid, so
         * its pid (and the group's id) cannot name another process meanwhile. */
        if (p[0].revents != 0) exited = true;
    }
    /* What it wrote before exiting is still in the pipes. */
    if (r->out_fd >= 0) (void)kms_run_read(r, r->out_fd, true);
    if (r->err_fd >= 0) (void)kms_run_read(r, r->err_fd, false);
    (void)killpg(r->pid, SIGKILL); /* whatever it left behind in its group, before the pid is reaped */
    while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR) {
    }
    pthread_mutex_lock(&t->mu);
    bool shutting = t->shutting;
    pthread_mutex_unlock(&t->mu);
    if (!shutting) kms_run_exited(r, status);
    CL_LOG_INFO("training job %s of %s: runner %d ended", r->name, r->account, (int)r->pid);
    /* Out of the list before its wake pipe closes (StopTrainingJob writes to it under mu); t is
     * not touched once the count is down (kms_training_free may free it then). */
    pthread_mutex_lock(&t->mu);
    for (kms_job_run **pp = &t->runs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    }
    t->reserved--;
    t->n_threads--;
    pthread_cond_broadcast(&t->idle);
    pthread_mutex_unlock(&t->mu);
    kms_run_close(&r->in_fd);
    kms_run_close(&r->out_fd);
    kms_run_close(&r->err_fd);
    kms_run_close(&r->pid_fd);
    kms_run_close(&r->wake[0]);
    kms_run_close(&r->wake[1]);
    cl_buf_free(&r->doc);
    cl_memzero(r, sizeof(*r));
    free(r);
    return NULL;
}

/* --- starting a job ---------------------------------------------------------------------- */

cl_status kms_training_reserve(kms_training *t)
{
    cl_status rc = CL_OK;
    pthread_mutex_lock(&t->mu);
    if (t->reserved >= t->cfg.max_jobs)
        rc = CL_RAISE(CL_ERR_LIMIT,
                      "%d training jobs are running, the most this server runs at once (training.max_jobs); wait for "
                      "one to end or stop one",
                      t->reserved);
    else
        t->reserved++;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

void kms_training_unreserve(kms_training *t)
{
    pthread_mutex_lock(&t->mu);
    t->reserved--;
    pthread_mutex_unlock(&t->mu);
}

/* The job document (TRAIN-CONTRACT.md, "Job document") into r->doc, a secret buffer. */
static CL_MUST_USE cl_status kms_run_document(kms_training *t, const kms_job_spec *spec, kms_job_run *r)
{
    cl_status rc = CL_OK;
    const json_t *q = spec->request;
    json_t *d = json_pack("{s:s, s:O, s:O, s:O, s:s, s:{s:s, s:s}, s:o}", "TrainingJobName", spec->name,
                          "HyperParameters", json_object_get(q, "HyperParameters") ?: json_object(), "InputDataConfig",
                          json_object_get(q, "InputDataConfig") ?: json_array(), "OutputDataConfig",
                          json_object_get(q, "OutputDataConfig"), "Region", spec->region, "Endpoints", "kms",
                          t->cfg.endpoint, "s3", t->cfg.endpoint, "CaFile",
                          t->cfg.ca_file[0] != '\0' ? json_string(t->cfg.ca_file) : json_null());
    char *text = NULL;
    CL_ENSURE_GOTO(d != NULL, CL_ERR_NOMEM, "out of memory for the job document");
    /* The credentials last: appended as text into the secret buffer, never in a jansson string. */
    text = json_dumps(d, JSON_COMPACT);
    CL_ENSURE_GOTO(text != NULL && text[0] == '{', CL_ERR_NOMEM, "out of memory for the job document");
    size_t tl = strlen(text);
    CL_GUARD_GOTO(cl_buf_append(&r->doc, text, tl - 1));
    CL_GUARD_GOTO(cl_buf_printf(&r->doc,
                                ",\"Credentials\":{\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\","
                                "\"SessionToken\":\"%s\",\"Expiration\":%lld}}\n",
                                spec->session->access_key_id, spec->session->secret, spec->session_token,
                                (long long)spec->session->expires));
out:
    free(text);
    json_decref(d);
    return rc;
}

static CL_MUST_USE cl_status kms_run_pipe(int fds[2])
{
    CL_ENSURE(pipe2(fds, O_CLOEXEC) == 0, CL_ERR_IO, "creating a pipe for the training runner: %s", strerror(errno));
    return CL_OK;
}

cl_status kms_training_launch(kms_training *t, const kms_job_spec *spec)
{
    cl_status rc = CL_OK;
    int in[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    bool fa_ok = false, at_ok = false, started = false;
    kms_job_run *r = calloc(1, sizeof(*r));
    CL_ENSURE_GOTO(r != NULL, CL_ERR_NOMEM, "out of memory for a training job");
    r->t = t;
    r->in_fd = r->out_fd = r->err_fd = r->pid_fd = r->wake[0] = r->wake[1] = -1;
    cl_buf_init_secret(&r->doc, KMS_RUN_DOC_MAX);
    (void)snprintf(r->account, sizeof(r->account), "%s", spec->account);
    (void)snprintf(r->name, sizeof(r->name), "%s", spec->name);
    r->max_runtime_ms = spec->max_runtime * 1000;
    CL_GUARD_GOTO(kms_run_document(t, spec, r));
    CL_GUARD_GOTO(kms_run_pipe(in));
    CL_GUARD_GOTO(kms_run_pipe(outp));
    CL_GUARD_GOTO(kms_run_pipe(errp));
    CL_ENSURE_GOTO(pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) == 0, CL_ERR_IO, "creating a pipe: %s", strerror(errno));
    /* argv: RUNNER... --image PATH --memory MIB --max-runtime SECONDS [--pki DIR] [--state-dir DIR]
     * (TRAIN-CONTRACT.md, "The flow"); no secret in it: /proc/PID/cmdline is world-readable. */
    char mem[24], maxrt[24];
    (void)snprintf(mem, sizeof(mem), "%llu", (unsigned long long)spec->memory_mib);
    (void)snprintf(maxrt, sizeof(maxrt), "%lld", (long long)spec->max_runtime);
    char *argv[KMS_TRAIN_RUNNER_ARGS_MAX + 12];
    size_t n = 0;
    for (size_t i = 0; i < t->cfg.n_runner; i++) argv[n++] = t->cfg.runner[i];
    argv[n++] = CL_UNCONST("--image");
    argv[n++] = CL_UNCONST(spec->image_path);
    argv[n++] = CL_UNCONST("--memory");
    argv[n++] = mem;
    argv[n++] = CL_UNCONST("--max-runtime");
    argv[n++] = maxrt;
    if (t->cfg.pki_dir[0] != '\0') {
        argv[n++] = CL_UNCONST("--pki");
        argv[n++] = t->cfg.pki_dir;
    }
    if (t->cfg.state_dir[0] != '\0') {
        argv[n++] = CL_UNCONST("--state-dir");
        argv[n++] = t->cfg.state_dir;
    }
    argv[n] = NULL;
    CL_ENSURE_GOTO(posix_spawn_file_actions_init(&fa) == 0, CL_ERR_NOMEM, "out of memory");
    fa_ok = true;
    CL_ENSURE_GOTO(posix_spawnattr_init(&at) == 0, CL_ERR_NOMEM, "out of memory");
    at_ok = true;
    /* Its own process group (killpg reaches whatever it starts); signals as a fresh process has
     * them (the server ignores SIGPIPE and SIGXFSZ); only fds 0..2 open (the server's listening
     * socket, store and audit log are not the runner's). */
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    sigaddset(&dfl, SIGXFSZ);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGHUP);
    int e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (e == 0) e = posix_spawnattr_setpgroup(&at, 0);
    if (e == 0) e = posix_spawnattr_setsigmask(&at, &none);
    if (e == 0) e = posix_spawnattr_setsigdefault(&at, &dfl);
    if (e == 0) e = posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    if (e == 0) e = posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
    if (e == 0) e = posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
    if (e == 0) e = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    CL_ENSURE_GOTO(e == 0, CL_ERR_IO, "preparing the training runner's start: %s", strerror(e));
    e = posix_spawn(&r->pid, argv[0], &fa, &at, argv, environ);
    CL_ENSURE_GOTO(e == 0, CL_ERR_IO,
                   "could not start the training runner %s: %s (training.runner of cloister-kms's configuration)",
                   argv[0], strerror(e));
    started = true;
    int pfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    if (pfd < 0) {
        (void)killpg(r->pid, SIGKILL);
        (void)waitpid(r->pid, NULL, 0);
        CL_FAIL_GOTO(CL_ERR_IO, "pidfd_open for the training runner: %s (Linux 5.3 or later is needed)",
                     strerror(errno));
    }
    r->pid_fd = pfd;
    r->in_fd = in[1];
    r->out_fd = outp[0];
    r->err_fd = errp[0];
    in[1] = outp[0] = errp[0] = -1;
    (void)fcntl(r->in_fd, F_SETFL, O_NONBLOCK);
    (void)fcntl(r->out_fd, F_SETFL, O_NONBLOCK);
    (void)fcntl(r->err_fd, F_SETFL, O_NONBLOCK);
    r->start_ms = kms_run_ms();
    CL_LOG_INFO("training job %s of %s: runner %d started (%s, %s MiB, at most %s s)", r->name, r->account, (int)r->pid,
                spec->image_path, mem, maxrt);
    pthread_t th;
    pthread_mutex_lock(&t->mu);
    r->next = t->runs;
    t->runs = r;
    t->n_threads++;
    e = pthread_create(&th, NULL, kms_run_thread, r);
    if (e == 0) {
        (void)pthread_detach(th);
    } else {
        t->runs = r->next;
        t->n_threads--;
    }
    pthread_mutex_unlock(&t->mu);
    if (e != 0) {
        (void)killpg(r->pid, SIGKILL);
        (void)waitpid(r->pid, NULL, 0);
        CL_FAIL_GOTO(CL_ERR_IO, "could not start the training job's thread: %s", strerror(e));
    }
    r = NULL; /* the thread's now */
out:
    (void)started;
    if (fa_ok) posix_spawn_file_actions_destroy(&fa);
    if (at_ok) posix_spawnattr_destroy(&at);
    for (int i = 0; i < 2; i++) {
        kms_run_close(&in[i]);
        kms_run_close(&outp[i]);
        kms_run_close(&errp[i]);
    }
    if (r != NULL) {
        kms_run_close(&r->in_fd);
        kms_run_close(&r->out_fd);
        kms_run_close(&r->err_fd);
        kms_run_close(&r->pid_fd);
        kms_run_close(&r->wake[0]);
        kms_run_close(&r->wake[1]);
        cl_buf_free(&r->doc);
        free(r);
        kms_training_unreserve(t);
    }
    return rc;
}

cl_status kms_training_stop_job(kms_training *t, const char *account, const char *name)
{
    cl_status rc = CL_OK;
    pthread_mutex_lock(&t->mu);
    kms_job_run *r = t->runs;
    while (r != NULL && (strcmp(r->account, account) != 0 || strcmp(r->name, name) != 0)) r = r->next;
    if (r == NULL) {
        rc = CL_RAISE(CL_ERR_NOT_FOUND, "training job %s runs under no runner of this server", name);
    } else {
        atomic_store(&r->stop, true);
        if (write(r->wake[1], "s", 1) < 0) { /* full: a wake-up is pending already */
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* --- start and stop -------------------------------------------------------------------- */

typedef struct kms_run_found {
    char (*keys)[KMS_ACCOUNT_LEN + KMS_JOB_NAME_MAX + 2];
    size_t n, cap;
    char last[KMS_ACCOUNT_LEN + KMS_JOB_NAME_MAX + 2];
} kms_run_found;

static CL_MUST_USE cl_status kms_run_find_running(void *arg, const char *key, const char *doc)
{
    kms_run_found *f = arg;
    (void)snprintf(f->last, sizeof(f->last), "%s", key);
    json_t *d = json_loads(doc, 0, NULL);
    bool running = kms_job_running(d);
    json_decref(d);
    if (!running) return CL_OK;
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        void *p = realloc(f->keys, cap * sizeof(*f->keys));
        CL_ENSURE(p != NULL, CL_ERR_NOMEM, "out of memory");
        f->keys = p;
        f->cap = cap;
    }
    (void)snprintf(f->keys[f->n++], sizeof(f->keys[0]), "%s", key);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_run_restart_edit(void *arg, json_t *doc)
{
    (void)arg;
    return kms_job_finish(doc, "Failed", "Failed", KMS_JOB_RESTARTED, kms_job_now());
}

/* Jobs of a server that is gone: Failed (sagemaker.h). */
static CL_MUST_USE cl_status kms_run_fail_orphans(kms_store *s)
{
    cl_status rc = CL_OK;
    kms_run_found f = {0};
    bool more = true;
    while (more) {
        char after[sizeof(f.last)];
        (void)snprintf(after, sizeof(after), "%s", f.last);
        CL_GUARD_GOTO(s->ops->job_list(s, NULL, after, 500, kms_run_find_running, &f, &more));
    }
    for (size_t i = 0; i < f.n; i++) {
        char *slash = strchr(f.keys[i], '/');
        if (slash == NULL) continue;
        *slash = '\0';
        CL_GUARD_GOTO(kms_job_update(s, f.keys[i], slash + 1, kms_run_restart_edit, NULL));
        CL_LOG_WARN("training job %s of %s: Failed: %s", slash + 1, f.keys[i], KMS_JOB_RESTARTED);
    }
out:
    free(f.keys);
    return rc;
}

cl_status kms_training_start(kms_ctx *ctx, const kms_config *cfg, const char *listen, bool tls,
                             struct kms_training **out)
{
    cl_status rc = CL_OK;
    kms_training *t = calloc(1, sizeof(*t));
    CL_ENSURE(t != NULL, CL_ERR_NOMEM, "out of memory");
    t->ctx = ctx;
    t->cfg = cfg->training;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->idle, NULL);
    if (t->cfg.max_jobs == 0) t->cfg.max_jobs = KMS_TRAIN_MAX_JOBS_DEFAULT;
    if (t->cfg.max_memory_mib == 0) t->cfg.max_memory_mib = KMS_TRAIN_MAX_MEMORY_DEFAULT_MIB;
    if (t->cfg.stop_grace == 0) t->cfg.stop_grace = KMS_TRAIN_STOP_GRACE_DEFAULT;
    if (t->cfg.endpoint[0] == '\0')
        (void)snprintf(t->cfg.endpoint, sizeof(t->cfg.endpoint), "%s://%s", tls ? "https" : "http", listen);
    if (t->cfg.n_runner == 0) {
        /* `cloister train-job run`, the cloister next to this cloister-kms. */
        char self[KMS_PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
        CL_ENSURE_GOTO(n > 0, CL_ERR_IO, "reading /proc/self/exe (for the default training.runner): %s",
                       strerror(errno));
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) *slash = '\0';
        int w = snprintf(t->cfg.runner[0], KMS_PATH_MAX, "%s/cloister", self);
        CL_ENSURE_GOTO(w > 0 && w < KMS_PATH_MAX, CL_ERR_USAGE, "the path of cloister-kms is too long");
        (void)snprintf(t->cfg.runner[1], KMS_PATH_MAX, "train-job");
        (void)snprintf(t->cfg.runner[2], KMS_PATH_MAX, "run");
        t->cfg.n_runner = 3;
    }
    CL_GUARD_GOTO(kms_run_fail_orphans(ctx->store));
    *out = t;
    t = NULL;
out:
    if (t != NULL) kms_training_free(t);
    return rc;
}

void kms_training_free(struct kms_training *t)
{
    if (t == NULL) return;
    pthread_mutex_lock(&t->mu);
    t->shutting = true;
    for (kms_job_run *r = t->runs; r != NULL; r = r->next)
        if (write(r->wake[1], "x", 1) < 0) { /* full: a wake-up is pending already */
        }
    while (t->n_threads > 0) pthread_cond_wait(&t->idle, &t->mu);
    pthread_mutex_unlock(&t->mu);
    pthread_cond_destroy(&t->idle);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
