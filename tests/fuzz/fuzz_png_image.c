/* SPDX-License-Identifier: Apache-2.0 */
/* PNG decoding into a model input on arbitrary bytes: a tensor or a clean error. Then the
 * segmentation path on the same bytes (decode, run, resize the map back to the image, mask PNG,
 * summary JSON) through a tiny Sigmoid "segmenter" built here. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cloister/infer.h"

#include "onnx.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* x float [1, 1, 8, 8] -> Sigmoid -> y, metadata cloister.kind = segmentation. */
static cl_infer_model *fuzz_segmenter(void)
{
    static cl_infer_model *m;
    if (m != NULL) return m;
    Onnx__TensorShapeProto__Dimension d[4], *dp[4];
    for (int i = 0; i < 4; i++) {
        onnx__tensor_shape_proto__dimension__init(&d[i]);
        d[i].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d[i].dim_value = i < 2 ? 1 : 8;
        dp[i] = &d[i];
    }
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    shape.n_dim = 4;
    shape.dim = dp;
    Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
    tt.has_elem_type = 1;
    tt.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt.shape = &shape;
    Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
    type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type.tensor_type = &tt;
    Onnx__ValueInfoProto in = ONNX__VALUE_INFO_PROTO__INIT, out = ONNX__VALUE_INFO_PROTO__INIT;
    in.name = CL_UNCONST("x");
    in.type = &type;
    out.name = CL_UNCONST("y");
    Onnx__ValueInfoProto *ins[1] = {&in}, *outs[1] = {&out};
    char *nin[1] = {CL_UNCONST("x")}, *nout[1] = {CL_UNCONST("y")};
    Onnx__NodeProto node = ONNX__NODE_PROTO__INIT;
    node.op_type = CL_UNCONST("Sigmoid");
    node.n_input = 1;
    node.input = nin;
    node.n_output = 1;
    node.output = nout;
    Onnx__NodeProto *nodes[1] = {&node};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = CL_UNCONST("fuzz");
    g.n_node = 1;
    g.node = nodes;
    g.n_input = 1;
    g.input = ins;
    g.n_output = 1;
    g.output = outs;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *opsets[1] = {&opset};
    opset.domain = CL_UNCONST("");
    opset.has_version = 1;
    opset.version = 13;
    Onnx__StringStringEntryProto kind = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *meta[1] = {&kind};
    kind.key = CL_UNCONST("cloister.kind");
    kind.value = CL_UNCONST("segmentation");
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    mp.has_ir_version = 1;
    mp.ir_version = 8;
    mp.graph = &g;
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    mp.n_metadata_props = 1;
    mp.metadata_props = meta;
    size_t n = onnx__model_proto__get_packed_size(&mp);
    uint8_t *b = malloc(n);
    if (b == NULL) __builtin_trap();
    onnx__model_proto__pack(&mp, b);
    cl_infer_options opts = {.backend = CL_INFER_BACKEND_REFERENCE};
    if (cl_infer_model_load(b, n, &opts, &m) != CL_OK) __builtin_trap();
    free(b);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_infer_tensor t;
    int channels = size > 0 && (data[size - 1] & 1) ? 1 : 3;
    cl_status rc = cl_infer_png_read(data, size, channels, 0, 0, &t);
    if (rc != CL_OK && t.data != NULL) __builtin_trap();
    if (rc == CL_OK && (t.rank != 4 || t.dims[1] != channels)) __builtin_trap();
    cl_infer_tensor_free(&t);
    rc = cl_infer_png_read(data, size, 3, 17, 9, &t);
    if (rc == CL_OK && (t.dims[2] != 17 || t.dims[3] != 9)) __builtin_trap();
    cl_infer_tensor_free(&t);

    cl_buf mask, sum;
    cl_buf_init(&mask, (size_t)64 << 20);
    cl_buf_init(&sum, (size_t)1 << 20);
    rc = cl_infer_segment_png(fuzz_segmenter(), data, size, &mask, &sum);
    if (rc != CL_OK && (mask.len != 0 || sum.len != 0)) __builtin_trap();
    if (rc == CL_OK && (mask.len < 8 || sum.len == 0)) __builtin_trap();
    cl_buf_reset(&sum);
    rc = cl_infer_segment_png_json(fuzz_segmenter(), data, size, &sum);
    if (rc != CL_OK && sum.len != 0) __builtin_trap();
    cl_buf_free(&mask);
    cl_buf_free(&sum);
    return 0;
}
