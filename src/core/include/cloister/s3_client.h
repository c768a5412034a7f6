/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An Amazon S3 client for guest programs (no libcurl, no XML library in an enclave): the REST
 * API (Amazon S3 API Reference) over cloister/http.h, plain or TLS, signed with SigV4 in the
 * Authorization header as S3 defines it ("Authenticating Requests (AWS Signature Version 4)";
 * cl_sigv4_s3_*), path-style addressing (https://ENDPOINT/BUCKET/KEY), so that any S3 works:
 * AWS, cloister-kms, MinIO, Ceph RGW, s3rver, moto.
 *
 * Bodies: x-amz-content-sha256 is the SHA-256 of the body (a file is read twice: once to hash
 * it, once to send it), or UNSIGNED-PAYLOAD when the config asks for it and the endpoint is
 * https (TLS then protects the body; S3 allows it on both). Files are streamed from and to a
 * file descriptor, never held in memory; a file of multipart_threshold bytes or more goes up
 * in parts (CreateMultipartUpload, UploadPart, CompleteMultipartUpload; AbortMultipartUpload
 * when a part fails, so no parts are left behind to be billed).
 *
 * Errors: an S3 error answer (an <Error> document: "Error responses", S3 API Reference) becomes
 * a cl_status by its code (NoSuchKey, NoSuchBucket, NoSuchUpload: CL_ERR_NOT_FOUND;
 * AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId...: CL_ERR_DENIED; BucketAlreadyExists,
 * BucketAlreadyOwnedByYou: CL_ERR_EXISTS; anything else CL_ERR_REMOTE), with S3's code and
 * message in the error text ("S3 GetObject b/k: NoSuchKey: The specified key does not exist.").
 * The transport's failures are cl_http's (CL_ERR_IO and others).
 *
 * The secret access key and the session token are copied into locked memory, wiped when the
 * client is freed, and never logged or put in a message.
 */
#ifndef CLOISTER_S3_CLIENT_H
#define CLOISTER_S3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_S3_MAX_KEY 1024                     /* S3's limit on a key's UTF-8 bytes */
#define CL_S3_MAX_BUCKET 63                    /* "Bucket naming rules" */
#define CL_S3_MIN_PART ((uint64_t)5 << 20)     /* every part but the last (UploadPart) */
#define CL_S3_MAX_PART ((uint64_t)5 << 30)     /* UploadPart */
#define CL_S3_MAX_PARTS 10000                  /* UploadPart's part numbers */
#define CL_S3_DEFAULT_PART ((uint64_t)8 << 20) /* the aws CLI's and boto3's multipart_chunksize */
#define CL_S3_MAX_LIST_KEYS 1000               /* ListObjectsV2's MaxKeys ceiling */
#define CL_S3_MAX_XML ((size_t)4 << 20)        /* an XML answer we parse */

typedef struct cl_s3_config {
    const char *endpoint;          /* http://HOST[:PORT] or https://...; no path */
    const char *region;            /* the SigV4 scope's region, e.g. "us-east-1" */
    const char *access_key_id;     /* AKIA... or ASIA... */
    const char *secret_access_key; /* copied into locked memory */
    const char *session_token;     /* temporary credentials (STS): sent as X-Amz-Security-Token; NULL: none */
    const char *ca_file;           /* PEM CAs for https; NULL: the system's store */
    uint32_t vsock_port;           /* nonzero: inside an enclave, as cl_http_config */
    long timeout_ms;               /* each request (of inactivity, when streaming); 0: cl_http's default */
    bool unsigned_payload;         /* https only: x-amz-content-sha256: UNSIGNED-PAYLOAD for files */
    uint64_t part_size;            /* multipart: 0: CL_S3_DEFAULT_PART; CL_S3_MIN_PART..CL_S3_MAX_PART */
    uint64_t multipart_threshold;  /* a file this large or larger goes in parts; 0: part_size */
} cl_s3_config;

typedef struct cl_s3_client cl_s3_client;

CL_MUST_USE cl_status cl_s3_client_new(const cl_s3_config *cfg, cl_s3_client **out);
void cl_s3_client_free(cl_s3_client *c);

/* What S3 says of an object (HeadObject, GetObject, PutObject's ETag). */
typedef struct cl_s3_object_info {
    uint64_t size;          /* Content-Length (of the range, for a ranged GET) */
    uint64_t total_size;    /* the whole object's size (Content-Range's, else size) */
    char etag[132];         /* as S3 sends it, quotes included */
    char last_modified[64]; /* HTTP-date */
    char content_type[128];
} cl_s3_object_info;

/* A byte range (RFC 9110 section 14.1.2): first..last inclusive; last UINT64_MAX: to the end. */
typedef struct cl_s3_range {
    uint64_t first;
    uint64_t last;
} cl_s3_range;

CL_MUST_USE cl_status cl_s3_create_bucket(cl_s3_client *c, const char *bucket);
CL_MUST_USE cl_status cl_s3_delete_bucket(cl_s3_client *c, const char *bucket);

/* PutObject of len bytes in memory. info (may be NULL) gets the ETag. */
CL_MUST_USE cl_status cl_s3_put_object(cl_s3_client *c, const char *bucket, const char *key, const void *data,
                                       size_t len, const char *content_type, cl_s3_object_info *info);
/* The regular file open on fd, streamed from its start (pread: fd's offset is left alone); in
 * parts when it is multipart_threshold bytes or more. */
CL_MUST_USE cl_status cl_s3_put_object_fd(cl_s3_client *c, const char *bucket, const char *key, int fd,
                                          const char *content_type, cl_s3_object_info *info);
/* GetObject into out, refused (CL_ERR_LIMIT) when over max bytes; range NULL: all of it. */
CL_MUST_USE cl_status cl_s3_get_object(cl_s3_client *c, const char *bucket, const char *key, const cl_s3_range *range,
                                       size_t max, cl_buf *out, cl_s3_object_info *info);
/* GetObject written to fd as it arrives (a failure may leave part of it written: write to a
 * temporary file, cl_outfile, and commit it on success). */
CL_MUST_USE cl_status cl_s3_get_object_fd(cl_s3_client *c, const char *bucket, const char *key,
                                          const cl_s3_range *range, int fd, cl_s3_object_info *info);
CL_MUST_USE cl_status cl_s3_head_object(cl_s3_client *c, const char *bucket, const char *key, cl_s3_object_info *info);
/* DeleteObject: S3 answers 204 for a key that does not exist too. */
CL_MUST_USE cl_status cl_s3_delete_object(cl_s3_client *c, const char *bucket, const char *key);

/* One object of a ListObjectsV2 page. */
typedef struct cl_s3_list_entry {
    char *key;
    uint64_t size;
    char etag[132];
    char last_modified[40];
} cl_s3_list_entry;

typedef struct cl_s3_list_page {
    cl_s3_list_entry *entries;
    size_t n_entries;
    char **common_prefixes; /* with a delimiter */
    size_t n_common_prefixes;
    bool truncated;
    char *next_token; /* NextContinuationToken when truncated, else NULL */
} cl_s3_list_page;

typedef struct cl_s3_list_params {
    const char *prefix;             /* NULL: none */
    const char *delimiter;          /* NULL: none */
    const char *continuation_token; /* NULL: the first page; else the last page's next_token */
    unsigned max_keys;              /* 0: S3's default (1000) */
} cl_s3_list_params;

/* One page of ListObjectsV2; free it with cl_s3_list_page_free. */
CL_MUST_USE cl_status cl_s3_list_objects_v2(cl_s3_client *c, const char *bucket, const cl_s3_list_params *p,
                                            cl_s3_list_page *out);
void cl_s3_list_page_free(cl_s3_list_page *p);

#endif
