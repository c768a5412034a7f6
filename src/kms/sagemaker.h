/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: SageMaker's training-job API and the CloudWatch Logs reads of a job's log
 * (docs/sagemaker.md), on the one endpoint, routed by the SigV4 scope service "sagemaker" or
 * "logs" (route.h). Both are the AWS JSON 1.1 protocol (botocore sagemaker/2017-07-24 and
 * logs/2014-03-28 service-2.json: POST /, X-Amz-Target "SageMaker.<Op>" or
 * "Logs_20140328.<Op>", errors {"__type": NAME, "message": ...} with HTTP 400).
 *
 * server.c authenticates the request, parses its JSON body, writes its audit lines and sends the
 * answer; the handlers here authorize (kms_authorize), act on the store and fill the response.
 * A created job runs under the supervisor (sagemaker_run.c): it assumes the job's role as the
 * service principal sagemaker.amazonaws.com and spawns the runner, whose reports it writes to
 * the store.
 */
#ifndef CLOISTER_KMS_SAGEMAKER_H
#define CLOISTER_KMS_SAGEMAKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloister/error.h"

#include "policy.h"
#include "server.h"

typedef struct kms_json_call {
    kms_ctx *kms;
    const kms_principal *principal;
    const char *operation; /* the X-Amz-Target's suffix: "CreateTrainingJob" */
    json_t *req;           /* the request body (an object) */
    json_t *resp;          /* the answer the operation fills (an object) */
    const char *region;    /* the request's credential scope's */
    int64_t now;
    const kms_policy_env *env;
    const char *request_id; /* for the audit lines the operation writes itself */
    /* Out, on failure: the __type of the answer (NULL: an internal failure). */
    const char *exception;
    char resource[KMS_ARN_MAX + 1]; /* what the operation was on, for the audit line */
} kms_json_call;

/* Runs a SageMaker operation (c->operation); a failure has c->exception and the message. */
CL_MUST_USE cl_status kms_sagemaker_handle(kms_json_call *c);
/* Runs a CloudWatch Logs operation (GetLogEvents, DescribeLogStreams). */
CL_MUST_USE cl_status kms_logs_handle(kms_json_call *c);
/* Whether the operation changes state (its "started" audit line first). */
bool kms_sagemaker_changes_state(const char *operation);

/*
 * The supervisor of training jobs: configured from cfg->training (defaults filled here; listen is
 * the server's bound address, "127.0.0.1:4599", tls whether it serves HTTPS, for the default
 * endpoint). Jobs that were InProgress or Stopping in the store are Failed ("the service
 * restarted while the job ran"): their runners belonged to a server that is gone.
 */
struct kms_training;
CL_MUST_USE cl_status kms_training_start(kms_ctx *ctx, const kms_config *cfg, const char *listen, bool tls,
                                         struct kms_training **out);
/* Stops every runner (SIGKILL to its process group), waits for the threads, frees t (NULL is fine).
 * Their jobs stay InProgress in the store: the next start fails them. */
void kms_training_free(struct kms_training *t);

#endif
