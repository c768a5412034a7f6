/* SPDX-License-Identifier: Apache-2.0 */
#include "infer_test_util.h"

#include <stdlib.h>
#include <string.h>

#include "test_util.h"

struct tm_model {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset;
    Onnx__OperatorSetIdProto *opsets[1];
    void **allocs;
    size_t n_allocs, cap_allocs;
};

/* Every allocation is remembered and released by tm_free. */
static void *tm_alloc(tm_model *t, size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (p == NULL) fail_msg("out of memory");
    if (t->n_allocs == t->cap_allocs) {
        t->cap_allocs = t->cap_allocs ? t->cap_allocs * 2 : 64;
        t->allocs = realloc(t->allocs, t->cap_allocs * sizeof(void *));
        if (t->allocs == NULL) fail_msg("out of memory");
    }
    t->allocs[t->n_allocs++] = p;
    return p;
}

static char *tm_strdup(tm_model *t, const char *s)
{
    char *d = tm_alloc(t, strlen(s) + 1);
    memcpy(d, s, strlen(s));
    return d;
}

/* Appends p to a (count, array) pair allocated through tm_alloc. */
static void tm_push(tm_model *t, size_t *n, void ***arr, void *p)
{
    void **na = tm_alloc(t, (*n + 1) * sizeof(void *));
    if (*n) memcpy(na, *arr, *n * sizeof(void *));
    na[(*n)++] = p;
    *arr = na;
}

tm_model *tm_new(int64_t opset)
{
    tm_model *t = calloc(1, sizeof(*t));
    if (t == NULL) fail_msg("out of memory");
    onnx__model_proto__init(&t->m);
    onnx__graph_proto__init(&t->g);
    onnx__operator_set_id_proto__init(&t->opset);
    t->m.has_ir_version = 1;
    t->m.ir_version = 8;
    t->m.graph = &t->g;
    t->g.name = CL_UNCONST("test"); /* protobuf-c only reads it */
    t->opset.domain = CL_UNCONST("");
    t->opset.has_version = 1;
    t->opset.version = opset;
    t->opsets[0] = &t->opset;
    t->m.n_opset_import = 1;
    t->m.opset_import = t->opsets;
    return t;
}

void tm_free(tm_model *t)
{
    if (t == NULL) return;
    for (size_t i = 0; i < t->n_allocs; i++) free(t->allocs[i]);
    free(t->allocs);
    free(t);
}

Onnx__ModelProto *tm_proto(tm_model *t) { return &t->m; }

void tm_input(tm_model *t, const char *name, int dtype, int rank, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = tm_alloc(t, sizeof(*vi));
    Onnx__TypeProto *tp = tm_alloc(t, sizeof(*tp));
    Onnx__TypeProto__Tensor *tt = tm_alloc(t, sizeof(*tt));
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    vi->name = tm_strdup(t, name);
    vi->type = tp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    tt->has_elem_type = 1;
    tt->elem_type = dtype;
    if (rank >= 0) {
        Onnx__TensorShapeProto *sh = tm_alloc(t, sizeof(*sh));
        onnx__tensor_shape_proto__init(sh);
        for (int i = 0; i < rank; i++) {
            Onnx__TensorShapeProto__Dimension *d = tm_alloc(t, sizeof(*d));
            onnx__tensor_shape_proto__dimension__init(d);
            if (dims[i] >= 0) {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
                d->dim_value = dims[i];
            } else {
                d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
                d->dim_param = CL_UNCONST("N");
            }
            tm_push(t, &sh->n_dim, (void ***)&sh->dim, d);
        }
        tt->shape = sh;
    }
    tm_push(t, &t->g.n_input, (void ***)&t->g.input, vi);
}

void tm_output(tm_model *t, const char *name)
{
    Onnx__ValueInfoProto *vi = tm_alloc(t, sizeof(*vi));
    onnx__value_info_proto__init(vi);
    vi->name = tm_strdup(t, name);
    tm_push(t, &t->g.n_output, (void ***)&t->g.output, vi);
}

static Onnx__TensorProto *tm_tensor(tm_model *t, const char *name, int dtype, int rank, const int64_t *dims)
{
    Onnx__TensorProto *tp = tm_alloc(t, sizeof(*tp));
    onnx__tensor_proto__init(tp);
    tp->name = tm_strdup(t, name);
    tp->has_data_type = 1;
    tp->data_type = dtype;
    tp->n_dims = (size_t)rank;
    tp->dims = tm_alloc(t, (size_t)rank * sizeof(int64_t));
    if (rank) memcpy(tp->dims, dims, (size_t)rank * sizeof(int64_t));
    tm_push(t, &t->g.n_initializer, (void ***)&t->g.initializer, tp);
    return tp;
}

Onnx__TensorProto *tm_init_f32(tm_model *t, const char *name, int rank, const int64_t *dims, const float *v, bool typed)
{
    Onnx__TensorProto *tp = tm_tensor(t, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, rank, dims);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    if (typed) {
        tp->n_float_data = n;
        tp->float_data = tm_alloc(t, n * sizeof(float));
        if (n) memcpy(tp->float_data, v, n * sizeof(float));
    } else {
        tp->has_raw_data = 1;
        tp->raw_data.len = n * sizeof(float);
        tp->raw_data.data = tm_alloc(t, n * sizeof(float));
        if (n) memcpy(tp->raw_data.data, v, n * sizeof(float));
    }
    return tp;
}

Onnx__TensorProto *tm_init_i64(tm_model *t, const char *name, int rank, const int64_t *dims, const int64_t *v)
{
    Onnx__TensorProto *tp = tm_tensor(t, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, rank, dims);
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
    tp->n_int64_data = n;
    tp->int64_data = tm_alloc(t, n * sizeof(int64_t));
    if (n) memcpy(tp->int64_data, v, n * sizeof(int64_t));
    return tp;
}

/* Splits "a,b,,c" into names (empty entries kept). */
static void tm_names(tm_model *t, const char *list, size_t *n, char ***out)
{
    *n = 0;
    *out = NULL;
    if (list == NULL || list[0] == '\0') return;
    const char *p = list;
    for (;;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *s = tm_alloc(t, len + 1);
        memcpy(s, p, len);
        tm_push(t, n, (void ***)out, s);
        if (e == NULL) break;
        p = e + 1;
    }
}

Onnx__NodeProto *tm_node(tm_model *t, const char *op, const char *name, const char *ins, const char *outs)
{
    Onnx__NodeProto *n = tm_alloc(t, sizeof(*n));
    onnx__node_proto__init(n);
    n->op_type = tm_strdup(t, op);
    n->name = tm_strdup(t, name ? name : "");
    tm_names(t, ins, &n->n_input, &n->input);
    tm_names(t, outs, &n->n_output, &n->output);
    tm_push(t, &t->g.n_node, (void ***)&t->g.node, n);
    return n;
}

static Onnx__AttributeProto *tm_attr(tm_model *t, Onnx__NodeProto *n, const char *name,
                                     Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *a = tm_alloc(t, sizeof(*a));
    onnx__attribute_proto__init(a);
    a->name = tm_strdup(t, name);
    a->has_type = 1;
    a->type = type;
    tm_push(t, &n->n_attribute, (void ***)&n->attribute, a);
    return a;
}

void tm_attr_int(tm_model *t, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = tm_attr(t, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = 1;
    a->i = v;
}

void tm_attr_float(tm_model *t, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = tm_attr(t, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = 1;
    a->f = v;
}

void tm_attr_ints(tm_model *t, Onnx__NodeProto *n, const char *name, size_t count, const int64_t *v)
{
    Onnx__AttributeProto *a = tm_attr(t, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = count;
    a->ints = tm_alloc(t, count * sizeof(int64_t));
    if (count) memcpy(a->ints, v, count * sizeof(int64_t));
}

void tm_attr_string(tm_model *t, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = tm_attr(t, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = 1;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)tm_strdup(t, v);
}

void tm_pack(tm_model *t, cl_buf *out)
{
    size_t n = onnx__model_proto__get_packed_size(&t->m);
    cl_buf_init(out, n + 16);
    assert_ok(cl_buf_resize(out, n));
    size_t w = onnx__model_proto__pack(&t->m, out->data);
    assert_int_equal(w, n);
}

cl_infer_model *tm_load(tm_model *t)
{
    cl_buf b;
    cl_infer_model *m = NULL;
    tm_pack(t, &b);
    assert_ok(cl_infer_model_load(b.data, b.len, NULL, &m));
    cl_buf_free(&b);
    return m;
}

cl_infer_tensor tm_f32(int rank, const int64_t *dims, float *data)
{
    cl_infer_tensor x = {.dtype = CL_INFER_FLOAT, .rank = rank, .data = data, .borrowed = true};
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        x.dims[i] = dims[i];
        n *= (size_t)dims[i];
    }
    x.nbytes = n * sizeof(float);
    return x;
}

void tm_metadata(tm_model *t, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = tm_alloc(t, sizeof(*e));
    onnx__string_string_entry_proto__init(e);
    e->key = tm_strdup(t, key);
    e->value = tm_strdup(t, value);
    tm_push(t, &t->m.n_metadata_props, (void ***)&t->m.metadata_props, e);
}

void tm_square_png(cl_buf *png)
{
    float p[12 * 16] = {0};
    for (int y = 2; y < 8; y++)
        for (int x = 4; x < 10; x++) p[y * 16 + x] = 1.0f;
    int64_t d[2] = {12, 16};
    cl_infer_tensor t = tm_f32(2, d, p);
    cl_buf_init(png, 1 << 20);
    assert_ok(cl_infer_png_write_mask(&t, 0.5f, png));
}
