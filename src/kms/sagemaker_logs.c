/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: CloudWatch Logs' reads of training jobs' logs (sagemaker.h): GetLogEvents and
 * DescribeLogStreams on the log group /aws/sagemaker/TrainingJobs, one stream per job named
 * "NAME/algo-1-EPOCH" as SageMaker names them (SageMaker Developer Guide, "Log Amazon SageMaker
 * AI events with Amazon CloudWatch"). Shapes and bounds: botocore's logs/2014-03-28 model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/buf.h"

#include "authorize.h"
#include "sagemaker.h"
#include "sagemaker_job.h"

#define KMS_LOGS_PAGE_BYTES ((size_t)1 << 20) /* GetLogEvents answers at most 1 MB, as AWS's */
#define KMS_LOGS_EVENTS_MAX 10000             /* limit: 1..10000, the default */
#define KMS_LOGS_STREAMS_MAX 50               /* DescribeLogStreams' limit: 1..50, the default */

#define LOGS_FAIL(c, exc, ...) \
    do { \
        (c)->exception = (exc); \
        CL_FAIL(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)
#define LOGS_FAIL_GOTO(c, exc, ...) \
    do { \
        (c)->exception = (exc); \
        CL_FAIL_GOTO(CL_ERR_USAGE, __VA_ARGS__); \
    } while (0)
#define LOGS_INVALID "InvalidParameterException"
#define LOGS_NOT_FOUND "ResourceNotFoundException"

static CL_MUST_USE cl_status kms_logs_authorize(kms_json_call *c, const char *action, const char *resource)
{
    kms_decision d;
    (void)snprintf(c->resource, sizeof(c->resource), "%s", resource);
    CL_GUARD(kms_authorize(c->kms, c->principal, action, resource, NULL, c->env, &d));
    if (d == KMS_DECISION_ALLOW) return CL_OK;
    LOGS_FAIL(c, "AccessDeniedException", "User: %s is not authorized to perform: %s on resource: %s because %s",
              c->principal->arn, action, resource,
              d == KMS_DECISION_EXPLICIT_DENY ? "of an explicit deny in an identity-based policy"
                                              : "no identity-based policy allows the action");
}

static CL_MUST_USE cl_status kms_logs_string(kms_json_call *c, const char *name, bool required, const char **out)
{
    json_t *v = json_object_get(c->req, name);
    *out = json_string_value(v);
    if (v == NULL && !required) return CL_OK;
    if (v == NULL)
        LOGS_FAIL(c, LOGS_INVALID,
                  "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be "
                  "null",
                  name);
    if (!json_is_string(v) || json_string_length(v) < 1 || json_string_length(v) > 512 ||
        strlen(*out) != json_string_length(v))
        LOGS_FAIL(c, LOGS_INVALID, "%s must be a string of 1 to 512 characters", name);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_logs_group(kms_json_call *c)
{
    const char *group;
    if (json_object_get(c->req, "logGroupIdentifier") != NULL)
        LOGS_FAIL(c, LOGS_INVALID, "logGroupIdentifier is not supported by this server: give logGroupName");
    CL_GUARD(kms_logs_string(c, "logGroupName", true, &group));
    if (strcmp(group, KMS_JOB_LOG_GROUP) != 0)
        LOGS_FAIL(c, LOGS_NOT_FOUND,
                  "The specified log group does not exist. (This server has one log group, " KMS_JOB_LOG_GROUP
                  ", of its training jobs.)");
    return CL_OK;
}

static CL_MUST_USE cl_status kms_logs_int(kms_json_call *c, const char *name, json_int_t min, json_int_t max,
                                          json_int_t dflt, json_int_t *out)
{
    json_t *v = json_object_get(c->req, name);
    *out = dflt;
    if (v == NULL) return CL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        LOGS_FAIL(c, LOGS_INVALID, "%s must be an integer from %lld to %lld", name, (long long)min, (long long)max);
    *out = json_integer_value(v);
    return CL_OK;
}

/* --- GetLogEvents ---------------------------------------------------------------------- */

typedef struct kms_logs_page {
    json_t *events;
    size_t bytes;
    int64_t next;                    /* the first event number not returned */
    json_int_t start_time, end_time; /* -1: no bound */
    bool full;
} kms_logs_page;

static CL_MUST_USE cl_status kms_logs_event(void *arg, int64_t seq, int64_t time_ms, const char *message)
{
    kms_logs_page *p = arg;
    if (p->full) return CL_OK;
    size_t len = strlen(message) + 26; /* AWS counts each event as its message plus 26 bytes */
    if (p->bytes + len > KMS_LOGS_PAGE_BYTES) {
        p->full = true;
        return CL_OK;
    }
    p->next = seq + 1;
    if ((p->start_time >= 0 && time_ms < p->start_time) || (p->end_time >= 0 && time_ms >= p->end_time)) return CL_OK;
    json_t *e = json_pack("{s:I, s:s, s:I}", "timestamp", (json_int_t)time_ms, "message", message, "ingestionTime",
                          (json_int_t)time_ms);
    CL_ENSURE(e != NULL && json_array_append_new(p->events, e) == 0, CL_ERR_NOMEM, "out of memory");
    p->bytes += len;
    return CL_OK;
}

/* A token this server gave: "f/N" (forward from event N) or "b/N" (backward, before event N). */
static CL_MUST_USE cl_status kms_logs_token(kms_json_call *c, const char *token, bool *forward, int64_t *n)
{
    uint64_t v = 0;
    if ((token[0] != 'f' && token[0] != 'b') || token[1] != '/' ||
        cl_parse_uint(token + 2, 0, KMS_JOB_LOG_EVENTS_MAX + 1, "nextToken", &v) != CL_OK) {
        cl_error_clear();
        LOGS_FAIL(c, LOGS_INVALID, "The specified nextToken is invalid.");
    }
    *forward = token[0] == 'f';
    *n = (int64_t)v;
    return CL_OK;
}

static CL_MUST_USE cl_status kms_logs_get_events(kms_json_call *c)
{
    cl_status rc = CL_OK;
    const char *stream, *token;
    json_t *doc = NULL;
    kms_logs_page p = {.events = json_array(), .start_time = -1, .end_time = -1};
    CL_ENSURE(p.events != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_logs_group(c));
    CL_GUARD_GOTO(kms_logs_string(c, "logStreamName", true, &stream));
    char arn[KMS_ARN_MAX + 1];
    (void)snprintf(arn, sizeof(arn), "arn:aws:logs:%s:%s:log-group:%s:log-stream:%.400s", c->region,
                   c->principal->account, KMS_JOB_LOG_GROUP, stream);
    CL_GUARD_GOTO(kms_logs_authorize(c, "logs:GetLogEvents", arn));
    json_int_t limit;
    CL_GUARD_GOTO(kms_logs_int(c, "limit", 1, KMS_LOGS_EVENTS_MAX, KMS_LOGS_EVENTS_MAX, &limit));
    CL_GUARD_GOTO(kms_logs_int(c, "startTime", 0, INT64_MAX, -1, &p.start_time));
    CL_GUARD_GOTO(kms_logs_int(c, "endTime", 0, INT64_MAX, -1, &p.end_time));
    json_t *head = json_object_get(c->req, "startFromHead");
    if (head != NULL && !json_is_boolean(head)) LOGS_FAIL_GOTO(c, LOGS_INVALID, "startFromHead must be a boolean");
    CL_GUARD_GOTO(kms_logs_string(c, "nextToken", false, &token));
    /* The stream is the job's: NAME/algo-1-EPOCH. */
    const char *slash = strchr(stream, '/');
    char name[KMS_JOB_NAME_MAX + 1] = "";
    if (slash != NULL && (size_t)(slash - stream) <= KMS_JOB_NAME_MAX)
        (void)snprintf(name, sizeof(name), "%.*s", (int)(slash - stream), stream);
    char expect[KMS_JOB_STREAM_MAX + 1] = "";
    if (name[0] != '\0') {
        rc = kms_job_load(c->kms->store, c->principal->account, name, &doc);
        if (rc == CL_ERR_NOT_FOUND) {
            cl_error_clear();
            rc = CL_OK;
        }
        CL_GUARD_GOTO(rc);
        if (doc != NULL) kms_job_stream(doc, expect);
    }
    if (doc == NULL || strcmp(expect, stream) != 0)
        LOGS_FAIL_GOTO(c, LOGS_NOT_FOUND, "The specified log stream does not exist.");
    int64_t count = json_integer_value(json_object_get(doc, "cl:LogEvents"));
    int64_t from, to;
    bool forward = json_is_true(head);
    if (token != NULL) {
        int64_t at;
        CL_GUARD_GOTO(kms_logs_token(c, token, &forward, &at));
        from = forward ? at : at - limit;
        to = forward ? at + limit : at;
    } else if (forward) {
        from = 0;
        to = limit;
    } else {
        /* Without a token and startFromHead false (the default): the latest events. */
        from = count - limit;
        to = count;
    }
    if (from < 0) from = 0;
    if (to > count) to = count;
    if (to < from) to = from;
    p.next = from;
    CL_GUARD_GOTO(c->kms->store->ops->job_event_list(c->kms->store, c->principal->account, name, from, to,
                                                     (size_t)(to - from), kms_logs_event, &p));
    char ftok[32], btok[32];
    /* Past the last event, the forward token stays where it is: the caller polls it for more. */
    (void)snprintf(ftok, sizeof(ftok), "f/%lld", (long long)p.next);
    (void)snprintf(btok, sizeof(btok), "b/%lld", (long long)from);
    CL_ENSURE_GOTO(json_object_set(c->resp, "events", p.events) == 0 &&
                       json_object_set_new(c->resp, "nextForwardToken", json_string(ftok)) == 0 &&
                       json_object_set_new(c->resp, "nextBackwardToken", json_string(btok)) == 0,
                   CL_ERR_NOMEM, "out of memory");
out:
    json_decref(doc);
    json_decref(p.events);
    return rc;
}

/* --- DescribeLogStreams -------------------------------------------------------------------- */

typedef struct kms_logs_streams {
    kms_json_call *c;
    json_t *streams;
    const char *prefix;
    size_t limit;
    char last[KMS_ACCOUNT_LEN + KMS_JOB_NAME_MAX + 2];
    bool more;
} kms_logs_streams;

static CL_MUST_USE cl_status kms_logs_stream_row(void *arg, const char *key, const char *text)
{
    kms_logs_streams *s = arg;
    if (json_array_size(s->streams) >= s->limit) {
        s->more = true;
        return CL_OK;
    }
    (void)snprintf(s->last, sizeof(s->last), "%s", key);
    json_t *d = json_loads(text, 0, NULL);
    CL_ENSURE(json_is_object(d), CL_ERR_FORMAT, "the stored training job %s is not JSON; the store is damaged", key);
    char stream[KMS_JOB_STREAM_MAX + 1];
    kms_job_stream(d, stream);
    cl_status rc = CL_OK;
    if (s->prefix == NULL || strncmp(stream, s->prefix, strlen(s->prefix)) == 0) {
        char arn[KMS_ARN_MAX + 1];
        (void)snprintf(arn, sizeof(arn), "arn:aws:logs:%s:%s:log-group:%s:log-stream:%s", s->c->region,
                       s->c->principal->account, KMS_JOB_LOG_GROUP, stream);
        json_t *e = json_pack("{s:s, s:I, s:s, s:I}", "logStreamName", stream, "creationTime",
                              (json_int_t)(json_number_value(json_object_get(d, "CreationTime")) * 1000), "arn", arn,
                              "storedBytes", (json_int_t)0);
        json_t *first = json_object_get(d, "cl:FirstEventMs"), *last = json_object_get(d, "cl:LastEventMs");
        if (e != NULL && first != NULL) {
            (void)json_object_set(e, "firstEventTimestamp", first);
            (void)json_object_set(e, "lastEventTimestamp", last);
            (void)json_object_set(e, "lastIngestionTime", last);
        }
        if (e == NULL || json_array_append_new(s->streams, e) != 0) rc = CL_RAISE(CL_ERR_NOMEM, "out of memory");
    }
    json_decref(d);
    return rc;
}

static CL_MUST_USE cl_status kms_logs_describe_streams(kms_json_call *c)
{
    cl_status rc = CL_OK;
    kms_logs_streams s = {.c = c, .streams = json_array()};
    CL_ENSURE(s.streams != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_logs_group(c));
    char arn[KMS_ARN_MAX + 1];
    (void)snprintf(arn, sizeof(arn), "arn:aws:logs:%s:%s:log-group:%s", c->region, c->principal->account,
                   KMS_JOB_LOG_GROUP);
    CL_GUARD_GOTO(kms_logs_authorize(c, "logs:DescribeLogStreams", arn));
    const char *order, *token;
    CL_GUARD_GOTO(kms_logs_string(c, "logStreamNamePrefix", false, &s.prefix));
    CL_GUARD_GOTO(kms_logs_string(c, "orderBy", false, &order));
    if (order != NULL && strcmp(order, "LogStreamName") != 0)
        LOGS_FAIL_GOTO(c, LOGS_INVALID, "orderBy %s is not supported by this server: streams are listed by name",
                       order);
    if (json_is_true(json_object_get(c->req, "descending")))
        LOGS_FAIL_GOTO(c, LOGS_INVALID,
                       "descending is not supported by this server: streams are listed by name, "
                       "ascending");
    json_int_t limit;
    CL_GUARD_GOTO(kms_logs_int(c, "limit", 1, KMS_LOGS_STREAMS_MAX, KMS_LOGS_STREAMS_MAX, &limit));
    s.limit = (size_t)limit;
    CL_GUARD_GOTO(kms_logs_string(c, "nextToken", false, &token));
    /* nextToken: the last job listed ("ACCOUNT/NAME"), as this server gave it. */
    char after[sizeof(s.last)] = "";
    if (token != NULL) {
        if (strncmp(token, c->principal->account, KMS_ACCOUNT_LEN) != 0 || token[KMS_ACCOUNT_LEN] != '/' ||
            strlen(token) >= sizeof(after))
            LOGS_FAIL_GOTO(c, LOGS_INVALID, "The specified nextToken is invalid.");
        (void)snprintf(after, sizeof(after), "%s", token);
    }
    bool more = true;
    while (more && !s.more) {
        CL_GUARD_GOTO(c->kms->store->ops->job_list(c->kms->store, c->principal->account, after, 200,
                                                   kms_logs_stream_row, &s, &more));
        (void)snprintf(after, sizeof(after), "%s", s.last);
    }
    CL_ENSURE_GOTO(json_object_set(c->resp, "logStreams", s.streams) == 0, CL_ERR_NOMEM, "out of memory");
    if (s.more)
        CL_ENSURE_GOTO(json_object_set_new(c->resp, "nextToken", json_string(s.last)) == 0, CL_ERR_NOMEM,
                       "out of memory");
out:
    json_decref(s.streams);
    return rc;
}

cl_status kms_logs_handle(kms_json_call *c)
{
    if (strcmp(c->operation, "GetLogEvents") == 0) return kms_logs_get_events(c);
    if (strcmp(c->operation, "DescribeLogStreams") == 0) return kms_logs_describe_streams(c);
    LOGS_FAIL(c, "UnknownOperationException",
              "CloudWatch Logs' %s is not supported by this server: it answers GetLogEvents and DescribeLogStreams "
              "of the training jobs' log group " KMS_JOB_LOG_GROUP " (docs/sagemaker.md)",
              c->operation);
}
