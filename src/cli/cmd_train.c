/* SPDX-License-Identifier: Apache-2.0 */
/* cloister train-local: train the breast-cancer classifier from a CSV table and write it as ONNX. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/buf.h"
#include "cloister/fs.h"
#include "cloister/stream.h"
#include "cloister/train.h"

#include "cli.h"

#define TRAIN_CLI_MAX_DATA ((size_t)256 << 20)
/* The runtime computes in float32, the trainer in double: they agree to
 * rounding (about 1e-7); anything near this bound is a bug in the export. */
#define TRAIN_CLI_VERIFY_TOLERANCE 1e-4

static const char train_usage[] =
    "Usage: cloister train-local DATA.csv -o MODEL.onnx [--seed N] [--test-fraction F] [--l2 L] [--force]\n"
    "\n"
    "Trains a logistic-regression classifier on DATA.csv and writes it as an ONNX\n"
    "model that 'cloister infer-local' and the enclave runtime run. DATA.csv has a\n"
    "header row, a 'diagnosis' column (M = malignant, B = benign) and numeric feature\n"
    "columns, like data/wdbc/wdbc.csv. A stratified share of each class is held out;\n"
    "standardisation statistics come from the training rows only. Held-out accuracy\n"
    "and ROC AUC are printed and recorded in the model's metadata. Same data and\n"
    "options, same model, byte for byte. See docs/training.md.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE        the ONNX model to write (required; no overwrite without --force)\n"
    "  -s, --seed N             seed of the train/test split (default 42)\n"
    "      --test-fraction F    share of each class held out, 0 < F < 1 (default 0.2)\n"
    "  -l, --l2 L               L2 penalty on the weights, L >= 0 (default 1)\n"
    "  -f, --force              overwrite FILE\n"
    "  -h, --help               this help\n";

static void train_print_metrics(const char *name, const cl_train_metrics *m)
{
    printf("%s: accuracy %.4f  roc_auc %.4f  (n=%zu, %zu malignant; tp %zu tn %zu fp %zu fn %zu)\n", name, m->accuracy,
           m->auc, m->n, m->n_positive, m->tp, m->tn, m->fp, m->fn);
}

static CL_MUST_USE cl_status train_local(const char *data_path, const char *out_path, bool force,
                                         const cl_train_options *o)
{
    cl_status rc = CL_OK;
    cl_buf raw, onnx, hex;
    cl_train_dataset d = {0};
    cl_train_logreg m = {0};
    cl_train_report r;
    cl_outfile of = {.fd = -1};
    /* The table is patient data: locked, wiped memory. */
    cl_buf_init_secret(&raw, TRAIN_CLI_MAX_DATA);
    cl_buf_init(&onnx, (size_t)64 << 20);
    cl_buf_init(&hex, 65);
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&raw, data_path), "reading training data %s", data_path);
    CL_GUARD_GOTO(cl_train_csv_parse(raw.data, raw.len, data_path, &d));
    cl_buf_free(&raw);
    CL_GUARD_GOTO(cl_buf_append_hex(&hex, d.sha256, sizeof(d.sha256)));
    printf("data: %s: %zu rows (%zu malignant, %zu benign), %zu features, sha256 %s\n", data_path, d.n_rows,
           d.n_positive, d.n_rows - d.n_positive, d.n_features, cl_buf_cstr(&hex));
    CL_GUARD_GOTO(cl_train_run(&d, o, &m, &r));
    printf("split: %zu train / %zu test (stratified, seed %" PRIu64 ", test fraction %g)\n", r.train.n, r.test.n,
           o->seed, o->test_fraction);
    printf("fit: logistic regression, l2 %g, Newton's method, %d iterations, train loss %.6f\n", o->l2, m.iterations,
           m.loss);
    train_print_metrics("train", &r.train);
    train_print_metrics("test", &r.test);
    CL_GUARD_GOTO(cl_train_onnx_export(&d, &m, &r, &onnx));
    double diff;
    CL_GUARD_GOTO(cl_train_onnx_verify(onnx.data, onnx.len, &d, &m, &diff));
    CL_ENSURE_GOTO(diff <= TRAIN_CLI_VERIFY_TOLERANCE, CL_ERR_INTERNAL,
                   "the exported model's probabilities differ from the trainer's by %g (over %g); not writing it", diff,
                   TRAIN_CLI_VERIFY_TOLERANCE);
    CL_GUARD_CTX_GOTO(cl_outfile_open(&of, out_path, force, 0644), "writing %s", out_path);
    cl_stream s = cl_stream_fd(of.fd, out_path);
    CL_GUARD_GOTO(s.write(&s, onnx.data, onnx.len));
    CL_GUARD_GOTO(cl_outfile_commit(&of));
    printf("model: %s (%zu bytes, ONNX opset 13; the runtime reproduces the trainer's probabilities on all %zu rows "
           "to %.1e)\n",
           out_path, onnx.len, d.n_rows, diff);
out:
    cl_outfile_abort(&of);
    cl_train_logreg_free(&m);
    cl_train_dataset_free(&d);
    cl_buf_free(&raw);
    cl_buf_free(&onnx);
    cl_buf_free(&hex);
    return rc;
}

static bool train_parse_double(const char *s, double lo, double hi, bool open_lo, bool open_hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !isfinite(v)) return false;
    if (open_lo ? v <= lo : v < lo) return false;
    if (open_hi ? v >= hi : v > hi) return false;
    *out = v;
    return true;
}

int cmd_train_local(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, 's'},
        {"test-fraction", required_argument, NULL, 't'},
        {"l2", required_argument, NULL, 'l'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    cl_train_options o;
    cl_train_options_default(&o);
    const char *out = NULL;
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:s:l:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 's': {
            uint64_t v = 0;
            int ec = cli_uint_option("train-local", "--seed", optarg, 0, UINT64_MAX, &v);
            if (ec != CLI_EXIT_OK) return ec;
            o.seed = v;
            break;
        }
        case 't':
            if (!train_parse_double(optarg, 0.0, 1.0, true, true, &o.test_fraction))
                return cli_usage_error("train-local", "--test-fraction wants a number between 0 and 1, not '%s'",
                                       optarg);
            break;
        case 'l':
            if (!train_parse_double(optarg, 0.0, 1e12, false, false, &o.l2))
                return cli_usage_error("train-local", "--l2 wants a number >= 0, not '%s'", optarg);
            break;
        case 'f': force = true; break;
        case 'h': fputs(train_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("train-local", "unknown option");
        }
    }
    if (argc - optind != 1) return cli_usage_error("train-local", "expected one DATA.csv");
    if (out == NULL) return cli_usage_error("train-local", "-o MODEL.onnx is required");
    cl_status rc = train_local(argv[optind], out, force, &o);
    /* The command line was well formed: data the trainer cannot use is a failed operation (exit 1). */
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc == CL_ERR_USAGE ? CL_ERR_FORMAT : rc);
}
