/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data-movement kernels, for every element type: Identity, Dropout, Constant,
 * Shape, Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Concat, Gather, Pad,
 * Resize.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

INFER_KERNEL(infer_op_identity) { return infer_tensor_clone(c->mem, out[0], in[0]); }

/* Dropout at inference is the identity; the mask, when asked for, is all true. */
INFER_KERNEL(infer_op_dropout)
{
    if (n_in > 2 && in[2] != NULL) {
        CL_ENSURE(cl_infer_tensor_count(in[2]) == 1 && infer_get_i64(in[2], 0) == 0, CL_ERR_UNSUPPORTED,
                  "Dropout with training_mode=true is not supported (inference only)");
    }
    CL_GUARD(infer_tensor_clone(c->mem, out[0], in[0]));
    if (n_out > 1 && out[1] != NULL) {
        CL_GUARD(infer_tensor_new(c->mem, out[1], CL_INFER_BOOL, in[0]->rank, in[0]->dims));
        memset(out[1]->data, 1, out[1]->nbytes);
    }
    return CL_OK;
}

INFER_CHECK(infer_check_constant)
{
    static const char *const ok[] = {"value", "value_float", "value_floats", "value_int", "value_ints"};
    static const char *const bad[] = {"sparse_value", "value_string", "value_strings"};
    int have = 0;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) have += infer_attr_has(n, ok[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CL_ENSURE(!infer_attr_has(n, bad[i]), CL_ERR_UNSUPPORTED,
                  "node '%s' (Constant): attribute '%s' is not supported (value, value_float(s), value_int(s) are)",
                  n->name, bad[i]);
    CL_ENSURE(have == 1, CL_ERR_FORMAT, "node '%s' (Constant) must have exactly one value attribute (has %d)", n->name,
              have);
    return CL_OK;
}

INFER_KERNEL(infer_op_constant)
{
    const infer_node *nd = c->node;
    bool found;
    CL_GUARD(infer_attr_tensor(c->mem, nd, "value", out[0], &found));
    if (found) return CL_OK;
    float f;
    int64_t i;
    const float *fs;
    const int64_t *is;
    size_t cnt;
    if (infer_attr_has(nd, "value_float")) {
        CL_GUARD(infer_attr_float(nd, "value_float", 0, &f));
        CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, 0, NULL));
        *(float *)out[0]->data = f;
    } else if (infer_attr_has(nd, "value_int")) {
        CL_GUARD(infer_attr_int(nd, "value_int", 0, &i));
        CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_INT64, 0, NULL));
        *(int64_t *)out[0]->data = i;
    } else if (infer_attr_has(nd, "value_floats")) {
        CL_GUARD(infer_attr_floats(nd, "value_floats", &fs, &cnt, &found));
        int64_t d = (int64_t)cnt;
        CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, 1, &d));
        if (cnt) memcpy(out[0]->data, fs, cnt * sizeof(float));
    } else {
        CL_GUARD(infer_attr_ints(nd, "value_ints", &is, &cnt, &found));
        int64_t d = (int64_t)cnt;
        CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_INT64, 1, &d));
        if (cnt) memcpy(out[0]->data, is, cnt * sizeof(int64_t));
    }
    return CL_OK;
}

/* ONNX Shape-15: dims[start:end] with Python slice clamping. */
INFER_KERNEL(infer_op_shape)
{
    const cl_infer_tensor *x = in[0];
    int64_t start, end;
    CL_GUARD(infer_attr_int(c->node, "start", 0, &start));
    CL_GUARD(infer_attr_int(c->node, "end", x->rank, &end));
    if (start < 0) start += x->rank;
    if (end < 0) end += x->rank;
    start = start < 0 ? 0 : start > x->rank ? x->rank : start;
    end = end < 0 ? 0 : end > x->rank ? x->rank : end;
    int64_t n = end > start ? end - start : 0;
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_INT64, 1, &n));
    for (int64_t i = 0; i < n; i++) ((int64_t *)out[0]->data)[i] = x->dims[start + i];
    return CL_OK;
}

/* Copies x into a new tensor of the given shape (same element count). */
static CL_MUST_USE cl_status infer_reshape_to(infer_ctx *c, const cl_infer_tensor *x, cl_infer_tensor *o, int rank,
                                              const int64_t *dims)
{
    size_t cnt;
    CL_GUARD(infer_shape_count(rank, dims, &cnt));
    CL_ENSURE(cnt == cl_infer_tensor_count(x), CL_ERR_FORMAT, "%s: cannot reshape %zu elements into %zu", c->node->op,
              cl_infer_tensor_count(x), cnt);
    CL_GUARD(infer_tensor_new(c->mem, o, x->dtype, rank, dims));
    if (x->nbytes) memcpy(o->data, x->data, x->nbytes);
    return CL_OK;
}

INFER_KERNEL(infer_op_flatten)
{
    const cl_infer_tensor *x = in[0];
    int64_t axis;
    CL_GUARD(infer_attr_int(c->node, "axis", 1, &axis));
    if (axis < 0) axis += x->rank;
    CL_ENSURE(axis >= 0 && axis <= x->rank, CL_ERR_FORMAT, "Flatten: axis is out of range for rank %d", x->rank);
    int64_t d[2] = {1, 1};
    for (int i = 0; i < x->rank; i++) d[i < axis ? 0 : 1] *= x->dims[i];
    return infer_reshape_to(c, x, out[0], 2, d);
}

/* ONNX Reshape-14: 0 copies the input dimension (unless allowzero), -1 is inferred. */
INFER_KERNEL(infer_op_reshape)
{
    const cl_infer_tensor *x = in[0], *s = in[1];
    CL_ENSURE(s->dtype == CL_INFER_INT64 && s->rank == 1, CL_ERR_FORMAT, "Reshape: shape must be a 1-D int64 tensor");
    int64_t n = s->dims[0], allowzero;
    CL_ENSURE(n <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "Reshape: target rank %lld exceeds %d", (long long)n,
              CL_INFER_MAX_RANK);
    CL_GUARD(infer_attr_int(c->node, "allowzero", 0, &allowzero));
    int64_t d[CL_INFER_MAX_RANK];
    int infer_at = -1;
    int64_t known = 1;
    for (int i = 0; i < n; i++) {
        d[i] = ((const int64_t *)s->data)[i];
        if (d[i] == 0 && !allowzero) {
            CL_ENSURE(i < x->rank, CL_ERR_FORMAT, "Reshape: 0 at position %d has no input dimension to copy", i);
            d[i] = x->dims[i];
        }
        if (d[i] == -1) {
            CL_ENSURE(infer_at < 0, CL_ERR_FORMAT, "Reshape: more than one -1 in the shape");
            infer_at = i;
            continue;
        }
        CL_ENSURE(d[i] >= 0 && d[i] <= INFER_MAX_ELEMS, CL_ERR_FORMAT, "Reshape: invalid dimension %lld",
                  (long long)d[i]);
        known *= d[i] ? d[i] : 1;
        CL_ENSURE(known <= INFER_MAX_ELEMS, CL_ERR_LIMIT, "Reshape: shape is too large");
    }
    if (infer_at >= 0) {
        int64_t total = (int64_t)cl_infer_tensor_count(x);
        CL_ENSURE(known > 0 && total % known == 0, CL_ERR_FORMAT, "Reshape: cannot infer -1 for %lld elements",
                  (long long)total);
        d[infer_at] = total / known;
    }
    return infer_reshape_to(c, x, out[0], (int)n, d);
}

/* The axes of Squeeze/Unsqueeze: an attribute before opset 13, an input after. */
static CL_MUST_USE cl_status infer_axes_get(infer_ctx *c, cl_infer_tensor **in, int n_in, int64_t *axes, size_t *n,
                                            bool *found)
{
    *found = false;
    *n = 0;
    if (c->opset < 13) {
        const int64_t *a;
        CL_GUARD(infer_attr_ints(c->node, "axes", &a, n, found));
        CL_ENSURE(*n <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "%s: too many axes", c->node->op);
        for (size_t i = 0; i < *n; i++) axes[i] = a[i];
        return CL_OK;
    }
    if (n_in < 2 || in[1] == NULL) return CL_OK;
    CL_ENSURE(in[1]->dtype == CL_INFER_INT64, CL_ERR_FORMAT, "%s: axes must be int64", c->node->op);
    *n = cl_infer_tensor_count(in[1]);
    CL_ENSURE(*n <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "%s: too many axes", c->node->op);
    for (size_t i = 0; i < *n; i++) axes[i] = ((const int64_t *)in[1]->data)[i];
    *found = true;
    return CL_OK;
}

INFER_KERNEL(infer_op_squeeze)
{
    const cl_infer_tensor *x = in[0];
    int64_t axes[CL_INFER_MAX_RANK];
    size_t na;
    bool found;
    CL_GUARD(infer_axes_get(c, in, n_in, axes, &na, &found));
    bool drop[CL_INFER_MAX_RANK] = {false};
    for (size_t i = 0; i < na; i++) {
        int a;
        CL_GUARD(infer_axis(c, axes[i], x->rank, &a));
        CL_ENSURE(x->dims[a] == 1, CL_ERR_FORMAT, "Squeeze: dimension %d is %lld, not 1", a, (long long)x->dims[a]);
        drop[a] = true;
    }
    if (!found)
        for (int i = 0; i < x->rank; i++) drop[i] = x->dims[i] == 1;
    int64_t d[CL_INFER_MAX_RANK];
    int r = 0;
    for (int i = 0; i < x->rank; i++)
        if (!drop[i]) d[r++] = x->dims[i];
    return infer_reshape_to(c, x, out[0], r, d);
}

INFER_KERNEL(infer_op_unsqueeze)
{
    const cl_infer_tensor *x = in[0];
    int64_t axes[CL_INFER_MAX_RANK];
    size_t na;
    bool found;
    CL_GUARD(infer_axes_get(c, in, n_in, axes, &na, &found));
    CL_ENSURE(found, CL_ERR_FORMAT, "Unsqueeze needs axes");
    int r = x->rank + (int)na;
    CL_ENSURE(r <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "Unsqueeze: result rank %d exceeds %d", r, CL_INFER_MAX_RANK);
    bool ins[CL_INFER_MAX_RANK] = {false};
    for (size_t i = 0; i < na; i++) {
        int a;
        CL_GUARD(infer_axis(c, axes[i], r, &a));
        CL_ENSURE(!ins[a], CL_ERR_FORMAT, "Unsqueeze: axis %d given twice", a);
        ins[a] = true;
    }
    int64_t d[CL_INFER_MAX_RANK];
    int k = 0;
    for (int i = 0; i < r; i++) d[i] = ins[i] ? 1 : x->dims[k++];
    return infer_reshape_to(c, x, out[0], r, d);
}

INFER_KERNEL(infer_op_transpose)
{
    const cl_infer_tensor *x = in[0];
    const int64_t *perm;
    size_t np;
    bool found;
    CL_GUARD(infer_attr_ints(c->node, "perm", &perm, &np, &found));
    int p[CL_INFER_MAX_RANK];
    bool seen[CL_INFER_MAX_RANK] = {false};
    CL_ENSURE(!found || np == (size_t)x->rank, CL_ERR_FORMAT, "Transpose: perm has %zu values for rank %d", np,
              x->rank);
    for (int i = 0; i < x->rank; i++) {
        int64_t v = found ? perm[i] : x->rank - 1 - i;
        CL_ENSURE(v >= 0 && v < x->rank && !seen[v], CL_ERR_FORMAT, "Transpose: perm is not a permutation");
        seen[v] = true;
        p[i] = (int)v;
    }
    int64_t d[CL_INFER_MAX_RANK], st[CL_INFER_MAX_RANK], src_st[CL_INFER_MAX_RANK], idx[CL_INFER_MAX_RANK] = {0};
    int64_t s = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        src_st[i] = s;
        s *= x->dims[i];
    }
    for (int i = 0; i < x->rank; i++) {
        d[i] = x->dims[p[i]];
        st[i] = src_st[p[i]];
    }
    CL_GUARD(infer_tensor_new(c->mem, out[0], x->dtype, x->rank, d));
    size_t n = cl_infer_tensor_count(x), es = cl_infer_dtype_size(x->dtype);
    const unsigned char *src = x->data;
    unsigned char *dst = out[0]->data;
    int64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(dst + i * es, src + (size_t)off * es, es);
        for (int k = x->rank - 1; k >= 0; k--) {
            off += st[k];
            if (++idx[k] < d[k]) break;
            off -= st[k] * d[k];
            idx[k] = 0;
        }
    }
    return CL_OK;
}

INFER_CHECK(infer_check_concat)
{
    int64_t axis;
    CL_GUARD(infer_attr_int(n, "axis", 0, &axis));
    CL_ENSURE(infer_attr_has(n, "axis"), CL_ERR_FORMAT, "node '%s' (Concat) is missing the required attribute 'axis'",
              n->name);
    return CL_OK;
}

INFER_KERNEL(infer_op_concat)
{
    const cl_infer_tensor *x0 = in[0];
    CL_ENSURE(x0 != NULL, CL_ERR_FORMAT, "Concat: first input is missing");
    int64_t axis_attr;
    CL_GUARD(infer_attr_int(c->node, "axis", 0, &axis_attr));
    int axis;
    CL_GUARD(infer_axis(c, axis_attr, x0->rank, &axis));
    int64_t d[CL_INFER_MAX_RANK];
    memcpy(d, x0->dims, sizeof(d));
    d[axis] = 0;
    for (int i = 0; i < n_in; i++) {
        const cl_infer_tensor *x = in[i];
        CL_ENSURE(x != NULL && x->dtype == x0->dtype && x->rank == x0->rank, CL_ERR_FORMAT,
                  "Concat: input %d differs in type or rank from input 0", i);
        for (int k = 0; k < x->rank; k++)
            CL_ENSURE(k == axis || x->dims[k] == x0->dims[k], CL_ERR_FORMAT,
                      "Concat: input %d dimension %d is %lld, input 0 has %lld", i, k, (long long)x->dims[k],
                      (long long)x0->dims[k]);
        d[axis] += x->dims[axis];
    }
    CL_GUARD(infer_tensor_new(c->mem, out[0], x0->dtype, x0->rank, d));
    size_t es = cl_infer_dtype_size(x0->dtype), outer = 1, inner = es;
    for (int k = 0; k < axis; k++) outer *= (size_t)d[k];
    for (int k = axis + 1; k < x0->rank; k++) inner *= (size_t)d[k];
    unsigned char *dst = out[0]->data;
    size_t row = (size_t)d[axis] * inner, off = 0;
    for (int i = 0; i < n_in; i++) {
        size_t chunk = (size_t)in[i]->dims[axis] * inner;
        const unsigned char *src = in[i]->data;
        for (size_t o = 0; o < outer && chunk; o++) memcpy(dst + o * row + off, src + o * chunk, chunk);
        off += chunk;
    }
    return CL_OK;
}

/* ONNX Gather: out = data[:axis] + indices.shape + data[axis+1:]; negative indices count from the end. */
INFER_KERNEL(infer_op_gather)
{
    const cl_infer_tensor *x = in[0], *ix = in[1];
    CL_ENSURE(ix->dtype == CL_INFER_INT64 || ix->dtype == CL_INFER_INT32, CL_ERR_FORMAT,
              "Gather: indices must be int32 or int64");
    int64_t axis_attr;
    CL_GUARD(infer_attr_int(c->node, "axis", 0, &axis_attr));
    CL_ENSURE(x->rank >= 1, CL_ERR_FORMAT, "Gather: data must have rank >= 1");
    int axis;
    CL_GUARD(infer_axis(c, axis_attr, x->rank, &axis));
    int r = x->rank - 1 + ix->rank;
    CL_ENSURE(r <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "Gather: result rank %d exceeds %d", r, CL_INFER_MAX_RANK);
    int64_t d[CL_INFER_MAX_RANK];
    int k = 0;
    for (int i = 0; i < axis; i++) d[k++] = x->dims[i];
    for (int i = 0; i < ix->rank; i++) d[k++] = ix->dims[i];
    for (int i = axis + 1; i < x->rank; i++) d[k++] = x->dims[i];
    CL_GUARD(infer_tensor_new(c->mem, out[0], x->dtype, r, d));
    size_t es = cl_infer_dtype_size(x->dtype), outer = 1, inner = es, ni = cl_infer_tensor_count(ix);
    for (int i = 0; i < axis; i++) outer *= (size_t)x->dims[i];
    for (int i = axis + 1; i < x->rank; i++) inner *= (size_t)x->dims[i];
    int64_t len = x->dims[axis];
    const unsigned char *src = x->data;
    unsigned char *dst = out[0]->data;
    for (size_t j = 0; j < ni; j++) {
        int64_t v = infer_get_i64(ix, j);
        CL_ENSURE(v >= -len && v < len, CL_ERR_FORMAT, "Gather: index %lld is out of range for dimension %lld",
                  (long long)v, (long long)len);
    }
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < ni; j++) {
            int64_t v = infer_get_i64(ix, j);
            if (v < 0) v += len;
            if (inner) memcpy(dst + (o * ni + j) * inner, src + (o * (size_t)len + (size_t)v) * inner, inner);
        }
    return CL_OK;
}

static CL_MUST_USE cl_status infer_pad_mode(const infer_node *n, char *mode, size_t sz)
{
    CL_GUARD(infer_attr_string(n, "mode", "constant", mode, sz));
    CL_ENSURE(strcmp(mode, "constant") == 0 || strcmp(mode, "reflect") == 0 || strcmp(mode, "edge") == 0,
              CL_ERR_UNSUPPORTED, "node '%s' (Pad): mode '%s' is not supported (constant, reflect, edge are)", n->name,
              mode);
    return CL_OK;
}

INFER_CHECK(infer_check_pad)
{
    char mode[16];
    CL_GUARD(infer_pad_mode(n, mode, sizeof(mode)));
    if (opset < 11)
        CL_ENSURE(infer_attr_has(n, "pads"), CL_ERR_FORMAT,
                  "node '%s' (Pad) is missing the required attribute 'pads' (opset < 11)", n->name);
    else
        CL_ENSURE(n->n_in >= 2 && n->in[1] >= 0, CL_ERR_FORMAT, "node '%s' (Pad) is missing the 'pads' input", n->name);
    return CL_OK;
}

/* ONNX Pad: negative pads crop; reflect mirrors without repeating the edge. */
INFER_KERNEL(infer_op_pad)
{
    const cl_infer_tensor *x = in[0];
    char mode[16];
    CL_GUARD(infer_pad_mode(c->node, mode, sizeof(mode)));
    int64_t pads[2 * CL_INFER_MAX_RANK];
    double value = 0;
    if (c->opset < 11) {
        const int64_t *p;
        size_t np;
        bool found;
        float v;
        CL_GUARD(infer_attr_ints(c->node, "pads", &p, &np, &found));
        CL_ENSURE(np == 2 * (size_t)x->rank, CL_ERR_FORMAT, "Pad: %zu pads for rank %d", np, x->rank);
        memcpy(pads, p, np * sizeof(int64_t));
        CL_GUARD(infer_attr_float(c->node, "value", 0.0f, &v));
        value = v;
    } else {
        const cl_infer_tensor *p = in[1];
        CL_ENSURE(p->dtype == CL_INFER_INT64 && cl_infer_tensor_count(p) == 2 * (size_t)x->rank, CL_ERR_FORMAT,
                  "Pad: pads must be %d int64 values", 2 * x->rank);
        memcpy(pads, p->data, p->nbytes);
        if (n_in > 2 && in[2] != NULL) {
            CL_ENSURE(cl_infer_tensor_count(in[2]) == 1, CL_ERR_FORMAT, "Pad: constant_value must be a scalar");
            value = infer_get_f64(in[2], 0);
        }
        CL_ENSURE(n_in < 4 || in[3] == NULL, CL_ERR_UNSUPPORTED, "Pad: the axes input (opset 18) is not supported");
    }
    int64_t d[CL_INFER_MAX_RANK], idx[CL_INFER_MAX_RANK] = {0};
    bool reflect = strcmp(mode, "reflect") == 0, edge = strcmp(mode, "edge") == 0;
    for (int i = 0; i < x->rank; i++) {
        CL_ENSURE(pads[i] > -(1 << 24) && pads[i] < (1 << 24) && pads[i + x->rank] > -(1 << 24) &&
                      pads[i + x->rank] < (1 << 24),
                  CL_ERR_LIMIT, "Pad: pads out of range");
        d[i] = x->dims[i] + pads[i] + pads[i + x->rank];
        CL_ENSURE(d[i] >= 0, CL_ERR_FORMAT, "Pad: dimension %d would be negative", i);
        CL_ENSURE(!(reflect || edge) || x->dims[i] > 0 || d[i] == 0, CL_ERR_FORMAT,
                  "Pad: %s mode needs a non-empty dimension %d", mode, i);
    }
    CL_GUARD(infer_tensor_new(c->mem, out[0], x->dtype, x->rank, d));
    size_t n = cl_infer_tensor_count(out[0]), es = cl_infer_dtype_size(x->dtype);
    int64_t st[CL_INFER_MAX_RANK], s = 1;
    for (int i = x->rank - 1; i >= 0; i--) {
        st[i] = s;
        s *= x->dims[i];
    }
    for (size_t o = 0; o < n; o++) {
        int64_t off = 0;
        bool outside = false;
        for (int i = 0; i < x->rank; i++) {
            int64_t v = idx[i] - pads[i], len = x->dims[i];
            if (v < 0 || v >= len) {
                if (edge) {
                    v = v < 0 ? 0 : len - 1;
                } else if (reflect) {
                    int64_t period = len > 1 ? 2 * (len - 1) : 1;
                    v %= period;
                    if (v < 0) v += period;
                    if (v >= len) v = period - v;
                } else {
                    outside = true;
                }
            }
            off += v * st[i];
        }
        if (outside)
            infer_set_f64(out[0], o, value);
        else
            memcpy((unsigned char *)out[0]->data + o * es, (const unsigned char *)x->data + (size_t)off * es, es);
        for (int i = x->rank - 1; i >= 0; i--) {
            if (++idx[i] < d[i]) break;
            idx[i] = 0;
        }
    }
    return CL_OK;
}

/* --- Resize ------------------------------------------------------------------ */

typedef struct infer_resize_cfg {
    char mode[16];
    char ctm[32];
    char nearest[24];
    float extrapolation;
    float cubic_a;
    int64_t exclude_outside;
} infer_resize_cfg;

static CL_MUST_USE cl_status infer_resize_cfg_get(const infer_node *n, int64_t opset, infer_resize_cfg *r)
{
    CL_GUARD(infer_attr_string(n, "mode", "nearest", r->mode, sizeof(r->mode)));
    /* Resize-10 has no coordinate or rounding attributes: it behaves as asymmetric + floor. */
    CL_GUARD(infer_attr_string(n, "coordinate_transformation_mode", opset < 11 ? "asymmetric" : "half_pixel", r->ctm,
                               sizeof(r->ctm)));
    CL_GUARD(infer_attr_string(n, "nearest_mode", opset < 11 ? "floor" : "round_prefer_floor", r->nearest,
                               sizeof(r->nearest)));
    CL_GUARD(infer_attr_float(n, "extrapolation_value", 0.0f, &r->extrapolation));
    CL_GUARD(infer_attr_float(n, "cubic_coeff_a", -0.75f, &r->cubic_a));
    CL_GUARD(infer_attr_int(n, "exclude_outside", 0, &r->exclude_outside));
    CL_ENSURE(strcmp(r->mode, "nearest") == 0 || strcmp(r->mode, "linear") == 0 || strcmp(r->mode, "cubic") == 0,
              CL_ERR_UNSUPPORTED, "node '%s' (Resize): mode '%s' is not supported (nearest, linear, cubic are)",
              n->name, r->mode);
    static const char *const ctms[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                       "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    bool ok = false;
    for (size_t i = 0; i < sizeof(ctms) / sizeof(ctms[0]); i++) ok |= strcmp(r->ctm, ctms[i]) == 0;
    CL_ENSURE(ok, CL_ERR_UNSUPPORTED, "node '%s' (Resize): coordinate_transformation_mode '%s' is not supported",
              n->name, r->ctm);
    CL_ENSURE(strcmp(r->nearest, "round_prefer_floor") == 0 || strcmp(r->nearest, "round_prefer_ceil") == 0 ||
                  strcmp(r->nearest, "floor") == 0 || strcmp(r->nearest, "ceil") == 0,
              CL_ERR_UNSUPPORTED, "node '%s' (Resize): nearest_mode '%s' is not supported", n->name, r->nearest);
    int64_t aa;
    CL_GUARD(infer_attr_int(n, "antialias", 0, &aa));
    CL_ENSURE(aa == 0, CL_ERR_UNSUPPORTED, "node '%s' (Resize): antialias is not supported", n->name);
    return CL_OK;
}

INFER_CHECK(infer_check_resize)
{
    infer_resize_cfg r;
    return infer_resize_cfg_get(n, opset, &r);
}

/* ONNX Resize "coordinate_transformation_mode": output coordinate -> input
 * coordinate. As in ONNX's reference, length_resized is in_len * scale, which
 * is not rounded when scales (rather than sizes) are given. */
static double infer_resize_coord(const infer_resize_cfg *r, double xo, double scale, int64_t in_len, double out_len,
                                 double roi_s, double roi_e)
{
    if (strcmp(r->ctm, "half_pixel") == 0) return (xo + 0.5) / scale - 0.5;
    if (strcmp(r->ctm, "pytorch_half_pixel") == 0) return out_len > 1 ? (xo + 0.5) / scale - 0.5 : 0.0;
    if (strcmp(r->ctm, "align_corners") == 0) return out_len == 1 ? 0.0 : xo * (double)(in_len - 1) / (out_len - 1);
    if (strcmp(r->ctm, "tf_half_pixel_for_nn") == 0) return (xo + 0.5) / scale;
    if (strcmp(r->ctm, "tf_crop_and_resize") == 0)
        return out_len > 1 ? roi_s * (double)(in_len - 1) + xo * (roi_e - roi_s) * (double)(in_len - 1) / (out_len - 1)
                           : 0.5 * (roi_s + roi_e) * (double)(in_len - 1);
    return xo / scale; /* asymmetric */
}

static int64_t infer_resize_nearest(const infer_resize_cfg *r, double x, double scale)
{
    if (strcmp(r->nearest, "floor") == 0) return (int64_t)floor(x);
    if (strcmp(r->nearest, "ceil") == 0) return (int64_t)ceil(x);
    double f = floor(x);
    if (x - f == 0.5) return strcmp(r->nearest, "round_prefer_ceil") == 0 ? (int64_t)f + 1 : (int64_t)f;
    (void)scale;
    return (int64_t)round(x);
}

/* ONNX Resize mode "cubic": Keys' cubic convolution with coefficient A over the
 * 4 taps floor(x)-1 .. floor(x)+2, edge samples repeated beyond the ends; with
 * exclude_outside the out-of-range taps get weight 0 and the rest are
 * renormalised. */
static void infer_resize_cubic(const infer_resize_cfg *r, const cl_infer_tensor *x, cl_infer_tensor *o, double xi,
                               int64_t in_len, size_t sbase, size_t dbase, size_t inner)
{
    double a = r->cubic_a, f = floor(xi), t = xi - f, w[4];
    double d[4] = {t + 1, t, 1 - t, 2 - t};
    for (int k = 0; k < 4; k++) {
        double z = d[k];
        w[k] = z <= 1 ? ((a + 2) * z - (a + 3)) * z * z + 1 : ((a * z - 5 * a) * z + 8 * a) * z - 4 * a;
    }
    int64_t idx[4];
    double sum = 0;
    for (int k = 0; k < 4; k++) {
        idx[k] = (int64_t)f - 1 + k;
        if (r->exclude_outside && (idx[k] < 0 || idx[k] >= in_len)) w[k] = 0;
        sum += w[k];
        idx[k] = idx[k] < 0 ? 0 : idx[k] >= in_len ? in_len - 1 : idx[k];
    }
    if (r->exclude_outside && sum != 0)
        for (int k = 0; k < 4; k++) w[k] /= sum;
    for (size_t j = 0; j < inner; j++) {
        double v = 0;
        for (int k = 0; k < 4; k++) v += w[k] * infer_get_f64(x, sbase + (size_t)idx[k] * inner + j);
        infer_set_f64(o, dbase + j, v);
    }
}

/* Resizes one axis: [outer, in_len, inner] -> [outer, out_len, inner]. Linear
 * interpolation is separable, so N-linear Resize is one such pass per axis. */
static CL_MUST_USE cl_status infer_resize_axis(infer_ctx *c, const infer_resize_cfg *r, const cl_infer_tensor *x,
                                               int axis, int64_t out_len, double scale, double roi_s, double roi_e,
                                               cl_infer_tensor *o)
{
    int64_t d[CL_INFER_MAX_RANK];
    memcpy(d, x->dims, sizeof(d));
    d[axis] = out_len;
    CL_GUARD(infer_tensor_new(c->mem, o, x->dtype, x->rank, d));
    size_t outer = 1, inner = 1, es = cl_infer_dtype_size(x->dtype);
    for (int i = 0; i < axis; i++) outer *= (size_t)d[i];
    for (int i = axis + 1; i < x->rank; i++) inner *= (size_t)d[i];
    int64_t in_len = x->dims[axis];
    bool linear = strcmp(r->mode, "linear") == 0, crop = strcmp(r->ctm, "tf_crop_and_resize") == 0;
    bool cubic = strcmp(r->mode, "cubic") == 0;
    const unsigned char *src = x->data;
    unsigned char *dst = o->data;
    for (int64_t xo = 0; xo < out_len; xo++) {
        double xi = infer_resize_coord(r, (double)xo, scale, in_len, (double)in_len * scale, roi_s, roi_e);
        bool extrap = crop && (xi < 0 || xi > (double)(in_len - 1));
        for (size_t ou = 0; ou < outer; ou++) {
            size_t dbase = (ou * (size_t)out_len + (size_t)xo) * inner;
            size_t sbase = ou * (size_t)in_len * inner;
            if (extrap) {
                for (size_t k = 0; k < inner; k++) infer_set_f64(o, dbase + k, r->extrapolation);
                continue;
            }
            if (cubic) {
                infer_resize_cubic(r, x, o, xi, in_len, sbase, dbase, inner);
                continue;
            }
            if (!linear) {
                int64_t ii = infer_resize_nearest(r, xi, scale);
                ii = ii < 0 ? 0 : ii >= in_len ? in_len - 1 : ii;
                memcpy(dst + dbase * es, src + (sbase + (size_t)ii * inner) * es, inner * es);
                continue;
            }
            double xc = xi < 0 ? 0 : xi > (double)(in_len - 1) ? (double)(in_len - 1) : xi;
            int64_t i0 = (int64_t)floor(xc), i1 = i0 + 1 < in_len ? i0 + 1 : i0;
            double t = xc - (double)i0;
            for (size_t k = 0; k < inner; k++) {
                double a = infer_get_f64(x, sbase + (size_t)i0 * inner + k);
                double b = infer_get_f64(x, sbase + (size_t)i1 * inner + k);
                infer_set_f64(o, dbase + k, a * (1 - t) + b * t);
            }
        }
    }
    return CL_OK;
}

/* ONNX Resize-10 (X, scales) and Resize-11..17 (X, roi, scales, sizes). */
INFER_KERNEL(infer_op_resize)
{
    cl_status rc = CL_OK;
    const cl_infer_tensor *x = in[0];
    infer_resize_cfg r;
    CL_GUARD(infer_resize_cfg_get(c->node, c->opset, &r));
    CL_ENSURE(strcmp(r.mode, "nearest") == 0 || infer_dtype_is_float(x->dtype), CL_ERR_UNSUPPORTED,
              "Resize %s on %s tensors is not supported", r.mode, cl_infer_dtype_name(x->dtype));
    const cl_infer_tensor *roi = NULL, *scales, *sizes = NULL;
    if (c->opset < 11) {
        CL_ENSURE(n_in == 2, CL_ERR_FORMAT, "Resize-10 takes X and scales");
        scales = in[1];
    } else {
        roi = n_in > 1 ? in[1] : NULL;
        scales = n_in > 2 ? in[2] : NULL;
        sizes = n_in > 3 ? in[3] : NULL;
    }
    if (scales != NULL && cl_infer_tensor_count(scales) == 0) scales = NULL;
    if (sizes != NULL && cl_infer_tensor_count(sizes) == 0) sizes = NULL;
    CL_ENSURE((scales == NULL) != (sizes == NULL), CL_ERR_FORMAT, "Resize needs exactly one of scales and sizes");
    const cl_infer_tensor *given = scales ? scales : sizes;
    CL_ENSURE(cl_infer_tensor_count(given) == (size_t)x->rank, CL_ERR_FORMAT, "Resize: %s has %zu values for rank %d",
              scales ? "scales" : "sizes", cl_infer_tensor_count(given), x->rank);
    bool crop = strcmp(r.ctm, "tf_crop_and_resize") == 0;
    CL_ENSURE(!crop || (roi != NULL && cl_infer_tensor_count(roi) == 2 * (size_t)x->rank), CL_ERR_FORMAT,
              "Resize: tf_crop_and_resize needs an roi of %d values", 2 * x->rank);
    cl_infer_tensor cur = {0}, next = {0};
    const cl_infer_tensor *src = x;
    for (int a = 0; a < x->rank; a++) {
        double roi_s = crop ? infer_get_f64(roi, (size_t)a) : 0.0,
               roi_e = crop ? infer_get_f64(roi, (size_t)a + (size_t)x->rank) : 1.0;
        double scale;
        int64_t out_len;
        if (scales) {
            scale = infer_get_f64(scales, (size_t)a);
            CL_ENSURE_GOTO(scale > 0 && scale < 1e6, CL_ERR_FORMAT, "Resize: scale %g must be positive", scale);
            out_len = (int64_t)floor((double)x->dims[a] * (crop ? roi_e - roi_s : 1.0) * scale);
        } else {
            out_len = infer_get_i64(sizes, (size_t)a);
            CL_ENSURE_GOTO(out_len >= 0 && out_len <= INFER_MAX_ELEMS, CL_ERR_FORMAT, "Resize: size %lld is invalid",
                           (long long)out_len);
            scale = x->dims[a] ? (double)out_len / (double)x->dims[a] : 1.0;
        }
        if (out_len == x->dims[a] && scale == 1.0 && !crop) continue;
        CL_ENSURE_GOTO(x->dims[a] > 0 || out_len == 0, CL_ERR_FORMAT, "Resize: cannot resize an empty dimension");
        CL_GUARD_GOTO(infer_resize_axis(c, &r, src, a, out_len, scale, roi_s, roi_e, &next));
        infer_tensor_release(c->mem, &cur);
        cur = next;
        memset(&next, 0, sizeof(next));
        src = &cur;
    }
    if (src == x) {
        CL_GUARD_GOTO(infer_tensor_clone(c->mem, out[0], x));
    } else {
        *out[0] = cur;
        memset(&cur, 0, sizeof(cur));
    }
out:
    infer_tensor_release(c->mem, &cur);
    infer_tensor_release(c->mem, &next);
    return rc;
}
