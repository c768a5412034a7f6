/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An ordered list of text key/value pairs: the encryption context of envelopes
 * and of KMS requests. Keys are unique; the list is kept sorted by the keys'
 * bytes, so two equal contexts always serialise to the same bytes.
 */
#ifndef CLOISTER_KV_H
#define CLOISTER_KV_H

#include <stdbool.h>
#include <stddef.h>

#include "cloister/buf.h"
#include "cloister/error.h"

#define CL_KV_MAX_ITEM 4096 /* bytes in one key or one value */
#define CL_KV_MAX_COUNT 64  /* pairs in one list */

typedef struct cl_kv {
    char *key;
    char *value;
} cl_kv;

typedef struct cl_kvlist {
    cl_kv *items;
    size_t count;
} cl_kvlist;

void cl_kvlist_init(cl_kvlist *l);
void cl_kvlist_free(cl_kvlist *l);
/* Inserts in order. Fails on a duplicate key, an empty key, an embedded NUL or
 * a size over the limits. Lengths are explicit: the bytes need not be
 * NUL-terminated. */
CL_MUST_USE cl_status cl_kvlist_add(cl_kvlist *l, const char *key, size_t key_len, const char *value, size_t value_len);
/* Parses "key=value" as typed on a command line. */
CL_MUST_USE cl_status cl_kvlist_add_arg(cl_kvlist *l, const char *arg);
const char *cl_kvlist_get(const cl_kvlist *l, const char *key);
/* The one binary encoding of a list (NULL: the empty list), bound as associated data
 * by envelopes, the local key provider and KMS ciphertext blobs: u16 count, then per
 * pair u16 key length, key, u16 value length, value, in key byte order, all
 * big-endian (docs/formats/envelope.md). Equal lists encode to equal bytes. */
CL_MUST_USE cl_status cl_kvlist_encode(const cl_kvlist *l, cl_buf *out);
bool cl_kvlist_equal(const cl_kvlist *a, const cl_kvlist *b);

#endif
