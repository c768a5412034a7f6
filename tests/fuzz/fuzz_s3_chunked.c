/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the S3 service parses of a request body on arbitrary bytes: the aws-chunked decoder
 * (STREAMING-AWS4-HMAC-SHA256-PAYLOAD; the first two bytes are x-amz-decoded-content-length, the
 * rest the body, signed with the S3 API Reference's example key and seed signature, so a seed of
 * the corpus passes every check) and the request XML scanner (CompleteMultipartUpload, Delete).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cloister/sigv4.h"

#include "s3.h"
#include "s3_chunked.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t key[CL_SIGV4_KEY_LEN];
    static int have_key;
    if (!have_key) {
        if (cl_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3", key) !=
            CL_OK)
            __builtin_trap();
        have_key = 1;
    }
    static kms_config cfg;
    static kms_principal who;
    static kms_ctx ctx;
    if (ctx.cfg == NULL) {
        (void)snprintf(who.access_key_id, sizeof(who.access_key_id), "AKIAIOSFODNN7EXAMPLE");
        (void)snprintf(who.secret, sizeof(who.secret), "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        (void)snprintf(who.account, sizeof(who.account), "111122223333");
        (void)snprintf(cfg.region, sizeof(cfg.region), "us-east-1");
        cfg.principals = &who;
        cfg.n_principals = 1;
        cfg.max_body = 1024;
        cfg.s3_max_body = 1 << 20;
        /* An empty store: a header block that verifies as far as the key lookup finds no key. */
        char dir[] = "/tmp/fuzz-s3-chunked-XXXXXX", path[64];
        if (mkdtemp(dir) == NULL) __builtin_trap();
        (void)snprintf(path, sizeof(path), "%s/keys.db", dir);
        if (kms_store_open_sqlite(path, "us-east-1", &ctx.store) != CL_OK) __builtin_trap();
        ctx.cfg = &cfg;
    }
    /* 20130524T000000Z, the example's time: a seed may verify. */
    size_t end = 0;
    if (kms_s3_head_end(data, size, &end) && end > size) __builtin_trap();
    (void)kms_s3_preauth(&ctx, data, size, 1369353600);
    if (size < 2) return 0;
    kms_s3_chunk_keys k = {.signing_key = key,
                           .amz_date = "20130524T000000Z",
                           .scope = "20130524/us-east-1/s3/aws4_request",
                           .seed_signature = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"};
    uint64_t decoded = (uint64_t)data[0] << 8 | data[1];
    cl_buf out;
    cl_buf_init(&out, 1 << 20);
    if (kms_s3_chunked_decode(data + 2, size - 2, &k, decoded, &out) == CL_OK && out.len != decoded) __builtin_trap();
    cl_buf_free(&out);
    cl_error_clear();
    /* The XML scanner: every Part's PartNumber and ETag, bounded. */
    cl_reader x = cl_reader_make(data, size), body, part, v;
    char text[128];
    if (kms_s3_xml_next(&x, "CompleteMultipartUpload", &body)) {
        while (kms_s3_xml_next(&body, "Part", &part)) {
            cl_reader p2 = part;
            if (kms_s3_xml_next(&part, "PartNumber", &v) && kms_s3_xml_value(&v, text, sizeof(text)) == CL_OK &&
                strlen(text) >= sizeof(text))
                __builtin_trap();
            if (kms_s3_xml_next(&p2, "ETag", &v)) (void)!kms_s3_xml_value(&v, text, sizeof(text));
        }
    }
    cl_error_clear();
    return 0;
}
