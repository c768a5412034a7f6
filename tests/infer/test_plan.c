/* SPDX-License-Identifier: Apache-2.0 */
/* The static memory plan: reuse along a chain, lifetimes across a diamond,
 * graph outputs kept out of the arena, the placement invariant, re-planning
 * for new input shapes, the plan made at load. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "infer_internal.h"
#include "infer_test_util.h"
#include "test_util.h"

#define COLS 1024
static const int64_t dN[2] = {-1, COLS};

static int value_index(const cl_infer_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_values; i++)
        if (strcmp(m->values[i].name, name) == 0) return (int)i;
    fail_msg("no value %s", name);
    return -1;
}

static bool ranges_overlap(size_t a_off, size_t a_n, size_t b_off, size_t b_n)
{
    return a_off < b_off + b_n && b_off < a_off + a_n;
}

/* Checks the arena ranges of two planned values do not overlap. */
static void assert_apart(const cl_infer_model *m, const char *a, const char *b)
{
    const infer_value *x = &m->values[value_index(m, a)], *y = &m->values[value_index(m, b)];
    assert_true(x->plan_bytes > 0 && y->plan_bytes > 0);
    assert_false(ranges_overlap(x->plan_off, x->plan_bytes, y->plan_off, y->plan_bytes));
}

static void run_rows(cl_infer_model *m, int64_t rows, float *x, cl_infer_tensor *out, size_t n_out)
{
    const int64_t d[2] = {rows, COLS};
    cl_infer_tensor in = tm_f32(2, d, x);
    assert_ok(cl_infer_run(m, &in, 1, out, n_out));
}

static float *input_rows(int64_t rows)
{
    float *x = calloc((size_t)rows * COLS, sizeof(*x));
    assert_non_null(x);
    for (size_t i = 0; i < (size_t)rows * COLS; i++) x[i] = (float)((int)(i % 13) - 6) * 0.25f;
    return x;
}

/* Y = Neg^6(X): every intermediate overlaps only its neighbours, so two
 * ranges serve all five and the arena is smaller than their sum. */
static void test_chain_reuses(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dN);
    tm_node(t, "Neg", "n1", "X", "A1");
    tm_node(t, "Neg", "n2", "A1", "A2");
    tm_node(t, "Neg", "n3", "A2", "A3");
    tm_node(t, "Neg", "n4", "A3", "A4");
    tm_node(t, "Neg", "n5", "A4", "A5");
    tm_node(t, "Neg", "n6", "A5", "Y");
    tm_output(t, "Y");
    cl_infer_model *m = tm_load(t);
    size_t base = m->mem.used; /* the model's own bookkeeping; no weights */
    float *x = input_rows(16);
    size_t bytes = (size_t)16 * COLS * sizeof(float);
    for (int r = 0; r < 3; r++) {
        cl_infer_tensor out;
        run_rows(m, 16, x, &out, 1);
        assert_memory_equal(out.data, x, bytes);
        cl_infer_tensor_free(&out);
        assert_true(m->plan.ready);
    }
    assert_int_equal(m->plan.n_bufs, 5);
    assert_int_equal(m->plan.intermediates, 5 * bytes);
    assert_int_equal(m->plan.arena_bytes, 2 * bytes);
    assert_apart(m, "A1", "A2");
    assert_apart(m, "A4", "A5");
    /* The peak: what the model held at load, the arena and the output handed over. */
    assert_int_equal(cl_infer_model_peak_bytes(m), base + 3 * bytes);
    free(x);
    cl_infer_model_free(m);
    tm_free(t);
}

/* A is read by B and by the final Add: it lives until the Add, so B and C
 * (alive meanwhile) must not share its range. */
static void test_diamond_lifetime(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dN);
    tm_node(t, "Relu", "a", "X", "A");
    tm_node(t, "Neg", "b", "A", "B");
    tm_node(t, "Neg", "c", "B", "C");
    tm_node(t, "Neg", "d", "C", "D");
    tm_node(t, "Add", "y", "A,D", "Y");
    tm_output(t, "Y");
    cl_infer_model *m = tm_load(t);
    float *x = input_rows(8);
    for (int r = 0; r < 2; r++) {
        cl_infer_tensor out;
        run_rows(m, 8, x, &out, 1);
        /* relu(x) - relu(x) = 0 */
        for (size_t i = 0; i < (size_t)8 * COLS; i++) assert_float_equal(((float *)out.data)[i], 0.0f, 0);
        cl_infer_tensor_free(&out);
    }
    assert_true(m->plan.ready);
    assert_apart(m, "A", "B");
    assert_apart(m, "A", "C");
    assert_apart(m, "A", "D");
    assert_apart(m, "C", "D");
    /* B and D do not overlap in time: they may share. */
    assert_int_equal(m->plan.arena_bytes, 3 * (size_t)8 * COLS * sizeof(float));
    free(x);
    cl_infer_model_free(m);
    tm_free(t);
}

/* An early graph output keeps its own buffer: later intermediates reuse the
 * arena, not it, and the caller gets a tensor of its own. */
static void test_output_not_aliased(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dN);
    tm_node(t, "Relu", "a", "X", "E");
    tm_node(t, "Neg", "b", "E", "B");
    tm_node(t, "Neg", "c", "B", "C");
    tm_node(t, "Exp", "d", "C", "D");
    tm_node(t, "Neg", "y", "D", "Y");
    tm_output(t, "E");
    tm_output(t, "Y");
    cl_infer_model *m = tm_load(t);
    float *x = input_rows(4);
    for (int r = 0; r < 2; r++) {
        cl_infer_tensor out[2];
        run_rows(m, 4, x, out, 2);
        for (size_t i = 0; i < (size_t)4 * COLS; i++) {
            float e = x[i] > 0 ? x[i] : 0;
            assert_float_equal(((float *)out[0].data)[i], e, 0);
            assert_float_equal(((float *)out[1].data)[i], -expf(e), 1e-5);
        }
        assert_false(out[0].borrowed);
        const unsigned char *p = out[0].data, *a = m->plan.arena;
        if (a != NULL) assert_true(p + out[0].nbytes <= a || p >= a + m->plan.arena_bytes);
        cl_infer_tensor_free(&out[0]);
        cl_infer_tensor_free(&out[1]);
    }
    assert_true(m->plan.ready);
    assert_int_equal(m->values[value_index(m, "E")].plan_bytes, 0);
    assert_int_equal(m->values[value_index(m, "Y")].plan_bytes, 0);
    assert_int_equal(m->plan.n_bufs, 3);
    free(x);
    cl_infer_model_free(m);
    tm_free(t);
}

/* Over generated buffer sets: two buffers whose lifetimes overlap never
 * share bytes, offsets are aligned, the arena holds every buffer and is no
 * larger than the sum. */
static void test_place_invariant(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    for (int g = 0; g < 200; g++) {
        size_t n = 1 + (size_t)(g % 60);
        infer_plan_buf *b = calloc(n, sizeof(*b));
        assert_non_null(b);
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            int first = (int)((seed >> 8) % 40);
            seed = seed * 1103515245u + 12345u;
            int len = (int)((seed >> 8) % 8);
            seed = seed * 1103515245u + 12345u;
            b[i] = (infer_plan_buf){.bytes = 1 + (seed >> 8) % 5000, .first = first, .last = first + len};
            sum += (b[i].bytes + INFER_PLAN_ALIGN - 1) / INFER_PLAN_ALIGN * INFER_PLAN_ALIGN;
        }
        size_t arena;
        assert_ok(infer_plan_place(b, n, &arena));
        assert_true(arena <= sum);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(b[i].off % INFER_PLAN_ALIGN, 0);
            assert_true(b[i].off + b[i].bytes <= arena);
            for (size_t j = i + 1; j < n; j++) {
                bool live = b[i].first <= b[j].last && b[j].first <= b[i].last;
                if (live) assert_false(ranges_overlap(b[i].off, b[i].bytes, b[j].off, b[j].bytes));
            }
        }
        free(b);
    }
    size_t arena = 1;
    assert_ok(infer_plan_place(NULL, 0, &arena));
    assert_int_equal(arena, 0);
}

/* A symbolic batch: the plan is made for the first shape, kept while it
 * repeats and redone when it changes. */
static void test_symbolic_replanned(void **state)
{
    (void)state;
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dN);
    tm_node(t, "Neg", "n1", "X", "A1");
    tm_node(t, "Neg", "n2", "A1", "A2");
    tm_node(t, "Relu", "n3", "A2", "A3");
    tm_node(t, "Neg", "n4", "A3", "Y");
    tm_output(t, "Y");
    cl_infer_model *m = tm_load(t);
    const int64_t rows[5] = {2, 2, 8, 8, 2};
    size_t arena[5];
    for (int r = 0; r < 5; r++) {
        float *x = input_rows(rows[r]);
        cl_infer_tensor out;
        run_rows(m, rows[r], x, &out, 1);
        assert_int_equal(out.dims[0], rows[r]);
        for (size_t i = 0; i < (size_t)rows[r] * COLS; i++)
            assert_float_equal(((float *)out.data)[i], x[i] > 0 ? -x[i] : 0.0f, 0);
        cl_infer_tensor_free(&out);
        free(x);
        assert_true(m->plan.ready);
        arena[r] = m->plan.arena_bytes;
        assert_int_equal(arena[r], 2 * (size_t)rows[r] * COLS * sizeof(float));
    }
    assert_int_equal(arena[0], arena[1]);
    assert_true(arena[2] > arena[1]);
    assert_int_equal(arena[4], arena[0]);
    cl_infer_model_free(m);
    tm_free(t);
}

/* Declared, fixed input shapes: the plan is made at load by a run on zeros,
 * so the first real run already uses it (the peak stays what the load left
 * plus the output handed over) and gives the same result as a model that
 * plans on its first run. */
static void test_planned_at_load(void **state)
{
    (void)state;
    const int64_t d[2] = {16, COLS};
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d);
    tm_node(t, "Neg", "n1", "X", "A1");
    tm_node(t, "Neg", "n2", "A1", "A2");
    tm_node(t, "Relu", "n3", "A2", "A3");
    tm_node(t, "Neg", "n4", "A3", "Y");
    tm_output(t, "Y");
    cl_buf b;
    tm_pack(t, &b);
    cl_infer_options lazy_o = {.plan_on_first_run = true};
    cl_infer_model *m = NULL, *lazy = NULL;
    assert_ok(cl_infer_model_load(b.data, b.len, NULL, &m));
    assert_ok(cl_infer_model_load(b.data, b.len, &lazy_o, &lazy));
    size_t bytes = (size_t)16 * COLS * sizeof(float);
    assert_true(m->plan.ready);
    assert_false(lazy->plan.ready);
    assert_int_equal(m->plan.arena_bytes, 2 * bytes);
    size_t held = m->mem.used;
    float *x = input_rows(16);
    cl_infer_tensor out, out_lazy;
    run_rows(m, 16, x, &out, 1);
    run_rows(lazy, 16, x, &out_lazy, 1);
    assert_memory_equal(out.data, out_lazy.data, bytes);
    assert_int_equal(cl_infer_model_peak_bytes(m), held + bytes);
    assert_true(lazy->plan.ready);
    assert_int_equal(lazy->plan.arena_bytes, m->plan.arena_bytes);
    cl_infer_tensor_free(&out);
    cl_infer_tensor_free(&out_lazy);
    free(x);
    cl_infer_model_free(m);
    cl_infer_model_free(lazy);
    cl_buf_free(&b);
    tm_free(t);
}

/* A model that fails on zeros (its Reshape takes the target shape as an
 * input: [0, 0, 0] copies a third dimension its rank-2 input does not have)
 * still loads; its plan is made by the first run that succeeds. */
static void test_plan_at_load_failure(void **state)
{
    (void)state;
    const int64_t d[2] = {2, 3}, ds[1] = {3};
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d);
    tm_input(t, "S", ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, ds);
    tm_node(t, "Neg", "n1", "X", "A");
    tm_node(t, "Reshape", "r", "A,S", "B");
    tm_node(t, "Neg", "n2", "B", "Y");
    tm_output(t, "Y");
    cl_infer_model *m = tm_load(t);
    assert_false(m->plan.ready);
    assert_int_equal(cl_error_last()->code, CL_OK);
    float x[6] = {1, 2, 3, 4, 5, 6};
    int64_t shape[3] = {3, 2, 1};
    cl_infer_tensor in[2] = {tm_f32(2, d, x), {0}}, out;
    in[1] = (cl_infer_tensor){.dtype = CL_INFER_INT64, .rank = 1, .dims = {3}, .data = shape, .nbytes = sizeof(shape)};
    assert_ok(cl_infer_run(m, in, 2, &out, 1));
    assert_int_equal(out.dims[0], 3);
    assert_int_equal(out.dims[1], 2);
    assert_int_equal(out.dims[2], 1);
    for (int i = 0; i < 6; i++) assert_float_equal(((float *)out.data)[i], x[i], 0);
    assert_true(m->plan.ready);
    cl_infer_tensor_free(&out);
    cl_infer_model_free(m);
    tm_free(t);
}

/* A model whose declared shapes need more than its memory cap fails to load,
 * saying so, rather than failing on every request; deferred planning loads it
 * and the first run fails the same way. */
static void test_plan_at_load_over_cap(void **state)
{
    (void)state;
    const int64_t d[2] = {256, COLS}; /* 1 MiB per value; two alive at once */
    tm_model *t = tm_new(13);
    tm_input(t, "X", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, d);
    tm_node(t, "Neg", "n1", "X", "A1");
    tm_node(t, "Neg", "n2", "A1", "A2");
    tm_node(t, "Neg", "n3", "A2", "Y");
    tm_output(t, "Y");
    cl_buf b;
    tm_pack(t, &b);
    cl_infer_options o = {.max_bytes = (size_t)3 << 19}; /* 1.5 MiB */
    cl_infer_model *m = NULL;
    assert_fails(cl_infer_model_load(b.data, b.len, &o, &m), CL_ERR_LIMIT,
                 "running the model on zeros of its declared input shapes (to plan its memory): ");
    assert_null(m);
    o.plan_on_first_run = true;
    assert_ok(cl_infer_model_load(b.data, b.len, &o, &m));
    float *x = input_rows(256);
    cl_infer_tensor in = tm_f32(2, d, x), out;
    assert_fails(cl_infer_run(m, &in, 1, &out, 1), CL_ERR_LIMIT, "memory cap");
    free(x);
    cl_infer_model_free(m);
    cl_buf_free(&b);
    tm_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_reuses),         cmocka_unit_test(test_diamond_lifetime),
        cmocka_unit_test(test_output_not_aliased),   cmocka_unit_test(test_place_invariant),
        cmocka_unit_test(test_symbolic_replanned),   cmocka_unit_test(test_planned_at_load),
        cmocka_unit_test(test_plan_at_load_failure), cmocka_unit_test(test_plan_at_load_over_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
