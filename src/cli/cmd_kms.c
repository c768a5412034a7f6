/* SPDX-License-Identifier: Apache-2.0 */
/* cloister kms: a small KMS command line for humans, plus audit-verify. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/audit.h"
#include "cloister/kms_client.h"

#include "cli.h"

static const char kms_usage[] =
    "Usage: cloister kms <subcommand> [options]\n"
    "\n"
    "Subcommands (KMS endpoint and credentials from the AWS environment, or --kms-endpoint URL):\n"
    "  create-key [--description TEXT] [--policy FILE]   create a symmetric key\n"
    "  list-keys                                         list the keys of the account\n"
    "  describe-key --key-id ID                          show a key (id, ARN, alias/NAME, alias ARN)\n"
    "  create-alias --alias-name alias/NAME --target-key-id ID\n"
    "  put-key-policy --key-id ID --policy FILE          replace a key's policy\n"
    "  audit-verify FILE                                 check a cloister-kms audit log's hash chain\n"
    "\n"
    "Responses are printed as the KMS API returns them (JSON).\n"
    "Exit status: 0 success, 1 the operation failed, 2 usage error.\n";

typedef struct kms_args {
    const char *endpoint;
    const char *description;
    const char *policy_file;
    const char *key_id;
    const char *alias_name;
    const char *target_key_id;
} kms_args;

static int kms_parse(int argc, char **argv, kms_args *a)
{
    static const struct option opts[] = {
        {"kms-endpoint", required_argument, NULL, 'E'},
        {"description", required_argument, NULL, 'd'},
        {"policy", required_argument, NULL, 'p'},
        {"key-id", required_argument, NULL, 'k'},
        {"alias-name", required_argument, NULL, 'a'},
        {"target-key-id", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'E': a->endpoint = optarg; break;
        case 'd': a->description = optarg; break;
        case 'p': a->policy_file = optarg; break;
        case 'k': a->key_id = optarg; break;
        case 'a': a->alias_name = optarg; break;
        case 't': a->target_key_id = optarg; break;
        case 'h': fputs(kms_usage, stdout); return -1;
        default: return cli_usage_error("kms", "unknown option");
        }
    }
    return CLI_EXIT_OK;
}

static cl_status kms_print(const cl_buf *resp)
{
    /* Operations without output members answer with an empty body, "{}" or
     * (moto) "null": nothing to print. */
    size_t n = resp->len;
    while (n > 0 && (resp->data[n - 1] == ' ' || resp->data[n - 1] == '\n' || resp->data[n - 1] == '\r')) n--;
    if (n == 0) return CL_OK;
    json_t *j = json_loadb((const char *)resp->data, n, JSON_DECODE_ANY, NULL);
    CL_ENSURE(j != NULL, CL_ERR_REMOTE, "KMS answered with something that is not JSON");
    if (!json_is_object(j)) {
        json_decref(j);
        return CL_OK;
    }
    char *s = json_dumps(j, JSON_INDENT(4) | JSON_PRESERVE_ORDER);
    json_decref(j);
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    if (strcmp(s, "{}") != 0) puts(s);
    free(s);
    return CL_OK;
}

static cl_status kms_request(const kms_args *a, const char *op, json_t *req)
{
    cl_status rc = CL_OK;
    cl_kms_client *client = NULL;
    char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    cl_buf resp;
    cl_buf_init(&resp, (size_t)1 << 20);
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(cl_kms_client_from_env(a->endpoint, &client));
    CL_GUARD_GOTO(cl_kms_call(client, op, body, &resp));
    CL_GUARD_GOTO(kms_print(&resp));
out:
    free(body);
    cl_buf_free(&resp);
    cl_kms_client_free(client);
    return rc;
}

static cl_status kms_read_policy(const char *path, json_t *req)
{
    cl_buf b;
    cl_buf_init(&b, 32768);
    cl_status rc = cl_buf_read_file(&b, path);
    if (rc == CL_OK) json_object_set_new(req, "Policy", json_stringn((const char *)b.data, b.len));
    cl_buf_free(&b);
    return rc;
}

int cmd_kms(int argc, char **argv)
{
    if (argc < 2) {
        fputs(kms_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(kms_usage, stdout);
        return CLI_EXIT_OK;
    }
    kms_args a;
    memset(&a, 0, sizeof(a));
    int ec = kms_parse(argc - 1, argv + 1, &a);
    if (ec != CLI_EXIT_OK) return ec < 0 ? CLI_EXIT_OK : ec;
    int rest = argc - 1 - optind;
    char **pos = argv + 1 + optind;
    cl_status rc = CL_OK;
    json_t *req = json_object();
    if (req == NULL) return cli_report(CL_ERR_NOMEM);
    if (strcmp(sub, "audit-verify") == 0) {
        json_decref(req);
        if (rest != 1) return cli_usage_error("kms", "audit-verify wants exactly one FILE");
        size_t lines;
        char last[CL_AUDIT_HASH_HEX + 1];
        rc = cl_audit_verify(pos[0], &lines, last);
        if (rc != CL_OK) return cli_report(rc);
        printf("audit log %s: %zu lines, chain intact, last hash %s\n", pos[0], lines, last);
        return CLI_EXIT_OK;
    }
    if (rest != 0) {
        json_decref(req);
        return cli_usage_error("kms", "unexpected argument %s", pos[0]);
    }
    if (strcmp(sub, "create-key") == 0) {
        if (a.description) json_object_set_new(req, "Description", json_string(a.description));
        if (a.policy_file) rc = kms_read_policy(a.policy_file, req);
        if (rc == CL_OK) rc = kms_request(&a, "CreateKey", req);
    } else if (strcmp(sub, "list-keys") == 0) {
        rc = kms_request(&a, "ListKeys", req);
    } else if (strcmp(sub, "describe-key") == 0) {
        if (a.key_id == NULL) {
            json_decref(req);
            return cli_usage_error("kms", "describe-key needs --key-id");
        }
        json_object_set_new(req, "KeyId", json_string(a.key_id));
        rc = kms_request(&a, "DescribeKey", req);
    } else if (strcmp(sub, "create-alias") == 0) {
        if (a.alias_name == NULL || a.target_key_id == NULL) {
            json_decref(req);
            return cli_usage_error("kms", "create-alias needs --alias-name and --target-key-id");
        }
        json_object_set_new(req, "AliasName", json_string(a.alias_name));
        json_object_set_new(req, "TargetKeyId", json_string(a.target_key_id));
        rc = kms_request(&a, "CreateAlias", req);
    } else if (strcmp(sub, "put-key-policy") == 0) {
        if (a.key_id == NULL || a.policy_file == NULL) {
            json_decref(req);
            return cli_usage_error("kms", "put-key-policy needs --key-id and --policy");
        }
        json_object_set_new(req, "KeyId", json_string(a.key_id));
        json_object_set_new(req, "PolicyName", json_string("default"));
        rc = kms_read_policy(a.policy_file, req);
        if (rc == CL_OK) rc = kms_request(&a, "PutKeyPolicy", req);
    } else {
        json_decref(req);
        return cli_usage_error("kms", "unknown subcommand %s", sub);
    }
    json_decref(req);
    return rc == CL_OK ? CLI_EXIT_OK : cli_report(rc);
}
