/* SPDX-License-Identifier: Apache-2.0 */
/* cloister-kms's record of each key's last use, for GetKeyLastUsage (src/kms/last_use.c). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "last_use.h"
#include "test_util.h"

static void key_id(int n, char out[KMS_KEY_ID_LEN + 1])
{
    (void)snprintf(out, KMS_KEY_ID_LEN + 1, "%08x-0000-4000-8000-000000000000", n);
}

/* Only the model's KeyLastUsageTrackingOperation values are uses. */
static void test_operations(void **state)
{
    (void)state;
    assert_string_equal(kms_last_use_operation("Decrypt"), "Decrypt");
    assert_string_equal(kms_last_use_operation("GenerateDataKeyPairWithoutPlaintext"),
                        "GenerateDataKeyPairWithoutPlaintext");
    assert_null(kms_last_use_operation("DescribeKey"));
    assert_null(kms_last_use_operation("GenerateRandom")); /* no key */
    assert_null(kms_last_use_operation("decrypt"));
}

/* The newest use over the shards; nothing for a key never used; the tracking start as given. */
static void test_newest_over_shards(void **state)
{
    (void)state;
    kms_last_use *u = NULL;
    assert_ok(kms_last_use_new(3, 1000, &u));
    assert_int_equal(kms_last_use_start(u), 1000);
    char k[KMS_KEY_ID_LEN + 1];
    key_id(1, k);
    kms_last_use_entry e;
    assert_false(kms_last_use_last(u, k, &e));
    assert_ok(kms_last_use_record(u, 0, k, "Encrypt", 2000, "req-a"));
    assert_ok(kms_last_use_record(u, 2, k, "Decrypt", 2005, "req-b"));
    assert_ok(kms_last_use_record(u, 1, k, "Sign", 2001, "req-c"));
    assert_true(kms_last_use_last(u, k, &e));
    assert_string_equal(e.operation, "Decrypt");
    assert_string_equal(e.request_id, "req-b");
    assert_int_equal(e.when, 2005);
    /* A later use in the same shard replaces the earlier one. */
    assert_ok(kms_last_use_record(u, 2, k, "ReEncrypt", 2010, "req-d"));
    assert_true(kms_last_use_last(u, k, &e));
    assert_string_equal(e.request_id, "req-d");
    assert_fails(kms_last_use_record(u, 3, k, "Encrypt", 1, "x"), CL_ERR_INTERNAL, "bad key usage record");
    assert_fails(kms_last_use_record(u, 0, "short", "Encrypt", 1, "x"), CL_ERR_INTERNAL, "bad key usage record");
    kms_last_use_free(u);
}

/* Growing never drops a key: a key reported unused must not have been used. */
static void test_no_entry_lost(void **state)
{
    (void)state;
    kms_last_use *u = NULL;
    assert_ok(kms_last_use_new(1, 0, &u));
    char k[KMS_KEY_ID_LEN + 1];
    for (int i = 0; i < 5000; i++) {
        key_id(i, k);
        assert_ok(kms_last_use_record(u, 0, k, "Encrypt", i, "r"));
    }
    kms_last_use_entry e;
    for (int i = 0; i < 5000; i++) {
        key_id(i, k);
        assert_true(kms_last_use_last(u, k, &e));
        assert_int_equal(e.when, i);
    }
    key_id(5000, k);
    assert_false(kms_last_use_last(u, k, &e));
    kms_last_use_free(u);
}

typedef struct writer_arg {
    kms_last_use *u;
    size_t shard;
} writer_arg;

static void *writer(void *arg)
{
    const writer_arg *w = arg;
    char k[KMS_KEY_ID_LEN + 1];
    for (int i = 0; i < 2000; i++) {
        key_id(i % 300, k);
        if (kms_last_use_record(w->u, w->shard, k, "Decrypt", (int64_t)w->shard * 10000 + i, "r") != CL_OK) return arg;
    }
    return NULL;
}

/* Workers record into their own shards while a reader reads them all (run under TSan too). */
static void test_concurrent(void **state)
{
    (void)state;
    kms_last_use *u = NULL;
    assert_ok(kms_last_use_new(2, 0, &u));
    pthread_t t[2];
    writer_arg args[2] = {{u, 0}, {u, 1}};
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, writer, &args[i]), 0);
    char k[KMS_KEY_ID_LEN + 1];
    kms_last_use_entry e;
    key_id(7, k);
    for (int i = 0; i < 1000; i++) (void)kms_last_use_last(u, k, &e);
    for (int i = 0; i < 2; i++) {
        void *ret = &ret;
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    assert_true(kms_last_use_last(u, k, &e));
    assert_int_equal(e.when, 10000 + 1807); /* shard 1's last record of key 7: i = 1807 */
    kms_last_use_free(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operations),
        cmocka_unit_test(test_newest_over_shards),
        cmocka_unit_test(test_no_entry_lost),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
