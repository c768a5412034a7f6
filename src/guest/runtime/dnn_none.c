/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The oneDNN path of a build without oneDNN (CLOISTER_ONEDNN=OFF compiles this
 * file instead of dnn_*.c): no oneDNN kernel takes a node, so the reference
 * kernels run them all, and a model asking for the oneDNN backend is refused
 * at load.
 */
#include "infer_internal.h"

bool cl_infer_onednn_available(void) { return false; }

cl_status infer_dnnl_init(cl_infer_model *m)
{
    (void)m;
    CL_FAIL(CL_ERR_UNSUPPORTED, "this build has no oneDNN");
}

void infer_dnnl_free(cl_infer_model *m) { (void)m; }

cl_status infer_dnnl_to_plain(cl_infer_model *m, infer_value *v)
{
    (void)m;
    v->layout = NULL; /* never set without oneDNN */
    return CL_OK;
}

/* Every oneDNN kernel: not handled. */
#define INFER_DNNL_NONE(fn) \
    cl_status fn(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out, bool *handled) \
    { \
        *handled = false; \
        return CL_OK; \
    }
INFER_DNNL_NONE(infer_dnnl_conv)
INFER_DNNL_NONE(infer_dnnl_convtranspose)
INFER_DNNL_NONE(infer_dnnl_gemm)
INFER_DNNL_NONE(infer_dnnl_matmul)
INFER_DNNL_NONE(infer_dnnl_maxpool)
INFER_DNNL_NONE(infer_dnnl_avgpool)
INFER_DNNL_NONE(infer_dnnl_globalavgpool)
INFER_DNNL_NONE(infer_dnnl_unary)
INFER_DNNL_NONE(infer_dnnl_clip)
INFER_DNNL_NONE(infer_dnnl_softmax)
INFER_DNNL_NONE(infer_dnnl_batchnorm)
INFER_DNNL_NONE(infer_dnnl_concat)
