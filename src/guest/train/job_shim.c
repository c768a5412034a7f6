/* SPDX-License-Identifier: Apache-2.0 */
/* The stand-in of job_shim.h: logistic regression only, until the mlp branch's cl_train_fit lands. */
#include "job_shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHIM_VERIFY_TOLERANCE 1e-4

void cl_train_params_default(cl_train_params *p)
{
    memset(p, 0, sizeof(*p));
    p->model = CL_TRAIN_MODEL_LOGREG;
    cl_train_options_default(&p->opts);
}

cl_status cl_train_params_from_strings(const char *const *names, const char *const *values, size_t n,
                                       cl_train_params *out)
{
    cl_train_params_default(out);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = 0;
        if (strcmp(names[i], "encrypted_data_key") == 0) continue;
        if (strcmp(names[i], "model") == 0) {
            CL_ENSURE(strcmp(values[i], "logreg") == 0, CL_ERR_USAGE,
                      "hyperparameter model: '%.32s' is not a model this trainer has (logreg)", values[i]);
        } else if (strcmp(names[i], "seed") == 0) {
            CL_GUARD(cl_parse_uint(values[i], 0, UINT32_MAX, "hyperparameter seed", &v));
            out->opts.seed = v;
        } else if (strcmp(names[i], "max_iter") == 0) {
            CL_GUARD(cl_parse_uint(values[i], 1, 1000, "hyperparameter max_iter", &v));
            out->opts.max_iter = (int)v;
        } else {
            CL_FAIL(CL_ERR_USAGE, "unknown hyperparameter '%.64s' (this trainer takes model, seed, max_iter)",
                    names[i]);
        }
    }
    return CL_OK;
}

cl_status cl_train_npy_parse(const void *bytes, size_t len, const char *what, cl_train_dataset *out)
{
    (void)bytes;
    (void)len;
    (void)out;
    CL_FAIL(CL_ERR_UNSUPPORTED, "%s: .npy tables are not read by this build yet; write CSV", what);
}

static CL_MUST_USE cl_status shim_metrics(cl_buf *j, const char *name, const cl_train_metrics *m, bool comma)
{
    return cl_buf_printf(j,
                         "\"%s\":{\"n\":%zu,\"accuracy\":%.6f,\"roc_auc\":%.6f,\"confusion_matrix\":{\"tp\":%zu,"
                         "\"tn\":%zu,\"fp\":%zu,\"fn\":%zu}}%s",
                         name, m->n, m->accuracy, m->auc, m->tp, m->tn, m->fp, m->fn, comma ? "," : "");
}

cl_status cl_train_fit(const cl_train_dataset *d, const cl_train_params *p, cl_train_progress_fn fn, void *arg,
                       cl_buf *onnx, cl_buf *metrics_json)
{
    cl_status rc = CL_OK;
    cl_train_logreg m = {0};
    cl_train_report r;
    char line[200];
    double diff = 0;
    CL_GUARD_GOTO(cl_train_run(d, &p->opts, &m, &r));
    (void)snprintf(line, sizeof(line), "logreg: %d Newton iterations, train loss %.6f, train accuracy %.4f",
                   m.iterations, m.loss, r.train.accuracy);
    if (fn != NULL) fn(arg, line);
    CL_GUARD_GOTO(cl_train_onnx_export(d, &m, &r, onnx));
    CL_GUARD_GOTO(cl_train_onnx_verify(onnx->data, onnx->len, d, &m, &diff));
    CL_ENSURE_GOTO(diff <= SHIM_VERIFY_TOLERANCE, CL_ERR_INTERNAL,
                   "the exported model's probabilities differ from the trainer's by %g", diff);
    CL_GUARD_GOTO(
        cl_buf_printf(metrics_json, "{\"model\":\"logreg\",\"rows\":%zu,\"features\":%zu,", d->n_rows, d->n_features));
    CL_GUARD_GOTO(shim_metrics(metrics_json, "train", &r.train, true));
    CL_GUARD_GOTO(shim_metrics(metrics_json, "test", &r.test, true));
    CL_GUARD_GOTO(cl_buf_printf(metrics_json,
                                "\"final_metrics\":{\"train:accuracy\":%.6f,\"test:accuracy\":%.6f,"
                                "\"test:roc_auc\":%.6f}}",
                                r.train.accuracy, r.test.accuracy, r.test.auc));
out:
    cl_train_logreg_free(&m);
    return rc;
}
