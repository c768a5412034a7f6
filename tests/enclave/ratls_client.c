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
#include <stdbool.h>
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
    /* One exit path that frees everything: the sanitizer pass checks for leaks on the
     * refusals too, which are what this program exists to show. */
    int rc = 1, fd = -1;
    bool client_made = false, conn_made = false;
    cl_attest_roots roots;
    cl_attest_roots_init(&roots);
    cl_buf pcr;
    cl_buf_init(&pcr, 64);
    cl_attest_doc doc;
    cl_attest_doc_init(&doc);
    cl_ratls_client client;
    cl_ratls_conn conn;
    if (cl_attest_roots_add_file(&roots, argv[2]) != CL_OK) {
        rc = fail("root");
        goto out;
    }
    if (cl_hex_decode(argv[3], strlen(argv[3]), &pcr) != CL_OK || pcr.len != CL_ATTEST_PCR_LEN) {
        rc = fail("PCR0 must be 96 hex digits");
        goto out;
    }
    cl_attest_pcr pcr0 = {.index = 0};
    memcpy(pcr0.value, pcr.data, CL_ATTEST_PCR_LEN);
    cl_ratls_client_config cfg = {.roots = &roots, .pcrs = &pcr0, .pcr_count = 1};
    if (cl_ratls_client_init(&client, &cfg) != CL_OK) {
        rc = fail("");
        goto out;
    }
    client_made = true;

    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "ratls_client: error: socket path too long\n");
        goto out;
    }
    memcpy(sa.sun_path, argv[1], strlen(argv[1]) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("ratls_client: connect");
        goto out;
    }
    if (cl_ratls_client_connect(&client, fd, &conn, &doc) != CL_OK) {
        rc = fail("");
        goto out;
    }
    conn_made = true;
    char answer[512];
    size_t n = 0;
    if (cl_ratls_conn_write(&conn, argv[4], strlen(argv[4])) != CL_OK ||
        cl_ratls_conn_read(&conn, answer, sizeof(answer) - 1, &n) != CL_OK) {
        rc = fail("");
        goto out;
    }
    answer[n] = '\0';
    printf("%s\nmodule_id %s\n", answer, doc.module_id);
    rc = 0;
out:
    if (conn_made) cl_ratls_conn_close(&conn);
    if (fd >= 0) (void)close(fd);
    cl_attest_doc_free(&doc);
    if (client_made) cl_ratls_client_free(&client);
    cl_attest_roots_free(&roots);
    cl_buf_free(&pcr);
    return rc;
}
