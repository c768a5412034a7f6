/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key store's behaviour, whatever the backend: what is written is read
 * back after reopening; listings page; deletion removes a key's material,
 * aliases and grants; rotation refuses a stale base version, also when two
 * race; tags respect their limit all or nothing. Included by
 * test_store_sqlite.c and test_store_pg.c, which define t_fresh (a new, empty
 * store named by path), t_open and t_done.
 */
#ifndef CLOISTER_TEST_STORE_CASES_H
#define CLOISTER_TEST_STORE_CASES_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "test_util.h"

static void t_fresh(char *path, size_t cap);
static CL_MUST_USE cl_status t_open(const char *path, kms_store **s);
static void t_done(const char *path);

static void t_key(kms_key_rec *k, int n)
{
    memset(k, 0, sizeof(*k));
    (void)snprintf(k->key_id, sizeof(k->key_id), "%08x-0000-4000-8000-000000000000", n);
    (void)snprintf(k->arn, sizeof(k->arn), "arn:aws:kms:us-east-1:111122223333:key/%s", k->key_id);
    (void)snprintf(k->account, sizeof(k->account), "111122223333");
    (void)snprintf(k->region, sizeof(k->region), "us-east-1");
    (void)snprintf(k->key_usage, sizeof(k->key_usage), "ENCRYPT_DECRYPT");
    (void)snprintf(k->key_spec, sizeof(k->key_spec), "SYMMETRIC_DEFAULT");
    (void)snprintf(k->description, sizeof(k->description), "key %d", n);
    k->created = 1000 + n;
    k->current_version = 1;
    k->rotation_period_days = 365;
    k->policy = CL_UNCONST("{}"); /* the store only reads it */
}

static void test_keys_persist_and_page(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    const uint8_t wrapped[60] = {1, 2, 3};
    for (int i = 0; i < 5; i++) {
        kms_key_rec k;
        t_key(&k, i);
        assert_ok(s->ops->create_key(s, &k, wrapped, sizeof(wrapped)));
    }
    /* A key id in use is refused by name, and the failed transaction is rolled back: the store still writes. */
    kms_key_rec dup;
    t_key(&dup, 2);
    assert_fails(s->ops->create_key(s, &dup, wrapped, sizeof(wrapped)), CL_ERR_EXISTS,
                 "key 00000002-0000-4000-8000-000000000000 already exists");
    t_key(&dup, 5);
    assert_ok(s->ops->create_key(s, &dup, wrapped, sizeof(wrapped)));
    assert_ok(s->ops->delete_key(s, dup.key_id));
    kms_store_close(s);

    assert_ok(t_open(path, &s));
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
    assert_ok(s->ops->list_keys(s, "111122223333", "us-east-1", "", 2, ids, &n, &more));
    assert_int_equal(n, 2);
    assert_true(more);
    assert_string_equal(ids[1], "00000001-0000-4000-8000-000000000000");
    char after[KMS_KEY_ID_LEN + 1];
    memcpy(after, ids[1], sizeof(after));
    assert_ok(s->ops->list_keys(s, "111122223333", "us-east-1", after, 2, ids, &n, &more));
    assert_int_equal(n, 2);
    memcpy(after, ids[1], sizeof(after));
    assert_ok(s->ops->list_keys(s, "111122223333", "us-east-1", after, 2, ids, &n, &more));
    assert_int_equal(n, 1);
    assert_false(more);
    assert_ok(s->ops->list_keys(s, "999999999999", "us-east-1", "", 2, ids, &n, &more));
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
    t_done(path);
}

static void test_rotation_versions(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
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
    t_done(path);
}

static void test_aliases_and_grants_go_with_the_key(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    kms_key_rec k;
    t_key(&k, 1);
    const uint8_t w1[60] = {1};
    assert_ok(s->ops->create_key(s, &k, w1, sizeof(w1)));
    kms_alias_rec a = {.name = "alias/a", .created = 1, .updated = 1};
    (void)snprintf(a.key_id, sizeof(a.key_id), "%s", k.key_id);
    assert_ok(s->ops->create_alias(s, "111122223333", "us-east-1", &a));
    assert_fails(s->ops->create_alias(s, "111122223333", "us-east-1", &a), CL_ERR_EXISTS, "already exists");
    assert_ok(s->ops->create_alias(s, "444455556666", "us-east-1", &a)); /* aliases are per account */
    kms_grant_rec g;
    memset(&g, 0, sizeof(g));
    memset(g.grant_id, 'a', KMS_GRANT_ID_LEN);
    (void)snprintf(g.key_id, sizeof(g.key_id), "%s", k.key_id);
    (void)snprintf(g.grantee, sizeof(g.grantee), "arn:aws:iam::111122223333:user/x");
    (void)snprintf(g.operations, sizeof(g.operations), "Decrypt");
    assert_ok(s->ops->create_grant(s, &g));
    assert_fails(s->ops->create_grant(s, &g), CL_ERR_EXISTS, "grant aaaaaaaa");
    kms_grant_rec got;
    assert_ok(s->ops->get_grant(s, g.grant_id, &got));
    assert_string_equal(got.operations, "Decrypt");
    kms_grant_rec_clear(&got);

    assert_ok(s->ops->delete_key(s, k.key_id));
    kms_alias_rec ar;
    assert_fails(s->ops->get_alias(s, "111122223333", "us-east-1", "alias/a", &ar), CL_ERR_NOT_FOUND, "no alias");
    assert_fails(s->ops->get_grant(s, g.grant_id, &got), CL_ERR_NOT_FOUND, "no grant");
    cl_buf w;
    cl_buf_init(&w, 4096);
    assert_fails(s->ops->get_material(s, k.key_id, 1, &w), CL_ERR_NOT_FOUND, "no version");
    cl_buf_free(&w);
    kms_store_close(s);
    t_done(path);
}

typedef struct t_rotator {
    kms_store *s;
    const char *key_id;
    pthread_barrier_t *go;
    cl_status rc;
} t_rotator;

static void *t_rotate(void *arg)
{
    t_rotator *r = arg;
    const uint8_t w[60] = {7};
    (void)pthread_barrier_wait(r->go);
    r->rc = r->s->ops->add_version(r->s, r->key_id, 1, w, sizeof(w), 6000, true);
    return NULL;
}

/* Two rotations from version 1 at once: exactly one wins, the other is told so. */
static void test_concurrent_rotation_one_wins(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    kms_key_rec k;
    t_key(&k, 11);
    const uint8_t w1[60] = {1};
    assert_ok(s->ops->create_key(s, &k, w1, sizeof(w1)));
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    t_rotator r[2] = {{s, k.key_id, &go, CL_OK}, {s, k.key_id, &go, CL_OK}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, t_rotate, &r[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&go);
    assert_true((r[0].rc == CL_OK) != (r[1].rc == CL_OK));
    assert_int_equal(r[0].rc == CL_OK ? r[1].rc : r[0].rc, CL_ERR_STATE);
    kms_key_rec got;
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_int_equal(got.current_version, 2);
    kms_key_rec_clear(&got);
    kms_store_close(s);
    t_done(path);
}

/* Tagging past the limit changes nothing; untag removes; listings page in key order. */
static void test_tags_limit_and_paging(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    kms_key_rec k;
    t_key(&k, 12);
    const uint8_t w1[60] = {1};
    assert_ok(s->ops->create_key(s, &k, w1, sizeof(w1)));
    cl_kvlist tags, got;
    cl_kvlist_init(&tags);
    cl_kvlist_init(&got);
    assert_ok(cl_kvlist_add(&tags, "b", 1, "2", 1));
    assert_ok(cl_kvlist_add(&tags, "a", 1, "1", 1));
    assert_ok(s->ops->tag(s, k.key_id, &tags, 2));
    cl_kvlist_free(&tags);
    cl_kvlist_init(&tags);
    assert_ok(cl_kvlist_add(&tags, "a", 1, "one", 3)); /* replaces */
    assert_ok(cl_kvlist_add(&tags, "c", 1, "3", 1));   /* one too many: all of it refused */
    assert_fails(s->ops->tag(s, k.key_id, &tags, 2), CL_ERR_LIMIT, "at most 2 tags");
    bool more;
    assert_ok(s->ops->list_tags(s, k.key_id, "", 1, &got, &more));
    assert_int_equal(got.count, 1);
    assert_true(more);
    assert_string_equal(got.items[0].key, "a");
    assert_string_equal(got.items[0].value, "1");
    assert_ok(s->ops->list_tags(s, k.key_id, "a", 5, &got, &more));
    assert_int_equal(got.count, 2);
    assert_false(more);
    assert_string_equal(got.items[1].key, "b");
    const char *gone[] = {"a", "zz"};
    assert_ok(s->ops->untag(s, k.key_id, gone, 2));
    cl_kvlist_free(&got);
    cl_kvlist_init(&got);
    assert_ok(s->ops->list_tags(s, k.key_id, "", 5, &got, &more));
    assert_int_equal(got.count, 1);
    assert_string_equal(got.items[0].key, "b");
    cl_kvlist_free(&tags);
    cl_kvlist_free(&got);
    kms_store_close(s);
    t_done(path);
}

/* Grant listings filter and page; aliases update, list by key and delete once. */
static void test_grant_filters_and_alias_updates(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    kms_key_rec k;
    t_key(&k, 13);
    const uint8_t w1[60] = {1};
    assert_ok(s->ops->create_key(s, &k, w1, sizeof(w1)));
    for (int i = 0; i < 3; i++) {
        kms_grant_rec g;
        memset(&g, 0, sizeof(g));
        memset(g.grant_id, 'a' + i, KMS_GRANT_ID_LEN);
        (void)snprintf(g.key_id, sizeof(g.key_id), "%s", k.key_id);
        (void)snprintf(g.grantee, sizeof(g.grantee), "arn:aws:iam::111122223333:user/%s", i == 1 ? "y" : "x");
        (void)snprintf(g.operations, sizeof(g.operations), "Decrypt");
        g.constraints = i == 2 ? CL_UNCONST("{\"EncryptionContextEquals\":{\"a\":\"b\"}}") : NULL;
        assert_ok(s->ops->create_grant(s, &g));
    }
    kms_grant_rec out[3];
    size_t n;
    bool more;
    kms_grant_filter f = {.grantee = "arn:aws:iam::111122223333:user/x"};
    assert_ok(s->ops->list_grants(s, &f, "", 1, out, &n, &more));
    assert_int_equal(n, 1);
    assert_true(more);
    assert_int_equal(out[0].grant_id[0], 'a');
    char after[KMS_GRANT_ID_LEN + 1];
    (void)snprintf(after, sizeof(after), "%s", out[0].grant_id);
    kms_grant_rec_clear(&out[0]);
    assert_ok(s->ops->list_grants(s, &f, after, 3, out, &n, &more));
    assert_int_equal(n, 1);
    assert_false(more);
    assert_int_equal(out[0].grant_id[0], 'c');
    assert_string_equal(out[0].constraints, "{\"EncryptionContextEquals\":{\"a\":\"b\"}}");
    kms_grant_rec_clear(&out[0]);
    kms_grant_filter all = {.key_id = k.key_id};
    assert_ok(s->ops->list_grants(s, &all, "", 3, out, &n, &more));
    assert_int_equal(n, 3);
    assert_false(more);
    assert_string_equal(out[0].constraints, "");
    for (size_t i = 0; i < n; i++) kms_grant_rec_clear(&out[i]);
    assert_ok(s->ops->delete_grant(s, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"));
    assert_fails(s->ops->delete_grant(s, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
                 CL_ERR_NOT_FOUND, "no grant");

    kms_alias_rec a = {.name = "alias/m", .created = 1, .updated = 1};
    (void)snprintf(a.key_id, sizeof(a.key_id), "%s", k.key_id);
    assert_fails(s->ops->update_alias(s, "111122223333", "us-east-1", &a), CL_ERR_NOT_FOUND, "no alias alias/m");
    assert_ok(s->ops->create_alias(s, "111122223333", "us-east-1", &a));
    a.updated = 2;
    assert_ok(s->ops->update_alias(s, "111122223333", "us-east-1", &a));
    kms_alias_rec al[2];
    assert_ok(s->ops->list_aliases(s, "111122223333", "us-east-1", k.key_id, "", 2, al, &n, &more));
    assert_int_equal(n, 1);
    assert_int_equal(al[0].updated, 2);
    assert_ok(s->ops->list_aliases(s, "111122223333", "us-east-1", "ffffffff-0000-4000-8000-000000000000", "", 2, al,
                                   &n, &more));
    assert_int_equal(n, 0);
    assert_ok(s->ops->delete_alias(s, "111122223333", "us-east-1", "alias/m"));
    assert_fails(s->ops->delete_alias(s, "111122223333", "us-east-1", "alias/m"), CL_ERR_NOT_FOUND, "no alias");
    kms_store_close(s);
    t_done(path);
}

/* Keys, aliases and grants of one account in two regions: each listing sees its region's; an
 * alias name is taken once per region; a record reads back its region. */
static void test_regions_apart(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    kms_key_rec k1, k2;
    t_key(&k1, 21);
    t_key(&k2, 22);
    (void)snprintf(k2.region, sizeof(k2.region), "eu-central-1");
    (void)snprintf(k2.arn, sizeof(k2.arn), "arn:aws:kms:eu-central-1:111122223333:key/%s", k2.key_id);
    const uint8_t w[60] = {7};
    assert_ok(s->ops->create_key(s, &k1, w, sizeof(w)));
    assert_ok(s->ops->create_key(s, &k2, w, sizeof(w)));
    kms_key_rec got;
    assert_ok(s->ops->get_key(s, k2.key_id, &got));
    assert_string_equal(got.region, "eu-central-1");
    kms_key_rec_clear(&got);
    char ids[3][KMS_KEY_ID_LEN + 1];
    size_t n;
    bool more;
    assert_ok(s->ops->list_keys(s, "111122223333", "us-east-1", "", 3, ids, &n, &more));
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], k1.key_id);
    assert_ok(s->ops->list_keys(s, "111122223333", "eu-central-1", "", 3, ids, &n, &more));
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], k2.key_id);
    assert_ok(s->ops->list_keys(s, "111122223333", "ap-northeast-1", "", 3, ids, &n, &more));
    assert_int_equal(n, 0);

    kms_alias_rec a1 = {.name = "alias/same", .created = 1, .updated = 1}, a2 = a1, ar;
    (void)snprintf(a1.key_id, sizeof(a1.key_id), "%s", k1.key_id);
    (void)snprintf(a2.key_id, sizeof(a2.key_id), "%s", k2.key_id);
    assert_ok(s->ops->create_alias(s, "111122223333", "us-east-1", &a1));
    assert_ok(s->ops->create_alias(s, "111122223333", "eu-central-1", &a2));
    assert_fails(s->ops->create_alias(s, "111122223333", "eu-central-1", &a2), CL_ERR_EXISTS, "already exists");
    assert_ok(s->ops->get_alias(s, "111122223333", "eu-central-1", "alias/same", &ar));
    assert_string_equal(ar.key_id, k2.key_id);
    assert_fails(s->ops->get_alias(s, "111122223333", "ap-northeast-1", "alias/same", &ar), CL_ERR_NOT_FOUND,
                 "no alias");
    kms_alias_rec al[3];
    assert_ok(s->ops->list_aliases(s, "111122223333", "us-east-1", NULL, "", 3, al, &n, &more));
    assert_int_equal(n, 1);
    assert_string_equal(al[0].key_id, k1.key_id);
    assert_ok(s->ops->delete_alias(s, "111122223333", "us-east-1", "alias/same"));
    assert_ok(s->ops->get_alias(s, "111122223333", "eu-central-1", "alias/same", &ar));

    kms_grant_rec g;
    for (int i = 0; i < 2; i++) {
        memset(&g, 0, sizeof(g));
        memset(g.grant_id, 'p' + i, KMS_GRANT_ID_LEN);
        (void)snprintf(g.key_id, sizeof(g.key_id), "%s", i ? k2.key_id : k1.key_id);
        (void)snprintf(g.region, sizeof(g.region), "%s", i ? "eu-central-1" : "us-east-1");
        (void)snprintf(g.grantee, sizeof(g.grantee), "arn:aws:iam::111122223333:user/x");
        (void)snprintf(g.retiring, sizeof(g.retiring), "arn:aws:iam::111122223333:user/r");
        (void)snprintf(g.operations, sizeof(g.operations), "Decrypt");
        assert_ok(s->ops->create_grant(s, &g));
    }
    kms_grant_rec gs[3];
    kms_grant_filter f = {.retiring = "arn:aws:iam::111122223333:user/r", .region = "eu-central-1"};
    assert_ok(s->ops->list_grants(s, &f, "", 3, gs, &n, &more));
    assert_int_equal(n, 1);
    assert_string_equal(gs[0].key_id, k2.key_id);
    assert_string_equal(gs[0].region, "eu-central-1");
    kms_grant_rec_clear(&gs[0]);
    f.region = NULL;
    assert_ok(s->ops->list_grants(s, &f, "", 3, gs, &n, &more));
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) kms_grant_rec_clear(&gs[i]);
    kms_store_close(s);
    t_done(path);
}

/* A key of Origin EXTERNAL: created without material (PendingImport), its import parameters
 * replaced, material imported (Enabled) and deleted again (PendingImport, the material gone, its
 * id kept), expiry deleting only the material that still expires then, and deletion of the key
 * taking its import state with it. */
static void test_imported_material(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    kms_key_rec k, got;
    t_key(&k, 7);
    k.state = KMS_KEY_PENDING_IMPORT;
    assert_ok(s->ops->create_key(s, &k, NULL, 0));
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_true(got.external && !got.imported);
    assert_int_equal(got.state, KMS_KEY_PENDING_IMPORT);
    kms_key_rec_clear(&got);
    cl_buf wrapped_key, material;
    cl_buf_init(&wrapped_key, 4096);
    cl_buf_init(&material, 4096);
    assert_fails(s->ops->get_material(s, k.key_id, 1, &material), CL_ERR_NOT_FOUND, "no version 1");
    kms_import_rec p;
    assert_ok(s->ops->get_import(s, k.key_id, &p, &wrapped_key));
    assert_string_equal(p.material_id, "");
    assert_int_equal(p.params_valid_to, 0);
    assert_int_equal(wrapped_key.len, 0);
    /* Parameters: the newest replace the earlier ones. */
    for (int i = 0; i < 2; i++) {
        (void)snprintf(p.wrapping_alg, sizeof(p.wrapping_alg), "%s", i ? "RSAES_OAEP_SHA_256" : "RSAES_OAEP_SHA_1");
        (void)snprintf(p.wrapping_spec, sizeof(p.wrapping_spec), "RSA_2048");
        p.params_valid_to = 5000 + i;
        memset(p.token_hash, 0xa0 + i, sizeof(p.token_hash));
        const uint8_t wk[3] = {9, 8, (uint8_t)i};
        assert_ok(s->ops->set_import_params(s, k.key_id, &p, wk, sizeof(wk)));
    }
    kms_import_rec q;
    cl_buf_reset(&wrapped_key);
    assert_ok(s->ops->get_import(s, k.key_id, &q, &wrapped_key));
    assert_string_equal(q.wrapping_alg, "RSAES_OAEP_SHA_256");
    assert_int_equal(q.params_valid_to, 5001);
    assert_int_equal(q.token_hash[31], 0xa1);
    assert_int_equal(wrapped_key.len, 3);
    assert_int_equal(wrapped_key.data[2], 1);
    /* Import: Enabled, material stored; expiry at 9000. */
    const uint8_t wrapped[60] = {4, 5, 6};
    char id[KMS_MATERIAL_ID_LEN + 1];
    memset(id, 'c', KMS_MATERIAL_ID_LEN);
    id[KMS_MATERIAL_ID_LEN] = '\0';
    assert_ok(s->ops->import_material(s, k.key_id, wrapped, sizeof(wrapped), id, 9000, 3000, true));
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_true(got.external && got.imported);
    assert_int_equal(got.state, KMS_KEY_ENABLED);
    assert_int_equal(got.material_valid_to, 9000);
    kms_key_rec_clear(&got);
    assert_ok(s->ops->get_material(s, k.key_id, 1, &material));
    assert_int_equal(material.len, sizeof(wrapped));
    /* Expiry of material that no longer expires then (reimported meanwhile) deletes nothing. */
    bool deleted = true;
    assert_ok(s->ops->delete_material(s, k.key_id, 8000, &deleted));
    assert_false(deleted);
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_true(got.imported);
    kms_key_rec_clear(&got);
    assert_ok(s->ops->delete_material(s, k.key_id, 9000, &deleted));
    assert_true(deleted);
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_true(got.external && !got.imported);
    assert_int_equal(got.state, KMS_KEY_PENDING_IMPORT);
    kms_key_rec_clear(&got);
    cl_buf_reset(&material);
    assert_fails(s->ops->get_material(s, k.key_id, 1, &material), CL_ERR_NOT_FOUND, "no version 1");
    assert_ok(s->ops->get_import(s, k.key_id, &q, NULL));
    assert_string_equal(q.material_id, id); /* kept: a reimport must bring the same material */
    assert_false(q.imported);
    /* Reimport without enabling (the key was Disabled), then delete unconditionally. */
    k.state = KMS_KEY_DISABLED;
    assert_ok(s->ops->update_key(s, &k));
    assert_ok(s->ops->import_material(s, k.key_id, wrapped, sizeof(wrapped), id, 0, 3100, false));
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_int_equal(got.state, KMS_KEY_DISABLED);
    assert_int_equal(got.material_valid_to, 0);
    kms_key_rec_clear(&got);
    assert_ok(s->ops->delete_material(s, k.key_id, 0, &deleted));
    assert_true(deleted);
    /* A key that is not EXTERNAL has no import state; deleting a key takes its import state along. */
    kms_key_rec plain;
    t_key(&plain, 8);
    assert_ok(s->ops->create_key(s, &plain, wrapped, sizeof(wrapped)));
    assert_ok(s->ops->get_key(s, plain.key_id, &got));
    assert_false(got.external);
    kms_key_rec_clear(&got);
    assert_fails(s->ops->get_import(s, plain.key_id, &q, NULL), CL_ERR_NOT_FOUND, "has no imported key material");
    assert_ok(s->ops->delete_key(s, k.key_id));
    assert_fails(s->ops->get_import(s, k.key_id, &q, NULL), CL_ERR_NOT_FOUND, "has no imported key material");
    cl_buf_free(&wrapped_key);
    cl_buf_free(&material);
    kms_store_close(s);
    t_done(path);
}

/* The certificate service's rows: a session record created once, replaced only from its current
 * version; a nonce marked used once, its mark dropped once expired; all of it after reopening. */
static void test_cas_rows(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    cl_buf rec;
    cl_buf_init(&rec, 1024);
    int64_t version = 0;
    t_fresh(path, sizeof(path));
    assert_ok(t_open(path, &s));
    assert_fails(s->ops->cas_get(s, "hospital", &version, &rec), CL_ERR_NOT_FOUND, "no session hospital");
    assert_ok(s->ops->cas_put(s, "hospital", 0, (const uint8_t *)"one\0x", 5, 100));
    assert_fails(s->ops->cas_put(s, "hospital", 0, (const uint8_t *)"two", 3, 101), CL_ERR_EXISTS, "already exists");
    assert_ok(s->ops->cas_get(s, "hospital", &version, &rec));
    assert_int_equal(version, 1);
    assert_int_equal(rec.len, 5);
    assert_memory_equal(rec.data, "one\0x", 5);
    assert_ok(s->ops->cas_put(s, "hospital", 1, (const uint8_t *)"three", 5, 102));
    assert_fails(s->ops->cas_put(s, "hospital", 1, (const uint8_t *)"four", 4, 103), CL_ERR_STATE,
                 "changed by another request");
    assert_ok(s->ops->cas_use_nonce(s, "aa", 200, 100));
    assert_fails(s->ops->cas_use_nonce(s, "aa", 200, 150), CL_ERR_EXISTS, "used already");
    kms_store_close(s);
    assert_ok(t_open(path, &s));
    cl_buf_reset(&rec);
    assert_ok(s->ops->cas_get(s, "hospital", &version, &rec));
    assert_int_equal(version, 2);
    assert_memory_equal(rec.data, "three", 5);
    assert_fails(s->ops->cas_use_nonce(s, "aa", 200, 199), CL_ERR_EXISTS, "used already");
    assert_ok(s->ops->cas_use_nonce(s, "aa", 400, 201)); /* expired at 200: forgotten */
    kms_store_close(s);
    cl_buf_free(&rec);
    t_done(path);
}

static CL_MUST_USE cl_status t_iam_row(void *arg, const char *name, const char *doc)
{
    cl_buf *b = arg;
    return cl_buf_printf(b, "%s=%s;", name, doc);
}

/* IAM's entities (identity.h): create refuses a taken name, replace a missing one; listing by
 * prefix pages in name order; every write advances the generation (the key cache's rule). */
static void test_iam_entities(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    uint64_t g0 = s->ops->generation(s);
    assert_ok(s->ops->iam_put(s, "role", "111122223333/a", "{\"n\":1}", KMS_IAM_CREATE, 1));
    assert_true(g0 == 0 || s->ops->generation(s) != g0); /* 0: a store that cannot tell */
    assert_fails(s->ops->iam_put(s, "role", "111122223333/a", "{}", KMS_IAM_CREATE, 1), CL_ERR_EXISTS,
                 "role 111122223333/a already exists");
    assert_fails(s->ops->iam_put(s, "role", "111122223333/z", "{}", KMS_IAM_REPLACE, 1), CL_ERR_NOT_FOUND,
                 "no role 111122223333/z");
    assert_ok(s->ops->iam_put(s, "role", "111122223333/a", "{\"n\":2}", KMS_IAM_REPLACE, 2));
    assert_ok(s->ops->iam_put(s, "role", "111122223333/b", "{}", KMS_IAM_UPSERT, 2));
    assert_ok(s->ops->iam_put(s, "role", "444455556666/c", "{}", KMS_IAM_UPSERT, 2));
    assert_ok(s->ops->iam_put(s, "user", "111122223333/a", "{}", KMS_IAM_UPSERT, 2));
    cl_buf b;
    cl_buf_init(&b, 4096);
    assert_ok(s->ops->iam_get(s, "role", "111122223333/a", &b));
    assert_string_equal(cl_buf_cstr(&b), "{\"n\":2}");
    cl_buf_reset(&b);
    assert_fails(s->ops->iam_get(s, "role", "111122223333/x", &b), CL_ERR_NOT_FOUND, "no role 111122223333/x");
    bool more = false;
    assert_ok(s->ops->iam_list(s, "role", "111122223333/", "", 1, t_iam_row, &b, &more));
    assert_string_equal(cl_buf_cstr(&b), "111122223333/a={\"n\":2};");
    assert_true(more);
    cl_buf_reset(&b);
    assert_ok(s->ops->iam_list(s, "role", "111122223333/", "111122223333/a", 10, t_iam_row, &b, &more));
    assert_string_equal(cl_buf_cstr(&b), "111122223333/b={};");
    assert_false(more);
    cl_buf_reset(&b);
    /* A prefix is a prefix, not a LIKE pattern. */
    assert_ok(s->ops->iam_list(s, "role", "1111%", "", 10, t_iam_row, &b, &more));
    assert_string_equal(cl_buf_cstr(&b), "");
    assert_ok(s->ops->iam_delete(s, "role", "111122223333/a"));
    assert_fails(s->ops->iam_delete(s, "role", "111122223333/a"), CL_ERR_NOT_FOUND, "no role 111122223333/a");
    cl_buf_reset(&b);
    kms_store_close(s);
    assert_ok(t_open(path, &s)); /* what is written is read back after reopening */
    assert_ok(s->ops->iam_get(s, "role", "111122223333/b", &b));
    assert_string_equal(cl_buf_cstr(&b), "{}");
    cl_buf_free(&b);
    kms_store_close(s);
    t_done(path);
}

/* Training jobs and their logs (sagemaker.h): created once, replaced, listed by account in order
 * and paged, an account's jobs apart from another's; log events read back by number range. */
typedef struct t_job_rows {
    char keys[8][64];
    size_t n;
} t_job_rows;

static CL_MUST_USE cl_status t_job_row(void *arg, const char *name, const char *doc)
{
    t_job_rows *r = arg;
    (void)doc;
    (void)snprintf(r->keys[r->n++], sizeof(r->keys[0]), "%s", name);
    return CL_OK;
}

static CL_MUST_USE cl_status t_job_event(void *arg, int64_t seq, int64_t time_ms, const char *message)
{
    t_job_rows *r = arg;
    (void)snprintf(r->keys[r->n++], sizeof(r->keys[0]), "%lld@%lld:%s", (long long)seq, (long long)time_ms, message);
    return CL_OK;
}

static void test_training_jobs_and_their_logs(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    t_fresh(path, sizeof(path));
    assert_ok(t_open(path, &s));
    assert_ok(s->ops->job_put(s, "111122223333", "b", "{\"v\":1}", KMS_IAM_CREATE, 1));
    assert_ok(s->ops->job_put(s, "111122223333", "a", "{}", KMS_IAM_CREATE, 1));
    assert_ok(s->ops->job_put(s, "444455556666", "a", "{}", KMS_IAM_CREATE, 1));
    assert_fails(s->ops->job_put(s, "111122223333", "b", "{}", KMS_IAM_CREATE, 2), CL_ERR_EXISTS,
                 "training job b in 111122223333 already exists");
    assert_fails(s->ops->job_put(s, "111122223333", "c", "{}", KMS_IAM_REPLACE, 2), CL_ERR_NOT_FOUND,
                 "no training job c in 111122223333");
    assert_ok(s->ops->job_put(s, "111122223333", "b", "{\"v\":2}", KMS_IAM_REPLACE, 2));
    cl_buf doc;
    cl_buf_init(&doc, 64);
    assert_ok(s->ops->job_get(s, "111122223333", "b", &doc));
    assert_string_equal(cl_buf_cstr(&doc), "{\"v\":2}");
    assert_fails(s->ops->job_get(s, "444455556666", "b", &doc), CL_ERR_NOT_FOUND, "no training job b in 444455556666");
    cl_buf_free(&doc);
    t_job_rows rows = {0};
    bool more = false;
    assert_ok(s->ops->job_list(s, "111122223333", "", 1, t_job_row, &rows, &more));
    assert_true(more);
    assert_ok(s->ops->job_list(s, "111122223333", rows.keys[0], 5, t_job_row, &rows, &more));
    assert_false(more);
    assert_int_equal(rows.n, 2);
    assert_string_equal(rows.keys[0], "111122223333/a");
    assert_string_equal(rows.keys[1], "111122223333/b");
    rows.n = 0;
    assert_ok(s->ops->job_list(s, NULL, "", 5, t_job_row, &rows, &more));
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.keys[2], "444455556666/a");
    for (int i = 0; i < 4; i++) assert_ok(s->ops->job_event_add(s, "111122223333", "b", i, 1000 + i, "epoch"));
    assert_fails(s->ops->job_event_add(s, "111122223333", "b", 2, 5, "again"), CL_ERR_EXISTS,
                 "event 2 of training job b exists");
    rows.n = 0;
    assert_ok(s->ops->job_event_list(s, "111122223333", "b", 1, 3, 10, t_job_event, &rows));
    assert_int_equal(rows.n, 2);
    assert_string_equal(rows.keys[0], "1@1001:epoch");
    assert_string_equal(rows.keys[1], "2@1002:epoch");
    rows.n = 0;
    assert_ok(s->ops->job_event_list(s, "111122223333", "b", 0, 4, 1, t_job_event, &rows));
    assert_int_equal(rows.n, 1);
    kms_store_close(s);
    t_done(path);
}

#define T_STORE_CASES \
    cmocka_unit_test(test_keys_persist_and_page), cmocka_unit_test(test_rotation_versions), \
        cmocka_unit_test(test_aliases_and_grants_go_with_the_key), \
        cmocka_unit_test(test_concurrent_rotation_one_wins), cmocka_unit_test(test_tags_limit_and_paging), \
        cmocka_unit_test(test_grant_filters_and_alias_updates), cmocka_unit_test(test_regions_apart), \
        cmocka_unit_test(test_imported_material), cmocka_unit_test(test_cas_rows), \
        cmocka_unit_test(test_iam_entities), cmocka_unit_test(test_training_jobs_and_their_logs)

#endif
