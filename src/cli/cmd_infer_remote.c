/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister infer --enclave SOCKET: the envelope path's client (docs/worker.md). Sends a sealed
 * record to the cloister-infer worker over the host channel and writes the sealed result it
 * answers, whole or not at all. It never holds a key: it relays ciphertext.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cloister/frame.h"
#include "cloister/fs.h"
#include "cloister/stream.h"

#include "cli.h"

static const char *remote_usage =
    "Usage: cloister infer --enclave SOCKET INPUT.sealed -o OUT.sealed [--force]\n"
    "\n"
    "Sends a sealed record (cloister seal --key alias/...) to the cloister-infer worker in an\n"
    "enclave and writes its answer: the result sealed under a fresh data key of the same KMS\n"
    "key (open it with cloister unseal --key alias/...). SOCKET is the host end of the worker's\n"
    "vsock port: <state dir>/<enclave id>/vsock-<port>.sock for a sim enclave.\n"
    "\n"
    "  -e, --enclave SOCKET  the worker's host socket\n"
    "  -o, --output FILE     the sealed result (no overwrite without --force)\n"
    "  -f, --force           overwrite FILE\n";

static cl_status remote_connect(const char *path, int *out)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strnlen(path, sizeof(sa.sun_path));
    CL_ENSURE(n < sizeof(sa.sun_path), CL_ERR_USAGE, "socket path %s is too long", path);
    memcpy(sa.sun_path, path, n);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) CL_FAIL_ERRNO(CL_ERR_IO, "making a socket");
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        (void)cl_error_set_errno(CL_ERR_IO, __FILE__, __LINE__, "cannot reach the enclave at %s", path);
        (void)close(fd);
        return CL_ERR_IO;
    }
    *out = fd;
    return CL_OK;
}

static cl_status infer_remote(const char *sock, const char *in_path, const char *out_path, bool force)
{
    cl_status rc = CL_OK;
    int fd = -1;
    uint8_t type = 0;
    cl_outfile of = {.fd = -1};
    cl_buf req, ans;
    cl_buf_init(&req, CL_FRAME_MAX);
    cl_buf_init(&ans, CL_FRAME_MAX);
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&req, in_path), "reading %s", in_path);
    /* Opened first, so that an existing OUT stops us before the enclave does any work. */
    CL_GUARD_GOTO(cl_outfile_open(&of, out_path, force, 0600));
    CL_GUARD_GOTO(remote_connect(sock, &fd));
    CL_GUARD_CTX_GOTO(cl_frame_write(fd, CL_FRAME_REQUEST, req.data, req.len), "sending %s to the enclave", in_path);
    (void)shutdown(fd, SHUT_WR);
    rc = cl_frame_read(fd, CL_FRAME_MAX, &type, &ans);
    if (rc == CL_ERR_NOT_FOUND)
        CL_FAIL_GOTO(CL_ERR_IO, "the enclave closed the connection without an answer (did it stop?)");
    CL_GUARD_CTX_GOTO(rc, "reading the enclave's answer");
    if (type == CL_FRAME_ERROR) {
        /* The worker's line, shown as text only. */
        for (size_t i = 0; i < ans.len; i++)
            if (ans.data[i] < 0x20 || ans.data[i] == 0x7f) ans.data[i] = '?';
        CL_FAIL_GOTO(CL_ERR_REMOTE, "the enclave refused the request: %.*s", (int)(ans.len > 1000 ? 1000 : ans.len),
                     cl_buf_cstr(&ans));
    }
    CL_ENSURE_GOTO(type == CL_FRAME_RESULT, CL_ERR_FORMAT, "the enclave answered a frame of type %u, not a result",
                   type);
    cl_stream s = cl_stream_fd(of.fd, out_path);
    CL_GUARD_GOTO(s.write(&s, ans.data, ans.len));
    CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    if (fd >= 0) (void)close(fd);
    cl_buf_free(&req);
    cl_buf_free(&ans);
    return rc;
}

int cmd_infer_remote(int argc, char **argv)
{
    static const struct option opts[] = {
        {"enclave", required_argument, NULL, 'e'},
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *sock = NULL, *out = NULL;
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'e': sock = optarg; break;
        case 'o': out = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(remote_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("infer", "unknown option");
        }
    }
    if (sock == NULL) return cli_usage_error("infer", "--enclave SOCKET is required");
    if (out == NULL) return cli_usage_error("infer", "-o OUT.sealed is required");
    if (argc - optind != 1) return cli_usage_error("infer", "expected one INPUT.sealed");
    cl_status rc = infer_remote(sock, argv[optind], out, force);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}
