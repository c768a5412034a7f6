/* SPDX-License-Identifier: Apache-2.0 */
/* The training table parser on arbitrary bytes: a consistent data set or a clean error. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_train_dataset d;
    cl_status rc = cl_train_csv_parse(data, size, "fuzz.csv", &d);
    if (rc != CL_OK) {
        if (d.x != NULL || d.feature_names != NULL) __builtin_trap();
        return 0;
    }
    if (d.n_rows == 0 || d.n_features == 0 || d.n_features > CL_TRAIN_MAX_FEATURES || d.n_positive > d.n_rows)
        __builtin_trap();
    for (size_t i = 0; i < d.n_rows * d.n_features; i++)
        if (!isfinite(d.x[i])) __builtin_trap();
    /* A split of what parsed must either work or fail cleanly. */
    cl_train_split s;
    if (cl_train_split_stratified(&d, 0.2, 1, &s) == CL_OK) {
        if (s.n_train + s.n_test != d.n_rows) __builtin_trap();
        cl_train_split_free(&s);
    }
    cl_train_dataset_free(&d);
    return 0;
}
