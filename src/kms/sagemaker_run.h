/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the training jobs' supervisor (sagemaker.h). A job runs as the runner program
 * (training.runner: `cloister train-job run` by default), spawned with posix_spawn in its own
 * process group, its job document (with the role session's credentials) written on its stdin
 * and its reports read from its stdout: one JSON event per line (the runner's protocol,
 * docs/sagemaker.md, "The runner"). One thread per running job (at most training.max_jobs):
 * each blocks in poll(2) on its runner's pipes, a pidfd and a wake pipe, and writes what the
 * runner reports to the store, whose calls block (SQLite's lock, a PostgreSQL round trip): they
 * have no place on the server's event loops.
 */
#ifndef CLOISTER_KMS_SAGEMAKER_RUN_H
#define CLOISTER_KMS_SAGEMAKER_RUN_H

#include <jansson.h>
#include <stdint.h>

#include "cloister/error.h"

#include "server.h"

typedef struct kms_training kms_training;

/* What a job is started with. */
typedef struct kms_job_spec {
    const char *account;
    const char *name;
    const char *region;
    const char *image_path;       /* the enclave image file */
    uint64_t memory_mib;          /* the enclave's memory */
    int64_t max_runtime;          /* seconds */
    const json_t *request;        /* the CreateTrainingJob request: the document's fields */
    const kms_principal *session; /* the role session's credentials */
    const char *session_token;    /* its session token */
} kms_job_spec;

/* The supervisor's settings, defaults filled. */
const kms_training_config *kms_training_settings(const kms_training *t);
/* Takes one of training.max_jobs slots: CL_ERR_LIMIT when all are taken (ResourceLimitExceeded). */
CL_MUST_USE cl_status kms_training_reserve(kms_training *t);
void kms_training_unreserve(kms_training *t);
/* Spawns the runner of a stored job on a reserved slot (given back on failure, when the caller
 * fails the job with the message). */
CL_MUST_USE cl_status kms_training_launch(kms_training *t, const kms_job_spec *spec);
/* SIGTERM to the job's runner (SIGKILL after training.stop_grace_seconds); CL_ERR_NOT_FOUND when
 * this server runs no such job. */
CL_MUST_USE cl_status kms_training_stop_job(kms_training *t, const char *account, const char *name);

#endif
