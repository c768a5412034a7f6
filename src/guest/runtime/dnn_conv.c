/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conv and ConvTranspose on oneDNN: convolution and deconvolution primitives
 * (Winograd for the large 3x3 convolutions), fused Relu and Add as post-ops,
 * and the U-Net's up-convolutions as one matmul per kernel tap, written
 * straight into the Concat that reads them. The output stays in the layout
 * oneDNN chose; the source is read in whatever layout it arrives in.
 */
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "dnn.h"
#include "window.h"

/* A convolution or deconvolution primitive. */
typedef struct infer_dnn_conv_cache {
    infer_dnn_cache base;
    infer_dnn_wprim p;
    /* A fused Add: its operand's layout and the reorder into dst's, if any. */
    dnnl_memory_desc_t sum_user_md;
    dnnl_primitive_t sum_reorder;
    bool sum_ready;
} infer_dnn_conv_cache;

/* ConvTranspose as matmuls (infer_dnn_upconv): one run per kernel tap, each with
 * its slice of p.w.buf (up_w_bytes apart) and its output pixels. */
typedef struct infer_dnn_upconv_cache {
    infer_dnn_cache base;
    infer_dnn_wprim p;
    dnnl_primitive_t w_reorder;         /* a plain packed tap into p.w.md */
    int64_t up_kh, up_kw, up_wo, up_cs; /* kernel, output width, channel stride */
    size_t up_w_bytes;
    dnnl_memory_desc_t mm_dst_md;
    dnnl_memory_desc_t cat_md; /* the Concat output written in place, if any */
} infer_dnn_upconv_cache;

static void infer_dnn_conv_drop(cl_infer_model *m, infer_dnn_cache *base)
{
    infer_dnn_conv_cache *k = (infer_dnn_conv_cache *)base;
    if (k->sum_reorder) dnnl_primitive_destroy(k->sum_reorder);
    infer_dnn_wprim_free(m, &k->p);
}

static void infer_dnn_upconv_drop(cl_infer_model *m, infer_dnn_cache *base)
{
    infer_dnn_upconv_cache *k = (infer_dnn_upconv_cache *)base;
    if (k->w_reorder) dnnl_primitive_destroy(k->w_reorder);
    infer_dnn_wprim_free(m, &k->p);
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
static bool infer_dnn_conv_winograd_wanted(const infer_ctx *c, const cl_infer_tensor *x, int64_t group,
                                           const infer_window *w)
{
    if (c->m->direct_conv || c->m->dnn_blocked || group != 1 || w->nsp != 2 || x->dims[1] < 32) return false;
    for (int i = SP - 2; i < SP; i++)
        if (w->k[i] != 3 || w->stride[i] != 1 || w->dil[i] != 1 || w->out[i] < 32) return false;
    return true;
}

/* Points the source reorder at the layout the input arrives in this time:
 * none when it already is the primitive's. */
static CL_MUST_USE cl_status infer_dnn_src_adapt(infer_ctx *c, infer_dnn_cache *k, infer_dnn_wprim *p,
                                                 const dnnl_memory_desc_t *from)
{
    if (from == NULL) from = &p->src_plain_md;
    if (dnnl_memory_desc_equal(from, &p->src_user_md)) return CL_OK;
    if (p->src_reorder != NULL) dnnl_primitive_destroy(p->src_reorder);
    p->src_reorder = NULL;
    p->src_user_md = *from;
    if (dnnl_memory_desc_equal(from, &k->src_md)) return CL_OK;
    CL_GUARD(infer_dnn_reorder_make(c->m->dnn, from, &k->src_md, &p->src_reorder));
    return CL_OK;
}

/* The output of a Conv with a fused Add, holding the Add's other operand S in
 * the destination's layout (the sum post-op adds the convolution to it). S's
 * own buffer is taken over when this is its last reader, it is already in
 * that layout and it is not the convolution's source. */
static CL_MUST_USE cl_status infer_dnn_sum_ready(infer_ctx *c, infer_dnn_conv_cache *k, cl_infer_tensor *out)
{
    cl_status rc = CL_OK;
    int vi = c->node->in[3];
    infer_value *sv = &c->m->values[vi];
    infer_dnn *d = c->m->dnn;
    dnnl_memory_desc_t from;
    if (sv->layout != NULL) {
        from = *(const dnnl_memory_desc_t *)sv->layout;
    } else {
        dnnl_dims_t dims;
        infer_dnn_dims(dims, sv->t.rank, sv->t.dims);
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&from, sv->t.rank, dims, dnnl_f32, infer_dnn_plain_tag(sv->t.rank)),
                      "memory descriptor");
    }
    size_t bytes = dnnl_memory_desc_get_size(&k->base.dst_md);
    bool same = dnnl_memory_desc_equal(&from, &k->base.dst_md) != 0;
    if (same && sv->last_use == (int)(c->node - c->m->nodes) && !sv->is_output && !sv->is_init && !sv->t.borrowed &&
        sv->t.nbytes == bytes && vi != c->node->in[0]) {
        *out = sv->t;
        memset(&sv->t, 0, sizeof(sv->t));
        sv->layout = NULL;
        return CL_OK;
    }
    CL_GUARD(infer_tensor_new_bytes(c->mem, out, CL_INFER_FLOAT, k->base.out_rank, k->base.out_dims, bytes));
    if (same) {
        memcpy(out->data, sv->t.data, bytes);
        return CL_OK;
    }
    if (!k->sum_ready || !dnnl_memory_desc_equal(&from, &k->sum_user_md)) {
        if (k->sum_reorder != NULL) dnnl_primitive_destroy(k->sum_reorder);
        k->sum_reorder = NULL;
        k->sum_ready = false;
        CL_GUARD_GOTO(infer_dnn_reorder_make(d, &from, &k->base.dst_md, &k->sum_reorder));
        k->sum_user_md = from;
        k->sum_ready = true;
    }
    CL_GUARD_GOTO(infer_dnn_reorder_run(d, k->sum_reorder, &from, sv->t.data, &k->base.dst_md, out->data));
out:
    return rc;
}

/* Conv and ConvTranspose share everything but the descriptor and the weights layout. */
static CL_MUST_USE cl_status infer_dnn_conv_common(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out,
                                                   bool transpose, bool *handled)
{
    cl_status rc = CL_OK;
    const cl_infer_tensor *x = in[0], *wt = in[1], *b = n_in > 2 ? in[2] : NULL;
    const cl_infer_tensor *sum = c->node->fuse_add ? in[3] : NULL;
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || wt->dtype != CL_INFER_FLOAT || (b && b->dtype != CL_INFER_FLOAT) || x->rank < 3 ||
        x->rank > 5 || wt->rank != x->rank || (sum && sum->dtype != CL_INFER_FLOAT))
        return CL_OK;
    int64_t key[INFER_DNN_KEY_MAX];
    size_t key_n = 0;
    infer_dnn_key_add(key, &key_n, x);
    infer_dnn_key_add(key, &key_n, wt);
    infer_dnn_key_add(key, &key_n, b);
    infer_dnn_conv_cache *k = (infer_dnn_conv_cache *)infer_dnn_cache_find(c, INFER_DNN_KIND_CONV, key, key_n);
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
        infer_dnn_dims(sd, r, x->dims);
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
            wtag = transpose ? (nsp == 1 ? dnnl_acbd : nsp == 2 ? dnnl_acbde : dnnl_acbdef) : infer_dnn_plain_tag(wr);
        } else {
            wd[0] = M;
            wd[1] = x->dims[1];
            for (int i = 0; i < nsp; i++) wd[2 + i] = wt->dims[2 + i];
            wtag = transpose ? (nsp == 1 ? dnnl_bac : nsp == 2 ? dnnl_bacd : dnnl_bacde) : infer_dnn_plain_tag(wr);
        }
        infer_dnn_cache *base;
        CL_GUARD(infer_dnn_cache_new(c, INFER_DNN_KIND_CONV, sizeof(*k), infer_dnn_conv_drop, key, key_n, &base));
        k = (infer_dnn_conv_cache *)base;
        k->p.has_bias = b != NULL;
        k->base.out_rank = r;
        for (int i = 0; i < r; i++) k->base.out_dims[i] = dd[i];
        dnnl_memory_desc_t w_any, src_any, dst_any;
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->base.src_md, r, sd, dnnl_f32, infer_dnn_plain_tag(r)),
                      "memory descriptor");
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->base.dst_md, r, dd, dnnl_f32, infer_dnn_plain_tag(r)),
                      "memory descriptor");
        /* Let oneDNN pick blocked activation layouts: its direct kernels on
         * them beat the plain-layout GEMM path by far, reorders included. */
        dnnl_format_tag_t act = dnnl_format_tag_any;
        if (c->m->dnn_blocked) act = r == 3 ? dnnl_aBc16b : r == 4 ? dnnl_aBcd16b : dnnl_aBcde16b;
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&src_any, r, sd, dnnl_f32, act), "memory descriptor");
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&dst_any, r, dd, dnnl_f32, act), "memory descriptor");
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->p.w.user_md, wr, wd, dnnl_f32, wtag), "memory descriptor");
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&w_any, wr, wd, dnnl_f32, dnnl_format_tag_any), "memory descriptor");
        if (b != NULL) {
            bd[0] = M;
            INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->p.b_md, 1, bd, dnnl_f32, dnnl_a), "memory descriptor");
        }
        const dnnl_memory_desc_t *bmd = b ? &k->p.b_md : NULL;
        if (transpose) {
            dnnl_deconvolution_desc_t desc;
            /* Left to choose, oneDNN 2.6 runs deconvolutions on 16-channel
             * blocks while its convolutions pick channels-last: asking for
             * channels-last here (same jit kernel) spares a reorder on each
             * side of every deconvolution. Any layout when it cannot. */
            dnnl_memory_desc_t src_cl, dst_cl;
            dnnl_format_tag_t cl_tag = r == 3 ? dnnl_acb : r == 4 ? dnnl_acdb : dnnl_acdeb;
            INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&src_cl, r, sd, dnnl_f32, cl_tag), "memory descriptor");
            INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&dst_cl, r, dd, dnnl_f32, cl_tag), "memory descriptor");
            dnnl_primitive_desc_t probe = NULL;
            if (!c->m->dnn_blocked &&
                dnnl_dilated_deconvolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_deconvolution_direct,
                                                             &src_cl, &w_any, bmd, &dst_cl, strides, dil, pl,
                                                             pr) == dnnl_success &&
                dnnl_primitive_desc_create(&probe, &desc, NULL, ((infer_dnn *)c->m->dnn)->eng, NULL) == dnnl_success &&
                !infer_dnn_impl_is_ref(probe)) {
                src_any = src_cl;
                dst_any = dst_cl;
            }
            if (probe != NULL) dnnl_primitive_desc_destroy(probe);
            INFER_DNN_TRY(dnnl_dilated_deconvolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                                       dnnl_deconvolution_direct, &src_any, &w_any, bmd,
                                                                       &dst_any, strides, dil, pl, pr),
                          "deconvolution descriptor");
            CL_GUARD_GOTO(infer_dnn_prim_make(c, &k->base, &k->p, &desc, true));
        } else {
            dnnl_convolution_desc_t desc;
            bool wino = infer_dnn_conv_winograd_wanted(c, x, group, &w) &&
                        dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                                   dnnl_convolution_winograd, &src_any, &w_any, bmd,
                                                                   &dst_any, strides, dil, pl, pr) == dnnl_success &&
                        infer_dnn_desc_has_fast_impl(c, &desc);
            if (!wino)
                INFER_DNN_TRY(dnnl_dilated_convolution_forward_desc_init(&desc, dnnl_forward_inference,
                                                                         dnnl_convolution_direct, &src_any, &w_any, bmd,
                                                                         &dst_any, strides, dil, pl, pr),
                              "convolution descriptor");
            CL_GUARD_GOTO(infer_dnn_prim_make(c, &k->base, &k->p, &desc, true));
            if (wino) c->m->wino_convs++;
        }
    }
    if (sum != NULL) {
        /* The fused Add broadcasts S onto the output in the reference only. */
        bool same_shape = sum->rank == k->base.out_rank;
        for (int i = 0; same_shape && i < k->base.out_rank; i++) same_shape = sum->dims[i] == k->base.out_dims[i];
        if (!same_shape) return CL_OK;
    }
    void *wp;
    CL_GUARD(infer_dnn_weights_ready(c, &k->p.w, wt, &wp));
    CL_GUARD(infer_dnn_src_adapt(c, &k->base, &k->p, infer_dnn_in_layout(c, 0)));
    if (sum != NULL)
        CL_GUARD(infer_dnn_sum_ready(c, k, out[0]));
    else
        CL_GUARD(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, k->base.out_rank, k->base.out_dims,
                                        dnnl_memory_desc_get_size(&k->base.dst_md)));
    CL_GUARD(infer_dnn_run(c, &k->base, &k->p, x->data, wp, b ? b->data : NULL, out[0]->data, DNNL_ARG_SRC,
                           DNNL_ARG_WEIGHTS));
    infer_dnn_out_layout(c, 0, &k->base);
    *handled = true;
    return CL_OK;
out:
    /* A descriptor oneDNN refused: forget it and let the reference kernel run. */
    infer_dnn_cache_drop(c);
    cl_error_clear();
    return CL_OK;
}

cl_status infer_dnn_conv(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
{
    return infer_dnn_conv_common(c, in, n_in, out, false, handled);
}

/* Packs the weights of kernel tap (i, j), W[ci][m][i][j] of ONNX's
 * [C, M, kh, kw], as the plain matrix [C, M] and reorders it into the
 * matmul's layout at dst. */
static CL_MUST_USE cl_status infer_dnn_upconv_pack(infer_ctx *c, infer_dnn_upconv_cache *k, const cl_infer_tensor *wt,
                                                   int64_t i, int64_t j, float *tmp, void *dst)
{
    const int64_t C = wt->dims[0], M = wt->dims[1], KH = wt->dims[2], KW = wt->dims[3];
    const float *w = wt->data;
    for (int64_t ci = 0; ci < C; ci++)
        for (int64_t m = 0; m < M; m++) tmp[ci * M + m] = w[((ci * M + m) * KH + i) * KW + j];
    return infer_dnn_reorder_run(c->m->dnn, k->w_reorder, &k->p.w.user_md, tmp, &k->p.w.md, dst);
}

/* Runs infer_dnn_upconv's matmul once per kernel tap; y points at the output's
 * first pixel and first channel of this node (channel stride k->up_cs). */
static CL_MUST_USE cl_status infer_dnn_upconv_run(infer_ctx *c, const infer_dnn_upconv_cache *k, const void *x,
                                                  const void *bias, float *y)
{
    cl_status rc = CL_OK;
    infer_dnn *d = c->m->dnn;
    dnnl_memory_t ms = NULL, mw = NULL, mb = NULL, md = NULL, msp = NULL;
    void *sp = NULL;
    infer_dnn_threads(c->m);
    INFER_DNN_TRY(dnnl_memory_create(&ms, &k->base.src_md, d->eng, CL_UNCONST(x)), "memory");
    INFER_DNN_TRY(dnnl_memory_create(&mw, &k->p.w.md, d->eng, k->p.w.buf), "memory");
    INFER_DNN_TRY(dnnl_memory_create(&md, &k->mm_dst_md, d->eng, y), "memory");
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};
    int na = 3;
    if (k->p.has_bias) {
        INFER_DNN_TRY(dnnl_memory_create(&mb, &k->p.b_md, d->eng, CL_UNCONST(bias)), "memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
    }
    if (k->base.has_sp) {
        CL_GUARD_GOTO(infer_dnn_slot_get(c, INFER_DNN_SLOT_SCRATCHPAD, &k->base.sp_md, &sp));
        INFER_DNN_TRY(dnnl_memory_create(&msp, &k->base.sp_md, d->eng, sp), "memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, msp};
    }
    for (int64_t i = 0; i < k->up_kh; i++) {
        for (int64_t j = 0; j < k->up_kw; j++) {
            INFER_DNN_TRY(
                dnnl_memory_set_data_handle(mw, (char *)k->p.w.buf + (size_t)(i * k->up_kw + j) * k->up_w_bytes),
                "memory");
            INFER_DNN_TRY(dnnl_memory_set_data_handle(md, y + (i * k->up_wo + j) * k->up_cs), "memory");
            INFER_DNN_TRY(dnnl_primitive_execute(k->base.prim, d->stream, na, args), "matmul execution");
        }
    }
    INFER_DNN_TRY(dnnl_stream_wait(d->stream), "matmul execution");
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
static CL_MUST_USE cl_status infer_dnn_upconv_concat(const infer_ctx *c, const int64_t *od, infer_value **cat,
                                                     int64_t *ctot, int64_t *choff)
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
static CL_MUST_USE cl_status infer_dnn_upconv_concat_fill(infer_ctx *c, const infer_dnn_upconv_cache *k, void *y)
{
    cl_status rc = CL_OK;
    const infer_node *cn = &c->m->nodes[c->node->concat_node];
    infer_dnn *d = c->m->dnn;
    dnnl_primitive_t r = NULL;
    int64_t off = 0;
    for (int s = 0; s < cn->n_in; s++) {
        if (s == c->node->concat_slot) {
            off += k->base.out_dims[1];
            continue;
        }
        const infer_value *v = &c->m->values[cn->in[s]];
        dnnl_memory_desc_t sub;
        dnnl_dims_t dims, offs = {0, off, 0, 0};
        infer_dnn_dims(dims, 4, v->t.dims);
        INFER_DNN_TRY(dnnl_memory_desc_init_submemory(&sub, &k->cat_md, dims, offs), "memory descriptor");
        CL_GUARD_GOTO(infer_dnn_reorder_make(d, v->layout, &sub, &r));
        CL_GUARD_GOTO(infer_dnn_reorder_run(d, r, v->layout, v->t.data, &sub, y));
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
static CL_MUST_USE cl_status infer_dnn_upconv_src(infer_ctx *c, infer_dnn_upconv_cache *k,
                                                  const dnnl_memory_desc_t *lay, const dnnl_memory_desc_t *cl_md,
                                                  const cl_infer_tensor *x, const void **src)
{
    infer_dnn *d = c->m->dnn;
    dnnl_memory_desc_t from;
    *src = x->data;
    if (lay != NULL) {
        from = *lay;
    } else {
        dnnl_dims_t dims;
        infer_dnn_dims(dims, 4, x->dims);
        CL_ENSURE(dnnl_memory_desc_init_by_tag(&from, 4, dims, dnnl_f32, dnnl_abcd) == dnnl_success, CL_ERR_INTERNAL,
                  "oneDNN memory descriptor failed");
    }
    if (dnnl_memory_desc_equal(&from, cl_md)) return CL_OK;
    if (k->p.src_reorder == NULL || !dnnl_memory_desc_equal(&from, &k->p.src_user_md)) {
        if (k->p.src_reorder != NULL) dnnl_primitive_destroy(k->p.src_reorder);
        k->p.src_reorder = NULL;
        CL_GUARD(infer_dnn_reorder_make(d, &from, cl_md, &k->p.src_reorder));
        k->p.src_user_md = from;
    }
    void *buf;
    CL_GUARD(infer_dnn_slot_get(c, INFER_DNN_SLOT_SRC, cl_md, &buf));
    CL_GUARD(infer_dnn_reorder_run(d, k->p.src_reorder, &from, x->data, cl_md, buf));
    *src = buf;
    return CL_OK;
}

/* ConvTranspose whose kernel equals its stride (the U-Net's 2x2 stride 2),
 * 2-D, without pads, dilation, groups or output padding, on a channels-last
 * input: the output patches of the input pixels do not overlap, so each
 * kernel tap (i, j) is a matmul [pixels, C] x [C, M] whose result goes to
 * output pixels (kh * h + i, kw * w + j), written in place through strides
 * into the channels-last output (no col2im, no reorder) -- or straight into
 * the Concat that reads it (infer_dnn_upconv_concat). oneDNN 2.6's deconvolution
 * ran these at a fraction of its convolution speed. Sets *handled = false
 * when it does not apply. */
static CL_MUST_USE cl_status infer_dnn_upconv(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out,
                                              bool *handled)
{
    cl_status rc = CL_OK;
    const cl_infer_tensor *x = in[0], *wt = in[1], *b = n_in > 2 ? in[2] : NULL;
    const dnnl_memory_desc_t *lay = infer_dnn_in_layout(c, 0);
    float *tmp = NULL;
    size_t tmp_bytes = 0;
    bool built = false;
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || wt->dtype != CL_INFER_FLOAT || x->rank != 4 || wt->rank != 4 ||
        !infer_dnn_input_is_init(c, 1) || (b != NULL && (!infer_dnn_input_is_init(c, 2) || b->dtype != CL_INFER_FLOAT)))
        return CL_OK;
    const int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
    const int64_t M = wt->dims[1], KH = wt->dims[2], KW = wt->dims[3];
    const int64_t od[4] = {N, M, H * KH, W * KW};
    dnnl_memory_desc_t cl_md;
    dnnl_dims_t xd;
    infer_dnn_dims(xd, 4, x->dims);
    if (dnnl_memory_desc_init_by_tag(&cl_md, 4, xd, dnnl_f32, dnnl_acdb) != dnnl_success || wt->dims[0] != C ||
        M <= 0 || KH <= 0 || KW <= 0)
        return CL_OK;
    infer_value *cat;
    int64_t ctot, choff;
    CL_GUARD(infer_dnn_upconv_concat(c, od, &cat, &ctot, &choff));
    int64_t key[INFER_DNN_KEY_MAX];
    size_t key_n = 0;
    infer_dnn_key_add(key, &key_n, x);
    infer_dnn_key_add(key, &key_n, wt);
    infer_dnn_key_add(key, &key_n, b);
    key[key_n++] = ctot;
    key[key_n++] = -7; /* never the key of infer_dnn_conv_common's primitive */
    infer_dnn_upconv_cache *k = (infer_dnn_upconv_cache *)infer_dnn_cache_find(c, INFER_DNN_KIND_UPCONV, key, key_n);
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
        infer_dnn_cache *base;
        CL_GUARD(infer_dnn_cache_new(c, INFER_DNN_KIND_UPCONV, sizeof(*k), infer_dnn_upconv_drop, key, key_n, &base));
        k = (infer_dnn_upconv_cache *)base;
        k->up_kh = KH;
        k->up_kw = KW;
        k->up_wo = od[3];
        k->up_cs = ctot;
        k->base.out_rank = 4;
        memcpy(k->base.out_dims, od, sizeof(od));
        /* src: the channels-last input as [N * H, W, C]; dst of tap (i, j):
         * [N * H, W, M] with strides (kh * Wo * Cs, kw * Cs, 1). */
        dnnl_dims_t sd = {N * H, W, C}, ss = {W * C, C, 1}, wd = {1, C, M}, dd = {N * H, W, M};
        dnnl_dims_t ds = {KH * od[3] * ctot, KW * ctot, 1}, bd = {1, 1, M}, odd, cd = {N, ctot, od[2], od[3]};
        INFER_DNN_TRY(dnnl_memory_desc_init_by_strides(&k->base.src_md, 3, sd, dnnl_f32, ss), "memory descriptor");
        INFER_DNN_TRY(dnnl_memory_desc_init_by_strides(&k->mm_dst_md, 3, dd, dnnl_f32, ds), "memory descriptor");
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->p.w.user_md, 3, wd, dnnl_f32, dnnl_abc), "memory descriptor");
        dnnl_memory_desc_t w_any;
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&w_any, 3, wd, dnnl_f32, dnnl_format_tag_any), "memory descriptor");
        if (b != NULL) {
            INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->p.b_md, 3, bd, dnnl_f32, dnnl_abc), "memory descriptor");
            k->p.has_bias = true;
        }
        infer_dnn_dims(odd, 4, od);
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->base.dst_md, 4, odd, dnnl_f32, dnnl_acdb), "memory descriptor");
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->cat_md, 4, cd, dnnl_f32, dnnl_acdb), "memory descriptor");
        k->base.dst_plain = false;
        dnnl_matmul_desc_t desc;
        INFER_DNN_TRY(dnnl_matmul_desc_init(&desc, &k->base.src_md, &w_any, b ? &k->p.b_md : NULL, &k->mm_dst_md),
                      "matmul descriptor");
        dnnl_primitive_desc_t pd = NULL;
        dnnl_primitive_attr_t attr = NULL;
        CL_GUARD_GOTO(infer_dnn_attr_make(&attr));
        dnnl_status_t st = dnnl_primitive_desc_create(&pd, &desc, attr, ((infer_dnn *)c->m->dnn)->eng, NULL);
        dnnl_primitive_attr_destroy(attr);
        if (st != dnnl_success) CL_FAIL_GOTO(CL_ERR_INTERNAL, "oneDNN matmul descriptor failed (status %d)", (int)st);
        /* A reference matmul would be slower than the deconvolution. */
        bool is_ref = infer_dnn_impl_is_ref(pd);
        const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (!is_ref && wq != NULL) {
            k->p.w.md = *wq;
            k->base.has_sp = sp != NULL && dnnl_memory_desc_get_size(sp) > 0;
            if (k->base.has_sp) k->base.sp_md = *sp;
            st = dnnl_primitive_create(&k->base.prim, pd);
        }
        dnnl_primitive_desc_destroy(pd);
        CL_ENSURE_GOTO(!is_ref && wq != NULL && st == dnnl_success, CL_ERR_INTERNAL, "no fast oneDNN matmul");
        /* Weights: every kernel tap packed and reordered once (initializers). */
        CL_GUARD_GOTO(infer_dnn_reorder_make(c->m->dnn, &k->p.w.user_md, &k->p.w.md, &k->w_reorder));
        k->up_w_bytes = (dnnl_memory_desc_get_size(&k->p.w.md) + 63) / 64 * 64;
        k->p.w.bytes = k->up_w_bytes * (size_t)(KH * KW);
        CL_GUARD_GOTO(infer_dnn_weights_alloc(c, k->p.w.bytes, &k->p.w.buf));
        tmp_bytes = (size_t)(C * M) * sizeof(float);
        tmp = malloc(tmp_bytes);
        CL_ENSURE_GOTO(tmp != NULL, CL_ERR_NOMEM, "out of memory packing weights");
        for (int64_t i = 0; i < KH; i++)
            for (int64_t j = 0; j < KW; j++)
                CL_GUARD_GOTO(infer_dnn_upconv_pack(c, k, wt, i, j, tmp,
                                                    (char *)k->p.w.buf + (size_t)(i * KW + j) * k->up_w_bytes));
        INFER_DNN_TRY(dnnl_stream_wait(((infer_dnn *)c->m->dnn)->stream), "weights reorder");
        k->p.w.from = wt->data;
    }
    built = true; /* from here on a failure is an error, not a configuration to fall back from */
    const void *src;
    CL_GUARD_GOTO(infer_dnn_upconv_src(c, k, lay, &cl_md, x, &src));
    if (cat != NULL) {
        CL_GUARD_GOTO(infer_tensor_new_bytes(c->mem, &cat->t, CL_INFER_FLOAT, 4, k->cat_md.dims,
                                             dnnl_memory_desc_get_size(&k->cat_md)));
        CL_GUARD_GOTO(infer_dnn_upconv_concat_fill(c, k, cat->t.data));
        CL_GUARD_GOTO(infer_dnn_upconv_run(c, k, src, b ? b->data : NULL, (float *)cat->t.data + choff));
        cat->layout = &k->cat_md;
    } else {
        CL_GUARD_GOTO(infer_tensor_new_bytes(c->mem, out[0], CL_INFER_FLOAT, 4, k->base.out_dims,
                                             dnnl_memory_desc_get_size(&k->base.dst_md)));
        CL_GUARD_GOTO(infer_dnn_upconv_run(c, k, src, b ? b->data : NULL, out[0]->data));
        infer_dnn_out_layout(c, 0, &k->base);
    }
    *handled = true;
    goto done;
out:
    if (!built) {
        /* A configuration oneDNN refused: forget it; the deconvolution path runs. */
        infer_dnn_cache_drop(c);
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

cl_status infer_dnn_convtranspose(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                  bool *handled)
{
    CL_GUARD(infer_dnn_upconv(c, in, n_in, out, handled));
    if (*handled) return CL_OK;
    return infer_dnn_conv_common(c, in, n_in, out, true, handled);
}
