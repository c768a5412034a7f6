/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where S3 keeps buckets and objects (docs/s3.md, "Layout on disk"):
 *
 *   DATA_DIR/s3/BUCKET/bucket.json        owner account, region, creation time
 *   DATA_DIR/s3/BUCKET/policy.json        the bucket policy (absent: none)
 *   DATA_DIR/s3/BUCKET/encryption.json    the default encryption (absent: none)
 *   DATA_DIR/s3/BUCKET/o/SHA256(KEY)      an object: "CLS3OBJ1", u32be n, n bytes of JSON
 *                                          (key, size, ETag, metadata, SSE), then the data
 *   DATA_DIR/s3/BUCKET/u/UPLOAD_ID/upload.json, part.NNNNN   a multipart upload in progress
 *
 * A bucket name passed the naming rules (lower-case letters, digits, '.', '-'), so it is one safe
 * path component; an object's file is named by the SHA-256 of its key, so no key ('/', "..", a
 * leading '/') can name a path outside its bucket: the key itself lives in the header. Every file
 * appears whole or not at all: written to a temporary file, fsync'd, renamed, and the directory
 * fsync'd (cl_outfile), before the request is answered.
 */
#ifndef CLOISTER_KMS_S3_STORE_H
#define CLOISTER_KMS_S3_STORE_H

#include <jansson.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/fs.h"

#include "server.h"

#define KMS_S3_OBJ_MAGIC "CLS3OBJ1"
#define KMS_S3_HEADER_MAX (64 << 10)

/* DATA_DIR/s3/BUCKET[/rel] into out. */
CL_MUST_USE cl_status kms_s3_path(const kms_ctx *ctx, const char *bucket, const char *rel, char *out, size_t cap);
/* The object file of key: DATA_DIR/s3/BUCKET/o/SHA256(key). */
CL_MUST_USE cl_status kms_s3_object_path(const kms_ctx *ctx, const char *bucket, const char *key, char *out,
                                         size_t cap);

/* A small file (JSON) written whole: temp, fsync, rename, fsync of the directory. */
CL_MUST_USE cl_status kms_s3_file_put(const char *path, const void *data, size_t n);
/* CL_ERR_NOT_FOUND when absent. */
CL_MUST_USE cl_status kms_s3_file_get(const char *path, size_t max, cl_buf *out);
CL_MUST_USE cl_status kms_s3_json_get(const char *path, json_t **out);
CL_MUST_USE cl_status kms_s3_json_put(const char *path, json_t *j);
/* Removes a file and syncs its directory; absent is fine. */
CL_MUST_USE cl_status kms_s3_file_remove(const char *path);

/* Buckets. CL_ERR_NOT_FOUND, CL_ERR_EXISTS, CL_ERR_STATE (not empty). */
CL_MUST_USE cl_status kms_s3_bucket_load(const kms_ctx *ctx, const char *bucket, json_t **info);
CL_MUST_USE cl_status kms_s3_bucket_create(const kms_ctx *ctx, const char *bucket, json_t *info);
CL_MUST_USE cl_status kms_s3_bucket_remove(const kms_ctx *ctx, const char *bucket);
/* Every bucket name, sorted (a JSON array of strings). */
CL_MUST_USE cl_status kms_s3_bucket_names(const kms_ctx *ctx, json_t **names);

/* An object opened for reading: its header and its data at data_off of fd. */
typedef struct kms_s3_obj {
    int fd;
    json_t *hdr;
    uint64_t size; /* bytes of data in the file (ciphertext for SSE-KMS) */
    uint64_t data_off;
} kms_s3_obj;

/* CL_ERR_NOT_FOUND when there is no such object. */
CL_MUST_USE cl_status kms_s3_obj_open(const char *path, kms_s3_obj *o);
void kms_s3_obj_close(kms_s3_obj *o);
/* Starts writing an object file: the header, then the caller writes the data to o->fd
 * (kms_s3_write_all, kms_s3_copy_range) and commits with cl_outfile_commit. */
CL_MUST_USE cl_status kms_s3_obj_create(const char *path, json_t *hdr, cl_outfile *o);
CL_MUST_USE cl_status kms_s3_write_all(int fd, const void *p, size_t n, const char *what);
/* n bytes from src at offset into dst's current position (copy_file_range, in the kernel). */
CL_MUST_USE cl_status kms_s3_copy_range(int src, uint64_t offset, uint64_t n, int dst);
CL_MUST_USE cl_status kms_s3_read_at(int fd, uint64_t offset, void *p, size_t n);

/* The headers of every object of a bucket whose key starts with prefix (a JSON array of the
 * header objects, sorted by key). Files that are not objects (temporary files of a write that
 * did not finish) are skipped. */
CL_MUST_USE cl_status kms_s3_obj_list(const kms_ctx *ctx, const char *bucket, const char *prefix, json_t **out);

#endif
