/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Convolution, transposed convolution, pooling and batch normalisation:
 * plain-C reference kernels. Spatial problems of 1 to 3 dimensions are all run
 * as 3-D ones, with leading unit dimensions, so there is one loop nest each.
 */
#include <math.h>

#include "ops.h"

INFER_CHECK(infer_check_conv)
{
    char ap[16];
    int64_t group;
    CL_GUARD(infer_auto_pad(n, ap, sizeof(ap)));
    CL_GUARD(infer_attr_int(n, "group", 1, &group));
    CL_ENSURE(group >= 1, CL_ERR_FORMAT, "node '%s' (%s): group %lld must be positive", n->name, n->op,
              (long long)group);
    return CL_OK;
}

/* ONNX Conv: Y[n, m] = B[m] + sum over the group's input channels and the
 * kernel window of X * W. The innermost loop runs along an output row over the
 * range where the input index is in bounds, so it has no branch. */
INFER_KERNEL(infer_op_conv)
{
    const cl_infer_tensor *x = in[0], *wt = in[1], *b = n_in > 2 ? in[2] : NULL;
    INFER_NEED_FLOAT(c, x, "input");
    INFER_NEED_FLOAT(c, wt, "weight");
    CL_ENSURE(x->rank >= 3, CL_ERR_UNSUPPORTED, "Conv input has rank %d; 3 to 5 are supported", x->rank);
    int64_t k[SP], group;
    CL_GUARD(infer_conv_kernel(c, x, wt, k));
    CL_GUARD(infer_attr_int(c->node, "group", 1, &group));
    infer_window w;
    CL_GUARD(infer_window_make(c, x, k, false, true, &w));
    int64_t N = x->dims[0], C = x->dims[1], M = wt->dims[0], Cg = wt->dims[1];
    CL_ENSURE(C % group == 0 && M % group == 0 && Cg * group == C, CL_ERR_FORMAT,
              "Conv: input has %lld channels, weight expects %lld per group for %lld groups", (long long)C,
              (long long)Cg, (long long)group);
    if (b != NULL) {
        INFER_NEED_FLOAT(c, b, "bias");
        CL_ENSURE(b->rank == 1 && b->dims[0] == M, CL_ERR_FORMAT, "Conv: bias must have %lld values", (long long)M);
    }
    int64_t od[CL_INFER_MAX_RANK] = {N, M};
    for (int i = 0; i < w.nsp; i++) od[2 + i] = w.out[SP - w.nsp + i];
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, x->rank, od));
    const float *X = x->data, *W = wt->data, *B = b ? b->data : NULL;
    float *Y = out[0]->data;
    int64_t in_sp = w.in[0] * w.in[1] * w.in[2], out_sp = w.out[0] * w.out[1] * w.out[2];
    int64_t k_sp = w.k[0] * w.k[1] * w.k[2], Mg = M / group;
    for (int64_t nn = 0; nn < N; nn++) {
        for (int64_t m = 0; m < M; m++) {
            float *y = Y + (nn * M + m) * out_sp;
            float bias = B ? B[m] : 0.0f;
            for (int64_t i = 0; i < out_sp; i++) y[i] = bias;
            int64_t g = m / Mg;
            for (int64_t ci = 0; ci < Cg; ci++) {
                const float *xc = X + (nn * C + g * Cg + ci) * in_sp;
                const float *wc = W + (m * Cg + ci) * k_sp;
                for (int64_t kd = 0; kd < w.k[0]; kd++)
                    for (int64_t kh = 0; kh < w.k[1]; kh++)
                        for (int64_t kw = 0; kw < w.k[2]; kw++) {
                            float wv = wc[(kd * w.k[1] + kh) * w.k[2] + kw];
                            int64_t offw = kw * w.dil[2] - w.pad_b[2];
                            /* ow range with 0 <= ow*s + offw < in_w */
                            int64_t lo = offw >= 0 ? 0 : (-offw + w.stride[2] - 1) / w.stride[2];
                            int64_t hi = w.in[2] - 1 - offw < 0 ? -1 : (w.in[2] - 1 - offw) / w.stride[2];
                            if (hi > w.out[2] - 1) hi = w.out[2] - 1;
                            for (int64_t o0 = 0; o0 < w.out[0]; o0++) {
                                int64_t id = o0 * w.stride[0] + kd * w.dil[0] - w.pad_b[0];
                                if (id < 0 || id >= w.in[0]) continue;
                                for (int64_t o1 = 0; o1 < w.out[1]; o1++) {
                                    int64_t ih = o1 * w.stride[1] + kh * w.dil[1] - w.pad_b[1];
                                    if (ih < 0 || ih >= w.in[1]) continue;
                                    const float *xr = xc + (id * w.in[1] + ih) * w.in[2] + offw;
                                    float *yr = y + (o0 * w.out[1] + o1) * w.out[2];
                                    if (w.stride[2] == 1) {
                                        for (int64_t ow = lo; ow <= hi; ow++) yr[ow] += wv * xr[ow];
                                    } else {
                                        for (int64_t ow = lo; ow <= hi; ow++) yr[ow] += wv * xr[ow * w.stride[2]];
                                    }
                                }
                            }
                        }
            }
        }
    }
    return CL_OK;
}

/* ONNX ConvTranspose: each input pixel scatters W into the output at
 * in*stride + k*dilation - pad_begin (the geometry: window.c). */
INFER_KERNEL(infer_op_convtranspose)
{
    const cl_infer_tensor *x = in[0], *wt = in[1], *b = n_in > 2 ? in[2] : NULL;
    infer_window w;
    int64_t M, group;
    CL_GUARD(infer_convt_window(c, x, wt, &M, &w));
    CL_GUARD(infer_attr_int(c->node, "group", 1, &group));
    if (b != NULL) {
        INFER_NEED_FLOAT(c, b, "bias");
        CL_ENSURE(b->rank == 1 && b->dims[0] == M, CL_ERR_FORMAT, "ConvTranspose: bias must have %lld values",
                  (long long)M);
    }
    int nsp = w.nsp;
    int64_t N = x->dims[0], C = x->dims[1], Mg = M / group;
    int64_t od[CL_INFER_MAX_RANK] = {N, M};
    for (int i = 0; i < nsp; i++) od[2 + i] = w.out[SP - nsp + i];
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, x->rank, od));
    const float *X = x->data, *W = wt->data, *B = b ? b->data : NULL;
    float *Y = out[0]->data;
    int64_t in_sp = w.in[0] * w.in[1] * w.in[2], out_sp = w.out[0] * w.out[1] * w.out[2];
    int64_t k_sp = w.k[0] * w.k[1] * w.k[2], Cg = C / group;
    for (int64_t nn = 0; nn < N; nn++) {
        for (int64_t m = 0; m < M; m++) {
            float *y = Y + (nn * M + m) * out_sp;
            float bias = B ? B[m] : 0.0f;
            for (int64_t i = 0; i < out_sp; i++) y[i] = bias;
            int64_t g = m / Mg, ml = m % Mg;
            for (int64_t ci = 0; ci < Cg; ci++) {
                int64_t cc = g * Cg + ci;
                const float *xc = X + (nn * C + cc) * in_sp;
                const float *wc = W + (cc * Mg + ml) * k_sp;
                for (int64_t kd = 0; kd < w.k[0]; kd++)
                    for (int64_t kh = 0; kh < w.k[1]; kh++)
                        for (int64_t kw = 0; kw < w.k[2]; kw++) {
                            float wv = wc[(kd * w.k[1] + kh) * w.k[2] + kw];
                            for (int64_t i0 = 0; i0 < w.in[0]; i0++) {
                                int64_t o0 = i0 * w.stride[0] + kd * w.dil[0] - w.pad_b[0];
                                if (o0 < 0 || o0 >= w.out[0]) continue;
                                for (int64_t i1 = 0; i1 < w.in[1]; i1++) {
                                    int64_t o1 = i1 * w.stride[1] + kh * w.dil[1] - w.pad_b[1];
                                    if (o1 < 0 || o1 >= w.out[1]) continue;
                                    const float *xr = xc + (i0 * w.in[1] + i1) * w.in[2];
                                    float *yr = y + (o0 * w.out[1] + o1) * w.out[2];
                                    for (int64_t i2 = 0; i2 < w.in[2]; i2++) {
                                        int64_t o2 = i2 * w.stride[2] + kw * w.dil[2] - w.pad_b[2];
                                        if (o2 >= 0 && o2 < w.out[2]) yr[o2] += wv * xr[i2];
                                    }
                                }
                            }
                        }
            }
        }
    }
    return CL_OK;
}

INFER_CHECK(infer_check_pool)
{
    char ap[16];
    bool found;
    size_t cnt;
    const int64_t *ks;
    CL_GUARD(infer_auto_pad(n, ap, sizeof(ap)));
    CL_GUARD(infer_attr_ints(n, "kernel_shape", &ks, &cnt, &found));
    CL_ENSURE(found && cnt >= 1 && cnt <= SP, CL_ERR_FORMAT,
              "node '%s' (%s) is missing the required attribute 'kernel_shape' (1 to 3 values)", n->name, n->op);
    int64_t so;
    CL_GUARD(infer_attr_int(n, "storage_order", 0, &so));
    CL_ENSURE(so == 0 || so == 1, CL_ERR_FORMAT, "node '%s' (%s): storage_order must be 0 or 1", n->name, n->op);
    return CL_OK;
}

/* ONNX MaxPool: the max over the window's in-bounds positions (padding never
 * wins); Indices are flat positions in X, column-major within the image when
 * storage_order is 1. */
/* The U-Net's MaxPool: 2-D, no indices, no dilation. Planes run in parallel
 * and each window is clamped once instead of testing every tap; the result is
 * the general loop's exactly (max is exact; the first in-window value seeds
 * the maximum, so NaN behaves the same). */
static void infer_maxpool2d_fast(const float *X, float *Y, int64_t planes, const infer_window *w)
{
    const int64_t H = w->in[1], W = w->in[2], OH = w->out[1], OW = w->out[2];
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = X + p * H * W;
        float *yp = Y + p * OH * OW;
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t h0 = oh * w->stride[1] - w->pad_b[1], h1 = h0 + w->k[1];
            h0 = h0 < 0 ? 0 : h0;
            h1 = h1 > H ? H : h1;
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t c0 = ow * w->stride[2] - w->pad_b[2], c1 = c0 + w->k[2];
                c0 = c0 < 0 ? 0 : c0;
                c1 = c1 > W ? W : c1;
                float best = -INFINITY;
                bool first = true;
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t x = c0; x < c1; x++) {
                        float v = xp[h * W + x];
                        if (v > best || first) best = v;
                        first = false;
                    }
                yp[oh * OW + ow] = best;
            }
        }
    }
}

INFER_KERNEL(infer_op_maxpool)
{
    const cl_infer_tensor *x = in[0];
    infer_window w;
    int64_t od[CL_INFER_MAX_RANK], so;
    CL_GUARD(infer_pool_setup(c, x, &w, od));
    CL_GUARD(infer_attr_int(c->node, "storage_order", 0, &so));
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, x->rank, od));
    int64_t *I = NULL;
    if (n_out > 1 && out[1] != NULL) {
        CL_GUARD(infer_tensor_new(c->mem, out[1], CL_INFER_INT64, x->rank, od));
        I = out[1]->data;
    }
    const float *X = x->data;
    float *Y = out[0]->data;
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t in_sp = w.in[0] * w.in[1] * w.in[2];
    if (w.nsp == 2 && I == NULL && w.dil[1] == 1 && w.dil[2] == 1) {
        infer_maxpool2d_fast(X, Y, planes, &w);
        return CL_OK;
    }
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = X + p * in_sp;
        for (int64_t o0 = 0; o0 < w.out[0]; o0++)
            for (int64_t o1 = 0; o1 < w.out[1]; o1++)
                for (int64_t o2 = 0; o2 < w.out[2]; o2++) {
                    float best = -INFINITY;
                    int64_t bi = -1;
                    for (int64_t k0 = 0; k0 < w.k[0]; k0++) {
                        int64_t i0 = o0 * w.stride[0] + k0 * w.dil[0] - w.pad_b[0];
                        if (i0 < 0 || i0 >= w.in[0]) continue;
                        for (int64_t k1 = 0; k1 < w.k[1]; k1++) {
                            int64_t i1 = o1 * w.stride[1] + k1 * w.dil[1] - w.pad_b[1];
                            if (i1 < 0 || i1 >= w.in[1]) continue;
                            for (int64_t k2 = 0; k2 < w.k[2]; k2++) {
                                int64_t i2 = o2 * w.stride[2] + k2 * w.dil[2] - w.pad_b[2];
                                if (i2 < 0 || i2 >= w.in[2]) continue;
                                float v = xp[(i0 * w.in[1] + i1) * w.in[2] + i2];
                                if (v > best || bi < 0) {
                                    best = v;
                                    bi = so ? (i2 * w.in[1] + i1) * w.in[0] + i0 : (i0 * w.in[1] + i1) * w.in[2] + i2;
                                }
                            }
                        }
                    }
                    int64_t oi = ((p * w.out[0] + o0) * w.out[1] + o1) * w.out[2] + o2;
                    Y[oi] = best;
                    if (I) I[oi] = p * in_sp + (bi < 0 ? 0 : bi);
                }
    }
    return CL_OK;
}

/* ONNX AveragePool: the divisor counts in-bounds positions, or with
 * count_include_pad every position inside the padded input. */
INFER_KERNEL(infer_op_avgpool)
{
    const cl_infer_tensor *x = in[0];
    infer_window w;
    int64_t od[CL_INFER_MAX_RANK], cip;
    CL_GUARD(infer_pool_setup(c, x, &w, od));
    CL_GUARD(infer_attr_int(c->node, "count_include_pad", 0, &cip));
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, x->rank, od));
    const float *X = x->data;
    float *Y = out[0]->data;
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t in_sp = w.in[0] * w.in[1] * w.in[2];
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = X + p * in_sp;
        for (int64_t o0 = 0; o0 < w.out[0]; o0++)
            for (int64_t o1 = 0; o1 < w.out[1]; o1++)
                for (int64_t o2 = 0; o2 < w.out[2]; o2++) {
                    double sum = 0;
                    int64_t cnt = 0, padded = 0;
                    for (int64_t k0 = 0; k0 < w.k[0]; k0++) {
                        int64_t i0 = o0 * w.stride[0] + k0 - w.pad_b[0];
                        bool p0 = i0 >= -w.pad_b[0] && i0 < w.in[0] + w.pad_e[0];
                        for (int64_t k1 = 0; k1 < w.k[1]; k1++) {
                            int64_t i1 = o1 * w.stride[1] + k1 - w.pad_b[1];
                            bool p1 = i1 >= -w.pad_b[1] && i1 < w.in[1] + w.pad_e[1];
                            for (int64_t k2 = 0; k2 < w.k[2]; k2++) {
                                int64_t i2 = o2 * w.stride[2] + k2 - w.pad_b[2];
                                bool p2 = i2 >= -w.pad_b[2] && i2 < w.in[2] + w.pad_e[2];
                                if (p0 && p1 && p2) padded++;
                                if (i0 < 0 || i0 >= w.in[0] || i1 < 0 || i1 >= w.in[1] || i2 < 0 || i2 >= w.in[2])
                                    continue;
                                sum += xp[(i0 * w.in[1] + i1) * w.in[2] + i2];
                                cnt++;
                            }
                        }
                    }
                    int64_t div = cip ? padded : cnt;
                    Y[((p * w.out[0] + o0) * w.out[1] + o1) * w.out[2] + o2] = div ? (float)(sum / (double)div) : 0.0f;
                }
    }
    return CL_OK;
}

INFER_KERNEL(infer_op_globalavgpool)
{
    const cl_infer_tensor *x = in[0];
    INFER_NEED_FLOAT(c, x, "input");
    CL_ENSURE(x->rank >= 3, CL_ERR_FORMAT, "GlobalAveragePool input has rank %d; at least 3 is needed", x->rank);
    int64_t od[CL_INFER_MAX_RANK];
    size_t sp = 1;
    for (int i = 0; i < x->rank; i++) {
        od[i] = i < 2 ? x->dims[i] : 1;
        if (i >= 2) sp *= (size_t)x->dims[i];
    }
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, x->rank, od));
    size_t planes = (size_t)(x->dims[0] * x->dims[1]);
    const float *X = x->data;
    float *Y = out[0]->data;
    for (size_t p = 0; p < planes; p++) {
        double s = 0;
        for (size_t i = 0; i < sp; i++) s += X[p * sp + i];
        Y[p] = sp ? (float)(s / (double)sp) : 0.0f;
    }
    return CL_OK;
}

INFER_CHECK(infer_check_batchnorm)
{
    int64_t training;
    CL_GUARD(infer_attr_int(n, "training_mode", 0, &training));
    CL_ENSURE(training == 0, CL_ERR_UNSUPPORTED,
              "node '%s' (BatchNormalization): training_mode=1 is not supported (inference only)", n->name);
    return CL_OK;
}

/* ONNX BatchNormalization (inference): Y = (X - mean) / sqrt(var + epsilon) * scale + B per channel. */
INFER_KERNEL(infer_op_batchnorm)
{
    const cl_infer_tensor *x = in[0];
    INFER_NEED_FLOAT(c, x, "input");
    CL_ENSURE(x->rank >= 2, CL_ERR_FORMAT, "BatchNormalization input has rank %d; at least 2 is needed", x->rank);
    int64_t C = x->dims[1];
    for (int i = 1; i < 5; i++) {
        INFER_NEED_FLOAT(c, in[i], "parameter");
        CL_ENSURE(cl_infer_tensor_count(in[i]) == (size_t)C, CL_ERR_FORMAT,
                  "BatchNormalization: parameter %d has %zu values for %lld channels", i, cl_infer_tensor_count(in[i]),
                  (long long)C);
    }
    float eps;
    CL_GUARD(infer_attr_float(c->node, "epsilon", 1e-5f, &eps));
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, x->rank, x->dims));
    const float *S = in[1]->data, *B = in[2]->data, *Mu = in[3]->data, *V = in[4]->data, *X = x->data;
    float *Y = out[0]->data;
    size_t sp = 1;
    for (int i = 2; i < x->rank; i++) sp *= (size_t)x->dims[i];
    for (int64_t nn = 0; nn < x->dims[0]; nn++)
        for (int64_t ch = 0; ch < C; ch++) {
            float a = S[ch] / sqrtf(V[ch] + eps);
            float bb = B[ch] - Mu[ch] * a;
            size_t base = (size_t)(nn * C + ch) * sp;
            for (size_t i = 0; i < sp; i++) Y[base + i] = X[base + i] * a + bb;
        }
    return CL_OK;
}
