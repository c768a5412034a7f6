/* SPDX-License-Identifier: Apache-2.0 */
/* cloister attest ...: verify Nitro-format attestation documents. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloister/attestation.h"
#include "cloister/buf.h"
#include "cloister/crypto.h"

#include "cli.h"

static const char attest_usage[] =
    "Usage: cloister attest verify DOC [options]\n"
    "\n"
    "Verifies an attestation document (AWS Nitro format: COSE_Sign1, ES384) and prints it as JSON.\n"
    "DOC is a file holding the document as binary CBOR or base64 text ('-' for stdin).\n"
    "\n"
    "Options:\n"
    "  --root PEM          a trusted root certificate (repeatable; at least one), e.g. the\n"
    "                      AWS Nitro Enclaves Root-G1 or the sim root (cloister enclave init-root)\n"
    "  --at TIME           verify as of TIME: 2023-09-18T17:18:00Z or Unix seconds (default: now)\n"
    "  --pcr N=HEX         require PCR N to equal HEX (48 bytes; repeatable)\n"
    "  --nonce HEX         require the document's nonce to equal HEX\n"
    "  --max-age SECONDS   refuse documents older than this at the verification time\n"
    "\n"
    "Exit status: 0 verified, 1 verification failed, 2 usage error.\n";

#define ATTEST_MAX_PCR_ARGS 32

/* "2023-09-18T17:18:00Z" or Unix seconds. */
static bool parse_time_arg(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (rest != NULL) {
        if (*rest != '\0') return false;
        *out = (int64_t)timegm(&tm);
        return *out > 0;
    }
    return cl_parse_int(s, 1, INT64_MAX, "--at", out) == CL_OK;
}

static CL_MUST_USE cl_status read_doc(const char *path, cl_buf *doc)
{
    cl_buf raw, b64;
    cl_status rc = CL_OK;
    cl_buf_init(&raw, CL_ATTEST_MAX_DOC_LEN * 2);
    cl_buf_init(&b64, 0);
    if (strcmp(path, "-") == 0) {
        uint8_t tmp[4096];
        size_t got;
        while ((got = fread(tmp, 1, sizeof(tmp), stdin)) > 0) CL_GUARD_CTX_GOTO(cl_buf_append(&raw, tmp, got), "stdin");
        CL_ENSURE_GOTO(!ferror(stdin), CL_ERR_IO, "reading stdin failed");
    } else {
        CL_GUARD_CTX_GOTO(cl_buf_read_file(&raw, path), "attestation document %s", path);
    }
    CL_ENSURE_GOTO(raw.len > 0, CL_ERR_FORMAT, "attestation document %s is empty", path);
    cl_reader in = cl_reader_make(raw.data, raw.len);
    if (cl_reader_next_is(&in, 0x84) || cl_reader_next_is(&in, 0xd2)) { /* CBOR array(4), or tag 18 */
        CL_GUARD_GOTO(cl_buf_append(doc, raw.data, raw.len));
    } else {
        /* base64 text: drop whitespace (line breaks of wrapped output) */
        cl_buf_init(&b64, raw.len);
        while (cl_reader_remaining(&in) > 0) {
            cl_reader run;
            bool found = false;
            cl_reader_until_any(&in, " \t\r\n", &run, &found);
            const uint8_t *p = NULL;
            size_t n = 0;
            cl_reader_rest(&run, &p, &n);
            CL_GUARD_GOTO(cl_buf_append(&b64, p, n));
            (void)cl_reader_skip_any(&in, " \t\r\n");
        }
        CL_GUARD_CTX_GOTO(cl_base64_decode(cl_buf_cstr(&b64), b64.len, false, doc),
                          "attestation document %s is neither CBOR nor base64", path);
    }
out:
    cl_buf_free(&raw);
    cl_buf_free(&b64);
    return rc;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    cl_buf h;
    cl_buf_init(&h, 2 * n + 1);
    json_t *j = cl_buf_append_hex(&h, p, n) == CL_OK ? json_string(cl_buf_cstr(&h)) : NULL;
    cl_buf_free(&h);
    return j;
}

static json_t *b64_json(const cl_buf *b)
{
    cl_buf t;
    cl_buf_init(&t, 2 * b->len + 8);
    json_t *j = cl_base64_encode(b->data, b->len, false, &t) == CL_OK ? json_string(cl_buf_cstr(&t)) : NULL;
    cl_buf_free(&t);
    return j;
}

static json_t *doc_json(const cl_attest_doc *d, int64_t at)
{
    char ts[32], at_s[32], key[8];
    time_t secs = (time_t)(d->timestamp_ms / 1000);
    struct tm tm;
    ts[0] = '\0';
    if (gmtime_r(&secs, &tm) != NULL) {
        size_t n = strftime(ts, sizeof(ts) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
        (void)snprintf(ts + n, sizeof(ts) - n, ".%03uZ", (unsigned)(d->timestamp_ms % 1000));
    }
    secs = (time_t)at;
    if (gmtime_r(&secs, &tm) == NULL || strftime(at_s, sizeof(at_s), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) at_s[0] = '\0';
    json_t *pcrs = json_object();
    for (unsigned i = 0; i < CL_ATTEST_MAX_PCRS; i++) {
        if (!(d->pcr_mask & (1u << i))) continue;
        (void)snprintf(key, sizeof(key), "%u", i);
        json_object_set_new(pcrs, key, hex_json(d->pcrs[i], CL_ATTEST_PCR_LEN));
    }
    json_t *cab = json_array();
    for (size_t i = 0; i < d->cabundle_len; i++) json_array_append_new(cab, b64_json(&d->cabundle[i]));
    json_t *o = json_object();
    json_object_set_new(o, "module_id", json_string(d->module_id));
    json_object_set_new(o, "digest", json_string(d->digest));
    json_object_set_new(o, "timestamp", json_integer((json_int_t)d->timestamp_ms));
    json_object_set_new(o, "timestamp_utc", json_string(ts));
    json_object_set_new(o, "pcrs", pcrs);
    json_object_set_new(o, "certificate", b64_json(&d->certificate));
    json_object_set_new(o, "cabundle", cab);
    json_object_set_new(o, "public_key",
                        d->has_public_key ? hex_json(d->public_key.data, d->public_key.len) : json_null());
    json_object_set_new(o, "user_data", d->has_user_data ? hex_json(d->user_data.data, d->user_data.len) : json_null());
    json_object_set_new(o, "nonce", d->has_nonce ? hex_json(d->nonce.data, d->nonce.len) : json_null());
    json_object_set_new(o, "cose_tagged", json_boolean(d->tagged));
    json_object_set_new(o, "verified_at", json_string(at_s));
    return o;
}

static int attest_verify(int argc, char **argv)
{
    const char *cmd = "attest verify";
    static const struct option opts[] = {
        {"root", required_argument, NULL, 'r'},
        {"at", required_argument, NULL, 'a'},
        {"pcr", required_argument, NULL, 'p'},
        {"nonce", required_argument, NULL, 'n'},
        {"max-age", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *roots[CL_ATTEST_MAX_ROOTS];
    size_t nroots = 0;
    cl_attest_pcr pcrs[ATTEST_MAX_PCR_ARGS];
    cl_attest_policy pol = {.verify_at = (int64_t)time(NULL)};
    cl_buf nonce, tmp;
    const char *nonce_hex = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (nroots == CL_ATTEST_MAX_ROOTS) return cli_usage_error(cmd, "at most %d --root", CL_ATTEST_MAX_ROOTS);
            roots[nroots++] = optarg;
            break;
        case 'a':
            if (!parse_time_arg(optarg, &pol.verify_at))
                return cli_usage_error(cmd, "--at takes YYYY-MM-DDTHH:MM:SSZ or Unix seconds, not '%s'", optarg);
            break;
        case 'p': {
            if (pol.pcr_count == ATTEST_MAX_PCR_ARGS) return cli_usage_error(cmd, "too many --pcr");
            cl_reader arg = cl_reader_make(optarg, strlen(optarg)), num;
            bool eq = false;
            uint64_t idx = 0;
            cl_reader_until(&arg, '=', &num, &eq);
            if (!eq || cl_reader_decimal(&num, CL_ATTEST_MAX_PCRS - 1, &idx) != CL_OK ||
                cl_reader_remaining(&num) != 0 || cl_reader_skip(&arg, 1) != CL_OK)
                return cli_usage_error(cmd, "--pcr takes N=HEX with N from 0 to 31, not '%s'", optarg);
            const uint8_t *hex = NULL;
            size_t hex_len = 0;
            cl_reader_rest(&arg, &hex, &hex_len);
            cl_buf_init(&tmp, CL_ATTEST_PCR_LEN);
            bool ok = cl_hex_decode((const char *)hex, hex_len, &tmp) == CL_OK && tmp.len == CL_ATTEST_PCR_LEN;
            if (ok) {
                pcrs[pol.pcr_count].index = (unsigned)idx;
                memcpy(pcrs[pol.pcr_count].value, tmp.data, CL_ATTEST_PCR_LEN);
                pol.pcr_count++;
            }
            cl_buf_free(&tmp);
            if (!ok)
                return cli_usage_error(cmd, "--pcr %llu: the value must be %d bytes of hex", (unsigned long long)idx,
                                       CL_ATTEST_PCR_LEN);
            break;
        }
        case 'n': nonce_hex = optarg; break;
        case 'm': {
            uint64_t v = 0;
            int ec = cli_uint_option(cmd, "--max-age (seconds)", optarg, 1, 100ULL * 365 * 86400, &v);
            if (ec != CLI_EXIT_OK) return ec;
            pol.max_age_ms = v * 1000u;
            break;
        }
        case 'h': fputs(attest_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    if (optind + 1 != argc) return cli_usage_error(cmd, "expected exactly one document");
    if (nroots == 0) return cli_usage_error(cmd, "--root PEM is required (the root the document must chain to)");
    const char *path = argv[optind];
    pol.pcrs = pcrs;
    cl_buf_init(&nonce, CL_ATTEST_MAX_FIELD_LEN);
    if (nonce_hex != NULL) {
        if (cl_hex_decode(nonce_hex, strlen(nonce_hex), &nonce) != CL_OK) {
            cl_buf_free(&nonce);
            return cli_usage_error(cmd, "--nonce must be hex, at most %d bytes", CL_ATTEST_MAX_FIELD_LEN);
        }
        pol.nonce = nonce.data != NULL ? nonce.data : (const uint8_t *)"";
        pol.nonce_len = nonce.len;
    }

    cl_status rc = CL_OK;
    cl_attest_roots r;
    cl_attest_doc d;
    cl_buf doc;
    cl_attest_roots_init(&r);
    cl_attest_doc_init(&d);
    cl_buf_init(&doc, CL_ATTEST_MAX_DOC_LEN * 2);
    for (size_t i = 0; i < nroots; i++) CL_GUARD_GOTO(cl_attest_roots_add_file(&r, roots[i]));
    CL_GUARD_GOTO(read_doc(path, &doc));
    CL_GUARD_CTX_GOTO(cl_attest_verify(doc.data, doc.len, &r, &pol, &d), "attestation document %s", path);
    json_t *j = doc_json(&d, pol.verify_at);
    int dumped = j != NULL ? json_dumpf(j, stdout, JSON_INDENT(2)) : -1;
    json_decref(j);
    CL_ENSURE_GOTO(dumped == 0, CL_ERR_IO, "cannot write the JSON output");
    fputc('\n', stdout);
out:
    cl_buf_free(&doc);
    cl_buf_free(&nonce);
    cl_attest_doc_free(&d);
    cl_attest_roots_free(&r);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}

int cmd_attest(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("attest", "missing command (verify)");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(attest_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "verify") == 0) return attest_verify(argc - 1, argv + 1);
    return cli_usage_error("attest", "unknown command '%s'", argv[1]);
}
