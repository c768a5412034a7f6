/* SPDX-License-Identifier: Apache-2.0 */
/*
 * S3 object operations (S3 API Reference: PutObject, GetObject, HeadObject, DeleteObject,
 * DeleteObjects, CopyObject). An object is written whole to a temporary file, fsync'd, renamed
 * into place and its directory fsync'd before the answer (s3_store.h), so an acknowledged PUT
 * survives a crash and a reader sees the old object or the new one, never a mix.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "s3.h"
#include "s3_sse.h"
#include "s3_store.h"

#define KMS_S3_XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define KMS_S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"

/* Headers kept with an object and given back on GET/HEAD, besides Content-Type and x-amz-meta-*. */
static const char *const kms_s3_kept_headers[] = {"Cache-Control", "Content-Disposition", "Content-Encoding",
                                                  "Content-Language", "Expires"};

static CL_MUST_USE cl_status kms_s3_md5_hex(const uint8_t *p, size_t n, char out[33])
{
    uint8_t d[16];
    unsigned dl = 0;
    CL_ENSURE(EVP_Digest(p, n, d, &dl, EVP_md5(), NULL) == 1 && dl == 16, CL_ERR_CRYPTO, "MD5 failed");
    (void)cl_hex_encode(d, 16, out, 33);
    return CL_OK;
}

static CL_MUST_USE cl_status kms_s3_bucket_exists(kms_s3_req *r)
{
    json_t *info = NULL;
    cl_status rc = kms_s3_bucket_load(r->kms, r->bucket, &info);
    json_decref(info);
    if (rc == CL_ERR_NOT_FOUND) KMS_S3_FAIL(r, 404, "NoSuchBucket", "The specified bucket does not exist");
    return rc;
}

static void kms_s3_arn(const char *bucket, const char *key, char *out, size_t cap)
{
    (void)snprintf(out, cap, "arn:aws:s3:::%s/%s", bucket, key);
}

/* The user metadata (x-amz-meta-*, names lower case) and kept headers of the request. */
static CL_MUST_USE cl_status kms_s3_request_meta(kms_s3_req *r, json_t *meta, json_t *kept)
{
    size_t total = 0;
    for (struct evkeyval *kv = r->in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        if (strncasecmp(kv->key, "x-amz-meta-", 11) == 0) {
            char name[256];
            size_t n = strlen(kv->key + 11);
            if (n == 0 || n >= sizeof(name))
                KMS_S3_FAIL(r, 400, "InvalidArgument", "a metadata name (x-amz-meta-*) must be 1..255 characters");
            for (size_t i = 0; i <= n; i++) name[i] = (char)tolower((unsigned char)kv->key[11 + i]);
            total += n + strlen(kv->value);
            (void)json_object_set_new(meta, name, json_string(kv->value));
        }
    }
    /* "The user-defined metadata is limited to 2 KB in size ... the sum of the number of bytes in
     * the UTF-8 encoding of each key and value." */
    if (total > KMS_S3_META_MAX)
        KMS_S3_FAIL(r, 400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.");
    for (size_t i = 0; i < sizeof(kms_s3_kept_headers) / sizeof(kms_s3_kept_headers[0]); i++) {
        const char *v = evhttp_find_header(r->in, kms_s3_kept_headers[i]);
        if (v != NULL && strlen(v) <= 1024) (void)json_object_set_new(kept, kms_s3_kept_headers[i], json_string(v));
    }
    return CL_OK;
}

/* The key of the request's SSE-KMS, or NULL when the object is stored as is: the
 * x-amz-server-side-encryption headers, else the bucket's default encryption. */
static CL_MUST_USE cl_status kms_s3_sse_choice(kms_s3_req *r, const char **key_id, char *buf, size_t cap)
{
    *key_id = NULL;
    const char *alg = evhttp_find_header(r->in, "x-amz-server-side-encryption");
    const char *kid = evhttp_find_header(r->in, "x-amz-server-side-encryption-aws-kms-key-id");
    if (alg == NULL) {
        if (kid != NULL)
            KMS_S3_FAIL(r, 400, "InvalidArgument",
                        "Server Side Encryption with KMS managed key requires HTTP header "
                        "x-amz-server-side-encryption : aws:kms");
        char path[KMS_PATH_MAX + 128];
        json_t *enc = NULL;
        CL_GUARD(kms_s3_path(r->kms, r->bucket, "encryption.json", path, sizeof(path)));
        if (kms_s3_json_get(path, &enc) != CL_OK) {
            cl_error_clear();
            return CL_OK;
        }
        const char *k = json_string_value(json_object_get(enc, "key_id"));
        (void)snprintf(buf, cap, "%s", k != NULL && k[0] != '\0' ? k : "alias/aws/s3");
        json_decref(enc);
        *key_id = buf;
        return CL_OK;
    }
    if (strcmp(alg, "AES256") == 0)
        KMS_S3_FAIL(r, 501, "NotImplemented",
                    "SSE-S3 (x-amz-server-side-encryption: AES256) is not implemented by this server: use aws:kms "
                    "with a KMS key (docs/s3.md)");
    if (strcmp(alg, "aws:kms") != 0)
        KMS_S3_FAIL(r, 400, "InvalidArgument",
                    "The encryption method specified is not supported: x-amz-server-side-encryption must be aws:kms "
                    "(or AES256), not '%s'",
                    alg);
    /* Without a key id S3 uses the account's AWS managed key, aws/s3 (its alias). */
    (void)snprintf(buf, cap, "%s", kid != NULL ? kid : "alias/aws/s3");
    *key_id = buf;
    return CL_OK;
}

/* The answer headers of an object's encryption. */
static void kms_s3_sse_headers(kms_s3_req *r, json_t *hdr)
{
    json_t *sse = json_object_get(hdr, "sse");
    if (sse == NULL) return;
    evhttp_add_header(r->out, "x-amz-server-side-encryption", "aws:kms");
    evhttp_add_header(r->out, "x-amz-server-side-encryption-aws-kms-key-id",
                      json_string_value(json_object_get(sse, "key_id")));
}

/* Writes an object from bytes in memory: plain, or sealed under a new data key. */
static CL_MUST_USE cl_status kms_s3_store_object(kms_s3_req *r, const char *key, const uint8_t *data, size_t n,
                                                 const char *content_type, json_t *meta, json_t *kept,
                                                 const char *sse_key_id, json_t **hdr_out)
{
    cl_status rc = CL_OK;
    char path[KMS_PATH_MAX + 160], arn[KMS_S3_KEY_MAX + 96], etag[33];
    uint8_t dkey[CL_AES256_KEY_LEN];
    cl_memzero(dkey, sizeof(dkey));
    json_t *sse = NULL, *hdr = NULL;
    cl_outfile o = {.fd = -1};
    CL_GUARD_GOTO(kms_s3_object_path(r->kms, r->bucket, key, path, sizeof(path)));
    kms_s3_arn(r->bucket, key, arn, sizeof(arn));
    if (sse_key_id != NULL) CL_GUARD_GOTO(kms_s3_sse_new(r, sse_key_id, arn, &sse, dkey));
    if (sse == NULL) CL_GUARD_GOTO(kms_s3_md5_hex(data, n, etag));
    hdr = json_pack("{s:s, s:I, s:I, s:s, s:O, s:O}", "key", key, "size", (json_int_t)n, "mtime", (json_int_t)r->now,
                    "content_type", content_type, "meta", meta, "headers", kept);
    CL_ENSURE_GOTO(hdr != NULL, CL_ERR_NOMEM, "out of memory");
    if (sse != NULL) {
        /* The ETag of an SSE-KMS object is not the MD5 of its data ("Checking object integrity"):
         * here the MD5 of a fresh random value, so no digest of the plaintext is stored. */
        uint8_t rnd[16];
        CL_GUARD_GOTO(cl_random(rnd, sizeof(rnd)));
        (void)cl_hex_encode(rnd, sizeof(rnd), etag, sizeof(etag));
        (void)json_object_set(hdr, "sse", sse);
    }
    (void)json_object_set_new(hdr, "etag", json_string(etag));
    CL_GUARD_GOTO(kms_s3_obj_create(path, hdr, &o));
    if (sse != NULL)
        CL_GUARD_GOTO(kms_s3_sse_write(dkey, 0, data, n, o.fd));
    else
        CL_GUARD_GOTO(kms_s3_write_all(o.fd, data, n, path));
    CL_GUARD_GOTO(cl_outfile_commit(&o));
    *hdr_out = hdr;
    hdr = NULL;
out:
    if (o.tmp != NULL) cl_outfile_abort(&o);
    cl_memzero(dkey, sizeof(dkey));
    json_decref(sse);
    json_decref(hdr);
    return rc;
}

static void kms_s3_etag_header(kms_s3_req *r, json_t *hdr)
{
    char q[80];
    (void)snprintf(q, sizeof(q), "\"%s\"", json_string_value(json_object_get(hdr, "etag")));
    evhttp_add_header(r->out, "ETag", q);
}

cl_status kms_s3_put_object(kms_s3_req *r)
{
    if (evhttp_find_header(r->in, "x-amz-copy-source") != NULL) return kms_s3_copy_object(r);
    CL_GUARD(kms_s3_bucket_exists(r));
    cl_status rc = CL_OK;
    json_t *meta = json_object(), *kept = json_object(), *hdr = NULL;
    char kid[KMS_ARN_MAX + 1];
    const char *sse_key = NULL;
    CL_ENSURE_GOTO(meta != NULL && kept != NULL, CL_ERR_NOMEM, "out of memory");
    const char *md5 = evhttp_find_header(r->in, "Content-MD5");
    if (md5 != NULL) {
        /* "Content-MD5: The base64-encoded 128-bit MD5 digest of the message" */
        cl_buf want;
        cl_buf_init(&want, 64);
        bool ok = cl_base64_decode(md5, strlen(md5), false, &want) == CL_OK && want.len == 16;
        uint8_t d[16];
        unsigned dl = 0;
        bool same =
            ok && EVP_Digest(r->body, r->body_len, d, &dl, EVP_md5(), NULL) == 1 && cl_ct_equal(d, want.data, 16);
        cl_buf_free(&want);
        if (!ok) KMS_S3_FAIL_GOTO(r, 400, "InvalidDigest", "The Content-MD5 you specified was invalid.");
        if (!same)
            KMS_S3_FAIL_GOTO(r, 400, "BadDigest", "The Content-MD5 you specified did not match what we received.");
    }
    CL_GUARD_GOTO(kms_s3_request_meta(r, meta, kept));
    CL_GUARD_GOTO(kms_s3_sse_choice(r, &sse_key, kid, sizeof(kid)));
    const char *ct = evhttp_find_header(r->in, "Content-Type");
    CL_GUARD_GOTO(kms_s3_store_object(r, r->key, r->body, r->body_len,
                                      ct != NULL && strlen(ct) <= 256 ? ct : "binary/octet-stream", meta, kept, sse_key,
                                      &hdr));
    kms_s3_etag_header(r, hdr);
    kms_s3_sse_headers(r, hdr);
    evhttp_add_header(r->out, "Content-Length", "0");
out:
    json_decref(meta);
    json_decref(kept);
    json_decref(hdr);
    return rc;
}

/* An object of the request's bucket, or NoSuchKey / NoSuchBucket. */
static CL_MUST_USE cl_status kms_s3_open(kms_s3_req *r, const char *bucket, const char *key, kms_s3_obj *o)
{
    char path[KMS_PATH_MAX + 160];
    CL_GUARD(kms_s3_object_path(r->kms, bucket, key, path, sizeof(path)));
    cl_status rc = kms_s3_obj_open(path, o);
    if (rc == CL_OK && strcmp(json_string_value(json_object_get(o->hdr, "key")), key) != 0) {
        kms_s3_obj_close(o); /* a SHA-256 collision cannot happen; a misplaced file can */
        rc = CL_RAISE(CL_ERR_NOT_FOUND, "The specified key does not exist.");
    }
    if (rc == CL_ERR_NOT_FOUND) {
        json_t *info = NULL;
        if (kms_s3_bucket_load(r->kms, bucket, &info) != CL_OK)
            KMS_S3_FAIL(r, 404, "NoSuchBucket", "The specified bucket does not exist");
        json_decref(info);
        KMS_S3_FAIL(r, 404, "NoSuchKey", "The specified key does not exist.");
    }
    return rc;
}

/* An HTTP date (RFC 7231 7.1.1.1, IMF-fixdate) as seconds; false when it is not one. */
static bool kms_s3_parse_http_date(const char *s, int64_t *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0') return false;
    *t = (int64_t)timegm(&tm);
    return true;
}

static bool kms_s3_etag_matches(const char *list, const char *etag)
{
    /* A list of quoted entity tags, or "*" (RFC 7232 3.1). */
    char q[80];
    (void)snprintf(q, sizeof(q), "\"%s\"", etag);
    if (strcmp(list, "*") == 0) return true;
    const char *p = list;
    size_t qn = strlen(q), en = strlen(etag);
    while (*p != '\0') {
        while (*p == ' ' || *p == ',') p++;
        size_t n = strcspn(p, ",");
        while (n > 0 && p[n - 1] == ' ') n--;
        if ((n == qn && strncmp(p, q, n) == 0) || (n == en && strncmp(p, etag, n) == 0)) return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* Conditional requests (RFC 7232 section 6's order, as S3 applies them to GET and HEAD). */
static CL_MUST_USE cl_status kms_s3_conditions(kms_s3_req *r, json_t *hdr, bool *not_modified)
{
    const char *etag = json_string_value(json_object_get(hdr, "etag"));
    int64_t mtime = (int64_t)json_integer_value(json_object_get(hdr, "mtime")), t;
    const char *im = evhttp_find_header(r->in, "If-Match");
    const char *ius = evhttp_find_header(r->in, "If-Unmodified-Since");
    const char *inm = evhttp_find_header(r->in, "If-None-Match");
    const char *ims = evhttp_find_header(r->in, "If-Modified-Since");
    *not_modified = false;
    if (im != NULL && !kms_s3_etag_matches(im, etag))
        KMS_S3_FAIL(r, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
    if (im == NULL && ius != NULL && kms_s3_parse_http_date(ius, &t) && mtime > t)
        KMS_S3_FAIL(r, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
    if (inm != NULL && kms_s3_etag_matches(inm, etag)) *not_modified = true;
    if (inm == NULL && ims != NULL && kms_s3_parse_http_date(ims, &t) && mtime <= t) *not_modified = true;
    return CL_OK;
}

/* "Range: bytes=first-last" (RFC 7233 2.1), one range: a-b, a-, -n. *ranged false: the whole
 * object (no Range, or one S3 ignores: several ranges, another unit, a malformed one). */
static CL_MUST_USE cl_status kms_s3_range(kms_s3_req *r, uint64_t size, bool *ranged, uint64_t *start, uint64_t *len)
{
    const char *h = evhttp_find_header(r->in, "Range");
    *ranged = false;
    *start = 0;
    *len = size;
    if (h == NULL || strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL) return CL_OK;
    const char *spec = h + 6, *dash = strchr(spec, '-');
    if (dash == NULL) return CL_OK;
    char a[24] = "", b[24] = "";
    size_t an = (size_t)(dash - spec), bn = strlen(dash + 1);
    if (an >= sizeof(a) || bn >= sizeof(b) || (an == 0 && bn == 0)) return CL_OK;
    memcpy(a, spec, an);
    memcpy(b, dash + 1, bn + 1);
    uint64_t x = 0, y = 0;
    if ((an > 0 && cl_parse_uint(a, 0, UINT64_MAX, "range", &x) != CL_OK) ||
        (bn > 0 && cl_parse_uint(b, 0, UINT64_MAX, "range", &y) != CL_OK)) {
        cl_error_clear();
        return CL_OK;
    }
    if (an > 0 && bn > 0 && y < x) return CL_OK; /* invalid: ignored (RFC 7233 2.1) */
    char cr[80];
    if (an == 0) { /* the last y bytes */
        if (y == 0 || size == 0) goto unsatisfiable;
        *start = y >= size ? 0 : size - y;
        *len = size - *start;
    } else {
        if (x >= size) goto unsatisfiable;
        *start = x;
        *len = (bn == 0 || y >= size ? size - 1 : y) - x + 1;
    }
    *ranged = true;
    return CL_OK;
unsatisfiable:
    (void)snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
    evhttp_add_header(r->out, "Content-Range", cr);
    KMS_S3_FAIL(r, 416, "InvalidRange", "The requested range is not satisfiable");
}

static void kms_s3_object_headers(kms_s3_req *r, json_t *hdr)
{
    char date[40];
    kms_s3_http_date((int64_t)json_integer_value(json_object_get(hdr, "mtime")), date);
    evhttp_add_header(r->out, "Last-Modified", date);
    kms_s3_etag_header(r, hdr);
    evhttp_add_header(r->out, "Accept-Ranges", "bytes");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(hdr, "meta"), k, v)
    {
        char name[300];
        (void)snprintf(name, sizeof(name), "x-amz-meta-%s", k);
        evhttp_add_header(r->out, name, json_string_value(v));
    }
    json_object_foreach(json_object_get(hdr, "headers"), k, v) evhttp_add_header(r->out, k, json_string_value(v));
    kms_s3_sse_headers(r, hdr);
    json_int_t parts = json_integer_value(json_object_get(hdr, "parts"));
    if (parts > 0) {
        char n[24];
        (void)snprintf(n, sizeof(n), "%lld", (long long)parts);
        evhttp_add_header(r->out, "x-amz-mp-parts-count", n);
    }
}

static CL_MUST_USE cl_status kms_s3_read_object(kms_s3_req *r, bool with_body)
{
    kms_s3_obj o = {.fd = -1};
    cl_status rc = CL_OK;
    uint8_t dkey[CL_AES256_KEY_LEN];
    cl_memzero(dkey, sizeof(dkey));
    CL_GUARD(kms_s3_open(r, r->bucket, r->key, &o));
    bool not_modified, ranged;
    uint64_t size = (uint64_t)json_integer_value(json_object_get(o.hdr, "size")), start, len;
    json_t *sse = json_object_get(o.hdr, "sse");
    if (sse == NULL && size != o.size)
        CL_FAIL_GOTO(CL_ERR_FORMAT, "object %s/%s: its file holds %llu bytes, its header says %llu", r->bucket, r->key,
                     (unsigned long long)o.size, (unsigned long long)size);
    CL_GUARD_GOTO(kms_s3_conditions(r, o.hdr, &not_modified));
    if (not_modified) {
        r->status = 304;
        kms_s3_etag_header(r, o.hdr);
        goto out;
    }
    CL_GUARD_GOTO(kms_s3_range(r, size, &ranged, &start, &len));
    if (sse != NULL) {
        /* Decrypt the data key first: a caller without kms:Decrypt gets AccessDenied, not bytes. */
        char arn[KMS_S3_KEY_MAX + 96];
        kms_s3_arn(r->bucket, r->key, arn, sizeof(arn));
        CL_GUARD_GOTO(kms_s3_sse_key(r, sse, arn, dkey));
    }
    const char *ct = json_string_value(json_object_get(o.hdr, "content_type"));
    evhttp_add_header(r->out, "Content-Type", ct != NULL ? ct : "binary/octet-stream");
    kms_s3_object_headers(r, o.hdr);
    if (ranged) {
        char cr[96];
        (void)snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)start,
                       (unsigned long long)(start + len - 1), (unsigned long long)size);
        evhttp_add_header(r->out, "Content-Range", cr);
        r->status = 206;
    }
    if (!with_body) {
        char cl[24];
        (void)snprintf(cl, sizeof(cl), "%llu", (unsigned long long)len);
        evhttp_add_header(r->out, "Content-Length", cl);
        goto out;
    }
    if (sse != NULL) {
        CL_GUARD_GOTO(kms_s3_sse_read(dkey, 0, o.fd, o.data_off, size, start, len, r->resp));
    } else if (len > 0) {
        /* Sent from the file by the kernel (sendfile) on plain HTTP: no copy of the object in memory. */
        /* The evbuffer takes the descriptor (and closes it once sent). */
        int fd = o.fd;
        if (evbuffer_add_file(r->resp, fd, (ev_off_t)(o.data_off + start), (ev_off_t)len) != 0)
            CL_FAIL_GOTO(CL_ERR_NOMEM, "cannot queue the object's bytes");
        o.fd = -1;
    }
out:
    cl_memzero(dkey, sizeof(dkey));
    kms_s3_obj_close(&o);
    return rc;
}

cl_status kms_s3_get_object(kms_s3_req *r) { return kms_s3_read_object(r, true); }

cl_status kms_s3_head_object(kms_s3_req *r) { return kms_s3_read_object(r, false); }

static CL_MUST_USE cl_status kms_s3_remove_object(kms_s3_req *r, const char *key)
{
    char path[KMS_PATH_MAX + 160];
    CL_GUARD(kms_s3_object_path(r->kms, r->bucket, key, path, sizeof(path)));
    return kms_s3_file_remove(path);
}

/* "DeleteObject": 204 whether or not the key existed. */
cl_status kms_s3_delete_object(kms_s3_req *r)
{
    CL_GUARD(kms_s3_bucket_exists(r));
    CL_GUARD(kms_s3_remove_object(r, r->key));
    r->status = 204;
    return CL_OK;
}

/* "DeleteObjects": up to 1,000 keys; each is authorized and answered on its own. */
cl_status kms_s3_delete_objects(kms_s3_req *r)
{
    CL_GUARD(kms_s3_bucket_exists(r));
    cl_reader x = cl_reader_make(r->body, r->body_len), del, obj, v;
    if (!kms_s3_xml_next(&x, "Delete", &del))
        KMS_S3_FAIL(r, 400, "MalformedXML",
                    "The XML you provided was not well-formed or did not validate against our published schema");
    cl_reader d2 = del;
    char quiet[8] = "";
    if (kms_s3_xml_next(&d2, "Quiet", &v) && kms_s3_xml_value(&v, quiet, sizeof(quiet)) != CL_OK)
        KMS_S3_FAIL(r, 400, "MalformedXML", "Quiet must be true or false");
    bool q = strcmp(quiet, "true") == 0;
    size_t count = 0;
    cl_reader scan = del;
    while (kms_s3_xml_next(&scan, "Object", &obj)) count++;
    if (count == 0 || count > KMS_S3_LIST_MAX)
        KMS_S3_FAIL(r, 400, "MalformedXML", "Delete must name 1 to 1000 objects, not %zu", count);
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    evbuffer_add_printf(r->resp, KMS_S3_XML_HEAD "<DeleteResult xmlns=\"" KMS_S3_NS "\">");
    char *key = malloc(KMS_S3_KEY_MAX + 2);
    CL_ENSURE(key != NULL, CL_ERR_NOMEM, "out of memory");
    while (kms_s3_xml_next(&del, "Object", &obj)) {
        const char *code = NULL, *msg = NULL;
        char arn[KMS_S3_KEY_MAX + 96];
        if (!kms_s3_xml_next(&obj, "Key", &v) || kms_s3_xml_value(&v, key, KMS_S3_KEY_MAX + 1) != CL_OK ||
            key[0] == '\0') {
            free(key);
            KMS_S3_FAIL(r, 400, "MalformedXML", "each Object of Delete needs a Key of 1 to 1024 bytes");
        }
        kms_s3_arn(r->bucket, key, arn, sizeof(arn));
        int saved = r->status;
        const char *saved_code = r->code;
        if (kms_s3_authorize(r, "s3:DeleteObject", arn) != CL_OK) {
            code = "AccessDenied";
            msg = "Access Denied";
        } else if (kms_s3_remove_object(r, key) != CL_OK) {
            CL_LOG_ERROR("S3 DeleteObjects %s: %s", r->request_id, cl_error_message());
            code = "InternalError";
            msg = "We encountered an internal error. Please try again.";
        }
        r->status = saved;
        r->code = saved_code;
        cl_error_clear();
        if (code != NULL) {
            evbuffer_add_printf(r->resp, "<Error><Key>");
            kms_s3_xml_text(r->resp, key);
            evbuffer_add_printf(r->resp, "</Key><Code>%s</Code><Message>%s</Message></Error>", code, msg);
        } else if (!q) {
            evbuffer_add_printf(r->resp, "<Deleted><Key>");
            kms_s3_xml_text(r->resp, key);
            evbuffer_add_printf(r->resp, "</Key></Deleted>");
        }
    }
    free(key);
    evbuffer_add_printf(r->resp, "</DeleteResult>");
    return CL_OK;
}

/* "CopyObject": x-amz-copy-source is /BUCKET/KEY or BUCKET/KEY, URL-encoded; the caller needs
 * s3:GetObject on the source. x-amz-metadata-directive COPY (default) keeps the source's metadata
 * and Content-Type, REPLACE takes the request's. */
cl_status kms_s3_copy_object(kms_s3_req *r)
{
    cl_status rc = CL_OK;
    kms_s3_obj src = {.fd = -1};
    json_t *meta = NULL, *kept = NULL, *hdr = NULL;
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    uint8_t dkey[CL_AES256_KEY_LEN];
    cl_memzero(dkey, sizeof(dkey));
    char sbucket[KMS_S3_BUCKET_MAX + 1], arn[KMS_S3_KEY_MAX + 96], kid[KMS_ARN_MAX + 1];
    const char *sse_key = NULL;
    CL_GUARD(kms_s3_bucket_exists(r));
    const char *cs = evhttp_find_header(r->in, "x-amz-copy-source");
    size_t dn = 0;
    char *dec = evhttp_uridecode(cs, 0, &dn);
    CL_ENSURE(dec != NULL, CL_ERR_NOMEM, "out of memory");
    char *s = dec[0] == '/' ? dec + 1 : dec;
    char *q = strstr(s, "?versionId=");
    if (q != NULL) *q = '\0';
    char *slash = strchr(s, '/');
    if (dn != strlen(dec) || slash == NULL || slash == s || (size_t)(slash - s) > KMS_S3_BUCKET_MAX ||
        slash[1] == '\0' || strlen(slash + 1) > KMS_S3_KEY_MAX)
        KMS_S3_FAIL_GOTO(r, 400, "InvalidArgument",
                         "Invalid copy source object key: x-amz-copy-source must be "
                         "BUCKET/KEY, URL-encoded");
    memcpy(sbucket, s, (size_t)(slash - s));
    sbucket[slash - s] = '\0';
    const char *skey = slash + 1;
    /* s3:GetObject on the source, decided with the source bucket's owner and policy. */
    char dbucket[KMS_S3_BUCKET_MAX + 1];
    (void)snprintf(dbucket, sizeof(dbucket), "%s", r->bucket);
    (void)snprintf(r->bucket, sizeof(r->bucket), "%s", sbucket);
    kms_s3_arn(sbucket, skey, arn, sizeof(arn));
    rc = kms_s3_authorize(r, "s3:GetObject", arn);
    if (rc == CL_OK) rc = kms_s3_open(r, sbucket, skey, &src);
    (void)snprintf(r->bucket, sizeof(r->bucket), "%s", dbucket);
    CL_GUARD_GOTO(rc);
    const char *directive = evhttp_find_header(r->in, "x-amz-metadata-directive");
    bool replace = directive != NULL && strcmp(directive, "REPLACE") == 0;
    if (directive != NULL && !replace && strcmp(directive, "COPY") != 0)
        KMS_S3_FAIL_GOTO(r, 400, "InvalidArgument", "Unknown metadata directive: %s (COPY or REPLACE)", directive);
    CL_GUARD_GOTO(kms_s3_sse_choice(r, &sse_key, kid, sizeof(kid)));
    if (!replace && sse_key == NULL && strcmp(sbucket, r->bucket) == 0 && strcmp(skey, r->key) == 0)
        KMS_S3_FAIL_GOTO(r, 400, "InvalidRequest",
                         "This copy request is illegal because it is trying to copy an object to itself without "
                         "changing the object's metadata, storage class, website redirect location or encryption "
                         "attributes.");
    meta = replace ? json_object() : json_deep_copy(json_object_get(src.hdr, "meta"));
    kept = replace ? json_object() : json_deep_copy(json_object_get(src.hdr, "headers"));
    if (meta == NULL) meta = json_object();
    if (kept == NULL) kept = json_object();
    CL_ENSURE_GOTO(meta != NULL && kept != NULL, CL_ERR_NOMEM, "out of memory");
    if (replace) CL_GUARD_GOTO(kms_s3_request_meta(r, meta, kept));
    const char *ct = replace ? evhttp_find_header(r->in, "Content-Type")
                             : json_string_value(json_object_get(src.hdr, "content_type"));
    /* The source's plaintext, in memory (bounded like a PUT's body). */
    uint64_t size = (uint64_t)json_integer_value(json_object_get(src.hdr, "size"));
    if (size > r->kms->cfg->s3_max_body)
        KMS_S3_FAIL_GOTO(r, 400, "InvalidRequest",
                         "The source object is larger than this server's s3_max_body (%zu bytes), the most "
                         "CopyObject copies; copy it with a multipart upload",
                         r->kms->cfg->s3_max_body);
    plain = malloc(size > 0 ? (size_t)size : 1); /* wiped below */
    CL_ENSURE_GOTO(plain != NULL, CL_ERR_NOMEM, "out of memory for a %llu-byte copy", (unsigned long long)size);
    plain_len = (size_t)size;
    json_t *ssrc = json_object_get(src.hdr, "sse");
    if (ssrc != NULL) {
        struct evbuffer *tmp = evbuffer_new();
        CL_ENSURE_GOTO(tmp != NULL, CL_ERR_NOMEM, "out of memory");
        rc = kms_s3_sse_key(r, ssrc, arn, dkey);
        if (rc == CL_OK) rc = kms_s3_sse_read(dkey, 0, src.fd, src.data_off, size, 0, size, tmp);
        if (rc == CL_OK && size > 0)
            rc = evbuffer_remove(tmp, plain, plain_len) == (int)plain_len ? CL_OK
                                                                          : CL_RAISE(CL_ERR_INTERNAL, "short copy");
        evbuffer_free(tmp);
        CL_GUARD_GOTO(rc);
    } else if (size > 0) {
        CL_GUARD_GOTO(kms_s3_read_at(src.fd, src.data_off, plain, plain_len));
    }
    CL_GUARD_GOTO(kms_s3_store_object(r, r->key, plain, plain_len, ct != NULL ? ct : "binary/octet-stream", meta, kept,
                                      sse_key, &hdr));
    char date[32];
    kms_s3_iso_date(r->now, date);
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    kms_s3_sse_headers(r, hdr);
    evbuffer_add_printf(r->resp,
                        KMS_S3_XML_HEAD
                        "<CopyObjectResult xmlns=\"" KMS_S3_NS
                        "\"><LastModified>%s</LastModified><ETag>&quot;%s&quot;</ETag></CopyObjectResult>",
                        date, json_string_value(json_object_get(hdr, "etag")));
out:
    cl_memzero(dkey, sizeof(dkey));
    if (plain != NULL) cl_memzero(plain, plain_len > 0 ? plain_len : 1);
    free(plain);
    kms_s3_obj_close(&src);
    json_decref(meta);
    json_decref(kept);
    json_decref(hdr);
    free(dec);
    return rc;
}
