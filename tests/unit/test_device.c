/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attestation device (src/host/device.c): NSM semantics (ExtendPCR, locks,
 * indexes, GetRandom), malformed requests answered and never fatal, and documents
 * signed with the launcher's PCRs that verify against the sim root.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "cloister/enclave.h"

#include "test_util.h"

#define T_NOW 1767229200 /* 2026-01-01T01:00:00Z */

static int64_t fixed_ms(void) { return (int64_t)T_NOW * 1000 + 5; }

static void call(cl_nsm_device *dev, const cl_nsm_request *req, cl_nsm_response *resp)
{
    cl_buf in, out;
    cl_buf_init(&in, CL_NSM_MAX_REQUEST);
    cl_buf_init(&out, CL_NSM_MAX_RESPONSE);
    assert_ok(cl_nsm_request_encode(req, &in));
    assert_ok(cl_nsm_device_handle(dev, in.data, in.len, &out));
    assert_ok(cl_nsm_response_parse(out.data, out.len, resp));
    cl_buf_free(&in);
    cl_buf_free(&out);
}

static cl_nsm_error call_error(cl_nsm_device *dev, const cl_nsm_request *req)
{
    cl_nsm_response r;
    cl_nsm_response_init(&r);
    call(dev, req, &r);
    cl_nsm_error e = r.op == CL_NSM_OP_ERROR ? r.error : CL_NSM_SUCCESS;
    cl_nsm_response_free(&r);
    return e;
}

static void fake_image(cl_image *img)
{
    cl_image_init(img);
    memset(img->pcr0, 0xa0, 48);
    memset(img->pcr1, 0xa1, 48);
    memset(img->pcr2, 0xa2, 48);
    memset(img->pcr8, 0xa8, 48);
}

static void test_pcrs(void **state)
{
    (void)state;
    cl_image img;
    fake_image(&img);
    static cl_nsm_device dev;
    cl_nsm_device_init(&dev, &img, false, "i-sim-enc01", NULL);
    static cl_nsm_request req;
    cl_nsm_response r;
    cl_nsm_response_init(&r);

    req = (cl_nsm_request){.op = CL_NSM_OP_DESCRIBE_PCR, .index = 2};
    call(&dev, &req, &r);
    assert_int_equal(r.op, CL_NSM_OP_DESCRIBE_PCR);
    assert_true(r.lock);
    assert_int_equal(r.data.len, 48);
    assert_int_equal(r.data.data[0], 0xa2);

    /* The launcher's PCRs cannot be changed by the enclave. */
    req = (cl_nsm_request){.op = CL_NSM_OP_EXTEND_PCR, .index = 0};
    req.data.present = true;
    req.data.len = 1;
    req.data.data[0] = 'x';
    assert_int_equal(call_error(&dev, &req), CL_NSM_READONLY_INDEX);
    req.index = 15;
    assert_int_equal(call_error(&dev, &req), CL_NSM_READONLY_INDEX);
    req.index = 32;
    assert_int_equal(call_error(&dev, &req), CL_NSM_INVALID_INDEX);

    /* ExtendPCR: SHA-384(old || data), twice. */
    uint8_t want[48] = {0}, both[48 + 3];
    unsigned int l;
    req.index = 20;
    req.data.len = 3;
    memcpy(req.data.data, "abc", 3);
    for (int i = 0; i < 2; i++) {
        call(&dev, &req, &r);
        memcpy(both, want, 48);
        memcpy(both + 48, "abc", 3);
        assert_int_equal(EVP_Digest(both, sizeof(both), want, &l, EVP_sha384(), NULL), 1);
        assert_int_equal(r.op, CL_NSM_OP_EXTEND_PCR);
        assert_memory_equal(r.data.data, want, 48);
    }
    req.data.len = 0;
    assert_int_equal(call_error(&dev, &req), CL_NSM_INVALID_ARGUMENT);

    /* LockPCR, then ExtendPCR is refused; LockPCRs(range) locks 0..range-1. */
    cl_nsm_request lock = {.op = CL_NSM_OP_LOCK_PCR, .index = 20};
    assert_int_equal(call_error(&dev, &lock), CL_NSM_SUCCESS);
    req.data.len = 1;
    assert_int_equal(call_error(&dev, &req), CL_NSM_READONLY_INDEX);
    lock = (cl_nsm_request){.op = CL_NSM_OP_LOCK_PCRS, .index = 18};
    assert_int_equal(call_error(&dev, &lock), CL_NSM_SUCCESS);
    req.index = 17;
    assert_int_equal(call_error(&dev, &req), CL_NSM_READONLY_INDEX);
    req.index = 18;
    assert_int_equal(call_error(&dev, &req), CL_NSM_SUCCESS);
    lock.index = 33;
    assert_int_equal(call_error(&dev, &lock), CL_NSM_INVALID_INDEX);

    req = (cl_nsm_request){.op = CL_NSM_OP_DESCRIBE_NSM};
    call(&dev, &req, &r);
    assert_int_equal(r.max_pcrs, 32);
    assert_int_equal(r.locked_mask, 0x0013ffffU); /* 0-15 from the start, 16-17 and 20 by the enclave */
    assert_string_equal(r.module_id, "i-sim-enc01");

    req = (cl_nsm_request){.op = CL_NSM_OP_GET_RANDOM};
    call(&dev, &req, &r);
    assert_int_equal(r.data.len, CL_NSM_RANDOM_LEN);

    /* No platform: attestation is an internal error, not a crash. */
    req = (cl_nsm_request){.op = CL_NSM_OP_ATTESTATION};
    assert_int_equal(call_error(&dev, &req), CL_NSM_INTERNAL_ERROR);
    cl_nsm_response_free(&r);
    cl_image_free(&img);
}

static void test_debug_mode(void **state)
{
    (void)state;
    cl_image img;
    fake_image(&img);
    static cl_nsm_device dev;
    cl_nsm_device_init(&dev, &img, true, NULL, NULL);
    static const uint8_t zero[48];
    assert_memory_equal(dev.pcrs[0], zero, 48);
    assert_memory_equal(dev.pcrs[1], zero, 48);
    assert_memory_equal(dev.pcrs[2], zero, 48);
    assert_int_equal(dev.pcrs[8][0], 0xa8);
    cl_image_free(&img);
}

static void test_malformed(void **state)
{
    (void)state;
    static cl_nsm_device dev;
    cl_nsm_device_init(&dev, NULL, false, NULL, NULL);
    cl_buf out;
    cl_buf_init(&out, CL_NSM_MAX_RESPONSE);
    cl_nsm_response r;
    cl_nsm_response_init(&r);
    const uint8_t garbage[] = {0xff, 0x00, 0x01};
    assert_ok(cl_nsm_device_handle(&dev, garbage, sizeof(garbage), &out));
    assert_ok(cl_nsm_response_parse(out.data, out.len, &r));
    assert_int_equal(r.op, CL_NSM_OP_ERROR);
    assert_int_equal(r.error, CL_NSM_INVALID_ARGUMENT);
    static uint8_t big[CL_NSM_MAX_REQUEST + 1];
    cl_buf_reset(&out);
    assert_ok(cl_nsm_device_handle(&dev, big, sizeof(big), &out));
    assert_ok(cl_nsm_response_parse(out.data, out.len, &r));
    assert_int_equal(r.error, CL_NSM_INPUT_TOO_LARGE);
    cl_buf_reset(&out);
    assert_ok(cl_nsm_device_handle(&dev, NULL, 0, &out));
    assert_ok(cl_nsm_response_parse(out.data, out.len, &r));
    assert_int_equal(r.error, CL_NSM_INVALID_ARGUMENT);
    cl_nsm_response_free(&r);
    cl_buf_free(&out);
}

static void test_attestation(void **state)
{
    (void)state;
    char dir[512], root[600];
    (void)snprintf(dir, sizeof(dir), "%s/pki", t_tmpdir());
    (void)snprintf(root, sizeof(root), "%s/root.pem", dir);
    assert_ok(cl_attest_pki_create(dir, T_NOW, 3650, 365, false));
    cl_attest_platform plat;
    cl_attest_platform_init(&plat);
    assert_ok(cl_attest_platform_load(&plat, dir));
    assert_ok(cl_attest_platform_start_enclave(&plat, "i-sim-enc02", T_NOW));
    cl_image img;
    fake_image(&img);
    static cl_nsm_device dev;
    cl_nsm_device_init(&dev, &img, false, "i-sim-enc02", &plat);
    dev.now_ms = fixed_ms;

    static cl_nsm_request req;
    req = (cl_nsm_request){.op = CL_NSM_OP_ATTESTATION};
    req.nonce.present = true;
    req.nonce.len = 4;
    memcpy(req.nonce.data, "n0n5", 4);
    req.user_data.present = true;
    req.user_data.len = 2;
    memcpy(req.user_data.data, "ud", 2);
    cl_nsm_response r;
    cl_nsm_response_init(&r);
    call(&dev, &req, &r);
    assert_int_equal(r.op, CL_NSM_OP_ATTESTATION);

    cl_attest_roots roots;
    cl_attest_roots_init(&roots);
    assert_ok(cl_attest_roots_add_file(&roots, root));
    cl_attest_pcr want[4];
    for (unsigned i = 0; i < 4; i++) {
        want[i].index = i == 3 ? 8 : i;
        memset(want[i].value, 0xa0 + (int)want[i].index, 48);
    }
    cl_attest_policy pol = {
        .verify_at = T_NOW, .pcrs = want, .pcr_count = 4, .nonce = (const uint8_t *)"n0n5", .nonce_len = 4};
    cl_attest_doc doc;
    cl_attest_doc_init(&doc);
    assert_ok(cl_attest_verify(r.data.data, r.data.len, &roots, &pol, &doc));
    assert_string_equal(doc.module_id, "i-sim-enc02");
    assert_int_equal(doc.timestamp_ms, (uint64_t)T_NOW * 1000 + 5);
    assert_int_equal(doc.pcr_mask, 0xffffU);
    assert_true(doc.has_user_data && doc.user_data.len == 2);
    assert_false(doc.has_public_key);
    /* Another image's PCR0 is refused by the same policy. */
    memset(want[0].value, 0xee, 48);
    assert_fails(cl_attest_verify(r.data.data, r.data.len, &roots, &pol, NULL), CL_ERR_DENIED, "PCR0");
    cl_attest_doc_free(&doc);
    cl_attest_roots_free(&roots);
    cl_nsm_response_free(&r);
    cl_image_free(&img);
    cl_attest_platform_free(&plat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcrs),
        cmocka_unit_test(test_debug_mode),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_attestation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
