/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The routes of the records API (docs/api.md; the contract shared with the web page): bearer
 * tokens with scopes (RFC 6750), records sealed before they reach the store, the classifier and
 * the MRI model through the program's hooks, the page's static files, CORS.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/api.h"
#include "cloister/log.h"
#include "cloister/mem.h"

/* A failure that changes nothing for the caller (an optional header, a skip that cannot fail). */
static void routes_ignore(cl_status rc)
{
    if (rc != CL_OK) cl_error_clear();
}

#define ROUTES_TOKEN_MAX 512
#define ROUTES_PNG_SIGNATURE "\x89PNG\r\n\x1a\n"

void cl_api_error(cl_api_response *resp, int status, const char *code, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->content_type = "application/json";
    cl_buf_truncate(&resp->body, 0);
    json_t *j = json_pack("{s:s, s:s}", "error", code, "reason", reason);
    size_t need = j != NULL ? json_dumpb(j, NULL, 0, JSON_COMPACT) : 0;
    uint8_t *space = NULL;
    if (need > 0 && cl_buf_add_space(&resp->body, need, &space) == CL_OK)
        (void)json_dumpb(j, (char *)space, need, JSON_COMPACT);
    else
        routes_ignore(cl_buf_append_str(&resp->body, "{\"error\":\"InternalError\",\"reason\":\"out of memory\"}"));
    json_decref(j);
}

/* An error from a cl_status: the thread's last message is the reason. */
static void routes_fail(cl_api_response *resp, int status, const char *code)
{
    cl_api_error(resp, status, code, "%s", cl_error_message());
    cl_error_clear();
}

static void routes_json(cl_api_response *resp, int status)
{
    resp->status = status;
    resp->content_type = "application/json";
}

/* --- authentication ---------------------------------------------------------------------- */

cl_status cl_api_scopes_parse(const char *s, unsigned *out)
{
    cl_reader r = cl_reader_make(s, strlen(s));
    *out = 0;
    while (cl_reader_remaining(&r) > 0) {
        cl_reader one;
        bool found;
        cl_api_split(&r, ',', &one, &found);
        cl_reader_trim(&one, " ");
        if (cl_reader_is(&one, "read", false))
            *out |= CL_API_SCOPE_READ;
        else if (cl_reader_is(&one, "write", false))
            *out |= CL_API_SCOPE_WRITE;
        else
            CL_FAIL(CL_ERR_USAGE, "scope \"%s\" is not read or write", s);
    }
    CL_ENSURE(*out != 0, CL_ERR_USAGE, "no scope given: read, write or read,write");
    return CL_OK;
}

static const char *routes_scope_name(unsigned scopes)
{
    return scopes == (CL_API_SCOPE_READ | CL_API_SCOPE_WRITE) ? "read,write"
           : scopes == CL_API_SCOPE_WRITE                     ? "write"
                                                              : "read";
}

/* The token's scopes, or 0 and a 401 answer. Every configured hash is compared, in constant
 * time, whatever matched before (no early exit that times which one). */
static unsigned routes_authenticate(const cl_api_ctx *ctx, const cl_api_request *req, cl_api_response *resp)
{
    cl_reader r = cl_reader_make(req->authorization.data, req->authorization.len), scheme;
    bool found;
    if (req->authorization.len == 0) {
        cl_api_error(resp, 401, "Unauthorized",
                     "this route needs a bearer token: send Authorization: Bearer <token> (the hospital makes them "
                     "with cloister api token create)");
        goto refused;
    }
    cl_api_split(&r, ' ', &scheme, &found);
    (void)cl_reader_skip_any(&r, " ");
    cl_reader token = r, chars;
    /* RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
    size_t n = cl_reader_span(&r, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/", &chars);
    (void)cl_reader_skip_any(&r, "=");
    if (!found || !cl_reader_is(&scheme, "Bearer", true) || n == 0 || cl_reader_remaining(&r) != 0 ||
        cl_reader_remaining(&token) > ROUTES_TOKEN_MAX) {
        cl_api_error(resp, 401, "Unauthorized",
                     "the Authorization header is not \"Bearer <token>\"; send the token the hospital gave you");
        goto refused;
    }
    const uint8_t *tp;
    size_t tn;
    cl_reader_rest(&token, &tp, &tn);
    uint8_t digest[CL_SHA256_LEN];
    if (cl_sha256(tp, tn, digest) != CL_OK) {
        routes_fail(resp, 500, "InternalError");
        return 0;
    }
    unsigned scopes = 0;
    for (size_t i = 0; i < ctx->n_tokens; i++) {
        unsigned match = (unsigned)cl_ct_equal(digest, ctx->tokens[i].sha256, CL_SHA256_LEN);
        scopes |= ctx->tokens[i].scopes & (0U - match);
    }
    cl_memzero(digest, sizeof(digest));
    if (scopes != 0) return scopes;
    cl_api_error(resp, 401, "Unauthorized", "this bearer token is not one the API's configuration names");
refused:
    routes_ignore(cl_buf_append_str(&resp->headers, "WWW-Authenticate: Bearer realm=\"cloister-api\"\r\n"));
    return 0;
}

/* --- records ------------------------------------------------------------------------------- */

static CL_MUST_USE cl_status routes_score(cl_api_ctx *ctx, const cl_api_record *rec, double *score)
{
    cl_status rc = CL_OK;
    cl_buf input;
    cl_buf_init_secret(&input, 8192);
    CL_ENSURE_GOTO(ctx->hooks.score != NULL, CL_ERR_STATE,
                   "no classifier is configured (\"classifier\" in the API's configuration)");
    CL_GUARD_GOTO(cl_api_record_model_input(rec, &input));
    CL_GUARD_GOTO(ctx->hooks.score(ctx, input.data, input.len, score));
out:
    cl_buf_free(&input);
    return rc;
}

/* A stored record's plaintext JSON. 404 or 500 answered on failure. */
static bool routes_load(cl_api_ctx *ctx, const char *id, cl_buf *json, cl_api_response *resp)
{
    cl_buf blob;
    cl_buf_init(&blob, CL_API_RECORD_MAX + 64);
    cl_status rc = ctx->store->ops->get(ctx->store, id, &blob);
    if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear();
        cl_api_error(resp, 404, "NotFound", "no patient %s", id);
    } else if (rc != CL_OK) {
        CL_LOG_ERROR("reading %s from the store: %s", id, cl_error_message());
        routes_fail(resp, 503, "ServiceUnavailable");
    } else if ((rc = cl_api_record_open(ctx->key, id, blob.data, blob.len, json)) != CL_OK) {
        CL_LOG_ERROR("%s", cl_error_message());
        routes_fail(resp, 500, "InternalError");
    }
    cl_buf_free(&blob);
    return rc == CL_OK;
}

static void routes_patient_post(cl_api_ctx *ctx, const char *id, const cl_api_request *req, cl_api_response *resp)
{
    cl_api_record rec;
    cl_api_record_init(&rec);
    cl_buf json, blob;
    cl_buf_init_secret(&json, CL_API_RECORD_MAX);
    cl_buf_init(&blob, CL_API_RECORD_MAX + 64);
    double score = 0;
    bool existed = false;
    cl_status rc = cl_api_record_from_body(&rec, (const char *)req->content_type.data, req->content_type.len,
                                           req->body.data, req->body.len);
    if (rc == CL_ERR_UNSUPPORTED) {
        routes_fail(resp, 415, "UnsupportedMediaType");
        goto out;
    }
    if (rc != CL_OK) {
        routes_fail(resp, 400, "BadRequest");
        goto out;
    }
    bool scored = cl_api_record_has_measurements(&rec);
    if (scored && routes_score(ctx, &rec, &score) != CL_OK) {
        cl_api_error(resp, 502, "UpstreamFailed", "the classifier could not score the record, which was not stored: %s",
                     cl_error_message());
        cl_error_clear();
        goto out;
    }
    if (cl_api_record_json(&rec, id, scored, score, &json) != CL_OK ||
        cl_api_record_seal(ctx->key, id, rec.present, json.data, json.len, &blob) != CL_OK) {
        routes_fail(resp, 500, "InternalError");
        goto out;
    }
    if (ctx->store->ops->put(ctx->store, id, blob.data, blob.len, &existed) != CL_OK) {
        CL_LOG_ERROR("storing %s: %s", id, cl_error_message());
        routes_fail(resp, 503, "ServiceUnavailable");
        goto out;
    }
    routes_json(resp, existed ? 200 : 201);
    if (cl_buf_append(&resp->body, json.data, json.len) != CL_OK) routes_fail(resp, 500, "InternalError");
out:
    cl_api_record_free(&rec);
    cl_buf_free(&json);
    cl_buf_free(&blob);
}

static void routes_patient(cl_api_ctx *ctx, const char *id, const cl_api_request *req, cl_api_response *resp)
{
    if (req->method == CL_API_POST) {
        routes_patient_post(ctx, id, req, resp);
        return;
    }
    if (req->method == CL_API_DELETE) {
        bool existed = false;
        if (ctx->store->ops->del(ctx->store, id, &existed) != CL_OK) {
            CL_LOG_ERROR("deleting %s: %s", id, cl_error_message());
            routes_fail(resp, 503, "ServiceUnavailable");
        } else if (!existed) {
            cl_api_error(resp, 404, "NotFound", "no patient %s", id);
        } else {
            routes_json(resp, 200);
            if (cl_buf_printf(&resp->body, "{\"deleted\":true,\"id\":\"%s\"}", id) != CL_OK)
                routes_fail(resp, 500, "InternalError");
        }
        return;
    }
    if (routes_load(ctx, id, &resp->body, resp)) routes_json(resp, 200);
}

static void routes_score_get(cl_api_ctx *ctx, const char *id, cl_api_response *resp)
{
    cl_buf json;
    cl_buf_init_secret(&json, CL_API_RECORD_MAX);
    cl_api_record rec;
    cl_api_record_init(&rec);
    json_t *root = NULL;
    double score = 0;
    char num[40];
    if (!routes_load(ctx, id, &json, resp)) goto out;
    root = json_loadb((const char *)json.data, json.len, 0, NULL);
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        int i = cl_api_field_find(k, strlen(k));
        if (i >= 0 && cl_api_field((size_t)i)->kind == CL_API_FIELD_MEASUREMENT &&
            cl_api_record_set_number(&rec, k, strlen(k), json_number_value(v)) != CL_OK) {
            routes_fail(resp, 500, "InternalError");
            goto out;
        }
    }
    if (!cl_api_record_has_measurements(&rec)) {
        cl_api_error(resp, 422, "NoMeasurements",
                     "patient %s has no measurements to score; POST the 30 measurements of wdbc.csv with the record",
                     id);
        goto out;
    }
    if (routes_score(ctx, &rec, &score) != CL_OK) {
        cl_api_error(resp, 502, "UpstreamFailed", "the classifier could not score the record: %s", cl_error_message());
        cl_error_clear();
        goto out;
    }
    cl_api_format_double(score, num, sizeof(num));
    routes_json(resp, 200);
    if (cl_buf_printf(&resp->body, "{\"id\":\"%s\",\"score\":%s}", id, num) != CL_OK)
        routes_fail(resp, 500, "InternalError");
out:
    json_decref(root);
    cl_api_record_free(&rec);
    cl_buf_free(&json);
}

/* GET /patients?limit=N&after=ID */
static void routes_list(cl_api_ctx *ctx, const uint8_t *query, size_t qn, cl_api_response *resp)
{
    cl_api_form q;
    cl_api_form_init(&q);
    cl_buf ids;
    cl_buf_init(&ids, (CL_API_LIST_MAX + 1) * (CL_API_ID_MAX + 1));
    uint64_t limit = CL_API_LIST_DEFAULT;
    char after[CL_API_ID_MAX + 1] = "";
    size_t count = 0;
    json_t *arr = NULL, *j = NULL;
    if (cl_api_form_parse_urlencoded(query, qn, &q) != CL_OK) {
        routes_fail(resp, 400, "BadRequest");
        goto out;
    }
    for (size_t i = 0; i < q.n; i++) {
        const cl_api_pair *p = &q.pairs[i];
        if (p->name_len == 5 && memcmp(p->name, "limit", 5) == 0) {
            if (cl_parse_uint((const char *)p->value, 1, CL_API_LIST_MAX, "limit", &limit) != CL_OK) {
                cl_error_clear();
                cl_api_error(resp, 400, "BadRequest", "limit must be a whole number from 1 to %zu", CL_API_LIST_MAX);
                goto out;
            }
        } else if (p->name_len == 5 && memcmp(p->name, "after", 5) == 0) {
            if (!cl_api_id_valid((const char *)p->value, p->value_len)) {
                cl_api_error(resp, 400, "BadRequest",
                             "after must be a patient id ([A-Za-z0-9_.-], 1 to 64 characters)");
                goto out;
            }
            memcpy(after, p->value, p->value_len);
            after[p->value_len] = '\0';
        } else {
            char shown[80];
            cl_api_error(resp, 400, "BadRequest", "unknown query parameter \"%s\"; /patients takes limit and after",
                         cl_bytes_show((const uint8_t *)p->name, p->name_len, shown, sizeof(shown)));
            goto out;
        }
    }
    if (ctx->store->ops->list(ctx->store, after[0] != '\0' ? after : NULL, (size_t)limit, &ids, &count) != CL_OK) {
        CL_LOG_ERROR("listing: %s", cl_error_message());
        routes_fail(resp, 503, "ServiceUnavailable");
        goto out;
    }
    arr = json_array();
    j = json_object();
    cl_reader r = cl_reader_make(ids.data, ids.len);
    const char *last = NULL;
    for (size_t i = 0; i < count && i < limit; i++) {
        cl_reader one;
        bool found;
        cl_api_split(&r, 0, &one, &found);
        const uint8_t *p;
        size_t n;
        cl_reader_rest(&one, &p, &n);
        last = (const char *)p;
        (void)json_array_append_new(arr, json_stringn((const char *)p, n));
    }
    (void)json_object_set(j, "ids", arr);
    (void)json_object_set_new(j, "next", count > limit && last != NULL ? json_string(last) : json_null());
    size_t need = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS);
    uint8_t *space;
    if (cl_buf_add_space(&resp->body, need, &space) != CL_OK) {
        routes_fail(resp, 500, "InternalError");
        goto out;
    }
    (void)json_dumpb(j, (char *)space, need, JSON_COMPACT | JSON_SORT_KEYS);
    routes_json(resp, 200);
out:
    json_decref(arr);
    json_decref(j);
    cl_buf_free(&ids);
    cl_api_form_free(&q);
}

/* --- delineation ----------------------------------------------------------------------------- */

static bool routes_accepts_json(const cl_api_request *req)
{
    cl_reader r = cl_reader_make(req->accept.data, req->accept.len);
    while (cl_reader_remaining(&r) > 0) {
        cl_reader one, type;
        bool found;
        cl_api_split(&r, ',', &one, &found);
        cl_api_split(&one, ';', &type, &found);
        cl_reader_trim(&type, " \t");
        if (cl_reader_is(&type, "application/json", true)) return true;
    }
    return false;
}

static void routes_delineate(cl_api_ctx *ctx, const cl_api_request *req, cl_api_response *resp)
{
    cl_api_form form;
    cl_api_form_init(&form);
    cl_buf summary;
    cl_buf_init_secret(&summary, (size_t)12 << 20);
    json_t *in = NULL, *out = NULL;
    char boundary[80];
    const cl_api_pair *img = NULL;
    if (cl_api_multipart_boundary((const char *)req->content_type.data, req->content_type.len, boundary,
                                  sizeof(boundary)) != CL_OK) {
        cl_api_error(resp, 415, "UnsupportedMediaType",
                     "POST /delineate takes multipart/form-data with the PNG in field img (curl -F img=@slice.png): %s",
                     cl_error_message());
        cl_error_clear();
        goto done;
    }
    if (cl_api_form_parse_multipart(req->body.data, req->body.len, boundary, &form) != CL_OK) {
        routes_fail(resp, 400, "BadRequest");
        goto done;
    }
    for (size_t i = 0; i < form.n; i++)
        if (form.pairs[i].name_len == 3 && memcmp(form.pairs[i].name, "img", 3) == 0) img = &form.pairs[i];
    if (img == NULL) {
        cl_api_error(resp, 400, "BadRequest",
                     "the form has no field img; send the PNG as img (curl -F img=@slice.png)");
        goto done;
    }
    if (img->value_len > CL_API_DELINEATE_MAX) {
        cl_api_error(resp, 413, "PayloadTooLarge", "the image is %zu bytes; at most 4 MiB", img->value_len);
        goto done;
    }
    cl_reader pr = cl_reader_make(img->value, img->value_len);
    if (!cl_reader_starts_with(&pr, ROUTES_PNG_SIGNATURE, 8)) {
        /* RFC 9110, 15.5.16: 415 also when the format is refused "as a result of inspecting the data
         * directly", as here (the part's own Content-Type is the client's word, not checked). */
        cl_api_error(resp, 415, "UnsupportedMediaType", "field img is not a PNG image (no PNG signature): send a PNG");
        goto done;
    }
    if (ctx->hooks.delineate == NULL) {
        cl_api_error(resp, 502, "UpstreamFailed", "no MRI model is configured (\"mri\" in the API's configuration)");
        goto done;
    }
    if (ctx->hooks.delineate(ctx, img->value, img->value_len, &summary) != CL_OK) {
        cl_api_error(resp, 502, "UpstreamFailed", "the MRI model could not delineate the image: %s",
                     cl_error_message());
        cl_error_clear();
        goto done;
    }
    in = json_loadb((const char *)summary.data, summary.len, 0, NULL);
    json_t *b64 = json_object_get(in, "mask_png_base64");
    if (!json_is_string(b64)) {
        cl_api_error(resp, 502, "UpstreamFailed", "the MRI model's answer has no mask");
        goto done;
    }
    if (!routes_accepts_json(req)) {
        if (cl_base64_decode(json_string_value(b64), json_string_length(b64), false, &resp->body) != CL_OK) {
            cl_api_error(resp, 502, "UpstreamFailed", "the MRI model's mask is not base64");
            goto done;
        }
        resp->status = 200;
        resp->content_type = "image/png";
        goto done;
    }
    json_t *box = json_object_get(in, "bounding_box");
    out = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O}", "model", json_object_get(in, "model"), "note",
                    json_object_get(in, "note"), "width", json_object_get(in, "width"), "height",
                    json_object_get(in, "height"), "lesion_pixels", json_object_get(in, "area_pixels"), "bbox",
                    box != NULL ? box : json_null(), "mask_png", b64);
    size_t need = out != NULL ? json_dumpb(out, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS) : 0;
    uint8_t *space;
    if (need == 0 || cl_buf_add_space(&resp->body, need, &space) != CL_OK) {
        routes_fail(resp, 500, "InternalError");
        goto done;
    }
    (void)json_dumpb(out, (char *)space, need, JSON_COMPACT | JSON_SORT_KEYS);
    routes_json(resp, 200);
done:
    json_decref(in);
    json_decref(out);
    cl_buf_free(&summary);
    cl_api_form_free(&form);
}

/* --- static files ----------------------------------------------------------------------------- */

static const char *routes_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".json", "application/json"},
                 {".png", "image/png"},
                 {".svg", "image/svg+xml"},
                 {".ico", "image/x-icon"},
                 {".txt", "text/plain; charset=utf-8"}};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t e = strlen(types[i].ext);
        if (n > e && strcmp(name + n - e, types[i].ext) == 0) return types[i].type;
    }
    return "application/octet-stream";
}

/* GET /NAME: a file of the static directory. NAME is one path segment of [A-Za-z0-9_.-] that does
 * not start with '.', so no request reaches outside the directory (no '/', no "..", no escapes). */
static void routes_static(cl_api_ctx *ctx, const char *name, size_t n, cl_api_response *resp)
{
    char path[600];
    if (n == 0) name = "index.html", n = 10;
    cl_reader r = cl_reader_make(name, n);
    if (ctx->static_dir[0] == '\0' || !cl_api_id_valid(name, n) || cl_reader_next_is(&r, '.')) {
        cl_api_error(resp, 404, "NotFound",
                     "no such route or file; the API serves /patient/<id>, /patients, "
                     "/score/<id>, /delineate and the web page at /");
        return;
    }
    (void)snprintf(path, sizeof(path), "%s/%.*s", ctx->static_dir, (int)n, name);
    cl_buf_truncate(&resp->body, 0);
    if (cl_buf_read_file(&resp->body, path) != CL_OK) {
        cl_error_clear();
        cl_buf_truncate(&resp->body, 0);
        cl_api_error(resp, 404, "NotFound", "no file %.*s in the web page", (int)n, name);
        return;
    }
    resp->status = 200;
    resp->content_type = routes_content_type(path);
}

/* --- dispatch ----------------------------------------------------------------------------------- */

static void routes_cors(const cl_api_ctx *ctx, const cl_api_request *req, cl_api_response *resp)
{
    if (ctx->cors_origin[0] == '\0') return;
    if (strcmp(ctx->cors_origin, "*") == 0) {
        routes_ignore(cl_buf_append_str(&resp->headers, "Access-Control-Allow-Origin: *\r\n"));
    } else if (req->origin.len > 0 && req->origin.len == strlen(ctx->cors_origin) &&
               memcmp(req->origin.data, ctx->cors_origin, req->origin.len) == 0) {
        routes_ignore(
            cl_buf_printf(&resp->headers, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", ctx->cors_origin));
    }
}

static void routes_method_not_allowed(cl_api_response *resp, const cl_api_request *req, const char *allow)
{
    cl_api_error(resp, 405, "MethodNotAllowed", "%s is not served here; this route takes %s", req->method_name, allow);
    routes_ignore(cl_buf_printf(&resp->headers, "Allow: %s\r\n", allow));
}

/* The route's id: one path segment after prefix, valid, into id. */
static bool routes_id(cl_reader path, const char *prefix, char id[CL_API_ID_MAX + 1], cl_api_response *resp)
{
    routes_ignore(cl_reader_skip(&path, strlen(prefix)));
    const uint8_t *p;
    size_t n;
    cl_reader_rest(&path, &p, &n);
    if (!cl_api_id_valid((const char *)p, n)) {
        char shown[80];
        cl_api_error(resp, 400, "BadRequest", "patient id \"%s\" is not valid: use 1 to 64 of A-Z a-z 0-9 _ . -",
                     cl_bytes_show(p, n < 64 ? n : 64, shown, sizeof(shown)));
        return false;
    }
    memcpy(id, p, n);
    id[n] = '\0';
    return true;
}

void cl_api_handle(cl_api_ctx *ctx, const cl_api_request *req, cl_api_response *resp)
{
    cl_api_response_reset(resp);
    routes_cors(ctx, req, resp);
    if (req->refuse_status != 0) {
        cl_api_error(resp, req->refuse_status,
                     req->refuse_status == 413 || req->refuse_status == 431 ? "PayloadTooLarge" : "BadRequest", "%s",
                     req->refuse_reason);
        resp->close = true;
        return;
    }
    cl_reader url = cl_reader_make(req->url.data, req->url.len), path;
    bool has_query;
    cl_api_split(&url, '?', &path, &has_query);
    if (!cl_reader_next_is(&path, '/')) {
        cl_api_error(resp, 400, "BadRequest", "the request target must be a path starting with /");
        return;
    }
    if (req->method == CL_API_OPTIONS) {
        resp->status = 204;
        routes_ignore(cl_buf_append_str(&resp->headers,
                                        "Access-Control-Allow-Methods: GET, POST, DELETE\r\n"
                                        "Access-Control-Allow-Headers: Authorization, Content-Type, Accept\r\n"
                                        "Access-Control-Max-Age: 600\r\n"));
        return;
    }
    const uint8_t *qp;
    size_t qn;
    cl_reader_rest(&url, &qp, &qn);
    char id[CL_API_ID_MAX + 1];
    unsigned need = CL_API_SCOPE_READ;
    enum { R_PATIENT, R_PATIENTS, R_SCORE, R_DELINEATE, R_STATIC } route = R_STATIC;
    if (cl_reader_starts_with_str(&path, "/patient/")) {
        route = R_PATIENT;
        if (req->method != CL_API_GET && req->method != CL_API_POST && req->method != CL_API_DELETE) {
            routes_method_not_allowed(resp, req, "GET, POST, DELETE");
            return;
        }
        if (req->method != CL_API_GET) need = CL_API_SCOPE_WRITE;
    } else if (cl_reader_is(&path, "/patients", false)) {
        route = R_PATIENTS;
        if (req->method != CL_API_GET) {
            routes_method_not_allowed(resp, req, "GET");
            return;
        }
    } else if (cl_reader_starts_with_str(&path, "/score/")) {
        route = R_SCORE;
        if (req->method != CL_API_GET) {
            routes_method_not_allowed(resp, req, "GET");
            return;
        }
    } else if (cl_reader_is(&path, "/delineate", false)) {
        route = R_DELINEATE;
        if (req->method != CL_API_POST) {
            routes_method_not_allowed(resp, req, "POST");
            return;
        }
    }
    if (route == R_STATIC) {
        if (req->method != CL_API_GET && req->method != CL_API_HEAD) {
            routes_method_not_allowed(resp, req, "GET, HEAD");
            return;
        }
        const uint8_t *p;
        size_t n;
        routes_ignore(cl_reader_skip(&path, 1));
        cl_reader_rest(&path, &p, &n);
        routes_static(ctx, (const char *)p, n, resp);
        return;
    }
    unsigned scopes = routes_authenticate(ctx, req, resp);
    if (scopes == 0) return;
    if ((scopes & need) == 0) {
        cl_api_error(resp, 403, "Forbidden", "this token has scope %s; %s %.*s needs %s", routes_scope_name(scopes),
                     req->method_name,
                     (int)(route == R_PATIENT  ? 8
                           : req->url.len > 64 ? 64
                                               : req->url.len),
                     (const char *)req->url.data, need == CL_API_SCOPE_WRITE ? "write" : "read");
        return;
    }
    switch (route) {
    case R_PATIENT:
        if (routes_id(path, "/patient/", id, resp)) routes_patient(ctx, id, req, resp);
        break;
    case R_PATIENTS: routes_list(ctx, qp, qn, resp); break;
    case R_SCORE:
        if (routes_id(path, "/score/", id, resp)) routes_score_get(ctx, id, resp);
        break;
    case R_DELINEATE: routes_delineate(ctx, req, resp); break;
    case R_STATIC: break;
    }
}
