/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The geometry of a window problem (Conv, ConvTranspose, MaxPool,
 * AveragePool) from a node's attributes: kernel, strides, dilations, pads and
 * auto_pad, widened to 3 spatial dims. The reference kernels (ops_nn.c) and
 * the oneDNN convolutions and pooling (dnn_conv.c, dnn_pool.c) share it, so
 * both read the attributes the same way.
 */
#include "window.h"

#include <string.h>

cl_status infer_auto_pad(const infer_node *n, char *buf, size_t bufsz)
{
    CL_GUARD(infer_attr_string(n, "auto_pad", "NOTSET", buf, bufsz));
    CL_ENSURE(strcmp(buf, "NOTSET") == 0 || strcmp(buf, "VALID") == 0 || strcmp(buf, "SAME_UPPER") == 0 ||
                  strcmp(buf, "SAME_LOWER") == 0,
              CL_ERR_FORMAT, "node '%s' (%s): auto_pad '%s' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER",
              n->name, n->op, buf);
    return CL_OK;
}

/* Reads an ints attribute of exactly `want` values (when present). */
static CL_MUST_USE cl_status infer_ints_n(const infer_node *n, const char *name, size_t want, const int64_t **v,
                                          bool *found)
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
