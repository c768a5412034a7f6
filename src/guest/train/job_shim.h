/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A stand-in for the training library's job entry point (issue 19's contract, owned by the mlp
 * branch: cl_train_params, cl_train_params_from_strings, cl_train_fit in cloister/train.h) over
 * today's logistic regression, so that cloister-train is built and tested before that branch
 * lands. It goes when the branch is merged: the job then includes cloister/train.h only.
 */
#ifndef CLOISTER_TRAIN_JOB_SHIM_H
#define CLOISTER_TRAIN_JOB_SHIM_H

#include <stddef.h>

#include "cloister/buf.h"
#include "cloister/error.h"
#include "cloister/train.h"

typedef enum cl_train_model_kind { CL_TRAIN_MODEL_LOGREG = 0, CL_TRAIN_MODEL_MLP = 1 } cl_train_model_kind;

typedef struct cl_train_params {
    cl_train_model_kind model;
    cl_train_options opts;
} cl_train_params;

void cl_train_params_default(cl_train_params *p);
CL_MUST_USE cl_status cl_train_params_from_strings(const char *const *names, const char *const *values, size_t n,
                                                   cl_train_params *out);
CL_MUST_USE cl_status cl_train_npy_parse(const void *bytes, size_t len, const char *what, cl_train_dataset *out);
typedef void (*cl_train_progress_fn)(void *arg, const char *line);
CL_MUST_USE cl_status cl_train_fit(const cl_train_dataset *d, const cl_train_params *p, cl_train_progress_fn fn,
                                   void *arg, cl_buf *onnx, cl_buf *metrics_json);

#endif
