/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: the query protocol's form and XML (query.h). */
#include "query.h"

#include <string.h>

static int kms_hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes one name or value (r holds it whole) into out, at most max bytes. */
static CL_MUST_USE cl_status kms_form_decode(cl_reader *r, size_t max, size_t base, cl_buf *out)
{
    cl_buf_reset(out);
    uint8_t c;
    while (cl_reader_remaining(r) > 0) {
        size_t at = base + cl_reader_offset(r);
        CL_GUARD(cl_reader_u8(r, &c));
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            uint8_t h, l;
            CL_ENSURE(cl_reader_remaining(r) >= 2, CL_ERR_FORMAT,
                      "the form has a '%%' without two hex digits at offset %zu", at);
            CL_GUARD(cl_reader_u8(r, &h));
            CL_GUARD(cl_reader_u8(r, &l));
            int hv = kms_hex_value(h), lv = kms_hex_value(l);
            CL_ENSURE(hv >= 0 && lv >= 0, CL_ERR_FORMAT, "the form has a '%%' without two hex digits at offset %zu",
                      at);
            c = (uint8_t)(hv * 16 + lv);
        }
        CL_ENSURE(c != 0, CL_ERR_FORMAT, "the form has a NUL byte at offset %zu", at);
        CL_ENSURE(out->len < max, CL_ERR_FORMAT, "a form field at offset %zu is longer than %zu bytes", base, max);
        CL_GUARD(cl_buf_append_u8(out, c));
    }
    return CL_OK;
}

cl_status kms_form_parse(const uint8_t *body, size_t len, json_t **out)
{
    cl_status rc = CL_OK;
    *out = json_object();
    CL_ENSURE(*out != NULL, CL_ERR_NOMEM, "out of memory for a form");
    cl_reader r = cl_reader_make(body, len);
    cl_buf name, value;
    cl_buf_init(&name, KMS_FORM_NAME_MAX + 16); /* kms_form_decode stops at the bound */
    /* Values may be secrets' neighbours (a policy, an external id): wiped when freed. */
    cl_buf_init(&value, KMS_FORM_VALUE_MAX + 16);
    size_t pairs = 0;
    bool more = len > 0;
    while (more) {
        size_t start = cl_reader_offset(&r);
        cl_reader pair, n, v;
        bool eq = false;
        cl_reader_until(&r, '&', &pair, &more);
        if (more) CL_GUARD_GOTO(cl_reader_skip(&r, 1));
        if (cl_reader_remaining(&pair) == 0) continue; /* "a=1&&b=2", a trailing '&' */
        CL_ENSURE_GOTO(++pairs <= KMS_FORM_MAX_PAIRS, CL_ERR_FORMAT, "the form has more than %d fields",
                       KMS_FORM_MAX_PAIRS);
        cl_reader_until(&pair, '=', &n, &eq);
        if (eq) CL_GUARD_GOTO(cl_reader_skip(&pair, 1));
        v = pair;
        CL_GUARD_GOTO(kms_form_decode(&n, KMS_FORM_NAME_MAX, start, &name));
        CL_ENSURE_GOTO(name.len > 0, CL_ERR_FORMAT, "the form has a field without a name at offset %zu", start);
        CL_GUARD_GOTO(kms_form_decode(&v, KMS_FORM_VALUE_MAX, start, &value));
        CL_ENSURE_GOTO(json_object_get(*out, cl_buf_cstr(&name)) == NULL, CL_ERR_FORMAT,
                       "the form gives field %.64s twice", cl_buf_cstr(&name));
        /* jansson takes UTF-8 only: a value that is not is refused here, as AWS refuses it. */
        json_t *jv = json_stringn(cl_buf_cstr(&value), value.len);
        CL_ENSURE_GOTO(jv != NULL, CL_ERR_FORMAT, "form field %.64s is not UTF-8 text", cl_buf_cstr(&name));
        CL_ENSURE_GOTO(json_object_set_new(*out, cl_buf_cstr(&name), jv) == 0, CL_ERR_FORMAT,
                       "form field name at offset %zu is not UTF-8 text", start);
    }
out:
    cl_buf_free(&name);
    cl_buf_free(&value);
    if (rc != CL_OK) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

cl_status kms_xml_text(cl_buf *b, const char *s)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': CL_GUARD(cl_buf_append_str(b, "&amp;")); break;
        case '<': CL_GUARD(cl_buf_append_str(b, "&lt;")); break;
        case '>': CL_GUARD(cl_buf_append_str(b, "&gt;")); break;
        case '"': CL_GUARD(cl_buf_append_str(b, "&quot;")); break;
        case '\'': CL_GUARD(cl_buf_append_str(b, "&apos;")); break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                CL_GUARD(cl_buf_append_str(b, "\xEF\xBF\xBD"));
            else
                CL_GUARD(cl_buf_append_u8(b, c));
        }
    }
    return CL_OK;
}

cl_status kms_xml_elem(cl_buf *b, const char *name, const char *value)
{
    CL_GUARD(cl_buf_printf(b, "<%s>", name));
    CL_GUARD(kms_xml_text(b, value));
    return cl_buf_printf(b, "</%s>", name);
}

cl_status kms_url_encode(cl_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '.' || c == '_' || c == '~';
        if (unreserved) {
            CL_GUARD(cl_buf_append_u8(b, c));
        } else {
            CL_GUARD(cl_buf_append_u8(b, '%'));
            CL_GUARD(cl_buf_append_u8(b, (uint8_t)hex[c >> 4]));
            CL_GUARD(cl_buf_append_u8(b, (uint8_t)hex[c & 15]));
        }
    }
    return CL_OK;
}
