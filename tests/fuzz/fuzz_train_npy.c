/* SPDX-License-Identifier: Apache-2.0 */
/* The .npy table parser on arbitrary bytes: a consistent data set or a clean error. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_train_dataset d;
    cl_status rc = cl_train_npy_parse(data, size, "fuzz.npy", &d);
    if (rc != CL_OK) {
        if (d.x != NULL || d.y != NULL || d.feature_names != NULL || d.n_rows != 0) __builtin_trap();
        return 0;
    }
    if (d.n_rows == 0 || d.n_rows > CL_TRAIN_MAX_ROWS || d.n_features == 0 || d.n_features > CL_TRAIN_MAX_FEATURES ||
        d.n_positive > d.n_rows)
        __builtin_trap();
    size_t pos = 0;
    for (size_t i = 0; i < d.n_rows; i++) {
        if (d.y[i] > 1) __builtin_trap();
        pos += d.y[i];
    }
    if (pos != d.n_positive) __builtin_trap();
    for (size_t i = 0; i < d.n_rows * d.n_features; i++)
        if (!isfinite(d.x[i])) __builtin_trap();
    cl_train_dataset_free(&d);
    return 0;
}
