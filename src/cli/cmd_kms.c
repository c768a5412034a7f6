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
    "  enable-key --key-id ID | disable-key --key-id ID\n"
    "  schedule-key-deletion --key-id ID [--pending-window-in-days 7..30]\n"
    "  cancel-key-deletion --key-id ID\n"
    "  create-alias --alias-name alias/NAME --target-key-id ID\n"
    "  list-aliases [--key-id ID]\n"
    "  get-key-policy --key-id ID                        print a key's policy\n"
    "  put-key-policy --key-id ID --policy FILE          replace a key's policy\n"
    "  create-grant --key-id ID --grantee-principal ARN --operations OP[,OP]...\n"
    "               [--retiring-principal ARN]           e.g. --operations Decrypt,GenerateDataKey\n"
    "  list-grants --key-id ID\n"
    "  revoke-grant --key-id ID --grant-id ID\n"
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
    const char *grantee;
    const char *retiring;
    const char *operations;
    const char *grant_id;
    const char *window;
} kms_args;

/* Which options a subcommand takes: its members of the request come from these. */
enum {
    KA_KEY = 1 << 0,      /* --key-id -> KeyId */
    KA_DESC = 1 << 1,     /* --description -> Description */
    KA_POLICY = 1 << 2,   /* --policy FILE -> Policy (+ PolicyName "default" with a key) */
    KA_ALIAS = 1 << 3,    /* --alias-name, --target-key-id */
    KA_GRANT = 1 << 4,    /* --grantee-principal, --operations, --retiring-principal */
    KA_GRANT_ID = 1 << 5, /* --grant-id -> GrantId */
    KA_WINDOW = 1 << 6,   /* --pending-window-in-days -> PendingWindowInDays */
};

typedef struct kms_subcommand {
    const char *name;
    const char *operation; /* TrentService.<operation> */
    unsigned takes;
    unsigned needs;
} kms_subcommand;

static const kms_subcommand kms_subcommands[] = {
    {"create-key", "CreateKey", KA_DESC | KA_POLICY, 0},
    {"list-keys", "ListKeys", 0, 0},
    {"describe-key", "DescribeKey", KA_KEY, KA_KEY},
    {"enable-key", "EnableKey", KA_KEY, KA_KEY},
    {"disable-key", "DisableKey", KA_KEY, KA_KEY},
    {"schedule-key-deletion", "ScheduleKeyDeletion", KA_KEY | KA_WINDOW, KA_KEY},
    {"cancel-key-deletion", "CancelKeyDeletion", KA_KEY, KA_KEY},
    {"create-alias", "CreateAlias", KA_ALIAS, KA_ALIAS},
    {"list-aliases", "ListAliases", KA_KEY, 0},
    {"get-key-policy", "GetKeyPolicy", KA_KEY, KA_KEY},
    {"put-key-policy", "PutKeyPolicy", KA_KEY | KA_POLICY, KA_KEY | KA_POLICY},
    {"create-grant", "CreateGrant", KA_KEY | KA_GRANT, KA_KEY | KA_GRANT},
    {"list-grants", "ListGrants", KA_KEY, KA_KEY},
    {"revoke-grant", "RevokeGrant", KA_KEY | KA_GRANT_ID, KA_KEY | KA_GRANT_ID},
};

static int kms_parse(int argc, char **argv, kms_args *a, unsigned *given)
{
    static const struct option opts[] = {
        {"kms-endpoint", required_argument, NULL, 'E'},
        {"description", required_argument, NULL, 'd'},
        {"policy", required_argument, NULL, 'p'},
        {"key-id", required_argument, NULL, 'k'},
        {"alias-name", required_argument, NULL, 'a'},
        {"target-key-id", required_argument, NULL, 't'},
        {"grantee-principal", required_argument, NULL, 'g'},
        {"retiring-principal", required_argument, NULL, 'r'},
        {"operations", required_argument, NULL, 'o'},
        {"grant-id", required_argument, NULL, 'G'},
        {"pending-window-in-days", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'E': a->endpoint = optarg; break;
        case 'd': a->description = optarg, *given |= KA_DESC; break;
        case 'p': a->policy_file = optarg, *given |= KA_POLICY; break;
        case 'k': a->key_id = optarg, *given |= KA_KEY; break;
        case 'a': a->alias_name = optarg, *given |= KA_ALIAS; break;
        case 't': a->target_key_id = optarg, *given |= KA_ALIAS; break;
        case 'g': a->grantee = optarg, *given |= KA_GRANT; break;
        case 'r': a->retiring = optarg, *given |= KA_GRANT; break;
        case 'o': a->operations = optarg, *given |= KA_GRANT; break;
        case 'G': a->grant_id = optarg, *given |= KA_GRANT_ID; break;
        case 'w': a->window = optarg, *given |= KA_WINDOW; break;
        case 'h': fputs(kms_usage, stdout); return -1;
        default: return cli_usage_error("kms", "unknown option");
        }
    }
    return CLI_EXIT_OK;
}

static CL_MUST_USE cl_status kms_print(const cl_buf *resp)
{
    /* Operations without output members answer with an empty body, "{}" or
     * (moto) "null": nothing to print. */
    cl_reader body = cl_reader_make(resp->data, resp->len);
    if (cl_reader_skip_any(&body, " \r\n") == resp->len) return CL_OK;
    json_t *j = json_loadb(cl_buf_cstr(resp), resp->len, JSON_DECODE_ANY, NULL);
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

static CL_MUST_USE cl_status kms_request(const kms_args *a, const char *op, json_t *req)
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

static CL_MUST_USE cl_status kms_read_policy(const char *path, json_t *req)
{
    cl_buf b;
    cl_buf_init(&b, 32768);
    cl_status rc = cl_buf_read_file(&b, path);
    if (rc == CL_OK) json_object_set_new(req, "Policy", json_stringn((const char *)b.data, b.len));
    cl_buf_free(&b);
    return rc;
}

/* --operations Decrypt,GenerateDataKey -> ["Decrypt", "GenerateDataKey"]; the KMS checks the names. */
static int kms_grant_operations(const char *list, json_t *req)
{
    json_t *ops = json_array();
    if (ops == NULL) return cli_report(CL_ERR_NOMEM);
    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n > 64) {
            json_decref(ops);
            return cli_usage_error("kms", "--operations wants names like Decrypt,GenerateDataKey, not '%s'", list);
        }
        json_array_append_new(ops, json_stringn(p, n));
        p += n + (p[n] == ',');
    }
    json_object_set_new(req, "Operations", ops);
    return CLI_EXIT_OK;
}

/* The request members from the options; a usage error names what is missing or extra. */
static int kms_build(const kms_subcommand *sc, const kms_args *a, unsigned given, json_t *req)
{
    if ((given & ~sc->takes) != 0) return cli_usage_error("kms", "%s does not take that option", sc->name);
    if ((given & sc->needs) != sc->needs ||
        ((sc->needs & KA_ALIAS) && (a->alias_name == NULL || a->target_key_id == NULL)) ||
        ((sc->needs & KA_GRANT) && (a->grantee == NULL || a->operations == NULL)))
        return cli_usage_error("kms", "%s is missing an option; see cloister kms --help", sc->name);
    if (a->key_id) json_object_set_new(req, "KeyId", json_string(a->key_id));
    if (a->description) json_object_set_new(req, "Description", json_string(a->description));
    if (a->alias_name) json_object_set_new(req, "AliasName", json_string(a->alias_name));
    if (a->target_key_id) json_object_set_new(req, "TargetKeyId", json_string(a->target_key_id));
    if (a->grantee) json_object_set_new(req, "GranteePrincipal", json_string(a->grantee));
    if (a->retiring) json_object_set_new(req, "RetiringPrincipal", json_string(a->retiring));
    if (a->grant_id) json_object_set_new(req, "GrantId", json_string(a->grant_id));
    /* A key has one policy, named "default" (as in AWS KMS). */
    if (strcmp(sc->operation, "GetKeyPolicy") == 0 || strcmp(sc->operation, "PutKeyPolicy") == 0)
        json_object_set_new(req, "PolicyName", json_string("default"));
    if (a->window) {
        uint64_t days = 0;
        int ec = cli_uint_option("kms", "--pending-window-in-days", a->window, 1, 365, &days);
        if (ec != CLI_EXIT_OK) return ec;
        json_object_set_new(req, "PendingWindowInDays", json_integer((json_int_t)days));
    }
    if (a->operations) {
        int ec = kms_grant_operations(a->operations, req);
        if (ec != CLI_EXIT_OK) return ec;
    }
    if (a->policy_file) {
        cl_status rc = kms_read_policy(a->policy_file, req);
        if (rc != CL_OK) return cli_report(rc);
    }
    return CLI_EXIT_OK;
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
    unsigned given = 0;
    int ec = kms_parse(argc - 1, argv + 1, &a, &given);
    if (ec != CLI_EXIT_OK) return ec < 0 ? CLI_EXIT_OK : ec;
    int rest = argc - 1 - optind;
    char **pos = argv + 1 + optind;
    if (strcmp(sub, "audit-verify") == 0) {
        if (rest != 1) return cli_usage_error("kms", "audit-verify wants exactly one FILE");
        size_t lines;
        char last[CL_AUDIT_HASH_HEX + 1];
        cl_status rc = cl_audit_verify(pos[0], &lines, last);
        if (rc != CL_OK) return cli_report(rc);
        printf("audit log %s: %zu lines, chain intact, last hash %s\n", pos[0], lines, last);
        return CLI_EXIT_OK;
    }
    if (rest != 0) return cli_usage_error("kms", "unexpected argument %s", pos[0]);
    const kms_subcommand *sc = NULL;
    for (size_t i = 0; i < sizeof(kms_subcommands) / sizeof(kms_subcommands[0]); i++)
        if (strcmp(sub, kms_subcommands[i].name) == 0) sc = &kms_subcommands[i];
    if (sc == NULL) return cli_usage_error("kms", "unknown subcommand %s", sub);
    json_t *req = json_object();
    if (req == NULL) return cli_report(CL_ERR_NOMEM);
    ec = kms_build(sc, &a, given, req);
    if (ec == CLI_EXIT_OK) {
        cl_status rc = kms_request(&a, sc->operation, req);
        if (rc != CL_OK) ec = cli_report(rc);
    }
    json_decref(req);
    return ec;
}
