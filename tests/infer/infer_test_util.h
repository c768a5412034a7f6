/* SPDX-License-Identifier: Apache-2.0 */
/* Builds small ONNX models in C (protobuf-c structs) for the runtime's tests. */
#ifndef CLOISTER_INFER_TEST_UTIL_H
#define CLOISTER_INFER_TEST_UTIL_H

#include "cloister/buf.h"
#include "cloister/infer.h"

#include "onnx.pb-c.h"

typedef struct tm_model tm_model;

tm_model *tm_new(int64_t opset);
void tm_free(tm_model *t);
Onnx__ModelProto *tm_proto(tm_model *t);
/* A graph input; dims of -1 become a symbolic dimension; rank -1 = no shape. */
void tm_input(tm_model *t, const char *name, int dtype, int rank, const int64_t *dims);
void tm_output(tm_model *t, const char *name);
/* A float initializer (raw_data), or one with typed float_data when typed. */
Onnx__TensorProto *tm_init_f32(tm_model *t, const char *name, int rank, const int64_t *dims, const float *v,
                               bool typed);
Onnx__TensorProto *tm_init_i64(tm_model *t, const char *name, int rank, const int64_t *dims, const int64_t *v);
/* A node; ins and outs are comma-separated names ("" entries allowed). */
Onnx__NodeProto *tm_node(tm_model *t, const char *op, const char *name, const char *ins, const char *outs);
void tm_attr_int(tm_model *t, Onnx__NodeProto *n, const char *name, int64_t v);
void tm_attr_float(tm_model *t, Onnx__NodeProto *n, const char *name, float v);
void tm_attr_ints(tm_model *t, Onnx__NodeProto *n, const char *name, size_t count, const int64_t *v);
void tm_attr_string(tm_model *t, Onnx__NodeProto *n, const char *name, const char *v);
/* A metadata_props entry of the model. */
void tm_metadata(tm_model *t, const char *key, const char *value);
/* Serialises into a fresh buffer (freed by the caller). */
void tm_pack(tm_model *t, cl_buf *out);
/* Loads the packed model, failing the test on error. */
cl_infer_model *tm_load(tm_model *t);
/* A float32 tensor view over caller memory (borrowed). */
cl_infer_tensor tm_f32(int rank, const int64_t *dims, float *data);
/* A 16 x 12 gray PNG: 255 in the square of columns 4..9, rows 2..7, 0 elsewhere (the
 * segmenters' input); *png is initialised here and freed by the caller. */
void tm_square_png(cl_buf *png);

#endif
