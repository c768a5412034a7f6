/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The core of the oneDNN path: one engine and stream per model, the working
 * buffers, and each node's cached primitive (cl_infer_model.fast[node]),
 * created on first use and kept while the input shapes (and layouts) stay the
 * same; and the making and running of the two families of primitives the
 * kinds use: with weights, between reorders of their source and destination
 * (convolution, deconvolution, matmul), and without (pooling, eltwise,
 * softmax, batch normalization, concat). Configurations a kind does not cover
 * fall back to the reference kernels, which tests also use to check this
 * path.
 */
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "dnn.h"

bool cl_infer_onednn_available(void) { return true; }

static void infer_dnn_slot_release(infer_mem *mem, infer_dnn_slot *s)
{
    if (s->p == NULL) return;
    cl_memzero(s->p, s->cap);
    free(s->p);
    mem->used -= s->cap;
    s->p = NULL;
    s->cap = 0;
}

cl_status infer_dnn_init(cl_infer_model *m)
{
    cl_status rc = CL_OK;
    infer_dnn *d = calloc(1, sizeof(*d));
    CL_ENSURE(d != NULL, CL_ERR_NOMEM, "out of memory");
    m->dnn = d;
    INFER_DNN_TRY(dnnl_engine_create(&d->eng, dnnl_cpu, 0), "engine creation");
    INFER_DNN_TRY(dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags), "stream creation");
out:
    return rc;
}

void infer_dnn_free(cl_infer_model *m)
{
    for (size_t i = 0; m->fast != NULL && i < m->n_nodes; i++) {
        infer_dnn_cache_free(m, m->fast[i]);
        m->fast[i] = NULL;
    }
    infer_dnn *d = m->dnn;
    if (d == NULL) return;
    for (int i = 0; i < INFER_DNN_SLOTS; i++) infer_dnn_slot_release(&m->mem, &d->slots[i]);
    if (d->stream) dnnl_stream_destroy(d->stream);
    if (d->eng) dnnl_engine_destroy(d->eng);
    free(d);
    m->dnn = NULL;
}

/* --- a node's cached primitive ------------------------------------------- */

void infer_dnn_cache_free(cl_infer_model *m, infer_dnn_cache *k)
{
    if (k == NULL) return;
    if (k->prim) dnnl_primitive_destroy(k->prim);
    if (k->drop != NULL) k->drop(m, k);
    free(k);
}

void infer_dnn_cache_drop(infer_ctx *c)
{
    infer_dnn_cache_free(c->m, *c->fast);
    *c->fast = NULL;
}

void infer_dnn_key_add(int64_t *key, size_t *n, const cl_infer_tensor *t)
{
    key[(*n)++] = t ? t->rank : -1;
    for (int i = 0; t && i < t->rank; i++) key[(*n)++] = t->dims[i];
}

infer_dnn_cache *infer_dnn_cache_find(infer_ctx *c, infer_dnn_kind kind, const int64_t *key, size_t key_n)
{
    infer_dnn_cache *k = *c->fast;
    if (k != NULL && k->kind == kind && k->key_n == key_n && memcmp(k->key, key, key_n * sizeof(int64_t)) == 0)
        return k;
    /* Not dropped here: a node may ask for one kind and then run another (ConvTranspose
     * asks for the up-convolution first), and the other's cache must survive that
     * question. infer_dnn_cache_new replaces it when a new one is made. */
    return NULL;
}

cl_status infer_dnn_cache_new(infer_ctx *c, infer_dnn_kind kind, size_t size,
                              void (*drop)(cl_infer_model *m, infer_dnn_cache *k), const int64_t *key, size_t key_n,
                              infer_dnn_cache **out)
{
    *out = NULL;
    CL_ENSURE(key_n <= INFER_DNN_KEY_MAX, CL_ERR_INTERNAL, "a oneDNN cache key of %zu values; at most %d", key_n,
              INFER_DNN_KEY_MAX);
    infer_dnn_cache_drop(c);
    infer_dnn_cache *k = calloc(1, size);
    CL_ENSURE(k != NULL, CL_ERR_NOMEM, "out of memory");
    *c->fast = k;
    c->m->dnn_caches_made++;
    k->kind = kind;
    k->drop = drop;
    if (key_n) memcpy(k->key, key, key_n * sizeof(int64_t));
    k->key_n = key_n;
    *out = k;
    return CL_OK;
}

/* --- working buffers ------------------------------------------------------ */

cl_status infer_dnn_slot_get(infer_ctx *c, int slot, const dnnl_memory_desc_t *md, void **p)
{
    infer_dnn_slot *s = &((infer_dnn *)c->m->dnn)->slots[slot];
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (bytes > s->cap) {
        infer_dnn_slot_release(c->mem, s);
        size_t alloc = (bytes + 63) / 64 * 64;
        CL_ENSURE(alloc <= c->mem->max && c->mem->used <= c->mem->max - alloc, CL_ERR_LIMIT,
                  "a %zu-byte oneDNN buffer would exceed the model's memory cap of %zu bytes", alloc, c->mem->max);
        s->p = aligned_alloc(64, alloc);
        CL_ENSURE(s->p != NULL, CL_ERR_NOMEM, "out of memory for a %zu-byte oneDNN buffer", alloc);
        s->cap = alloc;
        c->mem->used += alloc;
        if (c->mem->used > c->mem->peak) c->mem->peak = c->mem->used;
    }
    *p = s->p;
    return CL_OK;
}

/* --- attributes and implementations --------------------------------------- */

cl_status infer_dnn_attr_make(dnnl_primitive_attr_t *attr)
{
    cl_status rc = CL_OK;
    *attr = NULL;
    INFER_DNN_TRY(dnnl_primitive_attr_create(attr), "attributes");
    INFER_DNN_TRY(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "attributes");
out:
    if (rc != CL_OK && *attr != NULL) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return rc;
}

/* The node's primitive attributes: a user-mode scratchpad and its fused
 * post-ops. Relu(conv + S): the sum reads dst, which holds S on entry. */
static CL_MUST_USE cl_status infer_dnn_node_attr(const infer_ctx *c, dnnl_primitive_attr_t *attr)
{
    cl_status rc = CL_OK;
    dnnl_post_ops_t po = NULL;
    CL_GUARD(infer_dnn_attr_make(attr));
    if (c->node->fuse_relu || c->node->fuse_add) {
        INFER_DNN_TRY(dnnl_post_ops_create(&po), "post-ops");
        if (c->node->fuse_add) INFER_DNN_TRY(dnnl_post_ops_append_sum(po, 1.0f), "post-ops");
        if (c->node->fuse_relu)
            INFER_DNN_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "post-ops");
        INFER_DNN_TRY(dnnl_primitive_attr_set_post_ops(*attr, po), "attributes");
    }
out:
    if (po) dnnl_post_ops_destroy(po);
    if (rc != CL_OK) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return rc;
}

bool infer_dnn_impl_is_ref(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)&impl) != dnnl_success || impl == NULL)
        return true;
    return strncmp(impl, "ref", 3) == 0;
}

bool infer_dnn_desc_has_fast_impl(const infer_ctx *c, const_dnnl_op_desc_t desc)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = false;
    if (infer_dnn_node_attr(c, &attr) != CL_OK) {
        cl_error_clear();
        return false;
    }
    if (dnnl_primitive_desc_create(&pd, desc, attr, ((infer_dnn *)c->m->dnn)->eng, NULL) == dnnl_success) {
        ok = !infer_dnn_impl_is_ref(pd);
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_primitive_attr_destroy(attr);
    return ok;
}

/* --- primitives with weights ---------------------------------------------- */

cl_status infer_dnn_prim_make(infer_ctx *c, infer_dnn_cache *k, infer_dnn_wprim *p, const_dnnl_op_desc_t desc,
                              bool keep_dst)
{
    cl_status rc = CL_OK;
    infer_dnn *d = c->m->dnn;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    CL_GUARD_GOTO(infer_dnn_node_attr(c, &attr));
    INFER_DNN_TRY(dnnl_primitive_desc_create(&pd, desc, attr, d->eng, NULL), "primitive descriptor");
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    CL_ENSURE_GOTO(w != NULL && src != NULL && dst != NULL, CL_ERR_INTERNAL,
                   "oneDNN primitive lacks a memory descriptor");
    p->w.md = *w;
    p->w.reorder = !dnnl_memory_desc_equal(&p->w.md, &p->w.user_md);
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    k->has_sp = sp != NULL && dnnl_memory_desc_get_size(sp) > 0;
    if (k->has_sp) k->sp_md = *sp;
    p->src_user_md = k->src_md;
    p->dst_user_md = k->dst_md;
    k->src_md = *src;
    k->dst_md = *dst;
    if (!dnnl_memory_desc_equal(&k->src_md, &p->src_user_md))
        CL_GUARD_GOTO(infer_dnn_reorder_make(d, &p->src_user_md, &k->src_md, &p->src_reorder));
    p->src_plain_md = p->src_user_md;
    k->dst_plain = infer_dnn_md_is_plain(&k->dst_md);
    /* keep_dst: the output stays in the primitive's layout for the next reader. */
    if (!keep_dst && !dnnl_memory_desc_equal(&k->dst_md, &p->dst_user_md))
        CL_GUARD_GOTO(infer_dnn_reorder_make(d, &k->dst_md, &p->dst_user_md, &p->dst_reorder));
    if (keep_dst) p->dst_user_md = k->dst_md;
    INFER_DNN_TRY(dnnl_primitive_create(&k->prim, pd), "primitive creation");
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

cl_status infer_dnn_run(infer_ctx *c, infer_dnn_cache *k, infer_dnn_wprim *p, const void *src, const void *w,
                        const void *b, void *dst, int arg_src, int arg_w)
{
    cl_status rc = CL_OK;
    infer_dnn *d = c->m->dnn;
    dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL, msp = NULL;
    void *bsrc = NULL, *bdst = NULL, *sp = NULL, *user_dst = dst;
    infer_dnn_threads(c->m);
    if (p->src_reorder != NULL) {
        CL_GUARD_GOTO(infer_dnn_slot_get(c, INFER_DNN_SLOT_SRC, &k->src_md, &bsrc));
        CL_GUARD_GOTO(infer_dnn_reorder_run(d, p->src_reorder, &p->src_user_md, CL_UNCONST(src), &k->src_md, bsrc));
        src = bsrc;
    }
    if (p->dst_reorder != NULL) {
        CL_GUARD_GOTO(infer_dnn_slot_get(c, INFER_DNN_SLOT_DST, &k->dst_md, &bdst));
        dst = bdst;
    }
    INFER_DNN_TRY(dnnl_memory_create(&ms, &k->src_md, d->eng, CL_UNCONST(src)), "memory");
    INFER_DNN_TRY(dnnl_memory_create(&mw, &p->w.md, d->eng, CL_UNCONST(w)), "memory");
    INFER_DNN_TRY(dnnl_memory_create(&md, &k->dst_md, d->eng, dst), "memory");
    dnnl_exec_arg_t args[5] = {{arg_src, ms}, {arg_w, mw}, {DNNL_ARG_DST, md}};
    int n = 3;
    if (p->has_bias) {
        INFER_DNN_TRY(dnnl_memory_create(&mb, &p->b_md, d->eng, CL_UNCONST(b)), "memory");
        args[n].arg = DNNL_ARG_BIAS;
        args[n++].memory = mb;
    }
    if (k->has_sp) {
        CL_GUARD_GOTO(infer_dnn_slot_get(c, INFER_DNN_SLOT_SCRATCHPAD, &k->sp_md, &sp));
        INFER_DNN_TRY(dnnl_memory_create(&msp, &k->sp_md, d->eng, sp), "memory");
        args[n].arg = DNNL_ARG_SCRATCHPAD;
        args[n++].memory = msp;
    }
    INFER_DNN_TRY(dnnl_primitive_execute(k->prim, d->stream, n, args), "execution");
    if (p->dst_reorder != NULL)
        CL_GUARD_GOTO(infer_dnn_reorder_run(d, p->dst_reorder, &k->dst_md, bdst, &p->dst_user_md, user_dst));
    INFER_DNN_TRY(dnnl_stream_wait(d->stream), "execution");
out:
    if (msp) dnnl_memory_destroy(msp);
    if (ms) dnnl_memory_destroy(ms);
    if (mw) dnnl_memory_destroy(mw);
    if (mb) dnnl_memory_destroy(mb);
    if (md) dnnl_memory_destroy(md);
    return rc;
}

void infer_dnn_wprim_free(cl_infer_model *m, infer_dnn_wprim *p)
{
    if (p->src_reorder) dnnl_primitive_destroy(p->src_reorder);
    if (p->dst_reorder) dnnl_primitive_destroy(p->dst_reorder);
    p->src_reorder = p->dst_reorder = NULL;
    infer_dnn_weights_free(m, &p->w);
}

/* --- primitives without weights ------------------------------------------- */

cl_status infer_dnn_prim_finish(infer_dnn_cache *k, const_dnnl_primitive_desc_t pd)
{
    cl_status rc = CL_OK;
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    CL_ENSURE_GOTO(dst != NULL, CL_ERR_INTERNAL, "oneDNN primitive lacks a destination descriptor");
    k->dst_md = *dst;
    k->dst_plain = infer_dnn_md_is_plain(dst);
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    k->has_sp = sp != NULL && dnnl_memory_desc_get_size(sp) > 0;
    if (k->has_sp) k->sp_md = *sp;
    INFER_DNN_TRY(dnnl_primitive_create(&k->prim, pd), "primitive creation");
out:
    return rc;
}

cl_status infer_dnn_exec_plain(infer_ctx *c, infer_dnn_cache *k, int n_src, const int *src_args,
                               const dnnl_memory_desc_t *mds, const cl_infer_tensor *const *srcs, cl_infer_tensor *out)
{
    cl_status rc = CL_OK;
    infer_dnn *d = c->m->dnn;
    enum { MAX_ARGS = 66 };
    dnnl_memory_t mems[MAX_ARGS] = {0};
    dnnl_exec_arg_t args[MAX_ARGS];
    int n = 0;
    void *sp = NULL;
    CL_ENSURE(n_src + 2 <= MAX_ARGS, CL_ERR_INTERNAL, "too many oneDNN arguments");
    infer_dnn_threads(c->m);
    for (int i = 0; i < n_src; i++) {
        const dnnl_memory_desc_t *md = mds ? &mds[i] : &k->src_md;
        INFER_DNN_TRY(dnnl_memory_create(&mems[n], md, d->eng, srcs[i]->data), "memory");
        args[n].arg = src_args[i];
        args[n].memory = mems[n];
        n++;
    }
    INFER_DNN_TRY(dnnl_memory_create(&mems[n], &k->dst_md, d->eng, out->data), "memory");
    args[n].arg = DNNL_ARG_DST;
    args[n].memory = mems[n];
    n++;
    if (k->has_sp) {
        CL_GUARD_GOTO(infer_dnn_slot_get(c, INFER_DNN_SLOT_SCRATCHPAD, &k->sp_md, &sp));
        INFER_DNN_TRY(dnnl_memory_create(&mems[n], &k->sp_md, d->eng, sp), "memory");
        args[n].arg = DNNL_ARG_SCRATCHPAD;
        args[n].memory = mems[n];
        n++;
    }
    INFER_DNN_TRY(dnnl_primitive_execute(k->prim, d->stream, n, args), "execution");
    INFER_DNN_TRY(dnnl_stream_wait(d->stream), "execution");
out:
    for (int i = 0; i < n; i++) dnnl_memory_destroy(mems[i]);
    return rc;
}

infer_dnn_cache *infer_dnn_single_lookup(infer_ctx *c, infer_dnn_kind kind, const cl_infer_tensor *x,
                                         const dnnl_memory_desc_t *src, const int64_t *extra, size_t n_extra,
                                         int64_t *key, size_t *key_n)
{
    *key_n = 0;
    infer_dnn_key_add(key, key_n, x);
    for (size_t i = 0; i < n_extra; i++) key[(*key_n)++] = extra[i];
    infer_dnn_cache *k = infer_dnn_cache_find(c, kind, key, *key_n);
    if (k != NULL && !dnnl_memory_desc_equal(&k->src_md, src)) {
        infer_dnn_cache_drop(c);
        k = NULL;
    }
    return k;
}

cl_status infer_dnn_single_make(infer_ctx *c, infer_dnn_kind kind, size_t size,
                                void (*drop)(cl_infer_model *m, infer_dnn_cache *k), const dnnl_memory_desc_t *src,
                                const int64_t *key, size_t key_n, int out_rank, const int64_t *od,
                                const_dnnl_op_desc_t desc, bool *made)
{
    cl_status rc = CL_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    infer_dnn_cache *k;
    *made = false;
    CL_GUARD(infer_dnn_attr_make(&attr));
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, desc, attr, ((infer_dnn *)c->m->dnn)->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return CL_OK;
    if (infer_dnn_impl_is_ref(pd)) goto out;
    CL_GUARD_GOTO(infer_dnn_cache_new(c, kind, size, drop, key, key_n, &k));
    k->out_rank = out_rank;
    memcpy(k->out_dims, od, (size_t)out_rank * sizeof(int64_t));
    k->src_md = *src;
    rc = infer_dnn_prim_finish(k, pd);
    if (rc != CL_OK) {
        infer_dnn_cache_drop(c);
        goto out;
    }
    *made = true;
out:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

cl_status infer_dnn_single_run(infer_ctx *c, int n_src, const int *args, const dnnl_memory_desc_t *mds,
                               const cl_infer_tensor *const *srcs, cl_infer_tensor **out, bool *handled)
{
    infer_dnn_cache *k = *c->fast;
    CL_GUARD(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, k->out_rank, k->out_dims,
                                    dnnl_memory_desc_get_size(&k->dst_md)));
    CL_GUARD(infer_dnn_exec_plain(c, k, n_src, args, mds, srcs, out[0]));
    infer_dnn_out_layout(c, 0, k);
    *handled = true;
    return CL_OK;
}

cl_status infer_dnn_single_run_src(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out, bool *handled)
{
    const int arg = DNNL_ARG_SRC;
    return infer_dnn_single_run(c, 1, &arg, NULL, (const cl_infer_tensor *const *)in, out, handled);
}
