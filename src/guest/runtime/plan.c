/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The static memory plan: every intermediate the plan covers borrows a range
 * of one arena, allocated once; ranges are shared by values whose lifetimes
 * (producing node to last reader) do not overlap.
 *
 * Shapes are inferred by the kernels themselves, each computing its outputs'
 * shapes from its inputs' when it runs, and oneDNN decides the padded size of
 * a blocked layout only when its primitive is made; so sizes are known after
 * a run. A run for a new set of input shapes runs on the buffer pool and
 * records the size each producer allocated; the plan is made from those and
 * used while the input shapes stay the same. When every graph input's shape
 * is declared and fixed, cl_infer_model_load makes that run itself, on zeros
 * (infer_plan_at_load in load.c, above the loader and the executor: this
 * file is below the executor and calls neither), so the plan exists before
 * the first real input and the first run is as fast as the next. A later
 * allocation that does not fit its range (a size that depends on runtime
 * values) falls back to the pool, as does everything the plan leaves out:
 * graph outputs (handed to the caller), and the operand and result of a
 * Conv with a fused Add (oneDNN's sum post-op may take the operand's buffer
 * over as the result, which would outlive the operand's planned range).
 */
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "infer_internal.h"

static size_t plan_align(size_t n) { return (n + (INFER_PLAN_ALIGN - 1)) & ~(size_t)(INFER_PLAN_ALIGN - 1); }

/* Largest first; ties in execution order, then array order (the buffers are
 * one array), so the plan is deterministic. */
static int plan_by_size(const void *a, const void *b)
{
    const infer_plan_buf *x = *(const infer_plan_buf *const *)a, *y = *(const infer_plan_buf *const *)b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x < y ? -1 : (x > y);
}

static int plan_by_off(const void *a, const void *b)
{
    const infer_plan_buf *x = *(const infer_plan_buf *const *)a, *y = *(const infer_plan_buf *const *)b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return 0;
}

cl_status infer_plan_place(infer_plan_buf *b, size_t n, size_t *arena_bytes)
{
    cl_status rc = CL_OK;
    *arena_bytes = 0;
    if (n == 0) return CL_OK;
    CL_ENSURE(n <= INFER_PLAN_MAX_BUFS, CL_ERR_LIMIT, "%zu buffers to plan; at most %d", n, INFER_PLAN_MAX_BUFS);
    infer_plan_buf **order = calloc(n, sizeof(*order));     // NOLINT(bugprone-sizeof-expression): array of pointers
    const infer_plan_buf **live = calloc(n, sizeof(*live)); // NOLINT(bugprone-sizeof-expression): array of pointers
    CL_ENSURE_GOTO(order != NULL && live != NULL, CL_ERR_NOMEM, "out of memory planning %zu buffers", n);
    for (size_t i = 0; i < n; i++) order[i] = &b[i];
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    qsort((void *)order, n, sizeof(*order), plan_by_size);
    for (size_t k = 0; k < n; k++) {
        infer_plan_buf *cur = order[k];
        size_t n_live = 0;
        for (size_t j = 0; j < k; j++) {
            const infer_plan_buf *o = order[j];
            if (o->first <= cur->last && cur->first <= o->last) live[n_live++] = o;
        }
        // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
        qsort((void *)live, n_live, sizeof(*live), plan_by_off);
        size_t off = 0, need = plan_align(cur->bytes);
        for (size_t j = 0; j < n_live; j++) {
            if (off + need <= live[j]->off) break; /* fits in the gap below this one */
            size_t end = plan_align(live[j]->off + live[j]->bytes);
            if (end > off) off = end;
        }
        cur->off = off;
        if (off + need > *arena_bytes) *arena_bytes = off + need;
    }
out:
    free((void *)order);
    free((void *)live);
    return rc;
}

static size_t plan_key_len(const cl_infer_model *m) { return m->n_inputs * (1 + CL_INFER_MAX_RANK); }

static void plan_key_fill(const cl_infer_model *m, const cl_infer_tensor *inputs, int64_t *key)
{
    for (size_t i = 0; i < m->n_inputs; i++) {
        int64_t *k = &key[i * (1 + CL_INFER_MAX_RANK)];
        memset(k, 0, (1 + CL_INFER_MAX_RANK) * sizeof(*k));
        k[0] = inputs[i].rank;
        for (int d = 0; d < inputs[i].rank && d < CL_INFER_MAX_RANK; d++) k[1 + d] = inputs[i].dims[d];
    }
}

void infer_plan_drop(cl_infer_model *m)
{
    struct infer_plan *p = &m->plan;
    if (p->arena != NULL) {
        cl_memzero(p->arena, p->arena_bytes);
        free(p->arena);
        m->mem.used -= p->arena_bytes;
    }
    free(p->key);
    memset(p, 0, sizeof(*p));
    for (size_t i = 0; i < m->n_values; i++) m->values[i].plan_bytes = 0;
}

void infer_plan_begin(cl_infer_model *m, const cl_infer_tensor *inputs)
{
    m->mem.n_slot = 0;
    if (m->plan.ready) {
        size_t len = plan_key_len(m);
        int64_t *key = calloc(len ? len : 1, sizeof(*key));
        bool same = key != NULL;
        if (same) {
            plan_key_fill(m, inputs, key);
            same = memcmp(key, m->plan.key, len * sizeof(*key)) == 0;
        }
        free(key);
        if (same) return;
        infer_plan_drop(m);
    }
    for (size_t i = 0; i < m->n_values; i++) m->values[i].seen_bytes = 0;
}

static void plan_slot_add(cl_infer_model *m, int vi)
{
    if (vi < 0 || m->mem.n_slot == INFER_MEM_SLOTS) return;
    const infer_value *v = &m->values[vi];
    if (v->plan_bytes == 0) return;
    m->mem.slot[m->mem.n_slot].t = &v->t;
    m->mem.slot[m->mem.n_slot].p = m->plan.arena + v->plan_off;
    m->mem.slot[m->mem.n_slot].n = v->plan_bytes;
    m->mem.n_slot++;
}

void infer_plan_node(cl_infer_model *m, size_t idx)
{
    m->mem.n_slot = 0;
    if (!m->plan.ready) return;
    const infer_node *n = &m->nodes[idx];
    for (int k = 0; k < n->n_out; k++) plan_slot_add(m, n->out[k]);
    /* An up-convolution fused into its Concat allocates the Concat's output. */
    if (n->concat_fuse) plan_slot_add(m, m->nodes[n->concat_node].out[0]);
}

void infer_plan_node_done(cl_infer_model *m, size_t idx)
{
    m->mem.n_slot = 0;
    if (m->plan.ready) return;
    const infer_node *n = &m->nodes[idx];
    for (int k = 0; k < n->n_out; k++) {
        if (n->out[k] < 0) continue;
        infer_value *v = &m->values[n->out[k]];
        if (v->t.data != NULL && v->t.nbytes > v->seen_bytes) v->seen_bytes = v->t.nbytes;
    }
}

/* Values the plan may not place (see the top of the file). */
static bool plan_excluded(const cl_infer_model *m, const infer_value *v)
{
    return v->is_output || v->is_init || v->is_input || v->producer < 0 || m->nodes[v->producer].skip;
}

void infer_plan_make(cl_infer_model *m, const cl_infer_tensor *inputs)
{
    struct infer_plan *p = &m->plan;
    infer_plan_buf *b = NULL;
    int *vi = NULL;
    bool *no = NULL;
    if (p->ready) return;
    infer_plan_drop(m);
    no = calloc(m->n_values ? m->n_values : 1, sizeof(*no));
    int *first = calloc(m->n_values ? m->n_values : 1, sizeof(*first));
    if (no == NULL || first == NULL) goto out_first;
    for (size_t i = 0; i < m->n_values; i++) first[i] = m->values[i].producer;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const infer_node *n = &m->nodes[i];
        if (n->skip) continue;
        if (n->fuse_add) {
            if (n->in[3] >= 0) no[n->in[3]] = true;
            if (n->out[0] >= 0) no[n->out[0]] = true;
        }
        if (n->concat_fuse) {
            int co = m->nodes[n->concat_node].out[0];
            if (co >= 0 && (int)i < first[co]) first[co] = (int)i;
        }
    }
    size_t nb = 0;
    for (size_t i = 0; i < m->n_values; i++) {
        const infer_value *v = &m->values[i];
        if (!no[i] && !plan_excluded(m, v) && v->seen_bytes > 0) nb++;
    }
    if (nb == 0 || nb > INFER_PLAN_MAX_BUFS) goto out_first;
    b = calloc(nb, sizeof(*b));
    vi = calloc(nb, sizeof(*vi));
    if (b == NULL || vi == NULL) goto out_first;
    nb = 0;
    size_t sum = 0;
    for (size_t i = 0; i < m->n_values; i++) {
        const infer_value *v = &m->values[i];
        if (no[i] || plan_excluded(m, v) || v->seen_bytes == 0) continue;
        int last = v->last_use;
        /* Read by no node that runs: released right after its producer. */
        if (last < 0) last = v->producer;
        b[nb] = (infer_plan_buf){.bytes = v->seen_bytes, .first = first[i], .last = last};
        vi[nb++] = (int)i;
        sum += v->seen_bytes;
    }
    size_t arena_bytes;
    if (infer_plan_place(b, nb, &arena_bytes) != CL_OK) {
        cl_error_clear();
        goto out_first;
    }
    /* The recording run's pooled buffers are not needed under the plan. */
    infer_mem_pool_drain(&m->mem);
    if (arena_bytes > m->mem.max || m->mem.used > m->mem.max - arena_bytes) goto out_first;
    p->key = calloc(plan_key_len(m) ? plan_key_len(m) : 1, sizeof(*p->key));
    p->arena = aligned_alloc(INFER_PLAN_ALIGN, arena_bytes);
    if (p->key == NULL || p->arena == NULL) {
        free(p->key);
        free(p->arena);
        memset(p, 0, sizeof(*p));
        goto out_first;
    }
    /* Touch every page now: a fresh arena's page faults cost the U-Net's
     * first planned run about 100 ms on our VMs (measured), which belongs
     * to planning, not to the first request. */
    memset(p->arena, 0, arena_bytes);
    plan_key_fill(m, inputs, p->key);
    p->arena_bytes = arena_bytes;
    p->intermediates = sum;
    p->n_bufs = nb;
    for (size_t k = 0; k < nb; k++) {
        m->values[vi[k]].plan_off = b[k].off;
        m->values[vi[k]].plan_bytes = b[k].bytes;
    }
    m->mem.used += arena_bytes;
    /* The peak from here on is the planned one (the recording run's is gone
     * with its pool). */
    m->mem.peak = m->mem.used;
    p->ready = true;
out_first:
    free(first);
    free(no);
    free(b);
    free(vi);
}
