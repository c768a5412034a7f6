/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The S3 client's request signing against botocore's S3SigV4Auth (the Authorization values below
 * are what tests/vectors/s3_sigv4_botocore.py prints for the same requests: never computed by the
 * code under test), its path encoding, and the bounded XML reader with its negatives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/s3_client.h"
#include "cloister/sigv4.h"

#include "s3_client_internal.h"
#include "test_util.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SCOPE "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/eu-west-1/s3/aws4_request, "

static cl_s3_client *client(const char *endpoint, const char *token, bool unsigned_payload)
{
    cl_s3_config cfg = {.endpoint = endpoint,
                        .region = "eu-west-1",
                        .access_key_id = AKID,
                        .secret_access_key = SECRET,
                        .session_token = token,
                        .unsigned_payload = unsigned_payload};
    cl_s3_client *c = NULL;
    assert_ok(cl_s3_client_new(&cfg, &c));
    return c;
}

static int64_t fixed_time(void)
{
    int64_t t = 0;
    assert_ok(cl_sigv4_parse_amz_date("20261206T200000Z", 16, &t));
    return t;
}

static void check(cl_s3_client *c, const char *method, const char *path, const char *query, const cl_http_header *extra,
                  size_t n_extra, const char *hash, const char *want)
{
    cl_s3_signed s;
    assert_ok(cl_s3_sign(c, method, path, query, extra, n_extra, hash, fixed_time(), &s));
    assert_string_equal(cl_buf_cstr(&s.authorization), want);
    assert_string_equal(s.amz_date, "20261206T200000Z");
    cl_s3_signed_free(&s);
}

static void test_botocore_put_object(void **state)
{
    (void)state;
    cl_buf path;
    cl_buf_init(&path, 4096);
    assert_ok(cl_s3_object_path("bucket", "dir one/a+b.txt", &path));
    assert_string_equal(cl_buf_cstr(&path), "/bucket/dir%20one/a%2Bb.txt");
    cl_s3_client *c = client("http://127.0.0.1:9000", NULL, false);
    cl_http_header ct[] = {{"Content-Type", "text/plain"}};
    check(c, "PUT", cl_buf_cstr(&path), NULL, ct, 1,
          "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" /* SHA-256("hello") */,
          SCOPE "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date, "
                "Signature=2f3817adb4078a168a16bdc89dfdb1dbce7e4d1062a5b72ae68b960668f58560");
    cl_s3_client_free(c);
    cl_buf_free(&path);
}

static void test_botocore_get_range_session_token(void **state)
{
    (void)state;
    cl_s3_client *c = client("http://127.0.0.1:9000", "FQoGZXIvYXdzEXAMPLETOKEN/+=", false);
    cl_http_header range[] = {{"Range", "bytes=10-19"}};
    cl_s3_signed s;
    assert_ok(cl_s3_sign(c, "GET", "/bucket/k", NULL, range, 1, EMPTY, fixed_time(), &s));
    /* the token goes as X-Amz-Security-Token, signed */
    bool sent = false;
    for (size_t i = 0; i < s.n_headers; i++)
        sent |= strcmp(s.headers[i].name, "x-amz-security-token") == 0 &&
                strcmp(s.headers[i].value, "FQoGZXIvYXdzEXAMPLETOKEN/+=") == 0;
    assert_true(sent);
    cl_s3_signed_free(&s);
    check(c, "GET", "/bucket/k", NULL, range, 1, EMPTY,
          SCOPE "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
                "Signature=44d74b23206951db15b15aea92b2d1af127e75dbd31d84b933c3a81718ef2c0f");
    cl_s3_client_free(c);
}

static void test_botocore_list_and_multipart(void **state)
{
    (void)state;
    cl_s3_client *c = client("http://127.0.0.1:9000", NULL, false);
    check(c, "GET", "/bucket", "list-type=2&continuation-token=a%2Fb%3D&prefix=dir%2F", NULL, 0, EMPTY,
          SCOPE "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                "Signature=5d0e3b0776c99987988876742cb109b6f7de3150a294599fce1d59745438f646");
    check(c, "POST", "/bucket/big", "uploads", NULL, 0, EMPTY,
          SCOPE "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                "Signature=c0b199d26162625fc0d7735154491e4b1f890ba9a8743e4f2ce86ccf588d33ae");
    cl_s3_client_free(c);
}

static void test_botocore_unsigned_payload(void **state)
{
    (void)state;
    cl_s3_client *c = client("https://s3.example.com", NULL, true);
    check(c, "PUT", "/bucket/big", "partNumber=3&uploadId=x%2By", NULL, 0, "UNSIGNED-PAYLOAD",
          SCOPE "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
                "Signature=60429bb578922fae6ff74e950768c2fc0bb0c16958eb18c56df55b2e414f4461");
    cl_s3_client_free(c);
}

static void test_config_refused(void **state)
{
    (void)state;
    cl_s3_client *c = NULL;
    cl_s3_config cfg = {.endpoint = "http://127.0.0.1:9000",
                        .region = "us-east-1",
                        .access_key_id = AKID,
                        .secret_access_key = SECRET,
                        .unsigned_payload = true};
    assert_fails(cl_s3_client_new(&cfg, &c), CL_ERR_USAGE, "UNSIGNED-PAYLOAD is for https endpoints");
    cfg.unsigned_payload = false;
    cfg.part_size = 1 << 20;
    assert_fails(cl_s3_client_new(&cfg, &c), CL_ERR_USAGE, "part size must be 5 MiB to 5 GiB");
    cfg.part_size = 0;
    cfg.endpoint = "http://127.0.0.1:9000/prefix";
    assert_fails(cl_s3_client_new(&cfg, &c), CL_ERR_USAGE, "has a path");
    cfg.endpoint = "http://127.0.0.1:9000";
    cfg.secret_access_key = "";
    assert_fails(cl_s3_client_new(&cfg, &c), CL_ERR_USAGE, "secret access key");
    assert_null(c);
    cl_buf p;
    cl_buf_init(&p, 4096);
    assert_fails(cl_s3_object_path("Bad_Bucket", "k", &p), CL_ERR_USAGE, "bucket naming rules");
    assert_fails(cl_s3_object_path("ab", "k", &p), CL_ERR_USAGE, "3 to 63");
    assert_fails(cl_s3_object_path("bucket", "", &p), CL_ERR_USAGE, "1 to 1024 bytes");
    cl_buf_free(&p);
}

/* --- XML ----------------------------------------------------------------------------- */

static const char list_doc[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix>dir/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>"
    "<IsTruncated>true</IsTruncated>"
    "<Contents><Key>dir/a&amp;b &lt;1&gt; &#233;&#x263A;</Key><LastModified>2026-12-06T20:00:00.000Z</LastModified>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>5</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<!-- a comment --><Contents><Key>dir/b</Key><Size>18446744073709551615</Size></Contents>"
    "<CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "</ListBucketResult>";

static void test_list_parse(void **state)
{
    (void)state;
    cl_s3_list_page pg;
    assert_ok(cl_s3_xml_list_parse((const uint8_t *)list_doc, sizeof(list_doc) - 1, &pg));
    assert_int_equal(pg.n_entries, 2);
    assert_string_equal(pg.entries[0].key, "dir/a&b <1> \xc3\xa9\xe2\x98\xba");
    assert_string_equal(pg.entries[0].etag, "\"9b2cf535f27731c974343645a3985328\"");
    assert_int_equal(pg.entries[0].size, 5);
    assert_string_equal(pg.entries[0].last_modified, "2026-12-06T20:00:00.000Z");
    assert_string_equal(pg.entries[1].key, "dir/b");
    assert_true(pg.entries[1].size == UINT64_MAX);
    assert_int_equal(pg.n_common_prefixes, 1);
    assert_string_equal(pg.common_prefixes[0], "dir/sub/");
    assert_true(pg.truncated);
    assert_string_equal(pg.next_token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    cl_s3_list_page_free(&pg);
}

static CL_MUST_USE cl_status list_of(const char *doc)
{
    cl_s3_list_page pg;
    cl_status rc = cl_s3_xml_list_parse((const uint8_t *)doc, strlen(doc), &pg);
    if (rc == CL_OK) cl_s3_list_page_free(&pg);
    return rc;
}

#define LB "<ListBucketResult>"
#define LE "<IsTruncated>false</IsTruncated></ListBucketResult>"

static void test_xml_negatives(void **state)
{
    (void)state;
    /* an entity of the document's own would expand ("billion laughs"): no DTD at all */
    assert_fails(list_of("<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\">]>" LB "<Prefix>&a;</Prefix>" LE),
                 CL_ERR_UNSUPPORTED, "DOCTYPE");
    assert_fails(list_of(LB "<Contents><Key><![CDATA[x]]></Key></Contents>" LE), CL_ERR_UNSUPPORTED, "CDATA");
    assert_fails(list_of(LB "<Prefix>&a;</Prefix>" LE), CL_ERR_FORMAT, "entity references other than");
    assert_fails(list_of(LB "<Prefix>&#0;</Prefix>" LE), CL_ERR_FORMAT, "not an XML character");
    assert_fails(list_of(LB "<Prefix>&#x110000;</Prefix>" LE), CL_ERR_FORMAT, "beyond U+10FFFF");
    assert_fails(list_of(LB "<Prefix>&amp</Prefix>" LE), CL_ERR_FORMAT, "without its ';'");
    assert_fails(list_of(LB "<Prefix>a\x01</Prefix>" LE), CL_ERR_FORMAT, "control byte 0x01");
    assert_fails(list_of(LB "<Contents><Key>k</Size></Contents>" LE), CL_ERR_FORMAT, "</Size> does not close <Key>");
    assert_fails(list_of(LB "<IsTruncated>false</IsTruncated>"), CL_ERR_FORMAT, "ends inside <ListBucketResult>");
    assert_fails(list_of(LB LE "<Other/>"), CL_ERR_FORMAT, "a second root element");
    assert_fails(list_of(LB LE "junk"), CL_ERR_FORMAT, "text outside the root element");
    assert_fails(list_of(""), CL_ERR_FORMAT, "no element");
    assert_fails(list_of("<ListBucketResult a=\"x<\">" LE), CL_ERR_FORMAT, "'<' in the value of attribute a");
    assert_fails(list_of("<ListBucketResult a=x>" LE), CL_ERR_FORMAT, "a quoted value expected");
    assert_fails(list_of("<Error><Code>NoSuchBucket</Code></Error>"), CL_ERR_FORMAT,
                 "a <Error> document, not <ListBucketResult>");
    assert_fails(list_of(LB "<Contents><Size>1</Size></Contents>" LE), CL_ERR_FORMAT, "without a <Key>");
    assert_fails(list_of(LB "<Contents><Key>k</Key><Size>-1</Size></Contents>" LE), CL_ERR_USAGE,
                 "Size must be a whole number");
    assert_fails(list_of(LB "<IsTruncated>true</IsTruncated></ListBucketResult>"), CL_ERR_FORMAT,
                 "truncated without a <NextContinuationToken>");
    assert_fails(list_of(LB "<IsTruncated>yes</IsTruncated></ListBucketResult>"), CL_ERR_FORMAT,
                 "neither true nor false");
    assert_fails(list_of(LB "</ListBucketResult>"), CL_ERR_FORMAT, "no <IsTruncated>");

    /* bounds: nesting, text, name, keys, entries */
    cl_buf d;
    cl_buf_init(&d, 8 << 20);
    assert_ok(cl_buf_append_str(&d, LB));
    for (int i = 0; i < 16; i++) assert_ok(cl_buf_append_str(&d, "<a>"));
    assert_fails(list_of(cl_buf_cstr(&d)), CL_ERR_LIMIT, "nested over 16 deep");
    cl_buf_reset(&d);
    assert_ok(cl_buf_append_str(&d, LB "<Prefix>"));
    for (int i = 0; i < 17000; i++) assert_ok(cl_buf_append_u8(&d, 'x'));
    assert_ok(cl_buf_append_str(&d, "</Prefix>" LE));
    assert_fails(list_of(cl_buf_cstr(&d)), CL_ERR_LIMIT, "is over 16384 bytes");
    cl_buf_reset(&d);
    assert_ok(cl_buf_append_str(&d, LB "<Contents><Key>"));
    for (int i = 0; i < 1025; i++) assert_ok(cl_buf_append_u8(&d, 'k'));
    assert_ok(cl_buf_append_str(&d, "</Key></Contents>" LE));
    assert_fails(list_of(cl_buf_cstr(&d)), CL_ERR_LIMIT, "key is over 1024 bytes");
    cl_buf_reset(&d);
    assert_ok(cl_buf_append_str(&d, "<"));
    for (int i = 0; i < 65; i++) assert_ok(cl_buf_append_u8(&d, 'n'));
    assert_ok(cl_buf_append_str(&d, "/>"));
    assert_fails(list_of(cl_buf_cstr(&d)), CL_ERR_LIMIT, "is over 64 bytes");
    cl_buf_reset(&d);
    assert_ok(cl_buf_append_str(&d, LB));
    for (int i = 0; i < 1001; i++) assert_ok(cl_buf_append_str(&d, "<Contents><Key>k</Key></Contents>"));
    assert_ok(cl_buf_append_str(&d, LE));
    assert_fails(list_of(cl_buf_cstr(&d)), CL_ERR_LIMIT, "more than 1000 keys in one page");
    cl_buf_free(&d);
}

static void test_error_and_upload_id(void **state)
{
    (void)state;
    static const char err[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code>"
                              "<Message>The specified key does not exist.</Message><Key>k</Key>"
                              "<RequestId>4442587FB7D0A2F9</RequestId></Error>";
    char code[128], message[512];
    assert_ok(cl_s3_xml_error_parse((const uint8_t *)err, sizeof(err) - 1, code, message));
    assert_string_equal(code, "NoSuchKey");
    assert_string_equal(message, "The specified key does not exist.");
    assert_int_equal(cl_s3_error_status("NoSuchKey"), CL_ERR_NOT_FOUND);
    assert_int_equal(cl_s3_error_status("NoSuchBucket"), CL_ERR_NOT_FOUND);
    assert_int_equal(cl_s3_error_status("AccessDenied"), CL_ERR_DENIED);
    assert_int_equal(cl_s3_error_status("BucketAlreadyOwnedByYou"), CL_ERR_EXISTS);
    assert_int_equal(cl_s3_error_status("SlowDown"), CL_ERR_REMOTE);
    static const char not_err[] = "<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>";
    assert_fails(cl_s3_xml_error_parse((const uint8_t *)not_err, sizeof(not_err) - 1, code, message), CL_ERR_FORMAT,
                 "not an S3 error document");
    static const char no_code[] = "<Error><Message>m</Message></Error>";
    assert_fails(cl_s3_xml_error_parse((const uint8_t *)no_code, sizeof(no_code) - 1, code, message), CL_ERR_FORMAT,
                 "without a <Code>");
    static const char up[] = "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                             "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE+/=</UploadId>"
                             "</InitiateMultipartUploadResult>";
    char id[1025];
    assert_ok(cl_s3_xml_upload_id_parse((const uint8_t *)up, sizeof(up) - 1, id));
    assert_string_equal(id, "VXBsb2FkIElE+/=");
    static const char no_id[] = "<InitiateMultipartUploadResult><Bucket>b</Bucket></InitiateMultipartUploadResult>";
    assert_fails(cl_s3_xml_upload_id_parse((const uint8_t *)no_id, sizeof(no_id) - 1, id), CL_ERR_FORMAT,
                 "has no <UploadId>");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_botocore_put_object),
        cmocka_unit_test(test_botocore_get_range_session_token),
        cmocka_unit_test(test_botocore_list_and_multipart),
        cmocka_unit_test(test_botocore_unsigned_payload),
        cmocka_unit_test(test_config_refused),
        cmocka_unit_test(test_list_parse),
        cmocka_unit_test(test_xml_negatives),
        cmocka_unit_test(test_error_and_upload_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
