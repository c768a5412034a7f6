/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The executor: runs the validated graph node by node in its (checked)
 * topological order. Each kernel infers its output shapes from its inputs'
 * actual shapes. Intermediates borrow their ranges of the memory plan's arena
 * (plan.c; made after the first run for a set of input shapes); the rest are
 * wiped and released to the pool right after their last reader.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "infer_internal.h"
#include "ops.h"

static CL_MUST_USE cl_status infer_input_check(const infer_value *v, const cl_infer_tensor *t)
{
    char got[160], want[160];
    CL_ENSURE(t->dtype == v->decl_dtype, CL_ERR_USAGE, "input '%s' is %s; the model expects %s", v->name,
              cl_infer_dtype_name(t->dtype), cl_infer_dtype_name(v->decl_dtype));
    CL_ENSURE(t->rank >= 0 && t->rank <= CL_INFER_MAX_RANK, CL_ERR_USAGE, "input '%s' has rank %d", v->name, t->rank);
    size_t count;
    CL_GUARD_CTX(infer_shape_count(t->rank, t->dims, &count), "input '%s'", v->name);
    CL_ENSURE(t->data != NULL || count == 0, CL_ERR_USAGE, "input '%s' has no data", v->name);
    CL_ENSURE(t->nbytes == count * cl_infer_dtype_size(t->dtype), CL_ERR_USAGE,
              "input '%s' holds %zu bytes; its shape %s needs %zu", v->name, t->nbytes,
              infer_shape_str(t, got, sizeof(got)), count * cl_infer_dtype_size(t->dtype));
    if (v->decl_rank < 0) return CL_OK;
    cl_infer_tensor decl = {.rank = v->decl_rank};
    memcpy(decl.dims, v->decl_dims, sizeof(decl.dims));
    bool ok = t->rank == v->decl_rank;
    for (int d = 0; ok && d < t->rank; d++) ok = v->decl_dims[d] < 0 || v->decl_dims[d] == t->dims[d];
    CL_ENSURE(ok, CL_ERR_USAGE, "input '%s' has shape %s; the model declares %s (-1: any)", v->name,
              infer_shape_str(t, got, sizeof(got)), infer_shape_str(&decl, want, sizeof(want)));
    return CL_OK;
}

/* Releases a run's values, keeping initializers; borrowed inputs are only forgotten. */
static void infer_run_cleanup(cl_infer_model *m)
{
    for (size_t i = 0; i < m->n_values; i++) {
        if (m->values[i].is_init) continue;
        infer_tensor_release(&m->mem, &m->values[i].t);
        m->values[i].layout = NULL;
    }
}

/* A Conv with a fused Add (model.c) that oneDNN did not take: the reference
 * convolution, then the Add node's own kernel on the operands in its order. */
static CL_MUST_USE cl_status infer_conv_add_reference(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor *y)
{
    cl_status rc = CL_OK;
    const infer_node *add = &c->m->nodes[c->node->add_node];
    cl_infer_tensor conv = {0};
    cl_infer_tensor *conv_out = &conv, *ops[2];
    CL_GUARD_GOTO(c->node->def->run(c, in, 3, &conv_out, 1));
    int s = add->in[0] == c->node->in[3] ? 0 : 1;
    ops[s] = in[3];
    ops[1 - s] = &conv;
    infer_ctx ca = *c;
    ca.node = add;
    ca.fast = NULL;
    CL_GUARD_GOTO(infer_op_binary(&ca, ops, 2, &y, 1));
out:
    infer_tensor_release(c->mem, &conv);
    return rc;
}

static CL_MUST_USE cl_status infer_node_run(cl_infer_model *m, size_t idx)
{
    const infer_node *n = &m->nodes[idx];
    cl_infer_tensor *inl[64], *outl[4] = {NULL};
    cl_infer_tensor **in = inl;
    cl_status rc = CL_OK;
    if (n->n_in > 64) {
        in = calloc((size_t)n->n_in,
                    sizeof(cl_infer_tensor *)); // NOLINT(bugprone-sizeof-expression): an array of pointers
        CL_ENSURE(in != NULL, CL_ERR_NOMEM, "out of memory running node '%s'", n->name);
    }
    for (int i = 0; i < n->n_in; i++) in[i] = n->in[i] >= 0 ? &m->values[n->in[i]].t : NULL;
    for (int i = 0; i < n->n_out; i++) outl[i] = n->out[i] >= 0 ? &m->values[n->out[i]].t : NULL;
    infer_ctx c = {m, n, &m->mem, m->opset, m->fast ? &m->fast[idx] : NULL};
    bool handled = false;
    bool fast = m->use_onednn && n->def->fast != NULL;
    if (fast && n->def->any_layout) rc = n->def->fast(&c, in, n->n_in, outl, n->n_out, &handled);
    /* Every other kernel reads plain row-major data: inputs a oneDNN kernel
     * left in its own layout are reordered first (in place, so later readers
     * get the plain copy too). */
    for (int i = 0; rc == CL_OK && !handled && i < n->n_in; i++)
        if (n->in[i] >= 0) rc = infer_dnn_to_plain(m, &m->values[n->in[i]]);
    if (rc == CL_OK && !handled && fast && !n->def->any_layout)
        rc = n->def->fast(&c, in, n->n_in, outl, n->n_out, &handled);
    if (rc == CL_OK && !handled) {
        rc = n->fuse_add ? infer_conv_add_reference(&c, in, outl[0]) : n->def->run(&c, in, n->n_in, outl, n->n_out);
        if (rc == CL_OK && n->fuse_relu && outl[0] != NULL && outl[0]->dtype == CL_INFER_FLOAT) {
            float *y = outl[0]->data;
            size_t cnt = cl_infer_tensor_count(outl[0]);
            for (size_t i = 0; i < cnt; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        }
    }
    m->fast_runs += handled;
    if (rc != CL_OK) rc = cl_error_wrap("node '%s' (%s)", n->name, n->op);
    if (in != inl) free(in);
    return rc;
}

static double infer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void infer_profile_add(cl_infer_model *m, const infer_node *n, double ms, bool fast)
{
    if (m->prof == NULL) {
        m->prof = calloc(infer_op_count(), sizeof(*m->prof));
        if (m->prof == NULL) return; /* profiling is best effort */
    }
    size_t i = 0;
    while (i < m->n_prof && m->prof[i].op != n->def->name) i++;
    if (i == m->n_prof) {
        if (m->n_prof == infer_op_count()) return;
        m->prof[m->n_prof++].op = n->def->name;
    }
    m->prof[i].runs++;
    m->prof[i].fast += fast;
    m->prof[i].ms += ms;
}

bool cl_infer_model_profile(const cl_infer_model *m, size_t i, const char **op, size_t *runs, double *ms,
                            size_t *fast_runs)
{
    if (i >= m->n_prof) return false;
    *op = m->prof[i].op;
    *runs = m->prof[i].runs;
    *ms = m->prof[i].ms;
    *fast_runs = m->prof[i].fast;
    return true;
}

cl_status cl_infer_run(cl_infer_model *m, const cl_infer_tensor *inputs, size_t n_inputs, cl_infer_tensor *outputs,
                       size_t n_outputs)
{
    cl_status rc = CL_OK;
    CL_ENSURE(n_inputs == m->n_inputs, CL_ERR_USAGE, "the model takes %zu inputs; %zu given", m->n_inputs, n_inputs);
    CL_ENSURE(n_outputs == m->n_outputs, CL_ERR_USAGE, "the model has %zu outputs; room for %zu given", m->n_outputs,
              n_outputs);
    for (size_t i = 0; i < n_outputs; i++) memset(&outputs[i], 0, sizeof(outputs[i]));
    for (size_t i = 0; i < n_inputs; i++) {
        infer_value *v = &m->values[m->inputs[i]];
        CL_GUARD_GOTO(infer_input_check(v, &inputs[i]));
        v->t = inputs[i];
        v->t.borrowed = true;
    }
    infer_plan_begin(m, inputs);
    for (size_t i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].skip) continue;
        double t0 = m->profile ? infer_now_ms() : 0;
        size_t fast_before = m->fast_runs;
        infer_plan_node(m, i);
        rc = infer_node_run(m, i);
        infer_plan_node_done(m, i);
        CL_GUARD_GOTO(rc);
        if (m->profile) infer_profile_add(m, &m->nodes[i], infer_now_ms() - t0, m->fast_runs != fast_before);
        const infer_node *n = &m->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            infer_value *v = n->out[k] >= 0 ? &m->values[n->out[k]] : NULL;
            if (v != NULL && v->last_use < 0 && !v->is_output) infer_tensor_release(&m->mem, &v->t);
        }
        for (int k = 0; k < n->n_in; k++) {
            infer_value *v = n->in[k] >= 0 ? &m->values[n->in[k]] : NULL;
            if (v != NULL && v->last_use == (int)i && !v->is_init && !v->is_output)
                infer_tensor_release(&m->mem, &v->t);
        }
    }
    for (size_t i = 0; i < n_outputs; i++) {
        infer_value *v = &m->values[m->outputs[i]];
        /* The caller gets plain row-major data, whatever layout oneDNN left. */
        CL_GUARD_GOTO(infer_dnn_to_plain(m, v));
        if (!v->is_init && !v->t.borrowed && v->t.data != NULL) {
            /* Hand the tensor over: it leaves the model's accounting. */
            m->mem.used -= v->t.nbytes;
            outputs[i] = v->t;
            memset(&v->t, 0, sizeof(v->t));
            continue;
        }
        CL_GUARD_GOTO(cl_infer_tensor_alloc(&outputs[i], v->t.dtype, v->t.rank, v->t.dims));
        if (v->t.nbytes && outputs[i].data != NULL && v->t.data != NULL)
            memcpy(outputs[i].data, v->t.data, v->t.nbytes);
    }
out:
    m->mem.n_slot = 0;
    infer_run_cleanup(m);
    if (rc == CL_OK) infer_plan_make(m, inputs);
    if (rc != CL_OK)
        for (size_t i = 0; i < n_outputs; i++) cl_infer_tensor_free(&outputs[i]);
    return rc;
}
