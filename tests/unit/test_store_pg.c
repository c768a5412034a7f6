/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PostgreSQL key store against the backend-independent cases of
 * store_cases.h, on the database CLOISTER_TEST_PG_CONNINFO names (whose
 * tables each case drops first). tests/integration/kms_pg.py runs this
 * against the private PostgreSQL it starts; run alone without the variable,
 * every case is skipped. Plus what only a server has: an unreachable one.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#include "store_cases.h"

#define T_GRANT64 "gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg"

static const char *t_conninfo(void)
{
    const char *c = getenv("CLOISTER_TEST_PG_CONNINFO");
    return c != NULL && c[0] != '\0' ? c : NULL;
}

/* An empty database: the store recreates its schema on open. */
static void t_fresh(char *path, size_t cap)
{
    if (t_conninfo() == NULL) skip();
    (void)snprintf(path, cap, "%s", t_conninfo());
    PGconn *c = PQconnectdb(path);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r =
        PQexec(c, "SET client_min_messages TO warning;"
                  "DROP TABLE IF EXISTS keys, key_versions, aliases, grants, tags, key_imports, schema_version, "
                  "cas_sessions, cas_nonces, iam_entities, training_jobs, training_job_events");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

static CL_MUST_USE cl_status t_open(const char *path, kms_store **s)
{
    return kms_store_open_pg(path, 2, "us-east-1", s);
}

static void t_done(const char *path) { (void)path; }

/* No server there: a refusal naming the store, and the password nowhere in it. */
static void test_unreachable_database(void **state)
{
    (void)state;
    char info[600];
    (void)snprintf(info, sizeof(info), "host=%s/no-such-dir dbname=x user=kms password=Pg-Unit-Secret-3", t_tmpdir());
    kms_store *s = NULL;
    assert_fails(kms_store_open_pg(info, 2, "us-east-1", &s), CL_ERR_IO, "cannot connect to PostgreSQL database 'x'");
    assert_null(strstr(cl_error_message(), "Pg-Unit-Secret-3"));
    assert_null(s);
}

/* A schema from a newer build is refused rather than misread. */
static void test_newer_schema_refused(void **state)
{
    (void)state;
    char path[1024];
    t_fresh(path, sizeof(path));
    kms_store *s = NULL;
    assert_ok(t_open(path, &s));
    kms_store_close(s);
    PGconn *c = PQconnectdb(path);
    PGresult *r = PQexec(c, "INSERT INTO schema_version(version) VALUES(6)");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    s = NULL;
    assert_fails(t_open(path, &s), CL_ERR_UNSUPPORTED,
                 "key store schema version is 6, written by a newer cloister-kms; this build reads version 5 (run the "
                 "newer build, or restore a backup made before it)");
}

/* Runs sql on a connection of its own. */
static void t_exec(const char *path, const char *sql)
{
    PGconn *c = PQconnectdb(path);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* One value of a one-row query, copied to out. */
static void t_query(const char *path, const char *sql, char *out, size_t cap)
{
    PGconn *c = PQconnectdb(path);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    (void)snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
}

/* Version 2 (regions and key_imports, before the certificate service): the schema_version table
 * kms_pg_schema_init creates, then kms_pg_schema of src/kms/store_pg.c at main's 019117b,
 * verbatim, with a key of eu-central-1, its alias, grant and tag, and an EXTERNAL key waiting for
 * its material. */
static const char *t_schema_v2 =
    "SET client_min_messages TO warning;"
    "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY);"
    "CREATE TABLE keys("
    " key_id TEXT COLLATE \"C\" PRIMARY KEY, arn TEXT NOT NULL, account TEXT COLLATE \"C\" NOT NULL,"
    " created BIGINT NOT NULL, state INTEGER NOT NULL, description TEXT NOT NULL, key_usage TEXT NOT NULL,"
    " key_spec TEXT NOT NULL, deletion_date BIGINT NOT NULL, pending_days INTEGER NOT NULL,"
    " current_version BIGINT NOT NULL, rotation_enabled BOOLEAN NOT NULL, rotation_period INTEGER NOT NULL,"
    " last_rotated BIGINT NOT NULL, policy TEXT NOT NULL, region TEXT COLLATE \"C\" NOT NULL);"
    "CREATE INDEX keys_account_region ON keys(account, region, key_id);"
    "CREATE TABLE key_versions("
    " key_id TEXT COLLATE \"C\" NOT NULL, version BIGINT NOT NULL, wrapped BYTEA NOT NULL, created BIGINT NOT NULL,"
    " on_demand BOOLEAN NOT NULL DEFAULT false, PRIMARY KEY(key_id, version));"
    "CREATE TABLE aliases("
    " account TEXT COLLATE \"C\" NOT NULL, name TEXT COLLATE \"C\" NOT NULL, key_id TEXT COLLATE \"C\" NOT NULL,"
    " created BIGINT NOT NULL, updated BIGINT NOT NULL, region TEXT COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY(account, region, name));"
    "CREATE INDEX aliases_key ON aliases(key_id);"
    "CREATE TABLE grants("
    " grant_id TEXT COLLATE \"C\" PRIMARY KEY, key_id TEXT COLLATE \"C\" NOT NULL, grantee TEXT NOT NULL,"
    " retiring TEXT NOT NULL, issuing_account TEXT NOT NULL, operations TEXT NOT NULL, name TEXT NOT NULL,"
    " constraints TEXT NOT NULL, created BIGINT NOT NULL, region TEXT COLLATE \"C\" NOT NULL);"
    "CREATE INDEX grants_key ON grants(key_id, grant_id);"
    "CREATE TABLE tags("
    " key_id TEXT COLLATE \"C\" NOT NULL, tag_key TEXT COLLATE \"C\" NOT NULL, tag_value TEXT NOT NULL,"
    " PRIMARY KEY(key_id, tag_key));"
    "CREATE TABLE key_imports("
    " import_key TEXT COLLATE \"C\" PRIMARY KEY, material_id TEXT NOT NULL, imported BOOLEAN NOT NULL,"
    " material_valid_to BIGINT NOT NULL, wrapping_alg TEXT NOT NULL, wrapping_spec TEXT NOT NULL,"
    " params_valid_to BIGINT NOT NULL, token_hash BYTEA NOT NULL, wrapping_key BYTEA NOT NULL);"
    "INSERT INTO schema_version(version) VALUES(2);"
    "INSERT INTO keys VALUES('00000001-0000-4000-8000-000000000000',"
    " 'arn:aws:kms:eu-central-1:111122223333:key/00000001-0000-4000-8000-000000000000', '111122223333', 1, 0,"
    " 'made by main', 'ENCRYPT_DECRYPT', 'SYMMETRIC_DEFAULT', 0, 0, 1, false, 365, 1, '{}', 'eu-central-1');"
    "INSERT INTO key_versions VALUES('00000001-0000-4000-8000-000000000000', 1, '\\x0102', 1, false);"
    "INSERT INTO aliases(account, name, key_id, created, updated, region) VALUES('111122223333', 'alias/main',"
    " '00000001-0000-4000-8000-000000000000', 1, 1, 'eu-central-1');"
    "INSERT INTO grants VALUES('" T_GRANT64 "', '00000001-0000-4000-8000-000000000000',"
    " 'arn:aws:iam::111122223333:user/x', '', '111122223333', 'Decrypt', '', '', 1, 'eu-central-1');"
    "INSERT INTO tags VALUES('00000001-0000-4000-8000-000000000000', 'team', 'blue');"
    "INSERT INTO keys VALUES('00000002-0000-4000-8000-000000000000',"
    " 'arn:aws:kms:eu-central-1:111122223333:key/00000002-0000-4000-8000-000000000000', '111122223333', 1, 3,"
    " 'external', 'ENCRYPT_DECRYPT', 'SYMMETRIC_DEFAULT', 0, 0, 1, false, 365, 1, '{}', 'eu-central-1');"
    "INSERT INTO key_imports VALUES('00000002-0000-4000-8000-000000000000', '', false, 0, '', '', 0, '', '');";

/* A database of version 2 (what main wrote before the certificate service) gains the certificate
 * service's tables at the next start (version 3), in one step and once; its keys, aliases,
 * grants, tags and import state are read as before. */
static void test_version2_gains_cas_tables(void **state)
{
    (void)state;
    char path[1024], got[64];
    t_fresh(path, sizeof(path));
    t_exec(path, t_schema_v2);
    t_query(path, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'cas\\_%'", got, sizeof(got));
    assert_string_equal(got, "0");
    kms_store *s = NULL;
    for (int open = 0; open < 2; open++) { /* the second start finds it done */
        assert_ok(t_open(path, &s));
        t_query(path, "SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version", got, sizeof(got));
        assert_string_equal(got, "2,3,4,5"); /* and the identities' (4) and training jobs' (5) tables */
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
        /* The new tables work: a session written at the first start is there at the second. */
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {T_STORE_CASES, cmocka_unit_test(test_unreachable_database),
                                       cmocka_unit_test(test_newer_schema_refused),
                                       cmocka_unit_test(test_version2_gains_cas_tables)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
