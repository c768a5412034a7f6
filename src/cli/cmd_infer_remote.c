/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister infer: the client of the cloister-infer worker (docs/worker.md); the logic is in
 * libcloister (cloister/infer_client.h), this is the command line around it.
 *   --enclave SOCKET: the envelope path. Sends a sealed record with a fresh request id, checks
 *     that the result is bound to it, unseals it with the caller's KMS credentials.
 *   --channel SOCKET: the RA-TLS channel path. Verifies the enclave (root, PCR0, its nonce)
 *     in the handshake, then sends the plaintext record inside TLS 1.3.
 * OUT appears whole or not at all.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cloister/fs.h"
#include "cloister/infer.h"
#include "cloister/infer_client.h"
#include "cloister/stream.h"

#include "cli.h"

#define REMOTE_PCR_HEX_LEN ((size_t)2 * CL_ATTEST_PCR_LEN)

static const char *remote_usage =
    "Usage: cloister infer --enclave SOCKET INPUT.sealed -o OUT [--keep-sealed] [--force]\n"
    "       cloister infer --channel SOCKET --root ROOT.pem (--expect-pcr0 HEX | --policy FILE) INPUT -o OUT\n"
    "                      [--force]\n"
    "       cloister infer --enclave SOCKET --stop\n"
    "\n"
    "Runs one record through the cloister-infer worker in an enclave. SOCKET is the host end of\n"
    "one of the worker's vsock ports: <state dir>/<enclave id>/vsock-<port>.sock for a sim enclave.\n"
    "\n"
    "Envelope path (--enclave, the worker's listen_port): INPUT is sealed under a KMS key\n"
    "(cloister seal --key alias/...). The host relays only ciphertext. The enclave answers with\n"
    "the result sealed under a fresh data key of the same KMS key, bound to this request (a\n"
    "fresh request id and SHA-384 of INPUT in its encryption context); this command checks the\n"
    "binding and unseals it with the KMS credentials of the environment (AWS_ACCESS_KEY_ID,\n"
    "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_KMS, as cloister unseal). Which enclave may read\n"
    "INPUT is decided by the KMS key's policy (kms:RecipientAttestation:PCR0), not by this\n"
    "command: --expect-pcr0 does not apply to this path.\n"
    "\n"
    "Channel path (--channel, the worker's channel_port): RA-TLS. The enclave's certificate\n"
    "carries an attestation document made for this connection; it must chain to ROOT.pem, carry\n"
    "PCR0 = HEX and this client's nonce, or nothing is sent. INPUT is the plaintext record.\n"
    "--policy FILE names the expected PCRs instead: a JSON object {\"PCR0\": HEX, \"PCR8\": HEX, ...},\n"
    "or the output of cloister enclave build (its \"Measurements\"); every PCR named must match.\n"
    "\n"
    "  -e, --enclave SOCKET   envelope path: the worker's host socket (listen_port)\n"
    "      --channel SOCKET   channel path: the worker's host socket (channel_port)\n"
    "  -r, --root FILE        channel path: the attestation root(s) to trust (PEM)\n"
    "  -p, --expect-pcr0 HEX  channel path: the enclave image's PCR0 (96 hex digits)\n"
    "  -P, --policy FILE      channel path: the expected PCRs, as JSON (above)\n"
    "  -o, --output FILE      the result (no overwrite without --force): a classifier's JSON\n"
    "                         {\"label\", \"probabilities\"}; for a segmentation model, FILE.png\n"
    "                         receives the mask and the summary (area, bounding box) goes to stdout,\n"
    "                         any other name the whole JSON with the mask in base64\n"
    "      --keep-sealed      envelope path: write the sealed result instead of unsealing it\n"
    "  -f, --force            overwrite FILE\n"
    "      --stop             envelope port only: tell the worker to finish its requests and exit\n";

typedef struct remote_args {
    const char *enclave, *channel, *root, *pcr0, *policy, *out, *in;
    bool force, keep_sealed;
} remote_args;

/* One expected PCR from HEX (96 digits). */
static CL_MUST_USE cl_status remote_pcr(unsigned index, const char *hex, cl_attest_pcr *out)
{
    cl_status rc = CL_OK;
    cl_buf v;
    cl_buf_init(&v, CL_ATTEST_PCR_LEN);
    size_t hex_len = strnlen(hex, REMOTE_PCR_HEX_LEN + 1);
    CL_ENSURE_GOTO(hex_len == REMOTE_PCR_HEX_LEN && cl_hex_decode(hex, hex_len, &v) == CL_OK &&
                       v.len == CL_ATTEST_PCR_LEN,
                   CL_ERR_USAGE, "the expected PCR%u must be %zu hex digits (cloister enclave build prints it)", index,
                   REMOTE_PCR_HEX_LEN);
    out->index = index;
    memcpy(out->value, v.data, CL_ATTEST_PCR_LEN);
out:
    cl_buf_free(&v);
    return rc;
}

/* --policy FILE: {"PCR<n>": HEX, ...}, or cloister enclave build's output with its "Measurements". */
static CL_MUST_USE cl_status remote_policy_load(const char *path, cl_attest_pcr *pcrs, size_t *count)
{
    cl_status rc = CL_OK;
    json_t *root = NULL;
    json_error_t jerr;
    cl_buf raw;
    cl_buf_init(&raw, (size_t)64 << 10);
    *count = 0;
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&raw, path), "reading the policy %s", path);
    root = json_loadb((const char *)raw.data, raw.len, JSON_REJECT_DUPLICATES, &jerr);
    CL_ENSURE_GOTO(root != NULL && json_is_object(root), CL_ERR_USAGE, "policy %s is not a JSON object (line %d: %s)",
                   path, jerr.line, jerr.text);
    json_t *m = json_object_get(root, "Measurements");
    json_t *obj = json_is_object(m) ? m : root;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "HashAlgorithm") == 0) continue;
        cl_reader name = cl_reader_make(key, strlen(key));
        uint64_t idx = 0;
        bool is_pcr = cl_reader_expect(&name, "PCR", 3, "PCR") == CL_OK &&
                      cl_reader_decimal(&name, CL_ATTEST_MAX_PCRS - 1, &idx) == CL_OK &&
                      cl_reader_remaining(&name) == 0;
        CL_ENSURE_GOTO(is_pcr && json_is_string(v) && *count < CL_ATTEST_MAX_PCRS, CL_ERR_USAGE,
                       "policy %s: \"%s\" is not a \"PCR<n>\": \"HEX\" entry with n from 0 to 31", path, key);
        CL_GUARD_CTX_GOTO(remote_pcr((unsigned)idx, json_string_value(v), &pcrs[*count]), "policy %s", path);
        (*count)++;
    }
    CL_ENSURE_GOTO(*count > 0, CL_ERR_USAGE, "policy %s names no PCR", path);
out:
    json_decref(root);
    cl_buf_free(&raw);
    return rc;
}

static CL_MUST_USE cl_status remote_channel(const remote_args *a, const uint8_t *in, size_t n, cl_buf *res)
{
    cl_status rc = CL_OK;
    bool client_made = false;
    cl_attest_roots roots;
    cl_attest_roots_init(&roots);
    cl_ratls_client client;
    cl_attest_pcr pcrs[CL_ATTEST_MAX_PCRS];
    size_t pcr_count = 1;
    CL_GUARD_CTX_GOTO(cl_attest_roots_add_file(&roots, a->root), "attestation root %s", a->root);
    if (a->policy != NULL)
        CL_GUARD_GOTO(remote_policy_load(a->policy, pcrs, &pcr_count));
    else
        CL_GUARD_CTX_GOTO(remote_pcr(0, a->pcr0, &pcrs[0]), "--expect-pcr0");
    cl_ratls_client_config cfg = {.roots = &roots, .pcrs = pcrs, .pcr_count = pcr_count};
    CL_GUARD_GOTO(cl_ratls_client_init(&client, &cfg));
    client_made = true;
    CL_GUARD_GOTO(cl_infer_client_channel(a->channel, &client, in, n, res));
out:
    if (client_made) cl_ratls_client_free(&client);
    cl_attest_roots_free(&roots);
    return rc;
}

/* OUT names a PNG and the result is plaintext: write the segmentation mask there. */
static bool remote_wants_mask(const remote_args *a)
{
    size_t n = strlen(a->out);
    return !a->keep_sealed && n > 4 && strcasecmp(a->out + n - 4, ".png") == 0;
}

static CL_MUST_USE cl_status infer_remote(const remote_args *a)
{
    cl_status rc = CL_OK;
    cl_outfile of = {.fd = -1};
    cl_buf in, res;
    /* The channel path's input and the unsealed result are plaintext records. */
    cl_buf_init_secret(&in, CL_FRAME_MAX);
    cl_buf_init_secret(&res, CL_FRAME_MAX);
    cl_buf summary, mask;
    cl_buf_init_secret(&summary, CL_FRAME_MAX);
    cl_buf_init_secret(&mask, CL_FRAME_MAX);
    CL_GUARD_CTX_GOTO(cl_buf_read_file(&in, a->in), "reading %s", a->in);
    /* Opened first, so that an existing OUT stops us before the enclave does any work. */
    CL_GUARD_GOTO(cl_outfile_open(&of, a->out, a->force, 0600));
    if (a->channel != NULL) {
        CL_GUARD_GOTO(remote_channel(a, in.data, in.len, &res));
    } else {
        cl_infer_envelope_opts eo = {.keep_sealed = a->keep_sealed};
        CL_GUARD_GOTO(cl_infer_client_envelope(a->enclave, in.data, in.len, &eo, &res));
    }
    cl_stream s = cl_stream_fd(of.fd, a->out);
    if (remote_wants_mask(a)) {
        /* A segmentation result: the mask into OUT, the summary on stdout. */
        CL_GUARD_CTX_GOTO(cl_infer_result_split_mask(res.data, res.len, &summary, &mask), "the enclave's result");
        CL_GUARD_GOTO(s.write(&s, mask.data, mask.len));
    } else {
        CL_GUARD_GOTO(s.write(&s, res.data, res.len));
    }
    CL_GUARD_GOTO(cl_outfile_commit(&of));
    if (summary.len > 0) printf("%.*s\n", (int)summary.len, (const char *)summary.data);
out:
    cl_outfile_abort(&of);
    cl_buf_free(&in);
    cl_buf_free(&res);
    cl_buf_free(&summary);
    cl_buf_free(&mask);
    return rc;
}

int cmd_infer_remote(int argc, char **argv)
{
    static const struct option opts[] = {
        {"enclave", required_argument, NULL, 'e'},
        {"channel", required_argument, NULL, 'c'},
        {"root", required_argument, NULL, 'r'},
        {"expect-pcr0", required_argument, NULL, 'p'},
        {"policy", required_argument, NULL, 'P'},
        {"output", required_argument, NULL, 'o'},
        {"keep-sealed", no_argument, NULL, 'k'},
        {"force", no_argument, NULL, 'f'},
        {"stop", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    remote_args a;
    memset(&a, 0, sizeof(a));
    bool stop = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "e:r:p:P:o:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'e': a.enclave = optarg; break;
        case 'c': a.channel = optarg; break;
        case 'r': a.root = optarg; break;
        case 'p': a.pcr0 = optarg; break;
        case 'P': a.policy = optarg; break;
        case 'o': a.out = optarg; break;
        case 'k': a.keep_sealed = true; break;
        case 'f': a.force = true; break;
        case 's': stop = true; break;
        case 'h': fputs(remote_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("infer", "unknown option");
        }
    }
    if ((a.enclave == NULL) == (a.channel == NULL))
        return cli_usage_error("infer", "give one of --enclave SOCKET (envelope path) or --channel SOCKET");
    if (stop) {
        if (a.enclave == NULL || argc != optind)
            return cli_usage_error("infer", "--stop goes with --enclave SOCKET and nothing else");
        cl_status rc = cl_infer_client_stop(a.enclave);
        return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
    }
    if (a.channel != NULL && (a.root == NULL || (a.pcr0 == NULL) == (a.policy == NULL)))
        return cli_usage_error("infer",
                               "--channel needs --root ROOT.pem and one of --expect-pcr0 HEX or --policy FILE");
    if (a.enclave != NULL && (a.root != NULL || a.pcr0 != NULL || a.policy != NULL))
        return cli_usage_error("infer",
                               "--root, --expect-pcr0 and --policy are for --channel; on the envelope path the KMS "
                               "key policy decides which enclave may read the input");
    if (a.channel != NULL && a.keep_sealed) return cli_usage_error("infer", "--keep-sealed is for --enclave");
    if (a.out == NULL) return cli_usage_error("infer", "-o OUT is required");
    if (argc - optind != 1) return cli_usage_error("infer", "expected one INPUT");
    a.in = argv[optind];
    cl_status rc = infer_remote(&a);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}
