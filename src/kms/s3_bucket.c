/* SPDX-License-Identifier: Apache-2.0 */
/*
 * S3 bucket operations (S3 API Reference: CreateBucket, HeadBucket, ListBuckets, DeleteBucket,
 * GetBucketLocation, Put/Get/DeleteBucketPolicy, Put/Get/DeleteBucketEncryption).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/log.h"

#include "policy.h"
#include "region.h"
#include "s3.h"
#include "s3_store.h"

#define KMS_S3_XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define KMS_S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"

/* The bucket's record, or NoSuchBucket. */
static CL_MUST_USE cl_status kms_s3_bucket_get(kms_s3_req *r, json_t **info)
{
    cl_status rc = kms_s3_bucket_load(r->kms, r->bucket, info);
    if (rc == CL_ERR_NOT_FOUND) KMS_S3_FAIL(r, 404, "NoSuchBucket", "The specified bucket does not exist");
    return rc;
}

cl_status kms_s3_list_buckets(kms_s3_req *r)
{
    if (r->who == NULL) KMS_S3_FAIL(r, 403, "AccessDenied", "Access Denied");
    json_t *names = NULL;
    CL_GUARD(kms_s3_bucket_names(r->kms, &names));
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    evbuffer_add_printf(r->resp,
                        KMS_S3_XML_HEAD "<ListAllMyBucketsResult xmlns=\"" KMS_S3_NS
                                        "\"><Owner><ID>%s</ID><DisplayName>%s</DisplayName></Owner><Buckets>",
                        r->who->account, r->who->account);
    size_t i;
    json_t *v;
    json_array_foreach(names, i, v)
    {
        json_t *info = NULL;
        if (kms_s3_bucket_load(r->kms, json_string_value(v), &info) != CL_OK) {
            cl_error_clear();
            continue;
        }
        /* An account lists its own buckets. */
        if (strcmp(json_string_value(json_object_get(info, "owner")), r->who->account) == 0) {
            char date[32];
            kms_s3_iso_date((int64_t)json_integer_value(json_object_get(info, "created")), date);
            evbuffer_add_printf(r->resp, "<Bucket><Name>%s</Name><CreationDate>%s</CreationDate></Bucket>",
                                json_string_value(v), date);
        }
        json_decref(info);
    }
    evbuffer_add_printf(r->resp, "</Buckets></ListAllMyBucketsResult>");
    json_decref(names);
    return CL_OK;
}

/* "CreateBucket": the bucket's region is the LocationConstraint of CreateBucketConfiguration, or
 * us-east-1 without one; a constraint must be the region the request was signed for ("The
 * unspecified location constraint is incompatible for the region specific endpoint this request was
 * sent to."), and us-east-1 is never given as one. */
cl_status kms_s3_create_bucket(kms_s3_req *r)
{
    char loc[KMS_REGION_MAX + 2] = "";
    if (r->body_len > 0) {
        cl_reader x = cl_reader_make(r->body, r->body_len), c;
        if (!kms_s3_xml_next(&x, "CreateBucketConfiguration", &c))
            KMS_S3_FAIL(r, 400, "MalformedXML",
                        "The XML you provided was not well-formed or did not validate against our published schema");
        cl_reader lc;
        if (kms_s3_xml_next(&c, "LocationConstraint", &lc) && kms_s3_xml_value(&lc, loc, sizeof(loc)) != CL_OK)
            KMS_S3_FAIL(r, 400, "InvalidLocationConstraint", "The specified location-constraint is not valid");
    }
    if (strcmp(loc, "us-east-1") == 0 || (loc[0] != '\0' && !kms_region_name_ok(loc)))
        KMS_S3_FAIL(r, 400, "InvalidLocationConstraint", "The specified location-constraint is not valid");
    if (loc[0] == '\0' && strcmp(r->region, "us-east-1") != 0)
        KMS_S3_FAIL(r, 400, "IllegalLocationConstraintException",
                    "The unspecified location constraint is incompatible for the region specific endpoint this "
                    "request was sent to.");
    if (loc[0] != '\0' && strcmp(loc, r->region) != 0)
        KMS_S3_FAIL(r, 400, "IllegalLocationConstraintException",
                    "The %s location constraint is incompatible for the region specific endpoint this request was "
                    "sent to.",
                    loc);
    json_t *info = json_pack("{s:s, s:s, s:I}", "owner", r->who->account, "region", loc[0] ? loc : "us-east-1",
                             "created", (json_int_t)r->now);
    CL_ENSURE(info != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = kms_s3_bucket_create(r->kms, r->bucket, info);
    json_decref(info);
    if (rc == CL_ERR_EXISTS) {
        json_t *have = NULL;
        CL_GUARD(kms_s3_bucket_load(r->kms, r->bucket, &have));
        bool mine = strcmp(json_string_value(json_object_get(have, "owner")), r->who->account) == 0;
        bool east = strcmp(json_string_value(json_object_get(have, "region")), "us-east-1") == 0;
        json_decref(have);
        if (!mine)
            KMS_S3_FAIL(r, 409, "BucketAlreadyExists",
                        "The requested bucket name is not available. The bucket namespace is shared by all users of "
                        "the system. Please select a different name and try again.");
        /* "In the North Virginia Region, Amazon S3 returns 200 OK" to its owner. */
        if (!east || strcmp(r->region, "us-east-1") != 0)
            KMS_S3_FAIL(r, 409, "BucketAlreadyOwnedByYou",
                        "Your previous request to create the named bucket succeeded and you already own it.");
        cl_error_clear();
        rc = CL_OK;
    }
    CL_GUARD(rc);
    char where[KMS_S3_BUCKET_MAX + 2];
    (void)snprintf(where, sizeof(where), "/%s", r->bucket);
    evhttp_add_header(r->out, "Location", where);
    evhttp_add_header(r->out, "Content-Length", "0");
    return CL_OK;
}

cl_status kms_s3_head_bucket(kms_s3_req *r)
{
    json_t *info = NULL;
    CL_GUARD(kms_s3_bucket_get(r, &info));
    evhttp_add_header(r->out, "x-amz-bucket-region", json_string_value(json_object_get(info, "region")));
    evhttp_add_header(r->out, "Content-Length", "0");
    json_decref(info);
    return CL_OK;
}

cl_status kms_s3_delete_bucket(kms_s3_req *r)
{
    json_t *info = NULL;
    CL_GUARD(kms_s3_bucket_get(r, &info));
    json_decref(info);
    cl_status rc = kms_s3_bucket_remove(r->kms, r->bucket);
    if (rc == CL_ERR_STATE) KMS_S3_FAIL(r, 409, "BucketNotEmpty", "The bucket you tried to delete is not empty");
    CL_GUARD(rc);
    r->status = 204;
    return CL_OK;
}

cl_status kms_s3_get_bucket_location(kms_s3_req *r)
{
    json_t *info = NULL;
    CL_GUARD(kms_s3_bucket_get(r, &info));
    const char *region = json_string_value(json_object_get(info, "region"));
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    /* us-east-1 answers an empty LocationConstraint ("GetBucketLocation": "Buckets in Region
     * us-east-1 have a LocationConstraint of null"). */
    evbuffer_add_printf(r->resp, KMS_S3_XML_HEAD "<LocationConstraint xmlns=\"" KMS_S3_NS "\">%s</LocationConstraint>",
                        strcmp(region, "us-east-1") == 0 ? "" : region);
    json_decref(info);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_s3_bucket_file(kms_s3_req *r, const char *name, char *path, size_t cap)
{
    json_t *info = NULL;
    CL_GUARD(kms_s3_bucket_get(r, &info));
    json_decref(info);
    return kms_s3_path(r->kms, r->bucket, name, path, cap);
}

/* "PutBucketPolicy": the policy is checked by the evaluator that will judge requests with it,
 * so a policy it cannot evaluate is refused now (MalformedPolicy), not ignored later. Its
 * statements must name this bucket's resources. */
cl_status kms_s3_put_bucket_policy(kms_s3_req *r)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_bucket_file(r, "policy.json", path, sizeof(path)));
    kms_policy *p = NULL;
    if (r->body_len == 0 || r->body_len > 20480)
        KMS_S3_FAIL(r, 400, "MalformedPolicy", "Policies must be 1 to 20480 bytes (S3's bucket policy size limit)");
    if (kms_policy_parse((const char *)r->body, r->body_len, &p) != CL_OK)
        KMS_S3_FAIL(r, 400, "MalformedPolicy", "%s", cl_error_message());
    kms_policy_free(p);
    CL_GUARD(kms_s3_file_put(path, r->body, r->body_len));
    r->status = 204;
    return CL_OK;
}

cl_status kms_s3_get_bucket_policy(kms_s3_req *r)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_bucket_file(r, "policy.json", path, sizeof(path)));
    cl_buf b;
    cl_buf_init(&b, KMS_POLICY_MAX + 1);
    cl_status rc = kms_s3_file_get(path, KMS_POLICY_MAX, &b);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_buf_free(&b);
        KMS_S3_FAIL(r, 404, "NoSuchBucketPolicy", "The bucket policy does not exist");
    }
    if (rc == CL_OK) {
        evhttp_add_header(r->out, "Content-Type", "application/json");
        evbuffer_add(r->resp, b.data, b.len);
    }
    cl_buf_free(&b);
    return rc;
}

cl_status kms_s3_delete_bucket_policy(kms_s3_req *r)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_bucket_file(r, "policy.json", path, sizeof(path)));
    CL_GUARD(kms_s3_file_remove(path));
    r->status = 204;
    return CL_OK;
}

/* "PutBucketEncryption": the default of objects PUT without x-amz-server-side-encryption. Only
 * aws:kms is implemented (SSE-S3's AES256 is not: NotImplemented). */
cl_status kms_s3_put_bucket_encryption(kms_s3_req *r)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_bucket_file(r, "encryption.json", path, sizeof(path)));
    cl_reader x = cl_reader_make(r->body, r->body_len), rule, def, v;
    char alg[32] = "", key[KMS_ARN_MAX + 1] = "";
    if (!kms_s3_xml_next(&x, "ServerSideEncryptionConfiguration", &rule) ||
        !kms_s3_xml_next(&rule, "ApplyServerSideEncryptionByDefault", &def))
        KMS_S3_FAIL(r, 400, "MalformedXML",
                    "The XML you provided was not well-formed or did not validate against our published schema");
    cl_reader d2 = def;
    if (!kms_s3_xml_next(&def, "SSEAlgorithm", &v) || kms_s3_xml_value(&v, alg, sizeof(alg)) != CL_OK)
        KMS_S3_FAIL(r, 400, "MalformedXML", "ApplyServerSideEncryptionByDefault needs an SSEAlgorithm");
    if (kms_s3_xml_next(&d2, "KMSMasterKeyID", &v) && kms_s3_xml_value(&v, key, sizeof(key)) != CL_OK)
        KMS_S3_FAIL(r, 400, "InvalidArgument", "KMSMasterKeyID is too long");
    if (strcmp(alg, "AES256") == 0)
        KMS_S3_FAIL(r, 501, "NotImplemented",
                    "SSE-S3 (AES256) is not implemented by this server: use aws:kms with a KMS key (docs/s3.md)");
    if (strcmp(alg, "aws:kms") != 0)
        KMS_S3_FAIL(r, 400, "InvalidArgument", "SSEAlgorithm must be aws:kms or AES256, not '%s'", alg);
    json_t *j = json_pack("{s:s, s:s}", "algorithm", alg, "key_id", key);
    CL_ENSURE(j != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = kms_s3_json_put(path, j);
    json_decref(j);
    return rc;
}

cl_status kms_s3_get_bucket_encryption(kms_s3_req *r)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_bucket_file(r, "encryption.json", path, sizeof(path)));
    json_t *j = NULL;
    cl_status rc = kms_s3_json_get(path, &j);
    if (rc == CL_ERR_NOT_FOUND)
        KMS_S3_FAIL(r, 404, "ServerSideEncryptionConfigurationNotFoundError",
                    "The server side encryption configuration was not found");
    CL_GUARD(rc);
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    evbuffer_add_printf(r->resp,
                        KMS_S3_XML_HEAD "<ServerSideEncryptionConfiguration xmlns=\"" KMS_S3_NS
                                        "\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>%s</SSEAlgorithm>",
                        json_string_value(json_object_get(j, "algorithm")));
    const char *key = json_string_value(json_object_get(j, "key_id"));
    if (key != NULL && key[0] != '\0') {
        evbuffer_add_printf(r->resp, "<KMSMasterKeyID>");
        kms_s3_xml_text(r->resp, key);
        evbuffer_add_printf(r->resp, "</KMSMasterKeyID>");
    }
    evbuffer_add_printf(r->resp, "</ApplyServerSideEncryptionByDefault><BucketKeyEnabled>false</BucketKeyEnabled>"
                                 "</Rule></ServerSideEncryptionConfiguration>");
    json_decref(j);
    return CL_OK;
}

cl_status kms_s3_delete_bucket_encryption(kms_s3_req *r)
{
    char path[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_bucket_file(r, "encryption.json", path, sizeof(path)));
    CL_GUARD(kms_s3_file_remove(path));
    r->status = 204;
    return CL_OK;
}
