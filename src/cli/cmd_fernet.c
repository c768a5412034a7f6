/* SPDX-License-Identifier: Apache-2.0 */
/* cloister fernet ...: Fernet tokens, compatible with Python cryptography. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloister/buf.h"
#include "cloister/fernet.h"
#include "cloister/fs.h"
#include "cloister/stream.h"

#include "cli.h"

#define FERNET_CLI_MAX_INPUT ((size_t)256 << 20)

static const char fernet_usage[] =
    "Usage: cloister fernet <command> [options]\n"
    "\n"
    "Commands:\n"
    "  encrypt --key FILE [IN] [-o OUT]            encrypt IN (default stdin) into a token\n"
    "  decrypt --key FILE [--ttl SECONDS] [IN] [-o OUT]\n"
    "                                              verify and decrypt a token\n"
    "  generate-key [-o FILE]                      print (or write, mode 0600) a new key\n"
    "\n"
    "The key file holds the url-safe base64 key as Python's Fernet.generate_key() makes it.\n"
    "Output goes to stdout unless -o is given; -o files appear whole or not at all.\n"
    "Inputs are read into memory, up to 256 MiB.\n";

static CL_MUST_USE cl_status fernet_read_all(const char *path, cl_buf *out)
{
    if (path != NULL && strcmp(path, "-") != 0) return cl_buf_read_file(out, path);
    cl_stream in = cl_stream_fd(STDIN_FILENO, "<stdin>");
    uint8_t tmp[65536];
    for (;;) {
        size_t got = 0;
        CL_GUARD(in.read(&in, tmp, sizeof(tmp), &got));
        if (got == 0) break;
        CL_GUARD_CTX(cl_buf_append(out, tmp, got), "reading stdin");
    }
    return CL_OK;
}

static CL_MUST_USE cl_status fernet_write(const char *path, bool force, const uint8_t *p, size_t n, bool newline)
{
    cl_status rc = CL_OK;
    cl_outfile of = {.fd = -1};
    if (path == NULL || strcmp(path, "-") == 0) {
        cl_stream out = cl_stream_fd(STDOUT_FILENO, "<stdout>");
        CL_GUARD(out.write(&out, p, n));
        if (newline) CL_GUARD(out.write(&out, (const uint8_t *)"\n", 1));
        return CL_OK;
    }
    CL_GUARD(cl_outfile_open(&of, path, force, 0600));
    cl_stream out = cl_stream_fd(of.fd, path);
    CL_GUARD_GOTO(out.write(&out, p, n));
    if (newline) CL_GUARD_GOTO(out.write(&out, (const uint8_t *)"\n", 1));
    CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    return rc;
}

static CL_MUST_USE cl_status fernet_load_key(const char *path, cl_buf *key)
{
    cl_buf text;
    cl_buf_init_secret(&text, 1024);
    cl_status rc = cl_buf_read_file(&text, path);
    if (rc == CL_OK) rc = cl_fernet_key_decode((const char *)text.data, text.len, key);
    if (rc != CL_OK) rc = cl_error_wrap("Fernet key file %s", path);
    cl_buf_free(&text);
    return rc;
}

static int fernet_crypt(int argc, char **argv, bool encrypt)
{
    const char *cmd = encrypt ? "fernet encrypt" : "fernet decrypt";
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'}, {"output", required_argument, NULL, 'o'},
        {"ttl", required_argument, NULL, 't'}, {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
    };
    const char *key_path = NULL, *out_path = NULL, *in_path = NULL;
    int64_t ttl = CL_FERNET_NO_TTL;
    bool force = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'f': force = true; break;
        case 't': {
            if (encrypt) return cli_usage_error(cmd, "--ttl applies to decrypt only");
            int64_t v = 0;
            int ec = cli_int_option(cmd, "--ttl (seconds)", optarg, 0, INT64_MAX, &v);
            if (ec != CLI_EXIT_OK) return ec;
            ttl = v;
            break;
        }
        case 'h': fputs(fernet_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (key_path == NULL) return cli_usage_error(cmd, "--key FILE is required");
    if (optind < argc) in_path = argv[optind++];
    if (optind != argc) return cli_usage_error(cmd, "expected at most one input");

    cl_status rc = CL_OK;
    cl_buf key, input, output;
    cl_buf_init_secret(&key, 64);
    cl_buf_init(&input, FERNET_CLI_MAX_INPUT);
    cl_buf_init(&output, FERNET_CLI_MAX_INPUT * 2);
    uint64_t now = (uint64_t)time(NULL);

    CL_GUARD_GOTO(fernet_load_key(key_path, &key));
    CL_GUARD_CTX_GOTO(fernet_read_all(in_path, &input), "input");
    if (encrypt) {
        CL_GUARD_GOTO(cl_fernet_encrypt(key.data, input.data, input.len, now, NULL, &output));
        CL_GUARD_GOTO(fernet_write(out_path, force, output.data, output.len, true));
    } else {
        /* Tokens are text: a trailing newline from a file or echo is not part of it. */
        cl_buf_rstrip(&input, "\r\n");
        CL_GUARD_GOTO(cl_fernet_decrypt(key.data, cl_buf_cstr(&input), input.len, now, ttl, &output));
        CL_GUARD_GOTO(fernet_write(out_path, force, output.data, output.len, false));
    }
out:
    cl_buf_free(&key);
    cl_buf_free(&input);
    cl_buf_free(&output);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

static int fernet_generate(int argc, char **argv)
{
    const char *out_path = NULL;
    bool force = false;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc) {
            out_path = argv[++i];
        } else if (strcmp(argv[i], "--force") == 0 || strcmp(argv[i], "-f") == 0) {
            force = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(fernet_usage, stdout);
            return CLI_EXIT_OK;
        } else {
            return cli_usage_error("fernet generate-key", "unexpected argument '%s'", argv[i]);
        }
    }
    cl_buf text;
    cl_buf_init_secret(&text, 64);
    cl_status rc = cl_fernet_key_generate(&text);
    if (rc == CL_OK) rc = fernet_write(out_path, force, text.data, text.len, true);
    cl_buf_free(&text);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

int cmd_fernet(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("fernet", "missing command (encrypt, decrypt, generate-key)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(fernet_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "encrypt") == 0) return fernet_crypt(argc - 1, argv + 1, true);
    if (strcmp(argv[1], "decrypt") == 0) return fernet_crypt(argc - 1, argv + 1, false);
    if (strcmp(argv[1], "generate-key") == 0) return fernet_generate(argc - 1, argv + 1);
    return cli_usage_error("fernet", "unknown command '%s'", argv[1]);
}
