/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client for the AWS KMS JSON API (cloister-kms, AWS KMS, moto): requests
 * signed with SigV4 (cloister/sigv4.h), sent by core's HTTP/1.1 client
 * (cloister/http.h: OpenSSL and http-parser only, one connection kept alive),
 * retried with exponential backoff and full jitter on throttling, 5xx and
 * transport errors (AWS SDKs' "standard" retry mode: 3 attempts, base 100 ms,
 * cap 20 s). A transport failure's message names the operation and the
 * endpoint ("KMS request Decrypt to https://... failed: ...").
 *
 * An AWS error answer becomes a cl_status with the exception name first in
 * the message ("NotFoundException: Alias ... is not found."):
 * AccessDeniedException -> CL_ERR_DENIED, NotFoundException -> CL_ERR_NOT_FOUND,
 * DisabledException / KMSInvalidStateException -> CL_ERR_STATE,
 * InvalidCiphertextException -> CL_ERR_AUTH, anything else -> CL_ERR_REMOTE.
 */
#ifndef CLOISTER_KMS_CLIENT_H
#define CLOISTER_KMS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cloister/aws_config.h"
#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/keyprovider.h"
#include "cloister/kv.h"

/* An AWS service of the JSON 1.1 protocol the client speaks (botocore's models' metadata):
 * X-Amz-Target "<target_prefix>.<Op>", SigV4 signing name, the public endpoint's host
 * https://<endpoint_prefix>.<region>.amazonaws.com/, the service's identifier for
 * AWS_ENDPOINT_URL_<ID> and the config files' services sections (cl_aws_config_resolve). KMS by
 * default; the same client calls SageMaker and CloudWatch Logs (`cloister train-job`). */
typedef struct cl_aws_json_service {
    const char *name;            /* for messages: "KMS" */
    const char *target_prefix;   /* "TrentService" */
    const char *signing_name;    /* "kms" */
    const char *endpoint_prefix; /* "kms" */
    const char *config_id;       /* "kms" */
} cl_aws_json_service;
extern const cl_aws_json_service cl_aws_service_kms;       /* kms/2014-11-01 */
extern const cl_aws_json_service cl_aws_service_sagemaker; /* sagemaker/2017-07-24 */
extern const cl_aws_json_service cl_aws_service_logs;      /* logs/2014-03-28 */

typedef struct cl_kms_client_config {
    const cl_aws_json_service *service; /* NULL: KMS */
    const char *endpoint;               /* "http://127.0.0.1:4599"; NULL: https://kms.<region>.amazonaws.com */
    const char *region;
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL when none */
    int max_attempts;          /* 0: 3 */
    long timeout_ms;           /* 0: 30000 */
    /* Nonzero: reach the endpoint through vsock port `vsock_port` of the parent instead of
     * TCP (inside an enclave, whose only way out is the launcher's proxy, or vsock-proxy on
     * Nitro): each connection is cl_vsock_connect(cl_vsock_ctl(), vsock_port). The URL
     * still names the endpoint (Host header, SigV4, TLS name). */
    uint32_t vsock_port;
    /* PEM file of the CAs that may certify an https:// endpoint (AWS_CA_BUNDLE in the
     * environment); NULL: the system's trust store. Inside an enclave this is a file in the
     * image, so the TLS session to the KMS ends in the enclave and the host relays only
     * ciphertext (docs/threat-model.md). */
    const char *ca_file;
} cl_kms_client_config;

typedef struct cl_kms_client cl_kms_client;

CL_MUST_USE cl_status cl_kms_client_new(const cl_kms_client_config *cfg, cl_kms_client **out);
/* As the AWS SDKs and the aws CLI configure a client (cloister/aws_config.h: the
 * environment, ~/.aws/credentials and ~/.aws/config, the profile, AWS_ENDPOINT_URL_KMS,
 * AWS_ENDPOINT_URL, AWS_CA_BUNDLE, ...), with what the command line says in s; and
 * CLOISTER_KMS_VSOCK_PORT for vsock_port. Defined in aws_config.c, so that a program
 * that configures its client itself does not link the files' reader. */
CL_MUST_USE cl_status cl_kms_client_from_aws(const cl_aws_settings *s, cl_kms_client **out);
/* As cl_kms_client_from_aws, for another service of the JSON 1.1 protocol. */
CL_MUST_USE cl_status cl_aws_json_client_from_aws(const cl_aws_settings *s, const cl_aws_json_service *service,
                                                  cl_kms_client **out);
/* The same with only an endpoint from the command line (NULL: none). */
CL_MUST_USE cl_status cl_kms_client_from_env(const char *endpoint, cl_kms_client **out);
void cl_kms_client_free(cl_kms_client *c);

/* Calls TrentService.<op> (the client's service's <target_prefix>.<op>) with a JSON request body; the JSON response
 * body is appended to resp. resp should be a secret buffer when the answer may hold a plaintext. */
CL_MUST_USE cl_status cl_kms_call(cl_kms_client *c, const char *op, const char *json_body, cl_buf *resp);

/* GenerateDataKey(KeySpec AES_256): plaintext key into data_key (a secret
 * buffer), CiphertextBlob into blob, the key ARN KMS used into key_arn. */
CL_MUST_USE cl_status cl_kms_generate_data_key(cl_kms_client *c, const char *key_id, const cl_kvlist *ctx,
                                               cl_buf *data_key, cl_buf *blob, cl_buf *key_arn);
/* Decrypt; key_id may be NULL. plaintext must be a secret buffer. */
CL_MUST_USE cl_status cl_kms_decrypt(cl_kms_client *c, const char *key_id, const uint8_t *blob, size_t blob_len,
                                     const cl_kvlist *ctx, cl_buf *plaintext);

/* The `kms` key provider of sealed envelopes: data keys from GenerateDataKey
 * under key_id (any identifier form), recovered with Decrypt. Takes
 * ownership of client (freed with the provider, also on failure). */
CL_MUST_USE cl_status cl_kms_provider_open(cl_kms_client *client, const char *key_id, cl_key_provider **out);

#endif
