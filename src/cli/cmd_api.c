/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister api token create: a bearer token for cloister-api (docs/api.md, "Authentication").
 * The hospital runs it: the token goes to a client once, on stdout; the API's configuration
 * (in the measured image) keeps only its SHA-256 and scopes.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cloister/buf.h"
#include "cloister/crypto.h"
#include "cloister/mem.h"

#include "cli.h"

#define API_TOKEN_BYTES 32
#define API_TOKEN_PREFIX "clapi_"

static const char api_usage[] =
    "Usage: cloister api token create --scope read|write|read,write [--name NAME]\n"
    "\n"
    "Makes a fresh random bearer token for cloister-api (256 bits from the CSPRNG, base64url) and\n"
    "prints it on the first line of stdout, once: give it to the client (a clinician's page, a\n"
    "script), which sends it as 'Authorization: Bearer TOKEN'. The second line is the entry for the\n"
    "API's configuration, \"tokens\": [...]: the token's SHA-256, its scopes and name. Nothing\n"
    "else keeps the token; the configuration is in the API's image, so adding or removing a token\n"
    "changes its PCR0 (and the hospital's key policy must name the new one). docs/api.md.\n";

static int api_token_create(int argc, char **argv)
{
    static const struct option opts[] = {{"scope", required_argument, NULL, 's'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *cmd = "api token create", *scope = NULL, *name = "";
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 's': scope = optarg; break;
        case 'n': name = optarg; break;
        case 'h': fputs(api_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option or missing value: %s", argv[optind - 1]);
        }
    }
    if (optind != argc) return cli_usage_error(cmd, "unexpected argument %s", argv[optind]);
    if (scope == NULL) return cli_usage_error(cmd, "--scope read, write or read,write is required");
    bool read = false, write = false;
    const char *s = scope;
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        if (n == 4 && strncmp(s, "read", 4) == 0)
            read = true;
        else if (n == 5 && strncmp(s, "write", 5) == 0)
            write = true;
        else
            return cli_usage_error(cmd, "--scope %s: each scope is read or write (comma-separated)", scope);
        s += n + (s[n] == ',');
    }
    if (!read && !write) return cli_usage_error(cmd, "--scope read, write or read,write is required");
    for (const char *p = name; *p != '\0'; p++)
        if (*p < 0x20 || *p == '"' || *p == '\\' || *p > 0x7e)
            return cli_usage_error(cmd, "--name: printable ASCII without quotes or backslashes");
    cl_status rc = CL_OK;
    uint8_t raw[API_TOKEN_BYTES], digest[CL_SHA256_LEN];
    cl_buf token, b64;
    cl_buf_init_secret(&token, 128);
    cl_buf_init_secret(&b64, 128);
    char hex[2 * CL_SHA256_LEN + 1];
    CL_GUARD_GOTO(cl_random_secret(raw, sizeof(raw)));
    CL_GUARD_GOTO(cl_base64_encode(raw, sizeof(raw), true, &b64));
    cl_buf_rstrip(&b64, "=");
    CL_GUARD_GOTO(cl_buf_append_str(&token, API_TOKEN_PREFIX));
    CL_GUARD_GOTO(cl_buf_append(&token, b64.data, b64.len));
    CL_GUARD_GOTO(cl_sha256(token.data, token.len, digest));
    (void)cl_hex_encode(digest, sizeof(digest), hex, sizeof(hex));
    printf("%s\n{\"name\": \"%s\", \"scopes\": \"%s\", \"sha256\": \"%s\"}\n", cl_buf_cstr(&token), name,
           read && write ? "read,write"
           : read        ? "read"
                         : "write",
           hex);
    if (fflush(stdout) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "writing the token to stdout");
out:
    cl_memzero(raw, sizeof(raw));
    cl_buf_free(&token);
    cl_buf_free(&b64);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

int cmd_api(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(api_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc == 3 && strcmp(argv[1], "token") == 0 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        fputs(api_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc >= 3 && strcmp(argv[1], "token") == 0 && strcmp(argv[2], "create") == 0)
        return api_token_create(argc - 2, argv + 2);
    return cli_usage_error("api", "unknown subcommand; the one there is: cloister api token create --scope ...");
}
