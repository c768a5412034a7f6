/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KMS request decoding: the first byte picks an operation, the rest is the
 * JSON body, run through the real operation against a scratch key store with
 * one key and alias/fuzz. Any input must end in a response or an AWS
 * exception name, never a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "identity.h"
#include "server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static kms_ctx fz_ctx;
static kms_config fz_cfg;
static kms_principal fz_principal; /* --dev's test/test, as the store knows it (fz_init) */

static const char *const fz_ops[] = {
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "EnableKey",
    "DisableKey",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateRandom",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "GetKeyPolicy",
    "PutKeyPolicy",
    "ListKeyPolicies",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
};

static char fz_dir[] = "/tmp/cloister-fuzz-kms-XXXXXX";

/* libFuzzer leaves through exit(): remove the scratch store so smoke runs do
 * not pile up directories in /tmp. Unlinking files SQLite still holds open is
 * fine on Linux. */
static void fz_cleanup(void)
{
    static const char *const files[] = {"root.key", "keys.db", "keys.db-wal", "keys.db-shm", "keys.db-journal"};
    char path[256];
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", fz_dir, files[i]);
        (void)unlink(path);
    }
    (void)rmdir(fz_dir);
}

static void fz_init(void)
{
    if (mkdtemp(fz_dir) == NULL) abort();
    if (atexit(fz_cleanup) != 0) abort();
    const char *dir = fz_dir;
    char path[256];
    (void)snprintf(path, sizeof(path), "%s/root.key", dir);
    if (kms_root_key_load(path, &fz_ctx.root) != CL_OK) abort();
    (void)snprintf(path, sizeof(path), "%s/keys.db", dir);
    if (kms_store_open_sqlite(path, "us-east-1", &fz_ctx.store) != CL_OK) abort();
    (void)snprintf(fz_cfg.region, sizeof(fz_cfg.region), "us-east-1");
    fz_ctx.cfg = &fz_cfg;
    /* The caller is the configuration's administrator, as --dev's test/test: written into the
     * store's identities (AdministratorAccess attached), which the operations' authorization
     * reads, and found there as a request's signature would find it. */
    if (kms_principal_add(&fz_cfg, "test", "test", "arn:aws:iam::111122223333:user/dev") != CL_OK ||
        kms_identity_seed(&fz_ctx, 1795423141) != CL_OK ||
        kms_identity_find(&fz_ctx, "test", NULL, 1795423141, &fz_principal) != CL_OK)
        abort();
}

static char fz_key_id[KMS_KEY_ID_LEN + 1];

static CL_MUST_USE cl_status fz_run(const char *op, const char *body, size_t len)
{
    kms_call c;
    memset(&c, 0, sizeof(c));
    cl_kvlist_init(&c.audit_ctx);
    c.kms = &fz_ctx;
    c.principal = &fz_principal;
    c.operation = op;
    (void)snprintf(c.region, sizeof(c.region), "us-east-1");
    c.now = 1795423141;
    cl_status rc = CL_ERR_FORMAT;
    c.req = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    c.resp = json_object();
    if (json_is_object(c.req) && c.resp != NULL) {
        rc = kms_op_find(op)(&c);
        const char *kid = json_string_value(json_object_get(json_object_get(c.resp, "KeyMetadata"), "KeyId"));
        if (rc == CL_OK && kid != NULL && fz_key_id[0] == '\0') (void)snprintf(fz_key_id, sizeof(fz_key_id), "%s", kid);
        int status;
        if (rc != CL_OK && kms_exception_for(&c, rc, &status) == NULL) __builtin_trap();
    }
    json_decref(c.req);
    json_decref(c.resp);
    cl_kvlist_free(&c.audit_ctx);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        fz_init();
        /* One key with alias/fuzz, so inputs can reach the cryptography. */
        if (fz_run("CreateKey", "{}", 2) != CL_OK) abort();
        char body[128];
        int n = snprintf(body, sizeof(body), "{\"AliasName\":\"alias/fuzz\",\"TargetKeyId\":\"%s\"}", fz_key_id);
        if (fz_run("CreateAlias", body, (size_t)n) != CL_OK) abort();
        /* And a signing key (alias/fuzz-sign), HMAC keys (alias/fuzz-mac, alias/fuzz-mac512), a key
         * agreement key (alias/fuzz-agree) and an RSA encryption key (alias/fuzz-rsa). */
        static const char *const more[][2] = {
            {"{\"KeySpec\":\"ECC_NIST_P256\",\"KeyUsage\":\"SIGN_VERIFY\"}", "alias/fuzz-sign"},
            {"{\"KeySpec\":\"HMAC_256\",\"KeyUsage\":\"GENERATE_VERIFY_MAC\"}", "alias/fuzz-mac"},
            {"{\"KeySpec\":\"HMAC_512\",\"KeyUsage\":\"GENERATE_VERIFY_MAC\"}", "alias/fuzz-mac512"},
            {"{\"KeySpec\":\"ECC_NIST_P384\",\"KeyUsage\":\"KEY_AGREEMENT\"}", "alias/fuzz-agree"},
            {"{\"KeySpec\":\"RSA_2048\",\"KeyUsage\":\"ENCRYPT_DECRYPT\"}", "alias/fuzz-rsa"}};
        for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
            fz_key_id[0] = '\0';
            if (fz_run("CreateKey", more[i][0], strlen(more[i][0])) != CL_OK) abort();
            n = snprintf(body, sizeof(body), "{\"AliasName\":\"%s\",\"TargetKeyId\":\"%s\"}", more[i][1], fz_key_id);
            if (fz_run("CreateAlias", body, (size_t)n) != CL_OK) abort();
        }
        ready = 1;
    }
    if (size < 1) return 0;
    const char *op = fz_ops[data[0] % (sizeof(fz_ops) / sizeof(fz_ops[0]))];
    /* Keep the store small: CreateKey only now and then. */
    if (strcmp(op, "CreateKey") == 0 && (data[0] & 0x80) == 0) return 0;
    (void)fz_run(op, (const char *)data + 1, size - 1);
    return 0;
}
