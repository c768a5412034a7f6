/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A node's attributes (ONNX AttributeProto), read by the load-time checks, the
 * kernels and the graph rewrites: each found only when present with the
 * expected type, and an error naming the node when it has another.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

static const Onnx__AttributeProto *infer_attr_find(const infer_node *n, const char *name)
{
    const Onnx__NodeProto *np = n->proto;
    for (size_t i = 0; i < np->n_attribute; i++) {
        const Onnx__AttributeProto *a = np->attribute[i];
        if (a->name != NULL && strcmp(a->name, name) == 0) return a;
    }
    return NULL;
}

static const char *infer_attr_type_name(int t)
{
    switch (t) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: return "FLOAT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: return "INT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING: return "STRING";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: return "TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS: return "FLOATS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS: return "INTS";
    default: return "another type";
    }
}

/* The attribute if present with the expected type; an error if it has another. */
static CL_MUST_USE cl_status infer_attr_typed(const infer_node *n, const char *name, int type,
                                              const Onnx__AttributeProto **out)
{
    const Onnx__AttributeProto *a = infer_attr_find(n, name);
    *out = NULL;
    if (a == NULL) return CL_OK;
    if (a->has_type) {
        CL_ENSURE((int)a->type == type, CL_ERR_FORMAT, "node '%s' (%s): attribute '%s' is %s, expected %s", n->name,
                  n->op, name, infer_attr_type_name((int)a->type), infer_attr_type_name(type));
    }
    *out = a;
    return CL_OK;
}

bool infer_attr_has(const infer_node *n, const char *name) { return infer_attr_find(n, name) != NULL; }

cl_status infer_attr_int(const infer_node *n, const char *name, int64_t def, int64_t *out)
{
    const Onnx__AttributeProto *a;
    CL_GUARD(infer_attr_typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, &a));
    *out = a != NULL ? a->i : def;
    return CL_OK;
}

cl_status infer_attr_float(const infer_node *n, const char *name, float def, float *out)
{
    const Onnx__AttributeProto *a;
    CL_GUARD(infer_attr_typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, &a));
    *out = a != NULL ? a->f : def;
    return CL_OK;
}

cl_status infer_attr_string(const infer_node *n, const char *name, const char *def, char *buf, size_t bufsz)
{
    const Onnx__AttributeProto *a;
    CL_GUARD(infer_attr_typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, &a));
    if (a == NULL) {
        snprintf(buf, bufsz, "%s", def);
        return CL_OK;
    }
    CL_ENSURE(a->s.len < bufsz, CL_ERR_UNSUPPORTED, "node '%s' (%s): attribute '%s' is %zu bytes long, too long",
              n->name, n->op, name, a->s.len);
    if (a->s.len) memcpy(buf, a->s.data, a->s.len);
    buf[a->s.len] = '\0';
    CL_ENSURE(strlen(buf) == a->s.len, CL_ERR_FORMAT, "node '%s' (%s): attribute '%s' contains a NUL byte", n->name,
              n->op, name);
    return CL_OK;
}

cl_status infer_attr_ints(const infer_node *n, const char *name, const int64_t **v, size_t *count, bool *found)
{
    const Onnx__AttributeProto *a;
    CL_GUARD(infer_attr_typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, &a));
    *found = a != NULL;
    *v = a ? a->ints : NULL;
    *count = a ? a->n_ints : 0;
    return CL_OK;
}

cl_status infer_attr_floats(const infer_node *n, const char *name, const float **v, size_t *count, bool *found)
{
    const Onnx__AttributeProto *a;
    CL_GUARD(infer_attr_typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, &a));
    *found = a != NULL;
    *v = a ? a->floats : NULL;
    *count = a ? a->n_floats : 0;
    return CL_OK;
}

cl_status infer_attr_tensor(infer_mem *mem, const infer_node *n, const char *name, cl_infer_tensor *out, bool *found)
{
    const Onnx__AttributeProto *a;
    CL_GUARD(infer_attr_typed(n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR, &a));
    *found = a != NULL && a->t != NULL;
    if (!*found) return CL_OK;
    CL_GUARD_CTX(infer_tensor_from_proto(mem, a->t, "attribute tensor", out), "node '%s' (%s) attribute '%s'", n->name,
                 n->op, name);
    return CL_OK;
}
