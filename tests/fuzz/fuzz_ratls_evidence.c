/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RA-TLS certificate extension's value (RatlsEvidence, docs/formats/ratls.md) on
 * arbitrary bytes: the bounded DER reader, then the attestation document it carries.
 * What the parser promises: a document that lies inside the input and ends it, and
 * only DER's one encoding accepted, so re-encoding what parsed gives the input back.
 * Seeds: the evidence around a real Nitro document and a sim document, and both
 * short and one-octet length forms.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cloister/attestation.h"
#include "cloister/ratls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *doc = NULL;
    size_t doc_len = 0;
    if (cl_ratls_evidence_parse(data, size, &doc, &doc_len) != CL_OK) {
        if (doc != NULL || doc_len != 0) __builtin_trap(); /* a failed parse yields nothing */
        return 0;
    }
    if (doc == NULL || doc_len == 0 || doc < data || doc + doc_len != data + size) __builtin_trap();
    cl_buf again;
    cl_buf_init(&again, CL_ATTEST_MAX_DOC_LEN + 16);
    if (cl_ratls_evidence_encode(doc, doc_len, &again) != CL_OK || again.len != size ||
        memcmp(again.data, data, size) != 0)
        __builtin_trap();
    cl_buf_free(&again);
    cl_attest_doc d;
    cl_attest_doc_init(&d);
    (void)cl_attest_doc_parse(doc, doc_len, &d);
    cl_attest_doc_free(&d);
    return 0;
}
