/* SPDX-License-Identifier: Apache-2.0 */
/* cloister seal / cloister unseal / cloister seal inspect: files to and from sealed envelopes. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/crypto.h"
#include "cloister/envelope.h"
#include "cloister/fs.h"
#include "cloister/log.h"

#include "cli.h"

static const char seal_usage[] =
    "Usage: cloister seal --key KEY [--context k=v]... [--chunk-size BYTES] [--force] IN -o OUT\n"
    "       cloister seal inspect FILE\n"
    "\n"
    "Encrypts IN into the sealed envelope OUT under a fresh data key wrapped by KEY.\n"
    "IN may be - for the standard input and OUT - for the standard output (not a terminal).\n"
    "`cloister seal inspect FILE` prints a sealed file's header as JSON (cloister seal inspect --help);\n"
    "to seal a file named inspect, write ./inspect.\n"
    "\n"
    "  -k, --key KEY         a local key file (cloister key local-create) or a KMS key:\n"
    "                        alias/NAME, key id, key ARN or alias ARN\n"
    "  -c, --context k=v     encryption context entry; repeat for more. Unsealing must give\n"
    "                        the same context (or none, to accept the file's)\n"
    "      --chunk-size N    bytes per authenticated chunk (4096..67108864, default 1048576)\n"
    "  -o, --output OUT      output file, written whole or not at all; - for the standard output\n"
    "  -f, --force           replace OUT if it exists\n"
    "  -h, --help            this text\n"
    "For a KMS key (as the aws CLI; credentials, region and endpoint otherwise as the AWS SDKs find them):\n"
    "      --endpoint-url URL  the KMS (--kms-endpoint too)\n"
    "      --region REGION, --profile NAME, --ca-bundle FILE\n"
    "\n"
    "On a terminal, a file over 64 MiB shows a progress bar on the standard error.\n";

static const char unseal_usage[] =
    "Usage: cloister unseal [--key KEY] [--context k=v]... [--force] IN -o OUT\n"
    "\n"
    "Decrypts the sealed envelope IN into OUT. OUT appears only if every chunk\n"
    "authenticates; on any failure nothing is left behind. IN may be - for the standard\n"
    "input; with -o - the plaintext goes to the standard output as its chunks authenticate:\n"
    "on a failure (exit status 1) what was written is authentic but incomplete.\n"
    "\n"
    "  -k, --key KEY         the local key file or KMS key the file was sealed with. Without it,\n"
    "                        a file sealed under a KMS key is opened with the key its header\n"
    "                        names (the AWS Encryption SDK's discovery mode: give --key to insist\n"
    "                        on one key); a file sealed with a local key file needs its --key\n"
    "  -c, --context k=v     required encryption context; repeat for more. If given, it\n"
    "                        must equal the file's context exactly\n"
    "  -o, --output OUT      output file; - for the standard output\n"
    "  -f, --force           replace OUT if it exists\n"
    "  -h, --help            this text\n"
    "For a KMS key: --endpoint-url URL (--kms-endpoint), --region REGION, --profile NAME,\n"
    "--ca-bundle FILE, as for cloister seal.\n";

static const char inspect_usage[] =
    "Usage: cloister seal inspect FILE\n"
    "\n"
    "Prints the header of the sealed file FILE (- for the standard input) as JSON: the key\n"
    "provider and key id, the encryption context, the chunk size, and the sizes (header,\n"
    "sealed, chunks, plaintext) that follow from the file's length. Nothing is decrypted, so\n"
    "nothing here is authenticated yet: cloister unseal checks every byte.\n"
    "Format: docs/formats/envelope.md.\n";

typedef struct seal_args {
    const char *key;
    cl_aws_settings aws;
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
        {"endpoint-url", required_argument, NULL, 'E'},
        {"region", required_argument, NULL, 'R'},
        {"profile", required_argument, NULL, 'P'},
        {"ca-bundle", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:c:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': a->key = optarg; break;
        case 'E': a->aws.endpoint_url = optarg; break;
        case 'R': a->aws.region = optarg; break;
        case 'P': a->aws.profile = optarg; break;
        case 'A': a->aws.ca_bundle = optarg; break;
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
    if (a->key == NULL && sealing) return cli_usage_error(cmd, "--key is required");
    if (a->out == NULL) return cli_usage_error(cmd, "-o OUT is required (- for the standard output)");
    if (optind != argc - 1) return cli_usage_error(cmd, "expected exactly one input file (- for the standard input)");
    a->in = argv[optind];
    return CLI_EXIT_OK;
}

/* --- the header, read ahead and replayed ------------------------------------------ */

/* A stream that gives the bytes already read (the header) again before the rest of fd, so
 * that the header can be looked at before unsealing without seeking (the standard input
 * cannot seek). */
static CL_MUST_USE cl_status seal_replay_read(cl_stream *s, uint8_t *p, size_t n, size_t *got)
{
    size_t take = cl_reader_remaining(&s->mem);
    if (take == 0) {
        cl_stream fd = cl_stream_fd(s->fd, s->name);
        return fd.read(&fd, p, n, got);
    }
    if (take > n) take = n;
    CL_GUARD(cl_reader_copy(&s->mem, p, take));
    *got = take;
    return CL_OK;
}

/* Reads the whole header from in into head and parses it into h. */
static CL_MUST_USE cl_status seal_read_header(cl_stream *in, cl_buf *head, cl_envelope_header *h)
{
    uint8_t fixed[CL_ENVELOPE_FIXED_LEN];
    size_t got = 0;
    uint32_t len = 0;
    CL_GUARD(cl_stream_read_full(in, fixed, sizeof(fixed), &got));
    CL_GUARD_CTX(cl_envelope_header_length(fixed, got, &len), "%s", in->name);
    CL_GUARD(cl_buf_append(head, fixed, got));
    uint8_t *rest = NULL;
    CL_GUARD(cl_buf_add_space(head, len - got, &rest));
    size_t more = 0;
    CL_GUARD(cl_stream_read_full(in, rest, len - got, &more));
    CL_ENSURE(more == len - got, CL_ERR_FORMAT, "%s: truncated in its header (%zu of %u bytes)", in->name, got + more,
              len);
    CL_GUARD_CTX(cl_envelope_header_parse(head->data, head->len, h), "%s", in->name);
    return CL_OK;
}

/* unseal without --key: the key the header names, if it is a KMS key. */
static CL_MUST_USE cl_status seal_key_from_header(const cl_envelope_header *h, const char *in,
                                                  const cl_aws_settings *aws, cl_key_provider **kp)
{
    char key_id[CL_KEY_ID_MAX + 1], provider[CL_PROVIDER_NAME_MAX + 1];
    (void)snprintf(provider, sizeof(provider), "%.*s", (int)h->provider_len, (const char *)h->provider);
    (void)snprintf(key_id, sizeof(key_id), "%.*s", (int)h->key_id_len, (const char *)h->key_id);
    CL_ENSURE(strcmp(provider, "kms") == 0, CL_ERR_USAGE,
              "%s was sealed with the %s key %s: give its key file with --key FILE (cloister key local-id FILE prints "
              "a key file's id)",
              in, provider, key_id);
    CL_LOG_INFO("%s: unsealing with KMS key %s, named by its header", in, key_id);
    cl_kms_client *client = NULL;
    CL_GUARD_CTX(cl_kms_client_from_aws(aws, &client), "opening KMS key %s (named by %s's header)", key_id, in);
    return cl_kms_provider_open(client, key_id, kp);
}

static int seal_run(int argc, char **argv, bool sealing)
{
    seal_args a = {0};
    cl_kvlist_init(&a.context);
    cl_key_provider *kp = NULL;
    cl_outfile of = {.fd = -1};
    cl_status rc = CL_OK;
    int in_fd = -1;
    bool to_stdout = false;
    cl_envelope_header h;
    memset(&h, 0, sizeof(h));
    cl_kvlist_init(&h.context);
    cl_buf head;
    cl_buf_init(&head, CL_ENVELOPE_HEADER_MAX);
    int exit_code = seal_parse(argc, argv, sealing, &a);
    if (exit_code != CLI_EXIT_OK) {
        cl_kvlist_free(&a.context);
        return exit_code < 0 ? CLI_EXIT_OK : exit_code;
    }

    struct stat sb;
    bool from_stdin = strcmp(a.in, "-") == 0;
    const char *in_name = from_stdin ? "the standard input" : a.in;
    to_stdout = strcmp(a.out, "-") == 0;
    in_fd = from_stdin ? STDIN_FILENO : open(a.in, O_RDONLY | O_CLOEXEC);
    if (in_fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot read %s", a.in);
    if (fstat(in_fd, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat %s", in_name);
    CL_ENSURE_GOTO(!S_ISDIR(sb.st_mode), CL_ERR_USAGE, "%s is a directory", in_name);
    /* A sealed file is binary: printing it on a terminal helps nobody (as age refuses). */
    CL_ENSURE_GOTO(!(sealing && to_stdout && isatty(STDOUT_FILENO)), CL_ERR_USAGE,
                   "refusing to write a sealed file to a terminal: redirect the standard output or give -o FILE");
    cl_stream in = cl_stream_fd(in_fd, in_name);
    if (!sealing) {
        /* The header first: it names the key when --key is not given. */
        CL_GUARD_GOTO(seal_read_header(&in, &head, &h));
        in.read = seal_replay_read;
        in.mem = cl_reader_make(head.data, head.len);
    }
    if (a.key != NULL) {
        CL_GUARD_GOTO(cli_open_key_provider(a.key, &a.aws, &kp));
    } else {
        CL_GUARD_GOTO(seal_key_from_header(&h, in_name, &a.aws, &kp));
    }
    /* Plaintext is written 0600; a sealed file is not secret but stays private too. */
    if (!to_stdout) CL_GUARD_GOTO(cl_outfile_open(&of, a.out, a.force, 0600));

    cli_progress progress;
    cli_progress_init(&progress, sealing ? "sealing" : "unsealing", S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0);
    cl_envelope_opts opts = {
        .chunk_size = a.chunk_size,
        .context = a.have_context ? &a.context : NULL,
        .progress = cli_progress_update,
        .progress_arg = &progress,
    };
    cl_stream out = to_stdout ? cl_stream_fd(STDOUT_FILENO, "the standard output") : cl_stream_fd(of.fd, a.out);
    if (sealing) {
        rc = cl_envelope_seal(kp, &opts, &in, &out);
    } else {
        rc = cl_envelope_unseal(kp, &opts, &in, &out, NULL);
    }
    cli_progress_finish(&progress);
    CL_GUARD_GOTO(rc);
    if (!to_stdout) CL_GUARD_GOTO(cl_outfile_commit(&of));
out:
    cl_outfile_abort(&of);
    if (in_fd > STDIN_FILENO) close(in_fd);
    cl_key_provider_destroy(kp);
    cl_kvlist_free(&a.context);
    cl_envelope_header_free(&h);
    cl_buf_free(&head);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

/* --- cloister seal inspect ------------------------------------------------------------ */

static CL_MUST_USE cl_status seal_json_text(json_t *o, const char *key, const uint8_t *p, size_t n)
{
    json_t *s = json_stringn((const char *)p, n);
    if (s == NULL) {
        char shown[256];
        s = json_string(cl_bytes_show(p, n, shown, sizeof(shown)));
    }
    CL_ENSURE(s != NULL && json_object_set_new(o, key, s) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

/* The body's chunks from its length (docs/formats/envelope.md, "Body"): every chunk but the
 * last is chunk_size + 16 bytes, the last 16 to chunk_size + 16. */
static CL_MUST_USE cl_status seal_body_sizes(const char *name, uint64_t body, uint32_t chunk_size, uint64_t *chunks,
                                             uint64_t *plaintext)
{
    uint64_t full = (uint64_t)chunk_size + CL_GCM_TAG_LEN;
    CL_ENSURE(body >= CL_GCM_TAG_LEN, CL_ERR_FORMAT, "%s is truncated: %llu bytes after the header, not one chunk",
              name, (unsigned long long)body);
    *chunks = (body + full - 1) / full;
    uint64_t last = body - (*chunks - 1) * full;
    CL_ENSURE(last >= CL_GCM_TAG_LEN, CL_ERR_FORMAT,
              "%s is truncated: its last chunk has %llu bytes, fewer than a 16-byte tag", name,
              (unsigned long long)last);
    *plaintext = body - *chunks * CL_GCM_TAG_LEN;
    return CL_OK;
}

static CL_MUST_USE cl_status seal_inspect_run(const char *path)
{
    cl_status rc = CL_OK;
    bool from_stdin = strcmp(path, "-") == 0;
    const char *name = from_stdin ? "the standard input" : path;
    int fd = from_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    json_t *o = NULL, *ctx = NULL;
    char *text = NULL;
    cl_envelope_header h;
    memset(&h, 0, sizeof(h));
    cl_kvlist_init(&h.context);
    cl_buf head;
    cl_buf_init(&head, CL_ENVELOPE_HEADER_MAX);
    if (fd < 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot read %s", path);
    struct stat sb;
    if (fstat(fd, &sb) != 0) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot stat %s", name);
    CL_ENSURE_GOTO(!S_ISDIR(sb.st_mode), CL_ERR_USAGE, "%s is a directory", name);
    cl_stream in = cl_stream_fd(fd, name);
    CL_GUARD_GOTO(seal_read_header(&in, &head, &h));
    uint64_t total = head.len;
    if (S_ISREG(sb.st_mode)) {
        total = (uint64_t)sb.st_size;
    } else { /* a pipe: count the rest */
        uint8_t chunk[65536];
        for (size_t got = 1; got > 0; total += got) CL_GUARD_GOTO(in.read(&in, chunk, sizeof(chunk), &got));
    }
    uint64_t chunks = 0, plaintext = 0;
    CL_GUARD_GOTO(seal_body_sizes(name, total - head.len, h.chunk_size, &chunks, &plaintext));
    o = json_object();
    ctx = json_object();
    CL_ENSURE_GOTO(o != NULL && ctx != NULL, CL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < h.context.count; i++) {
        json_t *v = json_string(h.context.items[i].value);
        CL_ENSURE_GOTO(v != NULL, CL_ERR_FORMAT, "%s: encryption context value of %s is not UTF-8", name,
                       h.context.items[i].key);
        CL_ENSURE_GOTO(json_object_set_new(ctx, h.context.items[i].key, v) == 0, CL_ERR_FORMAT,
                       "%s: an encryption context key is not UTF-8", name);
    }
    CL_ENSURE_GOTO(json_object_set_new(o, "Format", json_string("cloister sealed envelope")) == 0 &&
                       json_object_set_new(o, "Version", json_integer(h.version)) == 0 &&
                       json_object_set_new(o, "Algorithm", json_string("AES-256-GCM, HKDF-SHA256 chunk key")) == 0,
                   CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(seal_json_text(o, "KeyProvider", h.provider, h.provider_len));
    CL_GUARD_GOTO(seal_json_text(o, "KeyId", h.key_id, h.key_id_len));
    CL_ENSURE_GOTO(json_object_set(o, "EncryptionContext", ctx) == 0 &&
                       json_object_set_new(o, "ChunkSize", json_integer(h.chunk_size)) == 0 &&
                       json_object_set_new(o, "WrappedKeyBytes", json_integer((json_int_t)h.wrapped_key_len)) == 0 &&
                       json_object_set_new(o, "HeaderBytes", json_integer(h.header_len)) == 0 &&
                       json_object_set_new(o, "SealedBytes", json_integer((json_int_t)total)) == 0 &&
                       json_object_set_new(o, "Chunks", json_integer((json_int_t)chunks)) == 0 &&
                       json_object_set_new(o, "PlaintextBytes", json_integer((json_int_t)plaintext)) == 0,
                   CL_ERR_NOMEM, "out of memory");
    text = json_dumps(o, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    CL_ENSURE_GOTO(text != NULL, CL_ERR_NOMEM, "out of memory");
    CL_ENSURE_GOTO(puts(text) >= 0, CL_ERR_IO, "cannot write to the standard output");
out:
    free(text);
    json_decref(o);
    json_decref(ctx);
    cl_envelope_header_free(&h);
    cl_buf_free(&head);
    if (fd > STDIN_FILENO) close(fd);
    return rc;
}

static int seal_inspect(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(inspect_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc != 2 || (argv[1][0] == '-' && argv[1][1] != '\0'))
        return cli_usage_error("seal inspect", "expected one sealed FILE (- for the standard input)");
    cl_status rc = seal_inspect_run(argv[1]);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

int cmd_seal(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0) return seal_inspect(argc - 1, argv + 1);
    return seal_run(argc, argv, true);
}

int cmd_unseal(int argc, char **argv) { return seal_run(argc, argv, false); }
