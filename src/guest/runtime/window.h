/* SPDX-License-Identifier: Apache-2.0 */
/* Window geometry (window.c): Conv, ConvTranspose and the pools, for the
 * reference kernels and the oneDNN path alike. */
#ifndef CLOISTER_INFER_WINDOW_H
#define CLOISTER_INFER_WINDOW_H

#include "infer_internal.h"

#define SP 3 /* spatial dimensions every window problem is widened to */

/* Geometry of a Conv / pool / ConvTranspose window, widened to 3 spatial
 * dims with leading unit dims (index SP - nsp + i is real spatial dim i). */
typedef struct infer_window {
    int nsp; /* the problem's real spatial rank, 1..3 */
    int64_t in[SP], k[SP], out[SP], stride[SP], dil[SP], pad_b[SP], pad_e[SP];
} infer_window;

/* The node's auto_pad into buf; fails unless it is one ONNX defines. */
CL_MUST_USE cl_status infer_auto_pad(const infer_node *n, char *buf, size_t bufsz);
CL_MUST_USE cl_status infer_window_make(const infer_ctx *c, const cl_infer_tensor *x, const int64_t *kernel,
                                        bool ceil_mode, bool has_dilations, infer_window *w);
CL_MUST_USE cl_status infer_conv_kernel(const infer_ctx *c, const cl_infer_tensor *x, const cl_infer_tensor *w,
                                        int64_t *k);
/* ConvTranspose geometry; *m_out = output channels. */
CL_MUST_USE cl_status infer_convt_window(const infer_ctx *c, const cl_infer_tensor *x, const cl_infer_tensor *wt,
                                         int64_t *m_out, infer_window *w);
/* Pool geometry and output dims (od) from the node's attributes (MaxPool, AveragePool). */
CL_MUST_USE cl_status infer_pool_setup(const infer_ctx *c, const cl_infer_tensor *x, infer_window *w, int64_t *od);

#endif
