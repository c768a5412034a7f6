/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Concat on oneDNN's concat primitive, when at least one source is held in a
 * oneDNN layout (with plain sources only, the reference kernel's copies are
 * as fast); or nothing at all when the up-convolution feeding it wrote its
 * output already (dnn_conv.c).
 */
#include <stdlib.h>
#include <string.h>

#include "dnn.h"

/* A concat primitive, made for one set of source descriptors (shapes and
 * layouts): they are its key. */
typedef struct infer_dnn_concat_cache {
    infer_dnn_cache base;
    dnnl_memory_desc_t *in_mds;
    int n_in_mds;
} infer_dnn_concat_cache;

static void infer_dnn_concat_drop(cl_infer_model *m, infer_dnn_cache *base)
{
    (void)m;
    free(((infer_dnn_concat_cache *)base)->in_mds);
}

/* Concat of float tensors of rank 3-5 in whatever layouts they are held;
 * oneDNN picks the destination's layout (its concat copies each source into
 * its slice, reordering when the layouts differ). */
cl_status infer_dnn_concat(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                           bool *handled)
{
    cl_status rc = CL_OK;
    *handled = false;
    if (out[0]->data != NULL) {
        /* A ConvTranspose feeding this Concat wrote its output (infer_dnn_upconv_concat). */
        *handled = true;
        return CL_OK;
    }
    const cl_infer_tensor *x = in[0];
    if (n_in < 2 || n_in > 64 || x->dtype != CL_INFER_FLOAT || x->rank < 3 || x->rank > 5) return CL_OK;
    int64_t axis;
    CL_GUARD(infer_attr_int(c->node, "axis", 1, &axis));
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return CL_OK;
    bool any_layout = false;
    int64_t od[CL_INFER_MAX_RANK];
    memcpy(od, x->dims, sizeof(od));
    od[axis] = 0;
    for (int i = 0; i < n_in; i++) {
        const cl_infer_tensor *t = in[i];
        if (t == NULL || t->dtype != CL_INFER_FLOAT || t->rank != x->rank || cl_infer_tensor_count(t) == 0)
            return CL_OK;
        for (int j = 0; j < x->rank; j++)
            if (j != axis && t->dims[j] != x->dims[j]) return CL_OK; /* the reference reports it */
        od[axis] += t->dims[axis];
        any_layout |= infer_dnn_in_layout(c, i) != NULL;
    }
    /* Plain sources: the reference kernel's copies are as fast. */
    if (!any_layout) return CL_OK;
    /* The cache holds the sources' descriptors (shape and layout) instead of a key. */
    infer_dnn_concat_cache *k = *c->fast;
    bool same = k != NULL && k->base.kind == INFER_DNN_KIND_CONCAT && k->in_mds != NULL && k->n_in_mds == n_in;
    for (int i = 0; same && i < n_in; i++) {
        dnnl_memory_desc_t md;
        CL_GUARD(infer_dnn_in_md(c, i, in[i], &md));
        same = dnnl_memory_desc_equal(&md, &k->in_mds[i]) != 0;
    }
    if (!same) {
        /* New shapes or layouts: the primitive is made for one set. */
        infer_dnn_cache *base;
        CL_GUARD(infer_dnn_cache_new(c, INFER_DNN_KIND_CONCAT, sizeof(*k), infer_dnn_concat_drop, NULL, 0, &base));
        k = (infer_dnn_concat_cache *)base;
        k->in_mds = calloc((size_t)n_in, sizeof(*k->in_mds));
        CL_ENSURE_GOTO(k->in_mds != NULL, CL_ERR_NOMEM, "out of memory");
        k->n_in_mds = n_in;
        for (int i = 0; i < n_in; i++) CL_GUARD_GOTO(infer_dnn_in_md(c, i, in[i], &k->in_mds[i]));
        k->base.out_rank = x->rank;
        memcpy(k->base.out_dims, od, sizeof(od));
        dnnl_primitive_desc_t pd = NULL;
        dnnl_primitive_attr_t attr = NULL;
        CL_GUARD_GOTO(infer_dnn_attr_make(&attr));
        dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, NULL, n_in, (int)axis, k->in_mds, attr,
                                                             ((infer_dnn *)c->m->dnn)->eng);
        dnnl_primitive_attr_destroy(attr);
        if (st != dnnl_success) CL_FAIL_GOTO(CL_ERR_INTERNAL, "oneDNN concat descriptor failed (status %d)", (int)st);
        rc = infer_dnn_prim_finish(&k->base, pd);
        dnnl_primitive_desc_destroy(pd);
        CL_GUARD_GOTO(rc);
    }
    CL_GUARD(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, k->base.out_rank, k->base.out_dims,
                                    dnnl_memory_desc_get_size(&k->base.dst_md)));
    int src_args[64];
    for (int i = 0; i < n_in; i++) src_args[i] = DNNL_ARG_MULTIPLE_SRC + i;
    CL_GUARD(infer_dnn_exec_plain(c, &k->base, n_in, src_args, k->in_mds, (const cl_infer_tensor *const *)in, out[0]));
    infer_dnn_out_layout(c, 0, &k->base);
    *handled = true;
    return CL_OK;
out:
    infer_dnn_cache_drop(c);
    cl_error_clear();
    return CL_OK;
}
