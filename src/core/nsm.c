/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The NSM request/response codec (cloister/nsm.h) and the enclave-side client.
 *
 * Requests reach the device from the enclave, which the launcher does not trust:
 * they are first walked by the bounded CBOR check of the attestation parser (no
 * truncation, no counts the input cannot back, nesting at most 8), then decoded
 * with libcbor, and every key, type and length is checked against the shapes of
 * aws-nitro-enclaves-nsm-api src/api/mod.rs. Strings must be definite-length
 * (serde_cbor, the NSM's own encoder, never writes indefinite strings).
 */
#include "cloister/nsm.h"

#include <cbor.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/mem.h"

#include "attestation_internal.h"

static const char *const error_names[] = {
    "Success",          "InvalidArgument", "InvalidIndex",  "InvalidResponse", "ReadOnlyIndex",
    "InvalidOperation", "BufferTooSmall",  "InputTooLarge", "InternalError",
};

const char *cl_nsm_error_name(cl_nsm_error e)
{
    return (unsigned)e < sizeof(error_names) / sizeof(error_names[0]) ? error_names[e] : "InternalError";
}

void cl_nsm_response_init(cl_nsm_response *r)
{
    memset(r, 0, sizeof(*r));
    cl_buf_init(&r->data, CL_NSM_MAX_RESPONSE);
}

void cl_nsm_response_free(cl_nsm_response *r)
{
    cl_buf_free(&r->data);
    memset(r, 0, sizeof(*r));
}

/* --- encoding (libcbor builds, serialises) -------------------------------- */

static CL_MUST_USE cl_status serialize(cbor_item_t *item, cl_buf *out, const char *what)
{
    unsigned char *mem = NULL;
    size_t size = 0;
    size_t len = item != NULL ? cbor_serialize_alloc(item, &mem, &size) : 0;
    if (item != NULL) cbor_decref(&item);
    if (len == 0) {
        free(mem);
        CL_FAIL(CL_ERR_NOMEM, "%s: CBOR encoding failed (out of memory)", what);
    }
    cl_status rc = cl_buf_append(out, mem, len);
    free(mem);
    return rc;
}

/* {name: body} with body a map of `n` pairs, or the bare string `name` when body is NULL. */
static cbor_item_t *tagged_variant(const char *name, cbor_item_t *body)
{
    if (body == NULL) return cbor_build_string(name);
    cbor_item_t *m = cbor_new_definite_map(1);
    if (m == NULL ||
        !cbor_map_add(m, (struct cbor_pair){.key = cbor_move(cbor_build_string(name)), .value = cbor_move(body)})) {
        if (m != NULL) cbor_decref(&m);
        return NULL;
    }
    return m;
}

static bool add(cbor_item_t *m, const char *key, cbor_item_t *v)
{
    if (v == NULL) return false;
    return cbor_map_add(m, (struct cbor_pair){.key = cbor_move(cbor_build_string(key)), .value = cbor_move(v)});
}

/* Smallest encoding, as serde_cbor (the NSM's encoder) writes integers. */
static cbor_item_t *build_u16(uint16_t v) { return v <= 0xff ? cbor_build_uint8((uint8_t)v) : cbor_build_uint16(v); }

static cbor_item_t *field_item(const cl_nsm_field *f)
{
    return f->present ? cbor_build_bytestring(f->data, f->len) : cbor_new_null();
}

cl_status cl_nsm_request_encode(const cl_nsm_request *req, cl_buf *out)
{
    cbor_item_t *body = NULL;
    const char *name = NULL;
    bool ok = true;
    switch (req->op) {
    case CL_NSM_OP_DESCRIBE_PCR:
    case CL_NSM_OP_LOCK_PCR:
        name = req->op == CL_NSM_OP_DESCRIBE_PCR ? "DescribePCR" : "LockPCR";
        body = cbor_new_definite_map(1);
        ok = body != NULL && add(body, "index", build_u16(req->index));
        break;
    case CL_NSM_OP_LOCK_PCRS:
        name = "LockPCRs";
        body = cbor_new_definite_map(1);
        ok = body != NULL && add(body, "range", build_u16(req->index));
        break;
    case CL_NSM_OP_EXTEND_PCR:
        name = "ExtendPCR";
        body = cbor_new_definite_map(2);
        ok = body != NULL && add(body, "index", build_u16(req->index)) &&
             add(body, "data", cbor_build_bytestring(req->data.data, req->data.len));
        break;
    case CL_NSM_OP_ATTESTATION:
        name = "Attestation";
        body = cbor_new_definite_map(3);
        ok = body != NULL && add(body, "user_data", field_item(&req->user_data)) &&
             add(body, "nonce", field_item(&req->nonce)) && add(body, "public_key", field_item(&req->public_key));
        break;
    case CL_NSM_OP_DESCRIBE_NSM: name = "DescribeNSM"; break;
    case CL_NSM_OP_GET_RANDOM: name = "GetRandom"; break;
    default: CL_FAIL(CL_ERR_USAGE, "NSM request: unknown operation %d", (int)req->op);
    }
    if (!ok) {
        if (body != NULL) cbor_decref(&body);
        CL_FAIL(CL_ERR_NOMEM, "NSM request %s: CBOR encoding failed (out of memory)", name);
    }
    return serialize(tagged_variant(name, body), out, "NSM request");
}

cl_status cl_nsm_response_encode(const cl_nsm_response *resp, cl_buf *out)
{
    cbor_item_t *body = NULL;
    const char *name = NULL;
    bool ok = true;
    switch (resp->op) {
    case CL_NSM_OP_DESCRIBE_PCR:
        name = "DescribePCR";
        body = cbor_new_definite_map(2);
        ok = body != NULL && add(body, "lock", cbor_build_bool(resp->lock)) &&
             add(body, "data", cbor_build_bytestring(resp->data.data, resp->data.len));
        break;
    case CL_NSM_OP_EXTEND_PCR:
    case CL_NSM_OP_ATTESTATION:
    case CL_NSM_OP_GET_RANDOM: {
        const char *key = resp->op == CL_NSM_OP_EXTEND_PCR    ? "data"
                          : resp->op == CL_NSM_OP_ATTESTATION ? "document"
                                                              : "random";
        name = resp->op == CL_NSM_OP_EXTEND_PCR    ? "ExtendPCR"
               : resp->op == CL_NSM_OP_ATTESTATION ? "Attestation"
                                                   : "GetRandom";
        body = cbor_new_definite_map(1);
        ok = body != NULL && add(body, key, cbor_build_bytestring(resp->data.data, resp->data.len));
        break;
    }
    case CL_NSM_OP_LOCK_PCR: name = "LockPCR"; break;
    case CL_NSM_OP_LOCK_PCRS: name = "LockPCRs"; break;
    case CL_NSM_OP_DESCRIBE_NSM: {
        name = "DescribeNSM";
        body = cbor_new_definite_map(7);
        size_t nlocked = 0;
        for (unsigned i = 0; i < 32; i++) nlocked += (resp->locked_mask >> i) & 1U;
        cbor_item_t *locked = cbor_new_definite_array(nlocked);
        for (unsigned i = 0; locked != NULL && i < 32; i++)
            if ((resp->locked_mask >> i) & 1U) ok = ok && cbor_array_push(locked, cbor_move(build_u16((uint16_t)i)));
        ok = ok && body != NULL && locked != NULL && add(body, "version_major", build_u16(resp->version[0])) &&
             add(body, "version_minor", build_u16(resp->version[1])) &&
             add(body, "version_patch", build_u16(resp->version[2])) &&
             add(body, "module_id", cbor_build_string(resp->module_id)) &&
             add(body, "max_pcrs", build_u16(resp->max_pcrs)) && add(body, "locked_pcrs", locked) &&
             add(body, "digest", cbor_build_string("SHA384"));
        if (!ok && locked != NULL && body == NULL) cbor_decref(&locked);
        break;
    }
    case CL_NSM_OP_ERROR:
        name = "Error";
        return serialize(tagged_variant(name, cbor_build_string(cl_nsm_error_name(resp->error))), out, "NSM response");
    default: CL_FAIL(CL_ERR_USAGE, "NSM response: unknown operation %d", (int)resp->op);
    }
    if (!ok) {
        if (body != NULL) cbor_decref(&body);
        CL_FAIL(CL_ERR_NOMEM, "NSM response %s: CBOR encoding failed (out of memory)", name);
    }
    return serialize(tagged_variant(name, body), out, "NSM response");
}

/* --- decoding ------------------------------------------------------------- */

static bool is_null(const cbor_item_t *it)
{
    /* cbor_is_null() of libcbor 0.8 aborts on floats: check the kind first. */
    return cbor_isa_float_ctrl(it) && cbor_float_ctrl_is_ctrl(it) && cbor_ctrl_value(it) == CBOR_CTRL_NULL;
}

static bool text_is(const cbor_item_t *it, const char *s)
{
    size_t n = strlen(s);
    return cbor_isa_string(it) && cbor_string_is_definite(it) && cbor_string_length(it) == n &&
           memcmp(cbor_string_handle(it), s, n) == 0;
}

static CL_MUST_USE cl_status load(const uint8_t *p, size_t n, size_t max, const char *what, cbor_item_t **out)
{
    CL_ENSURE(n <= max, CL_ERR_LIMIT, "%s: %zu bytes, more than the NSM's %zu", what, n, max);
    CL_GUARD(cl_attest_cbor_check(p, n, what));
    struct cbor_load_result res;
    cbor_item_t *item = cbor_load(p, n, &res);
    if (item == NULL) CL_FAIL(CL_ERR_FORMAT, "%s: libcbor could not decode it (error %d)", what, (int)res.error.code);
    if (res.read != n) {
        cbor_decref(&item);
        CL_FAIL(CL_ERR_FORMAT, "%s: bytes after the CBOR item", what);
    }
    *out = item;
    return CL_OK;
}

/* The variant of a serde enum: a bare string, or a one-pair map {name: body}. */
static CL_MUST_USE cl_status variant(const cbor_item_t *top, const char *what, const cbor_item_t **name,
                                     const cbor_item_t **body)
{
    if (cbor_isa_string(top)) {
        *name = top;
        *body = NULL;
        return CL_OK;
    }
    CL_ENSURE(cbor_isa_map(top) && cbor_map_size(top) == 1, CL_ERR_FORMAT,
              "%s: expected a string or a map of one entry (the operation)", what);
    struct cbor_pair *pairs = cbor_map_handle(top);
    CL_ENSURE(cbor_isa_string(pairs[0].key) && cbor_string_is_definite(pairs[0].key), CL_ERR_FORMAT,
              "%s: the operation name is not a text string", what);
    *name = pairs[0].key;
    *body = pairs[0].value;
    return CL_OK;
}

/* Looks up `key` in a body map whose keys must all be among `allowed`. */
static CL_MUST_USE cl_status body_get(const cbor_item_t *body, const char *op, const char *const *allowed,
                                      size_t nallowed, const char *key, const cbor_item_t **out)
{
    CL_ENSURE(body != NULL && cbor_isa_map(body), CL_ERR_FORMAT, "NSM %s: the arguments are not a map", op);
    size_t n = cbor_map_size(body);
    struct cbor_pair *pairs = cbor_map_handle(body);
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        bool known = false;
        for (size_t j = 0; j < nallowed; j++) known = known || text_is(pairs[i].key, allowed[j]);
        CL_ENSURE(known, CL_ERR_FORMAT, "NSM %s: unknown or malformed argument #%zu", op, i);
        if (text_is(pairs[i].key, key)) {
            CL_ENSURE(*out == NULL, CL_ERR_FORMAT, "NSM %s: argument '%s' given twice", op, key);
            *out = pairs[i].value;
        }
    }
    CL_ENSURE(*out != NULL, CL_ERR_FORMAT, "NSM %s: argument '%s' missing", op, key);
    return CL_OK;
}

static CL_MUST_USE cl_status get_u16(const cbor_item_t *it, const char *op, const char *key, uint16_t *out)
{
    CL_ENSURE(cbor_isa_uint(it), CL_ERR_FORMAT, "NSM %s: '%s' is not an unsigned integer", op, key);
    uint64_t v = cbor_get_int(it);
    CL_ENSURE(v <= UINT16_MAX, CL_ERR_FORMAT, "NSM %s: '%s' = %llu does not fit u16", op, key, (unsigned long long)v);
    *out = (uint16_t)v;
    return CL_OK;
}

static CL_MUST_USE cl_status get_field(const cbor_item_t *it, const char *op, const char *key, bool nullable,
                                       cl_nsm_field *f)
{
    memset(f, 0, sizeof(*f));
    if (nullable && is_null(it)) return CL_OK;
    CL_ENSURE(cbor_isa_bytestring(it) && cbor_bytestring_is_definite(it), CL_ERR_FORMAT,
              "NSM %s: '%s' is not a definite byte string%s", op, key, nullable ? " or null" : "");
    size_t n = cbor_bytestring_length(it);
    CL_ENSURE(n <= CL_NSM_MAX_FIELD, CL_ERR_LIMIT, "NSM %s: '%s' is %zu bytes, more than %d", op, key, n,
              CL_NSM_MAX_FIELD);
    f->present = true;
    f->len = n;
    if (n > 0) memcpy(f->data, cbor_bytestring_handle(it), n);
    return CL_OK;
}

static CL_MUST_USE cl_status parse_request(const cbor_item_t *top, cl_nsm_request *req)
{
    const cbor_item_t *name = NULL, *body = NULL, *v = NULL;
    CL_GUARD(variant(top, "NSM request", &name, &body));
    if (body == NULL) {
        CL_ENSURE(cbor_string_is_definite(name), CL_ERR_FORMAT, "NSM request: indefinite operation name");
        if (text_is(name, "DescribeNSM"))
            req->op = CL_NSM_OP_DESCRIBE_NSM;
        else if (text_is(name, "GetRandom"))
            req->op = CL_NSM_OP_GET_RANDOM;
        else
            CL_FAIL(CL_ERR_FORMAT, "NSM request: unknown operation without arguments");
        return CL_OK;
    }
    static const char *const k_index[] = {"index"};
    static const char *const k_range[] = {"range"};
    static const char *const k_extend[] = {"index", "data"};
    static const char *const k_att[] = {"user_data", "nonce", "public_key"};
    if (text_is(name, "DescribePCR") || text_is(name, "LockPCR")) {
        const char *op = text_is(name, "LockPCR") ? "LockPCR" : "DescribePCR";
        req->op = text_is(name, "LockPCR") ? CL_NSM_OP_LOCK_PCR : CL_NSM_OP_DESCRIBE_PCR;
        CL_GUARD(body_get(body, op, k_index, 1, "index", &v));
        return get_u16(v, op, "index", &req->index);
    }
    if (text_is(name, "LockPCRs")) {
        req->op = CL_NSM_OP_LOCK_PCRS;
        CL_GUARD(body_get(body, "LockPCRs", k_range, 1, "range", &v));
        return get_u16(v, "LockPCRs", "range", &req->index);
    }
    if (text_is(name, "ExtendPCR")) {
        req->op = CL_NSM_OP_EXTEND_PCR;
        CL_GUARD(body_get(body, "ExtendPCR", k_extend, 2, "index", &v));
        CL_GUARD(get_u16(v, "ExtendPCR", "index", &req->index));
        CL_GUARD(body_get(body, "ExtendPCR", k_extend, 2, "data", &v));
        return get_field(v, "ExtendPCR", "data", false, &req->data);
    }
    if (text_is(name, "Attestation")) {
        req->op = CL_NSM_OP_ATTESTATION;
        /* serde's Option fields: each may be absent, null or bytes. */
        CL_ENSURE(cbor_isa_map(body), CL_ERR_FORMAT, "NSM Attestation: the arguments are not a map");
        size_t n = cbor_map_size(body);
        struct cbor_pair *pairs = cbor_map_handle(body);
        for (size_t i = 0; i < n; i++) {
            cl_nsm_field *f = NULL;
            for (size_t j = 0; j < 3; j++)
                if (text_is(pairs[i].key, k_att[j]))
                    f = j == 0 ? &req->user_data : j == 1 ? &req->nonce : &req->public_key;
            CL_ENSURE(f != NULL, CL_ERR_FORMAT, "NSM Attestation: unknown or malformed argument #%zu", i);
            CL_ENSURE(!f->present, CL_ERR_FORMAT, "NSM Attestation: an argument given twice");
            CL_GUARD(get_field(pairs[i].value, "Attestation",
                               k_att[f == &req->user_data ? 0
                                     : f == &req->nonce   ? 1
                                                          : 2],
                               true, f));
        }
        return CL_OK;
    }
    CL_FAIL(CL_ERR_FORMAT, "NSM request: unknown operation");
}

cl_status cl_nsm_request_parse(const uint8_t *p, size_t n, cl_nsm_request *req)
{
    memset(req, 0, sizeof(*req));
    cbor_item_t *top = NULL;
    CL_GUARD(load(p, n, CL_NSM_MAX_REQUEST, "NSM request", &top));
    cl_status rc = parse_request(top, req);
    cbor_decref(&top);
    if (rc != CL_OK) req->op = CL_NSM_OP_NONE;
    return rc;
}

static CL_MUST_USE cl_status get_bytes_into(const cbor_item_t *body, const char *op, const char *key, cl_buf *out)
{
    const char *allowed[] = {key};
    const cbor_item_t *v = NULL;
    CL_GUARD(body_get(body, op, allowed, 1, key, &v));
    CL_ENSURE(cbor_isa_bytestring(v) && cbor_bytestring_is_definite(v), CL_ERR_FORMAT,
              "NSM %s response: '%s' is not a byte string", op, key);
    return cl_buf_append(out, cbor_bytestring_handle(v), cbor_bytestring_length(v));
}

static CL_MUST_USE cl_status parse_response(const cbor_item_t *top, cl_nsm_response *r)
{
    const cbor_item_t *name = NULL, *body = NULL, *v = NULL;
    CL_GUARD(variant(top, "NSM response", &name, &body));
    if (body == NULL) {
        if (text_is(name, "LockPCR"))
            r->op = CL_NSM_OP_LOCK_PCR;
        else if (text_is(name, "LockPCRs"))
            r->op = CL_NSM_OP_LOCK_PCRS;
        else
            CL_FAIL(CL_ERR_FORMAT, "NSM response: unknown variant");
        return CL_OK;
    }
    if (text_is(name, "Error")) {
        r->op = CL_NSM_OP_ERROR;
        r->error = CL_NSM_INTERNAL_ERROR;
        for (unsigned i = 1; i < sizeof(error_names) / sizeof(error_names[0]); i++)
            if (text_is(body, error_names[i])) r->error = (cl_nsm_error)i;
        return CL_OK;
    }
    if (text_is(name, "DescribePCR")) {
        static const char *const k[] = {"lock", "data"};
        r->op = CL_NSM_OP_DESCRIBE_PCR;
        CL_GUARD(body_get(body, "DescribePCR", k, 2, "lock", &v));
        CL_ENSURE(cbor_isa_float_ctrl(v) && cbor_float_ctrl_is_ctrl(v) &&
                      (cbor_ctrl_value(v) == CBOR_CTRL_TRUE || cbor_ctrl_value(v) == CBOR_CTRL_FALSE),
                  CL_ERR_FORMAT, "NSM DescribePCR response: 'lock' is not a boolean");
        r->lock = cbor_ctrl_value(v) == CBOR_CTRL_TRUE;
        CL_GUARD(body_get(body, "DescribePCR", k, 2, "data", &v));
        CL_ENSURE(cbor_isa_bytestring(v) && cbor_bytestring_is_definite(v), CL_ERR_FORMAT,
                  "NSM DescribePCR response: 'data' is not a byte string");
        return cl_buf_append(&r->data, cbor_bytestring_handle(v), cbor_bytestring_length(v));
    }
    if (text_is(name, "ExtendPCR")) {
        r->op = CL_NSM_OP_EXTEND_PCR;
        return get_bytes_into(body, "ExtendPCR", "data", &r->data);
    }
    if (text_is(name, "Attestation")) {
        r->op = CL_NSM_OP_ATTESTATION;
        return get_bytes_into(body, "Attestation", "document", &r->data);
    }
    if (text_is(name, "GetRandom")) {
        r->op = CL_NSM_OP_GET_RANDOM;
        return get_bytes_into(body, "GetRandom", "random", &r->data);
    }
    if (text_is(name, "DescribeNSM")) {
        r->op = CL_NSM_OP_DESCRIBE_NSM;
        CL_ENSURE(cbor_isa_map(body), CL_ERR_FORMAT, "NSM DescribeNSM response: not a map");
        size_t n = cbor_map_size(body);
        struct cbor_pair *pairs = cbor_map_handle(body);
        for (size_t i = 0; i < n; i++) {
            const cbor_item_t *k = pairs[i].key, *val = pairs[i].value;
            if (text_is(k, "version_major"))
                CL_GUARD(get_u16(val, "DescribeNSM", "version_major", &r->version[0]));
            else if (text_is(k, "version_minor"))
                CL_GUARD(get_u16(val, "DescribeNSM", "version_minor", &r->version[1]));
            else if (text_is(k, "version_patch"))
                CL_GUARD(get_u16(val, "DescribeNSM", "version_patch", &r->version[2]));
            else if (text_is(k, "max_pcrs"))
                CL_GUARD(get_u16(val, "DescribeNSM", "max_pcrs", &r->max_pcrs));
            else if (text_is(k, "module_id")) {
                CL_ENSURE(cbor_isa_string(val) && cbor_string_is_definite(val) &&
                              cbor_string_length(val) < sizeof(r->module_id) &&
                              memchr(cbor_string_handle(val), '\0', cbor_string_length(val)) == NULL,
                          CL_ERR_FORMAT, "NSM DescribeNSM response: bad module_id");
                memcpy(r->module_id, cbor_string_handle(val), cbor_string_length(val));
                r->module_id[cbor_string_length(val)] = '\0';
            } else if (text_is(k, "locked_pcrs")) {
                CL_ENSURE(cbor_isa_array(val), CL_ERR_FORMAT, "NSM DescribeNSM response: locked_pcrs not an array");
                for (size_t j = 0; j < cbor_array_size(val); j++) {
                    uint16_t idx = 0;
                    CL_GUARD(get_u16(cbor_array_handle(val)[j], "DescribeNSM", "locked_pcrs", &idx));
                    CL_ENSURE(idx < 32, CL_ERR_FORMAT, "NSM DescribeNSM response: locked PCR %u out of range", idx);
                    r->locked_mask |= 1U << idx;
                }
            }
        }
        return CL_OK;
    }
    CL_FAIL(CL_ERR_FORMAT, "NSM response: unknown variant");
}

cl_status cl_nsm_response_parse(const uint8_t *p, size_t n, cl_nsm_response *resp)
{
    /* Every field from this answer alone: a response struct may be reused (fuzz_nsm_response
     * found DescribeNSM's fields carried over from an earlier answer). */
    cl_buf_reset(&resp->data);
    resp->op = CL_NSM_OP_NONE;
    resp->error = CL_NSM_SUCCESS;
    resp->lock = false;
    memset(resp->version, 0, sizeof(resp->version));
    memset(resp->module_id, 0, sizeof(resp->module_id));
    resp->max_pcrs = 0;
    resp->locked_mask = 0;
    cbor_item_t *top = NULL;
    CL_GUARD(load(p, n, CL_NSM_MAX_RESPONSE, "NSM response", &top));
    cl_status rc = parse_response(top, resp);
    cbor_decref(&top);
    return rc;
}

/* --- the enclave-side client ---------------------------------------------- */

/* The Nitro driver's ioctl (Linux include/uapi/linux/nsm.h: struct nsm_raw, NSM_IOCTL_RAW;
 * the same layout as nsm-api's NsmMessage of two iovecs on 64-bit). */
typedef struct nsm_raw_io {
    uint64_t req_addr, req_len;
    uint64_t resp_addr, resp_len;
} nsm_raw_io;
#define CL_NSM_IOCTL_RAW _IOWR(0x0A, 0x0, nsm_raw_io)

cl_status cl_nsm_open(int *fd)
{
    const char *env = getenv("CLOISTER_ENCLAVE");
    if (env != NULL && strcmp(env, "sim") == 0) {
        struct stat sb;
        CL_ENSURE(fstat(CL_NSM_FD, &sb) == 0 && S_ISSOCK(sb.st_mode), CL_ERR_NOT_FOUND,
                  "NSM: CLOISTER_ENCLAVE=sim but descriptor %d is not the launcher's device socket", CL_NSM_FD);
        *fd = CL_NSM_FD;
        return CL_OK;
    }
    int d = open("/dev/nsm", O_RDWR | O_CLOEXEC);
    if (d < 0)
        CL_FAIL_ERRNO(CL_ERR_NOT_FOUND, "NSM: no attestation device (not in a Cloister sim enclave, and /dev/nsm "
                                        "cannot be opened: not in a Nitro enclave?)");
    *fd = d;
    return CL_OK;
}

int cl_vsock_ctl(void)
{
    const char *env = getenv("CLOISTER_ENCLAVE");
    return env != NULL && strcmp(env, "sim") == 0 ? CL_VSOCK_FD : -1;
}

/* One exchange: a message on the sim device socket, or the Nitro driver's ioctl. */
static CL_MUST_USE cl_status exchange(int fd, const cl_buf *msg, uint8_t *in, size_t *in_len)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "NSM call: descriptor %d", fd);
    if (S_ISCHR(sb.st_mode)) {
        nsm_raw_io io = {(uint64_t)(uintptr_t)msg->data, msg->len, (uint64_t)(uintptr_t)in, *in_len};
        if (ioctl(fd, CL_NSM_IOCTL_RAW, &io) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "NSM call: ioctl on /dev/nsm");
        CL_ENSURE(io.resp_len <= *in_len, CL_ERR_LIMIT, "NSM call: the answer is over %zu bytes", *in_len);
        *in_len = (size_t)io.resp_len;
        return CL_OK;
    }
    ssize_t w;
    do {
        w = send(fd, msg->data, msg->len, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w != (ssize_t)msg->len) CL_FAIL_ERRNO(CL_ERR_IO, "NSM call: cannot send the request to the device (fd %d)", fd);
    ssize_t r;
    do {
        r = recv(fd, in, *in_len, MSG_TRUNC);
    } while (r < 0 && errno == EINTR);
    if (r < 0) CL_FAIL_ERRNO(CL_ERR_IO, "NSM call: cannot read the device's answer");
    CL_ENSURE(r > 0, CL_ERR_IO, "NSM call: the device closed (is this running in a Cloister enclave?)");
    CL_ENSURE((size_t)r <= *in_len, CL_ERR_LIMIT, "NSM call: the answer is over %zu bytes", *in_len);
    *in_len = (size_t)r;
    return CL_OK;
}

cl_status cl_nsm_call(int fd, const cl_nsm_request *req, cl_nsm_response *resp)
{
    cl_status rc = CL_OK;
    cl_buf msg;
    cl_buf_init(&msg, CL_NSM_MAX_REQUEST);
    uint8_t *in = malloc(CL_NSM_MAX_RESPONSE);
    CL_ENSURE_GOTO(in != NULL, CL_ERR_NOMEM, "NSM call: out of memory");
    CL_GUARD_GOTO(cl_nsm_request_encode(req, &msg));
    size_t got = CL_NSM_MAX_RESPONSE;
    CL_GUARD_GOTO(exchange(fd, &msg, in, &got));
    CL_GUARD_GOTO(cl_nsm_response_parse(in, got, resp));
    if (resp->op == CL_NSM_OP_ERROR)
        CL_FAIL_GOTO(CL_ERR_REMOTE, "NSM: the device refused the request: %s", cl_nsm_error_name(resp->error));
    CL_ENSURE_GOTO(resp->op == req->op, CL_ERR_FORMAT, "NSM call: the answer is for another operation");
out:
    cl_buf_free(&msg);
    free(in);
    return rc;
}

cl_status cl_nsm_describe_pcr(int fd, unsigned index, uint8_t value[CL_NSM_PCR_LEN], bool *locked)
{
    cl_nsm_request req = {.op = CL_NSM_OP_DESCRIBE_PCR, .index = (uint16_t)index};
    cl_nsm_response resp;
    cl_nsm_response_init(&resp);
    cl_status rc = cl_nsm_call(fd, &req, &resp);
    if (rc == CL_OK && resp.data.len != CL_NSM_PCR_LEN)
        rc = CL_RAISE(CL_ERR_FORMAT, "NSM DescribePCR: %zu bytes, not 48", resp.data.len);
    if (rc == CL_OK) {
        memcpy(value, resp.data.data, CL_NSM_PCR_LEN);
        if (locked != NULL) *locked = resp.lock;
    }
    cl_nsm_response_free(&resp);
    return rc;
}

cl_status cl_nsm_extend_pcr(int fd, unsigned index, const uint8_t *data, size_t len, uint8_t value[CL_NSM_PCR_LEN])
{
    CL_ENSURE(len <= CL_NSM_MAX_FIELD, CL_ERR_LIMIT, "NSM ExtendPCR: %zu bytes of data, more than %d", len,
              CL_NSM_MAX_FIELD);
    cl_nsm_request req = {.op = CL_NSM_OP_EXTEND_PCR, .index = (uint16_t)index};
    req.data.present = true;
    req.data.len = len;
    if (len > 0) memcpy(req.data.data, data, len);
    cl_nsm_response resp;
    cl_nsm_response_init(&resp);
    cl_status rc = cl_nsm_call(fd, &req, &resp);
    if (rc == CL_OK && resp.data.len != CL_NSM_PCR_LEN)
        rc = CL_RAISE(CL_ERR_FORMAT, "NSM ExtendPCR: %zu bytes, not 48", resp.data.len);
    if (rc == CL_OK && value != NULL) memcpy(value, resp.data.data, CL_NSM_PCR_LEN);
    cl_nsm_response_free(&resp);
    return rc;
}

static CL_MUST_USE cl_status simple_call(int fd, cl_nsm_op op, unsigned index)
{
    cl_nsm_request req = {.op = op, .index = (uint16_t)index};
    cl_nsm_response resp;
    cl_nsm_response_init(&resp);
    cl_status rc = cl_nsm_call(fd, &req, &resp);
    cl_nsm_response_free(&resp);
    return rc;
}

cl_status cl_nsm_lock_pcr(int fd, unsigned index) { return simple_call(fd, CL_NSM_OP_LOCK_PCR, index); }
cl_status cl_nsm_lock_pcrs(int fd, unsigned range) { return simple_call(fd, CL_NSM_OP_LOCK_PCRS, range); }

cl_status cl_nsm_get_random(int fd, uint8_t *out, size_t len)
{
    while (len > 0) {
        cl_nsm_request req = {.op = CL_NSM_OP_GET_RANDOM};
        cl_nsm_response resp;
        cl_nsm_response_init(&resp);
        cl_status rc = cl_nsm_call(fd, &req, &resp);
        if (rc == CL_OK && resp.data.len == 0) rc = CL_RAISE(CL_ERR_FORMAT, "NSM GetRandom: no bytes returned");
        if (rc != CL_OK) {
            cl_nsm_response_free(&resp);
            return rc;
        }
        size_t take = resp.data.len < len ? resp.data.len : len;
        memcpy(out, resp.data.data, take);
        out += take;
        len -= take;
        cl_nsm_response_free(&resp);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status set_field(cl_nsm_field *f, const uint8_t *p, size_t n, const char *what)
{
    if (p == NULL) return CL_OK;
    CL_ENSURE(n <= CL_NSM_MAX_FIELD, CL_ERR_LIMIT, "NSM Attestation: %s is %zu bytes, more than %d", what, n,
              CL_NSM_MAX_FIELD);
    f->present = true;
    f->len = n;
    if (n > 0) memcpy(f->data, p, n);
    return CL_OK;
}

cl_status cl_nsm_get_attestation_doc(int fd, const uint8_t *user_data, size_t user_data_len, const uint8_t *nonce,
                                     size_t nonce_len, const uint8_t *public_key, size_t public_key_len, cl_buf *doc)
{
    cl_nsm_request *req = calloc(1, sizeof(*req));
    CL_ENSURE(req != NULL, CL_ERR_NOMEM, "NSM Attestation: out of memory");
    cl_status rc = CL_OK;
    cl_nsm_response resp;
    cl_nsm_response_init(&resp);
    req->op = CL_NSM_OP_ATTESTATION;
    CL_GUARD_GOTO(set_field(&req->user_data, user_data, user_data_len, "user_data"));
    CL_GUARD_GOTO(set_field(&req->nonce, nonce, nonce_len, "nonce"));
    CL_GUARD_GOTO(set_field(&req->public_key, public_key, public_key_len, "public_key"));
    CL_GUARD_GOTO(cl_nsm_call(fd, req, &resp));
    CL_GUARD_GOTO(cl_buf_append(doc, resp.data.data, resp.data.len));
out:
    cl_nsm_response_free(&resp);
    free(req);
    return rc;
}

/* --- descriptors over Unix sockets, and the vsock emulation --------------- */

cl_status cl_fd_send(int sock, const void *msg, size_t len, int fd)
{
    struct iovec iov = {.iov_base = (void *)(uintptr_t)msg, .iov_len = len};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t w;
    do {
        w = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len) CL_FAIL_ERRNO(CL_ERR_IO, "cannot send a message on socket %d", sock);
    return CL_OK;
}

cl_status cl_fd_recv(int sock, void *msg, size_t *len, int *fd)
{
    struct iovec iov = {.iov_base = msg, .iov_len = *len};
    union {
        char buf[CMSG_SPACE(sizeof(int) * 4)];
        struct cmsghdr align;
    } u;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
    *fd = -1;
    ssize_t r;
    do {
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (r < 0 && errno == EINTR);
    if (r < 0) CL_FAIL_ERRNO(CL_ERR_IO, "cannot receive a message on socket %d", sock);
    /* Take every descriptor that came, keep the first, close the others. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < nfd; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*fd < 0)
                *fd = got;
            else
                (void)close(got);
        }
    }
    if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        if (*fd >= 0) (void)close(*fd);
        *fd = -1;
        CL_FAIL(CL_ERR_LIMIT, "a message on socket %d was larger than %zu bytes", sock, *len);
    }
    *len = (size_t)r;
    return CL_OK;
}

/* Control messages: 'C' port (connect), 'L' port (listen), each with one descriptor. */
static CL_MUST_USE cl_status ctl_send(int ctl_fd, char kind, uint32_t port, int fd)
{
    uint8_t msg[5] = {(uint8_t)kind, (uint8_t)(port >> 24), (uint8_t)(port >> 16), (uint8_t)(port >> 8), (uint8_t)port};
    return cl_fd_send(ctl_fd, msg, sizeof(msg), fd);
}

#define VSOCK_PARENT_CID 3U /* VMADDR_CID_HOST: the parent instance, as on Nitro */

cl_status cl_vsock_connect(int ctl_fd, uint32_t port, int *out_fd)
{
    if (ctl_fd < 0) {
        int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) CL_FAIL_ERRNO(CL_ERR_UNSUPPORTED, "vsock connect to port %u: no AF_VSOCK here", port);
        struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VSOCK_PARENT_CID, .svm_port = port};
        if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            (void)close(s);
            CL_FAIL_ERRNO(CL_ERR_IO, "vsock connect to CID %u port %u", VSOCK_PARENT_CID, port);
        }
        *out_fd = s;
        return CL_OK;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        CL_FAIL_ERRNO(CL_ERR_IO, "vsock connect to port %u: socketpair", port);
    cl_status rc = ctl_send(ctl_fd, 'C', port, sv[1]);
    (void)close(sv[1]);
    /* The launcher answers with one byte on the new stream: 0 connected, else refused. */
    uint8_t status = 0xff;
    ssize_t r = rc == CL_OK ? read(sv[0], &status, 1) : -1;
    if (rc == CL_OK && (r != 1 || status != 0))
        rc = CL_RAISE(CL_ERR_DENIED,
                      "vsock connect to port %u: refused by the host (%s); the launcher forwards only the "
                      "ports given with --proxy",
                      port,
                      r != 1        ? "closed"
                      : status == 1 ? "port not proxied"
                                    : "destination unreachable");
    if (rc != CL_OK) {
        (void)close(sv[0]);
        return rc;
    }
    *out_fd = sv[0];
    return CL_OK;
}

cl_status cl_vsock_listen(int ctl_fd, uint32_t port, int *listener_fd)
{
    if (ctl_fd < 0) {
        int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) CL_FAIL_ERRNO(CL_ERR_UNSUPPORTED, "vsock listen on port %u: no AF_VSOCK here", port);
        struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
        if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s, 16) != 0) {
            (void)close(s);
            CL_FAIL_ERRNO(CL_ERR_IO, "vsock listen on port %u", port);
        }
        *listener_fd = s;
        return CL_OK;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        CL_FAIL_ERRNO(CL_ERR_IO, "vsock listen on port %u: socketpair", port);
    cl_status rc = ctl_send(ctl_fd, 'L', port, sv[1]);
    (void)close(sv[1]);
    if (rc != CL_OK) {
        (void)close(sv[0]);
        return rc;
    }
    *listener_fd = sv[0];
    return CL_OK;
}

cl_status cl_vsock_accept(int listener_fd, int *out_fd)
{
    int so_type = 0;
    socklen_t tl = sizeof(so_type);
    if (getsockopt(listener_fd, SOL_SOCKET, SO_TYPE, &so_type, &tl) == 0 && so_type == SOCK_STREAM) {
        int c; /* a real AF_VSOCK listener (cl_vsock_listen with ctl_fd -1) */
        do {
            c = accept4(listener_fd, NULL, NULL, SOCK_CLOEXEC);
        } while (c < 0 && errno == EINTR);
        if (c < 0) CL_FAIL_ERRNO(CL_ERR_IO, "vsock accept");
        *out_fd = c;
        return CL_OK;
    }
    uint8_t msg[8];
    size_t len = sizeof(msg);
    int fd = -1;
    CL_GUARD(cl_fd_recv(listener_fd, msg, &len, &fd));
    if (len == 0 && fd < 0) CL_FAIL(CL_ERR_IO, "vsock accept: the launcher closed the listener");
    CL_ENSURE(fd >= 0 && len == 1 && msg[0] == 'A', CL_ERR_FORMAT, "vsock accept: unexpected message");
    *out_fd = fd;
    return CL_OK;
}
