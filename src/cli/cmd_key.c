/* SPDX-License-Identifier: Apache-2.0 */
/* cloister key ...: key management on the user's machine. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cloister/buf.h"
#include "cloister/keyprovider.h"

#include "cli.h"

static const char key_usage[] =
    "Usage: cloister key <command> [options]\n"
    "\n"
    "Commands:\n"
    "  local-create -o FILE   make a new 256-bit local key file (mode 0600, never overwritten)\n"
    "  local-id FILE          print the key id of a local key file\n";

static int key_local_create(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h':
            fputs("Usage: cloister key local-create -o FILE\n\n"
                  "Writes a fresh 256-bit key to FILE (mode 0600) and prints its key id.\n"
                  "Keep FILE safe: whatever is sealed with it cannot be unsealed without it.\n",
                  stdout);
            return CLI_EXIT_OK;
        default: return cli_usage_error("key local-create", "unknown option");
        }
    }
    if (out == NULL || optind != argc) return cli_usage_error("key local-create", "expected -o FILE and nothing else");
    cl_buf id;
    cl_buf_init(&id, 64);
    cl_status rc = cl_local_key_create(out, &id);
    if (rc == CL_OK) printf("%s\n", cl_buf_cstr(&id));
    cl_buf_free(&id);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

static int key_local_id(int argc, char **argv)
{
    if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        if (argc == 2) {
            fputs("Usage: cloister key local-id FILE\n\nPrints the key id of a local key file.\n", stdout);
            return CLI_EXIT_OK;
        }
        return cli_usage_error("key local-id", "expected one key file");
    }
    cl_key_provider *kp = NULL;
    cl_status rc = cl_local_provider_open(argv[1], &kp);
    if (rc != CL_OK) return cli_report(rc);
    printf("%s\n", cl_local_provider_key_id(kp));
    cl_key_provider_destroy(kp);
    return CLI_EXIT_OK;
}

int cmd_key(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("key", "missing command (local-create, local-id)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(key_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "local-create") == 0) return key_local_create(argc - 1, argv + 1);
    if (strcmp(argv[1], "local-id") == 0) return key_local_id(argc - 1, argv + 1);
    return cli_usage_error("key", "unknown command '%s'", argv[1]);
}
