/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the S3 operations share (s3.h): query parameters, XML out (escaped text) and in (a bounded
 * scanner of S3's request bodies: CreateBucketConfiguration, Delete, CompleteMultipartUpload,
 * ServerSideEncryptionConfiguration), and S3's two date formats.
 */
#include <ctype.h>
#include <event2/http.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "s3.h"

const char *kms_s3_query(const kms_s3_req *r, const char *name)
{
    return evhttp_find_header(&((kms_s3_req *)CL_UNCONST(r))->query, name);
}

bool kms_s3_has_query(const kms_s3_req *r, const char *name) { return kms_s3_query(r, name) != NULL; }

void kms_s3_xml_text(struct evbuffer *b, const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        switch (*p) {
        case '&': evbuffer_add(b, "&amp;", 5); break;
        case '<': evbuffer_add(b, "&lt;", 4); break;
        case '>': evbuffer_add(b, "&gt;", 4); break;
        default:
            if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
                evbuffer_add_printf(b, "&#x%X;", (unsigned)(unsigned char)*p);
            else
                evbuffer_add(b, p, 1);
        }
    }
}

bool kms_s3_xml_next(cl_reader *r, const char *tag, cl_reader *content)
{
    char open[80], close[80];
    int on = snprintf(open, sizeof(open), "<%s", tag), cn = snprintf(close, sizeof(close), "</%s>", tag);
    if (on <= 0 || cn <= 0 || (size_t)on >= sizeof(open) || (size_t)cn >= sizeof(close)) return false;
    while (cl_reader_remaining(r) > 0) {
        cl_reader skipped;
        bool found;
        cl_reader_until(r, '<', &skipped, &found);
        if (!found) return false;
        if (!cl_reader_starts_with(r, open, (size_t)on)) {
            if (cl_reader_skip(r, 1) != CL_OK) return false;
            continue;
        }
        if (cl_reader_skip(r, (size_t)on) != CL_OK) return false;
        uint8_t c;
        if (!cl_reader_peek_u8(r, &c) || (c != '>' && c != ' ' && c != '/')) continue; /* <KeyId> for <Key> */
        cl_reader attrs;
        cl_reader_until(r, '>', &attrs, &found);
        if (!found || cl_reader_skip(r, 1) != CL_OK) return false;
        const uint8_t *ap;
        size_t an;
        cl_reader_rest(&attrs, &ap, &an);
        if (an > 0 && ap[an - 1] == '/') { /* <Tag/>: empty */
            *content = cl_reader_make("", 0);
            return true;
        }
        /* The content runs to the matching close tag (no nesting of the same name in S3's bodies). */
        const uint8_t *start;
        size_t left;
        cl_reader_rest(r, &start, &left);
        for (size_t i = 0; i + (size_t)cn <= left; i++) {
            if (memcmp(start + i, close, (size_t)cn) == 0) {
                *content = cl_reader_make(start, i);
                return cl_reader_skip(r, i + (size_t)cn) == CL_OK;
            }
        }
        return false;
    }
    return false;
}

cl_status kms_s3_xml_value(const cl_reader *content, char *out, size_t cap)
{
    cl_reader r = *content;
    size_t n = 0;
    uint8_t c;
    while (cl_reader_remaining(&r) > 0) {
        CL_GUARD(cl_reader_u8(&r, &c));
        if (c == '&') {
            static const struct {
                const char *name;
                char c;
            } ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
            bool done = false;
            for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]) && !done; i++) {
                if (cl_reader_starts_with_str(&r, ents[i].name)) {
                    CL_GUARD(cl_reader_skip(&r, strlen(ents[i].name)));
                    c = (uint8_t)ents[i].c;
                    done = true;
                }
            }
            if (!done && cl_reader_starts_with_str(&r, "#")) {
                CL_GUARD(cl_reader_skip(&r, 1));
                bool hex = cl_reader_next_is(&r, 'x');
                if (hex) CL_GUARD(cl_reader_skip(&r, 1));
                unsigned v = 0, digits = 0;
                uint8_t d;
                while (cl_reader_peek_u8(&r, &d) && d != ';' && digits < 6) {
                    CL_GUARD(cl_reader_skip(&r, 1));
                    int x = isdigit(d) ? d - '0' : hex && isxdigit(d) ? (tolower(d) - 'a' + 10) : -1;
                    CL_ENSURE(x >= 0, CL_ERR_FORMAT, "malformed character reference in the request's XML");
                    v = v * (hex ? 16 : 10) + (unsigned)x;
                    digits++;
                }
                CL_ENSURE(digits > 0 && v > 0 && v < 0x80 && cl_reader_next_is(&r, ';'), CL_ERR_FORMAT,
                          "unsupported character reference in the request's XML (ASCII only)");
                CL_GUARD(cl_reader_skip(&r, 1));
                c = (uint8_t)v;
                done = true;
            }
            CL_ENSURE(done, CL_ERR_FORMAT, "malformed entity in the request's XML");
        }
        CL_ENSURE(n + 1 < cap, CL_ERR_LIMIT, "a value in the request's XML is longer than %zu bytes", cap - 1);
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return CL_OK;
}

void kms_s3_http_date(int64_t t, char out[40])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    (void)strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

void kms_s3_iso_date(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    (void)strftime(out, 32, "%Y-%m-%dT%H:%M:%S.000Z", &tm);
}
