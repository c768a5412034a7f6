/* SPDX-License-Identifier: Apache-2.0 */
/* Segmentation I/O: a PNG slice in, a mask PNG and a JSON summary out (see cloister/infer.h). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"

#include "infer_internal.h"

#define SEGMENT_META_KIND "cloister.kind"
#define SEGMENT_KIND "segmentation"
#define SEGMENT_META_NAME "cloister.name"
#define SEGMENT_META_NOTE "cloister.note"
#define SEGMENT_META_THRESHOLD "cloister.segmentation.threshold"
#define SEGMENT_META_CHANNEL "cloister.segmentation.channel"
#define SEGMENT_NAME_MAX 64
#define SEGMENT_NOTE_MAX 1024
/* A threshold is a short decimal ("0.5", "0.35"); anything longer is not one. */
#define SEGMENT_THRESHOLD_MAX 32
#define SEGMENT_DEFAULT_NAME "unnamed"
/* A mask of 0 and 255 deflates to a small fraction of its pixels; this bounds
 * the worst case of a 16384 x 16384 image all the same. */
#define SEGMENT_MASK_PNG_MAX ((size_t)1 << 30)

typedef struct segment_spec {
    int channels;
    int pick;           /* the RGB channel a one-channel model reads, or -1 for the mean of the three */
    int64_t in_h, in_w; /* 0 when symbolic: the image's own size */
    float threshold;
    const char *name;
    const char *note; /* NULL when the model has none */
} segment_spec;

bool cl_infer_segmenter_detect(const cl_infer_model *m)
{
    const char *kind = cl_infer_model_metadata(m, SEGMENT_META_KIND);
    return kind != NULL && strcmp(kind, SEGMENT_KIND) == 0;
}

static bool segment_name_char(char b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b == '_' || b == '.' ||
           b == '-';
}

/* Metadata values end up in JSON and in messages: names are plain tokens and
 * notes printable ASCII, so nothing in them needs escaping or UTF-8 checks. */
static CL_MUST_USE cl_status segment_meta_text(const char *key, const char *v, size_t max, bool token)
{
    size_t n = strnlen(v, max + 1);
    CL_ENSURE(n >= 1 && n <= max, CL_ERR_FORMAT, "the model's %s metadata is %s; give 1 to %zu bytes", key,
              n == 0 ? "empty" : "too long", max);
    for (size_t i = 0; i < n; i++) {
        bool ok = token ? segment_name_char(v[i]) : (v[i] >= 0x20 && v[i] <= 0x7e);
        CL_ENSURE(ok, CL_ERR_FORMAT, "the model's %s metadata has byte 0x%02x at offset %zu; %s", key, (uint8_t)v[i], i,
                  token ? "names are A-Z a-z 0-9 _ . -" : "notes are printable ASCII");
    }
    return CL_OK;
}

static CL_MUST_USE cl_status segment_threshold(const char *v, float *out)
{
    size_t n = strnlen(v, SEGMENT_THRESHOLD_MAX + 1);
    CL_ENSURE(n >= 1 && n <= SEGMENT_THRESHOLD_MAX, CL_ERR_FORMAT,
              "the model's %s metadata is not a short decimal number", SEGMENT_META_THRESHOLD);
    /* strtod also reads hex, "inf", "nan" and leading space: only digits and one point here. */
    size_t dots = 0;
    for (size_t i = 0; i < n; i++) {
        CL_ENSURE((v[i] >= '0' && v[i] <= '9') || (v[i] == '.' && dots++ == 0), CL_ERR_FORMAT,
                  "the model's %s metadata '%s' is not a decimal number like 0.5", SEGMENT_META_THRESHOLD, v);
    }
    char *end = NULL;
    double d = strtod(v, &end);
    CL_ENSURE(end == v + n && d > 0.0 && d < 1.0, CL_ERR_FORMAT,
              "the model's %s metadata '%s' is not a probability strictly between 0 and 1", SEGMENT_META_THRESHOLD, v);
    *out = (float)d;
    return CL_OK;
}

static CL_MUST_USE cl_status segment_spec_read(const cl_infer_model *m, segment_spec *s)
{
    memset(s, 0, sizeof(*s));
    const char *kind = cl_infer_model_metadata(m, SEGMENT_META_KIND);
    CL_ENSURE(kind != NULL, CL_ERR_NOT_FOUND,
              "the model carries no '%s' metadata, so it does not say it is a segmentation model (add %s=%s)",
              SEGMENT_META_KIND, SEGMENT_META_KIND, SEGMENT_KIND);
    CL_ENSURE(strcmp(kind, SEGMENT_KIND) == 0, CL_ERR_NOT_FOUND,
              "the model's '%s' metadata is '%.64s', not '%s': it is not a segmentation model", SEGMENT_META_KIND, kind,
              SEGMENT_KIND);
    s->name = cl_infer_model_metadata(m, SEGMENT_META_NAME);
    if (s->name != NULL)
        CL_GUARD(segment_meta_text(SEGMENT_META_NAME, s->name, SEGMENT_NAME_MAX, true));
    else
        s->name = SEGMENT_DEFAULT_NAME;
    s->note = cl_infer_model_metadata(m, SEGMENT_META_NOTE);
    if (s->note != NULL) CL_GUARD(segment_meta_text(SEGMENT_META_NOTE, s->note, SEGMENT_NOTE_MAX, false));
    s->threshold = 0.5f;
    const char *thr = cl_infer_model_metadata(m, SEGMENT_META_THRESHOLD);
    if (thr != NULL) CL_GUARD(segment_threshold(thr, &s->threshold));
    CL_ENSURE(cl_infer_model_input_count(m) == 1, CL_ERR_FORMAT, "the segmentation model takes %zu inputs, not 1",
              cl_infer_model_input_count(m));
    CL_ENSURE(cl_infer_model_output_count(m) >= 1, CL_ERR_FORMAT, "the segmentation model has no outputs");
    cl_infer_dtype dt;
    int rank;
    int64_t d[CL_INFER_MAX_RANK];
    CL_GUARD(cl_infer_model_input_info(m, 0, NULL, &dt, &rank, d));
    CL_ENSURE(dt == CL_INFER_FLOAT && rank == 4 && d[0] <= 1 && (d[1] == 1 || d[1] == 3), CL_ERR_FORMAT,
              "the segmentation model's input is not an image: float32 [1, 1 or 3, H, W] expected (dtype %s, "
              "rank %d)",
              cl_infer_dtype_name(dt), rank);
    s->channels = (int)d[1];
    s->pick = -1;
    const char *ch = cl_infer_model_metadata(m, SEGMENT_META_CHANNEL);
    if (ch != NULL) {
        /* A model trained on one MRI sequence (the walk-through's slices hold three, as R, G, B) says which. */
        CL_ENSURE(ch[0] >= '0' && ch[0] <= '2' && ch[1] == '\0', CL_ERR_FORMAT,
                  "the model's %s metadata '%.16s' is not 0, 1 or 2 (the R, G or B channel of an RGB image)",
                  SEGMENT_META_CHANNEL, ch);
        CL_ENSURE(s->channels == 1, CL_ERR_FORMAT,
                  "the model's %s metadata picks one channel of an RGB image, but its input takes 3 channels; "
                  "remove the metadata or give the model a one-channel input",
                  SEGMENT_META_CHANNEL);
        s->pick = ch[0] - '0';
    }
    s->in_h = d[2] > 0 ? d[2] : 0;
    s->in_w = d[3] > 0 ? d[3] : 0;
    return CL_OK;
}

cl_status cl_infer_segmenter_check(const cl_infer_model *m)
{
    segment_spec s;
    return segment_spec_read(m, &s);
}

/* The probability map's height and width, or a clear refusal. */
static CL_MUST_USE cl_status segment_map_dims(const cl_infer_tensor *prob, int64_t *h, int64_t *w)
{
    bool ok = prob->dtype == CL_INFER_FLOAT && prob->data != NULL &&
              (prob->rank == 2 || (prob->rank == 3 && prob->dims[0] == 1) ||
               (prob->rank == 4 && prob->dims[0] == 1 && prob->dims[1] == 1));
    CL_ENSURE(ok, CL_ERR_FORMAT,
              "the segmentation output is not a float32 probability map [1, 1, H, W] (dtype %s, rank %d)",
              cl_infer_dtype_name(prob->dtype), prob->rank);
    *h = prob->dims[prob->rank - 2];
    *w = prob->dims[prob->rank - 1];
    CL_ENSURE(*h >= 1 && *w >= 1 && (size_t)*h * (size_t)*w <= cl_infer_tensor_count(prob), CL_ERR_FORMAT,
              "the segmentation output has an empty %lldx%lld map", (long long)*w, (long long)*h);
    return CL_OK;
}

static CL_MUST_USE cl_status segment_summary_json(const cl_infer_tensor *prob, float threshold, const char *model,
                                                  const char *note, json_t **out)
{
    cl_status rc = CL_OK;
    int64_t h = 0, w = 0;
    *out = NULL;
    CL_GUARD(segment_map_dims(prob, &h, &w));
    CL_ENSURE(isfinite(threshold) && threshold > 0.0f && threshold < 1.0f, CL_ERR_USAGE,
              "threshold %g is not strictly between 0 and 1", (double)threshold);
    CL_ENSURE(model != NULL, CL_ERR_USAGE, "no model name given");
    const float *p = prob->data;
    int64_t area = 0, x0 = w, y0 = h, x1 = -1, y1 = -1;
    for (int64_t y = 0; y < h; y++) {
        for (int64_t x = 0; x < w; x++) {
            if (!(p[y * w + x] >= threshold)) continue;
            area++;
            x0 = x < x0 ? x : x0;
            x1 = x > x1 ? x : x1;
            y0 = y < y0 ? y : y0;
            y1 = y > y1 ? y : y1;
        }
    }
    json_t *j = json_object();
    json_t *box = area > 0 ? json_object() : json_null();
    CL_ENSURE_GOTO(j != NULL && box != NULL, CL_ERR_NOMEM, "out of memory");
    if (area > 0)
        CL_ENSURE_GOTO(json_object_set_new(box, "x", json_integer(x0)) == 0 &&
                           json_object_set_new(box, "y", json_integer(y0)) == 0 &&
                           json_object_set_new(box, "width", json_integer(x1 - x0 + 1)) == 0 &&
                           json_object_set_new(box, "height", json_integer(y1 - y0 + 1)) == 0,
                       CL_ERR_NOMEM, "out of memory");
    CL_ENSURE_GOTO(json_object_set_new(j, "kind", json_string(SEGMENT_KIND)) == 0 &&
                       json_object_set_new(j, "model", json_string(model)) == 0 &&
                       (note == NULL || json_object_set_new(j, "note", json_string(note)) == 0) &&
                       json_object_set_new(j, "width", json_integer(w)) == 0 &&
                       json_object_set_new(j, "height", json_integer(h)) == 0 &&
                       json_object_set_new(j, "threshold", json_real((double)threshold)) == 0 &&
                       json_object_set_new(j, "area_pixels", json_integer(area)) == 0 &&
                       json_object_set_new(j, "area_fraction", json_real((double)area / ((double)w * (double)h))) ==
                           0 &&
                       json_object_set(j, "bounding_box", box) == 0,
                   CL_ERR_NOMEM, "out of memory (or a model name or note that is not UTF-8)");
    *out = j;
    j = NULL;
out:
    json_decref(box);
    json_decref(j);
    return rc;
}

/* 6 significant digits: the threshold prints as written ("0.5", not 0.5 as a
 * float32 widened) and a fraction of a mask needs no more. */
static CL_MUST_USE cl_status segment_dump(const json_t *j, cl_buf *out)
{
    char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = cl_buf_append_str(out, s);
    free(s);
    return rc;
}

cl_status cl_infer_segment_summary(const cl_infer_tensor *prob, float threshold, const char *model, const char *note,
                                   cl_buf *out)
{
    json_t *j = NULL;
    CL_GUARD(segment_summary_json(prob, threshold, model, note, &j));
    cl_status rc = segment_dump(j, out);
    json_decref(j);
    return rc;
}

/* Decode, run, resize the map back to the image, encode the mask and summarise. */
static CL_MUST_USE cl_status segment_run(cl_infer_model *m, const void *png, size_t len, cl_buf *mask_png,
                                         json_t **summary)
{
    cl_status rc = CL_OK;
    segment_spec s;
    cl_infer_tensor in = {0}, full = {0};
    cl_infer_tensor *outs = NULL;
    size_t n_out = cl_infer_model_output_count(m);
    int64_t src_h = 0, src_w = 0, h = 0, w = 0;
    *summary = NULL;
    CL_GUARD(segment_spec_read(m, &s));
    CL_ENSURE(png != NULL || len == 0, CL_ERR_USAGE, "no image bytes given");
    CL_ENSURE(len <= CL_INFER_SEGMENT_MAX_INPUT, CL_ERR_LIMIT, "the image is %zu bytes, over the %zu allowed", len,
              CL_INFER_SEGMENT_MAX_INPUT);
    outs = calloc(n_out, sizeof(*outs));
    CL_ENSURE(outs != NULL, CL_ERR_NOMEM, "out of memory");
    /* The image is held to the model's memory cap (the worker's model_memory_mib), checked from
     * the PNG's header before it is decoded. */
    CL_GUARD_GOTO(infer_png_read_sized(png, len, s.channels, s.pick, CL_INFER_SEGMENT_MAX_PIXELS, m->mem.max, s.in_h,
                                       s.in_w, &in, &src_h, &src_w));
    CL_GUARD_GOTO(cl_infer_run(m, &in, 1, outs, n_out));
    CL_GUARD_GOTO(segment_map_dims(&outs[0], &h, &w));
    const float *p = outs[0].data;
    for (size_t i = 0; i < (size_t)h * (size_t)w; i++)
        CL_ENSURE_GOTO(isfinite(p[i]) && p[i] >= 0.0f && p[i] <= 1.0f, CL_ERR_FORMAT,
                       "the segmentation output at row %zu, column %zu is %g, not a probability (does the model end "
                       "in a sigmoid?)",
                       i / (size_t)w, i % (size_t)w, (double)p[i]);
    /* As a [1, 1, h, w] view, resized to the image when the model saw it at another size. */
    cl_infer_tensor view = {.dtype = CL_INFER_FLOAT,
                            .rank = 4,
                            .dims = {1, 1, h, w},
                            .data = outs[0].data,
                            .nbytes = (size_t)h * (size_t)w * sizeof(float),
                            .borrowed = true};
    if (h != src_h || w != src_w) CL_GUARD_GOTO(infer_image_resize(&view, src_h, src_w, &full));
    const cl_infer_tensor *map = full.data != NULL ? &full : &view;
    CL_GUARD_GOTO(cl_infer_png_write_mask(map, s.threshold, mask_png));
    CL_GUARD_GOTO(segment_summary_json(map, s.threshold, s.name, s.note, summary));
out:
    for (size_t i = 0; outs != NULL && i < n_out; i++) cl_infer_tensor_free(&outs[i]);
    free(outs);
    cl_infer_tensor_free(&full); /* the patient's image and what the model saw in it: wiped */
    cl_infer_tensor_free(&in);
    return rc;
}

cl_status cl_infer_segment_input(const cl_infer_model *m, const void *png, size_t len, cl_infer_tensor *out)
{
    segment_spec s;
    int64_t src_h = 0, src_w = 0;
    memset(out, 0, sizeof(*out));
    CL_GUARD(segment_spec_read(m, &s));
    CL_ENSURE(png != NULL || len == 0, CL_ERR_USAGE, "no image bytes given");
    CL_ENSURE(len <= CL_INFER_SEGMENT_MAX_INPUT, CL_ERR_LIMIT, "the image is %zu bytes, over the %zu allowed", len,
              CL_INFER_SEGMENT_MAX_INPUT);
    return infer_png_read_sized(png, len, s.channels, s.pick, CL_INFER_SEGMENT_MAX_PIXELS, m->mem.max, s.in_h, s.in_w,
                                out, &src_h, &src_w);
}

cl_status cl_infer_segment_png(cl_infer_model *m, const void *png, size_t len, cl_buf *mask_png, cl_buf *summary_json)
{
    json_t *j = NULL;
    cl_status rc = CL_OK;
    size_t mask_len = mask_png->len, sum_len = summary_json->len;
    CL_GUARD_GOTO(segment_run(m, png, len, mask_png, &j));
    CL_GUARD_GOTO(segment_dump(j, summary_json));
out:
    json_decref(j);
    if (rc != CL_OK) {
        /* All or nothing: no half-written mask is left in the caller's buffer. */
        cl_buf_truncate(mask_png, mask_len);
        cl_buf_truncate(summary_json, sum_len);
    }
    return rc;
}

cl_status cl_infer_segment_png_json(cl_infer_model *m, const void *png, size_t len, cl_buf *out)
{
    cl_status rc = CL_OK;
    json_t *j = NULL;
    cl_buf mask, b64;
    cl_buf_init(&mask, SEGMENT_MASK_PNG_MAX);
    cl_buf_init(&b64, SEGMENT_MASK_PNG_MAX / 3 * 4 + 4);
    size_t out_len = out->len;
    CL_GUARD_GOTO(segment_run(m, png, len, &mask, &j));
    CL_GUARD_GOTO(cl_base64_encode(mask.data, mask.len, false, &b64));
    CL_ENSURE_GOTO(json_object_set_new(j, "mask_png_base64", json_stringn((const char *)b64.data, b64.len)) == 0,
                   CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(segment_dump(j, out));
out:
    json_decref(j);
    cl_buf_free(&mask);
    cl_buf_free(&b64);
    if (rc != CL_OK) cl_buf_truncate(out, out_len);
    return rc;
}
