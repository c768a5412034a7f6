/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cloister kms: the KMS operations cloister-kms serves, with the aws CLI's syntax
 * (docs.aws.amazon.com/cli: "Specifying parameter values", "Loading parameters from a
 * file", "Using shorthand syntax", "Pagination", "Setting the output format"), so that
 * `aws kms X ...` and `cloister kms X ...` take the same arguments and print the same
 * JSON; plus audit-verify, which checks a cloister-kms audit log.
 *
 * Each subcommand is a row of kms_cmds: its operation and its parameters, named and typed
 * as in the KMS service model (botocore's data/kms/2014-11-01/service-2.json; the
 * integration test cli_kms_aws checks the rows against it).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/audit.h"
#include "cloister/crypto.h"
#include "cloister/kms_client.h"
#include "cloister/mem.h"

#include "cli.h"
#include "kms_format.h"

#define KMS_MAX_PARAMS 12
#define KMS_MAX_RESPONSE ((size_t)1 << 20)
#define KMS_MAX_OUTPUT ((size_t)64 << 20)
#define KMS_MAX_FILE ((size_t)1 << 20) /* a file:// or fileb:// value */
#define KMS_MAX_PAGES 100000

/* How a parameter's value is written on the command line (the model's shape types). */
typedef enum kms_ptype {
    KP_STRING,  /* text */
    KP_INTEGER, /* a whole number */
    KP_BOOLEAN, /* --name / --no-name */
    KP_BLOB,    /* base64 text, or bytes with fileb:// */
    KP_STRINGS, /* list of strings: A B C, A,B,C, or a JSON array */
    KP_MAP,     /* map of strings: k1=v1,k2=v2 or a JSON object */
    KP_TAGS,    /* list of Tag: TagKey=k,TagValue=v ... or a JSON array */
    KP_JSON,    /* a structure: JSON */
} kms_ptype;

typedef struct kms_param {
    const char *option; /* without "--" */
    const char *member;
    kms_ptype type;
    bool required;
} kms_param;

typedef struct kms_cmd {
    const char *name;
    const char *operation;
    const char *summary;
    const char *result_key; /* paginated: the list merged over pages; NULL: one call */
    kms_param params[KMS_MAX_PARAMS];
} kms_cmd;

#define P_KEY_ID \
    { \
        "key-id", "KeyId", KP_STRING, true \
    }
#define P_KEY_ID_OPT \
    { \
        "key-id", "KeyId", KP_STRING, false \
    }
#define P_GRANT_TOKENS \
    { \
        "grant-tokens", "GrantTokens", KP_STRINGS, false \
    }
#define P_CONTEXT \
    { \
        "encryption-context", "EncryptionContext", KP_MAP, false \
    }
#define P_LIMIT \
    { \
        "limit", "Limit", KP_INTEGER, false \
    }
#define P_MARKER \
    { \
        "marker", "Marker", KP_STRING, false \
    }
#define P_KEY_SPEC \
    { \
        "key-spec", "KeySpec", KP_STRING, false \
    }
#define P_BYTES \
    { \
        "number-of-bytes", "NumberOfBytes", KP_INTEGER, false \
    }
#define P_POLICY_NAME \
    { \
        "policy-name", "PolicyName", KP_STRING, false \
    }
#define P_BYPASS \
    { \
        "bypass-policy-lockout-safety-check", "BypassPolicyLockoutSafetyCheck", KP_BOOLEAN, false \
    }

static const kms_cmd kms_cmds[] = {
    {"cancel-key-deletion",
     "CancelKeyDeletion",
     "cancel a scheduled deletion (the key stays disabled)",
     NULL,
     {P_KEY_ID}},
    {"create-alias",
     "CreateAlias",
     "give a key an alias/NAME",
     NULL,
     {{"alias-name", "AliasName", KP_STRING, true}, {"target-key-id", "TargetKeyId", KP_STRING, true}}},
    {"create-grant",
     "CreateGrant",
     "let a principal use a key for some operations",
     NULL,
     {P_KEY_ID,
      {"grantee-principal", "GranteePrincipal", KP_STRING, true},
      {"retiring-principal", "RetiringPrincipal", KP_STRING, false},
      {"operations", "Operations", KP_STRINGS, true},
      {"constraints", "Constraints", KP_JSON, false},
      P_GRANT_TOKENS,
      {"name", "Name", KP_STRING, false}}},
    {"create-key",
     "CreateKey",
     "create a key (symmetric unless --key-spec says otherwise)",
     NULL,
     {{"policy", "Policy", KP_STRING, false},
      {"description", "Description", KP_STRING, false},
      {"key-usage", "KeyUsage", KP_STRING, false},
      {"customer-master-key-spec", "CustomerMasterKeySpec", KP_STRING, false},
      P_KEY_SPEC,
      {"origin", "Origin", KP_STRING, false},
      {"custom-key-store-id", "CustomKeyStoreId", KP_STRING, false},
      P_BYPASS,
      {"tags", "Tags", KP_TAGS, false},
      {"multi-region", "MultiRegion", KP_BOOLEAN, false},
      {"xks-key-id", "XksKeyId", KP_STRING, false}}},
    {"decrypt",
     "Decrypt",
     "decrypt a ciphertext blob",
     NULL,
     {{"ciphertext-blob", "CiphertextBlob", KP_BLOB, true},
      P_CONTEXT,
      P_GRANT_TOKENS,
      P_KEY_ID_OPT,
      {"encryption-algorithm", "EncryptionAlgorithm", KP_STRING, false}}},
    {"delete-alias", "DeleteAlias", "delete an alias", NULL, {{"alias-name", "AliasName", KP_STRING, true}}},
    {"describe-key", "DescribeKey", "show a key (id, ARN, alias/NAME or alias ARN)", NULL, {P_KEY_ID, P_GRANT_TOKENS}},
    {"disable-key", "DisableKey", "disable a key", NULL, {P_KEY_ID}},
    {"disable-key-rotation", "DisableKeyRotation", "stop rotating a key's material", NULL, {P_KEY_ID}},
    {"enable-key", "EnableKey", "enable a key", NULL, {P_KEY_ID}},
    {"enable-key-rotation",
     "EnableKeyRotation",
     "rotate a key's material every period (default 365 days)",
     NULL,
     {P_KEY_ID, {"rotation-period-in-days", "RotationPeriodInDays", KP_INTEGER, false}}},
    {"encrypt",
     "Encrypt",
     "encrypt up to 4096 bytes under a key",
     NULL,
     {P_KEY_ID,
      {"plaintext", "Plaintext", KP_BLOB, true},
      P_CONTEXT,
      P_GRANT_TOKENS,
      {"encryption-algorithm", "EncryptionAlgorithm", KP_STRING, false}}},
    {"generate-data-key",
     "GenerateDataKey",
     "a fresh data key, in plaintext and encrypted under a key",
     NULL,
     {P_KEY_ID, P_CONTEXT, P_BYTES, P_KEY_SPEC, P_GRANT_TOKENS}},
    {"generate-data-key-without-plaintext",
     "GenerateDataKeyWithoutPlaintext",
     "a fresh data key, encrypted under a key only",
     NULL,
     {P_KEY_ID, P_CONTEXT, P_KEY_SPEC, P_BYTES, P_GRANT_TOKENS}},
    {"generate-mac",
     "GenerateMac",
     "an HMAC of a message under an HMAC key",
     NULL,
     {{"message", "Message", KP_BLOB, true},
      P_KEY_ID,
      {"mac-algorithm", "MacAlgorithm", KP_STRING, true},
      P_GRANT_TOKENS}},
    {"generate-random",
     "GenerateRandom",
     "random bytes",
     NULL,
     {P_BYTES, {"custom-key-store-id", "CustomKeyStoreId", KP_STRING, false}}},
    {"get-key-policy", "GetKeyPolicy", "print a key's policy (--policy-name default)", NULL, {P_KEY_ID, P_POLICY_NAME}},
    {"get-key-rotation-status", "GetKeyRotationStatus", "whether a key's material rotates", NULL, {P_KEY_ID}},
    {"get-public-key", "GetPublicKey", "the public key of an asymmetric key", NULL, {P_KEY_ID, P_GRANT_TOKENS}},
    {"list-aliases",
     "ListAliases",
     "list the aliases (of one key with --key-id)",
     "Aliases",
     {P_KEY_ID_OPT, P_LIMIT, P_MARKER}},
    {"list-grants",
     "ListGrants",
     "list a key's grants",
     "Grants",
     {P_LIMIT,
      P_MARKER,
      P_KEY_ID,
      {"grant-id", "GrantId", KP_STRING, false},
      {"grantee-principal", "GranteePrincipal", KP_STRING, false}}},
    {"list-key-policies",
     "ListKeyPolicies",
     "list a key's policy names (always default)",
     "PolicyNames",
     {P_KEY_ID, P_LIMIT, P_MARKER}},
    {"list-key-rotations",
     "ListKeyRotations",
     "list a key's completed rotations",
     "Rotations",
     {P_KEY_ID, P_LIMIT, P_MARKER}},
    {"list-keys", "ListKeys", "list the keys of the account", "Keys", {P_LIMIT, P_MARKER}},
    {"list-resource-tags", "ListResourceTags", "list a key's tags", "Tags", {P_KEY_ID, P_LIMIT, P_MARKER}},
    {"list-retirable-grants",
     "ListRetirableGrants",
     "list the grants a principal may retire",
     "Grants",
     {P_LIMIT, P_MARKER, {"retiring-principal", "RetiringPrincipal", KP_STRING, true}}},
    {"put-key-policy",
     "PutKeyPolicy",
     "replace a key's policy (--policy-name default)",
     NULL,
     {P_KEY_ID, P_POLICY_NAME, {"policy", "Policy", KP_STRING, true}, P_BYPASS}},
    {"re-encrypt",
     "ReEncrypt",
     "decrypt and encrypt again under another key, inside the KMS",
     NULL,
     {{"ciphertext-blob", "CiphertextBlob", KP_BLOB, true},
      {"source-encryption-context", "SourceEncryptionContext", KP_MAP, false},
      {"source-key-id", "SourceKeyId", KP_STRING, false},
      {"destination-key-id", "DestinationKeyId", KP_STRING, true},
      {"destination-encryption-context", "DestinationEncryptionContext", KP_MAP, false},
      {"source-encryption-algorithm", "SourceEncryptionAlgorithm", KP_STRING, false},
      {"destination-encryption-algorithm", "DestinationEncryptionAlgorithm", KP_STRING, false},
      P_GRANT_TOKENS}},
    {"retire-grant",
     "RetireGrant",
     "retire a grant (as its retiring principal or grantee)",
     NULL,
     {{"grant-token", "GrantToken", KP_STRING, false}, P_KEY_ID_OPT, {"grant-id", "GrantId", KP_STRING, false}}},
    {"revoke-grant",
     "RevokeGrant",
     "revoke a grant (as the key's manager)",
     NULL,
     {P_KEY_ID, {"grant-id", "GrantId", KP_STRING, true}}},
    {"rotate-key-on-demand", "RotateKeyOnDemand", "rotate a key's material now", NULL, {P_KEY_ID}},
    {"schedule-key-deletion",
     "ScheduleKeyDeletion",
     "delete a key after 7 to 30 days",
     NULL,
     {P_KEY_ID, {"pending-window-in-days", "PendingWindowInDays", KP_INTEGER, false}}},
    {"sign",
     "Sign",
     "sign a message or digest with an asymmetric key",
     NULL,
     {P_KEY_ID,
      {"message", "Message", KP_BLOB, true},
      {"message-type", "MessageType", KP_STRING, false},
      P_GRANT_TOKENS,
      {"signing-algorithm", "SigningAlgorithm", KP_STRING, true}}},
    {"tag-resource", "TagResource", "add or change a key's tags", NULL, {P_KEY_ID, {"tags", "Tags", KP_TAGS, true}}},
    {"untag-resource",
     "UntagResource",
     "remove tags from a key",
     NULL,
     {P_KEY_ID, {"tag-keys", "TagKeys", KP_STRINGS, true}}},
    {"update-alias",
     "UpdateAlias",
     "point an alias at another key",
     NULL,
     {{"alias-name", "AliasName", KP_STRING, true}, {"target-key-id", "TargetKeyId", KP_STRING, true}}},
    {"verify",
     "Verify",
     "verify a signature",
     NULL,
     {P_KEY_ID,
      {"message", "Message", KP_BLOB, true},
      {"message-type", "MessageType", KP_STRING, false},
      {"signature", "Signature", KP_BLOB, true},
      {"signing-algorithm", "SigningAlgorithm", KP_STRING, true},
      P_GRANT_TOKENS}},
    {"verify-mac",
     "VerifyMac",
     "verify an HMAC",
     NULL,
     {{"message", "Message", KP_BLOB, true},
      P_KEY_ID,
      {"mac-algorithm", "MacAlgorithm", KP_STRING, true},
      {"mac", "Mac", KP_BLOB, true},
      P_GRANT_TOKENS}},
};
#define KMS_NCMDS (sizeof(kms_cmds) / sizeof(kms_cmds[0]))

static const char kms_usage_head[] =
    "Usage: cloister kms <subcommand> [options]     (cloister kms <subcommand> --help for its options)\n"
    "\n"
    "The KMS operations cloister-kms serves, with the aws CLI's syntax and output: what works as\n"
    "`aws kms X ...` works as `cloister kms X ...`.\n"
    "\n"
    "Subcommands:\n";

static const char kms_usage_tail[] =
    "  audit-verify FILE      check a cloister-kms audit log's hash chain\n"
    "\n"
    "Options of every subcommand (as the aws CLI's):\n"
    "  --endpoint-url URL     the KMS (--kms-endpoint too); else AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL,\n"
    "                         the profile's services/endpoint_url, or AWS KMS in the region\n"
    "  --region REGION        else AWS_REGION, AWS_DEFAULT_REGION, the profile's region\n"
    "  --profile NAME         a profile of ~/.aws/credentials and ~/.aws/config (else AWS_PROFILE, default);\n"
    "                         the environment's AWS_ACCESS_KEY_ID... are not used then\n"
    "  --ca-bundle FILE       PEM CAs for an https endpoint (else AWS_CA_BUNDLE, the profile's ca_bundle)\n"
    "  --output json|text     JSON as the API answers (default), or the aws CLI's tab-separated text\n"
    "  --query EXPR           print part of the answer: KeyMetadata.KeyId, Keys[0].KeyId, Aliases[].AliasName\n"
    "  --no-paginate          list-*: one call only (also when --limit or --marker is given)\n"
    "  --page-size N          list-*: items per call while collecting every page\n"
    "\n"
    "Values (as the aws CLI takes them):\n"
    "  file://PATH            any value from a file's text; fileb://PATH the file's bytes (blobs)\n"
    "  blobs                  base64 (--ciphertext-blob AQID...), or fileb://FILE for raw bytes; printed\n"
    "                         in base64 (decode with base64 -d). Give plaintext with fileb://: an argument\n"
    "                         is visible to every user of the machine\n"
    "  lists                  space-separated (--operations Decrypt GenerateDataKey), A,B or JSON\n"
    "  maps                   k1=v1,k2=v2 or JSON (--encryption-context purpose=test)\n"
    "  tags                   TagKey=k,TagValue=v ... or JSON\n"
    "  --policy               JSON text or file://FILE (a bare FILE path is read too)\n"
    "\n"
    "Credentials, region and endpoint resolve as the AWS SDKs resolve them (docs/kms.md). Other KMS\n"
    "operations (custom key stores, key import, multi-Region keys): the aws CLI.\n"
    "Exit status: 0 success, 1 the operation failed, 2 usage error.\n";

static void kms_print_usage(FILE *f)
{
    fputs(kms_usage_head, f);
    for (size_t i = 0; i < KMS_NCMDS; i++) fprintf(f, "  %-22s %s\n", kms_cmds[i].name, kms_cmds[i].summary);
    fputs(kms_usage_tail, f);
}

static const char *kms_type_word(kms_ptype t)
{
    switch (t) {
    case KP_STRING: return "TEXT";
    case KP_INTEGER: return "N";
    case KP_BOOLEAN: return "";
    case KP_BLOB: return "BASE64|fileb://FILE";
    case KP_STRINGS: return "A B ...";
    case KP_MAP: return "k=v,...|JSON";
    case KP_TAGS: return "TagKey=k,TagValue=v ...";
    case KP_JSON: return "JSON";
    }
    return "";
}

static void kms_print_cmd_usage(const kms_cmd *c, FILE *f)
{
    fprintf(f, "Usage: cloister kms %s", c->name);
    for (size_t i = 0; i < KMS_MAX_PARAMS && c->params[i].option != NULL; i++) {
        const kms_param *p = &c->params[i];
        fprintf(f, " %s--%s%s%s%s", p->required ? "" : "[", p->option, p->type == KP_BOOLEAN ? "" : " ",
                kms_type_word(p->type), p->required ? "" : "]");
    }
    fprintf(f, "\n\n%s (KMS %s).\n", c->summary, c->operation);
    if (c->result_key != NULL)
        fprintf(f, "Collects every page into one %s list unless --limit, --marker or --no-paginate is given.\n",
                c->result_key);
    fputs("Also: --endpoint-url URL, --region R, --profile NAME, --ca-bundle FILE, --output json|text, --query EXPR\n"
          "(cloister kms --help says what each does and how values are written).\n",
          f);
}

/* --- the command line ------------------------------------------------------------- */

typedef struct kms_global {
    const char *option;
    const char **into; /* NULL: a flag */
} kms_global;

typedef struct kms_cli {
    const kms_cmd *cmd;
    const char *endpoint, *region, *profile, *ca_bundle, *output, *query, *page_size;
    bool no_paginate, help;
    const char *positional;
    /* per parameter of cmd: its values (argv strings) */
    const char **vals[KMS_MAX_PARAMS];
    size_t nvals[KMS_MAX_PARAMS];
    bool given[KMS_MAX_PARAMS];
    bool flag[KMS_MAX_PARAMS];
} kms_cli;

static void kms_cli_free(kms_cli *a)
{
    for (size_t i = 0; i < KMS_MAX_PARAMS; i++) free(CL_UNCONST(a->vals[i]));
}

static const kms_cmd *kms_find(const char *name)
{
    for (size_t i = 0; i < KMS_NCMDS; i++)
        if (strcmp(kms_cmds[i].name, name) == 0) return &kms_cmds[i];
    return NULL;
}

/* Levenshtein distance, bounded: for "did you mean". */
static size_t kms_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int kms_unknown(const char *sub)
{
    const char *near = NULL;
    size_t best = 3;
    for (size_t i = 0; i < KMS_NCMDS; i++) {
        size_t d = kms_distance(sub, kms_cmds[i].name);
        if (d < best) best = d, near = kms_cmds[i].name;
    }
    if (near != NULL) return cli_usage_error("kms", "unknown subcommand '%s'; did you mean '%s'?", sub, near);
    return cli_usage_error("kms",
                           "unknown subcommand '%s': cloister kms has the operations cloister-kms serves; for the "
                           "rest of AWS KMS use the aws CLI (aws kms %s ...)",
                           sub, sub);
}

/* The globals that take a value, so that the subcommand can be found before the rest is parsed. */
static bool kms_global_takes_value(const char *arg)
{
    static const char *const with_value[] = {"--endpoint-url", "--kms-endpoint", "--region", "--profile",
                                             "--ca-bundle",    "--output",       "--query",  "--page-size"};
    for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
        if (strcmp(arg, with_value[i]) == 0) return true;
    return false;
}

static int kms_parse_global(kms_cli *a, const char *name, const char *inline_value, int argc, char **argv, int *i,
                            bool *matched)
{
    const kms_global globals[] = {
        {"endpoint-url", &a->endpoint}, {"kms-endpoint", &a->endpoint}, {"region", &a->region},
        {"profile", &a->profile},       {"ca-bundle", &a->ca_bundle},   {"output", &a->output},
        {"query", &a->query},           {"page-size", &a->page_size},   {"no-paginate", NULL},
    };
    *matched = false;
    for (size_t g = 0; g < sizeof(globals) / sizeof(globals[0]); g++) {
        if (strcmp(name, globals[g].option) != 0) continue;
        *matched = true;
        if (globals[g].into == NULL) {
            if (inline_value != NULL) return cli_usage_error("kms", "--%s takes no value", name);
            a->no_paginate = true;
            return CLI_EXIT_OK;
        }
        const char *v = inline_value;
        if (v == NULL) {
            if (*i + 1 >= argc) return cli_usage_error("kms", "--%s needs a value", name);
            v = argv[++*i];
        }
        if (*globals[g].into != NULL) return cli_usage_error("kms", "--%s is given twice", name);
        *globals[g].into = v;
        return CLI_EXIT_OK;
    }
    return CLI_EXIT_OK;
}

static int kms_not_taken(const kms_cmd *c, const char *name)
{
    char list[1024] = "";
    size_t used = 0;
    for (size_t i = 0; i < KMS_MAX_PARAMS && c->params[i].option != NULL && used < sizeof(list); i++)
        used += (size_t)snprintf(list + used, sizeof(list) - used, " --%s", c->params[i].option);
    return cli_usage_error("kms", "%s does not take --%s; its options:%s", c->name, name,
                           c->params[0].option ? list : " none but the common ones");
}

static int kms_parse_param(kms_cli *a, const char *name, const char *inline_value, int argc, char **argv, int *i)
{
    const kms_cmd *c = a->cmd;
    for (size_t k = 0; k < KMS_MAX_PARAMS && c->params[k].option != NULL; k++) {
        const kms_param *p = &c->params[k];
        bool negated = p->type == KP_BOOLEAN && strncmp(name, "no-", 3) == 0 && strcmp(name + 3, p->option) == 0;
        if (strcmp(name, p->option) != 0 && !negated) continue;
        if (a->given[k]) return cli_usage_error("kms", "%s: --%s is given twice", c->name, p->option);
        a->given[k] = true;
        if (p->type == KP_BOOLEAN) {
            if (inline_value != NULL) return cli_usage_error("kms", "%s: --%s takes no value", c->name, name);
            a->flag[k] = !negated;
            return CLI_EXIT_OK;
        }
        a->vals[k] = calloc((size_t)argc + 1, sizeof(*a->vals[k]));
        if (a->vals[k] == NULL) return cli_report(CL_RAISE(CL_ERR_NOMEM, "out of memory"));
        if (inline_value != NULL) a->vals[k][a->nvals[k]++] = inline_value;
        bool many = p->type == KP_STRINGS || p->type == KP_TAGS;
        /* A list takes every following word up to the next option, as the aws CLI's nargs='+'. */
        while ((a->nvals[k] == 0 || many) && *i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
            a->vals[k][a->nvals[k]++] = argv[++*i];
        if (a->nvals[k] == 0) return cli_usage_error("kms", "%s: --%s needs a value", c->name, p->option);
        return CLI_EXIT_OK;
    }
    return kms_not_taken(c, name);
}

static int kms_parse(int argc, char **argv, kms_cli *a)
{
    /* The subcommand: the first word that is not an option or an option's value. */
    for (int i = 1; i < argc && a->cmd == NULL && a->positional == NULL; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "help") == 0) {
            a->help = true;
        } else if (strncmp(argv[i], "-", 1) != 0) {
            if (strcmp(argv[i], "audit-verify") == 0) {
                a->positional = "";
                break;
            }
            a->cmd = kms_find(argv[i]);
            if (a->cmd == NULL) return kms_unknown(argv[i]);
        } else if (kms_global_takes_value(argv[i])) {
            i++;
        }
    }
    bool seen_cmd = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "help") == 0) {
            a->help = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            if (!seen_cmd) {
                seen_cmd = true;
                continue;
            }
            if (a->positional != NULL && a->positional[0] == '\0') {
                a->positional = arg;
                continue;
            }
            return cli_usage_error("kms", "unexpected argument '%s' (values follow their --option)", arg);
        }
        char name[128];
        const char *eq = strchr(arg + 2, '=');
        size_t n = eq != NULL ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
        if (n == 0 || n >= sizeof(name)) return cli_usage_error("kms", "'%s' is not an option", arg);
        memcpy(name, arg + 2, n);
        name[n] = '\0';
        bool matched = false;
        int ec = kms_parse_global(a, name, eq != NULL ? eq + 1 : NULL, argc, argv, &i, &matched);
        if (ec != CLI_EXIT_OK || matched) {
            if (ec != CLI_EXIT_OK) return ec;
            continue;
        }
        if (a->positional != NULL) return cli_usage_error("kms", "audit-verify takes one FILE and no --%s", name);
        if (a->cmd == NULL)
            return cli_usage_error("kms", "--%s: give the subcommand first (cloister kms --help lists them)", name);
        ec = kms_parse_param(a, name, eq != NULL ? eq + 1 : NULL, argc, argv, &i);
        if (ec != CLI_EXIT_OK) return ec;
    }
    return CLI_EXIT_OK;
}

/* --- values ------------------------------------------------------------------------- */

/* file:// and fileb:// (the aws CLI's paramfile prefixes): the file's contents into out
 * (a secret buffer: it may be a plaintext), *binary saying which; otherwise the text itself. */
static CL_MUST_USE cl_status kms_load(const char *option, const char *v, cl_buf *out, bool *binary)
{
    *binary = strncmp(v, "fileb://", 8) == 0;
    if (*binary || strncmp(v, "file://", 7) == 0) {
        const char *path = v + (*binary ? 8 : 7);
        CL_GUARD_CTX(cl_buf_read_file(out, path), "--%s %s", option, v);
        return CL_OK;
    }
    return cl_buf_append_str(out, v);
}

static bool kms_blank(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A blob: fileb:// bytes are encoded; text is base64 already, which is checked (the aws
 * CLI decodes it: `Invalid base64`), blanks and line breaks dropped, and sent as is. */
static CL_MUST_USE cl_status kms_blob(const kms_param *p, const char *v, json_t *req)
{
    cl_status rc = CL_OK;
    bool binary = false;
    cl_buf raw, b64, check;
    cl_buf_init_secret(&raw, KMS_MAX_FILE);
    cl_buf_init_secret(&b64, 2 * KMS_MAX_FILE);
    cl_buf_init_secret(&check, KMS_MAX_FILE);
    CL_GUARD_GOTO(kms_load(p->option, v, &raw, &binary));
    if (binary) {
        CL_GUARD_GOTO(cl_base64_encode(raw.data, raw.len, false, &b64));
    } else {
        cl_reader r = cl_reader_make(raw.data, raw.len);
        uint8_t c = 0;
        while (cl_reader_peek_u8(&r, &c)) {
            CL_GUARD_GOTO(cl_reader_skip(&r, 1));
            if (!kms_blank(c)) CL_GUARD_GOTO(cl_buf_append_u8(&b64, c));
        }
        if (cl_base64_decode(cl_buf_cstr(&b64), b64.len, false, &check) != CL_OK || b64.len == 0) {
            char shown[40] = "...";
            if (strcmp(p->member, "Plaintext") != 0) (void)cl_bytes_show(b64.data, b64.len, shown, sizeof(shown));
            CL_FAIL_GOTO(CL_ERR_USAGE,
                         "--%s: Invalid base64: \"%s\" (a blob is base64 text, or fileb://FILE for a file's bytes)",
                         p->option, shown);
        }
    }
    json_t *s = json_stringn(cl_buf_cstr(&b64), b64.len);
    CL_ENSURE_GOTO(s != NULL && json_object_set_new(req, p->member, s) == 0, CL_ERR_NOMEM, "out of memory");
out:
    cl_buf_free(&raw);
    cl_buf_free(&b64);
    cl_buf_free(&check);
    return rc;
}

/* JSON text of the wanted type, for the list, map, tag and structure parameters. */
static CL_MUST_USE cl_status kms_json_value(const kms_param *p, const cl_buf *text, json_type type, json_t **out)
{
    json_error_t err;
    *out = json_loadb(cl_buf_cstr(text), text->len, JSON_REJECT_DUPLICATES, &err);
    if (*out != NULL && json_typeof(*out) == type) return CL_OK;
    json_decref(*out);
    *out = NULL;
    CL_FAIL(CL_ERR_USAGE, "--%s: not a JSON %s (%s)", p->option, type == JSON_OBJECT ? "object" : "array",
            err.text[0] ? err.text : "another type");
}

/* Splits the shorthand a,b,c into its items (empty items refused). */
static CL_MUST_USE cl_status kms_split(const kms_param *p, const char *text, size_t n, json_t *list)
{
    cl_reader r = cl_reader_make(text, n);
    while (cl_reader_remaining(&r) > 0) {
        cl_reader item;
        bool found;
        cl_reader_until(&r, ',', &item, &found);
        if (found) CL_GUARD(cl_reader_skip(&r, 1));
        const uint8_t *ip;
        size_t in;
        cl_reader_rest(&item, &ip, &in);
        CL_ENSURE(in > 0 && (!found || cl_reader_remaining(&r) > 0), CL_ERR_USAGE,
                  "--%s: an empty item in '%s' (write A B or A,B)", p->option, text);
        json_t *s = json_stringn((const char *)ip, in);
        CL_ENSURE(s != NULL, CL_ERR_USAGE, "--%s: '%s' is not UTF-8 text", p->option, text);
        CL_ENSURE(json_array_append_new(list, s) == 0, CL_ERR_NOMEM, "out of memory");
    }
    return CL_OK;
}

/* k=v,k2=v2 into an object (the aws CLI's shorthand for a map of strings). */
static CL_MUST_USE cl_status kms_pairs(const kms_param *p, const char *text, size_t n, json_t *obj)
{
    json_t *items = json_array();
    CL_ENSURE(items != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = kms_split(p, text, n, items);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (rc != CL_OK) break;
        const char *kv = json_string_value(it);
        const char *eq = strchr(kv, '=');
        if (eq == NULL || eq == kv) {
            rc = CL_RAISE(CL_ERR_USAGE, "--%s: '%s' is not key=value", p->option, kv);
            break;
        }
        char key[256];
        size_t kl = (size_t)(eq - kv);
        if (kl >= sizeof(key) || json_object_getn(obj, kv, kl) != NULL) {
            rc = CL_RAISE(CL_ERR_USAGE, "--%s: key '%.*s' is too long or given twice", p->option, (int)kl, kv);
            break;
        }
        memcpy(key, kv, kl);
        key[kl] = '\0';
        json_t *val = json_string(eq + 1);
        if (val == NULL || json_object_set_new(obj, key, val) != 0)
            rc = CL_RAISE(CL_ERR_USAGE, "--%s: '%s' is not UTF-8 text", p->option, kv);
    }
    json_decref(items);
    return rc;
}

/* One tag in shorthand: TagKey=k,TagValue=v. */
static CL_MUST_USE cl_status kms_tag(const kms_param *p, const char *text, json_t *tags)
{
    json_t *t = json_object();
    CL_ENSURE(t != NULL, CL_ERR_NOMEM, "out of memory");
    cl_status rc = kms_pairs(p, text, strlen(text), t);
    if (rc == CL_OK && (json_object_size(t) != 2 || !json_is_string(json_object_get(t, "TagKey")) ||
                        !json_is_string(json_object_get(t, "TagValue"))))
        rc = CL_RAISE(CL_ERR_USAGE, "--%s: '%s' is not TagKey=KEY,TagValue=VALUE", p->option, text);
    if (rc == CL_OK && json_array_append(tags, t) != 0) rc = CL_RAISE(CL_ERR_NOMEM, "out of memory");
    json_decref(t);
    return rc;
}

/* One parameter's request member from its values. */
static CL_MUST_USE cl_status kms_member(const kms_param *p, const char **vals, size_t nvals, bool flag, json_t *req)
{
    if (p->type == KP_BOOLEAN) {
        CL_ENSURE(json_object_set_new(req, p->member, json_boolean(flag)) == 0, CL_ERR_NOMEM, "out of memory");
        return CL_OK;
    }
    if (p->type == KP_BLOB) return kms_blob(p, vals[0], req);
    cl_status rc = CL_OK;
    json_t *v = NULL;
    bool binary = false;
    cl_buf text;
    cl_buf_init(&text, KMS_MAX_FILE);
    /* A single value may come from a file (file://) and be JSON. */
    if (nvals == 1) CL_GUARD_GOTO(kms_load(p->option, vals[0], &text, &binary));
    cl_reader first = cl_reader_make(text.data, text.len);
    (void)cl_reader_skip_any(&first, " \t\r\n");
    bool json_text = nvals == 1 && (cl_reader_next_is(&first, '[') || cl_reader_next_is(&first, '{'));
    switch (p->type) {
    case KP_STRING: {
        /* CreateKey/PutKeyPolicy's --policy: a bare path of an existing file is read
         * (cloister kms took a path before it took the aws CLI's file://). */
        if (strcmp(p->member, "Policy") == 0 && !binary && !json_text && text.len > 0 &&
            strncmp(vals[0], "file://", 7) != 0) {
            cl_buf_reset(&text);
            CL_GUARD_CTX_GOTO(cl_buf_read_file(&text, vals[0]), "--policy %s (JSON text, or file://FILE)", vals[0]);
        }
        v = json_stringn(cl_buf_cstr(&text), text.len);
        CL_ENSURE_GOTO(v != NULL, CL_ERR_USAGE, "--%s is not UTF-8 text", p->option);
        break;
    }
    case KP_INTEGER: {
        /* The KMS API's integers are counts and sizes: the KMS checks their ranges. */
        char what[80];
        uint64_t n = 0;
        (void)snprintf(what, sizeof(what), "--%s", p->option);
        CL_GUARD_GOTO(cl_parse_uint(cl_buf_cstr(&text), 0, INT32_MAX, what, &n));
        v = json_integer((json_int_t)n);
        break;
    }
    case KP_STRINGS:
        if (json_text) {
            CL_GUARD_GOTO(kms_json_value(p, &text, JSON_ARRAY, &v));
            break;
        }
        v = json_array();
        CL_ENSURE_GOTO(v != NULL, CL_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < nvals; i++) CL_GUARD_GOTO(kms_split(p, vals[i], strlen(vals[i]), v));
        break;
    case KP_MAP:
        CL_ENSURE_GOTO(nvals == 1, CL_ERR_USAGE, "--%s takes one value: k1=v1,k2=v2 or a JSON object", p->option);
        if (json_text) {
            CL_GUARD_GOTO(kms_json_value(p, &text, JSON_OBJECT, &v));
            break;
        }
        v = json_object();
        CL_ENSURE_GOTO(v != NULL, CL_ERR_NOMEM, "out of memory");
        CL_GUARD_GOTO(kms_pairs(p, cl_buf_cstr(&text), text.len, v));
        break;
    case KP_TAGS:
        if (json_text) {
            CL_GUARD_GOTO(kms_json_value(p, &text, JSON_ARRAY, &v));
            break;
        }
        v = json_array();
        CL_ENSURE_GOTO(v != NULL, CL_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < nvals; i++) CL_GUARD_GOTO(kms_tag(p, vals[i], v));
        break;
    case KP_JSON:
        CL_ENSURE_GOTO(nvals == 1, CL_ERR_USAGE, "--%s takes one JSON value", p->option);
        CL_GUARD_GOTO(kms_json_value(p, &text, JSON_OBJECT, &v));
        break;
    case KP_BOOLEAN:
    case KP_BLOB: break;
    }
    CL_ENSURE_GOTO(v != NULL, CL_ERR_NOMEM, "out of memory");
    if (p->type != KP_STRINGS && p->type != KP_TAGS)
        CL_ENSURE_GOTO(nvals == 1, CL_ERR_USAGE, "--%s takes one value", p->option);
    CL_ENSURE_GOTO(json_object_set(req, p->member, v) == 0, CL_ERR_NOMEM, "out of memory");
out:
    json_decref(v);
    cl_buf_free(&text);
    return rc;
}

/* The request from the options; a usage error names what is missing. */
static CL_MUST_USE cl_status kms_build(const kms_cli *a, json_t *req)
{
    const kms_cmd *c = a->cmd;
    char missing[512] = "";
    size_t used = 0;
    for (size_t k = 0; k < KMS_MAX_PARAMS && c->params[k].option != NULL; k++)
        if (c->params[k].required && !a->given[k] && used < sizeof(missing))
            used += (size_t)snprintf(missing + used, sizeof(missing) - used, " --%s", c->params[k].option);
    CL_ENSURE(used == 0, CL_ERR_USAGE, "%s is missing%s (cloister kms %s --help)", c->name, missing, c->name);
    for (size_t k = 0; k < KMS_MAX_PARAMS && c->params[k].option != NULL; k++)
        if (a->given[k])
            CL_GUARD_CTX(kms_member(&c->params[k], a->vals[k], a->nvals[k], a->flag[k], req), "%s", c->name);
    /* A key has one policy, named "default" (as in AWS KMS), so --policy-name may be left out. */
    if ((strcmp(c->operation, "GetKeyPolicy") == 0 || strcmp(c->operation, "PutKeyPolicy") == 0) &&
        json_object_get(req, "PolicyName") == NULL)
        CL_ENSURE(json_object_set_new(req, "PolicyName", json_string("default")) == 0, CL_ERR_NOMEM, "out of memory");
    return CL_OK;
}

/* --- calling and printing ----------------------------------------------------------- */

/* One call: the answer as JSON (an empty body as an empty object). */
static CL_MUST_USE cl_status kms_call_json(cl_kms_client *client, const char *op, json_t *req, json_t **out)
{
    cl_status rc = CL_OK;
    char *body = json_dumps(req, JSON_COMPACT);
    cl_buf resp;
    cl_buf_init_secret(&resp, KMS_MAX_RESPONSE);
    CL_ENSURE_GOTO(body != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(cl_kms_call(client, op, body, &resp));
    /* Operations without output members answer with an empty body, "{}" or (moto) "null". */
    cl_reader r = cl_reader_make(resp.data, resp.len);
    if (cl_reader_skip_any(&r, " \r\n") == resp.len) {
        *out = json_object();
    } else {
        *out = json_loadb(cl_buf_cstr(&resp), resp.len, JSON_DECODE_ANY, NULL);
        CL_ENSURE_GOTO(*out != NULL, CL_ERR_REMOTE, "KMS %s answered with something that is not JSON", op);
        if (json_is_null(*out)) {
            json_decref(*out);
            *out = json_object();
        }
    }
    CL_ENSURE_GOTO(json_is_object(*out), CL_ERR_REMOTE, "KMS %s answered with JSON that is not an object", op);
out:
    if (body != NULL) cl_free_wiped(body); /* Encrypt's holds the plaintext */
    cl_buf_free(&resp);
    return rc;
}

/* A paginated operation, every page: the result lists joined, Truncated and NextMarker
 * dropped (botocore's PageIterator.build_full_result, which the aws CLI prints). */
static CL_MUST_USE cl_status kms_call_all(cl_kms_client *client, const kms_cmd *c, json_t *req, json_t **out)
{
    cl_status rc = CL_OK;
    json_t *all = NULL, *page = NULL;
    char *marker = NULL;
    for (size_t pages = 0;; pages++) {
        CL_ENSURE_GOTO(pages < KMS_MAX_PAGES, CL_ERR_REMOTE, "KMS %s: more than %d pages", c->operation, KMS_MAX_PAGES);
        CL_GUARD_GOTO(kms_call_json(client, c->operation, req, &page));
        json_t *items = json_object_get(page, c->result_key);
        if (all == NULL) {
            all = json_deep_copy(page);
            CL_ENSURE_GOTO(all != NULL, CL_ERR_NOMEM, "out of memory");
            (void)json_object_del(all, "Truncated");
            (void)json_object_del(all, "NextMarker");
            if (!json_is_array(json_object_get(all, c->result_key)))
                CL_ENSURE_GOTO(json_object_set_new(all, c->result_key, json_array()) == 0, CL_ERR_NOMEM,
                               "out of memory");
        } else if (json_is_array(items)) {
            CL_ENSURE_GOTO(json_array_extend(json_object_get(all, c->result_key), items) == 0, CL_ERR_NOMEM,
                           "out of memory");
        }
        const char *next = json_string_value(json_object_get(page, "NextMarker"));
        if (!json_is_true(json_object_get(page, "Truncated")) || next == NULL) break;
        CL_ENSURE_GOTO(marker == NULL || strcmp(marker, next) != 0, CL_ERR_REMOTE,
                       "KMS %s answered the same NextMarker twice; stopping", c->operation);
        free(marker);
        marker = strdup(next);
        CL_ENSURE_GOTO(marker != NULL && json_object_set_new(req, "Marker", json_string(marker)) == 0, CL_ERR_NOMEM,
                       "out of memory");
        json_decref(page);
        page = NULL;
    }
    *out = all;
    all = NULL;
out:
    json_decref(all);
    json_decref(page);
    free(marker);
    return rc;
}

static CL_MUST_USE cl_status kms_print(const kms_cli *a, json_t *resp)
{
    cl_status rc = CL_OK;
    json_t *shown = NULL;
    cl_buf out;
    cl_buf_init_secret(&out, KMS_MAX_OUTPUT);
    CL_GUARD_GOTO(kms_format_timestamps(resp));
    if (a->query != NULL) {
        CL_GUARD_GOTO(kms_query(resp, a->query, &shown));
        if (shown == NULL) shown = json_null();
    } else {
        shown = json_incref(resp);
    }
    /* The aws CLI prints nothing for an answer without members (EnableKey, TagResource). */
    if (json_is_object(shown) && json_object_size(shown) == 0 && a->query == NULL) goto out;
    if (a->output != NULL && strcmp(a->output, "text") == 0) {
        CL_GUARD_GOTO(kms_format_text(shown, &out));
    } else {
        CL_GUARD_GOTO(kms_format_json(shown, &out));
    }
    CL_ENSURE_GOTO(fwrite(out.data, 1, out.len, stdout) == out.len && fflush(stdout) == 0, CL_ERR_IO,
                   "cannot write the answer to the standard output");
out:
    json_decref(shown);
    cl_buf_free(&out);
    return rc;
}

static CL_MUST_USE cl_status kms_run(const kms_cli *a)
{
    cl_status rc = CL_OK;
    cl_kms_client *client = NULL;
    json_t *req = json_object(), *resp = NULL;
    CL_ENSURE_GOTO(req != NULL, CL_ERR_NOMEM, "out of memory");
    CL_GUARD_GOTO(kms_build(a, req));
    cl_aws_settings s = {
        .profile = a->profile, .region = a->region, .endpoint_url = a->endpoint, .ca_bundle = a->ca_bundle};
    CL_GUARD_GOTO(cl_kms_client_from_aws(&s, &client));
    bool manual = json_object_get(req, "Limit") != NULL || json_object_get(req, "Marker") != NULL;
    if (a->cmd->result_key != NULL && !manual && !a->no_paginate) {
        if (a->page_size != NULL) {
            uint64_t n = 0;
            CL_GUARD_CTX_GOTO(cl_parse_uint(a->page_size, 1, 1000, "--page-size", &n), "%s", a->cmd->name);
            CL_ENSURE_GOTO(json_object_set_new(req, "Limit", json_integer((json_int_t)n)) == 0, CL_ERR_NOMEM,
                           "out of memory");
        }
        CL_GUARD_GOTO(kms_call_all(client, a->cmd, req, &resp));
    } else {
        CL_ENSURE_GOTO(a->page_size == NULL || a->cmd->result_key != NULL, CL_ERR_USAGE,
                       "--page-size applies to the list-* subcommands");
        CL_ENSURE_GOTO(a->page_size == NULL, CL_ERR_USAGE,
                       "--page-size cannot go with --limit, --marker or --no-paginate");
        CL_GUARD_GOTO(kms_call_json(client, a->cmd->operation, req, &resp));
    }
    CL_GUARD_GOTO(kms_print(a, resp));
out:
    json_decref(req);
    json_decref(resp);
    cl_kms_client_free(client);
    return rc;
}

static int kms_audit_verify(const kms_cli *a)
{
    if (a->positional == NULL || a->positional[0] == '\0')
        return cli_usage_error("kms", "audit-verify wants exactly one FILE");
    size_t lines;
    char last[CL_AUDIT_HASH_HEX + 1];
    cl_status rc = cl_audit_verify(a->positional, &lines, last);
    if (rc != CL_OK) return cli_report(rc);
    printf("audit log %s: %zu lines, chain intact, last hash %s\n", a->positional, lines, last);
    return CLI_EXIT_OK;
}

int cmd_kms(int argc, char **argv)
{
    /* Answers and requests may hold plaintext (Decrypt, GenerateDataKey, Encrypt): every
     * block jansson releases is wiped first. */
    json_set_alloc_funcs(malloc, cl_free_wiped);
    kms_cli a;
    memset(&a, 0, sizeof(a));
    int ec = kms_parse(argc, argv, &a);
    if (ec == CLI_EXIT_OK && a.help) {
        if (a.cmd != NULL)
            kms_print_cmd_usage(a.cmd, stdout);
        else if (a.positional != NULL)
            fputs("Usage: cloister kms audit-verify FILE\n\nChecks a cloister-kms audit "
                  "log's hash chain (docs/kms.md, \"Audit log\").\n",
                  stdout);
        else
            kms_print_usage(stdout);
    } else if (ec == CLI_EXIT_OK && a.positional != NULL) {
        ec = kms_audit_verify(&a);
    } else if (ec == CLI_EXIT_OK && a.cmd == NULL) {
        kms_print_usage(stderr);
        ec = CLI_EXIT_USAGE;
    } else if (ec == CLI_EXIT_OK) {
        if (a.output != NULL && strcmp(a.output, "json") != 0 && strcmp(a.output, "text") != 0) {
            ec = cli_usage_error("kms", "--output is json or text, not '%s'", a.output);
        } else if (a.query != NULL && kms_query_check(a.query) != CL_OK) {
            ec = cli_usage_error("kms", "%s", cl_error_message());
        } else {
            cl_status rc = kms_run(&a);
            if (rc != CL_OK) ec = cli_report(rc);
        }
    }
    kms_cli_free(&a);
    return ec;
}
