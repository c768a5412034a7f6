/* SPDX-License-Identifier: Apache-2.0 */
/* The SQLite key store: what is written is read back after reopening;
 * listings page; deletion removes a key's material, aliases and grants;
 * rotation refuses a stale base version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "test_util.h"

static void t_key(kms_key_rec *k, int n)
{
    memset(k, 0, sizeof(*k));
    (void)snprintf(k->key_id, sizeof(k->key_id), "%08x-0000-4000-8000-000000000000", n);
    (void)snprintf(k->arn, sizeof(k->arn), "arn:aws:kms:us-east-1:111122223333:key/%s", k->key_id);
    (void)snprintf(k->account, sizeof(k->account), "111122223333");
    (void)snprintf(k->key_usage, sizeof(k->key_usage), "ENCRYPT_DECRYPT");
    (void)snprintf(k->key_spec, sizeof(k->key_spec), "SYMMETRIC_DEFAULT");
    (void)snprintf(k->description, sizeof(k->description), "key %d", n);
    k->created = 1000 + n;
    k->current_version = 1;
    k->rotation_period_days = 365;
    k->policy = "{}";
}

static void t_path(char *path, size_t cap)
{
    (void)snprintf(path, cap, "%s/store-%d.db", t_tmpdir(), (int)getpid());
    unlink(path);
}

static void test_keys_persist_and_page(void **state)
{
    (void)state;
    char path[512];
    t_path(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(kms_store_open_sqlite(path, &s));
    const uint8_t wrapped[60] = {1, 2, 3};
    for (int i = 0; i < 5; i++) {
        kms_key_rec k;
        t_key(&k, i);
        assert_ok(s->ops->create_key(s, &k, wrapped, sizeof(wrapped)));
    }
    kms_key_rec dup;
    t_key(&dup, 2);
    assert_int_not_equal(s->ops->create_key(s, &dup, wrapped, sizeof(wrapped)), CL_OK);
    kms_store_close(s);

    assert_ok(kms_store_open_sqlite(path, &s));
    kms_key_rec k;
    assert_ok(s->ops->get_key(s, "00000003-0000-4000-8000-000000000000", &k));
    assert_string_equal(k.description, "key 3");
    assert_int_equal(k.created, 1003);
    assert_int_equal(k.rotation_period_days, 365);
    assert_string_equal(k.policy, "{}");
    k.state = KMS_KEY_DISABLED;
    k.rotation_enabled = true;
    assert_ok(s->ops->update_key(s, &k));
    kms_key_rec_clear(&k);
    assert_ok(s->ops->get_key(s, "00000003-0000-4000-8000-000000000000", &k));
    assert_int_equal(k.state, KMS_KEY_DISABLED);
    assert_true(k.rotation_enabled);
    kms_key_rec_clear(&k);
    assert_fails(s->ops->get_key(s, "ffffffff-0000-4000-8000-000000000000", &k), CL_ERR_NOT_FOUND, "no key");

    char ids[2][KMS_KEY_ID_LEN + 1];
    size_t n;
    bool more;
    assert_ok(s->ops->list_keys(s, "111122223333", "", 2, ids, &n, &more));
    assert_int_equal(n, 2);
    assert_true(more);
    assert_string_equal(ids[1], "00000001-0000-4000-8000-000000000000");
    char after[KMS_KEY_ID_LEN + 1];
    memcpy(after, ids[1], sizeof(after));
    assert_ok(s->ops->list_keys(s, "111122223333", after, 2, ids, &n, &more));
    assert_int_equal(n, 2);
    memcpy(after, ids[1], sizeof(after));
    assert_ok(s->ops->list_keys(s, "111122223333", after, 2, ids, &n, &more));
    assert_int_equal(n, 1);
    assert_false(more);
    assert_ok(s->ops->list_keys(s, "999999999999", "", 2, ids, &n, &more));
    assert_int_equal(n, 0);

    cl_buf w;
    cl_buf_init(&w, 4096);
    assert_ok(s->ops->get_material(s, "00000001-0000-4000-8000-000000000000", 1, &w));
    assert_int_equal(w.len, sizeof(wrapped));
    assert_memory_equal(w.data, wrapped, sizeof(wrapped));
    cl_buf_reset(&w);
    assert_fails(s->ops->get_material(s, "00000001-0000-4000-8000-000000000000", 2, &w), CL_ERR_NOT_FOUND, "version 2");
    cl_buf_free(&w);
    kms_store_close(s);
    unlink(path);
}

static void test_rotation_versions(void **state)
{
    (void)state;
    char path[512];
    t_path(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(kms_store_open_sqlite(path, &s));
    kms_key_rec k;
    t_key(&k, 9);
    const uint8_t w1[60] = {1}, w2[60] = {2};
    assert_ok(s->ops->create_key(s, &k, w1, sizeof(w1)));
    assert_ok(s->ops->add_version(s, k.key_id, 1, w2, sizeof(w2), 5000, true));
    /* A second rotation from the same base lost the race. */
    assert_fails(s->ops->add_version(s, k.key_id, 1, w2, sizeof(w2), 5001, false), CL_ERR_STATE, "concurrently");
    kms_key_rec got;
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_int_equal(got.current_version, 2);
    assert_int_equal(got.last_rotated, 5000);
    kms_key_rec_clear(&got);
    cl_buf w;
    cl_buf_init(&w, 4096);
    assert_ok(s->ops->get_material(s, k.key_id, 1, &w)); /* old version kept */
    assert_int_equal(w.data[0], 1);
    cl_buf_free(&w);
    uint32_t vers[4];
    int64_t when[4];
    bool od[4];
    size_t n;
    bool more;
    assert_ok(s->ops->list_versions(s, k.key_id, 1, 4, vers, when, od, &n, &more));
    assert_int_equal(n, 1);
    assert_int_equal(vers[0], 2);
    assert_true(od[0]);
    kms_store_close(s);
    unlink(path);
}

static void test_aliases_and_grants_go_with_the_key(void **state)
{
    (void)state;
    char path[512];
    t_path(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(kms_store_open_sqlite(path, &s));
    kms_key_rec k;
    t_key(&k, 1);
    const uint8_t w1[60] = {1};
    assert_ok(s->ops->create_key(s, &k, w1, sizeof(w1)));
    kms_alias_rec a = {.name = "alias/a", .created = 1, .updated = 1};
    (void)snprintf(a.key_id, sizeof(a.key_id), "%s", k.key_id);
    assert_ok(s->ops->create_alias(s, "111122223333", &a));
    assert_fails(s->ops->create_alias(s, "111122223333", &a), CL_ERR_EXISTS, "already exists");
    assert_ok(s->ops->create_alias(s, "444455556666", &a)); /* aliases are per account */
    kms_grant_rec g;
    memset(&g, 0, sizeof(g));
    memset(g.grant_id, 'a', KMS_GRANT_ID_LEN);
    (void)snprintf(g.key_id, sizeof(g.key_id), "%s", k.key_id);
    (void)snprintf(g.grantee, sizeof(g.grantee), "arn:aws:iam::111122223333:user/x");
    (void)snprintf(g.operations, sizeof(g.operations), "Decrypt");
    assert_ok(s->ops->create_grant(s, &g));
    kms_grant_rec got;
    assert_ok(s->ops->get_grant(s, g.grant_id, &got));
    assert_string_equal(got.operations, "Decrypt");
    kms_grant_rec_clear(&got);

    assert_ok(s->ops->delete_key(s, k.key_id));
    kms_alias_rec ar;
    assert_fails(s->ops->get_alias(s, "111122223333", "alias/a", &ar), CL_ERR_NOT_FOUND, "no alias");
    assert_fails(s->ops->get_grant(s, g.grant_id, &got), CL_ERR_NOT_FOUND, "no grant");
    cl_buf w;
    cl_buf_init(&w, 4096);
    assert_fails(s->ops->get_material(s, k.key_id, 1, &w), CL_ERR_NOT_FOUND, "no version");
    cl_buf_free(&w);
    kms_store_close(s);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_persist_and_page),
        cmocka_unit_test(test_rotation_versions),
        cmocka_unit_test(test_aliases_and_grants_go_with_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
