/* SPDX-License-Identifier: Apache-2.0 */
/* cloister seal / cloister unseal: files to and from sealed envelopes. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/envelope.h"
#include "cloister/fs.h"

#include "cli.h"

static const char seal_usage[] =
    "Usage: cloister seal --key KEY [--context k=v]... [--chunk-size BYTES] [--force] IN -o OUT\n"
    "\n"
    "Encrypts IN into the sealed envelope OUT under a fresh data key wrapped by KEY.\n"
    "\n"
    "  -k, --key KEY         a local key file (cloister key local-create) or a KMS key:\n"
    "                        alias/NAME, key id, key ARN or alias ARN\n"
    "      --kms-endpoint URL  KMS endpoint (default: AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL,\n"
    "                        or AWS KMS in AWS_REGION); credentials from the AWS environment\n"
    "  -c, --context k=v     encryption context entry; repeat for more. Unsealing must give\n"
    "                        the same context (or none, to accept the file's)\n"
    "      --chunk-size N    bytes per authenticated chunk (4096..67108864, default 1048576)\n"
    "  -o, --output OUT      output file (written whole or not at all)\n"
    "  -f, --force           replace OUT if it exists\n"
    "  -h, --help            this text\n";

static const char unseal_usage[] =
    "Usage: cloister unseal --key KEY [--context k=v]... [--force] IN -o OUT\n"
    "\n"
    "Decrypts the sealed envelope IN into OUT. OUT appears only if every chunk\n"
    "authenticates; on any failure nothing is left behind.\n"
    "\n"
    "  -k, --key KEY         the local key file or KMS key the file was sealed with\n"
    "      --kms-endpoint URL  KMS endpoint (as for seal)\n"
    "  -c, --context k=v     required encryption context; repeat for more. If given, it\n"
    "                        must equal the file's context exactly\n"
    "  -o, --output OUT      output file\n"
    "  -f, --force           replace OUT if it exists\n"
    "  -h, --help            this text\n";

typedef struct seal_args {
    const char *key;
    const char *kms_endpoint;
    const char *in;
    const char *out;
    bool force;
    uint32_t chunk_size;
    cl_kvlist context;
    bool have_context;
} seal_args;

static int seal_parse(int argc, char **argv, bool sealing, seal_args *a)
{
    const char *cmd = sealing ? "seal" : "unseal";
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"context", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},
        {"chunk-size", required_argument, NULL, 'C'},
        {"kms-endpoint", required_argument, NULL, 'E'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:c:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': a->key = optarg; break;
        case 'E': a->kms_endpoint = optarg; break;
        case 'c':
            if (cl_kvlist_add_arg(&a->context, optarg) != CL_OK) return cli_usage_error(cmd, "%s", cl_error_message());
            a->have_context = true;
            break;
        case 'o': a->out = optarg; break;
        case 'f': a->force = true; break;
        case 'C': {
            if (!sealing) return cli_usage_error(cmd, "--chunk-size applies to seal only");
            uint64_t v = 0;
            int ec = cli_uint_option(cmd, "--chunk-size", optarg, CL_ENVELOPE_CHUNK_MIN, CL_ENVELOPE_CHUNK_MAX, &v);
            if (ec != CLI_EXIT_OK) return ec;
            a->chunk_size = (uint32_t)v;
            break;
        }
        case 'h': fputs(sealing ? seal_usage : unseal_usage, stdout); return -1;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (a->key == NULL) return cli_usage_error(cmd, "--key is required");
    if (a->out == NULL) return cli_usage_error(cmd, "-o OUT is required");
    if (optind != argc - 1) return cli_usage_error(cmd, "expected exactly one input file");
    a->in = argv[optind];
    return CLI_EXIT_OK;
}

static int seal_run(int argc, char **argv, bool sealing)
{
    seal_args a = {0};
    cl_kvlist_init(&a.context);
    cl_key_provider *kp = NULL;
    cl_outfile of = {.fd = -1};
    cl_status rc = CL_OK;
    int in_fd = -1;
    int exit_code = seal_parse(argc, argv, sealing, &a);
    if (exit_code != CLI_EXIT_OK) {
        cl_kvlist_free(&a.context);
        return exit_code < 0 ? CLI_EXIT_OK : exit_code;
    }

    struct stat sb;
    in_fd = open(a.in, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot read %s", a.in);
    if (fstat(in_fd, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat %s", a.in);
    CL_ENSURE_GOTO(!S_ISDIR(sb.st_mode), CL_ERR_USAGE, "%s is a directory", a.in);
    CL_GUARD_GOTO(cli_open_key_provider(a.key, a.kms_endpoint, &kp));
    /* Plaintext is written 0600; a sealed file is not secret but stays private too. */
    CL_GUARD_GOTO(cl_outfile_open(&of, a.out, a.force, 0600));

    cli_progress progress;
    cli_progress_init(&progress, sealing ? "sealing" : "unsealing", S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0);
    cl_envelope_opts opts = {
        .chunk_size = a.chunk_size,
        .context = a.have_context ? &a.context : NULL,
        .progress = cli_progress_update,
        .progress_arg = &progress,
    };
    cl_stream in = cl_stream_fd(in_fd, a.in);
    cl_stream out = cl_stream_fd(of.fd, a.out);
    if (sealing) {
        rc = cl_envelope_seal(kp, &opts, &in, &out);
    } else {
        rc = cl_envelope_unseal(kp, &opts, &in, &out, NULL);
    }
    cli_progress_finish(&progress);
    CL_GUARD_GOTO(rc);
    CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    if (in_fd >= 0) close(in_fd);
    cl_key_provider_destroy(kp);
    cl_kvlist_free(&a.context);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

int cmd_seal(int argc, char **argv) { return seal_run(argc, argv, true); }

int cmd_unseal(int argc, char **argv) { return seal_run(argc, argv, false); }
