/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: a training job's stored document (sagemaker.h). The document is the job's
 * DescribeTrainingJob answer, kept up to date, with private members whose names start with
 * "cl:" (never answered): the log's event count. Every change is a read-modify-write under one
 * lock (kms_job_update), so that the supervisor's reports and StopTrainingJob do not lose each
 * other's writes.
 */
#ifndef CLOISTER_KMS_SAGEMAKER_JOB_H
#define CLOISTER_KMS_SAGEMAKER_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloister/error.h"

#include "store.h"

#define KMS_JOB_NAME_MAX 63                             /* TrainingJobName: 1..63 */
#define KMS_JOB_LOG_GROUP "/aws/sagemaker/TrainingJobs" /* SageMaker's log group of training jobs */
#define KMS_JOB_STREAM_MAX (KMS_JOB_NAME_MAX + 32)      /* NAME/algo-1-EPOCH */
#define KMS_JOB_LOG_EVENTS_MAX 100000                   /* a job's log, at most */
#define KMS_JOB_FAILURE_REASON_MAX 1024                 /* FailureReason: at most 1024 */
#define KMS_JOB_RESTARTED "the service restarted while the job ran"

/* Seconds since the epoch with milliseconds: JSON 1.1's timestamps. */
double kms_job_now(void);

/* The stored document of account's job name into *doc (CL_ERR_NOT_FOUND). */
CL_MUST_USE cl_status kms_job_load(kms_store *s, const char *account, const char *name, json_t **doc);
/* Writes doc (KMS_IAM_CREATE: CL_ERR_EXISTS when the name is taken; KMS_IAM_REPLACE). */
CL_MUST_USE cl_status kms_job_save(kms_store *s, const char *account, const char *name, json_t *doc,
                                   kms_iam_put_mode mode);

/* Loads the job, calls fn on its document and saves it, under the jobs' lock; fn's failure
 * writes nothing. */
typedef CL_MUST_USE cl_status (*kms_job_edit_fn)(void *arg, json_t *doc);
CL_MUST_USE cl_status kms_job_update(kms_store *s, const char *account, const char *name, kms_job_edit_fn fn,
                                     void *arg);

/* A new secondary status: ends the current transition (EndTime now) and starts one (Status,
 * StartTime, StatusMessage), as SecondaryStatusTransitions records them. */
CL_MUST_USE cl_status kms_job_transition(json_t *doc, const char *status, const char *message, double now);
/* Ends the job: TrainingJobStatus, the last transition, FailureReason (NULL: none), TrainingEndTime,
 * TrainingTimeInSeconds and BillableTimeInSeconds. A job already ended is left as it is. */
CL_MUST_USE cl_status kms_job_finish(json_t *doc, const char *status, const char *secondary, const char *reason,
                                     double now);
/* Whether the job still runs (InProgress or Stopping). */
bool kms_job_running(const json_t *doc);
/* The answer's copy of doc: without the "cl:" members (NULL when out of memory). */
json_t *kms_job_public(const json_t *doc);
/* The job's log stream, "NAME/algo-1-EPOCH" (EPOCH: the creation time's seconds), as SageMaker
 * names it. */
void kms_job_stream(const json_t *doc, char out[KMS_JOB_STREAM_MAX + 1]);
/* Appends one line to the job's log (dropped, with one last line saying so, past
 * KMS_JOB_LOG_EVENTS_MAX). */
CL_MUST_USE cl_status kms_job_log(kms_store *s, const char *account, const char *name, const char *message);

#endif
