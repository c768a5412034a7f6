/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Nitro attestation documents: decoding and verification.
 *
 * References:
 *  - AWS, aws-nitro-enclaves-nsm-api docs/attestation_process.md: document
 *    definition (2.2), COSE (3.1), syntactic validation (3.2.2), certificates
 *    (3.2.3: validity, basic constraints, key usage; 3.2.4: the chain).
 *  - RFC 8152 (COSE): COSE_Sign1 (4.2), Sig_structure (4.4), ES384 (8.1:
 *    the signature is r||s, each the size of the curve's order).
 *
 * Untrusted bytes are first walked by a bounded CBOR well-formedness check
 * (cbor_check below) that rejects truncation, reserved encodings, lengths and
 * counts larger than what remains, and nesting deeper than CBOR_MAX_DEPTH; only
 * then are they given to libcbor, so that libcbor never allocates for counts
 * the input cannot back. Every item's type and length is then checked and
 * copied out.
 */
#include "cloister/attestation.h"

#include <cbor.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#include "attestation_internal.h"

#define CBOR_MAX_DEPTH 8

/* --- bounded CBOR well-formedness check (RFC 8949 section 3) -------------- */

typedef struct cbor_frame {
    uint64_t left; /* items still expected; unused when indefinite */
    bool indef;
    int str_major; /* indefinite string: the major type its chunks must have; else -1 */
} cbor_frame;

cl_status cl_attest_cbor_check(const uint8_t *p, size_t n, const char *what)
{
    cl_reader r = cl_reader_make(p, n);
    cbor_frame st[CBOR_MAX_DEPTH];
    size_t depth = 0;
    for (;;) {
        size_t off = cl_reader_offset(&r);
        uint8_t ib = 0;
        CL_ENSURE(cl_reader_remaining(&r) > 0, CL_ERR_FORMAT, "%s: CBOR truncated at offset %zu", what, off);
        CL_GUARD(cl_reader_u8(&r, &ib));
        unsigned major = ib >> 5, ai = ib & 31u;
        uint64_t v = ai;
        bool indef = false, complete = false;
        if (ai >= 24 && ai <= 27) {
            size_t w = (size_t)1 << (ai - 24);
            const uint8_t *b = NULL;
            CL_ENSURE(cl_reader_remaining(&r) >= w, CL_ERR_FORMAT, "%s: CBOR truncated at offset %zu", what, off);
            CL_GUARD(cl_reader_bytes(&r, w, &b));
            v = 0;
            for (size_t i = 0; i < w; i++) v = (v << 8) | b[i];
        } else if (ai == 31) {
            indef = true;
        } else if (ai > 27) {
            CL_FAIL(CL_ERR_FORMAT, "%s: reserved CBOR encoding 0x%02x at offset %zu", what, ib, off);
        }
        size_t rem = cl_reader_remaining(&r);
        cbor_frame *top = depth > 0 ? &st[depth - 1] : NULL;
        if (ib == 0xff) {
            CL_ENSURE(top != NULL && top->indef, CL_ERR_FORMAT, "%s: unexpected CBOR break at offset %zu", what, off);
            depth--;
            complete = true;
        } else {
            if (top != NULL && top->str_major >= 0)
                CL_ENSURE((int)major == top->str_major && !indef, CL_ERR_FORMAT,
                          "%s: bad chunk in an indefinite-length string at offset %zu", what, off);
            bool push = false;
            cbor_frame f = {.left = 0, .indef = indef, .str_major = -1};
            switch (major) {
            case 0:
            case 1:
                CL_ENSURE(!indef, CL_ERR_FORMAT, "%s: bad integer encoding at offset %zu", what, off);
                complete = true;
                break;
            case 2:
            case 3:
                if (indef) {
                    f.str_major = (int)major;
                    push = true;
                } else {
                    CL_ENSURE(v <= rem, CL_ERR_FORMAT,
                              "%s: CBOR string at offset %zu claims %llu bytes, only %zu remain", what, off,
                              (unsigned long long)v, rem);
                    CL_GUARD(cl_reader_skip(&r, (size_t)v));
                    complete = true;
                }
                break;
            case 4:
            case 5:
                if (indef) {
                    push = true;
                } else {
                    CL_ENSURE(v <= rem && (major == 4 || v <= rem / 2), CL_ERR_FORMAT,
                              "%s: CBOR %s at offset %zu claims %llu entries, only %zu bytes remain", what,
                              major == 4 ? "array" : "map", off, (unsigned long long)v, rem);
                    f.left = major == 5 ? 2 * v : v;
                    if (f.left == 0)
                        complete = true;
                    else
                        push = true;
                }
                break;
            case 6:
                CL_ENSURE(!indef, CL_ERR_FORMAT, "%s: bad tag encoding at offset %zu", what, off);
                f.left = 1;
                push = true;
                break;
            default: /* 7: simple values and floats */
                CL_ENSURE(!indef, CL_ERR_FORMAT, "%s: unexpected CBOR break at offset %zu", what, off);
                CL_ENSURE(ai != 24 || v >= 32, CL_ERR_FORMAT, "%s: bad simple value at offset %zu", what, off);
                complete = true;
                break;
            }
            if (push) {
                CL_ENSURE(depth < CBOR_MAX_DEPTH, CL_ERR_LIMIT, "%s: CBOR nested deeper than %d levels at offset %zu",
                          what, CBOR_MAX_DEPTH, off);
                st[depth++] = f;
            }
        }
        if (complete) {
            /* One item is complete: count it in its container, closing containers that are now full. */
            while (depth > 0 && !st[depth - 1].indef && --st[depth - 1].left == 0) depth--;
        }
        if (depth == 0 && complete) break;
    }
    CL_ENSURE(cl_reader_remaining(&r) == 0, CL_ERR_FORMAT, "%s: %zu unexpected bytes after the CBOR item", what,
              cl_reader_remaining(&r));
    return CL_OK;
}

/* Checks, then decodes one CBOR item with libcbor. */
static CL_MUST_USE cl_status cbor_decode(const uint8_t *p, size_t n, const char *what, cbor_item_t **out)
{
    struct cbor_load_result res;
    *out = NULL;
    CL_GUARD(cl_attest_cbor_check(p, n, what));
    cbor_item_t *item = cbor_load(p, n, &res);
    if (item == NULL || res.error.code != CBOR_ERR_NONE) {
        if (item != NULL) cbor_decref(&item);
        CL_ENSURE(res.error.code != CBOR_ERR_MEMERROR, CL_ERR_NOMEM, "%s: out of memory decoding CBOR", what);
        CL_FAIL(CL_ERR_FORMAT, "%s: CBOR does not decode (libcbor error %d at offset %zu)", what, (int)res.error.code,
                res.error.position);
    }
    if (res.read != n) {
        cbor_decref(&item);
        CL_FAIL(CL_ERR_FORMAT, "%s: %zu unexpected bytes after the CBOR item", what, n - res.read);
    }
    *out = item;
    return CL_OK;
}

/* cbor_is_null() of libcbor 0.8 asserts (aborts) when given a float: check the kind first. */
static bool item_is_null(const cbor_item_t *it)
{
    return cbor_isa_float_ctrl(it) && cbor_float_ctrl_is_ctrl(it) && cbor_ctrl_value(it) == CBOR_CTRL_NULL;
}

static const char *cbor_type_name(const cbor_item_t *it)
{
    switch (cbor_typeof(it)) {
    case CBOR_TYPE_UINT: return "an unsigned integer";
    case CBOR_TYPE_NEGINT: return "a negative integer";
    case CBOR_TYPE_BYTESTRING: return "a byte string";
    case CBOR_TYPE_STRING: return "a text string";
    case CBOR_TYPE_ARRAY: return "an array";
    case CBOR_TYPE_MAP: return "a map";
    case CBOR_TYPE_TAG: return "a tag";
    default: return item_is_null(it) ? "null" : cbor_float_ctrl_is_ctrl(it) ? "a simple value" : "a float";
    }
}

/* A definite byte string of min..max bytes, copied into `out`. */
static CL_MUST_USE cl_status take_bytes(const cbor_item_t *it, const char *field, size_t min, size_t max, cl_buf *out)
{
    CL_ENSURE(cbor_isa_bytestring(it), CL_ERR_FORMAT, "%s is %s, expected a byte string", field, cbor_type_name(it));
    CL_ENSURE(cbor_bytestring_is_definite(it), CL_ERR_FORMAT, "%s is an indefinite-length byte string", field);
    size_t len = cbor_bytestring_length(it);
    CL_ENSURE(len >= min && len <= max, CL_ERR_FORMAT, "%s is %zu bytes, expected %zu to %zu", field, len, min, max);
    cl_buf_free(out);
    cl_buf_init(out, max);
    if (len > 0) CL_GUARD(cl_buf_append(out, cbor_bytestring_handle(it), len));
    return CL_OK;
}

static CL_MUST_USE cl_status take_text(const cbor_item_t *it, const char *field, size_t max, char *out, size_t out_size)
{
    CL_ENSURE(cbor_isa_string(it), CL_ERR_FORMAT, "%s is %s, expected a text string", field, cbor_type_name(it));
    CL_ENSURE(cbor_string_is_definite(it), CL_ERR_FORMAT, "%s is an indefinite-length text string", field);
    size_t len = cbor_string_length(it);
    CL_ENSURE(len >= 1 && len <= max && len < out_size, CL_ERR_FORMAT, "%s is %zu bytes, expected 1 to %zu", field, len,
              max);
    const uint8_t *s = cbor_string_handle(it);
    for (size_t i = 0; i < len; i++)
        CL_ENSURE(s[i] >= 0x20 && s[i] < 0x7f, CL_ERR_FORMAT, "%s contains a byte 0x%02x that is not printable ASCII",
                  field, s[i]);
    memcpy(out, s, len);
    out[len] = '\0';
    return CL_OK;
}

/* --- documents ----------------------------------------------------------- */

void cl_attest_doc_init(cl_attest_doc *doc)
{
    memset(doc, 0, sizeof(*doc));
    cl_buf_init(&doc->certificate, CL_ATTEST_MAX_CERT_LEN);
    for (size_t i = 0; i < CL_ATTEST_MAX_CABUNDLE; i++) cl_buf_init(&doc->cabundle[i], CL_ATTEST_MAX_CERT_LEN);
    cl_buf_init(&doc->public_key, CL_ATTEST_MAX_FIELD_LEN);
    cl_buf_init(&doc->user_data, CL_ATTEST_MAX_FIELD_LEN);
    cl_buf_init(&doc->nonce, CL_ATTEST_MAX_FIELD_LEN);
    cl_buf_init(&doc->protected_header, 64);
    cl_buf_init(&doc->payload, CL_ATTEST_MAX_PAYLOAD_LEN);
}

void cl_attest_doc_free(cl_attest_doc *doc)
{
    cl_buf_free(&doc->certificate);
    for (size_t i = 0; i < CL_ATTEST_MAX_CABUNDLE; i++) cl_buf_free(&doc->cabundle[i]);
    cl_buf_free(&doc->public_key);
    cl_buf_free(&doc->user_data);
    cl_buf_free(&doc->nonce);
    cl_buf_free(&doc->protected_header);
    cl_buf_free(&doc->payload);
    cl_attest_doc_init(doc);
}

/* The protected header must be exactly {1: -35} (alg: ES384), RFC 8152 sections 3.1 and 8.1. */
static CL_MUST_USE cl_status parse_protected(const cl_buf *hdr)
{
    cbor_item_t *m = NULL;
    CL_GUARD(cbor_decode(hdr->data, hdr->len, "COSE protected header", &m));
    cl_status rc = CL_OK;
    CL_ENSURE_GOTO(cbor_isa_map(m), CL_ERR_FORMAT, "COSE protected header is %s, expected a map", cbor_type_name(m));
    CL_ENSURE_GOTO(cbor_map_size(m) == 1, CL_ERR_UNSUPPORTED,
                   "COSE protected header has %zu entries, expected only alg (1: -35, ES384)", cbor_map_size(m));
    struct cbor_pair *kv = cbor_map_handle(m);
    CL_ENSURE_GOTO(cbor_isa_uint(kv[0].key) && cbor_get_int(kv[0].key) == 1, CL_ERR_UNSUPPORTED,
                   "COSE protected header's entry is not alg (label 1)");
    CL_ENSURE_GOTO(cbor_isa_negint(kv[0].value) && cbor_get_int(kv[0].value) == 34, CL_ERR_UNSUPPORTED,
                   "COSE algorithm is not ES384 (-35)");
out:
    cbor_decref(&m);
    return rc;
}

typedef enum {
    F_MODULE_ID,
    F_DIGEST,
    F_TIMESTAMP,
    F_PCRS,
    F_CERTIFICATE,
    F_CABUNDLE,
    F_PUBLIC_KEY,
    F_USER_DATA,
    F_NONCE,
    F_COUNT
} doc_field;

static const char *const field_names[F_COUNT] = {"module_id", "digest",     "timestamp", "pcrs", "certificate",
                                                 "cabundle",  "public_key", "user_data", "nonce"};

static CL_MUST_USE cl_status parse_pcrs(const cbor_item_t *m, cl_attest_doc *doc)
{
    CL_ENSURE(cbor_isa_map(m), CL_ERR_FORMAT, "pcrs is %s, expected a map", cbor_type_name(m));
    size_t count = cbor_map_size(m);
    CL_ENSURE(count >= 1 && count <= CL_ATTEST_MAX_PCRS, CL_ERR_FORMAT, "pcrs has %zu entries, expected 1 to %d", count,
              CL_ATTEST_MAX_PCRS);
    struct cbor_pair *kv = cbor_map_handle(m);
    for (size_t i = 0; i < count; i++) {
        CL_ENSURE(cbor_isa_uint(kv[i].key), CL_ERR_FORMAT, "pcrs key %zu is %s, expected an index 0 to 31", i,
                  cbor_type_name(kv[i].key));
        uint64_t idx = cbor_get_int(kv[i].key);
        CL_ENSURE(idx < CL_ATTEST_MAX_PCRS, CL_ERR_FORMAT, "PCR index %llu is out of range 0 to 31",
                  (unsigned long long)idx);
        CL_ENSURE((doc->pcr_mask & (1u << idx)) == 0, CL_ERR_FORMAT, "PCR%llu appears twice", (unsigned long long)idx);
        const cbor_item_t *v = kv[i].value;
        CL_ENSURE(cbor_isa_bytestring(v) && cbor_bytestring_is_definite(v), CL_ERR_FORMAT,
                  "PCR%llu is %s, expected a byte string", (unsigned long long)idx, cbor_type_name(v));
        CL_ENSURE(cbor_bytestring_length(v) == CL_ATTEST_PCR_LEN, CL_ERR_FORMAT,
                  "PCR%llu is %zu bytes, expected %d (SHA384)", (unsigned long long)idx, cbor_bytestring_length(v),
                  CL_ATTEST_PCR_LEN);
        memcpy(doc->pcrs[idx], cbor_bytestring_handle(v), CL_ATTEST_PCR_LEN);
        doc->pcr_mask |= 1u << idx;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status parse_cabundle(const cbor_item_t *a, cl_attest_doc *doc)
{
    CL_ENSURE(cbor_isa_array(a), CL_ERR_FORMAT, "cabundle is %s, expected an array", cbor_type_name(a));
    size_t count = cbor_array_size(a);
    CL_ENSURE(count >= 1, CL_ERR_FORMAT, "cabundle is empty; it must hold at least the root");
    CL_ENSURE(count <= CL_ATTEST_MAX_CABUNDLE, CL_ERR_LIMIT, "cabundle has %zu certificates, at most %d supported",
              count, CL_ATTEST_MAX_CABUNDLE);
    cbor_item_t **items = cbor_array_handle(a);
    for (size_t i = 0; i < count; i++) {
        char name[32];
        (void)snprintf(name, sizeof(name), "cabundle[%zu]", i);
        CL_GUARD(take_bytes(items[i], name, 1, CL_ATTEST_MAX_CERT_LEN, &doc->cabundle[i]));
    }
    doc->cabundle_len = count;
    return CL_OK;
}

static CL_MUST_USE cl_status parse_optional(const cbor_item_t *v, const char *name, size_t min, bool *has, cl_buf *out)
{
    if (item_is_null(v)) { /* real documents encode absent optional fields as null */
        *has = false;
        return CL_OK;
    }
    CL_GUARD(take_bytes(v, name, min, CL_ATTEST_MAX_FIELD_LEN, out));
    *has = true;
    return CL_OK;
}

static CL_MUST_USE cl_status parse_payload(cl_attest_doc *doc)
{
    cbor_item_t *m = NULL;
    CL_GUARD(cbor_decode(doc->payload.data, doc->payload.len, "attestation document payload", &m));
    cl_status rc = CL_OK;
    bool seen[F_COUNT] = {false};
    CL_ENSURE_GOTO(cbor_isa_map(m), CL_ERR_FORMAT, "payload is %s, expected a map", cbor_type_name(m));
    size_t count = cbor_map_size(m);
    struct cbor_pair *kv = cbor_map_handle(m);
    for (size_t i = 0; i < count; i++) {
        const cbor_item_t *k = kv[i].key, *v = kv[i].value;
        CL_ENSURE_GOTO(cbor_isa_string(k) && cbor_string_is_definite(k), CL_ERR_FORMAT,
                       "payload key %zu is %s, expected a field name", i, cbor_type_name(k));
        size_t klen = cbor_string_length(k);
        int f = -1;
        for (int j = 0; j < F_COUNT; j++) {
            if (strlen(field_names[j]) == klen && memcmp(field_names[j], cbor_string_handle(k), klen) == 0) f = j;
        }
        if (f < 0) {
            char shown[68];
            size_t shown_len = klen > 64 ? 64 : klen;
            const uint8_t *kp = cbor_string_handle(k);
            for (size_t j = 0; j < shown_len; j++) shown[j] = kp[j] >= 0x20 && kp[j] < 0x7f ? (char)kp[j] : '?';
            shown[shown_len] = '\0';
            CL_FAIL_GOTO(CL_ERR_FORMAT, "payload has an unknown field \"%s\"%s", shown, klen > 64 ? "..." : "");
        }
        CL_ENSURE_GOTO(!seen[f], CL_ERR_FORMAT, "payload field %s appears twice", field_names[f]);
        seen[f] = true;
        switch ((doc_field)f) {
        case F_MODULE_ID:
            CL_GUARD_GOTO(take_text(v, "module_id", CL_ATTEST_MAX_MODULE_ID, doc->module_id, sizeof(doc->module_id)));
            break;
        case F_DIGEST:
            CL_GUARD_GOTO(take_text(v, "digest", sizeof(doc->digest) - 1, doc->digest, sizeof(doc->digest)));
            CL_ENSURE_GOTO(strcmp(doc->digest, "SHA384") == 0, CL_ERR_UNSUPPORTED,
                           "digest is \"%s\", expected \"SHA384\"", doc->digest);
            break;
        case F_TIMESTAMP:
            CL_ENSURE_GOTO(cbor_isa_uint(v), CL_ERR_FORMAT, "timestamp is %s, expected an unsigned integer",
                           cbor_type_name(v));
            doc->timestamp_ms = cbor_get_int(v);
            CL_ENSURE_GOTO(doc->timestamp_ms > 0, CL_ERR_FORMAT, "timestamp is 0");
            break;
        case F_PCRS: CL_GUARD_GOTO(parse_pcrs(v, doc)); break;
        case F_CERTIFICATE:
            CL_GUARD_GOTO(take_bytes(v, "certificate", 1, CL_ATTEST_MAX_CERT_LEN, &doc->certificate));
            break;
        case F_CABUNDLE: CL_GUARD_GOTO(parse_cabundle(v, doc)); break;
        case F_PUBLIC_KEY:
            CL_GUARD_GOTO(parse_optional(v, "public_key", 1, &doc->has_public_key, &doc->public_key));
            break;
        case F_USER_DATA: CL_GUARD_GOTO(parse_optional(v, "user_data", 0, &doc->has_user_data, &doc->user_data)); break;
        case F_NONCE: CL_GUARD_GOTO(parse_optional(v, "nonce", 0, &doc->has_nonce, &doc->nonce)); break;
        default: break;
        }
    }
    for (int j = 0; j <= F_CABUNDLE; j++)
        CL_ENSURE_GOTO(seen[j], CL_ERR_FORMAT, "payload lacks the mandatory field %s", field_names[j]);
out:
    cbor_decref(&m);
    return rc;
}

cl_status cl_attest_doc_parse(const uint8_t *p, size_t n, cl_attest_doc *doc)
{
    cl_status rc = CL_OK;
    cbor_item_t *top = NULL;
    cl_attest_doc_free(doc);
    CL_ENSURE(n > 0, CL_ERR_FORMAT, "attestation document is empty");
    CL_ENSURE(n <= CL_ATTEST_MAX_DOC_LEN, CL_ERR_LIMIT, "attestation document is %zu bytes, at most %zu accepted", n,
              CL_ATTEST_MAX_DOC_LEN);
    CL_GUARD(cl_attest_cbor_check(p, n, "attestation document"));
    cl_reader r = cl_reader_make(p, n);
    if ((p[0] >> 5) == 6) {
        /* RFC 8152 section 2: COSE_Sign1 may be tagged 18 or untagged. The tag is read here
         * rather than by libcbor, whose 0.8 decoder rejects tags 6 to 20 in the initial byte. */
        uint8_t ib = 0, b8 = 0;
        uint16_t b16 = 0;
        uint32_t b32 = 0;
        uint64_t tag = 0;
        CL_GUARD(cl_reader_u8(&r, &ib));
        switch (ib & 31u) {
        case 24:
            CL_GUARD(cl_reader_u8(&r, &b8));
            tag = b8;
            break;
        case 25:
            CL_GUARD(cl_reader_u16be(&r, &b16));
            tag = b16;
            break;
        case 26:
            CL_GUARD(cl_reader_u32be(&r, &b32));
            tag = b32;
            break;
        case 27: CL_GUARD(cl_reader_u64be(&r, &tag)); break;
        default: tag = ib & 31u; break;
        }
        CL_ENSURE(tag == 18, CL_ERR_FORMAT,
                  "attestation document has CBOR tag %llu, expected COSE_Sign1 (tag 18) or no tag",
                  (unsigned long long)tag);
        doc->tagged = true;
    }
    const uint8_t *body = NULL;
    size_t body_len = 0;
    cl_reader_rest(&r, &body, &body_len);
    CL_GUARD(cbor_decode(body, body_len, "attestation document", &top));
    const cbor_item_t *arr = top;
    CL_ENSURE_GOTO(cbor_isa_array(arr), CL_ERR_FORMAT, "attestation document is %s, expected a COSE_Sign1 array",
                   cbor_type_name(arr));
    CL_ENSURE_GOTO(cbor_array_size(arr) == 4, CL_ERR_FORMAT,
                   "COSE_Sign1 has %zu elements, expected 4 (protected, unprotected, payload, signature)",
                   cbor_array_size(arr));
    cbor_item_t **el = cbor_array_handle(arr);
    CL_GUARD_GOTO(take_bytes(el[0], "COSE protected header", 1, 64, &doc->protected_header));
    CL_ENSURE_GOTO(cbor_isa_map(el[1]), CL_ERR_FORMAT, "COSE unprotected header is %s, expected a map",
                   cbor_type_name(el[1]));
    CL_ENSURE_GOTO(cbor_map_size(el[1]) == 0, CL_ERR_UNSUPPORTED,
                   "COSE unprotected header has %zu entries, expected none", cbor_map_size(el[1]));
    CL_GUARD_GOTO(take_bytes(el[2], "COSE payload", 1, CL_ATTEST_MAX_PAYLOAD_LEN, &doc->payload));
    CL_ENSURE_GOTO(cbor_isa_bytestring(el[3]) && cbor_bytestring_is_definite(el[3]), CL_ERR_FORMAT,
                   "COSE signature is %s, expected a byte string", cbor_type_name(el[3]));
    CL_ENSURE_GOTO(cbor_bytestring_length(el[3]) == CL_ATTEST_SIG_LEN, CL_ERR_FORMAT,
                   "COSE signature is %zu bytes, expected %d (ES384 r||s)", cbor_bytestring_length(el[3]),
                   CL_ATTEST_SIG_LEN);
    memcpy(doc->signature, cbor_bytestring_handle(el[3]), CL_ATTEST_SIG_LEN);
    CL_GUARD_GOTO(parse_protected(&doc->protected_header));
    CL_GUARD_GOTO(parse_payload(doc));
out:
    cbor_decref(&top);
    if (rc != CL_OK) {
        bool tagged = doc->tagged;
        cl_attest_doc_free(doc);
        doc->tagged = tagged;
    }
    return rc;
}

/* --- roots --------------------------------------------------------------- */

void cl_attest_roots_init(cl_attest_roots *r) { memset(r, 0, sizeof(*r)); }

/* --- verified-chain cache ------------------------------------------------ */

typedef struct chain_entry {
    bool used;
    uint8_t key[CL_SHA256_LEN];
    int64_t from, until; /* every certificate valid when from <= t < until (OpenSSL's rule) */
    EVP_PKEY *leaf_key;
} chain_entry;

/* Documents whose ES384 signature verified, by SHA-256 of their bytes: the signature is a
 * function of those bytes alone (the key is the certificate inside them, whose chain is
 * checked on every call, through the chain entries, at the call's time). An enclave sends
 * the same document with each of its KMS calls; this spares the P-384 verification. */
#define SIG_CACHE_ENTRIES 256

typedef struct chain_cache {
    pthread_mutex_t lock;
    size_t n, next;
    uint64_t hits;
    size_t sig_next;
    bool sig_used[SIG_CACHE_ENTRIES];
    uint8_t sig_ok[SIG_CACHE_ENTRIES][CL_SHA256_LEN];
    chain_entry e[];
} chain_cache;

static bool sig_cache_has(chain_cache *c, const uint8_t key[CL_SHA256_LEN])
{
    bool found = false;
    (void)pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < SIG_CACHE_ENTRIES && !found; i++)
        found = c->sig_used[i] && cl_ct_equal(c->sig_ok[i], key, CL_SHA256_LEN);
    (void)pthread_mutex_unlock(&c->lock);
    return found;
}

static void sig_cache_put(chain_cache *c, const uint8_t key[CL_SHA256_LEN])
{
    (void)pthread_mutex_lock(&c->lock);
    memcpy(c->sig_ok[c->sig_next], key, CL_SHA256_LEN);
    c->sig_used[c->sig_next] = true;
    c->sig_next = (c->sig_next + 1) % SIG_CACHE_ENTRIES;
    (void)pthread_mutex_unlock(&c->lock);
}

#define CHAIN_CACHE_MAX 65536

static void chain_cache_free(chain_cache *c)
{
    if (c == NULL) return;
    for (size_t i = 0; i < c->n; i++) EVP_PKEY_free(c->e[i].leaf_key);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

cl_status cl_attest_roots_enable_cache(cl_attest_roots *r, size_t entries)
{
    CL_ENSURE(entries >= 1 && entries <= CHAIN_CACHE_MAX, CL_ERR_USAGE, "chain cache size must be 1 to %d",
              CHAIN_CACHE_MAX);
    CL_ENSURE(r->cache == NULL, CL_ERR_STATE, "the chain cache is already enabled");
    chain_cache *c = calloc(1, sizeof(*c) + entries * sizeof(chain_entry));
    CL_ENSURE(c != NULL, CL_ERR_NOMEM, "out of memory for a chain cache of %zu entries", entries);
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        CL_FAIL(CL_ERR_INTERNAL, "pthread_mutex_init failed");
    }
    c->n = entries;
    r->cache = c;
    return CL_OK;
}

uint64_t cl_attest_roots_cache_hits(const cl_attest_roots *r)
{
    chain_cache *c = r->cache;
    if (c == NULL) return 0;
    (void)pthread_mutex_lock(&c->lock);
    uint64_t h = c->hits;
    (void)pthread_mutex_unlock(&c->lock);
    return h;
}

/* SHA-256 over the length-prefixed certificate and cabundle entries. */
static CL_MUST_USE cl_status chain_key(const cl_attest_doc *doc, uint8_t key[CL_SHA256_LEN])
{
    cl_buf b;
    cl_buf_init(&b, (size_t)(CL_ATTEST_MAX_CABUNDLE + 1) * (CL_ATTEST_MAX_CERT_LEN + 4));
    cl_status rc = cl_buf_append_u32be(&b, (uint32_t)doc->certificate.len);
    if (rc == CL_OK) rc = cl_buf_append(&b, doc->certificate.data, doc->certificate.len);
    for (size_t i = 0; rc == CL_OK && i < doc->cabundle_len; i++) {
        rc = cl_buf_append_u32be(&b, (uint32_t)doc->cabundle[i].len);
        if (rc == CL_OK) rc = cl_buf_append(&b, doc->cabundle[i].data, doc->cabundle[i].len);
    }
    if (rc == CL_OK) rc = cl_sha256(b.data, b.len, key);
    cl_buf_free(&b);
    return rc;
}

/* The cached leaf key (a new reference) when the chain is known and valid at `at`. */
static EVP_PKEY *chain_cache_get(chain_cache *c, const uint8_t key[CL_SHA256_LEN], int64_t at)
{
    EVP_PKEY *k = NULL;
    (void)pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        chain_entry *e = &c->e[i];
        if (e->used && memcmp(e->key, key, CL_SHA256_LEN) == 0) {
            if (at >= e->from && at < e->until && EVP_PKEY_up_ref(e->leaf_key) == 1) {
                k = e->leaf_key;
                c->hits++;
            }
            break;
        }
    }
    (void)pthread_mutex_unlock(&c->lock);
    return k;
}

static void chain_cache_put(chain_cache *c, const uint8_t key[CL_SHA256_LEN], int64_t from, int64_t until,
                            EVP_PKEY *leaf_key)
{
    if (EVP_PKEY_up_ref(leaf_key) != 1) return;
    (void)pthread_mutex_lock(&c->lock);
    size_t n = c->n, slot = c->next;
    if (n == 0) { /* never: enable_cache makes at least one entry */
        (void)pthread_mutex_unlock(&c->lock);
        EVP_PKEY_free(leaf_key);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (c->e[i].used && memcmp(c->e[i].key, key, CL_SHA256_LEN) == 0) {
            slot = i;
            break;
        }
    }
    if (slot == c->next) c->next = (c->next + 1) % n;
    chain_entry *e = &c->e[slot];
    EVP_PKEY_free(e->leaf_key);
    e->used = true;
    memcpy(e->key, key, CL_SHA256_LEN);
    e->from = from;
    e->until = until;
    e->leaf_key = leaf_key;
    (void)pthread_mutex_unlock(&c->lock);
}

static bool asn1_to_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) return false;
    *out = (int64_t)timegm(&tm);
    return true;
}

void cl_attest_roots_free(cl_attest_roots *r)
{
    chain_cache_free(r->cache);
    X509_STORE_free(r->store);
    for (size_t i = 0; i < r->count; i++) X509_free(r->certs[i]);
    cl_attest_roots_init(r);
}

static CL_MUST_USE cl_status roots_add_one(cl_attest_roots *r, X509 *x)
{
    CL_ENSURE(r->count < CL_ATTEST_MAX_ROOTS, CL_ERR_LIMIT, "at most %d attestation roots can be configured",
              CL_ATTEST_MAX_ROOTS);
    if (r->store == NULL) {
        r->store = X509_STORE_new();
        if (r->store == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "X509_STORE_new");
    }
    for (size_t i = 0; i < r->count; i++)
        if (X509_cmp(r->certs[i], x) == 0) return CL_OK; /* already pinned */
    if (X509_STORE_add_cert(r->store, x) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "cannot add a root to the store");
    if (X509_up_ref(x) != 1) CL_FAIL_SSL(CL_ERR_CRYPTO, "X509_up_ref");
    r->certs[r->count++] = x;
    return CL_OK;
}

cl_status cl_attest_roots_add(cl_attest_roots *r, const uint8_t *p, size_t n)
{
    cl_status rc = CL_OK;
    CL_ENSURE(n > 0 && n <= (1u << 20), CL_ERR_FORMAT, "root certificate input of %zu bytes", n);
    if (p[0] == 0x30) { /* DER SEQUENCE */
        const uint8_t *q = p;
        X509 *x = d2i_X509(NULL, &q, (long)n);
        if (x == NULL || q != p + n) {
            X509_free(x);
            CL_FAIL_SSL(CL_ERR_FORMAT, "root is not a DER X.509 certificate");
        }
        rc = roots_add_one(r, x);
        X509_free(x);
        return rc;
    }
    BIO *bio = BIO_new_mem_buf(p, (int)n);
    size_t added = 0;
    if (bio == NULL) CL_FAIL_SSL(CL_ERR_NOMEM, "BIO_new_mem_buf");
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (x == NULL) break;
        rc = roots_add_one(r, x);
        X509_free(x);
        if (rc != CL_OK) goto out;
        added++;
    }
    ERR_clear_error();
    CL_ENSURE_GOTO(added > 0, CL_ERR_FORMAT, "no PEM certificate found in the root input");
out:
    BIO_free(bio);
    return rc;
}

cl_status cl_attest_roots_add_file(cl_attest_roots *r, const char *path)
{
    cl_buf b;
    cl_buf_init(&b, 1u << 20);
    cl_status rc = cl_buf_read_file(&b, path);
    if (rc == CL_OK) rc = cl_attest_roots_add(r, b.data, b.len);
    if (rc != CL_OK) rc = cl_error_wrap("attestation root %s", path);
    cl_buf_free(&b);
    return rc;
}

/* --- chain --------------------------------------------------------------- */

void cl_attest_fmt_time(int64_t t, char *out, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(out, size, "@%lld", (long long)t);
}

static void fmt_asn1_time(const ASN1_TIME *t, char *out, size_t size)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        (void)snprintf(out, size, "(unreadable time)");
}

static void fmt_subject(X509 *x, char *out, size_t size)
{
    out[0] = '\0';
    if (x == NULL) return;
    X509_NAME *nm = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    ASN1_STRING *cn = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)) : NULL;
    if (cn != NULL)
        (void)snprintf(out, size, "CN=%.*s", ASN1_STRING_length(cn), (const char *)ASN1_STRING_get0_data(cn));
    else
        (void)X509_NAME_oneline(nm, out, (int)size);
}

typedef struct chain_certs {
    X509 *leaf;
    X509 *ca[CL_ATTEST_MAX_CABUNDLE];
    size_t n;
} chain_certs;

/* "the document's certificate (CN=...)", "cabundle[2] (CN=...)" or "root (CN=...)". */
static void name_cert(const chain_certs *c, X509 *x, char *out, size_t size)
{
    char subj[160];
    fmt_subject(x, subj, sizeof(subj));
    if (x != NULL && c->leaf != NULL && X509_cmp(x, c->leaf) == 0) {
        (void)snprintf(out, size, "the document's certificate (%s)", subj);
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (x != NULL && X509_cmp(x, c->ca[i]) == 0) {
            (void)snprintf(out, size, "cabundle[%zu] (%s)", i, subj);
            return;
        }
    }
    (void)snprintf(out, size, "certificate %s", subj[0] ? subj : "(unknown)");
}

static CL_MUST_USE cl_status decode_cert(const cl_buf *der, const char *name, X509 **out)
{
    const uint8_t *q = der->data;
    *out = d2i_X509(NULL, &q, (long)der->len);
    if (*out == NULL || q != der->data + der->len) {
        X509_free(*out);
        *out = NULL;
        CL_FAIL_SSL(CL_ERR_FORMAT, "%s is not a DER X.509 certificate", name);
    }
    return CL_OK;
}

static bool ext_critical(X509 *x, int nid)
{
    int i = X509_get_ext_by_NID(x, nid, -1);
    return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

/* attestation_process.md 3.2.3.2 and 3.2.3.3: CA certificates carry basicConstraints
 * (critical, CA) and keyCertSign; the leaf carries digitalSignature and is no CA. */
static CL_MUST_USE cl_status check_extensions(const chain_certs *c)
{
    char nm[256];
    for (size_t i = 0; i < c->n; i++) {
        X509 *x = c->ca[i];
        uint32_t fl = X509_get_extension_flags(x);
        name_cert(c, x, nm, sizeof(nm));
        CL_ENSURE((fl & EXFLAG_BCONS) && (fl & EXFLAG_CA) && ext_critical(x, NID_basic_constraints), CL_ERR_AUTH,
                  "%s lacks a critical basicConstraints extension with CA set", nm);
        CL_ENSURE((fl & EXFLAG_KUSAGE) && (X509_get_key_usage(x) & KU_KEY_CERT_SIGN), CL_ERR_AUTH,
                  "%s lacks the keyCertSign key usage", nm);
    }
    uint32_t fl = X509_get_extension_flags(c->leaf);
    name_cert(c, c->leaf, nm, sizeof(nm));
    CL_ENSURE(!(fl & EXFLAG_CA) && X509_get_pathlen(c->leaf) < 0, CL_ERR_AUTH,
              "%s is a CA certificate; the signing certificate must be an end entity", nm);
    CL_ENSURE((fl & EXFLAG_KUSAGE) && (X509_get_key_usage(c->leaf) & KU_DIGITAL_SIGNATURE), CL_ERR_AUTH,
              "%s lacks the digitalSignature key usage", nm);
    EVP_PKEY *pk = X509_get0_pubkey(c->leaf);
    char group[64] = "";
    size_t glen = 0;
    CL_ENSURE(pk != NULL && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC &&
                  EVP_PKEY_get_group_name(pk, group, sizeof(group), &glen) == 1 && strcmp(group, "secp384r1") == 0,
              CL_ERR_AUTH, "%s does not hold an EC P-384 key (ES384 needs one)", nm);
    return CL_OK;
}

static CL_MUST_USE cl_status verify_chain(const cl_attest_doc *doc, const cl_attest_roots *roots, int64_t at,
                                          EVP_PKEY **leaf_key)
{
    cl_status rc = CL_OK;
    chain_certs c = {.leaf = NULL, .n = 0};
    STACK_OF(X509) *untrusted = NULL;
    X509_STORE_CTX *ctx = NULL;
    char nm[256], when[32], at_s[32];
    cl_attest_fmt_time(at, at_s, sizeof(at_s));
    uint8_t cache_key[CL_SHA256_LEN];
    chain_cache *cache = NULL;
    CL_ENSURE(roots != NULL && roots->count > 0, CL_ERR_USAGE,
              "no attestation root is configured (give the sim root or AWS Nitro Root-G1)");
    if (roots->cache != NULL) {
        CL_GUARD(chain_key(doc, cache_key));
        cache = roots->cache;
        *leaf_key = chain_cache_get(cache, cache_key, at);
        if (*leaf_key != NULL) return CL_OK;
    }
    CL_GUARD_GOTO(decode_cert(&doc->certificate, "the document's certificate", &c.leaf));
    for (size_t i = 0; i < doc->cabundle_len; i++) {
        char name[32];
        (void)snprintf(name, sizeof(name), "cabundle[%zu]", i);
        CL_GUARD_GOTO(decode_cert(&doc->cabundle[i], name, &c.ca[i]));
        c.n = i + 1;
    }
    /* cabundle[0] is the root (3.2.3): it must be one we pinned, byte for byte. */
    bool pinned = false;
    for (size_t i = 0; i < roots->count; i++) pinned = pinned || X509_cmp(roots->certs[i], c.ca[0]) == 0;
    if (!pinned) {
        uint8_t fp[CL_SHA256_LEN];
        cl_buf hex;
        cl_buf_init(&hex, 128);
        fmt_subject(c.ca[0], nm, sizeof(nm));
        if (cl_sha256(doc->cabundle[0].data, doc->cabundle[0].len, fp) != CL_OK ||
            cl_buf_append_hex(&hex, fp, sizeof(fp)) != CL_OK)
            cl_buf_reset(&hex);
        rc = CL_RAISE(CL_ERR_AUTH, "cabundle[0] (%s, SHA-256 %s) is not a configured attestation root", nm,
                      cl_buf_cstr(&hex));
        cl_buf_free(&hex);
        goto out;
    }
    untrusted = sk_X509_new_null();
    ctx = X509_STORE_CTX_new();
    if (untrusted == NULL || ctx == NULL) CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "X509 verification context");
    for (size_t i = 1; i < c.n; i++)
        if (sk_X509_push(untrusted, c.ca[i]) <= 0) CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "sk_X509_push");
    if (X509_STORE_CTX_init(ctx, roots->store, c.leaf, untrusted) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "X509_STORE_CTX_init");
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t)at);
    X509_VERIFY_PARAM_set_depth(param, CL_ATTEST_MAX_CABUNDLE + 1);
    if (X509_verify_cert(ctx) != 1) {
        int err = X509_STORE_CTX_get_error(ctx);
        X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
        name_cert(&c, cur, nm, sizeof(nm));
        if (err == X509_V_ERR_CERT_HAS_EXPIRED) {
            fmt_asn1_time(X509_get0_notAfter(cur), when, sizeof(when));
            CL_FAIL_GOTO(CL_ERR_EXPIRED, "%s expired at %s (verification time %s)", nm, when, at_s);
        }
        if (err == X509_V_ERR_CERT_NOT_YET_VALID) {
            fmt_asn1_time(X509_get0_notBefore(cur), when, sizeof(when));
            CL_FAIL_GOTO(CL_ERR_EXPIRED, "%s is not valid before %s (verification time %s)", nm, when, at_s);
        }
        CL_FAIL_GOTO(CL_ERR_AUTH, "certificate chain does not verify at %s (depth %d): %s", nm,
                     X509_STORE_CTX_get_error_depth(ctx), X509_verify_cert_error_string(err));
    }
    /* The chain must be exactly [certificate, cabundle[n-1], ..., cabundle[0]] (3.2.3). */
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    int len = sk_X509_num(chain);
    CL_ENSURE_GOTO(len == (int)c.n + 1, CL_ERR_AUTH,
                   "the verified chain has %d certificates but cabundle has %zu plus the document's certificate: "
                   "cabundle holds certificates outside the chain",
                   len, c.n);
    for (int k = 1; k < len; k++) {
        X509 *want = c.ca[c.n - (size_t)k];
        if (X509_cmp(sk_X509_value(chain, k), want) != 0) {
            name_cert(&c, sk_X509_value(chain, k), nm, sizeof(nm));
            CL_FAIL_GOTO(CL_ERR_AUTH, "cabundle is out of order: issuer %d of the chain is %s, expected cabundle[%zu]",
                         k, nm, c.n - (size_t)k);
        }
    }
    CL_GUARD_GOTO(check_extensions(&c));
    *leaf_key = X509_get_pubkey(c.leaf);
    if (*leaf_key == NULL) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "cannot read the document certificate's key");
    if (cache != NULL) {
        int64_t from = 0, until = 0, t = 0;
        bool ok = asn1_to_unix(X509_get0_notBefore(c.leaf), &from) && asn1_to_unix(X509_get0_notAfter(c.leaf), &until);
        for (size_t i = 0; ok && i < c.n; i++) {
            ok = asn1_to_unix(X509_get0_notBefore(c.ca[i]), &t);
            if (ok && t > from) from = t;
            ok = ok && asn1_to_unix(X509_get0_notAfter(c.ca[i]), &t);
            if (ok && t < until) until = t;
        }
        if (ok && from <= at && at < until) chain_cache_put(cache, cache_key, from, until, *leaf_key);
    }
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_free(c.leaf);
    for (size_t i = 0; i < c.n; i++) X509_free(c.ca[i]);
    return rc;
}

/* --- COSE ---------------------------------------------------------------- */

cl_status cl_attest_cbor_head(cl_buf *b, unsigned major, uint64_t v)
{
    unsigned char tmp[9];
    size_t n = 0;
    switch (major) {
    case 0: n = cbor_encode_uint(v, tmp, sizeof(tmp)); break;
    case 1: n = cbor_encode_negint(v, tmp, sizeof(tmp)); break;
    case 2: n = cbor_encode_bytestring_start((size_t)v, tmp, sizeof(tmp)); break;
    case 3: n = cbor_encode_string_start((size_t)v, tmp, sizeof(tmp)); break;
    case 4: n = cbor_encode_array_start((size_t)v, tmp, sizeof(tmp)); break;
    case 5: n = cbor_encode_map_start((size_t)v, tmp, sizeof(tmp)); break;
    case 6: n = cbor_encode_tag(v, tmp, sizeof(tmp)); break;
    default: n = cbor_encode_null(tmp, sizeof(tmp)); break;
    }
    CL_ENSURE(n > 0, CL_ERR_INTERNAL, "CBOR head encoding failed");
    return cl_buf_append(b, tmp, n);
}

cl_status cl_attest_sig_structure(const uint8_t *prot, size_t prot_len, const uint8_t *payload, size_t payload_len,
                                  cl_buf *out)
{
    /* RFC 8152 section 4.4: ["Signature1", body_protected, external_aad = h'', payload] */
    static const char ctx[] = "Signature1";
    CL_GUARD(cl_attest_cbor_head(out, 4, 4));
    CL_GUARD(cl_attest_cbor_head(out, 3, sizeof(ctx) - 1));
    CL_GUARD(cl_buf_append(out, ctx, sizeof(ctx) - 1));
    CL_GUARD(cl_attest_cbor_head(out, 2, prot_len));
    CL_GUARD(cl_buf_append(out, prot, prot_len));
    CL_GUARD(cl_attest_cbor_head(out, 2, 0));
    CL_GUARD(cl_attest_cbor_head(out, 2, payload_len));
    return cl_buf_append(out, payload, payload_len);
}

static CL_MUST_USE cl_status verify_signature(const cl_attest_doc *doc, EVP_PKEY *key)
{
    cl_status rc = CL_OK;
    cl_buf tbs;
    ECDSA_SIG *sig = NULL;
    BIGNUM *r = NULL, *s = NULL;
    uint8_t *der = NULL;
    EVP_MD_CTX *md = NULL;
    cl_buf_init(&tbs, CL_ATTEST_MAX_PAYLOAD_LEN + 256);
    CL_GUARD_GOTO(cl_attest_sig_structure(doc->protected_header.data, doc->protected_header.len, doc->payload.data,
                                          doc->payload.len, &tbs));
    /* ES384's r||s (RFC 8152 section 8.1) -> the DER ECDSA-Sig-Value OpenSSL verifies. High-S is accepted. */
    sig = ECDSA_SIG_new();
    r = BN_bin2bn(doc->signature, CL_ATTEST_SIG_LEN / 2, NULL);
    s = BN_bin2bn(doc->signature + CL_ATTEST_SIG_LEN / 2, CL_ATTEST_SIG_LEN / 2, NULL);
    if (sig == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(sig, r, s) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_NOMEM, "ECDSA signature");
    r = s = NULL; /* owned by sig */
    int der_len = i2d_ECDSA_SIG(sig, &der);
    if (der_len <= 0) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "encoding the ECDSA signature");
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, key) != 1)
        CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "ECDSA P-384 verification setup");
    int ok = EVP_DigestVerify(md, der, (size_t)der_len, tbs.data, tbs.len);
    ERR_clear_error();
    CL_ENSURE_GOTO(ok == 1, CL_ERR_AUTH,
                   "COSE signature does not verify with the document certificate's key (ES384 over the "
                   "Sig_structure): the document was altered or signed by another key");
out:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    cl_buf_free(&tbs);
    return rc;
}

/* --- policy -------------------------------------------------------------- */

cl_status cl_attest_check_policy(const cl_attest_doc *doc, const cl_attest_policy *policy)
{
    char a[100], b[100], ts[32], at[32];
    CL_ENSURE(policy != NULL, CL_ERR_USAGE, "no verification policy (the verification time is required)");
    CL_ENSURE(policy->verify_at > 0 && policy->verify_at <= CL_ATTEST_MAX_TIME, CL_ERR_USAGE,
              "the verification time must be between 1970 and 9999");
    uint64_t at_ms = (uint64_t)policy->verify_at * 1000u;
    cl_attest_fmt_time((int64_t)(doc->timestamp_ms / 1000u), ts, sizeof(ts));
    cl_attest_fmt_time(policy->verify_at, at, sizeof(at));
    CL_ENSURE(doc->timestamp_ms <= at_ms + CL_ATTEST_CLOCK_SKEW_MS, CL_ERR_EXPIRED,
              "document timestamp %s is %llu ms after the verification time %s (more than the %llu ms clock skew "
              "allowed)",
              ts, (unsigned long long)(doc->timestamp_ms - at_ms), at, (unsigned long long)CL_ATTEST_CLOCK_SKEW_MS);
    if (policy->max_age_ms > 0 && at_ms > doc->timestamp_ms) {
        uint64_t age = at_ms - doc->timestamp_ms;
        CL_ENSURE(age <= policy->max_age_ms, CL_ERR_EXPIRED,
                  "document is too old: created %s, %llu ms before the verification time %s; maximum age %llu ms", ts,
                  (unsigned long long)age, at, (unsigned long long)policy->max_age_ms);
    }
    for (size_t i = 0; i < policy->pcr_count; i++) {
        const cl_attest_pcr *want = &policy->pcrs[i];
        CL_ENSURE(want->index < CL_ATTEST_MAX_PCRS, CL_ERR_USAGE, "expected PCR index %u is out of range 0 to 31",
                  want->index);
        CL_ENSURE(doc->pcr_mask & (1u << want->index), CL_ERR_DENIED, "PCR%u is absent from the document", want->index);
        if (!cl_ct_equal(doc->pcrs[want->index], want->value, CL_ATTEST_PCR_LEN)) {
            (void)cl_hex_encode(doc->pcrs[want->index], CL_ATTEST_PCR_LEN, a, sizeof(a));
            (void)cl_hex_encode(want->value, CL_ATTEST_PCR_LEN, b, sizeof(b));
            CL_FAIL(CL_ERR_DENIED, "PCR%u is %s, expected %s", want->index, a, b);
        }
    }
    if (policy->nonce != NULL) {
        CL_ENSURE(doc->has_nonce, CL_ERR_DENIED, "nonce mismatch: the document carries no nonce, one was expected");
        bool same = doc->nonce.len == policy->nonce_len &&
                    (policy->nonce_len == 0 || cl_ct_equal(doc->nonce.data, policy->nonce, policy->nonce_len));
        if (!same) {
            (void)cl_hex_encode(doc->nonce.data, doc->nonce.len, a, sizeof(a));
            (void)cl_hex_encode(policy->nonce, policy->nonce_len, b, sizeof(b));
            CL_FAIL(CL_ERR_DENIED, "nonce mismatch: the document's nonce is %s (%zu bytes), expected %s (%zu bytes)", a,
                    doc->nonce.len, b, policy->nonce_len);
        }
    }
    return CL_OK;
}

cl_status cl_attest_verify(const uint8_t *p, size_t n, const cl_attest_roots *roots, const cl_attest_policy *policy,
                           cl_attest_doc *out)
{
    cl_status rc = CL_OK;
    cl_attest_doc local;
    cl_attest_doc *doc = out != NULL ? out : &local;
    EVP_PKEY *key = NULL;
    if (out == NULL) cl_attest_doc_init(&local);
    CL_ENSURE_GOTO(policy != NULL, CL_ERR_USAGE, "no verification policy (the verification time is required)");
    CL_ENSURE_GOTO(policy->verify_at > 0 && policy->verify_at <= CL_ATTEST_MAX_TIME, CL_ERR_USAGE,
                   "the verification time must be between 1970 and 9999");
    CL_GUARD_GOTO(cl_attest_doc_parse(p, n, doc));
    CL_GUARD_GOTO(verify_chain(doc, roots, policy->verify_at, &key));
    chain_cache *cache = roots->cache;
    uint8_t doc_key[CL_SHA256_LEN];
    if (cache != NULL) CL_GUARD_GOTO(cl_sha256(p, n, doc_key));
    if (cache == NULL || !sig_cache_has(cache, doc_key)) {
        CL_GUARD_GOTO(verify_signature(doc, key));
        if (cache != NULL) sig_cache_put(cache, doc_key);
    }
    CL_GUARD_GOTO(cl_attest_check_policy(doc, policy));
out:
    EVP_PKEY_free(key);
    if (out == NULL || rc != CL_OK) cl_attest_doc_free(doc);
    return rc;
}
