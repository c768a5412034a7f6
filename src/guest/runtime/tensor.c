/* SPDX-License-Identifier: Apache-2.0 */
/* Tensors, element access, broadcasting, and the model's memory accounting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "infer_internal.h"

size_t cl_infer_dtype_size(cl_infer_dtype t)
{
    switch (t) {
    case CL_INFER_UINT8:
    case CL_INFER_INT8:
    case CL_INFER_BOOL: return 1;
    case CL_INFER_UINT16:
    case CL_INFER_INT16: return 2;
    case CL_INFER_FLOAT:
    case CL_INFER_INT32:
    case CL_INFER_UINT32: return 4;
    case CL_INFER_INT64:
    case CL_INFER_DOUBLE:
    case CL_INFER_UINT64: return 8;
    case CL_INFER_UNDEFINED: return 0;
    }
    return 0;
}

const char *cl_infer_dtype_name(cl_infer_dtype t)
{
    switch (t) {
    case CL_INFER_FLOAT: return "float32";
    case CL_INFER_UINT8: return "uint8";
    case CL_INFER_INT8: return "int8";
    case CL_INFER_UINT16: return "uint16";
    case CL_INFER_INT16: return "int16";
    case CL_INFER_INT32: return "int32";
    case CL_INFER_INT64: return "int64";
    case CL_INFER_BOOL: return "bool";
    case CL_INFER_DOUBLE: return "float64";
    case CL_INFER_UINT32: return "uint32";
    case CL_INFER_UINT64: return "uint64";
    case CL_INFER_UNDEFINED: return "undefined";
    }
    return "unsupported";
}

bool infer_dtype_is_float(cl_infer_dtype t) { return t == CL_INFER_FLOAT || t == CL_INFER_DOUBLE; }

cl_status infer_shape_count(int rank, const int64_t *dims, size_t *count)
{
    CL_ENSURE(rank >= 0 && rank <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "tensor rank %d is outside 0..%d", rank,
              CL_INFER_MAX_RANK);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        CL_ENSURE(dims[i] >= 0, CL_ERR_FORMAT, "tensor dimension %d is negative (%lld)", i, (long long)dims[i]);
        if (dims[i] == 0) {
            n = 0;
            continue;
        }
        CL_ENSURE(n <= INFER_MAX_ELEMS / dims[i], CL_ERR_LIMIT,
                  "tensor has more than %lld elements (dimension %d is %lld)", (long long)INFER_MAX_ELEMS, i,
                  (long long)dims[i]);
        n *= dims[i];
    }
    /* A zero dimension anywhere makes the product 0, even after a huge one. */
    for (int i = 0; i < rank; i++)
        if (dims[i] == 0) n = 0;
    *count = (size_t)n;
    return CL_OK;
}

size_t cl_infer_tensor_count(const cl_infer_tensor *t)
{
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= (size_t)t->dims[i];
    return n;
}

static CL_MUST_USE cl_status infer_tensor_shape_set(cl_infer_tensor *t, cl_infer_dtype dtype, int rank,
                                                    const int64_t *dims, size_t *nbytes)
{
    size_t es = cl_infer_dtype_size(dtype);
    CL_ENSURE(es != 0, CL_ERR_UNSUPPORTED, "element type %d is not supported", (int)dtype);
    size_t count;
    CL_GUARD(infer_shape_count(rank, dims, &count));
    memset(t, 0, sizeof(*t));
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++) t->dims[i] = dims[i];
    *nbytes = count * es;
    return CL_OK;
}

cl_status cl_infer_tensor_alloc(cl_infer_tensor *t, cl_infer_dtype dtype, int rank, const int64_t *dims)
{
    size_t nbytes;
    CL_GUARD(infer_tensor_shape_set(t, dtype, rank, dims, &nbytes));
    CL_ENSURE(nbytes <= INFER_PUBLIC_ALLOC_MAX, CL_ERR_LIMIT, "tensor of %zu bytes exceeds the %zu-byte limit", nbytes,
              INFER_PUBLIC_ALLOC_MAX);
    t->data = calloc(nbytes ? nbytes : 1, 1);
    CL_ENSURE(t->data != NULL, CL_ERR_NOMEM, "out of memory allocating a %zu-byte tensor", nbytes);
    t->nbytes = nbytes;
    return CL_OK;
}

void cl_infer_tensor_free(cl_infer_tensor *t)
{
    if (t == NULL) return;
    if (t->data != NULL && !t->borrowed) {
        cl_memzero(t->data, t->nbytes);
        free(t->data);
    }
    memset(t, 0, sizeof(*t));
}

static void infer_pool_evict(infer_mem *mem, size_t i)
{
    free(mem->pool[i].p);
    mem->used -= mem->pool[i].n;
    mem->pooled -= mem->pool[i].n;
    mem->pool[i] = mem->pool[--mem->n_pool];
}

void infer_mem_pool_drain(infer_mem *mem)
{
    while (mem->n_pool > 0) infer_pool_evict(mem, mem->n_pool - 1);
}

cl_status infer_tensor_new(infer_mem *mem, cl_infer_tensor *t, cl_infer_dtype dtype, int rank, const int64_t *dims)
{
    return infer_tensor_new_bytes(mem, t, dtype, rank, dims, 0);
}

cl_status infer_tensor_new_bytes(infer_mem *mem, cl_infer_tensor *t, cl_infer_dtype dtype, int rank,
                                 const int64_t *dims, size_t want)
{
    size_t nbytes;
    CL_GUARD(infer_tensor_shape_set(t, dtype, rank, dims, &nbytes));
    CL_ENSURE(want == 0 || want >= nbytes, CL_ERR_INTERNAL, "a %zu-byte buffer cannot hold a %zu-byte tensor", want,
              nbytes);
    if (want > nbytes) nbytes = want;
    /* A planned output borrows its arena range (plan.c). */
    for (int i = 0; i < mem->n_slot; i++) {
        if (mem->slot[i].t != t || nbytes > mem->slot[i].n || nbytes == 0) continue;
        memset(mem->slot[i].p, 0, nbytes);
        t->data = mem->slot[i].p;
        t->nbytes = nbytes;
        t->borrowed = true;
        return CL_OK;
    }
    /* A pooled buffer of the same size is already zero (wiped on release). */
    for (size_t i = 0; i < mem->n_pool; i++) {
        if (mem->pool[i].n != nbytes) continue;
        t->data = mem->pool[i].p;
        t->nbytes = nbytes;
        mem->pooled -= nbytes;
        mem->pool[i] = mem->pool[--mem->n_pool];
        return CL_OK;
    }
    while (mem->n_pool > 0 && !(nbytes <= mem->max && mem->used <= mem->max - nbytes)) infer_pool_evict(mem, 0);
    CL_ENSURE(nbytes <= mem->max && mem->used <= mem->max - nbytes, CL_ERR_LIMIT,
              "allocating a %zu-byte tensor would exceed the model's memory cap of %zu bytes (%zu in use); "
              "raise max_bytes if the model is trusted to need it",
              nbytes, mem->max, mem->used);
    t->data = calloc(nbytes ? nbytes : 1, 1);
    CL_ENSURE(t->data != NULL, CL_ERR_NOMEM, "out of memory allocating a %zu-byte tensor", nbytes);
    t->nbytes = nbytes;
    mem->used += nbytes;
    if (mem->used > mem->peak) mem->peak = mem->used;
    return CL_OK;
}

void infer_tensor_release(infer_mem *mem, cl_infer_tensor *t)
{
    if (t->data != NULL && !t->borrowed && t->nbytes >= INFER_POOL_MIN_BYTES) {
        cl_memzero(t->data, t->nbytes);
        if (mem->n_pool == INFER_POOL_SLOTS) infer_pool_evict(mem, 0);
        mem->pool[mem->n_pool].p = t->data;
        mem->pool[mem->n_pool].n = t->nbytes;
        mem->n_pool++;
        mem->pooled += t->nbytes;
        memset(t, 0, sizeof(*t));
        return;
    }
    if (t->data != NULL && !t->borrowed) mem->used -= t->nbytes;
    cl_infer_tensor_free(t);
}

cl_status infer_tensor_clone(infer_mem *mem, cl_infer_tensor *dst, const cl_infer_tensor *src)
{
    CL_GUARD(infer_tensor_new(mem, dst, src->dtype, src->rank, src->dims));
    if (src->nbytes) memcpy(dst->data, src->data, src->nbytes);
    return CL_OK;
}

double infer_get_f64(const cl_infer_tensor *t, size_t i)
{
    switch (t->dtype) {
    case CL_INFER_FLOAT: return ((const float *)t->data)[i];
    case CL_INFER_DOUBLE: return ((const double *)t->data)[i];
    case CL_INFER_UINT8: return ((const uint8_t *)t->data)[i];
    case CL_INFER_INT8: return ((const int8_t *)t->data)[i];
    case CL_INFER_UINT16: return ((const uint16_t *)t->data)[i];
    case CL_INFER_INT16: return ((const int16_t *)t->data)[i];
    case CL_INFER_INT32: return ((const int32_t *)t->data)[i];
    case CL_INFER_INT64: return (double)((const int64_t *)t->data)[i];
    case CL_INFER_BOOL: return ((const uint8_t *)t->data)[i] ? 1.0 : 0.0;
    case CL_INFER_UINT32: return ((const uint32_t *)t->data)[i];
    case CL_INFER_UINT64: return (double)((const uint64_t *)t->data)[i];
    case CL_INFER_UNDEFINED: break;
    }
    return 0.0;
}

int64_t infer_get_i64(const cl_infer_tensor *t, size_t i)
{
    switch (t->dtype) {
    case CL_INFER_INT64: return ((const int64_t *)t->data)[i];
    case CL_INFER_INT32: return ((const int32_t *)t->data)[i];
    case CL_INFER_UINT64: return (int64_t)((const uint64_t *)t->data)[i];
    case CL_INFER_UINT32: return ((const uint32_t *)t->data)[i];
    case CL_INFER_UINT8: return ((const uint8_t *)t->data)[i];
    case CL_INFER_INT8: return ((const int8_t *)t->data)[i];
    case CL_INFER_UINT16: return ((const uint16_t *)t->data)[i];
    case CL_INFER_INT16: return ((const int16_t *)t->data)[i];
    case CL_INFER_BOOL: return ((const uint8_t *)t->data)[i] ? 1 : 0;
    default: break;
    }
    double d = infer_get_f64(t, i);
    /* Float to integer conversion of an out-of-range value is undefined in C. */
    if (!(d > -9.2e18 && d < 9.2e18)) return 0;
    return (int64_t)d;
}

/* Float -> integer conversion as numpy's astype on the values it defines. */
static int64_t infer_f64_to_i64(double d)
{
    if (!(d > -9.2e18 && d < 9.2e18)) return 0;
    return (int64_t)d;
}

void infer_set_f64(cl_infer_tensor *t, size_t i, double v)
{
    switch (t->dtype) {
    case CL_INFER_FLOAT: ((float *)t->data)[i] = (float)v; return;
    case CL_INFER_DOUBLE: ((double *)t->data)[i] = v; return;
    case CL_INFER_BOOL: ((uint8_t *)t->data)[i] = v != 0.0; return;
    case CL_INFER_UINT64:
        ((uint64_t *)t->data)[i] = (v >= 0 && v < 1.8e19) ? (uint64_t)v : (uint64_t)infer_f64_to_i64(v);
        return;
    default: infer_set_i64(t, i, infer_f64_to_i64(v)); return;
    }
}

void infer_set_i64(cl_infer_tensor *t, size_t i, int64_t v)
{
    /* Integer narrowing wraps modulo 2^n, as numpy's astype does. */
    switch (t->dtype) {
    case CL_INFER_FLOAT: ((float *)t->data)[i] = (float)v; return;
    case CL_INFER_DOUBLE: ((double *)t->data)[i] = (double)v; return;
    case CL_INFER_UINT8: ((uint8_t *)t->data)[i] = (uint8_t)v; return;
    case CL_INFER_INT8: ((int8_t *)t->data)[i] = (int8_t)(uint8_t)v; return;
    case CL_INFER_UINT16: ((uint16_t *)t->data)[i] = (uint16_t)v; return;
    case CL_INFER_INT16: ((int16_t *)t->data)[i] = (int16_t)(uint16_t)v; return;
    case CL_INFER_INT32: ((int32_t *)t->data)[i] = (int32_t)(uint32_t)v; return;
    case CL_INFER_INT64: ((int64_t *)t->data)[i] = v; return;
    case CL_INFER_BOOL: ((uint8_t *)t->data)[i] = v != 0; return;
    case CL_INFER_UINT32: ((uint32_t *)t->data)[i] = (uint32_t)v; return;
    case CL_INFER_UINT64: ((uint64_t *)t->data)[i] = (uint64_t)v; return;
    case CL_INFER_UNDEFINED: return;
    }
}

cl_status infer_broadcast_shape(const cl_infer_tensor *const *ts, int n, int *rank, int64_t *dims)
{
    int r = 0;
    for (int k = 0; k < n; k++)
        if (ts[k] != NULL && ts[k]->rank > r) r = ts[k]->rank;
    for (int d = 0; d < r; d++) dims[d] = 1;
    for (int k = 0; k < n; k++) {
        if (ts[k] == NULL) continue;
        int off = r - ts[k]->rank;
        for (int d = 0; d < ts[k]->rank; d++) {
            int64_t v = ts[k]->dims[d];
            int64_t *o = &dims[off + d];
            if (v == *o || v == 1) continue;
            CL_ENSURE(*o == 1, CL_ERR_FORMAT,
                      "shapes do not broadcast: dimension %d is %lld in one input and %lld in another", off + d,
                      (long long)*o, (long long)v);
            *o = v;
        }
    }
    *rank = r;
    return CL_OK;
}

void infer_broadcast_strides(const cl_infer_tensor *t, int rank, const int64_t *dims, int64_t *strides)
{
    int off = rank - t->rank;
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        if (d < off) {
            strides[d] = 0;
            continue;
        }
        int64_t v = t->dims[d - off];
        strides[d] = (v == 1 && dims[d] != 1) ? 0 : s;
        s *= v;
    }
}

cl_status infer_axis(const infer_ctx *c, int64_t axis, int rank, int *out)
{
    int64_t a = axis < 0 ? axis + rank : axis;
    CL_ENSURE(a >= 0 && a < (rank == 0 ? 1 : rank), CL_ERR_FORMAT,
              "node '%s' (%s): axis %lld is out of range for rank %d", c->node->name, c->node->op, (long long)axis,
              rank);
    *out = (int)a;
    return CL_OK;
}

const char *infer_shape_str(const cl_infer_tensor *t, char *buf, size_t n)
{
    size_t pos = 0;
    int w = snprintf(buf, n, "[");
    pos = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < t->rank && pos < n; i++) {
        w = snprintf(buf + pos, n - pos, "%s%lld", i ? "," : "", (long long)t->dims[i]);
        if (w < 0) break;
        pos += (size_t)w;
    }
    if (pos < n) snprintf(buf + pos, n - pos, "]");
    return buf;
}
