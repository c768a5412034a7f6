/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The oneDNN path of a build without oneDNN (CLOISTER_ONEDNN=OFF compiles this
 * file instead of dnn_*.c): no oneDNN kernel takes a node, so the reference
 * kernels run them all, and a model asking for the oneDNN backend is refused
 * at load.
 */
#include "infer_internal.h"

bool cl_infer_onednn_available(void) { return false; }

cl_status infer_dnn_init(cl_infer_model *m)
{
    (void)m;
    CL_FAIL(CL_ERR_UNSUPPORTED, "this build has no oneDNN");
}

void infer_dnn_free(cl_infer_model *m) { (void)m; }

cl_status infer_dnn_to_plain(cl_infer_model *m, infer_value *v)
{
    (void)m;
    v->layout = NULL; /* never set without oneDNN */
    return CL_OK;
}

/* Every oneDNN kernel: not handled. */
#define INFER_DNN_NONE(fn) \
    cl_status fn(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled) \
    { \
        *handled = false; \
        return CL_OK; \
    }
INFER_DNN_NONE(infer_dnn_conv)
INFER_DNN_NONE(infer_dnn_convtranspose)
INFER_DNN_NONE(infer_dnn_gemm)
INFER_DNN_NONE(infer_dnn_matmul)
INFER_DNN_NONE(infer_dnn_maxpool)
INFER_DNN_NONE(infer_dnn_avgpool)
INFER_DNN_NONE(infer_dnn_globalavgpool)
INFER_DNN_NONE(infer_dnn_unary)
INFER_DNN_NONE(infer_dnn_clip)
INFER_DNN_NONE(infer_dnn_softmax)
INFER_DNN_NONE(infer_dnn_batchnorm)
INFER_DNN_NONE(infer_dnn_concat)
