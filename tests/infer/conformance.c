/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ONNX backend node conformance: runs every case of `onnx.backend.test`'s node
 * suite whose operators this runtime supports, compares each output with the
 * reference data ONNX generated (numpy), and prints pass/fail per op.
 *
 *   infer_conformance DATA_DIR/node XFAIL_FILE [reference|onednn]
 *
 * A case is "unsupported" when loading reports CL_ERR_UNSUPPORTED (an op,
 * attribute value or element type outside the runtime's documented set) or a
 * kernel does so at run time; it "fails" on any other error or a mismatch.
 * Per-op counts include every case whose ops are all implemented, so an
 * unsupported attribute value or element type of an implemented op shows up
 * in that op's "unsup" column.
 * XFAIL_FILE lists known failures with a reason; the run fails if an unlisted
 * case fails or a listed case passes (so the list cannot go stale).
 * Tolerance (float): |got - want| <= 1e-4 * |want| + 1e-5 (numpy.allclose
 * form, rtol 1e-4); integers and bools must match exactly.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/buf.h"
#include "cloister/infer.h"

#include "infer_internal.h"
#include "onnx.pb-c.h"

#define RTOL 1e-4
#define ATOL 1e-5
#define MAX_OPS 128
#define MAX_IO 32

typedef struct op_stat {
    char name[64];
    int pass, fail, unsupported;
} op_stat;

static op_stat stats[MAX_OPS];
static int n_stats;
static char *xfail_text;
static cl_infer_options options;

static op_stat *stat_for(const char *op)
{
    for (int i = 0; i < n_stats; i++)
        if (strcmp(stats[i].name, op) == 0) return &stats[i];
    if (n_stats == MAX_OPS) return &stats[MAX_OPS - 1];
    snprintf(stats[n_stats].name, sizeof(stats[n_stats].name), "%s", op);
    return &stats[n_stats++];
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the entries of dir starting with prefix. */
static int list_dir(const char *dir, const char *prefix, char ***out)
{
    DIR *d = opendir(dir);
    int n = 0, cap = 0;
    char **v = NULL;
    if (d == NULL) return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, (size_t)cap * sizeof(*v));
            if (nv == NULL) abort();
            v = nv;
        }
        v[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof(*v), cmp_str);
    *out = v;
    return n;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

static CL_MUST_USE cl_status read_tensor(const char *path, cl_infer_tensor *t)
{
    cl_buf b;
    cl_buf_init(&b, (size_t)1 << 30);
    cl_status rc = cl_buf_read_file(&b, path);
    if (rc == CL_OK) rc = cl_infer_tensor_parse(b.data, b.len, t);
    cl_buf_free(&b);
    return rc;
}

/* Compares got with want; writes a reason on mismatch. */
static bool tensors_match(const cl_infer_tensor *got, const cl_infer_tensor *want, char *why, size_t n)
{
    if (got->dtype != want->dtype) {
        snprintf(why, n, "type %s, expected %s", cl_infer_dtype_name(got->dtype), cl_infer_dtype_name(want->dtype));
        return false;
    }
    bool shape_ok = got->rank == want->rank;
    for (int i = 0; shape_ok && i < got->rank; i++) shape_ok = got->dims[i] == want->dims[i];
    if (!shape_ok) {
        char a[128], b[128];
        snprintf(why, n, "shape %s, expected %s", infer_shape_str(got, a, sizeof(a)),
                 infer_shape_str(want, b, sizeof(b)));
        return false;
    }
    size_t cnt = cl_infer_tensor_count(want);
    bool flt = want->dtype == CL_INFER_FLOAT || want->dtype == CL_INFER_DOUBLE;
    for (size_t i = 0; i < cnt; i++) {
        if (flt) {
            double g = infer_get_f64(got, i), w = infer_get_f64(want, i);
            if (isnan(g) && isnan(w)) continue;
            if (isinf(w) && g == w) continue;
            if (fabs(g - w) <= ATOL + RTOL * fabs(w)) continue;
            snprintf(why, n, "element %zu is %.9g, expected %.9g", i, g, w);
            return false;
        }
        if (infer_get_i64(got, i) != infer_get_i64(want, i)) {
            snprintf(why, n, "element %zu is %lld, expected %lld", i, (long long)infer_get_i64(got, i),
                     (long long)infer_get_i64(want, i));
            return false;
        }
    }
    return true;
}

typedef enum { CASE_PASS, CASE_FAIL, CASE_UNSUPPORTED } case_result;

/* Runs every data set of one case directory. */
static case_result run_case(const char *dir, cl_infer_model *m, char *why, size_t why_n)
{
    char **sets = NULL;
    int n_sets = list_dir(dir, "test_data_set_", &sets);
    case_result res = CASE_PASS;
    char path[4096];
    for (int s = 0; s < n_sets && res == CASE_PASS; s++) {
        cl_infer_tensor ins[MAX_IO] = {0}, wants[MAX_IO] = {0}, outs[MAX_IO] = {0};
        size_t n_in = cl_infer_model_input_count(m), n_out = cl_infer_model_output_count(m);
        if (n_in > MAX_IO || n_out > MAX_IO) {
            snprintf(why, why_n, "too many inputs/outputs");
            res = CASE_FAIL;
            break;
        }
        for (size_t i = 0; i < n_in && res == CASE_PASS; i++) {
            snprintf(path, sizeof(path), "%s/%s/input_%zu.pb", dir, sets[s], i);
            if (read_tensor(path, &ins[i]) != CL_OK) {
                snprintf(why, why_n, "reading %s: %s", path, cl_error_message());
                res = cl_error_last()->code == CL_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
            }
        }
        for (size_t i = 0; i < n_out && res == CASE_PASS; i++) {
            snprintf(path, sizeof(path), "%s/%s/output_%zu.pb", dir, sets[s], i);
            if (read_tensor(path, &wants[i]) != CL_OK) {
                snprintf(why, why_n, "reading %s: %s", path, cl_error_message());
                res = cl_error_last()->code == CL_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
            }
        }
        /* Twice: the first run records the sizes the memory plan is made
         * from; the second runs with intermediates in the plan's arena. */
        for (int rep = 0; rep < 2 && res == CASE_PASS; rep++) {
            for (size_t i = 0; i < MAX_IO; i++) cl_infer_tensor_free(&outs[i]);
            cl_status rc = cl_infer_run(m, ins, n_in, outs, n_out);
            if (rc != CL_OK) {
                snprintf(why, why_n, "%s", cl_error_message());
                res = rc == CL_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
            }
            for (size_t i = 0; i < n_out && res == CASE_PASS; i++) {
                char w[256];
                if (!tensors_match(&outs[i], &wants[i], w, sizeof(w))) {
                    snprintf(why, why_n, "output %zu (%s)%s: %s", i, cl_infer_model_output_name(m, i),
                             rep ? " under the memory plan" : "", w);
                    res = CASE_FAIL;
                }
            }
        }
        for (size_t i = 0; i < MAX_IO; i++) {
            cl_infer_tensor_free(&ins[i]);
            cl_infer_tensor_free(&wants[i]);
            cl_infer_tensor_free(&outs[i]);
        }
    }
    if (n_sets == 0) {
        snprintf(why, why_n, "no test_data_set_* directory");
        res = CASE_FAIL;
    }
    free_list(sets, n_sets);
    return res;
}

static bool xfail_listed(const char *name)
{
    if (xfail_text == NULL) return false;
    size_t n = strlen(name);
    for (const char *p = xfail_text; (p = strstr(p, name)) != NULL; p += n) {
        bool start = p == xfail_text || p[-1] == '\n';
        bool end = p[n] == '\0' || p[n] == ' ' || p[n] == '\t' || p[n] == '\n';
        if (start && end) return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s NODE_TEST_DIR [XFAIL_FILE]\n", argv[0]);
        return 2;
    }
    cl_buf xf;
    cl_buf_init(&xf, 1 << 20);
    if (argc > 2) {
        if (cl_buf_read_file(&xf, argv[2]) != CL_OK) {
            fprintf(stderr, "cannot read %s: %s\n", argv[2], cl_error_message());
            return 1;
        }
        xfail_text = CL_UNCONST(cl_buf_cstr(&xf));
    }
    if (argc > 3) {
        if (strcmp(argv[3], "reference") == 0)
            options.backend = CL_INFER_BACKEND_REFERENCE;
        else if (strcmp(argv[3], "onednn") == 0)
            options.backend = CL_INFER_BACKEND_ONEDNN;
        else {
            fprintf(stderr, "unknown backend %s\n", argv[3]);
            return 2;
        }
    }
    char **cases = NULL;
    int n_cases = list_dir(argv[1], "test_", &cases);
    size_t fast_runs = 0;
    if (n_cases <= 0) {
        fprintf(stderr, "no test cases in %s\n", argv[1]);
        return 1;
    }
    int pass = 0, fail = 0, unsup = 0, unsup_known_ops = 0, xfailed = 0, unexpected = 0, xpassed = 0;
    char path[4096], why[1200];
    for (int i = 0; i < n_cases; i++) {
        snprintf(path, sizeof(path), "%s/%s", argv[1], cases[i]);
        cl_buf mb;
        cl_buf_init(&mb, (size_t)1 << 30);
        cl_infer_model *m = NULL;
        case_result res;
        why[0] = '\0';
        char mpath[4200];
        snprintf(mpath, sizeof(mpath), "%s/model.onnx", path);
        cl_status rc = cl_buf_read_file(&mb, mpath);
        if (rc == CL_OK) rc = cl_infer_model_load(mb.data, mb.len, &options, &m);
        if (rc != CL_OK) {
            snprintf(why, sizeof(why), "%s", cl_error_message());
            res = rc == CL_ERR_UNSUPPORTED ? CASE_UNSUPPORTED : CASE_FAIL;
        } else {
            res = run_case(path, m, why, sizeof(why));
        }
        /* Attribute the case to every distinct op it uses (node tests use one),
         * when all of them are implemented. The op types are read with
         * protobuf-c directly, so cases the loader refused count too. */
        char ops[16][64];
        int n_ops = 0;
        bool all_known = true;
        Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, mb.len, mb.data);
        for (size_t k = 0; mp != NULL && mp->graph != NULL && k < mp->graph->n_node; k++) {
            const char *op = mp->graph->node[k]->op_type ? mp->graph->node[k]->op_type : "";
            bool seen = false;
            all_known &= infer_op_find(op) != NULL;
            for (int j = 0; j < n_ops; j++) seen |= strcmp(ops[j], op) == 0;
            if (!seen && n_ops < 16) snprintf(ops[n_ops++], sizeof(ops[0]), "%s", op);
        }
        if (mp != NULL) onnx__model_proto__free_unpacked(mp, NULL);
        if (!all_known) n_ops = 0;
        cl_buf_free(&mb);
        for (int j = 0; j < n_ops; j++) {
            op_stat *st = stat_for(ops[j]);
            if (res == CASE_PASS)
                st->pass++;
            else if (res == CASE_FAIL)
                st->fail++;
            else
                st->unsupported++;
        }
        bool listed = xfail_listed(cases[i]);
        if (res == CASE_PASS) {
            pass++;
            if (listed) {
                xpassed++;
                printf("XPASS %s (listed as a known failure: remove it from the list)\n", cases[i]);
            }
        } else if (res == CASE_FAIL) {
            fail++;
            if (listed)
                xfailed++;
            else
                unexpected++;
            printf("%s %s: %s\n", listed ? "XFAIL" : "FAIL ", cases[i], why);
        } else {
            unsup++;
            unsup_known_ops += n_ops > 0;
            if (getenv("CONFORMANCE_VERBOSE")) printf("UNSUP %s: %s\n", cases[i], why);
        }
        if (m != NULL) fast_runs += m->fast_runs;
        cl_infer_model_free(m);
    }
    printf("\nbackend: %s (%zu nodes run by oneDNN)\n",
           options.backend == CL_INFER_BACKEND_REFERENCE ? "reference kernels" : "oneDNN where it applies", fast_runs);
    if (options.backend == CL_INFER_BACKEND_ONEDNN && fast_runs == 0) {
        printf("FAIL: the oneDNN backend ran no node\n");
        unexpected++;
    }
    printf("\nper-op results (cases using a supported op; unsupported = an attribute value or type outside the "
           "runtime's set):\n");
    printf("%-22s %5s %5s %5s\n", "op", "pass", "fail", "unsup");
    int ops_pass = 0, ops_total = 0;
    for (int i = 0; i < n_stats; i++) {
        if (infer_op_find(stats[i].name) == NULL) continue;
        printf("%-22s %5d %5d %5d\n", stats[i].name, stats[i].pass, stats[i].fail, stats[i].unsupported);
        ops_total++;
        ops_pass += stats[i].fail == 0 && stats[i].pass > 0;
    }
    int run = pass + fail;
    printf("\ncases: %d in the suite; %d run (%d pass, %d fail: %d known, %d unexpected), %d unsupported (%d of "
           "them use only implemented ops), %d passed although listed as known failures\n",
           n_cases, run, pass, fail, xfailed, unexpected, unsup, unsup_known_ops, xpassed);
    printf("pass rate over the cases run: %.1f%%; supported ops with every case passing: %d of %d\n",
           run ? 100.0 * pass / run : 0.0, ops_pass, ops_total);
    free_list(cases, n_cases);
    cl_buf_free(&xf);
    return (unexpected == 0 && xpassed == 0) ? 0 : 1;
}
