/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms: a key management service that speaks the AWS KMS API. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cloister/log.h"

#include "server.h"

static void kms_usage(FILE *f)
{
    fputs("Usage: cloister-kms --config FILE\n"
          "       cloister-kms --dev [--listen HOST:PORT] [--data DIR] [--threads N] [--max-body BYTES]\n"
          "                          [--max-connections N] [--request-timeout SECONDS]\n"
          "                          [--principals-file FILE] [--attestation-root PEM]...\n"
          "                          [--attestation-max-age SECONDS] [--tls-cert PEM --tls-key PEM]\n"
          "                          [--metrics loopback|any|off] [--training FILE]\n"
          "       cloister-kms --version | --help\n"
          "\n"
          "A key management service that speaks the AWS KMS API (docs/kms.md).\n"
          "\n"
          "  --config FILE     run as FILE says (JSON; docs/kms.md, \"Configuration file\"): listen\n"
          "                    address, threads, TLS certificate and key (HTTPS, TLS 1.2/1.3), data\n"
          "                    directory, store, root key file or passphrase (scrypt), regions,\n"
          "                    principals, audit log. Unknown keys and bad values are refused (exit 2).\n"
          "  --dev             embedded defaults, no config file: plain HTTP on loopback, every AWS\n"
          "                    region (the SigV4 credential scope's; default us-east-1), one\n"
          "                    principal (access key id 'test', secret 'test') as\n"
          "                    arn:aws:iam::111122223333:user/dev; root key generated in DIR\n"
          "  --listen HOST:PORT  address to listen on: an IPv4 address, [IPv6] ([::1]:4599) or a host\n"
          "                    name (default 127.0.0.1:4599; port 0 picks a free one)\n"
          "  --data DIR        state directory: root.key, keys.db, audit.log (default ./cloister-kms-data)\n"
          "  --threads N       worker threads (default 2)\n"
          "  --max-body BYTES  largest request body accepted (default 262144)\n"
          "  --max-connections N  connections open at once, 16..1000000 (default 4096); past it the\n"
          "                    one that has waited longest for a complete request is closed\n"
          "  --request-timeout SECONDS  time a whole request (TLS handshake, headers, body) may take\n"
          "                    to arrive, from the connection or the previous answer, 1..3600 (default 20)\n"
          "  --principals-file FILE  more principals: a JSON list of {\"access_key_id\", \"secret\",\n"
          "                    \"arn\"} (as the config file's \"principals\"; ARN arn:aws:iam::ACCOUNT:user/NAME\n"
          "                    or :role/NAME); FILE must be mode 0600. The environment variable\n"
          "                    CLOISTER_KMS_PRINCIPALS may hold the same list (read, then wiped and unset).\n"
          "                    Secrets are never taken from the command line, which every user can read.\n"
          "  --attestation-root PEM  trust attestation documents chaining to this root for the\n"
          "                    Recipient parameter (the sim root from `cloister enclave init-root`,\n"
          "                    or AWS's Nitro root G1); repeatable. Without one, Recipient is refused\n"
          "  --attestation-max-age SECONDS  oldest attestation document accepted (default 300)\n"
          "  --tls-cert PEM, --tls-key PEM  serve HTTPS (TLS 1.2/1.3) with this certificate chain and\n"
          "                    key instead of plain HTTP (clients: AWS_CA_BUNDLE or --ca-bundle)\n"
          "  --metrics WHO     who may GET /metrics (Prometheus text): loopback (default), any or off\n"
          "  --training FILE   the training-job service's settings (SageMaker's CreateTrainingJob): a JSON\n"
          "                    object as the config file's \"training\" (docs/sagemaker.md, \"Configuration\")\n"
          "  --version         print the version and exit\n"
          "\nThe options after --dev only apply to --dev; with --config, the file says it all.\n"
          "Prints the address it listens on (http:// or https://) once ready.\n"
          "GET /healthz answers without authentication: 200 and {\"status\": \"ok\", \"version\", \"store\",\n"
          "\"audit_log\"} while the key store answers and the audit log is written, else 503.\n"
          "The certificate and configuration service answers under /v1/ on the same listener (sessions,\n"
          "GET /v1/values/session=NAME, attested certificates; docs/cas.md); issuing needs an attestation root.\n"
          "With CLOISTER_LOG=info, each request is logged on stderr in one line (operation, principal,\n"
          "key, outcome, latency; never a secret).\n"
          "Stops cleanly on SIGINT or SIGTERM.\n",
          f);
}

/* Where principals' secrets go instead of the command line (docs/security.md, finding 9). */
#define KMS_PRINCIPALS_ENV "CLOISTER_KMS_PRINCIPALS"

/* A usage error in one line, and where the options are listed: exit status 2. */
static int kms_usage_error(const char *fmt, ...) CL_PRINTF(1, 2);
static int kms_usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("cloister-kms: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (cloister-kms --help lists the options)\n", stderr);
    return 2;
}

/* A whole-number option (cl_parse_uint): 0, or the message printed and -1. */
static int kms_option_uint(const char *option, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (cl_parse_uint(s, min, max, option, out) == CL_OK) return 0;
    (void)kms_usage_error("%s", cl_error_message());
    return -1;
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
                                         {"principals-file", required_argument, NULL, 'P'},
                                         {"attestation-root", required_argument, NULL, 'r'},
                                         {"attestation-max-age", required_argument, NULL, 'a'},
                                         {"tls-cert", required_argument, NULL, 'C'},
                                         {"tls-key", required_argument, NULL, 'K'},
                                         {"metrics", required_argument, NULL, 'x'},
                                         {"training", required_argument, NULL, 'g'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
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
    const char *principals_file = NULL;
    const char *training_file = NULL; /* --training: read once --dev is known to be the mode */
    static cl_attest_roots roots;
    cl_attest_roots_init(&roots);
    cfg.attest_max_age_ms = KMS_ATTEST_MAX_AGE_DEFAULT_MS;
    int c;
    uint64_t v = 0;
    /* getopt's own messages are off: each mistake gets one line of ours (kms_usage_error). */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dev = true; break;
        case 'c': config = optarg; break;
        case 'l':
            if (kms_config_parse_listen(optarg, &cfg) != CL_OK)
                return kms_usage_error("--listen: %s", cl_error_message());
            break;
        case 'D': (void)snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", optarg); break;
        case 't':
            if (kms_option_uint("--threads", optarg, 1, 256, &v) != 0) return 2;
            cfg.threads = (int)v;
            break;
        case 'm':
            if (kms_option_uint("--max-body", optarg, 1024, (uint64_t)64 << 20, &v) != 0) return 2;
            cfg.max_body = (size_t)v;
            break;
        case 'M':
            if (kms_option_uint("--max-connections", optarg, 16, KMS_MAX_CONNECTIONS_MAX, &v) != 0) return 2;
            cfg.max_connections = (int)v;
            break;
        case 'T':
            if (kms_option_uint("--request-timeout (seconds)", optarg, 1, KMS_REQUEST_TIMEOUT_MAX, &v) != 0) return 2;
            cfg.request_timeout = (int)v;
            break;
        case 'p':
            /* /proc/PID/cmdline is readable by every user of the machine. The value is not
             * echoed: it is the secret. */
            fprintf(stderr, "cloister-kms: --principal is refused: a secret on the command line is readable by every "
                            "user in /proc/PID/cmdline. Give the principals as a JSON list of {\"access_key_id\", "
                            "\"secret\", \"arn\"} in a mode-0600 file with --principals-file FILE, in the "
                            "environment variable " KMS_PRINCIPALS_ENV ", or in --config FILE's \"principals\"\n");
            return 2;
        case 'P': principals_file = optarg; break;
        case 'r':
            if (cl_attest_roots_add_file(&roots, optarg) != CL_OK) {
                fprintf(stderr, "cloister-kms: --attestation-root %s: %s\n", optarg, cl_error_message());
                return 2;
            }
            break;
        case 'a':
            if (kms_option_uint("--attestation-max-age (seconds)", optarg, 1, 86400, &v) != 0) return 2;
            cfg.attest_max_age_ms = v * 1000;
            break;
        case 'C': (void)snprintf(cfg.tls_cert, sizeof(cfg.tls_cert), "%s", optarg); break;
        case 'K': (void)snprintf(cfg.tls_key, sizeof(cfg.tls_key), "%s", optarg); break;
        case 'x':
            if (kms_config_parse_metrics(optarg, &cfg) != CL_OK)
                return kms_usage_error("--metrics: give loopback, any or off, not '%s'", optarg);
            break;
        case 'g': training_file = optarg; break;
        case 'h': kms_usage(stdout); return 0;
        case 'V': printf("cloister-kms %s\n", CLOISTER_VERSION); return 0;
        case ':': return kms_usage_error("%s needs a value", argv[optind - 1]);
        default: {
            /* A long option's text is in argv; optopt is set for a long option given a value it
             * does not take, and for an unknown short one. */
            const char *arg = argv[optind - 1];
            if (strncmp(arg, "--", 2) == 0 && optopt != 0) return kms_usage_error("%s takes no value", arg);
            if (strncmp(arg, "--", 2) == 0) return kms_usage_error("unknown option %s", arg);
            return kms_usage_error("unknown option -%c", optopt);
        }
        }
        if (dev_only == NULL) {
            for (const struct option *o = opts; o->name != NULL; o++)
                if (o->val == c && c != 'd' && c != 'c') dev_only = o->name;
        }
    }
    if (optind != argc) return kms_usage_error("unexpected argument %s", argv[optind]);
    if (config != NULL && (dev || dev_only != NULL)) {
        fprintf(stderr, "cloister-kms: --config cannot be combined with --%s: put the setting in %s\n",
                dev ? "dev" : dev_only, config);
        return 2;
    }
    if ((cfg.tls_cert[0] != '\0') != (cfg.tls_key[0] != '\0')) {
        fprintf(stderr, "cloister-kms: --tls-cert and --tls-key go together (PEM certificate chain and its key)\n");
        return 2;
    }
    if (config == NULL && !dev)
        return kms_usage_error("give --config FILE, or --dev for a local server with embedded defaults");
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
        if (training_file != NULL && kms_config_load_training(training_file, &cfg) != CL_OK)
            return kms_usage_error("%s", cl_error_message());
        /* --dev's principal first, then --principals-file's, then the environment's. */
        cl_status prc = kms_principal_add(&cfg, "test", "test", "arn:aws:iam::111122223333:user/dev");
        if (prc == CL_OK && principals_file != NULL) prc = kms_principals_load(principals_file, &cfg);
        if (prc == CL_OK) prc = kms_principals_from_env(KMS_PRINCIPALS_ENV, &cfg);
        if (prc != CL_OK) {
            fprintf(stderr, "cloister-kms: %s\n", cl_error_message());
            kms_config_free(&cfg);
            return 2;
        }
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
    kms_config_free(&cfg);
    cl_attest_roots_free(&roots);
    return exit_code;
}
