/* SPDX-License-Identifier: Apache-2.0 */
/* A segmentation result from the enclave (cl_infer_result_split_mask) on arbitrary bytes:
 * a summary without the mask and a PNG, or a clean error and nothing written. */
#include <stddef.h>
#include <stdint.h>

#include "cloister/infer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_buf summary, mask;
    cl_buf_init(&summary, (size_t)1 << 20);
    cl_buf_init(&mask, (size_t)1 << 20);
    cl_status rc = cl_infer_result_split_mask(data, size, &summary, &mask);
    if (rc != CL_OK && summary.len != 0) __builtin_trap();
    if (rc == CL_OK && (summary.len == 0 || mask.len < 8 || mask.data[1] != 'P')) __builtin_trap();
    cl_buf_free(&summary);
    cl_buf_free(&mask);
    return 0;
}
