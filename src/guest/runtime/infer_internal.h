/* SPDX-License-Identifier: Apache-2.0 */
/* Internals of the inference runtime shared by the loader, executor and kernels. */
#ifndef CLOISTER_INFER_INTERNAL_H
#define CLOISTER_INFER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloister/infer.h"

/* Newest default-domain opset whose semantics the kernels implement. */
#define INFER_OPSET_MAX 17
/* Graph limits: bound the loader's work on hostile input. */
#define INFER_MAX_NODES 100000
#define INFER_MAX_VALUES 400000
/* Largest single tensor (elements), independent of the byte cap. */
#define INFER_MAX_ELEMS ((int64_t)1 << 32)
/* A caller-allocated tensor (cl_infer_tensor_alloc) is capped so a bogus shape cannot
 * exhaust memory; a PNG decoded for a caller is held to the same cap as a whole. */
#define INFER_PUBLIC_ALLOC_MAX ((size_t)1 << 30)

#define INFER_POOL_SLOTS 64
/* Buffers at least this large are kept for reuse when released. */
#define INFER_POOL_MIN_BYTES ((size_t)64 << 10)
/* Arena ranges a node's outputs may borrow (outputs, plus a fused Concat's). */
#define INFER_MEM_SLOTS 8
/* Graphs with more planned buffers than this run on the pool (the placement is
 * quadratic in the worst case). */
#define INFER_PLAN_MAX_BUFS 8192
/* Arena offsets are multiples of this (oneDNN and vector loads like it). */
#define INFER_PLAN_ALIGN 64

/* Accounting for every byte the model holds; allocation beyond max fails.
 * Released tensor buffers are wiped and kept in a small pool, so a run after
 * the first reuses them instead of mapping fresh pages (sizes repeat from run
 * to run); pooled bytes count as held. */
typedef struct infer_mem {
    size_t used;
    size_t peak;
    size_t max;
    bool cap_hit;  /* an allocation was refused for the cap */
    size_t pooled; /* bytes in the pool (included in used) */
    size_t n_pool;
    struct {
        void *p;
        size_t n;
    } pool[INFER_POOL_SLOTS];
    /* While a node runs under the memory plan (plan.c): the arena ranges its
     * outputs borrow. A tensor allocated at slot[i].t that fits in slot[i].n
     * bytes takes slot[i].p (zeroed, t->borrowed set) instead of fresh memory. */
    int n_slot;
    struct {
        const cl_infer_tensor *t;
        void *p;
        size_t n;
    } slot[INFER_MEM_SLOTS];
} infer_mem;

/* Frees every pooled buffer (at model unload). */
void infer_mem_pool_drain(infer_mem *mem);

typedef struct infer_value {
    const char *name;
    cl_infer_tensor t; /* the initializer, or the value during a run */
    bool is_init;
    bool is_input;
    bool is_output;
    bool defined; /* produced by something before the current node (load-time check) */
    int last_use; /* last node reading it; -1 when none */
    int producer; /* node writing it; -1 for initializers and graph inputs */
    int n_uses;   /* node inputs reading it */
    /* The memory plan (plan.c): bytes the value's producer allocated in the
     * recording run (the largest, padded size), and its arena range when
     * planned (plan_bytes 0: not planned, allocated as before). */
    size_t seen_bytes;
    size_t plan_off, plan_bytes;
    /* During a run on the oneDNN path: the oneDNN memory descriptor
     * (dnnl_memory_desc_t, owned by the producer's cached primitive) of t.data
     * when it is not plain row-major, e.g. channels-last or channel-blocked
     * (t.nbytes then covers any padding); NULL when plain. Only kernels that
     * declare any_layout see such a value; the executor reorders it to plain
     * for every other reader and before handing it out as a graph output. */
    const void *layout;
    /* declared type of a graph input (for run-time checks) */
    cl_infer_dtype decl_dtype;
    int decl_rank; /* -1 when the shape is not declared */
    int64_t decl_dims[CL_INFER_MAX_RANK];
} infer_value;

struct infer_op;

typedef struct infer_node {
    const void *proto; /* Onnx__NodeProto, owned by the model's protobuf tree */
    const char *name;  /* the node's name, or "<op>#<index>" when unnamed */
    char anon[48];
    const char *op;
    const struct infer_op *def;
    int n_in;
    int n_out;
    int *in;        /* value index, -1 for an omitted optional input */
    int *out;       /* value index, -1 for an omitted optional output */
    bool skip;      /* folded into its producer by a graph rewrite */
    bool fuse_relu; /* a following Relu was fused: apply it to out[0] */
    /* A following Add was fused (a Conv only): in[3] is its other operand,
     * added to the convolution's result before any fused Relu (oneDNN's sum
     * post-op); add_node is the Add, whose kernel runs it when the
     * convolution falls back to the reference kernel. */
    bool fuse_add;
    int add_node;
    /* A ConvTranspose read only by Concat node concat_node (as its input
     * concat_slot): the fast path may write the Concat's output itself. */
    bool concat_fuse;
    int concat_node, concat_slot;
} infer_node;

struct cl_infer_model {
    void *proto; /* Onnx__ModelProto */
    void *pb_alloc;
    infer_mem mem;
    int64_t opset;
    infer_value *values;
    size_t n_values;
    infer_node *nodes;
    size_t n_nodes;
    int *inputs; /* graph inputs that are not initializers */
    size_t n_inputs;
    int *outputs;
    size_t n_outputs;
    int threads;
    bool use_onednn;
    void *dnn;        /* engine and stream (dnn_core.c) */
    void **fast;      /* per node: the fast path's cached primitive (dnn.h), or NULL */
    size_t fast_runs; /* nodes run by the fast path (tests check it is used) */
    /* Tests only: convolutions ask oneDNN for 16-channel blocks (padded when
     * the channels are not a multiple of 16), a layout oneDNN 2.6 does not pick
     * by itself on AVX-512 machines, so its handling is exercised too. */
    bool dnn_blocked;
    bool direct_conv;       /* cl_infer_options.direct_conv */
    size_t wino_convs;      /* convolution primitives made with Winograd (tests check it) */
    size_t dnn_caches_made; /* oneDNN node caches made (primitives, reordered weights): tests check reuse */
    bool profile;
    struct infer_prof {
        const char *op;
        size_t runs, fast;
        double ms;
    } * prof; /* per op type, when profiling */
    size_t n_prof;
    /* The static memory plan (plan.c), made after the first run for a set of
     * input shapes and redone when they change. */
    struct infer_plan {
        bool ready;
        int64_t *key; /* per input: rank, then CL_INFER_MAX_RANK dims */
        unsigned char *arena;
        size_t arena_bytes;
        size_t intermediates; /* sum of the planned buffers' sizes */
        size_t n_bufs;
    } plan;
};

typedef struct infer_ctx {
    cl_infer_model *m;
    const infer_node *node;
    infer_mem *mem;
    int64_t opset;
    void **fast; /* this node's slot in m->fast */
} infer_ctx;

/* A kernel: computes output shapes, allocates outputs through ctx->mem and
 * fills them. in[i] is NULL for an omitted optional input, out[i] NULL for an
 * omitted optional output. */
typedef CL_MUST_USE cl_status (*infer_kernel_fn)(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out,
                                                 int n_out);
/* Load-time check of a node's attributes. */
typedef CL_MUST_USE cl_status (*infer_check_fn)(const infer_node *n, int64_t opset);

/* A fast-path kernel: sets *handled = false (and returns CL_OK) when the
 * configuration is one it does not cover, so the reference kernel runs. */
typedef CL_MUST_USE cl_status (*infer_fast_fn)(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out,
                                               int n_out, bool *handled);

typedef struct infer_op {
    const char *name;
    int min_in, max_in, min_out, max_out;
    infer_kernel_fn run;
    infer_check_fn check;
    infer_fast_fn fast;
    /* The fast kernel reads inputs in whatever layout value->layout names
     * (and may leave its outputs in one); others get plain inputs. */
    bool any_layout;
} infer_op;

/* --- oneDNN (dnn_*.c; dnn_none.c when the build has no oneDNN) ------------ */
CL_MUST_USE cl_status infer_dnn_init(cl_infer_model *m);
void infer_dnn_free(cl_infer_model *m);
CL_MUST_USE cl_status infer_dnn_conv(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                     bool *handled);
CL_MUST_USE cl_status infer_dnn_convtranspose(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out,
                                              int n_out, bool *handled);
CL_MUST_USE cl_status infer_dnn_gemm(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                     bool *handled);
CL_MUST_USE cl_status infer_dnn_matmul(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                       bool *handled);
CL_MUST_USE cl_status infer_dnn_maxpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                        bool *handled);
CL_MUST_USE cl_status infer_dnn_concat(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                       bool *handled);
#define INFER_DNN_DECL(fn) \
    CL_MUST_USE cl_status fn(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, \
                             bool *handled)
INFER_DNN_DECL(infer_dnn_avgpool);
INFER_DNN_DECL(infer_dnn_globalavgpool);
INFER_DNN_DECL(infer_dnn_unary); /* Relu, LeakyRelu, Sigmoid, Tanh, Exp, Log, Sqrt, Abs, Neg */
INFER_DNN_DECL(infer_dnn_clip);
INFER_DNN_DECL(infer_dnn_softmax); /* and LogSoftmax */
INFER_DNN_DECL(infer_dnn_batchnorm);
/* Reorders a value held in a oneDNN layout into a fresh plain tensor in place
 * (the old buffer is wiped and released); nothing to do when it is plain. */
CL_MUST_USE cl_status infer_dnn_to_plain(cl_infer_model *m, infer_value *v);

/* --- the static memory plan (plan.c; the planning run at load is load.c's) - */
/* One intermediate: its size and the nodes (execution order) that first
 * produce and last read it, inclusive. */
typedef struct infer_plan_buf {
    size_t bytes;
    int first, last;
    size_t off; /* set by infer_plan_place */
} infer_plan_buf;
/* Greedy best fit: largest first, each at the lowest INFER_PLAN_ALIGN-aligned
 * offset that overlaps no placed buffer whose lifetime overlaps its own.
 * *arena_bytes is the end of the highest buffer. */
CL_MUST_USE cl_status infer_plan_place(infer_plan_buf *b, size_t n, size_t *arena_bytes);
/* Before a run: keeps the plan when the inputs have the shapes it was made
 * for, else drops it (the run records sizes; see infer_plan_make). */
void infer_plan_begin(cl_infer_model *m, const cl_infer_tensor *inputs);
/* Sets the arena slots for node idx's outputs (no-op without a plan). */
void infer_plan_node(cl_infer_model *m, size_t idx);
/* After node idx ran: clears the slots; records output sizes when unplanned. */
void infer_plan_node_done(cl_infer_model *m, size_t idx);
/* After a successful unplanned run: plans and allocates the arena. Best
 * effort: when it cannot (too many buffers, the memory cap), runs stay on the
 * pool. */
void infer_plan_make(cl_infer_model *m, const cl_infer_tensor *inputs);
/* Wipes and frees the arena (a new plan, or unload). */
void infer_plan_drop(cl_infer_model *m);

/* --- the model (model.c) -------------------------------------------------- */
/* Decodes, validates and (on the oneDNN path) rewrites the model: everything
 * cl_infer_model_load does but the planning run, which load.c adds on top. */
CL_MUST_USE cl_status infer_model_build(const void *bytes, size_t len, const cl_infer_options *opts,
                                        cl_infer_model **out);

/* --- the op registry (registry.c) ----------------------------------------- */
const infer_op *infer_op_find(const char *name);
/* How many op types there are. */
size_t infer_op_count(void);
/* Writes the comma-separated list of supported op types into buf (for error
 * messages); returns buf. */
const char *infer_op_list(char *buf, size_t n);

/* --- tensors and memory ------------------------------------------------- */
CL_MUST_USE cl_status infer_shape_count(int rank, const int64_t *dims, size_t *count);
CL_MUST_USE cl_status infer_tensor_new(infer_mem *mem, cl_infer_tensor *t, cl_infer_dtype dtype, int rank,
                                       const int64_t *dims);
/* As infer_tensor_new, with a buffer of nbytes (>= the plain size): a tensor in
 * a padded oneDNN layout. */
CL_MUST_USE cl_status infer_tensor_new_bytes(infer_mem *mem, cl_infer_tensor *t, cl_infer_dtype dtype, int rank,
                                             const int64_t *dims, size_t nbytes);
void infer_tensor_release(infer_mem *mem, cl_infer_tensor *t);
/* A new tensor with the same dtype and shape as src and a copy of its data. */
CL_MUST_USE cl_status infer_tensor_clone(infer_mem *mem, cl_infer_tensor *dst, const cl_infer_tensor *src);
/* Reads element i of any numeric tensor as double / int64. */
double infer_get_f64(const cl_infer_tensor *t, size_t i);
int64_t infer_get_i64(const cl_infer_tensor *t, size_t i);
void infer_set_f64(cl_infer_tensor *t, size_t i, double v);
void infer_set_i64(cl_infer_tensor *t, size_t i, int64_t v);
bool infer_dtype_is_float(cl_infer_dtype t);
/* Numpy broadcasting of n shapes (ONNX "Broadcasting in ONNX", multidirectional). */
CL_MUST_USE cl_status infer_broadcast_shape(const cl_infer_tensor *const *ts, int n, int *rank, int64_t *dims);
/* Element strides of t viewed with `rank` dims aligned right, 0 on broadcast dims. */
void infer_broadcast_strides(const cl_infer_tensor *t, int rank, const int64_t *dims, int64_t *strides);
/* Normalises a possibly negative axis against rank; fails naming the node. */
CL_MUST_USE cl_status infer_axis(const infer_ctx *c, int64_t axis, int rank, int *out);
const char *infer_shape_str(const cl_infer_tensor *t, char *buf, size_t n);
/* Fails unless t has one of the float types the kernel implements. */
#define INFER_NEED_FLOAT(c, t, what) \
    CL_ENSURE((t)->dtype == CL_INFER_FLOAT, CL_ERR_UNSUPPORTED, "%s %s is %s; only float32 is supported", \
              (c)->node->op, (what), cl_infer_dtype_name((t)->dtype))

/* --- attributes (attr.c; found only when present with the right type) ----- */
CL_MUST_USE cl_status infer_attr_int(const infer_node *n, const char *name, int64_t def, int64_t *out);
CL_MUST_USE cl_status infer_attr_float(const infer_node *n, const char *name, float def, float *out);
/* Copies a string attribute into buf (NUL-terminated); def when absent. */
CL_MUST_USE cl_status infer_attr_string(const infer_node *n, const char *name, const char *def, char *buf,
                                        size_t bufsz);
/* Borrows an ints / floats attribute; *count = 0 and *found = false when absent. */
CL_MUST_USE cl_status infer_attr_ints(const infer_node *n, const char *name, const int64_t **v, size_t *count,
                                      bool *found);
CL_MUST_USE cl_status infer_attr_floats(const infer_node *n, const char *name, const float **v, size_t *count,
                                        bool *found);
bool infer_attr_has(const infer_node *n, const char *name);
/* Converts a tensor attribute into a fresh tensor; *found false when absent. */
CL_MUST_USE cl_status infer_attr_tensor(infer_mem *mem, const infer_node *n, const char *name, cl_infer_tensor *out,
                                        bool *found);

/* Bilinear resize (half-pixel centres, edges clamped, as ONNX Resize linear
 * half_pixel) of a float32 [1, C, H, W] tensor into a fresh one. */
CL_MUST_USE cl_status infer_image_resize(const cl_infer_tensor *in, int64_t out_h, int64_t out_w, cl_infer_tensor *out);
/* cl_infer_png_read that refuses, from the PNG's header alone (before any row is
 * decoded or any pixel buffer allocated), images over max_pixels or whose decode
 * would hold more than max_bytes at once (the rows as decoded, the float tensor
 * and its resized copy), and says how large the decoded image was. For a
 * one-channel input, `pick` (0, 1 or 2) takes that channel of an RGB image
 * instead of the mean of the three; -1 for the mean (and for 3-channel inputs). */
CL_MUST_USE cl_status infer_png_read_sized(const void *bytes, size_t len, int channels, int pick, size_t max_pixels,
                                           size_t max_bytes, int64_t out_h, int64_t out_w, cl_infer_tensor *out,
                                           int64_t *src_h, int64_t *src_w);

#endif
