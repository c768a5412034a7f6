/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: a training job's stored document (sagemaker_job.h). */
#include "sagemaker_job.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cloister/buf.h"

/* The jobs' lock: one read-modify-write of a job document at a time (they are short: one read
 * and one write of a small row). */
static pthread_mutex_t kms_job_mu = PTHREAD_MUTEX_INITIALIZER;

double kms_job_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)(long long)(ts.tv_nsec / 1000000) / 1000.0; /* whole milliseconds */
}

cl_status kms_job_load(kms_store *s, const char *account, const char *name, json_t **doc)
{
    cl_status rc = CL_OK;
    cl_buf text;
    cl_buf_init(&text, (size_t)4 << 20);
    *doc = NULL;
    CL_GUARD_GOTO(s->ops->job_get(s, account, name, &text));
    *doc = json_loadb((const char *)text.data, text.len, 0, NULL);
    CL_ENSURE_GOTO(json_is_object(*doc), CL_ERR_FORMAT,
                   "the stored training job %s of %s is not a JSON object; the store is damaged", name, account);
out:
    if (rc != CL_OK) {
        json_decref(*doc);
        *doc = NULL;
    }
    cl_buf_free(&text);
    return rc;
}

cl_status kms_job_save(kms_store *s, const char *account, const char *name, json_t *doc, kms_iam_put_mode mode)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    CL_ENSURE(text != NULL, CL_ERR_NOMEM, "out of memory for training job %s", name);
    cl_status rc = s->ops->job_put(s, account, name, text, mode, (int64_t)time(NULL));
    free(text);
    return rc;
}

cl_status kms_job_update(kms_store *s, const char *account, const char *name, kms_job_edit_fn fn, void *arg)
{
    cl_status rc = CL_OK;
    json_t *doc = NULL;
    pthread_mutex_lock(&kms_job_mu);
    CL_GUARD_GOTO(kms_job_load(s, account, name, &doc));
    CL_GUARD_GOTO(fn(arg, doc));
    CL_GUARD_GOTO(kms_job_save(s, account, name, doc, KMS_IAM_REPLACE));
out:
    pthread_mutex_unlock(&kms_job_mu);
    json_decref(doc);
    return rc;
}

static CL_MUST_USE cl_status kms_job_set(json_t *o, const char *key, json_t *v)
{
    CL_ENSURE(v != NULL && json_object_set_new(o, key, v) == 0, CL_ERR_NOMEM, "out of memory for a training job");
    return CL_OK;
}

cl_status kms_job_transition(json_t *doc, const char *status, const char *message, double now)
{
    json_t *list = json_object_get(doc, "SecondaryStatusTransitions");
    if (!json_is_array(list)) {
        CL_GUARD(kms_job_set(doc, "SecondaryStatusTransitions", json_array()));
        list = json_object_get(doc, "SecondaryStatusTransitions");
    }
    size_t n = json_array_size(list);
    json_t *last = n > 0 ? json_array_get(list, n - 1) : NULL;
    /* A status already current (the runner reports Starting, which the service set at creation)
     * is one transition, with the newer message: SageMaker lists each stage once. */
    const char *current = last != NULL ? json_string_value(json_object_get(last, "Status")) : NULL;
    if (current != NULL && strcmp(current, status) == 0 && json_object_get(last, "EndTime") == NULL) {
        if (message != NULL && message[0] != '\0') CL_GUARD(kms_job_set(last, "StatusMessage", json_string(message)));
        CL_GUARD(kms_job_set(doc, "LastModifiedTime", json_real(now)));
        return CL_OK;
    }
    if (last != NULL && json_object_get(last, "EndTime") == NULL)
        CL_GUARD(kms_job_set(last, "EndTime", json_real(now)));
    json_t *t = json_pack("{s:s, s:f, s:s}", "Status", status, "StartTime", now, "StatusMessage",
                          message != NULL ? message : "");
    CL_ENSURE(t != NULL && json_array_append_new(list, t) == 0, CL_ERR_NOMEM, "out of memory for a training job");
    CL_GUARD(kms_job_set(doc, "SecondaryStatus", json_string(status)));
    CL_GUARD(kms_job_set(doc, "LastModifiedTime", json_real(now)));
    return CL_OK;
}

bool kms_job_running(const json_t *doc)
{
    const char *st = json_string_value(json_object_get(doc, "TrainingJobStatus"));
    return st != NULL && (strcmp(st, "InProgress") == 0 || strcmp(st, "Stopping") == 0);
}

cl_status kms_job_finish(json_t *doc, const char *status, const char *secondary, const char *reason, double now)
{
    if (!kms_job_running(doc)) return CL_OK;
    if (reason == NULL && strcmp(status, "Completed") == 0) reason = "Training job completed"; /* SageMaker's words */
    CL_GUARD(kms_job_transition(doc, secondary, reason != NULL ? reason : "", now));
    /* The final transition is an instant: it starts and ends when the job ends. */
    json_t *list = json_object_get(doc, "SecondaryStatusTransitions");
    CL_GUARD(kms_job_set(json_array_get(list, json_array_size(list) - 1), "EndTime", json_real(now)));
    CL_GUARD(kms_job_set(doc, "TrainingJobStatus", json_string(status)));
    if (reason != NULL && strcmp(status, "Failed") == 0) {
        char cut[KMS_JOB_FAILURE_REASON_MAX + 1];
        (void)snprintf(cut, sizeof(cut), "%s", reason);
        CL_GUARD(kms_job_set(doc, "FailureReason", json_string(cut)));
    }
    CL_GUARD(kms_job_set(doc, "TrainingEndTime", json_real(now)));
    /* TrainingTimeInSeconds and BillableTimeInSeconds: from the start of training (or of the job
     * when it never got there) to its end, at least 1 (the model's minimum). */
    json_t *start = json_object_get(doc, "TrainingStartTime");
    double from =
        json_is_number(start) ? json_number_value(start) : json_number_value(json_object_get(doc, "CreationTime"));
    long long secs = (long long)(now - from + 0.5);
    if (secs < 1) secs = 1;
    CL_GUARD(kms_job_set(doc, "TrainingTimeInSeconds", json_integer(secs)));
    CL_GUARD(kms_job_set(doc, "BillableTimeInSeconds", json_integer(secs)));
    return CL_OK;
}

json_t *kms_job_public(const json_t *doc)
{
    json_t *out = json_deep_copy(doc);
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(out, tmp, key, v)
    {
        if (strncmp(key, "cl:", 3) == 0) (void)json_object_del(out, key);
    }
    return out;
}

void kms_job_stream(const json_t *doc, char out[KMS_JOB_STREAM_MAX + 1])
{
    (void)snprintf(out, KMS_JOB_STREAM_MAX + 1, "%.63s/algo-1-%lld",
                   json_string_value(json_object_get(doc, "TrainingJobName")) ?: "",
                   (long long)json_number_value(json_object_get(doc, "CreationTime")));
}

typedef struct kms_job_log_arg {
    kms_store *s;
    const char *account, *name, *message;
} kms_job_log_arg;

static CL_MUST_USE cl_status kms_job_log_edit(void *arg, json_t *doc)
{
    kms_job_log_arg *a = arg;
    json_int_t n = json_integer_value(json_object_get(doc, "cl:LogEvents"));
    if (n > KMS_JOB_LOG_EVENTS_MAX) return CL_OK;
    const char *msg =
        n < KMS_JOB_LOG_EVENTS_MAX ? a->message : "this job's log is full: later lines are dropped (at most 100000)";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    CL_GUARD(a->s->ops->job_event_add(a->s, a->account, a->name, n, ms, msg));
    CL_GUARD(kms_job_set(doc, "cl:LogEvents", json_integer(n + 1)));
    CL_GUARD(kms_job_set(doc, "cl:LastEventMs", json_integer(ms)));
    if (n == 0) CL_GUARD(kms_job_set(doc, "cl:FirstEventMs", json_integer(ms)));
    return CL_OK;
}

cl_status kms_job_log(kms_store *s, const char *account, const char *name, const char *message)
{
    kms_job_log_arg a = {.s = s, .account = account, .name = name, .message = message};
    return kms_job_update(s, account, name, kms_job_log_edit, &a);
}
