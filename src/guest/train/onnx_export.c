/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Export of a fitted model as an ONNX ModelProto (onnx/onnx.proto, IR version
 * 8, default-domain opset 13), serialised with the protobuf-c code generated
 * from the system's onnx.proto -- the same code the runtime's loader uses.
 *
 * Graph:  features[N,F] -Sub(mean)-> -Div(scale)-> -Gemm(W,B)-> logits[N,2]
 *         -Softmax(axis=1)-> probabilities[N,2]
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
#include "cloister/train.h"

#include "onnx.pb-c.h"

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

cl_status cl_train_onnx_export(const cl_train_dataset *d, const cl_train_logreg *m, const cl_train_report *r,
                               cl_buf *out)
{
    cl_status rc = CL_OK;
    size_t p = m->n_features;
    CL_ENSURE(p == d->n_features && p >= 1, CL_ERR_USAGE, "the model has %zu features, the data %zu", p, d->n_features);
    float *mean = calloc(p, sizeof(float)), *scale = calloc(p, sizeof(float)), *w = calloc(2 * p, sizeof(float));
    float bias[2] = {0.0f, (float)m->b};
    char *metrics = NULL;
    cl_buf names, doc;
    cl_buf_init(&names, (size_t)CL_TRAIN_MAX_FEATURES * (CL_TRAIN_MAX_NAME + 1) + 1);
    cl_buf_init(&doc, 4096);
    cl_buf hex;
    cl_buf_init(&hex, 65);
    CL_ENSURE_GOTO(mean && scale && w, CL_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < p; j++) {
        mean[j] = (float)m->mean[j];
        scale[j] = (float)m->scale[j];
        w[j * 2] = 0.0f; /* W is [F, 2], row-major: column 0 is the benign logit, fixed at 0 */
        w[j * 2 + 1] = (float)m->w[j];
        CL_GUARD_GOTO(cl_buf_printf(&names, "%s%s", j ? "," : "", d->feature_names[j]));
    }
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

    export_tensor t_mean, t_scale, t_w, t_b;
    export_tensor_init(&t_mean, "mean", mean, p, (int64_t)p, 0);
    export_tensor_init(&t_scale, "scale", scale, p, (int64_t)p, 0);
    export_tensor_init(&t_w, "W", w, 2 * p, (int64_t)p, 2);
    export_tensor_init(&t_b, "B", bias, 2, 2, 0);
    Onnx__TensorProto *inits[] = {&t_mean.t, &t_scale.t, &t_w.t, &t_b.t};

    Onnx__AttributeProto axis = ONNX__ATTRIBUTE_PROTO__INIT;
    axis.name = EXPORT_STR("axis");
    axis.has_type = 1;
    axis.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    axis.has_i = 1;
    axis.i = 1;
    Onnx__AttributeProto *softmax_attrs[] = {&axis};
    export_node n_sub, n_div, n_gemm, n_soft;
    export_node_init(&n_sub, "Sub", "center", "features", "mean", NULL, "centered", NULL, 0);
    export_node_init(&n_div, "Div", "standardize", "centered", "scale", NULL, "standardized", NULL, 0);
    export_node_init(&n_gemm, "Gemm", "linear", "standardized", "W", "B", "logits", NULL, 0);
    export_node_init(&n_soft, "Softmax", "probabilities", "logits", NULL, NULL, "probabilities", softmax_attrs, 1);
    Onnx__NodeProto *nodes[] = {&n_sub.n, &n_div.n, &n_gemm.n, &n_soft.n};

    export_vinfo v_in, v_out;
    export_vinfo_init(&v_in, "features", "raw measurements, in the order of metadata cloister.classifier.features",
                      (int64_t)p);
    export_vinfo_init(&v_out, "probabilities", "class probabilities, in the order of cloister.classifier.labels", 2);
    Onnx__ValueInfoProto *inputs[] = {&v_in.vi}, *outputs[] = {&v_out.vi};

    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = EXPORT_STR("cloister_logistic_regression");
    g.n_node = 4;
    g.node = nodes;
    g.n_initializer = 4;
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
        {CL_TRAIN_META_METRICS, metrics},
        {CL_TRAIN_META_METHOD, "logistic regression, L2, Newton; standardisation from the training split"},
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
    mp.doc_string = EXPORT_STR(cl_buf_cstr(&doc));
    mp.graph = &g;
    mp.n_metadata_props = 6;
    mp.metadata_props = metap;

    size_t n = onnx__model_proto__get_packed_size(&mp);
    size_t at = out->len;
    CL_GUARD_GOTO(cl_buf_resize(out, at + n));
    size_t wrote = onnx__model_proto__pack(&mp, out->data + at);
    CL_ENSURE_GOTO(wrote == n, CL_ERR_INTERNAL, "protobuf-c packed %zu bytes, expected %zu", wrote, n);
out:
    free(mean);
    free(scale);
    free(w);
    free(metrics);
    cl_buf_free(&names);
    cl_buf_free(&doc);
    cl_buf_free(&hex);
    return rc;
}

cl_status cl_train_onnx_verify(const void *onnx, size_t len, const cl_train_dataset *d, const cl_train_logreg *m,
                               double *max_diff)
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
        double diff = fabs((double)pr[i * 2 + 1] - cl_train_logreg_predict(m, d->x + i * d->n_features));
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
