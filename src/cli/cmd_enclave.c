/* SPDX-License-Identifier: Apache-2.0 */
/* cloister enclave ...: the sim backend's attestation PKI (init-root). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/attestation.h"

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

    cl_status rc = cl_attest_pki_create(dir, (int64_t)time(NULL), (int)root_days, (int)platform_days, force);
    if (rc == CL_OK)
        printf("attestation root and platform CA written to %s (root.pem, root.key, platform.pem, platform.key)\n",
               dir);
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
