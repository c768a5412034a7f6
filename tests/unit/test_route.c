/* SPDX-License-Identifier: Apache-2.0 */
/* Routing a request to its service by its SigV4 credential scope (src/kms/route.c). The
 * Authorization headers are botocore's (AWS General Reference, "Signature Version 4"). */
#include <stdio.h>
#include <string.h>

#include "route.h"
#include "test_util.h"

#define AUTH(svc) \
    "AWS4-HMAC-SHA256 Credential=test/20261206/us-east-1/" svc "/aws4_request, " \
    "SignedHeaders=host;x-amz-date, Signature=0123456789abcdef"

static void test_route_by_authorization(void **state)
{
    (void)state;
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("kms"), "TrentService.ListKeys"), KMS_SERVICE_KMS);
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("sts"), NULL), KMS_SERVICE_STS);
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("iam"), NULL), KMS_SERVICE_IAM);
    assert_int_equal(kms_route("GET", "/bucket/key", NULL, AUTH("s3"), NULL), KMS_SERVICE_S3);
    assert_int_equal(kms_route("PUT", "/bucket", "uploads", AUTH("s3"), NULL), KMS_SERVICE_S3);
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("sagemaker"), "SageMaker.ListTrainingJobs"),
                     KMS_SERVICE_SAGEMAKER);
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("logs"), "Logs_20140328.GetLogEvents"), KMS_SERVICE_LOGS);
    /* Elements in another order, as SigV4 allows. */
    assert_int_equal(kms_route("POST", "/", NULL,
                               "AWS4-HMAC-SHA256 SignedHeaders=host, Credential=AKIDEXAMPLE/20261206/eu-west-1/iam/"
                               "aws4_request, Signature=00",
                               NULL),
                     KMS_SERVICE_IAM);
    /* Another service's name goes to KMS, which refuses the scope in its own words. */
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("ec2"), NULL), KMS_SERVICE_KMS);
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("sts2"), NULL), KMS_SERVICE_KMS);
    assert_int_equal(kms_route("POST", "/", NULL, AUTH("STS"), NULL), KMS_SERVICE_KMS);
}

static void test_route_malformed_authorization(void **state)
{
    (void)state;
    /* What cannot be read is KMS's: it answers IncompleteSignature. */
    const char *bad[] = {
        "",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=test/20261206/us-east-1/sts",
        "AWS4-HMAC-SHA256 Credential=test/20261206/us-east-1/sts/aws4_requestX",
        "AWS4-HMAC-SHA256 Credential=test/us-east-1/sts/aws4_request",
        "AWS test:signature",
        "Basic dGVzdDp0ZXN0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(kms_route("GET", "/bucket", NULL, bad[i], NULL), KMS_SERVICE_KMS);
}

static void test_route_presigned(void **state)
{
    (void)state;
    assert_int_equal(kms_route("GET", "/bucket/key",
                               "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20261206%2Fus-east-1%2Fs3%2F"
                               "aws4_request&X-Amz-Date=20261206T000000Z",
                               NULL, NULL),
                     KMS_SERVICE_S3);
    assert_int_equal(kms_route("GET", "/", "X-Amz-Credential=test/20261206/us-east-1/sts/aws4_request", NULL, NULL),
                     KMS_SERVICE_STS);
    assert_int_equal(
        kms_route("GET", "/", "X-Amz-Credential=test%2f20261206%2fus-east-1%2fiam%2faws4_request", NULL, NULL),
        KMS_SERVICE_IAM);
}

static void test_route_anonymous(void **state)
{
    (void)state;
    /* KMS asks for credentials; anything else that is not POST / is S3's. */
    assert_int_equal(kms_route("POST", "/", NULL, NULL, "TrentService.Encrypt"), KMS_SERVICE_KMS);
    assert_int_equal(kms_route("POST", "/", NULL, NULL, NULL), KMS_SERVICE_KMS);
    assert_int_equal(kms_route("GET", "/bucket/key", NULL, NULL, NULL), KMS_SERVICE_S3);
    assert_int_equal(kms_route("PUT", "/bucket", NULL, NULL, NULL), KMS_SERVICE_S3);
    assert_int_equal(kms_route("GET", "/", "list-type=2", NULL, NULL), KMS_SERVICE_S3);
    assert_int_equal(kms_route(NULL, NULL, NULL, NULL, NULL), KMS_SERVICE_S3);
    assert_string_equal(kms_service_name(KMS_SERVICE_STS), "sts");
    assert_string_equal(kms_service_name(KMS_SERVICE_IAM), "iam");
    assert_string_equal(kms_service_name(KMS_SERVICE_S3), "s3");
    assert_string_equal(kms_service_name(KMS_SERVICE_KMS), "kms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route_by_authorization),
        cmocka_unit_test(test_route_malformed_authorization),
        cmocka_unit_test(test_route_presigned),
        cmocka_unit_test(test_route_anonymous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
