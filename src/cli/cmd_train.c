/* SPDX-License-Identifier: Apache-2.0 */
/* cloister train-local: train the breast-cancer classifier (logistic regression or a small MLP)
 * from a CSV or .npy table and write it as ONNX, with its metrics document. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/buf.h"
#include "cloister/fs.h"
#include "cloister/stream.h"
#include "cloister/train.h"

#include "cli.h"

#define TRAIN_CLI_MAX_DATA ((size_t)256 << 20)
/* Hyperparameter options, at most one of each. */
#define TRAIN_CLI_MAX_HP 16

static const char train_usage[] =
    "Usage: cloister train-local DATA.csv|DATA.npy -o MODEL.onnx [--model logreg|mlp] [OPTIONS]\n"
    "\n"
    "Trains a binary classifier on DATA and writes it as an ONNX model that\n"
    "'cloister infer-local' and the enclave runtime run: logistic regression (the\n"
    "default) or a small multilayer perceptron. DATA.csv has a header row, a\n"
    "'diagnosis' column (M = malignant, B = benign) and numeric feature columns, like\n"
    "data/wdbc/wdbc.csv; DATA.npy (numpy.save, allow_pickle=False) is a 2-D float64\n"
    "or float32 array whose last column is the label, 0 = benign or 1 = malignant.\n"
    "A stratified share of each class is held out; standardisation statistics come\n"
    "from the training rows only. Held-out accuracy and ROC AUC are printed and\n"
    "recorded in the model's metadata. Same data and options, same model, byte for\n"
    "byte. See docs/training.md.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE          the ONNX model to write (required; no overwrite without --force)\n"
    "      --metrics FILE         also write the metrics document (metrics.json) to FILE\n"
    "      --model M              logreg (default) or mlp\n"
    "  -s, --seed N               seed of the split and the MLP's weights and batches (default 42)\n"
    "      --test-fraction F      share of each class held out, 0 < F < 1 (default 0.2)\n"
    "  -l, --l2 L                 L2 penalty on the weights, 0 <= L <= 1e12 (default 1)\n"
    "      --max-iter N           logreg: Newton iterations, 1-1000 (default 100)\n"
    "      --hidden-layers W,...  mlp: 1-4 hidden layers of 1-1024 units (default 16,8)\n"
    "      --activation A         mlp: relu (default), tanh or sigmoid\n"
    "      --epochs N             mlp: passes over the training rows, 1-10000 (default 100)\n"
    "      --learning-rate X      mlp: Adam's step size, 0 < X <= 10 (default 0.01)\n"
    "      --batch-size N         mlp: rows per step, 1 to the training rows (default 32)\n"
    "  -f, --force                overwrite FILE (and the metrics file)\n"
    "  -h, --help                 this help\n"
    "\n"
    "The MLP's work is bounded: at most 1048576 parameters and\n"
    "epochs x training rows x parameters <= 2e10.\n";

static void train_print_line(void *arg, const char *line)
{
    (void)arg;
    printf("%s\n", line);
}

static double train_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static CL_MUST_USE cl_status train_write(const char *path, bool force, const cl_buf *b)
{
    cl_status rc = CL_OK;
    cl_outfile of = {.fd = -1};
    CL_GUARD_CTX_GOTO(cl_outfile_open(&of, path, force, 0644), "writing %s", path);
    cl_stream s = cl_stream_fd(of.fd, path);
    CL_GUARD_GOTO(s.write(&s, b->data, b->len));
    CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    return rc;
}

static CL_MUST_USE cl_status train_local(const char *data_path, const char *out_path, const char *metrics_path,
                                         bool force, const cl_train_params *p)
{
    cl_status rc = CL_OK;
    cl_buf raw, onnx, metrics, hex;
    cl_train_dataset d = {0};
    /* The table is patient data, the model the owner's: locked, wiped memory. */
    cl_buf_init_secret(&raw, TRAIN_CLI_MAX_DATA);
    cl_buf_init_secret(&onnx, (size_t)64 << 20);
    cl_buf_init(&metrics, (size_t)1 << 20);
    cl_buf_init(&hex, 65);
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&raw, data_path), "reading training data %s", data_path);
    /* By content, as the training job decides (docs/training.md, "Data"). */
    cl_reader head = cl_reader_make(raw.data, raw.len);
    bool npy = cl_reader_starts_with(&head, "\x93NUMPY", 6);
    /* A pickle starts with PROTO (0x80) and its protocol, 2 to 5 (Python's pickletools). */
    uint8_t op = 0, proto = 0;
    bool pickle = cl_reader_u8(&head, &op) == CL_OK && cl_reader_u8(&head, &proto) == CL_OK && op == 0x80 &&
                  proto >= 2 && proto <= 5;
    CL_ENSURE_GOTO(!pickle, CL_ERR_UNSUPPORTED,
                   "%s: pickled Python objects are refused: unpickling runs code; write CSV or numpy.save(..., "
                   "allow_pickle=False)",
                   data_path);
    if (npy)
        CL_GUARD_GOTO(cl_train_npy_parse(raw.data, raw.len, data_path, &d));
    else
        CL_GUARD_GOTO(cl_train_csv_parse(raw.data, raw.len, data_path, &d));
    cl_buf_free(&raw);
    CL_GUARD_GOTO(cl_buf_append_hex(&hex, d.sha256, sizeof(d.sha256)));
    printf("input: %s (%s), sha256 %s\n", data_path, npy ? ".npy" : "CSV", cl_buf_cstr(&hex));
    double t0 = train_now_ms();
    CL_GUARD_GOTO(cl_train_fit(&d, p, train_print_line, NULL, &onnx, &metrics));
    printf("time: %.0f ms to split, fit, measure, export and verify\n", train_now_ms() - t0);
    CL_GUARD_GOTO(train_write(out_path, force, &onnx));
    printf("model: %s (%zu bytes, ONNX opset 13)\n", out_path, onnx.len);
    if (metrics_path != NULL) {
        CL_GUARD_GOTO(cl_buf_append_u8(&metrics, '\n'));
        CL_GUARD_GOTO(train_write(metrics_path, force, &metrics));
        printf("metrics: %s\n", metrics_path);
    }
out:
    cl_train_dataset_free(&d);
    cl_buf_free(&raw);
    cl_buf_free(&onnx);
    cl_buf_free(&metrics);
    cl_buf_free(&hex);
    return rc;
}

int cmd_train_local(int argc, char **argv)
{
    enum { OPT_METRICS = 256, OPT_HP };
    /* Every hyperparameter option maps to cl_train_params_from_options by its name. */
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"metrics", required_argument, NULL, OPT_METRICS},
        {"seed", required_argument, NULL, 's'},
        {"l2", required_argument, NULL, 'l'},
        {"model", required_argument, NULL, OPT_HP},
        {"test-fraction", required_argument, NULL, OPT_HP},
        {"max-iter", required_argument, NULL, OPT_HP},
        {"hidden-layers", required_argument, NULL, OPT_HP},
        {"activation", required_argument, NULL, OPT_HP},
        {"epochs", required_argument, NULL, OPT_HP},
        {"learning-rate", required_argument, NULL, OPT_HP},
        {"batch-size", required_argument, NULL, OPT_HP},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *names[TRAIN_CLI_MAX_HP], *values[TRAIN_CLI_MAX_HP];
    size_t n = 0;
    const char *out = NULL, *metrics = NULL;
    bool force = false;
    int c, idx = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:s:l:fh", opts, &idx)) != -1) {
        const char *hp = NULL;
        switch (c) {
        case 'o': out = optarg; break;
        case OPT_METRICS: metrics = optarg; break;
        case 's': hp = "seed"; break;
        case 'l': hp = "l2"; break;
        case OPT_HP: hp = opts[idx].name; break;
        case 'f': force = true; break;
        case 'h': fputs(train_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("train-local", "unknown option");
        }
        if (hp == NULL) continue;
        if (n == TRAIN_CLI_MAX_HP) return cli_usage_error("train-local", "too many options");
        names[n] = hp;
        values[n++] = optarg;
    }
    if (argc - optind != 1) return cli_usage_error("train-local", "expected one DATA.csv or DATA.npy");
    if (out == NULL) return cli_usage_error("train-local", "-o MODEL.onnx is required");
    cl_train_params p;
    if (cl_train_params_from_options(names, values, n, &p) != CL_OK) return cli_report(CL_ERR_USAGE);
    cl_status rc = train_local(argv[optind], out, metrics, force, &p);
    /* The command line was well formed: data the trainer cannot use is a failed operation (exit 1). */
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc == CL_ERR_USAGE ? CL_ERR_FORMAT : rc);
}
