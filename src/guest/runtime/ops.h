/* SPDX-License-Identifier: Apache-2.0 */
/* The plain-C reference kernels and their load-time attribute checks. */
#ifndef CLOISTER_INFER_OPS_H
#define CLOISTER_INFER_OPS_H

#include "infer_internal.h"

#define INFER_KERNEL(fn) \
    CL_MUST_USE cl_status fn(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out)
#define INFER_CHECK(fn) CL_MUST_USE cl_status fn(const infer_node *n, int64_t opset)

/* ops_elementwise.c */
INFER_KERNEL(infer_op_unary);
INFER_KERNEL(infer_op_binary);
INFER_KERNEL(infer_op_clip);
INFER_KERNEL(infer_op_cast);
INFER_CHECK(infer_check_cast);

/* ops_nn.c */
#define SP 3 /* spatial dimensions every window problem is widened to */

/* Geometry of a Conv / pool / ConvTranspose window, widened to 3 spatial
 * dims with leading unit dims (index SP - nsp + i is real spatial dim i). */
typedef struct infer_window {
    int nsp; /* the problem's real spatial rank, 1..3 */
    int64_t in[SP], k[SP], out[SP], stride[SP], dil[SP], pad_b[SP], pad_e[SP];
} infer_window;

CL_MUST_USE cl_status infer_window_make(const infer_ctx *c, const cl_infer_tensor *x, const int64_t *kernel,
                                        bool ceil_mode, bool has_dilations, infer_window *w);
CL_MUST_USE cl_status infer_conv_kernel(const infer_ctx *c, const cl_infer_tensor *x, const cl_infer_tensor *w,
                                        int64_t *k);
/* ConvTranspose geometry; *m_out = output channels. */
CL_MUST_USE cl_status infer_convt_window(const infer_ctx *c, const cl_infer_tensor *x, const cl_infer_tensor *wt,
                                         int64_t *m_out, infer_window *w);
INFER_KERNEL(infer_op_conv);
INFER_KERNEL(infer_op_convtranspose);
INFER_CHECK(infer_check_conv);
/* Pool geometry and output dims (od) from the node's attributes (MaxPool, AveragePool). */
CL_MUST_USE cl_status infer_pool_setup(const infer_ctx *c, const cl_infer_tensor *x, infer_window *w, int64_t *od);
INFER_KERNEL(infer_op_maxpool);
INFER_KERNEL(infer_op_avgpool);
INFER_CHECK(infer_check_pool);
INFER_KERNEL(infer_op_globalavgpool);
INFER_KERNEL(infer_op_batchnorm);
INFER_CHECK(infer_check_batchnorm);

/* ops_linalg.c */
INFER_KERNEL(infer_op_gemm);
INFER_KERNEL(infer_op_matmul);
INFER_KERNEL(infer_op_softmax);
INFER_KERNEL(infer_op_reducemean);

/* ops_shape.c */
INFER_KERNEL(infer_op_identity);
INFER_KERNEL(infer_op_dropout);
INFER_KERNEL(infer_op_constant);
INFER_CHECK(infer_check_constant);
INFER_KERNEL(infer_op_shape);
INFER_KERNEL(infer_op_flatten);
INFER_KERNEL(infer_op_reshape);
INFER_KERNEL(infer_op_squeeze);
INFER_KERNEL(infer_op_unsqueeze);
INFER_KERNEL(infer_op_transpose);
INFER_KERNEL(infer_op_concat);
INFER_CHECK(infer_check_concat);
INFER_KERNEL(infer_op_gather);
INFER_KERNEL(infer_op_pad);
INFER_CHECK(infer_check_pad);
INFER_KERNEL(infer_op_resize);
INFER_CHECK(infer_check_resize);

/* Fails unless t has one of the float types the kernel implements. */
#define INFER_NEED_FLOAT(c, t, what) \
    CL_ENSURE((t)->dtype == CL_INFER_FLOAT, CL_ERR_UNSUPPORTED, "%s %s is %s; only float32 is supported", \
              (c)->node->op, (what), cl_infer_dtype_name((t)->dtype))

#endif
