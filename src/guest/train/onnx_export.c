/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Export of a fitted model as an ONNX ModelProto (onnx/onnx.proto, IR version
 * 8, default-domain opset 13), serialised with the protobuf-c code generated
 * from the system's onnx.proto -- the same code the runtime's loader uses.
 *
 * Graph:  features[N,F] -Sub(mean)-> -Div(scale)-> [-Gemm(Wl,Bl)-> -Relu|Tanh|Sigmoid->]*
 *         -Gemm(W,B)-> logits[N,2] -Softmax(axis=1)-> probabilities[N,2]
 * (the hidden layers only for the MLP).
 * Column 0 of W and B is zero and column 1 holds the weights and bias, so
 * softmax([0, t]) = [1 - sigmoid(t), sigmoid(t)]: the logistic model's
 * probabilities for [benign, malignant], in the order the labels metadata lists.
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/infer.h"
#include "cloister/mem.h"
#include "cloister/train.h"

#include "onnx.pb-c.h"
#include "train_internal.h"

#define EXPORT_IR_VERSION 8
#define EXPORT_OPSET 13

/* protobuf-c's message structs take char *, though packing only reads them. */
#define EXPORT_STR(s) ((char *)CL_UNCONST(s))

typedef struct export_tensor {
    Onnx__TensorProto t;
    int64_t dims[2];
} export_tensor;

static void export_tensor_init(export_tensor *e, const char *name, float *data, size_t n, int64_t d0, int64_t d1)
{
    Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT;
    e->t = init;
    e->dims[0] = d0;
    e->dims[1] = d1;
    e->t.n_dims = d1 > 0 ? 2 : 1;
    e->t.dims = e->dims;
    e->t.has_data_type = 1;
    e->t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    e->t.name = EXPORT_STR(name);
    /* float_data rather than raw_data: protobuf's own encoding, so the file
     * does not depend on the byte order of the machine that wrote it. */
    e->t.n_float_data = n;
    e->t.float_data = data;
}

/* A float tensor value info with a symbolic batch dimension "N". */
typedef struct export_vinfo {
    Onnx__ValueInfoProto vi;
    Onnx__TypeProto type;
    Onnx__TypeProto__Tensor tensor;
    Onnx__TensorShapeProto shape;
    Onnx__TensorShapeProto__Dimension dim[2];
    Onnx__TensorShapeProto__Dimension *dimp[2];
} export_vinfo;

static void export_vinfo_init(export_vinfo *e, const char *name, const char *doc, int64_t cols)
{
    Onnx__ValueInfoProto vi = ONNX__VALUE_INFO_PROTO__INIT;
    Onnx__TypeProto type = ONNX__TYPE_PROTO__INIT;
    Onnx__TypeProto__Tensor tensor = ONNX__TYPE_PROTO__TENSOR__INIT;
    Onnx__TensorShapeProto shape = ONNX__TENSOR_SHAPE_PROTO__INIT;
    Onnx__TensorShapeProto__Dimension dim = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
    e->vi = vi;
    e->type = type;
    e->tensor = tensor;
    e->shape = shape;
    e->dim[0] = dim;
    e->dim[1] = dim;
    e->dim[0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    e->dim[0].dim_param = EXPORT_STR("N");
    e->dim[1].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    e->dim[1].dim_value = cols;
    e->dimp[0] = &e->dim[0];
    e->dimp[1] = &e->dim[1];
    e->shape.n_dim = 2;
    e->shape.dim = e->dimp;
    e->tensor.has_elem_type = 1;
    e->tensor.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    e->tensor.shape = &e->shape;
    e->type.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    e->type.tensor_type = &e->tensor;
    e->vi.name = EXPORT_STR(name);
    e->vi.doc_string = EXPORT_STR(doc);
    e->vi.type = &e->type;
}

typedef struct export_node {
    Onnx__NodeProto n;
    char *in[3];
    char *out[1];
} export_node;

static void export_node_init(export_node *e, const char *op, const char *name, const char *a, const char *b,
                             const char *c, const char *out, Onnx__AttributeProto **attrs, size_t n_attrs)
{
    Onnx__NodeProto n = ONNX__NODE_PROTO__INIT;
    e->n = n;
    e->in[0] = EXPORT_STR(a);
    e->in[1] = EXPORT_STR(b);
    e->in[2] = EXPORT_STR(c);
    e->out[0] = EXPORT_STR(out);
    e->n.n_input = c ? 3 : b ? 2 : 1;
    e->n.input = e->in;
    e->n.n_output = 1;
    e->n.output = e->out;
    e->n.op_type = EXPORT_STR(op);
    e->n.name = EXPORT_STR(name);
    e->n.n_attribute = n_attrs;
    e->n.attribute = attrs;
}

/* The held-out figures and settings as one JSON object (metadata value). */
static CL_MUST_USE cl_status export_metrics_json(const cl_train_report *r, const cl_train_logreg *m, char **out)
{
    json_t *j =
        json_pack("{s:I, s:f, s:f, s:i, s:f, s:{s:i, s:f, s:f}, s:{s:i, s:f, s:f, s:i, s:i, s:i, s:i}}", "seed",
                  (json_int_t)r->opts.seed, "test_fraction", r->opts.test_fraction, "l2", r->opts.l2, "iterations",
                  m->iterations, "train_loss", m->loss, "train", "n", (int)r->train.n, "accuracy", r->train.accuracy,
                  "auc", r->train.auc, "test", "n", (int)r->test.n, "accuracy", r->test.accuracy, "auc", r->test.auc,
                  "tp", (int)r->test.tp, "tn", (int)r->test.tn, "fp", (int)r->test.fp, "fn", (int)r->test.fn);
    CL_ENSURE(j != NULL, CL_ERR_INTERNAL, "building the metrics JSON failed");
    *out = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(j);
    CL_ENSURE(*out != NULL, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

#define EXPORT_MAX_LAYERS (CL_TRAIN_MAX_LAYERS + 1)
#define EXPORT_MAX_NODES (3 + 2 * EXPORT_MAX_LAYERS)
#define EXPORT_MAX_INITS (2 + 2 * EXPORT_MAX_LAYERS)

/* Names of layer i's tensors and nodes: the output layer keeps the logistic
 * model's names (W, B, linear, logits), so that model's bytes did not change
 * when the MLP came. */
typedef struct export_names {
    char w[16], b[16], gemm[16], pre[16], act[16], out[16];
} export_names;

static const char *export_act_op(cl_train_activation a)
{
    switch (a) {
    case CL_TRAIN_ACTIVATION_TANH: return "Tanh";
    case CL_TRAIN_ACTIVATION_SIGMOID: return "Sigmoid";
    case CL_TRAIN_ACTIVATION_RELU: break;
    }
    return "Relu";
}

cl_status train_onnx_write(const cl_train_dataset *d, const train_graph *gr, cl_buf *out)
{
    cl_status rc = CL_OK;
    size_t p = d->n_features, nl = gr->n_layers, total = 0;
    CL_ENSURE(nl >= 1 && nl <= EXPORT_MAX_LAYERS && gr->layers[0].in == p && gr->layers[nl - 1].out == 1,
              CL_ERR_INTERNAL, "the model's %zu layers do not fit the data's %zu features", nl, p);
    for (size_t l = 0; l < nl; l++) {
        CL_ENSURE(l == 0 || gr->layers[l].in == gr->layers[l - 1].out, CL_ERR_INTERNAL, "layer %zu's input is %zu wide",
                  l, gr->layers[l].in);
        size_t cols = l + 1 == nl ? 2 : gr->layers[l].out;
        total += gr->layers[l].in * cols + cols;
    }
    float *mean = calloc(p, sizeof(float)), *scale = calloc(p, sizeof(float)), *wts = calloc(total, sizeof(float));
    export_names *nm = calloc(nl, sizeof(*nm));
    cl_buf names, hex;
    cl_buf_init(&names, (size_t)CL_TRAIN_MAX_FEATURES * (CL_TRAIN_MAX_NAME + 1) + 1);
    cl_buf_init(&hex, 65);
    CL_ENSURE_GOTO(mean && scale && wts && nm, CL_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < p; j++) {
        mean[j] = (float)gr->mean[j];
        scale[j] = (float)gr->scale[j];
        CL_GUARD_GOTO(cl_buf_printf(&names, "%s%s", j ? "," : "", d->feature_names[j]));
    }
    CL_GUARD_GOTO(cl_buf_append_hex(&hex, d->sha256, sizeof(d->sha256)));

    export_tensor t_mean, t_scale, t_w[EXPORT_MAX_LAYERS], t_b[EXPORT_MAX_LAYERS];
    export_tensor_init(&t_mean, "mean", mean, p, (int64_t)p, 0);
    export_tensor_init(&t_scale, "scale", scale, p, (int64_t)p, 0);
    Onnx__TensorProto *inits[EXPORT_MAX_INITS] = {&t_mean.t, &t_scale.t};
    size_t n_inits = 2, n_nodes = 0;

    Onnx__AttributeProto axis = ONNX__ATTRIBUTE_PROTO__INIT;
    axis.name = EXPORT_STR("axis");
    axis.has_type = 1;
    axis.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    axis.has_i = 1;
    axis.i = 1;
    Onnx__AttributeProto *softmax_attrs[] = {&axis};
    export_node nodes[EXPORT_MAX_NODES];
    Onnx__NodeProto *nodep[EXPORT_MAX_NODES];
    export_node_init(&nodes[n_nodes++], "Sub", "center", "features", "mean", NULL, "centered", NULL, 0);
    export_node_init(&nodes[n_nodes++], "Div", "standardize", "centered", "scale", NULL, "standardized", NULL, 0);
    const char *prev = "standardized";
    float *at = wts;
    for (size_t l = 0; l < nl; l++) {
        const train_layer *ly = &gr->layers[l];
        bool last = l + 1 == nl;
        size_t cols = last ? 2 : ly->out;
        /* W is [in, cols] row-major; for the output layer column 0 (benign) is zero. */
        for (size_t i = 0; i < ly->in; i++)
            for (size_t k = 0; k < ly->out; k++) at[i * cols + (last ? 1 : k)] = (float)ly->w[i * ly->out + k];
        float *bias = at + ly->in * cols;
        for (size_t k = 0; k < ly->out; k++) bias[last ? 1 : k] = (float)ly->b[k];
        if (last) {
            (void)snprintf(nm[l].w, sizeof(nm[l].w), "W");
            (void)snprintf(nm[l].b, sizeof(nm[l].b), "B");
            (void)snprintf(nm[l].gemm, sizeof(nm[l].gemm), "linear");
            (void)snprintf(nm[l].pre, sizeof(nm[l].pre), "logits");
        } else {
            (void)snprintf(nm[l].w, sizeof(nm[l].w), "W%zu", l);
            (void)snprintf(nm[l].b, sizeof(nm[l].b), "B%zu", l);
            (void)snprintf(nm[l].gemm, sizeof(nm[l].gemm), "dense%zu", l);
            (void)snprintf(nm[l].pre, sizeof(nm[l].pre), "preact%zu", l);
            (void)snprintf(nm[l].act, sizeof(nm[l].act), "activation%zu", l);
            (void)snprintf(nm[l].out, sizeof(nm[l].out), "hidden%zu", l);
        }
        export_tensor_init(&t_w[l], nm[l].w, at, ly->in * cols, (int64_t)ly->in, (int64_t)cols);
        export_tensor_init(&t_b[l], nm[l].b, bias, cols, (int64_t)cols, 0);
        inits[n_inits++] = &t_w[l].t;
        inits[n_inits++] = &t_b[l].t;
        at = bias + cols;
        export_node_init(&nodes[n_nodes++], "Gemm", nm[l].gemm, prev, nm[l].w, nm[l].b, nm[l].pre, NULL, 0);
        if (!last) {
            export_node_init(&nodes[n_nodes++], export_act_op(gr->activation), nm[l].act, nm[l].pre, NULL, NULL,
                             nm[l].out, NULL, 0);
            prev = nm[l].out;
        }
    }
    export_node_init(&nodes[n_nodes++], "Softmax", "probabilities", "logits", NULL, NULL, "probabilities",
                     softmax_attrs, 1);
    for (size_t i = 0; i < n_nodes; i++) nodep[i] = &nodes[i].n;

    export_vinfo v_in, v_out;
    export_vinfo_init(&v_in, "features", "raw measurements, in the order of metadata cloister.classifier.features",
                      (int64_t)p);
    export_vinfo_init(&v_out, "probabilities", "class probabilities, in the order of cloister.classifier.labels", 2);
    Onnx__ValueInfoProto *inputs[] = {&v_in.vi}, *outputs[] = {&v_out.vi};

    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = EXPORT_STR(gr->name);
    g.n_node = n_nodes;
    g.node = nodep;
    g.n_initializer = n_inits;
    g.initializer = inits;
    g.n_input = 1;
    g.input = inputs;
    g.n_output = 1;
    g.output = outputs;

    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    opset.domain = EXPORT_STR("");
    opset.has_version = 1;
    opset.version = EXPORT_OPSET;
    Onnx__OperatorSetIdProto *opsets[] = {&opset};

    Onnx__StringStringEntryProto meta[6];
    const char *kv[6][2] = {
        {CL_TRAIN_META_LABELS, CL_TRAIN_LABEL_NEGATIVE "," CL_TRAIN_LABEL_POSITIVE},
        {CL_TRAIN_META_FEATURES, cl_buf_cstr(&names)},
        {CL_TRAIN_META_INPUT, "features"},
        {CL_TRAIN_META_DATA_SHA256, cl_buf_cstr(&hex)},
        {CL_TRAIN_META_METRICS, gr->metrics},
        {CL_TRAIN_META_METHOD, gr->method},
    };
    Onnx__StringStringEntryProto *metap[6];
    for (size_t i = 0; i < 6; i++) {
        Onnx__StringStringEntryProto e = ONNX__STRING_STRING_ENTRY_PROTO__INIT;
        meta[i] = e;
        meta[i].key = EXPORT_STR(kv[i][0]);
        meta[i].value = EXPORT_STR(kv[i][1]);
        metap[i] = &meta[i];
    }

    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    mp.has_ir_version = 1;
    mp.ir_version = EXPORT_IR_VERSION;
    mp.n_opset_import = 1;
    mp.opset_import = opsets;
    mp.producer_name = EXPORT_STR("cloister");
    mp.producer_version = EXPORT_STR("0.1.0");
    mp.has_model_version = 1;
    mp.model_version = 1;
    mp.doc_string = EXPORT_STR(gr->doc);
    mp.graph = &g;
    mp.n_metadata_props = 6;
    mp.metadata_props = metap;

    size_t n = onnx__model_proto__get_packed_size(&mp);
    size_t start = out->len;
    CL_GUARD_GOTO(cl_buf_resize(out, start + n));
    size_t wrote = onnx__model_proto__pack(&mp, out->data + start);
    CL_ENSURE_GOTO(wrote == n, CL_ERR_INTERNAL, "protobuf-c packed %zu bytes, expected %zu", wrote, n);
out:
    /* The weights are the owner's model: wiped before they go. */
    if (wts) cl_memzero(wts, total * sizeof(float));
    free(mean);
    free(scale);
    free(wts);
    free(nm);
    cl_buf_free(&names);
    cl_buf_free(&hex);
    return rc;
}

cl_status cl_train_onnx_export(const cl_train_dataset *d, const cl_train_logreg *m, const cl_train_report *r,
                               cl_buf *out)
{
    cl_status rc = CL_OK;
    size_t p = m->n_features;
    CL_ENSURE(p == d->n_features && p >= 1, CL_ERR_USAGE, "the model has %zu features, the data %zu", p, d->n_features);
    char *metrics = NULL;
    cl_buf doc, hex;
    cl_buf_init(&doc, 4096);
    cl_buf_init(&hex, 65);
    CL_GUARD_GOTO(cl_buf_append_hex(&hex, d->sha256, sizeof(d->sha256)));
    CL_GUARD_GOTO(export_metrics_json(r, m, &metrics));
    CL_GUARD_GOTO(cl_buf_printf(&doc,
                                "Binary classifier trained by cloister train-local: L2-regularised logistic regression "
                                "(l2 %g, Newton's method, %d iterations) on %zu of %zu rows (stratified split, seed "
                                "%" PRIu64 ", test fraction %g). Input: %zu raw measurements per row, standardised "
                                "inside the graph with training-split statistics. Output: probabilities of [%s, %s]. "
                                "Held-out accuracy %.4f, ROC AUC %.4f on %zu rows. Data SHA-256 %s.",
                                r->opts.l2, m->iterations, r->train.n, d->n_rows, r->opts.seed, r->opts.test_fraction,
                                p, CL_TRAIN_LABEL_NEGATIVE, CL_TRAIN_LABEL_POSITIVE, r->test.accuracy, r->test.auc,
                                r->test.n, cl_buf_cstr(&hex)));
    train_layer layer = {.w = m->w, .b = &m->b, .in = p, .out = 1};
    train_graph g = {
        .name = "cloister_logistic_regression",
        .method = "logistic regression, L2, Newton; standardisation from the training split",
        .doc = cl_buf_cstr(&doc),
        .metrics = metrics,
        .mean = m->mean,
        .scale = m->scale,
        .layers = &layer,
        .n_layers = 1,
    };
    CL_GUARD_GOTO(train_onnx_write(d, &g, out));
out:
    free(metrics);
    cl_buf_free(&doc);
    cl_buf_free(&hex);
    return rc;
}

cl_status train_onnx_verify(const void *onnx, size_t len, const cl_train_dataset *d, train_predict_fn fn,
                            const void *model, double *max_diff)
{
    cl_status rc = CL_OK;
    cl_infer_model *im = NULL;
    cl_infer_tensor in = {0}, prob = {0};
    *max_diff = INFINITY;
    CL_GUARD_CTX(cl_infer_model_load(onnx, len, NULL, &im), "loading the exported model back");
    int64_t dims[2] = {(int64_t)d->n_rows, (int64_t)d->n_features};
    CL_GUARD_GOTO(cl_infer_tensor_alloc(&in, CL_INFER_FLOAT, 2, dims));
    float *x = in.data;
    for (size_t i = 0; i < d->n_rows * d->n_features; i++) x[i] = (float)d->x[i];
    CL_ENSURE_GOTO(cl_infer_model_output_count(im) == 1, CL_ERR_INTERNAL, "the exported model has %zu outputs",
                   cl_infer_model_output_count(im));
    CL_GUARD_CTX_GOTO(cl_infer_run(im, &in, 1, &prob, 1), "running the exported model");
    CL_ENSURE_GOTO(prob.dtype == CL_INFER_FLOAT && prob.rank == 2 && prob.dims[0] == dims[0] && prob.dims[1] == 2,
                   CL_ERR_INTERNAL, "the exported model's output is not float [%zu, 2]", d->n_rows);
    double worst = 0;
    const float *pr = prob.data;
    for (size_t i = 0; i < d->n_rows; i++) {
        double diff = fabs((double)pr[i * 2 + 1] - fn(model, d->x + i * d->n_features));
        /* NaN must not pass as "no difference" */
        worst = diff > worst || isnan(diff) ? diff : worst;
    }
    *max_diff = worst;
out:
    cl_infer_tensor_free(&in);
    cl_infer_tensor_free(&prob);
    cl_infer_model_free(im);
    return rc;
}

static double export_logreg_predict(const void *m, const double *x) { return cl_train_logreg_predict(m, x); }

cl_status cl_train_onnx_verify(const void *onnx, size_t len, const cl_train_dataset *d, const cl_train_logreg *m,
                               double *max_diff)
{
    return train_onnx_verify(onnx, len, d, export_logreg_predict, m, max_diff);
}
