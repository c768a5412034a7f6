/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A test enclave program serving RA-TLS (tests/integration/ratls_enclave.py builds it
 * into an image and runs it with `cloister enclave run`): makes its key pair, listens
 * on vsock port 5006 and answers each connection "enclave:" + what it received, over
 * RA-TLS with a document from the attestation device per connection. Stops after the
 * number of connections in /files/count (handshakes the client refused count too).
 * Prints one line per connection on its console (run with --debug --attach-console).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloister/nsm.h"
#include "cloister/ratls.h"

static int read_count(void)
{
    char buf[16] = {0};
    int fd = open("/files/count", O_RDONLY);
    if (fd < 0) return 1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    (void)close(fd);
    if (n <= 0) return 1;
    char *end = NULL;
    long v = strtol(buf, &end, 10);
    return v >= 1 && v <= 100 ? (int)v : 1;
}

int main(void)
{
    (void)signal(SIGPIPE, SIG_IGN);
    int nsm = -1, listener = -1;
    cl_ratls_server server;
    if (cl_nsm_open(&nsm) != CL_OK || cl_ratls_server_init(&server, cl_ratls_attest_nsm, &nsm) != CL_OK ||
        cl_vsock_listen(cl_vsock_ctl(), 5006, &listener) != CL_OK) {
        printf("ratls_server: %s\n", cl_error_message());
        return 70;
    }
    int count = read_count();
    for (int i = 0; i < count; i++) {
        int fd = -1;
        if (cl_vsock_accept(listener, &fd) != CL_OK) {
            printf("ratls_server: accept: %s\n", cl_error_message());
            return 71;
        }
        cl_ratls_conn conn;
        uint8_t in[200];
        size_t n = 0;
        if (cl_ratls_server_accept(&server, fd, &conn) != CL_OK) {
            printf("CONN %d refused: %s\n", i, cl_error_message());
        } else if (cl_ratls_conn_read(&conn, in, sizeof(in), &n) == CL_OK && n > 0) {
            char out[256];
            int m = snprintf(out, sizeof(out), "enclave:%.*s", (int)n, (const char *)in);
            printf("CONN %d served %s\n", i, cl_ratls_conn_write(&conn, out, (size_t)m) == CL_OK ? "ok" : "FAIL");
        } else {
            printf("CONN %d read nothing\n", i);
        }
        cl_ratls_conn_close(&conn);
        (void)close(fd);
        (void)fflush(stdout);
    }
    cl_ratls_server_free(&server);
    return 0;
}
