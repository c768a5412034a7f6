/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/e2e: warm per-request latency and throughput of one request kind, in one process
 * (bench/e2e.py runs it for every path and model in one run, next to each other):
 *
 *   e2e local    --model M.onnx --input IN [--threads N]
 *   e2e channel  --socket S --root ROOT.pem --pcr0 HEX --input IN
 *   e2e envelope --socket S --sealed-dir DIR        (DIR/0.sealed ... one per request;
 *                                                    KMS credentials from the environment)
 *   common: [--requests N] [--clients C] [--warmup W]
 *
 * local    cl_infer_service_run on the plaintext model and input: the worker's own work
 *          per request, with no transport and no crypto.
 * channel  one RA-TLS connection per client, opened before timing (its handshake is
 *          reported apart), then N requests over it: what a warm interactive client pays.
 * envelope per request: send a sealed input, the worker's KMS Decrypt and GenerateDataKey
 *          (with Recipient), inference, the client's binding check and KMS Decrypt to
 *          unseal. Each request needs its own sealed input (the worker refuses a replay).
 *
 * Prints one JSON line: mode, requests, clients, median and p99 latency (ms), requests per
 * second over the timed wall clock. Nothing here fails on a time.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/attestation.h"
#include "cloister/crypto.h"
#include "cloister/infer.h"
#include "cloister/infer_client.h"
#include "cloister/ratls.h"

#define E2E_MAX_REQUESTS 100000
#define E2E_MAX_CLIENTS 16

typedef enum { E2E_LOCAL, E2E_CHANNEL, E2E_ENVELOPE } e2e_mode;

typedef struct e2e {
    e2e_mode mode;
    const char *socket, *root, *pcr0, *model, *input, *sealed_dir;
    int requests, clients, warmup, threads;
    cl_buf in;
    cl_infer_service *svc;
    cl_attest_roots roots;
    cl_attest_pcr pcr;
    double *lat;        /* ms, one slot per timed request */
    int next_sealed;    /* envelope: next DIR/<n>.sealed to send */
    pthread_mutex_t mu; /* next_sealed */
    double handshake_ms;
} e2e;

typedef struct e2e_client {
    e2e *b;
    int index;
    cl_status rc;
    char err[512];
} e2e_client;

static double e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int e2e_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static CL_MUST_USE cl_status e2e_next_sealed(e2e *b, cl_buf *out)
{
    (void)pthread_mutex_lock(&b->mu);
    int n = b->next_sealed++;
    (void)pthread_mutex_unlock(&b->mu);
    char path[4096];
    (void)snprintf(path, sizeof(path), "%s/%d.sealed", b->sealed_dir, n);
    out->len = 0;
    return cl_buf_read_file(out, path);
}

/* One request of the benchmark's kind; `ch` is the client's open channel (channel mode). */
static CL_MUST_USE cl_status e2e_one(e2e *b, cl_infer_channel *ch, cl_buf *sealed, cl_buf *out)
{
    out->len = 0;
    switch (b->mode) {
    case E2E_LOCAL: return cl_infer_service_run(b->svc, b->in.data, b->in.len, out);
    case E2E_CHANNEL: return cl_infer_channel_request(ch, b->in.data, b->in.len, out);
    case E2E_ENVELOPE: {
        CL_GUARD(e2e_next_sealed(b, sealed));
        cl_infer_envelope_opts o = {0};
        return cl_infer_client_envelope(b->socket, sealed->data, sealed->len, &o, out);
    }
    }
    return CL_ERR_INTERNAL;
}

static void *e2e_client_main(void *arg)
{
    e2e_client *c = arg;
    e2e *b = c->b;
    cl_status rc = CL_OK;
    cl_ratls_client client;
    bool client_ready = false;
    cl_infer_channel ch;
    bool ch_open = false;
    cl_buf out, sealed;
    cl_buf_init_secret(&out, (size_t)64 << 20);
    cl_buf_init(&sealed, (size_t)64 << 20);
    if (b->mode == E2E_CHANNEL) {
        cl_ratls_client_config cfg = {.roots = &b->roots, .pcrs = &b->pcr, .pcr_count = 1};
        CL_GUARD_GOTO(cl_ratls_client_init(&client, &cfg));
        client_ready = true;
        double t0 = e2e_now_ms();
        CL_GUARD_GOTO(cl_infer_channel_open(&ch, b->socket, &client, NULL));
        ch_open = true;
        if (c->index == 0) b->handshake_ms = e2e_now_ms() - t0;
    }
    int per = b->requests / b->clients;
    for (int i = 0; i < b->warmup; i++) CL_GUARD_GOTO(e2e_one(b, &ch, &sealed, &out));
    for (int i = 0; i < per; i++) {
        double t0 = e2e_now_ms();
        CL_GUARD_GOTO(e2e_one(b, &ch, &sealed, &out));
        b->lat[c->index * per + i] = e2e_now_ms() - t0;
    }
out:
    if (rc != CL_OK) (void)snprintf(c->err, sizeof(c->err), "%s", cl_error_message());
    c->rc = rc;
    if (ch_open) cl_infer_channel_close(&ch);
    if (client_ready) cl_ratls_client_free(&client);
    cl_buf_free(&out);
    cl_buf_free(&sealed);
    return NULL;
}

/* A count from the command line: decimal, 0 to 1,000,000, nothing after it. */
static bool e2e_int(const char *s, int *out)
{
    uint64_t v = 0;
    if (cl_parse_uint(s, 0, 1000000, "count", &v) != CL_OK) return false;
    *out = (int)v;
    return true;
}

static int e2e_usage(void)
{
    fputs("usage: e2e local --model M.onnx --input IN [--threads N]\n"
          "       e2e channel --socket S --root ROOT.pem --pcr0 HEX --input IN\n"
          "       e2e envelope --socket S --sealed-dir DIR\n"
          "       common: [--requests N] [--clients C] [--warmup W]\n",
          stderr);
    return 2;
}

static CL_MUST_USE cl_status e2e_prepare(e2e *b)
{
    cl_status rc = CL_OK;
    cl_buf model;
    cl_buf_init_secret(&model, (size_t)1 << 30);
    if (b->input != NULL) CL_GUARD_CTX_GOTO(cl_buf_read_file(&b->in, b->input), "reading %s", b->input);
    if (b->mode == E2E_LOCAL) {
        CL_GUARD_CTX_GOTO(cl_buf_read_file(&model, b->model), "reading %s", b->model);
        cl_infer_options o = {.threads = b->threads};
        CL_GUARD_GOTO(cl_infer_service_open(model.data, model.len, &o, &b->svc));
    } else if (b->mode == E2E_CHANNEL) {
        CL_GUARD_CTX_GOTO(cl_attest_roots_add_file(&b->roots, b->root), "attestation root %s", b->root);
        cl_buf v;
        cl_buf_init(&v, CL_ATTEST_PCR_LEN);
        rc = cl_hex_decode(b->pcr0, strlen(b->pcr0), &v);
        if (rc == CL_OK && v.len != CL_ATTEST_PCR_LEN) rc = CL_ERR_USAGE;
        if (rc == CL_OK) memcpy(b->pcr.value, v.data, CL_ATTEST_PCR_LEN);
        cl_buf_free(&v);
        CL_ENSURE_GOTO(rc == CL_OK, CL_ERR_USAGE, "--pcr0 wants 96 hex digits");
        b->pcr.index = 0;
    }
out:
    cl_buf_free(&model);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) return e2e_usage();
    e2e b;
    memset(&b, 0, sizeof(b));
    b.requests = 50;
    b.clients = 1;
    b.warmup = 2;
    if (strcmp(argv[1], "local") == 0)
        b.mode = E2E_LOCAL;
    else if (strcmp(argv[1], "channel") == 0)
        b.mode = E2E_CHANNEL;
    else if (strcmp(argv[1], "envelope") == 0)
        b.mode = E2E_ENVELOPE;
    else
        return e2e_usage();
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"root", required_argument, NULL, 'r'},
        {"pcr0", required_argument, NULL, 'p'},
        {"model", required_argument, NULL, 'm'},
        {"input", required_argument, NULL, 'i'},
        {"sealed-dir", required_argument, NULL, 'd'},
        {"requests", required_argument, NULL, 'n'},
        {"clients", required_argument, NULL, 'c'},
        {"warmup", required_argument, NULL, 'w'},
        {"threads", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int o;
    bool ok = true;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': b.socket = optarg; break;
        case 'r': b.root = optarg; break;
        case 'p': b.pcr0 = optarg; break;
        case 'm': b.model = optarg; break;
        case 'i': b.input = optarg; break;
        case 'd': b.sealed_dir = optarg; break;
        case 'n': ok = e2e_int(optarg, &b.requests); break;
        case 'c': ok = e2e_int(optarg, &b.clients); break;
        case 'w': ok = e2e_int(optarg, &b.warmup); break;
        case 't': ok = e2e_int(optarg, &b.threads); break;
        default: return e2e_usage();
        }
        if (!ok) return e2e_usage();
    }
    if (b.requests < 1 || b.requests > E2E_MAX_REQUESTS || b.clients < 1 || b.clients > E2E_MAX_CLIENTS ||
        b.warmup < 0 || (b.mode == E2E_LOCAL && (b.model == NULL || b.input == NULL)) ||
        (b.mode == E2E_CHANNEL && (b.socket == NULL || b.root == NULL || b.pcr0 == NULL || b.input == NULL)) ||
        (b.mode == E2E_ENVELOPE && (b.socket == NULL || b.sealed_dir == NULL)))
        return e2e_usage();
    b.requests -= b.requests % b.clients;
    cl_buf_init_secret(&b.in, (size_t)64 << 20);
    cl_attest_roots_init(&b.roots);
    (void)pthread_mutex_init(&b.mu, NULL);
    int exit_code = 1;
    e2e_client cl[E2E_MAX_CLIENTS];
    pthread_t th[E2E_MAX_CLIENTS];
    b.lat = calloc((size_t)b.requests, sizeof(double));
    if (b.lat == NULL || e2e_prepare(&b) != CL_OK) {
        fprintf(stderr, "e2e: %s\n", b.lat == NULL ? "out of memory" : cl_error_message());
        goto out;
    }
    double t0 = e2e_now_ms();
    for (int i = 0; i < b.clients; i++) {
        cl[i] = (e2e_client){.b = &b, .index = i};
        if (pthread_create(&th[i], NULL, e2e_client_main, &cl[i]) != 0) {
            fprintf(stderr, "e2e: cannot start client thread %d\n", i);
            b.clients = i;
            goto join;
        }
    }
    exit_code = 0;
join:
    for (int i = 0; i < b.clients; i++) {
        (void)pthread_join(th[i], NULL);
        if (cl[i].rc != CL_OK) {
            fprintf(stderr, "e2e: client %d: %s\n", i, cl[i].err);
            exit_code = 1;
        }
    }
    if (exit_code == 0) {
        /* Wall clock includes each client's warm-up and (channel) handshake, so requests per
         * second is conservative; latencies are the timed requests only. */
        double wall_s = (e2e_now_ms() - t0) / 1e3;
        int warm = b.warmup * b.clients;
        qsort(b.lat, (size_t)b.requests, sizeof(double), e2e_cmp);
        size_t p99 = (size_t)((double)b.requests * 0.99);
        if (p99 >= (size_t)b.requests) p99 = (size_t)b.requests - 1;
        static const char *names[] = {"local", "channel", "envelope"};
        printf("{\"mode\": \"%s\", \"requests\": %d, \"clients\": %d, \"median_ms\": %.3f, \"p99_ms\": %.3f, "
               "\"rps\": %.2f, \"handshake_ms\": %.3f}\n",
               names[b.mode], b.requests, b.clients, b.lat[b.requests / 2], b.lat[p99],
               (double)(b.requests + warm) / wall_s, b.handshake_ms);
    }
out:
    free(b.lat);
    cl_infer_service_free(b.svc);
    cl_attest_roots_free(&b.roots);
    cl_buf_free(&b.in);
    (void)pthread_mutex_destroy(&b.mu);
    return exit_code;
}
