/* SPDX-License-Identifier: Apache-2.0 */
/* The service entry point (src/guest/runtime/service.c): kind from metadata, one input per call, and
 * splitting a segmentation result into its summary and mask, with the refusals. */
#include <jansson.h>
#include <string.h>

#include "cloister/crypto.h"
#include "cloister/infer.h"
#include "cloister/mem.h"

#include "infer_test_util.h"
#include "test_util.h"

/* x [1, 2] -> Softmax -> y, with the given metadata pairs (NULL-terminated), serialised. */
static void classifier_onnx(const char *const *meta, cl_buf *out)
{
    tm_model *t = tm_new(13);
    int64_t d[2] = {1, 2};
    tm_input(t, "x", CL_INFER_FLOAT, 2, d);
    tm_output(t, "y");
    tm_node(t, "Softmax", "n", "x", "y");
    for (size_t i = 0; meta != NULL && meta[i] != NULL; i += 2) tm_metadata(t, meta[i], meta[i + 1]);
    tm_pack(t, out);
    tm_free(t);
}

/* x [1, 1, 8, 8] -> Sigmoid -> y, a segmenter by its metadata. */
static void segmenter_onnx(cl_buf *out)
{
    tm_model *t = tm_new(13);
    int64_t d[4] = {1, 1, 8, 8};
    tm_input(t, "x", CL_INFER_FLOAT, 4, d);
    tm_output(t, "y");
    tm_node(t, "Sigmoid", "n", "x", "y");
    tm_metadata(t, "cloister.kind", "segmentation");
    tm_metadata(t, "cloister.name", "sig");
    tm_pack(t, out);
    tm_free(t);
}

/* An 8 x 8 gray PNG, bright in rows 2..4 and columns 3..6 (12 pixels). */
static void bright_png(cl_buf *png)
{
    float p[64] = {0};
    for (int y = 2; y < 5; y++)
        for (int x = 3; x < 7; x++) p[y * 8 + x] = 1.0f;
    int64_t d[2] = {8, 8};
    cl_infer_tensor t = tm_f32(2, d, p);
    assert_ok(cl_infer_png_write_mask(&t, 0.5f, png));
}

static void test_classifier(void **state)
{
    (void)state;
    static const char *const meta[] = {"cloister.classifier.labels", "benign,malignant", "cloister.classifier.features",
                                       "radius,texture", NULL};
    cl_buf onnx, out;
    cl_buf_init(&onnx, 1 << 20);
    cl_buf_init(&out, 1 << 20);
    classifier_onnx(meta, &onnx);
    cl_infer_service *s = NULL;
    assert_ok(cl_infer_service_open(onnx.data, onnx.len, NULL, &s));
    assert_int_equal(cl_infer_service_kind(s), CL_INFER_KIND_CLASSIFIER);
    assert_string_equal(cl_infer_kind_name(cl_infer_service_kind(s)), "classifier");
    /* JSON by its first non-blank byte, CSV otherwise: the same answer. */
    static const char json_in[] = "  {\"radius\": 0, \"texture\": 3}";
    assert_ok(cl_infer_service_run(s, (const uint8_t *)json_in, strlen(json_in), &out));
    json_t *j = json_loadb((const char *)out.data, out.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "label")), "malignant");
    json_decref(j);
    size_t first = out.len;
    static const char csv_in[] = "0,3\n";
    assert_ok(cl_infer_service_run(s, (const uint8_t *)csv_in, strlen(csv_in), &out));
    assert_int_equal(out.len, 2 * first);
    assert_true(cl_ct_equal(out.data, out.data + first, first));
    /* A record it cannot read: an error naming the feature, nothing appended. */
    static const char bad[] = "{\"radius\": 1}";
    assert_fails(cl_infer_service_run(s, (const uint8_t *)bad, strlen(bad), &out), CL_ERR_FORMAT, "texture");
    assert_int_equal(out.len, 2 * first);
    cl_infer_service_free(s);
    cl_buf_free(&onnx);
    cl_buf_free(&out);
}

static void test_segmenter_and_split(void **state)
{
    (void)state;
    cl_buf onnx, png, out, summary, mask;
    cl_buf_init(&onnx, 1 << 20);
    cl_buf_init(&png, 1 << 20);
    cl_buf_init(&out, 1 << 20);
    cl_buf_init(&summary, 1 << 20);
    cl_buf_init(&mask, 1 << 20);
    segmenter_onnx(&onnx);
    bright_png(&png);
    cl_infer_service *s = NULL;
    assert_ok(cl_infer_service_open(onnx.data, onnx.len, NULL, &s));
    assert_int_equal(cl_infer_service_kind(s), CL_INFER_KIND_SEGMENTER);
    assert_ok(cl_infer_service_run(s, png.data, png.len, &out));
    assert_ok(cl_infer_result_split_mask(out.data, out.len, &summary, &mask));
    json_t *j = json_loadb((const char *)summary.data, summary.len, 0, NULL);
    assert_non_null(j);
    assert_null(json_object_get(j, "mask_png_base64"));
    /* z-scored input: the bright pixels are above the mean, so sigmoid > 0.5 there only. */
    assert_int_equal(json_integer_value(json_object_get(j, "area_pixels")), 12);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "bounding_box"), "x")), 3);
    json_decref(j);
    assert_true(mask.len == png.len && cl_ct_equal(mask.data, png.data, png.len));
    /* Not a PNG: refused by the segmenter, nothing appended. */
    size_t len = out.len;
    assert_fails(cl_infer_service_run(s, (const uint8_t *)"{}", 2, &out), CL_ERR_FORMAT, "PNG");
    assert_int_equal(out.len, len);
    cl_infer_service_free(s);
    cl_buf_free(&onnx);
    cl_buf_free(&png);
    cl_buf_free(&out);
    cl_buf_free(&summary);
    cl_buf_free(&mask);
}

static void test_refusals(void **state)
{
    (void)state;
    cl_buf onnx, summary, mask;
    cl_buf_init(&onnx, 1 << 20);
    cl_buf_init(&summary, 1 << 20);
    cl_buf_init(&mask, 1 << 20);
    classifier_onnx(NULL, &onnx);
    cl_infer_service *s = NULL;
    assert_fails(cl_infer_service_open(onnx.data, onnx.len, NULL, &s), CL_ERR_UNSUPPORTED, "neither");
    assert_null(s);
    assert_fails(cl_infer_service_open("not onnx", 8, NULL, &s), CL_ERR_FORMAT, "");
    static const char *const cases[][2] = {
        {"[1]", "not a JSON object"},
        {"{\"label\": \"benign\"}", "carries no mask"},
        {"{\"mask_png_base64\": 7}", "carries no mask"},
        {"{\"mask_png_base64\": \"!!\"}", "decoding the result's mask"},
        {"{\"mask_png_base64\": \"aGVsbG8gd29ybGQ=\"}", "not a PNG"},
        {"{\"a\": 1, \"a\": 2}", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        summary.len = 0;
        mask.len = 0;
        assert_fails(cl_infer_result_split_mask((const uint8_t *)cases[i][0], strlen(cases[i][0]), &summary, &mask),
                     CL_ERR_FORMAT, cases[i][1]);
        assert_int_equal(summary.len, 0);
    }
    cl_buf_free(&onnx);
    cl_buf_free(&summary);
    cl_buf_free(&mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classifier),
        cmocka_unit_test(test_segmenter_and_split),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
