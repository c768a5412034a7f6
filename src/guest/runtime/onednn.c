/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The oneDNN fast path (libdnnl-dev, v2 C API) for Conv, ConvTranspose,
 * MaxPool, Concat, Gemm and MatMul. Convolutions, pooling and concat leave
 * their output in the layout oneDNN chose (channels-last or channel-blocked,
 * named by value->layout) and read their inputs in whatever layout the
 * producer left, so a chain of them reorders activations only at the graph's
 * edges; the executor reorders to plain for every other reader
 * (infer_dnnl_to_plain). Weights go to the layout oneDNN chooses, reordered
 * once per model when they are initializers. A primitive is created per node
 * on first use and kept while the input shapes and layouts stay the same.
 * Configurations not covered here fall back to the reference kernels, which
 * tests also use to check this path.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "infer_internal.h"
#include "window.h"

#ifdef CLOISTER_HAVE_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

bool cl_infer_onednn_available(void) { return true; }

/* Working buffers of a primitive call: the blocked source, the blocked
 * destination and the scratchpad. They live as long as the model and only grow:
 * allocating them per call made every convolution pay for fresh pages (the
 * kernel's page faults and zeroing, ~40% of the U-Net's time at 2 threads).
 * They hold activations, so they are wiped when they grow and when the model is
 * unloaded. */
enum { DNNL_SLOT_SRC, DNNL_SLOT_DST, DNNL_SLOT_SCRATCHPAD, DNNL_SLOTS };

typedef struct dnnl_slot {
    void *p;
    size_t cap;
} dnnl_slot;

typedef struct infer_dnnl {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_slot slots[DNNL_SLOTS];
} infer_dnnl;

static void dnnl_slot_release(infer_mem *mem, dnnl_slot *s)
{
    if (s->p == NULL) return;
    cl_memzero(s->p, s->cap);
    free(s->p);
    mem->used -= s->cap;
    s->p = NULL;
    s->cap = 0;
}

/* A node's primitive, valid for one input shape. */
typedef struct dnnl_cache {
    int64_t key[3 * CL_INFER_MAX_RANK + 4];
    size_t key_n;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src_md, w_user_md, w_md, b_md, dst_md;
    /* The layout the source arrives in and the one the primitive wants: a
     * reorder between them when they differ (e.g. a plain graph input). */
    dnnl_memory_desc_t src_user_md, dst_user_md;
    dnnl_primitive_t src_reorder, dst_reorder; /* NULL when the layouts agree */
    dnnl_memory_desc_t src_plain_md;           /* the source in plain layout */
    bool dst_plain;                            /* dst_md is plain row-major */
    /* A fused Add: its operand's layout and the reorder into dst's, if any. */
    dnnl_memory_desc_t sum_user_md;
    dnnl_primitive_t sum_reorder;
    bool sum_ready;
    /* ConvTranspose as matmuls (dnnl_upconv): one run per kernel tap, each
     * with its slice of w_buf (up_w_bytes apart) and its output pixels. */
    bool upconv;
    dnnl_primitive_t w_reorder;         /* a plain packed tap into w_md */
    int64_t up_kh, up_kw, up_wo, up_cs; /* kernel, output width, channel stride */
    size_t up_w_bytes;
    dnnl_memory_desc_t mm_dst_md;
    dnnl_memory_desc_t cat_md; /* the Concat output written in place, if any */
    /* Concat: the source layouts the primitive was made for. */
    dnnl_memory_desc_t *in_mds;
    int n_in_mds;
    /* The primitive's scratchpad is ours (user mode), so it can be wiped:
     * oneDNN keeps partial results of the data in it. */
    dnnl_memory_desc_t sp_md;
    bool has_sp;
    bool has_bias;
    bool reorder_w; /* oneDNN wants the weights in another layout */
    void *w_buf;    /* the reordered weights */
    size_t w_bytes;
    const void *w_from; /* the initializer they were reordered from */
    int out_rank;
    int64_t out_dims[CL_INFER_MAX_RANK];
} dnnl_cache;

static const dnnl_format_tag_t dnnl_plain[] = {dnnl_a, dnnl_a, dnnl_ab, dnnl_abc, dnnl_abcd, dnnl_abcde, dnnl_abcdef};

static dnnl_format_tag_t dnnl_plain_tag(int ndims) { return dnnl_plain[ndims]; }

static void dnnl_dims(dnnl_dims_t out, int rank, const int64_t *dims)
{
    for (int i = 0; i < rank; i++) out[i] = dims[i];
}

#define DNNL_TRY(expr, what) \
    do { \
        dnnl_status_t dnnl_s_ = (expr); \
        if (dnnl_s_ != dnnl_success) \
            CL_FAIL_GOTO(CL_ERR_INTERNAL, "oneDNN %s failed (status %d)", (what), (int)dnnl_s_); \
    } while (0)

cl_status infer_dnnl_init(cl_infer_model *m)
{
    cl_status rc = CL_OK;
    infer_dnnl *d = calloc(1, sizeof(*d));
    CL_ENSURE(d != NULL, CL_ERR_NOMEM, "out of memory");
    m->dnnl = d;
    DNNL_TRY(dnnl_engine_create(&d->eng, dnnl_cpu, 0), "engine creation");
    DNNL_TRY(dnnl_stream_create(&d->stream, d->eng, dnnl_stream_default_flags), "stream creation");
out:
    return rc;
}

static void dnnl_cache_free(cl_infer_model *m, dnnl_cache *k)
{
    if (k == NULL) return;
    if (k->prim) dnnl_primitive_destroy(k->prim);
    if (k->src_reorder) dnnl_primitive_destroy(k->src_reorder);
    if (k->dst_reorder) dnnl_primitive_destroy(k->dst_reorder);
    if (k->sum_reorder) dnnl_primitive_destroy(k->sum_reorder);
    if (k->w_reorder) dnnl_primitive_destroy(k->w_reorder);
    free(k->in_mds);
    if (k->w_buf) {
        cl_memzero(k->w_buf, k->w_bytes);
        free(k->w_buf);
        m->mem.used -= k->w_bytes;
    }
    free(k);
}

void infer_dnnl_free(cl_infer_model *m)
{
    for (size_t i = 0; m->fast != NULL && i < m->n_nodes; i++) {
        dnnl_cache_free(m, m->fast[i]);
        m->fast[i] = NULL;
    }
    infer_dnnl *d = m->dnnl;
    if (d == NULL) return;
    for (int i = 0; i < DNNL_SLOTS; i++) dnnl_slot_release(&m->mem, &d->slots[i]);
    if (d->stream) dnnl_stream_destroy(d->stream);
    if (d->eng) dnnl_engine_destroy(d->eng);
    free(d);
    m->dnnl = NULL;
}

static void dnnl_key_add(int64_t *key, size_t *n, const cl_infer_tensor *t)
{
    key[(*n)++] = t ? t->rank : -1;
    for (int i = 0; t && i < t->rank; i++) key[(*n)++] = t->dims[i];
}

/* The cached primitive for this shape, or NULL after dropping a stale one. */
static dnnl_cache *dnnl_cache_lookup(infer_ctx *c, const int64_t *key, size_t key_n)
{
    dnnl_cache *k = *c->fast;
    if (k != NULL && k->key_n == key_n && memcmp(k->key, key, key_n * sizeof(int64_t)) == 0) return k;
    dnnl_cache_free(c->m, k);
    *c->fast = NULL;
    return NULL;
}

static bool dnnl_input_is_init(const infer_ctx *c, int i)
{
    int v = c->node->in[i];
    return v >= 0 && c->m->values[v].is_init;
}

/* The layout node input i is held in: its oneDNN descriptor, or NULL when plain. */
static const dnnl_memory_desc_t *dnnl_in_layout(const infer_ctx *c, int i)
{
    int v = c->node->in[i];
    return v >= 0 ? c->m->values[v].layout : NULL;
}

/* Records the layout the primitive left output i in (k->dst_md lives as long
 * as the cached primitive, i.e. past every reader in this run). */
static void dnnl_out_layout(const infer_ctx *c, int i, const dnnl_cache *k)
{
    int v = c->node->out[i];
    if (v >= 0) c->m->values[v].layout = k->dst_plain ? NULL : &k->dst_md;
}

static bool dnnl_md_is_plain(const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t plain;
    if (md->ndims < 1 || md->ndims > 6 ||
        dnnl_memory_desc_init_by_tag(&plain, md->ndims, md->dims, md->data_type, dnnl_plain_tag(md->ndims)) !=
            dnnl_success)
        return false;
    return dnnl_memory_desc_equal(md, &plain) != 0;
}

static void dnnl_threads(const cl_infer_model *m)
{
    if (m->threads > 0) omp_set_num_threads(m->threads);
}

/* Brings the weights into the primitive's layout (once, for initializers). */
static cl_status dnnl_weights_ready(infer_ctx *c, dnnl_cache *k, const cl_infer_tensor *wt, void **wp)
{
    cl_status rc = CL_OK;
    infer_dnnl *d = c->m->dnnl;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    *wp = wt->data;
    if (!k->reorder_w) return CL_OK;
    if (k->w_buf != NULL && k->w_from == wt->data && dnnl_input_is_init(c, 1)) {
        *wp = k->w_buf;
        return CL_OK;
    }
    if (k->w_buf == NULL) {
        size_t bytes = dnnl_memory_desc_get_size(&k->w_md);
        CL_ENSURE(bytes <= c->mem->max && c->mem->used <= c->mem->max - bytes, CL_ERR_LIMIT,
                  "reordering %zu bytes of weights would exceed the model's memory cap of %zu bytes", bytes,
                  c->mem->max);
        k->w_buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
        CL_ENSURE(k->w_buf != NULL, CL_ERR_NOMEM, "out of memory reordering weights");
        k->w_bytes = bytes;
        c->mem->used += bytes;
        if (c->mem->used > c->mem->peak) c->mem->peak = c->mem->used;
    }
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, &k->w_user_md, d->eng, &k->w_md, d->eng, NULL),
             "weights reorder");
    DNNL_TRY(dnnl_primitive_create(&r, rpd), "weights reorder");
    DNNL_TRY(dnnl_memory_create(&from, &k->w_user_md, d->eng, wt->data), "memory");
    DNNL_TRY(dnnl_memory_create(&to, &k->w_md, d->eng, k->w_buf), "memory");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    DNNL_TRY(dnnl_primitive_execute(r, d->stream, 2, args), "weights reorder");
    DNNL_TRY(dnnl_stream_wait(d->stream), "weights reorder");
    k->w_from = wt->data;
    *wp = k->w_buf;
out:
    if (from) dnnl_memory_destroy(from);
    if (to) dnnl_memory_destroy(to);
    if (r) dnnl_primitive_destroy(r);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return rc;
}

static cl_status dnnl_reorder_make(infer_dnnl *d, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                   dnnl_primitive_t *out)
{
    cl_status rc = CL_OK;
    dnnl_primitive_desc_t rpd = NULL;
    DNNL_TRY(dnnl_reorder_primitive_desc_create(&rpd, from, d->eng, to, d->eng, NULL), "reorder descriptor");
    DNNL_TRY(dnnl_primitive_create(out, rpd), "reorder creation");
out:
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return rc;
}

/* Primitive attributes with a user-mode scratchpad (ours, so it is wiped). */
static cl_status dnnl_attr_make(dnnl_primitive_attr_t *attr)
{
    cl_status rc = CL_OK;
    *attr = NULL;
    DNNL_TRY(dnnl_primitive_attr_create(attr), "attributes");
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user), "attributes");
out:
    if (rc != CL_OK && *attr != NULL) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return rc;
}

/* The node's primitive attributes: a user-mode scratchpad and its fused
 * post-ops. Relu(conv + S): the sum reads dst, which holds S on entry. */
static cl_status dnnl_node_attr(const infer_ctx *c, dnnl_primitive_attr_t *attr)
{
    cl_status rc = CL_OK;
    dnnl_post_ops_t po = NULL;
    CL_GUARD(dnnl_attr_make(attr));
    if (c->node->fuse_relu || c->node->fuse_add) {
        DNNL_TRY(dnnl_post_ops_create(&po), "post-ops");
        if (c->node->fuse_add) DNNL_TRY(dnnl_post_ops_append_sum(po, 1.0f), "post-ops");
        if (c->node->fuse_relu)
            DNNL_TRY(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f), "post-ops");
        DNNL_TRY(dnnl_primitive_attr_set_post_ops(*attr, po), "attributes");
    }
out:
    if (po) dnnl_post_ops_destroy(po);
    if (rc != CL_OK) {
        dnnl_primitive_attr_destroy(*attr);
        *attr = NULL;
    }
    return rc;
}

/* oneDNN's reference implementations (scalar loops) are its last resort. */
static bool dnnl_impl_is_ref(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)&impl) != dnnl_success || impl == NULL)
        return true;
    return strncmp(impl, "ref", 3) == 0;
}

/* Whether oneDNN has a non-reference implementation of desc with the node's
 * attributes (post-ops included). */
static bool dnnl_desc_has_fast_impl(const infer_ctx *c, const_dnnl_op_desc_t desc)
{
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = false;
    if (dnnl_node_attr(c, &attr) != CL_OK) {
        cl_error_clear();
        return false;
    }
    if (dnnl_primitive_desc_create(&pd, desc, attr, ((infer_dnnl *)c->m->dnnl)->eng, NULL) == dnnl_success) {
        ok = !dnnl_impl_is_ref(pd);
        dnnl_primitive_desc_destroy(pd);
    }
    dnnl_primitive_attr_destroy(attr);
    return ok;
}

/* Winograd F(4x4, 3x3) multiplies a 3x3 stride-1 convolution in 4/9 of the
 * direct method's multiplications, at the cost of transforming input, weights
 * and output tiles (Lavin & Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016; oneDNN's jit_wino_4x3 and jit_fp32_wino_2x3 kernels). The
 * transforms only pay off on enough channels and tiles: on this project's
 * AVX-512 machines (2 threads, U-Net layers, docs/inference.md) it took 40-60%
 * less time than the direct kernel from 32 input channels and a 32x32 output
 * up, and was slower below (the 3-channel first layer 7.7x, the 16x16 layers
 * 1.1-1.2x). Its rounding differs from the direct method's, within the
 * conformance tolerance; cl_infer_options.direct_conv turns it off. */
static bool dnnl_conv_winograd_wanted(const infer_ctx *c, const cl_infer_tensor *x, int64_t group,
                                      const infer_window *w)
{
    if (c->m->direct_conv || c->m->dnnl_blocked || group != 1 || w->nsp != 2 || x->dims[1] < 32) return false;
    for (int i = SP - 2; i < SP; i++)
        if (w->k[i] != 3 || w->stride[i] != 1 || w->dil[i] != 1 || w->out[i] < 32) return false;
    return true;
}

/* Creates the primitive from an op descriptor and notes the layouts it chose
 * for weights, source and destination (k->src_md / dst_md hold the plain
 * layouts on entry). */
static cl_status dnnl_prim_make(infer_ctx *c, dnnl_cache *k, const_dnnl_op_desc_t desc, bool keep_dst)
{
    cl_status rc = CL_OK;
    infer_dnnl *d = c->m->dnnl;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    CL_GUARD_GOTO(dnnl_node_attr(c, &attr));
    DNNL_TRY(dnnl_primitive_desc_create(&pd, desc, attr, d->eng, NULL), "primitive descriptor");
    const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    CL_ENSURE_GOTO(w != NULL && src != NULL && dst != NULL, CL_ERR_INTERNAL,
                   "oneDNN primitive lacks a memory descriptor");
    k->w_md = *w;
    k->reorder_w = !dnnl_memory_desc_equal(&k->w_md, &k->w_user_md);
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    k->has_sp = sp != NULL && dnnl_memory_desc_get_size(sp) > 0;
    if (k->has_sp) k->sp_md = *sp;
    k->src_user_md = k->src_md;
    k->dst_user_md = k->dst_md;
    k->src_md = *src;
    k->dst_md = *dst;
    if (!dnnl_memory_desc_equal(&k->src_md, &k->src_user_md))
        CL_GUARD_GOTO(dnnl_reorder_make(d, &k->src_user_md, &k->src_md, &k->src_reorder));
    k->src_plain_md = k->src_user_md;
    k->dst_plain = dnnl_md_is_plain(&k->dst_md);
    /* keep_dst: the output stays in the primitive's layout for the next reader. */
    if (!keep_dst && !dnnl_memory_desc_equal(&k->dst_md, &k->dst_user_md))
        CL_GUARD_GOTO(dnnl_reorder_make(d, &k->dst_md, &k->dst_user_md, &k->dst_reorder));
    if (keep_dst) k->dst_user_md = k->dst_md;
    DNNL_TRY(dnnl_primitive_create(&k->prim, pd), "primitive creation");
out:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return rc;
}

/* Working buffer `slot` with room for md, counted against the model's cap. */
static cl_status dnnl_slot_get(infer_ctx *c, int slot, const dnnl_memory_desc_t *md, void **p)
{
    dnnl_slot *s = &((infer_dnnl *)c->m->dnnl)->slots[slot];
    size_t bytes = dnnl_memory_desc_get_size(md);
    if (bytes > s->cap) {
        dnnl_slot_release(c->mem, s);
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

static cl_status dnnl_reorder_run(infer_dnnl *d, dnnl_primitive_t r, const dnnl_memory_desc_t *from_md, void *from,
                                  const dnnl_memory_desc_t *to_md, void *to)
{
    cl_status rc = CL_OK;
    dnnl_memory_t mf = NULL, mt = NULL;
    DNNL_TRY(dnnl_memory_create(&mf, from_md, d->eng, from), "memory");
    DNNL_TRY(dnnl_memory_create(&mt, to_md, d->eng, to), "memory");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mf}, {DNNL_ARG_TO, mt}};
    DNNL_TRY(dnnl_primitive_execute(r, d->stream, 2, args), "reorder");
out:
    if (mf) dnnl_memory_destroy(mf);
    if (mt) dnnl_memory_destroy(mt);
    return rc;
}

/* Points the source reorder at the layout the input arrives in this time:
 * none when it already is the primitive's. */
static cl_status dnnl_src_adapt(infer_ctx *c, dnnl_cache *k, const dnnl_memory_desc_t *from)
{
    if (from == NULL) from = &k->src_plain_md;
    if (dnnl_memory_desc_equal(from, &k->src_user_md)) return CL_OK;
    if (k->src_reorder != NULL) dnnl_primitive_destroy(k->src_reorder);
    k->src_reorder = NULL;
    k->src_user_md = *from;
    if (dnnl_memory_desc_equal(from, &k->src_md)) return CL_OK;
    CL_GUARD(dnnl_reorder_make(c->m->dnnl, from, &k->src_md, &k->src_reorder));
    return CL_OK;
}

/* The output of a Conv with a fused Add, holding the Add's other operand S in
 * the destination's layout (the sum post-op adds the convolution to it). S's
 * own buffer is taken over when this is its last reader, it is already in
 * that layout and it is not the convolution's source. */
static cl_status dnnl_sum_ready(infer_ctx *c, dnnl_cache *k, cl_infer_tensor *out)
{
    cl_status rc = CL_OK;
    int vi = c->node->in[3];
    infer_value *sv = &c->m->values[vi];
    infer_dnnl *d = c->m->dnnl;
    dnnl_memory_desc_t from;
    if (sv->layout != NULL) {
        from = *(const dnnl_memory_desc_t *)sv->layout;
    } else {
        dnnl_dims_t dims;
        dnnl_dims(dims, sv->t.rank, sv->t.dims);
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&from, sv->t.rank, dims, dnnl_f32, dnnl_plain_tag(sv->t.rank)),
                 "memory descriptor");
    }
    size_t bytes = dnnl_memory_desc_get_size(&k->dst_md);
    bool same = dnnl_memory_desc_equal(&from, &k->dst_md) != 0;
    if (same && sv->last_use == (int)(c->node - c->m->nodes) && !sv->is_output && !sv->is_init && !sv->t.borrowed &&
        sv->t.nbytes == bytes && vi != c->node->in[0]) {
        *out = sv->t;
        memset(&sv->t, 0, sizeof(sv->t));
        sv->layout = NULL;
        return CL_OK;
    }
    CL_GUARD(infer_tensor_new_bytes(c->mem, out, CL_INFER_FLOAT, k->out_rank, k->out_dims, bytes));
    if (same) {
        memcpy(out->data, sv->t.data, bytes);
        return CL_OK;
    }
    if (!k->sum_ready || !dnnl_memory_desc_equal(&from, &k->sum_user_md)) {
        if (k->sum_reorder != NULL) dnnl_primitive_destroy(k->sum_reorder);
        k->sum_reorder = NULL;
        k->sum_ready = false;
        CL_GUARD_GOTO(dnnl_reorder_make(d, &from, &k->dst_md, &k->sum_reorder));
        k->sum_user_md = from;
        k->sum_ready = true;
    }
    CL_GUARD_GOTO(dnnl_reorder_run(d, k->sum_reorder, &from, sv->t.data, &k->dst_md, out->data));
out:
    return rc;
}

static cl_status dnnl_run(infer_ctx *c, dnnl_cache *k, const void *src, const void *w, const void *b, void *dst,
                          int arg_src, int arg_w)
{
    cl_status rc = CL_OK;
    infer_dnnl *d = c->m->dnnl;
    dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL, msp = NULL;
    void *bsrc = NULL, *bdst = NULL, *sp = NULL, *user_dst = dst;
    dnnl_threads(c->m);
    if (k->src_reorder != NULL) {
        CL_GUARD_GOTO(dnnl_slot_get(c, DNNL_SLOT_SRC, &k->src_md, &bsrc));
        CL_GUARD_GOTO(dnnl_reorder_run(d, k->src_reorder, &k->src_user_md, (void *)src, &k->src_md, bsrc));
        src = bsrc;
    }
    if (k->dst_reorder != NULL) {
        CL_GUARD_GOTO(dnnl_slot_get(c, DNNL_SLOT_DST, &k->dst_md, &bdst));
        dst = bdst;
    }
    DNNL_TRY(dnnl_memory_create(&ms, &k->src_md, d->eng, (void *)src), "memory");
    DNNL_TRY(dnnl_memory_create(&mw, &k->w_md, d->eng, (void *)w), "memory");
    DNNL_TRY(dnnl_memory_create(&md, &k->dst_md, d->eng, dst), "memory");
    dnnl_exec_arg_t args[5] = {{arg_src, ms}, {arg_w, mw}, {DNNL_ARG_DST, md}};
    int n = 3;
    if (k->has_bias) {
        DNNL_TRY(dnnl_memory_create(&mb, &k->b_md, d->eng, (void *)b), "memory");
        args[n].arg = DNNL_ARG_BIAS;
        args[n++].memory = mb;
    }
    if (k->has_sp) {
        CL_GUARD_GOTO(dnnl_slot_get(c, DNNL_SLOT_SCRATCHPAD, &k->sp_md, &sp));
        DNNL_TRY(dnnl_memory_create(&msp, &k->sp_md, d->eng, sp), "memory");
        args[n].arg = DNNL_ARG_SCRATCHPAD;
        args[n++].memory = msp;
    }
    DNNL_TRY(dnnl_primitive_execute(k->prim, d->stream, n, args), "execution");
    if (k->dst_reorder != NULL)
        CL_GUARD_GOTO(dnnl_reorder_run(d, k->dst_reorder, &k->dst_md, bdst, &k->dst_user_md, user_dst));
    DNNL_TRY(dnnl_stream_wait(d->stream), "execution");
out:
    if (msp) dnnl_memory_destroy(msp);
    if (ms) dnnl_memory_destroy(ms);
    if (mw) dnnl_memory_destroy(mw);
    if (mb) dnnl_memory_destroy(mb);
    if (md) dnnl_memory_destroy(md);
    return rc;
}

/* Conv and ConvTranspose share everything but the descriptor and the weights layout. */
static cl_status dnnl_conv_common(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, bool transpose,
                                  bool *handled)
{
    cl_status rc = CL_OK;
    const cl_infer_tensor *x = in[0], *wt = in[1], *b = n_in > 2 ? in[2] : NULL;
    const cl_infer_tensor *sum = c->node->fuse_add ? in[3] : NULL;
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || wt->dtype != CL_INFER_FLOAT || (b && b->dtype != CL_INFER_FLOAT) || x->rank < 3 ||
        x->rank > 5 || wt->rank != x->rank || (sum && sum->dtype != CL_INFER_FLOAT))
        return CL_OK;
    int64_t key[3 * CL_INFER_MAX_RANK + 4];
    size_t key_n = 0;
    dnnl_key_add(key, &key_n, x);
    dnnl_key_add(key, &key_n, wt);
    dnnl_key_add(key, &key_n, b);
    dnnl_cache *k = dnnl_cache_lookup(c, key, key_n);
    if (k == NULL) {
        infer_window w;
        int64_t group, M, k_sp[SP];
        CL_GUARD(infer_attr_int(c->node, "group", 1, &group));
        if (transpose) {
            if (infer_convt_window(c, x, wt, &M, &w) != CL_OK) return CL_OK; /* the reference reports it */
        } else {
            if (infer_conv_kernel(c, x, wt, k_sp) != CL_OK || infer_window_make(c, x, k_sp, false, true, &w) != CL_OK)
                return CL_OK;
            M = wt->dims[0];
            if (x->dims[1] != wt->dims[1] * group || M % group != 0) return CL_OK;
        }
        if (b != NULL && (b->rank != 1 || b->dims[0] != M)) return CL_OK;
        int nsp = w.nsp, r = x->rank;
        dnnl_dims_t sd = {0}, wd = {0}, bd = {0}, dd = {0}, strides = {0}, dil = {0}, pl = {0}, pr = {0};
        dnnl_dims(sd, r, x->dims);
        dd[0] = x->dims[0];
        dd[1] = M;
        for (int i = 0; i < nsp; i++) {
            int j = SP - nsp + i;
            dd[2 + i] = w.out[j];
            strides[i] = w.stride[j];
            dil[i] = w.dil[j] - 1; /* oneDNN counts the gaps */
            pl[i] = w.pad_b[j];
            pr[i] = w.pad_e[j];
            if (transpose) {
                /* oneDNN derives the output size from the padding: no output_padding. */
                int64_t ext = (w.k[j] - 1) * w.dil[j] + 1;
                pr[i] = (w.in[j] - 1) * w.stride[j] + ext - w.pad_b[j] - w.out[j];
                if (pr[i] < 0) return CL_OK;
            }
        }
        int wr = r + (group > 1);
        dnnl_format_tag_t wtag;
        if (group > 1) {
            /* ONNX Conv W is [M, C/g, k] = [g, M/g, C/g, k]; ConvTranspose W is [C, M/g, k] = [g, C/g, M/g, k]. */
            wd[0] = group;
            wd[1] = M / group;
            wd[2] = x->dims[1] / group;
            for (int i = 0; i < nsp; i++) wd[3 + i] = wt->dims[2 + i];
            wtag = transpose ? (nsp == 1 ? dnnl_acbd : nsp == 2 ? dnnl_acbde : dnnl_acbdef) : dnnl_plain[wr];
        } else {
            wd[0] = M;
            wd[1] = x->dims[1];
            for (int i = 0; i < nsp; i++) wd[2 + i] = wt->dims[2 + i];
            wtag = transpose ? (nsp == 1 ? dnnl_bac : nsp == 2 ? dnnl_bacd : dnnl_bacde) : dnnl_plain[wr];
        }
        k = calloc(1, sizeof(*k));
        CL_ENSURE(k != NULL, CL_ERR_NOMEM, "out of memory");
        *c->fast = k;
        memcpy(k->key, key, key_n * sizeof(int64_t));
        k->key_n = key_n;
        k->has_bias = b != NULL;
        k->out_rank = r;
        for (int i = 0; i < r; i++) k->out_dims[i] = dd[i];
        dnnl_memory_desc_t w_any, src_any, dst_any;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->src_md, r, sd, dnnl_f32, dnnl_plain[r]), "memory descriptor");
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->dst_md, r, dd, dnnl_f32, dnnl_plain[r]), "memory descriptor");
        /* Let oneDNN pick blocked activation layouts: its direct kernels on
         * them beat the plain-layout GEMM path by far, reorders included. */
        dnnl_format_tag_t act = dnnl_format_tag_any;
        if (c->m->dnnl_blocked) act = r == 3 ? dnnl_aBc16b : r == 4 ? dnnl_aBcd16b : dnnl_aBcde16b;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_any, r, sd, dnnl_f32, act), "memory descriptor");
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_any, r, dd, dnnl_f32, act), "memory descriptor");
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->w_user_md, wr, wd, dnnl_f32, wtag), "memory descriptor");
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, wr, wd, dnnl_f32, dnnl_format_tag_any), "memory descriptor");
        if (b != NULL) {
            bd[0] = M;
            DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->b_md, 1, bd, dnnl_f32, dnnl_a), "memory descriptor");
        }
        const dnnl_memory_desc_t *bmd = b ? &k->b_md : NULL;
        if (transpose) {
            dnnl_deconvolution_desc_t desc;
            /* Left to choose, oneDNN 2.6 runs deconvolutions on 16-channel
             * blocks while its convolutions pick channels-last: asking for
             * channels-last here (same jit kernel) spares a reorder on each
             * side of every deconvolution. Any layout when it cannot. */
            dnnl_memory_desc_t src_cl, dst_cl;
            dnnl_format_tag_t cl_tag = r == 3 ? dnnl_acb : r == 4 ? dnnl_acdb : dnnl_acdeb;
            DNNL_TRY(dnnl_memory_desc_init_by_tag(&src_cl, r, sd, dnnl_f32, cl_tag), "memory descriptor");
            DNNL_TRY(dnnl_memory_desc_init_by_tag(&dst_cl, r, dd, dnnl_f32, cl_tag), "memory descriptor");
            dnnl_primitive_desc_t probe = NULL;
            if (!c->m->dnnl_blocked &&
                dnnl_dilated_deconvolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_deconvolution_direct,
                                                             &src_cl, &w_any, bmd, &dst_cl, strides, dil, pl,
                                                             pr) == dnnl_success &&
                dnnl_primitive_desc_create(&probe, &desc, NULL, ((infer_dnnl *)c->m->dnnl)->eng, NULL) ==
                    dnnl_success &&
                !dnnl_impl_is_ref(probe)) {
                src_any = src_cl;
                dst_any = dst_cl;
            }
            if (probe != NULL) dnnl_primitive_desc_destroy(probe);
            DNNL_TRY(dnnl_dilated_deconvolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                                  dnnl_deconvolution_direct, &src_any, &w_any, bmd,
                                                                  &dst_any, strides, dil, pl, pr),
                     "deconvolution descriptor");
            CL_GUARD_GOTO(dnnl_prim_make(c, k, &desc, true));
        } else {
            dnnl_convolution_desc_t desc;
            bool wino = dnnl_conv_winograd_wanted(c, x, group, &w) &&
                        dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                                   dnnl_convolution_winograd, &src_any, &w_any, bmd,
                                                                   &dst_any, strides, dil, pl, pr) == dnnl_success &&
                        dnnl_desc_has_fast_impl(c, &desc);
            if (!wino)
                DNNL_TRY(dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                                    dnnl_convolution_direct, &src_any, &w_any, bmd,
                                                                    &dst_any, strides, dil, pl, pr),
                         "convolution descriptor");
            CL_GUARD_GOTO(dnnl_prim_make(c, k, &desc, true));
            if (wino) c->m->wino_convs++;
        }
    }
    if (sum != NULL) {
        /* The fused Add broadcasts S onto the output in the reference only. */
        bool same_shape = sum->rank == k->out_rank;
        for (int i = 0; same_shape && i < k->out_rank; i++) same_shape = sum->dims[i] == k->out_dims[i];
        if (!same_shape) return CL_OK;
    }
    void *wp;
    CL_GUARD(dnnl_weights_ready(c, k, wt, &wp));
    CL_GUARD(dnnl_src_adapt(c, k, dnnl_in_layout(c, 0)));
    if (sum != NULL)
        CL_GUARD(dnnl_sum_ready(c, k, out[0]));
    else
        CL_GUARD(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, k->out_rank, k->out_dims,
                                        dnnl_memory_desc_get_size(&k->dst_md)));
    CL_GUARD(dnnl_run(c, k, x->data, wp, b ? b->data : NULL, out[0]->data, DNNL_ARG_SRC, DNNL_ARG_WEIGHTS));
    dnnl_out_layout(c, 0, k);
    *handled = true;
    return CL_OK;
out:
    /* A descriptor oneDNN refused: forget it and let the reference kernel run. */
    dnnl_cache_free(c->m, *c->fast);
    *c->fast = NULL;
    cl_error_clear();
    return CL_OK;
}

cl_status infer_dnnl_conv(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
{
    return dnnl_conv_common(c, in, n_in, out, false, handled);
}

/* A buffer of the model's for weights, counted against its cap. */
static cl_status dnnl_weights_alloc(infer_ctx *c, size_t bytes, void **p)
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

/* Packs the weights of kernel tap (i, j), W[ci][m][i][j] of ONNX's
 * [C, M, kh, kw], as the plain matrix [C, M] and reorders it into the
 * matmul's layout at dst. */
static cl_status dnnl_upconv_pack(infer_ctx *c, dnnl_cache *k, const cl_infer_tensor *wt, int64_t i, int64_t j,
                                  float *tmp, void *dst)
{
    const int64_t C = wt->dims[0], M = wt->dims[1], KH = wt->dims[2], KW = wt->dims[3];
    const float *w = wt->data;
    for (int64_t ci = 0; ci < C; ci++)
        for (int64_t m = 0; m < M; m++) tmp[ci * M + m] = w[((ci * M + m) * KH + i) * KW + j];
    return dnnl_reorder_run(c->m->dnnl, k->w_reorder, &k->w_user_md, tmp, &k->w_md, dst);
}

/* Runs dnnl_upconv's matmul once per kernel tap; y points at the output's
 * first pixel and first channel of this node (channel stride k->up_cs). */
static cl_status dnnl_upconv_run(infer_ctx *c, const dnnl_cache *k, const void *x, const void *bias, float *y)
{
    cl_status rc = CL_OK;
    infer_dnnl *d = c->m->dnnl;
    dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL, msp = NULL;
    void *sp = NULL;
    dnnl_threads(c->m);
    DNNL_TRY(dnnl_memory_create(&ms, &k->src_md, d->eng, (void *)x), "memory");
    DNNL_TRY(dnnl_memory_create(&mw, &k->w_md, d->eng, k->w_buf), "memory");
    DNNL_TRY(dnnl_memory_create(&md, &k->mm_dst_md, d->eng, y), "memory");
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    int na = 3;
    if (k->has_bias) {
        DNNL_TRY(dnnl_memory_create(&mb, &k->b_md, d->eng, (void *)bias), "memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
    }
    if (k->has_sp) {
        CL_GUARD_GOTO(dnnl_slot_get(c, DNNL_SLOT_SCRATCHPAD, &k->sp_md, &sp));
        DNNL_TRY(dnnl_memory_create(&msp, &k->sp_md, d->eng, sp), "memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, msp};
    }
    for (int64_t i = 0; i < k->up_kh; i++) {
        for (int64_t j = 0; j < k->up_kw; j++) {
            DNNL_TRY(dnnl_memory_set_data_handle(mw, (char *)k->w_buf + (size_t)(i * k->up_kw + j) * k->up_w_bytes),
                     "memory");
            DNNL_TRY(dnnl_memory_set_data_handle(md, y + (i * k->up_wo + j) * k->up_cs), "memory");
            DNNL_TRY(dnnl_primitive_execute(k->prim, d->stream, na, args), "matmul execution");
        }
    }
    DNNL_TRY(dnnl_stream_wait(d->stream), "matmul execution");
out:
    if (ms) dnnl_memory_destroy(ms);
    if (mw) dnnl_memory_destroy(mw);
    if (mb) dnnl_memory_destroy(mb);
    if (md) dnnl_memory_destroy(md);
    if (msp) dnnl_memory_destroy(msp);
    return rc;
}

/* model.c marked this ConvTranspose as read only by a Concat: when that
 * Concat joins channels and its other inputs are all computed already, in a
 * oneDNN layout and of this output's size, this node writes the Concat's
 * output itself, channels-last (*cat, *ctot channels, its own from *choff;
 * the others are reordered in) and the Concat has nothing left to do: its
 * copy of this output is saved. */
static cl_status dnnl_upconv_concat(const infer_ctx *c, const int64_t *od, infer_value **cat, int64_t *ctot,
                                    int64_t *choff)
{
    const infer_node *n = c->node;
    *cat = NULL;
    *ctot = od[1];
    *choff = 0;
    if (!n->concat_fuse) return CL_OK;
    const infer_node *cn = &c->m->nodes[n->concat_node];
    int64_t axis, tot = 0, off = 0;
    if (infer_attr_int(cn, "axis", 1, &axis) != CL_OK) {
        cl_error_clear(); /* the Concat kernel reports it */
        return CL_OK;
    }
    if ((axis != 1 && axis != -3) || cn->out[0] < 0) return CL_OK;
    for (int s = 0; s < cn->n_in; s++) {
        if (s == n->concat_slot) {
            off = tot;
            tot += od[1];
            continue;
        }
        if (cn->in[s] < 0) return CL_OK;
        const infer_value *v = &c->m->values[cn->in[s]];
        const cl_infer_tensor *t = &v->t;
        if (t->data == NULL || v->layout == NULL || t->dtype != CL_INFER_FLOAT || t->rank != 4 || t->dims[0] != od[0] ||
            t->dims[2] != od[2] || t->dims[3] != od[3] || t->dims[1] <= 0)
            return CL_OK;
        tot += t->dims[1];
    }
    *cat = &c->m->values[cn->out[0]];
    *ctot = tot;
    *choff = off;
    return CL_OK;
}

/* Copies the Concat's other inputs into their channel ranges of its output. */
static cl_status dnnl_upconv_concat_fill(infer_ctx *c, const dnnl_cache *k, void *y)
{
    cl_status rc = CL_OK;
    const infer_node *cn = &c->m->nodes[c->node->concat_node];
    infer_dnnl *d = c->m->dnnl;
    dnnl_primitive_t r = NULL;
    int64_t off = 0;
    for (int s = 0; s < cn->n_in; s++) {
        if (s == c->node->concat_slot) {
            off += k->out_dims[1];
            continue;
        }
        const infer_value *v = &c->m->values[cn->in[s]];
        dnnl_memory_desc_t sub;
        dnnl_dims_t dims, offs = {0, off, 0, 0};
        dnnl_dims(dims, 4, v->t.dims);
        DNNL_TRY(dnnl_memory_desc_init_submemory(&sub, &k->cat_md, dims, offs), "memory descriptor");
        CL_GUARD_GOTO(dnnl_reorder_make(d, v->layout, &sub, &r));
        CL_GUARD_GOTO(dnnl_reorder_run(d, r, v->layout, v->t.data, &sub, y));
        dnnl_primitive_destroy(r);
        r = NULL;
        off += v->t.dims[1];
    }
out:
    if (r) dnnl_primitive_destroy(r);
    return rc;
}

/* The matmuls read the input channels-last: one arriving in another layout
 * (a Winograd convolution's 16-channel blocks, a plain graph input) is
 * reordered into the source slot first. */
static cl_status dnnl_upconv_src(infer_ctx *c, dnnl_cache *k, const dnnl_memory_desc_t *lay,
                                 const dnnl_memory_desc_t *cl_md, const cl_infer_tensor *x, const void **src)
{
    infer_dnnl *d = c->m->dnnl;
    dnnl_memory_desc_t from;
    *src = x->data;
    if (lay != NULL) {
        from = *lay;
    } else {
        dnnl_dims_t dims;
        dnnl_dims(dims, 4, x->dims);
        CL_ENSURE(dnnl_memory_desc_init_by_tag(&from, 4, dims, dnnl_f32, dnnl_abcd) == dnnl_success, CL_ERR_INTERNAL,
                  "oneDNN memory descriptor failed");
    }
    if (dnnl_memory_desc_equal(&from, cl_md)) return CL_OK;
    if (k->src_reorder == NULL || !dnnl_memory_desc_equal(&from, &k->src_user_md)) {
        if (k->src_reorder != NULL) dnnl_primitive_destroy(k->src_reorder);
        k->src_reorder = NULL;
        CL_GUARD(dnnl_reorder_make(d, &from, cl_md, &k->src_reorder));
        k->src_user_md = from;
    }
    void *buf;
    CL_GUARD(dnnl_slot_get(c, DNNL_SLOT_SRC, cl_md, &buf));
    CL_GUARD(dnnl_reorder_run(d, k->src_reorder, &from, x->data, cl_md, buf));
    *src = buf;
    return CL_OK;
}

/* ConvTranspose whose kernel equals its stride (the U-Net's 2x2 stride 2),
 * 2-D, without pads, dilation, groups or output padding, on a channels-last
 * input: the output patches of the input pixels do not overlap, so each
 * kernel tap (i, j) is a matmul [pixels, C] x [C, M] whose result goes to
 * output pixels (kh * h + i, kw * w + j), written in place through strides
 * into the channels-last output (no col2im, no reorder) -- or straight into
 * the Concat that reads it (dnnl_upconv_concat). oneDNN 2.6's deconvolution
 * ran these at a fraction of its convolution speed. Sets *handled = false
 * when it does not apply. */
static cl_status dnnl_upconv(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, bool *handled)
{
    cl_status rc = CL_OK;
    const cl_infer_tensor *x = in[0], *wt = in[1], *b = n_in > 2 ? in[2] : NULL;
    const dnnl_memory_desc_t *lay = dnnl_in_layout(c, 0);
    float *tmp = NULL;
    size_t tmp_bytes = 0;
    bool built = false;
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || wt->dtype != CL_INFER_FLOAT || x->rank != 4 || wt->rank != 4 ||
        !dnnl_input_is_init(c, 1) || (b != NULL && (!dnnl_input_is_init(c, 2) || b->dtype != CL_INFER_FLOAT)))
        return CL_OK;
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t M = wt->dims[1], KH = wt->dims[2], KW = wt->dims[3];
    const int64_t od[4] = {N, M, H * KH, W * KW};
    dnnl_memory_desc_t cl_md;
    dnnl_dims_t xd;
    dnnl_dims(xd, 4, x->dims);
    if (dnnl_memory_desc_init_by_tag(&cl_md, 4, xd, dnnl_f32, dnnl_acdb) != dnnl_success || wt->dims[0] != C ||
        M <= 0 || KH <= 0 || KW <= 0)
        return CL_OK;
    infer_value *cat;
    int64_t ctot, choff;
    CL_GUARD(dnnl_upconv_concat(c, od, &cat, &ctot, &choff));
    int64_t key[3 * CL_INFER_MAX_RANK + 6];
    size_t key_n = 0;
    dnnl_key_add(key, &key_n, x);
    dnnl_key_add(key, &key_n, wt);
    dnnl_key_add(key, &key_n, b);
    key[key_n++] = ctot;
    key[key_n++] = -7; /* never the key of dnnl_conv_common's primitive */
    dnnl_cache *k = dnnl_cache_lookup(c, key, key_n);
    if (k == NULL) {
        int64_t group;
        infer_window w;
        CL_GUARD(infer_attr_int(c->node, "group", 1, &group));
        if (group != 1 || (b != NULL && (b->rank != 1 || b->dims[0] != M))) return CL_OK;
        if (infer_convt_window(c, x, wt, &group, &w) != CL_OK) {
            cl_error_clear(); /* the reference reports it */
            return CL_OK;
        }
        for (int i = 1; i < SP; i++)
            if (w.k[i] != w.stride[i] || w.dil[i] != 1 || w.pad_b[i] != 0 || w.pad_e[i] != 0 ||
                w.out[i] != w.in[i] * w.k[i])
                return CL_OK;
        k = calloc(1, sizeof(*k));
        CL_ENSURE(k != NULL, CL_ERR_NOMEM, "out of memory");
        *c->fast = k;
        memcpy(k->key, key, key_n * sizeof(int64_t));
        k->key_n = key_n;
        k->upconv = true;
        k->up_kh = KH;
        k->up_kw = KW;
        k->up_wo = od[3];
        k->up_cs = ctot;
        k->out_rank = 4;
        memcpy(k->out_dims, od, sizeof(od));
        /* src: the channels-last input as [N * H, W, C]; dst of tap (i, j):
         * [N * H, W, M] with strides (kh * Wo * Cs, kw * Cs, 1). */
        dnnl_dims_t sd = {N * H, W, C}, ss = {W * C, C, 1}, wd = {1, C, M}, dd = {N * H, W, M};
        dnnl_dims_t ds = {KH * od[3] * ctot, KW * ctot, 1}, bd = {1, 1, M}, odd, cd = {N, ctot, od[2], od[3]};
        DNNL_TRY(dnnl_memory_desc_init_by_strides(&k->src_md, 3, sd, dnnl_f32, ss), "memory descriptor");
        DNNL_TRY(dnnl_memory_desc_init_by_strides(&k->mm_dst_md, 3, dd, dnnl_f32, ds), "memory descriptor");
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->w_user_md, 3, wd, dnnl_f32, dnnl_abc), "memory descriptor");
        dnnl_memory_desc_t w_any;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, 3, wd, dnnl_f32, dnnl_format_tag_any), "memory descriptor");
        if (b != NULL) {
            DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->b_md, 3, bd, dnnl_f32, dnnl_abc), "memory descriptor");
            k->has_bias = true;
        }
        dnnl_dims(odd, 4, od);
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->dst_md, 4, odd, dnnl_f32, dnnl_acdb), "memory descriptor");
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->cat_md, 4, cd, dnnl_f32, dnnl_acdb), "memory descriptor");
        k->dst_plain = false;
        dnnl_matmul_desc_t desc;
        DNNL_TRY(dnnl_matmul_desc_init(&desc, &k->src_md, &w_any, b ? &k->b_md : NULL, &k->mm_dst_md),
                 "matmul descriptor");
        dnnl_primitive_desc_t pd = NULL;
        dnnl_primitive_attr_t attr = NULL;
        CL_GUARD_GOTO(dnnl_attr_make(&attr));
        dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, ((infer_dnnl *)c->m->dnnl)->eng, NULL);
        dnnl_primitive_attr_destroy(attr);
        if (st != dnnl_success) CL_FAIL_GOTO(CL_ERR_INTERNAL, "oneDNN matmul descriptor failed (status %d)", (int)st);
        /* A reference matmul would be slower than the deconvolution. */
        bool is_ref = dnnl_impl_is_ref(pd);
        const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (!is_ref && wq != NULL) {
            k->w_md = *wq;
            k->has_sp = sp != NULL && dnnl_memory_desc_get_size(sp) > 0;
            if (k->has_sp) k->sp_md = *sp;
            st = dnnl_primitive_create(&k->prim, pd);
        }
        dnnl_primitive_desc_destroy(pd);
        CL_ENSURE_GOTO(!is_ref && wq != NULL && st == dnnl_success, CL_ERR_INTERNAL, "no fast oneDNN matmul");
        /* Weights: every kernel tap packed and reordered once (initializers). */
        CL_GUARD_GOTO(dnnl_reorder_make(c->m->dnnl, &k->w_user_md, &k->w_md, &k->w_reorder));
        k->up_w_bytes = (dnnl_memory_desc_get_size(&k->w_md) + 63) / 64 * 64;
        k->w_bytes = k->up_w_bytes * (size_t)(KH * KW);
        CL_GUARD_GOTO(dnnl_weights_alloc(c, k->w_bytes, &k->w_buf));
        tmp_bytes = (size_t)(C * M) * sizeof(float);
        tmp = malloc(tmp_bytes);
        CL_ENSURE_GOTO(tmp != NULL, CL_ERR_NOMEM, "out of memory packing weights");
        for (int64_t i = 0; i < KH; i++)
            for (int64_t j = 0; j < KW; j++)
                CL_GUARD_GOTO(
                    dnnl_upconv_pack(c, k, wt, i, j, tmp, (char *)k->w_buf + (size_t)(i * KW + j) * k->up_w_bytes));
        DNNL_TRY(dnnl_stream_wait(((infer_dnnl *)c->m->dnnl)->stream), "weights reorder");
        k->w_from = wt->data;
    }
    built = true; /* from here on a failure is an error, not a configuration to fall back from */
    const void *src;
    CL_GUARD_GOTO(dnnl_upconv_src(c, k, lay, &cl_md, x, &src));
    if (cat != NULL) {
        CL_GUARD_GOTO(infer_tensor_new_bytes(c->mem, &cat->t, CL_INFER_FLOAT, 4, k->cat_md.dims,
                                             dnnl_memory_desc_get_size(&k->cat_md)));
        CL_GUARD_GOTO(dnnl_upconv_concat_fill(c, k, cat->t.data));
        CL_GUARD_GOTO(dnnl_upconv_run(c, k, src, b ? b->data : NULL, (float *)cat->t.data + choff));
        cat->layout = &k->cat_md;
    } else {
        CL_GUARD_GOTO(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, 4, k->out_dims,
                                             dnnl_memory_desc_get_size(&k->dst_md)));
        CL_GUARD_GOTO(dnnl_upconv_run(c, k, src, b ? b->data : NULL, out[0]->data));
        dnnl_out_layout(c, 0, k);
    }
    *handled = true;
    goto done;
out:
    if (!built) {
        /* A configuration oneDNN refused: forget it; the deconvolution path runs. */
        dnnl_cache_free(c->m, *c->fast);
        *c->fast = NULL;
        cl_error_clear();
        rc = CL_OK;
    }
done:
    if (tmp != NULL) {
        cl_memzero(tmp, tmp_bytes);
        free(tmp);
    }
    return rc;
}

cl_status infer_dnnl_convtranspose(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                   bool *handled)
{
    CL_GUARD(dnnl_upconv(c, in, n_in, out, handled));
    if (*handled) return CL_OK;
    return dnnl_conv_common(c, in, n_in, out, true, handled);
}

/* Creates the primitive of an op without weights (pooling, concat) from its
 * descriptor and notes its destination layout and scratchpad. */
static cl_status dnnl_prim_finish(dnnl_cache *k, const_dnnl_primitive_desc_t pd)
{
    cl_status rc = CL_OK;
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
    CL_ENSURE_GOTO(dst != NULL, CL_ERR_INTERNAL, "oneDNN primitive lacks a destination descriptor");
    k->dst_md = *dst;
    k->dst_user_md = *dst;
    k->dst_plain = dnnl_md_is_plain(dst);
    const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    k->has_sp = sp != NULL && dnnl_memory_desc_get_size(sp) > 0;
    if (k->has_sp) k->sp_md = *sp;
    DNNL_TRY(dnnl_primitive_create(&k->prim, pd), "primitive creation");
out:
    return rc;
}

/* Runs a primitive without weights on n_src sources (each in k->in_mds or, for
 * one source, k->src_md) into out's buffer. */
static cl_status dnnl_exec_plain(infer_ctx *c, dnnl_cache *k, int n_src, const int *src_args,
                                 const cl_infer_tensor *const *srcs, cl_infer_tensor *out)
{
    cl_status rc = CL_OK;
    infer_dnnl *d = c->m->dnnl;
    enum { MAX_ARGS = 66 };
    dnnl_memory_t mems[MAX_ARGS] = {0};
    dnnl_exec_arg_t args[MAX_ARGS];
    int n = 0;
    void *sp = NULL;
    CL_ENSURE(n_src + 2 <= MAX_ARGS, CL_ERR_INTERNAL, "too many oneDNN arguments");
    dnnl_threads(c->m);
    for (int i = 0; i < n_src; i++) {
        const dnnl_memory_desc_t *md = k->in_mds ? &k->in_mds[i] : &k->src_md;
        DNNL_TRY(dnnl_memory_create(&mems[n], md, d->eng, srcs[i]->data), "memory");
        args[n].arg = src_args[i];
        args[n].memory = mems[n];
        n++;
    }
    DNNL_TRY(dnnl_memory_create(&mems[n], &k->dst_md, d->eng, out->data), "memory");
    args[n].arg = DNNL_ARG_DST;
    args[n].memory = mems[n];
    n++;
    if (k->has_sp) {
        CL_GUARD_GOTO(dnnl_slot_get(c, DNNL_SLOT_SCRATCHPAD, &k->sp_md, &sp));
        DNNL_TRY(dnnl_memory_create(&mems[n], &k->sp_md, d->eng, sp), "memory");
        args[n].arg = DNNL_ARG_SCRATCHPAD;
        args[n].memory = mems[n];
        n++;
    }
    DNNL_TRY(dnnl_primitive_execute(k->prim, d->stream, n, args), "execution");
    DNNL_TRY(dnnl_stream_wait(d->stream), "execution");
out:
    for (int i = 0; i < n; i++) dnnl_memory_destroy(mems[i]);
    return rc;
}

/* The descriptor of input i as it is held: its layout, or plain. */
static cl_status dnnl_in_md(const infer_ctx *c, int i, const cl_infer_tensor *t, dnnl_memory_desc_t *md)
{
    const dnnl_memory_desc_t *lay = dnnl_in_layout(c, i);
    if (lay != NULL) {
        *md = *lay;
        return CL_OK;
    }
    dnnl_dims_t dims;
    dnnl_dims(dims, t->rank, t->dims);
    if (dnnl_memory_desc_init_by_tag(md, t->rank, dims, dnnl_f32, dnnl_plain_tag(t->rank)) != dnnl_success)
        CL_FAIL(CL_ERR_INTERNAL, "oneDNN memory descriptor of a %d-D tensor", t->rank);
    return CL_OK;
}

/* The node's primitive for source x held as *src (the key adds `extra`,
 * values the primitive was made for beyond x's shape), or NULL after
 * dropping one made for another shape or layout. */
static dnnl_cache *dnnl_single_lookup(infer_ctx *c, const cl_infer_tensor *x, const dnnl_memory_desc_t *src,
                                      const int64_t *extra, size_t n_extra, int64_t *key, size_t *key_n)
{
    *key_n = 0;
    dnnl_key_add(key, key_n, x);
    for (size_t i = 0; i < n_extra; i++) key[(*key_n)++] = extra[i];
    dnnl_cache *k = dnnl_cache_lookup(c, key, *key_n);
    if (k != NULL && !dnnl_memory_desc_equal(&k->src_md, src)) {
        dnnl_cache_free(c->m, k);
        *c->fast = k = NULL;
    }
    return k;
}

/* Makes the node's primitive from desc; *made = false (no error) when oneDNN
 * has only its reference kernel for it. */
static cl_status dnnl_single_make(infer_ctx *c, const dnnl_memory_desc_t *src, const int64_t *key, size_t key_n,
                                  int out_rank, const int64_t *od, const_dnnl_op_desc_t desc, bool *made)
{
    cl_status rc = CL_OK;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    *made = false;
    CL_GUARD(dnnl_attr_make(&attr));
    dnnl_status_t st = dnnl_primitive_desc_create(&pd, desc, attr, ((infer_dnnl *)c->m->dnnl)->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return CL_OK;
    if (dnnl_impl_is_ref(pd)) goto out;
    dnnl_cache *k = calloc(1, sizeof(*k));
    CL_ENSURE_GOTO(k != NULL, CL_ERR_NOMEM, "out of memory");
    *c->fast = k;
    memcpy(k->key, key, key_n * sizeof(int64_t));
    k->key_n = key_n;
    k->out_rank = out_rank;
    memcpy(k->out_dims, od, (size_t)out_rank * sizeof(int64_t));
    k->src_md = *src;
    rc = dnnl_prim_finish(k, pd);
    if (rc != CL_OK) {
        dnnl_cache_free(c->m, k);
        *c->fast = NULL;
        goto out;
    }
    *made = true;
out:
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

/* Runs the node's primitive on n_src sources into a fresh out[0]. */
static cl_status dnnl_single_run(infer_ctx *c, int n_src, const int *args, const cl_infer_tensor *const *srcs,
                                 cl_infer_tensor **out, bool *handled)
{
    dnnl_cache *k = *c->fast;
    CL_GUARD(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, k->out_rank, k->out_dims,
                                    dnnl_memory_desc_get_size(&k->dst_md)));
    CL_GUARD(dnnl_exec_plain(c, k, n_src, args, srcs, out[0]));
    dnnl_out_layout(c, 0, k);
    *handled = true;
    return CL_OK;
}

/* dnnl_single_run on in[0] alone. */
static cl_status dnnl_single_run_src(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out, bool *handled)
{
    const int arg = DNNL_ARG_SRC;
    return dnnl_single_run(c, 1, &arg, (const cl_infer_tensor *const *)in, out, handled);
}

/* MaxPool (without the Indices output) and AveragePool, 1-3 spatial dims, on
 * the input's layout: oneDNN's max pooling skips padding as ONNX does (padding
 * never wins); its average pooling divides by the in-bounds positions
 * (count_include_pad 0) or by every position of the window
 * (dnnl_pooling_avg_include_padding), which is ONNX's count_include_pad 1
 * only when the window never reaches past the declared end padding (ceil_mode
 * may make it: ONNX does not count those). */
static cl_status dnnl_pool(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out, dnnl_alg_kind_t alg,
                           bool *handled)
{
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 3 || x->rank > 5 || cl_infer_tensor_count(x) == 0) return CL_OK;
    dnnl_memory_desc_t src;
    int64_t key[3 * CL_INFER_MAX_RANK + 4];
    size_t key_n;
    CL_GUARD(dnnl_in_md(c, 0, x, &src));
    if (dnnl_single_lookup(c, x, &src, NULL, 0, key, &key_n) == NULL) {
        infer_window w;
        int64_t od[CL_INFER_MAX_RANK];
        if (infer_pool_setup(c, x, &w, od) != CL_OK) {
            cl_error_clear(); /* the reference kernel reports it */
            return CL_OK;
        }
        dnnl_dims_t strides = {0}, kernel = {0}, dil = {0}, pl = {0}, pr = {0}, dd = {0};
        for (int i = 0; i < w.nsp; i++) {
            int j = SP - w.nsp + i;
            strides[i] = w.stride[j];
            kernel[i] = w.k[j];
            dil[i] = w.dil[j] - 1; /* oneDNN counts the gaps */
            pl[i] = w.pad_b[j];
            /* The end padding that makes oneDNN's output size (floor division)
             * ONNX's, ceil_mode included: what the last window needs, or none
             * when the input's tail is not covered by any window. */
            int64_t ext = (w.k[j] - 1) * w.dil[j] + 1;
            pr[i] = (w.out[j] - 1) * w.stride[j] + ext - w.in[j] - w.pad_b[j];
            if (pr[i] < 0) pr[i] = 0;
            /* A window wholly in the padding has no ONNX value oneDNN would give. */
            if ((w.in[j] + pl[i] + pr[i] - ext) / w.stride[j] + 1 != w.out[j] || pl[i] >= ext || pr[i] >= ext)
                return CL_OK;
            if (alg == dnnl_pooling_avg_include_padding && pr[i] > w.pad_e[j]) return CL_OK;
        }
        dnnl_dims(dd, x->rank, od);
        dnnl_memory_desc_t dst_any;
        dnnl_pooling_v2_desc_t desc;
        bool made;
        if (dnnl_memory_desc_init_by_tag(&dst_any, x->rank, dd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
            dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, &dst_any, strides, kernel, dil,
                                              pl, pr) != dnnl_success)
            return CL_OK;
        CL_GUARD(dnnl_single_make(c, &src, key, key_n, x->rank, od, &desc, &made));
        if (!made) return CL_OK;
    }
    return dnnl_single_run_src(c, in, out, handled);
}

cl_status infer_dnnl_maxpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                             bool *handled)
{
    *handled = false;
    if (n_out > 1 && out[1] != NULL) return CL_OK; /* Indices: the reference kernel */
    return dnnl_pool(c, in, out, dnnl_pooling_max, handled);
}

cl_status infer_dnnl_avgpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                             bool *handled)
{
    int64_t cip;
    CL_GUARD(infer_attr_int(c->node, "count_include_pad", 0, &cip));
    return dnnl_pool(c, in, out, cip ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding, handled);
}

/* --- Primitives of one activation source: global pooling, eltwise, softmax,
 * batch normalization. Each runs on the source's layout as it is held and
 * leaves its output in the layout oneDNN gives it (the source's, for all but
 * pooling); a configuration oneDNN has only a reference kernel for stays
 * with ours. */

/* GlobalAveragePool: an average pooling whose window is the whole plane. */
cl_status infer_dnnl_globalavgpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                   bool *handled)
{
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 3 || x->rank > 5 || cl_infer_tensor_count(x) == 0) return CL_OK;
    dnnl_memory_desc_t src;
    int64_t key[3 * CL_INFER_MAX_RANK + 4];
    size_t key_n;
    CL_GUARD(dnnl_in_md(c, 0, x, &src));
    if (dnnl_single_lookup(c, x, &src, NULL, 0, key, &key_n) == NULL) {
        int nsp = x->rank - 2;
        int64_t od[CL_INFER_MAX_RANK] = {x->dims[0], x->dims[1], 1, 1, 1};
        dnnl_dims_t kernel = {0}, strides = {0}, zero = {0}, dd;
        for (int i = 0; i < nsp; i++) {
            kernel[i] = x->dims[2 + i];
            strides[i] = 1;
        }
        dnnl_dims(dd, x->rank, od);
        dnnl_memory_desc_t dst_any;
        dnnl_pooling_v2_desc_t desc;
        bool made;
        if (dnnl_memory_desc_init_by_tag(&dst_any, x->rank, dd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
            dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_avg_exclude_padding, &src,
                                              &dst_any, strides, kernel, zero, zero, zero) != dnnl_success)
            return CL_OK;
        CL_GUARD(dnnl_single_make(c, &src, key, key_n, x->rank, od, &desc, &made));
        if (!made) return CL_OK;
    }
    return dnnl_single_run_src(c, in, out, handled);
}

/* The unary ops oneDNN's eltwise computes as ONNX defines them (alpha, beta
 * as oneDNN's; LeakyRelu's alpha from the node). */
static bool dnnl_eltwise_of(const infer_node *n, dnnl_alg_kind_t *alg, float *alpha, float *beta)
{
    static const struct {
        const char *op;
        dnnl_alg_kind_t alg;
        float alpha, beta;
    } map[] = {
        {"Relu", dnnl_eltwise_relu, 0, 0},        {"LeakyRelu", dnnl_eltwise_relu, 0.01f, 0},
        {"Sigmoid", dnnl_eltwise_logistic, 0, 0}, {"Tanh", dnnl_eltwise_tanh, 0, 0},
        {"Exp", dnnl_eltwise_exp, 0, 0},          {"Log", dnnl_eltwise_log, 0, 0},
        {"Sqrt", dnnl_eltwise_sqrt, 0, 0},        {"Abs", dnnl_eltwise_abs, 0, 0},
        {"Neg", dnnl_eltwise_linear, -1, 0},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(n->op, map[i].op) != 0) continue;
        *alg = map[i].alg;
        *alpha = map[i].alpha;
        *beta = map[i].beta;
        if (map[i].alg == dnnl_eltwise_relu && map[i].alpha != 0 &&
            infer_attr_float(n, "alpha", 0.01f, alpha) != CL_OK) {
            cl_error_clear(); /* the reference kernel reports it */
            return false;
        }
        return true;
    }
    return false;
}

/* One eltwise primitive over x, whatever its rank and layout. */
static cl_status dnnl_eltwise_run(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out, dnnl_alg_kind_t alg,
                                  float alpha, float beta, bool *handled)
{
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 1 || x->rank > 6 || cl_infer_tensor_count(x) == 0) return CL_OK;
    dnnl_memory_desc_t src;
    int64_t key[3 * CL_INFER_MAX_RANK + 4], extra[2];
    size_t key_n;
    /* Clip's bounds may be computed: the primitive is made for the values it got. */
    uint32_t ab[2];
    memcpy(&ab[0], &alpha, sizeof(float));
    memcpy(&ab[1], &beta, sizeof(float));
    extra[0] = ab[0];
    extra[1] = ab[1];
    CL_GUARD(dnnl_in_md(c, 0, x, &src));
    if (dnnl_single_lookup(c, x, &src, extra, 2, key, &key_n) == NULL) {
        dnnl_eltwise_desc_t desc;
        bool made;
        if (dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, alpha, beta) != dnnl_success)
            return CL_OK;
        CL_GUARD(dnnl_single_make(c, &src, key, key_n, x->rank, x->dims, &desc, &made));
        if (!made) return CL_OK;
    }
    return dnnl_single_run_src(c, in, out, handled);
}

cl_status infer_dnnl_unary(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                           bool *handled)
{
    dnnl_alg_kind_t alg;
    float alpha, beta;
    *handled = false;
    if (!dnnl_eltwise_of(c->node, &alg, &alpha, &beta)) return CL_OK;
    return dnnl_eltwise_run(c, in, out, alg, alpha, beta, handled);
}

/* Clip as oneDNN's clip_v2, min(max(x, lo), hi): the bounds from the
 * attributes (opset < 11) or the optional scalar inputs. Infinite bounds
 * become the largest floats (the same result on finite inputs; NaN stays
 * NaN either way). */
cl_status infer_dnnl_clip(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
{
    float lo = -FLT_MAX, hi = FLT_MAX;
    *handled = false;
    if (c->opset < 11) {
        if (infer_attr_float(c->node, "min", -FLT_MAX, &lo) != CL_OK ||
            infer_attr_float(c->node, "max", FLT_MAX, &hi) != CL_OK) {
            cl_error_clear();
            return CL_OK;
        }
    } else {
        for (int i = 1; i < n_in && i < 3; i++) {
            if (in[i] == NULL) continue;
            if (in[i]->dtype != CL_INFER_FLOAT || cl_infer_tensor_count(in[i]) != 1) return CL_OK;
            float v = ((const float *)in[i]->data)[0];
            if (i == 1)
                lo = v;
            else
                hi = v;
        }
    }
    /* min > max gives max in ONNX's reference (min applied first); clip_v2
     * would too, but says nothing of it: leave that case to our kernel. */
    if (!(lo <= hi)) return CL_OK;
    if (lo < -FLT_MAX) lo = -FLT_MAX;
    if (hi > FLT_MAX) hi = FLT_MAX;
    return dnnl_eltwise_run(c, in, out, dnnl_eltwise_clip_v2, lo, hi, handled);
}

/* Softmax and LogSoftmax. From opset 13 along one axis, any layout; before,
 * over the input flattened to [outer, inner] at the axis, which is one axis
 * only when the axis is the last (plain inputs then). */
cl_status infer_dnnl_softmax(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                             bool *handled)
{
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 1 || x->rank > 6 || cl_infer_tensor_count(x) == 0) return CL_OK;
    int64_t axis;
    if (infer_attr_int(c->node, "axis", c->opset < 13 ? 1 : -1, &axis) != CL_OK) {
        cl_error_clear();
        return CL_OK;
    }
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis >= x->rank) return CL_OK;
    dnnl_memory_desc_t src;
    CL_GUARD(dnnl_in_md(c, 0, x, &src));
    if (c->opset < 13 && (axis != x->rank - 1 || !dnnl_md_is_plain(&src))) return CL_OK;
    int64_t key[3 * CL_INFER_MAX_RANK + 4], extra[1] = {axis};
    size_t key_n;
    if (dnnl_single_lookup(c, x, &src, extra, 1, key, &key_n) == NULL) {
        dnnl_softmax_v2_desc_t desc;
        dnnl_alg_kind_t alg = strcmp(c->node->op, "LogSoftmax") == 0 ? dnnl_softmax_log : dnnl_softmax_accurate;
        bool made;
        if (dnnl_softmax_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, &src, (int)axis) !=
            dnnl_success)
            return CL_OK;
        CL_GUARD(dnnl_single_make(c, &src, key, key_n, x->rank, x->dims, &desc, &made));
        if (!made) return CL_OK;
    }
    return dnnl_single_run_src(c, in, out, handled);
}

/* BatchNormalization (inference: the given mean and variance) on any layout;
 * a BatchNormalization after a Conv is usually folded into it instead. */
cl_status infer_dnnl_batchnorm(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                               bool *handled)
{
    cl_status rc = CL_OK;
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 2 || x->rank > 5 || cl_infer_tensor_count(x) == 0 || n_out > 1)
        return CL_OK;
    for (int i = 1; i < 5; i++)
        if (in[i] == NULL || in[i]->dtype != CL_INFER_FLOAT || in[i]->rank != 1 || in[i]->dims[0] != x->dims[1])
            return CL_OK;
    int64_t training;
    float eps;
    if (infer_attr_int(c->node, "training_mode", 0, &training) != CL_OK ||
        infer_attr_float(c->node, "epsilon", 1e-5f, &eps) != CL_OK) {
        cl_error_clear();
        return CL_OK;
    }
    if (training != 0) return CL_OK;
    dnnl_memory_desc_t src;
    CL_GUARD(dnnl_in_md(c, 0, x, &src));
    int64_t key[3 * CL_INFER_MAX_RANK + 4];
    size_t key_n;
    if (dnnl_single_lookup(c, x, &src, NULL, 0, key, &key_n) == NULL) {
        dnnl_batch_normalization_desc_t desc;
        bool made;
        if (dnnl_batch_normalization_forward_desc_init(&desc, dnnl_forward_inference, &src, eps,
                                                       dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift) !=
            dnnl_success)
            return CL_OK;
        CL_GUARD(dnnl_single_make(c, &src, key, key_n, x->rank, x->dims, &desc, &made));
        if (!made) return CL_OK;
        dnnl_cache *k = *c->fast;
        k->in_mds = calloc(5, sizeof(*k->in_mds));
        CL_ENSURE_GOTO(k->in_mds != NULL, CL_ERR_NOMEM, "out of memory");
        k->n_in_mds = 5;
        k->in_mds[0] = src;
        dnnl_dims_t cd = {x->dims[1]};
        for (int i = 1; i < 5; i++)
            DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->in_mds[i], 1, cd, dnnl_f32, dnnl_a), "memory descriptor");
    }
    /* ONNX orders them X, scale, B, mean, var. */
    static const int args[5] = {DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
    return dnnl_single_run(c, 5, args, (const cl_infer_tensor *const *)in, out, handled);
out:
    /* A half-made primitive must not be found by the next run. */
    dnnl_cache_free(c->m, *c->fast);
    *c->fast = NULL;
    return rc;
}

/* Concat of float tensors of rank 3-5 in whatever layouts they are held;
 * oneDNN picks the destination's layout (its concat copies each source into
 * its slice, reordering when the layouts differ). */
cl_status infer_dnnl_concat(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                            bool *handled)
{
    cl_status rc = CL_OK;
    *handled = false;
    if (out[0]->data != NULL) {
        /* A ConvTranspose feeding this Concat wrote its output (dnnl_upconv_concat). */
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
        any_layout |= dnnl_in_layout(c, i) != NULL;
    }
    /* Plain sources: the reference kernel's copies are as fast. */
    if (!any_layout) return CL_OK;
    /* The cache holds the sources' descriptors (shape and layout) instead of a key. */
    dnnl_cache *k = *c->fast;
    bool same = k != NULL && k->in_mds != NULL && k->n_in_mds == n_in;
    for (int i = 0; same && i < n_in; i++) {
        dnnl_memory_desc_t md;
        CL_GUARD(dnnl_in_md(c, i, in[i], &md));
        same = dnnl_memory_desc_equal(&md, &k->in_mds[i]) != 0;
    }
    if (!same) {
        /* New shapes or layouts: the primitive is made for one set. */
        dnnl_cache_free(c->m, k);
        *c->fast = k = NULL;
        k = calloc(1, sizeof(*k));
        CL_ENSURE(k != NULL, CL_ERR_NOMEM, "out of memory");
        *c->fast = k;
        k->in_mds = calloc((size_t)n_in, sizeof(*k->in_mds));
        CL_ENSURE_GOTO(k->in_mds != NULL, CL_ERR_NOMEM, "out of memory");
        k->n_in_mds = n_in;
        for (int i = 0; i < n_in; i++) CL_GUARD_GOTO(dnnl_in_md(c, i, in[i], &k->in_mds[i]));
        k->out_rank = x->rank;
        memcpy(k->out_dims, od, sizeof(od));
        dnnl_primitive_desc_t pd = NULL;
        dnnl_primitive_attr_t attr = NULL;
        CL_GUARD_GOTO(dnnl_attr_make(&attr));
        dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, NULL, n_in, (int)axis, k->in_mds, attr,
                                                             ((infer_dnnl *)c->m->dnnl)->eng);
        dnnl_primitive_attr_destroy(attr);
        if (st != dnnl_success) CL_FAIL_GOTO(CL_ERR_INTERNAL, "oneDNN concat descriptor failed (status %d)", (int)st);
        rc = dnnl_prim_finish(k, pd);
        dnnl_primitive_desc_destroy(pd);
        CL_GUARD_GOTO(rc);
    }
    CL_GUARD(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, k->out_rank, k->out_dims,
                                    dnnl_memory_desc_get_size(&k->dst_md)));
    int src_args[64];
    for (int i = 0; i < n_in; i++) src_args[i] = DNNL_ARG_MULTIPLE_SRC + i;
    CL_GUARD(dnnl_exec_plain(c, k, n_in, src_args, (const cl_infer_tensor *const *)in, out[0]));
    dnnl_out_layout(c, 0, k);
    *handled = true;
    return CL_OK;
out:
    dnnl_cache_free(c->m, *c->fast);
    *c->fast = NULL;
    cl_error_clear();
    return CL_OK;
}

cl_status infer_dnnl_to_plain(cl_infer_model *m, infer_value *v)
{
    cl_status rc = CL_OK;
    const dnnl_memory_desc_t *lay = v->layout;
    if (lay == NULL) return CL_OK;
    if (v->t.data == NULL) {
        v->layout = NULL;
        return CL_OK;
    }
    infer_dnnl *d = m->dnnl;
    cl_infer_tensor plain = {0};
    dnnl_primitive_t r = NULL;
    dnnl_memory_desc_t to;
    dnnl_dims_t dims;
    dnnl_dims(dims, v->t.rank, v->t.dims);
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&to, v->t.rank, dims, dnnl_f32, dnnl_plain_tag(v->t.rank)),
             "memory descriptor");
    CL_GUARD_GOTO(infer_tensor_new(&m->mem, &plain, v->t.dtype, v->t.rank, v->t.dims));
    dnnl_threads(m);
    CL_GUARD_GOTO(dnnl_reorder_make(d, lay, &to, &r));
    CL_GUARD_GOTO(dnnl_reorder_run(d, r, lay, v->t.data, &to, plain.data));
    DNNL_TRY(dnnl_stream_wait(d->stream), "reorder");
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

/* Row-major strides of dims, or those of the transposed matrix in the last two. */
static void dnnl_strides(dnnl_dims_t st, int r, const dnnl_dims_t d, bool trans)
{
    int64_t s = 1;
    for (int i = r - 1; i >= 0; i--) {
        st[i] = s;
        s *= d[i];
    }
    if (trans) {
        st[r - 1] = d[r - 2];
        st[r - 2] = 1;
    }
}

/* A [batch.., M, K] x [batch.., K, N] (+ bias) through dnnl_matmul. */
static cl_status dnnl_matmul_common(infer_ctx *c, const cl_infer_tensor *a, bool ta, const cl_infer_tensor *bm, bool tb,
                                    const cl_infer_tensor *bias, int r, const int64_t *ad, const int64_t *bdm,
                                    const int64_t *od, cl_infer_tensor *out, bool *handled)
{
    cl_status rc = CL_OK;
    int64_t key[3 * CL_INFER_MAX_RANK + 4];
    size_t key_n = 0;
    dnnl_key_add(key, &key_n, a);
    dnnl_key_add(key, &key_n, bm);
    dnnl_key_add(key, &key_n, bias);
    dnnl_cache *k = dnnl_cache_lookup(c, key, key_n);
    if (k == NULL) {
        k = calloc(1, sizeof(*k));
        CL_ENSURE(k != NULL, CL_ERR_NOMEM, "out of memory");
        *c->fast = k;
        memcpy(k->key, key, key_n * sizeof(int64_t));
        k->key_n = key_n;
        k->out_rank = r;
        memcpy(k->out_dims, od, (size_t)r * sizeof(int64_t));
        dnnl_dims_t sa, sb, so, st, w_any_d;
        dnnl_dims(sa, r, ad);
        dnnl_dims(sb, r, bdm);
        dnnl_dims(so, r, od);
        dnnl_strides(st, r, sa, ta);
        DNNL_TRY(dnnl_memory_desc_init_by_strides(&k->src_md, r, sa, dnnl_f32, st), "memory descriptor");
        dnnl_strides(st, r, sb, tb);
        DNNL_TRY(dnnl_memory_desc_init_by_strides(&k->w_user_md, r, sb, dnnl_f32, st), "memory descriptor");
        dnnl_dims(w_any_d, r, bdm);
        dnnl_memory_desc_t w_any;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, r, w_any_d, dnnl_f32,
                                              dnnl_input_is_init(c, 1) ? dnnl_format_tag_any : dnnl_plain[r]),
                 "memory descriptor");
        if (!dnnl_input_is_init(c, 1)) w_any = k->w_user_md;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->dst_md, r, so, dnnl_f32, dnnl_plain[r]), "memory descriptor");
        if (bias != NULL) {
            dnnl_dims_t bd;
            for (int i = 0; i < r; i++) bd[i] = 1;
            bd[r - 1] = od[r - 1];
            if (bias->rank == 2) bd[r - 2] = bias->dims[0];
            DNNL_TRY(dnnl_memory_desc_init_by_tag(&k->b_md, r, bd, dnnl_f32, dnnl_plain[r]), "memory descriptor");
            k->has_bias = true;
        }
        dnnl_matmul_desc_t desc;
        DNNL_TRY(dnnl_matmul_desc_init(&desc, &k->src_md, &w_any, bias ? &k->b_md : NULL, &k->dst_md),
                 "matmul descriptor");
        CL_GUARD_GOTO(dnnl_prim_make(c, k, &desc, false));
    }
    void *wp;
    CL_GUARD(dnnl_weights_ready(c, k, bm, &wp));
    CL_GUARD(infer_tensor_new(c->mem, out, CL_INFER_FLOAT, k->out_rank, k->out_dims));
    CL_GUARD(dnnl_run(c, k, a->data, wp, bias ? bias->data : NULL, out->data, DNNL_ARG_SRC, DNNL_ARG_WEIGHTS));
    *handled = true;
    return CL_OK;
out:
    dnnl_cache_free(c->m, *c->fast);
    *c->fast = NULL;
    cl_error_clear();
    return CL_OK;
}

/* Gemm with alpha = 1 and a bias C (beta = 1) of shape [N], [1, N] or [M, N]. */
cl_status infer_dnnl_gemm(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
{
    const cl_infer_tensor *a = in[0], *b = in[1], *cc = n_in > 2 ? in[2] : NULL;
    *handled = false;
    int64_t ta, tb;
    float alpha, beta;
    CL_GUARD(infer_attr_int(c->node, "transA", 0, &ta));
    CL_GUARD(infer_attr_int(c->node, "transB", 0, &tb));
    CL_GUARD(infer_attr_float(c->node, "alpha", 1.0f, &alpha));
    CL_GUARD(infer_attr_float(c->node, "beta", 1.0f, &beta));
    if (a->dtype != CL_INFER_FLOAT || b->dtype != CL_INFER_FLOAT || a->rank != 2 || b->rank != 2 || alpha != 1.0f)
        return CL_OK;
    int64_t M = ta ? a->dims[1] : a->dims[0], K = ta ? a->dims[0] : a->dims[1];
    int64_t Kb = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
    if (K != Kb || M == 0 || N == 0 || K == 0) return CL_OK;
    if (cc != NULL) {
        bool shape_ok = cc->dtype == CL_INFER_FLOAT &&
                        ((cc->rank == 1 && cc->dims[0] == N) ||
                         (cc->rank == 2 && cc->dims[1] == N && (cc->dims[0] == 1 || cc->dims[0] == M)));
        if (!shape_ok || beta != 1.0f) return CL_OK;
    }
    int64_t ad[2] = {M, K}, bd[2] = {K, N}, od[2] = {M, N};
    return dnnl_matmul_common(c, a, ta != 0, b, tb != 0, cc, 2, ad, bd, od, out[0], handled);
}

/* MatMul of operands of equal rank >= 2 with equal batch dimensions. */
cl_status infer_dnnl_matmul(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                            bool *handled)
{
    const cl_infer_tensor *a = in[0], *b = in[1];
    *handled = false;
    if (a->dtype != CL_INFER_FLOAT || b->dtype != CL_INFER_FLOAT || a->rank < 2 || a->rank != b->rank || a->rank > 6)
        return CL_OK;
    int r = a->rank;
    for (int i = 0; i < r - 2; i++)
        if (a->dims[i] != b->dims[i]) return CL_OK;
    if (a->dims[r - 1] != b->dims[r - 2] || cl_infer_tensor_count(a) == 0 || cl_infer_tensor_count(b) == 0)
        return CL_OK;
    int64_t od[CL_INFER_MAX_RANK];
    memcpy(od, a->dims, sizeof(od));
    od[r - 1] = b->dims[r - 1];
    return dnnl_matmul_common(c, a, false, b, false, NULL, r, a->dims, b->dims, od, out[0], handled);
}

#else /* no oneDNN in this build */

cl_status infer_dnnl_to_plain(cl_infer_model *m, infer_value *v)
{
    (void)m;
    v->layout = NULL; /* never set without oneDNN */
    return CL_OK;
}

cl_status infer_dnnl_maxpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                             bool *handled)
{
    *handled = false;
    return CL_OK;
}

cl_status infer_dnnl_concat(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                            bool *handled)
{
    *handled = false;
    return CL_OK;
}

#define INFER_DNNL_STUB(fn) \
    cl_status fn(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled) \
    { \
        *handled = false; \
        return CL_OK; \
    }
INFER_DNNL_STUB(infer_dnnl_avgpool)
INFER_DNNL_STUB(infer_dnnl_globalavgpool)
INFER_DNNL_STUB(infer_dnnl_unary)
INFER_DNNL_STUB(infer_dnnl_clip)
INFER_DNNL_STUB(infer_dnnl_softmax)
INFER_DNNL_STUB(infer_dnnl_batchnorm)

bool cl_infer_onednn_available(void) { return false; }

cl_status infer_dnnl_init(cl_infer_model *m) { CL_FAIL(CL_ERR_UNSUPPORTED, "this build has no oneDNN"); }

void infer_dnnl_free(cl_infer_model *m) { (void)m; }

cl_status infer_dnnl_conv(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
{
    *handled = false;
    return CL_OK;
}

cl_status infer_dnnl_convtranspose(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                   bool *handled)
{
    *handled = false;
    return CL_OK;
}

cl_status infer_dnnl_gemm(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
{
    *handled = false;
    return CL_OK;
}

cl_status infer_dnnl_matmul(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                            bool *handled)
{
    *handled = false;
    return CL_OK;
}
#endif
