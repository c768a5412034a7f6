/* SPDX-License-Identifier: Apache-2.0 */
/* The plain-C reference kernels and their load-time attribute checks. */
#ifndef CLOISTER_INFER_OPS_H
#define CLOISTER_INFER_OPS_H

#include "infer_internal.h"
#include "window.h"

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
INFER_KERNEL(infer_op_conv);
INFER_KERNEL(infer_op_convtranspose);
INFER_CHECK(infer_check_conv);
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

#endif
