/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The attestation device's request parser on arbitrary bytes, as the launcher meets
 * them from an enclave: cl_nsm_request_parse, then the whole device (which must
 * answer every input with an encodable response and never fail), then the enclave
 * side's response parser on the device's answer. Attestation is left without a
 * platform (InternalError) so that no signing happens per input.
 * Seeds: one request of each kind (corpus/nsm_request).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/enclave.h"
#include "cloister/nsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_nsm_request req;
    static cl_nsm_device dev;
    cl_status rc = cl_nsm_request_parse(data, size, &req);
    if (rc == CL_OK && (req.op < CL_NSM_OP_DESCRIBE_PCR || req.op > CL_NSM_OP_GET_RANDOM)) abort();
    if (rc == CL_OK && req.data.len > CL_NSM_MAX_FIELD) abort();

    cl_nsm_device_init(&dev, NULL, false, "fuzz", NULL);
    cl_buf out;
    cl_buf_init(&out, CL_NSM_MAX_RESPONSE);
    if (cl_nsm_device_handle(&dev, data, size, &out) != CL_OK) abort(); /* every request gets an answer */
    cl_nsm_response resp;
    cl_nsm_response_init(&resp);
    if (cl_nsm_response_parse(out.data, out.len, &resp) != CL_OK) abort();
    if (rc != CL_OK && resp.op != CL_NSM_OP_ERROR) abort();
    cl_nsm_response_free(&resp);
    cl_buf_free(&out);
    return 0;
}
