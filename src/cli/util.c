/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloister/kms_client.h"

#include "cli.h"

#define CLI_PROGRESS_MIN ((uint64_t)64 << 20)

int cli_report(cl_status rc)
{
    fprintf(stderr, "cloister: error: %s\n", cl_error_message());
    return rc == CL_ERR_USAGE ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cloister %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'cloister %s --help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_uint_option(const char *cmd, const char *option, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (cl_parse_uint(s, min, max, option, out) != CL_OK) return cli_usage_error(cmd, "%s", cl_error_message());
    return CLI_EXIT_OK;
}

int cli_int_option(const char *cmd, const char *option, const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (cl_parse_int(s, min, max, option, out) != CL_OK) return cli_usage_error(cmd, "%s", cl_error_message());
    return CLI_EXIT_OK;
}

static bool cli_looks_like_kms_key(const char *key)
{
    return strncmp(key, "alias/", 6) == 0 || strncmp(key, "arn:", 4) == 0 ||
           (strlen(key) == 36 && key[8] == '-' && key[13] == '-' && key[18] == '-' && key[23] == '-');
}

cl_status cli_open_key_provider(const char *key, const cl_aws_settings *aws, cl_key_provider **out)
{
    struct stat sb;
    if (stat(key, &sb) == 0) return cl_local_provider_open(key, out);
    if (cli_looks_like_kms_key(key)) {
        cl_kms_client *client = NULL;
        CL_GUARD_CTX(cl_kms_client_from_aws(aws, &client), "opening KMS key %s", key);
        return cl_kms_provider_open(client, key, out);
    }
    CL_FAIL(CL_ERR_NOT_FOUND, "no key file %s (create one with: cloister key local-create -o %s)", key, key);
}

void cli_progress_init(cli_progress *p, const char *label, uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->enabled = total > CLI_PROGRESS_MIN && isatty(STDERR_FILENO);
    p->total = total;
    p->last_percent = -1;
    p->label = label;
}

void cli_progress_update(void *arg, uint64_t done)
{
    cli_progress *p = arg;
    if (!p->enabled || p->total == 0) return;
    int percent = (int)(done * 100 / p->total);
    if (percent > 100) percent = 100;
    if (percent == p->last_percent) return;
    p->last_percent = percent;
    char bar[41];
    int filled = percent * 40 / 100;
    for (int i = 0; i < 40; i++) bar[i] = i < filled ? '#' : '.';
    bar[40] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%% %llu/%llu MiB", p->label, bar, percent, (unsigned long long)(done >> 20),
            (unsigned long long)(p->total >> 20));
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (p->enabled && p->last_percent >= 0) fputc('\n', stderr);
}
