/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Compares the runtime with PyTorch on the reference models of tests/models/:
 *   infer_model_check DIR...        runs DIR/model.onnx on DIR/input.npy with the
 *                                   reference kernels and with oneDNN, and compares
 *                                   each with DIR/expected.npy (PyTorch's output)
 *   infer_model_check --npy GOT WANT  compares two .npy files (the CLI's output)
 * Tolerance: |got - want| <= 1e-4 * |want| + 1e-5 for every element.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cloister/buf.h"
#include "cloister/infer.h"

#include "infer_internal.h"

static CL_MUST_USE cl_status read_npy(const char *path, cl_infer_tensor *t)
{
    cl_buf b;
    cl_buf_init(&b, (size_t)1 << 30);
    cl_status rc = cl_buf_read_file(&b, path);
    if (rc == CL_OK) rc = cl_infer_npy_parse(b.data, b.len, t);
    if (rc != CL_OK) fprintf(stderr, "%s: %s\n", path, cl_error_message());
    cl_buf_free(&b);
    return rc;
}

static int compare(const char *what, const cl_infer_tensor *got, const cl_infer_tensor *want)
{
    bool shape = got->dtype == CL_INFER_FLOAT && want->dtype == CL_INFER_FLOAT && got->rank == want->rank;
    for (int i = 0; shape && i < got->rank; i++) shape = got->dims[i] == want->dims[i];
    if (!shape) {
        printf("FAIL %s: output type or shape differs from PyTorch's\n", what);
        return 1;
    }
    const float *g = got->data, *w = want->data;
    size_t n = cl_infer_tensor_count(want), bad = 0;
    double max_abs = 0, max_rel = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)w[i]);
        if (!(d <= 1e-4 * fabs((double)w[i]) + 1e-5)) bad++;
        if (d > max_abs || isnan(d)) max_abs = d;
        if (w[i] != 0 && d / fabs((double)w[i]) > max_rel) max_rel = d / fabs((double)w[i]);
    }
    printf("%s %s: %zu values, max abs error %.3g, max rel error %.3g, %zu outside tolerance\n", bad ? "FAIL" : "ok  ",
           what, n, max_abs, max_rel, bad);
    return bad != 0;
}

static int check_dir(const char *dir, cl_infer_backend backend)
{
    cl_infer_options opts = {.backend = backend};
    const char *bname = backend == CL_INFER_BACKEND_REFERENCE ? "reference" : "oneDNN";
    char what[4200];
    snprintf(what, sizeof(what), "%s [%s]", dir, bname);
    char path[4096];
    cl_buf mb;
    cl_infer_model *m = NULL;
    cl_infer_tensor in = {0}, want = {0}, out = {0};
    int fails = 1;
    cl_buf_init(&mb, (size_t)1 << 31);
    snprintf(path, sizeof(path), "%s/model.onnx", dir);
    if (cl_buf_read_file(&mb, path) != CL_OK || cl_infer_model_load(mb.data, mb.len, &opts, &m) != CL_OK) {
        printf("FAIL %s: %s\n", dir, cl_error_message());
        goto out;
    }
    snprintf(path, sizeof(path), "%s/input.npy", dir);
    if (read_npy(path, &in) != CL_OK) goto out;
    snprintf(path, sizeof(path), "%s/expected.npy", dir);
    if (read_npy(path, &want) != CL_OK) goto out;
    if (cl_infer_model_output_count(m) != 1 || cl_infer_run(m, &in, 1, &out, 1) != CL_OK) {
        printf("FAIL %s: %s\n", dir, cl_error_message());
        goto out;
    }
    fails = compare(what, &out, &want);
    /* Again under the memory plan made from the first run. */
    cl_infer_tensor_free(&out);
    if (cl_infer_run(m, &in, 1, &out, 1) != CL_OK) {
        printf("FAIL %s (second run): %s\n", dir, cl_error_message());
        fails = 1;
        goto out;
    }
    if (!m->plan.ready) {
        printf("FAIL %s: no memory plan after the first run\n", what);
        fails = 1;
    }
    fails |= compare(what, &out, &want);
    size_t folded = 0;
    for (size_t i = 0; i < m->n_nodes; i++) folded += m->nodes[i].skip;
    printf("     peak memory %.1f MiB (arena %.1f MiB for %.1f MiB of intermediates), %zu nodes run by oneDNN, "
           "%zu nodes folded into them\n",
           (double)cl_infer_model_peak_bytes(m) / 1048576.0, (double)m->plan.arena_bytes / 1048576.0,
           (double)m->plan.intermediates / 1048576.0, m->fast_runs, folded);
    if (backend == CL_INFER_BACKEND_ONEDNN && m->fast_runs == 0) {
        printf("FAIL %s: oneDNN ran no node\n", what);
        fails = 1;
    }
out:
    cl_infer_tensor_free(&in);
    cl_infer_tensor_free(&want);
    cl_infer_tensor_free(&out);
    cl_infer_model_free(m);
    cl_buf_free(&mb);
    return fails;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--npy") == 0) {
        cl_infer_tensor g = {0}, w = {0};
        int rc = 1;
        if (read_npy(argv[2], &g) == CL_OK && read_npy(argv[3], &w) == CL_OK) rc = compare(argv[2], &g, &w);
        cl_infer_tensor_free(&g);
        cl_infer_tensor_free(&w);
        return rc;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR... | --npy GOT WANT\n", argv[0]);
        return 2;
    }
    int fails = 0;
    for (int i = 1; i < argc; i++) {
        fails += check_dir(argv[i], CL_INFER_BACKEND_REFERENCE);
        if (cl_infer_onednn_available()) fails += check_dir(argv[i], CL_INFER_BACKEND_ONEDNN);
    }
    return fails != 0;
}
