/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Request bodies of forms, read through cl_reader with their bounds (the body's own bound is
 * http.c's):
 *  - application/x-www-form-urlencoded, as the WHATWG URL Standard's "application/
 *    x-www-form-urlencoded parser" reads it: sequences split on '&', each on its first '=', '+'
 *    is a space, %XX a byte; what curl -d sends unencoded (spaces, quotes) stays as sent;
 *  - multipart/form-data (RFC 7578, whose framing is RFC 2046 section 5.1.1): parts between
 *    "--boundary" delimiter lines, each with its headers, the field's name from
 *    Content-Disposition: form-data; name="...".
 */
#include <stdio.h>
#include <string.h>

#include "cloister/api.h"

#define FORM_BOUNDARY_MAX 70 /* RFC 2046 section 5.1.1 */
#define FORM_PART_HEADERS_MAX 1024

void cl_api_form_init(cl_api_form *f)
{
    memset(f, 0, sizeof(*f));
    cl_buf_init_secret(&f->storage, CL_API_DELINEATE_BODY_MAX + 2 * CL_API_FORM_MAX_PAIRS);
}

void cl_api_form_free(cl_api_form *f)
{
    cl_buf_free(&f->storage);
    f->n = 0;
}

static int form_hex(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Appends the percent-decoded bytes of r to storage; where says which part for the message. */
static CL_MUST_USE cl_status form_decode(cl_reader r, size_t base, cl_buf *storage, size_t *len)
{
    size_t start = storage->len;
    uint8_t c;
    while (cl_reader_u8(&r, &c) == CL_OK) {
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            size_t at = base + cl_reader_offset(&r) - 1;
            uint8_t h = 0, l = 0;
            CL_ENSURE(cl_reader_u8(&r, &h) == CL_OK && cl_reader_u8(&r, &l) == CL_OK && form_hex(h) >= 0 &&
                          form_hex(l) >= 0,
                      CL_ERR_FORMAT, "the form has a '%%' not followed by two hex digits at byte %zu", at);
            c = (uint8_t)(form_hex(h) * 16 + form_hex(l));
        }
        CL_GUARD(cl_buf_append_u8(storage, c));
    }
    *len = storage->len - start;
    return CL_OK;
}

cl_status cl_api_form_parse_urlencoded(const uint8_t *p, size_t n, cl_api_form *out)
{
    /* Decoded bytes are never more than the input: reserved once, so the pairs' pointers into
     * storage stay valid. */
    CL_GUARD(cl_buf_reserve(&out->storage, n + 2 * CL_API_FORM_MAX_PAIRS));
    cl_reader r = cl_reader_make(p, n);
    while (cl_reader_remaining(&r) > 0) {
        cl_reader piece, name, value;
        bool found;
        size_t base = cl_reader_offset(&r);
        cl_api_split(&r, '&', &piece, &found);
        if (cl_reader_remaining(&piece) == 0) continue;
        cl_api_split(&piece, '=', &name, &found);
        value = piece;
        CL_ENSURE(out->n < CL_API_FORM_MAX_PAIRS, CL_ERR_LIMIT, "the form has more than %zu fields",
                  CL_API_FORM_MAX_PAIRS);
        cl_api_pair *pair = &out->pairs[out->n];
        size_t name_at = out->storage.len, value_at, len;
        CL_GUARD(form_decode(name, base, &out->storage, &len));
        CL_GUARD(cl_buf_append_u8(&out->storage, 0));
        pair->name_len = len;
        value_at = out->storage.len;
        CL_GUARD(form_decode(value, base + cl_reader_offset(&name) + (found ? 1 : 0), &out->storage, &len));
        CL_GUARD(cl_buf_append_u8(&out->storage, 0));
        pair->value_len = len;
        pair->name = (const char *)out->storage.data + name_at;
        pair->value = out->storage.data + value_at;
        out->n++;
    }
    return CL_OK;
}

/* The boundary parameter: boundary=VALUE or boundary="VALUE", among ;-separated parameters. */
cl_status cl_api_multipart_boundary(const char *content_type, size_t n, char *out, size_t size)
{
    cl_reader r = cl_reader_make(content_type, n), type;
    bool found;
    cl_api_split(&r, ';', &type, &found);
    cl_reader_trim(&type, " \t");
    CL_ENSURE(cl_reader_is(&type, "multipart/form-data", true), CL_ERR_FORMAT, "the body is not multipart/form-data");
    while (cl_reader_remaining(&r) > 0) {
        cl_reader param, name, value;
        cl_api_split(&r, ';', &param, &found);
        cl_api_split(&param, '=', &name, &found);
        cl_reader_trim(&name, " \t");
        if (!found || !cl_reader_is(&name, "boundary", true)) continue;
        value = param;
        cl_reader_trim(&value, " \t");
        if (cl_reader_next_is(&value, '"')) {
            CL_GUARD(cl_reader_skip(&value, 1));
            cl_reader inner;
            cl_api_split(&value, '"', &inner, &found);
            CL_ENSURE(found && cl_reader_remaining(&value) == 0, CL_ERR_FORMAT,
                      "the multipart boundary's quotes do not close");
            value = inner;
        }
        size_t len = cl_reader_remaining(&value);
        CL_ENSURE(len >= 1 && len <= FORM_BOUNDARY_MAX && len < size, CL_ERR_FORMAT,
                  "the multipart boundary is %zu characters; RFC 2046 allows 1 to 70", len);
        CL_GUARD(cl_reader_copy(&value, out, len));
        out[len] = '\0';
        return CL_OK;
    }
    CL_FAIL(CL_ERR_FORMAT, "the multipart/form-data Content-Type has no boundary parameter");
}

/* Moves r to just after the next occurrence of lit; *skipped is what came before it. */
static CL_MUST_USE cl_status form_find(cl_reader *r, const void *lit, size_t lit_len, cl_reader *skipped)
{
    const uint8_t *rest;
    size_t n;
    cl_reader_rest(r, &rest, &n);
    const uint8_t *hit = n > 0 ? memmem(rest, n, lit, lit_len) : NULL;
    CL_ENSURE(hit != NULL, CL_ERR_FORMAT, "the multipart body ends without its closing delimiter");
    CL_GUARD(cl_reader_sub(r, (size_t)(hit - rest), skipped));
    return cl_reader_skip(r, lit_len);
}

/* A part's name or content as a pair's (pointer, length). An empty one is "" rather than the
 * reader's NULL, so every pair's pointers can be compared and copied without a special case
 * (memcmp/memcpy with NULL is undefined even for 0 bytes, C11 7.24.1p2). */
static void form_view(const cl_reader *r, const uint8_t **p, size_t *n)
{
    cl_reader_rest(r, p, n);
    if (*p == NULL) *p = (const uint8_t *)"";
}

/* Content-Disposition: form-data; name="NAME"[; filename="..."] -> NAME (borrowed). */
static CL_MUST_USE cl_status form_disposition_name(cl_reader v, cl_reader *name)
{
    cl_reader kind;
    bool found;
    cl_api_split(&v, ';', &kind, &found);
    cl_reader_trim(&kind, " \t");
    CL_ENSURE(cl_reader_is(&kind, "form-data", true), CL_ERR_FORMAT,
              "a multipart part's Content-Disposition is not form-data");
    while (cl_reader_remaining(&v) > 0) {
        cl_reader param, key;
        cl_api_split(&v, ';', &param, &found);
        cl_api_split(&param, '=', &key, &found);
        cl_reader_trim(&key, " \t");
        cl_reader_trim(&param, " \t");
        if (!found || !cl_reader_is(&key, "name", true)) continue;
        if (cl_reader_next_is(&param, '"')) {
            CL_GUARD(cl_reader_skip(&param, 1));
            cl_api_split(&param, '"', name, &found);
            CL_ENSURE(found, CL_ERR_FORMAT, "a multipart part's name has no closing quote");
        } else {
            *name = param;
        }
        return CL_OK;
    }
    CL_FAIL(CL_ERR_FORMAT, "a multipart part has no name in its Content-Disposition");
}

cl_status cl_api_form_parse_multipart(const uint8_t *p, size_t n, const char *boundary, cl_api_form *out)
{
    char delim[FORM_BOUNDARY_MAX + 8];
    int dl = snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    CL_ENSURE(dl > 4 && (size_t)dl < sizeof(delim), CL_ERR_FORMAT, "the multipart boundary is too long");
    cl_reader r = cl_reader_make(p, n), skipped;
    /* The first delimiter may open the body without the CRLF before it (RFC 2046: the CRLF
     * belongs to the delimiter, and the preamble before it may be empty). */
    if (cl_reader_starts_with(&r, delim + 2, (size_t)dl - 2))
        CL_GUARD(cl_reader_skip(&r, (size_t)dl - 2));
    else
        CL_GUARD(form_find(&r, delim, (size_t)dl, &skipped));
    for (;;) {
        if (cl_reader_starts_with_str(&r, "--")) return CL_OK; /* the close delimiter; the epilogue is ignored */
        (void)cl_reader_skip_any(&r, " \t");                   /* transport padding */
        CL_ENSURE(cl_reader_starts_with_str(&r, "\r\n"), CL_ERR_FORMAT,
                  "a multipart delimiter line does not end in CRLF (byte %zu)", cl_reader_offset(&r));
        CL_GUARD(cl_reader_skip(&r, 2));
        cl_reader headers, content, name = {0};
        bool have_name = false;
        if (cl_reader_starts_with_str(&r, "\r\n")) { /* no headers: the blank line at once */
            CL_GUARD(cl_reader_sub(&r, 0, &headers));
            CL_GUARD(cl_reader_skip(&r, 2));
        } else {
            CL_GUARD(form_find(&r, "\r\n\r\n", 4, &headers));
        }
        CL_ENSURE(cl_reader_remaining(&headers) <= FORM_PART_HEADERS_MAX, CL_ERR_LIMIT,
                  "a multipart part's headers are over %d bytes", FORM_PART_HEADERS_MAX);
        while (cl_reader_remaining(&headers) > 0) {
            cl_reader line, hname;
            bool found, colon;
            cl_api_split(&headers, '\n', &line, &found);
            cl_reader_trim(&line, "\r");
            cl_api_split(&line, ':', &hname, &colon);
            CL_ENSURE(colon, CL_ERR_FORMAT, "a multipart part's header line has no ':'");
            cl_reader_trim(&hname, " \t");
            if (cl_reader_is(&hname, "content-disposition", true)) {
                CL_ENSURE(!have_name, CL_ERR_FORMAT, "a multipart part has two Content-Disposition headers");
                CL_GUARD(form_disposition_name(line, &name));
                have_name = true;
            }
        }
        CL_ENSURE(have_name, CL_ERR_FORMAT, "a multipart part has no Content-Disposition header");
        CL_GUARD(form_find(&r, delim, (size_t)dl, &content));
        CL_ENSURE(out->n < CL_API_FORM_MAX_PAIRS, CL_ERR_LIMIT, "the form has more than %zu parts",
                  CL_API_FORM_MAX_PAIRS);
        cl_api_pair *pair = &out->pairs[out->n++];
        const uint8_t *np;
        form_view(&name, &np, &pair->name_len);
        pair->name = (const char *)np;
        form_view(&content, &pair->value, &pair->value_len);
    }
}
