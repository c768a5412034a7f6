/* SPDX-License-Identifier: Apache-2.0 */
#ifndef CLOISTER_CLI_H
#define CLOISTER_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "cloister/error.h"
#include "cloister/keyprovider.h"
#include "cloister/kms_client.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cli_command;

int cmd_seal(int argc, char **argv);
int cmd_unseal(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_fernet(int argc, char **argv);
int cmd_attest(int argc, char **argv);
int cmd_enclave(int argc, char **argv);
int cmd_kms(int argc, char **argv);
int cmd_cas(int argc, char **argv);
int cmd_s3(int argc, char **argv);
int cmd_api(int argc, char **argv);
int cmd_infer_local(int argc, char **argv);
int cmd_infer_remote(int argc, char **argv);
int cmd_train_local(int argc, char **argv);
int cmd_train_job(int argc, char **argv);
/* train-job run: one training job in its enclave (cmd_train_run.c, docs/training-jobs.md). */
int cmd_train_job_run(int argc, char **argv);

/* Prints "cloister: error: <message>" for the thread's last error and returns
 * the exit code for it (2 for usage errors, 1 otherwise). */
int cli_report(cl_status rc);
/* Prints a usage error for `cmd` and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CL_PRINTF(2, 3);
/* An option's whole-number value from min to max (cl_parse_uint / cl_parse_int):
 * CLI_EXIT_OK, or the usage error printed for `cmd` and CLI_EXIT_USAGE. */
CL_MUST_USE int cli_uint_option(const char *cmd, const char *option, const char *s, uint64_t min, uint64_t max,
                                uint64_t *out);
CL_MUST_USE int cli_int_option(const char *cmd, const char *option, const char *s, int64_t min, int64_t max,
                               int64_t *out);
/* Resolves --key: a key file path for the local provider, or a KMS key
 * (alias/NAME, key id, key or alias ARN) reached as the AWS SDKs would, with the
 * command line's --endpoint-url, --region, --profile and --ca-bundle in aws. */
CL_MUST_USE cl_status cli_open_key_provider(const char *key, const cl_aws_settings *aws, cl_key_provider **out);

/* A progress bar on stderr, drawn only when stderr is a terminal and the
 * input is over 64 MiB. */
typedef struct cli_progress {
    bool enabled;
    uint64_t total;
    int last_percent;
    const char *label;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *label, uint64_t total);
void cli_progress_update(void *arg, uint64_t done);
void cli_progress_finish(cli_progress *p);

#endif
