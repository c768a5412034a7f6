/* SPDX-License-Identifier: Apache-2.0 */
/* PKCS#10 requests with the attestation attribute (csr.c), as the certificate service reads them
 * from anyone who can reach it. */
#include <stddef.h>
#include <stdint.h>

#include "cloister/csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_csr c;
    cl_csr_init(&c);
    if (cl_csr_parse(data, size, &c) == CL_OK && (c.spki.len == 0 || (c.has_evidence && c.evidence.len == 0)))
        __builtin_trap();
    cl_csr_free(&c);
    return 0;
}
