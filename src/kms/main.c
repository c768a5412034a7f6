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

#include "server.h"

static void kms_usage(FILE *f)
{
    fputs("Usage: cloister-kms --dev [--listen HOST:PORT] [--data DIR] [--threads N] [--max-body BYTES]\n"
          "\n"
          "  --dev             embedded defaults, no config file: plain HTTP on loopback, region\n"
          "                    us-east-1, one principal (access key id 'test', secret 'test') as\n"
          "                    arn:aws:iam::111122223333:user/dev; root key generated in DIR\n"
          "  --listen H:P      address to listen on (default 127.0.0.1:4599; port 0 picks a free one)\n"
          "  --data DIR        state directory: root.key, keys.db, audit.log (default ./cloister-kms-data)\n"
          "  --threads N       worker threads (default 2)\n"
          "  --max-body BYTES  largest request body accepted (default 262144)\n"
          "\nStops cleanly on SIGINT or SIGTERM.\n",
          f);
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
    cl_log_init("cloister-kms");
    static const struct option opts[] = {{"dev", no_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"data", required_argument, NULL, 'D'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"max-body", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    kms_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    (void)snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 4599;
    cfg.threads = 2;
    cfg.max_body = KMS_MAX_BODY_DEFAULT;
    (void)snprintf(cfg.data_dir, sizeof(cfg.data_dir), "./cloister-kms-data");
    (void)snprintf(cfg.region, sizeof(cfg.region), "us-east-1");
    bool dev = false;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dev = true; break;
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
        case 'h': kms_usage(stdout); return 0;
        default: kms_usage(stderr); return 2;
        }
    }
    if (!dev || optind != argc) {
        fprintf(stderr, "cloister-kms: only --dev mode is available in this build (no config file yet)\n");
        kms_usage(stderr);
        return 2;
    }
    static kms_principal dev_principal = {.access_key_id = "test",
                                          .secret = "test",
                                          .arn = "arn:aws:iam::111122223333:user/dev",
                                          .account = "111122223333"};
    cfg.principals = &dev_principal;
    cfg.n_principals = 1;
    if (mkdir(cfg.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cloister-kms: cannot create %s: %s\n", cfg.data_dir, strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    kms_server *s = NULL;
    if (kms_server_start(&cfg, &s) != CL_OK) {
        fprintf(stderr, "cloister-kms: %s\n", cl_error_message());
        return 1;
    }
    cl_status rc = kms_server_run(s);
    kms_server_free(s);
    if (rc != CL_OK) {
        fprintf(stderr, "cloister-kms: %s\n", cl_error_message());
        return 1;
    }
    return 0;
}
