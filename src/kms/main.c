/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: a key management service that speaks the AWS KMS API. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cloister/log.h"
#include "cloister/mem.h"

#include "server.h"

static void kms_usage(FILE *f)
{
    fputs("Usage: cloister-kms --config FILE\n"
          "       cloister-kms --dev [--listen HOST:PORT] [--data DIR] [--threads N] [--max-body BYTES]\n"
          "                          [--max-connections N] [--request-timeout SECONDS]\n"
          "                          [--principal ACCESS_KEY_ID:SECRET:ARN]... [--attestation-root PEM]...\n"
          "                          [--attestation-max-age SECONDS] [--tls-cert PEM --tls-key PEM]\n"
          "\n"
          "  --config FILE     run as FILE says (JSON; docs/kms.md, \"Configuration file\"): listen\n"
          "                    address, threads, TLS certificate and key (HTTPS, TLS 1.2/1.3), data\n"
          "                    directory, store, root key file or passphrase (scrypt), region,\n"
          "                    principals, audit log. Unknown keys and bad values are refused (exit 2).\n"
          "  --dev             embedded defaults, no config file: plain HTTP on loopback, region\n"
          "                    us-east-1, one principal (access key id 'test', secret 'test') as\n"
          "                    arn:aws:iam::111122223333:user/dev; root key generated in DIR\n"
          "  --listen H:P      address to listen on (default 127.0.0.1:4599; port 0 picks a free one)\n"
          "  --data DIR        state directory: root.key, keys.db, audit.log (default ./cloister-kms-data)\n"
          "  --threads N       worker threads (default 2)\n"
          "  --max-body BYTES  largest request body accepted (default 262144)\n"
          "  --max-connections N  connections open at once, 16..1000000 (default 4096); past it the\n"
          "                    one that has waited longest for a complete request is closed\n"
          "  --request-timeout SECONDS  time a whole request (TLS handshake, headers, body) may take\n"
          "                    to arrive, from the connection or the previous answer, 1..3600 (default 20)\n"
          "  --principal A:S:ARN  one more principal: access key id A, secret S, acting as the IAM\n"
          "                    ARN (arn:aws:iam::ACCOUNT:user/NAME or :role/NAME); repeatable\n"
          "  --attestation-root PEM  trust attestation documents chaining to this root for the\n"
          "                    Recipient parameter (the sim root from `cloister enclave init-root`,\n"
          "                    or AWS's Nitro root G1); repeatable. Without one, Recipient is refused\n"
          "  --attestation-max-age SECONDS  oldest attestation document accepted (default 300)\n"
          "  --tls-cert PEM, --tls-key PEM  serve HTTPS (TLS 1.2/1.3) with this certificate chain and\n"
          "                    key instead of plain HTTP (clients: AWS_CA_BUNDLE or --ca-bundle)\n"
          "\nThe options after --dev only apply to --dev; with --config, the file says it all.\n"
          "Prints the address it listens on (http:// or https://) once ready.\n"
          "Stops cleanly on SIGINT or SIGTERM.\n",
          f);
}

#define KMS_MAX_PRINCIPALS 16

/* ACCESS_KEY_ID:SECRET:arn:aws:iam::ACCOUNT:... */
static int kms_parse_principal(const char *arg, kms_principal *p)
{
    char id[129], secret[129];
    const char *c1 = strchr(arg, ':');
    const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c2 == NULL) return -1;
    if ((size_t)(c1 - arg) >= sizeof(id) || (size_t)(c2 - c1 - 1) >= sizeof(secret)) return -1;
    (void)snprintf(id, sizeof(id), "%.*s", (int)(c1 - arg), arg);
    (void)snprintf(secret, sizeof(secret), "%.*s", (int)(c2 - c1 - 1), c1 + 1);
    int rc = kms_principal_make(id, secret, c2 + 1, p) == CL_OK ? 0 : -1;
    cl_memzero(secret, sizeof(secret));
    return rc;
}

static int kms_parse_listen(const char *arg, kms_config *cfg)
{
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || (size_t)(colon - arg) >= sizeof(cfg->host) || colon == arg) return -1;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || port < 0 || port > 65535) return -1;
    (void)snprintf(cfg->host, sizeof(cfg->host), "%.*s", (int)(colon - arg), arg);
    cfg->port = (int)port;
    return 0;
}

int main(int argc, char **argv)
{
    /* Before anything calls jansson (the config file) or libevent. */
    kms_wipe_library_heaps();
    cl_log_init("cloister-kms");
    static const struct option opts[] = {{"dev", no_argument, NULL, 'd'},
                                         {"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"data", required_argument, NULL, 'D'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"max-body", required_argument, NULL, 'm'},
                                         {"max-connections", required_argument, NULL, 'M'},
                                         {"request-timeout", required_argument, NULL, 'T'},
                                         {"principal", required_argument, NULL, 'p'},
                                         {"attestation-root", required_argument, NULL, 'r'},
                                         {"attestation-max-age", required_argument, NULL, 'a'},
                                         {"tls-cert", required_argument, NULL, 'C'},
                                         {"tls-key", required_argument, NULL, 'K'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    kms_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    (void)snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 4599;
    cfg.threads = 2;
    cfg.max_body = KMS_MAX_BODY_DEFAULT;
    cfg.max_connections = KMS_MAX_CONNECTIONS_DEFAULT;
    cfg.request_timeout = KMS_REQUEST_TIMEOUT_DEFAULT;
    (void)snprintf(cfg.data_dir, sizeof(cfg.data_dir), "./cloister-kms-data");
    (void)snprintf(cfg.region, sizeof(cfg.region), "us-east-1");
    bool dev = false;
    const char *config = NULL;
    const char *dev_only = NULL; /* the first --dev option given */
    static kms_principal principals[KMS_MAX_PRINCIPALS] = {{.access_key_id = "test",
                                                            .secret = "test",
                                                            .arn = "arn:aws:iam::111122223333:user/dev",
                                                            .account = "111122223333"}};
    size_t n_principals = 1;
    static cl_attest_roots roots;
    cl_attest_roots_init(&roots);
    cfg.attest_max_age_ms = KMS_ATTEST_MAX_AGE_DEFAULT_MS;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dev = true; break;
        case 'c': config = optarg; break;
        case 'l':
            if (kms_parse_listen(optarg, &cfg) != 0) {
                fprintf(stderr, "cloister-kms: --listen wants HOST:PORT, not %s\n", optarg);
                return 2;
            }
            break;
        case 'D': (void)snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", optarg); break;
        case 't':
            cfg.threads = (int)strtol(optarg, &end, 10);
            if (*end != '\0' || cfg.threads < 1 || cfg.threads > 256) {
                fprintf(stderr, "cloister-kms: --threads wants 1..256\n");
                return 2;
            }
            break;
        case 'm':
            cfg.max_body = (size_t)strtoull(optarg, &end, 10);
            if (*end != '\0' || cfg.max_body < 1024 || cfg.max_body > ((size_t)64 << 20)) {
                fprintf(stderr, "cloister-kms: --max-body wants 1024..67108864\n");
                return 2;
            }
            break;
        case 'M': {
            long long v = strtoll(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v < 16 || v > KMS_MAX_CONNECTIONS_MAX) {
                fprintf(stderr, "cloister-kms: --max-connections wants 16..%d\n", KMS_MAX_CONNECTIONS_MAX);
                return 2;
            }
            cfg.max_connections = (int)v;
            break;
        }
        case 'T': {
            long long v = strtoll(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v < 1 || v > KMS_REQUEST_TIMEOUT_MAX) {
                fprintf(stderr, "cloister-kms: --request-timeout wants 1..%d seconds\n", KMS_REQUEST_TIMEOUT_MAX);
                return 2;
            }
            cfg.request_timeout = (int)v;
            break;
        }
        case 'p':
            if (n_principals == KMS_MAX_PRINCIPALS || kms_parse_principal(optarg, &principals[n_principals]) != 0) {
                fprintf(stderr,
                        "cloister-kms: --principal wants ACCESS_KEY_ID:SECRET:arn:aws:iam::ACCOUNT:..."
                        " (at most %d)\n",
                        KMS_MAX_PRINCIPALS - 1);
                return 2;
            }
            n_principals++;
            break;
        case 'r':
            if (cl_attest_roots_add_file(&roots, optarg) != CL_OK) {
                fprintf(stderr, "cloister-kms: --attestation-root %s: %s\n", optarg, cl_error_message());
                return 2;
            }
            break;
        case 'a': {
            unsigned long long secs = strtoull(optarg, &end, 10);
            if (*end != '\0' || secs < 1 || secs > 86400) {
                fprintf(stderr, "cloister-kms: --attestation-max-age wants 1..86400 seconds\n");
                return 2;
            }
            cfg.attest_max_age_ms = secs * 1000;
            break;
        }
        case 'C': (void)snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s", optarg); break;
        case 'K': (void)snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s", optarg); break;
        case 'h': kms_usage(stdout); return 0;
        default: kms_usage(stderr); return 2;
        }
        if (dev_only == NULL) {
            for (const struct option *o = opts; o->name != NULL; o++)
                if (o->val == c && c != 'd' && c != 'c') dev_only = o->name;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cloister-kms: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (config != NULL && (dev || dev_only != NULL)) {
        fprintf(stderr, "cloister-kms: --config cannot be combined with --%s: put the setting in %s\n",
                dev ? "dev" : dev_only, config);
        return 2;
    }
    if ((cfg.tls_cert[0] != '\0') != (cfg.tls_key[0] != '\0')) {
        fprintf(stderr, "cloister-kms: --tls-cert and --tls-key go together (PEM certificate chain and its key)\n");
        return 2;
    }
    if (config == NULL && !dev) {
        fprintf(stderr, "cloister-kms: give --config FILE, or --dev for a local server with embedded defaults\n");
        kms_usage(stderr);
        return 2;
    }
    if (config != NULL) {
        if (kms_config_load(config, &cfg) != CL_OK) {
            fprintf(stderr, "cloister-kms: %s\n", cl_error_message());
            return 2;
        }
        for (size_t i = 0; i < cfg.n_attest_root_files; i++) {
            if (cl_attest_roots_add_file(&roots, cfg.attest_root_files[i]) != CL_OK) {
                fprintf(stderr, "cloister-kms: config %s: attestation_roots[%zu]: %s\n", config, i, cl_error_message());
                kms_config_free(&cfg);
                return 2;
            }
        }
    } else {
        cfg.principals = principals;
        cfg.n_principals = n_principals;
    }
    int exit_code = 1;
    kms_server *s = NULL;
    if (roots.count > 0) {
        /* Verified chains are remembered, so that an attested call costs one signature check. */
        if (cl_attest_roots_enable_cache(&roots, 1024) != CL_OK) {
            fprintf(stderr, "cloister-kms: %s\n", cl_error_message());
            goto out;
        }
        cfg.attest_roots = &roots;
    }
    if (mkdir(cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cloister-kms: cannot create %s: %s\n", cfg.data_dir, strerror(errno));
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    /* A write past RLIMIT_FSIZE must fail (EFBIG: the audit line is refused and its request
     * answered KMSInternalException), not kill the server. */
    signal(SIGXFSZ, SIG_IGN);
    if (kms_server_start(&cfg, &s) != CL_OK) {
        fprintf(stderr, "cloister-kms: %s\n", cl_error_message());
        goto out;
    }
    cl_status rc = kms_server_run(s);
    kms_server_free(s);
    s = NULL;
    if (rc != CL_OK) {
        fprintf(stderr, "cloister-kms: %s\n", cl_error_message());
        goto out;
    }
    exit_code = 0;
out:
    if (config != NULL) kms_config_free(&cfg);
    cl_attest_roots_free(&roots);
    cl_memzero(principals, sizeof(principals));
    return exit_code;
}
