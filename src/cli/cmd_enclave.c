/* SPDX-License-Identifier: Apache-2.0 */
/* cloister enclave ...: the sim backend's attestation PKI (init-root). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloister/attestation.h"
#include "cloister/buf.h"
#include "cloister/fs.h"

#include "cli.h"

static const char enclave_usage[] =
    "Usage: cloister enclave init-root -o DIR [--root-days N] [--platform-days N] [--force]\n"
    "\n"
    "Creates the sim backend's attestation PKI in DIR (made 0700 if missing), as Nitro's:\n"
    "  root.pem, root.key          a self-signed P-384 root CA (default 30 years): give root.pem to\n"
    "                              verifiers (cloister attest verify --root, the KMS)\n"
    "  platform.pem, platform.key  a P-384 platform CA issued by the root (pathlen 0, default 1 year):\n"
    "                              the launcher issues each enclave's short-lived signing certificate\n"
    "                              with it, so attestation documents carry cabundle [root, platform]\n"
    "Keys are PKCS#8 PEM, mode 0600. Existing files are kept unless --force.\n";

static cl_status write_out(const char *dir, const char *name, const cl_buf *b, mode_t mode, bool force)
{
    char path[4096];
    cl_status rc = CL_OK;
    cl_outfile of = {.fd = -1};
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    CL_ENSURE(n > 0 && (size_t)n < sizeof(path), CL_ERR_USAGE, "path too long: %s/%s", dir, name);
    CL_GUARD(cl_outfile_open(&of, path, force, mode));
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(of.fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "writing %s", path);
        off += (size_t)w;
    }
    CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    return rc;
}

static bool parse_days(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 36500) return false;
    *out = v;
    return true;
}

static int enclave_init_root(int argc, char **argv)
{
    const char *cmd = "enclave init-root";
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"root-days", required_argument, NULL, 'r'},
        {"platform-days", required_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    long root_days = 30L * 365, platform_days = 365;
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': dir = optarg; break;
        case 'r':
            if (!parse_days(optarg, &root_days)) return cli_usage_error(cmd, "--root-days takes 1 to 36500");
            break;
        case 'p':
            if (!parse_days(optarg, &platform_days)) return cli_usage_error(cmd, "--platform-days takes 1 to 36500");
            break;
        case 'f': force = true; break;
        case 'h': fputs(enclave_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (dir == NULL) return cli_usage_error(cmd, "-o DIR is required");
    if (optind != argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (platform_days > root_days) return cli_usage_error(cmd, "the platform CA cannot outlive the root");

    cl_status rc = CL_OK;
    cl_attest_key root_key = {NULL}, plat_key = {NULL};
    cl_buf root_der, plat_der, pem, key_pem;
    cl_buf_init(&root_der, 4096);
    cl_buf_init(&plat_der, 4096);
    cl_buf_init(&pem, 8192);
    cl_buf_init_secret(&key_pem, 8192);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "creating %s", dir);
    int64_t now = (int64_t)time(NULL);
    /* Back-date by an hour so hosts with slightly slow clocks accept the new certificates. */
    cl_attest_cert_params rp = {"cloister-sim-root", now - 3600, now + root_days * 86400, true, -1};
    cl_attest_cert_params pp = {"cloister-sim-platform", now - 3600, now + platform_days * 86400, true, 0};
    CL_GUARD_GOTO(cl_attest_key_generate(&root_key));
    CL_GUARD_GOTO(cl_attest_key_generate(&plat_key));
    CL_GUARD_GOTO(cl_attest_cert_issue(&root_key, &rp, NULL, NULL, 0, &root_der));
    CL_GUARD_GOTO(cl_attest_cert_issue(&plat_key, &pp, &root_key, root_der.data, root_der.len, &plat_der));
    /* keys first: a directory with certificates but no keys would be useless */
    CL_GUARD_GOTO(cl_attest_key_to_pem(&root_key, &key_pem));
    CL_GUARD_GOTO(write_out(dir, "root.key", &key_pem, 0600, force));
    cl_buf_reset(&key_pem);
    CL_GUARD_GOTO(cl_attest_key_to_pem(&plat_key, &key_pem));
    CL_GUARD_GOTO(write_out(dir, "platform.key", &key_pem, 0600, force));
    CL_GUARD_GOTO(cl_attest_cert_to_pem(root_der.data, root_der.len, &pem));
    CL_GUARD_GOTO(write_out(dir, "root.pem", &pem, 0644, force));
    cl_buf_reset(&pem);
    CL_GUARD_GOTO(cl_attest_cert_to_pem(plat_der.data, plat_der.len, &pem));
    CL_GUARD_GOTO(write_out(dir, "platform.pem", &pem, 0644, force));
    printf("attestation root and platform CA written to %s (root.pem, root.key, platform.pem, platform.key)\n", dir);
out:
    cl_attest_key_free(&root_key);
    cl_attest_key_free(&plat_key);
    cl_buf_free(&root_der);
    cl_buf_free(&plat_der);
    cl_buf_free(&pem);
    cl_buf_free(&key_pem);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

int cmd_enclave(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("enclave", "missing command (init-root)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(enclave_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "init-root") == 0) return enclave_init_root(argc - 1, argv + 1);
    return cli_usage_error("enclave", "unknown command '%s'", argv[1]);
}
