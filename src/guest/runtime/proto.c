/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ONNX protobuf: protobuf-c does the wire-format parsing (code generated at
 * build time from the system's onnx.proto), through an allocator that counts
 * every byte against the model's cap and wipes what it frees; TensorProto to
 * tensor, for initializers (model.c), tensor attributes (attr.c) and
 * cl_infer_tensor_parse.
 */
#include "proto.h"

#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian; this loader copies it as is"
#endif

/* --- the counting, wiping protobuf allocator -------------------------------- */

/* Each block carries its size in front so free can wipe and uncount it. */
#define INFER_PB_HDR 16

static void *infer_pb_malloc(void *data, size_t size)
{
    infer_mem *mem = data;
    size_t total = size + INFER_PB_HDR;
    if (total < size || total > mem->max || mem->used > mem->max - total) {
        mem->cap_hit = true;
        return NULL;
    }
    unsigned char *p = malloc(total);
    if (p == NULL) return NULL;
    memcpy(p, &total, sizeof(total));
    mem->used += total;
    if (mem->used > mem->peak) mem->peak = mem->used;
    return p + INFER_PB_HDR;
}

static void infer_pb_free(void *data, void *ptr)
{
    if (ptr == NULL) return;
    infer_mem *mem = data;
    unsigned char *p = (unsigned char *)ptr - INFER_PB_HDR;
    size_t total;
    memcpy(&total, p, sizeof(total));
    cl_memzero(p, total);
    mem->used -= total;
    free(p);
}

void infer_pb_alloc_init(infer_pb_alloc *pa, infer_mem *mem)
{
    pa->a.alloc = infer_pb_malloc;
    pa->a.free = infer_pb_free;
    pa->a.allocator_data = mem;
    pa->mem = mem;
}

/* --- tensors from TensorProto ------------------------------------------------ */

bool infer_dtype_supported(int32_t t) { return t > 0 && cl_infer_dtype_size((cl_infer_dtype)t) != 0; }

cl_status infer_tensor_from_proto(infer_mem *mem, const Onnx__TensorProto *p, const char *what, cl_infer_tensor *out)
{
    const char *name = (p->name && p->name[0]) ? p->name : "(unnamed)";
    CL_ENSURE(!(p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL),
              CL_ERR_UNSUPPORTED, "%s '%s' keeps its data in an external file; embed it in the model", what, name);
    CL_ENSURE(p->segment == NULL, CL_ERR_UNSUPPORTED, "%s '%s' is segmented; segmented tensors are not supported", what,
              name);
    CL_ENSURE(p->has_data_type, CL_ERR_FORMAT, "%s '%s' has no data_type", what, name);
    CL_ENSURE(infer_dtype_supported(p->data_type), CL_ERR_UNSUPPORTED,
              "%s '%s' has element type %d, which is not supported", what, name, (int)p->data_type);
    CL_ENSURE(p->n_dims <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "%s '%s' has rank %zu; at most %d is supported", what, name,
              p->n_dims, CL_INFER_MAX_RANK);
    cl_infer_dtype dt = (cl_infer_dtype)p->data_type;
    size_t count;
    CL_GUARD_CTX(infer_shape_count((int)p->n_dims, p->dims, &count), "%s '%s'", what, name);
    size_t es = cl_infer_dtype_size(dt);

    const void *src = NULL;
    size_t have = 0;
    if (p->has_raw_data) {
        CL_ENSURE(p->raw_data.len == count * es, CL_ERR_FORMAT,
                  "%s '%s': raw_data holds %zu bytes but its shape needs %zu elements of %zu bytes", what, name,
                  p->raw_data.len, count, es);
        src = p->raw_data.data;
    } else {
        switch (dt) {
        case CL_INFER_FLOAT: have = p->n_float_data; break;
        case CL_INFER_DOUBLE: have = p->n_double_data; break;
        case CL_INFER_INT64: have = p->n_int64_data; break;
        case CL_INFER_UINT32:
        case CL_INFER_UINT64: have = p->n_uint64_data; break;
        default: have = p->n_int32_data; break;
        }
        CL_ENSURE(have == count, CL_ERR_FORMAT, "%s '%s' holds %zu values but its shape needs %zu", what, name, have,
                  count);
    }
    CL_GUARD_CTX(infer_tensor_new(mem, out, dt, (int)p->n_dims, p->dims), "%s '%s'", what, name);
    if (src != NULL) {
        if (out->nbytes) memcpy(out->data, src, out->nbytes);
        return CL_OK;
    }
    for (size_t i = 0; i < count; i++) {
        switch (dt) {
        case CL_INFER_FLOAT: ((float *)out->data)[i] = p->float_data[i]; break;
        case CL_INFER_DOUBLE: ((double *)out->data)[i] = p->double_data[i]; break;
        case CL_INFER_INT64: ((int64_t *)out->data)[i] = p->int64_data[i]; break;
        case CL_INFER_UINT32:
        case CL_INFER_UINT64: infer_set_i64(out, i, (int64_t)p->uint64_data[i]); break;
        default: infer_set_i64(out, i, p->int32_data[i]); break;
        }
    }
    return CL_OK;
}

void infer_pb_drop_payload(infer_pb_alloc *pa, Onnx__TensorProto *p)
{
    ProtobufCAllocator *a = &pa->a;
    a->free(a->allocator_data, p->raw_data.data);
    p->raw_data.data = NULL;
    p->raw_data.len = 0;
    p->has_raw_data = 0;
    a->free(a->allocator_data, p->float_data);
    p->float_data = NULL;
    p->n_float_data = 0;
    a->free(a->allocator_data, p->double_data);
    p->double_data = NULL;
    p->n_double_data = 0;
    a->free(a->allocator_data, p->int64_data);
    p->int64_data = NULL;
    p->n_int64_data = 0;
    a->free(a->allocator_data, p->int32_data);
    p->int32_data = NULL;
    p->n_int32_data = 0;
    a->free(a->allocator_data, p->uint64_data);
    p->uint64_data = NULL;
    p->n_uint64_data = 0;
}

cl_status cl_infer_tensor_parse(const void *bytes, size_t len, cl_infer_tensor *out)
{
    cl_status rc = CL_OK;
    infer_mem mem = {.max = CL_INFER_MAX_BYTES_DEFAULT};
    infer_pb_alloc pa;
    infer_pb_alloc_init(&pa, &mem);
    cl_infer_tensor t = {0};
    memset(out, 0, sizeof(*out));
    Onnx__TensorProto *p = onnx__tensor_proto__unpack(&pa.a, len, bytes);
    CL_ENSURE_GOTO(p != NULL, CL_ERR_FORMAT, "%zu bytes are not a valid ONNX TensorProto (protobuf decoding failed)",
                   len);
    CL_GUARD_GOTO(infer_tensor_from_proto(&mem, p, "tensor", &t));
    /* Hand over as an ordinary caller-owned tensor. */
    *out = t;
    memset(&t, 0, sizeof(t));
out:
    if (p != NULL) onnx__tensor_proto__free_unpacked(p, &pa.a);
    cl_infer_tensor_free(&t);
    return rc;
}
