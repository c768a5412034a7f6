/* SPDX-License-Identifier: Apache-2.0 */
/* Gemm, MatMul, Softmax / LogSoftmax, ReduceMean: plain-C reference kernels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

/* C[M,N] += A[M,K] * B[K,N] with arbitrary element strides for A and B (for
 * the transposed forms); the k-then-j order keeps the inner loop contiguous in C. */
static void infer_matmul_f32(const float *A, int64_t as_m, int64_t as_k, const float *B, int64_t bs_k, int64_t bs_n,
                             float *C, int64_t M, int64_t N, int64_t K, float alpha)
{
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * N;
        for (int64_t k = 0; k < K; k++) {
            float a = alpha * A[i * as_m + k * as_k];
            const float *b = B + k * bs_k;
            if (bs_n == 1) {
                for (int64_t j = 0; j < N; j++) c[j] += a * b[j];
            } else {
                for (int64_t j = 0; j < N; j++) c[j] += a * b[j * bs_n];
            }
        }
    }
}

/* ONNX Gemm: Y = alpha * A' * B' + beta * C, C broadcast to [M, N] (unidirectional). */
INFER_KERNEL(infer_op_gemm)
{
    const cl_infer_tensor *a = in[0], *b = in[1], *cc = n_in > 2 ? in[2] : NULL;
    INFER_NEED_FLOAT(c, a, "A");
    INFER_NEED_FLOAT(c, b, "B");
    CL_ENSURE(a->rank == 2 && b->rank == 2, CL_ERR_FORMAT, "Gemm needs 2-D A and B (got ranks %d and %d)", a->rank,
              b->rank);
    int64_t ta, tb;
    float alpha, beta;
    CL_GUARD(infer_attr_int(c->node, "transA", 0, &ta));
    CL_GUARD(infer_attr_int(c->node, "transB", 0, &tb));
    CL_GUARD(infer_attr_float(c->node, "alpha", 1.0f, &alpha));
    CL_GUARD(infer_attr_float(c->node, "beta", 1.0f, &beta));
    int64_t M = ta ? a->dims[1] : a->dims[0], K = ta ? a->dims[0] : a->dims[1];
    int64_t Kb = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
    CL_ENSURE(K == Kb, CL_ERR_FORMAT, "Gemm: A' is [%lld,%lld] but B' is [%lld,%lld]", (long long)M, (long long)K,
              (long long)Kb, (long long)N);
    int64_t od[2] = {M, N};
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, 2, od));
    float *Y = out[0]->data;
    if (cc != NULL) {
        INFER_NEED_FLOAT(c, cc, "C");
        cl_infer_tensor shape = {.rank = 2, .dims = {M, N}};
        const cl_infer_tensor *ts[2] = {&shape, cc};
        int r;
        int64_t bd[CL_INFER_MAX_RANK], st[CL_INFER_MAX_RANK];
        CL_GUARD(infer_broadcast_shape(ts, 2, &r, bd));
        CL_ENSURE(r == 2 && bd[0] == M && bd[1] == N, CL_ERR_FORMAT, "Gemm: C does not broadcast to [%lld,%lld]",
                  (long long)M, (long long)N);
        infer_broadcast_strides(cc, 2, bd, st);
        const float *C = cc->data;
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) Y[i * N + j] = beta * C[i * st[0] + j * st[1]];
    }
    const float *A = a->data, *B = b->data;
    infer_matmul_f32(A, ta ? 1 : K, ta ? M : 1, B, tb ? 1 : N, tb ? K : 1, Y, M, N, K, alpha);
    return CL_OK;
}

/* ONNX MatMul = numpy.matmul: 1-D operands are promoted and the added axis
 * removed again; batch dimensions broadcast. */
INFER_KERNEL(infer_op_matmul)
{
    const cl_infer_tensor *a = in[0], *b = in[1];
    INFER_NEED_FLOAT(c, a, "A");
    INFER_NEED_FLOAT(c, b, "B");
    CL_ENSURE(a->rank >= 1 && b->rank >= 1, CL_ERR_FORMAT, "MatMul operands must have rank >= 1");
    cl_infer_tensor av = *a, bv = *b;
    if (a->rank == 1) {
        av.rank = 2;
        av.dims[0] = 1;
        av.dims[1] = a->dims[0];
    }
    if (b->rank == 1) {
        bv.rank = 2;
        bv.dims[0] = b->dims[0];
        bv.dims[1] = 1;
    }
    int64_t M = av.dims[av.rank - 2], K = av.dims[av.rank - 1], N = bv.dims[bv.rank - 1];
    CL_ENSURE(bv.dims[bv.rank - 2] == K, CL_ERR_FORMAT, "MatMul: inner dimensions differ (%lld and %lld)", (long long)K,
              (long long)bv.dims[bv.rank - 2]);
    /* Broadcast the batch dims: views of rank-2 with the matrix dims cut off. */
    cl_infer_tensor ab = av, bb = bv;
    ab.rank -= 2;
    bb.rank -= 2;
    const cl_infer_tensor *ts[2] = {&ab, &bb};
    int br;
    int64_t bd[CL_INFER_MAX_RANK], sa[CL_INFER_MAX_RANK], sb[CL_INFER_MAX_RANK], idx[CL_INFER_MAX_RANK] = {0};
    CL_GUARD(infer_broadcast_shape(ts, 2, &br, bd));
    CL_ENSURE(br + 2 <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "MatMul result rank is too large");
    infer_broadcast_strides(&ab, br, bd, sa);
    infer_broadcast_strides(&bb, br, bd, sb);
    int64_t od[CL_INFER_MAX_RANK];
    int orank = 0;
    for (int i = 0; i < br; i++) od[orank++] = bd[i];
    if (a->rank > 1) od[orank++] = M;
    if (b->rank > 1) od[orank++] = N;
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, orank, od));
    size_t batches = 1;
    for (int i = 0; i < br; i++) batches *= (size_t)bd[i];
    const float *A = a->data, *B = b->data;
    float *Y = out[0]->data;
    int64_t oa = 0, ob = 0;
    for (size_t bt = 0; bt < batches; bt++) {
        infer_matmul_f32(A + oa * M * K, K, 1, B + ob * K * N, N, 1, Y + (int64_t)bt * M * N, M, N, K, 1.0f);
        for (int d = br - 1; d >= 0; d--) {
            oa += sa[d];
            ob += sb[d];
            if (++idx[d] < bd[d]) break;
            oa -= sa[d] * bd[d];
            ob -= sb[d] * bd[d];
            idx[d] = 0;
        }
    }
    return CL_OK;
}

/* Softmax / LogSoftmax. Before opset 13 the input is coerced to 2-D at `axis`
 * (default 1) and normalised over everything after it; from 13 on over the one
 * axis (default -1). The max is subtracted first for stability. */
INFER_KERNEL(infer_op_softmax)
{
    const cl_infer_tensor *x = in[0];
    INFER_NEED_FLOAT(c, x, "input");
    bool log_sm = strcmp(c->node->op, "LogSoftmax") == 0;
    int64_t axis_attr;
    CL_GUARD(infer_attr_int(c->node, "axis", c->opset < 13 ? 1 : -1, &axis_attr));
    int axis = 0;
    if (x->rank > 0) CL_GUARD(infer_axis(c, axis_attr, x->rank, &axis));
    size_t outer = 1, len = 1, inner = 1;
    for (int i = 0; i < x->rank; i++) {
        size_t d = (size_t)x->dims[i];
        if (i < axis)
            outer *= d;
        else if (i == axis || c->opset < 13)
            len *= d;
        else
            inner *= d;
    }
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, x->rank, x->dims));
    const float *X = x->data;
    float *Y = out[0]->data;
    for (size_t o = 0; o < outer; o++)
        for (size_t i = 0; i < inner; i++) {
            const float *xs = X + o * len * inner + i;
            float *ys = Y + o * len * inner + i;
            float mx = -INFINITY;
            for (size_t k = 0; k < len; k++)
                if (xs[k * inner] > mx) mx = xs[k * inner];
            double sum = 0;
            for (size_t k = 0; k < len; k++) sum += exp((double)xs[k * inner] - mx);
            for (size_t k = 0; k < len; k++) {
                double v = (double)xs[k * inner] - mx;
                ys[k * inner] = log_sm ? (float)(v - log(sum)) : (float)(exp(v) / sum);
            }
        }
    return CL_OK;
}

/* ONNX ReduceMean (opset <= 17: axes is an attribute; none = all axes). */
INFER_KERNEL(infer_op_reducemean)
{
    const cl_infer_tensor *x = in[0];
    INFER_NEED_FLOAT(c, x, "input");
    const int64_t *axes;
    size_t n_axes;
    bool found;
    int64_t keep;
    CL_GUARD(infer_attr_ints(c->node, "axes", &axes, &n_axes, &found));
    CL_GUARD(infer_attr_int(c->node, "keepdims", 1, &keep));
    bool red[CL_INFER_MAX_RANK] = {false};
    int64_t axes_buf[CL_INFER_MAX_RANK];
    if (n_in > 1 && in[1] != NULL) { /* ReduceMean-18 form, accepted when given */
        CL_ENSURE(cl_infer_tensor_count(in[1]) <= CL_INFER_MAX_RANK, CL_ERR_FORMAT, "too many axes");
        n_axes = cl_infer_tensor_count(in[1]);
        for (size_t i = 0; i < n_axes; i++) axes_buf[i] = infer_get_i64(in[1], i);
        axes = axes_buf;
    }
    for (size_t i = 0; i < n_axes; i++) {
        int a;
        CL_GUARD(infer_axis(c, axes[i], x->rank, &a));
        red[a] = true;
    }
    if (n_axes == 0)
        for (int i = 0; i < x->rank; i++) red[i] = true;
    int64_t od[CL_INFER_MAX_RANK], full[CL_INFER_MAX_RANK];
    int orank = 0;
    size_t cnt = 1;
    for (int i = 0; i < x->rank; i++) {
        full[i] = red[i] ? 1 : x->dims[i];
        if (red[i]) cnt *= (size_t)x->dims[i];
        if (!red[i] || keep) od[orank++] = full[i];
    }
    CL_GUARD(infer_tensor_new(c->mem, out[0], CL_INFER_FLOAT, orank, od));
    /* Accumulate in double through the kept-dims view, then divide. */
    cl_infer_tensor view = {.dtype = CL_INFER_FLOAT, .rank = x->rank};
    memcpy(view.dims, full, sizeof(full));
    int64_t st[CL_INFER_MAX_RANK], idx[CL_INFER_MAX_RANK] = {0};
    infer_broadcast_strides(&view, x->rank, x->dims, st);
    size_t no = cl_infer_tensor_count(out[0]), n = cl_infer_tensor_count(x);
    double *acc = calloc(no ? no : 1, sizeof(double));
    CL_ENSURE(acc != NULL, CL_ERR_NOMEM, "out of memory in ReduceMean");
    const float *X = x->data;
    int64_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc[o] += X[i];
        for (int d = x->rank - 1; d >= 0; d--) {
            o += st[d];
            if (++idx[d] < x->dims[d]) break;
            o -= st[d] * x->dims[d];
            idx[d] = 0;
        }
    }
    float *Y = out[0]->data;
    for (size_t i = 0; i < no; i++) Y[i] = cnt ? (float)(acc[i] / (double)cnt) : NAN;
    free(acc);
    return CL_OK;
}
