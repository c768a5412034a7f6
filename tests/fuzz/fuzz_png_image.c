/* SPDX-License-Identifier: Apache-2.0 */
/* PNG decoding into a model input on arbitrary bytes: a tensor or a clean error. */
#include <stddef.h>
#include <stdint.h>

#include "cloister/infer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_infer_tensor t;
    int channels = size > 0 && (data[size - 1] & 1) ? 1 : 3;
    cl_status rc = cl_infer_png_read(data, size, channels, 0, 0, &t);
    if (rc != CL_OK && t.data != NULL) __builtin_trap();
    if (rc == CL_OK && (t.rank != 4 || t.dims[1] != channels)) __builtin_trap();
    cl_infer_tensor_free(&t);
    rc = cl_infer_png_read(data, size, 3, 17, 9, &t);
    if (rc == CL_OK && (t.dims[2] != 17 || t.dims[3] != 9)) __builtin_trap();
    cl_infer_tensor_free(&t);
    return 0;
}
