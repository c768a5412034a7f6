/* SPDX-License-Identifier: Apache-2.0 */
/* cloister cas ...: the certificate and configuration service of cloister-kms (docs/cas.md):
 * session admins' put and get, signed with SigV4 as KMS requests are; and get-cert, the guest
 * side (cloister/cas.h) for programs that take their certificate and secrets from files. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloister/aws_config.h"
#include "cloister/cas.h"
#include "cloister/crypto.h"
#include "cloister/fs.h"
#include "cloister/http.h"
#include "cloister/nsm.h"
#include "cloister/sigv4.h"

#include "cli.h"

#define CAS_DOC_MAX ((size_t)64 << 10)
#define CAS_ANSWER_MAX ((size_t)1 << 20)

static const char cas_usage[] =
    "Usage: cloister cas session put NAME FILE [options]\n"
    "       cloister cas session get NAME [-o FILE] [options]\n"
    "       cloister cas get-cert --session NAME --service NAME --output-dir DIR [options]\n"
    "\n"
    "The certificate and configuration service of cloister-kms (docs/cas.md).\n"
    "\n"
    "Commands:\n"
    "  session put NAME FILE   create or update session NAME from the JSON document FILE ('-': stdin);\n"
    "                          an update must carry \"predecessor\": the current session's hash.\n"
    "                          Prints the answer: {\"name\", \"hash\", \"predecessor\", \"created\", ...}\n"
    "  session get NAME        print {\"name\", \"hash\", \"session\": the document}; with -o FILE, write\n"
    "                          the document to FILE exactly as stored (sha256sum FILE is its hash)\n"
    "  get-cert                inside an enclave: attest, get the service's certificate and secrets,\n"
    "                          write DIR/cert.pem (the chain), DIR/key.pem (mode 0600) and one file per\n"
    "                          secret in DIR/secrets/ (mode 0600)\n"
    "\n"
    "Options (session):\n"
    "  --endpoint-url URL      cloister-kms (else AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, the profile's)\n"
    "  --region R, --profile NAME, --ca-bundle FILE   as for cloister kms: credentials and region\n"
    "                          resolve as the AWS SDKs resolve them; requests are signed with SigV4\n"
    "  -o, --output FILE       session get: write the document to FILE\n"
    "Options (get-cert):\n"
    "  --endpoint-url URL      cloister-kms, as the enclave names it (Host, TLS name); required\n"
    "  --session NAME, --service NAME   required\n"
    "  --output-dir DIR        required; created (0700) if missing\n"
    "  --vsock-port N          reach the endpoint through this parent vsock port (the launcher's\n"
    "                          --proxy N=HOST:PORT; vsock-proxy on Nitro)\n"
    "  --ca-bundle FILE        PEM CAs for an https endpoint\n"
    "  --key-type T            EC_P256 (default), EC_P384, RSA_2048 or RSA_3072: the session's key_type\n"
    "\n"
    "Exit status: 0 success, 1 the request failed or was refused, 2 usage error.\n";

typedef struct cas_args {
    const char *endpoint, *region, *profile, *ca_bundle, *output;
    const char *session, *service, *output_dir, *key_type;
    uint32_t vsock_port;
} cas_args;

/* --- session put / get ---------------------------------------------------------------- */

/* One SigV4-signed request to the service (credential scope kms: it is cloister-kms's endpoint). */
static CL_MUST_USE cl_status cas_signed(const cas_args *a, const char *method, const char *name, const cl_buf *body,
                                        int *status, cl_buf *resp)
{
    cl_status rc = CL_OK;
    cl_aws_config cfg;
    cl_aws_config_init(&cfg);
    cl_http_client *http = NULL;
    cl_buf auth;
    cl_buf_init(&auth, 4096);
    char path[256], date[17], ph[65];
    uint8_t d[CL_SHA256_LEN];
    cl_aws_settings s = {
        .profile = a->profile, .region = a->region, .endpoint_url = a->endpoint, .ca_bundle = a->ca_bundle};
    CL_GUARD_GOTO(cl_aws_config_resolve(&s, "kms", &cfg));
    CL_ENSURE_GOTO(cfg.endpoint_url != NULL, CL_ERR_USAGE,
                   "no cloister-kms endpoint: give --endpoint-url URL or set AWS_ENDPOINT_URL");
    (void)snprintf(path, sizeof(path), "/v1/sessions/%s", name);
    cl_http_config hc = {.ca_file = cfg.ca_bundle, .max_body = CAS_ANSWER_MAX};
    CL_GUARD_CTX_GOTO(cl_http_client_new(cfg.endpoint_url, &hc, &http), "cloister-kms %s", cfg.endpoint_url);
    cl_sigv4_format_amz_date((int64_t)time(NULL), date);
    CL_GUARD_GOTO(cl_sha256(body->data != NULL ? body->data : (const uint8_t *)"", body->len, d));
    (void)cl_hex_encode(d, sizeof(d), ph, sizeof(ph));
    const char *token = cfg.session_token.len > 0 ? cl_buf_cstr(&cfg.session_token) : NULL;
    cl_sigv4_header hdrs[4] = {{"Content-Type", "application/json"},
                               {"Host", cl_http_client_url(http)->authority},
                               {"X-Amz-Date", date},
                               {"X-Amz-Security-Token", token}};
    size_t nh = token != NULL ? 4 : 3;
    cl_sigv4_request sr = {.method = method,
                           .path = path,
                           .headers = hdrs,
                           .n_headers = nh,
                           .signed_headers = token != NULL ? "content-type;host;x-amz-date;x-amz-security-token"
                                                           : "content-type;host;x-amz-date",
                           .payload_sha256_hex = ph,
                           .amz_date = date,
                           .region = cfg.region,
                           .service = "kms"};
    CL_GUARD_GOTO(cl_sigv4_authorization(cfg.access_key_id, cl_buf_cstr(&cfg.secret_access_key), &sr, &auth));
    cl_http_header send[4] = {{"Content-Type", "application/json"}, {"X-Amz-Date", date}, {"Authorization", ""}, {0}};
    send[2].value = cl_buf_cstr(&auth);
    size_t ns = 3;
    if (token != NULL) send[ns++] = (cl_http_header){"X-Amz-Security-Token", token};
    rc = cl_http_request(http, method, path, send, ns, body->data, body->len, status, resp);
    if (rc != CL_OK) rc = cl_error_wrap("cloister-kms %s: %s %s", cfg.endpoint_url, method, path);
out:
    cl_buf_free(&auth);
    cl_http_client_free(http);
    cl_aws_config_free(&cfg);
    return rc;
}

/* The service's {"code", "message"} as the failure. */
static CL_MUST_USE cl_status cas_refused(int status, const cl_buf *resp)
{
    json_t *j = json_loadb((const char *)resp->data, resp->len, 0, NULL);
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    cl_status rc = CL_RAISE(CL_ERR_REMOTE, "the certificate service refused (HTTP %d): %s: %s", status,
                            code ? code : "?", msg ? msg : cl_buf_cstr(resp));
    json_decref(j);
    return rc;
}

static CL_MUST_USE cl_status cas_read_doc(const char *path, cl_buf *doc)
{
    CL_ENSURE(path != NULL, CL_ERR_USAGE, "no session document given");
    if (strcmp(path, "-") != 0) return cl_buf_read_file(doc, path);
    uint8_t tmp[4096];
    size_t got;
    while ((got = fread(tmp, 1, sizeof(tmp), stdin)) > 0) CL_GUARD_CTX(cl_buf_append(doc, tmp, got), "stdin");
    CL_ENSURE(!ferror(stdin), CL_ERR_IO, "reading stdin failed");
    return CL_OK;
}

static CL_MUST_USE cl_status cas_write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    cl_outfile o;
    CL_GUARD(cl_outfile_open(&o, path, true, mode));
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(o.fd, (const uint8_t *)p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            cl_status rc = CL_RAISE_ERRNO(CL_ERR_IO, "cannot write %s", path);
            cl_outfile_abort(&o);
            return rc;
        }
        done += (size_t)w;
    }
    return cl_outfile_commit(&o);
}

static CL_MUST_USE cl_status cas_session(const cas_args *a, const char *verb, const char *name, const char *file)
{
    cl_status rc = CL_OK;
    cl_buf doc, resp;
    cl_buf_init_secret(&doc, CAS_DOC_MAX); /* a session may hold value secrets */
    cl_buf_init_secret(&resp, CAS_ANSWER_MAX);
    json_t *j = NULL;
    int status = 0;
    if (strcmp(verb, "put") == 0) {
        CL_GUARD_CTX_GOTO(cas_read_doc(file, &doc), "session document %s", file);
        CL_GUARD_GOTO(cas_signed(a, "PUT", name, &doc, &status, &resp));
    } else {
        CL_GUARD_GOTO(cas_signed(a, "GET", name, &doc, &status, &resp));
    }
    if (status != 200) {
        rc = cas_refused(status, &resp);
        goto out;
    }
    if (strcmp(verb, "get") == 0 && a->output != NULL) {
        j = json_loadb((const char *)resp.data, resp.len, 0, NULL);
        json_t *text = json_object_get(j, "session");
        CL_ENSURE_GOTO(json_is_string(text), CL_ERR_FORMAT, "the service's answer has no session document");
        CL_GUARD_GOTO(cas_write_file(a->output, json_string_value(text), json_string_length(text), 0600));
        printf("{\"name\": \"%s\", \"hash\": \"%s\"}\n", name, json_string_value(json_object_get(j, "hash")));
    } else {
        CL_ENSURE_GOTO(fwrite(resp.data, 1, resp.len, stdout) == resp.len && fputc('\n', stdout) != EOF, CL_ERR_IO,
                       "cannot write the answer");
    }
out:
    json_decref(j);
    cl_buf_free(&doc);
    cl_buf_free(&resp);
    return rc;
}

/* --- get-cert ---------------------------------------------------------------------------- */

static CL_MUST_USE cl_status cas_get_cert(const cas_args *a)
{
    cl_status rc = CL_OK;
    cl_cas_identity *id = NULL;
    cl_buf chain, key, value;
    cl_buf_init(&chain, (size_t)256 << 10);
    cl_buf_init_secret(&key, (size_t)64 << 10);
    cl_buf_init_secret(&value, (size_t)64 << 10);
    char path[4200], name[160];
    cl_cas_config cfg = {.endpoint = a->endpoint,
                         .ca_file = a->ca_bundle,
                         .vsock_port = a->vsock_port,
                         .session = a->session,
                         .service = a->service,
                         .nsm_fd = -1};
    if (a->key_type != NULL && !cl_key_type_parse(a->key_type, &cfg.key_type))
        CL_FAIL(CL_ERR_USAGE, "--key-type must be EC_P256, EC_P384, RSA_2048 or RSA_3072, not '%s'", a->key_type);
    CL_GUARD(cl_nsm_open(&cfg.nsm_fd));
    CL_GUARD_GOTO(cl_cas_obtain(&cfg, &id));
    if (mkdir(a->output_dir, 0700) != 0 && errno != EEXIST)
        CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", a->output_dir);
    (void)snprintf(path, sizeof(path), "%s/secrets", a->output_dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST) CL_FAIL_ERRNO_GOTO(CL_ERR_IO, "cannot create %s", path);
    rc = cl_cas_chain_pem(id, &chain);
    if (rc == CL_OK) {
        CL_GUARD_GOTO(cl_cas_key_pem(id, &key));
        (void)snprintf(path, sizeof(path), "%s/cert.pem", a->output_dir);
        CL_GUARD_GOTO(cas_write_file(path, chain.data, chain.len, 0644));
        (void)snprintf(path, sizeof(path), "%s/key.pem", a->output_dir);
        CL_GUARD_GOTO(cas_write_file(path, key.data, key.len, 0600));
    } else if (rc == CL_ERR_NOT_FOUND) {
        cl_error_clear(); /* a service given secrets only */
    } else {
        goto out;
    }
    size_t n = 0;
    for (;; n++) {
        cl_buf_reset(&value);
        rc = cl_cas_secret_at(id, n, name, sizeof(name), &value);
        if (rc == CL_ERR_NOT_FOUND) break;
        CL_GUARD_GOTO(rc);
        (void)snprintf(path, sizeof(path), "%s/secrets/%s", a->output_dir, name);
        CL_GUARD_GOTO(cas_write_file(path, value.data, value.len, 0600));
    }
    cl_error_clear();
    rc = CL_OK;
    char serial[64] = "";
    if (cl_cas_serial(id, serial, sizeof(serial)) != CL_OK) serial[0] = '\0';
    printf("{\"session\": \"%s\", \"service\": \"%s\", \"serial\": \"%s\", \"not_after\": %lld, \"secrets\": %zu}\n",
           a->session, a->service, serial, (long long)cl_cas_not_after(id), n);
out:
    cl_cas_identity_free(id);
    if (cfg.nsm_fd >= 0) (void)close(cfg.nsm_fd);
    cl_buf_free(&chain);
    cl_buf_free(&key);
    cl_buf_free(&value);
    return rc;
}

int cmd_cas(int argc, char **argv)
{
    static const char *cmd = "cas";
    enum { O_ENDPOINT = 256, O_REGION, O_PROFILE, O_CA, O_SESSION, O_SERVICE, O_DIR, O_VSOCK, O_KEYTYPE };
    static const struct option opts[] = {{"endpoint-url", required_argument, NULL, O_ENDPOINT},
                                         {"region", required_argument, NULL, O_REGION},
                                         {"profile", required_argument, NULL, O_PROFILE},
                                         {"ca-bundle", required_argument, NULL, O_CA},
                                         {"output", required_argument, NULL, 'o'},
                                         {"session", required_argument, NULL, O_SESSION},
                                         {"service", required_argument, NULL, O_SERVICE},
                                         {"output-dir", required_argument, NULL, O_DIR},
                                         {"vsock-port", required_argument, NULL, O_VSOCK},
                                         {"key-type", required_argument, NULL, O_KEYTYPE},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    cas_args a;
    memset(&a, 0, sizeof(a));
    int c;
    uint64_t v = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(cas_usage, stdout); return CLI_EXIT_OK;
        case O_ENDPOINT: a.endpoint = optarg; break;
        case O_REGION: a.region = optarg; break;
        case O_PROFILE: a.profile = optarg; break;
        case O_CA: a.ca_bundle = optarg; break;
        case 'o': a.output = optarg; break;
        case O_SESSION: a.session = optarg; break;
        case O_SERVICE: a.service = optarg; break;
        case O_DIR: a.output_dir = optarg; break;
        case O_VSOCK:
            if (cli_uint_option(cmd, "--vsock-port", optarg, 1, UINT32_MAX, &v) != CLI_EXIT_OK) return CLI_EXIT_USAGE;
            a.vsock_port = (uint32_t)v;
            break;
        case O_KEYTYPE: a.key_type = optarg; break;
        default: return cli_usage_error(cmd, "unknown option");
        }
    }
    int n = argc - optind;
    char **pos = argv + optind;
    if (n >= 1 && strcmp(pos[0], "session") == 0) {
        if (n < 2 || (strcmp(pos[1], "put") != 0 && strcmp(pos[1], "get") != 0))
            return cli_usage_error(cmd, "session wants put NAME FILE or get NAME");
        bool put = strcmp(pos[1], "put") == 0;
        if (n != (put ? 4 : 3))
            return cli_usage_error(cmd, put ? "session put wants NAME FILE" : "session get wants NAME");
        if (put && a.output != NULL) return cli_usage_error(cmd, "-o goes with session get");
        cl_status rc = cas_session(&a, pos[1], pos[2], put ? pos[3] : NULL);
        return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
    }
    if (n == 1 && strcmp(pos[0], "get-cert") == 0) {
        if (a.endpoint == NULL || a.session == NULL || a.service == NULL || a.output_dir == NULL)
            return cli_usage_error(cmd, "get-cert needs --endpoint-url, --session, --service and --output-dir");
        cl_status rc = cas_get_cert(&a);
        return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
    }
    if (n == 0) return cli_usage_error(cmd, "missing command (session put, session get, get-cert)");
    return cli_usage_error(cmd, "unknown command '%s'", pos[0]);
}
