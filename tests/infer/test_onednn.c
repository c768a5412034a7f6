/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The oneDNN fast path against the reference kernels: the same model, loaded
 * once per backend, must give the same outputs (|a - b| <= 1e-4 |b| + 1e-5) on
 * random data, over Conv / ConvTranspose / Gemm / MatMul configurations, the
 * pools, Concat, the single-source ops and layouts passed between them; and
 * the fast path must really have run (or, where it does not apply, not run).
 * In a build without oneDNN only test_backend_choice runs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"
#include "infer_test_util.h"
#include "test_util.h"

static float frand(unsigned *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return (float)((*seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static size_t count(int rank, const int64_t *d)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)d[i];
    return n;
}

/* A random float initializer, values in [-scale, scale). */
static void init_random_scaled(tm_model *t, const char *name, int rank, const int64_t *d, unsigned seed, float scale)
{
    size_t n = count(rank, d);
    float *v = malloc(n * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = scale * frand(&seed);
    tm_init_f32(t, name, rank, d, v, false);
    free(v);
}

static void init_random(tm_model *t, const char *name, int rank, const int64_t *d, unsigned seed)
{
    init_random_scaled(t, name, rank, d, seed, 1.0f);
}

/* Runs the model's single input X (shape xd) through both backends, twice
 * (the second time from oneDNN's cache), and compares. */
static void compare_backends(tm_model *t, int xr, const int64_t *xd, bool expect_fast)
{
    if (!cl_infer_onednn_available()) skip();
    cl_buf b;
    tm_pack(t, &b);
    cl_infer_options ref_o = {.backend = CL_INFER_BACKEND_REFERENCE}, dnn_o = {.backend = CL_INFER_BACKEND_ONEDNN};
    cl_infer_model *ref = NULL, *dnn = NULL;
    assert_ok(cl_infer_model_load(b.data, b.len, &ref_o, &ref));
    assert_ok(cl_infer_model_load(b.data, b.len, &dnn_o, &dnn));
    size_t n = count(xr, xd);
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    unsigned seed = 99;
    for (size_t i = 0; i < n; i++) x[i] = frand(&seed);
    cl_infer_tensor in = tm_f32(xr, xd, x);
    for (int round = 0; round < 2; round++) {
        cl_infer_tensor a, o;
        assert_ok(cl_infer_run(ref, &in, 1, &a, 1));
        assert_ok(cl_infer_run(dnn, &in, 1, &o, 1));
        assert_int_equal(a.rank, o.rank);
        for (int i = 0; i < a.rank; i++) assert_int_equal(a.dims[i], o.dims[i]);
        size_t m = cl_infer_tensor_count(&a);
        assert_true(m > 0);
        const float *pa = a.data, *po = o.data;
        for (size_t i = 0; i < m; i++)
            if (!(fabsf(pa[i] - po[i]) <= 1e-4f * fabsf(pa[i]) + 1e-5f))
                fail_msg("element %zu: reference %.9g, oneDNN %.9g", i, (double)pa[i], (double)po[i]);
        cl_infer_tensor_free(&a);
        cl_infer_tensor_free(&o);
    }
    assert_int_equal(ref->fast_runs, 0);
    if (expect_fast)
        assert_int_equal(dnn->fast_runs, 2);
    else
        assert_int_equal(dnn->fast_runs, 0);
    free(x);
    cl_infer_model_free(ref);
    cl_infer_model_free(dnn);
    cl_buf_free(&b);
}

typedef struct conv_case {
    const char *op;
    int nsp;
    int64_t n, c, m, group;
    int64_t in[3], k[3], strides[3], dil[3], pads[6], opad[3];
    bool bias, opad_given, expect_fast;
} conv_case;

static void run_conv_case(const conv_case *cc)
{
    bool tr = strcmp(cc->op, "ConvTranspose") == 0;
    int r = cc->nsp + 2;
    int64_t xd[5] = {cc->n, cc->c}, wd[5], bd[1] = {cc->m};
    for (int i = 0; i < cc->nsp; i++) {
        xd[2 + i] = cc->in[i];
        wd[2 + i] = cc->k[i];
    }
    wd[0] = tr ? cc->c : cc->m;
    wd[1] = tr ? cc->m / cc->group : cc->c / cc->group;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, r, xd);
    init_random(t, "W", r, wd, 7);
    if (cc->bias) init_random(t, "B", 1, bd, 11);
    Onnx__NodeProto *n = tm_node(t, cc->op, "conv", cc->bias ? "X,W,B" : "X,W", "Y");
    tm_attr_ints(t, n, "strides", (size_t)cc->nsp, cc->strides);
    tm_attr_ints(t, n, "dilations", (size_t)cc->nsp, cc->dil);
    tm_attr_ints(t, n, "pads", 2 * (size_t)cc->nsp, cc->pads);
    tm_attr_int(t, n, "group", cc->group);
    if (cc->opad_given) tm_attr_ints(t, n, "output_padding", (size_t)cc->nsp, cc->opad);
    tm_output(t, "Y");
    compare_backends(t, r, xd, cc->expect_fast);
    tm_free(t);
}

static void test_conv(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        /* U-Net's 3x3 pad 1 */
        {"Conv", 2, 2, 4, 6, 1, {9, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, {0}, true, false, true},
        /* strided, dilated, grouped, asymmetric pads, no bias */
        {"Conv", 2, 1, 4, 6, 2, {11, 10}, {3, 2}, {2, 1}, {2, 1}, {0, 1, 1, 0}, {0}, false, false, true},
        /* depthwise */
        {"Conv", 2, 1, 8, 8, 8, {6, 6}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, {0}, true, false, true},
        /* 1x1 (U-Net's head) */
        {"Conv", 2, 1, 5, 1, 1, {8, 8}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0}, true, false, true},
        /* 1-D and 3-D */
        {"Conv", 1, 1, 3, 5, 1, {11}, {3}, {2}, {1}, {1, 0}, {0}, true, false, true},
        {"Conv", 3, 1, 2, 3, 1, {5, 6, 4}, {2, 3, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1, 0, 1, 0}, {0}, true, false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) run_conv_case(&cases[i]);
}

static void test_convtranspose(void **state)
{
    (void)state;
    static const conv_case cases[] = {
        /* U-Net's 2x2 stride 2 upsampling */
        {"ConvTranspose", 2, 1, 8, 4, 1, {5, 6}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}, {0}, true, false, true},
        /* padded, grouped, dilated */
        {"ConvTranspose", 2, 2, 4, 6, 2, {4, 5}, {3, 3}, {2, 1}, {1, 2}, {1, 0, 1, 1}, {0}, true, false, true},
        {"ConvTranspose", 1, 1, 3, 2, 1, {7}, {3}, {1}, {1}, {0, 0}, {0}, false, false, true},
        {"ConvTranspose",
         3,
         1,
         2,
         3,
         1,
         {3, 4, 3},
         {2, 2, 2},
         {2, 2, 2},
         {1, 1, 1},
         {0, 0, 0, 0, 0, 0},
         {0},
         true,
         false,
         true},
        /* output_padding beyond the end padding: oneDNN cannot express it, the reference runs */
        {"ConvTranspose", 2, 1, 3, 2, 1, {4, 4}, {3, 3}, {2, 2}, {1, 1}, {0, 0, 0, 0}, {1, 1}, true, true, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) run_conv_case(&cases[i]);
}

static void gemm_case(int64_t M, int64_t K, int64_t N, int ta, int tb, int bias_rank, float alpha, bool fast)
{
    tm_model *t = tm_new(13);
    int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N};
    int64_t cd[2] = {bias_rank == 2 ? M : N, N};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, ad);
    init_random(t, "B", 2, bd, 3);
    if (bias_rank == 1) init_random(t, "C", 1, &cd[1], 5);
    if (bias_rank == 2) init_random(t, "C", 2, cd, 5);
    Onnx__NodeProto *n = tm_node(t, "Gemm", "fc", bias_rank ? "X,B,C" : "X,B", "Y");
    tm_attr_int(t, n, "transA", ta);
    tm_attr_int(t, n, "transB", tb);
    tm_attr_float(t, n, "alpha", alpha);
    tm_output(t, "Y");
    compare_backends(t, 2, ad, fast);
    tm_free(t);
}

static void test_gemm(void **state)
{
    (void)state;
    gemm_case(4, 30, 64, 0, 1, 1, 1.0f, true); /* PyTorch's Linear: B transposed, bias [N] */
    gemm_case(5, 7, 3, 0, 0, 2, 1.0f, true);
    gemm_case(5, 7, 3, 1, 0, 0, 1.0f, true);
    gemm_case(5, 7, 3, 1, 1, 1, 1.0f, true);
    gemm_case(5, 7, 3, 0, 0, 1, 0.5f, false); /* alpha != 1: the reference runs */
}

static void matmul_case(int r, const int64_t *ad, const int64_t *bd, bool fast)
{
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, r, ad);
    init_random(t, "W", r, bd, 13);
    tm_node(t, "MatMul", "mm", "X,W", "Y");
    tm_output(t, "Y");
    compare_backends(t, r, ad, fast);
    tm_free(t);
}

static void test_matmul(void **state)
{
    (void)state;
    const int64_t a2[2] = {6, 5}, b2[2] = {5, 4};
    const int64_t a3[3] = {3, 6, 5}, b3[3] = {3, 5, 4};
    const int64_t a4[4] = {2, 3, 4, 5}, b4[4] = {2, 3, 5, 2};
    const int64_t b3x[3] = {1, 5, 4}; /* broadcast batch: the reference runs */
    matmul_case(2, a2, b2, true);
    matmul_case(3, a3, b3, true);
    matmul_case(4, a4, b4, true);
    matmul_case(3, a3, b3x, false);
}

static size_t skipped(const cl_infer_model *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_nodes; i++) n += m->nodes[i].skip;
    return n;
}

/* Conv -> BatchNormalization -> Relu: folded and fused on the oneDNN path only,
 * same results; a weight shared by two convs is not folded. */
static void test_fold_and_fuse(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    for (int shared = 0; shared < 2; shared++) {
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            tm_model *t = tm_new(13);
            const int64_t xd[4] = {1, 3, 8, 8}, wd[4] = {4, 3, 3, 3}, cd[1] = {4};
            const int64_t pads[4] = {1, 1, 1, 1};
            tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
            init_random(t, "W", 4, wd, 21);
            init_random(t, "CB", 1, cd, 22);
            init_random(t, "S", 1, cd, 23);
            init_random(t, "B", 1, cd, 24);
            init_random(t, "Mu", 1, cd, 25);
            /* variances must be positive */
            const float var[4] = {0.5f, 1.0f, 1.5f, 2.0f};
            tm_init_f32(t, "V", 1, cd, var, false);
            Onnx__NodeProto *n = tm_node(t, "Conv", "c1", with_bias ? "X,W,CB" : "X,W", "C1");
            tm_attr_ints(t, n, "pads", 4, pads);
            tm_node(t, "BatchNormalization", "bn", "C1,S,B,Mu,V", "N1");
            tm_node(t, "Relu", "r", "N1", "Y");
            tm_output(t, "Y");
            if (shared) {
                n = tm_node(t, "Conv", "c2", "X,W", "Y2");
                tm_attr_ints(t, n, "pads", 4, pads);
                tm_output(t, "Y2");
            }
            if (!shared) compare_backends(t, 4, xd, true);
            cl_buf b;
            tm_pack(t, &b);
            cl_infer_options o = {.backend = CL_INFER_BACKEND_ONEDNN}, r = {.backend = CL_INFER_BACKEND_REFERENCE};
            cl_infer_model *dm = NULL, *rm = NULL;
            assert_ok(cl_infer_model_load(b.data, b.len, &o, &dm));
            assert_ok(cl_infer_model_load(b.data, b.len, &r, &rm));
            /* BN folded and Relu fused, unless the weight is shared: then BN stays and the Relu follows it. */
            assert_int_equal(skipped(dm), shared ? 0 : 2);
            assert_int_equal(skipped(rm), 0);
            if (shared) {
                float x[192];
                unsigned seed = 5;
                for (int i = 0; i < 192; i++) x[i] = frand(&seed);
                cl_infer_tensor in = tm_f32(4, xd, x), a[2], d[2];
                assert_ok(cl_infer_run(rm, &in, 1, a, 2));
                assert_ok(cl_infer_run(dm, &in, 1, d, 2));
                for (int k = 0; k < 2; k++) {
                    const float *pa = a[k].data, *pd = d[k].data;
                    for (size_t i = 0; i < cl_infer_tensor_count(&a[k]); i++)
                        assert_true(fabsf(pa[i] - pd[i]) <= 1e-4f * fabsf(pa[i]) + 1e-5f);
                    cl_infer_tensor_free(&a[k]);
                    cl_infer_tensor_free(&d[k]);
                }
            }
            cl_infer_model_free(dm);
            cl_infer_model_free(rm);
            cl_buf_free(&b);
            tm_free(t);
        }
    }
}

/* A new input shape invalidates the cached primitive. */
static void test_shape_change(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    tm_model *t = tm_new(13);
    const int64_t xd[4] = {-1, 2, -1, -1}, wd[4] = {3, 2, 3, 3};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
    init_random(t, "W", 4, wd, 1);
    tm_node(t, "Conv", "c", "X,W", "Y");
    tm_output(t, "Y");
    const int64_t s1[4] = {1, 2, 5, 5}, s2[4] = {2, 2, 7, 4};
    compare_backends(t, 4, s1, true);
    compare_backends(t, 4, s2, true);
    cl_infer_model *m = tm_load(t);
    float x1[50] = {0}, x2[112] = {0};
    cl_infer_tensor in1 = tm_f32(4, s1, x1), in2 = tm_f32(4, s2, x2), o;
    assert_ok(cl_infer_run(m, &in1, 1, &o, 1));
    assert_int_equal(o.dims[2], 3);
    cl_infer_tensor_free(&o);
    assert_ok(cl_infer_run(m, &in2, 1, &o, 1));
    assert_int_equal(o.dims[0], 2);
    assert_int_equal(o.dims[2], 5);
    assert_int_equal(o.dims[3], 2);
    cl_infer_tensor_free(&o);
    cl_infer_model_free(m);
    tm_free(t);
}

/* Runs X (shape xd) through both backends twice and compares all n_out
 * outputs; returns the oneDNN model's fast_runs over the two rounds. */
static size_t compare_outputs(tm_model *t, int xr, const int64_t *xd, size_t n_out, bool blocked)
{
    cl_buf b;
    tm_pack(t, &b);
    cl_infer_options ref_o = {.backend = CL_INFER_BACKEND_REFERENCE}, dnn_o = {.backend = CL_INFER_BACKEND_ONEDNN};
    cl_infer_model *ref = NULL, *dnn = NULL;
    assert_ok(cl_infer_model_load(b.data, b.len, &ref_o, &ref));
    assert_ok(cl_infer_model_load(b.data, b.len, &dnn_o, &dnn));
    dnn->dnn_blocked = blocked;
    size_t n = count(xr, xd);
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    unsigned seed = 41;
    for (size_t i = 0; i < n; i++) x[i] = frand(&seed);
    cl_infer_tensor in = tm_f32(xr, xd, x), a[24], o[24];
    assert_true(n_out <= 24);
    for (int round = 0; round < 2; round++) {
        assert_ok(cl_infer_run(ref, &in, 1, a, n_out));
        assert_ok(cl_infer_run(dnn, &in, 1, o, n_out));
        for (size_t k = 0; k < n_out; k++) {
            assert_int_equal(a[k].rank, o[k].rank);
            for (int i = 0; i < a[k].rank; i++) assert_int_equal(a[k].dims[i], o[k].dims[i]);
            /* a graph output is handed over plain, without layout padding */
            assert_int_equal(a[k].nbytes, o[k].nbytes);
            const float *pa = a[k].data, *po = o[k].data;
            for (size_t i = 0; i < cl_infer_tensor_count(&a[k]); i++)
                if (!(fabsf(pa[i] - po[i]) <= 1e-4f * fabsf(pa[i]) + 1e-5f))
                    fail_msg("output %zu element %zu: reference %.9g, oneDNN %.9g (blocked %d)", k, i, (double)pa[i],
                             (double)po[i], (int)blocked);
            cl_infer_tensor_free(&a[k]);
            cl_infer_tensor_free(&o[k]);
        }
    }
    size_t fast = dnn->fast_runs;
    assert_int_equal(ref->fast_runs, 0);
    free(x);
    cl_infer_model_free(ref);
    cl_infer_model_free(dnn);
    cl_buf_free(&b);
    return fast;
}

static void conv_node(tm_model *t, const char *name, const char *ins, const char *out, int nsp)
{
    static const int64_t pads[6] = {1, 1, 1, 1, 1, 1};
    Onnx__NodeProto *n = tm_node(t, "Conv", name, ins, out);
    tm_attr_ints(t, n, "pads", 2 * (size_t)nsp, pads);
}

/* A tensor oneDNN leaves in its own layout, read by a oneDNN conv, by
 * reference-only ops (Erf, a MaxPool with Indices) and by Gemm-less
 * shape ops, and itself a graph output: every plain reader gets plain data. */
static void test_layout_to_reference(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    for (int nsp = 1; nsp <= 3; nsp++) {
        tm_model *t = tm_new(13);
        int r = nsp + 2;
        int64_t xd[5] = {1, 3, 6, 7, 5}, wd[5] = {5, 3, 3, 3, 3}, w2d[5] = {4, 5, 3, 3, 3}, k2[3] = {2, 2, 2};
        tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, r, xd);
        init_random(t, "W", r, wd, 31);
        init_random(t, "W2", r, w2d, 32);
        conv_node(t, "c1", "X,W", "A", nsp);
        conv_node(t, "c2", "A,W2", "B", nsp);
        tm_node(t, "Erf", "erf", "A", "S");
        Onnx__NodeProto *mp = tm_node(t, "MaxPool", "mpi", "A", "P,I");
        tm_attr_ints(t, mp, "kernel_shape", (size_t)nsp, k2);
        tm_node(t, "Flatten", "fl", "B", "F");
        tm_output(t, "A");
        tm_output(t, "B");
        tm_output(t, "S");
        tm_output(t, "P");
        tm_output(t, "F");
        /* c1 and c2 on oneDNN each round; MaxPool with Indices is reference-only */
        for (int blocked = 0; blocked < 2; blocked++) assert_int_equal(compare_outputs(t, r, xd, 5, blocked), 4);
        tm_free(t);
    }
}

/* Concat of tensors in oneDNN layouts (and a plain graph input) whose channel
 * counts are not multiples of any block, along channels and along a spatial
 * axis; then a conv and a MaxPool (ceil_mode, pads, strides) on the result.
 * Channels-last (oneDNN's choice here) and 16-channel blocks with padding. */
static void test_layout_concat_pool(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    for (int nsp = 1; nsp <= 3; nsp++) {
        for (int axis = 1; axis <= 2; axis++) {
            tm_model *t = tm_new(13);
            int r = nsp + 2;
            int64_t xd[5] = {1, 3, 7, 6, 5}, wa[5] = {5, 3, 3, 3, 3}, wb[5] = {3, 3, 3, 3, 3};
            int64_t wc[5] = {6, axis == 1 ? 11 : 5, 3, 3, 3}, wt[5] = {5, 5, 2, 2, 2};
            int64_t ks[3] = {3, 2, 3}, st[3] = {2, 2, 1}, pads[6] = {1, 0, 1, 1, 1, 0};
            tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, r, xd);
            init_random(t, "WA", r, wa, 51);
            init_random(t, "WB", r, wb, 52);
            init_random(t, "WC", r, wc, 53);
            init_random(t, "WT", r, wt, 54);
            conv_node(t, "ca", "X,WA", "A", nsp);
            conv_node(t, "cb", "X,WB", "B", nsp);
            Onnx__NodeProto *n;
            if (axis == 1) {
                n = tm_node(t, "Concat", "cat", "A,B,X", "C"); /* 5 + 3 + 3 channels */
            } else {
                /* a ConvTranspose with stride 1 and pads keeps the size: a second layout source */
                n = tm_node(t, "ConvTranspose", "ct", "A,WT", "T");
                int64_t tp[6] = {0, 0, 0, 1, 1, 1};
                tm_attr_ints(t, n, "pads", 2 * (size_t)nsp, tp);
                n = tm_node(t, "Concat", "cat", "A,T", "C");
            }
            tm_attr_int(t, n, "axis", axis);
            conv_node(t, "cc", "C,WC", "D", nsp);
            n = tm_node(t, "MaxPool", "mp", "D", "P");
            tm_attr_ints(t, n, "kernel_shape", (size_t)nsp, ks);
            tm_attr_ints(t, n, "strides", (size_t)nsp, st);
            tm_attr_ints(t, n, "pads", 2 * (size_t)nsp, pads);
            tm_attr_int(t, n, "ceil_mode", 1);
            tm_output(t, "C");
            tm_output(t, "P");
            /* every node on oneDNN: 5 per round (6 with the ConvTranspose) */
            for (int blocked = 0; blocked < 2; blocked++)
                assert_int_equal(compare_outputs(t, r, xd, 2, blocked), axis == 1 ? 10 : 12);
            tm_free(t);
        }
    }
}

/* MaxPool straight on a plain graph input, and Concat of plain inputs (left to
 * the reference kernel: nothing to gain). */
static void test_layout_plain_inputs(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    tm_model *t = tm_new(13);
    const int64_t xd[4] = {2, 3, 9, 8}, ks[2] = {3, 3}, st[2] = {2, 2};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
    Onnx__NodeProto *n = tm_node(t, "MaxPool", "mp", "X", "P");
    tm_attr_ints(t, n, "kernel_shape", 2, ks);
    tm_attr_ints(t, n, "strides", 2, st);
    n = tm_node(t, "Concat", "cat", "X,X", "C");
    tm_attr_int(t, n, "axis", 1);
    tm_output(t, "P");
    tm_output(t, "C");
    assert_int_equal(compare_outputs(t, 4, xd, 2, false), 2);
    tm_free(t);
}

/* Conv + Add (+ Relu) as a oneDNN sum post-op: the residual operand a graph
 * input (copied into the output), the conv's own source (copied: it cannot be
 * overwritten), another conv's output at its last use (taken over); a
 * broadcasting Add (fused, but run by the reference kernels); an Add whose
 * conv output is also a graph output (not fused). */
static void test_conv_add(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    tm_model *t = tm_new(13);
    const int64_t xd[4] = {1, 4, 7, 6}, wd[4] = {4, 4, 3, 3}, bd[4] = {1, 4, 1, 1};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
    init_random_scaled(t, "W1", 4, wd, 61, 0.2f); /* keeps values near 1 through six convs */
    init_random_scaled(t, "W2", 4, wd, 62, 0.2f);
    init_random_scaled(t, "W3", 4, wd, 63, 0.2f);
    init_random_scaled(t, "W4", 4, wd, 64, 0.2f);
    init_random_scaled(t, "W5", 4, wd, 65, 0.2f);
    init_random(t, "Bc", 4, bd, 66);
    conv_node(t, "c1", "X,W1", "A", 2);
    tm_node(t, "Add", "add1", "A,X", "A1"); /* residual from the graph input */
    tm_node(t, "Relu", "r1", "A1", "R1");
    conv_node(t, "c2", "R1,W2", "B", 2);
    tm_node(t, "Add", "add2", "R1,B", "B1"); /* residual is c2's own source */
    conv_node(t, "c3", "B1,W3", "C", 2);
    conv_node(t, "c4", "B1,W4", "D", 2);
    tm_node(t, "Add", "add3", "C,D", "E"); /* c4 fused, C taken over */
    tm_node(t, "Relu", "r3", "E", "F");
    conv_node(t, "c5", "F,W5", "G", 2);
    tm_node(t, "Add", "add4", "G,Bc", "H"); /* broadcast: reference */
    conv_node(t, "c6", "H,W5", "K", 2);
    tm_node(t, "Add", "add5", "K,H", "L"); /* K is a graph output: not fused */
    tm_output(t, "K");
    tm_output(t, "L");
    cl_infer_model *m = tm_load(t);
    /* add1, r1, add2, add3, r3, add4 folded into convolutions */
    assert_int_equal(skipped(m), 6);
    cl_infer_model_free(m);
    /* c1-c4 and c6 on oneDNN, c5 (with the broadcasting Add) on the reference, each round */
    for (int blocked = 0; blocked < 2; blocked++) assert_int_equal(compare_outputs(t, 4, xd, 2, blocked), 10);
    tm_free(t);
}

/* ConvTranspose with kernel == stride on a conv's channels-last output (the
 * U-Net's up-convolution, run as matmuls writing the output in place), with
 * and without bias, batch 2, 2x2 and 3x3; and on 16-channel blocks (reordered
 * to channels-last first). test_convtranspose covers the deconvolution path. */
static void test_upconv(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    for (int kk = 2; kk <= 3; kk++) {
        for (int bias = 0; bias < 2; bias++) {
            tm_model *t = tm_new(13);
            const int64_t xd[4] = {2, 3, 5, 7}, wd[4] = {6, 3, 3, 3}, td[4] = {6, 5, kk, kk}, bd[1] = {5};
            const int64_t st[2] = {kk, kk};
            tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
            init_random(t, "W", 4, wd, 71);
            init_random(t, "WT", 4, td, 72);
            init_random(t, "BT", 1, bd, 73);
            conv_node(t, "c", "X,W", "A", 2);
            Onnx__NodeProto *n = tm_node(t, "ConvTranspose", "up", bias ? "A,WT,BT" : "A,WT", "Y");
            tm_attr_ints(t, n, "strides", 2, st);
            tm_output(t, "Y");
            for (int blocked = 0; blocked < 2; blocked++) assert_int_equal(compare_outputs(t, 4, xd, 1, blocked), 4);
            tm_free(t);
        }
    }
}

/* The U-Net's decoder step: a 2x2 stride-2 ConvTranspose read only by a
 * Concat with a conv's (channels-last) output writes the Concat's output
 * itself, in either input order; with a plain graph input as the other
 * operand it does not (the Concat runs). */
static void test_upconv_concat(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    for (int order = 0; order < 3; order++) {
        tm_model *t = tm_new(13);
        const int64_t xd[4] = {1, 3, 8, 6}, wd[4] = {6, 3, 3, 3}, w2d[4] = {5, 6, 3, 3}, td[4] = {5, 4, 2, 2};
        const int64_t wcd[4] = {3, order == 2 ? 7 : 10, 3, 3}, bd[1] = {4}, st[2] = {2, 2}, k2[2] = {2, 2};
        tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
        init_random(t, "W", 4, wd, 81);
        init_random(t, "W2", 4, w2d, 82);
        init_random(t, "WT", 4, td, 83);
        init_random(t, "BT", 1, bd, 84);
        init_random(t, "WC", 4, wcd, 85);
        conv_node(t, "c1", "X,W", "S", 2); /* the skip connection, 6 channels */
        Onnx__NodeProto *n = tm_node(t, "MaxPool", "pool", "S", "P");
        tm_attr_ints(t, n, "kernel_shape", 2, k2);
        tm_attr_ints(t, n, "strides", 2, k2);
        conv_node(t, "c2", "P,W2", "Q", 2);
        n = tm_node(t, "ConvTranspose", "up", "Q,WT,BT", "U");
        tm_attr_ints(t, n, "strides", 2, st);
        n = tm_node(t, "Concat", "cat", order == 0 ? "U,S" : order == 1 ? "S,U" : "U,X", "C");
        tm_attr_int(t, n, "axis", 1);
        conv_node(t, "c3", "C,WC", "Y", 2);
        tm_output(t, "Y");
        tm_output(t, "P");
        /* every node on oneDNN, each round */
        for (int blocked = 0; blocked < 2; blocked++) assert_int_equal(compare_outputs(t, 4, xd, 2, blocked), 12);
        /* The Concat made no primitive of its own when the ConvTranspose wrote its output. */
        cl_infer_model *m = tm_load(t);
        float x[144];
        unsigned seed = 3;
        for (int i = 0; i < 144; i++) x[i] = frand(&seed);
        cl_infer_tensor in = tm_f32(4, xd, x), o[2];
        assert_ok(cl_infer_run(m, &in, 1, o, 2));
        size_t cat = 0;
        while (strcmp(m->nodes[cat].name, "cat") != 0) cat++;
        assert_int_equal(m->fast[cat] == NULL, order != 2);
        cl_infer_tensor_free(&o[0]);
        cl_infer_tensor_free(&o[1]);
        cl_infer_model_free(m);
        tm_free(t);
    }
}

/* 3x3 stride-1 convolutions with 32+ input channels on a 32x32+ output run
 * as Winograd (16-channel blocks): alone, with a fused Relu, with a fused
 * residual Add, read by an up-convolution and joined by a Concat with the
 * up-convolution's channels-last output; the results match the reference
 * kernels (compare_outputs' 1e-4), and direct_conv turns Winograd off. */
static void test_winograd(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    tm_model *t = tm_new(13);
    const int64_t xd[4] = {1, 32, 34, 40}, wd[4] = {32, 32, 3, 3}, bd[1] = {32}, td[4] = {32, 16, 2, 2};
    const int64_t wcd[4] = {32, 48, 3, 3}, k2[2] = {2, 2};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
    init_random_scaled(t, "W1", 4, wd, 91, 0.1f);
    init_random_scaled(t, "W2", 4, wd, 92, 0.1f);
    init_random_scaled(t, "W3", 4, wd, 93, 0.1f);
    init_random(t, "B1", 1, bd, 94);
    init_random_scaled(t, "WT", 4, td, 95, 0.2f);
    init_random_scaled(t, "WC", 4, wcd, 96, 0.1f);
    conv_node(t, "c1", "X,W1,B1", "A", 2);
    tm_node(t, "Relu", "r1", "A", "R");
    conv_node(t, "c2", "R,W2", "S", 2);
    tm_node(t, "Add", "add", "S,R", "T"); /* residual: a sum post-op */
    conv_node(t, "c3", "T,W3", "U", 2);   /* the skip connection, 16-channel blocks */
    Onnx__NodeProto *n = tm_node(t, "MaxPool", "pool", "U", "P");
    tm_attr_ints(t, n, "kernel_shape", 2, k2);
    tm_attr_ints(t, n, "strides", 2, k2);
    n = tm_node(t, "ConvTranspose", "up", "P,WT", "V");
    tm_attr_ints(t, n, "strides", 2, k2);
    n = tm_node(t, "Concat", "cat", "V,U", "C");
    tm_attr_int(t, n, "axis", 1);
    conv_node(t, "c4", "C,WC", "Y", 2);
    tm_output(t, "Y");
    /* c1-c4, the pool, the up-convolution and the Concat (written by it), each round */
    assert_int_equal(compare_outputs(t, 4, xd, 1, false), 14);
    cl_buf b;
    tm_pack(t, &b);
    size_t n_x = count(4, xd);
    float *x = calloc(n_x, sizeof(float));
    assert_non_null(x);
    for (int direct = 0; direct < 2; direct++) {
        cl_infer_options o = {.backend = CL_INFER_BACKEND_ONEDNN, .direct_conv = direct != 0};
        cl_infer_model *m = NULL;
        assert_ok(cl_infer_model_load(b.data, b.len, &o, &m));
        cl_infer_tensor in = tm_f32(4, xd, x), y;
        assert_ok(cl_infer_run(m, &in, 1, &y, 1));
        /* c1 to c4 (c4 reads 48 channels): all Winograd, or none */
        assert_int_equal(m->wino_convs, direct ? 0 : 4);
        cl_infer_tensor_free(&y);
        cl_infer_model_free(m);
    }
    free(x);
    cl_buf_free(&b);
    tm_free(t);
}

/* A ConvTranspose that is not an up-convolution (3x3 kernel, stride 2) runs oneDNN's
 * deconvolution, and keeps it: asking first whether the up-convolution applies must not
 * throw the cached deconvolution (and its reordered weights) away on every run. */
static void test_deconvolution_kept(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    tm_model *t = tm_new(13);
    const int64_t xd[4] = {1, 16, 12, 12}, wd[4] = {16, 8, 3, 3}, s2[2] = {2, 2};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
    init_random_scaled(t, "W", 4, wd, 97, 0.2f);
    Onnx__NodeProto *n = tm_node(t, "ConvTranspose", "deconv", "X,W", "Y");
    tm_attr_ints(t, n, "strides", 2, s2);
    tm_output(t, "Y");
    assert_int_equal(compare_outputs(t, 4, xd, 1, false), 2);
    cl_buf b;
    tm_pack(t, &b);
    cl_infer_options o = {.backend = CL_INFER_BACKEND_ONEDNN};
    cl_infer_model *m = NULL;
    assert_ok(cl_infer_model_load(b.data, b.len, &o, &m)); /* the planning run makes the primitive */
    size_t made = m->dnn_caches_made;
    assert_true(made >= 1);
    float *x = calloc(count(4, xd), sizeof(float));
    assert_non_null(x);
    cl_infer_tensor in = tm_f32(4, xd, x), y;
    for (int i = 0; i < 3; i++) {
        assert_ok(cl_infer_run(m, &in, 1, &y, 1));
        cl_infer_tensor_free(&y);
    }
    assert_int_equal(m->dnn_caches_made, made);
    assert_int_equal(m->fast_runs, 3); /* on oneDNN each time */
    free(x);
    cl_infer_model_free(m);
    cl_buf_free(&b);
    tm_free(t);
}

/* The single-source primitives on a conv's output in oneDNN's layout (and,
 * with forced 16-channel blocks, a padded one) and on plain inputs: every
 * eltwise op oneDNN runs, Clip with attribute-free bounds from inputs,
 * AveragePool excluding and including padding (and a ceil_mode window past
 * the end padding, which oneDNN would count: the reference runs it),
 * GlobalAveragePool, Softmax / LogSoftmax along the last axis (opset 13; along
 * the channels of a channels-last tensor oneDNN has only a reference kernel,
 * so ours runs), a standalone BatchNormalization; all against the reference
 * kernels. */
static void test_single_source_ops(void **state)
{
    (void)state;
    if (!cl_infer_onednn_available()) skip();
    tm_model *t = tm_new(13);
    const int64_t xd[4] = {2, 5, 9, 8}, wd[4] = {6, 5, 3, 3}, cd[1] = {6}, sd[1] = {1};
    const int64_t k3[2] = {3, 3}, pads[4] = {1, 1, 1, 1}, s2[2] = {2, 2};
    const float lo[1] = {-0.5f}, hi[1] = {0.75f};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
    init_random_scaled(t, "W", 4, wd, 101, 0.3f);
    init_random(t, "SC", 1, cd, 102);
    init_random(t, "BI", 1, cd, 103);
    init_random(t, "ME", 1, cd, 104);
    float var[6];
    for (int i = 0; i < 6; i++) var[i] = 0.5f + 0.25f * (float)i;
    tm_init_f32(t, "VA", 1, cd, var, false);
    tm_init_f32(t, "LO", 0, sd, lo, false);
    tm_init_f32(t, "HI", 0, sd, hi, false);
    conv_node(t, "c", "X,W", "A", 2);
    static const char *const unary[] = {"Sigmoid", "Tanh", "Abs", "Neg", "Exp", "Relu"};
    char name[32], outn[32];
    for (size_t i = 0; i < sizeof(unary) / sizeof(unary[0]); i++) {
        snprintf(name, sizeof(name), "u%zu", i);
        snprintf(outn, sizeof(outn), "U%zu", i);
        tm_node(t, unary[i], name, "A", outn);
        tm_output(t, outn);
    }
    tm_node(t, "Abs", "ab", "A", "AB");
    tm_node(t, "Sqrt", "sq", "AB", "SQ");
    tm_node(t, "Log", "lg", "SQ", "LG");
    tm_output(t, "LG");
    Onnx__NodeProto *n = tm_node(t, "LeakyRelu", "lr", "A", "LR");
    tm_attr_float(t, n, "alpha", 0.2f);
    tm_output(t, "LR");
    tm_node(t, "Clip", "cl", "A,LO,HI", "CL");
    tm_output(t, "CL");
    tm_node(t, "Clip", "clx", "X,,HI", "CLX"); /* plain input, only a max */
    tm_output(t, "CLX");
    n = tm_node(t, "AveragePool", "ap0", "A", "AP0");
    tm_attr_ints(t, n, "kernel_shape", 2, k3);
    tm_attr_ints(t, n, "pads", 4, pads);
    tm_attr_ints(t, n, "strides", 2, s2);
    tm_output(t, "AP0");
    n = tm_node(t, "AveragePool", "ap1", "A", "AP1");
    tm_attr_ints(t, n, "kernel_shape", 2, k3);
    tm_attr_ints(t, n, "pads", 4, pads);
    tm_attr_ints(t, n, "strides", 2, s2);
    tm_attr_int(t, n, "count_include_pad", 1);
    tm_output(t, "AP1");
    n = tm_node(t, "AveragePool", "ap2", "A", "AP2"); /* ceil_mode past the end pad: reference */
    tm_attr_ints(t, n, "kernel_shape", 2, k3);
    tm_attr_ints(t, n, "strides", 2, s2);
    tm_attr_int(t, n, "count_include_pad", 1);
    tm_attr_int(t, n, "ceil_mode", 1);
    tm_output(t, "AP2");
    tm_node(t, "GlobalAveragePool", "gap", "A", "GAP");
    tm_output(t, "GAP");
    n = tm_node(t, "Softmax", "sm", "A", "SM"); /* channels of channels-last: oneDNN has only ref: ours runs */
    tm_attr_int(t, n, "axis", 1);
    tm_output(t, "SM");
    n = tm_node(t, "Softmax", "smx", "X", "SMX"); /* plain, last axis */
    tm_attr_int(t, n, "axis", -1);
    tm_output(t, "SMX");
    tm_node(t, "LogSoftmax", "lsm", "X", "LSM"); /* plain, last axis */
    tm_output(t, "LSM");
    tm_node(t, "BatchNormalization", "bn", "A,SC,BI,ME,VA", "BN");
    tm_output(t, "BN");
    /* oneDNN: c, 6 unary, abs, sqrt, log, LeakyRelu, 2 Clip, ap0, ap1, GAP, smx, lsm, BN = 19 a round */
    for (int blocked = 0; blocked < 2; blocked++) assert_int_equal(compare_outputs(t, 4, xd, 18, blocked), 38);
    tm_free(t);
}

/* Which kernels a backend runs, in either build. With oneDNN: the oneDNN
 * backend runs the Conv and the reference backend does not. Without
 * (CLOISTER_ONEDNN=OFF, dnn_none.c): asking for the oneDNN backend fails at
 * load, saying so, and the default backend runs every node on the reference
 * kernels, with the reference backend's output exactly. */
static void test_backend_choice(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    const int64_t xd[4] = {1, 2, 5, 5}, wd[4] = {3, 2, 3, 3};
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 4, xd);
    init_random(t, "W", 4, wd, 7);
    tm_node(t, "Conv", "c", "X,W", "Y");
    tm_output(t, "Y");
    cl_buf b;
    tm_pack(t, &b);
    float x[50];
    unsigned seed = 5;
    for (size_t i = 0; i < 50; i++) x[i] = frand(&seed);
    cl_infer_tensor in = tm_f32(4, xd, x), ro, o;
    cl_infer_options ref_o = {.backend = CL_INFER_BACKEND_REFERENCE}, dnn_o = {.backend = CL_INFER_BACKEND_ONEDNN};
    cl_infer_model *ref = NULL, *m = NULL;
    assert_ok(cl_infer_model_load(b.data, b.len, &ref_o, &ref));
    assert_ok(cl_infer_run(ref, &in, 1, &ro, 1));
    assert_int_equal(ref->fast_runs, 0);
    if (cl_infer_onednn_available()) {
        assert_ok(cl_infer_model_load(b.data, b.len, &dnn_o, &m));
        assert_ok(cl_infer_run(m, &in, 1, &o, 1));
        assert_int_equal(m->fast_runs, 1);
    } else {
        assert_fails(cl_infer_model_load(b.data, b.len, &dnn_o, &m), CL_ERR_UNSUPPORTED,
                     "the oneDNN backend was asked for, but this build has no oneDNN");
        assert_null(m);
        assert_ok(cl_infer_model_load(b.data, b.len, NULL, &m));
        assert_ok(cl_infer_run(m, &in, 1, &o, 1));
        assert_int_equal(m->fast_runs, 0);
        assert_int_equal(o.nbytes, ro.nbytes);
        assert_memory_equal(o.data, ro.data, ro.nbytes);
    }
    cl_infer_tensor_free(&o);
    cl_infer_tensor_free(&ro);
    cl_infer_model_free(m);
    cl_infer_model_free(ref);
    cl_buf_free(&b);
    tm_free(t);
}

int main(void)
{
    if (!cl_infer_onednn_available()) {
        /* A build without oneDNN: the comparisons with it cannot run here. */
        const struct CMUnitTest without[] = {cmocka_unit_test(test_backend_choice)};
        return cmocka_run_group_tests(without, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backend_choice),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_convtranspose),
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_shape_change),
        cmocka_unit_test(test_fold_and_fuse),
        cmocka_unit_test(test_layout_to_reference),
        cmocka_unit_test(test_layout_concat_pool),
        cmocka_unit_test(test_layout_plain_inputs),
        cmocka_unit_test(test_conv_add),
        cmocka_unit_test(test_upconv),
        cmocka_unit_test(test_upconv_concat),
        cmocka_unit_test(test_winograd),
        cmocka_unit_test(test_deconvolution_kept),
        cmocka_unit_test(test_single_source_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
