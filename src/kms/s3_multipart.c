/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Multipart upload (S3 API Reference: CreateMultipartUpload, UploadPart,
 * CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads; S3 User Guide,
 * "Amazon S3 multipart upload limits": parts 1..10,000, each but the last at least 5 MiB).
 *
 * An upload is DATA_DIR/s3/BUCKET/u/UPLOAD_ID/ with upload.json (key, metadata, SSE) and one file
 * per part (part.NNNNN, the object format: a header with the part's ETag and size, then its data,
 * sealed under the upload's data key for SSE-KMS), each written temp + fsync + rename. Completion
 * writes the object the same way (parts copied in the kernel with copy_file_range), then removes
 * the upload. The ETag is S3's: the MD5 of the parts' binary MD5s, "-" and the count.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/log.h"
#include "cloister/mem.h"

#include "s3.h"
#include "s3_sse.h"
#include "s3_store.h"

#define KMS_S3_XML_HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define KMS_S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"
#define KMS_S3_UPLOAD_ID_LEN 32

static void kms_s3_mp_arn(const kms_s3_req *r, char *out, size_t cap)
{
    (void)snprintf(out, cap, "arn:aws:s3:::%s/%s", r->bucket, r->key);
}

/* The upload's directory, after checking the id is one this server made (32 hex digits), so
 * that it is one safe path component. */
static CL_MUST_USE cl_status kms_s3_upload_dir(kms_s3_req *r, const char *id, char *out, size_t cap)
{
    if (id == NULL || strlen(id) != KMS_S3_UPLOAD_ID_LEN || strspn(id, "0123456789abcdef") != KMS_S3_UPLOAD_ID_LEN)
        KMS_S3_FAIL(r, 404, "NoSuchUpload",
                    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
                    "aborted or completed.");
    char rel[KMS_S3_UPLOAD_ID_LEN + 4];
    (void)snprintf(rel, sizeof(rel), "u/%s", id);
    return kms_s3_path(r->kms, r->bucket, rel, out, cap);
}

/* The upload's record, which must be for r->key. */
static CL_MUST_USE cl_status kms_s3_upload_load(kms_s3_req *r, const char *id, char *dir, size_t cap, json_t **up)
{
    CL_GUARD(kms_s3_upload_dir(r, id, dir, cap));
    char path[KMS_PATH_MAX + 200];
    (void)snprintf(path, sizeof(path), "%s/upload.json", dir);
    cl_status rc = kms_s3_json_get(path, up);
    if (rc == CL_ERR_NOT_FOUND) {
        json_t *info = NULL;
        if (kms_s3_bucket_load(r->kms, r->bucket, &info) != CL_OK)
            KMS_S3_FAIL(r, 404, "NoSuchBucket", "The specified bucket does not exist");
        json_decref(info);
        KMS_S3_FAIL(r, 404, "NoSuchUpload",
                    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
                    "aborted or completed.");
    }
    CL_GUARD(rc);
    if (strcmp(json_string_value(json_object_get(*up, "key")), r->key) != 0) {
        json_decref(*up);
        *up = NULL;
        KMS_S3_FAIL(r, 404, "NoSuchUpload",
                    "The specified upload does not exist. The upload ID may be invalid, or the upload may have been "
                    "aborted or completed.");
    }
    return CL_OK;
}

cl_status kms_s3_create_multipart(kms_s3_req *r)
{
    cl_status rc = CL_OK;
    json_t *info = NULL, *up = NULL, *meta = json_object(), *kept = json_object(), *sse = NULL;
    uint8_t dkey[CL_AES256_KEY_LEN];
    cl_memzero(dkey, sizeof(dkey));
    CL_ENSURE_GOTO(meta != NULL && kept != NULL, CL_ERR_NOMEM, "out of memory");
    rc = kms_s3_bucket_load(r->kms, r->bucket, &info);
    if (rc == CL_ERR_NOT_FOUND) KMS_S3_FAIL_GOTO(r, 404, "NoSuchBucket", "The specified bucket does not exist");
    CL_GUARD_GOTO(rc);
    /* The same checks and choices as PutObject (s3_object.c), through a PutObject-like request. */
    for (struct evkeyval *kv = r->in->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        if (strncasecmp(kv->key, "x-amz-meta-", 11) == 0 && strlen(kv->key) > 11 && strlen(kv->key) < 256) {
            char name[256];
            size_t n = strlen(kv->key + 11);
            for (size_t i = 0; i <= n; i++) name[i] = (char)tolower((unsigned char)kv->key[11 + i]);
            (void)json_object_set_new(meta, name, json_string(kv->value));
        }
    }
    const char *alg = evhttp_find_header(r->in, "x-amz-server-side-encryption");
    const char *kid = evhttp_find_header(r->in, "x-amz-server-side-encryption-aws-kms-key-id");
    char keybuf[KMS_ARN_MAX + 1] = "";
    if (alg != NULL && strcmp(alg, "aws:kms") != 0)
        KMS_S3_FAIL_GOTO(r, strcmp(alg, "AES256") == 0 ? 501 : 400,
                         strcmp(alg, "AES256") == 0 ? "NotImplemented" : "InvalidArgument",
                         "x-amz-server-side-encryption must be aws:kms on this server, not '%s'", alg);
    if (alg != NULL) {
        (void)snprintf(keybuf, sizeof(keybuf), "%s", kid != NULL ? kid : "alias/aws/s3");
    } else {
        char path[KMS_PATH_MAX + 128];
        json_t *enc = NULL;
        CL_GUARD_GOTO(kms_s3_path(r->kms, r->bucket, "encryption.json", path, sizeof(path)));
        if (kms_s3_json_get(path, &enc) == CL_OK) {
            const char *k = json_string_value(json_object_get(enc, "key_id"));
            (void)snprintf(keybuf, sizeof(keybuf), "%s", k != NULL && k[0] ? k : "alias/aws/s3");
        }
        json_decref(enc);
        cl_error_clear();
    }
    if (keybuf[0] != '\0') {
        char arn[KMS_S3_KEY_MAX + 96];
        kms_s3_mp_arn(r, arn, sizeof(arn));
        CL_GUARD_GOTO(kms_s3_sse_new(r, keybuf, arn, &sse, dkey));
    }
    uint8_t rnd[KMS_S3_UPLOAD_ID_LEN / 2];
    char id[KMS_S3_UPLOAD_ID_LEN + 1], dir[KMS_PATH_MAX + 128], path[KMS_PATH_MAX + 200];
    CL_GUARD_GOTO(cl_random(rnd, sizeof(rnd)));
    (void)cl_hex_encode(rnd, sizeof(rnd), id, sizeof(id));
    CL_GUARD_GOTO(kms_s3_upload_dir(r, id, dir, sizeof(dir)));
    if (mkdir(dir, 0700) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", dir);
    CL_GUARD_GOTO(cl_fs_sync_parent(dir));
    const char *ct = evhttp_find_header(r->in, "Content-Type");
    up = json_pack("{s:s, s:s, s:I, s:O, s:O}", "key", r->key, "content_type",
                   ct != NULL && strlen(ct) <= 256 ? ct : "binary/octet-stream", "initiated", (json_int_t)r->now,
                   "meta", meta, "headers", kept);
    CL_ENSURE_GOTO(up != NULL, CL_ERR_NOMEM, "out of memory");
    if (sse != NULL) (void)json_object_set(up, "sse", sse);
    (void)snprintf(path, sizeof(path), "%s/upload.json", dir);
    CL_GUARD_GOTO(kms_s3_json_put(path, up));
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    if (sse != NULL) {
        evhttp_add_header(r->out, "x-amz-server-side-encryption", "aws:kms");
        evhttp_add_header(r->out, "x-amz-server-side-encryption-aws-kms-key-id",
                          json_string_value(json_object_get(sse, "key_id")));
    }
    evbuffer_add_printf(
        r->resp, KMS_S3_XML_HEAD "<InitiateMultipartUploadResult xmlns=\"" KMS_S3_NS "\"><Bucket>%s</Bucket><Key>",
        r->bucket);
    kms_s3_xml_text(r->resp, r->key);
    evbuffer_add_printf(r->resp, "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>", id);
out:
    cl_memzero(dkey, sizeof(dkey));
    json_decref(info);
    json_decref(up);
    json_decref(meta);
    json_decref(kept);
    json_decref(sse);
    return rc;
}

static CL_MUST_USE cl_status kms_s3_part_number(kms_s3_req *r, const char *s, unsigned *n)
{
    uint64_t v;
    if (s == NULL || cl_parse_uint(s, 1, KMS_S3_PARTS_MAX, "partNumber", &v) != CL_OK)
        KMS_S3_FAIL(r, 400, "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive");
    *n = (unsigned)v;
    return CL_OK;
}

cl_status kms_s3_upload_part(kms_s3_req *r)
{
    if (evhttp_find_header(r->in, "x-amz-copy-source") != NULL)
        KMS_S3_FAIL(r, 501, "NotImplemented", "UploadPartCopy is not implemented by this server (docs/s3.md)");
    cl_status rc = CL_OK;
    json_t *up = NULL, *hdr = NULL;
    cl_outfile o = {.fd = -1};
    uint8_t dkey[CL_AES256_KEY_LEN];
    cl_memzero(dkey, sizeof(dkey));
    unsigned n;
    char dir[KMS_PATH_MAX + 128], path[KMS_PATH_MAX + 200], etag[33];
    CL_GUARD(kms_s3_part_number(r, kms_s3_query(r, "partNumber"), &n));
    CL_GUARD(kms_s3_upload_load(r, kms_s3_query(r, "uploadId"), dir, sizeof(dir), &up));
    json_t *sse = json_object_get(up, "sse");
    if (sse != NULL) {
        char arn[KMS_S3_KEY_MAX + 96];
        kms_s3_mp_arn(r, arn, sizeof(arn));
        CL_GUARD_GOTO(kms_s3_sse_key(r, sse, arn, dkey));
        uint8_t rnd[16];
        CL_GUARD_GOTO(cl_random(rnd, sizeof(rnd)));
        (void)cl_hex_encode(rnd, sizeof(rnd), etag, sizeof(etag));
    } else {
        uint8_t d[16];
        unsigned dl = 0;
        CL_ENSURE_GOTO(EVP_Digest(r->body, r->body_len, d, &dl, EVP_md5(), NULL) == 1, CL_ERR_CRYPTO, "MD5 failed");
        (void)cl_hex_encode(d, 16, etag, sizeof(etag));
    }
    hdr = json_pack("{s:s, s:I, s:I, s:s, s:I}", "key", r->key, "part", (json_int_t)n, "size", (json_int_t)r->body_len,
                    "etag", etag, "mtime", (json_int_t)r->now);
    CL_ENSURE_GOTO(hdr != NULL, CL_ERR_NOMEM, "out of memory");
    (void)snprintf(path, sizeof(path), "%s/part.%05u", dir, n);
    CL_GUARD_GOTO(kms_s3_obj_create(path, hdr, &o));
    if (sse != NULL)
        CL_GUARD_GOTO(kms_s3_sse_write(dkey, n, r->body, r->body_len, o.fd));
    else
        CL_GUARD_GOTO(kms_s3_write_all(o.fd, r->body, r->body_len, path));
    CL_GUARD_GOTO(cl_outfile_commit(&o));
    char q[40];
    (void)snprintf(q, sizeof(q), "\"%s\"", etag);
    evhttp_add_header(r->out, "ETag", q);
    evhttp_add_header(r->out, "Content-Length", "0");
    if (sse != NULL) {
        evhttp_add_header(r->out, "x-amz-server-side-encryption", "aws:kms");
        evhttp_add_header(r->out, "x-amz-server-side-encryption-aws-kms-key-id",
                          json_string_value(json_object_get(sse, "key_id")));
    }
out:
    if (o.tmp != NULL) cl_outfile_abort(&o);
    cl_memzero(dkey, sizeof(dkey));
    json_decref(up);
    json_decref(hdr);
    return rc;
}

/* The parts on disk, by number (index 1..KMS_S3_PARTS_MAX): each part's header or NULL. */
static CL_MUST_USE cl_status kms_s3_parts_scan(const char *dir, json_t **parts)
{
    *parts = json_array();
    CL_ENSURE(*parts != NULL, CL_ERR_NOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (d == NULL) CL_FAIL_ERRNO(CL_ERR_IO, "cannot open %s", dir);
    struct dirent *e;
    char path[KMS_PATH_MAX + 300];
    while ((e = readdir(d)) != NULL) {
        /* part.NNNNN: the names UploadPart gives (anything else in the directory is not a part). */
        if (strlen(e->d_name) != 10 || strncmp(e->d_name, "part.", 5) != 0 || strspn(e->d_name + 5, "0123456789") != 5)
            continue;
        (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        kms_s3_obj o;
        if (kms_s3_obj_open(path, &o) != CL_OK) {
            cl_error_clear();
            continue;
        }
        (void)json_object_set_new(o.hdr, "stored", json_integer((json_int_t)o.size));
        (void)json_array_append(*parts, o.hdr);
        kms_s3_obj_close(&o);
    }
    closedir(d);
    return CL_OK;
}

static json_t *kms_s3_part_find(json_t *parts, unsigned n)
{
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p) if ((unsigned)json_integer_value(json_object_get(p, "part")) == n) return p;
    return NULL;
}

static int kms_s3_part_cmp(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "part"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "part"));
    return x < y ? -1 : x > y;
}

static CL_MUST_USE cl_status kms_s3_remove_upload(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) return errno == ENOENT ? CL_OK : CL_RAISE_ERRNO(CL_ERR_IO, "cannot open %s", dir);
    struct dirent *e;
    char path[KMS_PATH_MAX + 300];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        (void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        (void)unlink(path);
    }
    closedir(d);
    if (rmdir(dir) != 0 && errno != ENOENT) CL_FAIL_ERRNO(CL_ERR_IO, "cannot remove %s", dir);
    return cl_fs_sync_parent(dir);
}

cl_status kms_s3_complete_multipart(kms_s3_req *r)
{
    cl_status rc = CL_OK;
    json_t *up = NULL, *parts = NULL, *hdr = NULL;
    cl_outfile o = {.fd = -1};
    kms_s3_resealer rs;
    memset(&rs, 0, sizeof(rs));
    uint8_t dkey[CL_AES256_KEY_LEN];
    cl_memzero(dkey, sizeof(dkey));
    char dir[KMS_PATH_MAX + 128], path[KMS_PATH_MAX + 200], objpath[KMS_PATH_MAX + 160];
    unsigned *nums = NULL;
    size_t count = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    CL_ENSURE(md != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_s3_upload_load(r, kms_s3_query(r, "uploadId"), dir, sizeof(dir), &up));
    CL_GUARD_GOTO(kms_s3_parts_scan(dir, &parts));
    cl_reader x = cl_reader_make(r->body, r->body_len), body, part, v;
    if (!kms_s3_xml_next(&x, "CompleteMultipartUpload", &body))
        KMS_S3_FAIL_GOTO(r, 400, "MalformedXML",
                         "The XML you provided was not well-formed or did not validate against our published schema");
    nums = calloc(KMS_S3_PARTS_MAX, sizeof(*nums));
    CL_ENSURE_GOTO(nums != NULL, CL_ERR_NOMEM, "out of memory");
    uint64_t total = 0;
    CL_ENSURE_GOTO(EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1, CL_ERR_CRYPTO, "MD5 failed");
    while (kms_s3_xml_next(&body, "Part", &part)) {
        char num[16], tag[80];
        cl_reader p2 = part;
        if (count == KMS_S3_PARTS_MAX)
            KMS_S3_FAIL_GOTO(r, 400, "MalformedXML", "CompleteMultipartUpload names more than 10000 parts");
        if (!kms_s3_xml_next(&part, "PartNumber", &v) || kms_s3_xml_value(&v, num, sizeof(num)) != CL_OK ||
            !kms_s3_xml_next(&p2, "ETag", &v) || kms_s3_xml_value(&v, tag, sizeof(tag)) != CL_OK)
            KMS_S3_FAIL_GOTO(r, 400, "MalformedXML", "each Part needs a PartNumber and an ETag");
        unsigned n;
        CL_GUARD_GOTO(kms_s3_part_number(r, num, &n));
        if (count > 0 && n <= nums[count - 1])
            KMS_S3_FAIL_GOTO(r, 400, "InvalidPartOrder",
                             "The list of parts was not in ascending order. The parts list must be specified in order "
                             "by part number.");
        json_t *have = kms_s3_part_find(parts, n);
        const char *t = tag[0] == '"' ? tag + 1 : tag;
        size_t tn = strlen(t);
        if (tn > 0 && t[tn - 1] == '"') tn--;
        const char *etag = have != NULL ? json_string_value(json_object_get(have, "etag")) : "";
        if (have == NULL || tn != strlen(etag) || strncmp(t, etag, tn) != 0)
            KMS_S3_FAIL_GOTO(r, 400, "InvalidPart",
                             "One or more of the specified parts could not be found. The part may not have been "
                             "uploaded, or the specified entity tag may not match the part's entity tag.");
        cl_buf d;
        cl_buf_init(&d, 16);
        rc = cl_hex_decode(etag, strlen(etag), &d);
        if (rc == CL_OK && EVP_DigestUpdate(md, d.data, d.len) != 1) rc = CL_RAISE(CL_ERR_CRYPTO, "MD5 failed");
        cl_buf_free(&d);
        CL_GUARD_GOTO(rc);
        nums[count++] = n;
        total += (uint64_t)json_integer_value(json_object_get(have, "size"));
    }
    if (count == 0) KMS_S3_FAIL_GOTO(r, 400, "MalformedXML", "CompleteMultipartUpload must name at least one part");
    for (size_t i = 0; i + 1 < count; i++) {
        json_t *p = kms_s3_part_find(parts, nums[i]);
        if ((uint64_t)json_integer_value(json_object_get(p, "size")) < KMS_S3_PART_MIN)
            KMS_S3_FAIL_GOTO(r, 400, "EntityTooSmall",
                             "Your proposed upload is smaller than the minimum allowed object size: part %u is %lld "
                             "bytes, and every part but the last must be at least 5 MiB",
                             nums[i], (long long)json_integer_value(json_object_get(p, "size")));
    }
    uint8_t digest[16];
    unsigned dl = 0;
    char etag[48], hex[33];
    CL_ENSURE_GOTO(EVP_DigestFinal_ex(md, digest, &dl) == 1, CL_ERR_CRYPTO, "MD5 failed");
    (void)snprintf(etag, sizeof(etag), "%s-%zu", cl_hex_encode(digest, 16, hex, sizeof(hex)), count);
    hdr = json_pack("{s:s, s:I, s:I, s:s, s:O, s:O, s:s, s:I}", "key", r->key, "size", (json_int_t)total, "mtime",
                    (json_int_t)r->now, "content_type", json_string_value(json_object_get(up, "content_type")), "meta",
                    json_object_get(up, "meta"), "headers", json_object_get(up, "headers"), "etag", etag, "parts",
                    (json_int_t)count);
    CL_ENSURE_GOTO(hdr != NULL, CL_ERR_NOMEM, "out of memory");
    json_t *sse = json_object_get(up, "sse");
    if (sse != NULL) {
        char arn[KMS_S3_KEY_MAX + 96];
        kms_s3_mp_arn(r, arn, sizeof(arn));
        CL_GUARD_GOTO(kms_s3_sse_key(r, sse, arn, dkey));
        (void)json_object_set(hdr, "sse", sse);
    }
    CL_GUARD_GOTO(kms_s3_object_path(r->kms, r->bucket, r->key, objpath, sizeof(objpath)));
    CL_GUARD_GOTO(kms_s3_obj_create(objpath, hdr, &o));
    if (sse != NULL) CL_GUARD_GOTO(kms_s3_reseal_begin(&rs, dkey, o.fd, total));
    for (size_t i = 0; i < count; i++) {
        (void)snprintf(path, sizeof(path), "%s/part.%05u", dir, nums[i]);
        kms_s3_obj p;
        CL_GUARD_GOTO(kms_s3_obj_open(path, &p));
        uint64_t size = (uint64_t)json_integer_value(json_object_get(p.hdr, "size"));
        if (sse != NULL)
            rc = kms_s3_reseal_part(&rs, nums[i], p.fd, p.data_off, size);
        else
            rc = size == p.size ? kms_s3_copy_range(p.fd, p.data_off, p.size, o.fd)
                                : CL_RAISE(CL_ERR_FORMAT, "%s holds %llu bytes, its header says %llu", path,
                                           (unsigned long long)p.size, (unsigned long long)size);
        kms_s3_obj_close(&p);
        CL_GUARD_GOTO(rc);
    }
    if (sse != NULL) CL_GUARD_GOTO(kms_s3_reseal_end(&rs));
    CL_GUARD_GOTO(cl_outfile_commit(&o));
    /* The object is durable; the upload's files go (a crash here leaves them: the upload can be
     * completed again or aborted). */
    if (kms_s3_remove_upload(dir) != CL_OK) {
        CL_LOG_WARN("S3 CompleteMultipartUpload %s: the upload's files stay: %s", r->request_id, cl_error_message());
        cl_error_clear();
    }
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    if (sse != NULL) {
        evhttp_add_header(r->out, "x-amz-server-side-encryption", "aws:kms");
        evhttp_add_header(r->out, "x-amz-server-side-encryption-aws-kms-key-id",
                          json_string_value(json_object_get(sse, "key_id")));
    }
    evbuffer_add_printf(
        r->resp, KMS_S3_XML_HEAD "<CompleteMultipartUploadResult xmlns=\"" KMS_S3_NS "\"><Location>/%s/", r->bucket);
    kms_s3_xml_text(r->resp, r->key);
    evbuffer_add_printf(r->resp, "</Location><Bucket>%s</Bucket><Key>", r->bucket);
    kms_s3_xml_text(r->resp, r->key);
    evbuffer_add_printf(r->resp, "</Key><ETag>&quot;%s&quot;</ETag></CompleteMultipartUploadResult>", etag);
out:
    if (o.tmp != NULL) cl_outfile_abort(&o);
    kms_s3_reseal_free(&rs);
    cl_memzero(dkey, sizeof(dkey));
    EVP_MD_CTX_free(md);
    free(nums);
    json_decref(up);
    json_decref(parts);
    json_decref(hdr);
    return rc;
}

cl_status kms_s3_abort_multipart(kms_s3_req *r)
{
    json_t *up = NULL;
    char dir[KMS_PATH_MAX + 128];
    CL_GUARD(kms_s3_upload_load(r, kms_s3_query(r, "uploadId"), dir, sizeof(dir), &up));
    json_decref(up);
    CL_GUARD(kms_s3_remove_upload(dir));
    r->status = 204;
    return CL_OK;
}

cl_status kms_s3_list_parts(kms_s3_req *r)
{
    json_t *up = NULL, *parts = NULL;
    char dir[KMS_PATH_MAX + 128];
    const char *id = kms_s3_query(r, "uploadId");
    CL_GUARD(kms_s3_upload_load(r, id, dir, sizeof(dir), &up));
    cl_status rc = kms_s3_parts_scan(dir, &parts);
    json_decref(up);
    CL_GUARD(rc);
    size_t n = json_array_size(parts);
    json_t **sorted = calloc(n + 1, sizeof(json_t *));
    CL_ENSURE(sorted != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) sorted[i] = json_array_get(parts, i);
    qsort(sorted, n, sizeof(json_t *), kms_s3_part_cmp);
    uint64_t marker = 0, max = 1000;
    const char *m = kms_s3_query(r, "part-number-marker"), *mp = kms_s3_query(r, "max-parts");
    if ((m != NULL && cl_parse_uint(m, 0, KMS_S3_PARTS_MAX, "part-number-marker", &marker) != CL_OK) ||
        (mp != NULL && cl_parse_uint(mp, 0, 1000, "max-parts", &max) != CL_OK)) {
        free(sorted);
        json_decref(parts);
        KMS_S3_FAIL(r, 400, "InvalidArgument", "part-number-marker and max-parts must be whole numbers (%s)",
                    cl_error_message());
    }
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    evbuffer_add_printf(r->resp, KMS_S3_XML_HEAD "<ListPartsResult xmlns=\"" KMS_S3_NS "\"><Bucket>%s</Bucket><Key>",
                        r->bucket);
    kms_s3_xml_text(r->resp, r->key);
    struct evbuffer *items = evbuffer_new();
    size_t shown = 0;
    json_int_t next = 0;
    bool truncated = false;
    for (size_t i = 0; items != NULL && i < n; i++) {
        json_int_t pn = json_integer_value(json_object_get(sorted[i], "part"));
        if ((uint64_t)pn <= marker) continue;
        if (shown == max) {
            truncated = true;
            break;
        }
        char date[32];
        kms_s3_iso_date((int64_t)json_integer_value(json_object_get(sorted[i], "mtime")), date);
        evbuffer_add_printf(items,
                            "<Part><PartNumber>%lld</PartNumber><LastModified>%s</LastModified><ETag>&quot;%s&quot;"
                            "</ETag><Size>%lld</Size></Part>",
                            (long long)pn, date, json_string_value(json_object_get(sorted[i], "etag")),
                            (long long)json_integer_value(json_object_get(sorted[i], "size")));
        next = pn;
        shown++;
    }
    evbuffer_add_printf(r->resp,
                        "</Key><UploadId>%s</UploadId><PartNumberMarker>%llu</PartNumberMarker><NextPartNumberMarker>"
                        "%lld</NextPartNumberMarker><MaxParts>%llu</MaxParts><IsTruncated>%s</IsTruncated>",
                        id, (unsigned long long)marker, (long long)next, (unsigned long long)max,
                        truncated ? "true" : "false");
    if (items != NULL) {
        evbuffer_add_buffer(r->resp, items);
        evbuffer_free(items);
    }
    evbuffer_add_printf(r->resp, "<StorageClass>STANDARD</StorageClass></ListPartsResult>");
    free(sorted);
    json_decref(parts);
    return CL_OK;
}

cl_status kms_s3_list_multipart_uploads(kms_s3_req *r)
{
    json_t *info = NULL;
    cl_status rc = kms_s3_bucket_load(r->kms, r->bucket, &info);
    json_decref(info);
    if (rc == CL_ERR_NOT_FOUND) KMS_S3_FAIL(r, 404, "NoSuchBucket", "The specified bucket does not exist");
    CL_GUARD(rc);
    char udir[KMS_PATH_MAX + 128], path[KMS_PATH_MAX + 300];
    CL_GUARD(kms_s3_path(r->kms, r->bucket, "u", udir, sizeof(udir)));
    const char *prefix = kms_s3_query(r, "prefix");
    evhttp_add_header(r->out, "Content-Type", "application/xml");
    evbuffer_add_printf(r->resp,
                        KMS_S3_XML_HEAD "<ListMultipartUploadsResult xmlns=\"" KMS_S3_NS
                                        "\"><Bucket>%s</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
                                        "<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>",
                        r->bucket);
    DIR *d = opendir(udir);
    struct dirent *e;
    size_t shown = 0;
    while (d != NULL && (e = readdir(d)) != NULL && shown < 1000) {
        if (strlen(e->d_name) != KMS_S3_UPLOAD_ID_LEN) continue;
        (void)snprintf(path, sizeof(path), "%s/%s/upload.json", udir, e->d_name);
        json_t *up = NULL;
        if (kms_s3_json_get(path, &up) != CL_OK) {
            cl_error_clear();
            continue;
        }
        const char *key = json_string_value(json_object_get(up, "key"));
        if (key != NULL && (prefix == NULL || strncmp(key, prefix, strlen(prefix)) == 0)) {
            char date[32];
            kms_s3_iso_date((int64_t)json_integer_value(json_object_get(up, "initiated")), date);
            evbuffer_add_printf(r->resp, "<Upload><Key>");
            kms_s3_xml_text(r->resp, key);
            evbuffer_add_printf(r->resp,
                                "</Key><UploadId>%s</UploadId><StorageClass>STANDARD</StorageClass><Initiated>%s"
                                "</Initiated></Upload>",
                                e->d_name, date);
            shown++;
        }
        json_decref(up);
    }
    if (d != NULL) closedir(d);
    evbuffer_add_printf(r->resp, "</ListMultipartUploadsResult>");
    return CL_OK;
}
