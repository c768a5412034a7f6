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

static CL_MUST_USE cl_status t_open(const char *path, kms_store **s)
{
    return kms_store_open_sqlite(path, "us-east-1", s);
}

static void t_done(const char *path) { unlink(path); }

#define T_GRANT64 "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg"

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

/* PRAGMA user_version of the store at path, read on a second connection. */
static int64_t t_user_version(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return v;
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
    assert_fails(s->ops->get_key(s, k.key_id, &got), CL_ERR_FORMAT, "column state holds 7, outside [0, 3]");
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
    assert_ok(s->ops->list_keys(s, k.account, k.region, "", 1, ids, &n, &more));
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

/* The schema of the stores written before regions (store_sqlite.c at 6a44c01), with a key made
 * in eu-west-1, one whose ARN names no region (no store wrote one; the default region then), an
 * alias and a grant of the first. */
static const char *t_schema_v0 =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE keys(key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT NULL, created INTEGER NOT NULL,"
    " state INTEGER NOT NULL, description TEXT NOT NULL, key_usage TEXT NOT NULL, key_spec TEXT NOT NULL,"
    " deletion_date INTEGER NOT NULL, pending_days INTEGER NOT NULL, current_version INTEGER NOT NULL,"
    " rotation_enabled INTEGER NOT NULL, rotation_period INTEGER NOT NULL, last_rotated INTEGER NOT NULL,"
    " policy TEXT NOT NULL);"
    "CREATE INDEX keys_account ON keys(account, key_id);"
    "CREATE TABLE key_versions(key_id TEXT NOT NULL, version INTEGER NOT NULL, wrapped BLOB NOT NULL,"
    " created INTEGER NOT NULL, on_demand INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(key_id, version));"
    "CREATE TABLE aliases(account TEXT NOT NULL, name TEXT NOT NULL, key_id TEXT NOT NULL, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL, PRIMARY KEY(account, name));"
    "CREATE TABLE grants(grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, grantee TEXT NOT NULL,"
    " retiring TEXT NOT NULL, issuing_account TEXT NOT NULL, operations TEXT NOT NULL, name TEXT NOT NULL,"
    " constraints TEXT NOT NULL, created INTEGER NOT NULL);"
    "CREATE INDEX grants_key ON grants(key_id, grant_id);"
    "CREATE TABLE tags(key_id TEXT NOT NULL, tag_key TEXT NOT NULL, tag_value TEXT NOT NULL,"
    " PRIMARY KEY(key_id, tag_key));"
    "INSERT INTO keys VALUES('00000001-0000-4000-8000-000000000000',"
    " 'arn:aws:kms:eu-west-1:111122223333:key/00000001-0000-4000-8000-000000000000', '111122223333', 1, 0, 'old',"
    " 'ENCRYPT_DECRYPT', 'SYMMETRIC_DEFAULT', 0, 0, 1, 0, 365, 1, '{}');"
    "INSERT INTO keys VALUES('00000002-0000-4000-8000-000000000000', 'not an arn', '111122223333', 1, 0, 'odd',"
    " 'ENCRYPT_DECRYPT', 'SYMMETRIC_DEFAULT', 0, 0, 1, 0, 365, 1, '{}');"
    "INSERT INTO key_versions VALUES('00000001-0000-4000-8000-000000000000', 1, x'0102', 1, 0);"
    "INSERT INTO aliases VALUES('111122223333', 'alias/old', '00000001-0000-4000-8000-000000000000', 1, 1);"
    "INSERT INTO grants VALUES('" T_GRANT64 "', '00000001-0000-4000-8000-000000000000',"
    " 'arn:aws:iam::111122223333:user/x', '', '111122223333', 'Decrypt', '', '', 1);";

/* A store of before regions is migrated at open: each key to the region of its ARN (the default
 * region when it names none), its aliases and grants to their key's, then the certificate
 * service's tables added; once (user_version 2), and a store of a newer schema is refused. */
static void test_store_before_regions_is_migrated(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    assert_int_equal(t_other(path, t_schema_v0), SQLITE_OK);
    kms_store *s = NULL;
    for (int open = 0; open < 2; open++) { /* the second open finds it done */
        assert_ok(kms_store_open_sqlite(path, "ap-northeast-1", &s));
        kms_key_rec k;
        assert_ok(s->ops->get_key(s, "00000001-0000-4000-8000-000000000000", &k));
        assert_string_equal(k.region, "eu-west-1");
        assert_string_equal(k.description, "old");
        kms_key_rec_clear(&k);
        assert_ok(s->ops->get_key(s, "00000002-0000-4000-8000-000000000000", &k));
        assert_string_equal(k.region, "ap-northeast-1");
        kms_key_rec_clear(&k);
        char ids[2][KMS_KEY_ID_LEN + 1];
        size_t n;
        bool more;
        assert_ok(s->ops->list_keys(s, "111122223333", "eu-west-1", "", 2, ids, &n, &more));
        assert_int_equal(n, 1);
        assert_string_equal(ids[0], "00000001-0000-4000-8000-000000000000");
        kms_alias_rec a;
        assert_ok(s->ops->get_alias(s, "111122223333", "eu-west-1", "alias/old", &a));
        assert_string_equal(a.key_id, "00000001-0000-4000-8000-000000000000");
        assert_fails(s->ops->get_alias(s, "111122223333", "ap-northeast-1", "alias/old", &a), CL_ERR_NOT_FOUND,
                     "no alias");
        kms_grant_rec g;
        assert_ok(s->ops->get_grant(s, T_GRANT64, &g));
        assert_string_equal(g.region, "eu-west-1");
        kms_grant_rec_clear(&g);
        cl_buf w;
        cl_buf_init(&w, 64);
        assert_ok(s->ops->get_material(s, "00000001-0000-4000-8000-000000000000", 1, &w));
        assert_int_equal(w.len, 2);
        cl_buf_free(&w);
        /* The migration also made key_imports: the old key is AWS_KMS, and an EXTERNAL key can be made. */
        kms_key_rec got, ext;
        assert_ok(s->ops->get_key(s, "00000001-0000-4000-8000-000000000000", &got));
        assert_false(got.external);
        kms_key_rec_clear(&got);
        t_key(&ext, 99 + open); /* one per open: the first one stays */
        ext.state = KMS_KEY_PENDING_IMPORT;
        assert_ok(s->ops->create_key(s, &ext, NULL, 0));
        assert_ok(s->ops->get_key(s, ext.key_id, &got));
        assert_true(got.external && !got.imported);
        kms_key_rec_clear(&got);
        /* Every step ran (0 to 1 to 2 to 3 to 4): the certificate service's, the identities' and the
         * training jobs' tables too. */
        assert_int_equal(t_user_version(path), 4);
        if (open == 0) assert_ok(s->ops->job_put(s, "111122223333", "old", "{}", KMS_IAM_CREATE, 1));
        assert_fails(s->ops->job_put(s, "111122223333", "old", "{}", KMS_IAM_CREATE, 1), CL_ERR_EXISTS,
                     "training job old in 111122223333 already exists");
        if (open == 0) assert_ok(s->ops->cas_put(s, "old-store", 0, (const uint8_t *)"r", 1, 1));
        assert_fails(s->ops->cas_put(s, "old-store", 0, (const uint8_t *)"r", 1, 1), CL_ERR_EXISTS, "already exists");
        kms_store_close(s);
    }
    assert_int_equal(t_other(path, "PRAGMA user_version=5"), SQLITE_OK);
    assert_fails(kms_store_open_sqlite(path, "us-east-1", &s), CL_ERR_UNSUPPORTED,
                 "has schema version 5, written by a newer cloister-kms; this build reads version 4 (run the newer "
                 "build, or restore a backup made before it)");
    assert_int_equal(t_user_version(path), 5); /* refused: nothing written */
    t_done(path);
}

/* The schema of version 1 (regions and key_imports, before the certificate service): kms_schema
 * of src/kms/store_sqlite.c at main's 019117b, verbatim, with a key of eu-central-1, its alias,
 * grant and tag, and an EXTERNAL key waiting for its material. */
static const char *t_schema_v1 =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE keys("
    " key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT NULL, created INTEGER NOT NULL,"
    " state INTEGER NOT NULL, description TEXT NOT NULL, key_usage TEXT NOT NULL, key_spec TEXT NOT NULL,"
    " deletion_date INTEGER NOT NULL, pending_days INTEGER NOT NULL, current_version INTEGER NOT NULL,"
    " rotation_enabled INTEGER NOT NULL, rotation_period INTEGER NOT NULL, last_rotated INTEGER NOT NULL,"
    " policy TEXT NOT NULL, region TEXT NOT NULL);"
    "CREATE INDEX keys_account_region ON keys(account, region, key_id);"
    "CREATE TABLE key_versions("
    " key_id TEXT NOT NULL, version INTEGER NOT NULL, wrapped BLOB NOT NULL, created INTEGER NOT NULL,"
    " on_demand INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(key_id, version));"
    "CREATE TABLE aliases("
    " account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL, key_id TEXT NOT NULL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, PRIMARY KEY(account, region, name));"
    "CREATE TABLE grants("
    " grant_id TEXT PRIMARY KEY, key_id TEXT NOT NULL, grantee TEXT NOT NULL, retiring TEXT NOT NULL,"
    " issuing_account TEXT NOT NULL, operations TEXT NOT NULL, name TEXT NOT NULL, constraints TEXT NOT NULL,"
    " created INTEGER NOT NULL, region TEXT NOT NULL);"
    "CREATE INDEX grants_key ON grants(key_id, grant_id);"
    "CREATE TABLE tags("
    " key_id TEXT NOT NULL, tag_key TEXT NOT NULL, tag_value TEXT NOT NULL, PRIMARY KEY(key_id, "
    "tag_key));"
    "CREATE TABLE IF NOT EXISTS key_imports("
    " import_key TEXT PRIMARY KEY, material_id TEXT NOT NULL, imported INTEGER NOT NULL,"
    " material_valid_to INTEGER NOT NULL, wrapping_alg TEXT NOT NULL, wrapping_spec TEXT NOT NULL,"
    " params_valid_to INTEGER NOT NULL, token_hash BLOB NOT NULL, wrapping_key BLOB NOT NULL);"
    "PRAGMA user_version=1;"
    "INSERT INTO keys VALUES('00000001-0000-4000-8000-000000000000',"
    " 'arn:aws:kms:eu-central-1:111122223333:key/00000001-0000-4000-8000-000000000000', '111122223333', 1, 0,"
    " 'made by main', 'ENCRYPT_DECRYPT', 'SYMMETRIC_DEFAULT', 0, 0, 1, 0, 365, 1, '{}', 'eu-central-1');"
    "INSERT INTO key_versions VALUES('00000001-0000-4000-8000-000000000000', 1, x'0102', 1, 0);"
    "INSERT INTO aliases VALUES('111122223333', 'eu-central-1', 'alias/main', '00000001-0000-4000-8000-000000000000',"
    " 1, 1);"
    "INSERT INTO grants VALUES('" T_GRANT64 "', '00000001-0000-4000-8000-000000000000',"
    " 'arn:aws:iam::111122223333:user/x', '', '111122223333', 'Decrypt', '', '', 1, 'eu-central-1');"
    "INSERT INTO tags VALUES('00000001-0000-4000-8000-000000000000', 'team', 'blue');"
    "INSERT INTO keys VALUES('00000002-0000-4000-8000-000000000000',"
    " 'arn:aws:kms:eu-central-1:111122223333:key/00000002-0000-4000-8000-000000000000', '111122223333', 1, 3,"
    " 'external', 'ENCRYPT_DECRYPT', 'SYMMETRIC_DEFAULT', 0, 0, 1, 0, 365, 1, '{}', 'eu-central-1');"
    "INSERT INTO key_imports VALUES('00000002-0000-4000-8000-000000000000', '', 0, 0, '', '', 0, x'', x'');";

/* A store of version 1 (what main wrote before the certificate service) gains the certificate
 * service's tables at open (user_version 2), in one step and once; its keys, aliases, grants,
 * tags and import state are read as before. */
static void test_store_of_version_1_gains_cas_tables(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    assert_int_equal(t_other(path, t_schema_v1), SQLITE_OK);
    assert_int_equal(t_other(path, "SELECT * FROM cas_sessions"), SQLITE_ERROR); /* not there yet */
    kms_store *s = NULL;
    for (int open = 0; open < 2; open++) { /* the second open finds it done */
        assert_ok(kms_store_open_sqlite(path, "us-east-1", &s));
        assert_int_equal(t_user_version(path), 4);
        kms_key_rec k;
        assert_ok(s->ops->get_key(s, "00000001-0000-4000-8000-000000000000", &k));
        assert_string_equal(k.region, "eu-central-1");
        assert_string_equal(k.description, "made by main");
        kms_key_rec_clear(&k);
        assert_ok(s->ops->get_key(s, "00000002-0000-4000-8000-000000000000", &k));
        assert_true(k.external && !k.imported);
        assert_int_equal(k.state, KMS_KEY_PENDING_IMPORT);
        kms_key_rec_clear(&k);
        kms_alias_rec a;
        assert_ok(s->ops->get_alias(s, "111122223333", "eu-central-1", "alias/main", &a));
        assert_string_equal(a.key_id, "00000001-0000-4000-8000-000000000000");
        kms_grant_rec g;
        assert_ok(s->ops->get_grant(s, T_GRANT64, &g));
        assert_string_equal(g.region, "eu-central-1");
        kms_grant_rec_clear(&g);
        cl_kvlist tags;
        cl_kvlist_init(&tags);
        bool more = true;
        assert_ok(s->ops->list_tags(s, "00000001-0000-4000-8000-000000000000", "", 10, &tags, &more));
        assert_int_equal(tags.count, 1);
        assert_string_equal(tags.items[0].value, "blue");
        assert_false(more);
        cl_kvlist_free(&tags);
        cl_buf w;
        cl_buf_init(&w, 64);
        assert_ok(s->ops->get_material(s, "00000001-0000-4000-8000-000000000000", 1, &w));
        assert_int_equal(w.len, 2);
        cl_buf_free(&w);
        /* The new tables work: a session written at the first open is there at the second. */
        int64_t version = 0;
        cl_buf rec;
        cl_buf_init(&rec, 16);
        if (open == 0) {
            assert_fails(s->ops->cas_get(s, "hospital", &version, &rec), CL_ERR_NOT_FOUND, "no session hospital");
            assert_ok(s->ops->cas_put(s, "hospital", 0, (const uint8_t *)"v1", 2, 5));
            assert_ok(s->ops->cas_use_nonce(s, "n1", 100, 5));
        }
        assert_ok(s->ops->cas_get(s, "hospital", &version, &rec));
        assert_int_equal(version, 1);
        assert_memory_equal(rec.data, "v1", 2);
        cl_buf_free(&rec);
        assert_fails(s->ops->cas_use_nonce(s, "n1", 100, 6), CL_ERR_EXISTS, "used already");
        kms_store_close(s);
    }
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
        cmocka_unit_test(test_store_before_regions_is_migrated),
        cmocka_unit_test(test_store_of_version_1_gains_cas_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
