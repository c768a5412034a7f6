/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listing objects (S3 API Reference: ListObjectsV2, ListObjects): keys in UTF-8 binary order,
 * prefix, delimiter (CommonPrefixes), max-keys (1000 at most; contents and common prefixes both
 * count), continuation (v2: continuation-token, start-after; v1: marker), encoding-type=url.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"

#include "s3.h"
#include "s3_store.h"

#define KMS_S3_XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define KMS_S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"

/* A value of the answer: XML-escaped, or URL-encoded (encoding-type=url: every byte but the
 * unreserved ones and '/' as %XX, which botocore's unquote_plus reverses). */
static void kms_s3_list_value(struct evbuffer *b, const char *s, bool url)
{
    if (!url) {
        kms_s3_xml_text(b, s);
        return;
    }
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                    *p == '_' || *p == '.' || *p == '~' || *p == '/';
        if (keep) {
            evbuffer_add(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            evbuffer_add(b, e, 3);
        }
    }
}

static void kms_s3_list_element(struct evbuffer *b, const char *name, const char *v, bool url)
{
    evbuffer_add_printf(b, "<%s>", name);
    kms_s3_list_value(b, v, url);
    evbuffer_add_printf(b, "</%s>", name);
}

typedef struct kms_s3_listing {
    const char *prefix, *delimiter, *after; /* after: list keys > after ("" none) */
    size_t max_keys;
    bool url;
    bool v2;
} kms_s3_listing;

static CL_MUST_USE cl_status kms_s3_max_keys(kms_s3_req *r, size_t *out)
{
    const char *mk = kms_s3_query(r, "max-keys");
    uint64_t v = KMS_S3_LIST_MAX;
    if (mk != NULL && cl_parse_uint(mk, 0, INT32_MAX, "max-keys", &v) != CL_OK)
        KMS_S3_FAIL(r, 400, "InvalidArgument", "Provided max-keys not an integer or within integer range");
    *out = v > KMS_S3_LIST_MAX ? KMS_S3_LIST_MAX : (size_t)v;
    return CL_OK;
}

static CL_MUST_USE cl_status kms_s3_list(kms_s3_req *r, const kms_s3_listing *l, const char *token)
{
    json_t *info = NULL, *all = NULL;
    cl_status rc = kms_s3_bucket_load(r->kms, r->bucket, &info);
    json_decref(info);
    if (rc == CL_ERR_NOT_FOUND) KMS_S3_FAIL(r, 404, "NoSuchBucket", "The specified bucket does not exist");
    CL_GUARD(rc);
    CL_GUARD(kms_s3_obj_list(r->kms, r->bucket, l->prefix, &all));
    char *last = NULL, *last_prefix = NULL;
    struct evbuffer *body = evbuffer_new();
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "out of memory");
    size_t plen = strlen(l->prefix), dlen = strlen(l->delimiter), count = 0;
    bool truncated = false;
    /* Continuing after a common prefix skips every key under it. */
    bool after_is_prefix =
        dlen > 0 && strlen(l->after) >= dlen && strcmp(l->after + strlen(l->after) - dlen, l->delimiter) == 0;
    size_t i;
    json_t *h;
    json_array_foreach(all, i, h)
    {
        const char *key = json_string_value(json_object_get(h, "key"));
        if (l->after[0] != '\0' && strcmp(key, l->after) <= 0) continue;
        if (after_is_prefix && strncmp(key, l->after, strlen(l->after)) == 0) continue;
        const char *cut = dlen > 0 ? strstr(key + plen, l->delimiter) : NULL;
        if (cut != NULL) {
            size_t n = (size_t)(cut - key) + dlen;
            if (last_prefix != NULL && strlen(last_prefix) == n && strncmp(last_prefix, key, n) == 0) continue;
            if (count == l->max_keys) {
                truncated = true;
                break;
            }
            free(last_prefix);
            last_prefix = strndup(key, n);
            CL_ENSURE_GOTO(last_prefix != NULL, CL_ERR_NOMEM, "out of memory");
            evbuffer_add_printf(body, "<CommonPrefixes>");
            kms_s3_list_element(body, "Prefix", last_prefix, l->url);
            evbuffer_add_printf(body, "</CommonPrefixes>");
            free(last);
            last = strdup(last_prefix);
            CL_ENSURE_GOTO(last != NULL, CL_ERR_NOMEM, "out of memory");
            count++;
            continue;
        }
        if (count == l->max_keys) {
            truncated = true;
            break;
        }
        char date[32];
        kms_s3_iso_date((int64_t)json_integer_value(json_object_get(h, "mtime")), date);
        evbuffer_add_printf(body, "<Contents>");
        kms_s3_list_element(body, "Key", key, l->url);
        evbuffer_add_printf(body,
                            "<LastModified>%s</LastModified><ETag>&quot;%s&quot;</ETag><Size>%lld</Size>"
                            "<StorageClass>STANDARD</StorageClass>",
                            date, json_string_value(json_object_get(h, "etag")),
                            (long long)json_integer_value(json_object_get(h, "size")));
        if (!l->v2 && r->who != NULL)
            evbuffer_add_printf(body, "<Owner><ID>%s</ID><DisplayName>%s</DisplayName></Owner>", r->who->account,
                                r->who->account);
        evbuffer_add_printf(body, "</Contents>");
        free(last);
        last = strdup(key);
        CL_ENSURE_GOTO(last != NULL, CL_ERR_NOMEM, "out of memory");
        count++;
    }
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    evbuffer_add_printf(r->resp, KMS_S3_XML_HEAD "<ListBucketResult xmlns=\"" KMS_S3_NS "\"><Name>%s</Name>",
                        r->bucket);
    kms_s3_list_element(r->resp, "Prefix", l->prefix, l->url);
    if (dlen > 0) kms_s3_list_element(r->resp, "Delimiter", l->delimiter, l->url);
    evbuffer_add_printf(r->resp, "<MaxKeys>%zu</MaxKeys><IsTruncated>%s</IsTruncated>", l->max_keys,
                        truncated ? "true" : "false");
    if (l->url) evbuffer_add_printf(r->resp, "<EncodingType>url</EncodingType>");
    if (l->v2) {
        evbuffer_add_printf(r->resp, "<KeyCount>%zu</KeyCount>", count);
        if (token != NULL) kms_s3_list_element(r->resp, "ContinuationToken", token, false);
        const char *sa = kms_s3_query(r, "start-after");
        if (sa != NULL) kms_s3_list_element(r->resp, "StartAfter", sa, l->url);
        if (truncated && last != NULL) {
            /* The token is the last key or prefix answered, base64url: opaque to clients, as S3's. */
            cl_buf t;
            cl_buf_init(&t, (size_t)4 * KMS_S3_KEY_MAX);
            if (cl_base64_encode((const uint8_t *)last, strlen(last), true, &t) == CL_OK)
                kms_s3_list_element(r->resp, "NextContinuationToken", cl_buf_cstr(&t), false);
            cl_buf_free(&t);
        }
    } else {
        kms_s3_list_element(r->resp, "Marker", l->after, l->url);
        if (truncated && last != NULL) kms_s3_list_element(r->resp, "NextMarker", last, l->url);
    }
    evbuffer_add_buffer(r->resp, body);
    evbuffer_add_printf(r->resp, "</ListBucketResult>");
out:
    if (body != NULL) evbuffer_free(body);
    free(last);
    free(last_prefix);
    json_decref(all);
    return rc;
}

static CL_MUST_USE cl_status kms_s3_list_common(kms_s3_req *r, kms_s3_listing *l)
{
    const char *prefix = kms_s3_query(r, "prefix"), *delim = kms_s3_query(r, "delimiter"),
               *enc = kms_s3_query(r, "encoding-type");
    if (enc != NULL && strcmp(enc, "url") != 0)
        KMS_S3_FAIL(r, 400, "InvalidArgument", "Invalid Encoding Method specified in Request");
    l->prefix = prefix != NULL ? prefix : "";
    l->delimiter = delim != NULL ? delim : "";
    l->url = enc != NULL;
    return kms_s3_max_keys(r, &l->max_keys);
}

cl_status kms_s3_list_objects_v2(kms_s3_req *r)
{
    kms_s3_listing l = {.v2 = true, .after = ""};
    const char *lt = kms_s3_query(r, "list-type");
    if (lt == NULL || strcmp(lt, "2") != 0)
        KMS_S3_FAIL(r, 400, "InvalidArgument", "Invalid List Type specified in Request");
    CL_GUARD(kms_s3_list_common(r, &l));
    const char *token = kms_s3_query(r, "continuation-token"), *sa = kms_s3_query(r, "start-after");
    cl_status rc = CL_OK;
    cl_buf t;
    cl_buf_init(&t, (size_t)4 * KMS_S3_KEY_MAX);
    if (token != NULL) {
        if (token[0] == '\0' || cl_base64_decode(token, strlen(token), true, &t) != CL_OK || t.len == 0 ||
            memchr(t.data, 0, t.len) != NULL)
            KMS_S3_FAIL_GOTO(r, 400, "InvalidArgument", "The continuation token provided is incorrect");
        l.after = cl_buf_cstr(&t);
    } else if (sa != NULL) {
        l.after = sa;
    }
    rc = kms_s3_list(r, &l, token);
out:
    cl_buf_free(&t);
    return rc;
}

cl_status kms_s3_list_objects(kms_s3_req *r)
{
    kms_s3_listing l = {.v2 = false};
    CL_GUARD(kms_s3_list_common(r, &l));
    const char *marker = kms_s3_query(r, "marker");
    l.after = marker != NULL ? marker : "";
    return kms_s3_list(r, &l, NULL);
}
