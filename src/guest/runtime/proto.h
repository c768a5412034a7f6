/* SPDX-License-Identifier: Apache-2.0 */
/* The ONNX protobuf as the loader and the attribute helpers read it: protobuf-c's
 * decoder (code generated at build time from the system's onnx.proto) through an
 * allocator that counts every byte against the model's cap and wipes what it frees,
 * and TensorProto to tensor. */
#ifndef CLOISTER_INFER_PROTO_H
#define CLOISTER_INFER_PROTO_H

#include "infer_internal.h"
#include "onnx.pb-c.h"

typedef struct infer_pb_alloc {
    ProtobufCAllocator a;
    infer_mem *mem;
} infer_pb_alloc;

/* An allocator whose blocks count against mem (mem->cap_hit set when one is refused). */
void infer_pb_alloc_init(infer_pb_alloc *pa, infer_mem *mem);
/* Whether an ONNX element type (TensorProto.DataType) is one the runtime holds. */
bool infer_dtype_supported(int32_t t);
/* A fresh tensor of mem from p; `what` names p in messages ("initializer"). */
CL_MUST_USE cl_status infer_tensor_from_proto(infer_mem *mem, const Onnx__TensorProto *p, const char *what,
                                              cl_infer_tensor *out);
/* Releases a TensorProto's payload once it has been copied out. */
void infer_pb_drop_payload(infer_pb_alloc *pa, Onnx__TensorProto *p);

#endif
