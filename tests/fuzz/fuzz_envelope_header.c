/* SPDX-License-Identifier: Apache-2.0 */
/* The envelope header parser on arbitrary bytes: it must accept or refuse,
 * never read out of bounds, and leave nothing allocated. */
#include <stddef.h>
#include <stdint.h>

#include "cloister/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t hl = 0;
    if (cl_envelope_header_length(data, size, &hl) != CL_OK) return 0;
    cl_envelope_header h;
    if (cl_envelope_header_parse(data, size < hl ? size : hl, &h) == CL_OK) {
        /* A parsed header's fields lie inside the input. */
        if (h.salt < data || h.salt + CL_ENVELOPE_SALT_LEN > data + size) __builtin_trap();
        cl_envelope_header_free(&h);
    }
    return 0;
}
