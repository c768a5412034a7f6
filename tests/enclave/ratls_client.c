/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host side of tests/integration/ratls_enclave.py: connects to an enclave's vsock
 * listener (the Unix socket the launcher makes for it), runs the RA-TLS client with the
 * given root and expected PCR0, sends MESSAGE and prints the answer.
 *
 *   ratls_client SOCKET ROOT.pem PCR0HEX MESSAGE
 *
 * Exit 0 with the answer on stdout; 1 with "ratls_client: error: ..." on stderr.
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cloister/ratls.h"

static int fail(const char *what)
{
    fprintf(stderr, "ratls_client: error: %s%s%s\n", what, what[0] ? ": " : "", cl_error_message());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: ratls_client SOCKET ROOT.pem PCR0HEX MESSAGE\n");
        return 2;
    }
    cl_attest_roots roots;
    cl_attest_roots_init(&roots);
    if (cl_attest_roots_add_file(&roots, argv[2]) != CL_OK) return fail("root");
    cl_buf pcr;
    cl_buf_init(&pcr, 64);
    if (cl_hex_decode(argv[3], strlen(argv[3]), &pcr) != CL_OK || pcr.len != CL_ATTEST_PCR_LEN)
        return fail("PCR0 must be 96 hex digits");
    cl_attest_pcr pcr0 = {.index = 0};
    memcpy(pcr0.value, pcr.data, CL_ATTEST_PCR_LEN);
    cl_ratls_client client;
    cl_ratls_client_config cfg = {.roots = &roots, .pcrs = &pcr0, .pcr_count = 1};
    if (cl_ratls_client_init(&client, &cfg) != CL_OK) return fail("");

    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof(sa.sun_path)) return fail("socket path too long");
    memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("ratls_client: connect");
        return 1;
    }
    cl_ratls_conn conn;
    cl_attest_doc doc;
    cl_attest_doc_init(&doc);
    if (cl_ratls_client_connect(&client, fd, &conn, &doc) != CL_OK) return fail("");
    char out[512];
    size_t n = 0;
    if (cl_ratls_conn_write(&conn, argv[4], strlen(argv[4])) != CL_OK ||
        cl_ratls_conn_read(&conn, out, sizeof(out) - 1, &n) != CL_OK)
        return fail("");
    out[n] = '\0';
    printf("%s\nmodule_id %s\n", out, doc.module_id);
    cl_ratls_conn_close(&conn);
    (void)close(fd);
    cl_attest_doc_free(&doc);
    cl_ratls_client_free(&client);
    cl_attest_roots_free(&roots);
    cl_buf_free(&pcr);
    return 0;
}
