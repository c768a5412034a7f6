/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MaxPool, AveragePool and GlobalAveragePool on oneDNN's pooling_v2, on the
 * source's layout as it is held; the output in the layout oneDNN gives it.
 * The cache is the core's alone (infer_dnn_cache): nothing more is kept.
 */
#include "dnn.h"
#include "window.h"

/* MaxPool (without the Indices output) and AveragePool, 1-3 spatial dims, on
 * the input's layout: oneDNN's max pooling skips padding as ONNX does (padding
 * never wins); its average pooling divides by the in-bounds positions
 * (count_include_pad 0) or by every position of the window
 * (dnnl_pooling_avg_include_padding), which is ONNX's count_include_pad 1
 * only when the window never reaches past the declared end padding (ceil_mode
 * may make it: ONNX does not count those). */
static CL_MUST_USE cl_status infer_dnn_pool(infer_ctx *c, cl_infer_tensor **in, cl_infer_tensor **out,
                                            dnnl_alg_kind_t alg, bool *handled)
{
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 3 || x->rank > 5 || cl_infer_tensor_count(x) == 0) return CL_OK;
    dnnl_memory_desc_t src;
    int64_t key[INFER_DNN_KEY_MAX];
    size_t key_n;
    CL_GUARD(infer_dnn_in_md(c, 0, x, &src));
    if (infer_dnn_single_lookup(c, INFER_DNN_KIND_POOL, x, &src, NULL, 0, key, &key_n) == NULL) {
        infer_window w;
        int64_t od[CL_INFER_MAX_RANK];
        if (infer_pool_setup(c, x, &w, od) != CL_OK) {
            cl_error_clear(); /* the reference kernel reports it */
            return CL_OK;
        }
        dnnl_dims_t strides = {0}, kernel = {0}, dil = {0}, pl = {0}, pr = {0}, dd = {0};
        for (int i = 0; i < w.nsp; i++) {
            int j = SP - w.nsp + i;
            strides[i] = w.stride[j];
            kernel[i] = w.k[j];
            dil[i] = w.dil[j] - 1; /* oneDNN counts the gaps */
            pl[i] = w.pad_b[j];
            /* The end padding that makes oneDNN's output size (floor division)
             * ONNX's, ceil_mode included: what the last window needs, or none
             * when the input's tail is not covered by any window. */
            int64_t ext = (w.k[j] - 1) * w.dil[j] + 1;
            pr[i] = (w.out[j] - 1) * w.stride[j] + ext - w.in[j] - w.pad_b[j];
            if (pr[i] < 0) pr[i] = 0;
            /* A window wholly in the padding has no ONNX value oneDNN would give. */
            if ((w.in[j] + pl[i] + pr[i] - ext) / w.stride[j] + 1 != w.out[j] || pl[i] >= ext || pr[i] >= ext)
                return CL_OK;
            if (alg == dnnl_pooling_avg_include_padding && pr[i] > w.pad_e[j]) return CL_OK;
        }
        infer_dnn_dims(dd, x->rank, od);
        dnnl_memory_desc_t dst_any;
        dnnl_pooling_v2_desc_t desc;
        bool made;
        if (dnnl_memory_desc_init_by_tag(&dst_any, x->rank, dd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
            dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, &dst_any, strides, kernel, dil,
                                              pl, pr) != dnnl_success)
            return CL_OK;
        CL_GUARD(infer_dnn_single_make(c, INFER_DNN_KIND_POOL, sizeof(infer_dnn_cache), NULL, &src, key, key_n, x->rank,
                                       od, &desc, &made));
        if (!made) return CL_OK;
    }
    return infer_dnn_single_run_src(c, in, out, handled);
}

cl_status infer_dnn_maxpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                            bool *handled)
{
    *handled = false;
    if (n_out > 1 && out[1] != NULL) return CL_OK; /* Indices: the reference kernel */
    return infer_dnn_pool(c, in, out, dnnl_pooling_max, handled);
}

cl_status infer_dnn_avgpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                            bool *handled)
{
    int64_t cip;
    CL_GUARD(infer_attr_int(c->node, "count_include_pad", 0, &cip));
    return infer_dnn_pool(c, in, out, cip ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding,
                          handled);
}

/* GlobalAveragePool: an average pooling whose window is the whole plane. */
cl_status infer_dnn_globalavgpool(infer_ctx *c, cl_infer_tensor **in, int n_in, cl_infer_tensor **out, int n_out,
                                  bool *handled)
{
    const cl_infer_tensor *x = in[0];
    *handled = false;
    if (x->dtype != CL_INFER_FLOAT || x->rank < 3 || x->rank > 5 || cl_infer_tensor_count(x) == 0) return CL_OK;
    dnnl_memory_desc_t src;
    int64_t key[INFER_DNN_KEY_MAX];
    size_t key_n;
    CL_GUARD(infer_dnn_in_md(c, 0, x, &src));
    if (infer_dnn_single_lookup(c, INFER_DNN_KIND_POOL, x, &src, NULL, 0, key, &key_n) == NULL) {
        int nsp = x->rank - 2;
        int64_t od[CL_INFER_MAX_RANK] = {x->dims[0], x->dims[1], 1, 1, 1};
        dnnl_dims_t kernel = {0}, strides = {0}, zero = {0}, dd;
        for (int i = 0; i < nsp; i++) {
            kernel[i] = x->dims[2 + i];
            strides[i] = 1;
        }
        infer_dnn_dims(dd, x->rank, od);
        dnnl_memory_desc_t dst_any;
        dnnl_pooling_v2_desc_t desc;
        bool made;
        if (dnnl_memory_desc_init_by_tag(&dst_any, x->rank, dd, dnnl_f32, dnnl_format_tag_any) != dnnl_success ||
            dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_avg_exclude_padding, &src,
                                              &dst_any, strides, kernel, zero, zero, zero) != dnnl_success)
            return CL_OK;
        CL_GUARD(infer_dnn_single_make(c, INFER_DNN_KIND_POOL, sizeof(infer_dnn_cache), NULL, &src, key, key_n, x->rank,
                                       od, &desc, &made));
        if (!made) return CL_OK;
    }
    return infer_dnn_single_run_src(c, in, out, handled);
}
