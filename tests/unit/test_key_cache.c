/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key-record cache (src/kms/key_cache.c) over a real SQLite store: a record is served from
 * memory while the store's generation stands, re-read after any write through the store, never
 * kept for a store that cannot tell (generation 0), and an absent key is not remembered. Whether a
 * read came from memory is seen by changing the row behind the store's back, on a second
 * connection (which the data directory's lock forbids in service: that is what makes the
 * generation sound).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "key_cache.h"
#include "test_util.h"

#define T_KEY_ID "00000001-0000-4000-8000-000000000000"

static void t_key(kms_key_rec *k)
{
    memset(k, 0, sizeof(*k));
    (void)snprintf(k->key_id, sizeof(k->key_id), "%s", T_KEY_ID);
    (void)snprintf(k->arn, sizeof(k->arn), "arn:aws:kms:us-east-1:111122223333:key/%s", k->key_id);
    (void)snprintf(k->account, sizeof(k->account), "111122223333");
    (void)snprintf(k->region, sizeof(k->region), "us-east-1");
    (void)snprintf(k->key_usage, sizeof(k->key_usage), "ENCRYPT_DECRYPT");
    (void)snprintf(k->key_spec, sizeof(k->key_spec), "SYMMETRIC_DEFAULT");
    (void)snprintf(k->description, sizeof(k->description), "first");
    k->created = 1000;
    k->current_version = 1;
    k->rotation_period_days = 365;
    k->policy = CL_UNCONST("{\"v\":1}"); /* the store only reads it */
}

/* A fresh store at path holding the key. */
static kms_store *t_store(char *path, size_t cap)
{
    (void)snprintf(path, cap, "%s/key-cache-%d.db", t_tmpdir(), (int)getpid());
    unlink(path);
    kms_store *s = NULL;
    assert_ok(kms_store_open_sqlite(path, "us-east-1", &s));
    kms_key_rec k;
    t_key(&k);
    const uint8_t wrapped[60] = {1};
    assert_ok(s->ops->create_key(s, &k, wrapped, sizeof(wrapped)));
    return s;
}

/* Changes the key's description on a second connection: the store does not see it happen. */
static void t_behind_its_back(const char *path, const char *description)
{
    sqlite3 *db = NULL;
    char sql[256];
    (void)snprintf(sql, sizeof(sql), "UPDATE keys SET description='%s' WHERE key_id='%s'", description, T_KEY_ID);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void t_get(kms_key_cache *kc, kms_store *s, const char *want_description, const char *want_policy)
{
    kms_key_rec k;
    assert_ok(kms_key_cache_get(kc, s, T_KEY_ID, &k));
    assert_string_equal(k.description, want_description);
    assert_string_equal(k.policy, want_policy);
    kms_key_rec_clear(&k);
}

static void test_kept_until_the_store_is_written(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = t_store(path, sizeof(path));
    kms_key_cache *kc = NULL;
    assert_ok(kms_key_cache_new(64, &kc));
    t_get(kc, s, "first", "{\"v\":1}");
    t_behind_its_back(path, "unseen");
    t_get(kc, s, "first", "{\"v\":1}"); /* from memory: the generation did not move */
    /* A write through the store, of anything: the next read goes to the store. */
    kms_key_rec k;
    assert_ok(s->ops->get_key(s, T_KEY_ID, &k));
    k.state = KMS_KEY_DISABLED;
    free(k.policy);
    k.policy = strdup("{\"v\":2}");
    assert_non_null(k.policy);
    assert_ok(s->ops->update_key(s, &k));
    kms_key_rec_clear(&k);
    assert_ok(kms_key_cache_get(kc, s, T_KEY_ID, &k));
    assert_int_equal(k.state, KMS_KEY_DISABLED);
    assert_string_equal(k.policy, "{\"v\":2}");
    kms_key_rec_clear(&k);
    kms_key_cache_free(kc);
    s->ops->close(s);
    unlink(path);
}

/* A store whose generation is 0 (as PostgreSQL's): the same SQLite store with that one op changed. */
static uint64_t t_cannot_tell(kms_store *s)
{
    (void)s;
    return 0;
}

static void test_nothing_kept_when_the_store_cannot_tell(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = t_store(path, sizeof(path));
    kms_store_ops ops = *s->ops;
    ops.generation = t_cannot_tell;
    kms_store blind = {.ops = &ops, .impl = s->impl};
    kms_key_cache *kc = NULL;
    assert_ok(kms_key_cache_new(64, &kc));
    t_get(kc, &blind, "first", "{\"v\":1}");
    t_behind_its_back(path, "seen");
    t_get(kc, &blind, "seen", "{\"v\":1}");
    /* Without a cache at all, likewise. */
    t_behind_its_back(path, "seen again");
    t_get(NULL, s, "seen again", "{\"v\":1}");
    kms_key_cache_free(kc);
    s->ops->close(s);
    unlink(path);
}

static void test_absent_key_is_not_remembered(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = t_store(path, sizeof(path));
    kms_key_cache *kc = NULL;
    assert_ok(kms_key_cache_new(1, &kc)); /* one slot: every key shares it */
    kms_key_rec k;
    assert_fails(kms_key_cache_get(kc, s, "00000002-0000-4000-8000-000000000000", &k), CL_ERR_NOT_FOUND, "no key");
    t_get(kc, s, "first", "{\"v\":1}");
    /* The other key, once created, is found, and takes the slot; the first is read again. */
    kms_key_rec k2;
    t_key(&k2);
    (void)snprintf(k2.key_id, sizeof(k2.key_id), "00000002-0000-4000-8000-000000000000");
    (void)snprintf(k2.arn, sizeof(k2.arn), "arn:aws:kms:us-east-1:111122223333:key/%s", k2.key_id);
    (void)snprintf(k2.description, sizeof(k2.description), "second");
    const uint8_t wrapped[60] = {2};
    assert_ok(s->ops->create_key(s, &k2, wrapped, sizeof(wrapped)));
    assert_ok(kms_key_cache_get(kc, s, k2.key_id, &k));
    assert_string_equal(k.description, "second");
    kms_key_rec_clear(&k);
    t_behind_its_back(path, "evicted");
    t_get(kc, s, "evicted", "{\"v\":1}");
    kms_key_cache_free(kc);
    s->ops->close(s);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_until_the_store_is_written),
        cmocka_unit_test(test_nothing_kept_when_the_store_cannot_tell),
        cmocka_unit_test(test_absent_key_is_not_remembered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
