/* SPDX-License-Identifier: Apache-2.0 */
/* The parts of s3_client.c that tests/unit/test_s3_client.c and tests/fuzz/fuzz_s3_xml.c reach. */
#ifndef CLOISTER_S3_CLIENT_INTERNAL_H
#define CLOISTER_S3_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/http.h"
#include "cloister/s3_client.h"

/* Bounds of the XML reader: nesting, a name, one element's text. */
#define CL_S3_XML_MAX_DEPTH 16
#define CL_S3_XML_MAX_NAME 64
#define CL_S3_XML_MAX_TEXT ((size_t)16 << 10)

/*
 * The XML reader: well-formed XML 1.0 (https://www.w3.org/TR/xml/) of the kind S3 sends, read
 * through a cl_reader: an optional declaration, comments and processing instructions skipped,
 * elements with attributes (read and ignored: S3's only one is xmlns), text with the five
 * predefined entities and character references. No DOCTYPE (so no entity of the document's
 * own: nothing expands), no CDATA: refused. For every element, fn gets its start (end false,
 * text NULL) and its end with its text (its own character data, child elements' excluded);
 * path is the names from the root, '/'-separated ("ListBucketResult/Contents/Key").
 */
typedef CL_MUST_USE cl_status (*cl_s3_xml_fn)(void *arg, bool end, const char *path, const cl_buf *text);
CL_MUST_USE cl_status cl_s3_xml_parse(const uint8_t *p, size_t n, cl_s3_xml_fn fn, void *arg);

/* A ListObjectsV2 answer (ListBucketResult) into out (freed with cl_s3_list_page_free, also on failure). */
CL_MUST_USE cl_status cl_s3_xml_list_parse(const uint8_t *p, size_t n, cl_s3_list_page *out);
/* An <Error> document's Code and Message; CL_ERR_FORMAT when the document is not one. */
CL_MUST_USE cl_status cl_s3_xml_error_parse(const uint8_t *p, size_t n, char code[128], char message[512]);
/* InitiateMultipartUploadResult's UploadId. */
CL_MUST_USE cl_status cl_s3_xml_upload_id_parse(const uint8_t *p, size_t n, char upload_id[1024 + 1]);

/* The status S3's error code stands for (see s3_client.h). */
CL_MUST_USE cl_status cl_s3_error_status(const char *code);

/* How a request is signed, for the unit test's comparison with botocore: the headers the
 * client sends for method/path/query at time `now` (x-amz-date, x-amz-content-sha256 and the
 * session token's, then extra), and the Authorization value. */
#define CL_S3_MAX_HEADERS 12
typedef struct cl_s3_signed {
    cl_http_header headers[CL_S3_MAX_HEADERS];
    size_t n_headers;
    char amz_date[17];
    cl_buf authorization;
} cl_s3_signed;
CL_MUST_USE cl_status cl_s3_sign(cl_s3_client *c, const char *method, const char *path, const char *query,
                                 const cl_http_header *extra, size_t n_extra, const char *payload_hash, int64_t now,
                                 cl_s3_signed *out);
void cl_s3_signed_free(cl_s3_signed *s);
/* The path-style path of an object: "/" BUCKET "/" KEY, the key URI-encoded as S3 wants it
 * (every byte but unreserved ones and '/' as %XX). */
CL_MUST_USE cl_status cl_s3_object_path(const char *bucket, const char *key, cl_buf *out);

#endif
