/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/seal: sealed-envelope throughput next to OpenSSL's own AES-256-GCM
 * figure, measured in the same run.
 *
 *   build/bench/seal [--size MiB] [--dir DIR] [--cloister PATH]
 *
 * Prints, for 1 GiB by default:
 *   - `openssl speed -evp aes-256-gcm` with 1 MiB blocks, one thread: the peer;
 *   - the envelope engine sealing and unsealing memory to memory (what the
 *     format and our code cost over the raw cipher), as a ratio of the peer;
 *   - `cloister seal` / `cloister unseal` file to file through the page cache,
 *     with peak RSS (what a user sees; includes the kernel's copy costs), next
 *     to `cp` of the same file, the floor the kernel sets for file to file.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/envelope.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A source that repeats one random MiB until `total` bytes, and a sink that
 * keeps the bytes only when asked to: the engine without file I/O. */
typedef struct bench_src {
    cl_stream s;
    const uint8_t *block;
    size_t block_len;
    uint64_t left;
} bench_src;

static CL_MUST_USE cl_status bench_src_read(cl_stream *s, uint8_t *p, size_t n, size_t *got)
{
    bench_src *b = (bench_src *)s;
    size_t take = n < b->left ? n : (size_t)b->left;
    size_t done = 0;
    while (done < take) {
        size_t k = take - done < b->block_len ? take - done : b->block_len;
        memcpy(p + done, b->block, k);
        done += k;
    }
    b->left -= take;
    *got = take;
    return CL_OK;
}

typedef struct bench_sink {
    cl_stream s;
    uint64_t bytes;
    cl_buf *keep;
} bench_sink;

static CL_MUST_USE cl_status bench_sink_write(cl_stream *s, const uint8_t *p, size_t n)
{
    bench_sink *k = (bench_sink *)s;
    k->bytes += n;
    if (k->keep != NULL) return cl_buf_append(k->keep, p, n);
    return CL_OK;
}

static double openssl_speed(void)
{
    FILE *p = popen("openssl speed -evp aes-256-gcm -bytes 1048576 -seconds 3 2>/dev/null", "r");
    if (p == NULL) return 0;
    char line[512];
    double kbps = 0;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strncmp(line, "AES-256-GCM", 11) == 0) kbps = strtod(line + 11, NULL);
    }
    pclose(p);
    return kbps * 1000.0; /* openssl prints 1000s of bytes per second */
}

static int run_timed(const char *cmd, double *secs, long *rss_kib)
{
    char full[4096];
    char rss_file[] = "/tmp/bench-seal-rss-XXXXXX";
    int fd = mkstemp(rss_file);
    if (fd < 0) return -1;
    close(fd);
    (void)snprintf(full, sizeof(full), "/usr/bin/time -o %s -f %%M %s", rss_file, cmd);
    double t0 = now_s();
    int rc = system(full);
    *secs = now_s() - t0;
    FILE *f = fopen(rss_file, "r");
    *rss_kib = -1;
    if (f != NULL) {
        if (fscanf(f, "%ld", rss_kib) != 1) *rss_kib = -1;
        fclose(f);
    }
    unlink(rss_file);
    return rc;
}

int main(int argc, char **argv)
{
    long size_mib = 1024;
    const char *dir = "/tmp";
    const char *cli = "build/bin/cloister";
    static const struct option opts[] = {{"size", required_argument, NULL, 's'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"cloister", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's') {
            uint64_t v = 0;
            if (cl_parse_uint(optarg, 1, (uint64_t)1 << 20, "--size (MiB)", &v) != CL_OK) {
                fprintf(stderr, "bench/seal: %s\n", cl_error_message());
                return 2;
            }
            size_mib = (long)v;
        } else if (c == 'd')
            dir = optarg;
        else if (c == 'c')
            cli = optarg;
        else {
            fprintf(stderr, "usage: %s [--size MiB] [--dir DIR] [--cloister PATH]\n", argv[0]);
            return 2;
        }
    }
    uint64_t total = (uint64_t)size_mib << 20;
    char work[512], key[600], in[600], sealed[600], out[600], cmd[3000];
    (void)snprintf(work, sizeof(work), "%s/bench-seal-XXXXXX", dir);
    if (mkdtemp(work) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    (void)snprintf(key, sizeof(key), "%s/k.key", work);
    (void)snprintf(in, sizeof(in), "%s/in.bin", work);
    (void)snprintf(sealed, sizeof(sealed), "%s/in.sealed", work);
    (void)snprintf(out, sizeof(out), "%s/out.bin", work);

    /* The file: real random-looking bytes (a sparse file would read faster). */
    static uint8_t block[1 << 20];
    if (cl_random(block, sizeof(block)) != CL_OK) return 1;
    FILE *f = fopen(in, "wb");
    if (f == NULL) return 1;
    for (uint64_t i = 0; i < total >> 20; i++) fwrite(block, 1, sizeof(block), f);
    fclose(f);

    printf("bench/seal: %ld MiB, 1 MiB chunks, 1 thread (%ld cores online)\n\n", size_mib,
           sysconf(_SC_NPROCESSORS_ONLN));
    /* The peer is measured before and after our runs; the spread shows how
     * noisy the machine was. Ratios use the mean. */
    double peer_before = openssl_speed();

    /* File to file first, before this process holds any large buffer. */
    double secs_seal = 0, secs_unseal = 0;
    long rss_seal = -1, rss_unseal = -1;
    (void)snprintf(cmd, sizeof(cmd), "%s key local-create -o %s >/dev/null", cli, key);
    if (system(cmd) != 0) return 1;
    (void)snprintf(cmd, sizeof(cmd), "%s seal --key %s %s -o %s", cli, key, in, sealed);
    if (run_timed(cmd, &secs_seal, &rss_seal) != 0) return 1;
    (void)snprintf(cmd, sizeof(cmd), "%s unseal --key %s %s -o %s", cli, key, sealed, out);
    if (run_timed(cmd, &secs_unseal, &rss_unseal) != 0) return 1;
    (void)snprintf(cmd, sizeof(cmd), "cmp -s %s %s", in, out);
    int same = system(cmd) == 0;

    /* The kernel's own floor for file to file: cp of the same file. */
    double secs_cp = 0;
    long rss_cp = -1;
    (void)snprintf(cmd, sizeof(cmd), "cp %s %s.copy", in, in);
    if (run_timed(cmd, &secs_cp, &rss_cp) != 0) return 1;
    (void)snprintf(cmd, sizeof(cmd), "%s.copy", in);
    unlink(cmd);

    /* The engine, memory to memory: the source repeats one cache-warm MiB, the
     * sink discards, so this is the format's cost over the raw cipher. */
    cl_key_provider *kp = NULL;
    if (cl_local_provider_open(key, &kp) != CL_OK) return 1;
    bench_src src = {.block = block, .block_len = sizeof(block), .left = total};
    src.s.read = bench_src_read;
    src.s.name = "<bench>";
    bench_sink discard = {.keep = NULL};
    discard.s.write = bench_sink_write;
    double t0 = now_s();
    if (cl_envelope_seal(kp, NULL, &src.s, &discard.s) != CL_OK) {
        fprintf(stderr, "seal: %s\n", cl_error_message());
        return 1;
    }
    double mem_seal = now_s() - t0;

    /* Unseal reads a sealed GiB already in memory (faulted in before timing). */
    cl_buf kept;
    cl_buf_init(&kept, (size_t)total + (total >> 10) + 65536);
    if (cl_buf_reserve(&kept, kept.max) != CL_OK) return 1;
    memset(kept.data, 0, kept.max);
    bench_sink keep = {.keep = &kept};
    keep.s.write = bench_sink_write;
    src.left = total;
    if (cl_envelope_seal(kp, NULL, &src.s, &keep.s) != CL_OK) return 1;
    cl_stream from = cl_stream_mem(kept.data, kept.len);
    t0 = now_s();
    if (cl_envelope_unseal(kp, NULL, &from, &discard.s, NULL) != CL_OK) {
        fprintf(stderr, "unseal: %s\n", cl_error_message());
        return 1;
    }
    double mem_unseal = now_s() - t0;
    cl_buf_free(&kept);
    cl_key_provider_destroy(kp);

    double peer_after = openssl_speed();
    double peer = (peer_before + peer_after) / 2;
    double gb = (double)total / 1e9;
    printf("%-52s %8.2f GB/s  (before %.2f, after %.2f)\n", "peer: openssl speed -evp aes-256-gcm, 1 MiB blocks",
           peer / 1e9, peer_before / 1e9, peer_after / 1e9);
    printf("%-52s %8.2f GB/s  %5.1f%% of peer\n", "envelope engine: seal, memory to memory", gb / mem_seal,
           100.0 * gb / mem_seal / (peer / 1e9));
    printf("%-52s %8.2f GB/s  %5.1f%% of peer\n", "envelope engine: unseal, memory to memory", gb / mem_unseal,
           100.0 * gb / mem_unseal / (peer / 1e9));
    printf("%-52s %8.2f GB/s  %5.1f%% of peer  peak RSS %.1f MiB\n", "cloister seal: file to file (page cache)",
           gb / secs_seal, 100.0 * gb / secs_seal / (peer / 1e9), (double)rss_seal / 1024);
    printf("%-52s %8.2f GB/s  %5.1f%% of peer  peak RSS %.1f MiB\n", "cloister unseal: file to file (page cache)",
           gb / secs_unseal, 100.0 * gb / secs_unseal / (peer / 1e9), (double)rss_unseal / 1024);
    printf("%-52s %8.2f GB/s  (the kernel's floor for file to file here)\n", "peer: cp of the same file", gb / secs_cp);
    printf("\nround trip identical: %s\n", same ? "yes" : "NO");

    unlink(key);
    unlink(in);
    unlink(sealed);
    unlink(out);
    rmdir(work);
    return same ? 0 : 1;
}
