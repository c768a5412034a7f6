/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The S3 client's XML reader (src/core/s3_client.c) on arbitrary bytes, as an S3 endpoint, or
 * whoever sits on the path to one, can send them: the three documents the client reads
 * (ListBucketResult, Error, InitiateMultipartUploadResult). What it promises: no read out of
 * bounds, no leak (the list page is freed on failure), and a page it accepts holds at most 1000
 * entries, each with a key of 1 to 1024 bytes, and a next token exactly when truncated.
 * Seeds: a listing with entities, common prefixes and a token; an error; an upload id.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3_client_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_s3_list_page pg;
    if (cl_s3_xml_list_parse(data, size, &pg) == CL_OK) {
        if (pg.n_entries > CL_S3_MAX_LIST_KEYS || (pg.truncated != (pg.next_token != NULL))) abort();
        for (size_t i = 0; i < pg.n_entries; i++) {
            size_t n = strlen(pg.entries[i].key);
            if (n < 1 || n > CL_S3_MAX_KEY) abort();
        }
        cl_s3_list_page_free(&pg);
    }
    char code[128], message[512], id[1025];
    if (cl_s3_xml_error_parse(data, size, code, message) == CL_OK && code[0] == '\0') abort();
    if (cl_s3_xml_upload_id_parse(data, size, id) == CL_OK && id[0] == '\0') abort();
    return 0;
}
