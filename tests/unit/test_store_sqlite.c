/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The SQLite key store against the backend-independent cases of store_cases.h,
 * then against a database changed behind its back (by a second connection, as
 * a damaged or foreign file would be): values that do not fit are refused by
 * column, failures name the statement, and a failed call leaves no
 * transaction or read open.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <unistd.h>

#include "store_cases.h"

static void t_fresh(char *path, size_t cap)
{
    (void)snprintf(path, cap, "%s/store-%d.db", t_tmpdir(), (int)getpid());
    unlink(path);
}

static CL_MUST_USE cl_status t_open(const char *path, kms_store **s) { return kms_store_open_sqlite(path, s); }

static void t_done(const char *path) { unlink(path); }

/* Runs sql on a second connection to the store at path, which must not wait for a lock:
 * returns SQLite's code (SQLITE_BUSY when the store still holds one). */
static int t_other(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int src = sqlite3_exec(db, sql, NULL, NULL, NULL);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return src;
}

/* A store at path with key 1 (and its material) in it, open in *s. */
static void t_store_with_key(char *path, size_t cap, kms_store **s, kms_key_rec *k)
{
    const uint8_t wrapped[60] = {1};
    t_fresh(path, cap);
    assert_ok(t_open(path, s));
    t_key(k, 1);
    assert_ok((*s)->ops->create_key(*s, k, wrapped, sizeof(wrapped)));
}

/* A TEXT value longer than its field used to be cut short silently; now the read fails, naming the column. */
static void test_overlong_text_is_refused(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    kms_key_rec k, got;
    t_store_with_key(path, sizeof(path), &s, &k);
    assert_int_equal(t_other(path, "UPDATE keys SET key_usage=printf('%040d', 7)"), SQLITE_OK);
    assert_fails(s->ops->get_key(s, k.key_id, &got), CL_ERR_FORMAT,
                 "key store: read key: column key_usage holds 40 bytes, more than the 31 this field takes; the "
                 "database was not written by this cloister-kms or is damaged");
    assert_null(got.policy); /* nothing half-read is left to the caller */
    assert_int_equal(t_other(path, "UPDATE keys SET key_usage='ENCRYPT_DECRYPT'"), SQLITE_OK);
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    assert_string_equal(got.key_usage, "ENCRYPT_DECRYPT");
    kms_key_rec_clear(&got);

    /* A text with a NUL inside would shorten silently as a C string. */
    assert_int_equal(t_other(path, "UPDATE keys SET description=CAST(x'6b6579003132' AS TEXT)"), SQLITE_OK);
    assert_fails(s->ops->get_key(s, k.key_id, &got), CL_ERR_FORMAT, "column description holds a NUL byte among its 6");
    kms_store_close(s);
    t_done(path);
}

/* Integers out of their field's range, or of the wrong type, are refused rather than cast. */
static void test_bad_numbers_and_types_are_refused(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    kms_key_rec k, got;
    t_store_with_key(path, sizeof(path), &s, &k);
    assert_int_equal(t_other(path, "UPDATE keys SET state=7"), SQLITE_OK);
    assert_fails(s->ops->get_key(s, k.key_id, &got), CL_ERR_FORMAT, "column state holds 7, outside [0, 2]");
    assert_int_equal(t_other(path, "UPDATE keys SET state=0, current_version=4294967296"), SQLITE_OK);
    assert_fails(s->ops->get_key(s, k.key_id, &got), CL_ERR_FORMAT,
                 "column current_version holds 4294967296, outside [1, 4294967295]");
    assert_int_equal(t_other(path, "UPDATE keys SET current_version=1, created='soon'"), SQLITE_OK);
    assert_fails(s->ops->get_key(s, k.key_id, &got), CL_ERR_FORMAT, "column created holds text, not an integer");
    cl_buf w;
    cl_buf_init(&w, 4096);
    assert_int_equal(t_other(path, "UPDATE key_versions SET wrapped='not bytes'"), SQLITE_OK);
    assert_fails(s->ops->get_material(s, k.key_id, 1, &w), CL_ERR_FORMAT,
                 "key store: read key material: column wrapped holds text, not a blob");
    assert_int_equal(w.len, 0);
    cl_buf_free(&w);

    /* A grant whose last column is bad: what was read before it (its constraints, allocated) is released
     * by the store (LeakSanitizer checks it in the sanitizer build), for one grant and in a listing. */
    kms_grant_rec g, gs[2];
    memset(&g, 0, sizeof(g));
    memset(g.grant_id, 'a', KMS_GRANT_ID_LEN);
    (void)snprintf(g.key_id, sizeof(g.key_id), "%s", k.key_id);
    g.constraints = CL_UNCONST("{\"EncryptionContextSubset\":{\"a\":\"b\"}}");
    assert_ok(s->ops->create_grant(s, &g));
    assert_int_equal(t_other(path, "UPDATE grants SET created='yesterday'"), SQLITE_OK);
    assert_fails(s->ops->get_grant(s, g.grant_id, &gs[0]), CL_ERR_FORMAT,
                 "key store: read grant: column created holds text, not an integer");
    assert_null(gs[0].constraints);
    size_t n;
    bool more;
    kms_grant_filter all = {.key_id = k.key_id};
    assert_fails(s->ops->list_grants(s, &all, "", 2, gs, &n, &more), CL_ERR_FORMAT,
                 "key store: list grants: column created holds text");
    assert_int_equal(n, 0);
    assert_null(gs[0].constraints);
    kms_store_close(s);
    t_done(path);
}

/* A failing statement is named in the message; a write that fails inside its transaction is rolled back and
 * releases the write lock (another connection can write at once), and the store goes on working. */
static void test_failure_names_statement_and_rolls_back(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    kms_key_rec k;
    t_store_with_key(path, sizeof(path), &s, &k);
    assert_int_equal(t_other(path, "DROP TABLE tags"), SQLITE_OK);
    cl_kvlist tags, got;
    cl_kvlist_init(&tags);
    cl_kvlist_init(&got);
    bool more;
    assert_fails(s->ops->list_tags(s, k.key_id, "", 5, &got, &more), CL_ERR_IO,
                 "key store: list tags: no such table: tags");
    assert_ok(cl_kvlist_add(&tags, "a", 1, "1", 1));
    assert_fails(s->ops->tag(s, k.key_id, &tags, 5), CL_ERR_IO, "key store: write tag: no such table: tags");
    assert_int_equal(t_other(path, "BEGIN IMMEDIATE; UPDATE keys SET description='x'; COMMIT"), SQLITE_OK);
    kms_key_rec k2;
    t_key(&k2, 2);
    const uint8_t wrapped[60] = {2};
    assert_ok(s->ops->create_key(s, &k2, wrapped, sizeof(wrapped)));
    cl_kvlist_free(&tags);
    cl_kvlist_free(&got);
    kms_store_close(s);
    t_done(path);
}

/* A listing that stops at its limit leaves no read open: a checkpoint that must wait for every reader
 * (TRUNCATE, with no busy timeout) completes at once. */
static void test_listing_at_its_limit_leaves_no_read_open(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    kms_key_rec k;
    t_store_with_key(path, sizeof(path), &s, &k);
    t_key(&k, 2);
    const uint8_t wrapped[60] = {2};
    assert_ok(s->ops->create_key(s, &k, wrapped, sizeof(wrapped)));
    char ids[1][KMS_KEY_ID_LEN + 1];
    size_t n;
    bool more;
    assert_ok(s->ops->list_keys(s, k.account, "", 1, ids, &n, &more));
    assert_int_equal(n, 1);
    assert_true(more);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "SELECT count(*) FROM keys", NULL, NULL, NULL), SQLITE_OK); /* opens the WAL */
    int log = -1, done = -1;
    assert_int_equal(sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done), SQLITE_OK);
    assert_int_equal(log, 0); /* the whole log was written back and truncated: no reader held it */
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    kms_store_close(s);
    t_done(path);
}

/* Schema versions (PRAGMA user_version): a store of the build before the certificate service (0,
 * no cas_ tables) gains them, its keys untouched; a store a newer build migrated is refused. */
static void test_schema_versions(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    kms_key_rec k, got;
    t_store_with_key(path, sizeof(path), &s, &k);
    kms_store_close(s);
    assert_int_equal(t_other(path, "DROP TABLE cas_sessions; DROP TABLE cas_nonces; PRAGMA user_version=0"), SQLITE_OK);
    assert_ok(t_open(path, &s));
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    kms_key_rec_clear(&got);
    assert_ok(s->ops->cas_put(s, "after-migration", 0, (const uint8_t *)"r", 1, 1));
    kms_store_close(s);
    assert_int_equal(t_other(path, "PRAGMA user_version=3"), SQLITE_OK);
    s = NULL;
    assert_fails(t_open(path, &s), CL_ERR_UNSUPPORTED,
                 "has schema version 3; this build of cloister-kms reads versions up to 2");
    assert_null(s);
    t_done(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_STORE_CASES,
        cmocka_unit_test(test_overlong_text_is_refused),
        cmocka_unit_test(test_bad_numbers_and_types_are_refused),
        cmocka_unit_test(test_failure_names_statement_and_rolls_back),
        cmocka_unit_test(test_listing_at_its_limit_leaves_no_read_open),
        cmocka_unit_test(test_schema_versions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
