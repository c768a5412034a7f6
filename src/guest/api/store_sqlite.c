/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The embedded store: SQLite in the API's data directory (records.db). Write-ahead log with
 * synchronous=FULL: a transaction's commit returns after the WAL is synced to disk (SQLite's
 * "PRAGMA synchronous" documentation: FULL syncs the WAL at every commit), so a write the API
 * acknowledged survives a kill -9 of the API and a power loss. One connection behind a mutex:
 * SQLite serialises writers anyway, and a record is a few KiB.
 *
 * The store holds what record.c seals; the ids are the keys, in clear (docs/threat-model.md).
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloister/api.h"
#include "cloister/log.h"

typedef struct api_sqlite {
    cl_api_store base;
    sqlite3 *db;
    pthread_mutex_t mu;
    char path[512];
} api_sqlite;

#define SQL_FAIL(s, what) CL_RAISE(CL_ERR_IO, "the SQLite store %s: %s: %s", (s)->path, (what), sqlite3_errmsg((s)->db))

static CL_MUST_USE cl_status sqlite_exec(api_sqlite *s, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        cl_status rc = CL_RAISE(CL_ERR_IO, "the SQLite store %s: %s: %s", s->path, sql, err ? err : "?");
        sqlite3_free(err);
        return rc;
    }
    return CL_OK;
}

static CL_MUST_USE cl_status sqlite_get_blob(api_sqlite *s, const char *sql, const char *key, cl_buf *out)
{
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    (void)pthread_mutex_lock(&s->mu);
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        rc = SQL_FAIL(s, "prepare");
        goto out;
    }
    (void)sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        rc = CL_RAISE(CL_ERR_NOT_FOUND, "%s is not in the store", key);
        goto out;
    }
    if (r != SQLITE_ROW) {
        rc = SQL_FAIL(s, "read");
        goto out;
    }
    CL_GUARD_GOTO(cl_buf_append(out, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0)));
out:
    sqlite3_finalize(st);
    (void)pthread_mutex_unlock(&s->mu);
    return rc;
}

static CL_MUST_USE cl_status sqlite_get(cl_api_store *base, const char *id, cl_buf *out)
{
    return sqlite_get_blob((api_sqlite *)base, "SELECT blob FROM records WHERE id = ?", id, out);
}

static CL_MUST_USE cl_status sqlite_meta_get(cl_api_store *base, const char *name, cl_buf *out)
{
    return sqlite_get_blob((api_sqlite *)base, "SELECT value FROM meta WHERE name = ?", name, out);
}

/* One statement with text key and optional blob, run to completion; *changes the rows it changed. */
static CL_MUST_USE cl_status sqlite_run(api_sqlite *s, const char *sql, const char *key, const uint8_t *blob, size_t n,
                                        int *changes)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) return SQL_FAIL(s, "prepare");
    (void)sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (blob != NULL) (void)sqlite3_bind_blob(st, 2, blob, (int)n, SQLITE_STATIC);
    bool query = sqlite3_stmt_readonly(st) != 0;
    int r = sqlite3_step(st);
    sqlite3_finalize(st);
    if (r != SQLITE_DONE && r != SQLITE_ROW) return SQL_FAIL(s, "write");
    /* A query: whether it found a row; a change: how many rows it changed. */
    if (changes != NULL) *changes = query ? r == SQLITE_ROW : sqlite3_changes(s->db);
    return CL_OK;
}

static CL_MUST_USE cl_status sqlite_put(cl_api_store *base, const char *id, const uint8_t *blob, size_t n,
                                        bool *existed)
{
    api_sqlite *s = (api_sqlite *)base;
    cl_status rc = CL_OK;
    int found = 0, changed = 0;
    (void)pthread_mutex_lock(&s->mu);
    CL_GUARD_GOTO(sqlite_exec(s, "BEGIN IMMEDIATE"));
    rc = sqlite_run(s, "SELECT 1 FROM records WHERE id = ?", id, NULL, 0, &found);
    if (rc == CL_OK)
        rc = sqlite_run(s,
                        "INSERT INTO records(id, blob) VALUES(?, ?) ON CONFLICT(id) DO UPDATE SET blob = excluded.blob",
                        id, blob, n, &changed);
    if (rc == CL_OK) {
        rc = sqlite_exec(s, "COMMIT"); /* returns once the WAL is synced (synchronous=FULL) */
    }
    if (rc != CL_OK) {
        char *err = NULL;
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, &err);
        sqlite3_free(err);
    }
    *existed = found == 1;
out:
    (void)pthread_mutex_unlock(&s->mu);
    return rc;
}

static CL_MUST_USE cl_status sqlite_del(cl_api_store *base, const char *id, bool *existed)
{
    api_sqlite *s = (api_sqlite *)base;
    int changed = 0;
    (void)pthread_mutex_lock(&s->mu);
    cl_status rc = sqlite_run(s, "DELETE FROM records WHERE id = ?", id, NULL, 0, &changed);
    (void)pthread_mutex_unlock(&s->mu);
    *existed = changed > 0;
    return rc;
}

static CL_MUST_USE cl_status sqlite_meta_put_new(cl_api_store *base, const char *name, const uint8_t *v, size_t n)
{
    api_sqlite *s = (api_sqlite *)base;
    int changed = 0;
    (void)pthread_mutex_lock(&s->mu);
    cl_status rc = sqlite_run(s, "INSERT OR IGNORE INTO meta(name, value) VALUES(?, ?)", name, v, n, &changed);
    (void)pthread_mutex_unlock(&s->mu);
    CL_GUARD(rc);
    CL_ENSURE(changed == 1, CL_ERR_EXISTS, "the store has a %s already", name);
    return CL_OK;
}

static CL_MUST_USE cl_status sqlite_list(cl_api_store *base, const char *after, size_t limit, cl_buf *out,
                                         size_t *count)
{
    api_sqlite *s = (api_sqlite *)base;
    cl_status rc = CL_OK;
    sqlite3_stmt *st = NULL;
    *count = 0;
    (void)pthread_mutex_lock(&s->mu);
    /* TEXT compares with BINARY collation (memcmp order), the order of the contract. */
    if (sqlite3_prepare_v2(s->db, "SELECT id FROM records WHERE id > ? ORDER BY id LIMIT ?", -1, &st, NULL) !=
        SQLITE_OK) {
        rc = SQL_FAIL(s, "prepare");
        goto out;
    }
    (void)sqlite3_bind_text(st, 1, after != NULL ? after : "", -1, SQLITE_STATIC);
    (void)sqlite3_bind_int64(st, 2, (sqlite3_int64)limit + 1);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *id = sqlite3_column_text(st, 0);
        CL_GUARD_GOTO(cl_buf_append(out, id, (size_t)sqlite3_column_bytes(st, 0)));
        CL_GUARD_GOTO(cl_buf_append_u8(out, 0));
        (*count)++;
    }
    if (r != SQLITE_DONE) rc = SQL_FAIL(s, "list");
out:
    sqlite3_finalize(st);
    (void)pthread_mutex_unlock(&s->mu);
    return rc;
}

static void sqlite_free(cl_api_store *base)
{
    api_sqlite *s = (api_sqlite *)base;
    sqlite3_close(s->db);
    (void)pthread_mutex_destroy(&s->mu);
    free(s);
}

static const cl_api_store_ops sqlite_ops = {
    .get = sqlite_get,
    .put = sqlite_put,
    .del = sqlite_del,
    .list = sqlite_list,
    .meta_get = sqlite_meta_get,
    .meta_put_new = sqlite_meta_put_new,
    .free = sqlite_free,
};

cl_status cl_api_store_sqlite_open(const char *dir, cl_api_store **out)
{
    cl_status rc = CL_OK;
    api_sqlite *s = calloc(1, sizeof(*s));
    CL_ENSURE(s != NULL, CL_ERR_NOMEM, "out of memory");
    s->base.ops = &sqlite_ops;
    s->base.kind = "sqlite";
    (void)pthread_mutex_init(&s->mu, NULL);
    int m = snprintf(s->path, sizeof(s->path), "%s/records.db", dir);
    CL_ENSURE_GOTO(m > 0 && (size_t)m < sizeof(s->path), CL_ERR_USAGE, "data directory %s: path too long", dir);
    if (sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK)
        CL_FAIL_GOTO(CL_ERR_IO,
                     "cannot open the SQLite store %s: %s (is the data directory writable? a sim enclave "
                     "needs cloister enclave run --data HOSTDIR)",
                     s->path, s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
    (void)sqlite3_busy_timeout(s->db, 10000);
    CL_GUARD_GOTO(sqlite_exec(s, "PRAGMA journal_mode=WAL"));
    CL_GUARD_GOTO(sqlite_exec(s, "PRAGMA synchronous=FULL"));
    CL_GUARD_GOTO(sqlite_exec(s, "CREATE TABLE IF NOT EXISTS records(id TEXT PRIMARY KEY, blob BLOB NOT NULL) "
                                 "WITHOUT ROWID"));
    CL_GUARD_GOTO(sqlite_exec(s, "CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) "
                                 "WITHOUT ROWID"));
    *out = &s->base;
    s = NULL;
out:
    if (s != NULL) sqlite_free(&s->base);
    return rc;
}

void cl_api_store_free(cl_api_store *s)
{
    if (s != NULL) s->ops->free(s);
}
