/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading a model: the loader builds and validates it (model.c); then, when
 * every input's shape is declared and fixed, one run on zeros of those shapes
 * (exec.c) makes the memory plan (plan.c), oneDNN's primitives and its
 * reordered weights, so the first real request runs as fast as the next. It
 * sits above both the loader and the executor, which know nothing of it.
 */
#include <stdlib.h>

#include "cloister/log.h"

#include "infer_internal.h"

/* Zeros of every input's declared shape, when all are declared and fixed, and
 * no bigger than the model's memory cap. */
static bool plan_load_inputs(const cl_infer_model *m, cl_infer_tensor *in)
{
    size_t total = 0;
    for (size_t i = 0; i < m->n_inputs; i++) {
        const infer_value *v = &m->values[m->inputs[i]];
        size_t es = cl_infer_dtype_size(v->decl_dtype), n = 1;
        if (v->decl_rank < 0 || es == 0) return false;
        for (int d = 0; d < v->decl_rank; d++) {
            if (v->decl_dims[d] <= 0 || (size_t)v->decl_dims[d] > m->mem.max / es / n) return false;
            n *= (size_t)v->decl_dims[d];
        }
        if (n * es > m->mem.max - total) return false;
        total += n * es;
        if (cl_infer_tensor_alloc(&in[i], v->decl_dtype, v->decl_rank, v->decl_dims) != CL_OK) {
            cl_error_clear();
            return false;
        }
    }
    return true;
}

/* The planning run. Fails only when that run exceeds the memory cap (every run
 * of those shapes would); any other failure leaves the plan to the first run,
 * as for symbolic shapes. */
static CL_MUST_USE cl_status infer_plan_at_load(cl_infer_model *m)
{
    cl_status rc = CL_OK;
    cl_infer_tensor *in = calloc(m->n_inputs ? m->n_inputs : 1, sizeof(*in));
    cl_infer_tensor *out = calloc(m->n_outputs ? m->n_outputs : 1, sizeof(*out));
    CL_ENSURE_GOTO(in != NULL && out != NULL, CL_ERR_NOMEM, "out of memory planning the model");
    if (m->n_inputs > 0 && plan_load_inputs(m, in)) {
        /* The caller's profile and counters start with the caller's runs. */
        bool profile = m->profile;
        m->profile = false;
        cl_status st = cl_infer_run(m, in, m->n_inputs, out, m->n_outputs);
        m->profile = profile;
        m->fast_runs = 0;
        for (size_t i = 0; i < m->n_outputs; i++) cl_infer_tensor_free(&out[i]);
        if (st == CL_ERR_LIMIT || st == CL_ERR_NOMEM) {
            /* Every run of these shapes would need as much: say so now. */
            rc = cl_error_wrap("running the model on zeros of its declared input shapes (to plan its memory)");
        } else if (st != CL_OK) {
            CL_LOG_DEBUG("no memory plan at load: the run on zeros failed (%s); the first run makes it",
                         cl_error_message());
            cl_error_clear();
        }
    }
out:
    if (in != NULL)
        for (size_t i = 0; i < m->n_inputs; i++) cl_infer_tensor_free(&in[i]);
    free(in);
    free(out);
    return rc;
}

cl_status cl_infer_model_load(const void *bytes, size_t len, const cl_infer_options *opts, cl_infer_model **out)
{
    cl_status rc = CL_OK;
    cl_infer_model *m = NULL;
    *out = NULL;
    CL_GUARD(infer_model_build(bytes, len, opts, &m));
    if (!(opts && opts->plan_on_first_run)) CL_GUARD_GOTO(infer_plan_at_load(m));
    CL_LOG_DEBUG("loaded ONNX model: opset %lld, %zu nodes, %zu values, %zu bytes held", (long long)m->opset,
                 m->n_nodes, m->n_values, m->mem.used);
    *out = m;
    m = NULL;
out:
    cl_infer_model_free(m);
    return rc;
}
