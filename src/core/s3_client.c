/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The S3 client (cloister/s3_client.h). Operations as the Amazon S3 API Reference gives them
 * (PutObject, GetObject, HeadObject, DeleteObject, ListObjectsV2, CreateMultipartUpload,
 * UploadPart, CompleteMultipartUpload, AbortMultipartUpload, CreateBucket, DeleteBucket), signed
 * as "Authenticating Requests: Using the Authorization Header (AWS Signature Version 4)" says,
 * which is what botocore's S3SigV4Auth does (tests/unit/test_s3_client.c checks its signatures).
 */
#include "cloister/s3_client.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/http.h"
#include "cloister/log.h"
#include "cloister/mem.h"
#include "cloister/sigv4.h"

#include "s3_client_internal.h"

#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_UNSIGNED "UNSIGNED-PAYLOAD"
#define S3_IO_CHUNK ((size_t)1 << 20)
#define S3_ERROR_BODY_MAX ((size_t)64 << 10)

struct cl_s3_client {
    cl_http_client *http;
    char *region;
    char *access_key_id;
    cl_buf secret;        /* secret */
    cl_buf session_token; /* secret; empty: none */
    cl_buf signing_key;   /* secret: CL_SIGV4_KEY_LEN bytes for signing_date */
    char signing_date[9];
    bool tls;
    bool unsigned_payload;
    uint64_t part_size;
    uint64_t multipart_threshold;
};

/* --- the XML reader ---------------------------------------------------------------- */

typedef struct xml_state {
    char path[CL_S3_XML_MAX_DEPTH * (CL_S3_XML_MAX_NAME + 1) + 1];
    size_t starts[CL_S3_XML_MAX_DEPTH]; /* where each level's name begins in path */
    size_t depth;
    bool had_root;
    cl_buf text;
    cl_s3_xml_fn fn;
    void *arg;
} xml_state;

static bool xml_name_start(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':';
}

static bool xml_name_char(uint8_t c) { return xml_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

static bool xml_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

#define XML_SPACES " \t\r\n"

/* Consumes up to and including the literal lit; CL_ERR_FORMAT naming `what` when it never comes. */
static CL_MUST_USE cl_status xml_skip_past(cl_reader *r, const char *lit, const char *what)
{
    size_t n = strlen(lit);
    for (;;) {
        cl_reader skipped;
        bool found = false;
        cl_reader_until(r, (uint8_t)lit[0], &skipped, &found);
        if (!found) CL_FAIL(CL_ERR_FORMAT, "XML: %s is not closed by %s", what, lit);
        if (cl_reader_starts_with(r, lit, n)) return cl_reader_skip(r, n);
        CL_GUARD(cl_reader_skip(r, 1));
    }
}

/* A Name (XML 1.0 production [5]), ASCII only, as S3's names are; copied into out. */
static CL_MUST_USE cl_status xml_name(cl_reader *r, char out[CL_S3_XML_MAX_NAME + 1])
{
    uint8_t c = 0;
    CL_ENSURE(cl_reader_peek_u8(r, &c) && xml_name_start(c), CL_ERR_FORMAT, "XML: a name expected at byte %zu",
              cl_reader_offset(r));
    size_t n = 0;
    while (cl_reader_peek_u8(r, &c) && xml_name_char(c)) {
        CL_ENSURE(n < CL_S3_XML_MAX_NAME, CL_ERR_LIMIT, "XML: a name at byte %zu is over %d bytes", cl_reader_offset(r),
                  CL_S3_XML_MAX_NAME);
        CL_GUARD(cl_reader_u8(r, &c));
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return CL_OK;
}

static CL_MUST_USE cl_status xml_utf8(cl_buf *out, uint32_t cp)
{
    /* XML 1.0 production [2], Char: #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF] */
    bool ok = cp == 0x9 || cp == 0xA || cp == 0xD || (cp >= 0x20 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) ||
              (cp >= 0x10000 && cp <= 0x10FFFF);
    CL_ENSURE(ok, CL_ERR_FORMAT, "XML: character reference &#x%X; is not an XML character", cp);
    if (cp < 0x80) return cl_buf_append_u8(out, (uint8_t)cp);
    if (cp < 0x800) {
        uint8_t b[2] = {(uint8_t)(0xC0 | (cp >> 6)), (uint8_t)(0x80 | (cp & 0x3F))};
        return cl_buf_append(out, b, 2);
    }
    if (cp < 0x10000) {
        uint8_t b[3] = {(uint8_t)(0xE0 | (cp >> 12)), (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
                        (uint8_t)(0x80 | (cp & 0x3F))};
        return cl_buf_append(out, b, 3);
    }
    uint8_t b[4] = {(uint8_t)(0xF0 | (cp >> 18)), (uint8_t)(0x80 | ((cp >> 12) & 0x3F)),
                    (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), (uint8_t)(0x80 | (cp & 0x3F))};
    return cl_buf_append(out, b, 4);
}

/* One reference after '&' (XML 1.0 sections 4.1 and 4.6): the five predefined entities,
 * &#DDD; and &#xHHH;. */
static CL_MUST_USE cl_status xml_reference(cl_reader *r, cl_buf *out)
{
    cl_reader ref;
    bool found = false;
    cl_reader_until(r, ';', &ref, &found);
    CL_ENSURE(found && cl_reader_remaining(&ref) >= 1 && cl_reader_remaining(&ref) <= 10, CL_ERR_FORMAT,
              "XML: a reference '&' without its ';' at byte %zu", cl_reader_offset(r));
    CL_GUARD(cl_reader_skip(r, 1));
    static const struct {
        const char *name;
        char c;
    } predefined[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"quot", '"'}, {"apos", '\''}};
    for (size_t i = 0; i < sizeof(predefined) / sizeof(predefined[0]); i++)
        if (cl_reader_is(&ref, predefined[i].name, false)) return cl_buf_append_u8(out, (uint8_t)predefined[i].c);
    uint8_t c = 0;
    CL_ENSURE(cl_reader_peek_u8(&ref, &c) && c == '#', CL_ERR_FORMAT,
              "XML: entity references other than &lt; &gt; &amp; &quot; &apos; are not accepted (byte %zu)",
              cl_reader_offset(r));
    CL_GUARD(cl_reader_skip(&ref, 1));
    bool hex = cl_reader_next_is(&ref, 'x');
    if (hex) CL_GUARD(cl_reader_skip(&ref, 1));
    uint32_t cp = 0;
    size_t digits = 0;
    while (cl_reader_u8(&ref, &c) == CL_OK) {
        uint32_t d;
        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (hex && c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (hex && c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            CL_FAIL(CL_ERR_FORMAT, "XML: a malformed character reference at byte %zu", cl_reader_offset(r));
        cp = cp * (hex ? 16 : 10) + d;
        CL_ENSURE(cp <= 0x10FFFF, CL_ERR_FORMAT, "XML: a character reference beyond U+10FFFF at byte %zu",
                  cl_reader_offset(r));
        digits++;
    }
    CL_ENSURE(digits > 0, CL_ERR_FORMAT, "XML: an empty character reference at byte %zu", cl_reader_offset(r));
    return xml_utf8(out, cp);
}

/* Character data up to the next '<', references replaced, into st->text (or, outside the
 * root element, nothing but white space). */
static CL_MUST_USE cl_status xml_text(xml_state *st, cl_reader *r)
{
    cl_reader t;
    bool found = false;
    cl_reader_until(r, '<', &t, &found);
    uint8_t c = 0;
    while (cl_reader_u8(&t, &c) == CL_OK) {
        if (st->depth == 0) {
            CL_ENSURE(xml_space(c), CL_ERR_FORMAT, "XML: text outside the root element at byte %zu",
                      cl_reader_offset(r));
            continue;
        }
        CL_ENSURE(c >= 0x20 || c == '\t' || c == '\n' || c == '\r', CL_ERR_FORMAT,
                  "XML: control byte 0x%02x in the text at byte %zu", c, cl_reader_offset(r));
        if (c == '&') {
            CL_GUARD(xml_reference(&t, &st->text));
            continue;
        }
        if (cl_buf_append_u8(&st->text, c) != CL_OK)
            CL_FAIL(CL_ERR_LIMIT, "XML: the text of <%s> is over %zu bytes", st->path, CL_S3_XML_MAX_TEXT);
    }
    return CL_OK;
}

static CL_MUST_USE cl_status xml_push(xml_state *st, const char *name)
{
    CL_ENSURE(st->depth < CL_S3_XML_MAX_DEPTH, CL_ERR_LIMIT, "XML: elements nested over %d deep", CL_S3_XML_MAX_DEPTH);
    CL_ENSURE(st->depth > 0 || !st->had_root, CL_ERR_FORMAT, "XML: a second root element <%s>", name);
    size_t len = strlen(st->path);
    st->starts[st->depth] = st->depth == 0 ? 0 : len + 1;
    (void)snprintf(st->path + len, sizeof(st->path) - len, "%s%s", st->depth == 0 ? "" : "/", name);
    st->depth++;
    st->had_root = true;
    cl_buf_reset(&st->text);
    return st->fn(st->arg, false, st->path, NULL);
}

static CL_MUST_USE cl_status xml_pop(xml_state *st)
{
    CL_GUARD(st->fn(st->arg, true, st->path, &st->text));
    st->depth--;
    size_t cut = st->depth == 0 ? 0 : st->starts[st->depth] - 1;
    st->path[cut] = '\0';
    cl_buf_reset(&st->text);
    return CL_OK;
}

static CL_MUST_USE cl_status xml_start_tag(xml_state *st, cl_reader *r)
{
    char name[CL_S3_XML_MAX_NAME + 1];
    CL_GUARD(cl_reader_skip(r, 1)); /* '<' */
    CL_GUARD(xml_name(r, name));
    for (;;) {
        size_t spaces = cl_reader_skip_any(r, XML_SPACES);
        if (cl_reader_starts_with(r, "/>", 2)) {
            CL_GUARD(cl_reader_skip(r, 2));
            CL_GUARD(xml_push(st, name));
            return xml_pop(st);
        }
        if (cl_reader_next_is(r, '>')) {
            CL_GUARD(cl_reader_skip(r, 1));
            return xml_push(st, name);
        }
        /* An attribute (production [41]): read and ignored. */
        CL_ENSURE(spaces > 0, CL_ERR_FORMAT, "XML: '>' or an attribute expected in <%s> at byte %zu", name,
                  cl_reader_offset(r));
        char attr[CL_S3_XML_MAX_NAME + 1];
        CL_GUARD(xml_name(r, attr));
        (void)cl_reader_skip_any(r, XML_SPACES);
        uint8_t q = 0;
        CL_ENSURE(cl_reader_u8(r, &q) == CL_OK && q == '=', CL_ERR_FORMAT, "XML: '=' expected after attribute %s",
                  attr);
        (void)cl_reader_skip_any(r, XML_SPACES);
        CL_ENSURE(cl_reader_u8(r, &q) == CL_OK && (q == '"' || q == '\''), CL_ERR_FORMAT,
                  "XML: a quoted value expected for attribute %s", attr);
        cl_reader value;
        bool found = false;
        cl_reader_until(r, q, &value, &found);
        CL_ENSURE(found, CL_ERR_FORMAT, "XML: the value of attribute %s is not closed", attr);
        CL_GUARD(cl_reader_skip(r, 1));
        cl_reader lt = value;
        cl_reader before;
        cl_reader_until(&lt, '<', &before, &found);
        CL_ENSURE(!found, CL_ERR_FORMAT, "XML: '<' in the value of attribute %s", attr);
    }
}

static CL_MUST_USE cl_status xml_end_tag(xml_state *st, cl_reader *r)
{
    char name[CL_S3_XML_MAX_NAME + 1];
    CL_GUARD(cl_reader_skip(r, 2)); /* "</" */
    CL_GUARD(xml_name(r, name));
    (void)cl_reader_skip_any(r, XML_SPACES);
    CL_ENSURE(cl_reader_next_is(r, '>'), CL_ERR_FORMAT, "XML: '>' expected to end </%s>", name);
    CL_GUARD(cl_reader_skip(r, 1));
    CL_ENSURE(st->depth > 0, CL_ERR_FORMAT, "XML: </%s> closes no element", name);
    const char *open = st->path + st->starts[st->depth - 1];
    CL_ENSURE(strcmp(open, name) == 0, CL_ERR_FORMAT, "XML: </%s> does not close <%s>", name, open);
    return xml_pop(st);
}

cl_status cl_s3_xml_parse(const uint8_t *p, size_t n, cl_s3_xml_fn fn, void *arg)
{
    CL_ENSURE(n <= CL_S3_MAX_XML, CL_ERR_LIMIT, "XML: a document of %zu bytes is over %zu", n, CL_S3_MAX_XML);
    xml_state *st = calloc(1, sizeof(*st));
    CL_ENSURE(st != NULL, CL_ERR_NOMEM, "out of memory");
    st->fn = fn;
    st->arg = arg;
    cl_buf_init(&st->text, CL_S3_XML_MAX_TEXT);
    cl_status rc = CL_OK;
    cl_reader r = cl_reader_make(p, n);
    while (cl_reader_remaining(&r) > 0) {
        if (cl_reader_starts_with(&r, "<?", 2)) {
            CL_GUARD_GOTO(xml_skip_past(&r, "?>", "a processing instruction"));
        } else if (cl_reader_starts_with(&r, "<!--", 4)) {
            CL_GUARD_GOTO(xml_skip_past(&r, "-->", "a comment"));
        } else if (cl_reader_starts_with(&r, "<!", 2)) {
            CL_FAIL_GOTO(CL_ERR_UNSUPPORTED, "XML: DOCTYPE declarations and CDATA sections are not accepted (byte %zu)",
                         cl_reader_offset(&r));
        } else if (cl_reader_starts_with(&r, "</", 2)) {
            CL_GUARD_GOTO(xml_end_tag(st, &r));
        } else if (cl_reader_next_is(&r, '<')) {
            CL_GUARD_GOTO(xml_start_tag(st, &r));
        } else {
            CL_GUARD_GOTO(xml_text(st, &r));
        }
    }
    CL_ENSURE_GOTO(st->had_root, CL_ERR_FORMAT, "XML: the document has no element");
    CL_ENSURE_GOTO(st->depth == 0, CL_ERR_FORMAT, "XML: the document ends inside <%s>", st->path);
out:
    cl_buf_free(&st->text);
    free(st);
    return rc;
}

/* --- the documents S3 answers with ------------------------------------------------- */

/* A copy of text into a fixed field; CL_ERR_LIMIT when it does not fit. */
static CL_MUST_USE cl_status xml_copy(const cl_buf *text, char *dst, size_t cap, const char *what)
{
    CL_ENSURE(text->len < cap, CL_ERR_LIMIT, "S3's %s is over %zu bytes", what, cap - 1);
    memcpy(dst, text->data != NULL ? (const char *)text->data : "", text->len);
    dst[text->len] = '\0';
    return CL_OK;
}

static CL_MUST_USE cl_status xml_dup(const cl_buf *text, size_t max, char **dst, const char *what)
{
    CL_ENSURE(text->len <= max, CL_ERR_LIMIT, "S3's %s is over %zu bytes", what, max);
    char *s = strdup(cl_buf_cstr(text));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    free(*dst);
    *dst = s;
    return CL_OK;
}

typedef struct list_ctx {
    cl_s3_list_page *page;
    size_t cap_entries, cap_prefixes;
    bool have_key;
    bool have_truncated;
} list_ctx;

static CL_MUST_USE cl_status list_grow(void **arr, size_t *cap, size_t n, size_t size, const char *what)
{
    if (n < *cap) return CL_OK;
    CL_ENSURE(n < CL_S3_MAX_LIST_KEYS, CL_ERR_LIMIT, "S3 listed more than %d %s in one page", CL_S3_MAX_LIST_KEYS,
              what);
    size_t grown = *cap == 0 ? 16 : *cap * 2;
    if (grown > CL_S3_MAX_LIST_KEYS) grown = CL_S3_MAX_LIST_KEYS;
    void *p = realloc(*arr, grown * size);
    CL_ENSURE(p != NULL, CL_ERR_NOMEM, "out of memory");
    memset((uint8_t *)p + *cap * size, 0, (grown - *cap) * size);
    *arr = p;
    *cap = grown;
    return CL_OK;
}

static CL_MUST_USE cl_status list_on(void *arg, bool end, const char *path, const cl_buf *text)
{
    list_ctx *x = arg;
    cl_s3_list_page *pg = x->page;
    if (!end) {
        if (strchr(path, '/') == NULL)
            CL_ENSURE(strcmp(path, "ListBucketResult") == 0, CL_ERR_FORMAT,
                      "S3's answer to ListObjectsV2 is a <%s> document, not <ListBucketResult>", path);
        if (strcmp(path, "ListBucketResult/Contents") == 0) {
            CL_GUARD(list_grow((void **)&pg->entries, &x->cap_entries, pg->n_entries, sizeof(*pg->entries), "keys"));
            pg->n_entries++;
            x->have_key = false;
        } else if (strcmp(path, "ListBucketResult/CommonPrefixes") == 0) {
            CL_GUARD(list_grow((void **)&pg->common_prefixes, &x->cap_prefixes, pg->n_common_prefixes,
                               sizeof(*pg->common_prefixes), "common prefixes"));
            pg->n_common_prefixes++;
        }
        return CL_OK;
    }
    if (strcmp(path, "ListBucketResult/IsTruncated") == 0) {
        CL_ENSURE(strcmp(cl_buf_cstr(text), "true") == 0 || strcmp(cl_buf_cstr(text), "false") == 0, CL_ERR_FORMAT,
                  "S3's IsTruncated is neither true nor false");
        pg->truncated = strcmp(cl_buf_cstr(text), "true") == 0;
        x->have_truncated = true;
        return CL_OK;
    }
    if (strcmp(path, "ListBucketResult/NextContinuationToken") == 0)
        return xml_dup(text, 4096, &pg->next_token, "NextContinuationToken");
    /* The reader calls the start of an element before anything inside it, so the entry exists. */
    if (strncmp(path, "ListBucketResult/CommonPrefixes", 31) == 0) {
        CL_ENSURE(pg->n_common_prefixes > 0 && pg->common_prefixes != NULL, CL_ERR_INTERNAL,
                  "XML: %s before its <CommonPrefixes>", path);
        char **last = &pg->common_prefixes[pg->n_common_prefixes - 1];
        if (strcmp(path, "ListBucketResult/CommonPrefixes/Prefix") == 0)
            return xml_dup(text, CL_S3_MAX_KEY, last, "prefix");
        if (strcmp(path, "ListBucketResult/CommonPrefixes") == 0)
            CL_ENSURE(*last != NULL, CL_ERR_FORMAT, "S3 listed a common prefix without a <Prefix>");
        return CL_OK;
    }
    if (strncmp(path, "ListBucketResult/Contents", 25) != 0) return CL_OK;
    CL_ENSURE(pg->n_entries > 0 && pg->entries != NULL, CL_ERR_INTERNAL, "XML: %s before its <Contents>", path);
    cl_s3_list_entry *e = &pg->entries[pg->n_entries - 1];
    if (strcmp(path, "ListBucketResult/Contents/Key") == 0) {
        CL_ENSURE(text->len >= 1, CL_ERR_FORMAT, "S3 listed an empty key");
        CL_GUARD(xml_dup(text, CL_S3_MAX_KEY, &e->key, "key"));
        x->have_key = true;
    } else if (strcmp(path, "ListBucketResult/Contents/Size") == 0) {
        CL_GUARD_CTX(cl_parse_uint(cl_buf_cstr(text), 0, UINT64_MAX, "Size", &e->size), "S3's listing");
    } else if (strcmp(path, "ListBucketResult/Contents/ETag") == 0) {
        CL_GUARD(xml_copy(text, e->etag, sizeof(e->etag), "ETag"));
    } else if (strcmp(path, "ListBucketResult/Contents/LastModified") == 0) {
        CL_GUARD(xml_copy(text, e->last_modified, sizeof(e->last_modified), "LastModified"));
    } else if (strcmp(path, "ListBucketResult/Contents") == 0) {
        CL_ENSURE(x->have_key, CL_ERR_FORMAT, "S3 listed an object without a <Key>");
    }
    return CL_OK;
}

void cl_s3_list_page_free(cl_s3_list_page *p)
{
    if (p == NULL) return;
    for (size_t i = 0; i < p->n_entries; i++) free(p->entries[i].key);
    for (size_t i = 0; i < p->n_common_prefixes; i++) free(p->common_prefixes[i]);
    free(p->entries);
    free(p->common_prefixes);
    free(p->next_token);
    memset(p, 0, sizeof(*p));
}

cl_status cl_s3_xml_list_parse(const uint8_t *p, size_t n, cl_s3_list_page *out)
{
    memset(out, 0, sizeof(*out));
    list_ctx x = {.page = out};
    cl_status rc = CL_OK;
    CL_GUARD_GOTO(cl_s3_xml_parse(p, n, list_on, &x));
    CL_ENSURE_GOTO(x.have_truncated, CL_ERR_FORMAT, "S3's ListObjectsV2 answer has no <IsTruncated>");
    CL_ENSURE_GOTO(!out->truncated || (out->next_token != NULL && out->next_token[0] != '\0'), CL_ERR_FORMAT,
                   "S3's ListObjectsV2 answer is truncated without a <NextContinuationToken>");
    if (!out->truncated) {
        free(out->next_token);
        out->next_token = NULL;
    }
out:
    if (rc != CL_OK) cl_s3_list_page_free(out);
    return rc;
}

typedef struct error_ctx {
    char *code;
    char *message;
    bool root;
} error_ctx;

static CL_MUST_USE cl_status error_on(void *arg, bool end, const char *path, const cl_buf *text)
{
    error_ctx *x = arg;
    if (!end && strchr(path, '/') == NULL) {
        CL_ENSURE(strcmp(path, "Error") == 0, CL_ERR_FORMAT, "not an S3 error document (root <%s>)", path);
        x->root = true;
    }
    if (!end) return CL_OK;
    /* S3's message is for people: cut rather than refused when long. */
    if (strcmp(path, "Error/Code") == 0) return xml_copy(text, x->code, 128, "error code");
    if (strcmp(path, "Error/Message") == 0)
        (void)snprintf(x->message, 512, "%.*s", (int)(text->len < 511 ? text->len : 511), cl_buf_cstr(text));
    return CL_OK;
}

cl_status cl_s3_xml_error_parse(const uint8_t *p, size_t n, char code[128], char message[512])
{
    code[0] = message[0] = '\0';
    error_ctx x = {.code = code, .message = message};
    CL_GUARD(cl_s3_xml_parse(p, n, error_on, &x));
    CL_ENSURE(x.root && code[0] != '\0', CL_ERR_FORMAT, "an S3 error document without a <Code>");
    return CL_OK;
}

typedef struct upload_ctx {
    char *id;
    bool have;
} upload_ctx;

static CL_MUST_USE cl_status upload_on(void *arg, bool end, const char *path, const cl_buf *text)
{
    upload_ctx *x = arg;
    if (!end && strchr(path, '/') == NULL)
        CL_ENSURE(strcmp(path, "InitiateMultipartUploadResult") == 0, CL_ERR_FORMAT,
                  "S3's answer to CreateMultipartUpload is a <%s> document, not <InitiateMultipartUploadResult>", path);
    if (end && strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0) {
        CL_GUARD(xml_copy(text, x->id, 1024 + 1, "UploadId"));
        x->have = text->len > 0;
    }
    return CL_OK;
}

cl_status cl_s3_xml_upload_id_parse(const uint8_t *p, size_t n, char upload_id[1024 + 1])
{
    upload_id[0] = '\0';
    upload_ctx x = {.id = upload_id};
    CL_GUARD(cl_s3_xml_parse(p, n, upload_on, &x));
    CL_ENSURE(x.have, CL_ERR_FORMAT, "S3's answer to CreateMultipartUpload has no <UploadId>");
    return CL_OK;
}

cl_status cl_s3_error_status(const char *code)
{
    static const char *const not_found[] = {"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "NotFound", NULL};
    static const char *const denied[] = {"AccessDenied",      "SignatureDoesNotMatch", "InvalidAccessKeyId",
                                         "ExpiredToken",      "InvalidToken",          "TokenRefreshRequired",
                                         "AllAccessDisabled", "RequestTimeTooSkewed",  NULL};
    static const char *const exists[] = {"BucketAlreadyExists", "BucketAlreadyOwnedByYou", NULL};
    for (size_t i = 0; not_found[i] != NULL; i++)
        if (strcmp(code, not_found[i]) == 0) return CL_ERR_NOT_FOUND;
    for (size_t i = 0; denied[i] != NULL; i++)
        if (strcmp(code, denied[i]) == 0) return CL_ERR_DENIED;
    for (size_t i = 0; exists[i] != NULL; i++)
        if (strcmp(code, exists[i]) == 0) return CL_ERR_EXISTS;
    if (strcmp(code, "BucketNotEmpty") == 0) return CL_ERR_STATE;
    return CL_ERR_REMOTE;
}

/* --- requests ---------------------------------------------------------------------- */

/* RFC 3986 section 2.3's unreserved bytes kept, every other as %XX, '/' too unless keep_slash:
 * "URI-encode each path segment" / "URI-encode each parameter name and value" (S3 SigV4). */
static CL_MUST_USE cl_status uri_encode(cl_buf *out, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        unsigned char c = *p;
        bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '_' || c == '.' || c == '~';
        if (unreserved || (keep_slash && c == '/')) {
            CL_GUARD(cl_buf_append_u8(out, c));
        } else {
            char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
            CL_GUARD(cl_buf_append(out, enc, 3));
        }
    }
    return CL_OK;
}

/* "Bucket naming rules" (S3 User Guide): 3 to 63 of a-z 0-9 . -, starting and ending with a
 * letter or digit. */
static CL_MUST_USE cl_status check_bucket(const char *bucket)
{
    size_t n = bucket != NULL ? strnlen(bucket, CL_S3_MAX_BUCKET + 1) : 0;
    CL_ENSURE(n >= 3 && n <= CL_S3_MAX_BUCKET, CL_ERR_USAGE, "a bucket name has 3 to %d characters", CL_S3_MAX_BUCKET);
    for (size_t i = 0; i < n; i++) {
        char c = bucket[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        CL_ENSURE(alnum || ((c == '.' || c == '-') && i > 0 && i + 1 < n), CL_ERR_USAGE,
                  "bucket name %s: lower-case letters, digits, '.' and '-' only, starting and ending with a letter "
                  "or digit (S3's bucket naming rules)",
                  bucket);
    }
    return CL_OK;
}

cl_status cl_s3_object_path(const char *bucket, const char *key, cl_buf *out)
{
    CL_GUARD(check_bucket(bucket));
    CL_GUARD(cl_buf_printf(out, "/%s", bucket));
    if (key == NULL) return CL_OK;
    size_t n = strnlen(key, CL_S3_MAX_KEY + 1);
    CL_ENSURE(n >= 1 && n <= CL_S3_MAX_KEY, CL_ERR_USAGE, "an object key has 1 to %d bytes", CL_S3_MAX_KEY);
    CL_GUARD(cl_buf_append_u8(out, '/'));
    return uri_encode(out, key, true);
}

/* A key for messages: what it holds that is printable, bounded. */
static const char *show(const char *s, char *buf, size_t n)
{
    return s != NULL ? cl_bytes_show((const uint8_t *)s, strlen(s), buf, n) : "";
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

void cl_s3_signed_free(cl_s3_signed *s)
{
    cl_buf_free(&s->authorization);
    memset(s->headers, 0, sizeof(s->headers));
    s->n_headers = 0;
}

cl_status cl_s3_sign(cl_s3_client *c, const char *method, const char *path, const char *query,
                     const cl_http_header *extra, size_t n_extra, const char *payload_hash, int64_t now,
                     cl_s3_signed *out)
{
    memset(out, 0, sizeof(*out));
    cl_buf_init(&out->authorization, 64 << 10);
    CL_ENSURE(n_extra + 4 <= CL_S3_MAX_HEADERS, CL_ERR_INTERNAL, "too many headers for an S3 request");
    cl_sigv4_format_amz_date(now, out->amz_date);
    size_t n = 0;
    out->headers[n++] = (cl_http_header){"x-amz-content-sha256", payload_hash};
    out->headers[n++] = (cl_http_header){"x-amz-date", out->amz_date};
    if (c->session_token.len > 0)
        out->headers[n++] = (cl_http_header){"x-amz-security-token", cl_buf_cstr(&c->session_token)};
    for (size_t i = 0; i < n_extra; i++) out->headers[n++] = extra[i];
    out->n_headers = n;

    /* Every header we send is signed (botocore signs all but User-Agent, Expect and
     * X-Amzn-Trace-Id), and Host; SignedHeaders sorted, lower case. */
    cl_sigv4_header sh[CL_S3_MAX_HEADERS + 1];
    char lower[CL_S3_MAX_HEADERS + 1][64];
    const char *names[CL_S3_MAX_HEADERS + 1];
    sh[0] = (cl_sigv4_header){"host", cl_http_client_url(c->http)->authority};
    (void)snprintf(lower[0], sizeof(lower[0]), "host");
    names[0] = lower[0];
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(out->headers[i].name);
        CL_ENSURE(len < sizeof(lower[0]), CL_ERR_INTERNAL, "header name too long");
        for (size_t j = 0; j <= len; j++) {
            char ch = out->headers[i].name[j];
            lower[i + 1][j] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
        }
        sh[i + 1] = (cl_sigv4_header){lower[i + 1], out->headers[i].value};
        names[i + 1] = lower[i + 1];
    }
    qsort(names, n + 1, sizeof(names[0]), name_cmp);
    char signed_headers[CL_SIGV4_MAX_SIGNED_HEADERS + 1] = "";
    for (size_t i = 0; i <= n; i++) {
        size_t len = strlen(signed_headers);
        (void)snprintf(signed_headers + len, sizeof(signed_headers) - len, "%s%s", i == 0 ? "" : ";", names[i]);
    }
    cl_sigv4_request req = {.method = method,
                            .path = path,
                            .query = query,
                            .headers = sh,
                            .n_headers = n + 1,
                            .signed_headers = signed_headers,
                            .payload_sha256_hex = payload_hash,
                            .amz_date = out->amz_date,
                            .region = c->region,
                            .service = "s3"};
    /* The signing key is the same all day (step 4): derived once per date. */
    if (strncmp(c->signing_date, out->amz_date, 8) != 0) {
        (void)snprintf(c->signing_date, sizeof(c->signing_date), "%.8s", out->amz_date);
        cl_status rc =
            cl_sigv4_signing_key(cl_buf_cstr(&c->secret), c->signing_date, c->region, "s3", c->signing_key.data);
        if (rc != CL_OK) {
            c->signing_date[0] = '\0';
            return rc;
        }
    }
    char sig[CL_SIGV4_SIG_HEX_LEN + 1];
    CL_GUARD(cl_sigv4_s3_signature_with_key(c->signing_key.data, &req, sig));
    return cl_buf_printf(&out->authorization,
                         "%s Credential=%s/%.8s/%s/s3/aws4_request, SignedHeaders=%s, Signature=%s", CL_SIGV4_ALGORITHM,
                         c->access_key_id, out->amz_date, c->region, signed_headers, sig);
}

/* One S3 call: what it is, for messages, and where its bytes come from and go. */
typedef struct s3_call {
    const char *op; /* "GetObject" */
    const char *method;
    const char *bucket;
    const char *key; /* NULL: the bucket itself */
    const char *query;
    const cl_http_header *extra;
    size_t n_extra;
    const void *body;
    size_t body_len;
    cl_http_source_fn source;
    void *source_arg;
    uint64_t source_len;
    const char *payload_hash; /* NULL: SHA-256 of body */
    cl_buf *resp;             /* NULL: a small buffer of the call's own */
    cl_http_sink_fn sink;
    void *sink_arg;
    cl_buf *resp_headers;
    int status; /* out */
} s3_call;

/* Turns an answer that is not a success into the status and message its error document says. */
static CL_MUST_USE cl_status s3_failure(const s3_call *k, const cl_buf *body)
{
    char code[128], message[512], key[200], msg[600];
    const char *sep = k->key != NULL ? "/" : "";
    if (body->len > 0 && cl_s3_xml_error_parse(body->data, body->len, code, message) == CL_OK) {
        (void)cl_bytes_show((const uint8_t *)message, strlen(message), msg, sizeof(msg));
        return CL_RAISE(cl_s3_error_status(code), "S3 %s %s%s%s: %s: %s (HTTP %d)", k->op, k->bucket, sep,
                        show(k->key, key, sizeof(key)), code, msg, k->status);
    }
    /* No error document: a HEAD's answer never has one (RFC 9110 section 9.3.2). */
    cl_status st = k->status == 404 ? CL_ERR_NOT_FOUND : k->status == 403 ? CL_ERR_DENIED : CL_ERR_REMOTE;
    const char *code_guess = k->status == 404 ? "NotFound" : k->status == 403 ? "Forbidden" : "an error";
    return CL_RAISE(st, "S3 %s %s%s%s: HTTP %d (%s; the answer has no S3 error document)", k->op, k->bucket, sep,
                    show(k->key, key, sizeof(key)), k->status, code_guess);
}

static CL_MUST_USE cl_status s3_do(cl_s3_client *c, s3_call *k)
{
    cl_status rc = CL_OK;
    cl_buf path, target, own;
    cl_buf_init(&path, 8192);
    cl_buf_init(&target, 16384);
    cl_buf_init(&own, S3_ERROR_BODY_MAX);
    cl_s3_signed sg;
    memset(&sg, 0, sizeof(sg));
    cl_buf_init(&sg.authorization, 1);
    char hash[CL_SIGV4_SIG_HEX_LEN + 1];
    if (k->payload_hash == NULL) {
        uint8_t d[CL_SHA256_LEN];
        CL_GUARD_GOTO(cl_sha256(k->body, k->body_len, d));
        (void)cl_hex_encode(d, sizeof(d), hash, sizeof(hash));
    } else {
        (void)snprintf(hash, sizeof(hash), "%s", k->payload_hash);
    }
    CL_GUARD_GOTO(cl_s3_object_path(k->bucket, k->key, &path));
    cl_s3_signed_free(&sg);
    CL_GUARD_GOTO(
        cl_s3_sign(c, k->method, cl_buf_cstr(&path), k->query, k->extra, k->n_extra, hash, (int64_t)time(NULL), &sg));
    CL_ENSURE_GOTO(sg.n_headers < CL_S3_MAX_HEADERS, CL_ERR_INTERNAL, "too many headers for an S3 request");
    sg.headers[sg.n_headers++] = (cl_http_header){"Authorization", cl_buf_cstr(&sg.authorization)};
    CL_GUARD_GOTO(cl_buf_printf(&target, "%s%s%s", cl_buf_cstr(&path), k->query != NULL ? "?" : "",
                                k->query != NULL ? k->query : ""));
    cl_buf *resp = k->resp != NULL ? k->resp : &own;
    cl_http_exchange x = {.method = k->method,
                          .path = cl_buf_cstr(&target),
                          .headers = sg.headers,
                          .n_headers = sg.n_headers,
                          .body = k->body,
                          .body_len = k->body_len,
                          .source = k->source,
                          .source_arg = k->source_arg,
                          .source_len = k->source_len,
                          .resp = resp,
                          .sink = k->sink,
                          .sink_arg = k->sink_arg,
                          .resp_headers = k->resp_headers};
    char key[200];
    CL_GUARD_CTX_GOTO(cl_http_exchange_run(c->http, &x), "S3 %s %s%s%s", k->op, k->bucket, k->key != NULL ? "/" : "",
                      show(k->key, key, sizeof(key)));
    k->status = x.status;
    if (x.status < 200 || x.status > 299) CL_GUARD_GOTO(s3_failure(k, resp));
out:
    cl_s3_signed_free(&sg);
    cl_buf_free(&path);
    cl_buf_free(&target);
    cl_buf_free(&own);
    return rc;
}

/* --- the client -------------------------------------------------------------------- */

cl_status cl_s3_client_new(const cl_s3_config *cfg, cl_s3_client **out)
{
    cl_status rc = CL_OK;
    *out = NULL;
    CL_ENSURE(cfg->endpoint != NULL && cfg->region != NULL && cfg->region[0] != '\0', CL_ERR_USAGE,
              "an S3 client needs an endpoint URL and a region");
    CL_ENSURE(cfg->access_key_id != NULL && cfg->access_key_id[0] != '\0' && cfg->secret_access_key != NULL &&
                  cfg->secret_access_key[0] != '\0',
              CL_ERR_USAGE, "an S3 client needs an access key id and a secret access key");
    uint64_t part = cfg->part_size != 0 ? cfg->part_size : CL_S3_DEFAULT_PART;
    CL_ENSURE(part >= CL_S3_MIN_PART && part <= CL_S3_MAX_PART, CL_ERR_USAGE,
              "the multipart part size must be 5 MiB to 5 GiB (S3's UploadPart limits), not %llu bytes",
              (unsigned long long)part);
    cl_s3_client *c = calloc(1, sizeof(*c));
    CL_ENSURE(c != NULL, CL_ERR_NOMEM, "out of memory");
    cl_buf_init_secret(&c->secret, 4096);
    cl_buf_init_secret(&c->session_token, 16384);
    cl_buf_init_secret(&c->signing_key, CL_SIGV4_KEY_LEN);
    /* cl_buf's own bounds (each call's buffer) limit the answers, not the client's. */
    cl_http_config hc = {.ca_file = cfg->ca_file,
                         .vsock_port = cfg->vsock_port,
                         .timeout_ms = cfg->timeout_ms,
                         .max_body = SIZE_MAX / 2};
    CL_GUARD_CTX_GOTO(cl_http_client_new(cfg->endpoint, &hc, &c->http), "S3 endpoint %s", cfg->endpoint);
    const cl_http_url *u = cl_http_client_url(c->http);
    CL_ENSURE_GOTO(strcmp(u->path, "/") == 0, CL_ERR_USAGE,
                   "the S3 endpoint %s has a path: give the server's root (http[s]://HOST[:PORT])", cfg->endpoint);
    c->tls = u->tls;
    c->region = strdup(cfg->region);
    c->access_key_id = strdup(cfg->access_key_id);
    CL_ENSURE_GOTO(c->region != NULL && c->access_key_id != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(cl_buf_append_str(&c->secret, cfg->secret_access_key));
    if (cfg->session_token != NULL) CL_GUARD_GOTO(cl_buf_append_str(&c->session_token, cfg->session_token));
    CL_GUARD_GOTO(cl_buf_resize(&c->signing_key, CL_SIGV4_KEY_LEN));
    /* UNSIGNED-PAYLOAD only where TLS protects the body ("Signature Calculations for the
     * Authorization Header: Transferring Payload in a Single Chunk"). */
    CL_ENSURE_GOTO(!cfg->unsigned_payload || c->tls, CL_ERR_USAGE,
                   "UNSIGNED-PAYLOAD is for https endpoints: over http the body's SHA-256 is what protects it");
    c->unsigned_payload = cfg->unsigned_payload;
    c->part_size = part;
    c->multipart_threshold = cfg->multipart_threshold != 0 ? cfg->multipart_threshold : part;
    *out = c;
out:
    if (rc != CL_OK) cl_s3_client_free(c);
    return rc;
}

void cl_s3_client_free(cl_s3_client *c)
{
    if (c == NULL) return;
    cl_http_client_free(c->http);
    cl_buf_free(&c->secret);
    cl_buf_free(&c->session_token);
    cl_buf_free(&c->signing_key);
    free(c->region);
    free(c->access_key_id);
    free(c);
}

/* The answer's headers into info. */
static CL_MUST_USE cl_status fill_info(const cl_buf *h, uint64_t body_len, cl_s3_object_info *info)
{
    if (info == NULL) return CL_OK;
    memset(info, 0, sizeof(*info));
    cl_reader v;
    char num[32];
    info->size = body_len;
    const struct {
        const char *name;
        char *dst;
        size_t cap;
    } fields[] = {{"ETag", info->etag, sizeof(info->etag)},
                  {"Last-Modified", info->last_modified, sizeof(info->last_modified)},
                  {"Content-Type", info->content_type, sizeof(info->content_type)},
                  {"Content-Length", num, sizeof(num)}};
    num[0] = '\0';
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (!cl_http_header_find(h, fields[i].name, &v)) continue;
        size_t n = cl_reader_remaining(&v);
        CL_ENSURE(n < fields[i].cap, CL_ERR_FORMAT, "S3's %s header is over %zu bytes", fields[i].name,
                  fields[i].cap - 1);
        CL_GUARD(cl_reader_copy(&v, fields[i].dst, n));
        fields[i].dst[n] = '\0';
    }
    if (num[0] != '\0') CL_GUARD_CTX(cl_parse_uint(num, 0, UINT64_MAX, "Content-Length", &info->size), "S3's answer");
    info->total_size = info->size;
    /* Content-Range: bytes FIRST-LAST/TOTAL (RFC 9110 section 14.4) */
    if (cl_http_header_find(h, "Content-Range", &v)) {
        cl_reader spec;
        bool found = false;
        uint64_t total = 0;
        cl_reader_until(&v, '/', &spec, &found);
        if (found && cl_reader_skip(&v, 1) == CL_OK && cl_reader_decimal(&v, UINT64_MAX, &total) == CL_OK)
            info->total_size = total;
    }
    return CL_OK;
}

cl_status cl_s3_create_bucket(cl_s3_client *c, const char *bucket)
{
    /* us-east-1 takes no CreateBucketConfiguration; any other region names itself in one. */
    cl_buf body;
    cl_buf_init(&body, 4096);
    cl_status rc = CL_OK;
    if (strcmp(c->region, "us-east-1") != 0)
        CL_GUARD_GOTO(cl_buf_printf(&body,
                                    "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                                    "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
                                    c->region));
    s3_call k = {.op = "CreateBucket", .method = "PUT", .bucket = bucket, .body = body.data, .body_len = body.len};
    rc = s3_do(c, &k);
out:
    cl_buf_free(&body);
    return rc;
}

cl_status cl_s3_delete_bucket(cl_s3_client *c, const char *bucket)
{
    s3_call k = {.op = "DeleteBucket", .method = "DELETE", .bucket = bucket, .payload_hash = S3_EMPTY_SHA256};
    return s3_do(c, &k);
}

cl_status cl_s3_put_object(cl_s3_client *c, const char *bucket, const char *key, const void *data, size_t len,
                           const char *content_type, cl_s3_object_info *info)
{
    cl_buf h;
    cl_buf_init(&h, 128 << 10);
    cl_http_header extra[1] = {{"Content-Type", content_type}};
    s3_call k = {.op = "PutObject",
                 .method = "PUT",
                 .bucket = bucket,
                 .key = key,
                 .extra = extra,
                 .n_extra = content_type != NULL ? 1 : 0,
                 .body = data,
                 .body_len = len,
                 .resp_headers = &h};
    cl_status rc = s3_do(c, &k);
    if (rc == CL_OK) rc = fill_info(&h, len, info);
    cl_buf_free(&h);
    return rc;
}

/* --- files ------------------------------------------------------------------------- */

typedef struct fd_source {
    int fd;
    uint64_t base;
} fd_source;

static CL_MUST_USE cl_status fd_read_at(void *arg, uint64_t at, uint8_t *buf, size_t n, size_t *got)
{
    const fd_source *s = arg;
    for (;;) {
        ssize_t r = pread(s->fd, buf, n, (off_t)(s->base + at));
        if (r >= 0) {
            *got = (size_t)r;
            return CL_OK;
        }
        if (errno != EINTR)
            CL_FAIL_ERRNO(CL_ERR_IO, "reading the file to upload at byte %llu", (unsigned long long)(s->base + at));
    }
}

static CL_MUST_USE cl_status fd_write_all(void *arg, const uint8_t *p, size_t n)
{
    const int *fd = arg;
    cl_reader r = cl_reader_make(p, n);
    while (cl_reader_remaining(&r) > 0) {
        const uint8_t *q = NULL;
        size_t left = 0;
        cl_reader_rest(&r, &q, &left);
        ssize_t w = write(*fd, q, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) CL_FAIL_ERRNO(CL_ERR_IO, "writing the downloaded object");
        CL_GUARD(cl_reader_skip(&r, (size_t)w));
    }
    return CL_OK;
}

/* SHA-256 of len bytes of fd from base, read in chunks (the file is never held whole). */
static CL_MUST_USE cl_status hash_range(int fd, uint64_t base, uint64_t len, char out[CL_SIGV4_SIG_HEX_LEN + 1])
{
    cl_status rc = CL_OK;
    uint8_t *chunk = malloc(S3_IO_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    CL_ENSURE_GOTO(chunk != NULL && ctx != NULL, CL_ERR_NOMEM, "out of memory");
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "SHA-256 failed");
    fd_source s = {.fd = fd, .base = base};
    for (uint64_t at = 0; at < len;) {
        size_t want = len - at < S3_IO_CHUNK ? (size_t)(len - at) : S3_IO_CHUNK;
        size_t got = 0;
        CL_GUARD_GOTO(fd_read_at(&s, at, chunk, want, &got));
        CL_ENSURE_GOTO(got > 0, CL_ERR_IO, "the file to upload ended at byte %llu, before its size (did it shrink?)",
                       (unsigned long long)(base + at));
        if (EVP_DigestUpdate(ctx, chunk, got) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "SHA-256 failed");
        at += got;
    }
    uint8_t d[CL_SHA256_LEN];
    if (EVP_DigestFinal_ex(ctx, d, NULL) != 1) CL_FAIL_SSL_GOTO(CL_ERR_CRYPTO, "SHA-256 failed");
    (void)cl_hex_encode(d, sizeof(d), out, CL_SIGV4_SIG_HEX_LEN + 1);
out:
    EVP_MD_CTX_free(ctx);
    if (chunk != NULL) cl_memzero(chunk, S3_IO_CHUNK);
    free(chunk);
    return rc;
}

/* The payload hash of a file range: its SHA-256, or UNSIGNED-PAYLOAD over TLS when asked. */
static CL_MUST_USE cl_status range_hash(const cl_s3_client *c, int fd, uint64_t base, uint64_t len,
                                        char out[CL_SIGV4_SIG_HEX_LEN + 1])
{
    if (c->unsigned_payload) {
        (void)snprintf(out, CL_SIGV4_SIG_HEX_LEN + 1, "%s", S3_UNSIGNED);
        return CL_OK;
    }
    return hash_range(fd, base, len, out);
}

static CL_MUST_USE cl_status put_range(cl_s3_client *c, s3_call *k, int fd, uint64_t base, uint64_t len)
{
    char hash[CL_SIGV4_SIG_HEX_LEN + 1];
    CL_GUARD(range_hash(c, fd, base, len, hash));
    fd_source src = {.fd = fd, .base = base};
    k->payload_hash = hash;
    k->source = len > 0 ? fd_read_at : NULL;
    k->source_arg = &src;
    k->source_len = len;
    return s3_do(c, k);
}

static CL_MUST_USE cl_status abort_upload(cl_s3_client *c, const char *bucket, const char *key, const char *query)
{
    s3_call k = {.op = "AbortMultipartUpload",
                 .method = "DELETE",
                 .bucket = bucket,
                 .key = key,
                 .query = query,
                 .payload_hash = S3_EMPTY_SHA256};
    return s3_do(c, &k);
}

/* "Uploading and copying objects using multipart upload" (S3 User Guide): create, the parts in
 * order, complete with every part's number and ETag; abort when anything fails. */
static CL_MUST_USE cl_status put_multipart(cl_s3_client *c, const char *bucket, const char *key, int fd, uint64_t size,
                                           const char *content_type, cl_s3_object_info *info)
{
    cl_status rc = CL_OK;
    uint64_t part = c->part_size;
    /* At most 10000 parts: a larger file gets larger parts, a whole number of MiB. */
    if ((size + part - 1) / part > CL_S3_MAX_PARTS) part = ((size / CL_S3_MAX_PARTS) | ((1 << 20) - 1)) + 1;
    CL_ENSURE(part <= CL_S3_MAX_PART, CL_ERR_LIMIT, "a file of %llu bytes is over S3's 10000 parts of 5 GiB",
              (unsigned long long)size);
    size_t n_parts = (size_t)((size + part - 1) / part);
    char upload_id[1024 + 1] = "";
    char(*etags)[132] = calloc(n_parts, sizeof(*etags));
    cl_buf resp, h, query, body;
    cl_buf_init(&resp, 64 << 10);
    cl_buf_init(&h, 128 << 10);
    cl_buf_init(&query, 4096);
    cl_buf_init(&body, (size_t)n_parts * 200 + 4096);
    bool created = false;
    CL_ENSURE_GOTO(etags != NULL, CL_ERR_NOMEM, "out of memory");

    cl_http_header ct[1] = {{"Content-Type", content_type}};
    s3_call create = {.op = "CreateMultipartUpload",
                      .method = "POST",
                      .bucket = bucket,
                      .key = key,
                      .query = "uploads",
                      .extra = ct,
                      .n_extra = content_type != NULL ? 1 : 0,
                      .payload_hash = S3_EMPTY_SHA256,
                      .resp = &resp};
    CL_GUARD_GOTO(s3_do(c, &create));
    CL_GUARD_CTX_GOTO(cl_s3_xml_upload_id_parse(resp.data, resp.len, upload_id), "S3 CreateMultipartUpload");
    created = true;
    CL_LOG_DEBUG("multipart upload of %llu bytes in %zu parts of %llu", (unsigned long long)size, n_parts,
                 (unsigned long long)part);
    for (size_t i = 0; i < n_parts; i++) {
        uint64_t base = (uint64_t)i * part;
        uint64_t len = size - base < part ? size - base : part;
        cl_buf_reset(&query);
        cl_buf_reset(&h);
        CL_GUARD_GOTO(cl_buf_printf(&query, "partNumber=%zu&uploadId=", i + 1));
        CL_GUARD_GOTO(uri_encode(&query, upload_id, false));
        s3_call up = {.op = "UploadPart",
                      .method = "PUT",
                      .bucket = bucket,
                      .key = key,
                      .query = cl_buf_cstr(&query),
                      .resp_headers = &h};
        CL_GUARD_GOTO(put_range(c, &up, fd, base, len));
        cl_reader v;
        CL_ENSURE_GOTO(cl_http_header_find(&h, "ETag", &v) && cl_reader_remaining(&v) > 0 &&
                           cl_reader_remaining(&v) < sizeof(etags[0]),
                       CL_ERR_FORMAT, "S3's answer to UploadPart %zu has no ETag", i + 1);
        CL_GUARD_GOTO(cl_reader_copy(&v, etags[i], cl_reader_remaining(&v)));
    }
    /* CompleteMultipartUpload's body; an ETag's characters escaped as XML wants them. */
    CL_GUARD_GOTO(
        cl_buf_append_str(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"));
    for (size_t i = 0; i < n_parts; i++) {
        CL_GUARD_GOTO(cl_buf_printf(&body, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1));
        for (const char *p = etags[i]; *p != '\0'; p++) {
            if (*p == '&')
                CL_GUARD_GOTO(cl_buf_append_str(&body, "&amp;"));
            else if (*p == '<')
                CL_GUARD_GOTO(cl_buf_append_str(&body, "&lt;"));
            else if (*p == '>')
                CL_GUARD_GOTO(cl_buf_append_str(&body, "&gt;"));
            else
                CL_GUARD_GOTO(cl_buf_append_u8(&body, (uint8_t)*p));
        }
        CL_GUARD_GOTO(cl_buf_append_str(&body, "</ETag></Part>"));
    }
    CL_GUARD_GOTO(cl_buf_append_str(&body, "</CompleteMultipartUpload>"));
    cl_buf_reset(&query);
    cl_buf_reset(&resp);
    CL_GUARD_GOTO(cl_buf_append_str(&query, "uploadId="));
    CL_GUARD_GOTO(uri_encode(&query, upload_id, false));
    s3_call done = {.op = "CompleteMultipartUpload",
                    .method = "POST",
                    .bucket = bucket,
                    .key = key,
                    .query = cl_buf_cstr(&query),
                    .body = body.data,
                    .body_len = body.len,
                    .resp = &resp};
    CL_GUARD_GOTO(s3_do(c, &done));
    /* "A 200 OK response can contain either a success or an error" (CompleteMultipartUpload). */
    char code[128], message[512];
    if (cl_s3_xml_error_parse(resp.data, resp.len, code, message) == CL_OK) {
        done.status = 200;
        CL_GUARD_GOTO(s3_failure(&done, &resp));
    }
    created = false; /* complete: nothing to abort */
    if (info != NULL) {
        memset(info, 0, sizeof(*info));
        info->size = info->total_size = size;
    }
out:
    if (rc != CL_OK && created) {
        /* Keep the failure's own message: the abort's outcome is only logged. */
        cl_error saved = *cl_error_last();
        cl_buf_reset(&query);
        cl_status arc = cl_buf_append_str(&query, "uploadId");
        if (arc == CL_OK) arc = cl_buf_append_u8(&query, '=');
        if (arc == CL_OK) arc = uri_encode(&query, upload_id, false);
        if (arc == CL_OK) arc = abort_upload(c, bucket, key, cl_buf_cstr(&query));
        if (arc != CL_OK) CL_LOG_WARN("the failed multipart upload could not be aborted: %s", cl_error_message());
        rc = CL_RAISE(saved.code, "%s", saved.msg);
    }
    free(etags);
    cl_buf_free(&resp);
    cl_buf_free(&h);
    cl_buf_free(&query);
    cl_buf_free(&body);
    return rc;
}

cl_status cl_s3_put_object_fd(cl_s3_client *c, const char *bucket, const char *key, int fd, const char *content_type,
                              cl_s3_object_info *info)
{
    struct stat st;
    if (fstat(fd, &st) != 0) CL_FAIL_ERRNO(CL_ERR_IO, "the file to upload");
    CL_ENSURE(S_ISREG(st.st_mode), CL_ERR_USAGE,
              "the file to upload must be a regular file (its size is announced before its bytes)");
    uint64_t size = (uint64_t)st.st_size;
    if (size >= c->multipart_threshold) return put_multipart(c, bucket, key, fd, size, content_type, info);
    cl_buf h;
    cl_buf_init(&h, 128 << 10);
    cl_http_header extra[1] = {{"Content-Type", content_type}};
    s3_call k = {.op = "PutObject",
                 .method = "PUT",
                 .bucket = bucket,
                 .key = key,
                 .extra = extra,
                 .n_extra = content_type != NULL ? 1 : 0,
                 .resp_headers = &h};
    cl_status rc = put_range(c, &k, fd, 0, size);
    if (rc == CL_OK) rc = fill_info(&h, size, info);
    cl_buf_free(&h);
    return rc;
}

/* Range: bytes=FIRST-[LAST] (RFC 9110 section 14.1.2). */
static CL_MUST_USE cl_status range_header(const cl_s3_range *range, char out[64])
{
    out[0] = '\0';
    if (range == NULL) return CL_OK;
    CL_ENSURE(range->first <= range->last, CL_ERR_USAGE, "a byte range's first byte %llu is after its last %llu",
              (unsigned long long)range->first, (unsigned long long)range->last);
    if (range->last == UINT64_MAX)
        (void)snprintf(out, 64, "bytes=%llu-", (unsigned long long)range->first);
    else
        (void)snprintf(out, 64, "bytes=%llu-%llu", (unsigned long long)range->first, (unsigned long long)range->last);
    return CL_OK;
}

cl_status cl_s3_get_object(cl_s3_client *c, const char *bucket, const char *key, const cl_s3_range *range, size_t max,
                           cl_buf *out, cl_s3_object_info *info)
{
    char r[64];
    CL_GUARD(range_header(range, r));
    cl_http_header extra[1] = {{"Range", r}};
    cl_buf h, body;
    cl_buf_init(&h, 128 << 10);
    /* Room for the bound, and for an error document when the bound is small. */
    cl_buf_init(&body, max > S3_ERROR_BODY_MAX ? max : S3_ERROR_BODY_MAX);
    s3_call k = {.op = "GetObject",
                 .method = "GET",
                 .bucket = bucket,
                 .key = key,
                 .extra = extra,
                 .n_extra = range != NULL ? 1 : 0,
                 .payload_hash = S3_EMPTY_SHA256,
                 .resp = &body,
                 .resp_headers = &h};
    cl_status rc = CL_OK;
    char shown[200];
    CL_GUARD_GOTO(s3_do(c, &k));
    CL_ENSURE_GOTO(body.len <= max, CL_ERR_LIMIT, "S3 GetObject %s/%s: the object is over the %zu bytes asked for",
                   bucket, show(key, shown, sizeof(shown)), max);
    CL_GUARD_GOTO(fill_info(&h, body.len, info));
    CL_GUARD_GOTO(cl_buf_append(out, body.data, body.len));
out:
    cl_buf_free(&h);
    cl_buf_free(&body);
    return rc;
}

cl_status cl_s3_get_object_fd(cl_s3_client *c, const char *bucket, const char *key, const cl_s3_range *range, int fd,
                              cl_s3_object_info *info)
{
    char r[64];
    CL_GUARD(range_header(range, r));
    cl_http_header extra[1] = {{"Range", r}};
    cl_buf h;
    cl_buf_init(&h, 128 << 10);
    s3_call k = {.op = "GetObject",
                 .method = "GET",
                 .bucket = bucket,
                 .key = key,
                 .extra = extra,
                 .n_extra = range != NULL ? 1 : 0,
                 .payload_hash = S3_EMPTY_SHA256,
                 .sink = fd_write_all,
                 .sink_arg = &fd,
                 .resp_headers = &h};
    cl_status rc = s3_do(c, &k);
    if (rc == CL_OK) rc = fill_info(&h, 0, info);
    cl_buf_free(&h);
    return rc;
}

cl_status cl_s3_head_object(cl_s3_client *c, const char *bucket, const char *key, cl_s3_object_info *info)
{
    cl_buf h;
    cl_buf_init(&h, 128 << 10);
    s3_call k = {.op = "HeadObject",
                 .method = "HEAD",
                 .bucket = bucket,
                 .key = key,
                 .payload_hash = S3_EMPTY_SHA256,
                 .resp_headers = &h};
    cl_status rc = s3_do(c, &k);
    if (rc == CL_OK) rc = fill_info(&h, 0, info);
    cl_buf_free(&h);
    return rc;
}

cl_status cl_s3_delete_object(cl_s3_client *c, const char *bucket, const char *key)
{
    s3_call k = {
        .op = "DeleteObject", .method = "DELETE", .bucket = bucket, .key = key, .payload_hash = S3_EMPTY_SHA256};
    return s3_do(c, &k);
}

cl_status cl_s3_list_objects_v2(cl_s3_client *c, const char *bucket, const cl_s3_list_params *p, cl_s3_list_page *out)
{
    memset(out, 0, sizeof(*out));
    cl_status rc = CL_OK;
    cl_buf query, resp;
    cl_buf_init(&query, 16384);
    cl_buf_init(&resp, CL_S3_MAX_XML);
    CL_ENSURE_GOTO(p == NULL || p->max_keys <= CL_S3_MAX_LIST_KEYS, CL_ERR_USAGE, "max-keys is 1 to %d",
                   CL_S3_MAX_LIST_KEYS);
    /* The parameters URI-encoded, as SigV4's canonical query string has them. */
    CL_GUARD_GOTO(cl_buf_append_str(&query, "list-type=2"));
    if (p != NULL && p->continuation_token != NULL) {
        CL_GUARD_GOTO(cl_buf_append_str(&query, "&continuation-token="));
        CL_GUARD_GOTO(uri_encode(&query, p->continuation_token, false));
    }
    if (p != NULL && p->delimiter != NULL) {
        CL_GUARD_GOTO(cl_buf_append_str(&query, "&delimiter="));
        CL_GUARD_GOTO(uri_encode(&query, p->delimiter, false));
    }
    if (p != NULL && p->max_keys > 0) CL_GUARD_GOTO(cl_buf_printf(&query, "&max-keys=%u", p->max_keys));
    if (p != NULL && p->prefix != NULL) {
        CL_GUARD_GOTO(cl_buf_append_str(&query, "&prefix="));
        CL_GUARD_GOTO(uri_encode(&query, p->prefix, false));
    }
    s3_call k = {.op = "ListObjectsV2",
                 .method = "GET",
                 .bucket = bucket,
                 .query = cl_buf_cstr(&query),
                 .payload_hash = S3_EMPTY_SHA256,
                 .resp = &resp};
    CL_GUARD_GOTO(s3_do(c, &k));
    CL_GUARD_CTX_GOTO(cl_s3_xml_list_parse(resp.data, resp.len, out), "S3 ListObjectsV2 %s", bucket);
out:
    cl_buf_free(&query);
    cl_buf_free(&resp);
    return rc;
}
