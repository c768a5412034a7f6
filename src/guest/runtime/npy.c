/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NumPy .npy files (numpy/lib/format.py, "NPY format"): the magic "\x93NUMPY",
 * a version, a little-endian header length, then a Python dict literal
 * {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } padded with
 * spaces and a newline, then the raw data. The header is parsed with bounded
 * reads only; nothing in it is evaluated.
 */
#include <stdio.h>
#include <string.h>

#include "infer_internal.h"

#define NPY_HEADER_MAX 65536

static const struct {
    const char *descr;
    const char *alt; /* the same type as numpy may also spell it */
    cl_infer_dtype dt;
} npy_types[] = {
    {"<f4", "<f4", CL_INFER_FLOAT},  {"<f8", "<f8", CL_INFER_DOUBLE}, {"|u1", "<u1", CL_INFER_UINT8},
    {"|i1", "<i1", CL_INFER_INT8},   {"<u2", "<u2", CL_INFER_UINT16}, {"<i2", "<i2", CL_INFER_INT16},
    {"<i4", "<i4", CL_INFER_INT32},  {"<i8", "<i8", CL_INFER_INT64},  {"|b1", "<b1", CL_INFER_BOOL},
    {"<u4", "<u4", CL_INFER_UINT32}, {"<u8", "<u8", CL_INFER_UINT64},
};

/* A sub-reader of the header from just after `'key':` and its spaces. */
static CL_MUST_USE cl_status npy_find_key(const cl_reader *h, const char *key, cl_reader *value)
{
    char pat[32];
    int n = snprintf(pat, sizeof(pat), "'%s':", key);
    const uint8_t *p = NULL;
    size_t len = 0;
    cl_reader_rest(h, &p, &len);
    const uint8_t *at = (n > 0 && len > 0) ? memmem(p, len, pat, (size_t)n) : NULL;
    CL_ENSURE(at != NULL, CL_ERR_FORMAT, ".npy header has no '%s' entry", key);
    *value = *h;
    CL_GUARD(cl_reader_skip(value, (size_t)(at - p) + (size_t)n));
    (void)cl_reader_skip_any(value, " ");
    return CL_OK;
}

cl_status cl_infer_npy_parse(const void *bytes, size_t len, cl_infer_tensor *out)
{
    memset(out, 0, sizeof(*out));
    cl_reader r = cl_reader_make(bytes, len);
    uint8_t major, minor;
    if (cl_reader_expect(&r, "\x93NUMPY", 6, "the .npy magic") != CL_OK)
        CL_FAIL(CL_ERR_FORMAT, "not a .npy file (bad magic)");
    CL_GUARD(cl_reader_u8(&r, &major));
    CL_GUARD(cl_reader_u8(&r, &minor));
    CL_ENSURE(major >= 1 && major <= 3, CL_ERR_UNSUPPORTED, ".npy format version %u.%u is not supported", major, minor);
    size_t hlen;
    if (major == 1) { /* version 1: a 2-byte header length; 2 and 3: 4 bytes */
        uint16_t l16 = 0;
        CL_GUARD(cl_reader_u16le(&r, &l16));
        hlen = l16;
    } else {
        uint32_t l32 = 0;
        CL_GUARD(cl_reader_u32le(&r, &l32));
        hlen = l32;
    }
    CL_ENSURE(hlen <= NPY_HEADER_MAX, CL_ERR_LIMIT, ".npy header of %zu bytes exceeds %d", hlen, NPY_HEADER_MAX);
    const uint8_t *hp;
    CL_GUARD_CTX(cl_reader_bytes(&r, hlen, &hp), "reading the .npy header");
    cl_reader h = cl_reader_make(hp, hlen);

    cl_reader v;
    CL_GUARD(npy_find_key(&h, "descr", &v));
    cl_infer_dtype dt = CL_INFER_UNDEFINED;
    for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++) {
        const char *names[2] = {npy_types[i].descr, npy_types[i].alt};
        for (int k = 0; k < 2; k++) {
            char quoted[8];
            (void)snprintf(quoted, sizeof(quoted), "'%s'", names[k]);
            if (cl_reader_starts_with_str(&v, quoted)) dt = npy_types[i].dt;
        }
    }
    /* numpy.save writes an object array's elements as a pickle after the
     * header (format.py, write_array: descr '|O'); loading it runs code. */
    CL_ENSURE(!cl_reader_starts_with_str(&v, "'|O'") && !cl_reader_starts_with_str(&v, "'O'") &&
                  !cl_reader_starts_with_str(&v, "'<O'") && !cl_reader_starts_with_str(&v, "'>O'"),
              CL_ERR_UNSUPPORTED,
              "the .npy array holds Python objects (dtype 'O'): pickled Python objects are refused: unpickling runs "
              "code; write CSV or numpy.save(..., allow_pickle=False)");
    CL_ENSURE(dt != CL_INFER_UNDEFINED, CL_ERR_UNSUPPORTED,
              ".npy element type is not supported (little-endian float32/64, integers and bool are)");
    CL_GUARD(npy_find_key(&h, "fortran_order", &v));
    CL_ENSURE(cl_reader_starts_with_str(&v, "False"), CL_ERR_UNSUPPORTED,
              ".npy data in Fortran order is not supported; save a C-ordered array (numpy.ascontiguousarray)");
    CL_GUARD(npy_find_key(&h, "shape", &v));
    CL_ENSURE(cl_reader_next_is(&v, '('), CL_ERR_FORMAT, ".npy shape is not a tuple");
    CL_GUARD(cl_reader_skip(&v, 1));
    int rank = 0;
    int64_t dims[CL_INFER_MAX_RANK];
    for (;;) {
        (void)cl_reader_skip_any(&v, " ,");
        uint8_t c = 0;
        CL_ENSURE(cl_reader_peek_u8(&v, &c), CL_ERR_FORMAT, ".npy shape is not terminated");
        if (c == ')') break;
        CL_ENSURE(c >= '0' && c <= '9', CL_ERR_FORMAT, ".npy shape holds a non-number");
        CL_ENSURE(rank < CL_INFER_MAX_RANK, CL_ERR_LIMIT, ".npy array has more than %d dimensions", CL_INFER_MAX_RANK);
        uint64_t d = 0;
        if (cl_reader_decimal(&v, (uint64_t)1 << 40, &d) != CL_OK) CL_FAIL(CL_ERR_LIMIT, ".npy dimension is too large");
        dims[rank++] = (int64_t)d;
    }
    size_t count;
    CL_GUARD_CTX(infer_shape_count(rank, dims, &count), ".npy shape");
    size_t need = count * cl_infer_dtype_size(dt);
    CL_ENSURE(cl_reader_remaining(&r) == need, CL_ERR_FORMAT, ".npy data holds %zu bytes; its shape needs %zu",
              cl_reader_remaining(&r), need);
    const uint8_t *data;
    CL_GUARD(cl_reader_bytes(&r, need, &data));
    CL_GUARD(cl_infer_tensor_alloc(out, dt, rank, dims));
    if (need) memcpy(out->data, data, need);
    return CL_OK;
}

cl_status cl_infer_npy_write(const cl_infer_tensor *t, cl_buf *out)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
        if (npy_types[i].dt == t->dtype) descr = npy_types[i].descr;
    CL_ENSURE(descr != NULL, CL_ERR_UNSUPPORTED, "cannot write %s tensors as .npy", cl_infer_dtype_name(t->dtype));
    char hdr[512];
    int n = snprintf(hdr, sizeof(hdr), "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    /* Python's tuple repr: "()", "(3,)", "(3, 2)". */
    for (int i = 0; i < t->rank && n > 0 && (size_t)n < sizeof(hdr); i++)
        n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "%s%lld%s", i ? ", " : "", (long long)t->dims[i],
                      t->rank == 1 ? "," : "");
    if (n > 0 && (size_t)n < sizeof(hdr)) n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, "), }");
    CL_ENSURE(n > 0 && (size_t)n + 64 < sizeof(hdr), CL_ERR_INTERNAL, ".npy header does not fit");
    /* Pad with spaces so magic + 4 + header + newline is a multiple of 64. */
    size_t total = 10 + (size_t)n + 1;
    size_t pad = (64 - total % 64) % 64;
    memset(hdr + n, ' ', pad);
    hdr[(size_t)n + pad] = '\n';
    size_t hlen = (size_t)n + pad + 1;
    CL_GUARD(cl_buf_append(out, "\x93NUMPY\x01\x00", 8));
    CL_GUARD(cl_buf_append_u8(out, (uint8_t)(hlen & 0xff)));
    CL_GUARD(cl_buf_append_u8(out, (uint8_t)(hlen >> 8)));
    CL_GUARD(cl_buf_append(out, hdr, hlen));
    CL_GUARD(cl_buf_append(out, t->data, t->nbytes));
    return CL_OK;
}
