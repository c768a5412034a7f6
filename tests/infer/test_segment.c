/* SPDX-License-Identifier: Apache-2.0 */
/* Segmentation I/O: the summary of a mask, refusals first, and the PNG round trip. */
#include <jansson.h>
#include <string.h>
#include <zlib.h>

#include "cloister/crypto.h"
#include "cloister/infer.h"

#include "infer_test_util.h"
#include "test_util.h"

static json_t *summary(const cl_infer_tensor *prob, float thr)
{
    cl_buf b;
    cl_buf_init(&b, 1 << 16);
    assert_ok(cl_infer_segment_summary(prob, thr, "m", NULL, &b));
    json_error_t e;
    json_t *j = json_loadb((const char *)b.data, b.len, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "segmentation");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "m");
    cl_buf_free(&b);
    return j;
}

static long long jint(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void expect_box(const json_t *j, long long x, long long y, long long w, long long h)
{
    const json_t *b = json_object_get(j, "bounding_box");
    assert_true(json_is_object(b));
    assert_int_equal(jint(b, "x"), x);
    assert_int_equal(jint(b, "y"), y);
    assert_int_equal(jint(b, "width"), w);
    assert_int_equal(jint(b, "height"), h);
}

static void test_summary_empty_one_full(void **state)
{
    (void)state;
    float p[4 * 5] = {0};
    int64_t d[4] = {1, 1, 4, 5};
    cl_infer_tensor t = tm_f32(4, d, p);

    json_t *j = summary(&t, 0.5f);
    assert_int_equal(jint(j, "width"), 5);
    assert_int_equal(jint(j, "height"), 4);
    assert_int_equal(jint(j, "area_pixels"), 0);
    assert_true(json_real_value(json_object_get(j, "area_fraction")) == 0.0);
    assert_true(json_is_null(json_object_get(j, "bounding_box")));
    assert_true(json_real_value(json_object_get(j, "threshold")) == 0.5);
    json_decref(j);

    p[2 * 5 + 3] = 0.5f; /* row 2, column 3: exactly at the threshold is in the mask */
    p[1 * 5 + 1] = 0.4999f;
    j = summary(&t, 0.5f);
    assert_int_equal(jint(j, "area_pixels"), 1);
    assert_true(json_real_value(json_object_get(j, "area_fraction")) == 0.05);
    expect_box(j, 3, 2, 1, 1);
    json_decref(j);

    for (size_t i = 0; i < 20; i++) p[i] = 1.0f;
    j = summary(&t, 0.5f);
    assert_int_equal(jint(j, "area_pixels"), 20);
    assert_true(json_real_value(json_object_get(j, "area_fraction")) == 1.0);
    expect_box(j, 0, 0, 5, 4);
    json_decref(j);

    /* A [H, W] map, two corners: the box spans them. */
    float q[3 * 3] = {0, 0, 0.9f, 0, 0, 0, 0.7f, 0, 0};
    int64_t d2[2] = {3, 3};
    cl_infer_tensor t2 = tm_f32(2, d2, q);
    j = summary(&t2, 0.5f);
    assert_int_equal(jint(j, "area_pixels"), 2);
    expect_box(j, 0, 0, 3, 3);
    json_decref(j);
}

static void test_summary_rejected(void **state)
{
    (void)state;
    cl_buf b;
    cl_buf_init(&b, 1 << 16);
    float p[6] = {0};
    int64_t d[4] = {1, 2, 1, 3};
    cl_infer_tensor t = tm_f32(4, d, p);
    assert_fails(cl_infer_segment_summary(&t, 0.5f, "m", NULL, &b), CL_ERR_FORMAT, "not a float32 probability map");
    int64_t d1[1] = {6};
    t = tm_f32(1, d1, p);
    assert_fails(cl_infer_segment_summary(&t, 0.5f, "m", NULL, &b), CL_ERR_FORMAT, "rank 1");
    int64_t d2[2] = {2, 3};
    t = tm_f32(2, d2, p);
    assert_fails(cl_infer_segment_summary(&t, 1.0f, "m", NULL, &b), CL_ERR_USAGE, "threshold 1 is not strictly");
    assert_fails(cl_infer_segment_summary(&t, 0.0f, "m", NULL, &b), CL_ERR_USAGE, "threshold 0 is not strictly");
    assert_int_equal(b.len, 0);
    cl_buf_free(&b);
}

/* x -> op -> y with x float [1, 1, h, w] and the given metadata pairs (NULL-terminated). */
static cl_infer_model *image_model(const char *op, int64_t h, int64_t w, const char *const *meta)
{
    tm_model *t = tm_new(13);
    int64_t d[4] = {1, 1, h, w};
    tm_input(t, "x", CL_INFER_FLOAT, 4, d);
    tm_output(t, "y");
    tm_node(t, op, "n", "x", "y");
    for (size_t i = 0; meta != NULL && meta[i] != NULL; i += 2) tm_metadata(t, meta[i], meta[i + 1]);
    cl_infer_model *m = tm_load(t);
    tm_free(t);
    return m;
}

static const char *const seg_meta[] = {
    "cloister.kind", "segmentation", "cloister.name", "sig", "cloister.note", "a test model", NULL};

static void test_segment_png(void **state)
{
    (void)state;
    /* Sigmoid of the z-scored image is >= 0.5 exactly where the pixel is above the mean: the square. */
    cl_infer_model *m = image_model("Sigmoid", 12, 16, seg_meta);
    assert_true(cl_infer_segmenter_detect(m));
    assert_ok(cl_infer_segmenter_check(m));
    cl_buf png, mask, sum, doc, dec;
    tm_square_png(&png);
    cl_buf_init(&mask, 1 << 20);
    cl_buf_init(&sum, 1 << 16);
    cl_buf_init(&doc, 1 << 20);
    cl_buf_init(&dec, 1 << 20);
    assert_ok(cl_infer_segment_png(m, png.data, png.len, &mask, &sum));
    /* The mask is the input image again (it was itself a mask PNG, encoded the same way). */
    assert_int_equal(mask.len, png.len);
    assert_memory_equal(mask.data, png.data, png.len);
    json_t *j = json_loadb((const char *)sum.data, sum.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "sig");
    assert_string_equal(json_string_value(json_object_get(j, "note")), "a test model");
    assert_int_equal(jint(j, "area_pixels"), 36);
    expect_box(j, 4, 2, 6, 6);
    json_decref(j);

    /* One document with the mask inside. */
    assert_ok(cl_infer_segment_png_json(m, png.data, png.len, &doc));
    j = json_loadb((const char *)doc.data, doc.len, 0, NULL);
    assert_non_null(j);
    assert_int_equal(jint(j, "area_pixels"), 36);
    const char *b64 = json_string_value(json_object_get(j, "mask_png_base64"));
    assert_non_null(b64);
    assert_ok(cl_base64_decode(b64, strlen(b64), false, &dec));
    assert_int_equal(dec.len, png.len);
    assert_memory_equal(dec.data, png.data, png.len);
    json_decref(j);
    cl_infer_model_free(m);

    /* A model of another size: the mask comes back at the image's 16 x 12. */
    m = image_model("Sigmoid", 6, 8, seg_meta);
    cl_buf_reset(&sum);
    cl_buf_reset(&mask);
    assert_ok(cl_infer_segment_png(m, png.data, png.len, &mask, &sum));
    j = json_loadb((const char *)sum.data, sum.len, 0, NULL);
    assert_int_equal(jint(j, "width"), 16);
    assert_int_equal(jint(j, "height"), 12);
    assert_true(jint(j, "area_pixels") > 0);
    json_decref(j);
    cl_infer_model_free(m);

    cl_buf_free(&png);
    cl_buf_free(&mask);
    cl_buf_free(&sum);
    cl_buf_free(&doc);
    cl_buf_free(&dec);
}

static void test_segment_png_rejected(void **state)
{
    (void)state;
    cl_infer_model *m = image_model("Sigmoid", 12, 16, seg_meta);
    cl_buf png, mask, sum;
    tm_square_png(&png);
    cl_buf_init(&mask, 1 << 20);
    cl_buf_init(&sum, 1 << 16);
    assert_fails(cl_infer_segment_png(m, "GIF89a not a png", 16, &mask, &sum), CL_ERR_FORMAT,
                 "not a PNG file (bad signature)");
    assert_fails(cl_infer_segment_png(m, png.data, png.len / 2, &mask, &sum), CL_ERR_FORMAT,
                 "the PNG data is truncated");
    assert_fails(cl_infer_segment_png(m, png.data, 0, &mask, &sum), CL_ERR_FORMAT, "not a PNG file");
    assert_fails(cl_infer_segment_png_json(m, png.data, png.len - 20, &sum), CL_ERR_FORMAT, "malformed PNG");
    assert_int_equal(mask.len, 0);
    assert_int_equal(sum.len, 0);
    cl_infer_model_free(m);

    /* Not a segmentation model: no kind, another kind. */
    m = image_model("Sigmoid", 12, 16, NULL);
    assert_false(cl_infer_segmenter_detect(m));
    assert_fails(cl_infer_segmenter_check(m), CL_ERR_NOT_FOUND, "does not say it is a segmentation model");
    assert_fails(cl_infer_segment_png(m, png.data, png.len, &mask, &sum), CL_ERR_NOT_FOUND,
                 "carries no 'cloister.kind' metadata");
    cl_infer_model_free(m);
    static const char *const cls_meta[] = {"cloister.kind", "classifier", NULL};
    m = image_model("Sigmoid", 12, 16, cls_meta);
    assert_fails(cl_infer_segment_png_json(m, png.data, png.len, &sum), CL_ERR_NOT_FOUND,
                 "is 'classifier', not 'segmentation'");
    cl_infer_model_free(m);

    /* A segmenter whose output is not a probability (no sigmoid). */
    m = image_model("Identity", 12, 16, seg_meta);
    assert_fails(cl_infer_segment_png(m, png.data, png.len, &mask, &sum), CL_ERR_FORMAT,
                 "not a probability (does the model end in a sigmoid?)");
    cl_infer_model_free(m);

    /* Bad metadata. */
    static const char *const bad[][5] = {
        {"cloister.kind", "segmentation", "cloister.segmentation.threshold", "1.5", "not a probability strictly"},
        {"cloister.kind", "segmentation", "cloister.segmentation.threshold", "0x1p-1", "not a decimal number"},
        {"cloister.kind", "segmentation", "cloister.segmentation.threshold", "nan", "not a decimal number"},
        {"cloister.kind", "segmentation", "cloister.name", "a\"b", "byte 0x22 at offset 1"},
        {"cloister.kind", "segmentation", "cloister.note", "tab\there", "notes are printable ASCII"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *meta[] = {bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL};
        m = image_model("Sigmoid", 12, 16, meta);
        assert_fails(cl_infer_segmenter_check(m), CL_ERR_FORMAT, bad[i][4]);
        cl_infer_model_free(m);
    }
    /* A model that does not take an image. */
    tm_model *t = tm_new(13);
    int64_t d[2] = {1, 30};
    tm_input(t, "x", CL_INFER_FLOAT, 2, d);
    tm_output(t, "y");
    tm_node(t, "Sigmoid", "n", "x", "y");
    tm_metadata(t, "cloister.kind", "segmentation");
    m = tm_load(t);
    tm_free(t);
    assert_fails(cl_infer_segment_png(m, png.data, png.len, &mask, &sum), CL_ERR_FORMAT, "input is not an image");
    cl_infer_model_free(m);

    cl_buf_free(&png);
    cl_buf_free(&mask);
    cl_buf_free(&sum);
}

static void png_chunk(cl_buf *b, const char type[4], const uint8_t *data, size_t n)
{
    assert_ok(cl_buf_append_u32be(b, (uint32_t)n));
    size_t at = b->len;
    assert_ok(cl_buf_append(b, type, 4));
    if (n > 0) assert_ok(cl_buf_append(b, data, n));
    assert_ok(cl_buf_append_u32be(b, (uint32_t)crc32(0, b->data + at, (uInt)(n + 4))));
}

/* A 16 x 12 8-bit RGB PNG (PNG spec. 5, 11.2.2: color type 2) whose R, G and B channels each hold
 * one 255-valued rectangle on 0: R at x 1-3, y 1-3 (9 px), G at x 6-12, y 4-8 (35 px), B at x 13-14,
 * y 9-10 (4 px). Which rectangle the mask finds says which channel the model read. */
static void rgb_png(cl_buf *out)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const int box[3][4] = {{1, 1, 3, 3}, {6, 4, 12, 8}, {13, 9, 14, 10}}; /* x0, y0, x1, y1 */
    uint8_t raw[12 * (1 + 16 * 3)] = {0};
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 16; x++)
            for (int c = 0; c < 3; c++)
                if (x >= box[c][0] && x <= box[c][2] && y >= box[c][1] && y <= box[c][3])
                    raw[y * (1 + 16 * 3) + 1 + x * 3 + c] = 255;
    uint8_t z[1024];
    uLongf zn = sizeof(z);
    assert_int_equal(compress2(z, &zn, raw, sizeof(raw), 9), Z_OK);
    const uint8_t ihdr[13] = {0, 0, 0, 16, 0, 0, 0, 12, 8, 2, 0, 0, 0};
    cl_buf_init(out, 1 << 16);
    assert_ok(cl_buf_append(out, sig, sizeof(sig)));
    png_chunk(out, "IHDR", ihdr, sizeof(ihdr));
    png_chunk(out, "IDAT", z, zn);
    png_chunk(out, "IEND", NULL, 0);
}

/* cloister.segmentation.channel: a one-channel model reads the channel it names of an RGB image
 * (the TCGA-LGG U-Net reads FLAIR, G); without it the mean of the three; a gray image as it is. */
static void test_segment_channel(void **state)
{
    (void)state;
    cl_buf rgb, gray, mask, sum;
    rgb_png(&rgb);
    tm_square_png(&gray);
    cl_buf_init(&mask, 1 << 20);
    cl_buf_init(&sum, 1 << 16);
    static const struct {
        const char *channel; /* NULL: no metadata */
        long long area, x, y, w, h;
    } cases[] = {
        {"0", 9, 1, 1, 3, 3},
        {"1", 35, 6, 4, 7, 5},
        {"2", 4, 13, 9, 2, 2},
        {NULL, 48, 1, 1, 14, 10}, /* the mean: every rectangle is above the image's mean */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *meta[] = {"cloister.kind", "segmentation",
                              cases[i].channel ? "cloister.segmentation.channel" : NULL, cases[i].channel, NULL};
        cl_infer_model *m = image_model("Sigmoid", 12, 16, meta);
        assert_ok(cl_infer_segmenter_check(m));
        cl_buf_reset(&mask);
        cl_buf_reset(&sum);
        assert_ok(cl_infer_segment_png(m, rgb.data, rgb.len, &mask, &sum));
        json_t *j = json_loadb((const char *)sum.data, sum.len, 0, NULL);
        assert_non_null(j);
        assert_int_equal(jint(j, "area_pixels"), cases[i].area);
        expect_box(j, cases[i].x, cases[i].y, cases[i].w, cases[i].h);
        json_decref(j);

        /* What the model saw: the picked channel, z-scored (255 inside its rectangle, 0 elsewhere). */
        cl_infer_tensor in;
        assert_ok(cl_infer_segment_input(m, rgb.data, rgb.len, &in));
        assert_int_equal(in.rank, 4);
        assert_int_equal(in.dims[1], 1);
        const float *f = in.data;
        size_t above = 0;
        for (size_t k = 0; k < (size_t)12 * 16; k++) above += f[k] > 0.0f;
        assert_int_equal(above, cases[i].area);
        cl_infer_tensor_free(&in);

        /* A gray image is taken as it is whatever the channel. */
        cl_buf_reset(&mask);
        cl_buf_reset(&sum);
        assert_ok(cl_infer_segment_png(m, gray.data, gray.len, &mask, &sum));
        assert_int_equal(mask.len, gray.len);
        assert_memory_equal(mask.data, gray.data, gray.len);
        cl_infer_model_free(m);
    }

    /* Refusals: not one digit 0-2, or a 3-channel model (which reads R, G and B as they are). */
    static const char *const bad[][2] = {
        {"3", "'3' is not 0, 1 or 2"}, {"01", "'01' is not 0, 1 or 2"}, {"-1", "'-1' is not 0, 1 or 2"},
        {"", "'' is not 0, 1 or 2"},   {"G", "'G' is not 0, 1 or 2"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *meta[] = {"cloister.kind", "segmentation", "cloister.segmentation.channel", bad[i][0], NULL};
        cl_infer_model *m = image_model("Sigmoid", 12, 16, meta);
        assert_fails(cl_infer_segmenter_check(m), CL_ERR_FORMAT, bad[i][1]);
        cl_buf_reset(&mask);
        cl_buf_reset(&sum);
        assert_fails(cl_infer_segment_png(m, rgb.data, rgb.len, &mask, &sum), CL_ERR_FORMAT, bad[i][1]);
        assert_int_equal(mask.len, 0);
        assert_int_equal(sum.len, 0);
        cl_infer_tensor in;
        assert_fails(cl_infer_segment_input(m, rgb.data, rgb.len, &in), CL_ERR_FORMAT, bad[i][1]);
        assert_null(in.data);
        cl_infer_model_free(m);
    }
    tm_model *t = tm_new(13);
    int64_t d[4] = {1, 3, 12, 16};
    tm_input(t, "x", CL_INFER_FLOAT, 4, d);
    tm_output(t, "y");
    tm_node(t, "Sigmoid", "n", "x", "y");
    tm_metadata(t, "cloister.kind", "segmentation");
    tm_metadata(t, "cloister.segmentation.channel", "1");
    cl_infer_model *m = tm_load(t);
    tm_free(t);
    assert_fails(cl_infer_segmenter_check(m), CL_ERR_FORMAT, "its input takes 3 channels");
    cl_infer_model_free(m);

    cl_buf_free(&rgb);
    cl_buf_free(&gray);
    cl_buf_free(&mask);
    cl_buf_free(&sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary_rejected),     cmocka_unit_test(test_summary_empty_one_full),
        cmocka_unit_test(test_segment_png_rejected), cmocka_unit_test(test_segment_png),
        cmocka_unit_test(test_segment_channel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
