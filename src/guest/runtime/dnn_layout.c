/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Layouts and reorders on the oneDNN path. Convolutions, pooling, concat and
 * the single-source ops leave their output in the layout oneDNN chose
 * (channels-last or channel-blocked), named by value->layout, and read their
 * inputs in whatever layout the producer left, so a chain of them reorders
 * activations only at the graph's edges: the executor reorders a value to
 * plain for every other reader and before handing it out (infer_dnn_to_plain).
 * Weights go to the layout the primitive chooses, reordered once per model
 * when they are initializers.
 */
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "dnn.h"

static const dnnl_format_tag_t infer_dnn_plain[] = {dnnl_a,    dnnl_a,     dnnl_ab,    dnnl_abc,
                                                    dnnl_abcd, dnnl_abcde, dnnl_abcdef};

dnnl_format_tag_t infer_dnn_plain_tag(int ndims) { return infer_dnn_plain[ndims]; }

void infer_dnn_dims(dnnl_dims_t out, int rank, const int64_t *dims)
{
    for (int i = 0; i < rank; i++) out[i] = dims[i];
}

bool infer_dnn_md_is_plain(const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t plain;
    if (md->ndims < 1 || md->ndims > 6 ||
        dnnl_memory_desc_init_by_tag(&plain, md->ndims, md->dims, md->data_type, infer_dnn_plain_tag(md->ndims)) !=
            dnnl_success)
        return false;
    return dnnl_memory_desc_equal(md, &plain) != 0;
}

bool infer_dnn_input_is_init(const infer_ctx *c, int i)
{
    int v = c->node->in[i];
    return v >= 0 && c->m->values[v].is_init;
}

const dnnl_memory_desc_t *infer_dnn_in_layout(const infer_ctx *c, int i)
{
    int v = c->node->in[i];
    return v >= 0 ? c->m->values[v].layout : NULL;
}

cl_status infer_dnn_in_md(const infer_ctx *c, int i, const cl_infer_tensor *t, dnnl_memory_desc_t *md)
{
    const dnnl_memory_desc_t *lay = infer_dnn_in_layout(c, i);
    if (lay != NULL) {
        *md = *lay;
        return CL_OK;
    }
    dnnl_dims_t dims;
    infer_dnn_dims(dims, t->rank, t->dims);
    if (dnnl_memory_desc_init_by_tag(md, t->rank, dims, dnnl_f32, infer_dnn_plain_tag(t->rank)) != dnnl_success)
        CL_FAIL(CL_ERR_INTERNAL, "oneDNN memory descriptor of a %d-D tensor", t->rank);
    return CL_OK;
}

void infer_dnn_out_layout(const infer_ctx *c, int i, const infer_dnn_cache *k)
{
    int v = c->node->out[i];
    if (v >= 0) c->m->values[v].layout = k->dst_plain ? NULL : &k->dst_md;
}

cl_status infer_dnn_reorder_make(infer_dnn *d, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                 dnnl_primitive_t *out)
{
    cl_status rc = CL_OK;
    dnnl_primitive_desc_t rpd = NULL;
    INFER_DNN_TRY(dnnl_reorder_primitive_desc_create(&rpd, from, d->eng, to, d->eng, NULL), "reorder descriptor");
    INFER_DNN_TRY(dnnl_primitive_create(out, rpd), "reorder creation");
out:
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return rc;
}

cl_status infer_dnn_reorder_run(infer_dnn *d, dnnl_primitive_t r, const dnnl_memory_desc_t *from_md, void *from,
                                const dnnl_memory_desc_t *to_md, void *to)
{
    cl_status rc = CL_OK;
    dnnl_memory_t mf = NULL, mt = NULL;
    INFER_DNN_TRY(dnnl_memory_create(&mf, from_md, d->eng, from), "memory");
    INFER_DNN_TRY(dnnl_memory_create(&mt, to_md, d->eng, to), "memory");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mf}, {DNNL_ARG_TO, mt}};
    INFER_DNN_TRY(dnnl_primitive_execute(r, d->stream, 2, args), "reorder");
out:
    if (mf) dnnl_memory_destroy(mf);
    if (mt) dnnl_memory_destroy(mt);
    return rc;
}

cl_status infer_dnn_to_plain(cl_infer_model *m, infer_value *v)
{
    cl_status rc = CL_OK;
    const dnnl_memory_desc_t *lay = v->layout;
    if (lay == NULL) return CL_OK;
    if (v->t.data == NULL) {
        v->layout = NULL;
        return CL_OK;
    }
    infer_dnn *d = m->dnn;
    cl_infer_tensor plain = {0};
    dnnl_primitive_t r = NULL;
    dnnl_memory_desc_t to;
    dnnl_dims_t dims;
    infer_dnn_dims(dims, v->t.rank, v->t.dims);
    INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&to, v->t.rank, dims, dnnl_f32, infer_dnn_plain_tag(v->t.rank)),
                  "memory descriptor");
    CL_GUARD_GOTO(infer_tensor_new(&m->mem, &plain, v->t.dtype, v->t.rank, v->t.dims));
    infer_dnn_threads(m);
    CL_GUARD_GOTO(infer_dnn_reorder_make(d, lay, &to, &r));
    CL_GUARD_GOTO(infer_dnn_reorder_run(d, r, lay, v->t.data, &to, plain.data));
    INFER_DNN_TRY(dnnl_stream_wait(d->stream), "reorder");
    infer_tensor_release(&m->mem, &v->t);
    v->t = plain;
    v->layout = NULL;
    memset(&plain, 0, sizeof(plain));
out:
    if (r) dnnl_primitive_destroy(r);
    infer_tensor_release(&m->mem, &plain);
    if (rc != CL_OK) rc = cl_error_wrap("reordering '%s' to plain layout", v->name);
    return rc;
}

cl_status infer_dnn_weights_ready(infer_ctx *c, infer_dnn_weights *w, const cl_infer_tensor *wt, void **wp)
{
    cl_status rc = CL_OK;
    infer_dnn *d = c->m->dnn;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    *wp = wt->data;
    if (!w->reorder) return CL_OK;
    if (w->buf != NULL && w->from == wt->data && infer_dnn_input_is_init(c, 1)) {
        *wp = w->buf;
        return CL_OK;
    }
    if (w->buf == NULL) {
        size_t bytes = dnnl_memory_desc_get_size(&w->md);
        CL_ENSURE(bytes <= c->mem->max && c->mem->used <= c->mem->max - bytes, CL_ERR_LIMIT,
                  "reordering %zu bytes of weights would exceed the model's memory cap of %zu bytes", bytes,
                  c->mem->max);
        w->buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
        CL_ENSURE(w->buf != NULL, CL_ERR_NOMEM, "out of memory reordering weights");
        w->bytes = bytes;
        c->mem->used += bytes;
        if (c->mem->used > c->mem->peak) c->mem->peak = c->mem->used;
    }
    INFER_DNN_TRY(dnnl_reorder_primitive_desc_create(&rpd, &w->user_md, d->eng, &w->md, d->eng, NULL),
                  "weights reorder");
    INFER_DNN_TRY(dnnl_primitive_create(&r, rpd), "weights reorder");
    INFER_DNN_TRY(dnnl_memory_create(&from, &w->user_md, d->eng, wt->data), "memory");
    INFER_DNN_TRY(dnnl_memory_create(&to, &w->md, d->eng, w->buf), "memory");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    INFER_DNN_TRY(dnnl_primitive_execute(r, d->stream, 2, args), "weights reorder");
    INFER_DNN_TRY(dnnl_stream_wait(d->stream), "weights reorder");
    w->from = wt->data;
    *wp = w->buf;
out:
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return rc;
}

cl_status infer_dnn_weights_alloc(infer_ctx *c, size_t bytes, void **p)
{
    size_t alloc = (bytes + 63) / 64 * 64;
    CL_ENSURE(alloc <= c->mem->max && c->mem->used <= c->mem->max - alloc, CL_ERR_LIMIT,
              "reordering %zu bytes of weights would exceed the model's memory cap of %zu bytes", bytes, c->mem->max);
    *p = aligned_alloc(64, alloc);
    CL_ENSURE(*p != NULL, CL_ERR_NOMEM, "out of memory reordering weights");
    c->mem->used += bytes;
    if (c->mem->used > c->mem->peak) c->mem->peak = c->mem->used;
    return CL_OK;
}

void infer_dnn_weights_free(cl_infer_model *m, infer_dnn_weights *w)
{
    if (w->buf == NULL) return;
    cl_memzero(w->buf, w->bytes);
    free(w->buf);
    m->mem.used -= w->bytes;
    w->buf = NULL;
}
