/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AWS Signature Version 4. Each function cites the step of "Create a signed
 * AWS API request" (IAM User Guide) it implements; where the guide leaves a
 * choice open, botocore's auth.SigV4Auth is the reference (the tests check
 * signatures botocore computed).
 */
#include "cloister/sigv4.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cloister/crypto.h"
#include "cloister/mem.h"

#define CL_SIGV4_MAX_CANON ((size_t)1 << 20)

static bool cl_sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.' || c == '~';
}

/* Step 1, CanonicalURI: botocore quotes the path as sent once more with
 * safe='/~' for every service but S3, so "%20" becomes "%2520". */
static CL_MUST_USE cl_status cl_sigv4_canonical_uri(const char *path, cl_buf *out)
{
    if (path == NULL || path[0] == '\0') return cl_buf_append_u8(out, '/');
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
        if (cl_sigv4_unreserved(*p) || *p == '/') {
            CL_GUARD(cl_buf_append_u8(out, *p));
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            CL_GUARD(cl_buf_append(out, enc, 3));
        }
    }
    return CL_OK;
}

typedef struct cl_sigv4_pair {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
} cl_sigv4_pair;

/* Byte order, as the canonical query string is sorted (no locale). */
static int cl_sigv4_cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y) return x < y ? -1 : 1;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int cl_sigv4_pair_cmp(const void *x, const void *y)
{
    const cl_sigv4_pair *a = x, *b = y;
    int c = cl_sigv4_cmp_bytes(a->key, a->key_len, b->key, b->key_len);
    return c != 0 ? c : cl_sigv4_cmp_bytes(a->val, a->val_len, b->val, b->val_len);
}

/* Step 1, CanonicalQueryString: pairs sorted by name then value, as sent
 * (botocore _canonical_query_string_url); a bare name gets "=". */
static CL_MUST_USE cl_status cl_sigv4_canonical_query(const char *query, cl_buf *out)
{
    if (query == NULL || query[0] == '\0') return CL_OK;
    size_t n = 1;
    for (const char *p = query; *p != '\0'; p++) n += *p == '&';
    CL_ENSURE(n <= 1024, CL_ERR_LIMIT, "query string has more than 1024 parameters");
    cl_sigv4_pair *pairs = calloc(n, sizeof(*pairs));
    CL_ENSURE(pairs != NULL, CL_ERR_NOMEM, "out of memory for the query string");
    size_t count = 0;
    const char *p = query;
    while (true) {
        const char *end = strchr(p, '&');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            cl_sigv4_pair *pr = &pairs[count++];
            pr->key = p;
            pr->key_len = eq != NULL ? (size_t)(eq - p) : len;
            pr->val = eq != NULL ? eq + 1 : p + len;
            pr->val_len = eq != NULL ? len - pr->key_len - 1 : 0;
        }
        if (end == NULL) break;
        p = end + 1;
    }
    qsort(pairs, count, sizeof(*pairs), cl_sigv4_pair_cmp);
    cl_status rc = CL_OK;
    for (size_t i = 0; i < count && rc == CL_OK; i++) {
        if (i > 0) rc = cl_buf_append_u8(out, '&');
        if (rc == CL_OK) rc = cl_buf_append(out, pairs[i].key, pairs[i].key_len);
        if (rc == CL_OK) rc = cl_buf_append_u8(out, '=');
        if (rc == CL_OK) rc = cl_buf_append(out, pairs[i].val, pairs[i].val_len);
    }
    free(pairs);
    return rc;
}

/* Step 1, CanonicalHeaders value: leading and trailing spaces trimmed,
 * inner runs of spaces collapsed to one (botocore _header_value). */
static CL_MUST_USE cl_status cl_sigv4_append_trimmed(cl_buf *out, const char *v)
{
    while (*v == ' ' || *v == '\t') v++;
    bool space = false;
    for (; *v != '\0'; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space) CL_GUARD(cl_buf_append_u8(out, ' '));
        space = false;
        CL_GUARD(cl_buf_append_u8(out, (uint8_t)*v));
    }
    return CL_OK;
}

static CL_MUST_USE cl_status cl_sigv4_canonical_headers(const cl_sigv4_request *req, cl_buf *out)
{
    const char *sh = req->signed_headers;
    CL_ENSURE(sh != NULL && sh[0] != '\0', CL_ERR_FORMAT, "no signed headers");
    while (*sh != '\0') {
        const char *end = strchr(sh, ';');
        size_t len = end != NULL ? (size_t)(end - sh) : strlen(sh);
        CL_ENSURE(len > 0, CL_ERR_FORMAT, "empty name in SignedHeaders");
        for (size_t i = 0; i < len; i++)
            CL_ENSURE(sh[i] < 'A' || sh[i] > 'Z', CL_ERR_FORMAT, "SignedHeaders must be lower case");
        CL_GUARD(cl_buf_append(out, sh, len));
        CL_GUARD(cl_buf_append_u8(out, ':'));
        bool found = false;
        for (size_t i = 0; i < req->n_headers; i++) {
            const char *name = req->headers[i].key;
            if (strlen(name) != len || strncasecmp(name, sh, len) != 0) continue;
            if (found) CL_GUARD(cl_buf_append_u8(out, ','));
            CL_GUARD(cl_sigv4_append_trimmed(out, req->headers[i].value));
            found = true;
        }
        CL_ENSURE(found, CL_ERR_FORMAT, "signed header %.*s is not in the request", (int)len, sh);
        CL_GUARD(cl_buf_append_u8(out, '\n'));
        if (end == NULL) break;
        sh = end + 1;
    }
    return CL_OK;
}

/* Step 1. The payload's hash is a hash here: S3's markers (UNSIGNED-PAYLOAD,
 * STREAMING-AWS4-HMAC-SHA256-PAYLOAD) belong to S3's form only (cl_sigv4_s3_canonical_request). */
cl_status cl_sigv4_canonical_request(const cl_sigv4_request *req, cl_buf *out)
{
    CL_ENSURE(req->method != NULL && req->payload_sha256_hex != NULL &&
                  strlen(req->payload_sha256_hex) == CL_SIGV4_SIG_HEX_LEN,
              CL_ERR_USAGE, "incomplete request to sign");
    /* HTTPMethod \n CanonicalURI \n CanonicalQueryString \n CanonicalHeaders \n
     * SignedHeaders \n HashedPayload */
    CL_GUARD(cl_buf_append_str(out, req->method));
    CL_GUARD(cl_buf_append_u8(out, '\n'));
    CL_GUARD(cl_sigv4_canonical_uri(req->path, out));
    CL_GUARD(cl_buf_append_u8(out, '\n'));
    CL_GUARD(cl_sigv4_canonical_query(req->query, out));
    CL_GUARD(cl_buf_append_u8(out, '\n'));
    CL_GUARD(cl_sigv4_canonical_headers(req, out));
    CL_GUARD(cl_buf_append_u8(out, '\n'));
    CL_GUARD(cl_buf_append_str(out, req->signed_headers));
    CL_GUARD(cl_buf_append_u8(out, '\n'));
    return cl_buf_append_str(out, req->payload_sha256_hex);
}

static CL_MUST_USE cl_status cl_sigv4_check_date(const char *amz_date)
{
    CL_ENSURE(amz_date != NULL && strlen(amz_date) == 16, CL_ERR_FORMAT, "X-Amz-Date must be YYYYMMDDTHHMMSSZ");
    int64_t t;
    return cl_sigv4_parse_amz_date(amz_date, 16, &t);
}

/* Steps 2-3 for a canonical request made already (the services' form or S3's):
 * Algorithm \n RequestDateTime \n CredentialScope \n hex(SHA256(CanonicalRequest)). */
static CL_MUST_USE cl_status cl_sigv4_string_to_sign_of(const cl_sigv4_request *req, const cl_buf *canon, cl_buf *out)
{
    CL_GUARD(cl_sigv4_check_date(req->amz_date));
    CL_ENSURE(req->region != NULL && req->service != NULL, CL_ERR_USAGE, "region and service are required");
    uint8_t digest[CL_SHA256_LEN];
    CL_GUARD(cl_sha256(canon->data, canon->len, digest));
    CL_GUARD(cl_buf_printf(out, "%s\n%s\n%.8s/%s/%s/aws4_request\n", CL_SIGV4_ALGORITHM, req->amz_date, req->amz_date,
                           req->region, req->service));
    return cl_buf_append_hex(out, digest, sizeof(digest));
}

cl_status cl_sigv4_string_to_sign(const cl_sigv4_request *req, cl_buf *out)
{
    cl_buf canon;
    cl_buf_init(&canon, CL_SIGV4_MAX_CANON);
    cl_status rc = cl_sigv4_canonical_request(req, &canon);
    if (rc == CL_OK) rc = cl_sigv4_string_to_sign_of(req, &canon, out);
    cl_buf_free(&canon);
    return rc;
}

/* Step 5 over a string to sign: hex(HMAC(kSigning, StringToSign)). */
static CL_MUST_USE cl_status cl_sigv4_sign(const uint8_t signing_key[CL_SIGV4_KEY_LEN], const cl_buf *sts,
                                           char out[CL_SIGV4_SIG_HEX_LEN + 1])
{
    uint8_t sig[CL_SHA256_LEN];
    CL_GUARD(cl_hmac_sha256(signing_key, CL_SIGV4_KEY_LEN, sts->data, sts->len, sig));
    (void)cl_hex_encode(sig, sizeof(sig), out, CL_SIGV4_SIG_HEX_LEN + 1);
    return CL_OK;
}

cl_status cl_sigv4_signing_key(const char *secret, const char *date8, const char *region, const char *service,
                               uint8_t out[CL_SIGV4_KEY_LEN])
{
    cl_status rc = CL_OK;
    cl_buf key;
    cl_buf_init_secret(&key, 4096);
    CL_ENSURE_GOTO(strlen(date8) >= 8, CL_ERR_FORMAT, "the credential scope's date must be YYYYMMDD");
    /* Step 4: kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
    CL_GUARD_GOTO(cl_buf_append_str(&key, "AWS4"));
    CL_GUARD_GOTO(cl_buf_append_str(&key, secret));
    CL_GUARD_GOTO(cl_hmac_sha256(key.data, key.len, date8, 8, out));
    CL_GUARD_GOTO(cl_hmac_sha256(out, CL_SHA256_LEN, region, strlen(region), out));
    CL_GUARD_GOTO(cl_hmac_sha256(out, CL_SHA256_LEN, service, strlen(service), out));
    CL_GUARD_GOTO(cl_hmac_sha256(out, CL_SHA256_LEN, "aws4_request", 12, out));
out:
    if (rc != CL_OK) cl_memzero(out, CL_SHA256_LEN);
    cl_buf_free(&key);
    return rc;
}

cl_status cl_sigv4_signature_with_key(const uint8_t signing_key[CL_SIGV4_KEY_LEN], const cl_sigv4_request *req,
                                      char out[CL_SIGV4_SIG_HEX_LEN + 1])
{
    cl_buf sts;
    cl_buf_init(&sts, CL_SIGV4_MAX_CANON);
    cl_status rc = cl_sigv4_string_to_sign(req, &sts);
    if (rc == CL_OK) rc = cl_sigv4_sign(signing_key, &sts, out);
    cl_buf_free(&sts);
    return rc;
}

cl_status cl_sigv4_signature(const char *secret, const cl_sigv4_request *req, char out[CL_SIGV4_SIG_HEX_LEN + 1])
{
    uint8_t k[CL_SHA256_LEN];
    cl_status rc = cl_sigv4_signing_key(secret, req->amz_date, req->region, req->service, k);
    if (rc == CL_OK) rc = cl_sigv4_signature_with_key(k, req, out);
    cl_memzero(k, sizeof(k));
    return rc;
}

/* Whether the ';'-separated list names `name` (name_len bytes) as a whole entry. */
static bool cl_sigv4_list_has(const char *list, const char *name, size_t name_len)
{
    while (*list != '\0') {
        const char *end = strchr(list, ';');
        size_t len = end != NULL ? (size_t)(end - list) : strlen(list);
        if (len == name_len && strncasecmp(list, name, len) == 0) return true;
        if (end == NULL) break;
        list = end + 1;
    }
    return false;
}

/*
 * "Create a signed AWS API request", step 1: "The host header must be included as a signed
 * header ... any x-amz-* headers that you plan to include in your request must also be
 * added" to the canonical headers. S3 refuses an unsigned x-amz-* header with "There were
 * headers present in the request which were not signed" (HeadersNotSigned); botocore signs
 * every header but a short list (user-agent, expect, x-amzn-trace-id, hop-by-hop headers),
 * so what it sends passes. Content-Type may go unsigned, as AWS allows.
 */
cl_status cl_sigv4_check_signed_headers(const cl_sigv4_header *headers, size_t n_headers, const char *signed_headers)
{
    CL_ENSURE(signed_headers != NULL && cl_sigv4_list_has(signed_headers, "host", 4), CL_ERR_DENIED,
              "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    for (size_t i = 0; i < n_headers; i++) {
        const char *name = headers[i].key;
        size_t len = strlen(name);
        if (len < 6 || strncasecmp(name, "x-amz-", 6) != 0) continue;
        CL_ENSURE(cl_sigv4_list_has(signed_headers, name, len), CL_ERR_DENIED,
                  "There were headers present in the request which were not signed: %s must be in SignedHeaders", name);
    }
    return CL_OK;
}

cl_status cl_sigv4_authorization(const char *access_key_id, const char *secret, const cl_sigv4_request *req,
                                 cl_buf *out)
{
    char sig[CL_SIGV4_SIG_HEX_LEN + 1];
    CL_GUARD(cl_sigv4_signature(secret, req, sig));
    return cl_buf_printf(out, "%s Credential=%s/%.8s/%s/%s/aws4_request, SignedHeaders=%s, Signature=%s",
                         CL_SIGV4_ALGORITHM, access_key_id, req->amz_date, req->region, req->service,
                         req->signed_headers, sig);
}

/* Copies one bounded field out of the reader up to (not including) `stop` or ','. */
static CL_MUST_USE cl_status cl_sigv4_take(cl_reader *r, char stop, char *dst, size_t cap, const char *what)
{
    const char stops[3] = {stop, ',', '\0'};
    cl_reader field;
    bool found;
    cl_reader_until_any(r, stops, &field, &found);
    size_t n = 0;
    uint8_t c;
    while (cl_reader_remaining(&field) > 0) {
        CL_GUARD(cl_reader_u8(&field, &c));
        CL_ENSURE(c > 0x20 && c < 0x7f, CL_ERR_FORMAT, "invalid byte in %s", what);
        CL_ENSURE(n < cap, CL_ERR_FORMAT, "%s longer than %zu bytes", what, cap);
        dst[n++] = (char)c;
    }
    dst[n] = '\0';
    CL_ENSURE(n > 0, CL_ERR_FORMAT, "empty %s", what);
    return CL_OK;
}

static CL_MUST_USE cl_status cl_sigv4_expect(cl_reader *r, const char *lit)
{
    if (cl_reader_expect(r, lit, strlen(lit), lit) != CL_OK)
        CL_FAIL(CL_ERR_FORMAT, "Authorization header: expected %s", lit);
    return CL_OK;
}

/* Consumes `name=` when the remaining bytes start with it. */
static bool cl_sigv4_component(cl_reader *r, const char *name)
{
    size_t n = strlen(name);
    if (!cl_reader_starts_with(r, name, n)) return false;
    return cl_reader_skip(r, n) == CL_OK;
}

cl_status cl_sigv4_parse_authorization(const char *value, size_t len, cl_sigv4_auth *out)
{
    memset(out, 0, sizeof(*out));
    CL_ENSURE(len <= 4096, CL_ERR_FORMAT, "Authorization header longer than 4096 bytes");
    cl_reader r = cl_reader_make(value, len);
    CL_GUARD(cl_sigv4_expect(&r, CL_SIGV4_ALGORITHM " "));
    bool have_cred = false, have_sh = false, have_sig = false;
    /* The three components in any order, separated by ", " (AWS accepts "," alone). */
    for (int i = 0; i < 3; i++) {
        (void)cl_reader_skip_any(&r, " ,");
        if (!have_cred && cl_sigv4_component(&r, "Credential=")) {
            char date[CL_SIGV4_MAX_FIELD + 1], term[CL_SIGV4_MAX_FIELD + 1];
            CL_GUARD(cl_sigv4_take(&r, '/', out->access_key_id, CL_SIGV4_MAX_FIELD, "access key id"));
            CL_GUARD(cl_sigv4_expect(&r, "/"));
            CL_GUARD(cl_sigv4_take(&r, '/', date, CL_SIGV4_MAX_FIELD, "credential date"));
            CL_ENSURE(strlen(date) == 8, CL_ERR_FORMAT, "credential date must be YYYYMMDD");
            memcpy(out->date, date, 9);
            CL_GUARD(cl_sigv4_expect(&r, "/"));
            CL_GUARD(cl_sigv4_take(&r, '/', out->region, CL_SIGV4_MAX_FIELD, "credential region"));
            CL_GUARD(cl_sigv4_expect(&r, "/"));
            CL_GUARD(cl_sigv4_take(&r, '/', out->service, CL_SIGV4_MAX_FIELD, "credential service"));
            CL_GUARD(cl_sigv4_expect(&r, "/"));
            CL_GUARD(cl_sigv4_take(&r, ',', term, CL_SIGV4_MAX_FIELD, "credential terminator"));
            CL_ENSURE(strcmp(term, "aws4_request") == 0, CL_ERR_FORMAT, "credential scope must end with aws4_request");
            have_cred = true;
        } else if (!have_sh && cl_sigv4_component(&r, "SignedHeaders=")) {
            CL_GUARD(cl_sigv4_take(&r, ',', out->signed_headers, CL_SIGV4_MAX_SIGNED_HEADERS, "SignedHeaders"));
            have_sh = true;
        } else if (!have_sig && cl_sigv4_component(&r, "Signature=")) {
            CL_GUARD(cl_sigv4_take(&r, ',', out->signature, CL_SIGV4_SIG_HEX_LEN, "Signature"));
            CL_ENSURE(strlen(out->signature) == CL_SIGV4_SIG_HEX_LEN, CL_ERR_FORMAT, "Signature must be 64 hex digits");
            have_sig = true;
        } else {
            CL_FAIL(CL_ERR_FORMAT, "Authorization header needs Credential, SignedHeaders and Signature");
        }
    }
    (void)cl_reader_skip_any(&r, " ,");
    return cl_reader_expect_end(&r);
}

static CL_MUST_USE cl_status cl_sigv4_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        CL_ENSURE(s[i] >= '0' && s[i] <= '9', CL_ERR_FORMAT, "X-Amz-Date must be YYYYMMDDTHHMMSSZ");
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return CL_OK;
}

cl_status cl_sigv4_parse_amz_date(const char *s, size_t len, int64_t *epoch)
{
    CL_ENSURE(len == 16 && s[8] == 'T' && s[15] == 'Z', CL_ERR_FORMAT, "X-Amz-Date must be YYYYMMDDTHHMMSSZ");
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
    CL_GUARD(cl_sigv4_digits(s, 4, &y));
    CL_GUARD(cl_sigv4_digits(s + 4, 2, &mo));
    CL_GUARD(cl_sigv4_digits(s + 6, 2, &d));
    CL_GUARD(cl_sigv4_digits(s + 9, 2, &h));
    CL_GUARD(cl_sigv4_digits(s + 11, 2, &mi));
    CL_GUARD(cl_sigv4_digits(s + 13, 2, &se));
    CL_ENSURE(y >= 1970 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && se <= 60, CL_ERR_FORMAT,
              "X-Amz-Date is not a valid time");
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = se;
    time_t t = timegm(&tm);
    CL_ENSURE(t != (time_t)-1, CL_ERR_FORMAT, "X-Amz-Date is not a valid time");
    *epoch = (int64_t)t;
    return CL_OK;
}

void cl_sigv4_format_amz_date(int64_t epoch, char out[17])
{
    time_t t = (time_t)epoch;
    struct tm tm;
    gmtime_r(&t, &tm);
    (void)strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* --- S3 ------------------------------------------------------------------------------- */

static int cl_sigv4_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* URI-encodes n bytes of `p` after percent-decoding them: "Authenticating Requests (AWS
 * Signature Version 4)", UriEncode(): every byte but the unreserved ones as %XY (upper-case hex),
 * '/' kept when keep_slash (the object key name in CanonicalURI). A malformed escape is refused:
 * a verifier must not guess which bytes a client signed. */
static CL_MUST_USE cl_status cl_sigv4_reencode(const char *p, size_t n, bool keep_slash, cl_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    cl_reader r = cl_reader_make(p, n);
    uint8_t c;
    while (cl_reader_remaining(&r) > 0) {
        CL_GUARD(cl_reader_u8(&r, &c));
        if (c == '%') {
            uint8_t h, l;
            CL_ENSURE(cl_reader_u8(&r, &h) == CL_OK && cl_reader_u8(&r, &l) == CL_OK && cl_sigv4_hexval(h) >= 0 &&
                          cl_sigv4_hexval(l) >= 0,
                      CL_ERR_FORMAT, "malformed percent-escape at offset %zu of the request's URI",
                      cl_reader_offset(&r));
            c = (uint8_t)(cl_sigv4_hexval(h) << 4 | cl_sigv4_hexval(l));
        }
        if (cl_sigv4_unreserved(c) || (keep_slash && c == '/')) {
            CL_GUARD(cl_buf_append_u8(out, c));
        } else {
            char enc[3] = {'%', hex[c >> 4], hex[c & 15]};
            CL_GUARD(cl_buf_append(out, enc, 3));
        }
    }
    return CL_OK;
}

cl_status cl_sigv4_s3_canonical_uri(const char *raw_path, cl_buf *out)
{
    if (raw_path == NULL || raw_path[0] == '\0') return cl_buf_append_u8(out, '/');
    return cl_sigv4_reencode(raw_path, strlen(raw_path), true, out);
}

cl_status cl_sigv4_s3_canonical_query(const char *raw_query, const char *skip, cl_buf *out)
{
    if (raw_query == NULL || raw_query[0] == '\0') return CL_OK;
    cl_status rc = CL_OK;
    cl_buf norm;
    cl_buf_init(&norm, CL_SIGV4_MAX_CANON);
    size_t skip_len = skip != NULL ? strlen(skip) : 0;
    cl_reader r = cl_reader_make(raw_query, strlen(raw_query));
    bool first = true;
    while (cl_reader_remaining(&r) > 0) {
        cl_reader pair, name, value;
        bool found;
        cl_reader_until(&r, '&', &pair, &found);
        if (found) CL_GUARD_GOTO(cl_reader_skip(&r, 1));
        if (cl_reader_remaining(&pair) == 0) continue;
        cl_reader_until(&pair, '=', &name, &found);
        if (found) CL_GUARD_GOTO(cl_reader_skip(&pair, 1));
        value = pair;
        const uint8_t *np, *vp;
        size_t nn, vn;
        cl_reader_rest(&name, &np, &nn);
        cl_reader_rest(&value, &vp, &vn);
        if (skip != NULL && nn == skip_len && memcmp(np, skip, nn) == 0) continue;
        if (!first) CL_GUARD_GOTO(cl_buf_append_u8(&norm, '&'));
        first = false;
        CL_GUARD_GOTO(cl_sigv4_reencode((const char *)np, nn, false, &norm));
        CL_GUARD_GOTO(cl_buf_append_u8(&norm, '='));
        CL_GUARD_GOTO(cl_sigv4_reencode((const char *)vp, vn, false, &norm));
    }
    /* Sorted by name, then value (byte order of the encoded text, as AWS sorts). */
    CL_GUARD_GOTO(cl_sigv4_canonical_query(cl_buf_cstr(&norm), out));
out:
    cl_buf_free(&norm);
    return rc;
}

/* S3's canonical request: the steps of cl_sigv4_canonical_request with the path as sent (botocore
 * S3SigV4Auth._normalize_url_path returns it unchanged). It must be origin-form, printable ASCII. */
cl_status cl_sigv4_s3_canonical_request(const cl_sigv4_request *req, cl_buf *out)
{
    const char *path = req->path == NULL || req->path[0] == '\0' ? "/" : req->path;
    CL_ENSURE(path[0] == '/', CL_ERR_USAGE, "an S3 request path starts with '/'");
    for (const char *p = path; *p != '\0'; p++)
        CL_ENSURE(*p > 0x20 && *p < 0x7f, CL_ERR_USAGE, "an S3 request path is URI-encoded printable ASCII");
    /* The other services' form with "/" as the path, then the path put in its place: one
     * implementation of the rest of the steps. */
    /* The payload hash may be "UNSIGNED-PAYLOAD" (S3 only): a placeholder of the length the other
     * form checks, replaced like the path. */
    const char *payload = req->payload_sha256_hex;
    CL_ENSURE(payload != NULL && (strlen(payload) == CL_SIGV4_SIG_HEX_LEN || strcmp(payload, "UNSIGNED-PAYLOAD") == 0 ||
                                  strcmp(payload, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD") == 0),
              CL_ERR_USAGE,
              "an S3 payload hash is 64 hex digits, UNSIGNED-PAYLOAD or STREAMING-AWS4-HMAC-SHA256-PAYLOAD");
    cl_sigv4_request r = *req;
    r.path = "/";
    r.payload_sha256_hex = "0000000000000000000000000000000000000000000000000000000000000000";
    size_t start = out->len;
    CL_GUARD(cl_sigv4_canonical_request(&r, out));
    size_t method_len = strlen(req->method);
    cl_buf rest;
    cl_buf_init(&rest, CL_SIGV4_MAX_CANON);
    cl_status rc = CL_OK;
    /* out now holds METHOD "\n" "/" "\n" ...: keep what follows the "/". */
    CL_GUARD_GOTO(cl_buf_append(&rest, out->data + start + method_len + 2,
                                out->len - start - method_len - 2 - CL_SIGV4_SIG_HEX_LEN));
    cl_buf_truncate(out, start + method_len + 1);
    CL_GUARD_GOTO(cl_buf_append_str(out, path));
    CL_GUARD_GOTO(cl_buf_append(out, rest.data, rest.len));
    CL_GUARD_GOTO(cl_buf_append_str(out, payload));
out:
    cl_buf_free(&rest);
    if (rc != CL_OK) cl_buf_truncate(out, start);
    return rc;
}

cl_status cl_sigv4_s3_signature_with_key(const uint8_t signing_key[CL_SIGV4_KEY_LEN], const cl_sigv4_request *req,
                                         char out[CL_SIGV4_SIG_HEX_LEN + 1])
{
    cl_status rc = CL_OK;
    cl_buf canon, sts;
    cl_buf_init(&canon, CL_SIGV4_MAX_CANON);
    cl_buf_init(&sts, CL_SIGV4_MAX_CANON);
    CL_GUARD_GOTO(cl_sigv4_s3_canonical_request(req, &canon));
    CL_GUARD_GOTO(cl_sigv4_string_to_sign_of(req, &canon, &sts));
    CL_GUARD_GOTO(cl_sigv4_sign(signing_key, &sts, out));
out:
    cl_buf_free(&canon);
    cl_buf_free(&sts);
    return rc;
}

/* "Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks"
 * (Amazon S3 API Reference, sigv4-streaming): the string to sign of chunk n is
 * "AWS4-HMAC-SHA256-PAYLOAD" \n date \n scope \n previous-signature \n SHA256("") \n SHA256(data). */
cl_status cl_sigv4_chunk_signature(const uint8_t signing_key[CL_SIGV4_KEY_LEN], const char *amz_date, const char *scope,
                                   const char *previous_signature, const uint8_t *data, size_t len,
                                   char out[CL_SIGV4_SIG_HEX_LEN + 1])
{
    static const char empty_sha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    cl_status rc = CL_OK;
    cl_buf sts;
    cl_buf_init(&sts, 1024);
    uint8_t d[CL_SHA256_LEN], sig[CL_SHA256_LEN];
    CL_GUARD_GOTO(cl_sha256(data != NULL ? data : (const uint8_t *)"", len, d));
    CL_GUARD_GOTO(cl_buf_printf(&sts, "AWS4-HMAC-SHA256-PAYLOAD\n%s\n%s\n%s\n%s\n", amz_date, scope, previous_signature,
                                empty_sha256));
    CL_GUARD_GOTO(cl_buf_append_hex(&sts, d, sizeof(d)));
    CL_GUARD_GOTO(cl_hmac_sha256(signing_key, CL_SIGV4_KEY_LEN, sts.data, sts.len, sig));
    (void)cl_hex_encode(sig, sizeof(sig), out, CL_SIGV4_SIG_HEX_LEN + 1);
out:
    cl_buf_free(&sts);
    return rc;
}
