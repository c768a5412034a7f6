/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Convolution, transposed convolution, pooling and batch normalisation:
 * plain-C reference kernels. Spatial problems of 1 to 3 dimensions are all run
 * as 3-D ones, with leading unit dimensions, so there is one loop nest each.
 */
#include <math.h>
#include <string.h>

#include "ops.h"

static cl_status infer_auto_pad(const infer_node *n, char *buf, size_t bufsz)
{
    CL_GUARD(infer_attr_string(n, "auto_pad", "NOTSET", buf, bufsz));
    CL_ENSURE(strcmp(buf, "NOTSET") == 0 || strcmp(buf, "VALID") == 0 || strcmp(buf, "SAME_UPPER") == 0 ||
                  strcmp(buf, "SAME_LOWER") == 0,
              CL_ERR_FORMAT, "node '%s' (%s): auto_pad '%s' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER",
              n->name, n->op, buf);
    return CL_OK;
}

/* Reads an ints attribute of exactly `want` values (when present). */
static cl_status infer_ints_n(const infer_node *n, const char *name, size_t want, const int64_t **v, bool *found)
{
    size_t cnt;
    CL_GUARD(infer_attr_ints(n, name, v, &cnt, found));
    CL_ENSURE(!*found || cnt == want, CL_ERR_FORMAT, "node '%s' (%s): attribute '%s' has %zu values; expected %zu",
              n->name, n->op, name, cnt, want);
    return CL_OK;
}

/* Window geometry shared by Conv and the pools (ONNX Conv / MaxPool "auto_pad",
 * "pads", "strides", "dilations", and the pools' ceil_mode). */
cl_status infer_window_make(const infer_ctx *c, const cl_infer_tensor *x, const int64_t *kernel, bool ceil_mode,
                            bool has_dilations, infer_window *w)
{
    const infer_node *n = c->node;
    char ap[16];
    CL_ENSURE(x->rank >= 3 && x->rank <= 2 + SP, CL_ERR_UNSUPPORTED,
              "%s input has rank %d; 1 to 3 spatial dimensions (rank 3 to 5) are supported", n->op, x->rank);
    int nsp = x->rank - 2;
    const int64_t *strides, *dil = NULL, *pads;
    bool fs, fd = false, fp;
    CL_GUARD(infer_auto_pad(n, ap, sizeof(ap)));
    CL_GUARD(infer_ints_n(n, "strides", (size_t)nsp, &strides, &fs));
    if (has_dilations) CL_GUARD(infer_ints_n(n, "dilations", (size_t)nsp, &dil, &fd));
    CL_GUARD(infer_ints_n(n, "pads", (size_t)nsp * 2, &pads, &fp));
    w->nsp = nsp;
    for (int i = 0; i < SP; i++) {
        int s = i - (SP - nsp); /* index into the real spatial dims, <0 for widened ones */
        w->in[i] = s >= 0 ? x->dims[2 + s] : 1;
        w->k[i] = s >= 0 ? kernel[s] : 1;
        w->stride[i] = (s >= 0 && fs) ? strides[s] : 1;
        w->dil[i] = (s >= 0 && fd) ? dil[s] : 1;
        w->pad_b[i] = (s >= 0 && fp) ? pads[s] : 0;
        w->pad_e[i] = (s >= 0 && fp) ? pads[s + nsp] : 0;
        CL_ENSURE(w->k[i] >= 1 && w->k[i] <= 1 << 20 && w->stride[i] >= 1 && w->stride[i] <= 1 << 20 &&
                      w->dil[i] >= 1 && w->dil[i] <= 1 << 20,
                  CL_ERR_FORMAT, "%s: kernel, strides and dilations must be positive", n->op);
        CL_ENSURE(w->pad_b[i] >= 0 && w->pad_e[i] >= 0 && w->pad_b[i] <= 1 << 20 && w->pad_e[i] <= 1 << 20,
                  CL_ERR_FORMAT, "%s: pads must be non-negative", n->op);
        int64_t ext = (w->k[i] - 1) * w->dil[i] + 1;
        if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
            w->out[i] = (w->in[i] + w->stride[i] - 1) / w->stride[i];
            int64_t total = (w->out[i] - 1) * w->stride[i] + ext - w->in[i];
            if (total < 0) total = 0;
            bool upper = strcmp(ap, "SAME_UPPER") == 0;
            w->pad_b[i] = upper ? total / 2 : total - total / 2;
            w->pad_e[i] = total - w->pad_b[i];
        } else {
            if (strcmp(ap, "VALID") == 0) w->pad_b[i] = w->pad_e[i] = 0;
            int64_t span = w->in[i] + w->pad_b[i] + w->pad_e[i] - ext;
            CL_ENSURE(span >= 0, CL_ERR_FORMAT, "%s: the window (%lld) is larger than the padded input (%lld)", n->op,
                      (long long)ext, (long long)(w->in[i] + w->pad_b[i] + w->pad_e[i]));
            w->out[i] = (ceil_mode ? (span + w->stride[i] - 1) / w->stride[i] : span / w->stride[i]) + 1;
            /* With ceil_mode, a window that starts in the end padding is dropped
             * (the reference and PyTorch agree on this). */
            if (ceil_mode && (w->out[i] - 1) * w->stride[i] >= w->in[i] + w->pad_b[i]) w->out[i]--;
        }
    }
    return CL_OK;
}

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

/* The kernel's spatial shape: the attribute if given, else W's trailing dims. */
cl_status infer_conv_kernel(const infer_ctx *c, const cl_infer_tensor *x, const cl_infer_tensor *w, int64_t *k)
{
    const infer_node *n = c->node;
    int nsp = x->rank - 2;
    CL_ENSURE(w->rank == x->rank, CL_ERR_FORMAT, "%s: weight rank %d differs from input rank %d", n->op, w->rank,
              x->rank);
    const int64_t *ks;
    bool found;
    CL_GUARD(infer_ints_n(n, "kernel_shape", (size_t)nsp, &ks, &found));
    for (int i = 0; i < nsp; i++) {
        k[i] = w->dims[2 + i];
        CL_ENSURE(!found || ks[i] == k[i], CL_ERR_FORMAT, "%s: kernel_shape[%d]=%lld disagrees with the weight (%lld)",
                  n->op, i, (long long)ks[i], (long long)k[i]);
    }
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
 * in*stride + k*dilation - pad_begin. The output shape follows the operator's
 * formula, or output_shape with the padding derived from it. */
cl_status infer_convt_window(const infer_ctx *c, const cl_infer_tensor *x, const cl_infer_tensor *wt, int64_t *m_out,
                             infer_window *wout)
{
    const infer_node *nd = c->node;
    INFER_NEED_FLOAT(c, x, "input");
    INFER_NEED_FLOAT(c, wt, "weight");
    CL_ENSURE(x->rank >= 3 && x->rank <= 2 + SP, CL_ERR_UNSUPPORTED,
              "ConvTranspose input has rank %d; 3 to 5 are supported", x->rank);
    int nsp = x->rank - 2;
    int64_t k[SP], group;
    CL_GUARD(infer_conv_kernel(c, x, wt, k));
    CL_GUARD(infer_attr_int(nd, "group", 1, &group));
    int64_t C = x->dims[1], Mg = wt->dims[1], M = Mg * group;
    CL_ENSURE(wt->dims[0] == C && C % group == 0, CL_ERR_FORMAT,
              "ConvTranspose: weight has %lld input channels, input has %lld (group %lld)", (long long)wt->dims[0],
              (long long)C, (long long)group);
    char ap[16];
    const int64_t *strides, *dil, *pads, *opad, *oshape;
    bool fs, fd, fp, fo, fos;
    CL_GUARD(infer_auto_pad(nd, ap, sizeof(ap)));
    CL_GUARD(infer_ints_n(nd, "strides", (size_t)nsp, &strides, &fs));
    CL_GUARD(infer_ints_n(nd, "dilations", (size_t)nsp, &dil, &fd));
    CL_GUARD(infer_ints_n(nd, "pads", (size_t)nsp * 2, &pads, &fp));
    CL_GUARD(infer_ints_n(nd, "output_padding", (size_t)nsp, &opad, &fo));
    size_t n_os;
    CL_GUARD(infer_attr_ints(nd, "output_shape", &oshape, &n_os, &fos));
    CL_ENSURE(!fos || n_os == (size_t)nsp || n_os == (size_t)nsp + 2, CL_ERR_FORMAT,
              "ConvTranspose: output_shape has %zu values", n_os);
    if (fos && n_os == (size_t)nsp + 2) oshape += 2;
    infer_window w;
    w.nsp = nsp;
    for (int i = 0; i < SP; i++) {
        int s = i - (SP - nsp);
        w.in[i] = s >= 0 ? x->dims[2 + s] : 1;
        w.k[i] = s >= 0 ? k[s] : 1;
        w.stride[i] = (s >= 0 && fs) ? strides[s] : 1;
        w.dil[i] = (s >= 0 && fd) ? dil[s] : 1;
        w.pad_b[i] = (s >= 0 && fp) ? pads[s] : 0;
        w.pad_e[i] = (s >= 0 && fp) ? pads[s + nsp] : 0;
        int64_t op = (s >= 0 && fo) ? opad[s] : 0;
        CL_ENSURE(w.stride[i] >= 1 && w.stride[i] <= 1 << 20 && w.dil[i] >= 1 && w.dil[i] <= 1 << 20 && op >= 0 &&
                      op < 1 << 20 && w.pad_b[i] >= 0 && w.pad_e[i] >= 0 && w.pad_b[i] < 1 << 20 &&
                      w.pad_e[i] < 1 << 20,
                  CL_ERR_FORMAT, "ConvTranspose: strides, dilations, pads or output_padding out of range");
        int64_t ext = (w.k[i] - 1) * w.dil[i] + 1;
        int64_t full = w.stride[i] * (w.in[i] - 1) + op + ext;
        bool same = strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0;
        if (s >= 0 && (fos || same)) {
            int64_t want = fos ? oshape[s] : w.in[i] * w.stride[i];
            int64_t total = full - want;
            if (total < 0) total = 0; /* the output is then extended with zeros at the end */
            /* ConvTranspose "output_shape": SAME_UPPER puts the extra pad at the
             * end; otherwise it goes at the beginning. */
            if (strcmp(ap, "SAME_UPPER") == 0) {
                w.pad_b[i] = total / 2;
                w.pad_e[i] = total - total / 2;
            } else {
                w.pad_b[i] = total - total / 2;
                w.pad_e[i] = total / 2;
            }
            w.out[i] = want;
        } else {
            if (strcmp(ap, "VALID") == 0) w.pad_b[i] = w.pad_e[i] = 0;
            w.out[i] = full - w.pad_b[i] - w.pad_e[i];
        }
        CL_ENSURE(w.out[i] >= 1, CL_ERR_FORMAT, "ConvTranspose: output dimension %d would be %lld", i,
                  (long long)w.out[i]);
    }
    *m_out = M;
    *wout = w;
    return CL_OK;
}

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

cl_status infer_pool_setup(const infer_ctx *c, const cl_infer_tensor *x, infer_window *w, int64_t *od)
{
    const int64_t *ks;
    size_t cnt;
    bool found;
    int64_t ceil_mode;
    INFER_NEED_FLOAT(c, x, "input");
    CL_GUARD(infer_attr_ints(c->node, "kernel_shape", &ks, &cnt, &found));
    CL_ENSURE((int)cnt == x->rank - 2, CL_ERR_FORMAT, "%s: kernel_shape has %zu values for an input of rank %d",
              c->node->op, cnt, x->rank);
    CL_GUARD(infer_attr_int(c->node, "ceil_mode", 0, &ceil_mode));
    CL_GUARD(infer_window_make(c, x, ks, ceil_mode != 0, strcmp(c->node->op, "MaxPool") == 0, w));
    od[0] = x->dims[0];
    od[1] = x->dims[1];
    for (int i = 0; i < w->nsp; i++) od[2 + i] = w->out[SP - w->nsp + i];
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
