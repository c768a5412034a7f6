/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister-kms: which service a request is for. One endpoint answers KMS, STS, IAM and S3, as
 * the SDKs sign them: the SigV4 credential scope names the service (AWS General Reference,
 * "Signature Version 4 signing process", credential scope DATE/REGION/SERVICE/aws4_request),
 * in the Authorization header or, for a presigned URL, the X-Amz-Credential query parameter.
 */
#ifndef CLOISTER_KMS_ROUTE_H
#define CLOISTER_KMS_ROUTE_H

typedef enum kms_service {
    KMS_SERVICE_KMS = 0,
    KMS_SERVICE_STS,
    KMS_SERVICE_IAM,
    KMS_SERVICE_S3,
    KMS_SERVICE_SAGEMAKER, /* the training-job API (sagemaker.h) */
    KMS_SERVICE_LOGS,      /* CloudWatch Logs' reads of training jobs' logs (sagemaker.h) */
} kms_service;

/*
 * The service of a request: the credential scope's "sts", "iam", "s3", "sagemaker" or "logs"; "kms" and any other
 * name go to KMS, which refuses a scope it does not answer in its own words. Without
 * credentials: POST / with X-Amz-Target TrentService.* is KMS's (which then asks for them),
 * anything else that is not POST / is S3's (anonymous requests a bucket policy may allow).
 * Any argument may be NULL (absent). Never fails: what it cannot read is KMS's.
 */
kms_service kms_route(const char *method, const char *path, const char *query, const char *authorization,
                      const char *amz_target);

/* "kms", "sts", "iam", "s3", "sagemaker", "logs": the service's name in a credential scope. */
const char *kms_service_name(kms_service s);

#endif
