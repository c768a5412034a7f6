/* SPDX-License-Identifier: Apache-2.0 */
/* Encryption contexts of requests: the bounds and the case-duplicate refusal of context.h, with
 * the AWS exception each answers and its message; a refused context leaves nothing behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "test_util.h"

static json_t *t_req;
static kms_call t_call;

static kms_call *t_with(json_t *member_value)
{
    memset(&t_call, 0, sizeof(t_call));
    json_decref(t_req);
    t_req = json_object();
    if (member_value != NULL) json_object_set_new(t_req, "EncryptionContext", member_value);
    t_call.req = t_req;
    return &t_call;
}

/* A map of n pairs "k<i>" -> value. */
static json_t *t_map(size_t n, const char *value)
{
    json_t *m = json_object();
    for (size_t i = 0; i < n; i++) {
        char k[16];
        (void)snprintf(k, sizeof(k), "k%zu", i);
        json_object_set_new(m, k, json_string(value));
    }
    return m;
}

static void t_refused(kms_call *c, const char *exception, cl_status code, const char *needle)
{
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_fails(kms_context_read(c, "EncryptionContext", &ctx), code, needle);
    assert_string_equal(c->exception, exception);
    assert_int_equal(ctx.count, 0); /* nothing kept */
    cl_kvlist_free(&ctx);
}

static void test_shape(void **state)
{
    (void)state;
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_ok(kms_context_read(t_with(NULL), "EncryptionContext", &ctx));
    assert_ok(kms_context_read(t_with(json_null()), "EncryptionContext", &ctx));
    assert_int_equal(ctx.count, 0);
    assert_ok(
        kms_context_read(t_with(json_pack("{s:s, s:s}", "tenant", "h1", "file", "a.png")), "EncryptionContext", &ctx));
    assert_int_equal(ctx.count, 2);
    assert_string_equal(cl_kvlist_get(&ctx, "tenant"), "h1");
    cl_kvlist_free(&ctx);
    t_refused(t_with(json_string("x")), "SerializationException", CL_ERR_FORMAT, "must be a map of strings");
    t_refused(t_with(json_pack("{s:i}", "n", 1)), "SerializationException", CL_ERR_FORMAT, "values must be strings");
    t_refused(t_with(json_pack("{s:s}", "", "x")), "ValidationException", CL_ERR_USAGE, "has an empty key");
}

static void test_bounds(void **state)
{
    (void)state;
    /* 64 pairs: accepted; 65: refused before anything is kept. */
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_ok(kms_context_read(t_with(t_map(KMS_CONTEXT_MAX_PAIRS, "v")), "EncryptionContext", &ctx));
    assert_int_equal(ctx.count, KMS_CONTEXT_MAX_PAIRS);
    cl_kvlist_free(&ctx);
    t_refused(t_with(t_map(KMS_CONTEXT_MAX_PAIRS + 1, "v")), "ValidationException", CL_ERR_LIMIT,
              "EncryptionContext has 65 pairs; at most 64 are accepted");
    /* Exactly 8192 bytes of keys and values: accepted; one more: refused. The finding's context
     * (63 keys of 4 KiB) is far over. */
    char *big = malloc(CL_KV_MAX_ITEM + 1);
    assert_non_null(big);
    memset(big, 'a', CL_KV_MAX_ITEM);
    big[CL_KV_MAX_ITEM] = '\0';
    json_t *m = json_object();
    json_object_set_new(m, "a", json_string(big));          /* 1 + 4096 */
    big[KMS_CONTEXT_MAX_BYTES - CL_KV_MAX_ITEM - 2] = '\0'; /* 4094 */
    json_object_set_new(m, "b", json_string(big));          /* 1 + 4094: 8192 in all */
    assert_ok(kms_context_read(t_with(m), "EncryptionContext", &ctx));
    cl_kvlist_free(&ctx);
    m = json_deep_copy(json_object_get(t_req, "EncryptionContext"));
    json_object_set_new(m, "c", json_string(""));
    t_refused(t_with(m), "ValidationException", CL_ERR_LIMIT, "EncryptionContext holds 8193 bytes of keys and values");
    memset(big, 'x', 4095);
    big[4095] = '\0';
    m = json_object();
    for (int i = 0; i < 63; i++) {
        char k[16];
        (void)snprintf(k, sizeof(k), "key%02d", i);
        json_object_set_new(m, k, json_string(big));
    }
    t_refused(t_with(m), "ValidationException", CL_ERR_LIMIT, "at most 8192 are accepted");
    free(big);
}

/* Finding 5 in docs/security.md: {"TENANT":"alice","tenant":"bob"} passed an Allow on tenant=alice,
 * {"CLASS":"x","class":"restricted"} slipped past a Deny. Such contexts are refused. */
static void test_case_duplicates(void **state)
{
    (void)state;
    t_refused(t_with(json_pack("{s:s, s:s}", "TENANT", "alice", "tenant", "bob")), "ValidationException", CL_ERR_USAGE,
              "EncryptionContext keys \"TENANT\" and \"tenant\" differ only by case");
    t_refused(t_with(json_pack("{s:s, s:s, s:s}", "a", "1", "CLASS", "x", "class", "restricted")),
              "ValidationException", CL_ERR_USAGE, "differ only by case");
    /* Keys that differ otherwise are fine, whatever their case. */
    cl_kvlist ctx;
    cl_kvlist_init(&ctx);
    assert_ok(
        kms_context_read(t_with(json_pack("{s:s, s:s}", "Tenant", "a", "tenants", "b")), "EncryptionContext", &ctx));
    assert_int_equal(ctx.count, 2);
    cl_kvlist_free(&ctx);
}

/* Grant constraints: AWS's 8 pairs and 384 characters per value. */
static void test_constraints(void **state)
{
    (void)state;
    kms_call *c = t_with(NULL);
    assert_ok(kms_context_check_constraint(c, NULL, "EncryptionContextSubset"));
    json_t *m = t_map(KMS_CONSTRAINT_MAX_PAIRS, "v");
    assert_ok(kms_context_check_constraint(c, m, "EncryptionContextSubset"));
    json_decref(m);
    m = t_map(KMS_CONSTRAINT_MAX_PAIRS + 1, "v");
    assert_fails(kms_context_check_constraint(c, m, "EncryptionContextSubset"), CL_ERR_LIMIT,
                 "EncryptionContextSubset has 9 pairs; at most 8 are accepted");
    assert_string_equal(c->exception, "ValidationException");
    json_decref(m);
    /* 384 characters of two bytes each: accepted; 385 characters: refused. */
    char v[2 * 385 + 1] = "";
    for (size_t i = 0; i < 384; i++) memcpy(v + 2 * i, "\xc3\xa9", 2);
    v[(size_t)2 * 384] = '\0';
    m = json_pack("{s:s}", "k", v);
    assert_ok(kms_context_check_constraint(t_with(NULL), m, "EncryptionContextEquals"));
    json_decref(m);
    memcpy(v + (size_t)2 * 384, "\xc3\xa9", 3);
    m = json_pack("{s:s}", "k", v);
    c = t_with(NULL);
    assert_fails(kms_context_check_constraint(c, m, "EncryptionContextEquals"), CL_ERR_LIMIT,
                 "EncryptionContextEquals: the value of \"k\" has 385 characters; at most 384 are accepted");
    json_decref(m);
    m = json_pack("{s:s, s:s}", "Tenant", "a", "tenant", "b");
    assert_fails(kms_context_check_constraint(t_with(NULL), m, "EncryptionContextEquals"), CL_ERR_USAGE,
                 "differ only by case");
    json_decref(m);
    c = t_with(NULL);
    m = json_string("x");
    assert_fails(kms_context_check_constraint(c, m, "EncryptionContextEquals"), CL_ERR_FORMAT,
                 "EncryptionContextEquals must be a map");
    assert_string_equal(c->exception, "SerializationException");
    json_decref(m);
}

static int t_teardown(void **state)
{
    (void)state;
    json_decref(t_req);
    t_req = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_case_duplicates),
        cmocka_unit_test(test_constraints),
    };
    return cmocka_run_group_tests(tests, NULL, t_teardown);
}
