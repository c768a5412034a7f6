/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: the STS and IAM APIs (AWS query protocol, query.h) over the identities of
 * identity.h. server.c authenticates the request, parses its form, writes its audit lines and
 * sends the answer; kms_query_handle runs the action and writes the XML answer (or error).
 * What each action does and what it refuses: docs/iam.md.
 */
#ifndef CLOISTER_KMS_IAM_H
#define CLOISTER_KMS_IAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloister/buf.h"

#include "policy.h"
#include "route.h"
#include "server.h"

typedef struct kms_query_call {
    kms_ctx *kms;
    kms_service service; /* KMS_SERVICE_STS or KMS_SERVICE_IAM */
    const kms_principal *principal;
    json_t *form; /* the request's form: name -> string */
    int64_t now;
    const kms_policy_env *env;
    const char *request_id;
    /* Out: the HTTP status, the error code (NULL on success) and the XML answer. */
    int status;
    const char *code;
    cl_buf *xml;
    char resource[KMS_ARN_MAX + 1]; /* what the action was on, for the audit line */
} kms_query_call;

/* Runs the form's Action; never fails: a failure is an error answer in q->xml. */
void kms_query_handle(kms_query_call *q);
/* Whether Action changes state (a "started" audit line first). Unknown actions do not. */
bool kms_query_changes_state(kms_service service, const char *action);
/* The XML error answer (query.h) into xml, replacing what it held. */
void kms_query_error(cl_buf *xml, const char *type, const char *code, const char *message, const char *request_id);

/*
 * An AWS service principal (service, "sagemaker.amazonaws.com") assumes role_arn in-process, as
 * the service does in AWS for a job the caller passed the role to: the role's trust policy must
 * allow {"Service": service} sts:AssumeRole (IAM User Guide, "AWS service principals"); the
 * session (session name 2..64 of [\w+=,.@-], duration 900..43200 s) is out, a role session
 * whose credentials kms_session_token_seal turns into a session token. CL_ERR_DENIED ("Could not
 * assume role ... allows principal '<service>' ...", SageMaker's words) for a role that does not
 * exist or does not trust the service. No request over HTTP can be a service principal.
 */
CL_MUST_USE cl_status kms_sts_assume_role_as_service(kms_ctx *ctx, const char *service, const char *role_arn,
                                                     const char *session, int64_t duration, int64_t now,
                                                     const kms_policy_env *env, kms_principal *out);

#endif
