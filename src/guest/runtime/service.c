/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One model behind one entry point (src/guest/runtime/include/cloister/infer.h, "Service"): what the enclave
 * worker runs for every request, whatever path it came by, and what bench/e2e times as
 * "local inference in the same runtime". The model's metadata says what it is; the input's
 * form follows from that.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/infer.h"
#include "cloister/mem.h"

struct cl_infer_service {
    cl_infer_model *model;
    cl_infer_classifier *cls; /* the classifier's labels and features; NULL for a segmenter */
    cl_infer_kind kind;
    pthread_mutex_t mu; /* the model holds a run's intermediates: one inference at a time */
};

const char *cl_infer_kind_name(cl_infer_kind k)
{
    switch (k) {
    case CL_INFER_KIND_CLASSIFIER: return "classifier";
    case CL_INFER_KIND_SEGMENTER: return "segmentation";
    }
    return "unknown";
}

cl_status cl_infer_service_open(const void *onnx, size_t len, const cl_infer_options *opts, cl_infer_service **out)
{
    cl_status rc = CL_OK;
    cl_infer_service *s = calloc(1, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory for the model");
    (void)pthread_mutex_init(&s->mu, NULL);
    CL_GUARD_GOTO(cl_infer_model_load(onnx, len, opts, &s->model));
    if (cl_infer_segmenter_detect(s->model)) {
        CL_GUARD_GOTO(cl_infer_segmenter_check(s->model));
        s->kind = CL_INFER_KIND_SEGMENTER;
    } else {
        rc = cl_infer_classifier_from_model(s->model, &s->cls);
        if (rc == CL_ERR_NOT_FOUND)
            CL_FAIL_GOTO(CL_ERR_UNSUPPORTED,
                         "the model says neither what it classifies (cloister.classifier.labels) nor that it "
                         "segments images (cloister.kind = segmentation): it cannot be served");
        if (rc != CL_OK) goto out;
        s->kind = CL_INFER_KIND_CLASSIFIER;
    }
    *out = s;
    s = NULL;
out:
    cl_infer_service_free(s);
    return rc;
}

void cl_infer_service_free(cl_infer_service *s)
{
    if (s == NULL) return;
    cl_infer_classifier_free(s->cls);
    cl_infer_model_free(s->model);
    (void)pthread_mutex_destroy(&s->mu);
    free(s);
}

cl_infer_kind cl_infer_service_kind(const cl_infer_service *s) { return s->kind; }

const cl_infer_model *cl_infer_service_model(const cl_infer_service *s) { return s->model; }

/* JSON when the first non-blank byte opens an object or array, else CSV. */
static cl_infer_record_format infer_record_format(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        return c == '{' || c == '[' ? CL_INFER_RECORD_JSON : CL_INFER_RECORD_CSV;
    }
    return CL_INFER_RECORD_CSV;
}

cl_status cl_infer_service_run(cl_infer_service *s, const uint8_t *in, size_t n, cl_buf *out)
{
    cl_status rc = CL_OK;
    (void)pthread_mutex_lock(&s->mu);
    if (s->kind == CL_INFER_KIND_SEGMENTER)
        rc = cl_infer_segment_png_json(s->model, in, n, out);
    else
        rc = cl_infer_classifier_run(s->model, s->cls, infer_record_format(in, n), in, n, out);
    (void)pthread_mutex_unlock(&s->mu);
    return rc;
}

/*
 * A segmentation result's JSON without its mask, and the mask's PNG bytes (decoded from
 * "mask_png_base64"). The result comes from the enclave: it is parsed with limits like any
 * other input (jansson bounds nothing, so the size is checked first).
 */
cl_status cl_infer_result_split_mask(const uint8_t *result, size_t n, cl_buf *summary, cl_buf *mask_png)
{
    cl_status rc = CL_OK;
    char *text = NULL;
    CL_ENSURE(n <= CL_INFER_SEGMENT_MAX_INPUT * 2, CL_ERR_LIMIT, "the result is %zu bytes, more than a result can be",
              n);
    json_error_t err;
    json_t *j = json_loadb((const char *)result, n, JSON_REJECT_DUPLICATES, &err);
    CL_ENSURE_GOTO(j != NULL && json_is_object(j), CL_ERR_FORMAT, "the result is not a JSON object (%s)",
                   j == NULL ? err.text : "another JSON value");
    json_t *b64 = json_object_get(j, "mask_png_base64");
    CL_ENSURE_GOTO(json_is_string(b64), CL_ERR_FORMAT, "the result carries no mask (mask_png_base64)");
    CL_GUARD_CTX_GOTO(cl_base64_decode(json_string_value(b64), json_string_length(b64), false, mask_png),
                      "decoding the result's mask");
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    CL_ENSURE_GOTO(mask_png->len > sizeof(png_sig) && cl_ct_equal(mask_png->data, png_sig, sizeof(png_sig)),
                   CL_ERR_FORMAT, "the result's mask is not a PNG");
    (void)json_object_del(j, "mask_png_base64");
    text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    CL_ENSURE_GOTO(text != NULL, CL_ERR_NOMEM, "out of memory for the result");
    CL_GUARD_GOTO(cl_buf_append_str(summary, text));
out:
    free(text);
    json_decref(j);
    return rc;
}
