/* SPDX-License-Identifier: Apache-2.0 */
/*
 * aws-chunked bodies (s3_chunked.c) against the example of "Signature Calculations for the
 * Authorization Header: Transferring Payload in Multiple Chunks" (S3 API Reference): 66560 bytes
 * of 'a' in chunks of 65536 and 1024, the signatures the page gives; then every way the framing
 * or a signature can be wrong.
 */
#include <stdio.h>
#include <string.h>

#include "cloister/sigv4.h"

#include "s3_chunked.h"
#include "test_util.h"

#define SEED "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
#define SIG1 "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
#define SIG2 "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
#define SIG3 "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"

static uint8_t t_key[CL_SIGV4_KEY_LEN];
static kms_s3_chunk_keys t_keys = {.signing_key = t_key,
                                   .amz_date = "20130524T000000Z",
                                   .scope = "20130524/us-east-1/s3/aws4_request",
                                   .seed_signature = SEED};

/* The example's body (66824 bytes, as its Content-Length says). */
static void t_body(cl_buf *b)
{
    static uint8_t a[65536];
    memset(a, 'a', sizeof(a));
    cl_buf_init(b, 1 << 20);
    assert_ok(cl_buf_append_str(b, "10000;chunk-signature=" SIG1 "\r\n"));
    assert_ok(cl_buf_append(b, a, 65536));
    assert_ok(cl_buf_append_str(b, "\r\n400;chunk-signature=" SIG2 "\r\n"));
    assert_ok(cl_buf_append(b, a, 1024));
    assert_ok(cl_buf_append_str(b, "\r\n0;chunk-signature=" SIG3 "\r\n\r\n"));
    assert_int_equal(b->len, 66824);
}

static int t_setup(void **state)
{
    (void)state;
    return cl_sigv4_signing_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "20130524", "us-east-1", "s3", t_key) ==
                   CL_OK
               ? 0
               : -1;
}

static void test_aws_example(void **state)
{
    (void)state;
    cl_buf body, out;
    t_body(&body);
    cl_buf_init(&out, 1 << 20);
    assert_ok(kms_s3_chunked_decode(body.data, body.len, &t_keys, 66560, &out));
    assert_int_equal(out.len, 66560);
    for (size_t i = 0; i < out.len; i++) assert_int_equal(out.data[i], 'a');
    cl_buf_free(&body);
    cl_buf_free(&out);
}

static CL_MUST_USE cl_status t_decode_edited(const char *find, const char *repl, uint64_t decoded)
{
    cl_buf body, out, edited;
    t_body(&body);
    cl_buf_init(&out, 1 << 20);
    cl_buf_init(&edited, 1 << 20);
    const char *hit = find != NULL ? memmem(body.data, body.len, find, strlen(find)) : NULL;
    if (find != NULL) assert_non_null(hit);
    size_t at = hit != NULL ? (size_t)((const uint8_t *)hit - body.data) : body.len;
    assert_ok(cl_buf_append(&edited, body.data, at));
    if (repl != NULL) assert_ok(cl_buf_append_str(&edited, repl));
    if (hit != NULL) assert_ok(cl_buf_append(&edited, body.data + at + strlen(find), body.len - at - strlen(find)));
    cl_status rc = kms_s3_chunked_decode(edited.data, edited.len, &t_keys, decoded, &out);
    cl_buf_free(&body);
    cl_buf_free(&out);
    cl_buf_free(&edited);
    return rc;
}

static void test_refusals(void **state)
{
    (void)state;
    /* A byte of chunk 1 changed (the 'a' right after its header): its signature fails. */
    assert_fails(t_decode_edited(SIG2 "\r\na", SIG2 "\r\nb", 66560), CL_ERR_DENIED, "chunk 1 of the aws-chunked body");
    /* A signature of another chunk, and the chain is broken from there. */
    assert_fails(t_decode_edited(SIG1, SIG2, 66560), CL_ERR_DENIED, "chunk 0");
    assert_fails(t_decode_edited(NULL, NULL, 66561), CL_ERR_FORMAT, "x-amz-decoded-content-length says 66561");
    assert_fails(t_decode_edited(NULL, NULL, 100), CL_ERR_FORMAT, "more than x-amz-decoded-content-length");
    assert_fails(t_decode_edited(NULL, "junk", 66560), CL_ERR_FORMAT, "4 bytes follow the final chunk");
    assert_fails(t_decode_edited("0;chunk-signature=" SIG3 "\r\n\r\n", "", 66560), CL_ERR_FORMAT,
                 "does not start with a hex size");
    assert_fails(t_decode_edited("10000;", "10000000000000000;", 66560), CL_ERR_FORMAT, "more than 16 hex digits");
    assert_fails(t_decode_edited("10000;", "ffffffff;", 66560), CL_ERR_FORMAT, "IncompleteBody");
    assert_fails(t_decode_edited("10000;chunk-signature=", "10000;chunk-sig=", 66560), CL_ERR_FORMAT,
                 "not followed by ;chunk-signature=");
    assert_fails(t_decode_edited(SIG1 "\r\n", "abc\r\n", 66560), CL_ERR_FORMAT, "not 64 hex digits and CRLF");
    assert_fails(t_decode_edited("\r\n400;", "\n400;", 66560), CL_ERR_FORMAT, "data is not followed by CRLF");
    /* Empty input, and a lone final chunk for an empty object. */
    cl_buf out;
    cl_buf_init(&out, 16);
    assert_fails(kms_s3_chunked_decode((const uint8_t *)"", 0, &t_keys, 0, &out), CL_ERR_FORMAT, "hex size");
    cl_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_example),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, t_setup, NULL);
}
