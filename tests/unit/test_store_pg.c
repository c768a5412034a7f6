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
                  "DROP TABLE IF EXISTS keys, key_versions, aliases, grants, tags, schema_version, cas_sessions, "
                  "cas_nonces");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

static CL_MUST_USE cl_status t_open(const char *path, kms_store **s) { return kms_store_open_pg(path, 2, s); }

static void t_done(const char *path) { (void)path; }

/* No server there: a refusal naming the store, and the password nowhere in it. */
static void test_unreachable_database(void **state)
{
    (void)state;
    char info[600];
    (void)snprintf(info, sizeof(info), "host=%s/no-such-dir dbname=x user=kms password=Pg-Unit-Secret-3", t_tmpdir());
    kms_store *s = NULL;
    assert_fails(kms_store_open_pg(info, 2, &s), CL_ERR_IO, "cannot connect to PostgreSQL database 'x'");
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
    PGresult *r = PQexec(c, "INSERT INTO schema_version(version) VALUES(3)");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    s = NULL;
    assert_fails(t_open(path, &s), CL_ERR_UNSUPPORTED, "schema version is 3; this build");
}

/* A version-1 database (the key tables only, before the certificate service) gets version 2's
 * tables at the next start, its keys untouched. */
static void test_version1_migrates(void **state)
{
    (void)state;
    char path[1024];
    kms_store *s = NULL;
    kms_key_rec k, got;
    t_fresh(path, sizeof(path));
    assert_ok(t_open(path, &s));
    t_key(&k, 7);
    const uint8_t wrapped[60] = {1};
    assert_ok(s->ops->create_key(s, &k, wrapped, sizeof(wrapped)));
    kms_store_close(s);
    PGconn *c = PQconnectdb(path);
    PGresult *r = PQexec(c, "DROP TABLE cas_sessions, cas_nonces; DELETE FROM schema_version WHERE version=2");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    assert_ok(t_open(path, &s));
    assert_ok(s->ops->get_key(s, k.key_id, &got));
    kms_key_rec_clear(&got);
    assert_ok(s->ops->cas_put(s, "after-migration", 0, (const uint8_t *)"r", 1, 1));
    kms_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {T_STORE_CASES, cmocka_unit_test(test_unreachable_database),
                                       cmocka_unit_test(test_newer_schema_refused),
                                       cmocka_unit_test(test_version1_migrates)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
