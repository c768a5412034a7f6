/* SPDX-License-Identifier: Apache-2.0 */
/* A patient record (JSON and CSV) for the WDBC classifier on arbitrary bytes:
 * a [1, 30] tensor of finite floats, or a clean error and no tensor. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cloister/infer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char features[] =
    "mean_radius,mean_texture,mean_perimeter,mean_area,mean_smoothness,mean_compactness,mean_concavity,"
    "mean_concave_points,mean_symmetry,mean_fractal_dimension,radius_se,texture_se,perimeter_se,area_se,"
    "smoothness_se,compactness_se,concavity_se,concave_points_se,symmetry_se,fractal_dimension_se,worst_radius,"
    "worst_texture,worst_perimeter,worst_area,worst_smoothness,worst_compactness,worst_concavity,"
    "worst_concave_points,worst_symmetry,worst_fractal_dimension";

static void check(const cl_infer_classifier *c, cl_infer_record_format fmt, const uint8_t *data, size_t size)
{
    cl_infer_tensor t;
    cl_status rc = cl_infer_classifier_parse(c, fmt, data, size, &t);
    if (rc != CL_OK) {
        if (t.data != NULL) __builtin_trap();
        return;
    }
    if (t.dtype != CL_INFER_FLOAT || t.rank != 2 || t.dims[0] != 1 ||
        t.dims[1] != (int64_t)cl_infer_classifier_feature_count(c))
        __builtin_trap();
    const float *x = t.data;
    for (int64_t i = 0; i < t.dims[1]; i++)
        if (!isfinite(x[i])) __builtin_trap();
    cl_infer_tensor_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_infer_classifier *named, *unnamed;
    if (named == NULL) {
        if (cl_infer_classifier_make("benign,malignant", features, 0, &named) != CL_OK) abort();
        if (cl_infer_classifier_make("no,yes", NULL, 3, &unnamed) != CL_OK) abort();
    }
    check(named, CL_INFER_RECORD_JSON, data, size);
    check(named, CL_INFER_RECORD_CSV, data, size);
    check(unnamed, CL_INFER_RECORD_JSON, data, size);
    check(unnamed, CL_INFER_RECORD_CSV, data, size);
    return 0;
}
