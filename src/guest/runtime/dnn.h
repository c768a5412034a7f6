/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The oneDNN path's internals (libdnnl-dev, v2 C API), shared by its files and
 * by no other: dnn_layout.c (memory descriptors, the layout a value is held
 * in, reorders: values to plain, weights into a primitive's layout),
 * dnn_core.c (the engine and stream, working buffers, a node's cached
 * primitive, making and running primitives), and one file per primitive kind
 * above them: dnn_conv.c (Conv, ConvTranspose), dnn_matmul.c (Gemm, MatMul),
 * dnn_pool.c (MaxPool, AveragePool, GlobalAveragePool), dnn_single.c (the
 * eltwise ops, Clip, Softmax, LogSoftmax, BatchNormalization), dnn_concat.c.
 * A build without oneDNN compiles dnn_none.c instead of all of them
 * (CLOISTER_ONEDNN=OFF).
 *
 * Our names here start with dnnl_ / DNNL_ like oneDNN's own for now.
 */
#ifndef CLOISTER_INFER_DNN_H
#define CLOISTER_INFER_DNN_H

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include "infer_internal.h"

/* A oneDNN call that must succeed: fails with its status, to the out: label. */
#define DNNL_TRY(expr, what) \
    do { \
        dnnl_status_t dnnl_s_ = (expr); \
        if (dnnl_s_ != dnnl_success) \
            CL_FAIL_GOTO(CL_ERR_INTERNAL, "oneDNN %s failed (status %d)", (what), (int)dnnl_s_); \
    } while (0)

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

/* The model's oneDNN state (cl_infer_model.dnnl): one engine and stream. */
typedef struct infer_dnnl {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_slot slots[DNNL_SLOTS];
} infer_dnnl;

/* What a node's cached primitive is; a lookup finds only its own kind. */
typedef enum dnnl_kind {
    DNNL_KIND_CONV,   /* Conv, and ConvTranspose as a deconvolution (dnn_conv.c) */
    DNNL_KIND_UPCONV, /* ConvTranspose as one matmul per kernel tap (dnn_conv.c) */
    DNNL_KIND_MATMUL,
    DNNL_KIND_POOL,
    DNNL_KIND_ELTWISE, /* also Clip */
    DNNL_KIND_SOFTMAX,
    DNNL_KIND_BATCHNORM,
    DNNL_KIND_CONCAT,
} dnnl_kind;

/* Longest key: three tensors' ranks and dims, and two values more. */
#define DNNL_KEY_MAX (3 * (1 + CL_INFER_MAX_RANK) + 2)

/* A node's primitive, valid for the input shapes (and layouts) in its key:
 * the first member of every kind's cache. Pooling, the eltwise ops and softmax
 * need nothing more; the other kinds' caches add their own members and the
 * drop function that releases them. */
typedef struct dnnl_cache {
    dnnl_kind kind;
    void (*drop)(cl_infer_model *m, struct dnnl_cache *k); /* NULL when there is nothing more */
    int64_t key[DNNL_KEY_MAX];
    size_t key_n;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t src_md; /* the layout the primitive reads its source in */
    dnnl_memory_desc_t dst_md; /* and writes its destination in */
    bool dst_plain;            /* dst_md is plain row-major */
    /* The primitive's scratchpad is ours (user mode), so it can be wiped:
     * oneDNN keeps partial results of the data in it. */
    dnnl_memory_desc_t sp_md;
    bool has_sp;
    int out_rank;
    int64_t out_dims[CL_INFER_MAX_RANK];
} dnnl_cache;

/* Weights as the model holds them and as the primitive wants them. */
typedef struct dnnl_weights {
    dnnl_memory_desc_t user_md, md;
    bool reorder; /* they differ: buf holds the reordered copy */
    void *buf;    /* counted against the model's cap, wiped when freed */
    size_t bytes;
    const void *from; /* the initializer buf was made from */
} dnnl_weights;

/* A primitive with weights (convolution, deconvolution, matmul) and the
 * reorders around it: the source arrives in src_user_md (a plain graph input,
 * or another primitive's layout) and is reordered into src_md when they
 * differ; the destination likewise from dst_md into dst_user_md. */
typedef struct dnnl_wprim {
    dnnl_weights w;
    dnnl_memory_desc_t b_md;
    bool has_bias;
    dnnl_memory_desc_t src_user_md, dst_user_md;
    dnnl_primitive_t src_reorder, dst_reorder; /* NULL when the layouts agree */
    dnnl_memory_desc_t src_plain_md;           /* the source in plain layout */
} dnnl_wprim;

/* OpenMP's thread count for the primitives oneDNN runs next (Debian's oneDNN
 * runs on OpenMP); 0 leaves its default. */
static inline void dnnl_threads(const cl_infer_model *m)
{
    if (m->threads > 0) omp_set_num_threads(m->threads);
}

/* --- dnn_layout.c: descriptors, layouts, reorders ------------------------- */
/* Plain row-major of a rank (1..6). */
dnnl_format_tag_t dnnl_plain_tag(int ndims);
void dnnl_dims(dnnl_dims_t out, int rank, const int64_t *dims);
bool dnnl_md_is_plain(const dnnl_memory_desc_t *md);
/* Whether node input i is an initializer. */
bool dnnl_input_is_init(const infer_ctx *c, int i);
/* The layout node input i is held in: its oneDNN descriptor, or NULL when plain. */
const dnnl_memory_desc_t *dnnl_in_layout(const infer_ctx *c, int i);
/* The descriptor of input i as it is held: its layout, or plain. */
CL_MUST_USE cl_status dnnl_in_md(const infer_ctx *c, int i, const cl_infer_tensor *t, dnnl_memory_desc_t *md);
/* Records the layout the primitive left output i in (k->dst_md lives as long
 * as the cached primitive, i.e. past every reader in this run). */
void dnnl_out_layout(const infer_ctx *c, int i, const dnnl_cache *k);
CL_MUST_USE cl_status dnnl_reorder_make(infer_dnnl *d, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                        dnnl_primitive_t *out);
CL_MUST_USE cl_status dnnl_reorder_run(infer_dnnl *d, dnnl_primitive_t r, const dnnl_memory_desc_t *from_md, void *from,
                                       const dnnl_memory_desc_t *to_md, void *to);
/* Brings node input 1 (the weights) into w->md (once, for initializers). */
CL_MUST_USE cl_status dnnl_weights_ready(infer_ctx *c, dnnl_weights *w, const cl_infer_tensor *wt, void **wp);
/* A buffer of the model's for weights, counted against its cap. */
CL_MUST_USE cl_status dnnl_weights_alloc(infer_ctx *c, size_t bytes, void **p);
void dnnl_weights_free(cl_infer_model *m, dnnl_weights *w);

/* --- dnn_core.c: the cache and the primitives ----------------------------- */
void dnnl_key_add(int64_t *key, size_t *n, const cl_infer_tensor *t);
/* The node's cached primitive if it is of this kind and key, or NULL after
 * dropping whatever was there. */
dnnl_cache *dnnl_cache_find(infer_ctx *c, dnnl_kind kind, const int64_t *key, size_t key_n);
/* A zeroed cache of `size` bytes (the kind's struct) for this node, in place
 * of whatever was there. */
CL_MUST_USE cl_status dnnl_cache_new(infer_ctx *c, dnnl_kind kind, size_t size,
                                     void (*drop)(cl_infer_model *m, dnnl_cache *k), const int64_t *key, size_t key_n,
                                     dnnl_cache **out);
void dnnl_cache_free(cl_infer_model *m, dnnl_cache *k);
/* Forgets the node's cached primitive (a failure while making it). */
void dnnl_cache_drop(infer_ctx *c);
/* Working buffer `slot` with room for md, counted against the model's cap. */
CL_MUST_USE cl_status dnnl_slot_get(infer_ctx *c, int slot, const dnnl_memory_desc_t *md, void **p);
/* Primitive attributes with a user-mode scratchpad (ours, so it is wiped). */
CL_MUST_USE cl_status dnnl_attr_make(dnnl_primitive_attr_t *attr);
/* oneDNN's reference implementations (scalar loops) are its last resort. */
bool dnnl_impl_is_ref(const_dnnl_primitive_desc_t pd);
/* Whether oneDNN has a non-reference implementation of desc with the node's
 * attributes (post-ops included). */
bool dnnl_desc_has_fast_impl(const infer_ctx *c, const_dnnl_op_desc_t desc);
/* Primitives with weights: creates the primitive from an op descriptor and
 * notes the layouts it chose for weights, source and destination (k->src_md /
 * dst_md hold the plain layouts on entry); keep_dst leaves the output in the
 * primitive's layout for the next reader. */
CL_MUST_USE cl_status dnnl_prim_make(infer_ctx *c, dnnl_cache *k, dnnl_wprim *p, const_dnnl_op_desc_t desc,
                                     bool keep_dst);
CL_MUST_USE cl_status dnnl_run(infer_ctx *c, dnnl_cache *k, dnnl_wprim *p, const void *src, const void *w,
                               const void *b, void *dst, int arg_src, int arg_w);
void dnnl_wprim_free(cl_infer_model *m, dnnl_wprim *p);
/* Primitives without weights: creates the primitive from its descriptor and
 * notes its destination layout and scratchpad. */
CL_MUST_USE cl_status dnnl_prim_finish(dnnl_cache *k, const_dnnl_primitive_desc_t pd);
/* Runs a primitive without weights on n_src sources (each held as mds[i], or
 * all as k->src_md when mds is NULL) into out's buffer. */
CL_MUST_USE cl_status dnnl_exec_plain(infer_ctx *c, dnnl_cache *k, int n_src, const int *src_args,
                                      const dnnl_memory_desc_t *mds, const cl_infer_tensor *const *srcs,
                                      cl_infer_tensor *out);
/* Single-source primitives (pooling, eltwise, softmax, batch normalization):
 * the node's primitive of this kind for source x held as *src (the key adds
 * `extra`, values the primitive was made for beyond x's shape), or NULL after
 * dropping one made for another shape or layout. */
dnnl_cache *dnnl_single_lookup(infer_ctx *c, dnnl_kind kind, const cl_infer_tensor *x, const dnnl_memory_desc_t *src,
                               const int64_t *extra, size_t n_extra, int64_t *key, size_t *key_n);
/* Makes the node's primitive (a cache of `size` bytes) from desc; *made =
 * false (no error) when oneDNN has only its reference kernel for it. */
CL_MUST_USE cl_status dnnl_single_make(infer_ctx *c, dnnl_kind kind, size_t size,
                                       void (*drop)(cl_infer_model *m, dnnl_cache *k), const dnnl_memory_desc_t *src,
                                       const int64_t *key, size_t key_n, int out_rank, const int64_t *od,
                                       const_dnnl_op_desc_t desc, bool *made);
/* Runs the node's primitive on n_src sources into a fresh out[0]. */
CL_MUST_USE cl_status dnnl_single_run(infer_ctx *c, int n_src, const int *args, const dnnl_memory_desc_t *mds,
                                      const cl_infer_tensor *const *srcs, cl_infer_tensor **out, bool *handled);
/* dnnl_single_run on in[0] alone. */
CL_MUST_USE cl_status dnnl_single_run_src(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out, bool *handled);

#endif
