/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attestation device the launcher serves in place of the Nitro Secure Module.
 *
 * Semantics reproduced from the NSM (aws-nitro-enclaves-nsm-api src/api/mod.rs and
 * the driver's documentation):
 *  - 32 PCRs of SHA-384; ExtendPCR sets PCR = SHA-384(PCR || data) and answers the new
 *    value; a locked PCR answers ReadOnlyIndex to ExtendPCR.
 *  - PCRs 0-15 are locked from the start (the hypervisor's and the instance's); the
 *    enclave may extend and lock 16-31. LockPCR(i) locks one, LockPCRs(range) locks
 *    0..range-1. Locking an already locked PCR succeeds.
 *  - Attestation signs a document over PCRs 0-15 with the enclave's own user_data,
 *    nonce and public_key (each at most 1024 bytes, else InputTooLarge); the PCR values
 *    are the device's, which the enclave cannot choose.
 *  - GetRandom answers 256 random bytes.
 * Requests are untrusted: malformed ones get {"Error": "InvalidArgument"} (or
 * InputTooLarge), never a crash or an exit of the launcher.
 */
#include <openssl/evp.h>
#include <string.h>
#include <time.h>

#include "cloister/crypto.h"
#include "cloister/enclave.h"
#include "cloister/log.h"

#define DOC_PCRS 16

static int64_t wall_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cl_nsm_device_init(cl_nsm_device *dev, const cl_image *img, bool debug, const char *module_id,
                        cl_attest_platform *platform)
{
    memset(dev, 0, sizeof(*dev));
    if (img != NULL && !debug) {
        memcpy(dev->pcrs[0], img->pcr0, 48);
        memcpy(dev->pcrs[1], img->pcr1, 48);
        memcpy(dev->pcrs[2], img->pcr2, 48);
    }
    if (img != NULL) memcpy(dev->pcrs[8], img->pcr8, 48);
    dev->locked = 0xffffU;
    (void)snprintf(dev->module_id, sizeof(dev->module_id), "%s", module_id != NULL ? module_id : "sim-enclave");
    dev->platform = platform;
    dev->now_ms = wall_ms;
}

static CL_MUST_USE cl_status answer_error(cl_nsm_error e, cl_buf *resp)
{
    cl_nsm_response r;
    cl_nsm_response_init(&r);
    r.op = CL_NSM_OP_ERROR;
    r.error = e;
    cl_status rc = cl_nsm_response_encode(&r, resp);
    cl_nsm_response_free(&r);
    return rc;
}

static cl_nsm_error attest(cl_nsm_device *dev, const cl_nsm_request *req, cl_buf *doc)
{
    if (dev->platform == NULL) return CL_NSM_INTERNAL_ERROR;
    cl_attest_blob ud = {req->user_data.data, req->user_data.len}, nonce = {req->nonce.data, req->nonce.len},
                   pk = {req->public_key.data, req->public_key.len};
    cl_attest_create_params params = {
        .module_id = dev->module_id,
        .timestamp_ms = (uint64_t)dev->now_ms(),
        .pcrs = (const uint8_t(*)[CL_ATTEST_PCR_LEN])dev->pcrs,
        .pcr_count = DOC_PCRS,
        .public_key = req->public_key.present ? &pk : NULL,
        .user_data = req->user_data.present ? &ud : NULL,
        .nonce = req->nonce.present ? &nonce : NULL,
    };
    if (cl_attest_platform_sign(dev->platform, &params, doc) != CL_OK) {
        CL_LOG_ERROR("attestation device: signing failed: %s", cl_error_message());
        return CL_NSM_INTERNAL_ERROR;
    }
    return CL_NSM_SUCCESS;
}

cl_status cl_nsm_device_handle(cl_nsm_device *dev, const uint8_t *p, size_t n, cl_buf *resp)
{
    cl_nsm_request req;
    cl_status prc = cl_nsm_request_parse(p, n, &req);
    if (prc != CL_OK) {
        CL_LOG_DEBUG("attestation device: refused a request: %s", cl_error_message());
        return answer_error(prc == CL_ERR_LIMIT ? CL_NSM_INPUT_TOO_LARGE : CL_NSM_INVALID_ARGUMENT, resp);
    }
    cl_nsm_response r;
    cl_nsm_response_init(&r);
    cl_nsm_error err = CL_NSM_SUCCESS;
    cl_status rc = CL_OK;
    r.op = req.op;
    switch (req.op) {
    case CL_NSM_OP_DESCRIBE_PCR:
        if (req.index >= CL_NSM_MAX_PCRS) {
            err = CL_NSM_INVALID_INDEX;
            break;
        }
        r.lock = (dev->locked >> req.index) & 1U;
        rc = cl_buf_append(&r.data, dev->pcrs[req.index], CL_NSM_PCR_LEN);
        break;
    case CL_NSM_OP_EXTEND_PCR: {
        if (req.index >= CL_NSM_MAX_PCRS)
            err = CL_NSM_INVALID_INDEX;
        else if ((dev->locked >> req.index) & 1U)
            err = CL_NSM_READONLY_INDEX;
        else if (req.data.len == 0)
            err = CL_NSM_INVALID_ARGUMENT;
        if (err != CL_NSM_SUCCESS) break;
        /* NSM ExtendPCR: PCR = SHA-384(PCR || data). */
        uint8_t both[CL_NSM_PCR_LEN + CL_NSM_MAX_FIELD];
        unsigned int dl = 0;
        memcpy(both, dev->pcrs[req.index], CL_NSM_PCR_LEN);
        memcpy(both + CL_NSM_PCR_LEN, req.data.data, req.data.len);
        if (EVP_Digest(both, CL_NSM_PCR_LEN + req.data.len, dev->pcrs[req.index], &dl, EVP_sha384(), NULL) != 1) {
            err = CL_NSM_INTERNAL_ERROR;
            break;
        }
        rc = cl_buf_append(&r.data, dev->pcrs[req.index], CL_NSM_PCR_LEN);
        break;
    }
    case CL_NSM_OP_LOCK_PCR:
        if (req.index >= CL_NSM_MAX_PCRS)
            err = CL_NSM_INVALID_INDEX;
        else
            dev->locked |= 1U << req.index;
        break;
    case CL_NSM_OP_LOCK_PCRS:
        if (req.index > CL_NSM_MAX_PCRS)
            err = CL_NSM_INVALID_INDEX;
        else
            dev->locked |= req.index == 32 ? 0xffffffffU : (1U << req.index) - 1U;
        break;
    case CL_NSM_OP_DESCRIBE_NSM:
        r.version[0] = 1;
        (void)snprintf(r.module_id, sizeof(r.module_id), "%s", dev->module_id);
        r.max_pcrs = CL_NSM_MAX_PCRS;
        r.locked_mask = dev->locked;
        break;
    case CL_NSM_OP_GET_RANDOM: {
        uint8_t rnd[CL_NSM_RANDOM_LEN];
        if (cl_random(rnd, sizeof(rnd)) != CL_OK)
            err = CL_NSM_INTERNAL_ERROR;
        else
            rc = cl_buf_append(&r.data, rnd, sizeof(rnd));
        break;
    }
    case CL_NSM_OP_ATTESTATION: err = attest(dev, &req, &r.data); break;
    default: err = CL_NSM_INVALID_OPERATION; break;
    }
    if (rc == CL_OK && err != CL_NSM_SUCCESS)
        rc = answer_error(err, resp);
    else if (rc == CL_OK)
        rc = cl_nsm_response_encode(&r, resp);
    cl_nsm_response_free(&r);
    return rc;
}
