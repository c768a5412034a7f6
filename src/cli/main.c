/* SPDX-License-Identifier: Apache-2.0 */
/* cloister: the one command for users. */
#include <stdio.h>
#include <string.h>

#include "cloister/log.h"

#include "cli.h"

static const cli_command cli_commands[] = {
    {"seal", "encrypt a file into a sealed envelope", cmd_seal},
    {"unseal", "decrypt a sealed envelope", cmd_unseal},
    {"key", "create and inspect keys", cmd_key},
    {"fernet", "encrypt and decrypt Fernet tokens", cmd_fernet},
    {"attest", "verify attestation documents (AWS Nitro format)", cmd_attest},
    {"enclave", "sim enclaves: images, launcher, attestation root (build, run, init-root, ...)", cmd_enclave},
    {"kms", "manage KMS keys; verify the KMS audit log", cmd_kms},
    {"api", "bearer tokens for cloister-api, the patient-records API (token create)", cmd_api},
    {"s3", "objects in an S3 service: mb, rb, put, get, head, ls, rm", cmd_s3},
    {"cas", "the certificate service: sessions (put, get); get-cert inside an enclave", cmd_cas},
    {"infer", "run one record through a cloister-infer enclave (envelope or RA-TLS channel path)", cmd_infer_remote},
    {"infer-local", "run an ONNX model on a local input (an image, an array, or a patient's measurements)",
     cmd_infer_local},
    {"train-job", "SageMaker training jobs of a cloister-kms: create, describe, list, stop, logs; run (the runner)",
     cmd_train_job},
    {"train-local", "train the breast-cancer classifier on a CSV table and write it as ONNX", cmd_train_local},
};

static void cli_print_usage(FILE *f)
{
    fputs("Usage: cloister <command> [options]\n\nCommands:\n", f);
    for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++)
        fprintf(f, "  %-12s %s\n", cli_commands[i].name, cli_commands[i].summary);
    fputs("\nRun 'cloister <command> --help' for a command's options.\n"
          "Exit status: 0 success, 1 the operation failed, 2 usage error.\n"
          "Set CLOISTER_LOG=debug|info|warn|error for diagnostics on stderr.\n",
          f);
}

int main(int argc, char **argv)
{
    cl_log_init("cloister");
    if (argc < 2) {
        cli_print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        cli_print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("cloister 0.1.0\n");
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(cli_commands) / sizeof(cli_commands[0]); i++) {
        if (strcmp(argv[1], cli_commands[i].name) == 0) return cli_commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "cloister: unknown command '%s'\nTry 'cloister --help'.\n", argv[1]);
    return CLI_EXIT_USAGE;
}
