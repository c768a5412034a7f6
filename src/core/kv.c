/* SPDX-License-Identifier: Apache-2.0 */
#include "cloister/kv.h"

#include <stdlib.h>
#include <string.h>

void cl_kvlist_init(cl_kvlist *l) { memset(l, 0, sizeof(*l)); }

void cl_kvlist_free(cl_kvlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].key);
        free(l->items[i].value);
    }
    free(l->items);
    cl_kvlist_init(l);
}

static int cl_kv_compare(const char *a, const char *b)
{
    /* Byte order, not locale order: the serialisation must be canonical. */
    return strcmp(a, b);
}

static char *cl_kv_dup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

cl_status cl_kvlist_add(cl_kvlist *l, const char *key, size_t key_len, const char *value, size_t value_len)
{
    CL_ENSURE(key_len > 0, CL_ERR_USAGE, "empty key in encryption context");
    CL_ENSURE(key_len <= CL_KV_MAX_ITEM && value_len <= CL_KV_MAX_ITEM, CL_ERR_LIMIT,
              "encryption context entry longer than %d bytes", CL_KV_MAX_ITEM);
    CL_ENSURE(memchr(key, 0, key_len) == NULL && memchr(value, 0, value_len) == NULL, CL_ERR_FORMAT,
              "encryption context entry contains a NUL byte");
    CL_ENSURE(l->count < CL_KV_MAX_COUNT, CL_ERR_LIMIT, "more than %d encryption context entries", CL_KV_MAX_COUNT);
    char *k = cl_kv_dup(key, key_len);
    char *v = cl_kv_dup(value, value_len);
    cl_kv *items = (k && v) ? realloc(l->items, (l->count + 1) * sizeof(cl_kv)) : NULL;
    if (items == NULL) {
        free(k);
        free(v);
        CL_FAIL(CL_ERR_NOMEM, "out of memory for encryption context");
    }
    l->items = items;
    size_t at = l->count;
    for (size_t i = 0; i < l->count; i++) {
        int c = cl_kv_compare(k, items[i].key);
        if (c == 0) {
            cl_status rc = CL_RAISE(CL_ERR_USAGE, "encryption context key \"%s\" given twice", k);
            free(k);
            free(v);
            return rc;
        }
        if (c < 0) {
            at = i;
            break;
        }
    }
    memmove(&items[at + 1], &items[at], (l->count - at) * sizeof(cl_kv));
    items[at].key = k;
    items[at].value = v;
    l->count++;
    return CL_OK;
}

cl_status cl_kvlist_add_arg(cl_kvlist *l, const char *arg)
{
    const char *eq = strchr(arg, '=');
    CL_ENSURE(eq != NULL && eq != arg, CL_ERR_USAGE, "context \"%s\" is not of the form key=value", arg);
    return cl_kvlist_add(l, arg, (size_t)(eq - arg), eq + 1, strlen(eq + 1));
}

cl_status cl_kvlist_encode(const cl_kvlist *l, cl_buf *out)
{
    size_t count = l != NULL ? l->count : 0;
    CL_ENSURE(count <= CL_KV_MAX_COUNT, CL_ERR_LIMIT, "too many context entries");
    CL_GUARD(cl_buf_append_u16be(out, (uint16_t)count));
    for (size_t i = 0; i < count; i++) {
        CL_GUARD(cl_buf_append_u16be_prefixed(out, l->items[i].key, strlen(l->items[i].key)));
        CL_GUARD(cl_buf_append_u16be_prefixed(out, l->items[i].value, strlen(l->items[i].value)));
    }
    return CL_OK;
}

const char *cl_kvlist_get(const cl_kvlist *l, const char *key)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].key, key) == 0) return l->items[i].value;
    }
    return NULL;
}

bool cl_kvlist_equal(const cl_kvlist *a, const cl_kvlist *b)
{
    if (a->count != b->count) return false;
    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->items[i].key, b->items[i].key) != 0 || strcmp(a->items[i].value, b->items[i].value) != 0)
            return false;
    }
    return true;
}
