/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gemm and MatMul on oneDNN's matmul primitive, on plain activations; the
 * weights (an initializer) go to the layout oneDNN picks, once per model.
 */
#include <string.h>

#include "dnn.h"

/* A matmul primitive. */
typedef struct infer_dnn_matmul_cache {
    infer_dnn_cache base;
    infer_dnn_wprim p;
} infer_dnn_matmul_cache;

static void infer_dnn_matmul_drop(cl_infer_model *m, infer_dnn_cache *base)
{
    infer_dnn_matmul_cache *k = (infer_dnn_matmul_cache *)base;
    infer_dnn_wprim_free(m, &k->p);
}

/* Row-major strides of dims, or those of the transposed matrix in the last two. */
static void infer_dnn_strides(dnnl_dims_t st, int r, const dnnl_dims_t d, bool trans)
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
static CL_MUST_USE cl_status infer_dnn_matmul_common(infer_ctx *c, const cl_infer_tensor *a, bool ta,
                                                     const cl_infer_tensor *bm, bool tb, const cl_infer_tensor *bias,
                                                     int r, const int64_t *ad, const int64_t *bdm, const int64_t *od,
                                                     cl_infer_tensor *out, bool *handled)
{
    cl_status rc = CL_OK;
    int64_t key[INFER_DNN_KEY_MAX];
    size_t key_n = 0;
    infer_dnn_key_add(key, &key_n, a);
    infer_dnn_key_add(key, &key_n, bm);
    infer_dnn_key_add(key, &key_n, bias);
    infer_dnn_matmul_cache *k = (infer_dnn_matmul_cache *)infer_dnn_cache_find(c, INFER_DNN_KIND_MATMUL, key, key_n);
    if (k == NULL) {
        infer_dnn_cache *base;
        CL_GUARD(infer_dnn_cache_new(c, INFER_DNN_KIND_MATMUL, sizeof(*k), infer_dnn_matmul_drop, key, key_n, &base));
        k = (infer_dnn_matmul_cache *)base;
        k->base.out_rank = r;
        memcpy(k->base.out_dims, od, (size_t)r * sizeof(int64_t));
        dnnl_dims_t sa, sb, so, st, w_any_d;
        infer_dnn_dims(sa, r, ad);
        infer_dnn_dims(sb, r, bdm);
        infer_dnn_dims(so, r, od);
        infer_dnn_strides(st, r, sa, ta);
        INFER_DNN_TRY(dnnl_memory_desc_init_by_strides(&k->base.src_md, r, sa, dnnl_f32, st), "memory descriptor");
        infer_dnn_strides(st, r, sb, tb);
        INFER_DNN_TRY(dnnl_memory_desc_init_by_strides(&k->p.w.user_md, r, sb, dnnl_f32, st), "memory descriptor");
        infer_dnn_dims(w_any_d, r, bdm);
        dnnl_memory_desc_t w_any;
        INFER_DNN_TRY(
            dnnl_memory_desc_init_by_tag(&w_any, r, w_any_d, dnnl_f32,
                                         infer_dnn_input_is_init(c, 1) ? dnnl_format_tag_any : infer_dnn_plain_tag(r)),
            "memory descriptor");
        if (!infer_dnn_input_is_init(c, 1)) w_any = k->p.w.user_md;
        INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->base.dst_md, r, so, dnnl_f32, infer_dnn_plain_tag(r)),
                      "memory descriptor");
        if (bias != NULL) {
            dnnl_dims_t bd;
            for (int i = 0; i < r; i++) bd[i] = 1;
            bd[r - 1] = od[r - 1];
            if (bias->rank == 2) bd[r - 2] = bias->dims[0];
            INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->p.b_md, r, bd, dnnl_f32, infer_dnn_plain_tag(r)),
                          "memory descriptor");
            k->p.has_bias = true;
        }
        dnnl_matmul_desc_t desc;
        INFER_DNN_TRY(dnnl_matmul_desc_init(&desc, &k->base.src_md, &w_any, bias ? &k->p.b_md : NULL, &k->base.dst_md),
                      "matmul descriptor");
        CL_GUARD_GOTO(infer_dnn_prim_make(c, &k->base, &k->p, &desc, false));
    }
    void *wp;
    CL_GUARD(infer_dnn_weights_ready(c, &k->p.w, bm, &wp));
    CL_GUARD(infer_tensor_new(c->mem, out, CL_INFER_FLOAT, k->base.out_rank, k->base.out_dims));
    CL_GUARD(infer_dnn_run(c, &k->base, &k->p, a->data, wp, bias ? bias->data : NULL, out->data, DNNL_ARG_SRC,
                           DNNL_ARG_WEIGHTS));
    *handled = true;
    return CL_OK;
out:
    infer_dnn_cache_drop(c);
    cl_error_clear();
    return CL_OK;
}

/* Gemm with alpha = 1 and a bias C (beta = 1) of shape [N], [1, N] or [M, N]. */
cl_status infer_dnn_gemm(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
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
    return infer_dnn_matmul_common(c, a, ta != 0, b, tb != 0, cc, 2, ad, bd, od, out[0], handled);
}

/* MatMul of operands of equal rank >= 2 with equal batch dimensions. */
cl_status infer_dnn_matmul(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
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
    return infer_dnn_matmul_common(c, a, false, b, false, NULL, r, a->dims, b->dims, od, out[0], handled);
}
