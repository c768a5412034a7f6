/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/s3's client: PUTs or GETs through libcloister's S3 client (cloister/s3_client.h), one
 * connection kept alive, timed, printed as one JSON line. bench/s3/run.py drives it against each
 * server. Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (never argv).
 *
 *   s3 --endpoint URL --bucket B --op put|get --size BYTES --count N [--region R] [--file PATH]
 *
 * put: N objects bench/SIZE/i of SIZE bytes from memory, or, with --file, the file streamed (one
 * object, multipart from 8 MiB on). get: the same objects, into memory (bounded to SIZE), or, with
 * --file, streamed into PATH.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/s3_client.h"

static double now_s(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what)
{
    fprintf(stderr, "s3 bench: %s: %s\n", what, cl_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    const char *endpoint = NULL, *bucket = NULL, *op = NULL, *file = NULL, *region = "us-east-1";
    uint64_t size = 0, count = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--endpoint") == 0)
            endpoint = v;
        else if (strcmp(k, "--bucket") == 0)
            bucket = v;
        else if (strcmp(k, "--op") == 0)
            op = v;
        else if (strcmp(k, "--file") == 0)
            file = v;
        else if (strcmp(k, "--region") == 0)
            region = v;
        else if (strcmp(k, "--size") == 0) {
            if (cl_parse_uint(v, 1, (uint64_t)1 << 40, "--size", &size) != CL_OK) return fail("usage");
        } else if (strcmp(k, "--count") == 0) {
            if (cl_parse_uint(v, 1, 1000000, "--count", &count) != CL_OK) return fail("usage");
        } else {
            fprintf(stderr, "s3 bench: unknown option %s\n", k);
            return 2;
        }
    }
    const char *akid = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (endpoint == NULL || bucket == NULL || op == NULL || size == 0 || akid == NULL || secret == NULL) {
        fprintf(stderr, "usage: s3 --endpoint URL --bucket B --op put|get --size BYTES --count N [--file PATH] "
                        "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set)\n");
        return 2;
    }
    cl_s3_config cfg = {.endpoint = endpoint, .region = region, .access_key_id = akid, .secret_access_key = secret};
    cl_s3_client *c = NULL;
    if (cl_s3_client_new(&cfg, &c) != CL_OK) return fail("client");
    int rc = 0;
    cl_buf data, got;
    cl_buf_init(&data, file != NULL ? 1 : (size_t)size);
    cl_buf_init(&got, file != NULL ? 1 : (size_t)size);
    if (file == NULL && (cl_buf_resize(&data, (size_t)size) != CL_OK || cl_random(data.data, (size_t)size) != CL_OK)) {
        rc = fail("data");
        goto out;
    }
    bool put = strcmp(op, "put") == 0;
    double t0 = now_s();
    for (uint64_t i = 0; i < count; i++) {
        char key[96];
        (void)snprintf(key, sizeof(key), "bench/%" PRIu64 "/%" PRIu64, size, i);
        cl_status st;
        if (file != NULL) {
            int fd =
                put ? open(file, O_RDONLY | O_CLOEXEC) : open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (fd < 0) {
                perror(file);
                rc = 1;
                goto out;
            }
            st = put ? cl_s3_put_object_fd(c, bucket, key, fd, NULL, NULL)
                     : cl_s3_get_object_fd(c, bucket, key, NULL, fd, NULL);
            if (st == CL_OK && !put && fsync(fd) != 0) perror("fsync");
            (void)close(fd);
        } else if (put) {
            st = cl_s3_put_object(c, bucket, key, data.data, data.len, NULL, NULL);
        } else {
            cl_buf_reset(&got);
            st = cl_s3_get_object(c, bucket, key, NULL, (size_t)size, &got, NULL);
            if (st == CL_OK && got.len != size) st = CL_RAISE(CL_ERR_FORMAT, "got %zu bytes", got.len);
        }
        if (st != CL_OK) {
            rc = fail(op);
            goto out;
        }
    }
    double dt = now_s() - t0;
    printf("{\"op\": \"%s\", \"size\": %" PRIu64 ", \"count\": %" PRIu64 ", \"seconds\": %.6f, \"req_per_s\": %.1f, "
           "\"gb_per_s\": %.4f}\n",
           op, size, count, dt, (double)count / dt, (double)size * (double)count / dt / 1e9);
out:
    cl_buf_free(&data);
    cl_buf_free(&got);
    cl_s3_client_free(c);
    return rc;
}
