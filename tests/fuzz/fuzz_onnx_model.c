/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ONNX model loader (and, for small models, the executor) on arbitrary
 * bytes: malformed protobuf, inconsistent shapes, huge dimensions, cycles.
 * Every input must give a clean error or a model; nothing may crash or
 * allocate beyond the cap. Runs use the reference kernels (for throughput);
 * the default (oneDNN) backend's load, with its graph rewrites, is exercised
 * on every model that loads (ASan's allocator would report it, and the cap is
 * far below libFuzzer's RSS limit).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/infer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs the model on zero inputs when every input has a small declared shape. */
static void fuzz_run(cl_infer_model *m)
{
    size_t n_in = cl_infer_model_input_count(m), n_out = cl_infer_model_output_count(m);
    if (n_in > 8 || n_out > 8) return;
    cl_infer_tensor ins[8] = {0}, outs[8];
    size_t ok = 0;
    for (size_t i = 0; i < n_in; i++) {
        cl_infer_dtype dt;
        int rank;
        int64_t dims[CL_INFER_MAX_RANK];
        if (cl_infer_model_input_info(m, i, NULL, &dt, &rank, dims) != CL_OK || rank < 0) break;
        int64_t total = 1;
        for (int d = 0; d < rank; d++) {
            if (dims[d] < 0) dims[d] = 1;
            total *= dims[d] > 0 ? dims[d] : 1;
            if (total > 4096) break;
        }
        if (total > 4096 || cl_infer_tensor_alloc(&ins[i], dt, rank, dims) != CL_OK) break;
        ok++;
    }
    if (ok == n_in && cl_infer_run(m, ins, n_in, outs, n_out) == CL_OK) {
        for (size_t i = 0; i < n_out; i++) cl_infer_tensor_free(&outs[i]);
    }
    for (size_t i = 0; i < n_in; i++) cl_infer_tensor_free(&ins[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* No planning run at load: fuzz_run makes the same run on zeros, but only
     * for small shapes (throughput); the plan is made after it. */
    cl_infer_options o = {
        .max_bytes = (size_t)1 << 20, .backend = CL_INFER_BACKEND_REFERENCE, .plan_on_first_run = true};
    cl_infer_model *m = NULL;
    cl_status rc = cl_infer_model_load(data, size, &o, &m);
    if (rc != CL_OK) {
        if (m != NULL || cl_error_message()[0] == '\0') __builtin_trap();
        return 0;
    }
    if (cl_infer_model_output_count(m) == 0) __builtin_trap();
    fuzz_run(m);
    if (cl_infer_model_peak_bytes(m) > o.max_bytes) __builtin_trap();
    cl_infer_model_free(m);
    /* The default backend's load also rewrites the graph (BatchNorm folding,
     * Relu fusion) on attacker-shaped graphs; it must load the same models. */
    cl_infer_options d = {.max_bytes = (size_t)1 << 20, .plan_on_first_run = true};
    m = NULL;
    if (cl_infer_model_load(data, size, &d, &m) != CL_OK) __builtin_trap();
    cl_infer_model_free(m);
    return 0;
}
