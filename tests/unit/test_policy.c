/* SPDX-License-Identifier: Apache-2.0 */
/* The key-policy evaluator, table-driven: one row per rule of IAM's
 * evaluation logic and per condition operator form. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "test_util.h"

#define ACCT "111122223333"
#define DEV "arn:aws:iam::111122223333:user/dev"
#define KEY "arn:aws:kms:us-east-1:111122223333:key/8e28b0e3-7804-4034-8195-9843a308fa81"

#define ALLOW_ROOT \
    "{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::" ACCT \
    ":root\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}"
#define POL(...) "{\"Version\":\"2012-10-17\",\"Statement\":[" __VA_ARGS__ "]}"
/* A statement allowing kms:Decrypt to everyone under one condition block. */
#define COND(c) \
    POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\",\"Resource\":\"*\",\"Condition\":" c "}")

typedef struct row {
    const char *name;
    const char *policy;
    const char *principal;
    const char *account;
    const char *action;
    const char *context; /* "k=v;k=v" */
    kms_decision want;
} row;

static const row rows[] = {
    {"default policy allows the account", POL(ALLOW_ROOT), DEV, ACCT, "kms:Encrypt", "", KMS_DECISION_ALLOW},
    {"root of another account", POL(ALLOW_ROOT), "arn:aws:iam::999999999999:user/x", "999999999999", "kms:Encrypt", "",
     KMS_DECISION_IMPLICIT_DENY},
    {"bare account id",
     POL("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"" ACCT "\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}"), DEV,
     ACCT, "kms:Decrypt", "", KMS_DECISION_ALLOW},
    {"principal list",
     POL("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"arn:aws:iam::1:user/a\",\"" DEV
         "\"]},\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}"),
     DEV, ACCT, "kms:Decrypt", "", KMS_DECISION_ALLOW},
    {"other principal only",
     POL("{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::" ACCT
         ":user/other\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}"),
     DEV, ACCT, "kms:Decrypt", "", KMS_DECISION_IMPLICIT_DENY},
    {"explicit deny beats allow",
     POL(ALLOW_ROOT ","
                    "{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}"),
     DEV, ACCT, "kms:Decrypt", "", KMS_DECISION_EXPLICIT_DENY},
    {"deny of another action",
     POL(ALLOW_ROOT ","
                    "{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\",\"Resource\":\"*\"}"),
     DEV, ACCT, "kms:Encrypt", "", KMS_DECISION_ALLOW},
    {"action wildcard",
     POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:GenerateDataKey*\",\"Resource\":\"*\"}"), DEV,
     ACCT, "kms:GenerateDataKeyWithoutPlaintext", "", KMS_DECISION_ALLOW},
    {"action case-insensitive",
     POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":[\"KMS:decrypt\"],\"Resource\":\"*\"}"), DEV, ACCT,
     "kms:Decrypt", "", KMS_DECISION_ALLOW},
    {"NotAction", POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"NotAction\":\"kms:Decrypt\",\"Resource\":\"*\"}"),
     DEV, ACCT, "kms:Decrypt", "", KMS_DECISION_IMPLICIT_DENY},
    {"resource other key",
     POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"arn:aws:kms:*:*:key/other\"}"),
     DEV, ACCT, "kms:Decrypt", "", KMS_DECISION_IMPLICIT_DENY},
    {"StringEquals on context", COND("{\"StringEquals\":{\"kms:EncryptionContext:tenant\":\"h1\"}}"), DEV, ACCT,
     "kms:Decrypt", "tenant=h1", KMS_DECISION_ALLOW},
    {"StringEquals wrong value", COND("{\"StringEquals\":{\"kms:EncryptionContext:tenant\":\"h1\"}}"), DEV, ACCT,
     "kms:Decrypt", "tenant=h2", KMS_DECISION_IMPLICIT_DENY},
    {"StringEquals key absent", COND("{\"StringEquals\":{\"kms:EncryptionContext:tenant\":\"h1\"}}"), DEV, ACCT,
     "kms:Decrypt", "", KMS_DECISION_IMPLICIT_DENY},
    {"StringEquals value list is OR", COND("{\"StringEquals\":{\"kms:EncryptionContext:tenant\":[\"h1\",\"h2\"]}}"),
     DEV, ACCT, "kms:Decrypt", "tenant=h2", KMS_DECISION_ALLOW},
    {"StringNotEquals", COND("{\"StringNotEquals\":{\"kms:EncryptionContext:tenant\":\"h1\"}}"), DEV, ACCT,
     "kms:Decrypt", "tenant=h1", KMS_DECISION_IMPLICIT_DENY},
    {"StringNotEquals key absent holds", COND("{\"StringNotEquals\":{\"kms:EncryptionContext:tenant\":\"h1\"}}"), DEV,
     ACCT, "kms:Decrypt", "", KMS_DECISION_ALLOW},
    {"StringEqualsIgnoreCase", COND("{\"StringEqualsIgnoreCase\":{\"kms:EncryptionContext:tenant\":\"H1\"}}"), DEV,
     ACCT, "kms:Decrypt", "tenant=h1", KMS_DECISION_ALLOW},
    {"StringLike", COND("{\"StringLike\":{\"kms:EncryptionContext:file\":\"scans/*.png\"}}"), DEV, ACCT, "kms:Decrypt",
     "file=scans/a/b.png", KMS_DECISION_ALLOW},
    {"StringLike ?", COND("{\"StringLike\":{\"kms:EncryptionContext:file\":\"x?\"}}"), DEV, ACCT, "kms:Decrypt",
     "file=xyz", KMS_DECISION_IMPLICIT_DENY},
    {"StringNotLike", COND("{\"StringNotLike\":{\"kms:EncryptionContext:file\":\"*.png\"}}"), DEV, ACCT, "kms:Decrypt",
     "file=a.png", KMS_DECISION_IMPLICIT_DENY},
    {"IfExists absent", COND("{\"StringEqualsIfExists\":{\"kms:EncryptionContext:tenant\":\"h1\"}}"), DEV, ACCT,
     "kms:Decrypt", "", KMS_DECISION_ALLOW},
    {"IfExists present wrong", COND("{\"StringEqualsIfExists\":{\"kms:EncryptionContext:tenant\":\"h1\"}}"), DEV, ACCT,
     "kms:Decrypt", "tenant=h3", KMS_DECISION_IMPLICIT_DENY},
    {"Null true (absent)", COND("{\"Null\":{\"kms:EncryptionContext:tenant\":\"true\"}}"), DEV, ACCT, "kms:Decrypt", "",
     KMS_DECISION_ALLOW},
    {"Null false (absent)", COND("{\"Null\":{\"kms:EncryptionContext:tenant\":\"false\"}}"), DEV, ACCT, "kms:Decrypt",
     "", KMS_DECISION_IMPLICIT_DENY},
    {"Bool", COND("{\"Bool\":{\"kms:EncryptionContext:flag\":true}}"), DEV, ACCT, "kms:Decrypt", "flag=true",
     KMS_DECISION_ALLOW},
    {"NumericLessThan", COND("{\"NumericLessThan\":{\"kms:EncryptionContext:n\":\"10\"}}"), DEV, ACCT, "kms:Decrypt",
     "n=9.5", KMS_DECISION_ALLOW},
    {"NumericGreaterThanEquals", COND("{\"NumericGreaterThanEquals\":{\"kms:EncryptionContext:n\":10}}"), DEV, ACCT,
     "kms:Decrypt", "n=9", KMS_DECISION_IMPLICIT_DENY},
    {"Numeric not a number", COND("{\"NumericEquals\":{\"kms:EncryptionContext:n\":\"1\"}}"), DEV, ACCT, "kms:Decrypt",
     "n=one", KMS_DECISION_IMPLICIT_DENY},
    {"ForAllValues subset", COND("{\"ForAllValues:StringEquals\":{\"kms:EncryptionContextKeys\":[\"a\",\"b\"]}}"), DEV,
     ACCT, "kms:Decrypt", "a=1", KMS_DECISION_ALLOW},
    {"ForAllValues extra key", COND("{\"ForAllValues:StringEquals\":{\"kms:EncryptionContextKeys\":[\"a\",\"b\"]}}"),
     DEV, ACCT, "kms:Decrypt", "a=1;c=2", KMS_DECISION_IMPLICIT_DENY},
    {"ForAllValues empty holds", COND("{\"ForAllValues:StringEquals\":{\"kms:EncryptionContextKeys\":[\"a\"]}}"), DEV,
     ACCT, "kms:Decrypt", "", KMS_DECISION_ALLOW},
    {"ForAnyValue one", COND("{\"ForAnyValue:StringEquals\":{\"kms:EncryptionContextKeys\":\"b\"}}"), DEV, ACCT,
     "kms:Decrypt", "a=1;b=2", KMS_DECISION_ALLOW},
    {"ForAnyValue empty fails", COND("{\"ForAnyValue:StringEquals\":{\"kms:EncryptionContextKeys\":\"b\"}}"), DEV, ACCT,
     "kms:Decrypt", "", KMS_DECISION_IMPLICIT_DENY},
    {"CallerAccount", COND("{\"StringEquals\":{\"kms:CallerAccount\":\"" ACCT "\"}}"), DEV, ACCT, "kms:Decrypt", "",
     KMS_DECISION_ALLOW},
    {"PrincipalArn like", COND("{\"StringLike\":{\"aws:PrincipalArn\":\"arn:aws:iam::*:user/d*\"}}"), DEV, ACCT,
     "kms:Decrypt", "", KMS_DECISION_ALLOW},
    {"two operators are AND",
     COND("{\"StringEquals\":{\"kms:EncryptionContext:a\":\"1\"},\"StringLike\":{\"kms:EncryptionContext:b\":\"x*\"}}"),
     DEV, ACCT, "kms:Decrypt", "a=1;b=y", KMS_DECISION_IMPLICIT_DENY},
    {"unknown condition key", COND("{\"StringEquals\":{\"kms:RecipientAttestation:ImageSha384\":\"ab\"}}"), DEV, ACCT,
     "kms:Decrypt", "", KMS_DECISION_IMPLICIT_DENY},
    {"deny with condition only when it holds",
     POL(ALLOW_ROOT ","
                    "{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\",\"Resource\":\"*\","
                    "\"Condition\":{\"StringNotEquals\":{\"kms:EncryptionContext:t\":\"h1\"}}}"),
     DEV, ACCT, "kms:Decrypt", "t=h1", KMS_DECISION_ALLOW},
};

static void t_context(cl_kvlist *l, const char *spec)
{
    char buf[256];
    (void)snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ";", &save); tok != NULL; tok = strtok_r(NULL, ";", &save))
        assert_ok(cl_kvlist_add_arg(l, tok));
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row *r = &rows[i];
        kms_policy *p = NULL;
        if (kms_policy_parse(r->policy, strlen(r->policy), &p) != CL_OK)
            fail_msg("row %zu (%s): policy rejected: %s", i, r->name, cl_error_message());
        cl_kvlist ctx;
        cl_kvlist_init(&ctx);
        t_context(&ctx, r->context);
        kms_policy_request req = {.principal_arn = r->principal,
                                  .principal_account = r->account,
                                  .action = r->action,
                                  .resource = KEY,
                                  .encryption_context = &ctx};
        kms_decision d = kms_policy_evaluate(p, &req);
        if (d != r->want) fail_msg("row %zu (%s): decision %d, want %d", i, r->name, d, r->want);
        cl_kvlist_free(&ctx);
        kms_policy_free(p);
    }
}

static bool t_lookup(void *arg, const char *key, kms_cond_values *out)
{
    (void)arg;
    if (strcmp(key, "kms:RecipientAttestation:ImageSha384") != 0) return false;
    out->present = true;
    out->v[out->n++] = "abc";
    return true;
}

static void test_extension_keys(void **state)
{
    (void)state;
    const char *pol = COND("{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:ImageSha384\":\"ABC\"}}");
    kms_policy *p = NULL;
    assert_ok(kms_policy_parse(pol, strlen(pol), &p));
    kms_policy_request req = {
        .principal_arn = DEV, .principal_account = ACCT, .action = "kms:Decrypt", .resource = KEY};
    assert_int_equal(kms_policy_evaluate(p, &req), KMS_DECISION_IMPLICIT_DENY);
    req.lookup = t_lookup;
    assert_int_equal(kms_policy_evaluate(p, &req), KMS_DECISION_ALLOW);
    kms_policy_free(p);
}

/* A refusal names what decided it: the failed condition of the matching Allow, or the Deny's Sid. */
static void test_why(void **state)
{
    (void)state;
    const char *pol =
        "{\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"arn:aws:iam::999999999999:root\"},"
        "\"Action\":\"kms:*\",\"Resource\":\"*\",\"Condition\":{\"Bool\":{\"aws:X\":\"true\"}}},"
        "{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\",\"Resource\":\"*\","
        "\"Condition\":{\"StringEqualsIgnoreCase\":{\"kms:RecipientAttestation:ImageSha384\":\"DEF\"}}},"
        "{\"Sid\":\"nope\",\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:Encrypt\","
        "\"Resource\":\"*\"}]}";
    kms_policy *p = NULL;
    assert_ok(kms_policy_parse(pol, strlen(pol), &p));
    kms_policy_request req = {
        .principal_arn = DEV, .principal_account = ACCT, .action = "kms:Decrypt", .resource = KEY, .lookup = t_lookup};
    char why[KMS_POLICY_WHY_MAX] = "x";
    /* The first statement is for another account: its condition is not the reason. */
    assert_int_equal(kms_policy_evaluate_why(p, &req, why, sizeof(why)), KMS_DECISION_IMPLICIT_DENY);
    assert_string_equal(
        why, "StringEqualsIgnoreCase kms:RecipientAttestation:ImageSha384; the attestation document has abc");
    req.action = "kms:Encrypt";
    assert_int_equal(kms_policy_evaluate_why(p, &req, why, sizeof(why)), KMS_DECISION_EXPLICIT_DENY);
    assert_string_equal(why, "statement nope denies it");
    req.action = "kms:Sign";
    assert_int_equal(kms_policy_evaluate_why(p, &req, why, sizeof(why)), KMS_DECISION_IMPLICIT_DENY);
    assert_string_equal(why, "");
    kms_policy_free(p);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        POL(),
        "{\"Version\":\"2013-01-01\",\"Statement\":[" ALLOW_ROOT "]}",
        POL("{\"Effect\":\"Permit\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"*\"}"),
        POL("{\"Effect\":\"Allow\",\"Action\":\"kms:*\",\"Resource\":\"*\"}"),
        POL("{\"Effect\":\"Allow\",\"Principal\":\"x\",\"Action\":\"kms:*\",\"Resource\":\"*\"}"),
        POL("{\"Effect\":\"Allow\",\"Principal\":{\"Federated\":\"x\"},\"Action\":\"kms:*\",\"Resource\":\"*\"}"),
        POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Resource\":\"*\"}"),
        POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"NotAction\":\"kms:x\",\"Resource\":\"*"
            "\"}"),
        POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":5,\"Resource\":\"*\"}"),
        POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\"}"),
        POL("{\"Effect\":\"Allow\",\"Principal\":\"*\",\"Action\":\"kms:*\",\"Resource\":\"*\",\"Bogus\":1}"),
        COND("{\"StringFuzzy\":{\"a\":\"b\"}}"),
        COND("{\"NullIfExists\":{\"a\":\"true\"}}"),
        COND("{\"StringEquals\":{}}"),
        COND("{\"StringEquals\":{\"a\":{\"x\":1}}}"),
        COND("{\"StringEquals\":{\"a\":[]}}"),
        COND("[]"),
        "{\"Statement\":[" ALLOW_ROOT "],\"Statement\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        kms_policy *p = NULL;
        cl_status rc = kms_policy_parse(bad[i], strlen(bad[i]), &p);
        if (rc != CL_ERR_FORMAT) fail_msg("case %zu accepted: %s", i, bad[i]);
    }
}

static void test_default_policy(void **state)
{
    (void)state;
    char *text = NULL;
    assert_ok(kms_policy_default(ACCT, &text));
    kms_policy *p = NULL;
    assert_ok(kms_policy_parse(text, strlen(text), &p));
    kms_policy_request req = {
        .principal_arn = DEV, .principal_account = ACCT, .action = "kms:PutKeyPolicy", .resource = KEY};
    assert_int_equal(kms_policy_evaluate(p, &req), KMS_DECISION_ALLOW);
    kms_policy_free(p);
    free(text);
}

/* The per-thread parse cache: same text gives the same parse; a changed policy (a Deny added) decides at once;
 * more distinct policies than the cache holds all still evaluate correctly; malformed text is still refused. */
static void test_parse_cached(void **state)
{
    (void)state;
    char allow[256], deny[512];
    (void)snprintf(allow, sizeof(allow), "%s", POL(ALLOW_ROOT));
    (void)snprintf(deny, sizeof(deny), "%s",
                   POL(ALLOW_ROOT ",{\"Effect\":\"Deny\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\","
                                  "\"Resource\":\"*\"}"));
    kms_policy_request req = {
        .principal_arn = DEV, .principal_account = ACCT, .action = "kms:Decrypt", .resource = KEY};
    const kms_policy *a = NULL, *a2 = NULL, *d = NULL;
    assert_ok(kms_policy_parse_cached(allow, strlen(allow), &a));
    assert_int_equal(kms_policy_evaluate(a, &req), KMS_DECISION_ALLOW);
    assert_ok(kms_policy_parse_cached(allow, strlen(allow), &a2));
    assert_ptr_equal(a, a2);
    assert_ok(kms_policy_parse_cached(deny, strlen(deny), &d));
    assert_int_equal(kms_policy_evaluate(d, &req), KMS_DECISION_EXPLICIT_DENY);
    /* Twenty distinct texts (more than the cache holds), each evaluated right, then the first again. */
    for (int i = 0; i < 20; i++) {
        char pol[512];
        (void)snprintf(pol, sizeof(pol),
                       POL("{\"Sid\":\"s%d\",\"Effect\":\"%s\",\"Principal\":\"*\",\"Action\":\"kms:Decrypt\","
                           "\"Resource\":\"*\"}"),
                       i, i % 2 ? "Deny" : "Allow");
        const kms_policy *p = NULL;
        assert_ok(kms_policy_parse_cached(pol, strlen(pol), &p));
        assert_int_equal(kms_policy_evaluate(p, &req), i % 2 ? KMS_DECISION_EXPLICIT_DENY : KMS_DECISION_ALLOW);
    }
    assert_ok(kms_policy_parse_cached(allow, strlen(allow), &a));
    assert_int_equal(kms_policy_evaluate(a, &req), KMS_DECISION_ALLOW);
    const char *bad = "{\"Statement\":[]}";
    const kms_policy *b = NULL;
    assert_int_equal(kms_policy_parse_cached(bad, strlen(bad), &b), CL_ERR_FORMAT);
    assert_int_equal(kms_policy_parse_cached("", 0, &b), CL_ERR_FORMAT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),     cmocka_unit_test(test_extension_keys), cmocka_unit_test(test_why),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_default_policy), cmocka_unit_test(test_parse_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
