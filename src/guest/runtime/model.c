/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ONNX model loader: the protobuf decoded through the counting, wiping
 * allocator (proto.c), then the graph validated in full before anything runs,
 * and on the oneDNN path rewritten (BatchNormalization folding, Conv+Add and
 * Conv+Relu fusion, up-convolutions writing their Concat). What runs the model
 * (exec.c) and the planning run at load (load.c) sit above this file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "proto.h"

/* --- the value table: names to indices (open addressing, FNV-1a) ------------- */

typedef struct infer_names {
    int *slots; /* value index + 1; 0 = empty */
    size_t mask;
} infer_names;

static uint64_t infer_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int infer_value_find(const cl_infer_model *m, const infer_names *nt, const char *name)
{
    for (size_t i = infer_hash(name) & nt->mask;; i = (i + 1) & nt->mask) {
        int s = nt->slots[i];
        if (s == 0) return -1;
        const char *vn = m->values[s - 1].name;
        if (vn != NULL && strcmp(vn, name) == 0) return s - 1;
    }
}

static int infer_value_add(cl_infer_model *m, infer_names *nt, const char *name)
{
    int idx = (int)m->n_values++;
    infer_value *v = &m->values[idx];
    memset(v, 0, sizeof(*v));
    v->name = name;
    v->last_use = -1;
    v->producer = -1;
    v->decl_rank = -1;
    size_t i = infer_hash(name) & nt->mask;
    while (nt->slots[i] != 0) i = (i + 1) & nt->mask;
    nt->slots[i] = idx + 1;
    return idx;
}

/* --- validation -------------------------------------------------------------- */

static CL_MUST_USE cl_status infer_opset_find(const Onnx__ModelProto *mp, int64_t *opset)
{
    *opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (o->domain == NULL || o->domain[0] == '\0' || strcmp(o->domain, "ai.onnx") == 0) {
            CL_ENSURE(o->has_version, CL_ERR_FORMAT, "the model's default-domain opset_import has no version");
            *opset = o->version;
        }
    }
    /* Only other domains' operators (training, ML): none of them is implemented. */
    CL_ENSURE(*opset >= 1 || mp->n_opset_import == 0, CL_ERR_UNSUPPORTED,
              "the model imports no default-domain (ai.onnx) opset, only domain '%s', which is not supported",
              mp->opset_import[0]->domain ? mp->opset_import[0]->domain : "");
    CL_ENSURE(*opset >= 1, CL_ERR_FORMAT, "the model imports no default-domain (ai.onnx) opset");
    CL_ENSURE(*opset <= INFER_OPSET_MAX, CL_ERR_UNSUPPORTED,
              "the model uses opset %lld; this runtime implements operators up to opset %d (re-export the model "
              "with opset_version <= %d)",
              (long long)*opset, INFER_OPSET_MAX, INFER_OPSET_MAX);
    return CL_OK;
}

static CL_MUST_USE cl_status infer_input_declare(infer_value *v, const Onnx__ValueInfoProto *vi)
{
    const Onnx__TypeProto *tp = vi->type;
    CL_ENSURE(tp != NULL && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type != NULL,
              CL_ERR_UNSUPPORTED, "graph input '%s' is not a tensor; only tensor inputs are supported", v->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    CL_ENSURE(tt->has_elem_type && infer_dtype_supported(tt->elem_type), CL_ERR_UNSUPPORTED,
              "graph input '%s' has element type %d, which is not supported", v->name,
              tt->has_elem_type ? (int)tt->elem_type : 0);
    v->decl_dtype = (cl_infer_dtype)tt->elem_type;
    if (tt->shape == NULL) return CL_OK;
    CL_ENSURE(tt->shape->n_dim <= CL_INFER_MAX_RANK, CL_ERR_LIMIT, "graph input '%s' has rank %zu; at most %d", v->name,
              tt->shape->n_dim, CL_INFER_MAX_RANK);
    v->decl_rank = (int)tt->shape->n_dim;
    for (size_t d = 0; d < tt->shape->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
        bool fixed = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        CL_ENSURE(!fixed || dim->dim_value >= 0, CL_ERR_FORMAT, "graph input '%s' dimension %zu is negative (%lld)",
                  v->name, d, (long long)dim->dim_value);
        v->decl_dims[d] = fixed ? dim->dim_value : -1;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status infer_node_bind(cl_infer_model *m, infer_names *nt, size_t idx, const Onnx__NodeProto *np)
{
    infer_node *n = &m->nodes[idx];
    n->proto = np;
    n->op = np->op_type ? np->op_type : "";
    if (np->name != NULL && np->name[0] != '\0') {
        n->name = np->name;
    } else {
        snprintf(n->anon, sizeof(n->anon), "%.24s#%zu", n->op, idx);
        n->name = n->anon;
    }
    CL_ENSURE(n->op[0] != '\0', CL_ERR_FORMAT, "node %zu ('%s') has no op_type", idx, n->name);
    CL_ENSURE(np->domain == NULL || np->domain[0] == '\0' || strcmp(np->domain, "ai.onnx") == 0, CL_ERR_UNSUPPORTED,
              "node '%s' (%s) is in domain '%s'; only the default ONNX domain is supported", n->name, n->op,
              np->domain);
    n->def = infer_op_find(n->op);
    if (n->def == NULL) {
        char ops[768];
        CL_FAIL(CL_ERR_UNSUPPORTED, "node '%s': op type '%s' is not supported (supported: %s)", n->name, n->op,
                infer_op_list(ops, sizeof(ops)));
    }
    const infer_op *d = n->def;
    CL_ENSURE((int)np->n_input >= d->min_in && (int)np->n_input <= d->max_in, CL_ERR_FORMAT,
              "node '%s' (%s) has %zu inputs; %s takes %d to %d", n->name, n->op, np->n_input, n->op, d->min_in,
              d->max_in);
    CL_ENSURE((int)np->n_output >= d->min_out && (int)np->n_output <= d->max_out, CL_ERR_UNSUPPORTED,
              "node '%s' (%s) has %zu outputs; this runtime supports %d to %d", n->name, n->op, np->n_output,
              d->min_out, d->max_out);
    n->n_in = (int)np->n_input;
    n->n_out = (int)np->n_output;
    n->in = calloc(np->n_input + np->n_output + 1, sizeof(int));
    CL_ENSURE(n->in != NULL, CL_ERR_NOMEM, "out of memory binding node '%s'", n->name);
    n->out = n->in + np->n_input;
    for (size_t i = 0; i < np->n_input; i++) {
        const char *in = np->input[i];
        if (in == NULL || in[0] == '\0') {
            CL_ENSURE((int)i >= d->min_in, CL_ERR_FORMAT, "node '%s' (%s): required input %zu has no name", n->name,
                      n->op, i);
            n->in[i] = -1;
            continue;
        }
        int v = infer_value_find(m, nt, in);
        CL_ENSURE(v >= 0 && m->values[v].defined, CL_ERR_FORMAT,
                  "node '%s' (%s): input '%s' is not produced by any earlier node, initializer or graph input (the "
                  "graph is not topologically sorted, has a cycle, or names a missing value)",
                  n->name, n->op, in);
        n->in[i] = v;
        m->values[v].last_use = (int)idx;
        m->values[v].n_uses++;
    }
    for (size_t i = 0; i < np->n_output; i++) {
        const char *o = np->output[i];
        if (o == NULL || o[0] == '\0') {
            n->out[i] = -1;
            continue;
        }
        int v = infer_value_find(m, nt, o);
        CL_ENSURE(v < 0, CL_ERR_FORMAT, "node '%s' (%s): output '%s' is already defined (a value has one producer)",
                  n->name, n->op, o);
        v = infer_value_add(m, nt, o);
        m->values[v].defined = true;
        m->values[v].producer = (int)idx;
        n->out[i] = v;
    }
    CL_ENSURE(n->def->min_out > 0 ? n->out[0] >= 0 : true, CL_ERR_FORMAT, "node '%s' (%s) has no output name", n->name,
              n->op);
    if (d->check != NULL) CL_GUARD(d->check(n, m->opset));
    return CL_OK;
}

static CL_MUST_USE cl_status infer_graph_bind(cl_infer_model *m, infer_pb_alloc *pa)
{
    cl_status rc = CL_OK;
    Onnx__ModelProto *mp = m->proto;
    Onnx__GraphProto *g = mp->graph;
    infer_names nt = {NULL, 0};

    CL_ENSURE_GOTO(g->n_node <= INFER_MAX_NODES, CL_ERR_LIMIT, "the graph has %zu nodes; the limit is %d", g->n_node,
                   INFER_MAX_NODES);
    size_t cap = g->n_initializer + g->n_input;
    for (size_t i = 0; i < g->n_node; i++) cap += g->node[i]->n_output;
    CL_ENSURE_GOTO(cap <= INFER_MAX_VALUES, CL_ERR_LIMIT, "the graph names %zu values; the limit is %d", cap,
                   INFER_MAX_VALUES);
    size_t slots = 16;
    while (slots < 2 * cap) slots <<= 1;
    nt.slots = calloc(slots, sizeof(int));
    nt.mask = slots - 1;
    m->values = calloc(cap + 1, sizeof(infer_value));
    m->nodes = calloc(g->n_node + 1, sizeof(infer_node));
    m->inputs = calloc(g->n_input + 1, sizeof(int));
    m->outputs = calloc(g->n_output + 1, sizeof(int));
    CL_ENSURE_GOTO(nt.slots && m->values && m->nodes && m->inputs && m->outputs, CL_ERR_NOMEM,
                   "out of memory indexing a graph of %zu values", cap);

    CL_ENSURE_GOTO(g->n_sparse_initializer == 0, CL_ERR_UNSUPPORTED, "sparse initializers are not supported");
    for (size_t i = 0; i < g->n_initializer; i++) {
        Onnx__TensorProto *tp = g->initializer[i];
        CL_ENSURE_GOTO(tp->name != NULL && tp->name[0] != '\0', CL_ERR_FORMAT, "initializer %zu has no name", i);
        CL_ENSURE_GOTO(infer_value_find(m, &nt, tp->name) < 0, CL_ERR_FORMAT, "initializer '%s' is defined twice",
                       tp->name);
        int v = infer_value_add(m, &nt, tp->name);
        CL_GUARD_GOTO(infer_tensor_from_proto(&m->mem, tp, "initializer", &m->values[v].t));
        m->values[v].is_init = true;
        m->values[v].defined = true;
        infer_pb_drop_payload(pa, tp);
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const Onnx__ValueInfoProto *vi = g->input[i];
        CL_ENSURE_GOTO(vi->name != NULL && vi->name[0] != '\0', CL_ERR_FORMAT, "graph input %zu has no name", i);
        int v = infer_value_find(m, &nt, vi->name);
        if (v >= 0 && m->values[v].is_init) continue; /* an input with a default: a constant here */
        CL_ENSURE_GOTO(v < 0, CL_ERR_FORMAT, "graph input '%s' is declared twice", vi->name);
        v = infer_value_add(m, &nt, vi->name);
        m->values[v].is_input = true;
        m->values[v].defined = true;
        CL_GUARD_GOTO(infer_input_declare(&m->values[v], vi));
        m->inputs[m->n_inputs++] = v;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        m->n_nodes = i + 1;
        CL_GUARD_GOTO(infer_node_bind(m, &nt, i, g->node[i]));
    }
    CL_ENSURE_GOTO(g->n_output > 0, CL_ERR_FORMAT, "the graph declares no outputs");
    for (size_t i = 0; i < g->n_output; i++) {
        const char *name = g->output[i]->name;
        int v = name ? infer_value_find(m, &nt, name) : -1;
        CL_ENSURE_GOTO(v >= 0, CL_ERR_FORMAT, "graph output '%s' is not produced by any node",
                       name ? name : "(unnamed)");
        m->values[v].is_output = true;
        m->outputs[m->n_outputs++] = v;
    }
out:
    free(nt.slots);
    return rc;
}

/* An initializer only this one input reads (so it may be rewritten in place). */
static bool infer_private_init(const cl_infer_model *m, int v)
{
    return v >= 0 && m->values[v].is_init && m->values[v].n_uses == 1 && m->values[v].t.dtype == CL_INFER_FLOAT;
}

/* Folds BatchNormalization (inference) into the Conv before it when every
 * parameter is an initializer read only there: with a = scale / sqrt(var + eps),
 * W'[m] = W[m] * a[m] and b'[m] = (b[m] - mean[m]) * a[m] + B[m] (ONNX
 * BatchNormalization). Without a Conv bias, BN's B initializer becomes it. */
static CL_MUST_USE cl_status infer_graph_fold_bn(cl_infer_model *m)
{
    for (size_t i = 0; i < m->n_nodes; i++) {
        infer_node *r = &m->nodes[i];
        if (strcmp(r->op, "BatchNormalization") != 0 || r->skip || r->n_out != 1 || r->in[0] < 0) continue;
        infer_value *x = &m->values[r->in[0]];
        if (x->producer < 0 || x->is_output || x->n_uses != 1) continue;
        infer_node *p = &m->nodes[x->producer];
        if (strcmp(p->op, "Conv") != 0 || p->n_out != 1 || p->fuse_relu || p->fuse_add ||
            !infer_private_init(m, p->in[1]))
            continue;
        bool has_bias = p->n_in > 2 && p->in[2] >= 0;
        if (has_bias && !infer_private_init(m, p->in[2])) continue;
        bool ok = true;
        for (int k = 1; k < 5; k++) ok &= infer_private_init(m, r->in[k]);
        if (!ok) continue;
        cl_infer_tensor *w = &m->values[p->in[1]].t;
        int64_t M = w->rank >= 1 ? w->dims[0] : 0;
        for (int k = 1; k < 5; k++) ok &= cl_infer_tensor_count(&m->values[r->in[k]].t) == (size_t)M;
        if (has_bias) ok &= cl_infer_tensor_count(&m->values[p->in[2]].t) == (size_t)M;
        if (!ok || M <= 0) continue;
        float eps;
        if (infer_attr_float(r, "epsilon", 1e-5f, &eps) != CL_OK) {
            cl_error_clear(); /* the BN kernel reports the bad attribute when it runs */
            continue;
        }
        const float *scale = m->values[r->in[1]].t.data, *mean = m->values[r->in[3]].t.data;
        const float *var = m->values[r->in[4]].t.data;
        float *bn_b = m->values[r->in[2]].t.data, *W = w->data;
        float *cb = has_bias ? m->values[p->in[2]].t.data : NULL;
        size_t per = cl_infer_tensor_count(w) / (size_t)M;
        for (int64_t ch = 0; ch < M; ch++) {
            float a = scale[ch] / sqrtf(var[ch] + eps);
            for (size_t j = 0; j < per; j++) W[(size_t)ch * per + j] *= a;
            float b0 = cb ? cb[ch] : 0.0f;
            bn_b[ch] = (b0 - mean[ch]) * a + bn_b[ch];
        }
        /* The Conv now reads BN's B as its bias and writes BN's output. */
        int *io = calloc((size_t)3 + (size_t)p->n_out + 1, sizeof(int));
        CL_ENSURE(io != NULL, CL_ERR_NOMEM, "out of memory rewriting node '%s'", p->name);
        io[0] = p->in[0];
        io[1] = p->in[1];
        io[2] = r->in[2];
        io[3] = r->out[0];
        if (has_bias) m->values[p->in[2]].n_uses = 0;
        m->values[r->in[2]].last_use = (int)x->producer;
        free(p->in);
        p->in = io;
        p->out = io + 3;
        p->n_in = 3;
        m->values[r->out[0]].producer = x->producer;
        x->producer = -1;
        r->skip = true;
    }
    return CL_OK;
}

/* Each value's last reader among the nodes that still run (after rewrites
 * moved reads from a skipped node to an earlier one). */
static void infer_graph_last_uses(cl_infer_model *m)
{
    for (size_t i = 0; i < m->n_values; i++) m->values[i].last_use = -1;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const infer_node *n = &m->nodes[i];
        for (int k = 0; !n->skip && k < n->n_in; k++)
            if (n->in[k] >= 0) m->values[n->in[k]].last_use = (int)i;
    }
}

/* Add(Conv(...), S) where the Conv's output is read only there and S exists
 * before the Conv runs (ResNet's residual connections): the Add becomes a
 * oneDNN sum post-op of the convolution, which then reads S as a fourth input
 * (in[2] stays the bias slot). Of two Conv operands, the later Conv takes the
 * other's output as S. */
static CL_MUST_USE cl_status infer_graph_fuse_add(cl_infer_model *m)
{
    bool any = false;
    for (size_t i = 0; i < m->n_nodes; i++) {
        infer_node *a = &m->nodes[i];
        if (strcmp(a->op, "Add") != 0 || a->skip || a->n_in != 2 || a->in[0] < 0 || a->in[1] < 0 ||
            a->in[0] == a->in[1] || a->out[0] < 0)
            continue;
        int pick = -1;
        for (int s = 0; s < 2; s++) {
            const infer_value *v = &m->values[a->in[s]];
            if (v->producer < 0 || v->is_output || v->n_uses != 1) continue;
            const infer_node *p = &m->nodes[v->producer];
            if (strcmp(p->op, "Conv") != 0 || p->fuse_relu || p->fuse_add || p->n_out != 1) continue;
            /* the other operand must be ready when the Conv runs */
            if (m->values[a->in[1 - s]].producer >= v->producer) continue;
            if (pick < 0 || v->producer > m->values[a->in[pick]].producer) pick = s;
        }
        if (pick < 0) continue;
        infer_value *v = &m->values[a->in[pick]];
        infer_node *p = &m->nodes[v->producer];
        int *io = calloc(4 + 1, sizeof(int));
        CL_ENSURE(io != NULL, CL_ERR_NOMEM, "out of memory rewriting node '%s'", p->name);
        for (int k = 0; k < 3; k++) io[k] = k < p->n_in ? p->in[k] : -1;
        io[3] = a->in[1 - pick];
        io[4] = a->out[0];
        free(p->in);
        p->in = io;
        p->out = io + 4;
        p->n_in = 4;
        p->fuse_add = true;
        p->add_node = (int)i;
        m->values[a->out[0]].producer = v->producer;
        v->producer = -1;
        a->skip = true;
        any = true;
    }
    if (any) infer_graph_last_uses(m);
    return CL_OK;
}

/* A ConvTranspose whose output only a Concat reads (the U-Net's decoder): its
 * fast path may write the Concat's output directly (dnn_conv.c, infer_dnn_upconv). */
static void infer_graph_concat_into(cl_infer_model *m)
{
    for (size_t i = 0; i < m->n_nodes; i++) {
        const infer_node *cn = &m->nodes[i];
        if (strcmp(cn->op, "Concat") != 0 || cn->skip || cn->n_out != 1 || cn->out[0] < 0) continue;
        for (int s = 0; s < cn->n_in; s++) {
            const infer_value *v = cn->in[s] >= 0 ? &m->values[cn->in[s]] : NULL;
            if (v == NULL || v->producer < 0 || v->is_output || v->n_uses != 1) continue;
            infer_node *p = &m->nodes[v->producer];
            if (strcmp(p->op, "ConvTranspose") != 0 || p->n_out != 1 || p->concat_fuse) continue;
            p->concat_fuse = true;
            p->concat_node = (int)i;
            p->concat_slot = s;
        }
    }
}

/* Conv followed by Relu as the only reader of its output: the Relu becomes a
 * oneDNN post-op of the convolution (or is applied right after the reference
 * kernel when oneDNN does not take the node). */
static void infer_graph_fuse(cl_infer_model *m)
{
    for (size_t i = 0; i < m->n_nodes; i++) {
        infer_node *r = &m->nodes[i];
        if (strcmp(r->op, "Relu") != 0 || r->n_in != 1 || r->in[0] < 0 || r->out[0] < 0) continue;
        infer_value *v = &m->values[r->in[0]];
        if (v->producer < 0 || v->is_output || v->n_uses != 1) continue;
        infer_node *p = &m->nodes[v->producer];
        if (strcmp(p->op, "Conv") != 0 || p->fuse_relu || p->n_out != 1) continue;
        p->fuse_relu = true;
        p->out[0] = r->out[0];
        m->values[r->out[0]].producer = v->producer;
        v->producer = -1;
        r->skip = true;
    }
}

cl_status infer_model_build(const void *bytes, size_t len, const cl_infer_options *opts, cl_infer_model **out)
{
    cl_status rc = CL_OK;
    *out = NULL;
    CL_ENSURE(bytes != NULL || len == 0, CL_ERR_USAGE, "no model bytes given");
    cl_infer_model *m = calloc(1, sizeof(*m));
    infer_pb_alloc *pa = calloc(1, sizeof(*pa));
    if (m == NULL || pa == NULL) {
        free(m);
        free(pa);
        CL_FAIL(CL_ERR_NOMEM, "out of memory loading a model");
    }
    m->pb_alloc = pa;
    m->mem.max = (opts && opts->max_bytes) ? opts->max_bytes : CL_INFER_MAX_BYTES_DEFAULT;
    m->threads = opts ? opts->threads : 0;
    m->direct_conv = opts ? opts->direct_conv : false;
    m->profile = opts ? opts->profile : false;
    infer_pb_alloc_init(pa, &m->mem);

    Onnx__ModelProto *mp = onnx__model_proto__unpack(&pa->a, len, bytes);
    m->proto = mp;
    CL_ENSURE_GOTO(mp != NULL || !m->mem.cap_hit, CL_ERR_LIMIT,
                   "decoding the %zu-byte model needs more than the %zu-byte memory cap; raise max_bytes if the model "
                   "is trusted to need it",
                   len, m->mem.max);
    CL_ENSURE_GOTO(mp != NULL, CL_ERR_FORMAT, "%zu bytes are not a valid ONNX model (protobuf decoding failed)", len);
    CL_ENSURE_GOTO(mp->has_ir_version && mp->ir_version >= 3, CL_ERR_UNSUPPORTED,
                   "the model's IR version %lld is missing or older than 3", (long long)mp->ir_version);
    CL_ENSURE_GOTO(mp->graph != NULL, CL_ERR_FORMAT, "the model has no graph");
    CL_ENSURE_GOTO(mp->n_functions == 0, CL_ERR_UNSUPPORTED, "model-local functions are not supported");
    CL_GUARD_GOTO(infer_opset_find(mp, &m->opset));
    CL_GUARD_GOTO(infer_graph_bind(m, pa));
    cl_infer_backend be = opts ? opts->backend : CL_INFER_BACKEND_DEFAULT;
    CL_ENSURE_GOTO(be != CL_INFER_BACKEND_ONEDNN || cl_infer_onednn_available(), CL_ERR_UNSUPPORTED,
                   "the oneDNN backend was asked for, but this build has no oneDNN");
    m->use_onednn = be != CL_INFER_BACKEND_REFERENCE && cl_infer_onednn_available();
    if (m->use_onednn) {
        m->fast = calloc(m->n_nodes + 1, sizeof(void *));
        CL_ENSURE_GOTO(m->fast != NULL, CL_ERR_NOMEM, "out of memory");
        CL_GUARD_GOTO(infer_dnn_init(m));
        CL_GUARD_GOTO(infer_graph_fold_bn(m));
        CL_GUARD_GOTO(infer_graph_fuse_add(m));
        infer_graph_fuse(m);
        infer_graph_concat_into(m);
    }
    *out = m;
    m = NULL;
out:
    cl_infer_model_free(m);
    return rc;
}

void cl_infer_model_free(cl_infer_model *m)
{
    if (m == NULL) return;
    infer_dnn_free(m);
    free(m->fast);
    free(m->prof);
    for (size_t i = 0; i < m->n_values; i++) infer_tensor_release(&m->mem, &m->values[i].t);
    infer_mem_pool_drain(&m->mem);
    infer_plan_drop(m);
    for (size_t i = 0; i < m->n_nodes; i++) free(m->nodes[i].in);
    free(m->values);
    free(m->nodes);
    free(m->inputs);
    free(m->outputs);
    infer_pb_alloc *pa = m->pb_alloc;
    if (m->proto != NULL) onnx__model_proto__free_unpacked(m->proto, &pa->a);
    free(pa);
    cl_memzero(m, sizeof(*m));
    free(m);
}

size_t cl_infer_model_input_count(const cl_infer_model *m) { return m->n_inputs; }

size_t cl_infer_model_output_count(const cl_infer_model *m) { return m->n_outputs; }

cl_status cl_infer_model_input_info(const cl_infer_model *m, size_t i, const char **name, cl_infer_dtype *dtype,
                                    int *rank, int64_t dims[CL_INFER_MAX_RANK])
{
    CL_ENSURE(i < m->n_inputs, CL_ERR_USAGE, "input %zu does not exist; the model has %zu inputs", i, m->n_inputs);
    const infer_value *v = &m->values[m->inputs[i]];
    if (name) *name = v->name;
    if (dtype) *dtype = v->decl_dtype;
    if (rank) *rank = v->decl_rank;
    if (dims) memcpy(dims, v->decl_dims, sizeof(v->decl_dims));
    return CL_OK;
}

const char *cl_infer_model_output_name(const cl_infer_model *m, size_t i)
{
    return i < m->n_outputs ? m->values[m->outputs[i]].name : NULL;
}

size_t cl_infer_model_peak_bytes(const cl_infer_model *m) { return m->mem.peak; }
