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
 * dnnl_ / DNNL_ are oneDNN's prefixes: our names here, static ones too,
 * start with infer_dnn_ / INFER_DNN_, so a reader (and grep) tells the two
 * apart.
 */
#ifndef CLOISTER_INFER_DNN_H
#define CLOISTER_INFER_DNN_H

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include "infer_internal.h"

/* A oneDNN call that must succeed: fails with its status, to the out: label. */
#define INFER_DNN_TRY(expr, what) \
    do { \
        dnnl_status_t infer_dnn_s_ = (expr); \
        if (infer_dnn_s_ != dnnl_success) \
            CL_FAIL_GOTO(CL_ERR_INTERNAL, "oneDNN %s failed (status %d)", (what), (int)infer_dnn_s_); \
    } while (0)

/* Working buffers of a primitive call: the blocked source, the blocked
 * destination and the scratchpad. They live as long as the model and only grow:
 * allocating them per call made every convolution pay for fresh pages (the
 * kernel's page faults and zeroing, ~40% of the U-Net's time at 2 threads).
 * They hold activations, so they are wiped when they grow and when the model is
 * unloaded. */
enum { INFER_DNN_SLOT_SRC, INFER_DNN_SLOT_DST, INFER_DNN_SLOT_SCRATCHPAD, INFER_DNN_SLOTS };

typedef struct infer_dnn_slot {
    void *p;
    size_t cap;
} infer_dnn_slot;

/* The model's oneDNN state (cl_infer_model.dnn): one engine and stream. */
typedef struct infer_dnn {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    infer_dnn_slot slots[INFER_DNN_SLOTS];
} infer_dnn;

/* What a node's cached primitive is; a lookup finds only its own kind. */
typedef enum infer_dnn_kind {
    INFER_DNN_KIND_CONV,   /* Conv, and ConvTranspose as a deconvolution (dnn_conv.c) */
    INFER_DNN_KIND_UPCONV, /* ConvTranspose as one matmul per kernel tap (dnn_conv.c) */
    INFER_DNN_KIND_MATMUL,
    INFER_DNN_KIND_POOL,
    INFER_DNN_KIND_ELTWISE, /* also Clip */
    INFER_DNN_KIND_SOFTMAX,
    INFER_DNN_KIND_BATCHNORM,
    INFER_DNN_KIND_CONCAT,
} infer_dnn_kind;

/* Longest key: three tensors' ranks and dims, and two values more. */
#define INFER_DNN_KEY_MAX (3 * (1 + CL_INFER_MAX_RANK) + 2)

/* A node's primitive, valid for the input shapes (and layouts) in its key:
 * the first member of every kind's cache. Pooling, the eltwise ops and softmax
 * need nothing more; the other kinds' caches add their own members and the
 * drop function that releases them. */
typedef struct infer_dnn_cache {
    infer_dnn_kind kind;
    void (*drop)(cl_infer_model *m, struct infer_dnn_cache *k); /* NULL when there is nothing more */
    int64_t key[INFER_DNN_KEY_MAX];
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
} infer_dnn_cache;

/* Weights as the model holds them and as the primitive wants them. */
typedef struct infer_dnn_weights {
    dnnl_memory_desc_t user_md, md;
    bool reorder; /* they differ: buf holds the reordered copy */
    void *buf;    /* counted against the model's cap, wiped when freed */
    size_t bytes;
    const void *from; /* the initializer buf was made from */
} infer_dnn_weights;

/* A primitive with weights (convolution, deconvolution, matmul) and the
 * reorders around it: the source arrives in src_user_md (a plain graph input,
 * or another primitive's layout) and is reordered into src_md when they
 * differ; the destination likewise from dst_md into dst_user_md. */
typedef struct infer_dnn_wprim {
    infer_dnn_weights w;
    dnnl_memory_desc_t b_md;
    bool has_bias;
    dnnl_memory_desc_t src_user_md, dst_user_md;
    dnnl_primitive_t src_reorder, dst_reorder; /* NULL when the layouts agree */
    dnnl_memory_desc_t src_plain_md;           /* the source in plain layout */
} infer_dnn_wprim;

/* OpenMP's thread count for the primitives oneDNN runs next (Debian's oneDNN
 * runs on OpenMP); 0 leaves its default. */
static inline void infer_dnn_threads(const cl_infer_model *m)
{
    if (m->threads > 0) omp_set_num_threads(m->threads);
}

/* --- dnn_layout.c: descriptors, layouts, reorders ------------------------- */
/* Plain row-major of a rank (1..6). */
dnnl_format_tag_t infer_dnn_plain_tag(int ndims);
void infer_dnn_dims(dnnl_dims_t out, int rank, const int64_t *dims);
bool infer_dnn_md_is_plain(const dnnl_memory_desc_t *md);
/* Whether node input i is an initializer. */
bool infer_dnn_input_is_init(const infer_ctx *c, int i);
/* The layout node input i is held in: its oneDNN descriptor, or NULL when plain. */
const dnnl_memory_desc_t *infer_dnn_in_layout(const infer_ctx *c, int i);
/* The descriptor of input i as it is held: its layout, or plain. */
CL_MUST_USE cl_status infer_dnn_in_md(const infer_ctx *c, int i, const cl_infer_tensor *t, dnnl_memory_desc_t *md);
/* Records the layout the primitive left output i in (k->dst_md lives as long
 * as the cached primitive, i.e. past every reader in this run). */
void infer_dnn_out_layout(const infer_ctx *c, int i, const infer_dnn_cache *k);
CL_MUST_USE cl_status infer_dnn_reorder_make(infer_dnn *d, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                             dnnl_primitive_t *out);
CL_MUST_USE cl_status infer_dnn_reorder_run(infer_dnn *d, dnnl_primitive_t r, const dnnl_memory_desc_t *from_md,
                                            void *from, const dnnl_memory_desc_t *to_md, void *to);
/* Brings node input 1 (the weights) into w->md (once, for initializers). */
CL_MUST_USE cl_status infer_dnn_weights_ready(infer_ctx *c, infer_dnn_weights *w, const cl_infer_tensor *wt, void **wp);
/* A buffer of the model's for weights, counted against its cap. */
CL_MUST_USE cl_status infer_dnn_weights_alloc(infer_ctx *c, size_t bytes, void **p);
void infer_dnn_weights_free(cl_infer_model *m, infer_dnn_weights *w);

/* --- dnn_core.c: the cache and the primitives ----------------------------- */
void infer_dnn_key_add(int64_t *key, size_t *n, const cl_infer_tensor *t);
/* The node's cached primitive if it is of this kind and key, else NULL; whatever
 * is there stays until infer_dnn_cache_new replaces it. */
infer_dnn_cache *infer_dnn_cache_find(infer_ctx *c, infer_dnn_kind kind, const int64_t *key, size_t key_n);
/* A zeroed cache of `size` bytes (the kind's struct) for this node, in place
 * of whatever was there. */
CL_MUST_USE cl_status infer_dnn_cache_new(infer_ctx *c, infer_dnn_kind kind, size_t size,
                                          void (*drop)(cl_infer_model *m, infer_dnn_cache *k), const int64_t *key,
                                          size_t key_n, infer_dnn_cache **out);
void infer_dnn_cache_free(cl_infer_model *m, infer_dnn_cache *k);
/* Forgets the node's cached primitive (a failure while making it). */
void infer_dnn_cache_drop(infer_ctx *c);
/* Working buffer `slot` with room for md, counted against the model's cap. */
CL_MUST_USE cl_status infer_dnn_slot_get(infer_ctx *c, int slot, const dnnl_memory_desc_t *md, void **p);
/* Primitive attributes with a user-mode scratchpad (ours, so it is wiped). */
CL_MUST_USE cl_status infer_dnn_attr_make(dnnl_primitive_attr_t *attr);
/* oneDNN's reference implementations (scalar loops) are its last resort. */
bool infer_dnn_impl_is_ref(const_dnnl_primitive_desc_t pd);
/* Whether oneDNN has a non-reference implementation of desc with the node's
 * attributes (post-ops included). */
bool infer_dnn_desc_has_fast_impl(const infer_ctx *c, const_dnnl_op_desc_t desc);
/* Primitives with weights: creates the primitive from an op descriptor and
 * notes the layouts it chose for weights, source and destination (k->src_md /
 * dst_md hold the plain layouts on entry); keep_dst leaves the output in the
 * primitive's layout for the next reader. */
CL_MUST_USE cl_status infer_dnn_prim_make(infer_ctx *c, infer_dnn_cache *k, infer_dnn_wprim *p,
                                          const_dnnl_op_desc_t desc, bool keep_dst);
CL_MUST_USE cl_status infer_dnn_run(infer_ctx *c, infer_dnn_cache *k, infer_dnn_wprim *p, const void *src,
                                    const void *w, const void *b, void *dst, int arg_src, int arg_w);
void infer_dnn_wprim_free(cl_infer_model *m, infer_dnn_wprim *p);
/* Primitives without weights: creates the primitive from its descriptor and
 * notes its destination layout and scratchpad. */
CL_MUST_USE cl_status infer_dnn_prim_finish(infer_dnn_cache *k, const_dnnl_primitive_desc_t pd);
/* Runs a primitive without weights on n_src sources (each held as mds[i], or
 * all as k->src_md when mds is NULL) into out's buffer. */
CL_MUST_USE cl_status infer_dnn_exec_plain(infer_ctx *c, infer_dnn_cache *k, int n_src, const int *src_args,
                                           const dnnl_memory_desc_t *mds, const cl_infer_tensor *const *srcs,
                                           cl_infer_tensor *out);
/* Single-source primitives (pooling, eltwise, softmax, batch normalization):
 * the node's primitive of this kind for source x held as *src (the key adds
 * `extra`, values the primitive was made for beyond x's shape), or NULL after
 * dropping one made for another shape or layout. */
infer_dnn_cache *infer_dnn_single_lookup(infer_ctx *c, infer_dnn_kind kind, const cl_infer_tensor *x,
                                         const dnnl_memory_desc_t *src, const int64_t *extra, size_t n_extra,
                                         int64_t *key, size_t *key_n);
/* Makes the node's primitive (a cache of `size` bytes) from desc; *made =
 * false (no error) when oneDNN has only its reference kernel for it. */
CL_MUST_USE cl_status infer_dnn_single_make(infer_ctx *c, infer_dnn_kind kind, size_t size,
                                            void (*drop)(cl_infer_model *m, infer_dnn_cache *k),
                                            const dnnl_memory_desc_t *src, const int64_t *key, size_t key_n,
                                            int out_rank, const int64_t *od, const_dnnl_op_desc_t desc, bool *made);
/* Runs the node's primitive on n_src sources into a fresh out[0]. */
CL_MUST_USE cl_status infer_dnn_single_run(infer_ctx *c, int n_src, const int *args, const dnnl_memory_desc_t *mds,
                                           const cl_infer_tensor *const *srcs, cl_infer_tensor **out, bool *handled);
/* infer_dnn_single_run on in[0] alone. */
CL_MUST_USE cl_status infer_dnn_single_run_src(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out,
                                               bool *handled);

#endif
