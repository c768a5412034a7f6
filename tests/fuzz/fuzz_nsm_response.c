/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The enclave's parser of host bytes: cl_nsm_response_parse on arbitrary bytes. On Nitro the
 * NSM's answers come from the hypervisor; in the sim backend they come from the launcher, a
 * program of the host's, so whatever the host writes on the device socket reaches this parser
 * inside the enclave (docs/security.md, "Fuzzing"). The device's own answers are fuzzed
 * through fuzz_nsm_request; here the bytes are anyone's.
 * Every input is parsed or refused; one that parses says no more than its bytes (an operation
 * of the enum, data within the response bound, a NUL-terminated module id), re-encodes with
 * cl_nsm_response_encode, and those bytes parse to the same response. The structs are reused
 * across inputs and compared with one made fresh for each: a field left over from an earlier
 * answer shows as a difference.
 * Seeds (corpus/nsm_response): the sim device's answer to each seed of corpus/nsm_request, an
 * InvalidIndex error, and an Attestation answer carrying a document made by real Nitro
 * hardware (tests/vectors/nitro/evervault-debug-2023-09-18.b64).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/nsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_abort(const cl_nsm_response *a, const cl_nsm_response *b)
{
    if (a->op != b->op || a->data.len != b->data.len ||
        (a->data.len > 0 && memcmp(a->data.data, b->data.data, a->data.len) != 0))
        abort();
    if (a->op == CL_NSM_OP_ERROR && a->error != b->error) abort();
    if (a->op == CL_NSM_OP_DESCRIBE_PCR && a->lock != b->lock) abort();
    if (a->op == CL_NSM_OP_DESCRIBE_NSM &&
        (memcmp(a->version, b->version, sizeof(a->version)) != 0 || strcmp(a->module_id, b->module_id) != 0 ||
         a->max_pcrs != b->max_pcrs || a->locked_mask != b->locked_mask))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_nsm_response resp, again;
    static int ready;
    if (!ready) {
        cl_nsm_response_init(&resp);
        cl_nsm_response_init(&again);
        ready = 1;
    }
    cl_nsm_response fresh;
    cl_nsm_response_init(&fresh);
    cl_status rc = cl_nsm_response_parse(data, size, &fresh);
    if ((cl_nsm_response_parse(data, size, &resp) == CL_OK) != (rc == CL_OK)) abort();
    if (rc == CL_OK) same_or_abort(&resp, &fresh);
    cl_nsm_response_free(&fresh);
    if (rc != CL_OK) return 0;
    if (resp.op < CL_NSM_OP_DESCRIBE_PCR || resp.op > CL_NSM_OP_ERROR) abort();
    if (resp.op == CL_NSM_OP_ERROR && (resp.error <= CL_NSM_SUCCESS || resp.error > CL_NSM_INTERNAL_ERROR)) abort();
    if (resp.data.len > CL_NSM_MAX_RESPONSE || size > CL_NSM_MAX_RESPONSE) abort();
    if (memchr(resp.module_id, '\0', sizeof(resp.module_id)) == NULL) abort();
    cl_buf out;
    cl_buf_init(&out, (size_t)CL_NSM_MAX_RESPONSE * 2);
    if (cl_nsm_response_encode(&resp, &out) != CL_OK) abort();
    if (cl_nsm_response_parse(out.data, out.len, &again) != CL_OK) abort();
    same_or_abort(&resp, &again);
    cl_buf_free(&out);
    return 0;
}
