/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The op registry: every op type the runtime runs, with its input and output
 * counts, its reference kernel (ops_*.c), its load-time attribute check and
 * its oneDNN kernel, if any (dnn_*.c). The loader binds each node to its
 * entry; the executor runs what the entry names.
 */
#include <stdio.h>
#include <string.h>

#include "infer_internal.h"
#include "ops.h"

static const infer_op infer_ops[] = {
    {"Abs", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Add", 2, 2, 1, 1, infer_op_binary, NULL, NULL, false},
    {"AveragePool", 1, 1, 1, 1, infer_op_avgpool, infer_check_pool, infer_dnn_avgpool, true},
    {"BatchNormalization", 5, 5, 1, 1, infer_op_batchnorm, infer_check_batchnorm, infer_dnn_batchnorm, true},
    {"Cast", 1, 1, 1, 1, infer_op_cast, infer_check_cast, NULL, false},
    {"Ceil", 1, 1, 1, 1, infer_op_unary, NULL, NULL, false},
    {"Clip", 1, 3, 1, 1, infer_op_clip, NULL, infer_dnn_clip, true},
    {"Concat", 1, 1 << 20, 1, 1, infer_op_concat, infer_check_concat, infer_dnn_concat, true},
    {"Constant", 0, 0, 1, 1, infer_op_constant, infer_check_constant, NULL, false},
    {"Conv", 2, 3, 1, 1, infer_op_conv, infer_check_conv, infer_dnn_conv, true},
    {"ConvTranspose", 2, 3, 1, 1, infer_op_convtranspose, infer_check_conv, infer_dnn_convtranspose, true},
    {"Div", 2, 2, 1, 1, infer_op_binary, NULL, NULL, false},
    {"Dropout", 1, 3, 1, 2, infer_op_dropout, NULL, NULL, false},
    {"Erf", 1, 1, 1, 1, infer_op_unary, NULL, NULL, false},
    {"Exp", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Flatten", 1, 1, 1, 1, infer_op_flatten, NULL, NULL, false},
    {"Floor", 1, 1, 1, 1, infer_op_unary, NULL, NULL, false},
    {"Gather", 2, 2, 1, 1, infer_op_gather, NULL, NULL, false},
    {"Gemm", 2, 3, 1, 1, infer_op_gemm, NULL, infer_dnn_gemm, false},
    {"GlobalAveragePool", 1, 1, 1, 1, infer_op_globalavgpool, NULL, infer_dnn_globalavgpool, true},
    {"Identity", 1, 1, 1, 1, infer_op_identity, NULL, NULL, false},
    {"LeakyRelu", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Log", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"LogSoftmax", 1, 1, 1, 1, infer_op_softmax, NULL, infer_dnn_softmax, true},
    {"MatMul", 2, 2, 1, 1, infer_op_matmul, NULL, infer_dnn_matmul, false},
    {"MaxPool", 1, 1, 1, 2, infer_op_maxpool, infer_check_pool, infer_dnn_maxpool, true},
    {"Mul", 2, 2, 1, 1, infer_op_binary, NULL, NULL, false},
    {"Neg", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Pad", 1, 4, 1, 1, infer_op_pad, infer_check_pad, NULL, false},
    {"Pow", 2, 2, 1, 1, infer_op_binary, NULL, NULL, false},
    {"Reciprocal", 1, 1, 1, 1, infer_op_unary, NULL, NULL, false},
    {"ReduceMean", 1, 2, 1, 1, infer_op_reducemean, NULL, NULL, false},
    {"Relu", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Reshape", 2, 2, 1, 1, infer_op_reshape, NULL, NULL, false},
    {"Resize", 1, 4, 1, 1, infer_op_resize, infer_check_resize, NULL, false},
    {"Shape", 1, 1, 1, 1, infer_op_shape, NULL, NULL, false},
    {"Sigmoid", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Softmax", 1, 1, 1, 1, infer_op_softmax, NULL, infer_dnn_softmax, true},
    {"Sqrt", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Squeeze", 1, 2, 1, 1, infer_op_squeeze, NULL, NULL, false},
    {"Sub", 2, 2, 1, 1, infer_op_binary, NULL, NULL, false},
    {"Tanh", 1, 1, 1, 1, infer_op_unary, NULL, infer_dnn_unary, true},
    {"Transpose", 1, 1, 1, 1, infer_op_transpose, NULL, NULL, false},
    {"Unsqueeze", 1, 2, 1, 1, infer_op_unsqueeze, NULL, NULL, false},
};

#define INFER_N_OPS (sizeof(infer_ops) / sizeof(infer_ops[0]))

size_t infer_op_count(void) { return INFER_N_OPS; }

const infer_op *infer_op_find(const char *name)
{
    for (size_t i = 0; i < INFER_N_OPS; i++)
        if (strcmp(infer_ops[i].name, name) == 0) return &infer_ops[i];
    return NULL;
}

const char *infer_op_list(char *buf, size_t n)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < INFER_N_OPS; i++) {
        int w = snprintf(buf + pos, n - pos, "%s%s", i ? ", " : "", infer_ops[i].name);
        if (w < 0 || (size_t)w >= n - pos) break;
        pos += (size_t)w;
    }
    return buf;
}
