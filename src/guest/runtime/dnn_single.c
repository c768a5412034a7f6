/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The single-source ops on oneDNN: the eltwise ops (Relu, LeakyRelu, Sigmoid,
 * Tanh, Exp, Log, Sqrt, Abs, Neg), Clip, Softmax and LogSoftmax, and a
 * standalone BatchNormalization. Each runs on the source's layout as it is
 * held and leaves its output in the layout oneDNN gives it (the source's); a
 * configuration oneDNN has only a reference kernel for stays with ours.
 */
#include <float.h>
#include <string.h>

#include "dnn.h"

/* BatchNormalization's primitive and the layouts of its five sources: X as
 * the primitive was made for, then scale, shift, mean and variance (one value
 * per channel). Eltwise and softmax keep nothing beyond the core's infer_dnn_cache. */
typedef struct infer_dnn_bn_cache {
    infer_dnn_cache base;
    dnnl_memory_desc_t mds[5];
} infer_dnn_bn_cache;

/* The unary ops oneDNN's eltwise computes as ONNX defines them (alpha, beta
 * as oneDNN's; LeakyRelu's alpha from the node). */
static bool infer_dnn_eltwise_of(const infer_node *n, dnnl_alg_kind_t *alg, float *alpha, float *beta)
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
static CL_MUST_USE cl_status infer_dnn_eltwise_run(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out,
                                                   dnnl_alg_kind_t alg, float alpha, float beta, bool *handled)
{
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 1 || x->rank > 6 || cl_infer_tensor_count(x) == 0) return CL_OK;
    dnnl_memory_desc_t src;
    int64_t key[INFER_DNN_KEY_MAX], extra[2];
    size_t key_n;
    /* Clip's bounds may be computed: the primitive is made for the values it got. */
    uint32_t ab[2];
    memcpy(&ab[0], &alpha, sizeof(float));
    memcpy(&ab[1], &beta, sizeof(float));
    extra[0] = ab[0];
    extra[1] = ab[1];
    CL_GUARD(infer_dnn_in_md(c, 0, x, &src));
    if (infer_dnn_single_lookup(c, INFER_DNN_KIND_ELTWISE, x, &src, extra, 2, key, &key_n) == NULL) {
        dnnl_eltwise_desc_t desc;
        bool made;
        if (dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, alpha, beta) != dnnl_success)
            return CL_OK;
        CL_GUARD(infer_dnn_single_make(c, INFER_DNN_KIND_ELTWISE, sizeof(infer_dnn_cache), NULL, &src, key, key_n,
                                       x->rank, x->dims, &desc, &made));
        if (!made) return CL_OK;
    }
    return infer_dnn_single_run_src(c, in, out, handled);
}

cl_status infer_dnn_unary(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
{
    dnnl_alg_kind_t alg;
    float alpha, beta;
    *handled = false;
    if (!infer_dnn_eltwise_of(c->node, &alg, &alpha, &beta)) return CL_OK;
    return infer_dnn_eltwise_run(c, in, out, alg, alpha, beta, handled);
}

/* Clip as oneDNN's clip_v2, min(max(x, lo), hi): the bounds from the
 * attributes (opset < 11) or the optional scalar inputs. Infinite bounds
 * become the largest floats (the same result on finite inputs; NaN stays
 * NaN either way). */
cl_status infer_dnn_clip(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled)
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
    return infer_dnn_eltwise_run(c, in, out, dnnl_eltwise_clip_v2, lo, hi, handled);
}

/* Softmax and LogSoftmax. From opset 13 along one axis, any layout; before,
 * over the input flattened to [outer, inner] at the axis, which is one axis
 * only when the axis is the last (plain inputs then). */
cl_status infer_dnn_softmax(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
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
    CL_GUARD(infer_dnn_in_md(c, 0, x, &src));
    if (c->opset < 13 && (axis != x->rank - 1 || !infer_dnn_md_is_plain(&src))) return CL_OK;
    int64_t key[INFER_DNN_KEY_MAX], extra[1] = {axis};
    size_t key_n;
    if (infer_dnn_single_lookup(c, INFER_DNN_KIND_SOFTMAX, x, &src, extra, 1, key, &key_n) == NULL) {
        dnnl_softmax_v2_desc_t desc;
        dnnl_alg_kind_t alg = strcmp(c->node->op, "LogSoftmax") == 0 ? dnnl_softmax_log : dnnl_softmax_accurate;
        bool made;
        if (dnnl_softmax_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, &src, (int)axis) !=
            dnnl_success)
            return CL_OK;
        CL_GUARD(infer_dnn_single_make(c, INFER_DNN_KIND_SOFTMAX, sizeof(infer_dnn_cache), NULL, &src, key, key_n,
                                       x->rank, x->dims, &desc, &made));
        if (!made) return CL_OK;
    }
    return infer_dnn_single_run_src(c, in, out, handled);
}

/* BatchNormalization (inference: the given mean and variance) on any layout;
 * a BatchNormalization after a Conv is usually folded into it instead. */
cl_status infer_dnn_batchnorm(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
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
    CL_GUARD(infer_dnn_in_md(c, 0, x, &src));
    int64_t key[INFER_DNN_KEY_MAX];
    size_t key_n;
    infer_dnn_bn_cache *k =
        (infer_dnn_bn_cache *)infer_dnn_single_lookup(c, INFER_DNN_KIND_BATCHNORM, x, &src, NULL, 0, key, &key_n);
    if (k == NULL) {
        dnnl_batch_normalization_desc_t desc;
        bool made;
        if (dnnl_batch_normalization_forward_desc_init(&desc, dnnl_forward_inference, &src, eps,
                                                       dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift) !=
            dnnl_success)
            return CL_OK;
        CL_GUARD(infer_dnn_single_make(c, INFER_DNN_KIND_BATCHNORM, sizeof(*k), NULL, &src, key, key_n, x->rank,
                                       x->dims, &desc, &made));
        if (!made) return CL_OK;
        k = *c->fast;
        k->mds[0] = src;
        dnnl_dims_t cd = {x->dims[1]};
        for (int i = 1; i < 5; i++)
            INFER_DNN_TRY(dnnl_memory_desc_init_by_tag(&k->mds[i], 1, cd, dnnl_f32, dnnl_a), "memory descriptor");
    }
    /* ONNX orders them X, scale, B, mean, var. */
    static const int args[5] = {DNNL_ARG_SRC, DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
    return infer_dnn_single_run(c, 5, args, k->mds, (const cl_infer_tensor *const *)in, out, handled);
out:
    /* A half-made primitive must not be found by the next run. */
    infer_dnn_cache_drop(c);
    return rc;
}
