/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: routing a request to its service by its credential scope (route.h). */
#include "route.h"

#include <stdbool.h>
#include <string.h>

#include "cloister/buf.h"

const char *kms_service_name(kms_service s)
{
    switch (s) {
    case KMS_SERVICE_STS: return "sts";
    case KMS_SERVICE_IAM: return "iam";
    case KMS_SERVICE_S3: return "s3";
    case KMS_SERVICE_SAGEMAKER: return "sagemaker";
    case KMS_SERVICE_LOGS: return "logs";
    default: return "kms";
    }
}

/* Skips n bytes that are known to be there (found by a scan before). */
static bool kms_skip(cl_reader *r, size_t n)
{
    bool ok = cl_reader_skip(r, n) == CL_OK;
    if (!ok) cl_error_clear();
    return ok;
}

/* The service field of a credential AKID/DATE/REGION/SERVICE/aws4_request (r holds the
 * credential only); false when it does not have the five fields. */
static bool kms_route_scope(cl_reader r, cl_reader *service)
{
    cl_reader part;
    bool found = false;
    for (int i = 0; i < 3; i++) {
        cl_reader_until(&r, '/', &part, &found);
        if (!found) return false;
        (void)kms_skip(&r, 1);
    }
    cl_reader_until(&r, '/', service, &found);
    return found && cl_reader_is(&r, "/aws4_request", false);
}

static kms_service kms_route_named(const cl_reader *service)
{
    if (cl_reader_is(service, "sts", false)) return KMS_SERVICE_STS;
    if (cl_reader_is(service, "iam", false)) return KMS_SERVICE_IAM;
    if (cl_reader_is(service, "s3", false)) return KMS_SERVICE_S3;
    if (cl_reader_is(service, "sagemaker", false)) return KMS_SERVICE_SAGEMAKER;
    if (cl_reader_is(service, "logs", false)) return KMS_SERVICE_LOGS;
    return KMS_SERVICE_KMS;
}

/* The Authorization header's Credential=...: "AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/
 * aws4_request, SignedHeaders=..., Signature=..." (the elements in any order). */
static bool kms_route_authorization(const char *authz, kms_service *out)
{
    cl_reader r = cl_reader_make(authz, strlen(authz)), el;
    bool found = true;
    if (!cl_reader_starts_with_str(&r, "AWS4-HMAC-SHA256 ")) return false;
    (void)kms_skip(&r, strlen("AWS4-HMAC-SHA256 "));
    while (found) {
        cl_reader_until(&r, ',', &el, &found);
        if (found) (void)kms_skip(&r, 1);
        cl_reader_trim(&el, " ");
        if (!cl_reader_starts_with_str(&el, "Credential=")) continue;
        (void)kms_skip(&el, strlen("Credential="));
        cl_reader service;
        if (!kms_route_scope(el, &service)) return false;
        *out = kms_route_named(&service);
        return true;
    }
    return false;
}

/* A presigned URL's X-Amz-Credential=AKID%2FDATE%2FREGION%2FSERVICE%2Faws4_request (the slashes
 * percent-encoded, RFC 3986; or not, as some clients send them). */
static bool kms_route_query(const char *query, kms_service *out)
{
    cl_reader r = cl_reader_make(query, strlen(query)), param;
    bool found = true;
    while (found) {
        cl_reader_until(&r, '&', &param, &found);
        if (found) (void)kms_skip(&r, 1);
        if (!cl_reader_starts_with_str(&param, "X-Amz-Credential=")) continue;
        (void)kms_skip(&param, strlen("X-Amz-Credential="));
        /* Decode %2F (either case) into a small copy; the scope's fields have no other escapes. */
        char text[256];
        size_t n = 0;
        uint8_t ch;
        while (n + 1 < sizeof(text) && cl_reader_u8(&param, &ch) == CL_OK) {
            if (ch == '%' && (cl_reader_starts_with_str(&param, "2F") || cl_reader_starts_with_str(&param, "2f"))) {
                (void)kms_skip(&param, 2);
                ch = '/';
            }
            text[n++] = (char)ch;
        }
        cl_error_clear();
        cl_reader service;
        if (cl_reader_remaining(&param) > 0 || !kms_route_scope(cl_reader_make(text, n), &service)) return false;
        *out = kms_route_named(&service);
        return true;
    }
    return false;
}

kms_service kms_route(const char *method, const char *path, const char *query, const char *authorization,
                      const char *amz_target)
{
    kms_service s = KMS_SERVICE_KMS;
    if (authorization != NULL) {
        if (kms_route_authorization(authorization, &s)) return s;
        /* An Authorization header that is not SigV4 with a scope: KMS says what is wrong with it. */
        return KMS_SERVICE_KMS;
    }
    if (query != NULL && kms_route_query(query, &s)) return s;
    bool post_root = method != NULL && strcmp(method, "POST") == 0 && path != NULL && strcmp(path, "/") == 0;
    if (post_root) return KMS_SERVICE_KMS; /* TrentService.* or not: KMS asks for credentials */
    (void)amz_target;
    return KMS_SERVICE_S3;
}
