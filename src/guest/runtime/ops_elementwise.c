/* SPDX-License-Identifier: Apache-2.0 */
/* Element-wise kernels: activations, arithmetic with numpy broadcasting, Clip, Cast. */
#include <math.h>
#include <string.h>

#include "ops.h"

typedef enum {
    U_RELU,
    U_LEAKY,
    U_SIGMOID,
    U_TANH,
    U_EXP,
    U_LOG,
    U_SQRT,
    U_NEG,
    U_ABS,
    U_RECIP,
    U_FLOOR,
    U_CEIL,
    U_ERF
} infer_unary_kind;

static double infer_unary_apply(infer_unary_kind k, double x, double alpha)
{
    switch (k) {
    case U_RELU: return x > 0 ? x : 0;
    case U_LEAKY: return x >= 0 ? x : alpha * x; /* LeakyRelu-16: f(x) = alpha * x for x < 0 */
    case U_SIGMOID: return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
    case U_TANH: return tanh(x);
    case U_EXP: return exp(x);
    case U_LOG: return log(x);
    case U_SQRT: return sqrt(x);
    case U_NEG: return -x;
    case U_ABS: return fabs(x);
    case U_RECIP: return 1.0 / x;
    case U_FLOOR: return floor(x);
    case U_CEIL: return ceil(x);
    case U_ERF: return erf(x);
    }
    return x;
}

INFER_KERNEL(infer_op_unary)
{
    static const struct {
        const char *name;
        infer_unary_kind k;
    } kinds[] = {{"Relu", U_RELU}, {"LeakyRelu", U_LEAKY},  {"Sigmoid", U_SIGMOID}, {"Tanh", U_TANH},
                 {"Exp", U_EXP},   {"Log", U_LOG},          {"Sqrt", U_SQRT},       {"Neg", U_NEG},
                 {"Abs", U_ABS},   {"Reciprocal", U_RECIP}, {"Floor", U_FLOOR},     {"Ceil", U_CEIL},
                 {"Erf", U_ERF}};
    infer_unary_kind k = U_RELU;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i].name, c->node->op) == 0) k = kinds[i].k;
    float alpha = 0.01f;
    if (k == U_LEAKY) CL_GUARD(infer_attr_float(c->node, "alpha", 0.01f, &alpha));
    const cl_infer_tensor *x = in[0];
    bool signed_ok = x->dtype == CL_INFER_INT8 || x->dtype == CL_INFER_INT16 || x->dtype == CL_INFER_INT32 ||
                     x->dtype == CL_INFER_INT64;
    bool int_ok = (k == U_RELU || k == U_NEG || k == U_ABS) && signed_ok;
    CL_ENSURE(infer_dtype_is_float(x->dtype) || int_ok, CL_ERR_UNSUPPORTED, "%s on %s tensors is not supported",
              c->node->op, cl_infer_dtype_name(x->dtype));
    CL_GUARD(infer_tensor_new(c->mem, out[0], x->dtype, x->rank, x->dims));
    size_t n = cl_infer_tensor_count(x);
    if (x->dtype == CL_INFER_FLOAT) {
        const float *s = x->data;
        float *d = out[0]->data;
        if (k == U_RELU) {
            for (size_t i = 0; i < n; i++) d[i] = s[i] > 0.0f ? s[i] : 0.0f;
        } else {
            for (size_t i = 0; i < n; i++) d[i] = (float)infer_unary_apply(k, s[i], alpha);
        }
    } else if (infer_dtype_is_float(x->dtype)) {
        for (size_t i = 0; i < n; i++) infer_set_f64(out[0], i, infer_unary_apply(k, infer_get_f64(x, i), alpha));
    } else {
        for (size_t i = 0; i < n; i++) {
            int64_t v = infer_get_i64(x, i);
            int64_t r = k == U_RELU  ? (v > 0 ? v : 0)
                        : k == U_NEG ? (int64_t)(0 - (uint64_t)v)
                                     : (v < 0 ? (int64_t)(0 - (uint64_t)v) : v);
            infer_set_i64(out[0], i, r);
        }
    }
    return CL_OK;
}

typedef enum { B_ADD, B_SUB, B_MUL, B_DIV, B_POW } infer_binary_kind;

static double infer_binary_f64(infer_binary_kind k, double a, double b)
{
    switch (k) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return pow(a, b);
    }
    return 0;
}

/* Integer arithmetic wraps (as numpy's fixed-width integers); division truncates
 * toward zero and division by zero gives 0 rather than trapping. */
static int64_t infer_binary_i64(infer_binary_kind k, int64_t a, int64_t b)
{
    switch (k) {
    case B_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
    case B_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
    case B_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
    case B_DIV: return (b == 0 || (b == -1 && a == INT64_MIN)) ? 0 : a / b;
    case B_POW: {
        int64_t r = 1;
        for (int64_t i = 0; i < b && i < 64; i++) r = (int64_t)((uint64_t)r * (uint64_t)a);
        return r;
    }
    }
    return 0;
}

/* ONNX "Broadcasting in ONNX" (multidirectional) for Add, Sub, Mul, Div, Pow. */
INFER_KERNEL(infer_op_binary)
{
    const char *op = c->node->op;
    infer_binary_kind k = strcmp(op, "Add") == 0   ? B_ADD
                          : strcmp(op, "Sub") == 0 ? B_SUB
                          : strcmp(op, "Mul") == 0 ? B_MUL
                          : strcmp(op, "Div") == 0 ? B_DIV
                                                   : B_POW;
    const cl_infer_tensor *a = in[0], *b = in[1];
    CL_ENSURE(k == B_POW || a->dtype == b->dtype, CL_ERR_FORMAT, "%s inputs have different types (%s, %s)", op,
              cl_infer_dtype_name(a->dtype), cl_infer_dtype_name(b->dtype));
    CL_ENSURE(a->dtype != CL_INFER_BOOL && b->dtype != CL_INFER_BOOL, CL_ERR_UNSUPPORTED,
              "%s on bool tensors is not supported", op);
    const cl_infer_tensor *ts[2] = {a, b};
    int rank;
    int64_t dims[CL_INFER_MAX_RANK], sa[CL_INFER_MAX_RANK], sb[CL_INFER_MAX_RANK], idx[CL_INFER_MAX_RANK] = {0};
    CL_GUARD(infer_broadcast_shape(ts, 2, &rank, dims));
    infer_broadcast_strides(a, rank, dims, sa);
    infer_broadcast_strides(b, rank, dims, sb);
    CL_GUARD(infer_tensor_new(c->mem, out[0], a->dtype, rank, dims));
    cl_infer_tensor *o = out[0];
    size_t n = cl_infer_tensor_count(o);
    bool f32 = a->dtype == CL_INFER_FLOAT && b->dtype == CL_INFER_FLOAT && k != B_POW;
    bool flt = infer_dtype_is_float(a->dtype) || infer_dtype_is_float(b->dtype);
    const float *fa = a->data, *fb = b->data;
    float *fo = o->data;
    int64_t oa = 0, ob = 0;
    for (size_t i = 0; i < n; i++) {
        if (f32) {
            float x = fa[oa], y = fb[ob];
            fo[i] = k == B_ADD ? x + y : k == B_SUB ? x - y : k == B_MUL ? x * y : x / y;
        } else if (flt) {
            infer_set_f64(o, i, infer_binary_f64(k, infer_get_f64(a, (size_t)oa), infer_get_f64(b, (size_t)ob)));
        } else {
            infer_set_i64(o, i, infer_binary_i64(k, infer_get_i64(a, (size_t)oa), infer_get_i64(b, (size_t)ob)));
        }
        for (int d = rank - 1; d >= 0; d--) {
            oa += sa[d];
            ob += sb[d];
            if (++idx[d] < dims[d]) break;
            oa -= sa[d] * dims[d];
            ob -= sb[d] * dims[d];
            idx[d] = 0;
        }
    }
    return CL_OK;
}

/* Clip-6 takes min/max as attributes; Clip-11 and later as optional scalar inputs. */
INFER_KERNEL(infer_op_clip)
{
    const cl_infer_tensor *x = in[0];
    double lo = -INFINITY, hi = INFINITY;
    if (c->opset < 11) {
        float f;
        CL_GUARD(infer_attr_float(c->node, "min", -INFINITY, &f));
        lo = f;
        CL_GUARD(infer_attr_float(c->node, "max", INFINITY, &f));
        hi = f;
    } else {
        for (int i = 1; i < n_in && i < 3; i++) {
            if (in[i] == NULL) continue;
            CL_ENSURE(cl_infer_tensor_count(in[i]) == 1 && in[i]->dtype == x->dtype, CL_ERR_FORMAT,
                      "Clip %s must be a scalar of the input's type", i == 1 ? "min" : "max");
            if (i == 1)
                lo = infer_get_f64(in[i], 0);
            else
                hi = infer_get_f64(in[i], 0);
        }
    }
    CL_ENSURE(x->dtype != CL_INFER_BOOL, CL_ERR_UNSUPPORTED, "Clip on bool tensors is not supported");
    CL_GUARD(infer_tensor_new(c->mem, out[0], x->dtype, x->rank, x->dims));
    size_t n = cl_infer_tensor_count(x);
    if (infer_dtype_is_float(x->dtype)) {
        for (size_t i = 0; i < n; i++) {
            double v = infer_get_f64(x, i);
            /* min is applied first, so min > max gives max, as the reference does. */
            if (v < lo) v = lo;
            if (v > hi) v = hi;
            infer_set_f64(out[0], i, v);
        }
        return CL_OK;
    }
    /* Integers compare exactly, without a detour through double. */
    int64_t ilo = (n_in > 1 && in[1] != NULL) ? infer_get_i64(in[1], 0) : INT64_MIN;
    int64_t ihi = (n_in > 2 && in[2] != NULL) ? infer_get_i64(in[2], 0) : INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        int64_t v = infer_get_i64(x, i);
        if (v < ilo) v = ilo;
        if (v > ihi) v = ihi;
        infer_set_i64(out[0], i, v);
    }
    return CL_OK;
}

INFER_CHECK(infer_check_cast)
{
    int64_t to;
    CL_GUARD(infer_attr_int(n, "to", 0, &to));
    CL_ENSURE(infer_attr_has(n, "to"), CL_ERR_FORMAT, "node '%s' (Cast) is missing the required attribute 'to'",
              n->name);
    CL_ENSURE(to > 0 && to < 64 && cl_infer_dtype_size((cl_infer_dtype)to) != 0, CL_ERR_UNSUPPORTED,
              "node '%s' (Cast): target type %lld is not supported (float, double, bool and integer types are)",
              n->name, (long long)to);
    return CL_OK;
}

INFER_KERNEL(infer_op_cast)
{
    int64_t to;
    CL_GUARD(infer_attr_int(c->node, "to", 0, &to));
    const cl_infer_tensor *x = in[0];
    CL_GUARD(infer_tensor_new(c->mem, out[0], (cl_infer_dtype)to, x->rank, x->dims));
    size_t n = cl_infer_tensor_count(x);
    bool via_float = infer_dtype_is_float(x->dtype) || infer_dtype_is_float((cl_infer_dtype)to);
    for (size_t i = 0; i < n; i++) {
        if (via_float)
            infer_set_f64(out[0], i, infer_get_f64(x, i));
        else
            infer_set_i64(out[0], i, infer_get_i64(x, i));
    }
    return CL_OK;
}
