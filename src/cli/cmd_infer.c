/* SPDX-License-Identifier: Apache-2.0 */
/* cloister infer-local: run an ONNX model on a local input with the enclave's runtime. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/buf.h"
#include "cloister/fs.h"
#include "cloister/infer.h"
#include "cloister/stream.h"

#include "cli.h"

#define INFER_CLI_MAX_MODEL ((size_t)2 << 30)
#define INFER_CLI_MAX_INPUT ((size_t)1 << 30)
#define INFER_CLI_PRINT_MAX 32

static const char infer_usage[] =
    "Usage: cloister infer-local MODEL INPUT [-o OUT] [--threads N] [--bench N] [--profile] [--reference]\n"
    "                            [--direct-conv] [--force]\n"
    "\n"
    "Runs the ONNX model MODEL on INPUT with the runtime the enclave uses.\n"
    "INPUT is a .npy array (C order) or a .png image (8/16-bit gray or RGB; resized\n"
    "to the model's input size, z-score normalised) fed to the model's only input.\n"
    "For a classifier (a model whose metadata names its labels, as 'cloister\n"
    "train-local' writes), INPUT may be one record of measurements: .json (an object\n"
    "keyed by feature name, or an array of numbers) or .csv (one row of numbers,\n"
    "optionally after a header row of feature names); the result is printed as\n"
    "{\"label\": ..., \"probabilities\": {...}}.\n"
    "For a segmentation model (metadata cloister.kind=segmentation) and a .png\n"
    "INPUT, the JSON summary of the mask (area, bounding box) is printed and\n"
    "-o OUT.png writes the mask at the input image's size (see docs/inference.md).\n"
    "With -o OUT.npy the first output is written as .npy; with -o OUT.png it is\n"
    "written as a mask (255 where the probability is >= 0.5); otherwise every\n"
    "output's name, shape and first values are printed.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE   write the first output as .npy or mask .png (no overwrite without --force)\n"
    "  -t, --threads N     oneDNN worker threads (0 = all cores; the reference kernels run on one)\n"
    "      --reference     plain-C reference kernels only (no oneDNN)\n"
    "  -d, --direct-conv   oneDNN's direct convolution only, no Winograd (see docs/inference.md)\n"
    "      --profile       print time per op type over all runs (on stderr)\n"
    "  -b, --bench N       run N more times and print median and p99 latency and peak memory\n"
    "  -f, --force         overwrite OUT\n"
    "  -h, --help          this help\n";

static double infer_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int infer_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void infer_print_tensor(const char *name, const cl_infer_tensor *t)
{
    printf("%s: %s [", name, cl_infer_dtype_name(t->dtype));
    for (int i = 0; i < t->rank; i++) printf("%s%lld", i ? ", " : "", (long long)t->dims[i]);
    printf("]\n ");
    size_t n = cl_infer_tensor_count(t);
    for (size_t i = 0; i < n && i < INFER_CLI_PRINT_MAX; i++) {
        switch (t->dtype) {
        case CL_INFER_FLOAT: printf(" %.6g", (double)((const float *)t->data)[i]); break;
        case CL_INFER_DOUBLE: printf(" %.9g", ((const double *)t->data)[i]); break;
        case CL_INFER_INT64: printf(" %lld", (long long)((const int64_t *)t->data)[i]); break;
        case CL_INFER_INT32: printf(" %d", ((const int32_t *)t->data)[i]); break;
        default: printf(" %u", ((const uint8_t *)t->data)[i * cl_infer_dtype_size(t->dtype)]); break;
        }
    }
    printf("%s\n", n > INFER_CLI_PRINT_MAX ? " ..." : "");
}

static bool infer_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Writes the whole file or nothing. */
static CL_MUST_USE cl_status infer_write_bytes(const char *path, bool force, const cl_buf *b)
{
    cl_status rc = CL_OK;
    cl_outfile of = {.fd = -1};
    CL_GUARD_GOTO(cl_outfile_open(&of, path, force, 0600));
    cl_stream s = cl_stream_fd(of.fd, path);
    CL_GUARD_GOTO(s.write(&s, b->data, b->len));
    CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    return rc;
}

/* Writes .npy, or for a .png path the mask of a probability map (p >= 0.5). */
static CL_MUST_USE cl_status infer_write(const char *path, bool force, const cl_infer_tensor *t)
{
    cl_status rc = CL_OK;
    cl_buf b;
    cl_buf_init(&b, t->nbytes + 4096);
    if (infer_has_suffix(path, ".png"))
        CL_GUARD_GOTO(cl_infer_png_write_mask(t, 0.5f, &b));
    else
        CL_GUARD_GOTO(cl_infer_npy_write(t, &b));
    CL_GUARD_GOTO(infer_write_bytes(path, force, &b));
out:
    cl_buf_free(&b);
    return rc;
}

static CL_MUST_USE cl_status infer_bench(cl_infer_model *m, const cl_infer_tensor *in, int n)
{
    cl_status rc = CL_OK;
    size_t n_out = cl_infer_model_output_count(m);
    cl_infer_tensor *outs = calloc(n_out, sizeof(*outs));
    double *ms = calloc((size_t)n, sizeof(double));
    CL_ENSURE_GOTO(outs != NULL && ms != NULL, CL_ERR_NOMEM, "out of memory for %d benchmark runs", n);
    for (int i = 0; i < n; i++) {
        double t0 = infer_now_ms();
        CL_GUARD_GOTO(cl_infer_run(m, in, 1, outs, n_out));
        ms[i] = infer_now_ms() - t0;
        for (size_t k = 0; k < n_out; k++) cl_infer_tensor_free(&outs[k]);
    }
    qsort(ms, (size_t)n, sizeof(double), infer_cmp_double);
    size_t p99 = (size_t)((n - 1) * 0.99 + 0.5);
    printf("bench: %d runs, median %.3f ms, p99 %.3f ms, min %.3f ms, peak memory %.1f MiB\n", n, ms[(n - 1) / 2],
           ms[p99], ms[0], (double)cl_infer_model_peak_bytes(m) / (1024.0 * 1024.0));
out:
    free(outs);
    free(ms);
    return rc;
}

static void infer_print_profile(const cl_infer_model *m)
{
    const char *op;
    size_t runs, fast;
    double ms, total = 0;
    for (size_t i = 0; cl_infer_model_profile(m, i, &op, &runs, &ms, &fast); i++) total += ms;
    fprintf(stderr, "profile (all runs): %-20s %8s %6s %10s %6s\n", "op", "nodes", "oneDNN", "ms", "%");
    for (size_t i = 0; cl_infer_model_profile(m, i, &op, &runs, &ms, &fast); i++)
        fprintf(stderr, "profile (all runs): %-20s %8zu %6zu %10.3f %5.1f%%\n", op, runs, fast, ms,
                total > 0 ? 100.0 * ms / total : 0.0);
}

static CL_MUST_USE cl_status infer_local(const char *model_path, const char *input_path, const char *out_path,
                                         bool force, int bench, const cl_infer_options *opts)
{
    cl_status rc = CL_OK;
    cl_buf mb, ib;
    cl_infer_model *m = NULL;
    cl_infer_tensor in = {0};
    cl_infer_tensor *outs = NULL;
    cl_infer_classifier *cls = NULL;
    cl_buf res, mask;
    size_t n_out = 0;
    cl_buf_init(&res, (size_t)1 << 20);
    cl_buf_init(&mask, INFER_CLI_MAX_INPUT);
    /* The model is the owner's secret: it is read into locked, wiped memory. */
    cl_buf_init_secret(&mb, INFER_CLI_MAX_MODEL);
    cl_buf_init(&ib, INFER_CLI_MAX_INPUT);
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&mb, model_path), "reading model %s", model_path);
    double tl = infer_now_ms();
    CL_GUARD_CTX_GOTO(cl_infer_model_load(mb.data, mb.len, opts, &m), "loading model %s", model_path);
    tl = infer_now_ms() - tl;
    cl_buf_free(&mb);
    bool png_in = infer_has_suffix(input_path, ".png");
    bool json_in = infer_has_suffix(input_path, ".json"), csv_in = infer_has_suffix(input_path, ".csv");
    CL_ENSURE_GOTO(png_in || json_in || csv_in || infer_has_suffix(input_path, ".npy"), CL_ERR_UNSUPPORTED,
                   "input %s: expected a .npy array, a .png image, or a .json or .csv record", input_path);
    CL_ENSURE_GOTO(cl_infer_model_input_count(m) == 1, CL_ERR_USAGE,
                   "model %s takes %zu inputs; infer-local feeds exactly one", model_path,
                   cl_infer_model_input_count(m));
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&ib, input_path), "reading input %s", input_path);
    if (json_in || csv_in) {
        /* The model's own metadata says how to read the record and name the result. */
        CL_ENSURE_GOTO(out_path == NULL, CL_ERR_USAGE,
                       "-o writes arrays and masks; a classifier's result is printed (redirect it instead)");
        CL_GUARD_CTX_GOTO(cl_infer_classifier_from_model(m, &cls), "model %s cannot read %s", model_path, input_path);
        CL_GUARD_CTX_GOTO(
            cl_infer_classifier_parse(cls, json_in ? CL_INFER_RECORD_JSON : CL_INFER_RECORD_CSV, ib.data, ib.len, &in),
            "input %s", input_path);
    } else if (png_in) {
        if (cl_infer_segmenter_detect(m)) CL_GUARD_CTX_GOTO(cl_infer_segmenter_check(m), "model %s", model_path);
        /* The image becomes [1, C, H, W] at the model's declared size (a segmenter's own way: its
         * metadata may pick one channel of an RGB image). */
        cl_infer_dtype dt;
        int rank;
        int64_t dims[CL_INFER_MAX_RANK];
        CL_GUARD_GOTO(cl_infer_model_input_info(m, 0, NULL, &dt, &rank, dims));
        CL_ENSURE_GOTO(dt == CL_INFER_FLOAT && rank == 4 && (dims[1] == 1 || dims[1] == 3), CL_ERR_UNSUPPORTED,
                       "model %s does not take an image: its input is not float32 [N, 1 or 3, H, W]", model_path);
        if (cl_infer_segmenter_detect(m))
            CL_GUARD_CTX_GOTO(cl_infer_segment_input(m, ib.data, ib.len, &in), "input %s", input_path);
        else
            CL_GUARD_CTX_GOTO(cl_infer_png_read(ib.data, ib.len, (int)dims[1], dims[2], dims[3], &in), "input %s",
                              input_path);
    } else {
        CL_GUARD_CTX_GOTO(cl_infer_npy_parse(ib.data, ib.len, &in), "input %s", input_path);
    }
    /* A segmenter's mask and summary come from the library (as in the enclave);
     * -o OUT.npy still writes the raw probability map at the model's size. */
    bool segment = png_in && cl_infer_segmenter_detect(m) && (out_path == NULL || infer_has_suffix(out_path, ".png"));
    n_out = cl_infer_model_output_count(m);
    outs = calloc(n_out, sizeof(*outs));
    CL_ENSURE_GOTO(outs != NULL, CL_ERR_NOMEM, "out of memory");
    double t0 = infer_now_ms();
    if (segment)
        CL_GUARD_CTX_GOTO(cl_infer_segment_png(m, ib.data, ib.len, &mask, &res), "input %s", input_path);
    else
        CL_GUARD_GOTO(cl_infer_run(m, &in, 1, outs, n_out));
    double t1 = infer_now_ms();
    if (segment) {
        if (out_path != NULL) CL_GUARD_CTX_GOTO(infer_write_bytes(out_path, force, &mask), "writing %s", out_path);
        printf("%s\n", cl_buf_cstr(&res));
    } else if (cls != NULL) {
        CL_GUARD_CTX_GOTO(cl_infer_classifier_format(cls, &outs[0], &res), "model %s", model_path);
        printf("%s\n", cl_buf_cstr(&res));
    } else if (out_path != NULL) {
        CL_GUARD_CTX_GOTO(infer_write(out_path, force, &outs[0]), "writing %s", out_path);
    } else {
        for (size_t i = 0; i < n_out; i++) infer_print_tensor(cl_infer_model_output_name(m, i), &outs[i]);
    }
    if (bench > 0) {
        fprintf(stderr, "load: %.3f ms (with the planning run, unless the input shape is symbolic)\n", tl);
        fprintf(stderr, "first run: %.3f ms\n", t1 - t0);
        CL_GUARD_GOTO(infer_bench(m, &in, bench));
    }
    if (opts->profile) infer_print_profile(m);
out:
    for (size_t i = 0; outs != NULL && i < n_out; i++) cl_infer_tensor_free(&outs[i]);
    free(outs);
    cl_infer_tensor_free(&in);
    cl_infer_classifier_free(cls);
    cl_infer_model_free(m);
    cl_buf_free(&res);
    cl_buf_free(&mask);
    cl_buf_free(&mb);
    cl_buf_free(&ib);
    return rc;
}

int cmd_infer_local(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"threads", required_argument, NULL, 't'},
        {"bench", required_argument, NULL, 'b'},
        {"force", no_argument, NULL, 'f'},
        {"reference", no_argument, NULL, 'r'},
        {"profile", no_argument, NULL, 'p'},
        {"direct-conv", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int bench = 0, c, ec = CLI_EXIT_OK;
    uint64_t v = 0;
    bool force = false;
    cl_infer_options mo = {.backend = CL_INFER_BACKEND_DEFAULT};
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:t:b:fdh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 't':
            if ((ec = cli_uint_option("infer-local", "--threads", optarg, 0, 1024, &v)) != CLI_EXIT_OK) return ec;
            mo.threads = (int)v;
            break;
        case 'b':
            if ((ec = cli_uint_option("infer-local", "--bench (runs)", optarg, 1, 1000000, &v)) != CLI_EXIT_OK)
                return ec;
            bench = (int)v;
            break;
        case 'f': force = true; break;
        case 'r': mo.backend = CL_INFER_BACKEND_REFERENCE; break;
        case 'p': mo.profile = true; break;
        case 'd': mo.direct_conv = true; break;
        case 'h': fputs(infer_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("infer-local", "unknown option");
        }
    }
    if (argc - optind != 2) return cli_usage_error("infer-local", "expected MODEL and INPUT");
    cl_status rc = infer_local(argv[optind], argv[optind + 1], out, force, bench, &mo);
    /* The command line was well formed: an input that does not fit the model
     * is a failed operation (exit 1), not a usage error. */
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc == CL_ERR_USAGE ? CL_ERR_FORMAT : rc);
}
