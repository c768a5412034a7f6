/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PNG in and out for the medical flows, on libpng. Decoding reads from a
 * bounded in-memory cursor (the image arrives decrypted inside the enclave).
 * A PNG's size is whatever its header says: 255 KB of deflated zeros make a
 * 16384 x 16384 image (zlib's ratio is at most 1032:1), so the header (IHDR,
 * PNG spec. 11.2.2) is checked against the caller's caps, in pixels and in
 * the bytes the decode would hold, before any row is decoded or any pixel
 * buffer allocated; libpng's own bound is 16384 pixels a side and ancillary
 * chunks of at most 1 MiB. libpng reports errors by longjmp, so every object
 * a jump could leak is owned by a struct that outlives the setjmp frame.
 */
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/mem.h"

#include "infer_internal.h"

#define IMG_MAX_SIDE 16384
#define IMG_MAX_PIXELS ((size_t)1 << 28)
/* Largest ancillary chunk libpng may allocate (text, ICC profile; decompressed): none is read. */
#define IMG_MAX_CHUNK ((size_t)1 << 20)

/* What the caller allows one decode to cost, and what it asks of it. */
typedef struct img_limits {
    size_t max_pixels;
    size_t max_bytes; /* the rows as decoded + the float tensor + its resized copy */
    int channels;     /* of the tensor */
    int64_t out_h, out_w;
} img_limits;

typedef struct img_src {
    cl_reader r;
    char err[256];
} img_src;

static void img_error(png_structp png, png_const_charp msg)
{
    img_src *s = png_get_error_ptr(png);
    if (s != NULL) snprintf(s->err, sizeof(s->err), "%s", msg);
    png_longjmp(png, 1);
}

static void img_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void img_read_fn(png_structp png, png_bytep dst, size_t n)
{
    img_src *s = png_get_io_ptr(png);
    if (cl_reader_copy(&s->r, dst, n) != CL_OK) png_error(png, "the PNG data is truncated");
}

/* Decoding state that survives a longjmp. */
typedef struct img_dec {
    png_structp png;
    png_infop info;
    uint8_t *pixels;
    size_t pixels_n;
    png_bytep *rows;
} img_dec;

static void img_dec_free(img_dec *d)
{
    if (d->png) png_destroy_read_struct(&d->png, d->info ? &d->info : NULL, NULL);
    if (d->pixels) {
        cl_memzero(d->pixels, d->pixels_n);
        free(d->pixels);
    }
    free(d->rows);
    memset(d, 0, sizeof(*d));
}

/* a * b, or SIZE_MAX when it overflows (then over any cap). */
static size_t img_mul(size_t a, size_t b) { return b != 0 && a > SIZE_MAX / b ? SIZE_MAX : a * b; }

static size_t img_add(size_t a, size_t b) { return a > SIZE_MAX - b ? SIZE_MAX : a + b; }

/* The header's dimensions against the caller's caps, before anything is decoded. */
static CL_MUST_USE cl_status img_check_header(png_structp png, png_infop info, const img_limits *lim)
{
    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0;
    CL_ENSURE(png_get_IHDR(png, info, &w, &h, &depth, &color, NULL, NULL, NULL) == 1, CL_ERR_FORMAT,
              "malformed PNG: no IHDR");
    size_t pixels = img_mul(w, h);
    CL_ENSURE(w > 0 && h > 0 && pixels <= lim->max_pixels, CL_ERR_LIMIT,
              "PNG of %ux%u pixels is too large (at most %zu pixels here); refused from its header, before "
              "decoding",
              (unsigned)w, (unsigned)h, lim->max_pixels);
    /* After png_set_expand and png_set_strip_alpha: palette and RGB(A) give 3 samples, gray(+alpha)
     * 1; 16-bit samples stay 16-bit, lower depths become 8. */
    size_t samples = (color & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    size_t rows = img_mul(img_mul(pixels, samples), depth == 16 ? 2 : 1);
    size_t tensor = img_mul(img_mul(pixels, (size_t)lim->channels), sizeof(float));
    size_t resized = 0;
    int64_t oh = lim->out_h > 0 ? lim->out_h : (int64_t)h, ow = lim->out_w > 0 ? lim->out_w : (int64_t)w;
    if (oh != (int64_t)h || ow != (int64_t)w)
        resized = img_mul(img_mul(img_mul((size_t)oh, (size_t)ow), (size_t)lim->channels), sizeof(float));
    size_t need = img_add(img_add(rows, tensor), resized);
    CL_ENSURE(need <= lim->max_bytes, CL_ERR_LIMIT,
              "PNG of %ux%u pixels would take %zu MiB to decode, over the %zu MiB allowed here; refused from its "
              "header, before decoding",
              (unsigned)w, (unsigned)h, need >> 20, lim->max_bytes >> 20);
    return CL_OK;
}

/* Decodes to interleaved 16-bit-or-8-bit samples; *bits is 8 or 16, *ch 1 or 3. */
static CL_MUST_USE cl_status img_decode(const void *bytes, size_t len, const img_limits *lim, img_dec *d, img_src *src,
                                        uint32_t *w, uint32_t *h, int *ch, int *bits)
{
    CL_ENSURE(len >= 8 && png_sig_cmp(bytes, 0, 8) == 0, CL_ERR_FORMAT, "not a PNG file (bad signature)");
    src->r = cl_reader_make(bytes, len);
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src, img_error, img_warning);
    CL_ENSURE(d->png != NULL, CL_ERR_NOMEM, "out of memory decoding a PNG");
    d->info = png_create_info_struct(d->png);
    CL_ENSURE(d->info != NULL, CL_ERR_NOMEM, "out of memory decoding a PNG");
    if (setjmp(png_jmpbuf(d->png))) CL_FAIL(CL_ERR_FORMAT, "malformed PNG: %s", src->err);
    png_set_read_fn(d->png, src, img_read_fn);
    png_set_user_limits(d->png, IMG_MAX_SIDE, IMG_MAX_SIDE);
    png_set_chunk_malloc_max(d->png, IMG_MAX_CHUNK);
    png_read_info(d->png, d->info); /* the chunks before the first IDAT: no row yet */
    CL_GUARD(img_check_header(d->png, d->info, lim));
    int color = png_get_color_type(d->png, d->info);
    int depth = png_get_bit_depth(d->png, d->info);
    /* Expand palette and low-depth gray, drop alpha, keep 16-bit samples 16-bit
     * (in host order). */
    png_set_expand(d->png);
    png_set_strip_alpha(d->png);
    if (depth == 16) png_set_swap(d->png);
    png_read_update_info(d->png, d->info);
    *w = png_get_image_width(d->png, d->info);
    *h = png_get_image_height(d->png, d->info);
    *bits = png_get_bit_depth(d->png, d->info);
    int c = png_get_channels(d->png, d->info);
    (void)color;
    CL_ENSURE(c == 1 || c == 3, CL_ERR_UNSUPPORTED, "PNG has %d channels after expansion; gray or RGB expected", c);
    CL_ENSURE(*bits == 8 || *bits == 16, CL_ERR_UNSUPPORTED, "PNG bit depth %d is not supported", *bits);
    *ch = c;
    size_t rowbytes = png_get_rowbytes(d->png, d->info);
    CL_ENSURE(rowbytes == (size_t)*w * (size_t)c * (size_t)(*bits / 8), CL_ERR_INTERNAL, "unexpected PNG row size");
    d->pixels_n = rowbytes * *h;
    d->pixels = malloc(d->pixels_n);
    d->rows = calloc(*h, sizeof(png_bytep));
    CL_ENSURE(d->pixels && d->rows, CL_ERR_NOMEM, "out of memory decoding a %ux%u PNG", *w, *h);
    for (uint32_t y = 0; y < *h; y++) d->rows[y] = d->pixels + (size_t)y * rowbytes;
    png_read_image(d->png, d->rows);
    return CL_OK;
}

/* Bilinear sample of plane p (h x w) at output pixel (oy, ox) of an oh x ow
 * image, half-pixel centres, edges clamped (as Resize linear half_pixel). */
static double img_bilinear(const float *p, int64_t h, int64_t w, int64_t oy, int64_t ox, int64_t oh, int64_t ow)
{
    double fy = ((double)oy + 0.5) * (double)h / (double)oh - 0.5,
           fx = ((double)ox + 0.5) * (double)w / (double)ow - 0.5;
    fy = fy < 0 ? 0 : fy > (double)(h - 1) ? (double)(h - 1) : fy;
    fx = fx < 0 ? 0 : fx > (double)(w - 1) ? (double)(w - 1) : fx;
    int64_t y0 = (int64_t)fy, x0 = (int64_t)fx, y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
    double ty = fy - (double)y0, tx = fx - (double)x0;
    double a = p[y0 * w + x0] * (1 - tx) + p[y0 * w + x1] * tx;
    double b = p[y1 * w + x0] * (1 - tx) + p[y1 * w + x1] * tx;
    return a * (1 - ty) + b * ty;
}

cl_status infer_image_resize(const cl_infer_tensor *in, int64_t out_h, int64_t out_w, cl_infer_tensor *out)
{
    memset(out, 0, sizeof(*out));
    CL_ENSURE(in->dtype == CL_INFER_FLOAT && in->rank == 4 && in->dims[0] == 1, CL_ERR_INTERNAL,
              "an image resize needs a float32 [1, C, H, W] tensor");
    int64_t c = in->dims[1], h = in->dims[2], w = in->dims[3];
    CL_ENSURE(c >= 1 && h >= 1 && w >= 1 && out_h >= 1 && out_w >= 1 && out_h <= IMG_MAX_SIDE && out_w <= IMG_MAX_SIDE,
              CL_ERR_LIMIT, "cannot resize a %lldx%lld image to %lldx%lld (sides are 1 to %d)", (long long)w,
              (long long)h, (long long)out_w, (long long)out_h, IMG_MAX_SIDE);
    int64_t od[4] = {1, c, out_h, out_w};
    CL_GUARD(cl_infer_tensor_alloc(out, CL_INFER_FLOAT, 4, od));
    const float *f = in->data;
    float *o = out->data;
    size_t plane = (size_t)h * (size_t)w;
    for (int64_t k = 0; k < c; k++)
        for (int64_t y = 0; y < out_h; y++)
            for (int64_t x = 0; x < out_w; x++)
                o[(k * out_h + y) * out_w + x] = (float)img_bilinear(f + (size_t)k * plane, h, w, y, x, out_h, out_w);
    return CL_OK;
}

cl_status cl_infer_png_read(const void *bytes, size_t len, int channels, int64_t out_h, int64_t out_w,
                            cl_infer_tensor *out)
{
    int64_t h, w;
    /* The cap of the tensors cl_infer_tensor_alloc makes, for the whole decode. */
    return infer_png_read_sized(bytes, len, channels, -1, IMG_MAX_PIXELS, INFER_PUBLIC_ALLOC_MAX, out_h, out_w, out, &h,
                                &w);
}

cl_status infer_png_read_sized(const void *bytes, size_t len, int channels, int pick, size_t max_pixels,
                               size_t max_bytes, int64_t out_h, int64_t out_w, cl_infer_tensor *out, int64_t *src_h,
                               int64_t *src_w)
{
    cl_status rc = CL_OK;
    img_dec d = {0};
    img_src src = {0};
    cl_infer_tensor full = {0};
    uint32_t w = 0, h = 0;
    int ch = 0, bits = 0;
    memset(out, 0, sizeof(*out));
    *src_h = *src_w = 0;
    CL_ENSURE(channels == 1 || channels == 3, CL_ERR_UNSUPPORTED, "an image input needs 1 or 3 channels, not %d",
              channels);
    CL_ENSURE(pick >= -1 && pick <= 2 && (pick == -1 || channels == 1), CL_ERR_USAGE,
              "channel %d of an RGB image was asked for a %d-channel input; 0, 1 or 2 for a one-channel input", pick,
              channels);
    const img_limits lim = {.max_pixels = max_pixels < IMG_MAX_PIXELS ? max_pixels : IMG_MAX_PIXELS,
                            .max_bytes = max_bytes,
                            .channels = channels,
                            .out_h = out_h,
                            .out_w = out_w};
    CL_GUARD_GOTO(img_decode(bytes, len, &lim, &d, &src, &w, &h, &ch, &bits));
    int64_t dims[4] = {1, channels, h, w};
    CL_GUARD_GOTO(cl_infer_tensor_alloc(&full, CL_INFER_FLOAT, 4, dims));
    float *f = full.data;
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++) {
        double v[3] = {0, 0, 0};
        for (int k = 0; k < ch; k++)
            v[k] = bits == 16 ? (double)((const uint16_t *)d.pixels)[i * (size_t)ch + (size_t)k]
                              : (double)d.pixels[i * (size_t)ch + (size_t)k];
        /* RGB into one channel: the one the model names (an MRI's FLAIR among three sequences), else the mean. */
        double one = ch == 1 ? v[0] : pick >= 0 ? v[pick] : (v[0] + v[1] + v[2]) / 3.0;
        for (int k = 0; k < channels; k++)
            f[(size_t)k * plane + i] = (float)(ch == channels ? v[k] : ch == 1 ? v[0] : one);
    }
    if (out_h <= 0) out_h = h;
    if (out_w <= 0) out_w = w;
    if (out_h != (int64_t)h || out_w != (int64_t)w) {
        CL_GUARD_GOTO(infer_image_resize(&full, out_h, out_w, out));
    } else {
        *out = full;
        memset(&full, 0, sizeof(full));
    }
    /* Per-image z-score. */
    size_t n = cl_infer_tensor_count(out);
    float *o = out->data;
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) sum += o[i];
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) sq += ((double)o[i] - mean) * ((double)o[i] - mean);
    double sd = sqrt(sq / (double)n);
    if (sd == 0) sd = 1;
    for (size_t i = 0; i < n; i++) o[i] = (float)(((double)o[i] - mean) / sd);
    *src_h = h;
    *src_w = w;
out:
    img_dec_free(&d);
    cl_infer_tensor_free(&full);
    if (rc != CL_OK) cl_infer_tensor_free(out);
    return rc;
}

typedef struct img_dst {
    cl_buf *b;
    cl_status rc;
    char err[256];
} img_dst;

static void img_write_fn(png_structp png, png_bytep p, size_t n)
{
    img_dst *d = png_get_io_ptr(png);
    if (d->rc == CL_OK) d->rc = cl_buf_append(d->b, p, n);
    if (d->rc != CL_OK) png_error(png, "the output buffer is full");
}

static void img_flush_fn(png_structp png) { (void)png; }

static void img_werror(png_structp png, png_const_charp msg)
{
    img_dst *d = png_get_error_ptr(png);
    if (d != NULL) snprintf(d->err, sizeof(d->err), "%s", msg);
    png_longjmp(png, 1);
}

typedef struct img_enc {
    png_structp png;
    png_infop info;
    uint8_t *row;
} img_enc;

cl_status cl_infer_png_write_mask(const cl_infer_tensor *prob, float threshold, cl_buf *out)
{
    bool ok_shape = prob->dtype == CL_INFER_FLOAT &&
                    (prob->rank == 2 || (prob->rank == 4 && prob->dims[0] == 1 && prob->dims[1] == 1));
    CL_ENSURE(ok_shape, CL_ERR_UNSUPPORTED, "a mask needs a float32 [H, W] or [1, 1, H, W] probability map");
    int64_t h = prob->dims[prob->rank - 2], w = prob->dims[prob->rank - 1];
    CL_ENSURE(h > 0 && w > 0 && h <= IMG_MAX_SIDE && w <= IMG_MAX_SIDE, CL_ERR_LIMIT,
              "a %lldx%lld mask is outside 1..%d pixels a side", (long long)h, (long long)w, IMG_MAX_SIDE);
    img_dst dst = {out, CL_OK, ""};
    img_enc e = {0};
    cl_status rc = CL_OK;
    e.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &dst, img_werror, img_warning);
    CL_ENSURE_GOTO(e.png != NULL, CL_ERR_NOMEM, "out of memory encoding a PNG");
    e.info = png_create_info_struct(e.png);
    e.row = malloc((size_t)w);
    CL_ENSURE_GOTO(e.info != NULL && e.row != NULL, CL_ERR_NOMEM, "out of memory encoding a PNG");
    if (setjmp(png_jmpbuf(e.png))) {
        rc = dst.rc != CL_OK ? dst.rc : CL_RAISE(CL_ERR_INTERNAL, "PNG encoding: %s", dst.err);
        goto out;
    }
    png_set_write_fn(e.png, &dst, img_write_fn, img_flush_fn);
    png_set_IHDR(e.png, e.info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(e.png, e.info);
    const float *p = prob->data;
    for (int64_t y = 0; y < h; y++) {
        for (int64_t x = 0; x < w; x++) e.row[x] = p[y * w + x] >= threshold ? 255 : 0;
        png_write_row(e.png, e.row);
    }
    png_write_end(e.png, NULL);
out:
    if (e.png) png_destroy_write_struct(&e.png, e.info ? &e.info : NULL);
    free(e.row);
    return rc;
}
