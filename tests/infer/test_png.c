/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PNG bombs (docs/security.md, finding 10): a PNG is as large as its header says, whatever its size
 * in bytes. 255 KB of deflated zeros make a 16384 x 16384 image; decoding it cost 294 MB and
 * 2.5 s before the tensor cap refused it. Now the header is checked against the caller's caps
 * before a row is decoded: the refusal names the size and allocates nothing of the image.
 * The PNGs are made here (PNG spec. 5 and 11.2: signature, IHDR, one zlib stream of filter-0
 * rows of zeros in IDAT, IEND), streamed through deflate a row at a time.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <zlib.h>

#include "cloister/infer.h"

#include "infer_test_util.h"
#include "test_util.h"

static void put32(cl_buf *b, uint32_t v) { assert_ok(cl_buf_append_u32be(b, v)); }

static void chunk(cl_buf *b, const char type[4], const uint8_t *data, size_t n)
{
    put32(b, (uint32_t)n);
    size_t at = b->len;
    assert_ok(cl_buf_append(b, type, 4));
    if (n > 0) assert_ok(cl_buf_append(b, data, n));
    put32(b, (uint32_t)crc32(0, b->data + at, (uInt)(n + 4)));
}

/* A w x h PNG of zeros, 8-bit, color type 0 (gray) or 2 (RGB). */
static void zeros_png(uint32_t w, uint32_t h, int color, cl_buf *out)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    cl_buf_init(out, (size_t)64 << 20);
    assert_ok(cl_buf_append(out, sig, sizeof(sig)));
    uint8_t ihdr[13] = {(uint8_t)(w >> 24),
                        (uint8_t)(w >> 16),
                        (uint8_t)(w >> 8),
                        (uint8_t)w,
                        (uint8_t)(h >> 24),
                        (uint8_t)(h >> 16),
                        (uint8_t)(h >> 8),
                        (uint8_t)h,
                        8,
                        (uint8_t)color,
                        0,
                        0,
                        0};
    chunk(out, "IHDR", ihdr, sizeof(ihdr));
    size_t row_len = 1 + (size_t)w * (color == 2 ? 3 : 1); /* filter byte 0, then the samples */
    uint8_t *row = calloc(row_len, 1);
    cl_buf idat;
    cl_buf_init(&idat, (size_t)64 << 20);
    z_stream z;
    memset(&z, 0, sizeof(z));
    assert_int_equal(deflateInit(&z, Z_BEST_COMPRESSION), Z_OK);
    uint8_t obuf[65536];
    for (uint32_t y = 0; y <= h; y++) {
        z.next_in = row;
        z.avail_in = y < h ? (uInt)row_len : 0;
        int flush = y < h ? Z_NO_FLUSH : Z_FINISH, r;
        do {
            z.next_out = obuf;
            z.avail_out = sizeof(obuf);
            r = deflate(&z, flush);
            assert_true(r == Z_OK || r == Z_STREAM_END || r == Z_BUF_ERROR);
            assert_ok(cl_buf_append(&idat, obuf, sizeof(obuf) - z.avail_out));
        } while (z.avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END));
    }
    assert_int_equal(deflateEnd(&z), Z_OK);
    chunk(out, "IDAT", idat.data, idat.len);
    chunk(out, "IEND", NULL, 0);
    cl_buf_free(&idat);
    free(row);
}

static long max_rss_kib(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return ru.ru_maxrss;
}

/* The generator makes PNGs the decoder reads: the refusals below are of sizes, not of bytes. */
static void test_zeros_png_decodes(void **state)
{
    (void)state;
    cl_buf png;
    zeros_png(300, 200, 2, &png);
    cl_infer_tensor t = {0};
    assert_ok(cl_infer_png_read(png.data, png.len, 3, 0, 0, &t));
    assert_int_equal(t.dims[1], 3);
    assert_int_equal(t.dims[2], 200);
    assert_int_equal(t.dims[3], 300);
    cl_infer_tensor_free(&t);
    cl_buf_free(&png);
}

/* The attack's file: 16384 x 16384 8-bit gray, made once for the tests below. */
static cl_buf bomb;

static int make_bomb(void **state)
{
    (void)state;
    zeros_png(16384, 16384, 0, &bomb);
    return 0;
}

static int free_bomb(void **state)
{
    (void)state;
    cl_buf_free(&bomb);
    return 0;
}

static void test_bomb_refused_from_header(void **state)
{
    (void)state;
    /* About 255 KB: zlib's best is 1032:1 of its 256 MiB of rows. */
    assert_true(bomb.len > 200000 && bomb.len < 300000);
    long before = max_rss_kib();
    cl_infer_tensor t = {0};
    /* Into 3 channels (gray replicated): 256 MiB of rows and a 3 GiB tensor. */
    assert_fails(cl_infer_png_read(bomb.data, bomb.len, 3, 0, 0, &t), CL_ERR_LIMIT,
                 "PNG of 16384x16384 pixels would take 3328 MiB to decode, over the 1024 MiB allowed here; refused "
                 "from its header, before decoding");
    assert_null(t.data);
    /* One channel, resized to 256 x 256: 256 MiB of rows, a 1 GiB tensor, 256 KiB resized. */
    assert_fails(cl_infer_png_read(bomb.data, bomb.len, 1, 256, 256, &t), CL_ERR_LIMIT,
                 "PNG of 16384x16384 pixels would take 1280 MiB to decode");
    assert_null(t.data);
    /* Nothing of the image was allocated: the old path decoded all 256 MiB of rows first. */
    assert_true(max_rss_kib() - before < 32 * 1024);
}

/* The worker's path: a segmentation model's memory cap (its model_memory_mib) bounds the image. */
static void test_bomb_refused_by_model_cap(void **state)
{
    (void)state;
    tm_model *tm = tm_new(13);
    int64_t d[4] = {1, 1, 64, 64};
    tm_input(tm, "x", CL_INFER_FLOAT, 4, d);
    tm_output(tm, "y");
    tm_node(tm, "Sigmoid", "n", "x", "y");
    tm_metadata(tm, "cloister.kind", "segmentation");
    cl_buf packed;
    tm_pack(tm, &packed);
    tm_free(tm);
    cl_infer_options opts = {.max_bytes = (size_t)64 << 20};
    cl_infer_model *m = NULL;
    assert_ok(cl_infer_model_load(packed.data, packed.len, &opts, &m));
    cl_buf png, mask, sum;
    cl_buf_init(&mask, 1 << 20);
    cl_buf_init(&sum, 1 << 16);
    long before = max_rss_kib();
    /* 4096 x 4096 is the segmenter's pixel cap; its rows and tensor (80 MiB) are over 64 MiB. */
    zeros_png(4096, 4096, 0, &png);
    assert_fails(cl_infer_segment_png(m, png.data, png.len, &mask, &sum), CL_ERR_LIMIT,
                 "PNG of 4096x4096 pixels would take 80 MiB to decode, over the 64 MiB allowed here");
    cl_buf_free(&png);
    assert_fails(cl_infer_segment_png(m, bomb.data, bomb.len, &mask, &sum), CL_ERR_LIMIT,
                 "PNG of 16384x16384 pixels is too large (at most 16777216 pixels here); refused from its header");
    assert_true(max_rss_kib() - before < 32 * 1024);
    assert_int_equal(mask.len, 0);
    assert_int_equal(sum.len, 0);
    /* Under the cap, the same kind of image is segmented. */
    zeros_png(1024, 1024, 0, &png);
    assert_ok(cl_infer_segment_png(m, png.data, png.len, &mask, &sum));
    assert_true(mask.len > 0 && strstr(cl_buf_cstr(&sum), "\"width\": 1024") != NULL);
    cl_buf_free(&png);
    cl_buf_free(&mask);
    cl_buf_free(&sum);
    cl_buf_free(&packed);
    cl_infer_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeros_png_decodes),
        cmocka_unit_test(test_bomb_refused_from_header),
        cmocka_unit_test(test_bomb_refused_by_model_cap),
    };
    return cmocka_run_group_tests(tests, make_bomb, free_bomb);
}
